"""WhatsApp media encryption: key derivation, and decryption that checks as it streams.

A media file on WhatsApp's CDN is AES-256-CBC of the PKCS#7-padded plaintext, followed by
the first 10 bytes of an HMAC-SHA256 over IV and ciphertext. Keys come from the 32-byte
mediaKey through HKDF, with an info string that depends on the kind of media.

`MediaDecryptor` decrypts while the bytes arrive and never holds more than two chunks of
ciphertext and two of plaintext, plus a few dozen bytes. What it guarantees: `finish()`
returns only if the whole file matched every check it was given (file hash, MAC, padding,
plaintext hash and length). Plaintext released by `feed()` before that is unverified, so a
caller writes it somewhere it can throw away and keeps it only once `finish()` has returned.

The three SHA-256 passes cost far more than AES, so for all but small files they run on
worker threads while the caller writes one chunk and reads the next. Those threads are gone
once `finish()` or `close()` has returned, whatever happened; `with` does the latter.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
from collections.abc import Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Final

from cryptography.hazmat.primitives import hashes, padding
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from mediamon.core.errors import MediamonError
from mediamon.core.hashing import Chunk, HashLane
from mediamon.core.models import MediaKind

log = logging.getLogger(__name__)

INFO_BY_KIND: Final[dict[MediaKind, bytes]] = {
    MediaKind.IMAGE: b"WhatsApp Image Keys",
    MediaKind.STICKER: b"WhatsApp Image Keys",
    MediaKind.VIDEO: b"WhatsApp Video Keys",
    MediaKind.AUDIO: b"WhatsApp Audio Keys",
    MediaKind.DOCUMENT: b"WhatsApp Document Keys",
}
ALL_INFOS: Final[tuple[bytes, ...]] = tuple(dict.fromkeys(INFO_BY_KIND.values()))

MEDIA_KEY_LENGTH: Final = 32
MAC_LENGTH: Final = 10
BLOCK: Final = 16
_EXPANDED_LENGTH: Final = 112

PARALLEL_FROM: Final = 64 * 1024
"""A chunk this large moves the hashing onto worker threads; for less, waking them costs
more than it saves."""
_SLOTS: Final = 2
"""Chunks whose buffers are in use at once: the one being decrypted, and the one before,
whose hashes may still be running. More buffers measured no faster on two cores."""


class IntegrityError(MediamonError):
    """A media file, or the key meant to open it, does not match what the message promised."""

    title = "integrity"


class MediaKeyError(IntegrityError):
    """The mediaKey from the payload cannot be a WhatsApp media key."""


class EncryptedHashMismatch(IntegrityError):
    """The encrypted file's SHA-256 differs from fileEncSha256."""


class MacMismatch(IntegrityError):
    """The file's MAC was not made with the keys we derived.

    `matching_info` is another info string whose keys do match, when one was probed and
    fits: the file is fine, it was only labelled as the wrong kind.
    """

    def __init__(self, message: str, matching_info: bytes | None = None) -> None:
        super().__init__(message)
        self.matching_info = matching_info


class PlainHashMismatch(IntegrityError):
    """The decrypted file's SHA-256 differs from fileSha256."""


class LengthMismatch(IntegrityError):
    """The file is shorter or longer than it should be."""


class PaddingError(IntegrityError):
    """The last cipher block does not end in valid PKCS#7 padding."""


@dataclass(frozen=True, slots=True)
class MediaKeys:
    """The three secrets HKDF expands a mediaKey into."""

    iv: bytes
    cipher_key: bytes
    mac_key: bytes


def describe_info(info: bytes) -> str:
    """A short name for an info string for messages: b"WhatsApp Audio Keys" -> "audio keys"."""
    text = info.decode("utf-8", errors="replace")
    return text.removeprefix("WhatsApp ").lower()


def derive_keys(media_key: bytes, info: bytes) -> MediaKeys:
    """Expand a 32-byte mediaKey into IV, AES key and MAC key for one kind of media."""
    if len(media_key) != MEDIA_KEY_LENGTH:
        raise MediaKeyError(
            f"media key is {len(media_key)} bytes; a WhatsApp media key is {MEDIA_KEY_LENGTH}"
        )

    hkdf = HKDF(algorithm=hashes.SHA256(), length=_EXPANDED_LENGTH, salt=None, info=info)
    expanded = hkdf.derive(media_key)
    return MediaKeys(iv=expanded[0:16], cipher_key=expanded[16:48], mac_key=expanded[48:80])


def _new_mac(keys: MediaKeys) -> hmac.HMAC:
    # The standard library's HMAC rather than cryptography's: it lets go of the GIL while it
    # digests, which is what lets it run on a thread of its own beside AES.
    return hmac.new(keys.mac_key, keys.iv, "sha256")


def encrypt_media(plain: bytes, media_key: bytes, info: bytes) -> bytes:
    """Encrypt a whole file the way WhatsApp stores it on its CDN."""
    keys = derive_keys(media_key, info)

    padder = padding.PKCS7(BLOCK * 8).padder()
    padded = padder.update(plain) + padder.finalize()
    encryptor = Cipher(algorithms.AES(keys.cipher_key), modes.CBC(keys.iv)).encryptor()
    ciphertext = encryptor.update(padded) + encryptor.finalize()

    mac = _new_mac(keys)
    mac.update(ciphertext)
    return ciphertext + mac.digest()[:MAC_LENGTH]


@dataclass(slots=True)
class _Slot:
    """Buffers for one chunk: its ciphertext (after the bytes held back from the one before)
    and its plaintext, reused once every hash that reads them is done."""

    cipher: memoryview = field(default_factory=lambda: memoryview(bytearray()))
    plain: memoryview = field(default_factory=lambda: memoryview(bytearray()))
    busy: list[Future[None]] = field(default_factory=list)

    def make_room(self, size: int) -> None:
        if len(self.cipher) < size:
            # A fresh buffer rather than a resize: the caller may still hold a view of the
            # old one, and a bytearray with views cannot change size.
            self.cipher = memoryview(bytearray(size))
            self.plain = memoryview(bytearray(size + BLOCK))

    def wait(self) -> None:
        """Block until the hashes reading this slot are done; raise what one of them raised."""
        busy, self.busy = self.busy, []
        for future in busy:
            future.result()


class MediaDecryptor:
    """Decrypts one media file chunk by chunk and checks it as a whole at the end.

    `feed()` releases plaintext as soon as it is safe to, holding back the trailing MAC
    (which may arrive split across chunks) and the last cipher block (whose padding can
    only be stripped at the end). AES runs on the caller's thread; once a chunk of
    `PARALLEL_FROM` bytes or more arrives, the three hashes move to worker threads (see
    hashing.py), so that a chunk is hashed while the caller writes it and reads the next.

    The threads end in `finish()`, which waits for them before it checks anything, and in
    `close()`, which is idempotent and what the context manager calls: a caller that may
    give up halfway uses `with`. An error in a worker thread surfaces in the next
    `feed()` or in `finish()`.
    """

    def __init__(
        self,
        media_key: bytes,
        info: bytes,
        *,
        enc_sha256: bytes | None = None,
        plain_sha256: bytes | None = None,
        plain_length: int | None = None,
        probe_infos: Sequence[bytes] = (),
    ) -> None:
        keys = derive_keys(media_key, info)
        self._info = info
        self._expected_enc_sha256 = enc_sha256
        self._expected_plain_sha256 = plain_sha256
        self._expected_plain_length = plain_length

        self._decryptor = Cipher(algorithms.AES(keys.cipher_key), modes.CBC(keys.iv)).decryptor()
        self._mac = _new_mac(keys)
        # The ciphertext is the same whatever the info string, so a MAC for each probed
        # info can ride along and tell us, should ours fail, which kind the file really is.
        self._probes = {
            other: _new_mac(derive_keys(media_key, other))
            for other in dict.fromkeys(probe_infos)
            if other != info
        }
        self._enc_hash = hashlib.sha256()
        self._plain_hash = hashlib.sha256()
        self._enc_lane = HashLane("file-hash", [self._enc_hash])
        # Probes make this lane the slowest, but at several hundred MB/s still faster than
        # any download, and only documents probe from the start.
        self._mac_lane = HashLane("mac", [self._mac, *self._probes.values()])
        self._plain_lane = HashLane("plain-hash", [self._plain_hash])

        self._slots = tuple(_Slot() for _ in range(_SLOTS))
        self._turn = 0
        self._held_back = b""
        self._enc_bytes = 0
        self._plain_bytes = 0
        self._plain_digest: bytes | None = None
        self._finished = False

    def __enter__(self) -> MediaDecryptor:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    @property
    def plain_bytes(self) -> int:
        """How many plaintext bytes have been released so far."""
        return self._plain_bytes

    @property
    def plain_sha256(self) -> bytes:
        """SHA-256 of the whole plaintext; known once `finish()` has stripped the padding."""
        if self._plain_digest is None:
            raise RuntimeError("the plaintext hash is known only after finish()")
        return self._plain_digest

    def feed(self, chunk: Chunk) -> bytes:
        """Take the next bytes of the file; return the plaintext that can be released."""
        return bytes(self.feed_view(chunk))

    def feed_view(self, chunk: Chunk) -> memoryview:
        """`feed()` without the copy: a read-only view of plaintext in a buffer of ours.

        The view is valid until the next call to this decryptor, so a caller writes it out
        before feeding more. `chunk` is copied before this returns and may be reused.
        """
        if self._finished:
            raise RuntimeError("feed() after finish() or close()")
        try:
            return self._decrypt(memoryview(chunk).cast("B"))
        except BaseException:
            self.close()
            raise

    def finish(self) -> bytes:
        """Check the whole file and return the last plaintext; raise IntegrityError if not."""
        if self._finished:
            raise RuntimeError("finish() after finish() or close()")
        self._finished = True
        try:
            for slot in self._slots:
                slot.wait()
            self._close_lanes()
            return self._check_all()
        finally:
            self.close()

    def close(self) -> None:
        """Stop the worker threads and forget the file; safe to call at any time, and twice."""
        self._finished = True
        self._close_lanes()

    def _decrypt(self, chunk: memoryview) -> memoryview:
        if chunk.nbytes >= PARALLEL_FROM and not self._plain_lane.started:
            for lane in (self._enc_lane, self._mac_lane, self._plain_lane):
                lane.start()

        slot = self._slots[self._turn]
        self._turn = (self._turn + 1) % _SLOTS
        slot.wait()
        held = len(self._held_back)
        size = held + chunk.nbytes
        slot.make_room(size)
        cipher = slot.cipher
        cipher[:held] = self._held_back
        cipher[held:size] = chunk
        self._enc_bytes += chunk.nbytes
        slot.busy.extend(_running(self._enc_lane.update(cipher[held:size])))

        # Keep the last MAC_LENGTH bytes and at least one byte of ciphertext back: until
        # the stream ends we cannot know which block is last and carries the padding.
        ready = size - MAC_LENGTH - 1
        ready = ready - ready % BLOCK if ready >= BLOCK else 0
        self._held_back = bytes(cipher[ready:size])
        if not ready:
            return memoryview(b"")

        blocks = cipher[:ready]
        slot.busy.extend(_running(self._mac_lane.update(blocks)))
        plain = slot.plain[: self._decryptor.update_into(blocks, slot.plain)]
        slot.busy.extend(_running(self._plain_lane.update(plain)))
        self._plain_bytes += len(plain)
        return plain.toreadonly()

    def _close_lanes(self) -> None:
        for lane in (self._enc_lane, self._mac_lane, self._plain_lane):
            lane.close()

    def _check_all(self) -> bytes:
        self._check_enc_hash()
        tail, self._held_back = self._held_back, b""
        ciphertext, mac = tail[:-MAC_LENGTH], tail[-MAC_LENGTH:]
        self._check_mac(ciphertext, mac)

        plain = self._unpad(ciphertext)
        self._plain_hash.update(plain)
        self._plain_bytes += len(plain)
        self._plain_digest = self._plain_hash.digest()
        self._check_plain()
        return plain

    def _check_enc_hash(self) -> None:
        if self._expected_enc_sha256 is None:
            return
        if self._enc_hash.digest() != self._expected_enc_sha256:
            raise EncryptedHashMismatch(
                "SHA-256 of the encrypted file does not match fileEncSha256 "
                "(the download is corrupt or incomplete)"
            )

    def _check_mac(self, ciphertext: bytes, mac: bytes) -> None:
        if len(mac) < MAC_LENGTH:
            raise LengthMismatch(
                f"encrypted file is {self._enc_bytes} bytes, "
                f"too short to hold its {MAC_LENGTH}-byte MAC"
            )

        for signer in (self._mac, *self._probes.values()):
            signer.update(ciphertext)
        if hmac.compare_digest(self._mac.digest()[:MAC_LENGTH], mac):
            return

        matching = next(
            (
                other
                for other, probe in self._probes.items()
                if hmac.compare_digest(probe.digest()[:MAC_LENGTH], mac)
            ),
            None,
        )
        tried = describe_info(self._info)
        if matching is None:
            raise MacMismatch(f"MAC does not match the media key (tried {tried})")
        log.debug("MAC matched %s instead of %s", describe_info(matching), tried)
        raise MacMismatch(
            f"MAC does not match the media key with {tried}, "
            f"but does with {describe_info(matching)}",
            matching_info=matching,
        )

    def _unpad(self, ciphertext: bytes) -> bytes:
        if not ciphertext or len(ciphertext) % BLOCK:
            total = self._enc_bytes - MAC_LENGTH
            raise PaddingError(
                f"ciphertext is {total} bytes, not a whole number of {BLOCK}-byte blocks"
            )

        last = self._decryptor.update(ciphertext) + self._decryptor.finalize()
        pad = last[-1]
        # The MAC has already vouched for these bytes, so an early exit here leaks nothing.
        if not 1 <= pad <= BLOCK or last[-pad:] != bytes([pad]) * pad:
            raise PaddingError("the last block does not end in valid PKCS#7 padding")
        return last[:-pad]

    def _check_plain(self) -> None:
        expected_hash = self._expected_plain_sha256
        if expected_hash is not None and self._plain_digest != expected_hash:
            raise PlainHashMismatch(
                "SHA-256 of the decrypted file does not match fileSha256 "
                f"({self._plain_bytes} bytes decrypted)"
            )

        expected_length = self._expected_plain_length
        if expected_length is not None and self._plain_bytes != expected_length:
            raise LengthMismatch(
                f"decrypted file is {self._plain_bytes} bytes; fileLength says {expected_length}"
            )


def _running(future: Future[None] | None) -> list[Future[None]]:
    return [] if future is None else [future]


def decrypt_media(
    blob: bytes,
    media_key: bytes,
    info: bytes,
    *,
    enc_sha256: bytes | None = None,
    plain_sha256: bytes | None = None,
    plain_length: int | None = None,
    probe_infos: Sequence[bytes] = (),
) -> bytes:
    """Decrypt and check a whole file held in memory; for tests and small files."""
    decryptor = MediaDecryptor(
        media_key,
        info,
        enc_sha256=enc_sha256,
        plain_sha256=plain_sha256,
        plain_length=plain_length,
        probe_infos=probe_infos,
    )
    with decryptor:
        head = decryptor.feed(blob)
        return head + decryptor.finish()
