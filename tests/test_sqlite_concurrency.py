"""One SQLite file, many hands: a busy `serve` and every command beside it, nothing locked out.

`serve` writes each webhook and each download outcome; `list`, `scan`, `reprocess` and
`events` each open the same file from their own process while it does. WAL lets the
readers read beside the writer and the busy timeout queues the writers; this test
holds them to it under a steady stream of webhooks, and checks that every delivery
was answered 2xx and kept, once per message.
"""

from __future__ import annotations

import asyncio
import json
import random
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Final

import aiohttp

from mediamon.core.models import MediaKind
from mediamon.core.sqlite_store import SQLiteStore
from mediamon.core.store import RecordedWebhook, WebhookDelivery
from tests.conftest import INSTANCE, free_port, media_webhook, mediamon, wait_for
from tests.fakes.cdn import FakeCdn
from tests.fakes.payloads import text_message, webhook
from tests.fakes.wapi import FakeWapi
from tests.serving import count, media_rows, serving, write_serve_config

RATE: Final = 200
"""Webhooks a second."""
SECONDS: Final = 5
COMMANDS: Final = (
    ("list", "--json"),
    ("scan",),
    ("reprocess", "--failed"),
    ("events", "--json"),
)
LOCKED: Final = "database is locked"


async def test_commands_beside_a_busy_serve_never_find_the_database_locked(
    tmp_path: Path, wapi: FakeWapi, cdn: FakeCdn, http: aiohttp.ClientSession
) -> None:
    port = free_port()
    config = write_serve_config(
        tmp_path, wapi_url=wapi.url, cdn_url=cdn.url, port=port, downloads={"max_attempts": 2}
    )
    bodies = _stream(wapi, RATE * SECONDS)
    media_ids = {body["messageId"] for body in bodies if "imageMessage" in body["msgContent"]}
    unusable = {body["messageId"] for body in bodies if _without_key(body)}

    async with serving(config, port, http) as serve:
        sending = asyncio.Event()
        sending.set()
        commands = asyncio.create_task(_commands_while(sending, config))
        statuses = await _send_at_rate(http, serve.webhook_url, bodies)
        sending.clear()
        runs = await commands
        rows = await wait_for(lambda: _settled(tmp_path), timeout=30)
        events = count(tmp_path / "mediamon.db", "webhook_events")
        code = await serve.stop()

    refused = [(index, status) for index, status in enumerate(statuses) if not 200 <= status < 300]
    assert refused == []
    failures = [run for run in runs if run[1] != 0 or LOCKED in run[2]]
    assert failures == []
    assert {name for name, _, _ in runs} == {command[0] for command in COMMANDS}
    assert len(runs) >= 2 * len(COMMANDS)

    assert events == len(bodies)
    assert len(rows) == len(media_ids)
    assert {row["message_id"] for row in rows} == media_ids
    done = {row["message_id"] for row in rows if row["status"] == "done"}
    assert done == media_ids - unusable
    log = serve.log()
    assert code == 0
    assert LOCKED not in log
    assert "Traceback" not in log


async def test_a_delivery_the_database_refuses_fails_alone_not_those_sharing_its_commit(
    tmp_path: Path,
) -> None:
    good = [
        WebhookDelivery(f'{{"n": {n}}}', time.time(), "rejected", "no instanceId")
        for n in range(20)
    ]
    # A lone surrogate: valid in a Python str, refused by SQLite's UTF-8.
    bad = WebhookDelivery("{}", time.time(), "rejected", "\ud800")
    store = await SQLiteStore.open(tmp_path / "mediamon.db")
    try:
        # Gathered, they reach the store together and share one commit.
        results = await asyncio.gather(
            *(store.record_webhook(delivery) for delivery in [*good[:10], bad, *good[10:]]),
            return_exceptions=True,
        )
        events = await store.list_events()
    finally:
        await store.close()

    assert [type(result) for result in results] == (
        [RecordedWebhook] * 10 + [UnicodeEncodeError] + [RecordedWebhook] * 10
    )
    assert sorted(event.body or "" for event in events) == sorted(d.body for d in good)


def _stream(wapi: FakeWapi, total: int) -> list[dict[str, Any]]:
    """Webhooks as a busy number sends them: mostly media, some text, some delivered twice,
    and a few media without a key, which fail at once and give `reprocess` work."""
    rng = random.Random(7)
    bodies: list[dict[str, Any]] = []
    while len(bodies) < total:
        roll = rng.random()
        if roll < 0.10 and bodies:
            bodies.append(rng.choice(bodies))
        elif roll < 0.15:
            bodies.append(webhook(INSTANCE, text_message("bom dia")))
        elif roll < 0.20:
            body = media_webhook(wapi, MediaKind.IMAGE, size=500)
            del body["msgContent"]["imageMessage"]["mediaKey"]
            bodies.append(body)
        else:
            bodies.append(media_webhook(wapi, MediaKind.IMAGE, size=rng.randrange(200, 3_000)))
    return bodies


def _without_key(body: dict[str, Any]) -> bool:
    block = body["msgContent"].get("imageMessage")
    return block is not None and "mediaKey" not in block


async def _send_at_rate(
    http: aiohttp.ClientSession, url: str, bodies: Sequence[dict[str, Any]]
) -> list[int]:
    loop = asyncio.get_running_loop()
    encoded = [json.dumps(body).encode() for body in bodies]
    started = loop.time()
    posts = []
    for index, data in enumerate(encoded):
        delay = started + index / RATE - loop.time()
        if delay > 0:
            await asyncio.sleep(delay)
        posts.append(asyncio.create_task(_status(http, url, data)))
    return await asyncio.gather(*posts)


async def _status(http: aiohttp.ClientSession, url: str, data: bytes) -> int:
    headers = {"Content-Type": "application/json"}
    try:
        async with http.post(url, data=data, headers=headers) as response:
            await response.read()
            return response.status
    except aiohttp.ClientError:
        return -1


async def _commands_while(running: asyncio.Event, config: Path) -> list[tuple[str, int, str]]:
    """Each command over and over, all four at once, until `running` clears."""
    runs: list[tuple[str, int, str]] = []
    while running.is_set():
        results = await asyncio.gather(
            *(mediamon(*command, "--config", str(config)) for command in COMMANDS)
        )
        for command, (code, out, err) in zip(COMMANDS, results, strict=True):
            runs.append((command[0], code, out + err))
    return runs


async def _settled(folder: Path) -> list[dict[str, Any]] | None:
    rows = media_rows(folder / "mediamon.db")
    busy = [row for row in rows if row["status"] in ("queued", "downloading", "retrying")]
    return None if busy else rows
