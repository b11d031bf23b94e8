"""`mediamon serve`: the pipeline without a screen, one log line per event."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal

from mediamon import logs
from mediamon.core.config import Config
from mediamon.core.eventlog import log_events
from mediamon.runtime import Runtime

logger = logging.getLogger(__name__)


def serve(config: Config, *, verbose: bool = False) -> int:
    logs.configure(config.secrets, verbose=verbose)
    return asyncio.run(_serve(config))


async def _serve(config: Config) -> int:
    runtime = Runtime(config)
    log_task = asyncio.create_task(log_events(runtime.bus.subscribe()))
    stopping = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stopping.set)

    try:
        await runtime.start()
        logger.info("listening on %s", runtime.url)
        logger.info("media in %s, database %s", config.storage.media_dir, config.storage.database)
        await stopping.wait()
        logger.info("stopping: in-flight downloads go back to the queue")
    finally:
        await runtime.stop()
        await asyncio.sleep(0)  # let the last events reach the log
        log_task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await log_task
    logger.info("stopped")
    return 0
