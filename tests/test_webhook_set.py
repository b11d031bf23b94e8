"""`mediamon webhook set`, run as a person runs it, against a loopback W-API and ngrok agent."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from mediamon.commands.webhook import server_webhook_url
from mediamon.core.config import parse_config
from mediamon.logs import hide_secrets
from tests.conftest import free_port, mediamon
from tests.fakes.devloop import FakeNgrokAgent, FakeWapiSetup, tunnel, write_devloop_config

FIRST, SECOND = "3B6XIW-ZTS923-GEAY6V", "9ZZ1AA-QWE123-LKJ0PO"
TOKENS = {FIRST: "token-first-abcdef", SECOND: "token-second-uvwxyz"}
SECRET = "hush-hush-42"


@pytest.fixture
async def setup_api() -> AsyncIterator[FakeWapiSetup]:
    async with FakeWapiSetup(TOKENS) as server:
        yield server


async def test_sets_both_webhooks_of_every_instance_with_the_secret_hidden(
    tmp_path: Path, setup_api: FakeWapiSetup
) -> None:
    config = write_devloop_config(
        tmp_path, wapi_url=setup_api.url, port=8000, instances=TOKENS, secret=SECRET
    )

    code, out, err = await mediamon(
        "webhook", "set", "--url", "https://hooks.example.com/", "--config", str(config)
    )

    assert (code, err) == (0, "")
    expected = f"https://hooks.example.com/webhook?secret={SECRET}"
    assert setup_api.webhooks == {
        (FIRST, "received"): expected,
        (FIRST, "delivery"): expected,
        (SECOND, "received"): expected,
        (SECOND, "delivery"): expected,
    }
    requests = sorted(setup_api.requests, key=lambda r: (r.query["instanceId"], r.path))
    assert [(r.method, r.path, r.query["instanceId"]) for r in requests] == [
        ("PUT", "/webhook/update-webhook-delivery", FIRST),
        ("PUT", "/webhook/update-webhook-received", FIRST),
        ("PUT", "/webhook/update-webhook-delivery", SECOND),
        ("PUT", "/webhook/update-webhook-received", SECOND),
    ]
    for request in requests:
        token = TOKENS[request.query["instanceId"]]
        assert request.headers["Authorization"] == f"Bearer {token}"
        assert request.json == {"value": expected}

    lines = out.splitlines()
    assert len(lines) == 4
    assert f"ok    received webhook of {FIRST} -> https://hooks.example.com/webhook?secret=***" in (
        lines
    )
    assert SECRET not in out
    assert all(token not in out for token in TOKENS.values())


async def test_one_named_instance_without_a_secret(
    tmp_path: Path, setup_api: FakeWapiSetup
) -> None:
    config = write_devloop_config(tmp_path, wapi_url=setup_api.url, port=8000, instances=TOKENS)

    code, out, _ = await mediamon(
        "webhook", "set", "--url", "https://hooks.example.com", "--instance", SECOND,
        "--config", str(config),
    )  # fmt: skip

    assert code == 0
    assert setup_api.webhooks == {
        (SECOND, "received"): "https://hooks.example.com/webhook",
        (SECOND, "delivery"): "https://hooks.example.com/webhook",
    }
    assert "secret" not in out


async def test_a_200_with_error_true_is_a_failure_naming_the_instance(
    tmp_path: Path, setup_api: FakeWapiSetup
) -> None:
    setup_api.error_200.add(SECOND)
    config = write_devloop_config(tmp_path, wapi_url=setup_api.url, port=8000, instances=TOKENS)

    code, out, _ = await mediamon(
        "webhook", "set", "--url", "https://hooks.example.com", "--config", str(config)
    )

    assert code == 1
    failures = [line for line in out.splitlines() if line.startswith("fail")]
    assert len(failures) == 2
    assert all(SECOND in line and '"error": true' in line for line in failures)
    assert "Instância desconectada" in failures[0]
    assert (FIRST, "received") in setup_api.webhooks
    assert "2 of 4 webhooks were not set" in out


async def test_a_rejected_token_fails(tmp_path: Path, setup_api: FakeWapiSetup) -> None:
    config = write_devloop_config(
        tmp_path, wapi_url=setup_api.url, port=8000, instances={FIRST: "wrong-token-value"}
    )

    code, out, _ = await mediamon(
        "webhook", "set", "--url", "https://h.example", "--config", str(config)
    )

    assert code == 1
    assert "refused the token (401)" in out
    assert "wrong-token-value" not in out


async def test_ngrok_uses_the_https_tunnel_to_our_port(
    tmp_path: Path, setup_api: FakeWapiSetup
) -> None:
    async with FakeNgrokAgent() as agent:
        agent.tunnels = [
            tunnel("https://elsewhere.ngrok.app", "localhost:3000"),
            tunnel("http://ours.ngrok.app", "http://localhost:8123"),
            tunnel("https://ours.ngrok.app", "http://localhost:8123"),
        ]
        config = write_devloop_config(
            tmp_path, wapi_url=setup_api.url, port=8123, instances={FIRST: TOKENS[FIRST]},
            ngrok_url=agent.url,
        )  # fmt: skip

        code, out, _ = await mediamon("webhook", "set", "--ngrok", "--config", str(config))

    assert code == 0
    assert set(setup_api.webhooks.values()) == {"https://ours.ngrok.app/webhook"}
    assert "-> https://ours.ngrok.app/webhook" in out


async def test_ngrok_without_an_agent_says_how_to_start_one(
    tmp_path: Path, setup_api: FakeWapiSetup
) -> None:
    config = write_devloop_config(
        tmp_path, wapi_url=setup_api.url, port=8123, instances=TOKENS,
        ngrok_url=f"http://127.0.0.1:{free_port()}",
    )  # fmt: skip

    code, _, err = await mediamon("webhook", "set", "--ngrok", "--config", str(config))

    assert code == 1
    assert "start one with `ngrok http 8123`" in err
    assert setup_api.requests == []


async def test_an_unknown_instance_is_named(tmp_path: Path, setup_api: FakeWapiSetup) -> None:
    config = write_devloop_config(tmp_path, wapi_url=setup_api.url, port=8000, instances=TOKENS)

    code, _, err = await mediamon(
        "webhook", "set", "--url", "https://h.example", "--instance", "NOPE",
        "--config", str(config),
    )  # fmt: skip

    assert code == 1
    assert "no instance NOPE in the config" in err
    assert FIRST in err
    assert len(err.strip().splitlines()) == 1
    assert setup_api.requests == []


@pytest.mark.parametrize(
    ("given", "url", "shown"),
    [
        (
            None,
            "http://127.0.0.1:8000/webhook?secret=a%2Fb%20c",
            "http://127.0.0.1:8000/webhook?secret=***",
        ),
        (
            "https://x.example/",
            "https://x.example/webhook?secret=a%2Fb%20c",
            "https://x.example/webhook?secret=***",
        ),
        (
            "https://x.example/webhook",
            "https://x.example/webhook?secret=a%2Fb%20c",
            "https://x.example/webhook?secret=***",
        ),
        (
            "https://x.example/webhook?secret=a%2Fb%20c&a=1",
            "https://x.example/webhook?secret=a%2Fb%20c&a=1",
            "https://x.example/webhook?secret=***&a=1",
        ),
    ],
)
def test_the_server_webhook_url_carries_the_secret_but_never_shows_it(
    tmp_path: Path, given: str | None, url: str, shown: str
) -> None:
    config = parse_config({"server": {"port": 8000, "secret": "a/b c"}}, tmp_path)

    target = server_webhook_url(config, given)

    assert (target.url, target.shown) == (url, shown)
    assert hide_secrets(f"at {target.url}: a/b c", config.secrets) == f"at {shown}: ***"
