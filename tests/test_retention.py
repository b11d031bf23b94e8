"""Retention: old webhook bodies are emptied; the events, the media rows and the files stay."""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
import time
from pathlib import Path

import aiohttp

from mediamon.core.config import Config
from mediamon.core.sqlite_store import FORGET_BATCH, SQLiteStore
from mediamon.core.store import WebhookDelivery
from mediamon.runtime import Runtime
from tests.conftest import INSTANCE, make_config, media_webhook, post, wait_settled
from tests.fakes.cdn import FakeCdn
from tests.fakes.payloads import text_message, webhook
from tests.fakes.wapi import FakeWapi

DAY = 86_400.0


def age_events(database: Path, days: float, event_ids: list[int]) -> None:
    """Make the events look `days` older, as if received back then."""
    with contextlib.closing(sqlite3.connect(database)) as conn, conn:
        conn.executemany(
            "UPDATE webhook_events SET received_at = received_at - ? WHERE id = ?",
            [(days * DAY, event_id) for event_id in event_ids],
        )


def bodies(database: Path) -> dict[int, str | None]:
    with contextlib.closing(sqlite3.connect(database)) as conn:
        return dict(conn.execute("SELECT id, body FROM webhook_events ORDER BY id").fetchall())


def files_under(folder: Path) -> dict[Path, bytes]:
    return {path: path.read_bytes() for path in folder.rglob("*") if path.is_file()}


async def deliver(runtime: Runtime, http: aiohttp.ClientSession, body: object) -> int:
    status, answer = await post(http, runtime.url, body)
    assert status == 200
    event_id: int = answer["event_id"]
    return event_id


async def test_bodies_past_the_limit_are_emptied_at_start_and_nothing_else_goes(
    config: Config, wapi: FakeWapi, http: aiohttp.ClientSession
) -> None:
    database = config.storage.database
    async with Runtime(config) as runtime:
        image = media_webhook(wapi)
        old_ids = [
            await deliver(runtime, http, image),
            await deliver(runtime, http, webhook(INSTANCE, text_message("a month ago"))),
        ]
        recent_id = await deliver(runtime, http, webhook(INSTANCE, text_message("last week")))
        media = await wait_settled(runtime, image["messageId"])
    files_before = files_under(config.storage.media_dir)
    age_events(database, 31, old_ids)
    age_events(database, 29, [recent_id])

    async with Runtime(config) as runtime:
        await asyncio.wait_for(runtime.retained.wait(), 5)
        events = await runtime.store.list_events()
        row = await runtime.store.get_media(media.id)

    kept = bodies(database)
    assert [kept[event_id] for event_id in old_ids] == [None, None]
    assert "last week" in (kept[recent_id] or "")
    assert sorted(event.id for event in events) == [*old_ids, recent_id]
    assert row == media
    assert files_before and files_under(config.storage.media_dir) == files_before


async def test_zero_days_keeps_every_body(
    tmp_path: Path, wapi: FakeWapi, cdn: FakeCdn, http: aiohttp.ClientSession
) -> None:
    config = make_config(tmp_path, wapi.url, cdn.url, storage={"keep_events_days": 0})
    async with Runtime(config) as runtime:
        event_id = await deliver(runtime, http, webhook(INSTANCE, text_message("kept")))
    age_events(config.storage.database, 3650, [event_id])

    async with Runtime(config) as runtime:
        await asyncio.wait_for(runtime.retained.wait(), 5)
        forgotten = await runtime.forget_old_event_bodies()

    assert forgotten == 0
    assert bodies(config.storage.database)[event_id] is not None


async def test_a_large_backlog_goes_in_batches_and_lets_webhooks_through(
    tmp_path: Path,
) -> None:
    database = tmp_path / "mediamon.db"
    backlog = FORGET_BATCH * 3 + 7
    old = time.time() - 40 * DAY
    await (await SQLiteStore.open(database)).close()  # the schema, then rows straight in
    with contextlib.closing(sqlite3.connect(database)) as conn, conn:
        conn.executemany(
            "INSERT INTO webhook_events (received_at, outcome, body) VALUES (?, 'ignored', ?)",
            [(old + n, f'{{"n": {n}}}') for n in range(backlog)],
        )

    store = await SQLiteStore.open(database)
    try:
        forgetting = asyncio.create_task(store.forget_event_bodies(time.time() - 30 * DAY))
        await asyncio.sleep(0)  # let the first batch reach the database thread
        recorded = await store.record_webhook(WebhookDelivery("{}", time.time(), "rejected"))
        written_during = not forgetting.done()
        forgotten = await forgetting
    finally:
        await store.close()

    kept = bodies(database)
    assert forgotten == backlog
    assert written_during
    assert kept[recorded.event_id] == "{}"
    assert sum(body is None for body in kept.values()) == backlog
