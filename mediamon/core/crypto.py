"""WhatsApp media encryption: key derivation, and decryption that checks as it streams.

A media file on WhatsApp's CDN is AES-256-CBC of the PKCS#7-padded plaintext, followed by
the first 10 bytes of an HMAC-SHA256 over IV and ciphertext. Keys come from the 32-byte
mediaKey through HKDF, with an info string that depends on the kind of media.

`MediaDecryptor` decrypts while the bytes arrive and never holds more than one chunk plus
a few dozen bytes. What it guarantees: `finish()` returns only if the whole file matched
every check it was given (file hash, MAC, padding, plaintext hash and length). Plaintext
released by `feed()` before that is unverified, so a caller writes it somewhere it can
throw away and keeps it only once `finish()` has returned.
"""

from __future__ import annotations

import hashlib
import hmac as std_hmac
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final

from cryptography.hazmat.primitives import hashes, hmac, padding
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from mediamon.core.errors import MediamonError
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
    mac = hmac.HMAC(keys.mac_key, hashes.SHA256())
    mac.update(keys.iv)
    return mac


def encrypt_media(plain: bytes, media_key: bytes, info: bytes) -> bytes:
    """Encrypt a whole file the way WhatsApp stores it on its CDN."""
    keys = derive_keys(media_key, info)

    padder = padding.PKCS7(BLOCK * 8).padder()
    padded = padder.update(plain) + padder.finalize()
    encryptor = Cipher(algorithms.AES(keys.cipher_key), modes.CBC(keys.iv)).encryptor()
    ciphertext = encryptor.update(padded) + encryptor.finalize()

    mac = _new_mac(keys)
    mac.update(ciphertext)
    return ciphertext + mac.finalize()[:MAC_LENGTH]


class MediaDecryptor:
    """Decrypts one media file chunk by chunk and checks it as a whole at the end.

    `feed()` releases plaintext as soon as it is safe to, holding back the trailing MAC
    (which may arrive split across chunks) and the last cipher block (whose padding can
    only be stripped at the end). Each chunk costs one update per hash and one AES call.
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

        self._pending = bytearray()
        self._enc_bytes = 0
        self._plain_bytes = 0
        self._plain_digest: bytes | None = None
        self._finished = False

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

    def feed(self, chunk: bytes) -> bytes:
        """Take the next bytes of the file; return the plaintext that can be released."""
        if self._finished:
            raise RuntimeError("feed() after finish()")
        self._enc_hash.update(chunk)
        self._enc_bytes += len(chunk)
        self._pending += chunk

        # Keep the last MAC_LENGTH bytes and at least one byte of ciphertext back: until
        # the stream ends we cannot know which block is last and carries the padding.
        ready = len(self._pending) - MAC_LENGTH - 1
        if ready < BLOCK:
            return b""
        ready -= ready % BLOCK

        with memoryview(self._pending) as view:
            blocks = view[:ready]
            self._mac_update(blocks)
            plain = self._decryptor.update(blocks)
            self._pending = bytearray(view[ready:])
        self._release(plain)
        return plain

    def finish(self) -> bytes:
        """Check the whole file and return the last plaintext; raise IntegrityError if not."""
        if self._finished:
            raise RuntimeError("finish() called twice")
        self._finished = True

        self._check_enc_hash()
        tail = bytes(self._pending)
        self._pending = bytearray()
        ciphertext, mac = tail[:-MAC_LENGTH], tail[-MAC_LENGTH:]
        self._check_mac(ciphertext, mac)

        plain = self._unpad(ciphertext)
        self._release(plain)
        self._plain_digest = self._plain_hash.digest()
        self._check_plain()
        return plain

    def _mac_update(self, ciphertext: memoryview | bytes) -> None:
        self._mac.update(ciphertext)
        for probe in self._probes.values():
            probe.update(ciphertext)

    def _release(self, plain: bytes) -> None:
        self._plain_hash.update(plain)
        self._plain_bytes += len(plain)

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

        self._mac_update(ciphertext)
        if std_hmac.compare_digest(self._mac.finalize()[:MAC_LENGTH], mac):
            return

        matching = next(
            (
                other
                for other, probe in self._probes.items()
                if std_hmac.compare_digest(probe.finalize()[:MAC_LENGTH], mac)
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
    head = decryptor.feed(blob)
    return head + decryptor.finish()
