"""WhatsApp's CDN as a source: fetch the encrypted file ourselves and decrypt it.

Every media webhook carries what this needs (directPath, mediaKey and the two
hashes), so a W-API outage costs no file. The URL is always the configured CDN base
plus the payload's directPath; the host in the payload's `url` is never used, and a
directPath that is not a plain absolute path is refused, so that a forged webhook
cannot point mediamon at a host of its choosing.

The file is decrypted while it streams in and checked as a whole at the end
(encrypted hash, MAC, padding, plain hash and length); the decryptor's worker
threads end with each attempt, however it ends. Media sent as a document is
often audio or an image underneath: when the MAC fails with the kind's own keys but
matches another kind's, the file is fetched once more and decrypted with those.
"""

from __future__ import annotations

import base64
import binascii
import logging
import re
from typing import Final

import aiohttp
from yarl import URL

from mediamon.core.config import Instance, WhatsAppConfig
from mediamon.core.crypto import (
    ALL_INFOS,
    BLOCK,
    INFO_BY_KIND,
    MAC_LENGTH,
    IntegrityError,
    MacMismatch,
    MediaDecryptor,
    describe_info,
)
from mediamon.core.models import MediaKind, MediaRecord
from mediamon.core.sources.base import HashingSink, Sink, SourceFailure
from mediamon.core.sources.http import stream_body

logger = logging.getLogger(__name__)

ORIGIN: Final = "https://web.whatsapp.com"

# Printable ASCII only, as every real directPath is: anything else (a C1 control, a
# look-alike dot) would leave in the request line as raw bytes.
_UNSAFE_PATH = re.compile(r"[^\x21-\x7e]|[\\@]|://|^//|(^|/)\.\.?(/|$|\?)")


class CdnSource:
    name = "cdn"

    def __init__(
        self, session: aiohttp.ClientSession, config: WhatsAppConfig, timeout: float
    ) -> None:
        self._session = session
        self._base = URL(config.cdn_base_url)
        self._timeout = timeout

    async def fetch(self, media: MediaRecord, instance: Instance, sink: Sink) -> None:
        url = self.url_for(media.direct_path)
        media_key = _media_key(media)
        own_info = INFO_BY_KIND[media.kind]

        # Probing the other kinds' MACs costs a hash pass each, so it rides along from
        # the start only for documents, the kind that is so often something else.
        info = own_info
        probes = ALL_INFOS if media.kind is MediaKind.DOCUMENT else ()
        for _ in range(3):
            try:
                await self._fetch_decrypted(url, media, media_key, info, probes, sink)
                return
            except MacMismatch as mismatch:
                if mismatch.matching_info is not None:
                    logger.info(
                        "%s is labelled %s but opens with %s; fetching it again with those",
                        media.message_id,
                        media.kind.value,
                        describe_info(mismatch.matching_info),
                    )
                    info, probes = mismatch.matching_info, ()
                elif not probes and info == own_info:
                    probes = ALL_INFOS
                else:
                    raise _corrupt(mismatch) from mismatch
            except IntegrityError as error:
                raise _corrupt(error) from error
            sink.reset()
        raise SourceFailure("the file opens with no kind's keys", transient=False)

    def url_for(self, direct_path: str | None) -> URL:
        """The CDN URL of a directPath; refuses anything but a plain absolute path."""
        if not direct_path or not direct_path.startswith("/") or _UNSAFE_PATH.search(direct_path):
            raise SourceFailure(
                "the payload's directPath is not a plain absolute path; refused",
                transient=False,
            )
        url = URL(str(self._base).rstrip("/") + direct_path, encoded=True)
        if (url.scheme, url.host, url.port) != (
            self._base.scheme,
            self._base.host,
            self._base.port,
        ):
            raise SourceFailure(
                "the payload's directPath leaves the CDN host; refused", transient=False
            )
        return url

    async def _fetch_decrypted(
        self,
        url: URL,
        media: MediaRecord,
        media_key: bytes,
        info: bytes,
        probes: tuple[bytes, ...],
        sink: Sink,
    ) -> None:
        decryptor = MediaDecryptor(
            media_key,
            info,
            enc_sha256=_digest(media.expected_enc_sha256),
            plain_sha256=_digest(media.expected_sha256),
            plain_length=media.expected_size,
            probe_infos=probes,
        )
        # The decryptor hashes the plaintext it releases, which is exactly what reaches
        # the file, so the file need not hash it a second time.
        partial = sink if isinstance(sink, HashingSink) else None
        if partial is not None:
            partial.hash_elsewhere()
        with decryptor:
            try:
                await stream_body(
                    self._session,
                    url,
                    _DecryptingSink(decryptor, sink),
                    label="WhatsApp CDN",
                    expected_size=_encrypted_size(media.expected_size),
                    timeout=self._timeout,
                    headers={"Origin": ORIGIN},
                )
            except SourceFailure as failure:
                if failure.http_status in (404, 410):
                    raise SourceFailure(
                        f"expired on WhatsApp servers ({failure.http_status})",
                        final=True,
                        http_status=failure.http_status,
                    ) from failure
                raise
            sink.write(decryptor.finish())
        if partial is not None:
            partial.adopt_sha256(decryptor.plain_sha256, decryptor.plain_bytes)


class _DecryptingSink:
    def __init__(self, decryptor: MediaDecryptor, sink: Sink) -> None:
        self._decryptor = decryptor
        self._sink = sink

    def write(self, chunk: bytes | bytearray | memoryview) -> None:
        # A sink writes or copies what it is given before it returns, so the view into
        # the decryptor's buffer, valid until the next feed, is safe to pass on.
        plain = self._decryptor.feed_view(chunk)
        if plain:
            self._sink.write(plain)

    def reset(self) -> None:
        raise RuntimeError("a decrypting stream cannot start over")


def _media_key(media: MediaRecord) -> bytes:
    try:
        return base64.b64decode(media.media_key or "", validate=True)
    except (binascii.Error, ValueError) as error:
        raise SourceFailure(
            "the payload's mediaKey is not valid base64", transient=False
        ) from error


def _digest(hex_digest: str | None) -> bytes | None:
    return bytes.fromhex(hex_digest) if hex_digest else None


def _encrypted_size(plain_size: int | None) -> int | None:
    """The CDN file's size: the plaintext padded to whole blocks, plus the MAC."""
    if plain_size is None:
        return None
    return (plain_size // BLOCK + 1) * BLOCK + MAC_LENGTH


def _corrupt(error: IntegrityError) -> SourceFailure:
    return SourceFailure(f"corrupt file on the CDN: {error}", transient=False)
