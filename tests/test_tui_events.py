"""The webhook events screen, driven with Pilot against the real pipeline on loopback."""

from __future__ import annotations

import asyncio
import base64
import json
import socket
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from rich.json import JSON
from rich.text import Text
from textual.pilot import Pilot
from textual.widgets import DataTable, Static

from mediamon.core.config import Config
from mediamon.core.intake import IntakeResult
from mediamon.core.models import MediaInfo, MediaKind, WebhookEvent
from mediamon.core.sqlite_store import SQLiteStore
from mediamon.core.store import StoredEvent, WebhookDelivery
from mediamon.tui.app import MonitorApp
from mediamon.tui.events_screen import BODY_SHOWN, WebhookEventsScreen
from mediamon.tui.media_table import MediaTable
from tests.conftest import CLIENT, INSTANCE, free_port, make_config, post
from tests.fakes.payloads import media_message, sample_bytes, text_message, webhook
from tests.fakes.wapi import FakeWapi
from tests.test_tui import SIZE, started, statuses, until

THUMBNAIL = base64.b64encode(sample_bytes(MediaKind.IMAGE, 3000, seed=7)).decode()
"""A thumbnail as big as WhatsApp's: 4,000 characters of base64."""


def events_screen(app: MonitorApp) -> WebhookEventsScreen:
    screen = app.screen
    assert isinstance(screen, WebhookEventsScreen)
    return screen


def outcomes(screen: WebhookEventsScreen) -> list[tuple[int, str]]:
    """(id, outcome) of each row, top to bottom."""
    table = screen.query_one(DataTable)
    rows = [table.get_row_at(row) for row in range(table.row_count)]
    return [(row[0], row[5].plain) for row in rows]


def body_text(screen: WebhookEventsScreen) -> str:
    content = screen.query_one("#event-body", Static).content
    if isinstance(content, JSON):
        return content.text.plain
    assert isinstance(content, Text)
    return content.plain


def notified(app: MonitorApp, start: str) -> bool:
    return any(note.message.startswith(start) for note in app._notifications)


async def open_events(app: MonitorApp, pilot: Pilot[int], rows: int) -> WebhookEventsScreen:
    await pilot.press("e")
    await until(pilot, lambda: isinstance(app.screen, WebhookEventsScreen))
    screen = events_screen(app)
    await until(pilot, lambda: screen.query_one(DataTable).row_count == rows)
    return screen


async def test_every_webhook_is_listed_with_its_outcome_and_body(
    config: Config, wapi: FakeWapi, http: aiohttp.ClientSession
) -> None:
    app = MonitorApp(config)
    async with app.run_test(size=SIZE) as pilot:
        url = await started(app, pilot)
        block = wapi.add_media(
            sample_bytes(MediaKind.IMAGE, 20_000), MediaKind.IMAGE, "image/jpeg",
            jpegThumbnail=THUMBNAIL,
        )  # fmt: skip
        media = webhook(INSTANCE, media_message(MediaKind.IMAGE, block))
        await post(http, url, media)
        await post(http, url, b"instanceId=3B6XIW&messageId=42")
        await post(http, url, webhook(INSTANCE, text_message("bom dia")))
        await until(pilot, lambda: statuses(app) == {media["messageId"]: "done"})

        screen = await open_events(app, pilot, rows=3)
        assert outcomes(screen) == [(3, "ignored"), (2, "rejected"), (1, "accepted")]
        assert screen.shown is not None and screen.shown.id == 3

        await pilot.press("down")
        await until(pilot, lambda: screen.shown is not None and screen.shown.id == 2)
        assert body_text(screen) == "instanceId=3B6XIW&messageId=42"

        # A delivery while the screen is shown appears on top; the cursor stays on #2.
        await post(http, url, webhook(INSTANCE, text_message("tudo bem?")))
        await until(pilot, lambda: screen.query_one(DataTable).row_count == 4)
        assert screen.selected is not None and screen.selected.id == 2

        await pilot.press("j")
        await until(pilot, lambda: screen.shown is not None and screen.shown.id == 1)
        assert f'"messageId": "{media["messageId"]}"' in body_text(screen)
        assert f'"jpegThumbnail": "{THUMBNAIL[:64]}… (4,000 characters)"' in body_text(screen)

        await pilot.press("w")
        await until(pilot, lambda: notified(app, "Replayed webhook #1: kept once (already known)"))
        await until(pilot, lambda: outcomes(screen)[0] == (5, "accepted"))

        await pilot.press("escape")
        await until(pilot, lambda: not isinstance(app.screen, WebhookEventsScreen))
        assert isinstance(app.focused, MediaTable)


async def test_a_body_that_retention_emptied_says_so_and_is_not_replayed(
    tmp_path: Path, wapi: FakeWapi
) -> None:
    config = make_config(tmp_path, wapi.url, wapi.url, storage={"keep_events_days": 1})
    store = await SQLiteStore.open(config.storage.database)
    try:
        old = WebhookDelivery('{"event": "webhookReceived"}', time.time() - 3 * 86_400, "ignored")
        await store.record_webhook(old)
    finally:
        await store.close()

    app = MonitorApp(config)
    async with app.run_test(size=SIZE) as pilot:
        await started(app, pilot)
        await app.runtime.retained.wait()
        screen = await open_events(app, pilot, rows=1)
        await until(pilot, lambda: screen.shown is not None and screen.shown.body is None)

        assert body_text(screen).startswith("Retention emptied this webhook's body")
        await pilot.press("w")
        await until(pilot, lambda: notified(app, "Webhook #1's body was emptied by retention"))


async def test_q_on_the_events_screen_stops_everything_and_frees_the_port(
    tmp_path: Path, wapi: FakeWapi
) -> None:
    port = free_port()
    config = make_config(tmp_path, wapi.url, wapi.url, server={"port": port})
    app = MonitorApp(config)
    async with app.run_test(size=SIZE) as pilot:
        await started(app, pilot)
        await open_events(app, pilot, rows=0)
        await pilot.press("q")
        await until(pilot, lambda: not app.runtime.running)

    assert app.return_code == 0
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", port))  # raises if anything still listens


def test_events_screen_snapshot(
    snap_compare: Callable[..., bool], events_snapshot_config: Config
) -> None:
    async def open_the_screen(pilot: Pilot[Any]) -> None:
        app = pilot.app
        assert isinstance(app, MonitorApp)
        await started(app, pilot)
        await app.runtime.scanned.wait()
        await open_events(app, pilot, rows=12)
        await pilot.pause(0.3)

    app = MonitorApp(events_snapshot_config)
    assert snap_compare(app, terminal_size=SIZE, run_before=open_the_screen)


@pytest.fixture
def events_snapshot_config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Config:
    """The media of the main snapshots, then one webhook of each other outcome, in UTC."""
    from tests.snapshot_data import BASE_TIME, fill

    monkeypatch.setenv("TZ", "UTC")
    time.tzset()
    # Retention would empty these bodies, which are months old by now.
    config = make_config(
        tmp_path, "http://127.0.0.1:9", "http://127.0.0.1:9", storage={"keep_events_days": 0}
    )
    asyncio.run(fill(config))
    asyncio.run(_add_other_outcomes(config, BASE_TIME + 9 * 61))
    return config


async def _add_other_outcomes(config: Config, first: float) -> None:
    stranger = "9Z9Z9Z-STRANGER-000000"
    text = webhook(
        INSTANCE, text_message("Bom dia! O boleto chegou?"), message_id="3EB0C0FFEE", moment=0
    )
    # Only the fields that matter here, so that the screen shows the whole body.
    own_photo = {
        "event": "webhookReceived",
        "instanceId": INSTANCE,
        "messageId": "3EB0FEEDFACE",
        "fromMe": True,
        "msgContent": media_message(
            MediaKind.IMAGE,
            {"mimetype": "image/jpeg", "caption": "Segue a foto", "jpegThumbnail": THUMBNAIL},
        ),
    }
    info = MediaInfo(MediaKind.IMAGE, "image/jpeg", None, None, None, None, None)
    deliveries = [
        WebhookDelivery(
            "instanceId=3B6XIW&messageId=42", first, "rejected",
            "the body is not valid JSON: Expecting value: line 1 column 1 (char 0)",
        ),
        WebhookDelivery(
            '{"event": "webhookReceived", "instanceId": "' + stranger + '"}', first + 30,
            "refused", f"instance {stranger} is not in the config",
            _event(stranger, None, None),
        ),
        WebhookDelivery(
            json.dumps(text), first + 60, "ignored", None,
            _event(INSTANCE, "3EB0C0FFEE", None), CLIENT,
        ),
        WebhookDelivery(
            json.dumps(own_photo), first + 90, "ignored",
            "media sent by the connected phone; [downloads] download_from_me is off",
            _event(INSTANCE, "3EB0FEEDFACE", info), CLIENT,
        ),
    ]  # fmt: skip
    store = await SQLiteStore.open(config.storage.database)
    try:
        for delivery in deliveries:
            await store.record_webhook(delivery)
    finally:
        await store.close()


def _event(instance: str, message_id: str | None, media: MediaInfo | None) -> WebhookEvent:
    return WebhookEvent(
        "webhookReceived", instance, message_id, media is not None, False, 0,
        "5569911111111", "5569911111111", "Maria", media,
    )  # fmt: skip


@pytest.mark.parametrize("depth", [50, 600, 990, 5_000])
def test_a_body_nested_deep_is_shown_not_a_crash(depth: int) -> None:
    body = "[" * depth + "]" * depth
    event = StoredEvent(1, time.time(), None, None, None, "rejected", "too deep", body)
    screen = WebhookEventsScreen(_no_events, _no_event, _no_replay, running=lambda: False)

    shown = screen._body(event)

    assert isinstance(shown, JSON | Text)


async def _no_events(limit: int) -> list[StoredEvent]:
    return []


async def _no_event(event_id: int) -> StoredEvent | None:
    return None


async def _no_replay(event_id: int) -> IntakeResult:
    raise AssertionError("nothing is replayed here")


async def test_the_listing_leaves_bodies_out_and_one_read_brings_them(tmp_path: Path) -> None:
    store = await SQLiteStore.open(tmp_path / "mediamon.db")
    try:
        big = json.dumps({"instanceId": INSTANCE, "pad": "x" * 1_000_000})
        await store.record_webhook(WebhookDelivery(big, time.time(), "rejected", "no messageId"))
        listed = await store.list_events(10, bodies=False)
        whole = await store.get_event(listed[0].id)
    finally:
        await store.close()

    assert [(event.outcome, event.reason, event.body) for event in listed] == [
        ("rejected", "no messageId", None)
    ]
    assert whole is not None and whole.body == big


def test_a_body_of_megabytes_is_cut_not_laid_out() -> None:
    body = json.dumps([{"n": number} for number in range(200_000)])
    event = StoredEvent(1, time.time(), None, None, None, "rejected", "no instanceId", body)
    screen = WebhookEventsScreen(_no_events, _no_event, _no_replay, running=lambda: False)

    shown = screen._body(event)

    assert isinstance(shown, Text)
    assert shown.plain.endswith(
        f"… {len(body) - BODY_SHOWN:,} more characters (mediamon events --json prints them)"
    )
