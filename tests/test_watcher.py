"""The watcher follows the folders of the layout, not every file, and finds rows by index.

It watches the media folder, the client, instance and kind folders one by one, and
renews that set when a folder of the layout comes or goes; `media_at`, which it calls
for every changed path, searches the `media_path` index instead of reading every row.
"""

from __future__ import annotations

import asyncio
import hashlib
import shutil
import sqlite3
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from mediamon.core.events import EventBus
from mediamon.core.files import LocalFileStore
from mediamon.core.models import MediaStatus
from mediamon.core.sqlite_store import SQLiteStore
from mediamon.core.watcher import FileWatcher, _FolderWatch, _layout_folders, _Sink
from tests.conftest import wait_for

IMAGE = "cliente_1/instance_A/image/M1.jpg"


@dataclass
class Watched:
    root: Path
    store: SQLiteStore
    watcher: FileWatcher

    async def add_done(self, relpath: str, data: bytes = b"media bytes") -> int:
        """A media file on disk and its `done` row; returns the row's id."""
        (self.root / relpath).parent.mkdir(parents=True, exist_ok=True)
        (self.root / relpath).write_bytes(data)
        return await self.store._run(lambda conn: _insert_done(conn, relpath, data))

    def in_status(self, media_id: int, status: MediaStatus) -> Callable[[], Awaitable[bool]]:
        async def check() -> bool:
            media = await self.store.get_media(media_id)
            return media is not None and media.status is status

        return check

    def watching(self, *relpaths: str) -> Callable[[], Awaitable[bool]]:
        async def check() -> bool:
            return set(relpaths) <= self.watcher.watched_folders

        return check


@pytest.fixture
async def watched(tmp_path: Path) -> AsyncIterator[Watched]:
    root = tmp_path / "media"
    root.mkdir()
    store = await SQLiteStore.open(tmp_path / "watcher.db")
    watcher = FileWatcher(store, LocalFileStore(root), EventBus())
    try:
        yield Watched(root, store, watcher)
    finally:
        await watcher.stop()
        await store.close()


async def start(watched: Watched) -> None:
    watched.watcher.start()
    await wait_for(lambda: _is_set(watched.watcher))


async def test_only_the_folders_of_the_layout_are_watched_each_on_its_own(
    watched: Watched,
) -> None:
    await watched.add_done(IMAGE)
    for folder in ("cliente_1/instance_A/image/deeper", "cliente_1/notes", "other"):
        (watched.root / folder).mkdir(parents=True)
    (watched.root / "cliente_2").write_bytes(b"a file, not a folder")

    await start(watched)

    assert watched.watcher.watched_folders == {
        "",
        "cliente_1",
        "cliente_1/instance_A",
        "cliente_1/instance_A/image",
    }


async def test_a_kind_folder_made_while_watching_is_watched_and_its_files_followed(
    watched: Watched,
) -> None:
    await watched.add_done(IMAGE)
    await start(watched)

    video = await watched.add_done("cliente_1/instance_A/video/M2.mp4")
    await wait_for(watched.watching("cliente_1/instance_A/video"), timeout=3)
    (watched.root / "cliente_1/instance_A/video/M2.mp4").unlink()

    await wait_for(watched.in_status(video, MediaStatus.MISSING), timeout=2)


async def test_a_new_client_made_in_one_go_is_watched_down_to_its_kind_folder(
    watched: Watched,
) -> None:
    await start(watched)

    media = await watched.add_done("cliente_7/instance_B/audio/M3.ogg")
    await wait_for(
        watched.watching("cliente_7", "cliente_7/instance_B", "cliente_7/instance_B/audio"),
        timeout=3,
    )
    (watched.root / "cliente_7/instance_B/audio/M3.ogg").unlink()

    await wait_for(watched.in_status(media, MediaStatus.MISSING), timeout=2)


async def test_a_folder_moved_away_and_back_takes_its_media_and_brings_them_back(
    watched: Watched, tmp_path: Path
) -> None:
    media = await watched.add_done(IMAGE)
    await start(watched)
    instance = watched.root / "cliente_1/instance_A"

    shutil.move(instance, tmp_path / "elsewhere")
    await wait_for(watched.in_status(media, MediaStatus.MISSING), timeout=2)
    await wait_for(lambda: _not_watching(watched, "cliente_1/instance_A"), timeout=3)
    shutil.move(tmp_path / "elsewhere", instance)

    await wait_for(watched.in_status(media, MediaStatus.DONE), timeout=2)
    await wait_for(watched.watching("cliente_1/instance_A/image"), timeout=3)
    (watched.root / IMAGE).unlink()
    await wait_for(watched.in_status(media, MediaStatus.MISSING), timeout=2)


async def test_a_symlinked_client_folder_is_followed_live_as_the_scan_follows_it(
    watched: Watched, tmp_path: Path
) -> None:
    elsewhere = tmp_path / "other-disk" / "cliente_1"
    elsewhere.mkdir(parents=True)
    (watched.root / "cliente_1").symlink_to(elsewhere)
    (elsewhere / "loop").symlink_to(elsewhere)  # a link loop must not hang the listing
    media = await watched.add_done(IMAGE, b"on the other disk")
    await start(watched)

    (elsewhere / "instance_A/image/M1.jpg").unlink()
    await wait_for(watched.in_status(media, MediaStatus.MISSING), timeout=2)
    (elsewhere / "instance_A/image/M1.jpg").write_bytes(b"on the other disk")

    await wait_for(watched.in_status(media, MediaStatus.DONE), timeout=2)


async def test_the_media_folder_removed_is_made_again_and_watched_again(
    watched: Watched,
) -> None:
    media = await watched.add_done(IMAGE, b"kept elsewhere")
    await start(watched)

    shutil.rmtree(watched.root)
    await wait_for(watched.in_status(media, MediaStatus.MISSING), timeout=2)
    await wait_for(lambda: _watching_exactly(watched, {""}), timeout=5)
    (watched.root / IMAGE).parent.mkdir(parents=True)
    (watched.root / IMAGE).write_bytes(b"kept elsewhere")

    await wait_for(watched.in_status(media, MediaStatus.DONE), timeout=3)


async def test_stopping_a_watch_never_swallows_the_cancellation_of_whoever_stops_it(
    tmp_path: Path,
) -> None:
    # `serve` stops on SIGTERM by cancelling the watcher; had that cancellation landed
    # while a renewal was stopping the older watch and been swallowed there, the watcher
    # would have gone back to waiting for changes and `serve` would never have exited.
    sink: _Sink = asyncio.Queue()
    watch = _FolderWatch(tmp_path, _layout_folders(tmp_path), sink)
    await watch.in_place

    stopping = asyncio.create_task(watch.stop())
    await asyncio.sleep(0)
    stopping.cancel()
    await asyncio.wait({stopping})

    assert stopping.cancelled()
    await watch.stop()


# media_at, which the watcher calls for every changed path.

PATHS = [
    "cliente_1/instance_A/image/a.jpg",
    "cliente_1/instance_A/video/b.mp4",
    "cliente_1/instance_A.old/image/c.jpg",
    "cliente_1/instance_A0/image/d.jpg",
    "cliente_1/instance_AB/image/e.jpg",
    "cliente_1/instance_A%/image/f.jpg",
    "cliente_10/instance_A/image/g.jpg",
    "cliente_2/instance_Ü/image/h.jpg",
]


@pytest.mark.parametrize(
    ("relpath", "expected"),
    [
        ("cliente_1/instance_A/image/a.jpg", {"a"}),
        ("cliente_1/instance_A", {"a", "b"}),
        ("cliente_1/instance_A/", {"a", "b"}),
        ("cliente_1", {"a", "b", "c", "d", "e", "f"}),
        ("cliente_1/instance_A%", {"f"}),
        ("cliente_2/instance_Ü", {"h"}),
        ("cliente_1/instance_A/image/a", set()),
        ("", set()),
    ],
)
async def test_media_at_finds_a_file_or_everything_under_a_folder_and_nothing_beside(
    tmp_path: Path, relpath: str, expected: set[str]
) -> None:
    store = await SQLiteStore.open(tmp_path / "paths.db")
    try:
        for path in PATHS:
            await store._run(lambda conn, path=path: _insert_done(conn, path, b"x"))
        found = await store.media_at(relpath)
    finally:
        await store.close()

    assert {media.path.rsplit("/", 1)[-1][0] for media in found if media.path} == expected


async def test_media_at_searches_the_path_index_and_never_reads_the_whole_table(
    tmp_path: Path,
) -> None:
    store = await SQLiteStore.open(tmp_path / "plan.db")
    statements: list[str] = []
    try:
        await store._run(lambda conn: _insert_many(conn, 2_000))
        await store._run(lambda conn: conn.set_trace_callback(statements.append))
        await store.media_at("cliente_1/instance_A/image/00043.jpg")
        await store.media_at("cliente_1/instance_A")
        await store._run(lambda conn: conn.set_trace_callback(None))
        plans = [
            await store._run(lambda conn, sql=sql: _plan(conn, sql))
            for sql in statements
            if sql.lstrip().upper().startswith("SELECT")
        ]
    finally:
        await store.close()

    assert len(plans) == 2
    for plan in plans:
        steps = [step for step in plan if " media" in step]
        assert steps, plan
        assert all(step.startswith("SEARCH media USING INDEX media_path") for step in steps), plan


def _insert_done(conn: sqlite3.Connection, relpath: str, data: bytes) -> int:
    cursor = conn.execute(
        """
        INSERT INTO media (instance_id, client, message_id, kind, mimetype, status, path,
            stored_sha256, received_at, updated_at)
        VALUES ('A', '1', ?, 'image', 'image/jpeg', 'done', ?, ?, 0, 0)
        """,
        (relpath, relpath, hashlib.sha256(data).hexdigest()),
    )
    return int(cursor.lastrowid or 0)


def _insert_many(conn: sqlite3.Connection, count: int) -> None:
    for number in range(count):
        _insert_done(conn, f"cliente_{number % 7}/instance_A/image/{number:05d}.jpg", b"x")


def _plan(conn: sqlite3.Connection, sql: str) -> list[str]:
    return [row[3] for row in conn.execute(f"EXPLAIN QUERY PLAN {sql}").fetchall()]


async def _is_set(watcher: FileWatcher) -> bool:
    return watcher.ready.is_set()


async def _not_watching(watched: Watched, relpath: str) -> bool:
    return relpath not in watched.watcher.watched_folders


async def _watching_exactly(watched: Watched, folders: set[str]) -> bool:
    return watched.watcher.watched_folders == folders
