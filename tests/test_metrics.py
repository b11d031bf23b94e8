"""GET /metrics: Prometheus text built from the event stream and the store's totals."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from pathlib import Path

import aiohttp
import prometheus_client
from prometheus_client.parser import text_string_to_metric_families
from textual.pilot import Pilot

from mediamon.core.eventlog import describe
from mediamon.core.events import AttemptFinished
from mediamon.core.metrics import MAX_EVENT_NAMES
from mediamon.core.models import MediaKind, MediaStatus
from mediamon.runtime import Runtime
from mediamon.tui.app import MonitorApp
from mediamon.tui.media_table import MediaTable
from tests.conftest import INSTANCE, make_config, media_webhook, post, wait_for, wait_settled
from tests.fakes.cdn import FakeCdn
from tests.fakes.payloads import text_message, webhook
from tests.fakes.wapi import FakeWapi

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


async def scrape(http: aiohttp.ClientSession, runtime: Runtime) -> Samples:
    """Every sample of /metrics, keyed by name and labels."""
    async with http.get(runtime.url.replace("/webhook", "/metrics")) as response:
        assert response.status == 200
        assert response.content_type == "text/plain"
        text = await response.text()
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


async def test_metrics_count_webhooks_and_tries_and_read_the_store(
    runtime: Runtime, wapi: FakeWapi, http: aiohttp.ClientSession
) -> None:
    # Both quick tries at W-API fail, so the CDN delivers within the same attempt.
    wapi.fail("500", times=2)
    body = media_webhook(wapi, MediaKind.IMAGE, size=12_345)

    await post(http, runtime.url, body)
    await post(http, runtime.url, body)
    await post(http, runtime.url, webhook(INSTANCE, text_message("hello")))
    await post(http, runtime.url, b"not json")
    media = await wait_settled(runtime, body["messageId"])
    samples = await scrape(http, runtime)

    assert media.source == "cdn"
    received = "webhookReceived"
    assert value(samples, "mediamon_webhooks_total", event=received, outcome="accepted") == 2
    assert value(samples, "mediamon_webhooks_total", event=received, outcome="ignored") == 1
    assert value(samples, "mediamon_webhooks_total", event="unknown", outcome="rejected") == 1
    tries = "mediamon_download_attempts_total"
    assert value(samples, tries, source="wapi", outcome="failed") == 1
    assert value(samples, tries, source="cdn", outcome="done") == 1
    assert value(samples, tries, source="wapi", outcome="done") == 0
    seconds = "mediamon_download_seconds_count"
    assert value(samples, seconds, source="cdn", outcome="done") == 1
    assert value(samples, seconds, source="wapi", outcome="failed") == 1
    assert value(samples, "mediamon_media", status="done") == 1
    assert value(samples, "mediamon_media", status="failed") == 0
    assert value(samples, "mediamon_stored_bytes") == 12_345
    assert value(samples, "mediamon_queue_depth") == 0


async def test_queue_depth_and_statuses_are_read_at_each_scrape(
    tmp_path: Path, wapi: FakeWapi, cdn: FakeCdn, http: aiohttp.ClientSession
) -> None:
    config = make_config(
        tmp_path, wapi.url, cdn.url, downloads={"concurrency": 1, "sources": ["wapi"]}
    )
    wapi.hold_files = asyncio.Event()
    async with Runtime(config) as runtime:
        bodies = [media_webhook(wapi, size=2_000 + n) for n in range(3)]
        for body in bodies:
            await post(http, runtime.url, body)
        await wait_for(lambda: _files_in_flight(wapi, 1))

        held = await scrape(http, runtime)
        wapi.hold_files.set()
        for body in bodies:
            await wait_settled(runtime, body["messageId"])
        settled = await scrape(http, runtime)

    assert value(held, "mediamon_queue_depth") == 2
    assert value(held, "mediamon_media", status="downloading") == 1
    assert value(held, "mediamon_media", status="queued") == 2
    assert value(settled, "mediamon_queue_depth") == 0
    assert value(settled, "mediamon_media", status="done") == 3
    assert value(settled, "mediamon_stored_bytes") == 2_000 + 2_001 + 2_002


async def test_each_runtime_has_its_own_registry(
    tmp_path: Path, wapi: FakeWapi, cdn: FakeCdn, http: aiohttp.ClientSession
) -> None:
    first = make_config(tmp_path / "first", wapi.url, cdn.url)
    second = make_config(tmp_path / "second", wapi.url, cdn.url)
    async with Runtime(first) as one, Runtime(second) as other:
        await post(http, one.url, webhook(INSTANCE, text_message("only to the first")))
        counted_once = await scrape(http, one)
        counted_nothing = await scrape(http, other)

    ignored = {"event": "webhookReceived", "outcome": "ignored"}
    assert value(counted_once, "mediamon_webhooks_total", **ignored) == 1
    assert value(counted_nothing, "mediamon_webhooks_total", **ignored) == 0
    global_names = {metric.name for metric in prometheus_client.REGISTRY.collect()}
    assert not any(name.startswith("mediamon") for name in global_names)


async def test_event_names_from_bodies_cannot_grow_the_scrape_without_end(
    runtime: Runtime, http: aiohttp.ClientSession
) -> None:
    names = [f"webhookMadeUp{n}" for n in range(MAX_EVENT_NAMES + 9)]
    for name in names:
        await post(http, runtime.url, webhook(INSTANCE, text_message("hi"), event=name))
    samples = await scrape(http, runtime)

    labelled = {
        dict(labels)["event"]
        for name, labels in samples
        if name == "mediamon_webhooks_total" and dict(labels)["outcome"] == "ignored"
    }
    assert len(labelled) == MAX_EVENT_NAMES + 1
    assert "other" in labelled
    assert value(samples, "mediamon_webhooks_total", event="other", outcome="ignored") == 9


async def test_a_source_try_adds_no_log_line_and_no_row(
    tmp_path: Path, wapi: FakeWapi, cdn: FakeCdn, http: aiohttp.ClientSession
) -> None:
    assert describe(AttemptFinished(1, "wapi", "failed", 500, 0.2)) is None

    wapi.fail("500", times=2)
    app = MonitorApp(make_config(tmp_path, wapi.url, cdn.url))
    async with app.run_test(size=(150, 45)) as pilot:
        await wait_for(_set(app.started))
        tries = app.runtime.bus.subscribe()
        body = media_webhook(wapi)
        await post(http, app.runtime.url, body)
        await wait_settled(app.runtime, body["messageId"])
        table = app.query_one(MediaTable)
        await wait_for(_shows_done(pilot, table))
        seen = [event for event in tries.drain() if isinstance(event, AttemptFinished)]

    assert [(event.source, event.outcome) for event in seen] == [
        ("wapi", "failed"),
        ("cdn", "done"),
    ]
    assert table.row_count == 1


async def _files_in_flight(wapi: FakeWapi, count: int) -> bool:
    return wapi.files_in_flight == count


def _set(event: asyncio.Event) -> Callable[[], Awaitable[bool]]:
    async def check() -> bool:
        return event.is_set()

    return check


def _shows_done(pilot: Pilot[int], table: MediaTable) -> Callable[[], Awaitable[bool]]:
    async def check() -> bool:
        await pilot.pause()
        return [media.status for media in table.records.values()] == [MediaStatus.DONE]

    return check
