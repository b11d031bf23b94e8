"""The webhook endpoint under bad input: a clear 4xx every time, the process unharmed."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest

from mediamon.core.config import Config
from mediamon.core.models import MediaKind, MediaStatus
from mediamon.core.store import MediaQuery
from mediamon.runtime import Runtime
from tests.conftest import INSTANCE, make_config, media_webhook, post, wait_settled
from tests.fakes.cdn import FakeCdn
from tests.fakes.payloads import media_message, text_message, webhook
from tests.fakes.wapi import FakeWapi

SECRET = "s3cret-webhook-value"


@pytest.fixture
def guarded(tmp_path: Path, wapi: FakeWapi, cdn: FakeCdn) -> Config:
    return make_config(tmp_path, wapi.url, cdn.url, server={"secret": SECRET, "max_body": 4096})


@pytest.mark.parametrize(
    ("body", "error"),
    [
        (b"{not json", "not valid JSON"),
        (b"", "not valid JSON"),
        (b"\xff\xfe\x00", "not valid JSON"),
        (b"[1, 2]", "must be a JSON object, not an array"),
        (b'"text"', "must be a JSON object, not a string"),
        (b"null", "must be a JSON object, not null"),
        (b'{"event": "webhookReceived"}', "no instanceId"),
        (b'{"instanceId": 12}', "instanceId must be a string"),
        (b"[" * 100_000 + b"]" * 100_000, "nested too deeply"),
    ],
)
async def test_a_body_that_is_not_a_delivery_is_a_400_that_says_why(
    runtime: Runtime, http: aiohttp.ClientSession, body: bytes, error: str
) -> None:
    status, answer = await post(http, runtime.url, body)

    assert status == 400
    assert error in answer["error"]
    events = await runtime.store.list_events()
    assert events[0].outcome == "rejected"


async def test_an_event_without_media_is_recorded_and_answered_200(
    runtime: Runtime, http: aiohttp.ClientSession
) -> None:
    status, answer = await post(http, runtime.url, webhook(INSTANCE, text_message("olá")))

    assert (status, answer["media"]) == (200, 0)
    events = await runtime.store.list_events()
    assert (events[0].event, events[0].outcome) == ("webhookReceived", "ignored")
    assert json.loads(events[0].body or "")["msgContent"] == {"conversation": "olá"}


async def test_an_unknown_instance_is_refused_and_nothing_is_fetched(
    runtime: Runtime, wapi: FakeWapi, http: aiohttp.ClientSession
) -> None:
    body = media_webhook(wapi)
    body["instanceId"] = "NOT-OURS"

    status, answer = await post(http, runtime.url, body)

    assert status == 403
    assert "NOT-OURS" in answer["error"]
    assert await runtime.store.list_media(MediaQuery()) == []
    assert wapi.requests == []


async def test_media_without_key_or_path_is_recorded_as_failed_with_the_reason(
    runtime: Runtime, wapi: FakeWapi, http: aiohttp.ClientSession
) -> None:
    block = wapi.add_media(b"x" * 100, MediaKind.IMAGE, "image/jpeg")
    del block["mediaKey"], block["directPath"]
    body = webhook(INSTANCE, media_message(MediaKind.IMAGE, block))

    status, answer = await post(http, runtime.url, body)
    media = await wait_settled(runtime, body["messageId"])

    assert (status, answer["media"]) == (200, 1)
    assert media.status is MediaStatus.FAILED
    assert media.last_error == "the payload has no mediaKey; the payload has no directPath"
    assert wapi.requests == []


async def test_media_sent_by_the_phone_is_skipped_when_download_from_me_is_off(
    tmp_path: Path, wapi: FakeWapi, cdn: FakeCdn, http: aiohttp.ClientSession
) -> None:
    config = make_config(tmp_path, wapi.url, cdn.url, downloads={"download_from_me": False})
    body = media_webhook(wapi, event="webhookDelivery", from_me=True)

    async with Runtime(config) as runtime:
        status, answer = await post(http, runtime.url, body)
        events = await runtime.store.list_events()

    assert (status, answer["media"]) == (200, 0)
    assert events[0].outcome == "ignored"
    assert "download_from_me" in (events[0].reason or "")


async def test_media_sent_by_the_phone_is_kept_by_default(
    runtime: Runtime, wapi: FakeWapi, http: aiohttp.ClientSession
) -> None:
    body = media_webhook(wapi, event="webhookDelivery", from_me=True)

    await post(http, runtime.url, body)
    media = await wait_settled(runtime, body["messageId"])

    assert (media.status, media.from_me) == (MediaStatus.DONE, True)


@pytest.mark.parametrize(
    ("query", "headers", "expected"),
    [
        ("", {}, 401),
        ("?secret=wrong", {}, 401),
        ("", {"X-Mediamon-Secret": "wrong"}, 401),
        (f"?secret={SECRET}", {}, 200),
        ("", {"X-Mediamon-Secret": SECRET}, 200),
    ],
)
async def test_the_secret_guards_the_webhook(
    guarded: Config,
    wapi: FakeWapi,
    http: aiohttp.ClientSession,
    query: str,
    headers: dict[str, str],
    expected: int,
) -> None:
    async with Runtime(guarded) as runtime:
        status, answer = await post(
            http, runtime.url + query, webhook(INSTANCE, text_message("hi")), headers=headers
        )

    assert status == expected
    assert SECRET not in str(answer)


async def test_a_body_over_the_limit_is_refused_from_its_length(
    guarded: Config, http: aiohttp.ClientSession
) -> None:
    async with Runtime(guarded) as runtime:
        status, answer = await post(
            http, f"{runtime.url}?secret={SECRET}", b"{" + b" " * 10_000 + b"}"
        )

    assert status == 413
    assert "limit is 4096" in answer["error"]


async def test_a_chunked_body_over_the_limit_is_refused_while_it_streams(
    guarded: Config, http: aiohttp.ClientSession
) -> None:
    sent = 0

    async def endless() -> AsyncIterator[bytes]:
        nonlocal sent
        for _ in range(10_000):
            sent += 1024
            yield b" " * 1024

    async with Runtime(guarded) as runtime:
        try:
            status, _ = await post(http, f"{runtime.url}?secret={SECRET}", None, data=endless())
        except aiohttp.ClientError:
            status = 413  # the server may close the connection once it has answered
        assert status == 413
        assert sent < 10_000 * 1024

        again, _ = await post(
            http, f"{runtime.url}?secret={SECRET}", webhook(INSTANCE, text_message("ok"))
        )
        assert again == 200


async def test_the_server_keeps_serving_after_bad_input(
    runtime: Runtime, wapi: FakeWapi, http: aiohttp.ClientSession
) -> None:
    for bad in (b"{", b"[]", b'{"instanceId": []}', b'{"instanceId": "x", "msgContent": 5}'):
        await post(http, runtime.url, bad)
    body = media_webhook(wapi)

    status, _ = await post(http, runtime.url, body)

    assert status == 200
    assert (await wait_settled(runtime, body["messageId"])).status is MediaStatus.DONE
