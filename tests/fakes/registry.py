"""The media both fakes know about: one registry, shared by FakeWapi and FakeCdn.

Registering a file encrypts it the way WhatsApp does and returns the media block a webhook
would carry, so a test holds a payload, a W-API that can fetch it and a CDN that serves it,
all agreeing on the same keys and hashes.
"""

from __future__ import annotations

import base64
import hashlib
import mimetypes
import random
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from mediamon.core.crypto import INFO_BY_KIND, encrypt_media
from mediamon.core.models import MediaKind
from tests.fakes.payloads import sample_bytes

WHATSAPP_CDN = "https://mmg.whatsapp.net"


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


@dataclass(frozen=True, slots=True)
class StoredMedia:
    """One registered file: its plaintext, its CDN blob and the block a webhook carries."""

    kind: MediaKind
    mimetype: str
    plain: bytes
    blob: bytes
    media_key: bytes
    direct_path: str
    block: dict[str, Any]

    @property
    def media_key_b64(self) -> str:
        return b64(self.media_key)

    @property
    def path(self) -> str:
        """The directPath without its query string."""
        return urlsplit(self.direct_path).path

    @property
    def query(self) -> dict[str, str]:
        return dict(parse_qsl(urlsplit(self.direct_path).query))


class MediaRegistry:
    """Registered media, found by mediaKey (as W-API is asked) or by path (as the CDN is).

    Keys and paths come from a seeded generator, so a test run produces the same ones
    each time.
    """

    def __init__(self, *, payload_url_host: str = WHATSAPP_CDN, seed: int = 0) -> None:
        self.payload_url_host = payload_url_host
        """Where the `url` of new media blocks points; set it to a FakeCdn's url if needed."""
        self._rng = random.Random(seed)
        self._by_key: dict[str, StoredMedia] = {}
        self._by_path: dict[str, StoredMedia] = {}

    def __iter__(self) -> Iterator[StoredMedia]:
        return iter(self._by_key.values())

    def __len__(self) -> int:
        return len(self._by_key)

    def add(self, plain: bytes, kind: MediaKind, mimetype: str, **extra: Any) -> dict[str, Any]:
        """Register a file; return a copy of its media block, camelCase as in msgContent.

        `extra` overrides or adds block fields; `encrypt_as=<MediaKind>` encrypts with
        another kind's keys while the block still says `kind` (audio sent as a document).
        """
        encrypt_as = MediaKind(extra.pop("encrypt_as", kind))
        media_key = self._rng.randbytes(32)
        blob = encrypt_media(plain, media_key, INFO_BY_KIND[encrypt_as])
        direct_path = (
            f"/v/t62.7118-24/{self._rng.randbytes(12).hex()}_n.enc"
            "?ccb=11-4&oh=01_x&oe=6865A1B2&_nc_sid=5e03e0"
        )

        block = {
            "url": f"{self.payload_url_host}{direct_path}&mms3=true",
            "mimetype": mimetype,
            "fileSha256": b64(hashlib.sha256(plain).digest()),
            "fileLength": str(len(plain)),
            "mediaKey": b64(media_key),
            "fileEncSha256": b64(hashlib.sha256(blob).digest()),
            "directPath": direct_path,
            "mediaKeyTimestamp": str(int(time.time())),
            **_fields_for(kind, mimetype),
        }
        block.update(extra)

        media = StoredMedia(kind, mimetype, plain, blob, media_key, direct_path, block)
        self._by_key[media.media_key_b64] = media
        self._by_path[media.path] = media
        return dict(block)

    def by_media_key(self, media_key_b64: str) -> StoredMedia | None:
        return self._by_key.get(media_key_b64)

    def by_path(self, path: str) -> StoredMedia | None:
        return self._by_path.get(urlsplit(path).path)


def _fields_for(kind: MediaKind, mimetype: str) -> dict[str, Any]:
    """The fields WhatsApp adds for each kind, with plausible values."""
    if kind is MediaKind.IMAGE:
        thumbnail = b64(sample_bytes(MediaKind.IMAGE, 64))
        return {"height": 1280, "width": 720, "jpegThumbnail": thumbnail}
    if kind is MediaKind.VIDEO:
        return {"seconds": 12}
    if kind is MediaKind.AUDIO:
        return {"seconds": 4, "ptt": False}
    if kind is MediaKind.DOCUMENT:
        extension = mimetypes.guess_extension(mimetype.split(";")[0].strip()) or ""
        return {"fileName": f"document{extension}", "title": "document", "pageCount": 1}
    return {"isAnimated": False}
