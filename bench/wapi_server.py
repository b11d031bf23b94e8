"""A loopback W-API in its own process, for the pipeline benchmark.

It registers `count` media of `size` bytes with the test suite's fake W-API, writes
the webhook bodies that announce them to `webhooks`, prints `READY <url>` and serves
until it is terminated. Its file links answer after `latency` seconds, as a real
W-API link does after a round trip to its storage.

Usage: `wapi_server.py WEBHOOKS COUNT SIZE LATENCY`.
"""

from __future__ import annotations

import asyncio
import json
import signal
import sys
from pathlib import Path

from aiohttp import web
from common import INSTANCE, TOKEN

from mediamon.core.models import MediaKind
from tests.fakes.payloads import media_message, sample_bytes, webhook
from tests.fakes.wapi import FakeWapi


class SlowLinkWapi(FakeWapi):
    """The fake W-API, with a fixed delay before each file link answers."""

    def __init__(self, latency: float) -> None:
        super().__init__({INSTANCE: TOKEN})
        self.latency = latency

    async def _file(self, request: web.Request) -> web.StreamResponse:
        await asyncio.sleep(self.latency)
        return await super()._file(request)


async def serve(webhooks: Path, count: int, size: int, latency: float) -> None:
    wapi = SlowLinkWapi(latency)
    bodies = []
    for number in range(count):
        plain = sample_bytes(MediaKind.IMAGE, size, seed=number)
        block = wapi.add_media(plain, MediaKind.IMAGE, "image/jpeg")
        bodies.append(webhook(INSTANCE, media_message(MediaKind.IMAGE, block)))
    webhooks.write_text(json.dumps(bodies), encoding="utf-8")

    stopping = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stopping.set)
    async with wapi:
        # Requests are recorded by the fake for tests; here they would only grow.
        wapi.requests = _Forgetful()
        print(f"READY {wapi.url}", flush=True)
        await stopping.wait()


class _Forgetful(list[object]):
    def append(self, item: object) -> None:
        pass


def main() -> None:
    webhooks, count, size, latency = sys.argv[1:5]
    asyncio.run(serve(Path(webhooks), int(count), int(size), float(latency)))


if __name__ == "__main__":
    main()
