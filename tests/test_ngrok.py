"""Finding our tunnel on ngrok's agent API, and finding none without a fuss."""

from __future__ import annotations

from collections.abc import AsyncIterator

import aiohttp
import pytest

from mediamon.core.ngrok import Tunnel, addr_port, find_tunnel
from tests.conftest import free_port
from tests.fakes.devloop import FakeNgrokAgent, tunnel

PORT = 8000


@pytest.fixture
async def agent() -> AsyncIterator[FakeNgrokAgent]:
    async with FakeNgrokAgent() as server:
        yield server


async def test_the_https_tunnel_is_preferred_over_its_http_twin(
    agent: FakeNgrokAgent, http: aiohttp.ClientSession
) -> None:
    agent.tunnels = [
        tunnel("http://d95211d2.ngrok.app", "http://localhost:8000"),
        tunnel("https://d95211d2.ngrok.app", "http://localhost:8000"),
    ]

    found = await find_tunnel(http, agent.url, PORT)

    assert found == Tunnel("https://d95211d2.ngrok.app", "http://localhost:8000", "https")
    assert [request.path for request in agent.requests] == ["/api/tunnels"]


@pytest.mark.parametrize(
    "addr",
    ["http://localhost:8000", "localhost:8000", "8000", "127.0.0.1:8000", "http://[::1]:8000"],
)
async def test_every_form_of_the_address_matches_our_port(
    agent: FakeNgrokAgent, http: aiohttp.ClientSession, addr: str
) -> None:
    agent.tunnels = [
        tunnel("https://other.ngrok.app", "http://localhost:9000"),
        tunnel("https://ours.ngrok.app", addr),
    ]

    found = await find_tunnel(http, agent.url, PORT)

    assert found is not None
    assert (found.public_url, found.addr) == ("https://ours.ngrok.app", addr)


async def test_tunnels_to_other_ports_or_hosts_are_ignored(
    agent: FakeNgrokAgent, http: aiohttp.ClientSession
) -> None:
    agent.tunnels = [
        tunnel("https://a.ngrok.app", "http://localhost:8001"),
        tunnel("https://b.ngrok.app", "80"),
        tunnel("https://c.ngrok.app", "192.0.2.7:8000"),
        tunnel("tcp://0.tcp.ngrok.io:12345", "localhost:8000", proto="tcp"),
    ]

    assert await find_tunnel(http, agent.url, PORT) is None
    assert (await find_tunnel(http, agent.url, 8001) or Tunnel("", "", "")).public_url == (
        "https://a.ngrok.app"
    )


async def test_no_agent_is_none(http: aiohttp.ClientSession) -> None:
    assert await find_tunnel(http, f"http://127.0.0.1:{free_port()}", PORT) is None


async def test_an_agent_answering_nonsense_or_too_slowly_is_none(
    agent: FakeNgrokAgent, http: aiohttp.ClientSession
) -> None:
    agent.tunnels = [tunnel("https://ours.ngrok.app", "8000")]
    agent.broken = True
    assert await find_tunnel(http, agent.url, PORT) is None

    agent.broken = False
    agent.delay = 1.0
    assert await find_tunnel(http, agent.url, PORT, timeout=0.1) is None


async def test_odd_entries_are_skipped(agent: FakeNgrokAgent, http: aiohttp.ClientSession) -> None:
    agent.tunnels = [
        "not a tunnel",  # type: ignore[list-item]
        {"public_url": "https://x.ngrok.app"},
        {"public_url": 7, "config": {"addr": "8000"}},
        tunnel("https://ours.ngrok.app", "8000"),
    ]

    found = await find_tunnel(http, agent.url, PORT)

    assert found is not None and found.public_url == "https://ours.ngrok.app"


@pytest.mark.parametrize(
    ("addr", "port"),
    [
        ("https://localhost", 443),
        ("http://localhost", 80),
        ("0.0.0.0:8000", 8000),
        ("localhost:99999", None),
        ("example.com:8000", None),
        ("", None),
    ],
)
def test_addr_port(addr: str, port: int | None) -> None:
    assert addr_port(addr) == port
