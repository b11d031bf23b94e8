"""The loopback fakes behave like W-API and the CDN where the rest of the suite relies on it."""

from __future__ import annotations

import asyncio
import base64
import hashlib
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest

from mediamon.core.crypto import ALL_INFOS, INFO_BY_KIND, MacMismatch, MediaDecryptor
from mediamon.core.models import MediaKind
from tests.fakes.cdn import FakeCdn
from tests.fakes.payloads import (
    lowercase_keys,
    media_message,
    sample_bytes,
    text_message,
    webhook,
)
from tests.fakes.wapi import DOWNLOAD_FAILED_BODY, FakeWapi

INSTANCE = "3B6XIW-ZTS923-GEAY6V"
TOKEN = "secret-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


@pytest.fixture
async def wapi() -> AsyncIterator[FakeWapi]:
    async with FakeWapi({INSTANCE: TOKEN}) as server:
        yield server


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=5)) as session:
        yield session


def _request_body(block: dict[str, Any], media_type: str) -> dict[str, Any]:
    return {
        "mediaKey": block["mediaKey"],
        "directPath": block["directPath"],
        "type": media_type,
        "mimetype": block["mimetype"],
    }


async def _download_media(
    http: aiohttp.ClientSession, wapi: FakeWapi, body: dict[str, Any], headers: dict[str, str]
) -> tuple[int, Any]:
    url = f"{wapi.url}/message/download-media"
    async with http.post(url, params={"instanceId": INSTANCE}, json=body, headers=headers) as r:
        return r.status, await r.json()


async def test_download_media_links_to_the_plain_file(
    wapi: FakeWapi, http: aiohttp.ClientSession
) -> None:
    plain = sample_bytes(MediaKind.IMAGE, 5000)
    block = wapi.add_media(plain, MediaKind.IMAGE, "image/jpeg")

    status, answer = await _download_media(http, wapi, _request_body(block, "image"), AUTH)
    async with http.get(answer["fileLink"]) as response:
        served = await response.read()

    assert (status, answer["error"]) == (200, False)
    assert answer["fileLink"].startswith(f"{wapi.url}/media/file/")
    assert response.headers["Content-Type"] == "image/jpeg"
    assert response.headers["Content-Length"] == block["fileLength"] == "5000"
    assert base64.b64encode(hashlib.sha256(served).digest()).decode() == block["fileSha256"]
    assert wapi.requests[0].json["mediaKey"] == block["mediaKey"]


@pytest.mark.parametrize(
    "headers", [{}, {"Authorization": "Bearer wrong"}, {"Authorization": TOKEN}]
)
async def test_token_is_checked(
    wapi: FakeWapi, http: aiohttp.ClientSession, headers: dict[str, str]
) -> None:
    block = wapi.add_media(b"x", MediaKind.IMAGE, "image/jpeg")

    status, answer = await _download_media(http, wapi, _request_body(block, "image"), headers)

    assert (status, answer["error"]) == (401, True)


async def test_missing_field_is_a_bad_request(wapi: FakeWapi, http: aiohttp.ClientSession) -> None:
    block = wapi.add_media(b"x", MediaKind.IMAGE, "image/jpeg")
    body = _request_body(block, "image")
    del body["directPath"]

    status, answer = await _download_media(http, wapi, body, AUTH)

    assert (status, answer["error"]) == (400, True)
    assert "directPath" in answer["message"]


async def test_injected_failures_then_success(wapi: FakeWapi, http: aiohttp.ClientSession) -> None:
    block = wapi.add_media(b"x", MediaKind.IMAGE, "image/jpeg")
    body = _request_body(block, "image")
    wapi.fail("500", media_key=block["mediaKey"])
    wapi.fail("429", retry_after=3)

    first = await _download_media(http, wapi, body, AUTH)
    url = f"{wapi.url}/message/download-media"
    async with http.post(url, params={"instanceId": INSTANCE}, json=body, headers=AUTH) as r:
        second = (r.status, r.headers.get("Retry-After"))
    third = await _download_media(http, wapi, body, AUTH)

    assert first == (500, DOWNLOAD_FAILED_BODY)
    assert second == (429, "3")
    assert third[0] == 200 and third[1]["error"] is False


async def test_always_and_unknown_media(wapi: FakeWapi, http: aiohttp.ClientSession) -> None:
    block = wapi.add_media(b"x", MediaKind.IMAGE, "image/jpeg")
    wapi.always("200-error")

    status, answer = await _download_media(http, wapi, _request_body(block, "image"), AUTH)
    wapi.always(None)
    unknown = _request_body(block, "image") | {"mediaKey": base64.b64encode(bytes(32)).decode()}
    _, not_found = await _download_media(http, wapi, unknown, AUTH)

    assert (status, answer["error"]) == (200, True)
    assert not_found == {"error": True, "message": "media not found"}


async def test_audio_sent_as_document_fails_as_document(
    wapi: FakeWapi, http: aiohttp.ClientSession
) -> None:
    plain = sample_bytes(MediaKind.AUDIO, 300)
    block = wapi.add_media(plain, MediaKind.DOCUMENT, "audio/ogg", encrypt_as=MediaKind.AUDIO)

    as_document = await _download_media(http, wapi, _request_body(block, "document"), AUTH)
    as_audio = await _download_media(http, wapi, _request_body(block, "audio"), AUTH)

    assert as_document == (500, DOWNLOAD_FAILED_BODY)
    assert as_audio[1]["error"] is False


async def test_held_file_links_overlap(wapi: FakeWapi, http: aiohttp.ClientSession) -> None:
    blocks = [wapi.add_media(bytes([n]) * 10, MediaKind.IMAGE, "image/jpeg") for n in range(3)]
    links = [
        (await _download_media(http, wapi, _request_body(block, "image"), AUTH))[1]["fileLink"]
        for block in blocks
    ]
    wapi.hold_files = asyncio.Event()

    async def fetch(link: str) -> bytes:
        async with http.get(link) as response:
            return await response.read()

    fetches = asyncio.gather(*(fetch(link) for link in links))
    async with asyncio.timeout(5):
        while wapi.files_in_flight < 3:
            await asyncio.sleep(0.01)
    wapi.hold_files.set()

    assert await fetches == [bytes([n]) * 10 for n in range(3)]
    assert wapi.max_concurrent_files == 3


async def test_slow_file_link_outlasts_a_short_timeout(
    wapi: FakeWapi, http: aiohttp.ClientSession
) -> None:
    block = wapi.add_media(b"y" * 100, MediaKind.IMAGE, "image/jpeg")
    wapi.fail("slow")
    _, answer = await _download_media(http, wapi, _request_body(block, "image"), AUTH)

    with pytest.raises(asyncio.TimeoutError):
        async with http.get(
            answer["fileLink"], timeout=aiohttp.ClientTimeout(sock_read=0.1)
        ) as response:
            await response.read()


@pytest.mark.parametrize("split", [1, 7, 65536])
async def test_cdn_blob_decrypts(wapi: FakeWapi, http: aiohttp.ClientSession, split: int) -> None:
    plain = sample_bytes(MediaKind.VIDEO, 40_000)
    block = wapi.add_media(plain, MediaKind.VIDEO, "video/mp4")
    decryptor = MediaDecryptor(
        base64.b64decode(block["mediaKey"]),
        INFO_BY_KIND[MediaKind.VIDEO],
        enc_sha256=base64.b64decode(block["fileEncSha256"]),
        plain_sha256=base64.b64decode(block["fileSha256"]),
        plain_length=int(block["fileLength"]),
    )

    async with FakeCdn(wapi.registry) as cdn:
        headers = {"Origin": "https://web.whatsapp.com"}
        async with http.get(cdn.url_for(block), headers=headers) as response:
            out = bytearray()
            async for chunk in response.content.iter_chunked(split):
                out += decryptor.feed(chunk)
        out += decryptor.finish()

    assert bytes(out) == plain
    assert cdn.requests[0].origin == "https://web.whatsapp.com"


async def test_cdn_failures(wapi: FakeWapi, http: aiohttp.ClientSession) -> None:
    block = wapi.add_media(b"z" * 50, MediaKind.AUDIO, "audio/ogg; codecs=opus")

    async with FakeCdn(wapi.registry) as cdn:
        cdn.fail("410", direct_path=block["directPath"])
        cdn.fail("bad-mac")
        async with http.get(cdn.url_for(block)) as gone:
            pass
        async with http.get(cdn.url_for(block)) as bad:
            blob = await bad.read()
        async with http.get(f"{cdn.url}{block['directPath'].split('?')[0]}") as unsigned:
            pass

    decryptor = MediaDecryptor(
        base64.b64decode(block["mediaKey"]), INFO_BY_KIND[MediaKind.AUDIO], probe_infos=ALL_INFOS
    )
    decryptor.feed(blob)
    with pytest.raises(MacMismatch):
        decryptor.finish()
    assert (gone.status, bad.status, unsigned.status) == (410, 200, 403)


def test_payload_shapes() -> None:
    block = {"mediaKey": "a2V5", "directPath": "/v/x.enc"}
    content = media_message(
        MediaKind.STICKER, block, wrappers=["ephemeralMessage", "viewOnceMessageV2"]
    )
    body = webhook(INSTANCE, content, message_id="ABC", moment=1748896286)

    inner = body["msgContent"]["ephemeralMessage"]["message"]["viewOnceMessageV2"]["message"]
    assert inner == {"stickerMessage": block}
    assert body["sender"]["id"] == body["chat"]["id"] == "5569911111111"
    assert (body["messageId"], body["moment"], body["fromMe"]) == ("ABC", 1748896286, False)
    assert len(webhook(INSTANCE, text_message("oi"))["messageId"]) == 32

    lowered = lowercase_keys(body)
    assert lowered["instanceid"] == INSTANCE and "msgcontent" in lowered
    assert "instanceId" not in lowered and "messageId" in lowered


@pytest.mark.parametrize(
    ("kind", "magic"),
    [
        (MediaKind.IMAGE, b"\xff\xd8\xff"),
        (MediaKind.VIDEO, b"ftyp"),
        (MediaKind.AUDIO, b"OggS"),
        (MediaKind.DOCUMENT, b"%PDF-"),
        (MediaKind.STICKER, b"RIFF"),
    ],
)
def test_sample_bytes_look_like_their_kind(kind: MediaKind, magic: bytes) -> None:
    data = sample_bytes(kind, 1000)

    assert len(data) == 1000 and magic in data[:12]
    assert data == sample_bytes(kind, 1000) != sample_bytes(kind, 1000, seed=1)
    if kind is MediaKind.STICKER:
        assert data[8:12] == b"WEBP"
