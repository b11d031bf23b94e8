"""The watcher: notices, within about a second, a media file deleted, moved or put back.

It follows the media folder with watchfiles (inotify on Linux) in the same event loop
as everything else. A `done` media whose file disappears becomes `missing`, with when
and why; a `missing` media whose file reappears under its name with the right hash is
`done` again. Our own temporary files are ignored, and so are the renames that finish
our downloads, since their rows are not `done` or `missing` at that moment.

Should the watch itself fail (the whole folder removed, say), the watcher waits a
moment, makes the folder again, runs a reconciliation scan to catch what it missed,
and resumes.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from pathlib import Path
from typing import Final

from watchfiles import Change, awatch

from mediamon.core.events import EventBus, FileWentMissing, MediaChanged
from mediamon.core.files import LocalFileStore, is_part_file
from mediamon.core.models import MediaRecord, MediaStatus
from mediamon.core.scan import reconcile
from mediamon.core.store import Store

logger = logging.getLogger(__name__)

GONE: Final = "file deleted or moved away"
DEBOUNCE_MS: Final = 100
RESTART_DELAY: Final = 1.0


class FileWatcher:
    def __init__(self, store: Store, files: LocalFileStore, bus: EventBus) -> None:
        self._store = store
        self._files = files
        self._bus = bus
        self._stop = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self.ready = asyncio.Event()
        """Set once the first watch is in place; tests and benchmarks wait on it."""

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="mediamon-watcher")

    async def stop(self) -> None:
        self._stop.set()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def _run(self) -> None:
        while not self._stop.is_set():
            try:
                await self._watch()
            except asyncio.CancelledError:
                raise
            except Exception as error:
                logger.warning("watching %s failed (%s); resuming", self._files.root, error)
            if self._stop.is_set():
                return
            await asyncio.sleep(RESTART_DELAY)
            self._files.root.mkdir(parents=True, exist_ok=True)
            await reconcile(self._store, self._files, self._bus)

    async def _watch(self) -> None:
        root = self._files.root
        watching = awatch(
            root,
            watch_filter=lambda _, path: not is_part_file(path),
            debounce=DEBOUNCE_MS,
            step=20,
            stop_event=self._stop,
            yield_on_timeout=True,
            rust_timeout=200,
        )
        async for changes in watching:
            self.ready.set()
            if changes:
                await self._handle(root, changes)
        if not root.is_dir() and not self._stop.is_set():
            raise FileNotFoundError(f"{root} was removed")

    async def _handle(self, root: Path, changes: set[tuple[Change, str]]) -> None:
        # Within one debounce a file may be deleted and written again, so what counts
        # is the disk as it is now, not the kind of change reported.
        relpaths = {_relative(root, path) for _, path in changes}
        for relpath in sorted(path for path in relpaths if path is not None):
            await self._check(relpath)

    async def _check(self, relpath: str) -> None:
        gone: dict[int, str] = {}
        back = []
        for media in await self._store.media_at(relpath):
            present = media.path is not None and self._files.exists(media.path)
            if media.status is MediaStatus.DONE and not present:
                gone[media.id] = GONE
            elif media.status is MediaStatus.MISSING and present:
                back.append(media)

        for media in await self._store.mark_missing(gone):
            self._bus.publish(FileWentMissing(media))
        restored = [media.id for media in back if await self._hash_matches(media)]
        for media in await self._store.mark_restored(restored):
            logger.info("%s is back on disk, hash verified", media.message_id)
            self._bus.publish(MediaChanged(media))

    async def _hash_matches(self, media: MediaRecord) -> bool:
        digest = await asyncio.to_thread(self._files.sha256, media.path or "")
        return digest is not None and digest == media.stored_sha256


def _relative(root: Path, path: str) -> str | None:
    try:
        return Path(path).relative_to(root).as_posix()
    except ValueError:
        return None
