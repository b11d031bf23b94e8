"""The media table: a window of the newest rows, paged from SQLite, changed in place.

The database may hold a million media, so the table never holds them all: it shows
the newest `PAGE` rows that match the filters, and the app fetches the next `PAGE`
older ones when the cursor comes within `NEAR_END` rows of the last. Rows are keyed
by media id; a status change updates the row's cells where it stands, and new media
go in newest first, the oldest rows dropping off the end so the window keeps its size.
"""

from __future__ import annotations

import heapq
import time
from collections.abc import Iterable, Sequence
from typing import Final

from rich.text import Text
from textual.widgets import DataTable
from textual.widgets.data_table import RowKey

from mediamon.core.eventlog import human_size
from mediamon.core.models import MediaRecord, MediaStatus
from mediamon.tui.formatting import clock, status_text

PAGE: Final = 120
"""Rows fetched at a time: more than the tallest screen shows, so a page key finds rows."""
NEAR_END: Final = 40
"""How close to the last row the cursor comes before the next page is fetched."""

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
        self.limit = PAGE
        """How many rows the window holds: a page, and another for each page fetched."""
        self.exhausted = False
        """True when no older media match the filters: there is no next page."""
        self._placed_row = 0
        """Where the table itself last left the cursor, following the selected media."""

    def on_mount(self) -> None:
        for key, label, width in COLUMNS:
            self.add_column(label, key=key, width=width)

    @property
    def selected(self) -> MediaRecord | None:
        if not self.records or self.cursor_row < 0 or self.cursor_row >= self.row_count:
            return None
        row_key, _ = self.coordinate_to_cell_key(self.cursor_coordinate)
        return self.records.get(int(str(row_key.value)))

    @property
    def oldest(self) -> int | None:
        """The id of the last row, from which the next page goes on."""
        return min(self.records, default=None)

    @property
    def near_end(self) -> bool:
        """True when the person moved the cursor close enough to the end to want more.

        Under heavy traffic new rows push the selected media down by dozens a second,
        and the cursor follows it; a page fetched for that would grow the window
        without end. So only a cursor moved since the table placed it counts.
        """
        return (
            not self.exhausted
            and self.cursor_row != self._placed_row
            and self.row_count - self.cursor_row <= NEAR_END
        )

    def show(self, page: Sequence[MediaRecord]) -> None:
        """Replace the window with the first page, newest first, after a filter changed."""
        self.clear()
        self.records.clear()
        self.limit = PAGE
        for media in page:
            self.add_row(*self._cells(media), key=str(media.id))
            self.records[media.id] = media
        self.exhausted = len(page) < PAGE
        self._placed_row = self.cursor_row

    def add_page(self, page: Sequence[MediaRecord]) -> None:
        """Add the next page of older media below the window, which grows to hold it.

        The window shrinks back only when a filter changes: it never drops the newest
        rows to make room, so after paging very deep each live update costs more
        (sorting and trimming are linear in the window's size).
        """
        self.limit += PAGE
        self.upsert(page)
        self.exhausted = len(page) < PAGE

    def upsert(self, rows: Iterable[MediaRecord]) -> None:
        """Update rows in place and add new ones, newest first, within the window."""
        selected, row = self.selected, self.cursor_row
        new: list[MediaRecord] = []
        for media in rows:
            before = self.records.get(media.id)
            if before is None:
                new.append(media)
            elif before != media:
                self._update(before, media)
                self.records[media.id] = media
        if new:
            self._add(new, selected)
        if self.cursor_row != row:
            self._placed_row = self.cursor_row

    def _add(self, new: list[MediaRecord], selected: MediaRecord | None) -> None:
        """Add media not yet shown, keeping the newest `limit` and the cursor on `selected`."""
        bottom = self.oldest

        # Rows that would fall off the end at once are never added.
        ids = [*self.records, *(media.id for media in new)]
        if len(ids) > self.limit:
            cutoff = heapq.nlargest(self.limit, ids)[-1]
            new = [media for media in new if media.id >= cutoff]
            self._remove([media_id for media_id in self.records if media_id < cutoff])
        for media in sorted(new, key=lambda media: media.id, reverse=True):
            self.add_row(*self._cells(media), key=str(media.id))
            self.records[media.id] = media

        # Rows are added at the bottom: only media newer than the old last row move up.
        if bottom is not None and any(media.id > bottom for media in new):
            self.sort("id", reverse=True)
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

    def _update(self, before: MediaRecord, media: MediaRecord) -> None:
        cells = dict(zip((key for key, _, _ in COLUMNS), self._cells(media), strict=True))
        for key in ("size", "status", "source"):
            self.update_cell(str(media.id), key, cells[key])
        if before.sender != media.sender:
            self.update_cell(str(media.id), "sender", cells["sender"])

    def _remove(self, media_ids: Iterable[int]) -> None:
        for media_id in media_ids:
            self.remove_row(str(media_id))
            del self.records[media_id]
            self.exhausted = False

    def _update_dimensions(self, new_rows: Iterable[RowKey]) -> None:
        # DataTable measures every cell of each new row when idle, to fit columns to
        # their content: tens of milliseconds for a few hundred rows, during which no
        # key is read. Every column here has a fixed width and every row one line, so
        # no measure could change what is drawn; only the scrollable size, which this
        # still works out, depends on the new rows.
        super()._update_dimensions(())

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
