"""What every benchmark shares: the result line, loopback ports, configs and processes.

A benchmark reports each figure with `report()`, which prints one line a person can
read and, when `run_all.py` asked for it through `$MEDIAMON_BENCH_RESULTS`, appends
the same figure as JSON to that file. Each figure is compared with a reference: the
bare stack measured in the same run, or, where there is nothing bare to compare with,
the bound itself, so that the ratio must stay under 1.
"""

from __future__ import annotations

import base64
import json
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Final

ROOT: Final = Path(__file__).resolve().parents[1]
RESULTS_ENV: Final = "MEDIAMON_BENCH_RESULTS"

INSTANCE: Final = "3B6XIW-ZTS923-GEAY6V"
TOKEN: Final = "bench-token-3B6XIW"
CLIENT: Final = "2"
MARKER: Final = "@@MESSAGE_ID@@"
"""Where `webhook_template()` leaves the messageId to be filled in."""

# The benchmarks import `tests.fakes` for the loopback W-API and the payload shapes.
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))


@dataclass(frozen=True, slots=True)
class Figure:
    name: str
    measured: float
    unit: str
    reference: float
    reference_label: str
    ratio: float
    bound: str
    passed: bool


def report(
    name: str,
    measured: float,
    unit: str,
    *,
    reference: float,
    reference_label: str,
    at_least: float | None = None,
    at_most: float | None = None,
    detail: str = "",
    also: bool = True,
) -> Figure:
    """Print one figure with its ratio and verdict; the bound applies to the ratio.

    `also` is a further condition the figure must meet to pass, told in `detail`.
    """
    ratio = measured / reference if reference else float("inf")
    if at_least is not None:
        passed, bound = ratio >= at_least, f">= {at_least:g}"
    elif at_most is not None:
        passed, bound = ratio <= at_most, f"<= {at_most:g}"
    else:
        raise ValueError("a figure needs a bound")
    passed = passed and also
    figure = Figure(name, measured, unit, reference, reference_label, ratio, bound, passed)
    verdict = "PASS" if passed else "FAIL"
    line = (
        f"{name}: {format_value(measured, unit)} vs {reference_label} "
        f"{format_value(reference, unit)}: ratio {ratio:.2f} (bound {bound}) {verdict}"
    )
    print(line + (f"  [{detail}]" if detail else ""), flush=True)
    target = os.environ.get(RESULTS_ENV)
    if target:
        with open(target, "a", encoding="utf-8") as results:
            results.write(json.dumps(asdict(figure)) + "\n")
    return figure


def format_value(value: float, unit: str) -> str:
    if unit == "s":
        return f"{value * 1000:.0f} ms" if value < 1 else f"{value:.2f} s"
    if value >= 1000:
        return f"{value:,.0f} {unit}"
    return f"{value:.1f} {unit}"


def say(text: str) -> None:
    """A progress line, on stderr so that stdout holds only the figures."""
    print(f"  {text}", file=sys.stderr, flush=True)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def dead_url() -> str:
    """A loopback URL nothing listens on: connections to it are refused at once."""
    return f"http://127.0.0.1:{free_port()}"


def percentile(values: Sequence[float], fraction: float) -> float:
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(fraction * (len(ordered) - 1))))
    return ordered[index]


def write_config(
    folder: Path,
    *,
    port: int = 0,
    wapi_url: str | None = None,
    cdn_url: str | None = None,
    downloads: str = "",
) -> Path:
    """A mediamon.toml in `folder`; W-API and the CDN default to dead loopback ports."""
    path = folder / "mediamon.toml"
    path.write_text(
        f"""
[server]
host = "127.0.0.1"
port = {port}

[storage]
media_dir = "media_storage"
database = "mediamon.db"

[wapi]
base_url = "{wapi_url or dead_url()}"
timeout = 5

[whatsapp]
cdn_base_url = "{cdn_url or dead_url()}"

[downloads]
{downloads}

[ngrok]
api_url = "{dead_url()}"

[[instances]]
id = "{INSTANCE}"
token = "{TOKEN}"
client = "{CLIENT}"
""",
        encoding="utf-8",
    )
    return path


def python_script(name: str, *args: str, **popen: Any) -> subprocess.Popen[bytes]:
    """Start `bench/<name>` with this interpreter."""
    command = [sys.executable, str(ROOT / "bench" / name), *args]
    process: subprocess.Popen[bytes] = subprocess.Popen(command, cwd=ROOT, **popen)
    return process


def mediamon_serve(config: Path, log: Path) -> subprocess.Popen[bytes]:
    """`mediamon serve` on `config`, its log lines going to a file, not a pipe nobody reads."""
    with log.open("wb") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "mediamon", "serve", "--config", str(config)],
            cwd=ROOT,
            stdout=out,
            stderr=subprocess.STDOUT,
        )


def wait_http(url: str, process: subprocess.Popen[bytes], timeout: float = 30.0) -> None:
    """Wait until `url` answers 200, or fail early if `process` died."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{process.args!r} exited with {process.returncode}")
        try:
            with urllib.request.urlopen(url, timeout=1) as answer:
                if answer.status == 200:
                    return
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            pass
        time.sleep(0.05)
    raise RuntimeError(f"{url} did not answer within {timeout:.0f} s")


def stop(process: subprocess.Popen[bytes], timeout: float = 15.0) -> int:
    """SIGTERM, then SIGKILL if it lingers; returns the exit code."""
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
    return process.returncode


def rss_mb(field: str = "VmRSS") -> float:
    """This process's resident memory (or its peak, with "VmHWM") in MB."""
    with open("/proc/self/status", encoding="ascii") as status:
        for line in status:
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024
    raise RuntimeError(f"{field} not in /proc/self/status")


def webhook_template() -> str:
    """One image webhook as W-API sends it, with the marker where the messageId goes."""
    from mediamon.core.models import MediaKind
    from tests.fakes.payloads import media_message, sample_bytes, webhook
    from tests.fakes.registry import MediaRegistry

    registry = MediaRegistry(seed=8)
    block = registry.add(sample_bytes(MediaKind.IMAGE, 80_000), MediaKind.IMAGE, "image/jpeg")
    # A real jpegThumbnail is a couple of kB, which makes the body about 3 kB.
    thumbnail = sample_bytes(MediaKind.IMAGE, 1_500, seed=1)
    block["jpegThumbnail"] = base64.b64encode(thumbnail).decode("ascii")
    block["caption"] = "foto da entrega"
    body = webhook(INSTANCE, media_message(MediaKind.IMAGE, block), message_id=MARKER)
    return json.dumps(body, ensure_ascii=False)
