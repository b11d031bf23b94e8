"""A walk of a folder tree that yields relative paths in string order, in bounded memory.

The reconciliation scan merges the files on disk with rows that SQLite hands out
ordered by path. SQLite orders text by its UTF-8 bytes, which is the order of code
points, which is how Python compares strings; so a walk that yields whole paths in
Python's string order can be merged with those rows like two sorted lists.

A folder's entries are sorted with each subfolder written as its name and a slash,
the way every path under it begins; walking entries in that order, depth first,
gives the whole paths in string order (`a.b` < `a/x` < `a0`, as `.` < `/` < `0`).

Memory does not grow with the size of a folder: names are sorted `SORT_RUN` at a
time, and when a folder holds more, the sorted runs wait in an unnamed temporary
file and are merged back as the walk goes. No single sort is long either, which
matters because a sort holds the GIL and the event loop would wait on it.
"""

from __future__ import annotations

import contextlib
import heapq
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Final

from mediamon.core.errors import MediamonError

SORT_RUN: Final = 32_768
"""Names sorted in memory at once: a few MB, and a sort of some milliseconds."""

READ_BLOCK: Final = 32 * 1024
"""Bytes read at a time from each sorted run kept on disk."""


def walk_in_order(root: Path, suffix: str) -> Iterator[str]:
    """Paths, relative to `root` with `/` separators, of its regular files and of any
    other entry whose name ends with `suffix`, in string order; blocking, so advance
    it in a thread.

    Symlinked folders are followed, since people move a client's media to another
    disk that way; each real folder is walked once, so a link loop ends. A folder that
    cannot be read is passed over, as if it were empty.
    """
    seen: set[tuple[int, int]] = set()
    stack = [("", _sorted_entries(str(root), suffix, seen))]
    while stack:
        prefix, entries = stack[-1]
        name = next(entries, None)
        if name is None:
            stack.pop()
        elif name.endswith("/"):
            folder = prefix + name
            stack.append((folder, _sorted_entries(f"{root}/{folder}", suffix, seen)))
        else:
            yield prefix + name


def _sorted_entries(folder: str, suffix: str, seen: set[tuple[int, int]]) -> Iterator[str]:
    try:
        identity = os.stat(folder)
    except OSError:
        return
    if (identity.st_dev, identity.st_ino) in seen:
        return
    seen.add((identity.st_dev, identity.st_ino))

    with SortedNames() as names:
        try:
            with os.scandir(folder) as entries:
                for entry in entries:
                    if _is_dir(entry):
                        names.add(entry.name + "/")
                    elif entry.name.endswith(suffix) or _is_file(entry):
                        names.add(entry.name)
        except OSError:
            return
        yield from names.drain()


class SpillError(MediamonError):
    """A folder's names could not be written to a temporary file to be sorted."""

    title = "scan"


class SortedNames:
    """Names taken in any order and given back sorted, holding at most `SORT_RUN`
    of them in memory; names must not hold a NUL, which no file name can.

    Use it in a `with` block, which closes the temporary file of a large one.
    """

    def __init__(self) -> None:
        self._names: list[str] = []
        self._runs: list[tuple[int, int]] = []
        self._spill: IO[bytes] | None = None
        self._closing = contextlib.ExitStack()

    def __enter__(self) -> SortedNames:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._closing.close()

    def add(self, name: str) -> None:
        self._names.append(name)
        if len(self._names) >= SORT_RUN:
            self._write_run()

    def drain(self) -> Iterator[str]:
        """The names in order; it can be drained once."""
        if self._spill is None:
            names, self._names = self._names, []
            names.sort()
            yield from names
            return
        if self._names:
            self._write_run()
        self._spill.flush()
        fd = self._spill.fileno()
        yield from heapq.merge(*(_read_run(fd, start, end) for start, end in self._runs))

    def _write_run(self) -> None:
        self._names.sort()
        try:
            if self._spill is None:
                # Opened on the first run and closed by `__exit__`, not by a `with` here.
                spill = tempfile.TemporaryFile(prefix="mediamon-")  # noqa: SIM115
                self._spill = self._closing.enter_context(spill)
            start = self._spill.tell()
            self._spill.write(b"".join(os.fsencode(name) + b"\0" for name in self._names))
        except OSError as error:
            # Not an OSError any more: a walk takes those for a folder it cannot read.
            raise SpillError(
                f"cannot sort the names of a folder with over {SORT_RUN} entries: writing a "
                f"temporary file in {tempfile.gettempdir()} failed ({error.strerror or error}); "
                "make room there or point TMPDIR at another folder"
            ) from error
        self._runs.append((start, self._spill.tell()))
        self._names = []


def _read_run(fd: int, start: int, end: int) -> Iterator[str]:
    # os.pread, so that every run reads from its own place in one shared file.
    tail = b""
    while start < end:
        block = os.pread(fd, min(READ_BLOCK, end - start), start)
        if not block:
            raise OSError(f"a sorted run ends {end - start} bytes short")
        start += len(block)
        *names, tail = (tail + block).split(b"\0")
        for name in names:
            yield os.fsdecode(name)


def _is_dir(entry: os.DirEntry[str]) -> bool:
    try:
        return entry.is_dir()
    except OSError:
        return False


def _is_file(entry: os.DirEntry[str]) -> bool:
    try:
        return entry.is_file()
    except OSError:
        return False
