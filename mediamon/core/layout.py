"""Where a media file lives: `cliente_<client>/instance_<id>/<kind>/<message id>[_name].<ext>`.

Every component comes from a payload or a config, so each is cleaned before it joins
a path: no separators, no `..`, no control characters, no leading dot, and a bounded
length. When cleaning changes a message id, a short hash of the original is added so
that two different ids can never share a file.
"""

from __future__ import annotations

import hashlib
import re
import unicodedata
from pathlib import PurePosixPath
from typing import Final

from mediamon.core.models import MediaKind

MAX_COMPONENT_BYTES: Final = 120
CLIENT_PREFIX: Final = "cliente_"
INSTANCE_PREFIX: Final = "instance_"
FOLDER_DEPTH: Final = 3
"""Folders between the media folder and a media file: client, instance, kind."""

_EXTENSIONS: Final = {
    "image/jpeg": ".jpg",
    "image/jpg": ".jpg",
    "image/png": ".png",
    "image/webp": ".webp",
    "image/gif": ".gif",
    "image/heic": ".heic",
    "video/mp4": ".mp4",
    "video/3gpp": ".3gp",
    "video/quicktime": ".mov",
    "video/webm": ".webm",
    "audio/ogg": ".ogg",
    "audio/opus": ".opus",
    "audio/mpeg": ".mp3",
    "audio/mp3": ".mp3",
    "audio/mp4": ".m4a",
    "audio/aac": ".aac",
    "audio/amr": ".amr",
    "audio/wav": ".wav",
    "audio/x-wav": ".wav",
    "application/pdf": ".pdf",
    "application/zip": ".zip",
    "application/msword": ".doc",
    "application/vnd.ms-excel": ".xls",
    "application/vnd.ms-powerpoint": ".ppt",
    "application/vnd.openxmlformats-officedocument.wordprocessingml.document": ".docx",
    "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet": ".xlsx",
    "application/vnd.openxmlformats-officedocument.presentationml.presentation": ".pptx",
    "text/plain": ".txt",
    "text/csv": ".csv",
    "application/json": ".json",
    "application/xml": ".xml",
    "text/xml": ".xml",
}

_UNSAFE = re.compile(r"[^\w.\-]+")
_ID_UNSAFE = re.compile(r"[^A-Za-z0-9_\-]+")


def extension_for(mimetype: str) -> str:
    """The file extension for a mimetype, ignoring parameters such as `codecs=opus`."""
    essence = mimetype.split(";", 1)[0].strip().lower()
    return _EXTENSIONS.get(essence, ".bin")


def media_relpath(
    *,
    client: str,
    instance_id: str,
    kind: MediaKind,
    message_id: str,
    mimetype: str,
    file_name: str | None = None,
) -> PurePosixPath:
    """The path of a media file, relative to the media folder, safe to join to it."""
    extension = extension_for(mimetype)
    name = safe_message_id(message_id)
    if kind is MediaKind.DOCUMENT and file_name:
        stem, dot, original_extension = file_name.rpartition(".")
        if dot and stem and 0 < len(original_extension) <= 8:
            extension = "." + original_extension.lower()
            file_name = stem
        cleaned = safe_component(file_name, limit=MAX_COMPONENT_BYTES - len(name) - 10)
        # "_" is what safe_component makes of a name with nothing usable left in it.
        if cleaned != "_":
            name = f"{name}_{cleaned}"
    name = safe_component(name + _safe_extension(extension))

    return PurePosixPath(
        CLIENT_PREFIX + safe_component(client),
        INSTANCE_PREFIX + safe_component(instance_id),
        kind.value,
        name,
    )


def is_layout_folder(relpath: PurePosixPath) -> bool:
    """Whether a folder, relative to the media folder, is one that media paths run
    through: the media folder itself, a client's, an instance's or a kind's."""
    parts = relpath.parts
    if len(parts) > FOLDER_DEPTH:
        return False
    prefixes = (CLIENT_PREFIX, INSTANCE_PREFIX)
    return all(part.startswith(prefix) for part, prefix in zip(parts, prefixes, strict=False))


def safe_message_id(message_id: str) -> str:
    """The message id as a file-name prefix; altered ids get a hash suffix."""
    cleaned = _ID_UNSAFE.sub("_", message_id)[:64].strip("_")
    if cleaned and cleaned == message_id:
        return cleaned
    digest = hashlib.sha256(message_id.encode("utf-8", "surrogatepass")).hexdigest()[:8]
    return f"{cleaned or 'message'}-{digest}"


def safe_component(text: str, limit: int = MAX_COMPONENT_BYTES) -> str:
    """One path component: word characters, dots and dashes, never `.`, `..` or empty."""
    normalized = unicodedata.normalize("NFC", text)
    printable = "".join(ch if ch.isprintable() else "_" for ch in normalized)
    cleaned = _UNSAFE.sub("_", printable).strip("._ ")
    encoded = cleaned.encode("utf-8")[: max(limit, 1)]
    cleaned = encoded.decode("utf-8", "ignore").strip("._ ")
    return cleaned or "_"


def _safe_extension(extension: str) -> str:
    cleaned = _ID_UNSAFE.sub("", extension.lstrip("."))[:8]
    return f".{cleaned.lower()}" if cleaned else ".bin"
