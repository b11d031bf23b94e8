"""What the simulated WhatsApp servers hold, and the trouble each file is going to give.

Hosting a file encrypts it the way WhatsApp's CDN stores media (under a fresh mediaKey,
with the info string of its kind) and gives it a directPath. At the same moment the
catalog decides how the file will misbehave:

- for `failure_rate` of the files, W-API fails the first one to three `download-media`
  calls, each time in one of the `Failure` ways, drawn by weight; every other such file
  that W-API hands over to the CDN within its first attempt also gets a 503 from the
  CDN on the first fetch, so a durable retry shows up beside quick retries and CDN
  fallbacks;
- `expired_rate` of the files are gone from the CDN (404), as media is after a few
  weeks, and W-API cannot fetch them either.

The shares are spread evenly rather than drawn independently (the first expired file
is the tenth when the share is 5 %), so that a short demo shows each kind of trouble;
the way each file fails comes from the seeded random source. Deciding when a file is
hosted, rather than per request, keeps a run reproducible from its seed whatever order
the requests arrive in.

Only the newest `keep` files are held, so a demo left running for hours stays small;
an older file is gone from both servers, as if it had expired.
"""

from __future__ import annotations

import base64
import collections
import enum
import hashlib
import random
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Final

from mediamon.core.crypto import INFO_BY_KIND, MEDIA_KEY_LENGTH, encrypt_media
from mediamon.core.models import MediaKind
from mediamon.simulator.media import MediaFile


class Failure(enum.StrEnum):
    """The ways W-API's `download-media` lets a caller down."""

    SERVER_ERROR = "500"
    """HTTP 500 with W-API's nested "Falha ao fazer o download do conteúdo." body."""
    ERROR_FLAG = "200-error"
    """HTTP 200 whose body says `"error": true`."""
    RATE_LIMITED = "429"
    """HTTP 429 with a Retry-After header."""
    SLOW_BODY = "slow"
    """A good link whose body trickles in over a couple of seconds."""


DEFAULT_FAILURES: Final[Mapping[Failure, float]] = {
    Failure.SERVER_ERROR: 0.6,
    Failure.ERROR_FLAG: 0.15,
    Failure.RATE_LIMITED: 0.1,
    Failure.SLOW_BODY: 0.15,
}

# The path prefixes WhatsApp's CDN uses for each kind of media.
_PATH_PREFIXES: Final = {
    MediaKind.IMAGE: "/v/t62.7118-24",
    MediaKind.VIDEO: "/v/t62.7161-24",
    MediaKind.AUDIO: "/v/t62.7117-24",
    MediaKind.DOCUMENT: "/v/t62.7119-24",
    MediaKind.STICKER: "/v/t62.15575-24",
}
_URL_SAFE: Final = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
_THIRTY_DAYS: Final = 30 * 24 * 3600


@dataclass(slots=True)
class HostedMedia:
    """One file on the simulated servers, and what they will do when asked for it."""

    file: MediaFile
    media_key: bytes
    encrypted: bytes
    direct_path: str
    expired: bool = False
    wapi_trouble: list[Failure] = field(default_factory=list)
    """What the next `download-media` calls for this file do, first first."""
    cdn_trouble: int = 0
    """How many CDN fetches answer 503 before one is served."""

    @property
    def path(self) -> str:
        """The directPath without its query: the key the CDN looks the file up by."""
        return self.direct_path.split("?", 1)[0]

    @property
    def media_key_b64(self) -> str:
        return _b64(self.media_key)

    @property
    def file_sha256_b64(self) -> str:
        return _b64(hashlib.sha256(self.file.data).digest())

    @property
    def file_enc_sha256_b64(self) -> str:
        return _b64(hashlib.sha256(self.encrypted).digest())


class MediaCatalog:
    """The hosted files by path. Safe to add to from a worker thread while the server reads."""

    def __init__(
        self,
        rng: random.Random,
        *,
        failure_rate: float = 0.3,
        expired_rate: float = 0.05,
        failures: Mapping[Failure, float] = DEFAULT_FAILURES,
        keep: int = 500,
    ) -> None:
        if not 0 <= failure_rate <= 1 or not 0 <= expired_rate <= 1:
            raise ValueError("failure_rate and expired_rate are shares from 0 to 1")
        if not failures or min(failures.values()) < 0 or sum(failures.values()) <= 0:
            raise ValueError("failures needs at least one failure with a positive weight")
        self._rng = rng
        self._failure_rate = failure_rate
        self._expired_rate = expired_rate
        self._failures = dict(failures)
        self._keep = keep
        self._by_path: collections.OrderedDict[str, HostedMedia] = collections.OrderedDict()
        self._lock = threading.Lock()
        # Error diffusion: each file adds its share, and a whole one means "this file".
        # Starting halfway puts the first troubled file early rather than last.
        self._troubled_due = 0.5
        self._expired_due = 0.5
        self._cdn_trouble_next = True

    def __len__(self) -> int:
        return len(self._by_path)

    def add(self, file: MediaFile) -> HostedMedia:
        """Encrypt and host `file`, and decide now how it will misbehave."""
        with self._lock:
            rng = self._rng
            media_key = rng.randbytes(MEDIA_KEY_LENGTH)
            direct_path = self._new_direct_path(file.kind)
            hosted = HostedMedia(
                file,
                media_key,
                encrypt_media(file.data, media_key, INFO_BY_KIND[file.kind]),
                direct_path,
            )
            self._expired_due += self._expired_rate
            if self._expired_due >= 1:
                self._expired_due -= 1
                hosted.expired = True
            self._troubled_due += self._failure_rate
            if self._troubled_due >= 1:
                self._troubled_due -= 1
                hosted.wapi_trouble = self._trouble()
                if _hands_over(hosted.wapi_trouble):
                    hosted.cdn_trouble = int(self._cdn_trouble_next)
                    self._cdn_trouble_next = not self._cdn_trouble_next
            self._by_path[hosted.path] = hosted
            while len(self._by_path) > self._keep:
                self._by_path.popitem(last=False)
            return hosted

    def find(self, direct_path: str) -> HostedMedia | None:
        """The file at a directPath, with or without its query string."""
        with self._lock:
            return self._by_path.get(direct_path.split("?", 1)[0])

    def _trouble(self) -> list[Failure]:
        kinds, weights = list(self._failures), list(self._failures.values())
        trouble: list[Failure] = []
        for _ in range(self._rng.choice((1, 2, 2, 3))):
            failure = self._rng.choices(kinds, weights)[0]
            trouble.append(failure)
            if failure is Failure.SLOW_BODY:
                break  # a slow body still delivers, so the trouble ends with it
        return trouble

    def _new_direct_path(self, kind: MediaKind) -> str:
        rng = self._rng
        while True:
            name = "_".join(str(rng.randrange(10**digits)) for digits in (8, 16, 16))
            path = f"{_PATH_PREFIXES[kind]}/{name}_n.enc"
            if path not in self._by_path:
                break
        signature = "".join(rng.choices(_URL_SAFE, k=40))
        expires = int(time.time()) + _THIRTY_DAYS
        return f"{path}?ccb=11-4&oh=01_Q5Aa{signature}&oe={expires:X}&_nc_sid=5e03e0"


def _hands_over(trouble: list[Failure]) -> bool:
    """Whether mediamon's W-API source gives up on the first attempt and tries the CDN.

    It asks twice at once after a 500 or an error flag, but leaves a 429 to the backoff.
    """
    first_two = trouble[:2]
    if Failure.SLOW_BODY in first_two:
        return False
    return first_two[:1] == [Failure.RATE_LIMITED] or len(first_two) == 2


def _b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode("ascii")
