"""Run the webhook app inside an event loop someone else owns (ours, or Textual's)."""

from __future__ import annotations

import logging
import socket

from aiohttp import web

from mediamon.core.errors import MediamonError

logger = logging.getLogger(__name__)


class ServerStartError(MediamonError):
    title = "server"


class WebhookServer:
    """An aiohttp app on host:port, started and stopped without owning the loop."""

    def __init__(self, app: web.Application, host: str, port: int) -> None:
        self._runner = web.AppRunner(
            app, access_log=None, handle_signals=False, shutdown_timeout=2.0
        )
        self._host = host
        self._port = port
        self.port: int | None = None

    @property
    def url(self) -> str:
        host = f"[{self._host}]" if ":" in self._host else self._host
        return f"http://{host}:{self.port or self._port}"

    async def start(self) -> None:
        await self._runner.setup()
        site = web.TCPSite(self._runner, self._host, self._port)
        try:
            await site.start()
        except OSError as error:
            await self._runner.cleanup()
            raise ServerStartError(
                f"cannot listen on {self._host}:{self._port}: {error.strerror or error}; "
                "is another mediamon running? Change [server] port to use another"
            ) from error
        self.port = _bound_port(site) or self._port

    async def stop(self) -> None:
        await self._runner.cleanup()


def _bound_port(site: web.TCPSite) -> int | None:
    server = site._server  # aiohttp keeps the asyncio server private; port 0 needs it
    sockets: list[socket.socket] = list(getattr(server, "sockets", None) or [])
    return sockets[0].getsockname()[1] if sockets else None
