"""`events`, `replay` and `send-test` against a running runtime, run as a person runs them."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest

from mediamon.core.config import Config, load_config
from mediamon.core.models import MediaKind, MediaStatus
from mediamon.core.store import MediaQuery
from mediamon.runtime import Runtime
from tests.conftest import INSTANCE, TOKEN, free_port, media_webhook, mediamon, post, wait_settled
from tests.fakes.cdn import FakeCdn
from tests.fakes.devloop import write_devloop_config
from tests.fakes.wapi import FakeWapi

SECRET = "hush-hush-42"


@pytest.fixture
def config_path(tmp_path: Path, wapi: FakeWapi, cdn: FakeCdn) -> Path:
    return write_devloop_config(
        tmp_path, wapi_url=wapi.url, cdn_url=cdn.url, port=free_port(),
        instances={INSTANCE: TOKEN}, secret=SECRET,
    )  # fmt: skip


@pytest.fixture
def loaded(config_path: Path) -> Config:
    return load_config(config_path)


@pytest.fixture
async def running(loaded: Config) -> AsyncIterator[Runtime]:
    async with Runtime(loaded) as runtime:
        yield runtime


async def _events(config_path: Path) -> list[dict[str, object]]:
    code, out, err = await mediamon("events", "--json", "--config", str(config_path))
    assert code == 0, err
    assert TOKEN not in out and SECRET not in out
    events: list[dict[str, object]] = json.loads(out)
    return events


async def test_events_list_what_arrived_and_replay_feeds_it_through_again(
    config_path: Path, running: Runtime, wapi: FakeWapi, http: aiohttp.ClientSession
) -> None:
    body = media_webhook(wapi, MediaKind.IMAGE)
    status, _ = await post(http, f"{running.url}?secret={SECRET}", body)
    assert status == 200
    await wait_settled(running, body["messageId"])

    [event] = await _events(config_path)
    assert event["event"] == "webhookReceived"
    assert event["instance_id"] == INSTANCE
    assert event["message_id"] == body["messageId"]
    assert (event["outcome"], event["reason"]) == ("accepted", None)
    assert event["body"] == body

    code, out, err = await mediamon("replay", str(event["id"]), "--config", str(config_path))

    assert (code, err) == (0, "")
    assert f"replaying event #{event['id']} (webhookReceived, message {body['messageId']})" in out
    assert "/webhook?secret=***" in out
    assert "HTTP 200 OK" in out and '"duplicate": true' in out
    assert SECRET not in out and TOKEN not in out
    newest, oldest = await _events(config_path)
    assert newest["id"] > oldest["id"] == event["id"]
    assert newest["body"] == body
    assert len(await running.store.list_media(MediaQuery())) == 1

    code, out, _ = await mediamon("events", "--limit", "1", "--config", str(config_path))
    header, row = out.splitlines()
    assert header.split() == ["ID", "RECEIVED", "EVENT", "INSTANCE", "MESSAGE", "OUTCOME", "REASON"]
    assert row.split()[0] == str(newest["id"])
    assert "accepted" in row


async def test_a_rejected_body_replays_as_rejected_and_unknown_ids_are_named(
    config_path: Path, running: Runtime, http: aiohttp.ClientSession
) -> None:
    status, _ = await post(http, f"{running.url}?secret={SECRET}", b"{not json")
    assert status == 400
    [event] = await _events(config_path)
    assert (event["outcome"], event["body"]) == ("rejected", "{not json")
    assert "not valid JSON" in str(event["reason"])

    code, out, _ = await mediamon("replay", str(event["id"]), "--config", str(config_path))
    assert code == 1
    assert "HTTP 400 Bad Request" in out and "not valid JSON" in out

    code, _, err = await mediamon("replay", "999", "--config", str(config_path))
    assert code == 1
    assert "no webhook event #999" in err


async def test_replay_and_send_test_without_a_server_say_to_start_one(
    config_path: Path, loaded: Config, http: aiohttp.ClientSession
) -> None:
    code, out, _ = await mediamon("events", "--config", str(config_path))
    assert (code, out) == (0, "no webhook events yet\n")

    async with Runtime(loaded) as runtime:
        await post(http, f"{runtime.url}?secret={SECRET}", {"event": "webhookReceived"})

    code, _, err = await mediamon("replay", "1", "--config", str(config_path))
    assert code == 1
    port = loaded.server.port
    expected = (
        f"no server answers at http://127.0.0.1:{port}/webhook?secret=***; start `mediamon serve`"
    )
    assert expected in err

    code, _, err = await mediamon("send-test", "--config", str(config_path))
    assert code == 1
    assert expected in err
    assert SECRET not in err


async def test_send_test_posts_a_sample_the_pipeline_accepts_for_every_kind(
    config_path: Path, running: Runtime
) -> None:
    for kind in MediaKind:
        code, out, err = await mediamon(
            "send-test", "--kind", kind.value, "--config", str(config_path)
        )

        assert (code, err) == (0, ""), out
        assert f"posting a sample {kind.value} webhook" in out
        assert f"for instance {INSTANCE} to http://127.0.0.1:" in out
        assert '"ok": true, "media": 1' in out
        assert "will fail unless a W-API simulator serves it" in out
        assert SECRET not in out and TOKEN not in out

    rows = await running.store.list_media(MediaQuery())
    assert sorted(row.kind for row in rows) == sorted(MediaKind)
    for row in rows:
        # The payload itself is sound: only fetching it can fail.
        assert row.sender_name == "mediamon send-test"
        assert row.status is not MediaStatus.FAILED or "payload" not in (row.last_error or "")
        assert row.expected_size == 24_000 and row.media_key and row.direct_path
