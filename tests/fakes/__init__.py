"""Loopback stand-ins for W-API and WhatsApp's CDN, so tests exercise real HTTP, not mocks.

Each fake is an aiohttp application served on 127.0.0.1 on a free port for the length of
an `async with` block. It records every request it answered, in order, and fails on demand
in the ways the real services are known to fail. Import the servers from their modules
(`tests.fakes.wapi`, `tests.fakes.cdn`); payload builders live in `tests.fakes.payloads`.

This module holds what the servers share: request records, queued failures and the
start/stop plumbing.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import AsyncIterator, Collection, Mapping
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Self

from aiohttp import web
from multidict import CIMultiDict, CIMultiDictProxy

log = logging.getLogger(__name__)

# Long enough for an answer already being written to finish, short enough that a test
# ending while a slow transfer still trickles does not wait on it.
_SHUTDOWN_TIMEOUT = 0.2


@dataclass(frozen=True, slots=True)
class RecordedRequest:
    """One request as a fake received it."""

    method: str
    path: str
    query: Mapping[str, str]
    headers: CIMultiDictProxy[str]
    body: bytes
    json: Any

    @property
    def origin(self) -> str | None:
        return self.headers.get("Origin")


@dataclass(slots=True)
class Failure:
    """A failure waiting to be served; `left` counts down, None means for ever."""

    mode: str
    left: int | None
    retry_after: float = 1.0


class FailurePlan:
    """Failures queued for coming requests, either for one key (a media key, a path) or any.

    A failure queued for a key is served before a global one; `always` applies only when
    nothing is queued, so a test can lay a one-off failure over a standing one.
    """

    def __init__(self, modes: Collection[str]) -> None:
        self._modes = frozenset(modes)
        self._by_key: dict[str | None, list[Failure]] = {}
        self._always: Failure | None = None

    def add(self, mode: str, times: int, key: str | None, retry_after: float) -> None:
        self._check(mode)
        if times < 1:
            raise ValueError(f"times must be at least 1, got {times}")
        self._by_key.setdefault(key, []).append(Failure(mode, times, retry_after))

    def always(self, mode: str | None, retry_after: float) -> None:
        if mode is not None:
            self._check(mode)
        self._always = None if mode is None else Failure(mode, None, retry_after)

    def take(self, key: str | None) -> Failure | None:
        """The failure the next request for `key` should meet, if any, counting it down."""
        for queue_key in (key, None):
            queue = self._by_key.get(queue_key)
            if queue:
                failure = queue[0]
                assert failure.left is not None
                failure.left -= 1
                if failure.left == 0:
                    queue.pop(0)
                return failure
        return self._always

    def _check(self, mode: str) -> None:
        if mode not in self._modes:
            raise ValueError(f"unknown failure mode {mode!r}; known: {sorted(self._modes)}")


class LoopbackServer:
    """Runs an aiohttp application on 127.0.0.1 inside the test's own event loop.

    Subclasses build the application; this class records requests, tracks how many file
    transfers overlap, and can hold transfers on an event until a test releases them.
    """

    def __init__(self) -> None:
        self.requests: list[RecordedRequest] = []
        self.hold_files: asyncio.Event | None = None
        """When set to an unset event, file transfers wait on it before sending a byte."""
        self.slow_interval = 0.2
        """Seconds between bytes in the "slow" failure mode."""
        self.files_in_flight = 0
        self.max_concurrent_files = 0
        self._runner: web.AppRunner | None = None
        self._url: str | None = None

    @property
    def url(self) -> str:
        if self._url is None:
            raise RuntimeError("the server is not running; use it in `async with`")
        return self._url

    def requests_to(self, path_prefix: str) -> list[RecordedRequest]:
        return [request for request in self.requests if request.path.startswith(path_prefix)]

    def build_app(self) -> web.Application:
        raise NotImplementedError

    async def __aenter__(self) -> Self:
        app = self.build_app()
        app.middlewares.append(self._record)
        runner = web.AppRunner(app, handle_signals=False, shutdown_timeout=_SHUTDOWN_TIMEOUT)
        await runner.setup()

        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        host, port = runner.addresses[0][:2]
        self._runner = runner
        self._url = f"http://{host}:{port}"
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        runner, self._runner = self._runner, None
        self._url = None
        if runner is not None:
            await runner.cleanup()

    @web.middleware
    async def _record(self, request: web.Request, handler: Any) -> web.StreamResponse:
        body = await request.read()
        self.requests.append(
            RecordedRequest(
                method=request.method,
                path=request.path,
                query=dict(request.query),
                headers=CIMultiDictProxy(CIMultiDict(request.headers)),
                body=body,
                json=_json_or_none(body),
            )
        )
        response: web.StreamResponse = await handler(request)
        return response

    @contextlib.asynccontextmanager
    async def file_transfer(self) -> AsyncIterator[None]:
        """Count a transfer as in flight, after waiting on `hold_files` if a test set it."""
        self.files_in_flight += 1
        self.max_concurrent_files = max(self.max_concurrent_files, self.files_in_flight)
        try:
            if self.hold_files is not None:
                await self.hold_files.wait()
            yield
        finally:
            self.files_in_flight -= 1

    async def trickle(
        self, request: web.Request, body: bytes, content_type: str
    ) -> web.StreamResponse:
        """Send `body` one byte at a time until it is done or the client hangs up."""
        response = web.StreamResponse(headers={"Content-Type": content_type})
        response.content_length = len(body)
        await response.prepare(request)
        try:
            for index in range(len(body)):
                await response.write(body[index : index + 1])
                await asyncio.sleep(self.slow_interval)
            await response.write_eof()
        except ConnectionError:
            # The client gave up, which is what a slow transfer is there to provoke.
            log.debug("client left a slow transfer of %s", request.path)
        return response


def _json_or_none(body: bytes) -> Any:
    try:
        return json.loads(body) if body else None
    except ValueError:
        return None


def flip_byte(data: bytes, index: int) -> bytes:
    """`data` with one bit of one byte changed; an empty input gains a byte instead."""
    if not data:
        return b"\x00"
    changed = bytearray(data)
    changed[index] ^= 0x01
    return bytes(changed)
