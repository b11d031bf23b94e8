"""W-API as a source: ask `download-media` for a short-lived link, then stream it.

W-API often answers HTTP 500 ("Falha ao fazer o download do conteúdo.") and now and
then HTTP 200 with `"error": true`; both are failures. The request for a link is
tried again a couple of times at once (a quick retry, through tenacity) before the
failure goes back to the download manager, which hands over to the next source or
schedules a durable retry. The link itself is fetched without the bearer token: it
is public and may live on another host.
"""

from __future__ import annotations

import logging
from typing import Any, Final

import aiohttp
from tenacity import (
    AsyncRetrying,
    retry_if_exception,
    stop_after_attempt,
    wait_exponential_jitter,
)

from mediamon.core.config import Instance, WapiConfig
from mediamon.core.models import MediaKind, MediaRecord
from mediamon.core.sources.base import Sink, SourceFailure
from mediamon.core.sources.http import describe_client_error, retry_after_seconds, stream_body

logger = logging.getLogger(__name__)

QUICK_TRIES: Final = 2
"""How often one attempt asks W-API for a link before handing the failure on."""

_TYPES: Final = {
    MediaKind.IMAGE: "image",
    MediaKind.STICKER: "image",
    MediaKind.VIDEO: "video",
    MediaKind.AUDIO: "audio",
    MediaKind.DOCUMENT: "document",
}


class WapiSource:
    name = "wapi"

    def __init__(
        self, session: aiohttp.ClientSession, config: WapiConfig, quick_wait: float = 0.25
    ) -> None:
        self._session = session
        self._config = config
        self._quick_wait = quick_wait

    async def fetch(self, media: MediaRecord, instance: Instance, sink: Sink) -> None:
        link = await self._link_with_quick_retries(media, instance)
        await stream_body(
            self._session,
            link,
            sink,
            label="W-API file link",
            expected_size=media.expected_size,
            timeout=self._config.timeout,
        )

    async def _link_with_quick_retries(self, media: MediaRecord, instance: Instance) -> str:
        retrying = AsyncRetrying(
            stop=stop_after_attempt(QUICK_TRIES),
            wait=wait_exponential_jitter(multiplier=self._quick_wait, max=self._quick_wait * 4),
            retry=retry_if_exception(_worth_a_quick_retry),
            reraise=True,
        )
        async for attempt in retrying:
            with attempt:
                return await self._request_link(media, instance)
        raise AssertionError("tenacity ended without an outcome")  # pragma: no cover

    async def _request_link(self, media: MediaRecord, instance: Instance) -> str:
        body = {
            "mediaKey": media.media_key,
            "directPath": media.direct_path,
            "type": _TYPES[media.kind],
            "mimetype": media.mimetype,
        }
        timeout = aiohttp.ClientTimeout(total=self._config.timeout)
        try:
            async with self._session.post(
                f"{self._config.base_url}/message/download-media",
                params={"instanceId": instance.id},
                json=body,
                headers={"Authorization": f"Bearer {instance.token}"},
                timeout=timeout,
            ) as response:
                answer = await _json_or_none(response)
                return _link_from(response, answer)
        except TimeoutError as error:
            raise SourceFailure(
                f"W-API did not answer within {self._config.timeout:g} s"
            ) from error
        except aiohttp.ClientError as error:
            raise SourceFailure(f"cannot reach W-API: {describe_client_error(error)}") from error


def _link_from(response: aiohttp.ClientResponse, answer: Any) -> str:
    status = response.status
    message = _error_message(answer)
    if status == 429:
        raise SourceFailure(
            "W-API is rate limiting (429)",
            http_status=status,
            retry_after=retry_after_seconds(response),
        )
    if status >= 500:
        raise SourceFailure(f"W-API {status}: {message or 'server error'}", http_status=status)
    if status in (401, 403):
        raise SourceFailure(
            f"W-API refused the instance's token ({status}); check [[instances]] token",
            transient=False,
            http_status=status,
        )
    if status != 200:
        raise SourceFailure(
            f"W-API {status}: {message or 'request refused'}", transient=False, http_status=status
        )
    if not isinstance(answer, dict):
        raise SourceFailure("W-API answered 200 with a body that is not JSON", http_status=200)
    if answer.get("error") is not False:
        raise SourceFailure(
            f"W-API answered 200 with an error: {message or 'no message'}", http_status=200
        )
    link = answer.get("fileLink")
    if not isinstance(link, str) or not link.startswith(("http://", "https://")):
        raise SourceFailure("W-API answered 200 without a usable fileLink", http_status=200)
    return link


def _error_message(answer: Any, depth: int = 0) -> str | None:
    """W-API nests its message, sometimes three levels deep; find the innermost text."""
    if depth > 4 or not isinstance(answer, dict):
        return None
    message = answer.get("message")
    if isinstance(message, str):
        return message[:200]
    inner = message.get("data") if isinstance(message, dict) else None
    return _error_message(inner, depth + 1) or _error_message(message, depth + 1)


async def _json_or_none(response: aiohttp.ClientResponse) -> Any:
    try:
        return await response.json(content_type=None)
    except (ValueError, aiohttp.ClientPayloadError, UnicodeDecodeError):
        return None


def _worth_a_quick_retry(error: BaseException) -> bool:
    # A 429 asks us to wait longer than a quick retry would; leave it to the
    # durable schedule, which honours Retry-After.
    return isinstance(error, SourceFailure) and error.transient and error.retry_after is None
