"""The webhook server: W-API posts here; we answer at once and never fall over.

The handler does only what must happen before the answer: check the secret, read a
bounded body, and hand it to `Intake`, which records it durably and queues its
media. Downloads happen later, elsewhere. A client's bad body is always a 4xx with
a JSON error that says what is wrong; a body over `max_body` is refused from its
Content-Length, or as soon as a chunked one passes the limit, never read whole.
Beside it, /healthz answers whoever watches, and /metrics (Prometheus' text format)
whoever holds the secret, when one is set.
"""

from __future__ import annotations

import asyncio
import hmac
import logging
from collections.abc import Callable
from typing import Final

from aiohttp import web

from mediamon.core.config import Config
from mediamon.core.intake import Intake
from mediamon.core.metrics import CONTENT_TYPE, Metrics

logger = logging.getLogger(__name__)

SECRET_HEADER: Final = "X-Mediamon-Secret"
BODY_READ_TIMEOUT: Final = 30.0

_STATUS: Final = {"accepted": 200, "ignored": 200, "refused": 403, "rejected": 400}

CONFIG_KEY: Final = web.AppKey("config", Config)
INTAKE_KEY: Final = web.AppKey("intake", Intake)
READY_KEY: Final[web.AppKey[Callable[[], bool]]] = web.AppKey("ready")
METRICS_KEY: Final = web.AppKey("metrics", Metrics)


def build_app(
    config: Config, intake: Intake, ready: Callable[[], bool], metrics: Metrics
) -> web.Application:
    # aiohttp's own limit stays above ours so that our handler, not aiohttp, words
    # the 413; ours is enforced while reading.
    app = web.Application(client_max_size=config.server.max_body + 1)
    app[CONFIG_KEY] = config
    app[INTAKE_KEY] = intake
    app[READY_KEY] = ready
    app[METRICS_KEY] = metrics
    app.router.add_post("/webhook", receive_webhook)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/metrics", metrics_text)
    return app


async def receive_webhook(request: web.Request) -> web.Response:
    config = request.app[CONFIG_KEY]
    if config.server.secret and not _secret_matches(request, config.server.secret):
        logger.warning("webhook from %s refused: missing or wrong secret", request.remote)
        return _error(401, "missing or wrong secret")

    limit = config.server.max_body
    if request.content_length is not None and request.content_length > limit:
        logger.warning("webhook refused: body of %d bytes", request.content_length)
        return _error(413, f"body is {request.content_length} bytes; the limit is {limit}")
    raw: bytes | None
    try:
        if request.content_length is not None and request.content.is_eof():
            # The usual case: a declared length within the limit, and every byte
            # already here, so there is nothing to time or to bound while reading.
            raw = await request.read()
        else:
            async with asyncio.timeout(BODY_READ_TIMEOUT):
                raw = await _read_bounded(request, limit)
    except TimeoutError:
        logger.warning("webhook refused: body still arriving after %.0f s", BODY_READ_TIMEOUT)
        return _error(408, f"body took longer than {BODY_READ_TIMEOUT:.0f} s to arrive")
    if raw is None:
        logger.warning("webhook refused: chunked body over %d bytes", limit)
        return _error(413, f"body is larger than the limit of {limit} bytes")

    result = await request.app[INTAKE_KEY].receive(raw)
    status = _STATUS[result.outcome]
    if status != 200:
        return _error(status, result.reason or result.outcome, event_id=result.event_id)
    answer: dict[str, object] = {"ok": True, "media": result.media, "event_id": result.event_id}
    if result.duplicate:
        answer["duplicate"] = True
    return web.json_response(answer)


async def healthz(request: web.Request) -> web.Response:
    if not request.app[READY_KEY]():
        return web.json_response({"ok": False, "error": "workers are not running"}, status=503)
    return web.json_response({"ok": True})


async def metrics_text(request: web.Request) -> web.Response:
    # Counts only, but a tunnel makes them public; with a secret set, a scraper sends it
    # (Prometheus: `params: {secret: [...]}`). /healthz stays open for liveness probes.
    config = request.app[CONFIG_KEY]
    if config.server.secret and not _secret_matches(request, config.server.secret):
        logger.warning("metrics scrape from %s refused: missing or wrong secret", request.remote)
        return _error(401, "missing or wrong secret")
    body = await request.app[METRICS_KEY].exposition()
    return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE})


def _secret_matches(request: web.Request, secret: str) -> bool:
    given = request.headers.get(SECRET_HEADER) or request.query.get("secret") or ""
    # A constant-time comparison, so the answer's timing tells nothing of the secret.
    return hmac.compare_digest(given.encode(), secret.encode())


async def _read_bounded(request: web.Request, limit: int) -> bytes | None:
    """The whole body, or None as soon as it passes `limit` bytes."""
    body = bytearray()
    async for chunk in request.content.iter_any():
        body += chunk
        if len(body) > limit:
            return None
    return bytes(body)


def _error(status: int, message: str, **extra: object) -> web.Response:
    return web.json_response({"ok": False, "error": message, **extra}, status=status)
