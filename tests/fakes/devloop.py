"""Loopback stand-ins for the developer loop: W-API's set-up calls and ngrok's agent API.

`FakeWapiSetup` answers `status-instance` and the two `update-webhook-*` calls the way
W-API does (bearer token per instance, HTTP 200 with `"error": true` on demand) and
remembers where each webhook points. `FakeNgrokAgent` serves `/api/tunnels` with the
tunnels a test lists. `write_devloop_config` writes a mediamon.toml pointing at them.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from aiohttp import web

from tests.fakes import LoopbackServer

PHONE = "5569900000000"


class FakeWapiSetup(LoopbackServer):
    """W-API for the instances in `tokens` (instance id -> bearer token)."""

    def __init__(self, tokens: dict[str, str]) -> None:
        super().__init__()
        self.tokens = dict(tokens)
        self.disconnected: set[str] = set()
        """Instances whose phone is not connected."""
        self.error_200: set[str] = set()
        """Instances for which every call answers HTTP 200 with `"error": true`."""
        self.webhooks: dict[tuple[str, str], str] = {}
        """(instance id, "received" or "delivery") -> the URL last set."""

    def build_app(self) -> web.Application:
        app = web.Application()
        app.router.add_get("/instance/status-instance", self._status)
        app.router.add_put("/webhook/update-webhook-{which}", self._update_webhook)
        return app

    async def _status(self, request: web.Request) -> web.Response:
        instance = request.query.get("instanceId", "")
        refusal = self._refusal(request, instance)
        if refusal is not None:
            return refusal
        return web.json_response(
            {
                "instanceId": instance,
                "connected": instance not in self.disconnected,
                "connectedPhone": "" if instance in self.disconnected else PHONE,
            }
        )

    async def _update_webhook(self, request: web.Request) -> web.Response:
        instance = request.query.get("instanceId", "")
        which = request.match_info["which"]
        if which not in ("received", "delivery"):
            return _error(404, f"no such webhook: {which}")
        refusal = self._refusal(request, instance)
        if refusal is not None:
            return refusal
        try:
            body = await request.json()
        except ValueError:
            body = None
        if not isinstance(body, dict) or not isinstance(body.get("value"), str):
            return _error(400, "value is required")
        self.webhooks[(instance, which)] = body["value"]
        return web.json_response({"error": False, "message": "Webhook atualizado com sucesso"})

    def _refusal(self, request: web.Request, instance: str) -> web.Response | None:
        token = self.tokens.get(instance)
        if token is None or request.headers.get("Authorization") != f"Bearer {token}":
            return _error(401, "invalid token for this instance")
        if instance in self.error_200:
            return _error(200, "Instância desconectada ou inexistente")
        return None


class FakeNgrokAgent(LoopbackServer):
    """ngrok's local agent API, listing `tunnels`; `broken` makes it answer non-JSON."""

    def __init__(self, tunnels: list[dict[str, Any]] | None = None) -> None:
        super().__init__()
        self.tunnels = list(tunnels or [])
        self.broken = False
        self.delay = 0.0

    def build_app(self) -> web.Application:
        app = web.Application()
        app.router.add_get("/api/tunnels", self._tunnels)
        return app

    async def _tunnels(self, request: web.Request) -> web.Response:
        if self.delay:
            await asyncio.sleep(self.delay)
        if self.broken:
            return web.Response(text="<html>ngrok</html>", content_type="text/html")
        return web.json_response({"tunnels": self.tunnels, "uri": "/api/tunnels"})


def tunnel(public_url: str, addr: str, proto: str | None = None) -> dict[str, Any]:
    """One entry of /api/tunnels as the agent lists it."""
    return {
        "name": "command_line" if public_url.startswith("https") else "command_line (http)",
        "uri": "/api/tunnels/command_line",
        "public_url": public_url,
        "proto": proto or public_url.split(":", 1)[0],
        "config": {"addr": addr, "inspect": True},
        "metrics": {},
    }


def write_devloop_config(
    folder: Path,
    *,
    wapi_url: str,
    port: int,
    instances: dict[str, str],
    secret: str = "",
    ngrok_url: str = "http://127.0.0.1:9",
    cdn_url: str = "http://127.0.0.1:9",
    mode: int = 0o600,
) -> Path:
    """A mediamon.toml for `instances` (id -> token), each with client "2"."""
    blocks = "".join(
        f'\n[[instances]]\nid = "{instance}"\ntoken = "{token}"\nclient = "2"\n'
        for instance, token in instances.items()
    )
    path = folder / "mediamon.toml"
    path.write_text(
        f"""
[server]
port = {port}
secret = "{secret}"

[wapi]
base_url = "{wapi_url}"
timeout = 2

[whatsapp]
cdn_base_url = "{cdn_url}"

[downloads]
backoff_initial = 0.05
backoff_max = 0.2
max_attempts = 2

[ngrok]
api_url = "{ngrok_url}"
{blocks}""",
        encoding="utf-8",
    )
    path.chmod(mode)
    return path


def _error(status: int, message: str) -> web.Response:
    return web.json_response({"error": True, "message": message}, status=status)
