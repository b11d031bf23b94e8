"""The WhatsApp CDN as a source, end to end: webhook in, decrypted and verified file out.

Each test runs a real `Runtime` against the loopback W-API and CDN from `tests.fakes`.
Where a test has to show that some host is never contacted, a third loopback server,
the trap, stands at that address and records whatever reaches it.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import json
import random
import sys
import threading
import time
import tracemalloc
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from mediamon.core.config import Config, WhatsAppConfig
from mediamon.core.files import PART_SUFFIX
from mediamon.core.models import MediaKind, MediaRecord, MediaStatus
from mediamon.core.sources.base import SourceFailure
from mediamon.core.sources.cdn import ORIGIN, CdnSource
from mediamon.core.sources.wapi import QUICK_TRIES
from mediamon.runtime import Runtime
from tests.conftest import INSTANCE, make_config, media_webhook, post, wait_for, wait_settled
from tests.fakes import LoopbackServer
from tests.fakes.cdn import FakeCdn
from tests.fakes.payloads import media_message, webhook
from tests.fakes.registry import StoredMedia
from tests.fakes.wapi import FakeWapi

WAPI_500 = "W-API 500: Falha ao fazer o download do conteúdo."
SIGNED_QUERY = "ccb=11-4&oh=01_x&oe=6865A1B2&_nc_sid=5e03e0"
REAL_DIRECT_PATH = f"/v/t62.7118-24/5f2c9a0b1e7d4c3a8b6f0e21_n.enc?{SIGNED_QUERY}"

# Each of these would, if followed, reach a host other than the CDN or a path outside
# the one the payload names. `{trap}` is filled with the trap's host and port, so that
# a leak shows up as a recorded request rather than as a failed DNS lookup.
FORGED_PATHS = {
    "protocol-relative": "//{trap}/v/x.enc",
    "dot-dot": "/v/../../x.enc",
    "userinfo": "/x@{trap}",
    "scheme": "http://{trap}/v/x.enc",
    "backslash": "/\\{trap}/v/x.enc",
    "header-injection": "/v/x.enc\r\nHost: {trap}",
    "nul": "/v/x\x00.enc",
    "tab": "/v/x\t.enc",
    "c1-control": "/v/x\x85.enc",
    "non-ascii": "/v/\uff0e\uff0e/x.enc",
}


class Trap(LoopbackServer):
    """A host mediamon must never contact: it answers anything and records it."""

    def build_app(self) -> web.Application:
        app = web.Application()
        app.router.add_route("*", "/{path:.*}", self._answer)
        return app

    async def _answer(self, request: web.Request) -> web.Response:
        return web.Response(body=b"not the file", content_type="application/octet-stream")


@pytest.fixture
async def trap() -> AsyncIterator[Trap]:
    async with Trap() as server:
        yield server


# W-API failing in every way leaves the CDN to deliver.


@pytest.mark.parametrize("kind", list(MediaKind))
async def test_with_wapi_down_every_kind_is_stored_from_the_cdn(
    runtime: Runtime, wapi: FakeWapi, cdn: FakeCdn, http: aiohttp.ClientSession, kind: MediaKind
) -> None:
    wapi.always("500")
    body = media_webhook(wapi, kind, size=30_000)
    stored = _registered(wapi, body)

    await post(http, runtime.url, body)
    media = await wait_settled(runtime, body["messageId"])

    assert (media.status, media.source) == (MediaStatus.DONE, "cdn")
    assert _final_path(runtime.config, media).read_bytes() == stored.plain
    assert media.stored_sha256 == media.expected_sha256
    assert media.stored_sha256 == hashlib.sha256(stored.plain).hexdigest()
    assert len(cdn.requests) == 1
    fetch = cdn.requests[0]
    assert (fetch.method, fetch.path, fetch.origin) == ("GET", stored.path, ORIGIN)
    assert fetch.query == stored.query


@pytest.mark.parametrize("mode", ["200-error", "short"])
async def test_a_wapi_answer_without_the_file_hands_over_to_the_cdn(
    runtime: Runtime, wapi: FakeWapi, http: aiohttp.ClientSession, mode: str
) -> None:
    wapi.always(mode)
    body = media_webhook(wapi, MediaKind.AUDIO)

    await post(http, runtime.url, body)
    media = await wait_settled(runtime, body["messageId"])

    assert (media.status, media.source, media.attempts) == (MediaStatus.DONE, "cdn", 1)
    plain = _registered(wapi, body).plain
    assert _final_path(runtime.config, media).read_bytes() == plain


async def test_wrong_bytes_from_a_file_link_never_reach_the_final_name(
    runtime: Runtime, wapi: FakeWapi, cdn: FakeCdn, http: aiohttp.ClientSession
) -> None:
    wapi.always("wrong-bytes")
    cdn.hold_files = asyncio.Event()
    body = media_webhook(wapi, MediaKind.VIDEO, size=40_000)
    media_dir = runtime.config.storage.media_dir

    await post(http, runtime.url, body)
    # The CDN transfer begins only once W-API's bytes were judged and thrown away; hold
    # it there and look at the disk at the one moment the wrong bytes could linger.
    await wait_for(lambda: _at_least(cdn.files_in_flight, 1))
    assert len(wapi.requests_to("/media/file/")) == 1
    on_disk = _files_under(media_dir)
    assert [path.suffix for path in on_disk] == [PART_SUFFIX]
    assert on_disk[0].stat().st_size == 0
    cdn.hold_files.set()
    media = await wait_settled(runtime, body["messageId"])

    assert (media.status, media.source) == (MediaStatus.DONE, "cdn")
    final = _final_path(runtime.config, media)
    assert _files_under(media_dir) == [final]
    assert final.read_bytes() == _registered(wapi, body).plain


# What the CDN itself can say.


@pytest.mark.parametrize("status", ["404", "410"])
async def test_media_expired_on_the_cdn_fails_for_good_and_nobody_is_asked_again(
    runtime: Runtime, wapi: FakeWapi, cdn: FakeCdn, http: aiohttp.ClientSession, status: str
) -> None:
    wapi.always("500")
    cdn.always(status)
    body = media_webhook(wapi)

    await post(http, runtime.url, body)
    media = await wait_settled(runtime, body["messageId"])

    assert media.status is MediaStatus.FAILED
    assert media.last_error == f"expired on WhatsApp servers ({status})"
    assert media.attempts == 1
    calls = (len(wapi.requests), len(cdn.requests))
    assert calls == (QUICK_TRIES, 1)
    # Only time shows that nothing more comes: wait well past the longest backoff.
    await asyncio.sleep(runtime.config.downloads.backoff_max * 3)
    assert (len(wapi.requests), len(cdn.requests)) == calls
    assert await runtime.store.next_due_at() is None
    assert _files_under(runtime.config.storage.media_dir) == []


@pytest.mark.parametrize(
    ("kind", "with_enc_hash", "caught_by"),
    [
        (MediaKind.IMAGE, True, "does not match fileEncSha256"),
        (MediaKind.IMAGE, False, "MAC does not match the media key"),
        (MediaKind.DOCUMENT, False, "MAC does not match the media key"),
    ],
    ids=["image-enc-hash", "image-mac", "document-mac"],
)
async def test_a_bad_mac_on_the_cdn_fails_as_corrupt_and_leaves_no_file(
    runtime: Runtime,
    wapi: FakeWapi,
    cdn: FakeCdn,
    http: aiohttp.ClientSession,
    kind: MediaKind,
    with_enc_hash: bool,
    caught_by: str,
) -> None:
    wapi.always("500")
    cdn.always("bad-mac")
    body = media_webhook(wapi, kind)
    if not with_enc_hash:
        # Without fileEncSha256 the MAC is the first check the tampered byte meets.
        del _block(body)["fileEncSha256"]

    await post(http, runtime.url, body)
    media = await wait_settled(runtime, body["messageId"])
    history = await runtime.store.attempts(media.id)

    assert media.status is MediaStatus.FAILED
    assert "cdn: corrupt file on the CDN: " in (media.last_error or "")
    assert caught_by in (media.last_error or "")
    cdn_tries = [attempt for attempt in history if attempt.source == "cdn"]
    assert len(cdn_tries) == media.attempts
    assert all(attempt.outcome == "failed" for attempt in cdn_tries)
    assert all(
        (attempt.error or "").startswith("corrupt file on the CDN: ") for attempt in cdn_tries
    )
    assert _files_under(runtime.config.storage.media_dir) == []


async def test_audio_sent_as_a_document_is_opened_with_the_audio_keys(
    runtime: Runtime, wapi: FakeWapi, cdn: FakeCdn, http: aiohttp.ClientSession
) -> None:
    wapi.always("500")
    plain = b"OggS\x00\x02" + random.Random(6).randbytes(24_000)
    block = wapi.add_media(
        plain, MediaKind.DOCUMENT, "audio/ogg", encrypt_as=MediaKind.AUDIO, fileName="nota.ogg"
    )
    body = webhook(INSTANCE, media_message(MediaKind.DOCUMENT, block))

    await post(http, runtime.url, body)
    media = await wait_settled(runtime, body["messageId"])

    assert (media.status, media.source, media.kind) == (
        MediaStatus.DONE,
        "cdn",
        MediaKind.DOCUMENT,
    )
    assert _final_path(runtime.config, media).read_bytes() == plain
    # Once with the document keys (whose MAC fails but names the audio keys), once more
    # with the audio keys.
    assert len(cdn.requests) == 2


# Where requests may go.


@pytest.mark.parametrize("cdn_mode", [None, "500"], ids=["cdn-up", "cdn-down"])
async def test_the_host_in_the_payload_url_is_never_contacted(
    runtime: Runtime,
    wapi: FakeWapi,
    cdn: FakeCdn,
    trap: Trap,
    http: aiohttp.ClientSession,
    cdn_mode: str | None,
) -> None:
    wapi.always("500")
    cdn.always(cdn_mode)
    wapi.registry.payload_url_host = trap.url
    body = media_webhook(wapi)
    assert _block(body)["url"].startswith(f"{trap.url}/v/")

    await post(http, runtime.url, body)
    media = await wait_settled(runtime, body["messageId"])

    expected = MediaStatus.DONE if cdn_mode is None else MediaStatus.FAILED
    assert media.status is expected
    assert cdn.requests
    assert trap.requests == []


async def test_a_forged_direct_path_is_refused_and_nothing_leaves_but_the_wapi_call(
    runtime: Runtime,
    wapi: FakeWapi,
    cdn: FakeCdn,
    trap: Trap,
    http: aiohttp.ClientSession,
) -> None:
    wapi.always("500")
    authority = trap.url.removeprefix("http://")
    bodies: dict[str, dict[str, Any]] = {}
    for name, forged in FORGED_PATHS.items():
        bodies[name] = media_webhook(wapi, size=1000 + len(bodies))
        _block(bodies[name])["directPath"] = forged.format(trap=authority)

    for body in bodies.values():
        await post(http, runtime.url, body)
    settled = {
        name: await wait_settled(runtime, body["messageId"]) for name, body in bodies.items()
    }

    # A fake cannot record a request line it refuses to parse, so the history, not the
    # fakes' logs, is what shows that each path was refused before anything was sent.
    for name, media in settled.items():
        assert media.status is MediaStatus.FAILED, name
        history = await runtime.store.attempts(media.id)
        refusals = [attempt.error or "" for attempt in history if attempt.source == "cdn"]
        assert refusals, name
        assert all(error.endswith("; refused") for error in refusals), (name, refusals)
    assert cdn.requests == []
    assert trap.requests == []
    assert {request.path for request in wapi.requests} == {"/message/download-media"}


async def test_url_for_keeps_a_real_direct_path_with_its_signed_query(
    http: aiohttp.ClientSession,
) -> None:
    source = CdnSource(http, WhatsAppConfig(cdn_base_url="https://mmg.whatsapp.net"), 5)

    url = source.url_for(REAL_DIRECT_PATH)

    assert str(url) == f"https://mmg.whatsapp.net{REAL_DIRECT_PATH}"
    assert (url.host, url.raw_path) == ("mmg.whatsapp.net", REAL_DIRECT_PATH.split("?")[0])
    assert url.raw_query_string == SIGNED_QUERY


@pytest.mark.parametrize(
    "forged",
    [
        *(path.format(trap="evil.example") for path in FORGED_PATHS.values()),
        "https://evil.example/x",
        "/x@evil.example",
        "v/t62.7118-24/x.enc",
        "/v/./x.enc",
        "/v/x.enc/..",
        "/v/..?oh=01_x",
        "",
        None,
    ],
)
async def test_url_for_refuses_anything_but_a_plain_absolute_path(
    http: aiohttp.ClientSession, forged: str | None
) -> None:
    source = CdnSource(http, WhatsAppConfig(cdn_base_url="https://mmg.whatsapp.net"), 5)

    with pytest.raises(SourceFailure) as refused:
        source.url_for(forged)

    assert refused.value.reason.endswith("; refused")
    assert not refused.value.transient


# The order of sources.


async def test_with_the_cdn_first_wapi_is_not_asked(
    tmp_path: Path, wapi: FakeWapi, cdn: FakeCdn, http: aiohttp.ClientSession
) -> None:
    config = make_config(tmp_path, wapi.url, cdn.url, downloads={"sources": ["cdn", "wapi"]})
    body = media_webhook(wapi, MediaKind.STICKER)

    async with Runtime(config) as runtime:
        await post(http, runtime.url, body)
        media = await wait_settled(runtime, body["messageId"])

    assert (media.status, media.source) == (MediaStatus.DONE, "cdn")
    assert len(cdn.requests) == 1
    assert wapi.requests == []


async def test_with_wapi_alone_the_cdn_is_never_called(
    tmp_path: Path, wapi: FakeWapi, cdn: FakeCdn, http: aiohttp.ClientSession
) -> None:
    config = make_config(tmp_path, wapi.url, cdn.url, downloads={"sources": ["wapi"]})
    wapi.always("500")
    body = media_webhook(wapi)

    async with Runtime(config) as runtime:
        await post(http, runtime.url, body)
        media = await wait_settled(runtime, body["messageId"])
        history = await runtime.store.attempts(media.id)

    assert media.status is MediaStatus.FAILED
    assert media.attempts == config.downloads.max_attempts
    assert {attempt.source for attempt in history} == {"wapi"}
    assert cdn.requests == []


# Streaming a large file.

# A FakeCdn in a process of its own, serving one large video. In the test's process it
# would hand the whole blob to asyncio in one write, and asyncio would copy what the
# socket cannot take yet: tens of megabytes that are the fake's, not mediamon's, and
# that tracemalloc cannot tell apart. The child prints the media block once it listens,
# and what it saw once its stdin closes.
_BIG_CDN = """
import asyncio, json, random, sys
from mediamon.core.models import MediaKind
from tests.fakes.cdn import FakeCdn
from tests.fakes.registry import MediaRegistry

async def main() -> None:
    size = int(sys.argv[1])
    plain = b"\\x00\\x00\\x00\\x18ftypmp42" + random.Random(size).randbytes(size - 12)
    registry = MediaRegistry()
    block = registry.add(plain, MediaKind.VIDEO, "video/mp4")
    async with FakeCdn(registry) as cdn:
        print(json.dumps({"url": cdn.url, "block": block}), flush=True)
        await asyncio.to_thread(sys.stdin.read)
        origins = [request.origin for request in cdn.requests]
    print(json.dumps({"origins": origins}), flush=True)

asyncio.run(main())
"""


@dataclass(slots=True)
class _ChildCdn:
    url: str
    block: dict[str, Any]
    origins: list[str | None] = field(default_factory=list)
    """The Origin header of each request the child answered; known once it stopped."""


@contextlib.asynccontextmanager
async def _cdn_in_child(size: int) -> AsyncIterator[_ChildCdn]:
    child = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        _BIG_CDN,
        str(size),
        cwd=Path(__file__).parents[1],
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
    )
    assert child.stdin is not None and child.stdout is not None
    try:
        ready = json.loads(await asyncio.wait_for(child.stdout.readline(), 30))
        cdn = _ChildCdn(ready["url"], ready["block"])
        yield cdn
        child.stdin.close()
        seen = json.loads(await asyncio.wait_for(child.stdout.readline(), 10))
        cdn.origins.extend(seen["origins"])
    finally:
        if not child.stdin.is_closing():
            child.stdin.close()
        try:
            await asyncio.wait_for(child.wait(), 10)
        except TimeoutError:
            child.kill()
            await child.wait()


async def test_a_50_mb_video_streams_through_the_cdn_in_little_memory(
    tmp_path: Path, wapi: FakeWapi, http: aiohttp.ClientSession
) -> None:
    size = 50 * 2**20

    async with _cdn_in_child(size) as cdn:
        body = webhook(INSTANCE, media_message(MediaKind.VIDEO, cdn.block))
        config = make_config(tmp_path, wapi.url, cdn.url, downloads={"sources": ["cdn"]})
        async with Runtime(config) as runtime:
            tracemalloc.start()
            try:
                started = time.monotonic()
                await post(http, runtime.url, body)
                media = await wait_settled(runtime, body["messageId"], timeout=30)
                elapsed = time.monotonic() - started
                _, peak = tracemalloc.get_traced_memory()
            finally:
                tracemalloc.stop()

    print(f"50 MB video via the CDN: {elapsed:.2f} s, peak traced {peak / 2**20:.2f} MiB")
    assert (media.status, media.source, media.stored_size) == (MediaStatus.DONE, "cdn", size)
    assert media.stored_sha256 == base64.b64decode(cdn.block["fileSha256"]).hex()
    assert _sha256_of(_final_path(config, media)) == media.stored_sha256
    assert cdn.origins == [ORIGIN]
    assert peak < 16 * 2**20, f"peak traced memory {peak / 2**20:.1f} MiB"


# The decryptor's worker threads.


@pytest.mark.parametrize("outcome", ["stored", "bad-mac", "longer-than-announced"])
async def test_no_hashing_thread_outlives_a_cdn_download(
    runtime: Runtime, wapi: FakeWapi, cdn: FakeCdn, http: aiohttp.ClientSession, outcome: str
) -> None:
    wapi.always("500")
    # Large enough that the decryptor hashes on worker threads from its first chunk.
    body = media_webhook(wapi, MediaKind.VIDEO, size=600_000)
    if outcome == "bad-mac":
        cdn.always("bad-mac")
    elif outcome == "longer-than-announced":
        # The body is cut off halfway, with the decryptor's threads at work.
        _block(body)["fileLength"] = "300000"

    await post(http, runtime.url, body)
    media = await wait_settled(runtime, body["messageId"])

    assert media.status is (MediaStatus.DONE if outcome == "stored" else MediaStatus.FAILED)
    if outcome == "stored":
        # The stored hash is the decryptor's, handed over; it must be the file's own.
        assert _sha256_of(_final_path(runtime.config, media)) == media.stored_sha256
        assert media.stored_sha256 == media.expected_sha256
    elif outcome == "longer-than-announced":
        assert "more than the" in (media.last_error or "")
    hashing = [t.name for t in threading.enumerate() if t.name.startswith("mediamon-hash")]
    assert hashing == []


# The attempt history.


async def test_every_source_failure_is_kept_in_the_attempt_history(
    runtime: Runtime, wapi: FakeWapi, cdn: FakeCdn, http: aiohttp.ClientSession
) -> None:
    wapi.always("500")
    cdn.fail("500", times=1)
    body = media_webhook(wapi, MediaKind.DOCUMENT)

    await post(http, runtime.url, body)
    media = await wait_settled(runtime, body["messageId"])
    history = await runtime.store.attempts(media.id)

    assert (media.status, media.source, media.attempts) == (MediaStatus.DONE, "cdn", 2)
    cdn_500 = "WhatsApp CDN answered 500 Internal Server Error"
    assert [(a.number, a.source, a.outcome, a.http_status, a.error) for a in history] == [
        (1, "wapi", "failed", 500, WAPI_500),
        (1, "cdn", "failed", 500, cdn_500),
        (2, "wapi", "failed", 500, WAPI_500),
        (2, "cdn", "done", None, None),
    ]
    assert history[-1].size == media.expected_size
    assert all(a.started_at <= a.finished_at for a in history)


# Helpers.


def _block(body: dict[str, Any]) -> dict[str, Any]:
    """The media block inside a webhook built by `media_webhook`, to edit or read."""
    block: dict[str, Any] = next(iter(body["msgContent"].values()))
    return block


def _registered(wapi: FakeWapi, body: dict[str, Any]) -> StoredMedia:
    stored = wapi.registry.by_media_key(_block(body)["mediaKey"])
    assert stored is not None
    return stored


def _final_path(config: Config, media: MediaRecord) -> Path:
    assert media.path is not None
    return config.storage.media_dir / media.path


def _files_under(folder: Path) -> list[Path]:
    return sorted(path for path in folder.rglob("*") if path.is_file())


def _sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as file:
        while chunk := file.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


async def _at_least(value: int, minimum: int) -> bool:
    return value >= minimum
