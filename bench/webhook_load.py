"""Steady webhook traffic for the TUI benchmark: RATE unique image webhooks a second.

Posts over loopback at an even pace (a batch every 10 ms) until SECONDS have passed
or it is terminated, then prints `{"sent": ..., "seconds": ..., "errors": ...}`.

Usage: `webhook_load.py URL RATE SECONDS`.
"""

from __future__ import annotations

import asyncio
import json
import secrets
import signal
import sys
import time

import aiohttp
from common import MARKER, webhook_template

TICK = 0.010


async def load(url: str, rate: float, seconds: float) -> None:
    head, tail = webhook_template().split(MARKER)
    tag = secrets.token_hex(3).upper()
    stopping = asyncio.Event()
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGTERM, stopping.set)
    sent = errors = 0
    in_flight: set[asyncio.Task[None]] = set()

    async def post(session: aiohttp.ClientSession, number: int) -> None:
        nonlocal errors
        body = f"{head}3EB0{tag}{number:010X}{tail}".encode()
        headers = {"Content-Type": "application/json"}
        try:
            async with session.post(url, data=body, headers=headers) as answer:
                await answer.read()
                errors += answer.status != 200
        except aiohttp.ClientError:
            errors += 1

    started = time.monotonic()
    async with aiohttp.ClientSession() as session:
        while not stopping.is_set() and time.monotonic() - started < seconds:
            due = int((time.monotonic() - started) * rate)
            while sent < due:
                task = asyncio.create_task(post(session, sent))
                in_flight.add(task)
                task.add_done_callback(in_flight.discard)
                sent += 1
            await asyncio.sleep(TICK)
        await asyncio.gather(*in_flight)
    elapsed = time.monotonic() - started
    print(json.dumps({"sent": sent, "seconds": elapsed, "errors": errors}), flush=True)


def main() -> None:
    url, rate, seconds = sys.argv[1:4]
    asyncio.run(load(url, float(rate), float(seconds)))


if __name__ == "__main__":
    main()
