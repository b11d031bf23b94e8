"""The file store: media bytes go to a temporary file and reach their name whole or never.

A download streams into `.<final name>.<random>.mediamon-part` in the target folder,
hashing as it goes. `commit` fsyncs the file, renames it over the final name with
`os.replace` (atomic on one filesystem) and fsyncs the folder, so a crash at any
moment leaves either the old state or the complete new file, plus at worst a
temporary file that the reconciliation scan removes. Only this module touches media
bytes on disk, so a second file store (S3, say) replaces this module alone.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import os
import secrets
from collections.abc import Iterator
from pathlib import Path, PurePosixPath
from typing import Final

from mediamon.core.errors import MediamonError
from mediamon.core.walk import walk_in_order

logger = logging.getLogger(__name__)

PART_SUFFIX: Final = ".mediamon-part"


class StorageWriteError(MediamonError):
    """Writing a media file failed: the disk is full, or a folder is not writable."""

    title = "storage"


class PartialFile:
    """A media file being written; hashes and counts what goes in.

    A writer that already hashes every byte it writes (the CDN source's decryptor) can
    say so with `hash_elsewhere()` and hand its digest over with `adopt_sha256()`, so that
    a large file is not hashed twice.
    """

    def __init__(self, final_path: Path, temp_path: Path, fd: int) -> None:
        self.final_path = final_path
        self.temp_path = temp_path
        self.size = 0
        self._fd: int | None = fd
        self._sha256 = hashlib.sha256()
        self._hashing = True
        self._adopted_sha256: str | None = None

    @property
    def sha256(self) -> str:
        if self._hashing:
            return self._sha256.hexdigest()
        if self._adopted_sha256 is None:
            raise RuntimeError("the writer has not handed over the SHA-256 of what it wrote")
        return self._adopted_sha256

    def write(self, chunk: bytes | bytearray | memoryview) -> None:
        if self._fd is None:
            raise RuntimeError("write to a closed partial file")
        if self._hashing:
            self._sha256.update(chunk)
        view = memoryview(chunk)
        try:
            while view:
                written = os.write(self._fd, view)
                view = view[written:]
        except OSError as error:
            raise _write_error(self.final_path, error) from error
        self.size += len(chunk)

    def hash_elsewhere(self) -> None:
        """Stop hashing writes: the writer hashes exactly what it writes, and says so at
        the end with `adopt_sha256()`; until then `sha256` raises."""
        if self.size:
            raise RuntimeError("hash_elsewhere() after bytes were written")
        self._hashing = False
        self._adopted_sha256 = None

    def adopt_sha256(self, digest: bytes, size: int) -> None:
        """Take the writer's SHA-256 of everything written, and its count of those bytes,
        which must be ours: a write that missed its hash would show there."""
        if self._hashing:
            raise RuntimeError("adopt_sha256() without hash_elsewhere()")
        if size != self.size:
            raise RuntimeError(f"the writer hashed {size} bytes, but {self.size} were written")
        self._adopted_sha256 = digest.hex()

    def reset(self) -> None:
        """Forget what was written so far, for a source that starts the file over; the
        file hashes its writes again."""
        if self._fd is None:
            raise RuntimeError("reset of a closed partial file")
        try:
            os.ftruncate(self._fd, 0)
            os.lseek(self._fd, 0, os.SEEK_SET)
        except OSError as error:
            raise _write_error(self.final_path, error) from error
        self._sha256 = hashlib.sha256()
        self._hashing = True
        self._adopted_sha256 = None
        self.size = 0

    async def commit(self) -> Path:
        """Make the bytes durable under the final name; returns that path."""
        await asyncio.to_thread(self._commit_sync)
        return self.final_path

    def discard(self) -> None:
        """Throw the bytes away; safe to call more than once, and after commit."""
        self._close()
        with contextlib.suppress(FileNotFoundError):
            self.temp_path.unlink()

    def _commit_sync(self) -> None:
        if self._fd is None:
            raise RuntimeError("commit of a closed partial file")
        try:
            os.fsync(self._fd)
            self._close()
            os.replace(self.temp_path, self.final_path)
            _fsync_folder(self.final_path.parent)
        except OSError as error:
            self.discard()
            raise _write_error(self.final_path, error) from error

    def _close(self) -> None:
        if self._fd is not None:
            fd, self._fd = self._fd, None
            os.close(fd)


class LocalFileStore:
    """Media files under one folder on the local disk.

    Paths handed in and out are relative to the folder, with `/` separators, exactly
    as the store records them.
    """

    def __init__(self, root: Path) -> None:
        self.root = root
        self.run_id = secrets.token_hex(4)
        """Marks this process's temporary files, so a scan can tell a crash's leftovers
        from the downloads under way now."""

    def absolute(self, relpath: PurePosixPath | str) -> Path:
        return self.root.joinpath(relpath)

    def exists(self, relpath: PurePosixPath | str) -> bool:
        return self.absolute(relpath).is_file()

    def open_partial(self, relpath: PurePosixPath) -> PartialFile:
        """Start writing the file that will be `relpath`, creating folders as needed."""
        final_path = self.absolute(relpath)
        temp_path = final_path.with_name(
            f".{final_path.name}.{self.run_id}-{secrets.token_hex(3)}{PART_SUFFIX}"
        )
        try:
            final_path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(temp_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        except OSError as error:
            raise _write_error(final_path, error) from error
        return PartialFile(final_path, temp_path, fd)

    def walk(self) -> Iterator[str]:
        """Every media file and temporary file under the folder, in the order SQLite
        sorts their relative paths; blocking, so advance it in a thread.

        Its memory does not grow with the number of files, and symlinked folders are
        followed, each real folder once; see walk.py.
        """
        return walk_in_order(self.root, PART_SUFFIX)

    def modified_at(self, relpath: str) -> float:
        """When the file (not what a link points at) was last written; 0 if it is gone."""
        try:
            return self.absolute(relpath).lstat().st_mtime
        except OSError:
            return 0.0

    def owns(self, relpath: str) -> bool:
        """Whether a temporary file belongs to a download of this process."""
        return f".{self.run_id}-" in relpath.rsplit("/", 1)[-1]

    def remove(self, relpath: str) -> bool:
        """Remove a temporary file; False when it was already gone."""
        try:
            self.absolute(relpath).unlink()
        except FileNotFoundError:
            return False
        return True

    def sha256(self, relpath: str) -> str | None:
        """The file's SHA-256, or None when it is absent; blocking, run it in a thread."""
        digest = hashlib.sha256()
        try:
            with self.absolute(relpath).open("rb") as file:
                while chunk := file.read(1024 * 1024):
                    digest.update(chunk)
        except (FileNotFoundError, IsADirectoryError, PermissionError):
            return None
        return digest.hexdigest()


def is_part_file(relpath: str) -> bool:
    return relpath.endswith(PART_SUFFIX)


def _fsync_folder(folder: Path) -> None:
    # The rename is durable only once the folder entry is; some filesystems cannot
    # open a folder for fsync, and there the rename is as durable as it gets.
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _write_error(path: Path, error: OSError) -> StorageWriteError:
    reason = error.strerror or str(error)
    return StorageWriteError(f"cannot write {path}: {reason}")
