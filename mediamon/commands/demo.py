"""`mediamon demo`: the whole product on a simulated W-API, with no account and no network.

It starts the simulator (W-API, WhatsApp's CDN and a webhook firer, all on loopback),
writes a config that points mediamon at it, runs the real `Runtime` on that config and
fires webhooks at it. Media lands in ./demo_data in the usual tree. The database lives
in a temporary folder, so each run starts with an empty queue and its summary counts
only what it saw; the client folders an earlier run left are cleared at the start, or
they would be reported as orphans. The backoff is short (0.5 s, at most 5 s), so
retries and CDN fallbacks show within seconds.

`DemoSession` is the part any face can drive: the headless log here starts one whole;
the monitor takes only its simulator and config, runs the runtime in Textual's loop,
and asks the session to fire webhooks once it listens.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import math
import random
import secrets
import shutil
import signal
import sys
import tempfile
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final, TextIO

from mediamon import logs
from mediamon.core.config import Config, parse_config
from mediamon.core.errors import ConfigError
from mediamon.core.eventlog import human_size, log_events
from mediamon.core.events import (
    AttemptFailed,
    Event,
    EventBus,
    FileWentMissing,
    MediaFailed,
    MediaQueued,
    MediaStored,
    Subscription,
    WebhookReceived,
)
from mediamon.core.layout import media_relpath
from mediamon.core.lifecycle import Lifecycle
from mediamon.core.models import MediaKind
from mediamon.runtime import Runtime
from mediamon.server.runner import ServerStartError
from mediamon.simulator import SimulatedInstance, Simulator, WebhookFirer

logger = logging.getLogger(__name__)

DEMO_FOLDER: Final = Path("demo_data")
SETTLE_SECONDS: Final = 3.0
"""How long a timed run waits, once the webhooks stop, for downloads under way to end."""

# The same two instances every run, so the folders in demo_data stay the same.
_INSTANCES_SEED: Final = "mediamon demo"


@dataclass(frozen=True, slots=True)
class DemoSettings:
    seconds: float | None = None
    """Stop after this long; None runs until Ctrl-C."""
    rate: float = 2.0
    """Webhooks a second, on average."""
    failure_rate: float = 0.3
    """The share of media W-API fails to deliver at first; a sixth of it has expired."""
    port: int = 0
    """mediamon's webhook port; 0 takes a free one."""
    folder: Path = DEMO_FOLDER

    def check(self) -> None:
        """Refuse values that cannot run, naming the option the way it was typed."""
        if not (math.isfinite(self.rate) and self.rate > 0):
            raise ConfigError(
                f"--rate must be a number of webhooks a second above 0, got {self.rate:g}"
            )
        if not 0 <= self.failure_rate <= 1:
            raise ConfigError(f"--failure-rate must be from 0 to 1, got {self.failure_rate:g}")
        if self.seconds is not None and not (math.isfinite(self.seconds) and self.seconds > 0):
            raise ConfigError(f"--seconds must be above 0, got {self.seconds:g}")
        if not 0 <= self.port <= 65535:
            raise ConfigError(f"--port must be from 0 to 65535, got {self.port}")


def demo(settings: DemoSettings, *, headless: bool) -> int:
    settings.check()
    if headless:
        return run_headless(settings)
    return run_monitor(settings)


def run_monitor(settings: DemoSettings) -> int:
    """The demo on the monitor screen, which runs the runtime in Textual's loop."""
    from mediamon.tui.app import MonitorApp

    async def monitor() -> int:
        session = DemoSession(settings)
        async with session.simulated() as config:
            app = MonitorApp(config, bus=session.bus, on_started=session.fire_at)
            code = await app.run_async()
        print(f"demo: files are in ./{settings.folder}; `mediamon demo --headless` shows the log")
        return code or 0

    return asyncio.run(monitor())


def run_headless(settings: DemoSettings, out: TextIO = sys.stdout) -> int:
    """The demo as `serve`'s log lines on stderr, then a summary on `out`."""
    session = DemoSession(settings)
    logs.configure(session.secrets)
    # watchfiles logs "N changes detected" at INFO for every file the demo writes.
    logging.getLogger("watchfiles").setLevel(logging.WARNING)
    tally = asyncio.run(_run_headless(session))
    out.write(tally.summary(settings.folder))
    return 0


async def _run_headless(session: DemoSession) -> DemoTally:
    settings = session.settings
    tally = DemoTally()
    watchers = [
        asyncio.create_task(log_events(session.bus.subscribe())),
        asyncio.create_task(tally.follow(session.bus.subscribe())),
    ]
    stopping = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stopping.set)

    try:
        async with session:
            logger.info(
                "demo: simulated W-API at %s; files go to ./%s (delete it any time)",
                session.simulator.url,
                settings.folder,
            )
            logger.info(
                "demo: %g webhooks a second, W-API fails %.0f%% of media at first; %s",
                settings.rate,
                settings.failure_rate * 100,
                f"stopping after {settings.seconds:g} s" if settings.seconds else "Ctrl-C stops",
            )
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stopping.wait(), settings.seconds)
            if not stopping.is_set():
                await session.stop_firing()
                await tally.settle(SETTLE_SECONDS)
            tally.seconds = loop.time() - tally.started
    finally:
        await asyncio.sleep(0)  # let the last events reach the log
        for task in watchers:
            task.cancel()
        await asyncio.gather(*watchers, return_exceptions=True)
    return tally


class DemoSession(Lifecycle):
    """The simulator, a runtime pointed at it and a webhook firer, started and stopped as one."""

    def __init__(self, settings: DemoSettings, bus: EventBus | None = None) -> None:
        self.settings = settings
        self.bus = bus or EventBus()
        names = random.Random(_INSTANCES_SEED)
        self.instances = [SimulatedInstance.made_up(names) for _ in range(2)]
        self.simulator = Simulator(
            self.instances,
            seed=secrets.randbits(32),
            failure_rate=settings.failure_rate,
            expired_rate=settings.failure_rate / 6,
        )
        self._runtime: Runtime | None = None
        self._firing: asyncio.Task[None] | None = None
        self._database_folder: tempfile.TemporaryDirectory[str] | None = None

    @property
    def secrets(self) -> tuple[str, ...]:
        """The instances' tokens, for scrubbing from logs."""
        return tuple(instance.token for instance in self.instances)

    @property
    def runtime(self) -> Runtime:
        if self._runtime is None:
            raise RuntimeError("the demo is not started")
        return self._runtime

    @contextlib.asynccontextmanager
    async def simulated(self) -> AsyncIterator[Config]:
        """The simulator alone, and the config that points at it, for a face that runs
        the runtime itself (the monitor); `fire_at` then starts the webhooks."""
        try:
            yield await self._start_simulator()
        finally:
            await self.stop()

    async def fire_at(self, runtime: Runtime) -> None:
        firer = WebhookFirer(
            self.simulator, runtime.url, rate=self.settings.rate, seed=secrets.randbits(32)
        )
        self._firing = asyncio.create_task(firer.run(), name="mediamon-demo-webhooks")

    async def _start_simulator(self) -> Config:
        self._clear_previous_run()
        await self.simulator.start()
        self._database_folder = tempfile.TemporaryDirectory(prefix="mediamon-demo-")
        return self._config(Path(self._database_folder.name) / "mediamon.db")

    async def start(self) -> None:
        try:
            config = await self._start_simulator()
            self._runtime = Runtime(config, self.bus)
            try:
                await self._runtime.start()
            except ServerStartError as error:
                raise ServerStartError(
                    f"cannot listen on 127.0.0.1:{self.settings.port}, is it in use? "
                    "Pass another --port, or none to take a free one"
                ) from error
            await self.fire_at(self._runtime)
        except BaseException:
            await self.stop()
            raise

    async def stop_firing(self) -> None:
        """Send no more webhooks; what was sent carries on downloading."""
        if self._firing is not None:
            self._firing.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._firing
        self._firing = None

    async def stop(self) -> None:
        await self.stop_firing()
        if self._runtime is not None:
            await self._runtime.stop()
        await self.simulator.stop()
        if self._database_folder is not None:
            self._database_folder.cleanup()
        self._runtime = self._database_folder = None

    def _clear_previous_run(self) -> None:
        # The database is new each run, so files an earlier run left in the demo's
        # client folders would only be reported as orphans. Nothing else is touched.
        for number, instance in enumerate(self.instances, start=1):
            client_folder = media_relpath(
                client=str(number),
                instance_id=instance.id,
                kind=MediaKind.IMAGE,
                message_id="x",
                mimetype="image/jpeg",
            ).parts[0]
            shutil.rmtree(self.settings.folder / client_folder, ignore_errors=True)

    def _config(self, database: Path) -> Config:
        data: dict[str, Any] = {
            "server": {"host": "127.0.0.1", "port": self.settings.port},
            "storage": {"media_dir": str(self.settings.folder), "database": str(database)},
            "wapi": {"base_url": self.simulator.url, "timeout": 5},
            "whatsapp": {"cdn_base_url": self.simulator.cdn_url},
            "downloads": {"backoff_initial": 0.5, "backoff_max": 5.0},
            "instances": [
                {"id": instance.id, "token": instance.token, "client": str(number)}
                for number, instance in enumerate(self.instances, start=1)
            ],
        }
        return parse_config(data, Path.cwd(), source="the demo's config")


@dataclass
class DemoTally:
    """What a demo run saw, counted from the event stream."""

    webhooks: int = 0
    without_media: int = 0
    duplicates: int = 0
    media: set[int] = field(default_factory=set)
    done: dict[int, str] = field(default_factory=dict)
    """Media id to the source that delivered it."""
    failed: dict[int, str] = field(default_factory=dict)
    """Media id to why it was given up."""
    retried: set[int] = field(default_factory=set)
    retries: int = 0
    missing: set[int] = field(default_factory=set)
    stored_bytes: int = 0
    started: float = field(default_factory=lambda: asyncio.get_running_loop().time())
    seconds: float = 0.0
    _idle: asyncio.Event = field(default_factory=asyncio.Event)

    def __post_init__(self) -> None:
        self._idle.set()  # nothing is under way until something is queued

    @property
    def in_progress(self) -> int:
        return len(self.media - self.done.keys() - self.failed.keys())

    async def follow(self, subscription: Subscription) -> None:
        """Count each event until cancelled."""
        async for event in subscription:
            self.count(event)

    async def settle(self, timeout: float) -> None:
        """Wait until no media is under way, or `timeout` seconds."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._idle.wait(), timeout)

    def count(self, event: Event) -> None:
        match event:
            case WebhookReceived(outcome=outcome):
                self.webhooks += 1
                self.without_media += outcome == "ignored"
            case MediaQueued(duplicate=True):
                self.duplicates += 1
            case MediaQueued(media=media):
                self.media.add(media.id)
            case MediaStored(media=media):
                self.done[media.id] = media.source or "?"
                self.failed.pop(media.id, None)
                self.stored_bytes += media.stored_size or 0
            case AttemptFailed(media=media):
                self.retried.add(media.id)
                self.retries += 1
            case MediaFailed(media=media):
                self.media.add(media.id)
                self.failed[media.id] = media.last_error or "no reason given"
            case FileWentMissing(media=media):
                self.missing.add(media.id)
        if self.in_progress:
            self._idle.clear()
        else:
            self._idle.set()

    def summary(self, folder: Path) -> str:
        sources = collections.Counter(self.done.values())
        by_source = ", ".join(f"{count} via {name}" for name, count in sorted(sources.items()))
        reasons = collections.Counter(self.failed.values())
        lines = [
            f"demo summary after {self.seconds:.0f} s:",
            f"  received     {_count(self.webhooks, 'webhook')}: {len(self.media)} media, "
            f"{self.without_media} without media, {self.duplicates} delivered twice",
            f"  done         {len(self.done)}" + (f" ({by_source})" if by_source else ""),
            f"  retried      {len(self.retried)} media, {_count(self.retries, 'retry', 'retries')}",
            f"  failed       {len(self.failed)}",
            *(f"                 {count}: {reason}" for reason, count in reasons.most_common()),
            f"  missing      {len(self.missing)}",
            f"  in progress  {self.in_progress}",
            f"  stored       {human_size(self.stored_bytes)} in ./{folder}",
        ]
        return "\n".join(lines) + "\n"


def _count(number: int, one: str, many: str | None = None) -> str:
    return f"{number} {one if number == 1 else many or one + 's'}"
