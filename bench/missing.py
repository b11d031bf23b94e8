"""Missing files: how soon a deleted file shows as `missing`, and how long a full scan takes.

Both run over one data set of 100,000 media with their files (see dataset.py):

- scan: 1% of the `done` files are deleted, then `reconcile` compares every row with
  the disk and marks those rows `missing`; bound 5 s;
- unlink to missing: a running `Runtime` over the same folder (its startup scan
  done, its watcher in place); 50 files are deleted one at a time, each timed until
  the store has marked its row `missing` and published `FileWentMissing`; bound
  95th percentile under 1.5 s.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import sqlite3
import tempfile
import time
from pathlib import Path
from typing import Final

import common
import dataset
from common import say

from mediamon.core.config import load_config
from mediamon.core.events import FileWentMissing, Subscription
from mediamon.core.files import LocalFileStore
from mediamon.core.scan import reconcile
from mediamon.core.sqlite_store import SQLiteStore
from mediamon.runtime import Runtime

ROWS: Final = 100_000
UNLINKS: Final = 50
DELETED_SHARE: Final = 0.01


async def bench_scan(data: dataset.Dataset) -> float:
    rng = random.Random(5)
    for path in rng.sample(data.files, int(len(data.files) * DELETED_SHARE)):
        (data.media_dir / path).unlink()
    store = await SQLiteStore.open(data.database)
    try:
        started = time.perf_counter()
        report = await reconcile(store, LocalFileStore(data.media_dir))
        seconds = time.perf_counter() - started
    finally:
        await store.close()
    say(f"scan: {report.summary()}")
    return seconds


async def bench_unlinks(folder: Path, data: dataset.Dataset, count: int) -> list[float]:
    with sqlite3.connect(data.database) as db:
        victims = db.execute(
            "SELECT id, path FROM media WHERE status = 'done' ORDER BY random() LIMIT ?", (count,)
        ).fetchall()
    config = load_config(common.write_config(folder, downloads="backoff_initial = 60"))
    latencies = []
    async with Runtime(config) as runtime:
        await asyncio.wait_for(runtime.scanned.wait(), 60)
        await asyncio.wait_for(runtime.watcher.ready.wait(), 10)
        events = runtime.bus.subscribe()
        for media_id, path in victims:
            events.drain()
            started = time.perf_counter()
            (data.media_dir / path).unlink()
            await asyncio.wait_for(_gone(events, media_id), 10)
            latencies.append(time.perf_counter() - started)
            await asyncio.sleep(0.05)
    return latencies


async def _gone(events: Subscription, media_id: int) -> None:
    while True:
        event = await events.get()
        if isinstance(event, FileWentMissing) and event.media.id == media_id:
            return


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rows", type=int, default=ROWS)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="mediamon-bench-missing-") as temp:
        folder = Path(temp)
        started = time.perf_counter()
        data = dataset.make(folder, args.rows)
        say(f"{args.rows:,} media and their files made in {time.perf_counter() - started:.1f} s")
        scan = asyncio.run(bench_scan(data))
        latencies = asyncio.run(bench_unlinks(folder, data, UNLINKS))

    say("unlink to missing, ms: " + " ".join(f"{value * 1000:.0f}" for value in latencies))
    figures = [
        common.report(
            "unlink to missing p95",
            common.percentile(latencies, 0.95),
            "s",
            reference=1.5,
            reference_label="bound",
            at_most=1.0,
            detail=f"{len(latencies)} unlinks among {args.rows:,} media; "
            f"median {common.percentile(latencies, 0.5) * 1000:.0f} ms",
        ),
        common.report(
            "scan",
            scan,
            "s",
            reference=5.0,
            reference_label="bound",
            at_most=1.0,
            detail=f"{args.rows:,} rows and files, {DELETED_SHARE:.0%} of the files deleted",
        ),
    ]
    return 0 if all(figure.passed for figure in figures) else 1


if __name__ == "__main__":
    raise SystemExit(main())
