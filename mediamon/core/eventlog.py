"""One short, aligned line per event, for `serve`'s log and the TUI's event log.

<-- image 3EB0C4F1 from Maria (3B6XIW…)
--> done  3EB0C4F1 76.9 kB in 0.4 s via wapi
!!  retry 3EB0C4F1 2/6 in 4 s: W-API 500: Falha ao fazer o download do conteúdo.
??  missing 3EB0C4F1 cliente_2/instance_3B6XIW-ZTS923-GEAY6V/image/3EB0C4F1….jpg
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Final

from mediamon.core.events import (
    AttemptFailed,
    Event,
    FileWentMissing,
    MediaChanged,
    MediaFailed,
    MediaQueued,
    MediaStored,
    Subscription,
    WebhookReceived,
)
from mediamon.core.models import MediaStatus

logger = logging.getLogger(__name__)

ID_WIDTH: Final = 8


def describe(event: Event) -> tuple[int, str] | None:
    """The log level and line for an event, or None for events nobody needs to read."""
    match event:
        case MediaQueued(media=media, duplicate=False):
            origin = f"from {media.sender}" if not media.from_me else f"to {media.chat_id or '?'}"
            line = f"<-- {media.kind.value:<5} {short_id(media.message_id)} {origin}"
            return logging.INFO, f"{line} ({short_id(media.instance_id, 6)}…)"
        case MediaQueued(media=media, duplicate=True):
            line = f"<-- again {short_id(media.message_id)} delivered again; kept once"
            return logging.INFO, line
        case WebhookReceived(outcome="ignored", event=name, instance_id=instance):
            return logging.DEBUG, f"<-- {name} without media ({short_id(instance or '?', 6)}…)"
        case WebhookReceived(outcome="refused" | "rejected" as outcome, reason=reason):
            return logging.WARNING, f"!!  {outcome[:5]} webhook: {reason}"
        case MediaStored(media=media, seconds=seconds):
            size = human_size(media.stored_size or 0)
            line = f"--> done  {short_id(media.message_id)} {size} in {seconds:.1f} s"
            return logging.INFO, f"{line} via {media.source}"
        case AttemptFailed(media=media, max_attempts=limit, retry_in=retry_in):
            line = f"!!  retry {short_id(media.message_id)} {media.attempts}/{limit}"
            return logging.INFO, f"{line} in {human_seconds(retry_in)}: {media.last_error}"
        case MediaFailed(media=media):
            return logging.WARNING, f"!!  fail  {short_id(media.message_id)} {media.last_error}"
        case MediaChanged(media=media) if media.status is MediaStatus.QUEUED:
            return logging.INFO, f"..  queue {short_id(media.message_id)} queued again"
        case MediaChanged(media=media) if media.status is MediaStatus.DONE:
            line = f"--> back  {short_id(media.message_id)} file back on disk, hash verified"
            return logging.INFO, line
        case FileWentMissing(media=media):
            reason = media.last_error or "file is gone"
            return logging.WARNING, f"??  miss  {short_id(media.message_id)} {reason}"
    return None


ROUTINE_LINES_PER_SECOND: Final = 50
"""Routine lines (INFO) written in any one second; warnings are always written."""


async def log_events(subscription: Subscription) -> None:
    """Write a line for each event until cancelled, holding back floods of routine ones.

    At thousands of webhooks a second a line each would cost the server a tenth of its
    time and no one could read them; past `ROUTINE_LINES_PER_SECOND` the routine lines
    of that second are counted instead, and one line says how many were not shown. The
    store keeps every event (`mediamon events`, `mediamon list`).
    """
    throttle = _Throttle(ROUTINE_LINES_PER_SECOND)
    try:
        while True:
            first = await subscription.get()
            for event in (first, *subscription.drain()):
                described = describe(event)
                if described is None:
                    continue
                level, line = described
                if level > logging.INFO or throttle.admit():
                    logger.log(level, "%s", line)
    finally:
        throttle.flush()


class _Throttle:
    """Admits `limit` lines a second and reports those it held back when the second ends."""

    def __init__(self, limit: int) -> None:
        self._limit = limit
        self._window_start = time.monotonic()
        self._admitted = 0
        self._held_back = 0
        self._report: asyncio.TimerHandle | None = None

    def admit(self) -> bool:
        now = time.monotonic()
        if now - self._window_start >= 1.0:
            self.flush()  # which starts the next second's count
        if self._admitted < self._limit:
            self._admitted += 1
            return True

        self._held_back += 1
        if self._report is None:
            delay = max(0.0, self._window_start + 1.0 - now)
            self._report = asyncio.get_running_loop().call_later(delay, self.flush)
        return False

    def flush(self) -> None:
        if self._report is not None:
            self._report.cancel()
            self._report = None
        if self._held_back:
            logger.info(
                "..  %d more routine lines in the last second not shown "
                "(mediamon events and mediamon list have every one)",
                self._held_back,
            )
        self._admitted = self._held_back = 0
        self._window_start = time.monotonic()


def short_id(text: str, width: int = ID_WIDTH) -> str:
    return text[:width].ljust(width)


def human_size(size: float) -> str:
    """Sizes as people read them on a download bar: 76.9 kB, 3.2 MB (powers of 1000)."""
    for unit in ("B", "kB", "MB", "GB"):
        if abs(size) < 1000 or unit == "GB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1000
    return f"{size:.1f} TB"  # pragma: no cover


def human_seconds(seconds: float) -> str:
    if seconds < 60:
        return f"{seconds:.0f} s"
    if seconds < 3600:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"
