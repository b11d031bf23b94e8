"""Missing files: noticed live, found by the scan, verified, and put back by reprocess."""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import aiohttp
import pytest

from mediamon.core.config import Config, load_config
from mediamon.core.files import PART_SUFFIX, LocalFileStore
from mediamon.core.models import Attempt, MediaKind, MediaRecord, MediaStatus
from mediamon.core.scan import CHANGED, NOT_FOUND, reconcile
from mediamon.core.sqlite_store import SQLiteStore
from mediamon.core.watcher import GONE
from mediamon.runtime import Runtime
from tests.conftest import (
    media_webhook,
    mediamon,
    post,
    wait_for,
    wait_settled,
    write_config,
)
from tests.fakes.cdn import FakeCdn
from tests.fakes.wapi import FakeWapi


async def stored(runtime: Runtime, wapi: FakeWapi, http: aiohttp.ClientSession) -> MediaRecord:
    """One media, downloaded and done."""
    body = media_webhook(wapi, MediaKind.IMAGE, size=12_345)
    await post(http, runtime.url, body)
    media = await wait_settled(runtime, body["messageId"])
    assert media.status is MediaStatus.DONE
    await wait_for(_ready(runtime))
    return media


async def status_of(runtime: Runtime, media: MediaRecord) -> MediaRecord | None:
    return await runtime.store.get_media(media.id)


def file_of(config: Config, media: MediaRecord) -> Path:
    return config.storage.media_dir / (media.path or "")


async def test_a_file_deleted_while_serving_is_missing_within_two_seconds(
    runtime: Runtime, wapi: FakeWapi, http: aiohttp.ClientSession
) -> None:
    media = await stored(runtime, wapi, http)
    events = runtime.bus.subscribe()

    deleted_at = time.monotonic()
    file_of(runtime.config, media).unlink()
    missing = await wait_for(lambda: _in_status(runtime, media, MediaStatus.MISSING), timeout=2)
    noticed_after = time.monotonic() - deleted_at

    assert noticed_after < 2
    assert missing.last_error == GONE
    assert missing.missing_since is not None
    assert any(type(event).__name__ == "FileWentMissing" for event in events.drain())


async def test_a_file_put_back_with_its_bytes_is_done_again_and_wrong_bytes_are_not(
    runtime: Runtime, wapi: FakeWapi, http: aiohttp.ClientSession
) -> None:
    media = await stored(runtime, wapi, http)
    path = file_of(runtime.config, media)
    original = path.read_bytes()
    path.unlink()
    await wait_for(lambda: _in_status(runtime, media, MediaStatus.MISSING))

    path.write_bytes(b"not the same bytes")
    await wait_for(lambda: _in_status(runtime, media, MediaStatus.MISSING))
    path.unlink()
    path.write_bytes(original)
    restored = await wait_for(lambda: _in_status(runtime, media, MediaStatus.DONE))

    assert restored.last_error is None
    assert restored.missing_since is None


async def test_a_folder_moved_away_makes_all_its_media_missing(
    runtime: Runtime, wapi: FakeWapi, http: aiohttp.ClientSession, tmp_path: Path
) -> None:
    media = await stored(runtime, wapi, http)
    folder = file_of(runtime.config, media).parent.parent

    shutil.move(folder, tmp_path / "elsewhere")

    await wait_for(lambda: _in_status(runtime, media, MediaStatus.MISSING), timeout=3)


async def test_a_file_deleted_while_stopped_is_found_by_the_scan_at_start(
    config: Config, wapi: FakeWapi, http: aiohttp.ClientSession
) -> None:
    async with Runtime(config) as runtime:
        media = await stored(runtime, wapi, http)
    file_of(config, media).unlink()

    async with Runtime(config) as runtime:
        await runtime.scanned.wait()
        row = await status_of(runtime, media)

    assert row is not None
    assert (row.status, row.last_error) == (MediaStatus.MISSING, NOT_FOUND)


async def test_scan_reports_missing_and_reprocess_restores_identical_bytes_while_serving(
    tmp_path: Path, wapi: FakeWapi, cdn: FakeCdn, http: aiohttp.ClientSession
) -> None:
    config_path = write_config(tmp_path, wapi.url, cdn.url, 0)
    config = load_config(config_path)
    async with Runtime(config) as runtime:
        media = await stored(runtime, wapi, http)
        original = file_of(config, media).read_bytes()
        await runtime.watcher.stop()  # so that the scan, not the watcher, finds it
        file_of(config, media).unlink()

        code, out, _ = await mediamon("scan", "--config", str(config_path))
        assert code == 0
        assert "1 missing" in out
        assert media.path in out

        code, out, _ = await mediamon("reprocess", "--missing", "--config", str(config_path))
        assert (code, out.splitlines()[0]) == (0, "queued 1 media again:")
        started = time.monotonic()
        done = await wait_for(lambda: _in_status(runtime, media, MediaStatus.DONE), timeout=5)
        taken_up_after = time.monotonic() - started

    assert taken_up_after < 3
    assert file_of(config, done).read_bytes() == original
    history = await _attempts(config, media)
    assert len(history) >= 2  # the first download and the restore, both kept


async def test_verify_catches_a_modified_file(
    config: Config, wapi: FakeWapi, http: aiohttp.ClientSession
) -> None:
    async with Runtime(config) as runtime:
        media = await stored(runtime, wapi, http)
        await runtime.watcher.stop()
        path = file_of(config, media)
        path.write_bytes(path.read_bytes()[:-1] + b"!")

        plain = await runtime.scan()
        verified = await runtime.scan(verify=True)
        row = await status_of(runtime, media)

    assert plain.changed == []
    assert verified.changed == [media.path]
    assert row is not None
    assert (row.status, row.last_error) == (MediaStatus.MISSING, CHANGED)


async def test_orphans_are_reported_and_left_alone_and_stale_temp_files_removed(
    config: Config, wapi: FakeWapi, http: aiohttp.ClientSession
) -> None:
    root = config.storage.media_dir
    orphan = root / "cliente_9" / "stray.jpg"
    orphan.parent.mkdir(parents=True)
    orphan.write_bytes(b"mine")
    stale = root / "cliente_9" / f".x.jpg.1234{PART_SUFFIX}"
    stale.write_bytes(b"half")
    os.utime(stale, (time.time() - 3600, time.time() - 3600))
    fresh = root / "cliente_9" / f".y.jpg.5678{PART_SUFFIX}"
    fresh.write_bytes(b"in flight")

    store = await SQLiteStore.open(config.storage.database)
    try:
        report = await reconcile(store, LocalFileStore(root))
    finally:
        await store.close()

    assert report.orphans == ["cliente_9/stray.jpg"]
    assert orphan.read_bytes() == b"mine"
    assert report.temp_removed == [f"cliente_9/.x.jpg.1234{PART_SUFFIX}"]
    assert not stale.exists()
    assert fresh.exists()


async def test_the_scan_handles_thousands_of_rows_in_one_pass(tmp_path: Path) -> None:
    root = tmp_path / "media"
    database = tmp_path / "scale.db"
    paths = [f"cliente_1/instance_A/image/{n:06d}.jpg" for n in range(3000)]
    for path in paths:
        (root / path).parent.mkdir(parents=True, exist_ok=True)
        (root / path).write_bytes(b"x")
    store = await SQLiteStore.open(database)
    try:
        await store._run(lambda conn: _insert_done_rows(conn, paths))
        for path in paths[::100]:
            (root / path).unlink()

        report = await reconcile(store, LocalFileStore(root))
        counts = await store.count_by_status()
    finally:
        await store.close()

    assert report.checked == 3000
    assert len(report.missing) == 30
    assert counts[MediaStatus.MISSING] == 30
    assert report.orphans == []


async def test_reprocess_failed_gives_a_fresh_budget_and_keeps_the_history(
    tmp_path: Path, wapi: FakeWapi, cdn: FakeCdn, http: aiohttp.ClientSession
) -> None:
    config_path = write_config(tmp_path, wapi.url, cdn.url, 0, extra="")
    config = load_config(config_path)
    wapi.always("401")
    cdn.always("500")
    async with Runtime(config) as runtime:
        body = media_webhook(wapi)
        await post(http, runtime.url, body)
        failed = await wait_settled(runtime, body["messageId"])
        assert failed.status is MediaStatus.FAILED
        wapi.always(None)
        cdn.always(None)

        code, out, _ = await mediamon(
            "reprocess", body["messageId"][:10], "--config", str(config_path)
        )
        assert code == 0, out
        done = await wait_for(lambda: _in_status(runtime, failed, MediaStatus.DONE), timeout=5)

    assert done.attempts == 1
    history = await _attempts(config, failed)
    assert [attempt.outcome for attempt in history][-1] == "done"
    assert any(attempt.outcome == "failed" for attempt in history)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ((), "say what to reprocess"),
        (("NOPE",), "no media with message id NOPE"),
    ],
)
async def test_reprocess_explains_what_it_cannot_do(
    tmp_path: Path, wapi: FakeWapi, cdn: FakeCdn, args: tuple[str, ...], message: str
) -> None:
    config_path = write_config(tmp_path, wapi.url, cdn.url, 0)
    (tmp_path / "mediamon.db").touch()

    code, _, err = await mediamon("reprocess", *args, "--config", str(config_path))

    assert code == 1
    assert message in err


async def test_scan_json_lists_the_counts(tmp_path: Path, wapi: FakeWapi, cdn: FakeCdn) -> None:
    config_path = write_config(tmp_path, wapi.url, cdn.url, 0)

    code, out, _ = await mediamon("scan", "--json", "--config", str(config_path))

    assert code == 0
    assert json.loads(out)["checked"] == 0


def _ready(runtime: Runtime) -> Callable[[], Awaitable[bool]]:
    async def ready() -> bool:
        return runtime.watcher.ready.is_set()

    return ready


async def _in_status(
    runtime: Runtime, media: MediaRecord, status: MediaStatus
) -> MediaRecord | None:
    row = await runtime.store.get_media(media.id)
    return row if row is not None and row.status is status else None


async def _attempts(config: Config, media: MediaRecord) -> list[Attempt]:
    store = await SQLiteStore.open(config.storage.database)
    try:
        return await store.attempts(media.id)
    finally:
        await store.close()


def _insert_done_rows(conn: sqlite3.Connection, paths: list[str]) -> None:
    conn.executemany(
        """
        INSERT INTO media (instance_id, client, message_id, kind, mimetype, status, path,
            stored_sha256, received_at, updated_at)
        VALUES ('A', '1', ?, 'image', 'image/jpeg', 'done', ?, ?, 0, 0)
        """,
        [(f"M{n}", path, "0" * 64) for n, path in enumerate(paths)],
    )


async def test_the_scan_follows_a_client_folder_moved_to_another_disk_by_a_symlink(
    tmp_path: Path,
) -> None:
    root = tmp_path / "media"
    elsewhere = tmp_path / "other-disk" / "cliente_1"
    path = "cliente_1/instance_A/image/M1.jpg"
    (elsewhere / "instance_A" / "image").mkdir(parents=True)
    (elsewhere / "instance_A" / "image" / "M1.jpg").write_bytes(b"x")
    root.mkdir()
    (root / "cliente_1").symlink_to(elsewhere)
    (elsewhere / "loop").symlink_to(elsewhere)  # a link loop must not hang the walk

    store = await SQLiteStore.open(tmp_path / "links.db")
    try:
        await store._run(lambda conn: _insert_done_rows(conn, [path]))
        report = await reconcile(store, LocalFileStore(root))
    finally:
        await store.close()

    assert (report.checked, report.missing) == (1, [])
