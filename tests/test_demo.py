"""`mediamon demo` as a newcomer runs it: a real process in an empty folder, no network.

The demo runs the real product against the built-in simulator, so these tests take the
time a demo takes (about 15 s for the file) and check what a person would look at: the
exit code, the summary, and the files under demo_data.
"""

from __future__ import annotations

import asyncio
import re
import signal
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from mediamon.commands.demo import DemoSession, DemoSettings
from mediamon.core.models import MediaStatus
from mediamon.tui.app import MonitorApp
from mediamon.tui.media_table import MediaTable
from tests.conftest import mediamon

MAGIC_BY_KIND: dict[str, Callable[[bytes], bool]] = {
    "image": lambda head: head.startswith((b"\xff\xd8\xff", b"\x89PNG\r\n\x1a\n")),
    "sticker": lambda head: head[:4] == b"RIFF" and head[8:12] == b"WEBP",
    "audio": lambda head: head.startswith(b"OggS") or head[8:12] == b"WAVE",
    "video": lambda head: head[4:8] == b"ftyp",
    "document": lambda head: head.startswith(b"%PDF-"),
}


def stored_files(folder: Path) -> list[Path]:
    return sorted((folder / "demo_data").glob("cliente_*/instance_*/*/*"))


async def test_a_timed_demo_stores_real_files_and_sums_up(tmp_path: Path) -> None:
    code, out, err = await mediamon("demo", "--headless", "--seconds", "10", cwd=tmp_path)

    assert code == 0, err
    assert "Traceback" not in err
    assert re.search(
        r"demo: simulated W-API at http://127\.0\.0\.1:\d+; files go to ./demo_data", err
    )
    assert "<-- " in err and "--> done" in err
    assert "demo summary after 1" in out
    for label in ("received", "done", "retried", "failed", "missing", "in progress", "stored"):
        assert re.search(rf"^  {label} +\d", out, re.MULTILINE), f"no {label} line in:\n{out}"

    files = stored_files(tmp_path)
    done = re.search(r"^  done +(\d+)", out, re.MULTILINE)
    assert done is not None and int(done.group(1)) == len(files) > 0
    assert len({path.parent.name for path in files}) >= 3, files
    for path in files:
        kind = path.parent.name
        assert MAGIC_BY_KIND[kind](path.read_bytes()[:16]), f"{path} is not a real {kind}"


async def test_ctrl_c_stops_the_demo_cleanly_with_its_summary(tmp_path: Path) -> None:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "mediamon",
        "demo",
        "--headless",
        cwd=tmp_path,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    assert process.stderr is not None
    seen = b""
    try:
        async with asyncio.timeout(15):
            while b"--> done" not in seen:
                line = await process.stderr.readline()
                assert line, f"the demo ended before storing a file:\n{seen.decode()}"
                seen += line

        process.send_signal(signal.SIGINT)
        async with asyncio.timeout(15):
            out, err = await process.communicate()
    finally:
        if process.returncode is None:  # a failed wait must not leave a demo running
            process.kill()
            await process.wait()

    assert process.returncode == 0, err.decode()
    assert "demo summary after" in out.decode()
    assert stored_files(tmp_path)


@pytest.mark.parametrize(
    ("option", "value"), [("--rate", "0"), ("--failure-rate", "1.5"), ("--seconds", "-1")]
)
async def test_an_impossible_option_is_one_line_and_exit_2(
    tmp_path: Path, option: str, value: str
) -> None:
    code, _, err = await mediamon("demo", "--headless", option, value, cwd=tmp_path)

    assert code == 2
    assert option in err
    assert len(err.strip().splitlines()) == 1
    assert not (tmp_path / "demo_data").exists()


async def test_the_demo_on_the_monitor_shows_media_arriving_and_stored(tmp_path: Path) -> None:
    settings = DemoSettings(rate=10, failure_rate=0.3, folder=tmp_path / "demo_data")
    session = DemoSession(settings)

    async with session.simulated() as config:
        app = MonitorApp(config, bus=session.bus, on_started=session.fire_at)
        async with app.run_test(size=(150, 45)) as pilot:
            table = app.query_one(MediaTable)
            deadline = asyncio.get_running_loop().time() + 15
            while not any(m.status is MediaStatus.DONE for m in table.records.values()):
                assert asyncio.get_running_loop().time() < deadline, "nothing was stored"
                await pilot.pause(0.1)
            await pilot.press("q")

    assert stored_files(tmp_path)
