"""One message is one row, one download and one file, however many deliveries race in."""

from __future__ import annotations

import asyncio
from pathlib import Path

import aiohttp

from mediamon.core.models import MediaStatus
from mediamon.core.store import MediaQuery
from mediamon.runtime import Runtime
from tests.conftest import media_webhook, post, wait_settled
from tests.fakes.cdn import FakeCdn
from tests.fakes.wapi import FakeWapi

DELIVERIES = 50


def files_under(folder: Path) -> list[Path]:
    return sorted(path for path in folder.rglob("*") if path.is_file())


async def test_fifty_simultaneous_deliveries_of_one_message(
    runtime: Runtime, wapi: FakeWapi, cdn: FakeCdn, http: aiohttp.ClientSession
) -> None:
    body = media_webhook(wapi)

    answers = await asyncio.gather(*(post(http, runtime.url, body) for _ in range(DELIVERIES)))
    media = await wait_settled(runtime, body["messageId"])

    assert [status for status, _ in answers] == [200] * DELIVERIES
    assert sum(not answer.get("duplicate", False) for _, answer in answers) == 1
    assert len({answer["event_id"] for _, answer in answers}) == DELIVERIES
    rows = await runtime.store.list_media(MediaQuery(message_ids=(body["messageId"],)))
    assert [row.id for row in rows] == [media.id]
    assert media.status is MediaStatus.DONE
    assert media.attempts == 1
    assert len(wapi.requests_to("/message/download-media")) == 1
    assert cdn.requests == []
    media_dir = runtime.config.storage.media_dir
    assert files_under(media_dir) == [media_dir / (media.path or "")]


async def test_racing_deliveries_of_many_messages_each_count_once(
    runtime: Runtime, wapi: FakeWapi, http: aiohttp.ClientSession
) -> None:
    bodies = [media_webhook(wapi, size=3_000 + n) for n in range(10)]

    answers = await asyncio.gather(
        *(post(http, runtime.url, body) for _ in range(DELIVERIES // 10) for body in bodies)
    )
    settled = [await wait_settled(runtime, body["messageId"]) for body in bodies]

    assert {status for status, _ in answers} == {200}
    assert sum(not answer.get("duplicate", False) for _, answer in answers) == len(bodies)
    assert len(await runtime.store.list_media(MediaQuery())) == len(bodies)
    assert {media.status for media in settled} == {MediaStatus.DONE}
    assert len(wapi.requests_to("/message/download-media")) == len(bodies)
    assert len(files_under(runtime.config.storage.media_dir)) == len(bodies)
