"""The help screen on `?`: every key and what it does, from the app's own bindings."""

from __future__ import annotations

from typing import ClassVar

from rich.table import Table
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Static

KEYS: tuple[tuple[str, str], ...] = (
    ("r", "reprocess the selected media"),
    ("R", "reprocess every failed media"),
    ("M", "reprocess every missing media"),
    ("/", "filter by text: message id, sender, chat, file name"),
    ("f", "cycle the status filter: all, active, failed, missing, done"),
    ("k", "cycle the kind filter"),
    ("enter", "show or hide the detail pane"),
    ("o", "open the selected file"),
    ("c", "copy the selected file's path"),
    ("s", "scan the media folder now"),
    ("w", "replay the selected media's webhook, as `mediamon replay`"),
    ("p", "pause or resume downloads"),
    ("e", "webhook events as they arrive: read a body, w replays it"),
    ("ctrl+p", "command palette: every action by name"),
    ("?", "this help"),
    ("q", "quit: in-flight downloads go back to the queue"),
)


class HelpScreen(ModalScreen[None]):
    DEFAULT_CSS = """
    HelpScreen { align: center middle; }
    HelpScreen > VerticalScroll {
        width: 72; height: auto; max-height: 90%;
        border: thick $primary; background: $surface; padding: 1 2;
    }
    """
    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape,q,question_mark", "dismiss", "Close")]

    def compose(self) -> ComposeResult:
        table = Table.grid(padding=(0, 2))
        table.add_column(style="bold cyan", no_wrap=True)
        table.add_column()
        for key, what in KEYS:
            table.add_row(key, what)
        with VerticalScroll():
            yield Static("[b]mediamon keys[/b]\n")
            yield Static(table)
            yield Static("\n[dim]escape closes this screen[/dim]")
