"""The watcher: notices, within about a second, a media file deleted, moved or put back.

It follows the media folder with watchfiles (inotify on Linux) in the same event loop
as everything else. A `done` media whose file disappears becomes `missing`, with when
and why; a `missing` media whose file reappears under its name with the right hash is
`done` again. A folder deleted or moved away makes every media under it missing, and
one moved back in brings them back the same way. Our own temporary files are ignored,
and so are the renames that finish our downloads, since their rows are not `done` or
`missing` at that moment.

Media files lie only in kind folders, `cliente_*/instance_*/<kind>/` (see layout.py),
so the watch covers those and the folders above them, a few dozen, each on its own:
setting up a recursive watch walks every file while holding the GIL, two seconds with
a million files during which the event loop stands still. The folders are listed in a
thread. When a client, instance or kind folder appears, or a watched one goes or is
replaced, a new watch over the new set takes over, and the old one stops only once the
new one is in place, so that no change falls between the two. Symlinked client folders
are followed, as the scan follows them: inotify watches the folder a link points to.

Not free yet: watchfiles still reads the entries of each folder it is given as it sets
up, holding the GIL in whichever thread, so the loop stalls about 0.15 s per million
files at start and at each renewal; only a watch that skips that reading would avoid it.

Should the media folder itself go, the watcher waits a moment, makes the folder again,
runs a reconciliation scan to catch what it missed, and resumes.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import stat
from pathlib import Path, PurePosixPath
from typing import Final

from watchfiles import Change, awatch

from mediamon.core.events import EventBus, FileWentMissing, MediaChanged
from mediamon.core.files import LocalFileStore, is_part_file
from mediamon.core.layout import FOLDER_DEPTH, is_layout_folder
from mediamon.core.models import MediaRecord, MediaStatus
from mediamon.core.scan import reconcile
from mediamon.core.store import Store

logger = logging.getLogger(__name__)

GONE: Final = "file deleted or moved away"
DEBOUNCE_MS: Final = 100
RESTART_DELAY: Final = 1.0
RENEW_ATTEMPTS: Final = 3
"""Tries at putting a watch over the folders as they are: one can go, or a new one
appear, between listing the folders and watching them."""

_Identity = tuple[int, int]
_Changes = set[tuple[Change, str]]
_Sink = asyncio.Queue[tuple["_FolderWatch", _Changes | Exception]]
"""Where watches put their changes, or the error that ended them, with themselves."""


class FileWatcher:
    def __init__(self, store: Store, files: LocalFileStore, bus: EventBus) -> None:
        self._store = store
        self._files = files
        self._bus = bus
        self._stop = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._watches: list[_FolderWatch] = []
        """The live watches, newest last; two only while one takes over from the other."""
        self.watched_folders: frozenset[str] = frozenset()
        """The folders under watch, relative to the media folder ("" for itself)."""
        self.ready = asyncio.Event()
        """Set once the first watch is in place; tests and benchmarks wait on it."""

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="mediamon-watcher")

    async def stop(self) -> None:
        self._stop.set()
        for watch in self._watches:
            watch.halt()
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
        sink: _Sink = asyncio.Queue()
        try:
            await self._renew(sink)
            self.ready.set()
            while True:
                source, batch = await sink.get()
                if not isinstance(batch, Exception):
                    await self._handle(batch, sink)
                elif source is self._watches[-1]:
                    raise batch
                # else a watch already replaced failed, which no longer matters
        finally:
            self.watched_folders = frozenset()
            while self._watches:
                await self._watches.pop().stop()

    async def _handle(self, batch: _Changes, sink: _Sink) -> None:
        root = self._files.root
        touched = {rel for _, path in batch if (rel := _relative(root, path)) is not None}
        # Within one debounce a file may be deleted and written again, so what counts
        # is the disk as it is now, not the kind of change reported.
        for relpath in sorted(touched - {""}):
            await self._check(relpath)

        reshaped = sorted(path for path in touched if self._watches[-1].outdated_at(path))
        if reshaped:
            await self._renew(sink)
            # Files may have come or gone in a new folder before it was watched.
            for relpath in reshaped:
                if relpath:
                    await self._check(relpath)

    async def _renew(self, sink: _Sink) -> None:
        """Put a watch over the folders as they are now, then stop the older ones."""
        root = self._files.root
        for attempt in range(1, RENEW_ATTEMPTS + 1):
            folders = await asyncio.to_thread(_layout_folders, root)
            watch = _FolderWatch(root, folders, sink)
            self._watches.append(watch)
            try:
                await watch.in_place
            except FileNotFoundError:  # a folder went between the listing and the watch
                self._watches.remove(watch)
                await watch.stop()
                if attempt == RENEW_ATTEMPTS:
                    raise
                continue
            while len(self._watches) > 1:
                await self._watches.pop(0).stop()
            self.watched_folders = frozenset(folders)

            # A folder made inside a new one while the watch was being set up was seen
            # by no watch; listing again finds it.
            if await asyncio.to_thread(_layout_folders, root) == folders:
                return

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


class _FolderWatch:
    """One watch over a fixed set of folders, each followed on its own, not recursively.

    Its changes, or the error that ended it, go to `sink` tagged with the watch, so that
    whoever reads them can tell a current watch from one being replaced.
    """

    def __init__(self, root: Path, folders: dict[str, _Identity], sink: _Sink) -> None:
        self._root = root
        self._folders = folders
        self._halted = asyncio.Event()
        self.in_place: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        """Done once every folder is watched; holds the error if that failed."""
        self._task = asyncio.create_task(self._follow(sink), name="mediamon-folder-watch")

    def outdated_at(self, relpath: str) -> bool:
        """Whether `relpath` is now a folder of the layout this watch does not cover, or
        no longer the folder it covers."""
        if not is_layout_folder(PurePosixPath(relpath)):
            return False
        return _identity(self._root / relpath) != self._folders.get(relpath)

    def halt(self) -> None:
        """Ask the watch to end; it does within a step of watchfiles' loop."""
        self._halted.set()

    async def stop(self) -> None:
        self.halt()
        # Waiting this way neither cancels the watch nor swallows a cancellation of the
        # caller, which a plain `await` of the task inside `suppress` would.
        await asyncio.wait({self._task})

    async def _follow(self, sink: _Sink) -> None:
        watching = awatch(
            *_distinct_paths(self._root, self._folders),
            watch_filter=lambda _, path: not is_part_file(path),
            debounce=DEBOUNCE_MS,
            step=20,
            stop_event=self._halted,
            yield_on_timeout=True,
            rust_timeout=200,
            recursive=False,
        )
        try:
            async for changes in watching:
                if not self.in_place.done():
                    self.in_place.set_result(None)
                if changes:
                    sink.put_nowait((self, changes))
        except Exception as error:
            if self.in_place.done():
                sink.put_nowait((self, error))
            else:
                self.in_place.set_exception(error)
        finally:
            self.in_place.cancel()  # halted before it was in place; no-op otherwise


def _layout_folders(root: Path) -> dict[str, _Identity]:
    """The folders of the layout under `root`, by relative path ("" for the root itself),
    each with the real folder it is, so that a folder replaced under the same name shows.

    Blocking, so run it in a thread; it reads the root, the client folders and the
    instance folders, never the kind folders that hold the files.
    """
    root_identity = _identity(root)
    if root_identity is None:
        raise FileNotFoundError(f"{root} was removed")
    found = {"": root_identity}
    level = [""]
    for _ in range(FOLDER_DEPTH):
        below = []
        for parent in level:
            try:
                with os.scandir(root / parent) as entries:
                    names = [entry.name for entry in entries]
            except OSError:
                continue  # gone since it was listed; the change that says so renews the watch
            for name in names:
                relpath = f"{parent}/{name}" if parent else name
                if not is_layout_folder(PurePosixPath(relpath)):
                    continue
                identity = _identity(root / relpath)
                if identity is not None:
                    found[relpath] = identity
                    below.append(relpath)
        level = below
    return found


def _distinct_paths(root: Path, folders: dict[str, _Identity]) -> list[Path]:
    # A folder reached twice, through a link, is watched once, as the scan walks it once.
    first: dict[_Identity, str] = {}
    for relpath, identity in folders.items():
        first.setdefault(identity, relpath)
    return [root / relpath for relpath in first.values()]


def _identity(path: Path) -> _Identity | None:
    """Which real folder `path` is, following links; None when it is not a folder."""
    try:
        info = path.stat()
    except OSError:
        return None
    return (info.st_dev, info.st_ino) if stat.S_ISDIR(info.st_mode) else None


def _relative(root: Path, path: str) -> str | None:
    try:
        relpath = Path(path).relative_to(root).as_posix()
    except ValueError:
        return None
    return "" if relpath == "." else relpath
