"""The top bar: where webhooks go, which instances are served, and the downloads' state."""

from __future__ import annotations

from rich.text import Text
from textual.reactive import reactive
from textual.widgets import Static

from mediamon.core.config import Config


class TopBar(Static):
    DEFAULT_CSS = """
    TopBar { height: 2; background: $boost; padding: 0 1; }
    """

    local_url = reactive("starting…")
    public_url = reactive("")
    paused = reactive(False)
    showing = reactive("status all · kind all")

    def __init__(self, config: Config, **kwargs: object) -> None:
        super().__init__(**kwargs)  # type: ignore[arg-type]
        self._config = config

    def render(self) -> Text:
        text = Text.assemble(("mediamon ", "bold"), ("webhook ", "dim"), (self.local_url, "bold"))
        if self.public_url:
            text.append("  public ", style="dim")
            text.append(self.public_url, style="bold green")
        text.append("  secret ", style="dim")
        if self._config.server.secret:
            text.append("on", style="green")
        else:
            text.append("off", style="yellow")
        text.append("  downloads ", style="dim")
        text.append(*(("paused", "bold yellow") if self.paused else ("running", "green")))
        text.append("\n")
        text.append("instances ", style="dim")
        instances = [f"{i.id} (client {i.client})" for i in self._config.instances]
        text.append(", ".join(instances) or "none configured")
        text.append("  showing ", style="dim")
        text.append(self.showing, style="bold")
        return text
