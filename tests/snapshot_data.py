"""Known media at fixed times, for the monitor's snapshot tests."""

from __future__ import annotations

import hashlib
import json
from typing import Final

from mediamon.core.config import Config
from mediamon.core.layout import media_relpath
from mediamon.core.models import Attempt, MediaInfo, MediaKind, MediaStatus, WebhookEvent
from mediamon.core.sqlite_store import SQLiteStore
from mediamon.core.store import AttemptOutcome, WebhookDelivery
from tests.conftest import CLIENT, INSTANCE

BASE_TIME: Final = 1_768_471_200.0  # 2026-01-15 10:00:00 UTC

# (kind, sender, final status, error), oldest first.
ROWS: Final = (
    (MediaKind.IMAGE, "Maria", MediaStatus.DONE, None),
    (MediaKind.AUDIO, "João Pedro", MediaStatus.DONE, None),
    (MediaKind.DOCUMENT, "Ana Clara", MediaStatus.DONE, None),
    (MediaKind.STICKER, "Maria", MediaStatus.DONE, None),
    (MediaKind.AUDIO, "Luiz", MediaStatus.MISSING, "file deleted or moved away"),
    (
        MediaKind.DOCUMENT,
        "Fernanda",
        MediaStatus.FAILED,
        "gave up after 6 attempts: W-API 500: Falha ao fazer o download do conteúdo.",
    ),
    (MediaKind.IMAGE, "Paulo", MediaStatus.DONE, None),
    (MediaKind.VIDEO, "5569988887777", MediaStatus.FAILED, "expired on WhatsApp servers (404)"),
)
MIMETYPES: Final = {
    MediaKind.IMAGE: "image/jpeg",
    MediaKind.VIDEO: "video/mp4",
    MediaKind.AUDIO: "audio/ogg; codecs=opus",
    MediaKind.DOCUMENT: "application/pdf",
    MediaKind.STICKER: "image/webp",
}


async def fill(config: Config) -> None:
    store = await SQLiteStore.open(config.storage.database)
    try:
        for number, (kind, sender, status, error) in enumerate(ROWS, start=1):
            await _add(store, config, number, kind, sender, status, error)
    finally:
        await store.close()


async def _add(
    store: SQLiteStore,
    config: Config,
    number: int,
    kind: MediaKind,
    sender: str,
    status: MediaStatus,
    error: str | None,
) -> None:
    received = BASE_TIME + number * 61
    message_id = hashlib.md5(f"message {number}".encode()).hexdigest().upper()
    plain = f"media number {number}".encode() * 100
    named = sender if not sender.isdigit() else None
    event = WebhookEvent(
        "webhookReceived", INSTANCE, message_id, False, False, int(received),
        "5569911111111", "556991111" + f"{number:04d}", named,
        MediaInfo(
            kind, MIMETYPES[kind], "a2V5" * 11, "/v/t62/x.enc",
            hashlib.sha256(plain).hexdigest(), None, len(plain),
            file_name="Contrato.pdf" if kind is MediaKind.DOCUMENT else None,
        ),
    )  # fmt: skip
    body = json.dumps({"instanceId": INSTANCE, "messageId": message_id})
    delivery = WebhookDelivery(body, received, "accepted", None, event, CLIENT, MediaStatus.QUEUED)
    recorded = await store.record_webhook(delivery)
    assert recorded.media is not None
    media_id = recorded.media.id

    tries = [
        Attempt(media_id, n, "wapi", received + n, received + n + 0.4, "failed", 500,
                "W-API 500: Falha ao fazer o download do conteúdo.")
        for n in range(1, 3 if status is MediaStatus.FAILED else 1)
    ]  # fmt: skip
    relpath = media_relpath(
        client=CLIENT,
        instance_id=INSTANCE,
        kind=kind,
        message_id=message_id,
        mimetype=MIMETYPES[kind],
        file_name=event.media.file_name if event.media else None,
    ).as_posix()
    if status is MediaStatus.FAILED:
        outcome = AttemptOutcome(media_id, status, tries, error=error)
    else:
        path = config.storage.media_dir / relpath
        if status is MediaStatus.DONE:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(plain)
        tries.append(
            Attempt(media_id, 1, "cdn", received + 1, received + 2, "done", 200, None, len(plain))
        )
        outcome = AttemptOutcome(
            media_id, MediaStatus.DONE, tries, path=relpath,
            sha256=hashlib.sha256(plain).hexdigest(), size=len(plain), source="cdn",
        )  # fmt: skip
    await store.finish_attempt(outcome)
    if status is MediaStatus.MISSING:
        await store.mark_missing({media_id: error or ""})
