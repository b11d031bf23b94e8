"""`mediamon events` and `mediamon replay`: the webhooks as they arrived, and again.

Every body that reached the server is kept with what became of it (accepted,
ignored, refused or rejected, and why), so a webhook that did not do what was
expected can be read back, fixed for, and sent through the pipeline once more. A
replay posts the stored body to the running server, as ngrok's inspector replays a
request, so it meets exactly the checks a delivery from W-API meets; the server
records it as a new event, and a media it already knows is not fetched twice.

Bodies come from W-API and hold no token, but every field printed is scrubbed of
the config's tokens and secret all the same.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import shutil
import sys
import time
from collections.abc import Sequence
from typing import Any, Final, TextIO

import aiohttp

from mediamon.commands.webhook import (
    ServerAnswer,
    WebhookUrl,
    post_webhook,
    server_webhook_url,
)
from mediamon.core.config import Config
from mediamon.core.errors import MediamonError
from mediamon.core.sqlite_store import SQLiteStore
from mediamon.core.store import StoredEvent
from mediamon.logs import hide_secrets

DEFAULT_LIMIT: Final = 100


class ReplayError(MediamonError):
    title = "replay"


def list_events(
    config: Config, *, as_json: bool, limit: int | None, out: TextIO = sys.stdout
) -> int:
    events = asyncio.run(_events(config, limit or DEFAULT_LIMIT))
    secrets = config.secrets
    if as_json:
        json.dump([event_as_json(event, secrets) for event in events], out, indent=2)
        out.write("\n")
    elif not events:
        out.write("no webhook events yet\n")
    else:
        _print_table(events, secrets, out)
    return 0


def replay(config: Config, event_id: int, *, url: str | None, out: TextIO = sys.stdout) -> int:
    target = server_webhook_url(config, url)
    event = asyncio.run(_event(config, event_id))
    if event.body is None:
        raise ReplayError(
            f"event #{event_id} has no body any more ([storage] keep_events_days drops "
            "old ones), so there is nothing to replay"
        )

    what = ", ".join(
        part for part in (event.event, event.message_id and f"message {event.message_id}") if part
    )
    out.write(f"replaying event #{event.id} ({what or event.outcome}) to {target.shown}\n")
    answer = asyncio.run(_post(target, event.body.encode("utf-8")))
    out.write(f"HTTP {answer.status} {answer.reason}: {_scrub(answer.text, config.secrets)}\n")
    return 0 if answer.ok else 1


async def _events(config: Config, limit: int) -> list[StoredEvent]:
    if not config.storage.database.exists():
        return []
    store = await SQLiteStore.open(config.storage.database)
    try:
        return await store.list_events(limit)
    finally:
        await store.close()


async def _event(config: Config, event_id: int) -> StoredEvent:
    database = config.storage.database
    if not database.exists():
        raise ReplayError(f"no database at {database} yet, so no event #{event_id}")
    store = await SQLiteStore.open(database)
    try:
        event = await store.get_event(event_id)
    finally:
        await store.close()
    if event is None:
        raise ReplayError(f"no webhook event #{event_id}; `mediamon events` lists them")
    return event


async def _post(target: WebhookUrl, body: bytes) -> ServerAnswer:
    async with aiohttp.ClientSession() as session:
        return await post_webhook(session, target, body)


def event_as_json(event: StoredEvent, secrets: Sequence[str] = ()) -> dict[str, Any]:
    """An event for scripts; `body` is the parsed JSON when it parses, else the text."""
    body: Any = event.body
    if body is not None:
        with contextlib.suppress(ValueError):
            body = json.loads(body)
    return {
        "id": event.id,
        "received_at": _iso(event.received_at),
        "event": event.event,
        "instance_id": event.instance_id,
        "message_id": event.message_id,
        "outcome": event.outcome,
        "reason": _scrub(event.reason, secrets),
        "body": _scrub_all(body, secrets),
    }


def _print_table(events: list[StoredEvent], secrets: Sequence[str], out: TextIO) -> None:
    # Cut lines to a terminal's width, but never what goes to a pipe or a file.
    width = shutil.get_terminal_size().columns if out.isatty() else None
    header = f"{'ID':>6} {'RECEIVED':<19} {'EVENT':<16} {'INSTANCE':<22} {'MESSAGE':<12} "
    out.write(f"{header}{'OUTCOME':<8} REASON"[:width] + "\n")
    for event in events:
        received = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(event.received_at))
        line = (
            f"{event.id:>6} {received:<19} {(event.event or '-')[:16]:<16} "
            f"{(event.instance_id or '-')[:22]:<22} {(event.message_id or '-')[:12]:<12} "
            f"{event.outcome:<8} {_scrub(event.reason, secrets) or ''}"
        )
        out.write(line.rstrip()[:width] + "\n")


def _scrub_all(value: Any, secrets: Sequence[str]) -> Any:
    if isinstance(value, str):
        return _scrub(value, secrets)
    if isinstance(value, list):
        return [_scrub_all(item, secrets) for item in value]
    if isinstance(value, dict):
        return {_scrub(str(key), secrets): _scrub_all(item, secrets) for key, item in value.items()}
    return value


def _scrub(text: str | None, secrets: Sequence[str]) -> str | None:
    return None if text is None else hide_secrets(text, secrets)


def _iso(timestamp: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S%z", time.localtime(timestamp))
