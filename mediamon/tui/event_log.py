"""The event log at the bottom: one line per event, bounded in length.

The log shows a handful of lines, while at 300 webhooks a second each refresh brings a
few hundred events. So the events of one refresh are written in one go, and of a burst
only the last `BURST` lines, after a line that counts the ones left out.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable
from typing import Final

from rich.text import Text
from textual.widgets import RichLog

from mediamon.core.eventlog import describe
from mediamon.core.events import Event

MAX_LINES: Final = 1000
BURST: Final = 50

_STYLES: Final = {"<--": "bright_blue", "-->": "green", "!!": "red", "??": "magenta"}


class EventLog(RichLog):
    DEFAULT_CSS = """
    EventLog { height: 7; border-top: solid $primary; padding: 0 1; }
    """

    def __init__(self, **kwargs: object) -> None:
        super().__init__(
            max_lines=MAX_LINES,
            wrap=False,
            markup=False,
            **kwargs,  # type: ignore[arg-type]
        )

    def add_events(self, events: Iterable[Event]) -> None:
        """A line for each event worth reading; of a burst, the last `BURST` lines."""
        lines: list[tuple[str, str | None]] = []
        for event in events:
            described = describe(event)
            if described is not None and described[0] >= logging.INFO:
                lines.append((described[1], None))
        if len(lines) > BURST:
            left_out = f"    … {len(lines) - BURST:,} earlier lines of this burst left out"
            lines = [(left_out, "dim"), *lines[-BURST:]]
        self._write(lines)

    def add_line(self, line: str, style: str | None = None) -> None:
        self._write([(line, style)])

    def _write(self, lines: list[tuple[str, str | None]]) -> None:
        if not lines:
            return
        stamp = Text(time.strftime("%H:%M:%S "), style="dim")
        text = Text("\n").join(
            stamp + Text(line, style=style or _STYLES.get(line.split(" ", 1)[0], ""))
            for line, style in lines
        )
        self.write(text)
