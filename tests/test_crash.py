"""`serve` killed or stopped mid-download: no half file under a final name, no lost work.

A SIGKILL gives the process no chance to tidy up, so what it leaves is whatever was on
disk and in SQLite at that instant; the next start must make good on it. SIGTERM and
SIGINT are the polite stops, and must put the work in flight back without spending an
attempt on it.
"""

from __future__ import annotations

import asyncio
import hashlib
import signal
import time
from pathlib import Path

import aiohttp
import pytest

from mediamon.core.files import PART_SUFFIX
from mediamon.core.models import MediaKind
from tests.conftest import free_port, media_webhook, post, wait_for
from tests.fakes.cdn import FakeCdn
from tests.fakes.wapi import FakeWapi
from tests.serving import media_rows, serving, write_serve_config

SIZE = 4_000


async def test_a_kill_mid_download_leaves_only_a_temp_file_and_a_restart_finishes_it(
    tmp_path: Path, wapi: FakeWapi, cdn: FakeCdn, http: aiohttp.ClientSession
) -> None:
    port = free_port()
    config = write_serve_config(
        tmp_path, wapi_url=wapi.url, cdn_url=cdn.url, port=port, downloads={"sources": ["wapi"]}
    )
    body = media_webhook(wapi, MediaKind.IMAGE, size=SIZE)
    plain = next(iter(wapi.registry)).plain
    # The first file link trickles a byte every 10 ms: minutes for the whole file.
    wapi.slow_interval = 0.01
    wapi.fail("slow", times=1)
    media_dir = tmp_path / "media_storage"

    async with serving(config, port, http) as serve:
        status, _ = await post(http, serve.webhook_url, body)
        assert status == 200
        await wait_for(lambda: _part_files_with_bytes(media_dir))
        await serve.kill()

    files = [path for path in media_dir.rglob("*") if path.is_file()]
    assert [path.name.endswith(PART_SUFFIX) for path in files] == [True]
    assert 0 < files[0].stat().st_size < SIZE
    [row] = media_rows(tmp_path / "mediamon.db")
    assert (row["status"], row["attempts"], row["path"]) == ("downloading", 1, None)

    async with serving(config, port, http) as serve:
        done = await wait_for(lambda: _done_and_tidy(tmp_path), timeout=15)
        code = await serve.stop()
    log = serve.log()

    assert code == 0
    final = media_dir / done["path"]
    assert final.read_bytes() == plain
    assert done["stored_sha256"] == hashlib.sha256(plain).hexdigest()
    assert done["attempts"] == 2  # the attempt the crash cut short still counts
    assert [path for path in media_dir.rglob("*") if path.is_file()] == [final]
    assert "1 download(s) interrupted by the last stop queued again" in log
    assert "1 temp files removed" in log


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
async def test_a_stop_signal_puts_downloads_in_flight_back_without_spending_an_attempt(
    tmp_path: Path,
    wapi: FakeWapi,
    cdn: FakeCdn,
    http: aiohttp.ClientSession,
    signum: signal.Signals,
) -> None:
    port = free_port()
    config = write_serve_config(
        tmp_path, wapi_url=wapi.url, cdn_url=cdn.url, port=port, downloads={"sources": ["wapi"]}
    )
    bodies = [media_webhook(wapi, size=1_500 + n) for n in range(3)]
    wapi.hold_files = asyncio.Event()

    try:
        async with serving(config, port, http) as serve:
            for body in bodies:
                status, _ = await post(http, serve.webhook_url, body)
                assert status == 200
            await wait_for(lambda: _at_least(wapi.files_in_flight, 3))
            in_flight = media_rows(tmp_path / "mediamon.db")

            started = time.monotonic()
            code = await serve.stop(signum, timeout=10)
            took = time.monotonic() - started
    finally:
        wapi.hold_files.set()

    assert code == 0
    assert took < 10
    assert [(row["status"], row["attempts"]) for row in in_flight] == [("downloading", 1)] * 3
    after = media_rows(tmp_path / "mediamon.db")
    assert [(row["status"], row["attempts"]) for row in after] == [("queued", 0)] * 3
    assert not list((tmp_path / "media_storage").rglob("*.*"))
    log = serve.log()
    assert "3 download(s) interrupted and queued again" in log
    assert "Traceback" not in log


async def _part_files_with_bytes(media_dir: Path) -> list[Path]:
    found = []
    for path in media_dir.rglob(f"*{PART_SUFFIX}"):
        try:
            if path.stat().st_size > 0:
                found.append(path)
        except FileNotFoundError:
            continue
    return found


async def _done_and_tidy(folder: Path) -> dict[str, object] | None:
    rows = media_rows(folder / "mediamon.db")
    if not rows or rows[0]["status"] != "done":
        return None
    if list((folder / "media_storage").rglob(f"*{PART_SUFFIX}")):
        return None
    return rows[0]


async def _at_least(value: int, minimum: int) -> bool:
    return value >= minimum
