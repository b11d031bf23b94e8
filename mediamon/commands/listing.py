"""`mediamon list`: the media rows, newest first, as a table or as JSON.

It opens the database beside a running `serve` without disturbing it (WAL lets
readers and the writer work at once) and never creates one: with no database yet
there is simply nothing to list.
"""

from __future__ import annotations

import asyncio
import json
import shutil
import sys
import time
from pathlib import Path
from typing import Any, TextIO

from mediamon.core.config import Config
from mediamon.core.eventlog import human_size
from mediamon.core.models import MediaRecord, MediaStatus
from mediamon.core.sqlite_store import SQLiteStore
from mediamon.core.store import MediaQuery


def list_media(
    config: Config,
    *,
    statuses: list[MediaStatus],
    as_json: bool,
    limit: int | None,
    out: TextIO = sys.stdout,
) -> int:
    query = MediaQuery(statuses=frozenset(statuses), limit=limit)
    rows = asyncio.run(_rows(config.storage.database, query))
    if as_json:
        json.dump([media_as_json(media, config.storage.media_dir) for media in rows], out, indent=2)
        out.write("\n")
    elif not rows:
        wanted = " or ".join(status.value for status in statuses)
        out.write(f"no {wanted} media\n" if statuses else "no media yet\n")
    else:
        _print_table(rows, out)
    return 0


async def _rows(database: Path, query: MediaQuery) -> list[MediaRecord]:
    if not database.exists():
        return []
    store = await SQLiteStore.open(database)
    try:
        return await store.list_media(query)
    finally:
        await store.close()


def media_as_json(media: MediaRecord, media_dir: Path) -> dict[str, Any]:
    """A row as scripts see it. Nothing here is secret: no media key, no token."""
    return {
        "id": media.id,
        "message_id": media.message_id,
        "instance_id": media.instance_id,
        "client": media.client,
        "kind": media.kind.value,
        "mimetype": media.mimetype,
        "status": media.status.value,
        "attempts": media.attempts,
        "path": str(media_dir / media.path) if media.path else None,
        "size": media.stored_size if media.stored_size is not None else media.expected_size,
        "sha256": media.stored_sha256 or media.expected_sha256,
        "error": media.last_error,
        "source": media.source,
        "sender": media.sender_name or media.sender_id,
        "chat_id": media.chat_id,
        "from_me": media.from_me,
        "received_at": _iso(media.received_at),
        "updated_at": _iso(media.updated_at),
        "next_attempt_at": _iso(media.next_attempt_at) if media.next_attempt_at else None,
    }


def _print_table(rows: list[MediaRecord], out: TextIO) -> None:
    # Cut lines to the terminal's width on a screen; a pipe or a file gets them whole.
    width = shutil.get_terminal_size().columns if out.isatty() else sys.maxsize
    header = f"{'RECEIVED':<19} {'STATUS':<11} {'KIND':<8} {'SIZE':>9} {'SOURCE':<6} "
    header += f"{'MESSAGE':<12} {'SENDER':<16} NOTE"
    out.write(header[:width] + "\n")
    for media in rows:
        size = media.stored_size if media.stored_size is not None else media.expected_size
        note = media.path if media.status is MediaStatus.DONE else media.last_error or ""
        line = (
            f"{time.strftime('%Y-%m-%d %H:%M:%S', time.localtime(media.received_at))} "
            f"{media.status.value:<11} {media.kind.value:<8} "
            f"{human_size(size) if size is not None else '?':>9} {media.source or '-':<6} "
            f"{media.message_id[:12]:<12} {media.sender[:16]:<16} {note or ''}"
        )
        out.write(line[:width] + "\n")


def _iso(timestamp: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S%z", time.localtime(timestamp))
