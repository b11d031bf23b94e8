"""The webhook events screen on `e`: every delivery as it arrived, like ngrok's inspector.

Rejected, refused and ignored webhooks make no media row, so the media table never
shows them. Here each delivery is a row with what became of it, and the selected
one's body can be read and fed through intake again.

While the screen is shown it reads the newest `LIMIT` events once a second, without
their bodies (which may be megabytes each): one query by primary key, however large
the table. Only the selected event's body is read, when the cursor reaches it. An
event never changes once written, except that retention may empty its body, so a
reload only adds the rows that are new and drops those that fell off the end; the
cursor stays on the event it was on.

Bodies come from W-API and hold no token, but what is shown is scrubbed of the config's
tokens and secret all the same, as `mediamon events` does.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, Iterable
from typing import ClassVar, Final

from rich.json import JSON
from rich.table import Table
from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import DataTable, Footer, Static

from mediamon.core.errors import MediamonError
from mediamon.core.intake import IntakeResult
from mediamon.core.store import StoredEvent
from mediamon.logs import hide_secrets
from mediamon.tui.formatting import clock, full_time

LIMIT: Final = 200
"""How many of the newest events the screen lists."""
LONG_TEXT: Final = 400
"""Strings in a body longer than this (a base64 `jpegThumbnail`) are cut to a prefix."""
KEPT_PREFIX: Final = 64
"""How much of such a string is shown, before its length."""
BODY_SHOWN: Final = 100_000
"""Characters of a body shown at most; a larger one is cut, not laid out as JSON."""

OUTCOME_STYLES: Final = {
    "accepted": "green",
    "ignored": "dim",
    "refused": "red",
    "rejected": "red",
}

COLUMNS: Final = (
    ("id", "#", 6),
    ("time", "Time", 11),
    ("event", "Event", 18),
    ("instance", "Instance", 10),
    ("message", "Message", 12),
    ("outcome", "Outcome", 8),
    ("reason", "Reason", 60),
)

Loader = Callable[[int], Awaitable[list[StoredEvent]]]
Fetcher = Callable[[int], Awaitable[StoredEvent | None]]
Replayer = Callable[[int], Awaitable[IntakeResult]]


class WebhookEventsScreen(ModalScreen[None]):
    """A screen of its own rather than a pane: a body needs the room.

    It is modal so that the media table's keys (reprocess, filters) do not act,
    unseen, behind it; `q` is bound here to quit the app as it does there.
    """

    DEFAULT_CSS = """
    WebhookEventsScreen { background: $background; }
    WebhookEventsScreen > #events-title { height: 1; padding: 0 1; background: $panel; }
    WebhookEventsScreen > DataTable { height: 2fr; }
    WebhookEventsScreen > VerticalScroll {
        height: 3fr;
        border-top: solid $primary;
        padding: 0 1;
    }
    """
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("w", "replay", "Replay"),
        Binding("escape,e", "dismiss", "Back to media"),
        Binding("j", "move(1)", "Down", show=False),
        Binding("k", "move(-1)", "Up", show=False),
        Binding("q", "app.quit", "Quit"),
    ]

    def __init__(
        self,
        load: Loader,
        fetch: Fetcher,
        replay: Replayer,
        *,
        running: Callable[[], bool],
        secrets: Iterable[str] = (),
    ) -> None:
        """`load(limit)` lists the newest events, bodies left out; `fetch(id)` reads one
        whole; `replay(id)` feeds one through intake.

        `running()` is true while the pipeline runs. Once it is false (the app is
        quitting) the database `load` reads is about to close, so the screen stops
        reading and replaying.
        """
        super().__init__()
        self._load = load
        self._fetch = fetch
        self._replay = replay
        self._pipeline_running = running
        self._secrets = tuple(secrets)
        self.events: dict[int, StoredEvent] = {}
        """The events listed, by id, without their bodies."""
        self.shown: StoredEvent | None = None
        """The event the lower pane shows, body and all."""

    def compose(self) -> ComposeResult:
        title = Text.assemble(
            ("Webhook events", "bold"),
            f"  the newest {LIMIT}, newest first; new ones appear as they arrive",
        )
        yield Static(title, id="events-title")
        yield DataTable(cursor_type="row", zebra_stripes=True)
        with VerticalScroll():
            yield Static(id="event-facts")
            yield Static(id="event-body")
        yield Footer()

    async def on_mount(self) -> None:
        table = self.query_one(DataTable)
        for key, label, width in COLUMNS:
            table.add_column(label, key=key, width=width)
        table.focus()
        await self._show_selected()
        await self._look_again()
        self.set_interval(1.0, self._look_again)

    @property
    def selected(self) -> StoredEvent | None:
        table = self.query_one(DataTable)
        if not self.events or not 0 <= table.cursor_row < table.row_count:
            return None
        row_key, _ = table.coordinate_to_cell_key(table.cursor_coordinate)
        return self.events.get(int(str(row_key.value)))

    async def _look_again(self) -> None:
        # Checked before the query is sent: the app closes the database only after
        # the pipeline has stopped, so a query sent while it runs is answered.
        if not self._pipeline_running() or not self.is_current:
            return
        await self._list(await self._load(LIMIT))

    async def _list(self, events: list[StoredEvent]) -> None:
        """Bring the table to `events`, newest first, keeping the cursor on its event."""
        table = self.query_one(DataTable)
        selected = self.selected
        fresh = {event.id: event for event in events}
        for event_id in [event_id for event_id in self.events if event_id not in fresh]:
            table.remove_row(str(event_id))
        new = [event for event in events if event.id not in self.events]
        for event in new:
            table.add_row(*self._cells(event), key=str(event.id))

        # Rows go in at the bottom, but a new event is newer than every one shown.
        if new and self.events:
            table.sort("id", reverse=True)
            if selected is not None and selected.id in fresh:
                table.move_cursor(row=table.get_row_index(str(selected.id)), animate=False)
        self.events = fresh
        await self._show_selected()

    async def _whole(self, listed: StoredEvent | None) -> StoredEvent | None:
        """The listed event with its body, read now; None once the pipeline has stopped."""
        if listed is None:
            return None
        if self.shown is not None and self.shown.id == listed.id:
            return self.shown
        if not self._pipeline_running():
            return None
        return await self._fetch(listed.id)

    def _cells(self, event: StoredEvent) -> tuple[object, ...]:
        return (
            event.id,
            clock(event.received_at),
            event.event or "-",
            (event.instance_id or "-")[:10],
            (event.message_id or "-")[:12],
            _outcome(event.outcome),
            Text(self._scrub(event.reason or "")),
        )

    @on(DataTable.RowHighlighted)
    async def _row_highlighted(self, highlighted: DataTable.RowHighlighted) -> None:
        # The app listens for the media table's cursor; this table's must not reach it.
        highlighted.stop()
        await self._show_selected()

    @on(DataTable.RowSelected)
    def _row_selected(self, selected: DataTable.RowSelected) -> None:
        selected.stop()  # enter toggles the media detail pane, which is not on this screen

    async def _show_selected(self) -> None:
        listed = self.selected
        if listed is not None and self.shown is not None and listed.id == self.shown.id:
            return  # unchanged: a large body is not read and drawn again every second
        event = await self._whole(listed)
        if event is not None and (self.selected is None or self.selected.id != event.id):
            return  # the cursor moved on while the body was read; that row's turn is next
        self.shown = event
        facts = self.query_one("#event-facts", Static)
        body = self.query_one("#event-body", Static)
        if event is None:
            facts.update("No webhook has arrived yet." if not self.events else "")
            body.update("")
            return
        facts.update(self._facts(event))
        body.update(self._body(event))

    def _facts(self, event: StoredEvent) -> Table:
        facts = Table.grid(padding=(0, 2))
        facts.add_column(style="bold", no_wrap=True)
        facts.add_column()
        replay = "(w replays it)" if event.body is not None else ""
        facts.add_row("Event", f"#{event.id}  {event.event or 'not a W-API event'}  {replay}")
        facts.add_row("Instance", f"{event.instance_id or '-'}  message {event.message_id or '-'}")
        facts.add_row("Received", full_time(event.received_at))
        outcome = _outcome(event.outcome)
        if event.reason:
            outcome.append(f"  {self._scrub(event.reason)}")
        facts.add_row("Outcome", outcome)
        facts.add_row("", "")
        return facts

    def _body(self, event: StoredEvent) -> Text | JSON:
        if event.body is None:
            return Text(
                "Retention emptied this webhook's body ([storage] keep_events_days), "
                "so it cannot be read or replayed; the lines above are what is kept.",
                style="dim",
            )
        text = self._scrub(event.body)
        if not text.strip():
            return Text("The body was empty.", style="dim")
        if len(text) > BODY_SHOWN:
            # W-API's bodies are a few kB; one of megabytes is someone else's, and laying
            # it all out would stall the screen.
            cut = Text(text[:BODY_SHOWN])
            more = len(text) - BODY_SHOWN
            cut.append(f"\n… {more:,} more characters (mediamon events --json prints them)")
            return cut
        try:
            return JSON.from_data(_shortened(json.loads(text)), indent=2)
        except (ValueError, RecursionError):
            # Not JSON, or nested too deep to lay out: shown as it arrived, which is
            # usually why it was rejected.
            return Text(text)

    def _scrub(self, text: str) -> str:
        return hide_secrets(text, self._secrets)

    # Keys.

    def action_move(self, rows: int) -> None:
        table = self.query_one(DataTable)
        table.move_cursor(row=table.cursor_row + rows)

    async def action_replay(self) -> None:
        """Feed the selected event's body through intake again, as `mediamon replay`."""
        event = await self._whole(self.selected)
        if event is None:
            self.notify("Select a webhook event to replay first.", severity="warning")
            return
        if event.body is None:
            self.notify(
                f"Webhook #{event.id}'s body was emptied by retention; it cannot be replayed.",
                severity="warning",
            )
            return
        if not self._pipeline_running():
            self.notify("mediamon is not running, so nothing can be replayed.", severity="warning")
            return
        try:
            result = await self._replay(event.id)
        except MediamonError as error:
            self.notify(str(error), severity="warning")
            return
        answer = "kept once (already known)" if result.duplicate else result.outcome
        self.notify(f"Replayed webhook #{event.id}: {answer}.")
        await self._look_again()


def _outcome(outcome: str) -> Text:
    return Text(outcome, style=OUTCOME_STYLES.get(outcome, ""))


def _shortened(value: object) -> object:
    """The parsed body with each very long string cut to a prefix and its length."""
    if isinstance(value, str) and len(value) > LONG_TEXT:
        return f"{value[:KEPT_PREFIX]}… ({len(value):,} characters)"
    if isinstance(value, list):
        return [_shortened(item) for item in value]
    if isinstance(value, dict):
        return {key: _shortened(item) for key, item in value.items()}
    return value
