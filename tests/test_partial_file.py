"""A partial file hashes what it is given, unless its writer vouches for the hash."""

from __future__ import annotations

import hashlib
from pathlib import Path, PurePosixPath

import pytest

from mediamon.core.files import LocalFileStore, PartialFile


def _partial(tmp_path: Path) -> PartialFile:
    return LocalFileStore(tmp_path).open_partial(PurePosixPath("a/b.bin"))


def test_a_partial_file_hashes_its_writes(tmp_path: Path) -> None:
    partial = _partial(tmp_path)
    partial.write(b"abc")
    partial.write(memoryview(b"def"))

    assert (partial.sha256, partial.size) == (hashlib.sha256(b"abcdef").hexdigest(), 6)
    partial.discard()


def test_a_writer_that_hashes_hands_its_digest_over(tmp_path: Path) -> None:
    partial = _partial(tmp_path)
    partial.hash_elsewhere()
    partial.write(b"abcdef")
    with pytest.raises(RuntimeError, match="not handed over"):
        _ = partial.sha256

    partial.adopt_sha256(hashlib.sha256(b"abcdef").digest(), 6)

    assert partial.sha256 == hashlib.sha256(b"abcdef").hexdigest()
    assert partial.temp_path.read_bytes() == b"abcdef"
    partial.discard()


def test_a_handed_over_digest_must_cover_every_byte_written(tmp_path: Path) -> None:
    partial = _partial(tmp_path)
    partial.hash_elsewhere()
    partial.write(b"abcdef")

    with pytest.raises(RuntimeError, match="hashed 5 bytes, but 6 were written"):
        partial.adopt_sha256(hashlib.sha256(b"abcde").digest(), 5)
    partial.discard()


def test_handing_over_is_asked_for_before_the_first_write(tmp_path: Path) -> None:
    partial = _partial(tmp_path)
    with pytest.raises(RuntimeError, match="without hash_elsewhere"):
        partial.adopt_sha256(bytes(32), 0)
    partial.write(b"x")

    with pytest.raises(RuntimeError, match="after bytes were written"):
        partial.hash_elsewhere()
    partial.discard()


def test_reset_brings_back_hashing_by_the_file(tmp_path: Path) -> None:
    partial = _partial(tmp_path)
    partial.hash_elsewhere()
    partial.write(b"first try")

    partial.reset()
    partial.write(b"second")

    assert partial.sha256 == hashlib.sha256(b"second").hexdigest()
    partial.discard()
