"""The monitor, driven headless with Pilot against the real embedded server on loopback."""

from __future__ import annotations

import asyncio
import dataclasses
import socket
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from textual.app import App, ComposeResult
from textual.pilot import Pilot

from mediamon.core.config import Config
from mediamon.core.events import MediaQueued
from mediamon.core.models import MediaInfo, MediaKind, MediaRecord, MediaStatus, WebhookEvent
from mediamon.core.sqlite_store import SQLiteStore
from mediamon.core.store import MediaQuery, WebhookDelivery
from mediamon.tui.app import MonitorApp
from mediamon.tui.detail import DetailPane
from mediamon.tui.event_log import BURST, EventLog
from mediamon.tui.media_table import COLUMNS, PAGE, MediaTable
from mediamon.tui.top_bar import TopBar
from tests.conftest import CLIENT, INSTANCE, free_port, make_config, media_webhook, post
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


async def test_the_table_pages_in_older_media_as_the_cursor_nears_the_end(
    config: Config,
) -> None:
    stored = PAGE * 2 + 30
    await _store_failed_media(config, stored)
    app = MonitorApp(config)
    async with app.run_test(size=SIZE) as pilot:
        await started(app, pilot)
        table = app.query_one(MediaTable)
        assert table.row_count == PAGE

        await pilot.press("ctrl+end")
        await until(pilot, lambda: table.row_count == PAGE * 2)
        await pilot.press("ctrl+end")
        await until(pilot, lambda: table.exhausted)
        await pilot.press("ctrl+end")
        await pilot.pause()

        shown = [table.get_row_at(row)[0] for row in range(table.row_count)]
        assert shown == list(range(stored, 0, -1))  # newest first, every one, once


async def test_a_burst_keeps_the_window_to_a_page_and_the_cursor_on_its_media(
    config: Config,
) -> None:
    await _store_failed_media(config, PAGE + 60)
    media = await _listed(config)
    by_id = {record.id: record for record in media}
    app = _Alone(MediaTable(max_attempts=6))
    async with app.run_test(size=SIZE) as pilot:
        table = app.query_one(MediaTable)
        table.show([by_id[number] for number in range(PAGE, 0, -1)])
        table.move_cursor(row=30)
        await pilot.pause()
        assert table.selected == by_id[PAGE - 30]

        table.upsert(by_id[number] for number in range(PAGE + 1, PAGE + 61))
        failed = dataclasses.replace(by_id[PAGE - 30], last_error="gone for good")
        table.upsert([failed])
        await pilot.pause()

        assert [table.get_row_at(row)[0] for row in range(table.row_count)] == list(
            range(PAGE + 60, 60, -1)
        )
        assert (table.selected, table.cursor_row) == (failed, 90)
        assert not table.exhausted  # the oldest 60 went: there is a next page again
        assert not table.near_end  # the table moved the cursor there, not a person
        await pilot.press("down")
        assert table.near_end
        # Fixed widths: nothing was measured, yet the table scrolls over every row.
        assert [column.width for column in table.columns.values()] == [w for *_, w in COLUMNS]
        assert table.virtual_size.height == PAGE + 1


async def test_a_burst_of_events_writes_its_last_lines_and_counts_the_rest(
    config: Config,
) -> None:
    await _store_failed_media(config, BURST + 70)
    media = await _listed(config)
    app = _Alone(EventLog())
    async with app.run_test(size=SIZE) as pilot:
        log = app.query_one(EventLog)
        await pilot.pause()
        log.add_events([MediaQueued(record) for record in reversed(media)])
        await pilot.pause()

        lines = [line.text for line in log.lines]
        assert len(lines) == BURST + 1
        assert "… 70 earlier lines of this burst left out" in lines[0]
        assert media[0].message_id[:8] in lines[-1]


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


class _Alone(App[None]):
    """One widget on its own, to drive it without the runtime."""

    def __init__(self, widget: Any) -> None:
        super().__init__()
        self._widget = widget

    def compose(self) -> ComposeResult:
        yield self._widget


async def _store_failed_media(config: Config, count: int) -> None:
    """`count` media that failed on arrival (no key to fetch them), so none downloads."""
    info = MediaInfo(MediaKind.IMAGE, "image/jpeg", None, None, None, None, None)

    def delivery(number: int) -> WebhookDelivery:
        event = WebhookEvent(
            event="webhookReceived",
            instance_id=INSTANCE,
            message_id=f"3EB{number:05X}{'0' * 12}",
            from_me=False,
            is_group=False,
            moment=None,
            chat_id="5569911111111",
            sender_id="5569922222222",
            sender_name="Maria",
            media=info,
        )
        return WebhookDelivery(
            "{}", time.time(), "accepted", None, event, CLIENT, MediaStatus.FAILED
        )

    store = await SQLiteStore.open(config.storage.database)
    try:
        await asyncio.gather(*(store.record_webhook(delivery(n)) for n in range(count)))
    finally:
        await store.close()


async def _listed(config: Config) -> list[MediaRecord]:
    store = await SQLiteStore.open(config.storage.database)
    try:
        return await store.list_media(MediaQuery(limit=None))
    finally:
        await store.close()


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


async def test_w_replays_the_selected_media_webhook(
    config: Config, wapi: FakeWapi, http: aiohttp.ClientSession
) -> None:
    app = MonitorApp(config)
    async with app.run_test(size=SIZE) as pilot:
        url = await started(app, pilot)
        await post(http, url, media_webhook(wapi))
        await until(pilot, lambda: set(statuses(app).values()) == {"done"})

        await pilot.press("w")
        await pilot.pause(0.3)

        messages = [notification.message for notification in app._notifications]
        assert any(m.startswith("Replayed webhook #1: kept once") for m in messages)
        assert len(await app.runtime.store.list_events()) == 2
