"""The scan's merge of rows and files: it must agree with a plain set comparison.

The scan reads rows a page at a time in path order and walks the tree in that same
order, sorting big folders in runs that wait on disk. These tests shrink the pages
and the runs to a handful, so that every boundary falls somewhere, and check the
outcome against what comparing two whole sets gives.
"""

from __future__ import annotations

import hashlib
import os
import random
import sqlite3
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from mediamon.core import scan, walk
from mediamon.core.files import PART_SUFFIX, LocalFileStore
from mediamon.core.models import MediaStatus
from mediamon.core.scan import reconcile
from mediamon.core.sqlite_store import _STORED_FILES, SQLiteStore
from mediamon.core.walk import SpillError

NAMES = ("a", "a.b", "a-b", "a0", "A", "é.jpg", "z", "\U0001f600.jpg", "x_1", "x 1", "~")


@pytest.fixture(autouse=True)
def small_pages_and_runs(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(scan, "PAGE", 7)
    monkeypatch.setattr(walk, "SORT_RUN", 4)


def test_the_walk_yields_paths_in_the_order_sqlite_sorts_them(tmp_path: Path) -> None:
    made = []
    folders = ("", "a/", "a.b/", "a0/", "é/", "a/b/c/", "a/b.c/")
    for folder in folders:
        (tmp_path / folder).mkdir(parents=True, exist_ok=True)
    for folder in folders:
        for name in NAMES:
            if not (tmp_path / folder / name).exists():
                (tmp_path / folder / name).write_bytes(b"")
                made.append(folder + name)
    with sqlite3.connect(":memory:") as db:
        db.execute("CREATE TABLE t (path TEXT)")
        db.executemany("INSERT INTO t VALUES (?)", [(path,) for path in made])
        in_sqlite = [path for (path,) in db.execute("SELECT path FROM t ORDER BY path")]

    walked = list(LocalFileStore(tmp_path).walk())

    assert len(made) > 3 * walk.SORT_RUN  # folders big enough to be sorted in runs
    assert walked == in_sqlite


def test_the_walk_keeps_temporary_files_and_passes_over_what_is_not_a_file(
    tmp_path: Path,
) -> None:
    (tmp_path / "f").mkdir()
    (tmp_path / "f" / "kept.jpg").write_bytes(b"x")
    (tmp_path / "f" / "dangling").symlink_to(tmp_path / "nowhere")
    (tmp_path / "f" / f".half{PART_SUFFIX}").symlink_to(tmp_path / "nowhere")
    (tmp_path / "f" / "again").symlink_to(tmp_path / "f")

    assert list(LocalFileStore(tmp_path).walk()) == [f"f/.half{PART_SUFFIX}", "f/kept.jpg"]


async def test_the_scan_agrees_with_a_set_comparison_across_pages(tmp_path: Path) -> None:
    rng = random.Random(8)
    root = tmp_path / "media"
    on_disk: dict[str, bytes] = {}
    rows: list[tuple[str, str, str]] = []  # path, status, stored sha256
    for number in range(400):
        folder = rng.choice(["c1/i/image", "c1/i/audio", "c1/i.x", "c2/i/image", "gone/i"])
        path = f"{folder}/{rng.choice(NAMES)}{number % 40}"
        content = f"bytes of {path}".encode()
        sha = hashlib.sha256(content).hexdigest()
        fate = rng.random()
        if fate < 0.5 and not folder.startswith("gone"):
            on_disk[path] = content
            rows.append((path, "done", sha))
        elif fate < 0.6:
            rows.append((path, "done", sha))  # its file is absent
        elif fate < 0.7 and not folder.startswith("gone"):
            on_disk[path] = content if rng.random() < 0.5 else b"other bytes"
            rows.append((path, "missing", sha))
        elif fate < 0.8:
            rows.append((path, "missing", sha))
        elif fate < 0.9 and not folder.startswith("gone"):
            on_disk[path] = content
            rows.append((path, "queued", sha))  # a file only a queued row names
        elif not folder.startswith("gone"):
            on_disk[path] = content  # an orphan
    rows += [row for row in rows[::9] if row[1] == "done"]  # two rows for one file
    for path, content in on_disk.items():
        (root / path).parent.mkdir(parents=True, exist_ok=True)
        (root / path).write_bytes(content)

    store = await SQLiteStore.open(tmp_path / "merge.db")
    try:
        await store._run(lambda conn: _insert(conn, rows))
        report = await reconcile(store, LocalFileStore(root))
        statuses = await store._run(
            lambda conn: conn.execute("SELECT id, status FROM media ORDER BY id").fetchall()
        )
    finally:
        await store.close()

    with_file = [row for row in rows if row[1] in ("done", "missing")]
    known = {path for path, _, _ in with_file}
    gone = [path for path, status, _ in with_file if status == "done" and path not in on_disk]
    back = [
        path
        for path, status, sha in with_file
        if status == "missing"
        and path in on_disk
        and hashlib.sha256(on_disk[path]).hexdigest() == sha
    ]
    assert report.checked == len(with_file)
    assert report.missing == sorted(gone)
    assert report.restored == sorted(back)
    assert report.orphans == sorted(set(on_disk) - known)
    assert (report.changed, report.temp_removed) == ([], [])
    expected = [_after_scan(row, on_disk) for row in rows]
    assert [status for _, status in statuses] == expected


async def test_verify_finds_a_changed_file_among_many_across_pages(tmp_path: Path) -> None:
    root = tmp_path / "media"
    paths = [f"c/i/image/{n:03d}.jpg" for n in range(50)]
    for path in paths:
        (root / path).parent.mkdir(parents=True, exist_ok=True)
        (root / path).write_bytes(path.encode())
    (root / paths[23]).write_bytes(b"edited")
    rows = [(path, "done", hashlib.sha256(path.encode()).hexdigest()) for path in paths]

    store = await SQLiteStore.open(tmp_path / "verify.db")
    try:
        await store._run(lambda conn: _insert(conn, rows))
        report = await reconcile(store, LocalFileStore(root), verify=True)
    finally:
        await store.close()

    assert (report.checked, report.changed, report.missing) == (50, [paths[23]], [])


async def test_a_file_that_appears_after_the_walk_read_its_folder_is_not_missing(
    tmp_path: Path,
) -> None:
    root = tmp_path / "media"
    late = "c/i/image/late.jpg"
    (root / late).parent.mkdir(parents=True)
    (root / late).write_bytes(b"x")

    class WalkedTooEarly(LocalFileStore):
        def walk(self) -> Iterator[str]:
            return (path for path in super().walk() if path != late)

    store = await SQLiteStore.open(tmp_path / "late.db")
    try:
        await store._run(lambda conn: _insert(conn, [(late, "done", "0" * 64)]))
        report = await reconcile(store, WalkedTooEarly(root))
    finally:
        await store.close()

    assert (report.checked, report.missing, report.orphans) == (1, [], [])


async def test_stale_temporary_files_go_wherever_they_fall_among_the_pages(
    tmp_path: Path,
) -> None:
    root = tmp_path / "media"
    (root / "c").mkdir(parents=True)
    parts = [f"c/.{n:02d}.jpg.abcd{PART_SUFFIX}" for n in range(20)]
    for part in parts:
        (root / part).write_bytes(b"half")
        os.utime(root / part, (0, 0))

    store = await SQLiteStore.open(tmp_path / "parts.db")
    try:
        report = await reconcile(store, LocalFileStore(root))
    finally:
        await store.close()

    assert report.temp_removed == parts
    assert list((root / "c").iterdir()) == []


async def test_a_big_folder_that_cannot_be_sorted_stops_the_scan_instead_of_looking_empty(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = tmp_path / "media"
    paths = [f"c/i/image/{n:02d}.jpg" for n in range(10)]
    for path in paths:
        (root / path).parent.mkdir(parents=True, exist_ok=True)
        (root / path).write_bytes(b"x")
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "no-such-folder"))

    store = await SQLiteStore.open(tmp_path / "spill.db")
    try:
        await store._run(lambda conn: _insert(conn, [(path, "done", "") for path in paths]))
        with pytest.raises(SpillError, match="no-such-folder"):
            await reconcile(store, LocalFileStore(root))
        counts = await store.count_by_status()
    finally:
        await store.close()

    assert counts[MediaStatus.DONE] == 10


async def test_each_page_of_stored_files_is_one_range_of_the_path_index(tmp_path: Path) -> None:
    store = await SQLiteStore.open(tmp_path / "plan.db")
    try:
        await store._run(lambda conn: _insert(conn, [(f"c/{n}", "done", "") for n in range(9)]))
        first = await store.stored_files_after(None, 4)
        second = await store.stored_files_after(first[-1], 4)
        plans = await store._run(
            lambda conn: [
                " ".join(row[3] for row in conn.execute(f"EXPLAIN QUERY PLAN {sql}", parameters))
                for sql, parameters in _page_queries()
            ]
        )
    finally:
        await store.close()

    assert [row.path for row in first + second] == [f"c/{n}" for n in range(8)]
    assert all("USING INDEX media_path" in plan and "TEMP B-TREE" not in plan for plan in plans)


def _page_queries() -> list[tuple[str, tuple[object, ...]]]:
    return [
        (_STORED_FILES.format(start="path IS NOT NULL"), (10,)),
        (_STORED_FILES.format(start="(path, id) > (?, ?)"), ("c/1", 1, 10)),
    ]


def _after_scan(row: tuple[str, str, str], on_disk: dict[str, bytes]) -> str:
    path, status, sha = row
    if status == "done" and path not in on_disk:
        return "missing"
    if status == "missing" and path in on_disk and hashlib.sha256(on_disk[path]).hexdigest() == sha:
        return "done"
    return status


def _insert(conn: sqlite3.Connection, rows: list[tuple[str, str, str]]) -> None:
    conn.executemany(
        """
        INSERT INTO media (instance_id, client, message_id, kind, mimetype, status, path,
            stored_sha256, received_at, updated_at)
        VALUES ('A', '1', ?, 'image', 'image/jpeg', ?, ?, ?, 0, 0)
        """,
        [(f"M{n}", status, path, sha) for n, (path, status, sha) in enumerate(rows)],
    )
