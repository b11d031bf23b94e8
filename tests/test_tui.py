"""The monitor, driven headless with Pilot against the real embedded server on loopback."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from textual.pilot import Pilot

from mediamon.core.config import Config
from mediamon.core.models import MediaKind, MediaStatus
from mediamon.tui.app import MonitorApp
from mediamon.tui.detail import DetailPane
from mediamon.tui.event_log import EventLog
from mediamon.tui.media_table import MediaTable
from mediamon.tui.top_bar import TopBar
from tests.conftest import free_port, make_config, media_webhook, post
from tests.fakes.cdn import FakeCdn
from tests.fakes.wapi import FakeWapi

SIZE = (150, 45)


async def until(pilot: Pilot[int], check: Callable[[], bool], timeout: float = 10.0) -> None:
    """Let the app run until `check()` holds, or fail after `timeout` seconds."""
    deadline = asyncio.get_running_loop().time() + timeout
    while not check():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError("the screen did not reach the expected state in time")
        await pilot.pause(0.05)


def statuses(app: MonitorApp) -> dict[str, str]:
    table = app.query_one(MediaTable)
    return {media.message_id: media.status.value for media in table.records.values()}


async def started(app: MonitorApp, pilot: Pilot[int]) -> str:
    await until(pilot, app.started.is_set)
    return app.runtime.url


async def test_rows_appear_as_webhooks_arrive_and_change_in_place(
    config: Config, wapi: FakeWapi, http: aiohttp.ClientSession
) -> None:
    wapi.hold_files = asyncio.Event()
    app = MonitorApp(config)
    async with app.run_test(size=SIZE) as pilot:
        url = await started(app, pilot)
        bodies = [media_webhook(wapi, kind) for kind in MediaKind]
        for body in bodies:
            await post(http, url, body)

        table = app.query_one(MediaTable)
        await until(pilot, lambda: table.row_count == len(bodies))
        first = bodies[0]["messageId"]
        await until(pilot, lambda: statuses(app)[first] == "downloading")
        keys_before = list(table.rows)

        wapi.hold_files.set()
        await until(pilot, lambda: set(statuses(app).values()) == {"done"})

        assert list(table.rows) == keys_before  # updated in place, same rows, same order
        newest = bodies[-1]["messageId"]
        assert table.get_row_at(0)[-1] == newest[:12]


async def test_capital_r_reprocesses_failed_media_and_they_turn_done(
    config: Config, wapi: FakeWapi, cdn: FakeCdn, http: aiohttp.ClientSession
) -> None:
    wapi.always("401")
    cdn.always("404")
    app = MonitorApp(config)
    async with app.run_test(size=SIZE) as pilot:
        url = await started(app, pilot)
        for kind in (MediaKind.IMAGE, MediaKind.AUDIO):
            await post(http, url, media_webhook(wapi, kind))
        await until(pilot, lambda: list(statuses(app).values()) == ["failed", "failed"])

        wapi.always(None)
        cdn.always(None)
        await pilot.press("R")

        await until(pilot, lambda: list(statuses(app).values()) == ["done", "done"])


async def test_filters_narrow_the_table(
    config: Config, wapi: FakeWapi, http: aiohttp.ClientSession
) -> None:
    app = MonitorApp(config)
    async with app.run_test(size=SIZE) as pilot:
        url = await started(app, pilot)
        bodies = [media_webhook(wapi, kind) for kind in MediaKind]
        bodies[0]["sender"]["pushName"] = "Joaquim"
        for body in bodies:
            await post(http, url, body)
        table = app.query_one(MediaTable)
        await until(pilot, lambda: set(statuses(app).values()) == {"done"})
        assert table.row_count == 5

        await pilot.press("k")  # kind: image
        await until(pilot, lambda: table.row_count == 1)
        assert next(iter(table.records.values())).kind is MediaKind.IMAGE
        assert "kind image" in app.query_one(TopBar).showing

        for _ in range(len(MediaKind)):
            await pilot.press("k")  # back round to every kind
        await until(pilot, lambda: table.row_count == 5)

        await pilot.press("f")  # status: active
        await until(pilot, lambda: table.row_count == 0)
        for _ in range(3):
            await pilot.press("f")  # failed, missing, done
        await until(pilot, lambda: table.row_count == 5)

        await pilot.press("slash")
        await pilot.press(*"joaq", "enter")
        await until(pilot, lambda: table.row_count == 1)
        assert next(iter(table.records.values())).sender_name == "Joaquim"


async def test_keys_that_cannot_act_say_so(config: Config) -> None:
    app = MonitorApp(config)
    async with app.run_test(size=SIZE) as pilot:
        await started(app, pilot)

        for key in ("r", "o", "c", "R", "M"):
            await pilot.press(key)
        await pilot.pause()

        messages = [notification.message for notification in app._notifications]
        assert "Select a media to reprocess first." in messages
        assert "Select a media to open first." in messages
        assert "There is no failed media to reprocess." in messages
        assert "There is no missing media to reprocess." in messages


async def test_the_detail_pane_shows_each_attempt(
    config: Config, wapi: FakeWapi, http: aiohttp.ClientSession
) -> None:
    wapi.fail("500", times=2)
    app = MonitorApp(config)
    async with app.run_test(size=SIZE) as pilot:
        url = await started(app, pilot)
        body = media_webhook(wapi)
        await post(http, url, body)
        await until(pilot, lambda: set(statuses(app).values()) == {"done"})
        await pilot.pause(0.3)

        pane = app.query_one(DetailPane)

        assert pane.media is not None
        assert (pane.media.message_id, pane.media.status) == (body["messageId"], MediaStatus.DONE)
        assert [(a.source, a.outcome, a.http_status) for a in pane.attempts] == [
            ("wapi", "failed", 500),
            ("cdn", "done", None),
        ]
        await pilot.press("enter")
        assert not pane.display


async def test_q_stops_everything_and_frees_the_port(tmp_path: Path, wapi: FakeWapi) -> None:
    port = free_port()
    config = make_config(tmp_path, wapi.url, wapi.url, server={"port": port})
    app = MonitorApp(config)
    async with app.run_test(size=SIZE) as pilot:
        await started(app, pilot)
        await pilot.press("q")
        await until(pilot, lambda: not app.runtime.running)

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", port))  # raises if anything still listens


def test_main_screen_snapshot(snap_compare: Callable[..., bool], snapshot_config: Config) -> None:
    assert snap_compare(MonitorApp(snapshot_config), terminal_size=SIZE, run_before=_settle)


def test_detail_pane_snapshot(snap_compare: Callable[..., bool], snapshot_config: Config) -> None:
    async def select_done_row(pilot: Pilot[int]) -> None:
        await _settle(pilot)
        await pilot.press("down", "down")
        await pilot.pause(0.3)

    assert snap_compare(MonitorApp(snapshot_config), terminal_size=SIZE, run_before=select_done_row)


async def _settle(pilot: Pilot[Any]) -> None:
    app = pilot.app
    assert isinstance(app, MonitorApp)
    await until(pilot, app.started.is_set)
    await app.runtime.scanned.wait()
    await pilot.pause(0.3)
    # What varies from run to run: the port, and the scan's own timing line.
    app.call_next(_steady, app)
    await pilot.pause(0.2)


def _steady(app: MonitorApp) -> None:
    app.query_one(TopBar).local_url = "http://127.0.0.1:8000/webhook"
    app.query_one(EventLog).clear()


@pytest.fixture
def snapshot_config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Config:
    """A database of known media at fixed times, in UTC, with their files on disk."""
    import time

    from tests.snapshot_data import fill

    monkeypatch.setenv("TZ", "UTC")
    time.tzset()
    config = make_config(
        tmp_path, "http://127.0.0.1:9", "http://127.0.0.1:9", storage={"media_dir": "media"}
    )
    asyncio.run(fill(config))
    return config
