"""The media table: a bounded window of the newest rows, changed in place as they move.

The database may hold a million media, so the table never holds them all: it shows
the newest `WINDOW` rows that match the filters, paged from SQLite. Rows are keyed by
media id; a status change updates the row's cells where it stands, and a new media
is added and the window re-sorted, the oldest row dropping off the end.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from typing import Final

from rich.text import Text
from textual.widgets import DataTable

from mediamon.core.eventlog import human_size
from mediamon.core.models import MediaRecord, MediaStatus
from mediamon.tui.formatting import clock, status_text

WINDOW: Final = 500

COLUMNS: Final = (
    ("id", "#", 6),
    ("time", "Time", 11),
    ("instance", "Instance", 10),
    ("sender", "Sender", 18),
    ("kind", "Kind", 8),
    ("size", "Size", 9),
    ("status", "Status", 22),
    ("source", "Source", 6),
    ("message", "Message", 12),
)


class MediaTable(DataTable[object]):
    DEFAULT_CSS = """
    MediaTable { height: 1fr; }
    """

    def __init__(self, max_attempts: int, **kwargs: object) -> None:
        super().__init__(cursor_type="row", zebra_stripes=True, **kwargs)  # type: ignore[arg-type]
        self.max_attempts = max_attempts
        self.records: dict[int, MediaRecord] = {}

    def on_mount(self) -> None:
        for key, label, width in COLUMNS:
            self.add_column(label, key=key, width=width)

    @property
    def selected(self) -> MediaRecord | None:
        if not self.records or self.cursor_row < 0 or self.cursor_row >= self.row_count:
            return None
        row_key, _ = self.coordinate_to_cell_key(self.cursor_coordinate)
        return self.records.get(int(str(row_key.value)))

    def show(self, rows: Iterable[MediaRecord]) -> None:
        """Replace the window, after a filter changed."""
        self.clear()
        self.records.clear()
        self.upsert(rows, keep_cursor=False)

    def upsert(self, rows: Iterable[MediaRecord], *, keep_cursor: bool = True) -> None:
        """Update rows in place and add new ones, newest first, within the window."""
        selected = self.selected if keep_cursor else None
        added = False
        for media in rows:
            if media.id in self.records:
                self._update(media)
            else:
                self.add_row(*self._cells(media), key=str(media.id))
                added = True
            self.records[media.id] = media

        if added:
            self.sort("id", reverse=True)
            self._trim()
            if selected is not None and selected.id in self.records:
                self.move_cursor(row=self.get_row_index(str(selected.id)), animate=False)

    def tick(self) -> None:
        """Count down the retry times shown in `retrying` rows."""
        now = time.time()
        for media in self.records.values():
            if media.status is MediaStatus.RETRYING:
                self.update_cell(
                    str(media.id), "status", status_text(media, self.max_attempts, now)
                )

    def _update(self, media: MediaRecord) -> None:
        before = self.records[media.id]
        cells = dict(zip((key for key, _, _ in COLUMNS), self._cells(media), strict=True))
        for key in ("size", "status", "source"):
            self.update_cell(str(media.id), key, cells[key])
        if before.sender != media.sender:
            self.update_cell(str(media.id), "sender", cells["sender"])

    def _trim(self) -> None:
        while len(self.records) > WINDOW:
            oldest = min(self.records)
            self.remove_row(str(oldest))
            del self.records[oldest]

    def _cells(self, media: MediaRecord) -> tuple[object, ...]:
        size = media.stored_size if media.stored_size is not None else media.expected_size
        return (
            media.id,
            clock(media.received_at),
            media.instance_id[:10],
            Text(media.sender[:18]),
            media.kind.value,
            Text(human_size(size) if size is not None else "?", justify="right"),
            status_text(media, self.max_attempts),
            media.source or "",
            media.message_id[:12],
        )
