"""Hashes that digest a stream on a worker thread while the caller gets on with the next chunk.

Decrypting a media file means three SHA-256 passes (the file hash, the MAC and the plaintext
hash), each slower than AES and the disk together. hashlib and the standard library's HMAC
release the GIL while they digest more than a couple of kilobytes, so a thread of its own for
each hash truly runs alongside the caller, and on a second core the passes cost little wall
time.

A `HashLane` applies its updates in the order they were given. Until it is started it hashes
on the caller's thread, which is cheaper for a small file than waking a thread. Once started,
`update()` returns a future and the caller must leave the buffer alone until that future is
done. `close()` stops the thread; a lane that is dropped without it stops once collected.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Protocol

log = logging.getLogger(__name__)

Chunk = bytes | bytearray | memoryview


class Hasher(Protocol):
    def update(self, data: Chunk, /) -> None: ...


class HashLane:
    """One or more hashes fed the same bytes, in order, on one worker thread once started."""

    def __init__(self, name: str, hashers: Sequence[Hasher]) -> None:
        self._name = name
        self._hashers = tuple(hashers)
        self._executor: ThreadPoolExecutor | None = None
        self._closed = False

    @property
    def started(self) -> bool:
        return self._executor is not None

    def start(self) -> None:
        """Move the hashing onto a worker thread from the next update on."""
        if self._closed:
            raise RuntimeError(f"{self._name} lane started after close()")
        if self._executor is None:
            # One thread: a hash object takes its updates one at a time and in order.
            self._executor = ThreadPoolExecutor(1, thread_name_prefix=f"mediamon-hash-{self._name}")

    def update(self, data: Chunk) -> Future[None] | None:
        """Hash `data`; on a started lane, in the background, done when the future is."""
        if self._closed:
            raise RuntimeError(f"{self._name} lane updated after close()")
        if self._executor is None:
            _update_all(self._hashers, data)
            return None
        return self._executor.submit(_update_all, self._hashers, data)

    def close(self) -> None:
        """Drop the updates not yet begun and wait for the one under way; idempotent."""
        self._closed = True
        if self._executor is not None:
            self._executor.shutdown(wait=True, cancel_futures=True)
            self._executor = None


def _update_all(hashers: tuple[Hasher, ...], data: Chunk) -> None:
    # A module-level function, so that the worker holds the hashes and not the lane: a lane
    # that its owner drops is then collected, and the executor's thread ends with it.
    for hasher in hashers:
        hasher.update(data)
