"""Turn a W-API webhook body into a `WebhookEvent`.

The parser is the first thing hostile input meets, so it promises one thing above
all: whatever JSON value it is given, it returns an event or raises `PayloadError`,
never anything else. Fields that only decorate a message (a push name of the wrong
type, say) are dropped quietly; fields without which nothing can be done (the
instance, the message id of a media message) are errors that name the field.

A media message whose key or path is absent or garbled is still an event: it comes
back with `MediaInfo.problem` set, so the store records it as failed with that reason
instead of losing it.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Mapping
from typing import Any, Final

from mediamon.core.errors import PayloadError
from mediamon.core.models import MediaInfo, MediaKind, WebhookEvent

MAX_ID_LENGTH: Final = 128
MAX_WRAPPER_DEPTH: Final = 16
_INT64_MIN: Final = -(2**63)
_INT64_MAX: Final = 2**63 - 1

_MEDIA_KEYS: Final = {
    "imageMessage": MediaKind.IMAGE,
    "videoMessage": MediaKind.VIDEO,
    "ptvMessage": MediaKind.VIDEO,
    "audioMessage": MediaKind.AUDIO,
    "documentMessage": MediaKind.DOCUMENT,
    "stickerMessage": MediaKind.STICKER,
}

_WRAPPERS: Final = (
    "ephemeralMessage",
    "viewOnceMessage",
    "viewOnceMessageV2",
    "viewOnceMessageV2Extension",
    "documentWithCaptionMessage",
    "editedMessage",
)

_DEFAULT_MIMETYPES: Final = {
    MediaKind.IMAGE: "image/jpeg",
    MediaKind.VIDEO: "video/mp4",
    MediaKind.AUDIO: "audio/ogg",
    MediaKind.DOCUMENT: "application/octet-stream",
    MediaKind.STICKER: "image/webp",
}


def parse_webhook(body: object) -> WebhookEvent:
    """Parse one decoded JSON body; raise `PayloadError` naming what is wrong."""
    if not isinstance(body, Mapping):
        raise PayloadError(f"the body must be a JSON object, not {_json_type(body)}")
    fields = _Fields(body)

    instance_id = _required_id(fields, "instanceId")
    message_id = _optional_id(fields, "messageId")
    media = _find_media(fields.get("msgContent"))
    if media is not None and message_id is None:
        raise PayloadError("a media message must carry a messageId")

    chat = _Fields.of(fields.get("chat"))
    sender = _Fields.of(fields.get("sender"))
    return WebhookEvent(
        event=_text(fields.get("event")) or "unknown",
        instance_id=instance_id,
        message_id=message_id,
        from_me=fields.get("fromMe") is True,
        is_group=fields.get("isGroup") is True,
        moment=_integer(fields.get("moment")),
        chat_id=_text(chat.get("id")),
        sender_id=_text(sender.get("id")),
        sender_name=_text(sender.get("pushName")),
        media=media,
    )


def _find_media(content: object, depth: int = 0) -> MediaInfo | None:
    """Find the media inside a message, looking through every known wrapper."""
    if depth > MAX_WRAPPER_DEPTH:
        raise PayloadError(f"msgContent wrappers are nested more than {MAX_WRAPPER_DEPTH} deep")
    if not isinstance(content, Mapping):
        return None
    fields = _Fields(content)

    for key, kind in _MEDIA_KEYS.items():
        block = fields.get(key)
        if isinstance(block, Mapping):
            return _media_info(kind, _Fields(block))

    for wrapper in _WRAPPERS:
        inner = fields.get(wrapper)
        if isinstance(inner, Mapping):
            found = _find_media(_Fields(inner).get("message"), depth + 1)
            if found is not None:
                return found
    return None


def _media_info(kind: MediaKind, block: _Fields) -> MediaInfo:
    problems: list[str] = []
    direct_path = _text(block.get("directPath"))
    if block.get("mediaKey") in (None, ""):
        problems.append("the payload has no mediaKey")
    if direct_path is None:
        problems.append("the payload has no directPath")

    # Sources decode strict standard base64, so the key is passed on in that spelling.
    key = _base64_field(block, "mediaKey", problems)
    media_key = base64.b64encode(key).decode("ascii") if key is not None else None
    file_sha256 = _hex_digest(block, "fileSha256", problems)
    file_enc_sha256 = _hex_digest(block, "fileEncSha256", problems)

    length = block.get("fileLength")
    file_length = _integer(length)
    if length is not None and (file_length is None or file_length < 0):
        problems.append("fileLength is not a 64-bit whole number")
        file_length = None

    return MediaInfo(
        kind=kind,
        mimetype=_text(block.get("mimetype")) or _DEFAULT_MIMETYPES[kind],
        media_key=media_key,
        direct_path=direct_path,
        file_sha256=file_sha256,
        file_enc_sha256=file_enc_sha256,
        file_length=file_length,
        file_name=_text(block.get("fileName")),
        caption=_text(block.get("caption")),
        seconds=_integer(block.get("seconds")),
        ptt=block.get("ptt") is True,
        problem="; ".join(problems) or None,
    )


def _base64_field(block: _Fields, name: str, problems: list[str]) -> bytes | None:
    """The 32 bytes a key or hash field spells in base64, or None with the problem noted."""
    value = block.get(name)
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        problems.append(f"{name} is not a base64 string")
        return None
    raw = _decode_base64(value)
    if raw is None:
        problems.append(f"{name} is not valid base64")
        return None
    if len(raw) != 32:
        problems.append(f"{name} is {len(raw)} bytes, expected 32")
        return None
    return raw


def _hex_digest(block: _Fields, name: str, problems: list[str]) -> str | None:
    raw = _base64_field(block, name, problems)
    return raw.hex() if raw is not None else None


def _decode_base64(value: str) -> bytes | None:
    # WhatsApp sends standard base64, but URL-safe and unpadded spellings turn up in
    # payloads that went through other tools; all three name the same bytes.
    text = value.strip().replace("-", "+").replace("_", "/")
    text += "=" * (-len(text) % 4)
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        return None


def _required_id(fields: _Fields, name: str) -> str:
    value = _optional_id(fields, name)
    if value is None:
        raise PayloadError(f"the webhook has no {name}")
    return value


def _optional_id(fields: _Fields, name: str) -> str | None:
    value = fields.get(name)
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise PayloadError(f"{name} must be a string, not {_json_type(value)}")
    if len(value) > MAX_ID_LENGTH:
        raise PayloadError(f"{name} is longer than {MAX_ID_LENGTH} characters")
    if not _is_unicode(value):
        raise PayloadError(f"{name} is not valid text: it holds a lone UTF-16 surrogate")
    return value


def _folded(mapping: Mapping[Any, Any]) -> dict[str, Any]:
    """The mapping with lower-cased keys; a key not in lower case wins over one that is."""
    folded: dict[str, Any] = {}
    for key, value in mapping.items():
        if isinstance(key, str):
            lowered = key.lower()
            if lowered not in folded or key != lowered:
                folded[lowered] = value
    return folded


class _Fields:
    """A JSON object's fields by W-API's camelCase names, whatever case a delivery used.

    Some deliveries spell keys in lower case. The usual spelling is looked up as is,
    and only a miss folds the keys (once per object), so a payload spelled the usual
    way is never copied. When both spellings are present the camelCase one wins, as
    it is W-API's own.
    """

    __slots__ = ("_folded", "_mapping")

    def __init__(self, mapping: Mapping[Any, Any]) -> None:
        self._mapping = mapping
        self._folded: dict[str, Any] | None = None

    @classmethod
    def of(cls, value: object) -> _Fields:
        """The fields of `value`, or none at all when it is not an object."""
        return cls(value if isinstance(value, Mapping) else {})

    def get(self, name: str) -> Any:
        value = self._mapping.get(name)
        if value is not None or name in self._mapping:
            return value
        if self._folded is None:
            self._folded = _folded(self._mapping)
        return self._folded.get(name.lower())


def _text(value: object) -> str | None:
    if not isinstance(value, str) or not value:
        return None
    if not _is_unicode(value):
        # JSON may escape lone surrogates, which neither SQLite nor a file name can
        # hold; a name or caption is worth keeping with a "?" in their place.
        return value.encode("utf-8", "replace").decode("utf-8")
    return value


def _is_unicode(text: str) -> bool:
    """False when `text` holds a lone surrogate, which JSON allows and UTF-8 does not."""
    if text.isascii():
        return True
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _integer(value: object) -> int | None:
    """An integer given as a JSON number or, as protobuf JSON has it, a string.

    Only values in protobuf's 64-bit range count: SQLite refuses anything wider.
    """
    number: int | None = None
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        number = value
    elif isinstance(value, float) and value.is_integer():
        number = int(value)
    elif isinstance(value, str):
        digits = value.strip()
        # isdigit() alone admits "²", which int() refuses; protobuf writes ASCII digits.
        if digits.isascii() and digits.isdigit() and len(digits) <= 20:
            number = int(digits)
    if number is None or not _INT64_MIN <= number <= _INT64_MAX:
        return None
    return number


def _json_type(value: object) -> str:
    names = {dict: "an object", list: "an array", str: "a string", bool: "a boolean"}
    for kind, name in names.items():
        if isinstance(value, kind):
            return name
    if value is None:
        return "null"
    return "a number" if isinstance(value, int | float) else type(value).__name__
