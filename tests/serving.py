"""`mediamon serve` as a child process, for the tests that kill it, signal it or crowd it.

An in-process `Runtime` cannot be SIGKILLed, cannot run in its own mount namespace
and shares the test's event loop, so the crash, disk and concurrency tests start the
real command instead. Its log goes to a file rather than a pipe, so a busy server
never stalls on a pipe nobody reads, and what it did is read back from its SQLite
file and its folders, as a person would.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import sqlite3
import sys
import time
from collections.abc import AsyncIterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import aiohttp

from tests.conftest import CLIENT, INSTANCE, TOKEN

DATABASE = "mediamon.db"
MEDIA_DIR = "media_storage"


def write_serve_config(
    folder: Path,
    *,
    wapi_url: str,
    cdn_url: str,
    port: int,
    instances: Sequence[tuple[str, str, str]] = ((INSTANCE, TOKEN, CLIENT),),
    downloads: Mapping[str, object] | None = None,
    wapi_timeout: float = 30,
) -> Path:
    """A mediamon.toml in `folder`; `instances` are (id, token, client) triples.

    The W-API timeout is long by default, so that a transfer a test holds open is
    still in flight when the test acts on it.
    """
    settings: dict[str, object] = {"backoff_initial": 0.05, "backoff_max": 0.2}
    settings.update(downloads or {})
    lines = [
        "[server]",
        f"port = {port}",
        "[storage]",
        f"media_dir = {_toml(MEDIA_DIR)}",
        f"database = {_toml(DATABASE)}",
        "[wapi]",
        f"base_url = {_toml(wapi_url)}",
        f"timeout = {wapi_timeout}",
        "[whatsapp]",
        f"cdn_base_url = {_toml(cdn_url)}",
        "[downloads]",
        *(f"{key} = {_toml(value)}" for key, value in settings.items()),
    ]
    for instance_id, token, client in instances:
        lines += [
            "[[instances]]",
            f"id = {_toml(instance_id)}",
            f"token = {_toml(token)}",
            f"client = {_toml(client)}",
        ]
    path = folder / "mediamon.toml"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def _toml(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, str):
        escaped = value.replace("\\", "\\\\").replace('"', '\\"')
        return f'"{escaped}"'
    if isinstance(value, list | tuple):
        return "[" + ", ".join(_toml(item) for item in value) + "]"
    raise TypeError(f"no TOML spelling for {value!r}")


class ServeProcess:
    """One running `mediamon serve`, and the files it works on."""

    def __init__(
        self, process: asyncio.subprocess.Process, folder: Path, port: int, log_path: Path
    ) -> None:
        self.process = process
        self.folder = folder
        self.port = port
        self.log_path = log_path
        self.database = folder / DATABASE
        self.media_dir = folder / MEDIA_DIR

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def webhook_url(self) -> str:
        return f"{self.url}/webhook"

    def log(self) -> str:
        return self.log_path.read_text(encoding="utf-8", errors="replace")

    async def healthy(self, http: aiohttp.ClientSession) -> bool:
        if self.process.returncode is not None:
            raise AssertionError(
                f"serve exited with {self.process.returncode} before it was ready:\n{self.log()}"
            )
        try:
            async with http.get(f"{self.url}/healthz") as response:
                return response.status == 200
        except aiohttp.ClientError:
            return False

    async def stop(self, signum: int = signal.SIGTERM, timeout: float = 10) -> int:
        """Send `signum` and return the exit code; fail if it takes over `timeout` s."""
        self.process.send_signal(signum)
        return await self.exit_code(timeout)

    async def exit_code(self, timeout: float = 10) -> int:
        try:
            return await asyncio.wait_for(self.process.wait(), timeout)
        except TimeoutError:
            raise AssertionError(f"serve still running after {timeout} s:\n{self.log()}") from None

    async def kill(self) -> None:
        """SIGKILL: no handler runs, nothing is flushed or put back."""
        self.process.kill()
        await self.process.wait()


@contextlib.asynccontextmanager
async def serving(
    config: Path,
    port: int,
    http: aiohttp.ClientSession,
    *,
    prefix: Sequence[str] = (),
    ready_within: float = 15,
) -> AsyncIterator[ServeProcess]:
    """Start serve on `config` (through `prefix`, a command it is run under, if any),
    wait until /healthz says ok, and make sure the process is gone afterwards."""
    folder = config.parent
    # One log per start, so that a restart's log holds only what the restart did.
    log_path = folder / f"serve-{len(list(folder.glob('serve-*.log'))) + 1}.log"
    with log_path.open("wb") as log:
        process = await asyncio.create_subprocess_exec(
            *prefix,
            sys.executable,
            "-m",
            "mediamon",
            "serve",
            "--config",
            str(config),
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.DEVNULL,
            stderr=log,
        )
    serve = ServeProcess(process, folder, port, log_path)
    try:
        deadline = time.monotonic() + ready_within
        while not await serve.healthy(http):
            if time.monotonic() > deadline:
                raise AssertionError(f"serve not ready within {ready_within} s:\n{serve.log()}")
            await asyncio.sleep(0.05)
        yield serve
    finally:
        if process.returncode is None:
            await serve.kill()


def media_rows(database: Path) -> list[dict[str, Any]]:
    """Every media row, oldest first, read the way another process would read them."""
    return _query(database, "SELECT * FROM media ORDER BY id")


def attempt_rows(database: Path, media_id: int) -> list[dict[str, Any]]:
    return _query(database, "SELECT * FROM attempts WHERE media_id = ? ORDER BY id", media_id)


def count(database: Path, table: str) -> int:
    return int(_query(database, f"SELECT count(*) AS n FROM {table}")[0]["n"])


def _query(database: Path, sql: str, *parameters: object) -> list[dict[str, Any]]:
    conn = sqlite3.connect(database, timeout=10)
    try:
        conn.row_factory = sqlite3.Row
        return [dict(row) for row in conn.execute(sql, parameters)]
    finally:
        conn.close()
