"""The download manager: takes due media from the store and turns them into verified files.

One dispatcher claims due rows, at most `concurrency` in flight, each in its own task
on the event loop. An attempt tries the configured sources in order; a source that
fails for this media hands over to the next, and the bytes any source delivers are
checked against the payload's size and SHA-256 before they may take the final name.
When every source failed and one of the failures may pass, the row is `retrying`
with its next time in the store (exponential backoff with jitter, computed by
tenacity, never sooner than a Retry-After), so the schedule survives a restart.
Stopping the manager cancels what is in flight and puts it back in the queue
without spending an attempt.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import PurePosixPath
from typing import Any, Final
from urllib.parse import quote

from tenacity import RetryCallState, wait_exponential_jitter

from mediamon.core.config import Config, Instance
from mediamon.core.events import (
    AttemptFailed,
    AttemptFinished,
    DownloadStarted,
    EventBus,
    MediaFailed,
    MediaStored,
)
from mediamon.core.files import LocalFileStore, StorageWriteError
from mediamon.core.layout import media_relpath
from mediamon.core.models import Attempt, MediaRecord, MediaStatus
from mediamon.core.sources.base import Source, SourceFailure
from mediamon.core.store import AttemptOutcome, Store

logger = logging.getLogger(__name__)

POLL_INTERVAL: Final = 1.0
"""Seconds between looks at the store for work that another process queued."""

HIDDEN: Final = "***"
"""What a token or the webhook secret becomes in a failure's reason."""


@dataclass(frozen=True, slots=True)
class _Tried:
    """What one source did with one media, for the attempt history."""

    attempt: Attempt
    failure: SourceFailure | None


class DownloadManager:
    def __init__(
        self,
        config: Config,
        store: Store,
        bus: EventBus,
        sources: Sequence[Source],
        files: LocalFileStore,
    ) -> None:
        self._config = config
        self._store = store
        self._bus = bus
        self._sources = list(sources)
        self._files = files
        self._settings = config.downloads
        self._secrets = sorted(config.secrets, key=len, reverse=True)
        self._backoff = wait_exponential_jitter(
            multiplier=self._settings.backoff_initial,
            max=self._settings.backoff_max,
            jitter=self._settings.backoff_initial,
        )
        self._in_flight: dict[int, asyncio.Task[None]] = {}
        self._wakeup = asyncio.Event()
        self._dispatcher: asyncio.Task[None] | None = None
        self.paused = False

    @property
    def running(self) -> bool:
        return self._dispatcher is not None and not self._dispatcher.done()

    @property
    def in_flight(self) -> int:
        return len(self._in_flight)

    def start(self) -> None:
        if self._dispatcher is None:
            self._dispatcher = asyncio.create_task(self._dispatch(), name="mediamon-dispatch")

    def wake(self) -> None:
        """New work may be due: look at the store now instead of at the next poll."""
        self._wakeup.set()

    def pause(self) -> None:
        """Start no new downloads; those in flight finish."""
        self.paused = True

    def resume(self) -> None:
        self.paused = False
        self.wake()

    async def stop(self) -> None:
        """Cancel the dispatcher and every download, and queue the downloads again."""
        if self._dispatcher is not None:
            self._dispatcher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._dispatcher
            self._dispatcher = None

        interrupted = list(self._in_flight)
        for task in self._in_flight.values():
            task.cancel()
        await asyncio.gather(*self._in_flight.values(), return_exceptions=True)
        self._in_flight.clear()
        await self._store.release(interrupted)
        if interrupted:
            logger.info("%d download(s) interrupted and queued again", len(interrupted))

    # The dispatcher.

    async def _dispatch(self) -> None:
        while True:
            self._wakeup.clear()
            free = self._settings.concurrency - len(self._in_flight)
            claimed = 0
            if free > 0 and not self.paused:
                try:
                    claimed = await self._claim(free)
                except Exception:
                    logger.exception("could not take work from the database; trying again")
            if free <= 0 or (claimed and claimed == free):
                # Every slot is busy: only a finished download (or a stop) can change
                # anything, and it sets the wake-up; polling the queue now is waste.
                await self._wakeup.wait()
                continue
            delay = await self._idle_delay()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wakeup.wait(), delay)

    async def _claim(self, free: int) -> int:
        now = time.time()
        due = await self._store.next_due_at()
        if due is None or due > now:
            return 0
        claimed = await self._store.claim_due(now, free)
        for media in claimed:
            task = asyncio.create_task(self._download(media), name=f"mediamon-{media.id}")
            self._in_flight[media.id] = task
            task.add_done_callback(partial(self._finished, media.id))
        return len(claimed)

    def _finished(self, media_id: int, _: asyncio.Task[None]) -> None:
        self._in_flight.pop(media_id, None)
        self._wakeup.set()

    async def _idle_delay(self) -> float:
        try:
            due = await self._store.next_due_at()
        except Exception:
            return POLL_INTERVAL
        if due is None:
            return POLL_INTERVAL
        return min(max(due - time.time(), 0.01), POLL_INTERVAL)

    # One attempt at one media.

    async def _download(self, media: MediaRecord) -> None:
        self._bus.publish(DownloadStarted(media))
        started = time.monotonic()
        try:
            outcome = await self._attempt(media)
        except Exception:
            logger.exception("download of %s stopped by an unexpected error", media.message_id)
            outcome = self._retry_or_fail(media, [], "internal error; see the log")
        try:
            finished = await self._store.finish_attempt(outcome)
        except Exception:
            # The row stays `downloading`; the next start queues it again.
            logger.exception("could not record the outcome for %s", media.message_id)
            return
        self._announce(finished, time.monotonic() - started)

    async def _attempt(self, media: MediaRecord) -> AttemptOutcome:
        instance = self._config.instance(media.instance_id)
        if instance is None:
            return AttemptOutcome(
                media.id,
                MediaStatus.FAILED,
                error=f"instance {media.instance_id} is no longer in the config",
            )
        relpath = media_relpath(
            client=media.client,
            instance_id=media.instance_id,
            kind=media.kind,
            message_id=media.message_id,
            mimetype=media.mimetype,
            file_name=media.file_name,
        )

        tried: list[_Tried] = []
        for source in self._sources:
            started = time.time()
            try:
                sha256, size = await self._fetch_verified(source, media, instance, relpath)
            except SourceFailure as raised:
                failure = self._without_secrets(raised)
                tried.append(_Tried(self._finish_try(media, source, started, failure), failure))
                logger.debug("%s via %s: %s", media.message_id, source.name, failure.reason)
                if failure.final:
                    break
                continue
            except StorageWriteError as error:
                # The disk, not the source, failed: the next source would fail alike.
                disk = SourceFailure(str(error))
                tried.append(_Tried(self._finish_try(media, source, started, disk), disk))
                break

            done = self._finish_try(media, source, started, None, size)
            return AttemptOutcome(
                media.id,
                MediaStatus.DONE,
                tries=[*(t.attempt for t in tried), done],
                path=relpath.as_posix(),
                sha256=sha256,
                size=size,
                source=source.name,
            )
        return self._after_failures(media, tried)

    async def _fetch_verified(
        self, source: Source, media: MediaRecord, instance: Instance, relpath: PurePosixPath
    ) -> tuple[str, int]:
        partial = self._files.open_partial(relpath)
        try:
            await source.fetch(media, instance, partial)
            _verify(media, source.name, partial.size, partial.sha256)
            await partial.commit()
        finally:
            partial.discard()
        return partial.sha256, partial.size

    def _finish_try(
        self,
        media: MediaRecord,
        source: Source,
        started: float,
        failure: SourceFailure | None,
        size: int | None = None,
    ) -> Attempt:
        """One source's try as the attempt history keeps it, announced on the bus."""
        attempt = Attempt(
            media_id=media.id,
            number=media.attempts,
            source=source.name,
            started_at=started,
            finished_at=time.time(),
            outcome="done" if failure is None else "failed",
            http_status=failure.http_status if failure else None,
            error=failure.reason if failure else None,
            size=size,
        )
        self._bus.publish(
            AttemptFinished(
                media.id,
                attempt.source,
                attempt.outcome,
                attempt.http_status,
                max(attempt.finished_at - attempt.started_at, 0.0),
            )
        )
        return attempt

    def _without_secrets(self, failure: SourceFailure) -> SourceFailure:
        """The failure, with any token or secret that a server echoed back hidden.

        A reason reaches the database, the log, `list` and the screen, and W-API's
        error messages are quoted into it as they come.
        """
        reason = failure.reason
        for secret in self._secrets:
            reason = reason.replace(secret, HIDDEN).replace(quote(secret, safe=""), HIDDEN)
        if reason == failure.reason:
            return failure
        return SourceFailure(
            reason,
            transient=failure.transient,
            final=failure.final,
            http_status=failure.http_status,
            retry_after=failure.retry_after,
        )

    def _after_failures(self, media: MediaRecord, tried: list[_Tried]) -> AttemptOutcome:
        failures = [t.failure for t in tried if t.failure is not None]
        history = [t.attempt for t in tried]
        final = next((failure for failure in failures if failure.final), None)
        if final is not None:
            return AttemptOutcome(media.id, MediaStatus.FAILED, history, error=final.reason)
        return self._retry_or_fail(media, history, _summary(tried), failures)

    def _retry_or_fail(
        self,
        media: MediaRecord,
        history: Sequence[Attempt],
        error: str,
        failures: Sequence[SourceFailure] = (),
    ) -> AttemptOutcome:
        # The last source has the last word: bytes it found corrupt will not mend,
        # whatever an earlier source's passing trouble was.
        transient = not failures or failures[-1].transient
        if not transient:
            return AttemptOutcome(media.id, MediaStatus.FAILED, history, error=error)
        if media.attempts >= self._settings.max_attempts:
            return AttemptOutcome(
                media.id,
                MediaStatus.FAILED,
                history,
                error=f"gave up after {media.attempts} attempts: {error}",
            )
        delay = self.backoff(media.attempts)
        retry_after = max((f.retry_after or 0.0 for f in failures), default=0.0)
        delay = max(delay, min(retry_after, self._settings.backoff_max))
        return AttemptOutcome(
            media.id,
            MediaStatus.RETRYING,
            history,
            error=error,
            next_attempt_at=time.time() + delay,
        )

    def backoff(self, attempts: int) -> float:
        """Seconds to wait after the `attempts`-th failed attempt."""
        # tenacity's wait strategies read only the attempt number from the state.
        no_retrying: Any = None
        state = RetryCallState(retry_object=no_retrying, fn=None, args=(), kwargs={})
        state.attempt_number = attempts
        return float(self._backoff(state))

    def _announce(self, media: MediaRecord, seconds: float) -> None:
        if media.status is MediaStatus.DONE:
            self._bus.publish(MediaStored(media, seconds))
        elif media.status is MediaStatus.RETRYING:
            retry_in = max((media.next_attempt_at or 0) - time.time(), 0.0)
            self._bus.publish(AttemptFailed(media, self._settings.max_attempts, retry_in))
        elif media.status is MediaStatus.FAILED:
            self._bus.publish(MediaFailed(media))


def _verify(media: MediaRecord, source: str, size: int, sha256: str) -> None:
    if media.expected_size is not None and size != media.expected_size:
        raise SourceFailure(
            f"{source} delivered {size} bytes, the payload says {media.expected_size}"
        )
    if media.expected_sha256 is not None and sha256 != media.expected_sha256:
        raise SourceFailure(f"{source} delivered bytes whose SHA-256 does not match fileSha256")


def _summary(tried: Sequence[_Tried]) -> str:
    """One source's reason as it is; several, each named by its source."""
    failed = [(t.attempt.source, t.failure.reason) for t in tried if t.failure]
    if len(failed) == 1:
        return failed[0][1]
    return "; ".join(f"{source}: {reason}" for source, reason in failed) or "no source"
