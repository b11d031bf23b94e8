"""Shared fixtures: a loopback W-API and CDN, a config pointing at them, a runtime.

Nothing is mocked: the runtime listens on a free loopback port, talks HTTP to the
fakes, writes a real SQLite file and real files under the test's own folder.
"""

from __future__ import annotations

import asyncio
import socket
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from mediamon.core.config import Config, parse_config
from mediamon.core.models import MediaKind, MediaRecord, MediaStatus
from mediamon.core.store import MediaQuery
from mediamon.runtime import Runtime
from tests.fakes.cdn import FakeCdn
from tests.fakes.payloads import media_message, sample_bytes, webhook
from tests.fakes.wapi import FakeWapi

INSTANCE = "3B6XIW-ZTS923-GEAY6V"
TOKEN = "token-3B6XIW-secret-value"
CLIENT = "2"

MIMETYPES = {
    MediaKind.IMAGE: "image/jpeg",
    MediaKind.VIDEO: "video/mp4",
    MediaKind.AUDIO: "audio/ogg; codecs=opus",
    MediaKind.DOCUMENT: "application/pdf",
    MediaKind.STICKER: "image/webp",
}


def make_config(tmp_path: Path, wapi_url: str, cdn_url: str, **sections: Any) -> Config:
    data: dict[str, Any] = {
        "server": {"port": 0},
        "storage": {"media_dir": "media_storage", "database": "mediamon.db"},
        "wapi": {"base_url": wapi_url, "timeout": 2},
        "whatsapp": {"cdn_base_url": cdn_url},
        "downloads": {"backoff_initial": 0.05, "backoff_max": 0.2, "max_attempts": 3},
        "instances": [{"id": INSTANCE, "token": TOKEN, "client": CLIENT}],
    }
    for section, values in sections.items():
        if isinstance(values, dict):
            data.setdefault(section, {}).update(values)
        else:
            data[section] = values
    return parse_config(data, tmp_path)


@pytest.fixture
async def wapi() -> AsyncIterator[FakeWapi]:
    async with FakeWapi({INSTANCE: TOKEN}) as server:
        yield server


@pytest.fixture
async def cdn(wapi: FakeWapi) -> AsyncIterator[FakeCdn]:
    async with FakeCdn(wapi.registry) as server:
        yield server


@pytest.fixture
def config(tmp_path: Path, wapi: FakeWapi, cdn: FakeCdn) -> Config:
    return make_config(tmp_path, wapi.url, cdn.url)


@pytest.fixture
async def runtime(config: Config) -> AsyncIterator[Runtime]:
    async with Runtime(config) as running:
        yield running


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


async def post(
    session: aiohttp.ClientSession, url: str, body: Any, **kwargs: Any
) -> tuple[int, dict[str, Any]]:
    """POST a JSON body (or raw bytes) and return the status and the decoded answer."""
    if isinstance(body, bytes | str):
        kwargs.setdefault("data", body)
    else:
        kwargs.setdefault("json", body)
    async with session.post(url, **kwargs) as response:
        return response.status, await response.json(content_type=None)


def media_webhook(
    wapi: FakeWapi,
    kind: MediaKind = MediaKind.IMAGE,
    size: int = 20_000,
    *,
    wrappers: tuple[str, ...] = (),
    **hook: Any,
) -> dict[str, Any]:
    block = wapi.add_media(sample_bytes(kind, size, seed=size), kind, MIMETYPES[kind])
    return webhook(INSTANCE, media_message(kind, block, wrappers=wrappers), **hook)


async def wait_for(
    check: Callable[[], Awaitable[Any]], timeout: float = 10.0, interval: float = 0.02
) -> Any:
    """Poll `check` until it returns something truthy, or fail after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        result = await check()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout} s (last: {result!r})")
        await asyncio.sleep(interval)


async def wait_settled(runtime: Runtime, message_id: str, timeout: float = 10.0) -> MediaRecord:
    """Wait until the media leaves the active statuses; return its row."""

    async def settled() -> MediaRecord | None:
        rows = await runtime.store.list_media(MediaQuery(message_ids=(message_id,)))
        if rows and rows[0].status in (MediaStatus.DONE, MediaStatus.FAILED):
            return rows[0]
        return None

    result: MediaRecord = await wait_for(settled, timeout)
    return result


def write_config(folder: Path, wapi_url: str, cdn_url: str, port: int, extra: str = "") -> Path:
    path = folder / "mediamon.toml"
    path.write_text(
        f"""
[server]
port = {port}

[wapi]
base_url = "{wapi_url}"
timeout = 2

[whatsapp]
cdn_base_url = "{cdn_url}"

[downloads]
backoff_initial = 0.05
backoff_max = 0.2

[[instances]]
id = "{INSTANCE}"
token = "{TOKEN}"
client = "{CLIENT}"
{extra}
""",
        encoding="utf-8",
    )
    return path


async def mediamon(*args: str, cwd: Path | None = None) -> tuple[int, str, str]:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "mediamon",
        *args,
        cwd=cwd,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await process.communicate()
    return process.returncode or 0, out.decode(), err.decode()


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port
