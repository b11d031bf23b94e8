"""Log set-up for the headless commands: short lines on stderr, secrets scrubbed.

`hide_secrets` is the one scrubber: log lines, stored bodies and error texts shown by
the commands and the monitor all go through it.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Iterable
from typing import Final
from urllib.parse import quote

REDACTED: Final = "***"


def hide_secrets(text: str, secrets: Iterable[str]) -> str:
    """`text` with every token and secret in it, plain or URL-quoted, replaced by `***`."""
    # Longest first, so a secret that contains another is scrubbed whole.
    for secret in sorted({s for s in secrets if s}, key=len, reverse=True):
        text = text.replace(secret, REDACTED).replace(quote(secret, safe=""), REDACTED)
    return text


class SecretFilter(logging.Filter):
    """Replaces every token and secret in a record's final text, wherever it came from."""

    def __init__(self, secrets: Iterable[str]) -> None:
        super().__init__()
        self._secrets = tuple(secrets)

    def filter(self, record: logging.LogRecord) -> bool:
        if not any(self._secrets):
            return True
        text = record.getMessage()
        scrubbed = hide_secrets(text, self._secrets)
        if scrubbed != text:
            record.msg, record.args = scrubbed, None
        if record.exc_info and record.exc_info[1] is not None:
            # A traceback's text is made later by the formatter; render it now so
            # it can be scrubbed too.
            trace = logging.Formatter().formatException(record.exc_info)
            record.exc_text = hide_secrets(trace, self._secrets)
            record.exc_info = None
        return True


def configure(secrets: Iterable[str], *, verbose: bool = False) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s %(message)s", datefmt="%H:%M:%S"))
    handler.addFilter(SecretFilter(secrets))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(logging.DEBUG if verbose else logging.INFO)
    quiet_libraries()


def quiet_libraries() -> None:
    """Libraries' own chatter that repeats or buries what our lines say."""
    # aiohttp's access and internal lines repeat ours; watchfiles reports every file
    # it sees change, which is every download; aiosqlite's debug lines quote bodies.
    logging.getLogger("aiohttp").setLevel(logging.WARNING)
    logging.getLogger("watchfiles").setLevel(logging.WARNING)
    logging.getLogger("aiosqlite").setLevel(logging.INFO)
