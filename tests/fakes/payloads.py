"""Builders for W-API webhook bodies in the shapes W-API really sends.

Everything here returns plain dicts ready for `json=`; nothing is validated on the way,
so a test can build a malformed delivery by editing what it gets back.
"""

from __future__ import annotations

import random
import secrets
import time
from collections.abc import Mapping, Sequence
from typing import Any

from mediamon.core.models import MediaKind

MESSAGE_KEY_BY_KIND: dict[MediaKind, str] = {
    MediaKind.IMAGE: "imageMessage",
    MediaKind.VIDEO: "videoMessage",
    MediaKind.AUDIO: "audioMessage",
    MediaKind.DOCUMENT: "documentMessage",
    MediaKind.STICKER: "stickerMessage",
}

WRAPPERS: tuple[str, ...] = (
    "ephemeralMessage",
    "viewOnceMessage",
    "viewOnceMessageV2",
    "viewOnceMessageV2Extension",
    "documentWithCaptionMessage",
)

CONNECTED_PHONE = "5569900000000"
_PROFILE_PICTURE = "https://pps.whatsapp.net/v/t61.24694-24/000000000_n.jpg"


def webhook(
    instance_id: str,
    msg_content: Mapping[str, Any],
    *,
    message_id: str | None = None,
    event: str = "webhookReceived",
    from_me: bool = False,
    is_group: bool = False,
    chat_id: str = "5569911111111",
    sender_id: str | None = None,
    push_name: str = "Maria",
    moment: int | None = None,
) -> dict[str, Any]:
    """A whole delivery. `sender_id` defaults to the chat id, as in a one-to-one chat."""
    return {
        "event": event,
        "instanceId": instance_id,
        "connectedPhone": CONNECTED_PHONE,
        "isGroup": is_group,
        "messageId": message_id or secrets.token_hex(16).upper(),
        "fromMe": from_me,
        "chat": {"id": chat_id, "profilePicture": _PROFILE_PICTURE},
        "sender": {
            "id": sender_id or chat_id,
            "profilePicture": _PROFILE_PICTURE,
            "pushName": push_name,
            "verifiedBizName": "",
        },
        "moment": int(time.time()) if moment is None else moment,
        "msgContent": dict(msg_content),
    }


def media_message(
    kind: MediaKind, media_block: Mapping[str, Any], *, wrappers: Sequence[str] = ()
) -> dict[str, Any]:
    """msgContent for one media file, inside `wrappers` listed outermost first.

    `wrappers=["ephemeralMessage", "viewOnceMessageV2"]` gives
    `{"ephemeralMessage": {"message": {"viewOnceMessageV2": {"message": {"imageMessage": ...`.
    """
    unknown = [name for name in wrappers if name not in WRAPPERS]
    if unknown:
        raise ValueError(f"unknown wrappers {unknown}; known: {list(WRAPPERS)}")

    content: dict[str, Any] = {MESSAGE_KEY_BY_KIND[kind]: dict(media_block)}
    for name in reversed(wrappers):
        content = {name: {"message": content}}
    return content


def text_message(text: str, *, extended: bool = False) -> dict[str, Any]:
    """msgContent for text: `conversation`, or `extendedTextMessage` as sent with a preview."""
    if extended:
        return {"extendedTextMessage": {"text": text}}
    return {"conversation": text}


def lowercase_keys(body: Mapping[str, Any], *, every_key: bool = False) -> dict[str, Any]:
    """The delivery with `instanceid` and `msgcontent` spelled in lower case, as sometimes seen.

    `every_key=True` lowercases every top-level key instead.
    """
    renamed = {"instanceId": "instanceid", "msgContent": "msgcontent"}
    if every_key:
        return {key.lower(): value for key, value in body.items()}
    return {renamed.get(key, key): value for key, value in body.items()}


def sample_bytes(kind: MediaKind, size: int, *, seed: int = 0) -> bytes:
    """`size` bytes that start like a file of `kind`; the same arguments give the same bytes."""
    magic = _magic(kind, size)[:size]
    rng = random.Random(f"{kind}:{size}:{seed}")
    return magic + rng.randbytes(size - len(magic))


def _magic(kind: MediaKind, size: int) -> bytes:
    if kind is MediaKind.IMAGE:
        return b"\xff\xd8\xff\xe0\x00\x10JFIF\x00"
    if kind is MediaKind.VIDEO:
        return b"\x00\x00\x00\x18ftypmp42"
    if kind is MediaKind.AUDIO:
        return b"OggS\x00\x02"
    if kind is MediaKind.DOCUMENT:
        return b"%PDF-1.7\n"
    # A WebP sticker: RIFF, the size of what follows, then the WEBP tag.
    return b"RIFF" + max(size - 8, 0).to_bytes(4, "little") + b"WEBPVP8 "
