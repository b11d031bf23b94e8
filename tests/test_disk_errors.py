"""A full disk and a folder that refuses writes: that media waits and says why, the rest goes on.

The tests run as root, for whom a chmod'ed folder is still writable, so the failures
are made by the kernel itself instead, inside a mount namespace private to the `serve`
under test (`unshare --mount`), so nothing outlives the process or shows outside it:

- one client's folder is a 64 KiB tmpfs, and a 200 kB file cannot fit: the write
  fails with ENOSPC, "No space left on device", at the same byte every run;
- another client's folder is a tmpfs marked immutable (`chattr +i`), where even root
  gets EPERM, "Operation not permitted", for any file or folder made in it;
- a third client's folder is on the ordinary disk and must keep working throughout.

The test process sees the namespace's mounts through /proc/<pid>/root.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Final

import aiohttp

from mediamon.core.files import PART_SUFFIX
from mediamon.core.models import MediaKind
from tests.conftest import free_port, mediamon, post, wait_for
from tests.fakes.cdn import FakeCdn
from tests.fakes.payloads import media_message, sample_bytes, webhook
from tests.fakes.wapi import FakeWapi
from tests.serving import attempt_rows, media_rows, serving, write_serve_config

FULL: Final = ("FULL-INSTANCE-000001", "2")
LOCKED: Final = ("LOCKED-INSTANCE-0001", "3")
FINE: Final = ("FINE-INSTANCE-000001", "4")
TINY_FS: Final = 64 * 1024
TOO_BIG: Final = 200_000

# Mount both folders, lock one, then become serve: the same pid, inside the namespace.
_PREPARE: Final = (
    'mount -t tmpfs -o size="$1" mediamon-full "$2" && '
    'mount -t tmpfs -o size=1m mediamon-locked "$3" && chattr +i "$3" && '
    'shift 3 && exec "$@"'
)


async def test_disk_full_and_refused_writes_fail_that_media_alone_with_the_reason(
    tmp_path: Path, wapi: FakeWapi, cdn: FakeCdn, http: aiohttp.ClientSession
) -> None:
    tokens = {FULL[0]: "token-full", LOCKED[0]: "token-locked", FINE[0]: "token-fine"}
    wapi.tokens.update(tokens)
    port = free_port()
    config = write_serve_config(
        tmp_path,
        wapi_url=wapi.url,
        cdn_url=cdn.url,
        port=port,
        instances=[
            (instance, tokens[instance], client) for instance, client in (FULL, LOCKED, FINE)
        ],
        downloads={"max_attempts": 2, "backoff_initial": 0.5, "backoff_max": 1.0},
    )
    media_dir = tmp_path / "media_storage"
    full_dir, locked_dir = media_dir / f"cliente_{FULL[1]}", media_dir / f"cliente_{LOCKED[1]}"
    full_dir.mkdir(parents=True)
    locked_dir.mkdir()
    prefix = ["unshare", "--mount", "--propagation", "private", "--", "sh", "-c", _PREPARE, "sh"]
    prefix += [f"{TINY_FS // 1024}k", str(full_dir), str(locked_dir)]

    too_big = _media_body(wapi, FULL[0], TOO_BIG)
    refused = _media_body(wapi, LOCKED[0], 1_000)
    fine = _media_body(wapi, FINE[0], 30_000)
    async with serving(config, port, http, prefix=prefix) as serve:
        inside = Path(f"/proc/{serve.process.pid}/root")
        tiny, immutable = (inside / folder.relative_to("/") for folder in (full_dir, locked_dir))
        size = os.statvfs(tiny)
        assert size.f_blocks * size.f_frsize == TINY_FS < TOO_BIG

        for body in (too_big, refused, fine):
            status, _ = await post(http, serve.webhook_url, body)
            assert status == 200
        retrying = await wait_for(lambda: _row(tmp_path, too_big, "retrying"), timeout=15)
        failed = await wait_for(lambda: _row(tmp_path, too_big, "failed"), timeout=15)
        locked = await wait_for(lambda: _row(tmp_path, refused, "failed"), timeout=15)
        stored = await wait_for(lambda: _row(tmp_path, fine, "done"), timeout=15)

        # Still serving: the next webhook is answered and its media stored.
        later = _media_body(wapi, FINE[0], 20_000)
        status, _ = await post(http, serve.webhook_url, later)
        assert status == 200
        assert await wait_for(lambda: _row(tmp_path, later, "done"), timeout=15)
        left_on_tiny_fs = [path.name for path in tiny.rglob("*")]
        made_in_immutable = list(immutable.iterdir())
        free_on_tiny_fs = os.statvfs(tiny)
        code, out, _ = await mediamon(
            "list", "--json", "--status", "failed", "--config", str(config)
        )
        assert await serve.stop() == 0

    assert "No space left on device" in retrying["last_error"]
    assert failed["attempts"] == 2
    assert failed["last_error"].startswith("gave up after 2 attempts: cannot write ")
    assert failed["last_error"].endswith(": No space left on device")
    history = attempt_rows(tmp_path / "mediamon.db", failed["id"])
    assert [attempt["outcome"] for attempt in history] == ["failed", "failed"]
    # Nothing half-written is left to hold the space.
    assert not [name for name in left_on_tiny_fs if name.endswith(PART_SUFFIX)]
    assert free_on_tiny_fs.f_bfree == free_on_tiny_fs.f_blocks

    assert locked["last_error"].endswith(": Operation not permitted")
    assert made_in_immutable == []

    assert (media_dir / stored["path"]).read_bytes() == _plain(wapi, fine)
    assert stored["path"].startswith(f"cliente_{FINE[1]}/instance_{FINE[0]}/image/")

    listed = {row["message_id"]: row["error"] for row in json.loads(out)}
    assert (code, listed) == (
        0,
        {too_big["messageId"]: failed["last_error"], refused["messageId"]: locked["last_error"]},
    )
    assert "Traceback" not in serve.log()


def _media_body(wapi: FakeWapi, instance: str, size: int) -> dict[str, Any]:
    block = wapi.add_media(
        sample_bytes(MediaKind.IMAGE, size, seed=size), MediaKind.IMAGE, "image/jpeg"
    )
    return webhook(instance, media_message(MediaKind.IMAGE, block))


def _plain(wapi: FakeWapi, body: dict[str, Any]) -> bytes:
    key = body["msgContent"]["imageMessage"]["mediaKey"]
    media = wapi.registry.by_media_key(key)
    assert media is not None
    return media.plain


async def _row(folder: Path, body: dict[str, Any], status: str) -> dict[str, Any] | None:
    for row in media_rows(folder / "mediamon.db"):
        if row["message_id"] == body["messageId"] and row["status"] == status:
            return row
    return None
