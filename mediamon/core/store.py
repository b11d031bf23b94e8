"""What the rest of mediamon asks of a store, so a second one can stand beside SQLite.

The store keeps webhook events and media rows, and it is also the durable job queue:
a media row that is `queued` or `retrying` is work, and `claim_due` hands it out.
Every status change goes through `finish_attempt`, `release` or the bulk calls here,
so a second implementation (PostgreSQL, say) has one small surface to cover.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from mediamon.core.models import Attempt, MediaKind, MediaRecord, MediaStatus, WebhookEvent


@dataclass(frozen=True, slots=True)
class WebhookDelivery:
    """A webhook as it arrived, and what the server made of it."""

    body: str
    received_at: float
    outcome: str
    """accepted, ignored (kept but nothing to fetch), refused (unknown instance)
    or rejected (a body that is not a W-API delivery)."""
    reason: str | None = None
    event: WebhookEvent | None = None
    client: str | None = None
    media_status: MediaStatus | None = None
    """The status a new media row starts in: queued, or failed when the payload
    cannot be fetched. None when no row is to be made."""


@dataclass(frozen=True, slots=True)
class RecordedWebhook:
    event_id: int
    media: MediaRecord | None = None
    created: bool = False
    """False when the media row already existed: W-API delivered the message again."""


@dataclass(frozen=True, slots=True)
class StoredEvent:
    """A webhook event as kept, for the inspector."""

    id: int
    received_at: float
    event: str | None
    instance_id: str | None
    message_id: str | None
    outcome: str
    reason: str | None
    body: str | None


@dataclass(frozen=True, slots=True)
class AttemptOutcome:
    """How one attempt at one media ended, and the state the row moves to."""

    media_id: int
    status: MediaStatus
    tries: Sequence[Attempt] = ()
    error: str | None = None
    next_attempt_at: float | None = None
    path: str | None = None
    sha256: str | None = None
    size: int | None = None
    source: str | None = None


@dataclass(frozen=True, slots=True)
class MediaQuery:
    """Which media rows to list, newest first."""

    statuses: frozenset[MediaStatus] = field(default_factory=frozenset)
    kinds: frozenset[MediaKind] = field(default_factory=frozenset)
    message_ids: tuple[str, ...] = ()
    """Message ids, or their first characters."""
    text: str = ""
    """Found anywhere in the message id, sender, chat, file name or caption."""
    limit: int | None = 200
    before_id: int | None = None


@dataclass(frozen=True, slots=True)
class StoredFile:
    """Where the store believes a media file is, and what it should hash to."""

    media_id: int
    path: str
    status: MediaStatus
    sha256: str | None


class Store(Protocol):
    async def close(self) -> None: ...

    async def record_webhook(self, delivery: WebhookDelivery) -> RecordedWebhook: ...

    async def claim_due(self, now: float, limit: int) -> list[MediaRecord]: ...

    async def next_due_at(self) -> float | None: ...

    async def finish_attempt(self, outcome: AttemptOutcome) -> MediaRecord: ...

    async def release(self, media_ids: Iterable[int]) -> None: ...

    async def requeue_interrupted(self) -> int: ...

    async def get_media(self, media_id: int) -> MediaRecord | None: ...

    async def list_media(self, query: MediaQuery) -> list[MediaRecord]: ...

    async def attempts(self, media_id: int) -> list[Attempt]: ...

    async def count_by_status(self) -> dict[MediaStatus, int]: ...

    async def totals(self) -> dict[MediaStatus, tuple[int, int]]: ...

    async def list_events(self, limit: int = 100, *, bodies: bool = True) -> list[StoredEvent]:
        """The newest events first; with `bodies` false each body is left out (None)."""
        ...

    async def get_event(self, event_id: int) -> StoredEvent | None: ...

    async def forget_event_bodies(self, received_before: float) -> int:
        """Drop the bodies of events received before `received_before`; the events stay.

        Returns how many bodies went. It works in short transactions, so that a large
        backlog never keeps a webhook waiting for the database.
        """
        ...

    async def changed_elsewhere(self) -> bool: ...

    async def stored_files_after(self, after: StoredFile | None, limit: int) -> list[StoredFile]:
        """Up to `limit` rows that have, or had, a file (`done` or `missing`), ordered by
        path and then id, starting after `after` (from the first when None).

        The scan pages through every such row with it, so each call must be one short
        read by an index on the path, whatever the size of the table.
        """
        ...

    async def media_at(self, relpath: str) -> list[MediaRecord]: ...

    async def mark_missing(self, reasons: dict[int, str]) -> list[MediaRecord]: ...

    async def mark_restored(self, media_ids: Iterable[int]) -> list[MediaRecord]: ...

    async def reprocess(
        self, *, statuses: Iterable[MediaStatus] = (), message_ids: Iterable[str] = ()
    ) -> list[MediaRecord]: ...
