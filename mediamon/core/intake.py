"""Intake: one webhook body in, an event recorded and its media queued.

This is what the HTTP handler calls once it has the body (`replay` reaches it the
same way, by posting a stored body to the running server); it knows nothing of
HTTP. Whatever the body holds, it is kept (a body that is not a delivery as
`rejected`, one for an instance the config does not list as `refused`), so nothing
that reached mediamon is lost. A repeated delivery of the same message adds an
event but no second media row.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

from mediamon.core.config import Config
from mediamon.core.errors import PayloadError
from mediamon.core.events import EventBus, MediaFailed, MediaQueued, WebhookReceived
from mediamon.core.models import MediaStatus, WebhookEvent
from mediamon.core.payload import parse_webhook
from mediamon.core.store import RecordedWebhook, Store, WebhookDelivery

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class IntakeResult:
    outcome: str
    """accepted, ignored, refused or rejected; see `WebhookDelivery.outcome`."""
    event_id: int
    reason: str | None = None
    media: int = 0
    duplicate: bool = False


class Intake:
    def __init__(self, config: Config, store: Store, bus: EventBus) -> None:
        self._config = config
        self._store = store
        self._bus = bus
        self._listeners: list[Callable[[], None]] = []

    def on_queued(self, listener: Callable[[], None]) -> None:
        """Call `listener()` whenever new media is queued (the download manager's wake)."""
        self._listeners.append(listener)

    async def receive(self, raw: bytes) -> IntakeResult:
        """Record one webhook body as it arrived."""
        received_at = time.time()
        body = raw.decode("utf-8", errors="replace")
        try:
            event = parse_webhook(_decode_json(raw))
        except PayloadError as error:
            return await self._reject(body, received_at, str(error))

        instance = self._config.instance(event.instance_id)
        if instance is None:
            refusal = f"instance {event.instance_id} is not in the config"
            return await self._record(
                WebhookDelivery(body, received_at, "refused", refusal, event), event
            )

        media_status = self._media_status(event)
        if media_status is None:
            outcome, reason = "ignored", self._ignored_reason(event)
        else:
            outcome, reason = "accepted", event.media.problem if event.media else None
        delivery = WebhookDelivery(
            body, received_at, outcome, reason, event, instance.client, media_status
        )
        return await self._record(delivery, event)

    def _media_status(self, event: WebhookEvent) -> MediaStatus | None:
        if event.media is None:
            return None
        if event.from_me and not self._config.downloads.download_from_me:
            return None
        return MediaStatus.FAILED if event.media.problem else MediaStatus.QUEUED

    def _ignored_reason(self, event: WebhookEvent) -> str | None:
        if event.media is not None and event.from_me:
            return "media sent by the connected phone; [downloads] download_from_me is off"
        return None

    async def _reject(self, body: str, received_at: float, reason: str) -> IntakeResult:
        logger.warning("webhook rejected: %s", reason)
        delivery = WebhookDelivery(body, received_at, "rejected", reason)
        recorded = await self._store.record_webhook(delivery)
        self._bus.publish(WebhookReceived(recorded.event_id, "unknown", None, "rejected", reason))
        return IntakeResult("rejected", recorded.event_id, reason)

    async def _record(self, delivery: WebhookDelivery, event: WebhookEvent) -> IntakeResult:
        recorded = await self._store.record_webhook(delivery)
        if delivery.outcome == "refused":
            logger.warning("webhook refused: %s", delivery.reason)
        self._bus.publish(
            WebhookReceived(
                recorded.event_id,
                event.event,
                event.instance_id,
                delivery.outcome,
                delivery.reason,
            )
        )
        self._announce(recorded)
        return IntakeResult(
            delivery.outcome,
            recorded.event_id,
            delivery.reason,
            media=1 if recorded.media is not None else 0,
            duplicate=recorded.media is not None and not recorded.created,
        )

    def _announce(self, recorded: RecordedWebhook) -> None:
        media = recorded.media
        if media is None:
            return
        if recorded.created and media.status is MediaStatus.FAILED:
            logger.warning("media %s cannot be fetched: %s", media.message_id, media.last_error)
            self._bus.publish(MediaFailed(media))
            return
        self._bus.publish(MediaQueued(media, duplicate=not recorded.created))
        if recorded.created:
            for listener in self._listeners:
                listener()


def _decode_json(raw: bytes) -> object:
    try:
        return json.loads(raw)
    except RecursionError as error:
        raise PayloadError("the body is JSON nested too deeply") from error
    except (ValueError, UnicodeDecodeError) as error:
        raise PayloadError(f"the body is not valid JSON: {_short(error)}") from error


def _short(error: Exception) -> str:
    text = str(error)
    return text if len(text) <= 120 else text[:117] + "..."
