"""The event log at the bottom: one line per event, bounded in length."""

from __future__ import annotations

import logging
import time
from typing import Final

from rich.text import Text
from textual.widgets import RichLog

from mediamon.core.eventlog import describe
from mediamon.core.events import Event

MAX_LINES: Final = 1000

_STYLES: Final = {"<--": "bright_blue", "-->": "green", "!!": "red", "??": "magenta"}


class EventLog(RichLog):
    DEFAULT_CSS = """
    EventLog { height: 7; border-top: solid $primary; padding: 0 1; }
    """

    def __init__(self, **kwargs: object) -> None:
        super().__init__(max_lines=MAX_LINES, wrap=False, markup=False, **kwargs)  # type: ignore[arg-type]

    def add_event(self, event: Event) -> None:
        described = describe(event)
        if described is not None and described[0] >= logging.INFO:
            self.add_line(described[1])

    def add_line(self, line: str, style: str | None = None) -> None:
        marker = line.split(" ", 1)[0]
        stamp = Text(time.strftime("%H:%M:%S "), style="dim")
        self.write(stamp + Text(line, style=style or _STYLES.get(marker, "")))
