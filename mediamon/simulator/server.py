"""W-API and WhatsApp's CDN on one loopback port, speaking their real HTTP.

`Simulator` is an aiohttp app started with AppRunner/TCPSite inside whatever event loop
is running (the demo's, Textual's, a test's). Point mediamon's `[wapi] base_url` at
`sim.url` and `[whatsapp] cdn_base_url` at `sim.cdn_url`:

- `POST /message/download-media` answers with a short-lived `fileLink` to the plain
  file, or misbehaves the way the catalog planned for that file (see `catalog`);
- `GET /media/file/<name>` serves those links;
- `GET /cdn/<directPath>` serves the encrypted blob, 404 once "expired";
- `GET /instance/status-instance` and `PUT /webhook/update-webhook-{received,delivery}`
  answer as W-API does, and the webhook URLs are remembered in `webhook_urls`.

Every W-API call needs `?instanceId=` and that instance's bearer token; the CDN wants
only the `Origin: https://web.whatsapp.com` header that mediamon sends it (403 without).
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import collections
import random
import secrets
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

from aiohttp import web

from mediamon.core.layout import extension_for
from mediamon.core.lifecycle import Lifecycle
from mediamon.simulator.catalog import DEFAULT_FAILURES, Failure, HostedMedia, MediaCatalog
from mediamon.simulator.media import MediaFile
from mediamon.simulator.people import instance_id, phone_number

DOWNLOAD_FAILED: Final = {
    "error": True,
    "message": {
        "error": False,
        "data": {"error": True, "message": "Falha ao fazer o download do conteúdo."},
    },
}
"""W-API's answer, with HTTP 500, when it could not fetch a media, word for word."""

REQUIRED_FIELDS: Final = ("mediaKey", "directPath", "type", "mimetype")
MEDIA_TYPES: Final = frozenset({"image", "video", "audio", "document"})
CDN_ORIGIN: Final = "https://web.whatsapp.com"
WEBHOOK_KINDS: Final = ("received", "delivery")

_REFUSED: Final = {"error": True, "message": "Instância não encontrada ou token inválido"}
_SLOW_PIECES: Final = 10


@dataclass(frozen=True, slots=True)
class SimulatedInstance:
    """A W-API instance: a connected WhatsApp number and the token that guards it."""

    id: str
    token: str = field(repr=False)
    phone: str

    @classmethod
    def made_up(cls, rng: random.Random) -> SimulatedInstance:
        return cls(instance_id(rng), secrets.token_urlsafe(24), phone_number(rng))


@dataclass(frozen=True, slots=True)
class _Link:
    media: HostedMedia
    expires: int
    slow: bool


class Simulator(Lifecycle):
    """W-API and the CDN for `instances`; `async with Simulator(...) as sim:` runs it."""

    def __init__(
        self,
        instances: Sequence[SimulatedInstance],
        *,
        seed: int = 0,
        failure_rate: float = 0.3,
        expired_rate: float = 0.05,
        failures: Mapping[Failure, float] = DEFAULT_FAILURES,
        host: str = "127.0.0.1",
        port: int = 0,
        slow_seconds: float = 2.0,
        retry_after: int = 2,
        link_lifetime: int = 300,
    ) -> None:
        self.instances = {instance.id: instance for instance in instances}
        self.catalog = MediaCatalog(
            random.Random(seed),
            failure_rate=failure_rate,
            expired_rate=expired_rate,
            failures=failures,
        )
        self.webhook_urls: dict[str, dict[str, str]] = {}
        """Per instance id, the URL set for "received" and for "delivery" webhooks."""
        self.requests: collections.Counter[str] = collections.Counter()
        """How each endpoint answered, e.g. "download-media 500" or "cdn 404"."""
        self.slow_seconds = slow_seconds
        self.retry_after = retry_after
        self.link_lifetime = link_lifetime
        self._links: collections.OrderedDict[str, _Link] = collections.OrderedDict()
        self._host = host
        self._port = port
        self._runner: web.AppRunner | None = None
        self._url: str | None = None

    @property
    def url(self) -> str:
        """W-API's base URL, e.g. http://127.0.0.1:41234."""
        if self._url is None:
            raise RuntimeError("the simulator is not started")
        return self._url

    @property
    def cdn_url(self) -> str:
        """The CDN's base URL: a media's address is this plus its directPath."""
        return f"{self.url}/cdn"

    def host_media(self, file: MediaFile) -> HostedMedia:
        """Put a file on the simulated servers, ready to be named in a webhook."""
        return self.catalog.add(file)

    async def start(self) -> None:
        app = web.Application()
        app.router.add_post("/message/download-media", self._download_media)
        app.router.add_get("/media/file/{name}", self._file_link)
        app.router.add_get("/cdn/{path:.+}", self._cdn_blob)
        app.router.add_get("/instance/status-instance", self._status_instance)
        for kind in WEBHOOK_KINDS:
            app.router.add_put(f"/webhook/update-webhook-{kind}", self._update_webhook)

        runner = web.AppRunner(app, access_log=None, handle_signals=False, shutdown_timeout=1.0)
        await runner.setup()
        try:
            await web.TCPSite(runner, self._host, self._port).start()
        except OSError:
            await runner.cleanup()
            raise
        self._runner = runner
        bound_host, bound_port = runner.addresses[0][:2]
        host = f"[{bound_host}]" if ":" in bound_host else bound_host
        self._url = f"http://{host}:{bound_port}"

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
        self._runner = None

    # The endpoints.

    async def _download_media(self, request: web.Request) -> web.StreamResponse:
        if self._authorised(request) is None:
            return self._answer("download-media 401", 401, _REFUSED)
        body = await _json_object(request)
        missing = [name for name in REQUIRED_FIELDS if not _filled(body.get(name))]
        if missing:
            message = "Campos obrigatórios ausentes: " + ", ".join(missing)
            return self._answer("download-media 400", 400, {"error": True, "message": message})
        if body["type"] not in MEDIA_TYPES:
            message = "type deve ser image, video, audio ou document"
            return self._answer("download-media 400", 400, {"error": True, "message": message})

        media = self.catalog.find(body["directPath"])
        if media is None or media.expired or _key(body["mediaKey"]) != media.media_key:
            return self._answer("download-media 500", 500, DOWNLOAD_FAILED)

        failure = media.wapi_trouble.pop(0) if media.wapi_trouble else None
        if failure is Failure.SERVER_ERROR:
            return self._answer("download-media 500", 500, DOWNLOAD_FAILED)
        if failure is Failure.ERROR_FLAG:
            message = "Não foi possível obter a mídia, tente novamente."
            return self._answer(
                "download-media 200 error", 200, {"error": True, "message": message}
            )
        if failure is Failure.RATE_LIMITED:
            return self._answer(
                "download-media 429",
                429,
                {"error": True, "message": "Limite de requisições atingido, aguarde."},
                headers={"Retry-After": str(self.retry_after)},
            )

        link, expires = self._new_link(media, slow=failure is Failure.SLOW_BODY)
        answer = {"error": False, "fileLink": link, "expires": expires}
        return self._answer("download-media 200", 200, answer)

    async def _file_link(self, request: web.Request) -> web.StreamResponse:
        link = self._links.get(request.match_info["name"])
        if link is None or link.expires < time.time():
            message = "Arquivo não encontrado ou link expirado"
            return self._answer("file-link 404", 404, {"error": True, "message": message})
        data = link.media.file.data
        headers = {"Content-Type": link.media.file.mimetype}
        if not link.slow:
            self.requests["file-link 200"] += 1
            return web.Response(body=data, headers=headers)

        self.requests["file-link 200 slow"] += 1
        response = web.StreamResponse(headers=headers)
        response.content_length = len(data)
        await response.prepare(request)
        step = -(-len(data) // _SLOW_PIECES)
        for start in range(0, len(data), step):
            await response.write(data[start : start + step])
            await asyncio.sleep(self.slow_seconds / _SLOW_PIECES)
        await response.write_eof()
        return response

    async def _cdn_blob(self, request: web.Request) -> web.StreamResponse:
        if request.headers.get("Origin") != CDN_ORIGIN:
            self.requests["cdn 403"] += 1
            return web.Response(status=403, text="Forbidden")
        media = self.catalog.find("/" + request.match_info["path"])
        if media is None or media.expired:
            self.requests["cdn 404"] += 1
            return web.Response(status=404, text="Not Found")
        if media.cdn_trouble > 0:
            media.cdn_trouble -= 1
            self.requests["cdn 503"] += 1
            return web.Response(status=503, text="Service Unavailable")
        self.requests["cdn 200"] += 1
        return web.Response(body=media.encrypted, content_type="application/octet-stream")

    async def _status_instance(self, request: web.Request) -> web.StreamResponse:
        instance = self._authorised(request)
        if instance is None:
            return self._answer("status-instance 401", 401, _REFUSED)
        answer = {"instanceId": instance.id, "connected": True, "connectedPhone": instance.phone}
        return self._answer("status-instance 200", 200, answer)

    async def _update_webhook(self, request: web.Request) -> web.StreamResponse:
        endpoint = request.path.rsplit("/", 1)[-1]
        instance = self._authorised(request)
        if instance is None:
            return self._answer(f"{endpoint} 401", 401, _REFUSED)
        value = (await _json_object(request)).get("value")
        if not isinstance(value, str) or not value.startswith(("http://", "https://")):
            message = "value deve ser a URL http(s) do webhook"
            return self._answer(f"{endpoint} 400", 400, {"error": True, "message": message})
        kind = endpoint.removeprefix("update-webhook-")
        self.webhook_urls.setdefault(instance.id, {})[kind] = value
        return self._answer(f"{endpoint} 200", 200, {"error": False})

    def _answer(
        self,
        label: str,
        status: int,
        body: Mapping[str, Any],
        headers: Mapping[str, str] | None = None,
    ) -> web.Response:
        self.requests[label] += 1
        return web.json_response(dict(body), status=status, headers=headers)

    def _authorised(self, request: web.Request) -> SimulatedInstance | None:
        instance = self.instances.get(request.query.get("instanceId", ""))
        given = request.headers.get("Authorization", "")
        if instance is None or not secrets.compare_digest(given, f"Bearer {instance.token}"):
            return None
        return instance

    def _new_link(self, media: HostedMedia, slow: bool) -> tuple[str, int]:
        now = int(time.time())
        # Links are made in expiry order, so the stale ones are all at the front.
        while self._links and next(iter(self._links.values())).expires < now:
            self._links.popitem(last=False)
        name = secrets.token_hex(16) + extension_for(media.file.mimetype)
        expires = now + self.link_lifetime
        self._links[name] = _Link(media, expires, slow)
        return f"{self.url}/media/file/{name}", expires


def _filled(value: object) -> bool:
    return isinstance(value, str) and bool(value.strip())


async def _json_object(request: web.Request) -> dict[str, Any]:
    """The body as a JSON object; anything else reads as an empty one."""
    try:
        body = await request.json()
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {}


def _key(text: str) -> bytes | None:
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        return None
