"""The decryptor's worker threads: every chunk boundary still decrypts, buffers handed in
and out behave as documented, and no thread outlives the decryptor however it ends."""

from __future__ import annotations

import gc
import hashlib
import random
import threading
import time
from collections.abc import Iterator

import pytest

from mediamon.core.crypto import (
    ALL_INFOS,
    INFO_BY_KIND,
    MAC_LENGTH,
    PARALLEL_FROM,
    EncryptedHashMismatch,
    MacMismatch,
    MediaDecryptor,
    encrypt_media,
)
from mediamon.core.hashing import HashLane
from mediamon.core.models import MediaKind

VIDEO = INFO_BY_KIND[MediaKind.VIDEO]
KEY = bytes(range(32, 64))
PLAIN = random.Random(8).randbytes(3 * PARALLEL_FROM + 5)
BLOB = encrypt_media(PLAIN, KEY, VIDEO)
ENC_SHA256 = hashlib.sha256(BLOB).digest()


def _hash_threads() -> list[threading.Thread]:
    return [thread for thread in threading.enumerate() if thread.name.startswith("mediamon-hash")]


def _checked_decryptor(*, enc_sha256: bytes | None = ENC_SHA256) -> MediaDecryptor:
    return MediaDecryptor(
        KEY,
        VIDEO,
        enc_sha256=enc_sha256,
        plain_sha256=hashlib.sha256(PLAIN).digest(),
        plain_length=len(PLAIN),
        probe_infos=ALL_INFOS,
    )


def _through_one_buffer(decryptor: MediaDecryptor, cuts: list[int]) -> bytes:
    """Feed BLOB cut at `cuts` the way a file reader does: every piece goes through the
    same buffer, scribbled over once fed, and each view is written out before the next."""
    buffer = bytearray(len(BLOB))
    out = bytearray()
    for start, end in zip([0, *cuts], [*cuts, len(BLOB)], strict=True):
        size = end - start
        buffer[:size] = BLOB[start:end]
        plain = decryptor.feed_view(memoryview(buffer)[:size])
        buffer[:size] = bytes(size)
        out += plain
    out += decryptor.finish()
    return bytes(out)


# The last cut walks over every offset near the end, where the padded last block and
# the MAC live; the first cut is large enough to start the worker threads.
TAIL_CUTS = range(len(BLOB) - 3 * 16 - MAC_LENGTH, len(BLOB) + 1)


@pytest.mark.parametrize("cut", TAIL_CUTS)
def test_every_boundary_near_the_mac_decrypts_on_worker_threads(cut: int) -> None:
    decryptor = _checked_decryptor()

    assert _through_one_buffer(decryptor, [PARALLEL_FROM, cut]) == PLAIN
    assert decryptor.plain_sha256 == hashlib.sha256(PLAIN).digest()
    assert _hash_threads() == []


def _uneven_cuts(rng: random.Random) -> Iterator[int]:
    at = 0
    while True:
        at += rng.choice([1, 15, 17, 4096, PARALLEL_FROM - 1, PARALLEL_FROM, 2 * PARALLEL_FROM])
        if at >= len(BLOB):
            return
        yield at


@pytest.mark.parametrize("seed", range(8))
def test_uneven_pieces_of_reused_memory_decrypt(seed: int) -> None:
    cuts = list(_uneven_cuts(random.Random(seed)))

    assert _through_one_buffer(_checked_decryptor(), cuts) == PLAIN


def test_a_small_file_never_wakes_a_thread() -> None:
    plain = b"sticker" * 1000
    blob = encrypt_media(plain, KEY, VIDEO)
    decryptor = MediaDecryptor(KEY, VIDEO, plain_sha256=hashlib.sha256(plain).digest())

    released = decryptor.feed(blob[:20_000])
    assert _hash_threads() == []
    assert released + decryptor.feed(blob[20_000:]) + decryptor.finish() == plain


def test_the_released_view_is_read_only_and_feed_returns_bytes() -> None:
    decryptor = _checked_decryptor()

    view = decryptor.feed_view(BLOB[: 2 * PARALLEL_FROM])
    assert view.readonly
    with pytest.raises(TypeError):
        view[0] = 0
    head = decryptor.feed(BLOB[2 * PARALLEL_FROM :])
    assert isinstance(head, bytes)
    decryptor.close()


@pytest.mark.parametrize(
    ("enc_sha256", "error"),
    [(ENC_SHA256, EncryptedHashMismatch), (None, MacMismatch)],
    ids=["file-hash", "mac"],
)
def test_a_failed_check_stops_the_threads(enc_sha256: bytes | None, error: type) -> None:
    decryptor = _checked_decryptor(enc_sha256=enc_sha256)
    tampered = bytearray(BLOB)
    tampered[-1] ^= 1

    decryptor.feed(bytes(tampered[: 2 * PARALLEL_FROM]))
    assert len(_hash_threads()) == 3
    decryptor.feed(bytes(tampered[2 * PARALLEL_FROM :]))
    with pytest.raises(error):
        decryptor.finish()

    assert _hash_threads() == []


def test_close_halfway_stops_the_threads_and_refuses_more() -> None:
    decryptor = _checked_decryptor()
    decryptor.feed(BLOB[: 2 * PARALLEL_FROM])

    decryptor.close()
    decryptor.close()

    assert _hash_threads() == []
    with pytest.raises(RuntimeError, match="after finish"):
        decryptor.feed(BLOB[2 * PARALLEL_FROM :])
    with pytest.raises(RuntimeError, match="after finish"):
        decryptor.finish()


def test_leaving_a_with_block_on_an_error_stops_the_threads() -> None:
    with pytest.raises(OSError, match="disk full"), _checked_decryptor() as decryptor:
        decryptor.feed(BLOB[: 2 * PARALLEL_FROM])
        raise OSError("disk full")

    assert _hash_threads() == []


def test_a_feed_that_fails_stops_the_threads() -> None:
    decryptor = _checked_decryptor()
    decryptor.feed(BLOB[: 2 * PARALLEL_FROM])

    # Every other byte is not one run of memory, so it cannot be taken in.
    with pytest.raises(TypeError):
        decryptor.feed(memoryview(BLOB)[2 * PARALLEL_FROM :: 2])

    assert _hash_threads() == []


def test_an_abandoned_decryptor_lets_its_threads_go() -> None:
    decryptor = _checked_decryptor()
    decryptor.feed(BLOB[: 2 * PARALLEL_FROM])
    assert len(_hash_threads()) == 3

    del decryptor
    gc.collect()

    deadline = time.monotonic() + 5
    while _hash_threads() and time.monotonic() < deadline:
        time.sleep(0.01)
    assert _hash_threads() == []


class _Exploding:
    def update(self, data: bytes | bytearray | memoryview, /) -> None:
        raise ValueError(f"cannot hash {len(data)} bytes")


def test_a_lane_hands_its_error_to_whoever_waits() -> None:
    lane = HashLane("test", [_Exploding()])
    with pytest.raises(ValueError, match="cannot hash 3 bytes"):
        lane.update(b"abc")

    lane.start()
    future = lane.update(b"abcd")
    assert future is not None
    with pytest.raises(ValueError, match="cannot hash 4 bytes"):
        future.result(timeout=5)
    lane.close()
    assert _hash_threads() == []
    with pytest.raises(RuntimeError, match="after close"):
        lane.update(b"")


def test_a_lane_keeps_the_order_of_its_updates() -> None:
    digest = hashlib.sha256()
    lane = HashLane("test", [digest])
    lane.start()
    pieces = [bytes([n]) * (n * 997) for n in range(1, 60)]

    futures = [lane.update(piece) for piece in pieces]
    for future in futures:
        assert future is not None
        future.result(timeout=5)
    lane.close()

    assert digest.digest() == hashlib.sha256(b"".join(pieces)).digest()
