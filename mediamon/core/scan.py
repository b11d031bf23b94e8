"""The reconciliation scan: make the database agree with what is really on disk.

The store's word for a file is only as good as the last look at the disk, so every
start of `serve` and `run`, and `mediamon scan`, compares the two:

- a `done` row whose file is absent becomes `missing`;
- a `missing` row whose file is back with the right hash becomes `done` again;
- with `verify`, every present file is hashed, and one whose content changed is no
  longer `done` but `missing`, "content changed on disk";
- files no row knows are orphans: counted and listed, never deleted;
- temporary download files left by a crash go: those older than `part_age` seconds,
  or, inside a running server (`only_own_parts_live`), every one not its own.

It reads the rows in one query and walks the tree once with `os.scandir`, then
compares sets; nothing here costs a query per file.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Final

from mediamon.core.events import EventBus, FileWentMissing, MediaChanged
from mediamon.core.files import LocalFileStore
from mediamon.core.models import MediaStatus
from mediamon.core.store import Store, StoredFile

logger = logging.getLogger(__name__)

NOT_FOUND: Final = "file not found on disk"
CHANGED: Final = "content changed on disk"

STALE_PART_AGE: Final = 600.0
"""Seconds after its last write when a temporary file can only be a crash's leftover:
a live download that stalls that long has long since timed out."""


@dataclass(frozen=True, slots=True)
class ScanReport:
    checked: int
    missing: list[str] = field(default_factory=list)
    changed: list[str] = field(default_factory=list)
    restored: list[str] = field(default_factory=list)
    orphans: list[str] = field(default_factory=list)
    temp_removed: list[str] = field(default_factory=list)
    seconds: float = 0.0

    def summary(self) -> str:
        return (
            f"{self.checked} checked, {len(self.missing)} missing, {len(self.changed)} changed, "
            f"{len(self.restored)} restored, {len(self.orphans)} orphans, "
            f"{len(self.temp_removed)} temp files removed in {self.seconds:.2f} s"
        )


async def reconcile(
    store: Store,
    files: LocalFileStore,
    bus: EventBus | None = None,
    *,
    verify: bool = False,
    part_age: float = STALE_PART_AGE,
    only_own_parts_live: bool = False,
) -> ScanReport:
    """Compare the store with the disk and correct the store; see the module's text."""
    started = time.monotonic()
    stored = await store.stored_files()
    listing = await asyncio.to_thread(files.list_files)

    cutoff = time.time() - part_age
    stale = [
        path
        for path, mtime in listing.part_files
        if mtime <= cutoff or (only_own_parts_live and not files.owns(path))
    ]
    removed = [path for path in stale if files.remove(path)]

    present = [row for row in stored if row.path in listing.files]
    gone = {row.media_id: NOT_FOUND for row in stored if row.path not in listing.files}
    back = [row for row in present if row.status is MediaStatus.MISSING]
    to_hash = back + ([row for row in present if row.status is MediaStatus.DONE] if verify else [])
    hashes = await asyncio.to_thread(_hash_all, files, to_hash)

    restored = [row for row in back if row.sha256 and hashes[row.media_id] == row.sha256]
    changed = {
        row.media_id: CHANGED
        for row in to_hash
        if row.status is MediaStatus.DONE and hashes[row.media_id] != row.sha256
    }

    missing_rows = await store.mark_missing(gone | changed)
    restored_rows = await store.mark_restored(row.media_id for row in restored)
    if bus is not None:
        for media in missing_rows:
            bus.publish(FileWentMissing(media))
        for media in restored_rows:
            bus.publish(MediaChanged(media))

    by_id = {row.media_id: row.path for row in stored}
    known = set(by_id.values())
    return ScanReport(
        checked=len(stored),
        missing=sorted(by_id[m.id] for m in missing_rows if m.last_error == NOT_FOUND),
        changed=sorted(by_id[m.id] for m in missing_rows if m.last_error == CHANGED),
        restored=sorted(by_id[m.id] for m in restored_rows),
        orphans=sorted(listing.files - known),
        temp_removed=sorted(removed),
        seconds=time.monotonic() - started,
    )


def _hash_all(files: LocalFileStore, rows: Iterable[StoredFile]) -> dict[int, str | None]:
    return {row.media_id: files.sha256(row.path) for row in rows}
