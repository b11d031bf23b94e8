"""Run every benchmark in turn and print one table of their figures.

Each script runs in its own process, with its output shown as it comes; its figures
reach this table through the file named by `$MEDIAMON_BENCH_RESULTS`. Exits 1 when a
figure misses its bound or a script fails. `--markdown` prints the table for the README.

Ratios are measured over the reference: the bare stack run in the same script, or,
for figures with nothing bare to compare with, the bound itself.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Final

from common import RESULTS_ENV, ROOT, format_value

SCRIPTS: Final = ("ingest.py", "pipeline.py", "decrypt.py", "tui.py", "missing.py")
TIMEOUT: Final = 420.0
"""Seconds one script may take before it is stopped and counted as failed."""

HEADERS: Final = ("figure", "measured", "reference", "ratio", "bound", "result")


def machine() -> str:
    model = "unknown CPU"
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as cpuinfo:
            model = next(line.split(":", 1)[1].strip() for line in cpuinfo if "model name" in line)
    except (OSError, StopIteration):
        pass
    return f"{model}, {os.cpu_count()} cores, Python {platform.python_version()}"


def run(script: str, results: Path) -> str | None:
    """Run one script; returns what went wrong, or None."""
    print(f"\n== {script}", flush=True)
    env = {**os.environ, RESULTS_ENV: str(results)}
    started = time.monotonic()
    try:
        done = subprocess.run(
            [sys.executable, str(ROOT / "bench" / script)], cwd=ROOT, env=env, timeout=TIMEOUT
        )
    except subprocess.TimeoutExpired:
        return f"stopped after {TIMEOUT:.0f} s"
    print(f"   ({script} took {time.monotonic() - started:.0f} s)", flush=True)
    # Exit 1 means a missed bound, which the table shows; anything else is a crash.
    return None if done.returncode in (0, 1) else f"exited with {done.returncode}"


def rows(figures: list[dict[str, Any]], errors: dict[str, str]) -> list[tuple[str, ...]]:
    table: list[tuple[str, ...]] = [
        (
            figure["name"],
            format_value(figure["measured"], figure["unit"]),
            f"{format_value(figure['reference'], figure['unit'])} ({figure['reference_label']})",
            f"{figure['ratio']:.2f}",
            figure["bound"],
            "pass" if figure["passed"] else "FAIL",
        )
        for figure in figures
    ]
    table += [(script, "-", "-", "-", "-", f"ERROR: {error}") for script, error in errors.items()]
    return table


def print_plain(table: list[tuple[str, ...]]) -> None:
    widths = [max(len(row[i]) for row in [HEADERS, *table]) for i in range(len(HEADERS))]
    for row in [HEADERS, tuple("-" * width for width in widths), *table]:
        print("  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)))


def print_markdown(table: list[tuple[str, ...]]) -> None:
    print("| " + " | ".join(HEADERS) + " |")
    print("|" + "---|" * len(HEADERS))
    for row in table:
        print("| " + " | ".join(row) + " |")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--markdown", action="store_true", help="also print a Markdown table")
    parser.add_argument("scripts", nargs="*", default=SCRIPTS, help="a subset to run")
    args = parser.parse_args()

    started = time.monotonic()
    errors: dict[str, str] = {}
    with tempfile.TemporaryDirectory(prefix="mediamon-bench-") as temp:
        results = Path(temp) / "results.jsonl"
        results.touch()
        for script in args.scripts:
            error = run(script, results)
            if error is not None:
                errors[script] = error
        figures = [json.loads(line) for line in results.read_text().splitlines() if line]

    table = rows(figures, errors)
    print(f"\nmediamon benchmarks on {machine()}, {time.monotonic() - started:.0f} s in all\n")
    print_plain(table)
    if args.markdown:
        print()
        print_markdown(table)
    failed = errors or not all(figure["passed"] for figure in figures)
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
