"""The W-API simulator serves what it advertises, over real loopback HTTP.

Every file a webhook names can be fetched both ways mediamon fetches it (W-API's
`download-media` link, and the CDN blob decrypted with the payload's key) and hashes
to the payload's fileSha256; W-API's failures look like the real ones; and the files
themselves are what their mimetypes say.
"""

from __future__ import annotations

import base64
import hashlib
import random
import struct
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Mapping
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from mediamon.core.crypto import INFO_BY_KIND, MediaDecryptor
from mediamon.core.models import MediaKind
from mediamon.core.payload import parse_webhook
from mediamon.simulator import (
    DOWNLOAD_FAILED,
    Failure,
    MediaCatalog,
    SimulatedInstance,
    Simulator,
    WebhookFirer,
    WebhookMaker,
    make_media,
)
from tests.conftest import wait_for

INSTANCE = SimulatedInstance("SIMTST-000001-AAAAAA", "sim-token-1", "5569900000001")
OTHER = SimulatedInstance("SIMTST-000002-BBBBBB", "sim-token-2", "5569900000002")
ORIGIN = {"Origin": "https://web.whatsapp.com"}
MAGIC_BY_MIMETYPE = {
    "image/jpeg": lambda data: data.startswith(b"\xff\xd8\xff"),
    "image/png": lambda data: data.startswith(b"\x89PNG\r\n\x1a\n"),
    "image/webp": lambda data: data[:4] == b"RIFF" and data[8:12] == b"WEBP",
    "audio/ogg; codecs=opus": lambda data: data.startswith(b"OggS"),
    "audio/wav": lambda data: data[:4] == b"RIFF" and data[8:12] == b"WAVE",
    "application/pdf": lambda data: data.startswith(b"%PDF-"),
    "video/mp4": lambda data: data[4:8] == b"ftyp",
}
KINDS = [*MediaKind, "voice note"]


def simulator(**options: Any) -> Simulator:
    options.setdefault("failure_rate", 0.0)
    options.setdefault("expired_rate", 0.0)
    return Simulator([INSTANCE, OTHER], seed=7, **options)


@pytest.fixture
async def sim() -> AsyncIterator[Simulator]:
    async with simulator() as running:
        yield running


def media_webhook(sim: Simulator, kind: MediaKind | str, **options: Any) -> dict[str, Any]:
    maker = WebhookMaker(sim, random.Random(str(kind)))
    ptt = kind == "voice note"
    media_kind = MediaKind.AUDIO if ptt else MediaKind(kind)
    return maker.media_message(media_kind, instance=INSTANCE, ptt=ptt, **options)


def media_block(body: Mapping[str, Any]) -> dict[str, Any]:
    """The `...Message` object inside msgContent, through any wrapper."""
    content = body["msgContent"]
    while True:
        value = next(iter(content.values()))
        if set(value) == {"message"}:  # a wrapper: ephemeralMessage, viewOnceMessageV2...
            content = value["message"]
            continue
        return dict(value)


async def download_media(
    http: aiohttp.ClientSession,
    sim: Simulator,
    block: Mapping[str, Any],
    *,
    token: str = INSTANCE.token,
    instance_id: str = INSTANCE.id,
    **overrides: Any,
) -> tuple[int, dict[str, Any], aiohttp.ClientResponse]:
    body = {
        "mediaKey": block["mediaKey"],
        "directPath": block["directPath"],
        "type": "image",
        "mimetype": block["mimetype"],
        **overrides,
    }
    async with http.post(
        f"{sim.url}/message/download-media",
        params={"instanceId": instance_id},
        json={key: value for key, value in body.items() if value is not None},
        headers={"Authorization": f"Bearer {token}"},
    ) as response:
        return response.status, await response.json(), response


def b64(text: str) -> bytes:
    return base64.b64decode(text, validate=True)


@pytest.mark.parametrize("kind", KINDS)
async def test_the_link_serves_bytes_that_hash_to_the_webhooks_file_sha256(
    sim: Simulator, http: aiohttp.ClientSession, kind: MediaKind | str
) -> None:
    block = media_block(media_webhook(sim, kind))

    status, answer, _ = await download_media(http, sim, block)
    assert status == 200
    assert answer["error"] is False
    assert answer["expires"] > time.time()
    async with http.get(answer["fileLink"]) as response:
        assert response.status == 200
        data = await response.read()

    assert hashlib.sha256(data).digest() == b64(block["fileSha256"])
    assert len(data) == int(block["fileLength"])


@pytest.mark.parametrize("kind", KINDS)
async def test_the_cdn_blob_decrypts_to_the_same_bytes(
    sim: Simulator, http: aiohttp.ClientSession, kind: MediaKind | str
) -> None:
    block = media_block(media_webhook(sim, kind))
    media_kind = MediaKind.AUDIO if kind == "voice note" else MediaKind(kind)

    async with http.get(sim.cdn_url + block["directPath"], headers=ORIGIN) as response:
        assert response.status == 200
        blob = await response.read()
    decryptor = MediaDecryptor(
        b64(block["mediaKey"]),
        INFO_BY_KIND[media_kind],
        enc_sha256=b64(block["fileEncSha256"]),
        plain_sha256=b64(block["fileSha256"]),
        plain_length=int(block["fileLength"]),
    )
    plain = decryptor.feed(blob) + decryptor.finish()

    assert MAGIC_BY_MIMETYPE[block["mimetype"]](plain)


async def test_the_cdn_wants_whatsapp_webs_origin(
    sim: Simulator, http: aiohttp.ClientSession
) -> None:
    block = media_block(media_webhook(sim, MediaKind.IMAGE))

    async with http.get(sim.cdn_url + block["directPath"]) as response:
        assert response.status == 403


@pytest.mark.parametrize(
    ("token", "instance_id"),
    [
        ("wrong", INSTANCE.id),
        ("", INSTANCE.id),
        (OTHER.token, INSTANCE.id),
        (INSTANCE.token, "NOPE"),
    ],
)
async def test_download_media_checks_the_instance_token(
    sim: Simulator, http: aiohttp.ClientSession, token: str, instance_id: str
) -> None:
    block = media_block(media_webhook(sim, MediaKind.IMAGE))

    status, answer, _ = await download_media(http, sim, block, token=token, instance_id=instance_id)

    assert status == 401
    assert answer["error"] is True


@pytest.mark.parametrize("missing", ["mediaKey", "directPath", "type", "mimetype"])
async def test_download_media_requires_all_four_fields(
    sim: Simulator, http: aiohttp.ClientSession, missing: str
) -> None:
    block = media_block(media_webhook(sim, MediaKind.IMAGE))

    status, answer, _ = await download_media(http, sim, block, **{missing: None})

    assert status == 400
    assert answer["error"] is True
    assert missing in answer["message"]


async def test_a_wrong_media_key_gets_w_apis_500(
    sim: Simulator, http: aiohttp.ClientSession
) -> None:
    block = media_block(media_webhook(sim, MediaKind.IMAGE))
    other_key = base64.b64encode(bytes(32)).decode()

    status, answer, _ = await download_media(http, sim, block, mediaKey=other_key)

    assert (status, answer) == (500, DOWNLOAD_FAILED)


async def test_the_failure_share_answers_with_w_apis_real_500_body(
    http: aiohttp.ClientSession,
) -> None:
    async with simulator(failure_rate=1.0, failures={Failure.SERVER_ERROR: 1}) as sim:
        block = media_block(media_webhook(sim, MediaKind.IMAGE))

        status, answer, _ = await download_media(http, sim, block)

    assert status == 500
    assert answer == {
        "error": True,
        "message": {
            "error": False,
            "data": {"error": True, "message": "Falha ao fazer o download do conteúdo."},
        },
    }


async def test_the_trouble_passes_and_the_file_comes_after_it(
    http: aiohttp.ClientSession,
) -> None:
    async with simulator(failure_rate=1.0, failures={Failure.SERVER_ERROR: 1}) as sim:
        block = media_block(media_webhook(sim, MediaKind.DOCUMENT))
        statuses = [(await download_media(http, sim, block))[0] for _ in range(4)]

    assert 500 in statuses
    assert statuses[-1] == 200
    assert statuses == sorted(statuses, reverse=True)  # the 500s first, then only 200s


async def test_an_error_flag_comes_with_http_200(http: aiohttp.ClientSession) -> None:
    async with simulator(failure_rate=1.0, failures={Failure.ERROR_FLAG: 1}) as sim:
        block = media_block(media_webhook(sim, MediaKind.IMAGE))

        status, answer, _ = await download_media(http, sim, block)

    assert status == 200
    assert answer["error"] is True
    assert "fileLink" not in answer


async def test_rate_limiting_says_when_to_come_back(http: aiohttp.ClientSession) -> None:
    async with simulator(failure_rate=1.0, failures={Failure.RATE_LIMITED: 1}) as sim:
        block = media_block(media_webhook(sim, MediaKind.IMAGE))

        status, answer, response = await download_media(http, sim, block)

    assert status == 429
    assert answer["error"] is True
    assert int(response.headers["Retry-After"]) > 0


async def test_a_slow_body_trickles_in_but_arrives_whole(http: aiohttp.ClientSession) -> None:
    options = {"failure_rate": 1.0, "failures": {Failure.SLOW_BODY: 1}, "slow_seconds": 0.5}
    async with simulator(**options) as sim:
        block = media_block(media_webhook(sim, MediaKind.IMAGE))
        _, answer, _ = await download_media(http, sim, block)

        started = time.monotonic()
        async with http.get(answer["fileLink"]) as response:
            chunks = [chunk async for chunk in response.content.iter_any()]
        took = time.monotonic() - started

    assert took >= 0.4
    assert len(chunks) > 1
    assert hashlib.sha256(b"".join(chunks)).digest() == b64(block["fileSha256"])


async def test_expired_media_is_404_on_the_cdn_and_500_on_w_api(
    http: aiohttp.ClientSession,
) -> None:
    async with simulator(expired_rate=1.0) as sim:
        block = media_block(media_webhook(sim, MediaKind.VIDEO))

        async with http.get(sim.cdn_url + block["directPath"], headers=ORIGIN) as response:
            cdn_status = response.status
        status, answer, _ = await download_media(http, sim, block)

    assert cdn_status == 404
    assert (status, answer) == (500, DOWNLOAD_FAILED)


def test_the_shares_are_spread_evenly_over_the_files() -> None:
    sim = simulator(failure_rate=0.3, expired_rate=0.05)
    rng = random.Random(1)

    hosted = [sim.host_media(make_media(MediaKind.DOCUMENT, rng)) for _ in range(100)]

    assert sum(1 for media in hosted if media.wapi_trouble) == 30
    assert sum(1 for media in hosted if media.expired) == 5
    assert any(media.expired for media in hosted[:10]), "a short demo should show one"
    assert any(media.cdn_trouble for media in hosted[:20]), "and a durable retry"


async def test_status_instance_says_connected_with_the_phone(
    sim: Simulator, http: aiohttp.ClientSession
) -> None:
    async with http.get(
        f"{sim.url}/instance/status-instance",
        params={"instanceId": INSTANCE.id},
        headers={"Authorization": f"Bearer {INSTANCE.token}"},
    ) as response:
        answer = await response.json()

    assert response.status == 200
    assert answer == {
        "instanceId": INSTANCE.id,
        "connected": True,
        "connectedPhone": INSTANCE.phone,
    }


async def test_status_instance_refuses_a_bad_token(
    sim: Simulator, http: aiohttp.ClientSession
) -> None:
    async with http.get(
        f"{sim.url}/instance/status-instance",
        params={"instanceId": INSTANCE.id},
        headers={"Authorization": "Bearer nope"},
    ) as response:
        answer = await response.json()

    assert response.status == 401
    assert answer["error"] is True


@pytest.mark.parametrize("kind", ["received", "delivery"])
async def test_update_webhook_remembers_the_url(
    sim: Simulator, http: aiohttp.ClientSession, kind: str
) -> None:
    url = f"https://example.test/webhook?secret=s&for={kind}"
    async with http.put(
        f"{sim.url}/webhook/update-webhook-{kind}",
        params={"instanceId": OTHER.id},
        headers={"Authorization": f"Bearer {OTHER.token}"},
        json={"value": url},
    ) as response:
        answer = await response.json()

    assert (response.status, answer) == (200, {"error": False})
    assert sim.webhook_urls == {OTHER.id: {kind: url}}


@pytest.mark.parametrize(
    ("token", "body", "status"),
    [
        (OTHER.token, {"value": "not a url"}, 400),
        (OTHER.token, {}, 400),
        ("bad", {"value": "https://example.test/webhook"}, 401),
    ],
)
async def test_update_webhook_refuses_a_bad_request(
    sim: Simulator, http: aiohttp.ClientSession, token: str, body: Any, status: int
) -> None:
    async with http.put(
        f"{sim.url}/webhook/update-webhook-received",
        params={"instanceId": OTHER.id},
        headers={"Authorization": f"Bearer {token}"},
        json=body,
    ) as response:
        answer = await response.json()

    assert response.status == status
    assert answer["error"] is True
    assert sim.webhook_urls == {}


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("kind", list(MediaKind))
def test_made_media_starts_with_the_magic_bytes_of_its_mimetype(kind: MediaKind, seed: int) -> None:
    file = make_media(kind, random.Random(seed), ptt=seed == 0)

    assert file.kind is kind
    assert MAGIC_BY_MIMETYPE[file.mimetype](file.data), file.data[:16]
    assert 500 <= len(file.data) <= 500_000


def test_made_media_is_the_same_for_the_same_seed() -> None:
    for kind in MediaKind:
        assert make_media(kind, random.Random(3)) == make_media(kind, random.Random(3))
    assert make_media(MediaKind.IMAGE, random.Random(3)) != make_media(
        MediaKind.IMAGE, random.Random(4)
    )


def test_images_are_jpeg_and_png_and_stickers_webp() -> None:
    rng = random.Random(0)
    mimetypes = {make_media(MediaKind.IMAGE, rng).mimetype for _ in range(10)}

    assert mimetypes == {"image/jpeg", "image/png"}
    assert make_media(MediaKind.STICKER, rng).mimetype == "image/webp"


def test_voice_notes_are_ogg_pages_with_valid_checksums() -> None:
    file = make_media(MediaKind.AUDIO, random.Random(5), ptt=True)
    assert file.ptt
    assert file.mimetype == "audio/ogg; codecs=opus"

    pages = list(ogg_pages(file.data))

    assert len(pages) >= 3
    assert pages[0][0].startswith(b"OpusHead")
    assert pages[1][0].startswith(b"OpusTags")
    assert pages[0][1] & 0x02 and pages[-1][1] & 0x04  # begins and ends the stream


def ogg_pages(data: bytes) -> Iterator[tuple[bytes, int]]:
    """Each page's body and flags, checking its capture pattern and checksum on the way."""
    offset = 0
    while offset < len(data):
        assert data[offset : offset + 4] == b"OggS", f"no page at {offset}"
        flags = data[offset + 5]
        (stored_crc,) = struct.unpack_from("<I", data, offset + 22)
        segments = data[offset + 26]
        lacing = data[offset + 27 : offset + 27 + segments]
        end = offset + 27 + segments + sum(lacing)
        page = bytearray(data[offset:end])
        page[22:26] = bytes(4)
        assert crc32_ogg(bytes(page)) == stored_crc, f"bad checksum in page at {offset}"
        yield data[offset + 27 + segments : end], flags
        offset = end


def crc32_ogg(data: bytes) -> int:
    """Ogg's CRC, bit by bit (polynomial 0x04C11DB7, no reflection, start 0)."""
    crc = 0
    for byte in data:
        crc ^= byte << 24
        for _ in range(8):
            crc = ((crc << 1) ^ 0x04C11DB7) & 0xFFFFFFFF if crc & 0x80000000 else crc << 1
    return crc


def test_webhooks_have_w_apis_shape_and_mediamon_reads_them() -> None:
    sim = simulator()
    maker = WebhookMaker(sim, random.Random(11))
    bodies = [maker.next() for _ in range(120)]

    events = [parse_webhook(body) for body in bodies]
    media = [(body, event) for body, event in zip(bodies, events, strict=True) if event.media]

    assert {event.media.kind for _, event in media if event.media} == set(MediaKind)
    assert all(event.media.problem is None for _, event in media if event.media)
    assert any(event.media is None for event in events), "some text messages"
    assert any(e.media and e.media.ptt for e in events), "voice notes"
    assert any(body["event"] == "webhookDelivery" and body["fromMe"] for body in bodies)
    ids = [event.message_id for _, event in media]
    assert len(ids) > len(set(ids)), "an occasional duplicate"
    wrappers = {next(iter(body["msgContent"])) for body, _ in media}
    assert {"ephemeralMessage", "viewOnceMessageV2", "documentWithCaptionMessage"} <= wrappers
    for body, _ in media:
        block = media_block(body)
        assert block["url"].startswith("https://mmg.whatsapp.net/v/")
        assert isinstance(block["fileLength"], str) and block["fileLength"].isdigit()
        assert isinstance(block["mediaKeyTimestamp"], str)
        assert len(b64(block["mediaKey"])) == 32
        assert len(b64(block["fileEncSha256"])) == 32
        assert body["sender"]["pushName"]
        assert body["chat"]["id"].startswith("55") or body["chat"]["id"].endswith("@g.us")


async def test_the_firer_posts_webhooks_to_the_url(http: aiohttp.ClientSession) -> None:
    received: list[dict[str, Any]] = []

    async def collect(request: web.Request) -> web.Response:
        received.append(await request.json())
        return web.json_response({"ok": True})

    app = web.Application()
    app.router.add_post("/webhook", collect)
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    host, port = runner.addresses[0][:2]
    try:
        async with simulator() as sim:
            firer = WebhookFirer(sim, f"http://{host}:{port}/webhook", rate=50, seed=2)
            await firer.run(count=6)
            await wait_for(_count_is(received, 6), timeout=5)
    finally:
        await runner.cleanup()

    assert firer.answers == {"200": 6}
    assert all(body["instanceId"] in (INSTANCE.id, OTHER.id) for body in received)


def _count_is(items: list[Any], count: int) -> Callable[[], Awaitable[bool]]:
    async def check() -> bool:
        return len(items) >= count

    return check


def test_the_catalog_forgets_the_oldest_files_beyond_what_it_keeps() -> None:
    catalog = MediaCatalog(random.Random(0), failure_rate=0, expired_rate=0, keep=3)
    rng = random.Random(0)

    hosted = [catalog.add(make_media(MediaKind.DOCUMENT, rng)) for _ in range(4)]

    assert catalog.find(hosted[0].direct_path) is None
    assert all(catalog.find(media.direct_path) is media for media in hosted[1:])
