"""`mediamon doctor` as a person runs it: a real config file, loopback W-API, server and ngrok."""

from __future__ import annotations

import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from mediamon.core.config import load_config
from mediamon.core.sqlite_store import SCHEMA_VERSION
from mediamon.runtime import Runtime
from tests.conftest import free_port, mediamon
from tests.fakes.devloop import PHONE, FakeNgrokAgent, FakeWapiSetup, tunnel, write_devloop_config

FIRST, SECOND = "3B6XIW-ZTS923-GEAY6V", "9ZZ1AA-QWE123-LKJ0PO"
TOKENS = {FIRST: "token-first-abcdef", SECOND: "token-second-uvwxyz"}


@pytest.fixture
async def setup_api() -> AsyncIterator[FakeWapiSetup]:
    async with FakeWapiSetup(TOKENS) as server:
        yield server


def _levels(out: str) -> dict[str, list[str]]:
    found: dict[str, list[str]] = {"ok": [], "warn": [], "fail": []}
    for line in out.splitlines()[:-1]:
        level, _, text = line.partition(" ")
        found[level].append(text.strip())
    return found


async def test_all_ok_with_a_healthy_wapi_a_running_server_and_a_tunnel(
    tmp_path: Path, setup_api: FakeWapiSetup
) -> None:
    port = free_port()
    async with FakeNgrokAgent() as agent:
        agent.tunnels = [tunnel("https://abc.ngrok.app", f"http://localhost:{port}")]
        path = write_devloop_config(
            tmp_path, wapi_url=setup_api.url, port=port, instances=TOKENS, secret="s3cret",
            ngrok_url=agent.url,
        )  # fmt: skip
        async with Runtime(load_config(path)):
            code, out, err = await mediamon("doctor", "--config", str(path))

    levels = _levels(out)
    assert (code, err, levels["warn"], levels["fail"]) == (0, "", [], []), out
    text = "\n".join(levels["ok"])
    assert f"config {path} loads: 2 instance(s)" in text
    assert "private to you (mode 0600)" in text
    assert "is writable;" in text and "free" in text
    assert "integrity check ok" in text
    assert f"schema version {SCHEMA_VERSION} is current" in text
    assert f"instance {FIRST}: token accepted, connected as {PHONE}" in text
    assert f"instance {SECOND}: token accepted" in text
    assert f"a mediamon server answers at http://127.0.0.1:{port}/healthz" in text
    assert f"ngrok tunnel https://abc.ngrok.app -> http://localhost:{port}" in text
    assert out.splitlines()[-1] == f"doctor: {len(levels['ok'])} ok, 0 warn, 0 fail"
    assert all(token not in out for token in TOKENS.values())
    assert "s3cret" not in out
    statuses = setup_api.requests_to("/instance/status-instance")
    assert {(r.query["instanceId"], r.headers["Authorization"]) for r in statuses} == {
        (instance, f"Bearer {token}") for instance, token in TOKENS.items()
    }


async def test_a_rejected_token_fails_naming_the_instance(
    tmp_path: Path, setup_api: FakeWapiSetup
) -> None:
    instances = {FIRST: TOKENS[FIRST], SECOND: "a-stale-token-000"}
    path = write_devloop_config(
        tmp_path, wapi_url=setup_api.url, port=free_port(), instances=instances
    )

    code, out, _ = await mediamon("doctor", "--config", str(path))

    levels = _levels(out)
    assert code == 1
    assert len(levels["fail"]) == 1
    assert levels["fail"][0].startswith(f"instance {SECOND}: W-API refused its token (HTTP 401")
    assert any(line.startswith(f"instance {FIRST}: token accepted") for line in levels["ok"])
    # Without a server or an agent, doctor warns and goes on.
    assert any(line.startswith("no server answers at") for line in levels["warn"])
    assert any(line.startswith("no ngrok agent with a tunnel") for line in levels["warn"])
    assert "a-stale-token-000" not in out and TOKENS[FIRST] not in out


async def test_a_200_with_error_true_is_a_failure(tmp_path: Path, setup_api: FakeWapiSetup) -> None:
    setup_api.error_200.add(FIRST)
    path = write_devloop_config(
        tmp_path, wapi_url=setup_api.url, port=free_port(), instances=TOKENS
    )

    code, out, _ = await mediamon("doctor", "--config", str(path))

    assert code == 1
    assert [line for line in _levels(out)["fail"] if FIRST in line] == [
        f'instance {FIRST}: W-API refused its token ("error": true: '
        "Instância desconectada ou inexistente); check its token in the config"
    ]


async def test_a_config_others_can_read_and_a_disconnected_phone_are_warnings(
    tmp_path: Path, setup_api: FakeWapiSetup
) -> None:
    setup_api.disconnected.add(SECOND)
    path = write_devloop_config(
        tmp_path, wapi_url=setup_api.url, port=free_port(), instances=TOKENS, mode=0o644
    )

    code, out, _ = await mediamon("doctor", "--config", str(path))

    warnings = _levels(out)["warn"]
    assert code == 0
    assert f"config holds tokens but others can read it (mode 0644); run: chmod 600 {path}" in (
        warnings
    )
    assert any(
        line.startswith(f"instance {SECOND}: token accepted, but no phone") for line in warnings
    )


async def test_an_unreachable_wapi_a_newer_database_and_a_bad_config(tmp_path: Path) -> None:
    path = write_devloop_config(
        tmp_path, wapi_url=f"http://127.0.0.1:{free_port()}", port=free_port(),
        instances={FIRST: TOKENS[FIRST]},
    )  # fmt: skip
    with sqlite3.connect(tmp_path / "mediamon.db") as conn:
        conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")

    code, out, _ = await mediamon("doctor", "--config", str(path))

    failures = _levels(out)["fail"]
    assert code == 1
    assert f"instance {FIRST}: cannot reach W-API at http://127.0.0.1:" in failures[-1]
    assert failures[-1].endswith("Connection refused")
    assert "newer than this mediamon knows" in failures[0]

    path.write_text("[server]\nprot = 1\n")
    code, out, _ = await mediamon("doctor", "--config", str(path))
    assert code == 1
    assert out.startswith("fail  config: ") and "prot" in out
