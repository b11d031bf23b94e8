"""The whole pipeline wired in one event loop: store, intake, downloads and the server.

`serve` runs it with log lines, `run` inside Textual's loop, the tests on loopback.
Starting opens the store, queues again what a crash left half-done, starts the
download manager and only then listens, so /healthz is true from the first request.
Stopping goes the other way: no new webhooks, in-flight downloads back to the queue,
then the store closes.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Iterable, Sequence
from typing import Final

import aiohttp

from mediamon.core.config import Config
from mediamon.core.downloads import DownloadManager
from mediamon.core.errors import ConfigError, MediamonError
from mediamon.core.events import EventBus, MediaChanged
from mediamon.core.files import LocalFileStore
from mediamon.core.intake import Intake, IntakeResult
from mediamon.core.lifecycle import Lifecycle
from mediamon.core.metrics import Metrics
from mediamon.core.models import MediaRecord, MediaStatus
from mediamon.core.scan import ScanReport, reconcile
from mediamon.core.sources.base import Source
from mediamon.core.sources.cdn import CdnSource
from mediamon.core.sources.wapi import WapiSource
from mediamon.core.sqlite_store import SQLiteStore
from mediamon.core.watcher import FileWatcher
from mediamon.server.app import build_app
from mediamon.server.runner import WebhookServer

logger = logging.getLogger(__name__)

RETENTION_EVERY: Final = 3600.0
"""Seconds between passes that drop webhook bodies older than `keep_events_days`."""


class ReplayError(MediamonError):
    title = "replay"


class Runtime(Lifecycle):
    def __init__(self, config: Config, bus: EventBus | None = None) -> None:
        if not config.instances:
            raise ConfigError(
                f"{config.path or 'the config'}: no [[instances]]; add one with its id, "
                "token and client so that webhooks can be accepted"
            )
        self.config = config
        self.bus = bus or EventBus()
        self.files = LocalFileStore(config.storage.media_dir)
        self._store: SQLiteStore | None = None
        self._session: aiohttp.ClientSession | None = None
        self._manager: DownloadManager | None = None
        self._server: WebhookServer | None = None
        self._watcher: FileWatcher | None = None
        self._intake: Intake | None = None
        self._metrics: Metrics | None = None
        self._startup_scan: asyncio.Task[None] | None = None
        self._retention: asyncio.Task[None] | None = None
        self.scanned = asyncio.Event()
        """Set once the scan at start has finished."""
        self.retained = asyncio.Event()
        """Set once the retention pass at start has finished."""

    @property
    def running(self) -> bool:
        return self._server is not None and self._manager is not None

    @property
    def store(self) -> SQLiteStore:
        if self._store is None:
            raise RuntimeError("the runtime is not started")
        return self._store

    @property
    def manager(self) -> DownloadManager:
        if self._manager is None:
            raise RuntimeError("the runtime is not started")
        return self._manager

    @property
    def watcher(self) -> FileWatcher:
        if self._watcher is None:
            raise RuntimeError("the runtime is not started")
        return self._watcher

    async def scan(self, *, verify: bool = False) -> ScanReport:
        """A reconciliation scan now, while everything runs."""
        report = await reconcile(
            self.store, self.files, self.bus, verify=verify, only_own_parts_live=True
        )
        logger.info("scan: %s", report.summary())
        return report

    async def reprocess(
        self, *, statuses: Iterable[MediaStatus] = (), message_ids: Iterable[str] = ()
    ) -> list[MediaRecord]:
        """Queue media again with a fresh attempt budget, and wake the downloads."""
        queued = await self.store.reprocess(statuses=statuses, message_ids=message_ids)
        for media in queued:
            self.bus.publish(MediaChanged(media))
        self.manager.wake()
        return queued

    async def forget_old_event_bodies(self) -> int:
        """Drop the bodies of webhook events older than `[storage] keep_events_days`.

        The events themselves stay, so counts and `mediamon events` still list them;
        0 days keeps every body. Media files are never touched.
        """
        days = self.config.storage.keep_events_days
        if days == 0:
            return 0
        forgotten = await self.store.forget_event_bodies(time.time() - days * 86_400)
        if forgotten:
            logger.info(
                "dropped the bodies of %d webhook event(s) over %d days old", forgotten, days
            )
        return forgotten

    async def replay(self, event_id: int) -> IntakeResult:
        """Feed a stored webhook through intake again, as the inspector's replay does."""
        if self._intake is None:
            raise RuntimeError("the runtime is not started")
        event = await self.store.get_event(event_id)
        if event is None:
            raise ReplayError(f"no webhook event #{event_id} in the database")
        if event.body is None:
            raise ReplayError(
                f"webhook event #{event_id}'s body was emptied by retention; it cannot be replayed"
            )
        return await self._intake.receive(event.body.encode("utf-8"))

    @property
    def url(self) -> str:
        """The local webhook URL."""
        if self._server is None:
            raise RuntimeError("the runtime is not started")
        return f"{self._server.url}/webhook"

    async def start(self) -> None:
        try:
            await self._start()
        except BaseException:
            await self.stop()
            raise

    async def _start(self) -> None:
        config = self.config
        config.storage.media_dir.mkdir(parents=True, exist_ok=True)
        self._store = await SQLiteStore.open(config.storage.database)
        requeued = await self._store.requeue_interrupted()
        if requeued:
            logger.info("%d download(s) interrupted by the last stop queued again", requeued)
        self._watcher = FileWatcher(self._store, self.files, self.bus)
        self._watcher.start()
        self._metrics = Metrics(self._store, self.bus)
        self._metrics.start()

        self._session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=config.downloads.concurrency * 2)
        )
        self._manager = DownloadManager(
            config, self._store, self.bus, self._sources(self._session), self.files
        )
        intake = self._intake = Intake(config, self._store, self.bus)
        intake.on_queued(self._manager.wake)
        self._manager.start()

        app = build_app(config, intake, ready=lambda: self.manager.running, metrics=self._metrics)
        self._server = WebhookServer(app, config.server.host, config.server.port)
        await self._server.start()
        # With a million rows the scan takes seconds; webhooks need not wait for it.
        self._startup_scan = asyncio.create_task(self._scan_at_start(), name="mediamon-scan")
        self._retention = asyncio.create_task(self._keep_retention(), name="mediamon-retention")

    async def _scan_at_start(self) -> None:
        try:
            report = await reconcile(self.store, self.files, self.bus, only_own_parts_live=True)
        except Exception:
            logger.exception("the scan at start failed; `mediamon scan` runs it again")
            return
        finally:
            self.scanned.set()
        logger.info("scan: %s", report.summary())

    async def _keep_retention(self) -> None:
        while True:
            try:
                await self.forget_old_event_bodies()
            except Exception:
                logger.exception("could not drop old webhook bodies; trying again in an hour")
            finally:
                self.retained.set()
            if self.config.storage.keep_events_days == 0:
                return
            await asyncio.sleep(RETENTION_EVERY)

    async def stop(self) -> None:
        """Stop in the reverse order of start; safe to call on a half-started runtime."""
        for task in (self._retention, self._startup_scan):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        self._retention = self._startup_scan = None
        if self._server is not None:
            await self._server.stop()
        if self._manager is not None:
            await self._manager.stop()
        if self._watcher is not None:
            await self._watcher.stop()
        if self._metrics is not None:
            await self._metrics.stop()
        if self._session is not None:
            await self._session.close()
        if self._store is not None:
            try:
                await self._store.close()
            except Exception:
                logger.exception("the database did not close cleanly")
        self._server = self._manager = self._session = self._store = self._watcher = None
        self._intake = None
        self._metrics = None

    def _sources(self, session: aiohttp.ClientSession) -> Sequence[Source]:
        timeout = self.config.wapi.timeout
        known: dict[str, Source] = {
            "wapi": WapiSource(
                session,
                self.config.wapi,
                quick_wait=min(0.25, self.config.downloads.backoff_initial),
            ),
            "cdn": CdnSource(session, self.config.whatsapp, timeout),
        }
        return [known[name] for name in self.config.downloads.sources]
