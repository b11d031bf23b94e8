"""The SQLite store: webhook events, media rows and their attempts, and the job queue.

One aiosqlite connection in WAL mode serves the whole process; readers in other
processes (`mediamon list` beside a running `serve`) never block it. Each store call
is one function run on aiosqlite's thread and one transaction, so a call is atomic
and costs one hop between threads however many statements it runs. Webhooks are
written in groups: deliveries that arrive while a commit is under way share the
next one, which keeps ingest fast without answering before the row is durable.

The schema is versioned with `PRAGMA user_version`; `_MIGRATIONS[n]` takes a database
from version n to n + 1, and a database newer than this code is refused.
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
import time
from collections.abc import Awaitable, Callable, Iterable, Sequence
from functools import cache, partial
from pathlib import Path
from typing import Any, Final, Generic, TypeVar

import aiosqlite

from mediamon.core.errors import StoreError
from mediamon.core.models import (
    Attempt,
    MediaKind,
    MediaRecord,
    MediaStatus,
)
from mediamon.core.store import (
    AttemptOutcome,
    MediaQuery,
    RecordedWebhook,
    StoredEvent,
    StoredFile,
    WebhookDelivery,
)

logger = logging.getLogger(__name__)

T = TypeVar("T")
ItemT = TypeVar("ItemT")
ResultT = TypeVar("ResultT")

BUSY_TIMEOUT_MS: Final = 10_000
MAX_BATCH: Final = 512
ROWS_PER_STATEMENT: Final = 64
"""Rows per multi-row INSERT: 64 media rows bind 1,408 values, far below SQLite's limit."""
FORGET_BATCH: Final = 5_000
"""Event bodies dropped per transaction, so retention never holds the write lock long."""

_MIGRATIONS: Final = (
    """
    CREATE TABLE webhook_events (
        id INTEGER PRIMARY KEY,
        received_at REAL NOT NULL,
        event TEXT,
        instance_id TEXT,
        message_id TEXT,
        outcome TEXT NOT NULL,
        reason TEXT,
        body TEXT
    );
    CREATE INDEX webhook_events_received ON webhook_events(received_at);

    CREATE TABLE media (
        id INTEGER PRIMARY KEY,
        instance_id TEXT NOT NULL,
        client TEXT NOT NULL,
        message_id TEXT NOT NULL,
        event_id INTEGER,
        from_me INTEGER NOT NULL DEFAULT 0,
        chat_id TEXT,
        sender_id TEXT,
        sender_name TEXT,
        kind TEXT NOT NULL,
        mimetype TEXT NOT NULL,
        caption TEXT,
        file_name TEXT,
        expected_size INTEGER,
        expected_sha256 TEXT,
        expected_enc_sha256 TEXT,
        media_key TEXT,
        direct_path TEXT,
        status TEXT NOT NULL,
        attempts INTEGER NOT NULL DEFAULT 0,
        last_error TEXT,
        next_attempt_at REAL,
        path TEXT,
        stored_sha256 TEXT,
        stored_size INTEGER,
        source TEXT,
        received_at REAL NOT NULL,
        updated_at REAL NOT NULL,
        UNIQUE (instance_id, message_id)
    );
    CREATE INDEX media_due ON media(next_attempt_at) WHERE status IN ('queued', 'retrying');
    CREATE INDEX media_status ON media(status, id);
    CREATE INDEX media_message ON media(message_id);

    CREATE TABLE attempts (
        id INTEGER PRIMARY KEY,
        media_id INTEGER NOT NULL REFERENCES media(id) ON DELETE CASCADE,
        number INTEGER NOT NULL,
        source TEXT NOT NULL,
        started_at REAL NOT NULL,
        finished_at REAL NOT NULL,
        outcome TEXT NOT NULL,
        http_status INTEGER,
        error TEXT,
        size INTEGER
    );
    CREATE INDEX attempts_media ON attempts(media_id);
    """,
    """
    ALTER TABLE media ADD COLUMN missing_since REAL;
    CREATE INDEX media_path ON media(path);
    """,
    # Totals kept by triggers, so counters cost one tiny read with a million rows.
    """
    CREATE TABLE media_totals (
        status TEXT PRIMARY KEY,
        media INTEGER NOT NULL DEFAULT 0,
        bytes INTEGER NOT NULL DEFAULT 0
    );
    INSERT INTO media_totals (status)
        VALUES ('queued'), ('downloading'), ('retrying'), ('done'), ('failed'), ('missing');
    UPDATE media_totals SET
        media = (SELECT count(*) FROM media WHERE media.status = media_totals.status),
        bytes = (SELECT coalesce(sum(stored_size), 0) FROM media
                 WHERE media.status = media_totals.status);
    CREATE TRIGGER media_totals_insert AFTER INSERT ON media BEGIN
        UPDATE media_totals SET media = media + 1, bytes = bytes + coalesce(NEW.stored_size, 0)
        WHERE status = NEW.status;
    END;
    CREATE TRIGGER media_totals_update AFTER UPDATE OF status, stored_size ON media BEGIN
        UPDATE media_totals SET media = media - 1, bytes = bytes - coalesce(OLD.stored_size, 0)
        WHERE status = OLD.status;
        UPDATE media_totals SET media = media + 1, bytes = bytes + coalesce(NEW.stored_size, 0)
        WHERE status = NEW.status;
    END;
    CREATE TRIGGER media_totals_delete AFTER DELETE ON media BEGIN
        UPDATE media_totals SET media = media - 1, bytes = bytes - coalesce(OLD.stored_size, 0)
        WHERE status = OLD.status;
    END;
    """,
    # Only events that still have a body, so that retention finds the next old ones
    # without walking past every event it has already emptied.
    """
    CREATE INDEX webhook_events_with_body ON webhook_events(received_at)
        WHERE body IS NOT NULL;
    """,
)

SCHEMA_VERSION: Final = len(_MIGRATIONS)

_INSERT_EVENTS: Final = """
    INSERT INTO webhook_events (received_at, event, instance_id, message_id, outcome, reason, body)
    VALUES {values}
    RETURNING id
"""

_INSERT_MEDIA: Final = """
    INSERT INTO media (
        instance_id, client, message_id, event_id, from_me, chat_id, sender_id, sender_name,
        kind, mimetype, caption, file_name, expected_size, expected_sha256, expected_enc_sha256,
        media_key, direct_path, status, last_error, next_attempt_at, received_at, updated_at
    ) VALUES {values}
    ON CONFLICT (instance_id, message_id) DO NOTHING
    RETURNING id, instance_id, message_id
"""

_EVENT_FACTS: Final = "id, received_at, event, instance_id, message_id, outcome, reason"
"""Every column of webhook_events but the body."""

_STORED_FILES: Final = """
    SELECT id, path, status, stored_sha256 FROM media
    WHERE {start} AND +status IN ('done', 'missing')
    ORDER BY path, id LIMIT ?
"""


class SQLiteStore:
    """The store on one SQLite file. Open it with `await SQLiteStore.open(path)`."""

    def __init__(self, db: aiosqlite.Connection, path: Path) -> None:
        self.path = path
        self._db = db
        self._deliveries = _GroupCommit(self._run, _insert_deliveries)
        self._outcomes = _GroupCommit(self._run, _finish_outcomes)
        self._data_version: int | None = None

    @classmethod
    async def open(cls, path: Path) -> SQLiteStore:
        """Open or create the database, bringing its schema up to date."""
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            connection = aiosqlite.connect(path, isolation_level=None, cached_statements=512)
            # A daemon thread, so that a store someone forgot to close (a crash, a
            # failed test) cannot keep the interpreter from exiting. Every write is
            # awaited before it counts, so no commit rides on the thread outliving us.
            connection._thread.daemon = True
            db = await connection
        except (OSError, sqlite3.Error) as error:
            raise StoreError(f"cannot open the database {path}: {error}") from error

        store = cls(db, path)
        try:
            await store._run(_prepare)
        except sqlite3.DatabaseError as error:
            await db.close()
            raise StoreError(f"{path} is not a usable mediamon database: {error}") from error
        except StoreError:
            await db.close()
            raise
        return store

    async def close(self) -> None:
        await self._deliveries.drain()
        await self._outcomes.drain()
        await self._db.close()

    async def _run(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        # aiosqlite runs each call on its own thread but offers no public way to run
        # a function there; one function per transaction keeps every store call
        # atomic and costs a single hop between threads.
        execute = self._db._execute
        return await execute(fn, self._db._conn)  # type: ignore[no-any-return, no-untyped-call]

    # Webhooks, written in groups.

    async def record_webhook(self, delivery: WebhookDelivery) -> RecordedWebhook:
        """Record the delivery (and its media row) durably; returns once committed."""
        return await self._deliveries.submit(delivery)

    async def list_events(self, limit: int = 100, *, bodies: bool = True) -> list[StoredEvent]:
        columns = "*" if bodies else f"{_EVENT_FACTS}, NULL AS body"
        rows = await self._run(
            lambda conn: conn.execute(
                f"SELECT {columns} FROM webhook_events ORDER BY id DESC LIMIT ?", (limit,)
            ).fetchall()
        )
        return [_event(row) for row in rows]

    async def get_event(self, event_id: int) -> StoredEvent | None:
        row = await self._run(
            lambda conn: conn.execute(
                "SELECT * FROM webhook_events WHERE id = ?", (event_id,)
            ).fetchone()
        )
        return None if row is None else _event(row)

    async def forget_event_bodies(self, received_before: float, batch: int = FORGET_BATCH) -> int:
        """Drop the bodies of events received before `received_before`; the events stay.

        Each transaction empties at most `batch` bodies; webhooks that arrive meanwhile
        are written between two of them.
        """
        forgotten = 0
        while True:
            emptied = await self._run(
                partial(_forget_bodies, received_before=received_before, limit=batch)
            )
            forgotten += emptied
            if emptied < batch:
                return forgotten

    # The queue.

    async def claim_due(self, now: float, limit: int) -> list[MediaRecord]:
        """Mark up to `limit` due rows `downloading`, counting the attempt, and return them."""

        def claim(conn: sqlite3.Connection) -> list[sqlite3.Row]:
            return conn.execute(
                """
                UPDATE media SET status = 'downloading', attempts = attempts + 1, updated_at = ?
                WHERE id IN (
                    SELECT id FROM media INDEXED BY media_due
                    WHERE status IN ('queued', 'retrying') AND next_attempt_at <= ?
                    ORDER BY next_attempt_at LIMIT ?
                )
                RETURNING *
                """,
                (now, now, limit),
            ).fetchall()

        rows = await self._run(claim)
        return sorted((_media(row) for row in rows), key=lambda media: media.id)

    async def next_due_at(self) -> float | None:
        row = await self._run(
            lambda conn: conn.execute(
                # Named, since the planner prefers media_status and then reads every
                # queued row: milliseconds per call with a backlog, not microseconds.
                "SELECT min(next_attempt_at) FROM media INDEXED BY media_due "
                "WHERE status IN ('queued', 'retrying')"
            ).fetchone()
        )
        return None if row is None else row[0]

    async def finish_attempt(self, outcome: AttemptOutcome) -> MediaRecord:
        """Record how an attempt ended; returns the row as it now stands.

        Outcomes share commits as webhooks do: with `synchronous = FULL` each commit is
        an fsync, and one per finished download would let the disk set the pace.
        """
        row = await self._outcomes.submit(outcome)
        if row is None:
            raise StoreError(f"media #{outcome.media_id} is no longer in the database")
        return _media(row)

    async def release(self, media_ids: Iterable[int]) -> None:
        """Put interrupted downloads back in the queue without spending an attempt."""
        now = time.time()
        rows = [(now, now, media_id) for media_id in media_ids]
        if not rows:
            return

        def release(conn: sqlite3.Connection) -> None:
            with _transaction(conn):
                conn.executemany(
                    """
                    UPDATE media SET status = 'queued', attempts = max(attempts - 1, 0),
                        next_attempt_at = ?, updated_at = ?
                    WHERE id = ? AND status = 'downloading'
                    """,
                    rows,
                )

        await self._run(release)

    async def requeue_interrupted(self) -> int:
        """Queue again what a crash left `downloading`; the attempt it was on counts."""
        now = time.time()
        return await self._run(
            lambda conn: (
                conn.execute(
                    """
                UPDATE media SET status = 'queued', next_attempt_at = ?, updated_at = ?
                WHERE status = 'downloading'
                """,
                    (now, now),
                ).rowcount
            )
        )

    # Reading.

    async def get_media(self, media_id: int) -> MediaRecord | None:
        row = await self._run(
            lambda conn: conn.execute("SELECT * FROM media WHERE id = ?", (media_id,)).fetchone()
        )
        return None if row is None else _media(row)

    async def list_media(self, query: MediaQuery) -> list[MediaRecord]:
        sql, parameters = _media_query(query)
        rows = await self._run(lambda conn: conn.execute(sql, parameters).fetchall())
        return [_media(row) for row in rows]

    async def attempts(self, media_id: int) -> list[Attempt]:
        rows = await self._run(
            lambda conn: conn.execute(
                "SELECT * FROM attempts WHERE media_id = ? ORDER BY id", (media_id,)
            ).fetchall()
        )
        return [
            Attempt(
                media_id=row["media_id"],
                number=row["number"],
                source=row["source"],
                started_at=row["started_at"],
                finished_at=row["finished_at"],
                outcome=row["outcome"],
                http_status=row["http_status"],
                error=row["error"],
                size=row["size"],
            )
            for row in rows
        ]

    async def count_by_status(self) -> dict[MediaStatus, int]:
        return {status: media for status, (media, _) in (await self.totals()).items()}

    async def totals(self) -> dict[MediaStatus, tuple[int, int]]:
        """Media count and stored bytes per status, kept current by triggers."""
        rows = await self._run(
            lambda conn: conn.execute("SELECT status, media, bytes FROM media_totals").fetchall()
        )
        totals = dict.fromkeys(MediaStatus, (0, 0))
        for status, media, size in rows:
            totals[MediaStatus(status)] = (media, size)
        return totals

    async def changed_elsewhere(self) -> bool:
        """True when another connection committed since the last call.

        `PRAGMA data_version` is a counter kept in memory that moves only for other
        connections' commits, so polling it costs microseconds and no disk read.
        """
        version = await self._run(lambda conn: conn.execute("PRAGMA data_version").fetchone()[0])
        changed = self._data_version is not None and version != self._data_version
        self._data_version = version
        return bool(changed)

    # Files on disk.

    async def stored_files_after(self, after: StoredFile | None, limit: int) -> list[StoredFile]:
        """A page of the rows that have, or had, a file, in (path, id) order.

        One range of the `media_path` index, which holds the id beside the path. The
        `+` keeps SQLite from picking `media_status` instead, which would sort every
        `done` row for each page.
        """
        if after is None:
            sql = _STORED_FILES.format(start="path IS NOT NULL")
            parameters: tuple[object, ...] = (limit,)
        else:
            sql = _STORED_FILES.format(start="(path, id) > (?, ?)")
            parameters = (after.path, after.media_id, limit)
        rows = await self._run(lambda conn: conn.execute(sql, parameters).fetchall())
        return [StoredFile(row[0], row[1], MediaStatus(row[2]), row[3]) for row in rows]

    async def media_at(self, relpath: str) -> list[MediaRecord]:
        """Rows whose file is `relpath` or lies under it, when it names a folder.

        Two searches of the `media_path` index, never a scan: the watcher asks once per
        changed path. Everything under `a/b` sorts from `a/b/` up to, not including,
        `a/b0`, since `0` is the character after `/`.
        """
        relpath = relpath.rstrip("/")
        rows = await self._run(
            lambda conn: conn.execute(
                "SELECT * FROM media WHERE path = ? "
                "UNION ALL SELECT * FROM media WHERE path >= ? AND path < ?",
                (relpath, relpath + "/", relpath + chr(ord("/") + 1)),
            ).fetchall()
        )
        return [_media(row) for row in rows]

    async def mark_missing(self, reasons: dict[int, str]) -> list[MediaRecord]:
        """`done` rows become `missing`, each with its reason; returns the changed rows."""
        now = time.time()

        def mark(conn: sqlite3.Connection) -> list[sqlite3.Row]:
            with _transaction(conn):
                return [
                    row
                    for media_id, reason in reasons.items()
                    for row in conn.execute(
                        """
                        UPDATE media SET status = 'missing', last_error = ?, missing_since = ?,
                            updated_at = ?
                        WHERE id = ? AND status = 'done' RETURNING *
                        """,
                        (reason, now, now, media_id),
                    ).fetchall()
                ]

        return [_media(row) for row in await self._run(mark)] if reasons else []

    async def mark_restored(self, media_ids: Iterable[int]) -> list[MediaRecord]:
        """`missing` rows whose file is back, verified, become `done` again."""
        ids = list(media_ids)
        now = time.time()

        def restore(conn: sqlite3.Connection) -> list[sqlite3.Row]:
            with _transaction(conn):
                return [
                    row
                    for media_id in ids
                    for row in conn.execute(
                        """
                        UPDATE media SET status = 'done', last_error = NULL, missing_since = NULL,
                            updated_at = ?
                        WHERE id = ? AND status = 'missing' RETURNING *
                        """,
                        (now, media_id),
                    ).fetchall()
                ]

        return [_media(row) for row in await self._run(restore)] if ids else []

    async def reprocess(
        self, *, statuses: Iterable[MediaStatus] = (), message_ids: Iterable[str] = ()
    ) -> list[MediaRecord]:
        """Queue media again with a fresh attempt budget; the attempt history stays.

        A download in flight is left alone: it is already being processed.
        """
        wanted = sorted(status.value for status in statuses)
        ids = list(message_ids)
        if not wanted and not ids:
            return []
        clauses = []
        parameters: list[Any] = []
        if wanted:
            clauses.append(f"status IN ({', '.join('?' for _ in wanted)})")
            parameters += wanted
        if ids:
            clauses.append(f"message_id IN ({', '.join('?' for _ in ids)})")
            parameters += ids
        now = time.time()
        sql = f"""
            UPDATE media SET status = 'queued', attempts = 0, next_attempt_at = ?,
                last_error = NULL, updated_at = ?
            WHERE ({" OR ".join(clauses)}) AND status != 'downloading'
            RETURNING *
        """

        def requeue(conn: sqlite3.Connection) -> list[sqlite3.Row]:
            with _transaction(conn):
                return conn.execute(sql, [now, now, *parameters]).fetchall()

        return [_media(row) for row in await self._run(requeue)]


class _GroupCommit(Generic[ItemT, ResultT]):
    """Items that arrive while a commit is under way share the next one.

    `write` turns a list of items into their results inside one transaction. When a
    group fails on a value the database refuses, its items are written again one by
    one, so only the item at fault fails; an operational error (locked, disk full)
    would fail them all alike and fails the group.
    """

    def __init__(
        self,
        run: Callable[[Callable[[sqlite3.Connection], list[ResultT]]], Awaitable[list[ResultT]]],
        write: Callable[[sqlite3.Connection, Sequence[ItemT]], list[ResultT]],
    ) -> None:
        self._run = run
        self._write = write
        self._pending: list[tuple[ItemT, asyncio.Future[ResultT]]] = []
        self._writer: asyncio.Task[None] | None = None

    async def submit(self, item: ItemT) -> ResultT:
        future: asyncio.Future[ResultT] = asyncio.get_running_loop().create_future()
        self._pending.append((item, future))
        if self._writer is None:
            self._writer = asyncio.create_task(self._write_pending())
        return await future

    async def drain(self) -> None:
        if self._writer is not None:
            await asyncio.shield(self._writer)

    async def _write_pending(self) -> None:
        try:
            while self._pending:
                batch, self._pending = self._pending[:MAX_BATCH], self._pending[MAX_BATCH:]
                await self._write_batch(batch)
        finally:
            self._writer = None

    async def _write_batch(self, batch: list[tuple[ItemT, asyncio.Future[ResultT]]]) -> None:
        items = [item for item, _ in batch]
        try:
            results = await self._run(lambda conn: self._write(conn, items))
        except Exception as error:
            if len(batch) > 1 and not isinstance(error, sqlite3.OperationalError):
                for single in batch:
                    await self._write_batch([single])
                return
            for _, future in batch:
                if not future.done():
                    future.set_exception(error)
            return
        for (_, future), result in zip(batch, results, strict=True):
            if not future.done():
                future.set_result(result)


def _prepare(conn: sqlite3.Connection) -> None:
    conn.row_factory = sqlite3.Row
    conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute("PRAGMA synchronous = FULL")
    conn.execute("PRAGMA foreign_keys = ON")

    version = conn.execute("PRAGMA user_version").fetchone()[0]
    if version > SCHEMA_VERSION:
        raise StoreError(
            f"the database has schema version {version}, newer than this mediamon "
            f"knows ({SCHEMA_VERSION}); upgrade mediamon"
        )
    for number in range(version, SCHEMA_VERSION):
        # executescript, since trigger bodies hold semicolons of their own; the
        # script carries its own transaction so a failed migration leaves no trace.
        try:
            script = _MIGRATIONS[number]
            conn.executescript(
                f"BEGIN IMMEDIATE; {script}; PRAGMA user_version = {number + 1}; COMMIT;"
            )
        except sqlite3.Error:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise
        logger.info("database schema brought to version %d", number + 1)


class _transaction:
    """BEGIN IMMEDIATE … COMMIT, or ROLLBACK when the block raises."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self._conn = conn

    def __enter__(self) -> None:
        self._conn.execute("BEGIN IMMEDIATE")

    def __exit__(self, kind: object, error: object, traceback: object) -> None:
        self._conn.execute("COMMIT" if error is None else "ROLLBACK")


def _insert_deliveries(
    conn: sqlite3.Connection, deliveries: Sequence[WebhookDelivery]
) -> list[RecordedWebhook]:
    # One multi-row statement per table rather than two statements per webhook: the
    # writer thread then spends its time inside SQLite, without the GIL, instead of
    # taking it back for every row while the event loop needs it for the next request.
    with _transaction(conn):
        event_ids: list[int] = []
        for start in range(0, len(deliveries), ROWS_PER_STATEMENT):
            event_ids += _insert_events(conn, deliveries[start : start + ROWS_PER_STATEMENT])

        queued = [
            (delivery, event_id)
            for delivery, event_id in zip(deliveries, event_ids, strict=True)
            if _media_row_wanted(delivery)
        ]
        created: dict[tuple[str, str], int] = {}
        for start in range(0, len(queued), ROWS_PER_STATEMENT):
            created.update(_insert_media(conn, queued[start : start + ROWS_PER_STATEMENT]))

        results = []
        for delivery, event_id in zip(deliveries, event_ids, strict=True):
            results.append(_recorded(conn, delivery, event_id, created))
    return results


def _media_row_wanted(delivery: WebhookDelivery) -> bool:
    event = delivery.event
    return event is not None and event.media is not None and delivery.media_status is not None


def _insert_events(conn: sqlite3.Connection, deliveries: Sequence[WebhookDelivery]) -> list[int]:
    """Insert the events in order and return their ids, in the same order."""
    parameters: list[object] = []
    for delivery in deliveries:
        event = delivery.event
        parameters += (
            delivery.received_at,
            event.event if event else None,
            event.instance_id if event else None,
            event.message_id if event else None,
            delivery.outcome,
            delivery.reason,
            delivery.body,
        )
    rows = conn.execute(_insert_many(_INSERT_EVENTS, 7, len(deliveries)), parameters).fetchall()

    # RETURNING promises no order, but rowids do: each new row gets one more than the
    # largest so far, so sorted ids follow the VALUES. Only a table whose rowids ran
    # out (2**63) would break that; refuse rather than pair events with wrong ids.
    ids = sorted(row[0] for row in rows)
    if len(ids) != len(deliveries) or ids[-1] - ids[0] != len(ids) - 1:
        raise StoreError("webhook_events ran out of ascending ids")
    return ids


def _insert_media(
    conn: sqlite3.Connection, queued: Sequence[tuple[WebhookDelivery, int]]
) -> dict[tuple[str, str], int]:
    """Insert the media rows that are new; return their ids by (instance, message)."""
    parameters: list[object] = []
    for delivery, event_id in queued:
        event = delivery.event
        assert event is not None and event.media is not None and delivery.media_status
        media = event.media
        parameters += (
            event.instance_id,
            delivery.client or "",
            event.message_id,
            event_id,
            int(event.from_me),
            event.chat_id,
            event.sender_id,
            event.sender_name,
            media.kind.value,
            media.mimetype,
            media.caption,
            media.file_name,
            media.file_length,
            media.file_sha256,
            media.file_enc_sha256,
            media.media_key,
            media.direct_path,
            delivery.media_status.value,
            media.problem,
            delivery.received_at,
            delivery.received_at,
            delivery.received_at,
        )
    rows = conn.execute(_insert_many(_INSERT_MEDIA, 22, len(queued)), parameters).fetchall()
    return {(row[1], row[2]): row[0] for row in rows}


def _recorded(
    conn: sqlite3.Connection,
    delivery: WebhookDelivery,
    event_id: int,
    created: dict[tuple[str, str], int],
) -> RecordedWebhook:
    event = delivery.event
    if event is None or event.media is None or delivery.media_status is None:
        return RecordedWebhook(event_id=event_id)

    assert event.message_id is not None
    key = (event.instance_id, event.message_id)
    # pop: when one group holds the same message twice, the first delivery inserted
    # the row and the second is a repeat, exactly as if they had come one by one.
    media_id = created.pop(key, None)
    if media_id is not None:
        return RecordedWebhook(event_id, _new_media(media_id, delivery, event_id), created=True)

    existing = conn.execute(
        "SELECT * FROM media WHERE instance_id = ? AND message_id = ?", key
    ).fetchone()
    return RecordedWebhook(event_id=event_id, media=_media(existing), created=False)


def _new_media(media_id: int, delivery: WebhookDelivery, event_id: int) -> MediaRecord:
    """The row `_insert_media` just wrote, built from what it wrote rather than read back."""
    event = delivery.event
    assert event is not None and event.media is not None and event.message_id is not None
    assert delivery.media_status is not None
    media = event.media
    return MediaRecord(
        id=media_id,
        instance_id=event.instance_id,
        client=delivery.client or "",
        message_id=event.message_id,
        event_id=event_id,
        from_me=event.from_me,
        chat_id=event.chat_id,
        sender_id=event.sender_id,
        sender_name=event.sender_name,
        kind=media.kind,
        mimetype=media.mimetype,
        caption=media.caption,
        file_name=media.file_name,
        expected_size=media.file_length,
        expected_sha256=media.file_sha256,
        expected_enc_sha256=media.file_enc_sha256,
        media_key=media.media_key,
        direct_path=media.direct_path,
        status=delivery.media_status,
        attempts=0,
        last_error=media.problem,
        next_attempt_at=delivery.received_at,
        path=None,
        stored_sha256=None,
        stored_size=None,
        source=None,
        received_at=delivery.received_at,
        updated_at=delivery.received_at,
    )


@cache
def _insert_many(head: str, columns: int, rows: int) -> str:
    row = "(" + ", ".join("?" * columns) + ")"
    return head.format(values=", ".join([row] * rows))


def _forget_bodies(conn: sqlite3.Connection, received_before: float, limit: int) -> int:
    with _transaction(conn):
        cursor = conn.execute(
            """
            UPDATE webhook_events SET body = NULL
            WHERE id IN (
                SELECT id FROM webhook_events
                WHERE body IS NOT NULL AND received_at < ?
                LIMIT ?
            )
            """,
            (received_before, limit),
        )
        return cursor.rowcount


def _finish_outcomes(
    conn: sqlite3.Connection, outcomes: Sequence[AttemptOutcome]
) -> list[sqlite3.Row | None]:
    rows: list[sqlite3.Row | None] = []
    now = time.time()
    with _transaction(conn):
        for outcome in outcomes:
            _insert_attempts(conn, outcome.tries)
            rows.append(
                conn.execute(
                    """
                    UPDATE media SET status = ?, last_error = ?, next_attempt_at = ?,
                        path = coalesce(?, path), stored_sha256 = coalesce(?, stored_sha256),
                        stored_size = coalesce(?, stored_size), source = coalesce(?, source),
                        missing_since = NULL, updated_at = ?
                    WHERE id = ? RETURNING *
                    """,
                    (
                        outcome.status.value,
                        outcome.error,
                        outcome.next_attempt_at,
                        outcome.path,
                        outcome.sha256,
                        outcome.size,
                        outcome.source,
                        now,
                        outcome.media_id,
                    ),
                ).fetchone()
            )
    return rows


def _insert_attempts(conn: sqlite3.Connection, tries: Sequence[Attempt]) -> None:
    conn.executemany(
        """
        INSERT INTO attempts (media_id, number, source, started_at, finished_at, outcome,
            http_status, error, size)
        VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)
        """,
        [
            (
                attempt.media_id,
                attempt.number,
                attempt.source,
                attempt.started_at,
                attempt.finished_at,
                attempt.outcome,
                attempt.http_status,
                attempt.error,
                attempt.size,
            )
            for attempt in tries
        ],
    )


def _media_query(query: MediaQuery) -> tuple[str, list[Any]]:
    clauses: list[str] = []
    parameters: list[Any] = []
    if query.statuses:
        marks = ", ".join("?" for _ in query.statuses)
        clauses.append(f"status IN ({marks})")
        parameters.extend(sorted(status.value for status in query.statuses))
    if query.message_ids:
        alternatives = " OR ".join("message_id LIKE ? ESCAPE '\\'" for _ in query.message_ids)
        clauses.append(f"({alternatives})")
        parameters.extend(_like_prefix(message_id) for message_id in query.message_ids)
    if query.kinds:
        marks = ", ".join("?" for _ in query.kinds)
        clauses.append(f"kind IN ({marks})")
        parameters.extend(sorted(kind.value for kind in query.kinds))
    if query.text:
        pattern = "%" + _like_prefix(query.text)
        columns = ("message_id", "sender_name", "sender_id", "chat_id", "file_name", "caption")
        clauses.append("(" + " OR ".join(f"{c} LIKE ? ESCAPE '\\'" for c in columns) + ")")
        parameters.extend([pattern] * len(columns))
    if query.before_id is not None:
        clauses.append("id < ?")
        parameters.append(query.before_id)

    where = f"WHERE {' AND '.join(clauses)}" if clauses else ""
    limit = "" if query.limit is None else f"LIMIT {int(query.limit)}"
    return f"SELECT * FROM media {where} ORDER BY id DESC {limit}", parameters


def _like_prefix(text: str) -> str:
    escaped = text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return escaped + "%"


def _event(row: sqlite3.Row) -> StoredEvent:
    return StoredEvent(
        id=row["id"],
        received_at=row["received_at"],
        event=row["event"],
        instance_id=row["instance_id"],
        message_id=row["message_id"],
        outcome=row["outcome"],
        reason=row["reason"],
        body=row["body"],
    )


def _media(row: sqlite3.Row) -> MediaRecord:
    return MediaRecord(
        id=row["id"],
        instance_id=row["instance_id"],
        client=row["client"],
        message_id=row["message_id"],
        event_id=row["event_id"],
        from_me=bool(row["from_me"]),
        chat_id=row["chat_id"],
        sender_id=row["sender_id"],
        sender_name=row["sender_name"],
        kind=MediaKind(row["kind"]),
        mimetype=row["mimetype"],
        caption=row["caption"],
        file_name=row["file_name"],
        expected_size=row["expected_size"],
        expected_sha256=row["expected_sha256"],
        expected_enc_sha256=row["expected_enc_sha256"],
        media_key=row["media_key"],
        direct_path=row["direct_path"],
        status=MediaStatus(row["status"]),
        attempts=row["attempts"],
        last_error=row["last_error"],
        next_attempt_at=row["next_attempt_at"],
        path=row["path"],
        stored_sha256=row["stored_sha256"],
        stored_size=row["stored_size"],
        source=row["source"],
        received_at=row["received_at"],
        updated_at=row["updated_at"],
        missing_since=row["missing_since"],
    )


__all__ = ["SCHEMA_VERSION", "SQLiteStore"]
