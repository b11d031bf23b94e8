"""Scan memory: how much memory and time one reconciliation scan takes, and how long it
keeps the event loop from running.

The data set (see dataset.py; 1,000,000 media by default) is made once, 1% of its
`done` files are deleted, and a copy of the database is kept, so that every measured
scan starts from the same rows. Each scan runs in a fresh process that imports
mediamon, opens the store, resets its peak resident memory (`/proc/self/clear_refs`)
and then runs `reconcile` with a ticker task beside it. It reports:

- memory: the peak (VmHWM) during the scan less the resident memory just before it;
  bound 100 MB;
- time: bound 5 s per 100,000 rows, the bound `missing.py` holds at 100,000;
- the longest gap between two ticks of a 10 ms ticker, as a sign of how long the
  scan kept a screen in the same process from drawing (shown, not bounded).

`--folder` keeps the data set there and reuses it on the next run.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Final

import common
import dataset
from common import say

ROWS: Final = 1_000_000
DELETED_SHARE: Final = 0.01
MEMORY_BOUND_MB: Final = 100.0
SECONDS_PER_100K: Final = 5.0
TICK: Final = 0.010
PRISTINE: Final = "mediamon.db.pristine"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rows", type=int, default=ROWS)
    parser.add_argument("--folder", type=Path, help="make the data set here and keep it")
    parser.add_argument("--runs", type=int, default=1, help="scans to measure, each fresh")
    parser.add_argument("--measure", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.measure is not None:
        print(json.dumps(asyncio.run(measure(args.measure))), flush=True)
        return 0

    folder = args.folder or Path(tempfile.mkdtemp(prefix="mediamon-bench-scan-"))
    try:
        prepare(folder, args.rows)
        results = [scan_in_child(folder) for _ in range(args.runs)]
    finally:
        if args.folder is None:
            shutil.rmtree(folder, ignore_errors=True)
    return 0 if report(results, args.rows) else 1


def prepare(folder: Path, rows: int) -> None:
    """Make the data set unless `folder` holds one of this size already."""
    marker = folder / "rows"
    if marker.exists() and int(marker.read_text()) == rows:
        say(f"reusing the {rows:,} media in {folder}")
        return
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    started = time.perf_counter()
    data = dataset.make(folder, rows)
    rng = random.Random(5)
    for path in rng.sample(data.files, int(len(data.files) * DELETED_SHARE)):
        (data.media_dir / path).unlink()
    shutil.copyfile(data.database, folder / PRISTINE)
    marker.write_text(str(rows))
    say(f"{rows:,} media and their files made in {time.perf_counter() - started:.1f} s")


def scan_in_child(folder: Path) -> dict[str, Any]:
    database = folder / "mediamon.db"
    for leftover in (Path(f"{database}-wal"), Path(f"{database}-shm")):
        leftover.unlink(missing_ok=True)
    shutil.copyfile(folder / PRISTINE, database)
    child = common.python_script("scan_memory.py", "--measure", str(folder), stdout=subprocess.PIPE)
    out, _ = child.communicate(timeout=600)
    if child.returncode != 0:
        raise RuntimeError(f"the measuring process exited with {child.returncode}")
    results: dict[str, Any] = json.loads(out.decode().strip().splitlines()[-1])
    say(
        f"scan: {results['summary']}; {results['before_mb']:.0f} MB before, "
        f"peak {results['peak_mb']:.0f} MB, longest stall {results['stall'] * 1000:.0f} ms"
    )
    return results


async def measure(folder: Path) -> dict[str, Any]:
    """Runs in its own process, so that the memory measured is the scan's alone."""
    from mediamon.core.files import LocalFileStore
    from mediamon.core.scan import reconcile
    from mediamon.core.sqlite_store import SQLiteStore

    store = await SQLiteStore.open(folder / "mediamon.db")
    files = LocalFileStore(folder / "media_storage")
    try:
        await store.count_by_status()
        with open("/proc/self/clear_refs", "w", encoding="ascii") as clear:
            clear.write("5")  # the peak starts again from what is resident now
        before = common.rss_mb()
        stalls: list[float] = []
        ticker = asyncio.create_task(_tick(stalls))
        started = time.perf_counter()
        report = await reconcile(store, files)
        seconds = time.perf_counter() - started
        ticker.cancel()
    finally:
        await store.close()
    return {
        "summary": report.summary(),
        "seconds": seconds,
        "before_mb": before,
        "peak_mb": common.rss_mb("VmHWM"),
        "stall": max(stalls, default=0.0),
    }


async def _tick(stalls: list[float]) -> None:
    while True:
        started = time.perf_counter()
        await asyncio.sleep(TICK)
        stalls.append(time.perf_counter() - started - TICK)


def report(results: list[dict[str, Any]], rows: int) -> bool:
    growth = max(result["peak_mb"] - result["before_mb"] for result in results)
    seconds = max(result["seconds"] for result in results)
    stall = max(result["stall"] for result in results)
    figures = [
        common.report(
            "scan memory",
            growth,
            "MB",
            reference=MEMORY_BOUND_MB,
            reference_label="bound",
            at_most=1.0,
            detail=f"peak VmHWM less VmRSS before the scan; {rows:,} rows and files, "
            f"worst of {len(results)}",
        ),
        common.report(
            "scan time",
            seconds,
            "s",
            reference=SECONDS_PER_100K * rows / 100_000,
            reference_label="bound",
            at_most=1.0,
            detail=f"{rows:,} rows and files, {DELETED_SHARE:.0%} of the files deleted; "
            f"longest event-loop stall {stall * 1000:.0f} ms",
        ),
    ]
    return all(figure.passed for figure in figures)


if __name__ == "__main__":
    sys.exit(main())
