"""`mediamon reprocess`: queue failed, missing or named media again.

A `serve` or `run` on the same database notices the new work within about a second
(its dispatcher looks at the queue at least that often), so no restart is needed.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Sequence
from typing import TextIO

from mediamon.core.config import Config
from mediamon.core.errors import MediamonError
from mediamon.core.models import MediaRecord, MediaStatus
from mediamon.core.sqlite_store import SQLiteStore
from mediamon.core.store import MediaQuery


class NothingToReprocess(MediamonError):
    title = "reprocess"


def reprocess(
    config: Config,
    *,
    statuses: Sequence[MediaStatus],
    message_ids: Sequence[str],
    out: TextIO = sys.stdout,
) -> int:
    if not statuses and not message_ids:
        raise NothingToReprocess("say what to reprocess: --failed, --missing or message ids")
    queued = asyncio.run(_reprocess(config, statuses, message_ids))
    if not queued:
        out.write("nothing to reprocess\n")
        return 0
    out.write(f"queued {len(queued)} media again:\n")
    out.writelines(f"  {m.message_id}  {m.kind.value:<8} {m.instance_id}\n" for m in queued)
    return 0


async def _reprocess(
    config: Config, statuses: Sequence[MediaStatus], message_ids: Sequence[str]
) -> list[MediaRecord]:
    if not config.storage.database.exists():
        raise NothingToReprocess(f"no database at {config.storage.database} yet")
    store = await SQLiteStore.open(config.storage.database)
    try:
        full_ids = [await _resolve(store, message_id) for message_id in message_ids]
        return await store.reprocess(statuses=statuses, message_ids=full_ids)
    finally:
        await store.close()


async def _resolve(store: SQLiteStore, given: str) -> str:
    """A whole message id from the whole id or its first characters, as `list` shows."""
    matches = {m.message_id for m in await store.list_media(MediaQuery(message_ids=(given,)))}
    if given in matches:
        return given
    if not matches:
        raise NothingToReprocess(f"no media with message id {given}")
    if len(matches) > 1:
        raise NothingToReprocess(
            f"{given} matches {len(matches)} media; give more of the message id"
        )
    return matches.pop()
