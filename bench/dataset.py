"""A media database of any size, with the files its `done` rows point at, made fast.

The schema comes from `SQLiteStore.open`, so it is exactly the product's; the rows go
in with one `executemany` in one transaction. Their mix is what a busy number sees:
mostly images and voice notes, nearly all `done`, a few failed, missing, waiting to
be retried and queued. Every `done` row's file exists (empty: the scan looks at
presence, and hashing is benchmarked elsewhere) under the path the product would give it.
"""

from __future__ import annotations

import asyncio
import os
import random
import sqlite3
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from common import CLIENT, INSTANCE

from mediamon.core.layout import media_relpath
from mediamon.core.models import MediaKind, MediaStatus
from mediamon.core.sqlite_store import SQLiteStore

KINDS: Final = (
    (MediaKind.IMAGE, "image/jpeg", None, 0.55),
    (MediaKind.AUDIO, "audio/ogg; codecs=opus", None, 0.20),
    (MediaKind.VIDEO, "video/mp4", None, 0.10),
    (MediaKind.DOCUMENT, "application/pdf", "relatorio.pdf", 0.10),
    (MediaKind.STICKER, "image/webp", None, 0.05),
)
STATUSES: Final = (
    (MediaStatus.DONE, 0.967),
    (MediaStatus.FAILED, 0.02),
    (MediaStatus.MISSING, 0.01),
    (MediaStatus.RETRYING, 0.0029),
    (MediaStatus.QUEUED, 0.0001),
)
SENDERS: Final = ("Maria", "João", "Ana Paula", "Carlos", "Loja Central", "Francisca")
EXTENSIONS: Final = {
    MediaKind.IMAGE: ".jpg",
    MediaKind.AUDIO: ".ogg",
    MediaKind.VIDEO: ".mp4",
    MediaKind.STICKER: ".webp",
}

_INSERT: Final = """
    INSERT INTO media (
        instance_id, client, message_id, from_me, chat_id, sender_id, sender_name, kind,
        mimetype, file_name, expected_size, expected_sha256, media_key, direct_path, status,
        attempts, last_error, next_attempt_at, path, stored_sha256, stored_size, source,
        received_at, updated_at, missing_since
    ) VALUES (?, ?, ?, 0, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
"""


@dataclass(frozen=True, slots=True)
class Dataset:
    database: Path
    media_dir: Path
    rows: int
    files: list[str]
    """Relative paths of the files made for `done` rows, in row order."""


def make(folder: Path, rows: int, *, seed: int = 1) -> Dataset:
    database, media_dir = folder / "mediamon.db", folder / "media_storage"
    asyncio.run(_create_schema(database))
    rng = random.Random(seed)
    files: list[str] = []
    with sqlite3.connect(database, isolation_level=None) as db:
        db.execute("BEGIN")
        db.executemany(_INSERT, _rows(rng, rows, files))
        db.execute("COMMIT")
    _make_files(media_dir, files)
    return Dataset(database, media_dir, rows, files)


async def _create_schema(database: Path) -> None:
    store = await SQLiteStore.open(database)
    await store.close()


def _relpath(kind: MediaKind, message_id: str, file_name: str | None) -> str:
    # What media_relpath makes of a clean id, written out: a million calls of it
    # would take longer than the inserts. `_check_paths` holds the two together.
    stem = f"{message_id}_{file_name}" if file_name else message_id + EXTENSIONS[kind]
    return f"cliente_{CLIENT}/instance_{INSTANCE}/{kind.value}/{stem}"


def _check_paths() -> None:
    for kind, mimetype, file_name, _ in KINDS:
        expected = media_relpath(
            client=CLIENT,
            instance_id=INSTANCE,
            kind=kind,
            message_id="3EB0ABCDEF0123456789",
            mimetype=mimetype,
            file_name=file_name,
        ).as_posix()
        if _relpath(kind, "3EB0ABCDEF0123456789", file_name) != expected:
            raise RuntimeError(f"the dataset's paths no longer match the product's: {expected}")


def _rows(rng: random.Random, count: int, files: list[str]) -> Iterator[tuple[object, ...]]:
    _check_paths()
    kinds = rng.choices(KINDS, weights=[k[3] for k in KINDS], k=count)
    statuses = rng.choices([s for s, _ in STATUSES], weights=[w for _, w in STATUSES], k=count)
    now = time.time()
    start = now - 60 * 86_400  # two months of traffic, oldest first
    step = (now - start) / max(count, 1)
    for number, ((kind, mimetype, file_name, _), status) in enumerate(
        zip(kinds, statuses, strict=True)
    ):
        message_id = f"3EB0{number:016X}"
        received = start + number * step
        size = rng.randrange(8_000, 2_000_000)
        sha = f"{rng.getrandbits(256):064x}"
        sender = SENDERS[number % len(SENDERS)]
        chat = f"55699{number % 9973:08d}"
        path = _relpath(kind, message_id, file_name)
        has_path = status in (MediaStatus.DONE, MediaStatus.MISSING)
        if status is MediaStatus.DONE:
            files.append(path)
        yield (
            INSTANCE,
            CLIENT,
            message_id,
            chat,
            chat,
            sender,
            kind.value,
            mimetype,
            file_name,
            size,
            sha,
            "bWVkaWEta2V5LW5vdC11c2VkLWluLWJlbmNobWFya3M=",
            f"/v/t62.7118-24/{number:024x}_n.enc?ccb=11-4&oh=01_x&oe=6865A1B2",
            status.value,
            _attempts(status),
            _error(status),
            _next_attempt(status, now),
            path if has_path else None,
            sha if has_path else None,
            size if has_path else None,
            "wapi" if has_path else None,
            received,
            received + 2.0,
            received + 86_400 if status is MediaStatus.MISSING else None,
        )


def _attempts(status: MediaStatus) -> int:
    return {MediaStatus.QUEUED: 0, MediaStatus.FAILED: 6, MediaStatus.RETRYING: 2}.get(status, 1)


def _error(status: MediaStatus) -> str | None:
    if status is MediaStatus.FAILED:
        return "expired on WhatsApp servers (404)"
    if status is MediaStatus.RETRYING:
        return "W-API 500: Falha ao fazer o download do conteúdo."
    if status is MediaStatus.MISSING:
        return "file deleted or moved away"
    return None


def _next_attempt(status: MediaStatus, now: float) -> float | None:
    if status is MediaStatus.QUEUED:
        return now
    if status is MediaStatus.RETRYING:
        return now + 3_600
    return None


def _make_files(media_dir: Path, files: list[str]) -> None:
    folders = {path.rsplit("/", 1)[0] for path in files}
    for folder in folders:
        (media_dir / folder).mkdir(parents=True, exist_ok=True)
    root = str(media_dir) + "/"
    flags = os.O_CREAT | os.O_WRONLY | os.O_EXCL
    for path in files:
        os.close(os.open(root + path, flags, 0o644))
