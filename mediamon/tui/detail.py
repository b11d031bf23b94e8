"""The detail pane: everything about the selected media, and each attempt at it."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from rich.console import Group, RenderableType
from rich.table import Table
from rich.text import Text
from textual.containers import VerticalScroll
from textual.widgets import Static

from mediamon.core.eventlog import human_size
from mediamon.core.models import Attempt, MediaRecord
from mediamon.tui.formatting import full_time, status_text


class DetailPane(VerticalScroll):
    DEFAULT_CSS = """
    DetailPane {
        height: 18;
        border-top: solid $primary;
        padding: 0 1;
    }
    DetailPane.-hidden { display: none; }
    """

    def __init__(self, media_dir: Path, max_attempts: int, **kwargs: object) -> None:
        super().__init__(**kwargs)  # type: ignore[arg-type]
        self._media_dir = media_dir
        self._max_attempts = max_attempts
        self.media: MediaRecord | None = None
        self.attempts: Sequence[Attempt] = ()

    def compose(self):  # type: ignore[no-untyped-def]
        yield Static("No media selected.", id="detail-body")

    def show(self, media: MediaRecord | None, attempts: Sequence[Attempt] = ()) -> None:
        self.media = media
        self.attempts = attempts
        body = self.query_one("#detail-body", Static)
        body.update(self._render_media(media, attempts) if media else "No media selected.")

    def _render_media(self, media: MediaRecord, attempts: Sequence[Attempt]) -> RenderableType:
        facts = Table.grid(padding=(0, 2))
        facts.add_column(style="bold", no_wrap=True)
        facts.add_column()
        path = str(self._media_dir / media.path) if media.path else "-"
        size = f"{human_size(media.expected_size)} expected" if media.expected_size else "?"
        if media.stored_size is not None:
            size += f", {human_size(media.stored_size)} stored"
        rows: list[tuple[str, RenderableType]] = [
            ("Message", f"{media.message_id}  (#{media.id}, {media.kind.value})"),
            ("Webhook", f"event #{media.event_id}  (w replays it)" if media.event_id else "-"),
            ("Status", status_text(media, self._max_attempts)),
            ("Instance", f"{media.instance_id}  client {media.client}"),
            ("Chat", media.chat_id or "-"),
            ("Sender", f"{media.sender_name or '-'}  {media.sender_id or ''}"),
            ("Caption", media.caption or media.file_name or "-"),
            ("Mimetype", media.mimetype),
            ("Size", size),
            ("Expected", media.expected_sha256 or "-"),
            ("Stored", media.stored_sha256 or "-"),
            ("Path", path),
            ("Received", full_time(media.received_at)),
        ]
        if media.last_error:
            rows.insert(2, ("Error", Text(media.last_error, style="red")))
        for label, value in rows:
            facts.add_row(label, value)
        return Group(facts, Text(""), _attempts_table(attempts))


def _attempts_table(attempts: Sequence[Attempt]) -> RenderableType:
    if not attempts:
        return Text("No attempts yet.", style="dim")
    table = Table("#", "Time", "Source", "HTTP", "Outcome", "Error", box=None, padding=(0, 1))
    # Newest first: the pane is only so tall, and the last try is what explains the status.
    for attempt in reversed(attempts):
        table.add_row(
            str(attempt.number),
            full_time(attempt.started_at),
            attempt.source,
            str(attempt.http_status or ""),
            Text(attempt.outcome, style="green" if attempt.outcome == "done" else "red"),
            attempt.error or "",
        )
    return table
