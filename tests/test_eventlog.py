"""The event log: a line per event, but a flood of routine lines is counted, not written."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable

import pytest

from mediamon.core import eventlog
from mediamon.core.eventlog import ROUTINE_LINES_PER_SECOND, log_events
from mediamon.core.events import EventBus, MediaQueued, WebhookReceived
from mediamon.core.models import MediaKind, MediaRecord, MediaStatus
from tests.conftest import CLIENT, INSTANCE, wait_for


def _queued(number: int) -> MediaQueued:
    media = MediaRecord(
        id=number,
        instance_id=INSTANCE,
        client=CLIENT,
        message_id=f"3EB0{number:08d}",
        event_id=number,
        from_me=False,
        chat_id="5569911111111",
        sender_id="5569922222222",
        sender_name="Maria",
        kind=MediaKind.IMAGE,
        mimetype="image/jpeg",
        caption=None,
        file_name=None,
        expected_size=100,
        expected_sha256=None,
        expected_enc_sha256=None,
        media_key="a2V5",
        direct_path="/v/t62/x.enc",
        status=MediaStatus.QUEUED,
        attempts=0,
        last_error=None,
        next_attempt_at=0.0,
        path=None,
        stored_sha256=None,
        stored_size=None,
        source=None,
        received_at=0.0,
        updated_at=0.0,
    )
    return MediaQueued(media)


async def _log_until(
    bus: EventBus,
    caplog: pytest.LogCaptureFixture,
    publish: int,
    refused: int,
    done: Callable[[list[str]], bool],
) -> None:
    """Publish a burst, then wait until the lines logged so far satisfy `done`."""
    task = asyncio.create_task(log_events(bus.subscribe()))
    await asyncio.sleep(0)
    for number in range(publish):
        bus.publish(_queued(number))
    for number in range(refused):
        bus.publish(WebhookReceived(number, "x", None, "refused", "instance X is not listed"))

    async def logged() -> bool:
        return done([record.getMessage() for record in caplog.records])

    try:
        await wait_for(logged, timeout=5)
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


def _routine(lines: list[str]) -> list[str]:
    return [line for line in lines if line.startswith("<-- image")]


def _summarised(lines: list[str]) -> bool:
    return any("not shown" in line for line in lines)


async def test_a_burst_writes_the_first_lines_and_counts_the_rest(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger=eventlog.__name__)
    await _log_until(EventBus(), caplog, publish=500, refused=3, done=_summarised)

    lines = [record.getMessage() for record in caplog.records]
    routine = _routine(lines)
    warnings = [record for record in caplog.records if record.levelno == logging.WARNING]
    summaries = [line for line in lines if "not shown" in line]

    assert len(routine) == ROUTINE_LINES_PER_SECOND
    assert len(warnings) == 3, "warnings are never held back"
    # The count comes when the second ends, without waiting for the next event.
    assert summaries == [
        f"..  {500 - ROUTINE_LINES_PER_SECOND} more routine lines in the last second "
        "not shown (mediamon events and mediamon list have every one)"
    ]


async def test_a_quiet_stream_is_written_in_full(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger=eventlog.__name__)

    def all_ten(lines: list[str]) -> bool:
        return len(_routine(lines)) == 10

    await _log_until(EventBus(), caplog, publish=10, refused=0, done=all_ten)

    lines = [record.getMessage() for record in caplog.records]
    assert len(_routine(lines)) == 10
    assert not _summarised(lines)
