"""The counters row: media per status, arrivals per second over the last minutes, bytes."""

from __future__ import annotations

import collections
import time
from typing import Final

from rich.text import Text
from textual.containers import Horizontal
from textual.widgets import Sparkline, Static

from mediamon.core.eventlog import human_size
from mediamon.core.models import MediaStatus
from mediamon.tui.formatting import STATUS_STYLES

SPARK_SECONDS: Final = 180


class Counters(Horizontal):
    DEFAULT_CSS = """
    Counters { height: 2; padding: 0 1; }
    Counters #counts { width: auto; }
    Counters Sparkline { width: 1fr; height: 2; margin: 0 2; }
    Counters #bytes { width: auto; }
    """

    def __init__(self, **kwargs: object) -> None:
        super().__init__(**kwargs)  # type: ignore[arg-type]
        self._arrivals: collections.deque[int] = collections.deque([0] * SPARK_SECONDS)
        self._second = int(time.time())

    def compose(self):  # type: ignore[no-untyped-def]
        yield Static(id="counts")
        yield Sparkline(list(self._arrivals), summary_function=max)
        yield Static(id="bytes")

    def show_totals(self, totals: dict[MediaStatus, tuple[int, int]]) -> None:
        received = sum(count for count, _ in totals.values())
        text = Text.assemble(("received ", "dim"), (f"{received:,}", "bold"))
        for status in MediaStatus:
            text.append(f"  {status.value} ", style="dim")
            text.append(f"{totals[status][0]:,}", style=STATUS_STYLES[status])
        self.query_one("#counts", Static).update(text)
        stored = totals[MediaStatus.DONE][1]
        bytes_text = Text.assemble(("stored ", "dim"), (human_size(stored), "bold"))
        self.query_one("#bytes", Static).update(bytes_text)

    def count_arrivals(self, count: int) -> None:
        self._advance()
        self._arrivals[-1] += count

    def tick(self) -> None:
        self._advance()
        self.query_one(Sparkline).data = list(self._arrivals)

    def _advance(self) -> None:
        now = int(time.time())
        for _ in range(min(now - self._second, SPARK_SECONDS)):
            self._arrivals.append(0)
            self._arrivals.popleft()
        self._second = now
