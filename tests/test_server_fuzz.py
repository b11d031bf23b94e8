"""Hostile input at POST /webhook: whatever arrives, a JSON answer, never a 5xx, never a stray file.

Hypothesis makes the bodies; each is posted over loopback HTTP to a running `Runtime`.
The runtime and the fakes live in the test's event loop, so Hypothesis runs in a worker
thread and hands each request to that loop. Bodies that parse may queue downloads,
which run against the fakes meanwhile, as they would for real.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import itertools
import json
import re
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any, Final

import aiohttp
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mediamon.core.config import Config
from mediamon.core.models import MediaKind, MediaStatus
from mediamon.core.store import MediaQuery
from mediamon.runtime import Runtime
from mediamon.server import app as server_app
from tests.conftest import CLIENT, INSTANCE, TOKEN, make_config, wait_settled
from tests.fakes.cdn import FakeCdn
from tests.fakes.payloads import WRAPPERS, media_message, sample_bytes, webhook
from tests.fakes.wapi import FakeWapi

FUZZ: Final = settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

Post = Callable[[bytes], tuple[int, dict[str, Any]]]

# Text a webhook would not normally hold: lone surrogates (valid JSON escapes, not
# valid Unicode), NULs, separators, and odd spellings of base64.
_ODD_TEXT: Final = st.one_of(
    st.text(max_size=40),
    st.text(st.characters(min_codepoint=0xD800, max_codepoint=0xDFFF), min_size=1, max_size=3),
    st.sampled_from(["", "\x00", "../../etc/passwd", "=", "====", "Zm9v", "%%%", "A" * 70_000]),
)
_SCALARS: Final = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**80), max_value=2**80),
    st.floats(allow_nan=False),
    _ODD_TEXT,
)
JSON_VALUES: Final = st.recursive(
    _SCALARS,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(_ODD_TEXT, inner, max_size=4),
    max_leaves=15,
)

# Where, in a document inside two wrappers, a value may be swapped: (keys down, key).
_DOWN: Final = ("msgContent", "ephemeralMessage", "message", "viewOnceMessageV2", "message")
_BLOCK: Final = (*_DOWN, "documentMessage")
PLACES: Final = (
    *(((), key) for key in ("instanceId", "messageId", "msgContent", "chat", "sender", "moment")),
    (("sender",), "pushName"),
    (_DOWN[:1], "ephemeralMessage"),
    (_DOWN[:3], "viewOnceMessageV2"),
    (_DOWN, "documentMessage"),
    *((_BLOCK, key) for key in ("mediaKey", "directPath", "fileSha256", "fileEncSha256")),
    *((_BLOCK, key) for key in ("fileLength", "fileName", "mimetype", "caption")),
)


def _poster(url: str, http: aiohttp.ClientSession) -> Post:
    """A blocking POST for Hypothesis's thread, carried out on the test's loop."""
    loop = asyncio.get_running_loop()

    def post(data: bytes) -> tuple[int, dict[str, Any]]:
        sent = asyncio.run_coroutine_threadsafe(_raw_post(http, url, data), loop)
        return _answer(sent.result(timeout=20))

    return post


async def _raw_post(http: aiohttp.ClientSession, url: str, data: bytes) -> tuple[int, bytes, str]:
    # From a file-like object, so that aiohttp streams a body of megabytes without a warning.
    headers = {"Content-Type": "application/json"}
    async with http.post(url, data=io.BytesIO(data), headers=headers) as response:
        return response.status, await response.read(), response.content_type


def _answer(reply: tuple[int, bytes, str]) -> tuple[int, dict[str, Any]]:
    status, raw, content_type = reply
    return status, _json_answer(content_type, raw)


def _json_answer(content_type: str, raw: bytes) -> dict[str, Any]:
    assert content_type == "application/json", raw[:200]
    answer = json.loads(raw)
    assert isinstance(answer, dict)
    assert isinstance(answer.get("ok"), bool)
    if not answer["ok"]:
        assert isinstance(answer.get("error"), str) and answer["error"]
    return answer


def _replaced(body: dict[str, Any], down: tuple[str, ...], key: str, value: Any) -> dict[str, Any]:
    copy: dict[str, Any] = json.loads(json.dumps(body))
    target = copy
    for step in down:
        target = target[step]
    target[key] = value
    return copy


@pytest.fixture
def document_webhook(wapi: FakeWapi) -> dict[str, Any]:
    """A valid delivery of a document inside two wrappers, for the fuzz to spoil."""
    plain = sample_bytes(MediaKind.DOCUMENT, 2_000)
    block = wapi.add_media(plain, MediaKind.DOCUMENT, "application/pdf", fileName="a.pdf")
    wrappers = ["ephemeralMessage", "viewOnceMessageV2"]
    return webhook(INSTANCE, media_message(MediaKind.DOCUMENT, block, wrappers=wrappers))


async def test_any_bytes_get_a_json_answer_and_never_a_5xx(
    runtime: Runtime, http: aiohttp.ClientSession
) -> None:
    post = _poster(runtime.url, http)

    @FUZZ
    @given(st.binary(max_size=2_000) | st.text(max_size=500).map(str.encode))
    def check(data: bytes) -> None:
        status, _ = post(data)
        assert status in (200, 400, 403), data

    await asyncio.to_thread(check)


async def test_any_json_value_gets_a_json_answer_and_never_a_5xx(
    runtime: Runtime, http: aiohttp.ClientSession
) -> None:
    post = _poster(runtime.url, http)

    @FUZZ
    @given(JSON_VALUES | st.dictionaries(st.sampled_from(["instanceId", "messageId"]), _SCALARS))
    def check(value: Any) -> None:
        status, _ = post(json.dumps(value).encode())
        assert status in (200, 400, 403), value

    await asyncio.to_thread(check)


async def test_a_webhook_with_any_field_swapped_for_any_json_never_gets_a_5xx(
    runtime: Runtime, http: aiohttp.ClientSession, document_webhook: dict[str, Any]
) -> None:
    post = _poster(runtime.url, http)
    numbers = itertools.count()

    @FUZZ
    @given(st.sampled_from(PLACES), JSON_VALUES)
    def check(place: tuple[tuple[str, ...], str], value: Any) -> None:
        # A new message each time, so that each reaches the store as a new media.
        fresh = _replaced(document_webhook, (), "messageId", f"FUZZ{next(numbers):06d}")
        body = _replaced(fresh, *place, value)
        status, _ = post(json.dumps(body).encode())
        assert status in (200, 400, 403), (place, value)

    await asyncio.to_thread(check)
    # Whatever came before, a good webhook is still taken and its file stored.
    fresh = _replaced(document_webhook, (), "messageId", "AFTER-THE-FUZZ")
    assert (await _raw_post(http, runtime.url, json.dumps(fresh).encode()))[0] == 200
    assert (await wait_settled(runtime, "AFTER-THE-FUZZ")).status is MediaStatus.DONE


# JSON can escape a lone UTF-16 surrogate; Python decodes it, SQLite cannot store it.


@pytest.mark.parametrize("field", ["instanceId", "messageId"])
async def test_a_lone_surrogate_in_an_id_is_a_400_that_names_the_field(
    runtime: Runtime, http: aiohttp.ClientSession, document_webhook: dict[str, Any], field: str
) -> None:
    body = _replaced(document_webhook, (), field, "3EB0\udc80")

    status, answer = _answer(await _raw_post(http, runtime.url, json.dumps(body).encode()))

    assert status == 400
    assert answer["error"] == f"{field} is not valid text: it holds a lone UTF-16 surrogate"


async def test_a_lone_surrogate_in_a_name_is_kept_as_a_question_mark(
    runtime: Runtime, http: aiohttp.ClientSession, document_webhook: dict[str, Any]
) -> None:
    body = _replaced(document_webhook, ("sender",), "pushName", "Jo\udc80o")

    status, _ = _answer(await _raw_post(http, runtime.url, json.dumps(body).encode()))
    media = await wait_settled(runtime, body["messageId"])

    assert (status, media.sender_name, media.status) == (200, "Jo?o", MediaStatus.DONE)


async def test_wrappers_nested_any_depth_are_found_or_refused_with_a_400(
    runtime: Runtime, http: aiohttp.ClientSession, document_webhook: dict[str, Any]
) -> None:
    post = _poster(runtime.url, http)
    block = document_webhook["msgContent"]["ephemeralMessage"]["message"]["viewOnceMessageV2"]

    @settings(FUZZ, max_examples=40)
    @given(st.lists(st.sampled_from(WRAPPERS), max_size=60))
    def check(wrappers: list[str]) -> None:
        content: dict[str, Any] = block["message"]
        for name in wrappers:
            content = {name: {"message": content}}
        status, answer = post(json.dumps({**document_webhook, "msgContent": content}).encode())
        if len(wrappers) <= 16:
            assert (status, answer.get("media")) == (200, 1)
        else:
            assert status == 400
            assert "nested more than 16 deep" in answer["error"]

    await asyncio.to_thread(check)


@pytest.mark.parametrize("length", [100_000, 4_000_000, 5_000_000])
async def test_a_huge_string_in_any_field_is_a_clean_answer(
    runtime: Runtime, http: aiohttp.ClientSession, document_webhook: dict[str, Any], length: int
) -> None:
    post = _poster(runtime.url, http)
    huge = "A" * length

    def check() -> list[int]:
        return [post(json.dumps(_replaced(document_webhook, *p, huge)).encode())[0] for p in PLACES]

    statuses = await asyncio.to_thread(check)

    expected = {413} if length > runtime.config.server.max_body else {200, 400}
    assert set(statuses) <= expected


# Path traversal, end to end: the payload's ids and names only ever name a file inside
# media_dir/cliente_<client>/instance_<id>/<kind>/.

HOSTILE_INSTANCE: Final = "../../../../tmp/mediamon-escape/\x00..\\"
HOSTILE_NAMES: Final = [
    "../../../../tmp/mediamon-escape.pdf",
    "/etc/passwd",
    "..\\..\\..\\windows\\system32.pdf",
    "a\x00b/../../c.pdf",
    ".." + "/.." * 60 + ".pdf",
    "\u202eevil\u2066.pdf",
]
HOSTILE_IDS: Final = ["../../../../tmp/x", "..", "/", "a/../../b", "\\..\\..", "." * 128]


@pytest.fixture
def two_instances(tmp_path: Path, wapi: FakeWapi, cdn: FakeCdn) -> Config:
    wapi.tokens[HOSTILE_INSTANCE] = "token-hostile"
    instances = [
        {"id": INSTANCE, "token": TOKEN, "client": CLIENT},
        {"id": HOSTILE_INSTANCE, "token": "token-hostile", "client": "9"},
    ]
    return make_config(tmp_path, wapi.url, cdn.url, instances=instances)


@pytest.mark.parametrize(
    ("instance", "message_id", "file_name"),
    [
        *(
            pytest.param(INSTANCE, id_, "a.pdf", id=f"messageId {n}")
            for n, id_ in enumerate(HOSTILE_IDS)
        ),
        *(
            pytest.param(INSTANCE, "3EB0C4F1A2B3C4D5", name, id=f"fileName {n}")
            for n, name in enumerate(HOSTILE_NAMES)
        ),
        pytest.param(HOSTILE_INSTANCE, "../../x", "../../y.pdf", id="instanceId"),
    ],
)
async def test_ids_and_file_names_never_place_a_file_outside_its_folder(
    two_instances: Config,
    wapi: FakeWapi,
    http: aiohttp.ClientSession,
    instance: str,
    message_id: str,
    file_name: str,
) -> None:
    plain = sample_bytes(MediaKind.DOCUMENT, 1_000, seed=len(message_id + file_name))
    block = wapi.add_media(plain, MediaKind.DOCUMENT, "application/pdf", fileName=file_name)
    body = webhook(instance, media_message(MediaKind.DOCUMENT, block), message_id=message_id)

    async with Runtime(two_instances) as runtime:
        status, _ = _answer(await _raw_post(http, runtime.url, json.dumps(body).encode()))
        media = await wait_settled(runtime, message_id)
        everything = await runtime.store.list_media(MediaQuery())

    assert (status, media.status, len(everything)) == (200, MediaStatus.DONE, 1)
    media_dir = two_instances.storage.media_dir.resolve()
    final = (media_dir / (media.path or "")).resolve()
    client, instance_folder, kind, _name = final.relative_to(media_dir).parts
    assert re.fullmatch(r"cliente_[\w.-]+", client)
    assert instance_folder.startswith("instance_") and "/" not in instance_folder
    assert kind == "document"
    assert final.read_bytes() == plain
    assert [path for path in media_dir.rglob("*") if path.is_file()] == [final]
    folder = two_instances.storage.media_dir.parent
    outside = [path.name for path in folder.iterdir() if path.resolve() != media_dir]
    assert all(name.startswith("mediamon.db") for name in outside), outside
    assert not Path("/tmp/mediamon-escape").exists()
    assert not Path("/tmp/mediamon-escape.pdf").exists()


# Bodies that arrive too slowly or never end.


async def _read_answer(reader: asyncio.StreamReader) -> tuple[int, dict[str, Any]]:
    """Read one HTTP/1.1 answer by hand: the status, then the JSON body."""
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    headers = dict(line.split(": ", 1) for line in lines[1:] if line)
    length = int(headers["Content-Length"])
    body = await reader.readexactly(length)
    return status, _json_answer(headers["Content-Type"].split(";")[0], body)


@contextlib.asynccontextmanager
async def _connection(
    url: str,
) -> AsyncIterator[tuple[asyncio.StreamReader, asyncio.StreamWriter]]:
    host, port = url.removeprefix("http://").split("/")[0].rsplit(":", 1)
    reader, writer = await asyncio.open_connection(host, int(port))
    try:
        yield reader, writer
    finally:
        writer.close()
        with contextlib.suppress(ConnectionError):
            await writer.wait_closed()


async def test_a_body_that_trickles_in_is_answered_408_without_holding_the_server(
    runtime: Runtime, http: aiohttp.ClientSession, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(server_app, "BODY_READ_TIMEOUT", 1.0)
    body = json.dumps(webhook(INSTANCE, {"conversation": "devagar"})).encode()

    async with _connection(runtime.url) as (reader, writer):
        writer.write(
            b"POST /webhook HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            b"Content-Length: %d\r\n\r\n" % len(body)
        )
        started = time.monotonic()

        async def trickle() -> None:
            for index in range(len(body)):
                writer.write(body[index : index + 1])
                await asyncio.sleep(0.1)

        sender = asyncio.create_task(trickle())
        try:
            # Meanwhile another delivery is answered, long before the slow one.
            other = _answer(await _raw_post(http, runtime.url, body))
            other_took = time.monotonic() - started
            status, answer = await asyncio.wait_for(_read_answer(reader), 5)
            took = time.monotonic() - started
        finally:
            sender.cancel()
            with contextlib.suppress(asyncio.CancelledError, ConnectionError):
                await sender

    assert other[0] == 200
    assert other_took < 1.0 <= took < 4
    assert (status, answer["error"]) == (408, "body took longer than 1 s to arrive")


async def test_a_chunked_body_that_never_ends_is_refused_413_once_over_the_limit(
    tmp_path: Path, wapi: FakeWapi, cdn: FakeCdn, http: aiohttp.ClientSession
) -> None:
    limit = 64 * 1024
    config = make_config(tmp_path, wapi.url, cdn.url, server={"max_body": limit})

    async with Runtime(config) as runtime, _connection(runtime.url) as (reader, writer):
        writer.write(
            b"POST /webhook HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            b"Transfer-Encoding: chunked\r\n\r\n"
        )
        chunk = b"[" + b" " * 4094 + b"]"
        for _ in range(limit // len(chunk) + 2):
            writer.write(b"%x\r\n%s\r\n" % (len(chunk), chunk))
        with contextlib.suppress(ConnectionError):
            await writer.drain()
        # No closing chunk: the body never ends, so only a refusal mid-stream answers.
        status, answer = await asyncio.wait_for(_read_answer(reader), 5)

        again = _answer(await _raw_post(http, runtime.url, json.dumps([]).encode()))

    assert status == 413
    assert f"limit of {limit} bytes" in answer["error"]
    assert again[0] == 400
