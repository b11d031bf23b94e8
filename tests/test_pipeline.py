"""Webhook in, verified file on disk: the core pipeline end to end over loopback HTTP."""

from __future__ import annotations

import asyncio
import hashlib
import sqlite3
from pathlib import Path

import aiohttp
import pytest

from mediamon.core.config import Config
from mediamon.core.models import MediaKind, MediaStatus
from mediamon.core.store import MediaQuery
from mediamon.runtime import Runtime
from tests.conftest import (
    CLIENT,
    INSTANCE,
    make_config,
    media_webhook,
    post,
    wait_for,
    wait_settled,
)
from tests.fakes.cdn import FakeCdn
from tests.fakes.payloads import WRAPPERS, lowercase_keys, media_message, sample_bytes, webhook
from tests.fakes.wapi import FakeWapi

EXTENSIONS = {
    MediaKind.IMAGE: ".jpg",
    MediaKind.VIDEO: ".mp4",
    MediaKind.AUDIO: ".ogg",
    MediaKind.DOCUMENT: ".pdf",
    MediaKind.STICKER: ".webp",
}


@pytest.fixture
def wapi_only(tmp_path: Path, wapi: FakeWapi, cdn: FakeCdn) -> Config:
    """A config that fetches through W-API alone, as the core pipeline does."""
    return make_config(tmp_path, wapi.url, cdn.url, downloads={"sources": ["wapi"]})


@pytest.mark.parametrize("kind", list(MediaKind))
async def test_every_kind_is_stored_verified_under_the_layout(
    runtime: Runtime, wapi: FakeWapi, http: aiohttp.ClientSession, kind: MediaKind
) -> None:
    body = media_webhook(wapi, kind, size=30_000)

    status, answer = await post(http, runtime.url, body)
    media = await wait_settled(runtime, body["messageId"])

    assert (status, answer["media"]) == (200, 1)
    assert media.status is MediaStatus.DONE
    assert media.source == "wapi"
    path = runtime.config.storage.media_dir / (media.path or "")
    expected = wapi.registry.by_media_key(body_media_key(body))
    assert expected is not None
    assert path.read_bytes() == expected.plain
    assert media.stored_sha256 == hashlib.sha256(expected.plain).hexdigest()
    assert path.parent == (
        runtime.config.storage.media_dir / f"cliente_{CLIENT}" / f"instance_{INSTANCE}" / kind
    )
    assert path.name.startswith(body["messageId"])
    assert path.suffix == EXTENSIONS[kind]


@pytest.mark.parametrize("wrappers", [(wrapper,) for wrapper in WRAPPERS] + [tuple(WRAPPERS)])
async def test_media_inside_any_wrapper_is_found(
    runtime: Runtime, wapi: FakeWapi, http: aiohttp.ClientSession, wrappers: tuple[str, ...]
) -> None:
    body = media_webhook(wapi, MediaKind.AUDIO, wrappers=wrappers)

    await post(http, runtime.url, body)
    media = await wait_settled(runtime, body["messageId"])

    assert media.status is MediaStatus.DONE


async def test_lowercase_keys_are_accepted(
    runtime: Runtime, wapi: FakeWapi, http: aiohttp.ClientSession
) -> None:
    body = lowercase_keys(media_webhook(wapi))

    status, answer = await post(http, runtime.url, body)
    media = await wait_settled(runtime, body["messageId"])

    assert (status, answer["media"], media.status) == (200, 1, MediaStatus.DONE)


async def test_a_document_keeps_its_file_name_after_the_message_id(
    runtime: Runtime, wapi: FakeWapi, http: aiohttp.ClientSession
) -> None:
    plain = sample_bytes(MediaKind.DOCUMENT, 5000)
    block = wapi.add_media(
        plain, MediaKind.DOCUMENT, "application/pdf", fileName="Relatório de março.pdf"
    )
    body = webhook(INSTANCE, media_message(MediaKind.DOCUMENT, block))

    await post(http, runtime.url, body)
    media = await wait_settled(runtime, body["messageId"])

    assert media.path is not None
    assert Path(media.path).name == f"{body['messageId']}_Relatório_de_março.pdf"


async def test_the_answer_comes_before_the_download(
    runtime: Runtime, wapi: FakeWapi, http: aiohttp.ClientSession
) -> None:
    wapi.hold_files = asyncio.Event()
    body = media_webhook(wapi)

    status, answer = await post(http, runtime.url, body)
    row = (await runtime.store.list_media(MediaQuery(message_ids=(body["messageId"],))))[0]

    assert (status, answer["media"]) == (200, 1)
    assert row.status in (MediaStatus.QUEUED, MediaStatus.DOWNLOADING)
    wapi.hold_files.set()
    assert (await wait_settled(runtime, body["messageId"])).status is MediaStatus.DONE


async def test_downloads_overlap(
    runtime: Runtime, wapi: FakeWapi, http: aiohttp.ClientSession
) -> None:
    wapi.hold_files = asyncio.Event()
    bodies = [media_webhook(wapi, size=1000 + n) for n in range(6)]

    for body in bodies:
        await post(http, runtime.url, body)
    await wait_for(lambda: _at_least(wapi.files_in_flight, 6))
    wapi.hold_files.set()

    for body in bodies:
        assert (await wait_settled(runtime, body["messageId"])).status is MediaStatus.DONE
    assert wapi.max_concurrent_files == 6


async def test_concurrency_bounds_downloads_in_flight(
    tmp_path: Path, wapi: FakeWapi, cdn: FakeCdn, http: aiohttp.ClientSession
) -> None:
    config = make_config(tmp_path, wapi.url, cdn.url, downloads={"concurrency": 2})
    wapi.hold_files = asyncio.Event()
    async with Runtime(config) as runtime:
        bodies = [media_webhook(wapi, size=1000 + n) for n in range(5)]
        for body in bodies:
            await post(http, runtime.url, body)
        await wait_for(lambda: _at_least(wapi.files_in_flight, 2))
        await asyncio.sleep(0.2)
        assert wapi.files_in_flight == 2
        wapi.hold_files.set()
        for body in bodies:
            assert (await wait_settled(runtime, body["messageId"])).status is MediaStatus.DONE
    assert wapi.max_concurrent_files == 2


async def test_a_repeated_delivery_is_one_row_one_download_one_file(
    runtime: Runtime, wapi: FakeWapi, http: aiohttp.ClientSession
) -> None:
    body = media_webhook(wapi)

    answers = [await post(http, runtime.url, body) for _ in range(3)]
    media = await wait_settled(runtime, body["messageId"])
    answers.append(await post(http, runtime.url, body))

    assert [answer.get("duplicate", False) for _, answer in answers] == [False, True, True, True]
    rows = await runtime.store.list_media(MediaQuery(message_ids=(body["messageId"],)))
    assert len(rows) == 1
    assert len(wapi.requests_to("/message/download-media")) == 1
    folder = (runtime.config.storage.media_dir / (media.path or "")).parent
    assert [p.name for p in folder.iterdir()] == [Path(media.path or "").name]


@pytest.mark.parametrize("mode", ["500", "200-error", "wrong-bytes", "short", "slow"])
async def test_a_failing_wapi_is_retried_until_it_delivers(
    wapi_only: Config, wapi: FakeWapi, http: aiohttp.ClientSession, mode: str
) -> None:
    body = media_webhook(wapi)
    # Two quick tries per attempt for link failures; one per attempt for file failures.
    wapi.fail(mode, times=2)

    async with Runtime(wapi_only) as runtime:
        await post(http, runtime.url, body)
        media = await wait_settled(runtime, body["messageId"], timeout=20)
        history = await runtime.store.attempts(media.id)

    assert media.status is MediaStatus.DONE
    assert history[-1].outcome == "done"
    assert any(attempt.outcome == "failed" for attempt in history)
    final = wapi_only.storage.media_dir / (media.path or "")
    assert hashlib.sha256(final.read_bytes()).hexdigest() == media.expected_sha256


async def test_rate_limiting_honours_retry_after(
    wapi_only: Config, wapi: FakeWapi, http: aiohttp.ClientSession
) -> None:
    body = media_webhook(wapi)
    wapi.fail("429", times=1, retry_after=1)

    async with Runtime(wapi_only) as runtime:
        await post(http, runtime.url, body)
        retrying = await wait_for(lambda: _row_in(runtime, body, MediaStatus.RETRYING))
        media = await wait_settled(runtime, body["messageId"])

    assert retrying.next_attempt_at - retrying.updated_at >= 0.19  # backoff_max caps it
    assert "429" in (retrying.last_error or "")
    assert media.status is MediaStatus.DONE


async def test_after_max_attempts_the_media_is_failed_with_the_reason(
    wapi_only: Config, wapi: FakeWapi, http: aiohttp.ClientSession
) -> None:
    body = media_webhook(wapi)
    wapi.always("500")

    async with Runtime(wapi_only) as runtime:
        await post(http, runtime.url, body)
        media = await wait_settled(runtime, body["messageId"])

    assert media.status is MediaStatus.FAILED
    assert media.attempts == 3
    assert media.last_error == (
        "gave up after 3 attempts: W-API 500: Falha ao fazer o download do conteúdo."
    )
    assert not any(wapi_only.storage.media_dir.rglob("*.jpg"))


async def test_a_refused_token_fails_at_once(
    wapi_only: Config, wapi: FakeWapi, http: aiohttp.ClientSession
) -> None:
    body = media_webhook(wapi)
    wapi.always("401")

    async with Runtime(wapi_only) as runtime:
        await post(http, runtime.url, body)
        media = await wait_settled(runtime, body["messageId"])

    assert media.status is MediaStatus.FAILED
    assert media.attempts == 1
    assert "token" in (media.last_error or "")
    assert "token-3B6XIW" not in (media.last_error or "")


async def test_stopping_puts_in_flight_downloads_back_and_a_restart_finishes_them(
    config: Config, wapi: FakeWapi, http: aiohttp.ClientSession
) -> None:
    wapi.hold_files = asyncio.Event()
    bodies = [media_webhook(wapi, size=2000 + n) for n in range(3)]

    async with Runtime(config) as runtime:
        for body in bodies:
            await post(http, runtime.url, body)
        await wait_for(lambda: _at_least(wapi.files_in_flight, 3))
    wapi.hold_files.set()

    async with Runtime(config) as runtime:
        rows = await runtime.store.list_media(MediaQuery())
        assert all(row.attempts <= 1 for row in rows)
        for body in bodies:
            media = await wait_settled(runtime, body["messageId"])
            assert (media.status, media.attempts) == (MediaStatus.DONE, 1)
    assert not list(config.storage.media_dir.rglob("*.mediamon-part"))


async def test_queued_work_survives_a_restart(
    config: Config, wapi: FakeWapi, http: aiohttp.ClientSession
) -> None:
    wapi.always("500")
    body = media_webhook(wapi)
    slow = make_config(
        config.storage.media_dir.parent,
        config.wapi.base_url,
        config.whatsapp.cdn_base_url,
        downloads={"backoff_initial": 30.0, "backoff_max": 60.0, "sources": ["wapi"]},
    )

    async with Runtime(slow) as runtime:
        await post(http, runtime.url, body)
        await wait_for(lambda: _row_in(runtime, body, MediaStatus.RETRYING))
    wapi.always(None)

    async with Runtime(config) as runtime:
        row = await _row_in(runtime, body, MediaStatus.RETRYING)
        assert row is not None
        await runtime.store._run(lambda conn: conn.execute("UPDATE media SET next_attempt_at = 0"))
        runtime.manager.wake()
        assert (await wait_settled(runtime, body["messageId"])).status is MediaStatus.DONE


async def test_a_download_left_running_by_a_crash_is_queued_at_start(
    config: Config, wapi: FakeWapi, http: aiohttp.ClientSession
) -> None:
    body = media_webhook(wapi)
    wapi.hold_files = asyncio.Event()
    async with Runtime(config) as runtime:
        await post(http, runtime.url, body)
        await wait_for(lambda: _at_least(wapi.files_in_flight, 1))
    # What a SIGKILL would have left behind: the row still says downloading.
    await _set_status(config, "downloading")
    wapi.hold_files.set()

    async with Runtime(config) as runtime:
        media = await wait_settled(runtime, body["messageId"])
    assert media.status is MediaStatus.DONE


async def test_healthz_says_ok_once_running(runtime: Runtime, http: aiohttp.ClientSession) -> None:
    async with http.get(runtime.url.replace("/webhook", "/healthz")) as response:
        assert (response.status, await response.json()) == (200, {"ok": True})


async def _at_least(value: int, minimum: int) -> bool:
    return value >= minimum


async def _row_in(runtime: Runtime, body: dict[str, object], status: MediaStatus) -> object:
    rows = await runtime.store.list_media(MediaQuery(message_ids=(str(body["messageId"]),)))
    return rows[0] if rows and rows[0].status is status else None


async def _set_status(config: Config, status: str) -> None:
    with sqlite3.connect(config.storage.database) as conn:
        conn.execute("UPDATE media SET status = ?", (status,))


def body_media_key(body: dict[str, object]) -> str:
    content = body["msgContent"]
    assert isinstance(content, dict)
    block = next(iter(content.values()))
    return str(block["mediaKey"])


async def test_retry_after_is_honoured_even_when_a_later_source_fails_too(
    tmp_path: Path, wapi: FakeWapi, cdn: FakeCdn, http: aiohttp.ClientSession
) -> None:
    config = make_config(
        tmp_path, wapi.url, cdn.url, downloads={"backoff_initial": 0.05, "backoff_max": 5.0}
    )
    body = media_webhook(wapi)
    wapi.fail("429", times=1, retry_after=2)
    cdn.fail("500", times=1)

    async with Runtime(config) as runtime:
        await post(http, runtime.url, body)
        retrying = await wait_for(lambda: _row_in(runtime, body, MediaStatus.RETRYING))

    assert retrying.next_attempt_at - retrying.updated_at >= 1.9


async def test_a_stored_webhook_can_be_replayed_in_process(
    runtime: Runtime, wapi: FakeWapi, http: aiohttp.ClientSession
) -> None:
    body = media_webhook(wapi)
    _, answer = await post(http, runtime.url, body)
    await wait_settled(runtime, body["messageId"])

    again = await runtime.replay(answer["event_id"])

    assert (again.outcome, again.media, again.duplicate) == ("accepted", 1, True)
    events = await runtime.store.list_events()
    assert len(events) == 2
