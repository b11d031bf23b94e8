"""The bare stack for the pipeline benchmark: fetch every media through W-API, write it, no checks.

For each webhook in the file, the same two requests mediamon makes (download-media for
a link, then GET the link), with the same number in flight, and the bytes written to
a file under their message id. No database, no hashing, no fsync, no retries. Prints
`{"seconds": ..., "files": ..., "bytes": ...}`.

Usage: `bare_fetch.py WEBHOOKS WAPI_URL OUT_DIR CONCURRENCY`.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from pathlib import Path
from typing import Any

import aiohttp
from common import INSTANCE, TOKEN


async def fetch_one(
    session: aiohttp.ClientSession, wapi: str, hook: dict[str, Any], out: Path
) -> int:
    block = hook["msgContent"]["imageMessage"]
    ask = {key: block[key] for key in ("mediaKey", "directPath", "mimetype")}
    ask["type"] = "image"
    async with session.post(
        f"{wapi}/message/download-media",
        params={"instanceId": INSTANCE},
        json=ask,
        headers={"Authorization": f"Bearer {TOKEN}"},
    ) as answer:
        link = (await answer.json())["fileLink"]
    async with session.get(link) as response:
        body = await response.read()
    (out / f"{hook['messageId']}.jpg").write_bytes(body)
    return len(body)


async def fetch_all(hooks: list[dict[str, Any]], wapi: str, out: Path, concurrency: int) -> None:
    queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
    for hook in hooks:
        queue.put_nowait(hook)
    written = 0

    async def worker(session: aiohttp.ClientSession) -> None:
        nonlocal written
        while not queue.empty():
            size = await fetch_one(session, wapi, queue.get_nowait(), out)
            written += size

    connector = aiohttp.TCPConnector(limit=concurrency * 2)
    started = time.perf_counter()
    async with aiohttp.ClientSession(connector=connector) as session:
        await asyncio.gather(*(worker(session) for _ in range(concurrency)))
    seconds = time.perf_counter() - started
    print(json.dumps({"seconds": seconds, "files": len(hooks), "bytes": written}), flush=True)


def main() -> None:
    webhooks, wapi, out, concurrency = sys.argv[1:5]
    hooks = json.loads(Path(webhooks).read_text(encoding="utf-8"))
    Path(out).mkdir(parents=True, exist_ok=True)
    asyncio.run(fetch_all(hooks, wapi, Path(out), int(concurrency)))


if __name__ == "__main__":
    main()
