"""The stream of what happens, for the TUI, the log lines and the tests.

Stages publish past-tense events to one `EventBus`; each subscriber gets its own
queue, so a slow reader never holds up a download or a webhook answer. A subscriber
that falls more than `max_backlog` events behind loses the oldest ones and is told
how many through `dropped`; the store stays the truth, the stream only the news.
"""

from __future__ import annotations

import asyncio
import collections
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Final

from mediamon.core.models import MediaRecord

logger = logging.getLogger(__name__)

DEFAULT_BACKLOG: Final = 10_000


@dataclass(frozen=True, slots=True)
class WebhookReceived:
    event_id: int
    event: str
    instance_id: str | None
    outcome: str
    reason: str | None = None


@dataclass(frozen=True, slots=True)
class MediaQueued:
    media: MediaRecord
    duplicate: bool = False


@dataclass(frozen=True, slots=True)
class DownloadStarted:
    media: MediaRecord


@dataclass(frozen=True, slots=True)
class AttemptFailed:
    """An attempt failed and the media will be tried again at `media.next_attempt_at`."""

    media: MediaRecord
    max_attempts: int
    retry_in: float


@dataclass(frozen=True, slots=True)
class AttemptFinished:
    """One source's try at one media ended; an attempt publishes one per source it tries.

    It names the media by id rather than carrying the row: the row it could carry is
    the one claimed when the attempt began, already stale, and whoever shows rows
    takes them from the events that end the attempt.
    """

    media_id: int
    source: str
    outcome: str
    """done or failed, as in the attempt history."""
    http_status: int | None
    seconds: float


@dataclass(frozen=True, slots=True)
class MediaStored:
    media: MediaRecord
    seconds: float


@dataclass(frozen=True, slots=True)
class MediaFailed:
    media: MediaRecord


@dataclass(frozen=True, slots=True)
class FileWentMissing:
    media: MediaRecord


@dataclass(frozen=True, slots=True)
class MediaChanged:
    """A row changed in a way no other event names: released, reprocessed, restored."""

    media: MediaRecord


Event = (
    WebhookReceived
    | MediaQueued
    | DownloadStarted
    | AttemptFailed
    | AttemptFinished
    | MediaStored
    | MediaFailed
    | FileWentMissing
    | MediaChanged
)


class Subscription:
    """One reader's queue of events."""

    def __init__(self, bus: EventBus, max_backlog: int) -> None:
        self._bus = bus
        self._events: collections.deque[Event] = collections.deque(maxlen=max_backlog)
        self._ready = asyncio.Event()
        self.dropped = 0

    def put(self, event: Event) -> None:
        if len(self._events) == self._events.maxlen:
            self.dropped += 1
        self._events.append(event)
        self._ready.set()

    async def get(self) -> Event:
        while not self._events:
            self._ready.clear()
            await self._ready.wait()
        return self._events.popleft()

    def drain(self) -> list[Event]:
        """Every event waiting now, without waiting for more."""
        events = list(self._events)
        self._events.clear()
        return events

    def close(self) -> None:
        self._bus.unsubscribe(self)

    def __aiter__(self) -> AsyncIterator[Event]:
        return self._iterate()

    async def _iterate(self) -> AsyncIterator[Event]:
        while True:
            yield await self.get()


class EventBus:
    def __init__(self) -> None:
        self._subscriptions: list[Subscription] = []

    def subscribe(self, max_backlog: int = DEFAULT_BACKLOG) -> Subscription:
        subscription = Subscription(self, max_backlog)
        self._subscriptions.append(subscription)
        return subscription

    def unsubscribe(self, subscription: Subscription) -> None:
        if subscription in self._subscriptions:
            self._subscriptions.remove(subscription)

    def publish(self, event: Event) -> None:
        for subscription in self._subscriptions:
            subscription.put(event)
