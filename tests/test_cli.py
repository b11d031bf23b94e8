"""The `mediamon` command as a person runs it: real processes, a real config file."""

from __future__ import annotations

import asyncio
import json
import signal
import sys
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from mediamon.core.models import MediaKind
from tests.conftest import (
    CLIENT,
    INSTANCE,
    TOKEN,
    free_port,
    media_webhook,
    mediamon,
    post,
    wait_for,
    write_config,
)
from tests.fakes.cdn import FakeCdn
from tests.fakes.wapi import FakeWapi


@pytest.mark.parametrize(
    ("extra", "names"),
    [
        ("[server]\nprot = 1\n", "prot"),
        ('[downloads]\nconcurrency = "eight"\n', "concurrency"),
        ('[[instances]]\nid = "X"\nclient = "1"\n', "token"),
    ],
)
async def test_a_bad_config_is_one_line_naming_the_key_and_exit_2(
    tmp_path: Path, extra: str, names: str
) -> None:
    (tmp_path / "mediamon.toml").write_text(
        f'[[instances]]\nid = "A"\ntoken = "t"\nclient = "1"\n\n{extra}'
    )

    code, _, err = await mediamon("list", cwd=tmp_path)

    assert code == 2
    assert names in err
    assert len(err.strip().splitlines()) == 1
    assert "Traceback" not in err


async def test_a_missing_config_says_how_to_make_one(tmp_path: Path) -> None:
    code, _, err = await mediamon("serve", "--config", str(tmp_path / "nope.toml"), cwd=tmp_path)

    assert code == 2
    assert "nope.toml: no such file" in err


async def test_serve_stores_media_logs_each_event_and_stops_on_sigterm(
    tmp_path: Path, wapi: FakeWapi, cdn: FakeCdn, http: aiohttp.ClientSession
) -> None:
    port = free_port()
    config = write_config(tmp_path, wapi.url, cdn.url, port)
    wapi.fail("500", times=2)
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "mediamon",
        "serve",
        "--config",
        str(config),
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        await wait_for(lambda: _healthy(http, port), timeout=15)
        body = media_webhook(wapi, MediaKind.IMAGE, size=76_970)
        status, _ = await post(http, f"http://127.0.0.1:{port}/webhook", body)
        assert status == 200

        listed = await wait_for(lambda: _listed_done(config, body["messageId"]), timeout=15)
    finally:
        process.send_signal(signal.SIGTERM)
        _, err_bytes = await asyncio.wait_for(process.communicate(), timeout=10)
    log = err_bytes.decode()

    assert process.returncode == 0
    assert listed["kind"] == "image"
    assert listed["client"] == CLIENT
    assert listed["instance_id"] == INSTANCE
    assert listed["source"] in ("wapi", "cdn")
    assert Path(listed["path"]).is_absolute() and Path(listed["path"]).is_file()
    assert {"message_id", "attempts", "error", "received_at"} <= listed.keys()
    short = body["messageId"][:8]
    assert f"<-- image {short} from Maria" in log
    assert f"--> done  {short} 77.0 kB in" in log
    assert "stopped" in log
    assert TOKEN not in log
    assert "Traceback" not in log


async def test_sigint_stops_serve_cleanly(tmp_path: Path, http: aiohttp.ClientSession) -> None:
    port = free_port()
    config = write_config(tmp_path, "http://127.0.0.1:9", "http://127.0.0.1:9", port)
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "mediamon", "serve", "--config", str(config),
        stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    await wait_for(lambda: _healthy(http, port), timeout=15)

    process.send_signal(signal.SIGINT)
    _, err = await asyncio.wait_for(process.communicate(), timeout=10)

    assert process.returncode == 0
    assert b"Traceback" not in err


async def test_list_filters_by_status_and_prints_a_table(
    tmp_path: Path, wapi: FakeWapi, cdn: FakeCdn
) -> None:
    config = write_config(tmp_path, wapi.url, cdn.url, 0)
    code, out, _ = await mediamon("list", "--config", str(config))
    assert (code, out) == (0, "no media yet\n")

    code, out, _ = await mediamon("list", "--json", "--status", "failed", "--config", str(config))
    assert (code, json.loads(out)) == (0, [])

    code, _, err = await mediamon("list", "--status", "bogus", "--config", str(config))
    assert code == 2
    assert "bogus" in err


async def test_version() -> None:
    code, out, _ = await mediamon("--version")

    assert code == 0
    assert out.startswith("mediamon ")


async def _healthy(http: aiohttp.ClientSession, port: int) -> bool:
    try:
        async with http.get(f"http://127.0.0.1:{port}/healthz") as response:
            return response.status == 200
    except aiohttp.ClientError:
        return False


async def _listed_done(config: Path, message_id: str) -> dict[str, Any] | None:
    code, out, err = await mediamon("list", "--json", "--config", str(config))
    assert code == 0, err
    rows = [row for row in json.loads(out) if row["message_id"] == message_id]
    return rows[0] if rows and rows[0]["status"] == "done" else None
