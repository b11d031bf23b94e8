"""Streaming a media body over HTTP into a sink, shared by every source.

The body is read in chunks and never held whole. Two limits protect the process: a
body longer than the payload's fileLength is cut off at once (nobody gets to fill
the disk through a link), and a body that trickles in slower than `MIN_RATE` after
the first `timeout` seconds is abandoned, since a socket read timeout alone never
fires on a server that sends one byte a second.
"""

from __future__ import annotations

import email.utils
import time
from typing import Final

import aiohttp
from yarl import URL

from mediamon.core.sources.base import Sink, SourceFailure

CHUNK_SIZE: Final = 256 * 1024
MIN_RATE: Final = 64 * 1024
"""Bytes a second a body must average once its first `timeout` seconds have passed."""


async def stream_body(
    session: aiohttp.ClientSession,
    url: str | URL,
    sink: Sink,
    *,
    label: str,
    expected_size: int | None,
    timeout: float,
    headers: dict[str, str] | None = None,
) -> int:
    """GET `url` into `sink`; returns the byte count or raises `SourceFailure`."""
    deadline = timeout + (expected_size or 0) / MIN_RATE
    client_timeout = aiohttp.ClientTimeout(total=deadline, sock_connect=timeout, sock_read=timeout)
    started = time.monotonic()
    try:
        async with session.get(url, headers=headers, timeout=client_timeout) as response:
            if response.status != 200:
                raise _status_failure(label, response)
            return await _copy(response, sink, label, expected_size)
    except TimeoutError as error:
        waited = time.monotonic() - started
        raise SourceFailure(f"{label} timed out after {waited:.0f} s") from error
    except aiohttp.ClientError as error:
        raise SourceFailure(f"{label} failed: {describe_client_error(error)}") from error


async def _copy(
    response: aiohttp.ClientResponse, sink: Sink, label: str, expected_size: int | None
) -> int:
    received = 0
    async for chunk in response.content.iter_chunked(CHUNK_SIZE):
        received += len(chunk)
        if expected_size is not None and received > expected_size:
            raise SourceFailure(
                f"{label} sent more than the {expected_size} bytes the payload announced",
                http_status=response.status,
            )
        sink.write(chunk)
    return received


def _status_failure(label: str, response: aiohttp.ClientResponse) -> SourceFailure:
    status = response.status
    if status == 429:
        return SourceFailure(
            f"{label} is rate limiting (429)",
            http_status=status,
            retry_after=retry_after_seconds(response),
        )
    return SourceFailure(
        f"{label} answered {status} {response.reason or ''}".rstrip(),
        http_status=status,
        transient=status >= 500 or status in (404, 408, 410),
    )


def retry_after_seconds(response: aiohttp.ClientResponse) -> float | None:
    """Retry-After as seconds, from either of its two forms; None when absent or odd."""
    value = response.headers.get("Retry-After")
    if not value:
        return None
    try:
        return max(float(value), 0.0)
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(when.timestamp() - time.time(), 0.0)


def describe_client_error(error: aiohttp.ClientError) -> str:
    """aiohttp's errors in words a person reads at a glance."""
    if isinstance(error, aiohttp.ClientConnectorError):
        reason = (error.os_error.strerror or "refused").lower()
        return f"cannot connect to {error.host}:{error.port} ({reason})"
    if isinstance(error, aiohttp.ServerDisconnectedError):
        return "the server closed the connection"
    if isinstance(error, aiohttp.ClientPayloadError):
        return "the connection broke in the middle of the body"
    return str(error) or type(error).__name__
