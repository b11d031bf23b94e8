"""`mediamon doctor`: is everything in place for media to arrive and be kept?

One line per check, `ok`, `warn` or `fail`, in the order a person would fix things:
the config, the files it names, each W-API instance, then the server and the tunnel
in front of it. A `fail` is something that stops media from being kept (exit 1); a
`warn` is worth knowing but may be on purpose, such as running doctor with no server
up. Doctor changes nothing: it opens the database read-only and creates no folder.

Every line is scrubbed of the config's tokens and secret before it is printed, on
top of the care each check takes not to word one.
"""

from __future__ import annotations

import asyncio
import enum
import shutil
import sqlite3
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Final, TextIO

import aiohttp

from mediamon.commands.webhook import NoServer, local_base_url
from mediamon.core.config import Config, Instance, load_config
from mediamon.core.errors import ConfigError
from mediamon.core.eventlog import human_size
from mediamon.core.ngrok import find_tunnel
from mediamon.core.sqlite_store import SCHEMA_VERSION
from mediamon.core.wapi_api import WapiApi, WapiApiError
from mediamon.logs import hide_secrets

LOW_SPACE: Final = 1_000_000_000
"""Bytes free under the media folder below which doctor warns."""
HTTP_TIMEOUT: Final = 10.0
"""Seconds for each W-API call; a shorter wait than downloads allow, for a quick verdict."""
LOCAL_TIMEOUT: Final = 2.0
"""Seconds for our own server and the ngrok agent, both on this machine."""


class Level(enum.StrEnum):
    OK = "ok"
    WARN = "warn"
    FAIL = "fail"


@dataclass(frozen=True, slots=True)
class Check:
    level: Level
    text: str


class _Report:
    """Prints each check as it is made, never a token or the secret."""

    def __init__(self, out: TextIO) -> None:
        self._out = out
        self._secrets: tuple[str, ...] = ()
        self.counts = dict.fromkeys(Level, 0)

    def hide(self, secrets: tuple[str, ...]) -> None:
        self._secrets = secrets

    def add(self, *checks: Check) -> None:
        for check in checks:
            text = hide_secrets(check.text, self._secrets)
            self._out.write(f"{check.level.value:<5} {text}\n")
            self._out.flush()
            self.counts[check.level] += 1

    def summary(self) -> None:
        parts = ", ".join(f"{count} {level.value}" for level, count in self.counts.items())
        self._out.write(f"doctor: {parts}\n")


def doctor(config_path: Path, *, out: TextIO = sys.stdout) -> int:
    report = _Report(out)
    asyncio.run(_examine(config_path, report))
    report.summary()
    return 1 if report.counts[Level.FAIL] else 0


async def _examine(config_path: Path, report: _Report) -> None:
    try:
        config = load_config(config_path)
    except ConfigError as error:
        report.add(Check(Level.FAIL, f"config: {error}"))
        return
    report.hide(config.secrets)

    path = config.path or config_path
    count = len(config.instances)
    if count:
        report.add(Check(Level.OK, f"config {path} loads: {count} instance(s)"))
    else:
        report.add(Check(Level.FAIL, f"config {path} lists no [[instances]]; add one"))
    report.add(_config_privacy(config, path))
    report.add(_media_folder(config.storage.media_dir))
    report.add(*await asyncio.to_thread(_database, config.storage.database))

    async with aiohttp.ClientSession() as session:
        api = WapiApi(session, config.wapi, timeout=min(config.wapi.timeout, HTTP_TIMEOUT))
        report.add(*await asyncio.gather(*(_instance(api, inst) for inst in config.instances)))
        report.add(await _server(session, config))
        report.add(await _tunnel(session, config))


def _config_privacy(config: Config, path: Path) -> Check:
    mode = path.stat().st_mode & 0o777
    if not config.secrets:
        return Check(Level.OK, f"config holds no token or secret (mode {mode:04o})")
    if mode & 0o077:
        return Check(
            Level.WARN,
            f"config holds tokens but others can read it (mode {mode:04o}); run: chmod 600 {path}",
        )
    return Check(Level.OK, f"config holding tokens is private to you (mode {mode:04o})")


def _media_folder(folder: Path) -> Check:
    if folder.exists() and not folder.is_dir():
        return Check(Level.FAIL, f"media folder {folder} is a file, not a folder")
    existing = next(parent for parent in (folder, *folder.parents) if parent.exists())
    try:
        with tempfile.TemporaryFile(dir=existing, prefix=".mediamon-doctor-"):
            pass
    except OSError as error:
        return Check(
            Level.FAIL, f"media folder {folder}: cannot write in {existing}: {error.strerror}"
        )

    free = shutil.disk_usage(existing).free
    where = f"media folder {folder} is writable"
    if existing != folder:
        where = f"media folder {folder} does not exist yet; serve creates it in {existing}"
    if free < LOW_SPACE:
        return Check(Level.WARN, f"{where}; only {human_size(free)} free")
    return Check(Level.OK, f"{where}; {human_size(free)} free")


def _database(path: Path) -> list[Check]:
    if not path.exists():
        return [Check(Level.OK, f"database {path} does not exist yet; serve creates it")]
    try:
        # Read-only, so that doctor never migrates or creates anything.
        conn = sqlite3.connect(f"{path.as_uri()}?mode=ro", uri=True, timeout=5)
        try:
            problems = [row[0] for row in conn.execute("PRAGMA integrity_check").fetchall()]
            version = conn.execute("PRAGMA user_version").fetchone()[0]
        finally:
            conn.close()
    except sqlite3.Error as error:
        return [Check(Level.FAIL, f"database {path} cannot be read: {error}")]

    if problems != ["ok"]:
        first = problems[0] if problems else "no answer"
        opened = Check(
            Level.FAIL,
            f"database {path} opens, but the integrity check found {len(problems)} "
            f"problem(s), first: {first}",
        )
    else:
        opened = Check(Level.OK, f"database {path} opens; integrity check ok")
    return [opened, _schema(version)]


def _schema(version: int) -> Check:
    if version == SCHEMA_VERSION:
        return Check(Level.OK, f"database schema version {version} is current")
    if version < SCHEMA_VERSION:
        return Check(
            Level.WARN,
            f"database schema version {version} is older than {SCHEMA_VERSION}; "
            "the next serve upgrades it",
        )
    return Check(
        Level.FAIL,
        f"database schema version {version} is newer than this mediamon knows "
        f"({SCHEMA_VERSION}); upgrade mediamon",
    )


async def _instance(api: WapiApi, instance: Instance) -> Check:
    try:
        status = await api.instance_status(instance)
    except WapiApiError as error:
        return Check(Level.FAIL, str(error))

    name = f"instance {instance.id}"
    if not status.token_accepted:
        return Check(
            Level.FAIL,
            f"{name}: W-API refused its token ({status.error}); check its token in the config",
        )
    if not status.connected:
        return Check(
            Level.WARN,
            f"{name}: token accepted, but no phone is connected, so no message arrives; "
            "reconnect it in W-API's panel",
        )
    return Check(Level.OK, f"{name}: token accepted, connected as {status.phone or '?'}")


async def _server(session: aiohttp.ClientSession, config: Config) -> Check:
    try:
        url = f"{local_base_url(config)}/healthz"
    except NoServer:
        return Check(Level.WARN, "server not checked: [server] port is 0 (any free port)")
    try:
        async with session.get(url, timeout=aiohttp.ClientTimeout(total=LOCAL_TIMEOUT)) as answer:
            status = answer.status
            body = await answer.json(content_type=None)
    except (aiohttp.ClientError, TimeoutError):
        return Check(
            Level.WARN, f"no server answers at {url} (fine if none should run: `mediamon serve`)"
        )
    except ValueError:
        status, body = -1, None

    if status == 200 and isinstance(body, dict) and body.get("ok") is True:
        return Check(Level.OK, f"a mediamon server answers at {url}")
    if status == 503:
        return Check(Level.WARN, f"the server at {url} answers but its downloads are not running")
    return Check(
        Level.WARN,
        f"something other than mediamon answers at {url}; is another program on that port?",
    )


async def _tunnel(session: aiohttp.ClientSession, config: Config) -> Check:
    port, api_url = config.server.port, config.ngrok.api_url
    tunnel = await find_tunnel(session, api_url, port, timeout=LOCAL_TIMEOUT)
    if tunnel is not None:
        return Check(Level.OK, f"ngrok tunnel {tunnel.public_url} -> {tunnel.addr}")
    if config.server.public_url:
        return Check(Level.OK, "no ngrok tunnel, and none needed: [server] public_url is set")
    return Check(
        Level.WARN,
        f"no ngrok agent with a tunnel to port {port} at {api_url}; "
        f"W-API reaches a local server only through one: ngrok http {port}",
    )
