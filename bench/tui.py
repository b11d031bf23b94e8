"""TUI: the monitor over a database of a million media, idle and under 300 webhooks/s.

The database (1,000,000 media, their `done` files on disk; see dataset.py) is made
first; then a fresh process starts `MonitorApp` headless with `App.run_test` and
measures:

- first paint: from creating the app until `app.started` is set and the table holds
  rows (imports are done before the clock starts); bound 1.5 s;
- resident memory: the process's peak (VmHWM) from start through the startup scan
  and the load below, with the value at first paint alongside; bound 250 MB;
- key-press latency: with another process posting 300 unique webhooks a second to
  the app's own server, the time from pressing `f` (25 times) and `k` (25 times)
  until the top bar names the new filter, which happens once the table has been
  reloaded; bound 95th percentile under 100 ms.

W-API and the CDN point at dead loopback ports with a 60 s backoff, so each new media
is tried once (8 at a time, as by default) and then waits: the downloads' own work is
in the figures, retry storms are not.
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
RATE: Final = 300
PRESSES_EACH: Final = 25


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rows", type=int, default=ROWS)
    parser.add_argument("--rate", type=float, default=RATE)
    parser.add_argument("--measure", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.measure is not None:
        results = asyncio.run(measure(args.measure, args.rate))
        print(json.dumps(results), flush=True)
        return 0

    folder = Path(tempfile.mkdtemp(prefix="mediamon-bench-tui-"))
    try:
        started = time.perf_counter()
        dataset.make(folder, args.rows)
        common.write_config(folder, downloads="backoff_initial = 60\nbackoff_max = 600")
        say(f"{args.rows:,} media and their files made in {time.perf_counter() - started:.1f} s")
        child = common.python_script(
            "tui.py", "--measure", str(folder), "--rate", str(args.rate), stdout=subprocess.PIPE
        )
        out, _ = child.communicate(timeout=300)
        if child.returncode != 0:
            raise RuntimeError(f"the measuring process exited with {child.returncode}")
        results = json.loads(out.decode().strip().splitlines()[-1])
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    return 0 if report(results, args.rows) else 1


def report(results: dict[str, Any], rows: int) -> bool:
    say(
        f"startup scan {results['scan_seconds']:.1f} s; load: {results['load']['sent']} "
        f"webhooks in {results['load']['seconds']:.1f} s, {results['load']['errors']} errors"
    )
    say(f"press latencies, ms: f {fmt(results['latency_f'])}")
    say(f"                     k {fmt(results['latency_k'])}")
    latencies = results["latency_f"] + results["latency_k"]
    figures = [
        common.report(
            "tui first paint",
            results["first_paint"],
            "s",
            reference=1.5,
            reference_label="bound",
            at_most=1.0,
            detail=f"{rows:,} media; imports took {results['imports']:.2f} s before",
        ),
        common.report(
            "tui memory",
            results["peak_rss_mb"],
            "MB",
            reference=250,
            reference_label="bound",
            at_most=1.0,
            detail=f"peak VmHWM; {results['first_paint_rss_mb']:.0f} MB at first paint, "
            f"{results['after_scan_rss_mb']:.0f} MB after the startup scan",
        ),
        common.report(
            "tui key p95",
            common.percentile(latencies, 0.95),
            "s",
            reference=0.100,
            reference_label="bound",
            at_most=1.0,
            detail=f"{len(latencies)} presses of f and k at {results['load_rate']:.0f} "
            f"webhooks/s; median {common.percentile(latencies, 0.5) * 1000:.0f} ms, "
            f"max {max(latencies) * 1000:.0f} ms",
        ),
    ]
    return all(figure.passed for figure in figures)


def fmt(values: list[float]) -> str:
    return " ".join(f"{value * 1000:.0f}" for value in values)


async def measure(folder: Path, rate: float) -> dict[str, Any]:
    """Runs in its own process, so that memory is the app's alone."""
    imported = time.perf_counter()
    from mediamon.core.config import load_config
    from mediamon.tui.app import MonitorApp
    from mediamon.tui.media_table import MediaTable
    from mediamon.tui.top_bar import TopBar

    imports = time.perf_counter() - imported
    config = load_config(folder / "mediamon.toml")
    results: dict[str, Any] = {"imports": imports}

    started = time.perf_counter()
    app = MonitorApp(config)
    async with app.run_test(size=(160, 48)):
        table = app.query_one(MediaTable)
        while not (app.started.is_set() and table.row_count > 0):
            await asyncio.sleep(0.002)
        results["first_paint"] = time.perf_counter() - started
        results["first_paint_rss_mb"] = common.rss_mb()

        await asyncio.wait_for(app.runtime.scanned.wait(), 120)
        results["scan_seconds"] = time.perf_counter() - started
        results["after_scan_rss_mb"] = common.rss_mb()

        load = common.python_script(
            "webhook_load.py", app.runtime.url, str(rate), "90", stdout=subprocess.PIPE
        )
        try:
            await asyncio.sleep(2.0)  # let the load settle into its pace
            top_bar = app.query_one(TopBar)
            pressing = time.perf_counter()
            results["latency_f"] = await presses(app, top_bar, "f", PRESSES_EACH)
            results["latency_k"] = await presses(app, top_bar, "k", PRESSES_EACH)
            results["pressing_seconds"] = time.perf_counter() - pressing
        finally:
            load.terminate()
            out, _ = await asyncio.to_thread(load.communicate, timeout=60)
        results["load"] = json.loads(out)
        results["load_rate"] = results["load"]["sent"] / results["load"]["seconds"]
        results["peak_rss_mb"] = common.rss_mb("VmHWM")
    return results


async def presses(app: Any, top_bar: Any, key: str, count: int) -> list[float]:
    """Latency of each of `count` presses of `key`, in seconds.

    The key goes in the way a terminal's driver sends it. `Pilot.press` would also
    wait for the whole process to fall idle (up to two seconds), which it never does
    with webhooks arriving, and that wait is not part of what a person sees.
    """
    from textual.events import Key

    rng = random.Random(key)
    latencies = []
    for _ in range(count):
        before = top_bar.showing
        started = time.perf_counter()
        event = Key(key, key)
        event.set_sender(app)
        app._driver.send_message(event)
        while top_bar.showing == before:
            await asyncio.sleep(0.001)
            if time.perf_counter() - started > 10:
                raise RuntimeError(f"pressing {key} changed nothing within 10 s")
        latencies.append(time.perf_counter() - started)
        # A person's pace, and never in step with the app's 200 ms refresh.
        await asyncio.sleep(rng.uniform(0.15, 0.35))
    return latencies


if __name__ == "__main__":
    sys.exit(main())
