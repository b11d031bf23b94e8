"""How media values read on screen: status words with their colours, short times."""

from __future__ import annotations

import time
from typing import Final

from rich.text import Text

from mediamon.core.eventlog import human_seconds
from mediamon.core.models import MediaRecord, MediaStatus

STATUS_STYLES: Final = {
    MediaStatus.QUEUED: "bright_blue",
    MediaStatus.DOWNLOADING: "cyan",
    MediaStatus.RETRYING: "yellow",
    MediaStatus.DONE: "green",
    MediaStatus.FAILED: "bold red",
    MediaStatus.MISSING: "bold magenta",
}


def status_text(media: MediaRecord, max_attempts: int, now: float | None = None) -> Text:
    """The status cell; a retrying media says which attempt comes next, and when."""
    style = STATUS_STYLES[media.status]
    if media.status is MediaStatus.RETRYING and media.next_attempt_at is not None:
        wait = max(media.next_attempt_at - (now if now is not None else time.time()), 0.0)
        label = f"attempt {media.attempts + 1}/{max_attempts} in {human_seconds(wait)}"
        return Text(label, style=style)
    return Text(media.status.value, style=style)


def clock(timestamp: float) -> str:
    """HH:MM:SS today, else the date too."""
    moment = time.localtime(timestamp)
    if time.strftime("%Y%m%d", moment) == time.strftime("%Y%m%d"):
        return time.strftime("%H:%M:%S", moment)
    return time.strftime("%d/%m %H:%M", moment)


def full_time(timestamp: float | None) -> str:
    if timestamp is None:
        return "-"
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(timestamp))
