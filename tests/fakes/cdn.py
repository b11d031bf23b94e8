"""WhatsApp's media CDN: serves each registered file's encrypted blob at its directPath.

Like the real one it asks for no credentials. It does want the signed query of the
directPath (`oh`, `oe` and the rest) kept as it was, and answers 403 otherwise, so a client
that mangles the URL finds out here. Expiry shows up as 404 or 410 through `fail`.
"""

from __future__ import annotations

from typing import Final

from aiohttp import web

from tests.fakes import FailurePlan, LoopbackServer, flip_byte
from tests.fakes.registry import MediaRegistry, StoredMedia

CDN_MODES: Final = frozenset({"404", "410", "500", "bad-mac", "wrong-bytes", "slow"})
_STATUS_MODES: Final = {"404": 404, "410": 410, "500": 500}


class FakeCdn(LoopbackServer):
    """The CDN for the media in `registry` (usually `wapi.registry`)."""

    def __init__(self, registry: MediaRegistry) -> None:
        super().__init__()
        self.registry = registry
        self._failures = FailurePlan(CDN_MODES)

    def fail(self, mode: str, times: int = 1, direct_path: str | None = None) -> None:
        """Fail the next `times` fetches, of one directPath or of any."""
        key = None if direct_path is None else _path_only(direct_path)
        self._failures.add(mode, times, key, retry_after=0)

    def always(self, mode: str | None) -> None:
        """Fail every fetch in `mode` from now on; None puts things right again."""
        self._failures.always(mode, retry_after=0)

    def url_for(self, media_block: dict[str, str]) -> str:
        """Where a client should fetch the block's file from this CDN."""
        return f"{self.url}{media_block['directPath']}"

    def build_app(self) -> web.Application:
        app = web.Application()
        app.router.add_get("/{path:.*}", self._blob)
        return app

    async def _blob(self, request: web.Request) -> web.StreamResponse:
        media = self.registry.by_path(request.path)
        if media is None:
            return web.Response(status=404, text="Not Found")
        if not _signed_query_kept(media, request):
            return web.Response(status=403, text="URL signature mismatch")

        failure = self._failures.take(media.path)
        mode = failure.mode if failure else None
        if mode in _STATUS_MODES:
            return web.Response(status=_STATUS_MODES[mode], text=f"failure injected: {mode}")

        async with self.file_transfer():
            if mode == "slow":
                return await self.trickle(request, media.blob, "application/octet-stream")
            body = media.blob
            if mode == "bad-mac":
                body = flip_byte(body, -1)
            elif mode == "wrong-bytes":
                body = flip_byte(body, 0)
            return web.Response(body=body, content_type="application/octet-stream")


def _signed_query_kept(media: StoredMedia, request: web.Request) -> bool:
    return all(request.query.get(name) == value for name, value in media.query.items())


def _path_only(direct_path: str) -> str:
    return direct_path.split("?", 1)[0]
