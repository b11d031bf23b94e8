"""Tokens and the webhook secret never surface: not in logs, errors, commands or the screen.

The W-API here echoes the request's Authorization header in its error message, as a
careless server might, so every path a failure's text takes is put to the test with
the token really in it.
"""

from __future__ import annotations

import asyncio
import json
import logging
import signal
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from types import FrameType
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from mediamon.core.config import load_config
from mediamon.core.models import MediaKind, MediaStatus
from mediamon.core.store import MediaQuery
from mediamon.runtime import Runtime
from mediamon.server.app import SECRET_HEADER
from mediamon.tui.app import MonitorApp
from mediamon.tui.event_log import EventLog
from mediamon.tui.media_table import MediaTable
from mediamon.tui.top_bar import TopBar
from tests.conftest import (
    INSTANCE,
    MIMETYPES,
    TOKEN,
    free_port,
    media_webhook,
    mediamon,
    post,
    wait_for,
    wait_settled,
    write_config,
)
from tests.fakes import LoopbackServer
from tests.fakes.cdn import FakeCdn
from tests.fakes.payloads import media_message, sample_bytes, text_message, webhook
from tests.fakes.wapi import FakeWapi

SECRET = "hook-secret-Zq81xT"


class EchoingWapi(LoopbackServer):
    """A W-API that fails every download-media, quoting the bearer token it was sent."""

    def build_app(self) -> web.Application:
        app = web.Application()
        app.router.add_post("/message/download-media", self._refuse)
        return app

    async def _refuse(self, request: web.Request) -> web.Response:
        credentials = request.headers.get("Authorization", "")
        message = f"no media for {credentials} on {request.query.get('instanceId')}"
        return web.json_response({"error": True, "message": message}, status=500)


@pytest.fixture
async def echoing() -> AsyncIterator[EchoingWapi]:
    async with EchoingWapi() as server:
        yield server


def secret_config(folder: Path, wapi_url: str, cdn_url: str, port: int = 0) -> Path:
    path = write_config(folder, wapi_url, cdn_url, port)
    text = path.read_text(encoding="utf-8")
    text = text.replace("[server]\n", f'[server]\nsecret = "{SECRET}"\n', 1)
    text = text.replace("[downloads]\n", "[downloads]\nmax_attempts = 2\n", 1)
    path.write_text(text, encoding="utf-8")
    return path


def assert_hidden(text: str) -> None:
    assert TOKEN not in text
    assert SECRET not in text


def cdn_broken_media(wapi: FakeWapi, cdn: FakeCdn) -> dict[str, Any]:
    """A media that neither source can deliver, so it ends `failed` with both reasons."""
    block = wapi.add_media(
        sample_bytes(MediaKind.AUDIO, 3_000), MediaKind.AUDIO, MIMETYPES[MediaKind.AUDIO]
    )
    cdn.fail("500", times=100, direct_path=block["directPath"])
    return webhook(INSTANCE, media_message(MediaKind.AUDIO, block))


def pasted_secrets() -> dict[str, Any]:
    """Someone pasted the token and the secret into a chat: the body holds them."""
    return webhook(INSTANCE, text_message(f"the token is {TOKEN}, the secret {SECRET}"))


async def deliver_everything(
    http: aiohttp.ClientSession, url: str, wapi: FakeWapi, cdn: FakeCdn, *, paste: bool = True
) -> tuple[str, str]:
    """Send the webhooks the tests here share; returns the good and the broken message ids.

    The good media fails at the echoing W-API and comes from the CDN; the broken one
    fails at both. Two deliveries carry a wrong secret or none.
    """
    good = media_webhook(wapi)
    broken = cdn_broken_media(wapi, cdn)
    answers = [
        await post(http, f"{url}?secret={SECRET}", good),
        await post(http, url, broken, headers={SECRET_HEADER: SECRET}),
        await post(http, f"{url}?secret={SECRET[:-1]}", good),
        await post(http, url, good),
    ]
    if paste:
        answers.append(await post(http, f"{url}?secret={SECRET}", pasted_secrets()))
    assert [status for status, _ in answers] == [200, 200, 401, 401] + [200] * paste
    for _, answer in answers:
        assert_hidden(json.dumps(answer))
    return good["messageId"], broken["messageId"]


async def test_logs_errors_list_and_events_hide_the_token_and_the_secret(
    tmp_path: Path,
    echoing: EchoingWapi,
    wapi: FakeWapi,
    cdn: FakeCdn,
    http: aiohttp.ClientSession,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    path = secret_config(tmp_path, echoing.url, cdn.url)
    config = load_config(path)
    async with Runtime(config) as runtime:
        good, broken = await deliver_everything(http, runtime.url, wapi, cdn, paste=False)
        done = await wait_settled(runtime, good)
        failed = await wait_settled(runtime, broken)
        rows = await runtime.store.list_media(MediaQuery())
        history = [a for media in rows for a in await runtime.store.attempts(media.id)]
        events = await runtime.store.list_events()
        logged = caplog.text
        # Last, as the database library's debug lines would quote this body whole.
        await post(http, f"{runtime.url}?secret={SECRET}", pasted_secrets())

    assert (done.status, failed.status) == (MediaStatus.DONE, MediaStatus.FAILED)
    assert "Bearer ***" in (failed.last_error or "")
    errors = [media.last_error or "" for media in rows] + [a.error or "" for a in history]
    assert any("Bearer ***" in error for error in errors)
    for text in [*errors, *(event.reason or "" for event in events)]:
        assert_hidden(text)
    assert "Bearer ***" in logged
    assert_hidden(logged)

    code, listed, _ = await mediamon("list", "--json", "--config", str(path))
    assert code == 0 and "Bearer ***" in listed
    assert_hidden(listed)
    for arguments in (("events",), ("events", "--json")):
        code, out, err = await mediamon(*arguments, "--config", str(path))
        assert code == 0, err
        assert_hidden(out + err)
    assert "the token is ***" in out


async def test_serve_stderr_hides_the_token_and_the_secret(
    tmp_path: Path,
    echoing: EchoingWapi,
    wapi: FakeWapi,
    cdn: FakeCdn,
    http: aiohttp.ClientSession,
) -> None:
    port = free_port()
    path = secret_config(tmp_path, echoing.url, cdn.url, port)
    base = f"http://127.0.0.1:{port}"
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "mediamon", "serve", "-v", "--config", str(path),
        stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    try:
        await wait_for(lambda: _answers(http, f"{base}/healthz"), timeout=15)
        await deliver_everything(http, f"{base}/webhook", wapi, cdn)
        async with http.get(f"{base}/metrics") as refused:
            assert refused.status == 401, "a secret is set, so a scrape must bring it"
        await wait_for(lambda: _settled(http, f"{base}/metrics?secret={SECRET}"), timeout=15)
    finally:
        process.send_signal(signal.SIGTERM)
        _, err = await asyncio.wait_for(process.communicate(), timeout=10)
    log = err.decode()

    assert process.returncode == 0
    assert "refused: missing or wrong secret" in log
    assert "Bearer ***" in log
    assert_hidden(log)


async def test_the_monitor_shows_neither_the_token_nor_the_secret(
    tmp_path: Path,
    echoing: EchoingWapi,
    wapi: FakeWapi,
    cdn: FakeCdn,
    http: aiohttp.ClientSession,
) -> None:
    config = load_config(secret_config(tmp_path, echoing.url, cdn.url))
    app = MonitorApp(config)
    async with app.run_test(size=(160, 50)) as pilot:
        await wait_for(_is_set(app.started))
        good, broken = await deliver_everything(http, app.runtime.url, wapi, cdn)
        await wait_settled(app.runtime, broken)
        table = app.query_one(MediaTable)

        async def both_shown() -> bool:
            await pilot.pause()
            shown = {media.message_id: media.status for media in table.records.values()}
            return shown == {good: MediaStatus.DONE, broken: MediaStatus.FAILED}

        await wait_for(both_shown)
        table.move_cursor(row=0)  # the newest row, the broken one, into the detail pane
        await pilot.press("enter")
        await pilot.pause()
        top = app.query_one(TopBar).render().plain
        log = "\n".join(line.text for line in app.query_one(EventLog).lines)
        screen = app.export_screenshot()

    assert "secret on" in top
    assert "Bearer ***" in log
    for text in (top, log, screen):
        assert_hidden(text)


async def test_the_secret_is_compared_in_constant_time(
    tmp_path: Path, wapi: FakeWapi, cdn: FakeCdn, http: aiohttp.ClientSession
) -> None:
    guarded = load_config(secret_config(tmp_path, wapi.url, cdn.url))
    body = webhook(INSTANCE, text_message("hi"))
    async with Runtime(guarded) as runtime:
        called: list[str] = []

        def watch(frame: FrameType, event: str, arg: Any) -> None:
            if event == "c_call":
                called.append(getattr(arg, "__name__", ""))

        sys.setprofile(watch)
        try:
            wrong, _ = await post(http, f"{runtime.url}?secret=not-{SECRET}", body)
            right, _ = await post(http, f"{runtime.url}?secret={SECRET}", body)
        finally:
            sys.setprofile(None)

    assert (wrong, right) == (401, 200)
    assert called.count("compare_digest") == 2


async def _answers(http: aiohttp.ClientSession, url: str) -> bool:
    try:
        async with http.get(url) as response:
            return response.status == 200
    except aiohttp.ClientError:
        return False


async def _settled(http: aiohttp.ClientSession, url: str) -> bool:
    async with http.get(url) as response:
        text = await response.text()
    lines = text.splitlines()
    return (
        'mediamon_media{status="done"} 1.0' in lines
        and 'mediamon_media{status="failed"} 1.0' in lines
    )


def _is_set(event: asyncio.Event) -> Callable[[], Awaitable[bool]]:
    async def check() -> bool:
        return event.is_set()

    return check
