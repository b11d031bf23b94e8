"""Pipeline: 2,000 media of 100 kB from webhook to verified file, against a bare fetcher.

A loopback W-API (the test suite's fake, in its own process) holds the 2,000 files and
answers each file link after 20 ms. mediamon (`mediamon serve`, default downloads:
8 at once) is sent the 2,000 webhooks as fast as they are accepted, and the clock runs
from the first webhook until every media is `done`: recorded, fetched through
download-media and its file link, size and SHA-256 checked, fsynced and renamed.

The bare reference is a plain aiohttp script making the same two requests per media
against the same W-API with the same 8 in flight and writing the bytes without any
check. Bound: mediamon takes no more than 1.3 times the bare script's wall time.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sqlite3
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any, Final

import aiohttp
import common
from common import say

CONCURRENCY: Final = 8
LATENCY: Final = 0.020
POSTERS: Final = 32


def start_wapi(folder: Path, count: int, size: int) -> tuple[subprocess.Popen[bytes], str, Path]:
    webhooks = folder / "webhooks.json"
    server = common.python_script(
        "wapi_server.py",
        str(webhooks),
        str(count),
        str(size),
        str(LATENCY),
        stdout=subprocess.PIPE,  # its first line names the URL
    )
    assert server.stdout is not None
    line = server.stdout.readline().decode().strip()
    if not line.startswith("READY "):
        common.stop(server)
        raise RuntimeError(f"the test W-API did not start: {line!r}")
    return server, line.removeprefix("READY "), webhooks


def bench_bare(folder: Path, webhooks: Path, wapi: str) -> float:
    fetcher = common.python_script(
        "bare_fetch.py",
        str(webhooks),
        wapi,
        str(folder / "bare"),
        str(CONCURRENCY),
        stdout=subprocess.PIPE,
    )
    out, _ = fetcher.communicate(timeout=300)
    if fetcher.returncode != 0:
        raise RuntimeError(f"bare_fetch.py exited with {fetcher.returncode}")
    result = json.loads(out)
    say(f"bare aiohttp: {result['files']} files, {result['bytes']:,} bytes")
    return float(result["seconds"])


async def post_all(url: str, hooks: list[dict[str, Any]]) -> None:
    queue = list(reversed(hooks))

    async def poster(session: aiohttp.ClientSession) -> None:
        while queue:
            async with session.post(url, json=queue.pop()) as answer:
                if answer.status != 200:
                    raise RuntimeError(f"webhook answered {answer.status}: {await answer.text()}")

    async with aiohttp.ClientSession() as session:
        await asyncio.gather(*(poster(session) for _ in range(POSTERS)))


async def wait_done(database: Path, count: int, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    with sqlite3.connect(database) as db:
        while True:
            settled = db.execute(
                "SELECT sum(media) FROM media_totals WHERE status IN ('done', 'failed')"
            ).fetchone()[0]
            if settled >= count:
                return
            if time.monotonic() > deadline:
                raise RuntimeError(f"only {settled} of {count} media settled in {timeout:.0f} s")
            await asyncio.sleep(0.02)


def bench_mediamon(folder: Path, webhooks: Path, wapi: str, count: int) -> float:
    port = common.free_port()
    config = common.write_config(folder, port=port, wapi_url=wapi)
    server = common.mediamon_serve(config, folder / "serve.log")
    hooks = json.loads(webhooks.read_text(encoding="utf-8"))
    try:
        common.wait_http(f"http://127.0.0.1:{port}/healthz", server)
        started = time.perf_counter()
        asyncio.run(post_all(f"http://127.0.0.1:{port}/webhook", hooks))
        posted = time.perf_counter() - started
        asyncio.run(wait_done(folder / "mediamon.db", count, timeout=300))
        seconds = time.perf_counter() - started
    finally:
        common.stop(server)

    with sqlite3.connect(folder / "mediamon.db") as db:
        by_status = dict(db.execute("SELECT status, count(*) FROM media GROUP BY status"))
        sources = dict(db.execute("SELECT source, count(*) FROM media GROUP BY source"))
    files = sum(1 for path in (folder / "media_storage").rglob("*.jpg"))
    say(
        f"mediamon serve: {count} webhooks posted in {posted:.2f} s; statuses {by_status}, "
        f"sources {sources}, {files} files on disk"
    )
    if by_status.get("done") != count or files != count:
        raise RuntimeError(f"not every media was stored: {by_status}, {files} files")
    return seconds


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--count", type=int, default=2000)
    parser.add_argument("--size", type=int, default=100_000)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="mediamon-bench-pipeline-") as temp:
        folder = Path(temp)
        wapi, url, webhooks = start_wapi(folder, args.count, args.size)
        try:
            bare = bench_bare(folder, webhooks, url)
            mediamon = bench_mediamon(folder, webhooks, url, args.count)
        finally:
            common.stop(wapi)

    figure = common.report(
        "pipeline",
        mediamon,
        "s",
        reference=bare,
        reference_label="bare aiohttp",
        at_most=1.3,
        detail=f"{args.count} media of {args.size // 1000} kB, {CONCURRENCY} in flight",
    )
    return 0 if figure.passed else 1


if __name__ == "__main__":
    raise SystemExit(main())
