"""Webhooks that share one commit are recorded exactly as if they had come one by one.

The store writes a group of deliveries with one multi-row INSERT per table and builds
the new media records from what it wrote; these tests hold that shortcut to what the
database holds afterwards.
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
import time
from pathlib import Path

from mediamon.core.models import MediaInfo, MediaKind, MediaStatus, WebhookEvent
from mediamon.core.sqlite_store import SQLiteStore
from mediamon.core.store import RecordedWebhook, WebhookDelivery
from tests.conftest import CLIENT, INSTANCE


def _delivery(
    message_id: str,
    *,
    kind: MediaKind = MediaKind.IMAGE,
    problem: str | None = None,
    with_media: bool = True,
    outcome: str = "accepted",
) -> WebhookDelivery:
    media = MediaInfo(
        kind,
        "image/jpeg",
        None if problem else "a2V5" * 11,
        None if problem else f"/v/t62/{message_id}.enc",
        "ab" * 32,
        "cd" * 32,
        1234,
        file_name="nota.pdf" if kind is MediaKind.DOCUMENT else None,
        caption="olá",
        problem=problem,
    )
    event = WebhookEvent(
        "webhookReceived",
        INSTANCE,
        message_id,
        False,
        False,
        1_700_000_000,
        "5569911111111",
        "5569922222222",
        "Maria",
        media if with_media else None,
    )
    body = json.dumps({"instanceId": INSTANCE, "messageId": message_id})
    status = None
    if with_media and outcome == "accepted":
        status = MediaStatus.FAILED if problem else MediaStatus.QUEUED
    return WebhookDelivery(body, time.time(), outcome, problem, event, CLIENT, status)


async def test_a_group_records_each_delivery_as_a_lone_commit_would(tmp_path: Path) -> None:
    store = await SQLiteStore.open(tmp_path / "mediamon.db")
    try:
        earlier = await store.record_webhook(_delivery("OLD"))
        group = [
            _delivery("A"),
            _delivery("B", kind=MediaKind.DOCUMENT),
            _delivery("A"),
            _delivery("TEXT", with_media=False),
            _delivery("OLD"),
            _delivery("BROKEN", problem="the message has no mediaKey"),
            WebhookDelivery("not json", time.time(), "rejected", "the body is not valid JSON"),
            _delivery("C"),
        ]
        # Gathered, they reach the store together and share one commit.
        results = await asyncio.gather(*(store.record_webhook(item) for item in group))
        events = {event.id: event for event in await store.list_events()}
        stored = {
            result.media.id: await store.get_media(result.media.id)
            for result in results
            if result.media is not None
        }
    finally:
        await store.close()

    ids = [result.event_id for result in results]
    assert ids == list(range(earlier.event_id + 1, earlier.event_id + 1 + len(group)))
    for result, delivery in zip(results, group, strict=True):
        assert events[result.event_id].body == delivery.body
        assert events[result.event_id].outcome == delivery.outcome

    a, b, a_again, text, old_again, broken, rejected, c = results
    assert [r.created for r in (a, b, a_again, old_again, broken, c)] == [
        True, True, False, False, True, True,
    ]  # fmt: skip
    assert text == RecordedWebhook(text.event_id) and rejected == RecordedWebhook(rejected.event_id)
    assert a.media is not None and a_again.media is not None and a_again.media.id == a.media.id
    assert old_again.media == earlier.media
    assert broken.media is not None and broken.media.status is MediaStatus.FAILED
    assert broken.media.last_error == "the message has no mediaKey"

    # The records built from the deliveries are the rows, field for field.
    for result in (a, b, broken, c):
        assert result.media is not None
        assert stored[result.media.id] == result.media
        assert result.media.event_id == result.event_id


async def test_groups_larger_than_one_statement_keep_their_order(tmp_path: Path) -> None:
    store = await SQLiteStore.open(tmp_path / "mediamon.db")
    try:
        group = [_delivery(f"M{number:04d}") for number in range(300)]
        results = await asyncio.gather(*(store.record_webhook(item) for item in group))
        media = [await store.get_media(r.media.id) for r in results if r.media is not None]
    finally:
        await store.close()

    assert [m.message_id for m in media if m is not None] == [f"M{n:04d}" for n in range(300)]
    assert all(r.created for r in results)
    assert [r.event_id for r in results] == sorted(r.event_id for r in results)


async def test_a_table_out_of_ascending_ids_still_pairs_each_event_with_its_webhook(
    tmp_path: Path,
) -> None:
    path = tmp_path / "mediamon.db"
    store = await SQLiteStore.open(path)
    await store.close()
    # Once rowid 2**63 - 1 is taken SQLite hands out random free ids, so the order of
    # the ids no longer follows the order of the rows.
    with sqlite3.connect(path) as db:
        db.execute(
            "INSERT INTO webhook_events (id, received_at, outcome) VALUES (?, 0, 'rejected')",
            (2**63 - 1,),
        )

    store = await SQLiteStore.open(path)
    try:
        group = [_delivery(f"M{number}") for number in range(8)]
        results = await asyncio.gather(*(store.record_webhook(item) for item in group))
        events = {event.id: event for event in await store.list_events()}
    finally:
        await store.close()

    for result, delivery in zip(results, group, strict=True):
        assert events[result.event_id].body == delivery.body
        assert result.media is not None and result.media.event_id == result.event_id
