"""Ingest: unique W-API webhooks per second through `mediamon serve`, against a bare handler.

Both servers run as their own processes on loopback and take the same load from wrk:
32 connections, one wrk thread (so the load generator leaves the second core to the
server), each request a realistic image webhook with a fresh messageId. Bound:
mediamon answers at least half as many requests a second as the bare handler.

Download work is kept out of the figure on purpose: W-API and the CDN point at dead
loopback ports, `[downloads] concurrency = 1` and the backoff is ten minutes, so a few
refused connections a second are all the downloads cost.

After its run mediamon is stopped and the rows counted: every webhook answered 200
must be in `webhook_events` and `media`. Rows beyond that are requests still in
flight when wrk stopped counting (at most one per connection).

Where the time goes is printed too: CPU time per request of each server thread (from
/proc) and of wrk. With two cores, a server whose event loop and database thread
together with wrk need more than two cores' worth of time cannot keep up, and one
whose event loop alone needs twice the bare handler's cannot reach half its rate.
"""

from __future__ import annotations

import argparse
import os
import re
import resource
import secrets
import shutil
import sqlite3
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Final

import common
from common import say

CONNECTIONS: Final = 32
LUA: Final = common.ROOT / "bench" / "webhooks.lua"


@dataclass(frozen=True, slots=True)
class WrkRun:
    requests: int
    seconds: float
    status_errors: int
    socket_errors: int
    timeouts: int
    p50_ms: float
    p99_ms: float

    @property
    def answered_ok(self) -> int:
        return self.requests - self.status_errors

    @property
    def rate(self) -> float:
        return self.answered_ok / self.seconds


@dataclass(frozen=True, slots=True)
class CpuUse:
    """CPU microseconds per request: each busy server thread's, and wrk's."""

    threads: dict[str, float]
    wrk: float

    def describe(self) -> str:
        parts = [f"{name} {micros:.0f}" for name, micros in self.threads.items()]
        return f"CPU per request: {', '.join(parts)}, wrk {self.wrk:.0f} µs"


def thread_times(pid: int) -> dict[str, float]:
    """CPU seconds so far of each thread of `pid`, by name and id; empty without /proc."""
    times: dict[str, float] = {}
    tick = os.sysconf("SC_CLK_TCK")
    try:
        for tid in os.listdir(f"/proc/{pid}/task"):
            name = Path(f"/proc/{pid}/task/{tid}/comm").read_text().strip()
            # The fields after the parenthesised name; utime and stime are 14th and 15th.
            fields = Path(f"/proc/{pid}/task/{tid}/stat").read_text().rsplit(")", 1)[1].split()
            times[f"{name}/{tid}"] = (int(fields[11]) + int(fields[12])) / tick
    except OSError:
        return {}
    return times


def measure(url: str, template: Path, seconds: float, server: int) -> tuple[WrkRun, CpuUse]:
    before, wrk_before = thread_times(server), _children_cpu()
    run = run_wrk(url, template, seconds)
    after, wrk_after = thread_times(server), _children_cpu()

    per_request = 1e6 / max(run.requests, 1)
    spent = {name: (after[name] - before.get(name, 0.0)) * per_request for name in after}
    # The first thread of a Python process runs its event loop; in mediamon the others
    # are aiosqlite's (every database write) and short-lived workers.
    loop = min(spent, key=lambda name: int(name.rsplit("/", 1)[1]), default=None)
    threads = {} if loop is None else {"event loop": spent.pop(loop)}
    if sum(spent.values()) >= 1.0:
        threads["other threads"] = sum(spent.values())
    return run, CpuUse(threads, (wrk_after - wrk_before) * per_request)


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def run_wrk(url: str, template: Path, seconds: float) -> WrkRun:
    tag = secrets.token_hex(2).upper()
    command = [
        "wrk",
        "-t1",
        f"-c{CONNECTIONS}",
        f"-d{seconds:g}s",
        "--timeout",
        "5s",
        "-s",
        str(LUA),
        url,
        "--",
        str(template),
        tag,
    ]
    done = subprocess.run(command, capture_output=True, text=True, check=True, timeout=seconds + 30)
    match = re.search(r"^WRK-SUMMARY (.*)$", done.stdout, re.MULTILINE)
    if match is None:
        raise RuntimeError(f"wrk printed no summary:\n{done.stdout}\n{done.stderr}")
    fields = {key: int(value) for key, value in re.findall(r"(\w+)=(\d+)", match.group(1))}
    return WrkRun(
        requests=fields["requests"],
        seconds=fields["duration_us"] / 1e6,
        status_errors=fields["status"],
        socket_errors=fields["connect"] + fields["read"] + fields["write"],
        timeouts=fields["timeout"],
        p50_ms=fields["p50_us"] / 1000,
        p99_ms=fields["p99_us"] / 1000,
    )


def describe(run: WrkRun) -> str:
    return (
        f"{run.answered_ok} answered 200 in {run.seconds:.1f} s, "
        f"{run.status_errors} non-2xx, {run.socket_errors} socket errors, "
        f"{run.timeouts} timeouts, p50 {run.p50_ms:.1f} ms, p99 {run.p99_ms:.1f} ms"
    )


def bench_bare(folder: Path, template: Path, seconds: float) -> tuple[WrkRun, CpuUse]:
    port = common.free_port()
    server = common.python_script("bare_webhook.py", str(port))
    try:
        common.wait_http(f"http://127.0.0.1:{port}/healthz", server)
        run, cpu = measure(f"http://127.0.0.1:{port}/webhook", template, seconds, server.pid)
    finally:
        common.stop(server)
    say(f"bare aiohttp: {describe(run)}")
    say(f"  {cpu.describe()}")
    return run, cpu


def bench_mediamon(folder: Path, template: Path, seconds: float) -> tuple[WrkRun, CpuUse, int, int]:
    port = common.free_port()
    config = common.write_config(
        folder,
        port=port,
        downloads="concurrency = 1\nbackoff_initial = 600\nbackoff_max = 600",
    )
    server = common.mediamon_serve(config, folder / "serve.log")
    try:
        common.wait_http(f"http://127.0.0.1:{port}/healthz", server)
        run, cpu = measure(f"http://127.0.0.1:{port}/webhook", template, seconds, server.pid)
    finally:
        code = common.stop(server)
    if code != 0:
        raise RuntimeError(f"mediamon serve exited with {code}; see {folder / 'serve.log'}")
    say(f"mediamon serve: {describe(run)}")
    say(f"  {cpu.describe()}")

    with sqlite3.connect(folder / "mediamon.db") as db:
        events = db.execute("SELECT count(*) FROM webhook_events").fetchone()[0]
        media = db.execute("SELECT count(*) FROM media").fetchone()[0]
    return run, cpu, events, media


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=float, default=10.0, help="length of each wrk run")
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        raise SystemExit("ingest: wrk is not installed (apt-get install wrk)")

    with tempfile.TemporaryDirectory(prefix="mediamon-bench-ingest-") as temp:
        folder = Path(temp)
        template = folder / "webhook.json"
        template.write_text(common.webhook_template(), encoding="utf-8")
        say(f"webhook body: {template.stat().st_size} bytes")

        bare, bare_cpu = bench_bare(folder, template, args.seconds)
        mediamon, cpu, events, media = bench_mediamon(folder, template, args.seconds)

    rate = common.report(
        "ingest",
        mediamon.rate,
        "req/s",
        reference=bare.rate,
        reference_label="bare aiohttp",
        at_least=0.5,
        detail=f"{cpu.describe()}; bare: {bare_cpu.describe().removeprefix('CPU per request: ')}",
    )
    in_flight = events - mediamon.answered_ok
    allowed = CONNECTIONS + mediamon.timeouts
    recorded = common.report(
        "ingest recorded",
        min(events, media),
        "rows",
        reference=mediamon.answered_ok,
        reference_label="answered 200",
        at_least=1.0,
        detail=(
            f"{events} webhook_events, {media} media; {in_flight} beyond the answered "
            f"ones were in flight at the end (allowed: up to {allowed})"
        ),
        also=events == media and in_flight <= allowed,
    )
    return 0 if rate.passed and recorded.passed else 1


if __name__ == "__main__":
    raise SystemExit(main())
