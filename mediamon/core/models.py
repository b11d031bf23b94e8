"""The values that flow through the pipeline: kinds, statuses, media and attempts."""

from __future__ import annotations

import enum
from dataclasses import dataclass


class MediaKind(enum.StrEnum):
    IMAGE = "image"
    VIDEO = "video"
    AUDIO = "audio"
    DOCUMENT = "document"
    STICKER = "sticker"


class MediaStatus(enum.StrEnum):
    QUEUED = "queued"
    DOWNLOADING = "downloading"
    RETRYING = "retrying"
    DONE = "done"
    FAILED = "failed"
    MISSING = "missing"


ACTIVE_STATUSES = frozenset({MediaStatus.QUEUED, MediaStatus.DOWNLOADING, MediaStatus.RETRYING})


@dataclass(frozen=True, slots=True)
class MediaInfo:
    """What a webhook says about one media file: enough to fetch and verify it.

    Keys and hashes stay as the payload spelled them where a source needs them so
    (W-API takes the base64 media key back verbatim); expected hashes are hex.
    `problem` says why this media can never be fetched, when the payload lacks or
    garbles what a download needs.
    """

    kind: MediaKind
    mimetype: str
    media_key: str | None
    direct_path: str | None
    file_sha256: str | None
    file_enc_sha256: str | None
    file_length: int | None
    file_name: str | None = None
    caption: str | None = None
    seconds: int | None = None
    ptt: bool = False
    problem: str | None = None


@dataclass(frozen=True, slots=True)
class WebhookEvent:
    """One W-API delivery, parsed. `media` is None for text, status and the like."""

    event: str
    instance_id: str
    message_id: str | None
    from_me: bool
    is_group: bool
    moment: int | None
    chat_id: str | None
    sender_id: str | None
    sender_name: str | None
    media: MediaInfo | None


@dataclass(frozen=True, slots=True)
class MediaRecord:
    """One media row as the store holds it."""

    id: int
    instance_id: str
    client: str
    message_id: str
    event_id: int | None
    from_me: bool
    chat_id: str | None
    sender_id: str | None
    sender_name: str | None
    kind: MediaKind
    mimetype: str
    caption: str | None
    file_name: str | None
    expected_size: int | None
    expected_sha256: str | None
    expected_enc_sha256: str | None
    media_key: str | None
    direct_path: str | None
    status: MediaStatus
    attempts: int
    last_error: str | None
    next_attempt_at: float | None
    path: str | None
    stored_sha256: str | None
    stored_size: int | None
    source: str | None
    received_at: float
    updated_at: float
    missing_since: float | None = None

    @property
    def sender(self) -> str:
        """The name a person would recognise: the push name, else the number."""
        return self.sender_name or self.sender_id or "?"


@dataclass(frozen=True, slots=True)
class Attempt:
    """One try of one source at one media, kept as history."""

    media_id: int
    number: int
    source: str
    started_at: float
    finished_at: float
    outcome: str
    http_status: int | None = None
    error: str | None = None
    size: int | None = None
