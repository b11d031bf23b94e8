"""The contract between the download manager and a source of media bytes.

A source writes the plain bytes of one media file into the sink it is given and
raises `SourceFailure` when it cannot. It does not verify what it wrote against the
payload's hashes (the manager does that, the same way for every source) and it
never touches the final file name.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

from mediamon.core.config import Instance
from mediamon.core.errors import MediamonError
from mediamon.core.models import MediaRecord


class Sink(Protocol):
    def write(self, chunk: bytes | bytearray | memoryview) -> None: ...

    def reset(self) -> None:
        """Forget everything written, to start the file over."""
        ...


@runtime_checkable
class HashingSink(Sink, Protocol):
    """A sink that hashes what it is given, unless the writer hashes it already.

    A source that computes the SHA-256 of exactly the bytes it writes (the CDN's
    decryptor) turns the sink's own hashing off and hands its digest over at the end,
    so that a large file is not hashed twice.
    """

    def hash_elsewhere(self) -> None: ...

    def adopt_sha256(self, digest: bytes, size: int) -> None: ...


class SourceFailure(MediamonError):
    """A source could not deliver this media on this attempt.

    `transient` failures are worth trying again later; `final` ones (the file expired
    on WhatsApp's servers) mean no source should be called for it again.
    """

    title = "download"

    def __init__(
        self,
        reason: str,
        *,
        transient: bool = True,
        final: bool = False,
        http_status: int | None = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(reason)
        self.reason = reason
        self.transient = transient and not final
        self.final = final
        self.http_status = http_status
        self.retry_after = retry_after


class Source(Protocol):
    name: str

    async def fetch(self, media: MediaRecord, instance: Instance, sink: Sink) -> None: ...
