"""Finding the ngrok tunnel that forwards to our webhook server.

A developer runs `ngrok http 8000` beside `mediamon serve` so that W-API, on the
internet, can reach a server on their laptop. The ngrok agent lists its tunnels on a
local API (`GET /api/tunnels`); this module picks the one whose upstream address is
our port. Its one guarantee is that it never raises for an agent that is absent,
slow or odd: all of those mean "no tunnel", because callers (the TUI's status line,
`doctor`) ask routinely and most of the time no agent runs.
"""

from __future__ import annotations

import ipaddress
import logging
from dataclasses import dataclass
from typing import Any, Final
from urllib.parse import urlsplit

import aiohttp

logger = logging.getLogger(__name__)

_LOCAL_NAMES: Final = frozenset({"localhost", "localhost.localdomain"})
_DEFAULT_PORTS: Final = {"http": 80, "https": 443}


@dataclass(frozen=True, slots=True)
class Tunnel:
    """One ngrok tunnel: the public URL W-API can post to and where it forwards."""

    public_url: str
    addr: str
    proto: str


async def find_tunnel(
    session: aiohttp.ClientSession, api_url: str, port: int, timeout: float = 1.0
) -> Tunnel | None:
    """The tunnel forwarding to `port` on this machine, https preferred; None if there is none.

    Args:
        session: any client session; the request carries its own timeout.
        api_url: the agent's API, e.g. "http://127.0.0.1:4040" (`[ngrok] api_url`).
        port: our server's port.
        timeout: seconds for the whole request.
    """
    listed = await _list_tunnels(session, api_url, timeout)
    ours = [tunnel for tunnel in listed if addr_port(tunnel.addr) == port]
    # Older agents list an http twin of every https tunnel; W-API should use https.
    ours.sort(key=lambda tunnel: tunnel.proto != "https")
    return ours[0] if ours else None


def addr_port(addr: str) -> int | None:
    """The local port an ngrok upstream address points at, or None if not this machine.

    ngrok accepts "8000", "localhost:8000", "127.0.0.1:8000", "http://localhost:8000"
    and "http://[::1]:8000" for the same thing. An address on another host never
    matches, even with our port number: that tunnel feeds someone else's server.
    """
    addr = addr.strip()
    if addr.isdigit():
        return int(addr)
    parts = urlsplit(addr if "://" in addr else f"http://{addr}")
    try:
        explicit = parts.port
    except ValueError:
        return None
    if not _is_this_machine(parts.hostname):
        return None
    return explicit if explicit is not None else _DEFAULT_PORTS.get(parts.scheme)


def _is_this_machine(host: str | None) -> bool:
    if host is None:
        return False
    if host.lower() in _LOCAL_NAMES:
        return True
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return False
    return address.is_loopback or address.is_unspecified


async def _list_tunnels(
    session: aiohttp.ClientSession, api_url: str, timeout: float
) -> list[Tunnel]:
    url = f"{api_url.rstrip('/')}/api/tunnels"
    try:
        async with session.get(url, timeout=aiohttp.ClientTimeout(total=timeout)) as response:
            if response.status != 200:
                logger.debug("ngrok agent at %s answered %d", url, response.status)
                return []
            answer = await response.json(content_type=None)
    except (aiohttp.ClientError, TimeoutError, ValueError, UnicodeDecodeError) as error:
        logger.debug("no ngrok agent at %s: %s", url, str(error) or type(error).__name__)
        return []
    entries = answer.get("tunnels") if isinstance(answer, dict) else None
    if not isinstance(entries, list):
        return []
    return [tunnel for entry in entries if (tunnel := _tunnel(entry)) is not None]


def _tunnel(entry: Any) -> Tunnel | None:
    if not isinstance(entry, dict):
        return None
    public_url, proto = entry.get("public_url"), entry.get("proto")
    config = entry.get("config")
    addr = config.get("addr") if isinstance(config, dict) else None
    if not isinstance(public_url, str) or not isinstance(addr, str):
        return None
    if not public_url.startswith(("http://", "https://")):
        return None  # a tcp:// or tls:// tunnel cannot carry W-API's webhooks
    if not isinstance(proto, str):
        proto = urlsplit(public_url).scheme
    return Tunnel(public_url=public_url.rstrip("/"), addr=addr, proto=proto)
