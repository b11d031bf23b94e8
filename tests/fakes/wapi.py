"""A W-API that answers `download-media` and serves the file links it hands out.

It behaves like the real one where tests depend on it: bearer token per instance, the
four required body fields, a short-lived link serving the decrypted file, HTTP 200 with
`"error": true` for some failures and W-API's odd nested body on HTTP 500. It decrypts with
the keys for the `type` it is asked for, so media labelled as the wrong kind fails here
as it does for real.
"""

from __future__ import annotations

import asyncio
import secrets
import time
from dataclasses import dataclass
from typing import Any, Final

from aiohttp import web

from mediamon.core.crypto import INFO_BY_KIND, IntegrityError, decrypt_media
from mediamon.core.models import MediaKind
from tests.fakes import FailurePlan, LoopbackServer, flip_byte
from tests.fakes.registry import WHATSAPP_CDN, MediaRegistry

WAPI_MODES: Final = frozenset({"500", "200-error", "429", "401", "slow", "wrong-bytes", "short"})
FILE_LINK_MODES: Final = frozenset({"slow", "wrong-bytes", "short"})
REQUIRED_FIELDS: Final = ("mediaKey", "directPath", "type", "mimetype")
MEDIA_TYPES: Final = frozenset({"image", "video", "audio", "document"})

# Exactly what W-API answers, with HTTP 500, when it could not fetch media, valid or not.
DOWNLOAD_FAILED_BODY: Final = {
    "error": True,
    "message": {
        "error": False,
        "data": {"error": True, "message": "Falha ao fazer o download do conteúdo."},
    },
}
LINK_LIFETIME: Final = 60


@dataclass(frozen=True, slots=True)
class _FileLink:
    body: bytes
    mimetype: str
    mode: str | None


class FakeWapi(LoopbackServer):
    """W-API for the instances in `tokens` (instance id -> bearer token)."""

    def __init__(
        self,
        tokens: dict[str, str],
        *,
        registry: MediaRegistry | None = None,
        payload_url_host: str = WHATSAPP_CDN,
    ) -> None:
        super().__init__()
        self.tokens = dict(tokens)
        self.registry = registry or MediaRegistry(payload_url_host=payload_url_host)
        self.delay = 0.0
        """Seconds to wait before answering download-media."""
        self._failures = FailurePlan(WAPI_MODES)
        self._links: dict[str, _FileLink] = {}

    def add_media(
        self, plain: bytes, kind: MediaKind, mimetype: str, **extra: Any
    ) -> dict[str, Any]:
        """Register a file; see `MediaRegistry.add`."""
        return self.registry.add(plain, kind, mimetype, **extra)

    def fail(
        self, mode: str, times: int = 1, *, media_key: str | None = None, retry_after: float = 1
    ) -> None:
        """Fail the next `times` download attempts, for one mediaKey (base64) or any.

        "slow", "wrong-bytes" and "short" let download-media succeed and spoil the file
        link it returns.
        """
        self._failures.add(mode, times, media_key, retry_after)

    def always(self, mode: str | None, *, retry_after: float = 1) -> None:
        """Fail every attempt in `mode` from now on; None puts things right again."""
        self._failures.always(mode, retry_after)

    def build_app(self) -> web.Application:
        app = web.Application()
        app.router.add_post("/message/download-media", self._download_media)
        app.router.add_get("/media/file/{link_id}", self._file)
        return app

    async def _download_media(self, request: web.Request) -> web.StreamResponse:
        if self.delay:
            await asyncio.sleep(self.delay)
        if not self._authorized(request):
            return _error(401, "invalid token for this instance")

        body = await _json_object(request)
        problem = _body_problem(body)
        if problem is not None:
            return _error(400, problem)

        failure = self._failures.take(body["mediaKey"])
        if failure is not None and failure.mode not in FILE_LINK_MODES:
            return _failure_response(failure.mode, failure.retry_after)

        return self._link_for(body, failure.mode if failure else None)

    def _authorized(self, request: web.Request) -> bool:
        token = self.tokens.get(request.query.get("instanceId", ""))
        return token is not None and request.headers.get("Authorization") == f"Bearer {token}"

    def _link_for(self, body: dict[str, Any], mode: str | None) -> web.StreamResponse:
        media = self.registry.by_media_key(body["mediaKey"])
        if media is None:
            return _error(200, "media not found")
        if body["directPath"] != media.direct_path:
            return web.json_response(DOWNLOAD_FAILED_BODY, status=500)

        try:
            plain = decrypt_media(
                media.blob, media.media_key, INFO_BY_KIND[MediaKind(body["type"])]
            )
        except IntegrityError:
            return web.json_response(DOWNLOAD_FAILED_BODY, status=500)

        link_id = secrets.token_urlsafe(12)
        self._links[link_id] = _FileLink(plain, body["mimetype"], mode)
        return web.json_response(
            {
                "error": False,
                "fileLink": f"{self.url}/media/file/{link_id}",
                "expires": int(time.time()) + LINK_LIFETIME,
            }
        )

    async def _file(self, request: web.Request) -> web.StreamResponse:
        link = self._links.get(request.match_info["link_id"])
        if link is None:
            return _error(404, "file not found")

        async with self.file_transfer():
            if link.mode == "slow":
                return await self.trickle(request, link.body, link.mimetype)
            body = link.body
            if link.mode == "wrong-bytes":
                body = flip_byte(body, len(body) // 2)
            elif link.mode == "short":
                body = body[: len(body) // 2]
            return web.Response(body=body, headers={"Content-Type": link.mimetype})


async def _json_object(request: web.Request) -> dict[str, Any]:
    try:
        body = await request.json()
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {}


def _body_problem(body: dict[str, Any]) -> str | None:
    missing = [name for name in REQUIRED_FIELDS if not isinstance(body.get(name), str)]
    if missing:
        return f"missing or invalid fields: {', '.join(missing)}"
    if body["type"] not in MEDIA_TYPES:
        return f"type must be one of {', '.join(sorted(MEDIA_TYPES))}"
    return None


def _failure_response(mode: str, retry_after: float) -> web.StreamResponse:
    if mode == "500":
        return web.json_response(DOWNLOAD_FAILED_BODY, status=500)
    if mode == "429":
        response = _error(429, "too many requests")
        response.headers["Retry-After"] = f"{retry_after:g}"
        return response
    if mode == "401":
        return _error(401, "invalid token for this instance")
    return _error(200, "could not download the media, try again later")


def _error(status: int, message: str) -> web.Response:
    return web.json_response({"error": True, "message": message}, status=status)
