"""`mediamon send-test`: post one W-API-shaped media webhook to a running server.

It shows the path a real delivery takes, from the HTTP request to the database and
the download queue, without waiting for someone to send a photo. The sample is built
as W-API would send it: a media block with a fresh 32-byte mediaKey, hashes of a
file really encrypted with it, a directPath and an `oe` expiry. That file exists on
no server, though, so its download fails unless a simulator serves it; the output
says so, so the failure that follows surprises nobody.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import os
import secrets
import sys
import time
from typing import Any, Final, TextIO

import aiohttp

from mediamon.commands.webhook import ServerAnswer, WebhookUrl, post_webhook, server_webhook_url
from mediamon.core.config import Config
from mediamon.core.crypto import INFO_BY_KIND, encrypt_media
from mediamon.core.errors import MediamonError
from mediamon.core.models import MediaKind

SAMPLE_SIZE: Final = 24_000
SENDER_NAME: Final = "mediamon send-test"
# WhatsApp keeps media for about thirty days; `oe` in a media URL says until when.
_EXPIRY: Final = 30 * 24 * 3600

_MIMETYPES: Final = {
    MediaKind.IMAGE: "image/jpeg",
    MediaKind.VIDEO: "video/mp4",
    MediaKind.AUDIO: "audio/ogg; codecs=opus",
    MediaKind.DOCUMENT: "application/pdf",
    MediaKind.STICKER: "image/webp",
}


class SendTestError(MediamonError):
    title = "send-test"


def send_test(config: Config, *, kind: MediaKind, url: str | None, out: TextIO = sys.stdout) -> int:
    if not config.instances:
        raise SendTestError("the config lists no [[instances]]; the sample needs one")
    instance_id = config.instances[0].id
    target = server_webhook_url(config, url)
    body = sample_webhook(instance_id, kind)

    out.write(
        f"posting a sample {kind.value} webhook (message {body['messageId']}) "
        f"for instance {instance_id} to {target.shown}\n"
    )
    answer = asyncio.run(_post(target, json.dumps(body).encode()))
    out.write(f"HTTP {answer.status} {answer.reason}: {answer.text}\n")
    out.write(
        "note: the sample's media exists on no server, so its download will fail "
        "unless a W-API simulator serves it\n"
    )
    return 0 if answer.ok else 1


async def _post(target: WebhookUrl, body: bytes) -> ServerAnswer:
    async with aiohttp.ClientSession() as session:
        return await post_webhook(session, target, body)


def sample_webhook(instance_id: str, kind: MediaKind) -> dict[str, Any]:
    """A "webhookReceived" delivery of one media message, as W-API shapes it."""
    now = int(time.time())
    return {
        "event": "webhookReceived",
        "instanceId": instance_id,
        "connectedPhone": "5500000000000",
        "isGroup": False,
        "messageId": secrets.token_hex(16).upper(),
        "fromMe": False,
        "chat": {"id": "5500000000001", "profilePicture": ""},
        "sender": {
            "id": "5500000000001",
            "profilePicture": "",
            "pushName": SENDER_NAME,
            "verifiedBizName": "",
        },
        "moment": now,
        "msgContent": {f"{kind.value}Message": _media_block(kind, now)},
    }


def _media_block(kind: MediaKind, now: int) -> dict[str, Any]:
    plain = os.urandom(SAMPLE_SIZE)
    media_key = os.urandom(32)
    blob = encrypt_media(plain, media_key, INFO_BY_KIND[kind])
    direct_path = (
        f"/v/t62.7118-24/{secrets.token_hex(10)}_n.enc"
        f"?ccb=11-4&oh=01_{secrets.token_urlsafe(24)}&oe={now + _EXPIRY:X}&_nc_sid=5e03e0"
    )
    return {
        "url": f"https://mmg.whatsapp.net{direct_path}&mms3=true",
        "mimetype": _MIMETYPES[kind],
        "fileSha256": _b64(hashlib.sha256(plain).digest()),
        "fileLength": str(len(plain)),
        "mediaKey": _b64(media_key),
        "fileEncSha256": _b64(hashlib.sha256(blob).digest()),
        "directPath": direct_path,
        "mediaKeyTimestamp": str(now),
        **_kind_fields(kind),
    }


def _kind_fields(kind: MediaKind) -> dict[str, Any]:
    caption = "sent by mediamon send-test"
    if kind is MediaKind.IMAGE:
        return {
            "caption": caption,
            "height": 1280,
            "width": 720,
            "jpegThumbnail": _b64(os.urandom(48)),
        }
    if kind is MediaKind.VIDEO:
        return {"caption": caption, "seconds": 7, "gifPlayback": False, "height": 848, "width": 480}
    if kind is MediaKind.AUDIO:
        return {"seconds": 4, "ptt": True, "waveform": _b64(os.urandom(64))}
    if kind is MediaKind.DOCUMENT:
        return {
            "fileName": "mediamon-send-test.pdf",
            "title": "mediamon-send-test",
            "pageCount": 1,
            "caption": caption,
        }
    return {"height": 512, "width": 512, "isAnimated": False}


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")
