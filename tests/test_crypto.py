"""WhatsApp media encryption: round trips under any chunking, and each check failing alone."""

from __future__ import annotations

import hashlib
import hmac
import random
from collections.abc import Iterator

import pytest
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from mediamon.core.crypto import (
    ALL_INFOS,
    INFO_BY_KIND,
    MAC_LENGTH,
    EncryptedHashMismatch,
    IntegrityError,
    LengthMismatch,
    MacMismatch,
    MediaDecryptor,
    MediaKeyError,
    PaddingError,
    PlainHashMismatch,
    decrypt_media,
    derive_keys,
    encrypt_media,
)
from mediamon.core.errors import MediamonError
from mediamon.core.models import MediaKind

KEY = bytes(range(32))
IMAGE = INFO_BY_KIND[MediaKind.IMAGE]
SIZES = [0, 1, 15, 16, 17, 1024 * 1024 + 3]
SPLITS = ["whole", "bytes", "random", "inside-mac"]


def _pieces(blob: bytes, split: str, rng: random.Random) -> Iterator[bytes]:
    """Cut a blob the way a network might, including the awkward places."""
    if split == "whole":
        yield blob
        return
    if split == "bytes":
        # One byte at a time throughout would take seconds on 1 MiB; the tail is where
        # the MAC and the padding block live, so that part goes byte by byte.
        head = max(0, len(blob) - 64)
        yield from _random_cuts(blob[:head], rng)
        yield from (blob[i : i + 1] for i in range(head, len(blob)))
        return
    if split == "random":
        yield from _random_cuts(blob, rng)
        return
    # inside-mac: the last chunk boundary falls between MAC bytes.
    cut = len(blob) - rng.randint(1, MAC_LENGTH - 1)
    yield from _random_cuts(blob[:cut], rng)
    yield blob[cut:]


def _random_cuts(data: bytes, rng: random.Random) -> Iterator[bytes]:
    start = 0
    while start < len(data):
        size = rng.choice([1, 2, 7, 16, 17, 31, 1000, 65536, 70001])
        yield data[start : start + size]
        start += size


def _stream(decryptor: MediaDecryptor, pieces: Iterator[bytes]) -> bytes:
    out = bytearray()
    for piece in pieces:
        out += decryptor.feed(piece)
    out += decryptor.finish()
    return bytes(out)


@pytest.mark.parametrize("split", SPLITS)
@pytest.mark.parametrize("size", SIZES)
@pytest.mark.parametrize("kind", list(MediaKind))
def test_round_trip(kind: MediaKind, size: int, split: str) -> None:
    rng = random.Random(f"{kind}-{size}-{split}")
    plain = rng.randbytes(size)
    media_key = rng.randbytes(32)
    info = INFO_BY_KIND[kind]
    blob = encrypt_media(plain, media_key, info)
    decryptor = MediaDecryptor(
        media_key,
        info,
        enc_sha256=hashlib.sha256(blob).digest(),
        plain_sha256=hashlib.sha256(plain).digest(),
        plain_length=size,
        probe_infos=ALL_INFOS,
    )

    out = _stream(decryptor, _pieces(blob, split, rng))

    assert out == plain
    assert decryptor.plain_bytes == size
    assert decryptor.plain_sha256 == hashlib.sha256(plain).digest()


def test_feed_holds_back_the_mac_and_the_last_block() -> None:
    plain = b"x" * 100
    blob = encrypt_media(plain, KEY, IMAGE)
    decryptor = MediaDecryptor(KEY, IMAGE)

    released = decryptor.feed(blob)

    assert released == plain[:96]
    assert decryptor.finish() == plain[96:]


def test_blob_layout_is_cbc_then_ten_mac_bytes() -> None:
    for size, expected in [(0, 16), (15, 16), (16, 32), (100, 112)]:
        assert len(encrypt_media(b"a" * size, KEY, IMAGE)) == expected + MAC_LENGTH


def _hkdf_sha256(key: bytes, info: bytes, length: int) -> bytes:
    """RFC 5869 written out with hmac, to check derive_keys against something independent."""
    prk = hmac.new(b"\x00" * 32, key, hashlib.sha256).digest()
    okm, block, counter = b"", b"", 1
    while len(okm) < length:
        block = hmac.new(prk, block + info + bytes([counter]), hashlib.sha256).digest()
        okm += block
        counter += 1
    return okm[:length]


@pytest.mark.parametrize("info", ALL_INFOS)
def test_derive_keys_matches_rfc5869(info: bytes) -> None:
    expanded = _hkdf_sha256(KEY, info, 112)

    keys = derive_keys(KEY, info)

    assert keys.iv == expanded[:16]
    assert keys.cipher_key == expanded[16:48]
    assert keys.mac_key == expanded[48:80]


def test_infos_by_kind() -> None:
    assert (
        INFO_BY_KIND[MediaKind.STICKER] == INFO_BY_KIND[MediaKind.IMAGE] == b"WhatsApp Image Keys"
    )
    assert len(ALL_INFOS) == len(set(ALL_INFOS)) == 4


@pytest.mark.parametrize("size", [0, 31, 33])
def test_media_key_of_wrong_length_is_refused(size: int) -> None:
    with pytest.raises(MediaKeyError, match=f"{size} bytes"):
        derive_keys(b"k" * size, IMAGE)
    with pytest.raises(MediaKeyError):
        MediaDecryptor(b"k" * size, IMAGE)
    with pytest.raises(MediaKeyError):
        encrypt_media(b"", b"k" * size, IMAGE)


def _flip(blob: bytes, index: int) -> bytes:
    changed = bytearray(blob)
    changed[index] ^= 0x01
    return bytes(changed)


def test_encrypted_hash_is_checked_first() -> None:
    plain = b"hello world" * 10
    blob = encrypt_media(plain, KEY, IMAGE)
    good_sha = hashlib.sha256(blob).digest()

    # A flipped byte would also break the MAC; the file hash must be the one that speaks.
    with pytest.raises(EncryptedHashMismatch, match="fileEncSha256"):
        decrypt_media(_flip(blob, 3), KEY, IMAGE, enc_sha256=good_sha)


@pytest.mark.parametrize("index", [0, -11, -1], ids=["ciphertext", "last-block", "mac"])
def test_tampered_byte_fails_the_mac(index: int) -> None:
    blob = encrypt_media(b"some plain bytes" * 5, KEY, IMAGE)

    with pytest.raises(MacMismatch, match=r"tried image keys") as caught:
        decrypt_media(_flip(blob, index), KEY, IMAGE, probe_infos=ALL_INFOS)

    assert caught.value.matching_info is None
    assert caught.value.title == "integrity"


def test_mac_failure_names_the_info_that_works() -> None:
    audio = INFO_BY_KIND[MediaKind.AUDIO]
    document = INFO_BY_KIND[MediaKind.DOCUMENT]
    blob = encrypt_media(b"OggS" + bytes(500), KEY, audio)

    with pytest.raises(MacMismatch, match=r"document keys.*audio keys") as caught:
        decrypt_media(blob, KEY, document, probe_infos=ALL_INFOS)

    assert caught.value.matching_info == audio
    assert decrypt_media(blob, KEY, caught.value.matching_info) == b"OggS" + bytes(500)


def test_wrong_info_without_probes_reports_no_match() -> None:
    blob = encrypt_media(b"abc", KEY, INFO_BY_KIND[MediaKind.VIDEO])

    with pytest.raises(MacMismatch) as caught:
        decrypt_media(blob, KEY, IMAGE)

    assert caught.value.matching_info is None


def test_plain_hash_mismatch() -> None:
    blob = encrypt_media(b"abc", KEY, IMAGE)

    with pytest.raises(PlainHashMismatch, match="fileSha256"):
        decrypt_media(blob, KEY, IMAGE, plain_sha256=hashlib.sha256(b"abd").digest())


def test_plain_length_mismatch() -> None:
    blob = encrypt_media(b"abc", KEY, IMAGE)

    with pytest.raises(LengthMismatch, match="3 bytes; fileLength says 4"):
        decrypt_media(
            blob, KEY, IMAGE, plain_sha256=hashlib.sha256(b"abc").digest(), plain_length=4
        )


@pytest.mark.parametrize("size", [0, 9])
def test_blob_too_short_for_a_mac(size: int) -> None:
    with pytest.raises(LengthMismatch, match="too short"):
        decrypt_media(b"\x00" * size, KEY, IMAGE)


def _encrypt_raw(padded: bytes, info: bytes) -> bytes:
    """Encrypt without adding padding, with a valid MAC, to reach the padding check."""
    keys = derive_keys(KEY, info)
    encryptor = Cipher(algorithms.AES(keys.cipher_key), modes.CBC(keys.iv)).encryptor()
    ciphertext = encryptor.update(padded) + encryptor.finalize()
    mac = hmac.new(keys.mac_key, keys.iv + ciphertext, hashlib.sha256).digest()
    return ciphertext + mac[:MAC_LENGTH]


@pytest.mark.parametrize(
    "last_block",
    [bytes(16), b"a" * 15 + b"\x11", b"a" * 13 + b"\x02\x03\x03"],
    ids=["zero", "too-big", "uneven"],
)
def test_bad_padding_behind_a_good_mac(last_block: bytes) -> None:
    blob = _encrypt_raw(b"b" * 16 + last_block, IMAGE)

    with pytest.raises(PaddingError, match="PKCS#7"):
        decrypt_media(blob, KEY, IMAGE)


def test_ciphertext_not_whole_blocks_behind_a_good_mac() -> None:
    keys = derive_keys(KEY, IMAGE)
    ciphertext = bytes(20)
    mac = hmac.new(keys.mac_key, keys.iv + ciphertext, hashlib.sha256).digest()

    with pytest.raises(PaddingError, match="20 bytes"):
        decrypt_media(ciphertext + mac[:MAC_LENGTH], KEY, IMAGE)


def test_every_integrity_error_is_a_mediamon_error() -> None:
    for error in (EncryptedHashMismatch, MacMismatch, PlainHashMismatch, LengthMismatch):
        assert issubclass(error, IntegrityError)
    assert issubclass(PaddingError, IntegrityError)
    assert issubclass(MediaKeyError, IntegrityError)
    assert issubclass(IntegrityError, MediamonError)


def test_decryptor_is_single_use() -> None:
    decryptor = MediaDecryptor(KEY, IMAGE)
    with pytest.raises(RuntimeError):
        _ = decryptor.plain_sha256
    decryptor.feed(encrypt_media(b"abc", KEY, IMAGE))
    decryptor.finish()

    with pytest.raises(RuntimeError):
        decryptor.feed(b"more")
    with pytest.raises(RuntimeError):
        decryptor.finish()
