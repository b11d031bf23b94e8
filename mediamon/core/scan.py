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

Neither side is ever held whole, so memory stays bounded however many rows and files
there are; only the report's lists grow, with what they report. The store hands out
the rows a page at a time in path order, the walk of the tree yields paths in that
same order, and the two are merged like two sorted lists: a path on both sides is
present, a row alone is missing, a file alone is an orphan. Each page is one query,
and the corrections of a few pages one transaction; walking, comparing and hashing
run in a thread, so the event loop, and a screen drawn by it, keeps its turns.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Final

from mediamon.core.events import EventBus, FileWentMissing, MediaChanged
from mediamon.core.files import LocalFileStore, is_part_file
from mediamon.core.models import MediaStatus
from mediamon.core.store import Store, StoredFile

logger = logging.getLogger(__name__)

NOT_FOUND: Final = "file not found on disk"
CHANGED: Final = "content changed on disk"

STALE_PART_AGE: Final = 600.0
"""Seconds after its last write when a temporary file can only be a crash's leftover:
a live download that stalls that long has long since timed out."""

PAGE: Final = 2_000
"""Rows read and compared in one step."""

CORRECTIONS: Final = 250
"""Rows corrected per transaction: few enough that their events take the event loop
a moment, many enough that a disk gone wholesale is not a commit per page."""


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
    cutoff = time.time() - part_age

    def stale(path: str) -> bool:
        not_ours = only_own_parts_live and not files.owns(path)
        return not_ours or files.modified_at(path) <= cutoff

    merge = _Merge(files, stale, verify=verify)
    missing: list[str] = []
    changed: list[str] = []
    restored: list[str] = []
    checked = 0
    pending = _Verdict()
    after: StoredFile | None = None
    while True:
        page = await store.stored_files_after(after, PAGE)
        last = len(page) < PAGE
        pending.absorb(await asyncio.to_thread(merge.compare, page, last))
        checked += len(page)
        if last or len(pending) >= CORRECTIONS:
            gone, edited, back = await _correct(store, bus, pending)
            missing += gone
            changed += edited
            restored += back
            pending = _Verdict()
        if last:
            break
        after = page[-1]

    return ScanReport(
        checked=checked,
        missing=sorted(missing),
        changed=sorted(changed),
        restored=sorted(restored),
        orphans=sorted(merge.orphans),
        temp_removed=sorted(merge.temp_removed),
        seconds=time.monotonic() - started,
    )


async def _correct(
    store: Store, bus: EventBus | None, verdict: _Verdict
) -> tuple[list[str], list[str], list[str]]:
    """Apply a verdict; returns the paths of the rows now missing, changed and restored."""
    missing: list[str] = []
    changed: list[str] = []
    restored: list[str] = []
    for media in await store.mark_missing(verdict.reasons):
        (missing if media.last_error == NOT_FOUND else changed).append(verdict.paths[media.id])
        if bus is not None:
            bus.publish(FileWentMissing(media))
    for media in await store.mark_restored(verdict.restored):
        restored.append(verdict.paths[media.id])
        if bus is not None:
            bus.publish(MediaChanged(media))
    return missing, changed, restored


@dataclass(slots=True)
class _Verdict:
    """What rows need: reasons for `done` rows to become `missing`, and `missing`
    rows to make `done` again, with the paths of both for the report."""

    reasons: dict[int, str] = field(default_factory=dict)
    restored: list[int] = field(default_factory=list)
    paths: dict[int, str] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.paths)

    def absorb(self, other: _Verdict) -> None:
        self.reasons.update(other.reasons)
        self.restored += other.restored
        self.paths.update(other.paths)


class _Merge:
    """The walk of the disk merged with pages of rows, both in path order.

    Between pages it keeps the file the walk stands on and whether a row has named
    it, since rows sharing a path may fall in two pages: a file is an orphan only once
    the rows have gone past it unmatched.
    """

    def __init__(
        self, files: LocalFileStore, stale: Callable[[str], bool], *, verify: bool
    ) -> None:
        self._files = files
        self._stale = stale
        self._verify = verify
        self._walk = files.walk()
        self._begun = False
        self._here: str | None = None
        self._matched = False
        self.orphans: list[str] = []
        self.temp_removed: list[str] = []

    def compare(self, page: list[StoredFile], last: bool) -> _Verdict:
        """Blocking: it walks, hashes and removes temporary files; run it in a thread."""
        if not self._begun:
            self._begun = True
            self._advance()
        verdict = _Verdict()
        present = []
        for row in page:
            while self._here is not None and self._here < row.path:
                self._advance()
            if self._here == row.path:
                self._matched = True
                present.append(row)
            elif self._files.exists(row.path):
                # The walk read this folder before a download put the file there and
                # the row was read: present after all.
                present.append(row)
            elif row.status is MediaStatus.DONE:
                verdict.reasons[row.media_id] = NOT_FOUND
                verdict.paths[row.media_id] = row.path
        if last:
            while self._here is not None:
                self._advance()

        for row in present:
            if row.status is MediaStatus.MISSING:
                if row.sha256 and self._files.sha256(row.path) == row.sha256:
                    verdict.restored.append(row.media_id)
                    verdict.paths[row.media_id] = row.path
            elif self._verify and self._files.sha256(row.path) != row.sha256:
                verdict.reasons[row.media_id] = CHANGED
                verdict.paths[row.media_id] = row.path
        return verdict

    def _advance(self) -> None:
        """Move to the next media file, settling the one left and temporary files passed."""
        if self._here is not None and not self._matched:
            self.orphans.append(self._here)
        self._here, self._matched = None, False
        for path in self._walk:
            if not is_part_file(path):
                self._here = path
                return
            if self._stale(path) and self._files.remove(path):
                self.temp_removed.append(path)
