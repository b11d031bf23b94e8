"""Prometheus metrics: counted from the event stream, read from the store when scraped.

Each runtime owns its own `CollectorRegistry`, never the process-wide one, so two
runtimes in one process (the tests, a monitor beside a server) cannot clash over a
metric name. What happens (webhooks, source tries, their durations) is counted by
following the `EventBus`; what is (media per status, bytes stored, queue depth) is
read from the store's trigger-kept totals at each scrape, so those stay exact across
restarts and whatever other processes change.

The counters start at zero with each runtime, as Prometheus expects of a counter. A
subscriber that falls far behind loses events (see `Subscription.dropped`); scraping
first takes in everything waiting, so only a backlog of thousands could undercount.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterable, Iterator
from typing import Final

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
)
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from mediamon.core.events import AttemptFinished, Event, EventBus, WebhookReceived
from mediamon.core.models import MediaStatus
from mediamon.core.store import Store

CONTENT_TYPE: Final = CONTENT_TYPE_LATEST
"""The Content-Type of `Metrics.exposition()`."""

MAX_EVENT_NAMES: Final = 16
"""Distinct webhook event names given their own label; later ones count as "other".

The name comes from the body, so without a bound anyone who can post could make
the scrape grow without end."""

DURATION_BUCKETS: Final = (0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0)


class Metrics:
    """The metrics of one runtime. `start()` follows the bus; `exposition()` is a scrape."""

    def __init__(self, store: Store, bus: EventBus) -> None:
        self.registry = CollectorRegistry()
        self._store = store
        self._subscription = bus.subscribe()
        self._follower: asyncio.Task[None] | None = None
        self._event_names: set[str] = set()
        self._webhooks = Counter(
            "mediamon_webhooks",
            "Webhooks received, by W-API event and what mediamon made of them.",
            ("event", "outcome"),
            registry=self.registry,
        )
        self._attempts = Counter(
            "mediamon_download_attempts",
            "Tries of one source at one media, by source and outcome (done or failed).",
            ("source", "outcome"),
            registry=self.registry,
        )
        self._seconds = Histogram(
            "mediamon_download_seconds",
            "Seconds one source's try at one media took, by source and outcome.",
            ("source", "outcome"),
            buckets=DURATION_BUCKETS,
            registry=self.registry,
        )
        self._totals = _StoreTotals()
        self.registry.register(self._totals)

    def start(self) -> None:
        if self._follower is None:
            self._follower = asyncio.create_task(self._follow(), name="mediamon-metrics")

    async def stop(self) -> None:
        if self._follower is not None:
            self._follower.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._follower
            self._follower = None
        self._subscription.close()

    async def exposition(self) -> bytes:
        """Every metric in Prometheus' text format, current as of this call."""
        self._count(self._subscription.drain())
        self._totals.current = await self._store.totals()
        return generate_latest(self.registry)

    async def _follow(self) -> None:
        async for event in self._subscription:
            self._count((event,))

    def _count(self, events: Iterable[Event]) -> None:
        for event in events:
            if isinstance(event, WebhookReceived):
                self._webhooks.labels(self._event_label(event.event), event.outcome).inc()
            elif isinstance(event, AttemptFinished):
                self._attempts.labels(event.source, event.outcome).inc()
                self._seconds.labels(event.source, event.outcome).observe(event.seconds)

    def _event_label(self, name: str) -> str:
        if name in self._event_names:
            return name
        if len(self._event_names) < MAX_EVENT_NAMES:
            self._event_names.add(name)
            return name
        return "other"


class _StoreTotals(Collector):
    """The gauges the store already keeps, from the totals read at the last scrape."""

    def __init__(self) -> None:
        self.current: dict[MediaStatus, tuple[int, int]] = {}

    def describe(self) -> Iterable[Metric]:
        return list(self._families({}))

    def collect(self) -> Iterable[Metric]:
        return list(self._families(self.current))

    def _families(self, totals: dict[MediaStatus, tuple[int, int]]) -> Iterator[Metric]:
        media = GaugeMetricFamily("mediamon_media", "Media rows by status.", labels=("status",))
        for status in MediaStatus:
            media.add_metric((status.value,), totals.get(status, (0, 0))[0])
        yield media

        stored = totals.get(MediaStatus.DONE, (0, 0))[1]
        yield GaugeMetricFamily(
            "mediamon_stored_bytes", "Bytes of the verified files on disk.", value=stored
        )

        waiting = sum(totals.get(status, (0, 0))[0] for status in _WAITING)
        yield GaugeMetricFamily(
            "mediamon_queue_depth",
            "Media waiting for a download: queued or retrying.",
            value=waiting,
        )


_WAITING: Final = (MediaStatus.QUEUED, MediaStatus.RETRYING)
