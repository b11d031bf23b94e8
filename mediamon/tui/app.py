"""`mediamon run`: the monitor, with the whole pipeline in Textual's event loop.

The runtime (server, downloads, watcher) publishes events; the app drains them five
times a second and applies them in one batch, so 300 webhooks a second cost a few
table updates, not thousands. Queries for the table and the detail pane go through a
second, read-only connection, so paging and searching never wait behind webhook
writes. Everything the screen shows comes from the store; the events only say when
to look.

A key press must show its effect within 100 ms while webhooks pour in, so the table
holds a page of rows rather than all of them, and a filter's reload runs its query
before it touches the table: live changes that arrive meanwhile wait for the new rows
instead of being drawn into the old ones.
"""

from __future__ import annotations

import asyncio
import logging
import shutil
import subprocess
import sys
from collections.abc import Awaitable, Callable, Iterable
from functools import partial
from logging.handlers import RotatingFileHandler
from typing import ClassVar, Final

import aiohttp
from textual import on, work
from textual.app import App, ComposeResult, SystemCommand
from textual.binding import Binding, BindingType
from textual.css.query import NoMatches
from textual.screen import Screen
from textual.timer import Timer
from textual.widgets import DataTable, Footer, Input

from mediamon.core.config import Config
from mediamon.core.errors import MediamonError
from mediamon.core.events import Event, EventBus, MediaQueued, Subscription
from mediamon.core.models import ACTIVE_STATUSES, MediaKind, MediaRecord, MediaStatus
from mediamon.core.sqlite_store import SQLiteStore
from mediamon.core.store import MediaQuery
from mediamon.logs import SecretFilter, quiet_libraries
from mediamon.runtime import Runtime
from mediamon.tui.counters import Counters
from mediamon.tui.detail import DetailPane
from mediamon.tui.event_log import EventLog
from mediamon.tui.events_screen import WebhookEventsScreen
from mediamon.tui.help_screen import HelpScreen
from mediamon.tui.media_table import PAGE, MediaTable
from mediamon.tui.top_bar import TopBar

logger = logging.getLogger(__name__)

STATUS_FILTERS: Final[tuple[tuple[str, frozenset[MediaStatus]], ...]] = (
    ("all", frozenset()),
    ("active", ACTIVE_STATUSES),
    ("failed", frozenset({MediaStatus.FAILED})),
    ("missing", frozenset({MediaStatus.MISSING})),
    ("done", frozenset({MediaStatus.DONE})),
)
KIND_FILTERS: Final[tuple[MediaKind | None, ...]] = (None, *MediaKind)
TUNNEL_EVERY: Final = 5.0


class MonitorApp(App[int]):
    TITLE = "mediamon"
    CSS = """
    #filter { display: none; height: 3; }
    #filter.-shown { display: block; }
    """
    # Labels are kept short so that at 150 columns the footer holds them all, Quit included.
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("r", "reprocess_selected", "Reprocess"),
        Binding("R", "reprocess_failed", "All failed"),
        Binding("M", "reprocess_missing", "All missing"),
        Binding("slash", "search", "Search"),
        Binding("f", "cycle_status", "Status"),
        Binding("k", "cycle_kind", "Kind"),
        Binding("enter", "toggle_detail", "Detail", show=False),
        Binding("o", "open_file", "Open"),
        Binding("c", "copy_path", "Copy path"),
        Binding("s", "scan", "Scan"),
        Binding("w", "replay_webhook", "Replay", show=False),
        Binding("p", "toggle_pause", "Pause"),
        Binding("e", "webhook_events", "Events"),
        Binding("question_mark", "help", "Help"),
        Binding("q", "quit", "Quit"),
    ]

    def __init__(
        self,
        config: Config,
        *,
        bus: EventBus | None = None,
        on_started: Callable[[Runtime], Awaitable[None]] | None = None,
    ) -> None:
        """`on_started` runs once the runtime listens: the demo starts its webhooks there."""
        super().__init__()
        self.config = config
        self.runtime = Runtime(config, bus)
        self._on_started = on_started
        self._subscription: Subscription = self.runtime.bus.subscribe()
        self._reader: SQLiteStore | None = None
        self._ticks: list[Timer] = []
        self._status_filter = 0
        self._kind_filter = 0
        self._text_filter = ""
        self._reloads = 0
        """Counts filter reloads, so a query that a reload overtook is thrown away."""
        self._reloading = 0
        """Reloads whose query is still running; live changes are held meanwhile."""
        self._held: dict[int, MediaRecord] = {}
        """Media changed while a reload was running, applied once it has."""
        self._log_handler: logging.Handler = logging.NullHandler()
        self._file_handler: logging.Handler = logging.NullHandler()
        self.started = asyncio.Event()
        """Set once the runtime runs and the first rows are on screen."""

    def compose(self) -> ComposeResult:
        yield TopBar(self.config)
        yield Counters()
        yield Input(placeholder="search message id, sender, chat, file name", id="filter")
        yield MediaTable(self.config.downloads.max_attempts)
        yield DetailPane(self.config.storage.media_dir, self.config.downloads.max_attempts)
        yield EventLog()
        yield Footer()

    def on_mount(self) -> None:
        self._log_handler = _ToEventLog(self.query_one(EventLog), self.config.secrets)
        self._file_handler = _log_file(self.config)
        root = logging.getLogger()
        root.addHandler(self._log_handler)
        root.addHandler(self._file_handler)
        root.setLevel(logging.INFO)
        quiet_libraries()
        self.query_one(MediaTable).focus()
        self._start()

    @work(exclusive=True, group="start")
    async def _start(self) -> None:
        try:
            await self.runtime.start()
            self._reader = await SQLiteStore.open(self.config.storage.database)
        except MediamonError as error:
            self.exit(1, message=f"mediamon: {error.title}: {error}")
            return
        self.query_one(TopBar).local_url = self.runtime.url
        await self._reload()
        await self._refresh_totals()
        self._ticks = [
            self.set_interval(0.2, self._unless_closing(self._apply_events)),
            self.set_interval(1.0, self._unless_closing(self._each_second)),
            self.set_interval(TUNNEL_EVERY, self._look_for_tunnel),
        ]
        self._look_for_tunnel()
        if self._on_started is not None:
            await self._on_started(self.runtime)
        self.started.set()

    async def action_quit(self) -> None:
        self.query_one(TopBar).local_url = "stopping…"
        await self._stop()
        self.exit(0)

    async def on_unmount(self) -> None:
        # However the app ends, the server and downloads stop in Textual's loop, the
        # one they were started in, and in-flight work goes back to the queue.
        await self._stop()
        logging.getLogger().removeHandler(self._log_handler)
        logging.getLogger().removeHandler(self._file_handler)
        self._file_handler.close()

    async def _stop(self) -> None:
        # Timers first: a tick still reading would find its connection closed under it.
        for timer in self._ticks:
            timer.stop()
        self._ticks.clear()
        await self.runtime.stop()
        reader, self._reader = self._reader, None
        if reader is not None:
            await reader.close()

    # Live updates.

    def _unless_closing(self, step: Callable[[], Awaitable[None]]) -> Callable[[], Awaitable[None]]:
        async def run() -> None:
            try:
                await step()
            except NoMatches:
                # While the app closes, its widgets go before the last tick or message
                # that waited on the database has ended; then there is nothing to update.
                if self.is_running:
                    raise

        return run

    async def _apply_events(self) -> None:
        events = self._subscription.drain()
        if not events or self._reader is None:
            return
        self.query_one(EventLog).add_events(events)
        changed: dict[int, MediaRecord] = {}
        arrivals = 0
        for event in events:
            media = _media_of(event)
            if media is None:
                continue
            if isinstance(event, MediaQueued) and not event.duplicate:
                arrivals += 1
            changed[media.id] = media

        self.query_one(Counters).count_arrivals(arrivals)
        if self._reloading:
            self._held.update(changed)
        else:
            self._show_changes(changed.values())
        await self._refresh_totals()
        selected = self.query_one(DetailPane).media
        if selected is not None and selected.id in changed:
            await self._show_detail()

    async def _each_second(self) -> None:
        self.query_one(MediaTable).tick()
        self.query_one(Counters).tick()
        if self._reader is not None and await self._reader.changed_elsewhere():
            # Another process (`mediamon reprocess`, `scan`) changed rows: look again.
            reloads = self._reloads
            fresh = await self._reader.list_media(self._query())
            if reloads == self._reloads and not self._reloading:
                self.query_one(MediaTable).upsert(fresh)
            await self._refresh_totals()

    def _show_changes(self, changed: Iterable[MediaRecord]) -> None:
        table = self.query_one(MediaTable)
        table.upsert(
            media for media in changed if media.id in table.records or self._matches(media)
        )

    async def _refresh_totals(self) -> None:
        if self._reader is not None:
            self.query_one(Counters).show_totals(await self._reader.totals())

    @work(exclusive=True, group="tunnel")
    async def _look_for_tunnel(self) -> None:
        try:
            from mediamon.core.ngrok import find_tunnel
        except ImportError:  # the developer-loop module may be absent in a partial install
            return
        async with aiohttp.ClientSession() as session:
            tunnel = await find_tunnel(session, self.config.ngrok.api_url, self._port())
        self.query_one(TopBar).public_url = f"{tunnel.public_url}/webhook" if tunnel else ""

    def _port(self) -> int:
        url = self.query_one(TopBar).local_url
        try:
            return int(url.rsplit(":", 1)[1].split("/", 1)[0])
        except (IndexError, ValueError):
            return self.config.server.port

    # Filters and the window.

    def _query(self, before_id: int | None = None) -> MediaQuery:
        kind = KIND_FILTERS[self._kind_filter]
        return MediaQuery(
            statuses=STATUS_FILTERS[self._status_filter][1],
            kinds=frozenset({kind}) if kind else frozenset(),
            text=self._text_filter,
            limit=PAGE,
            before_id=before_id,
        )

    def _matches(self, media: MediaRecord) -> bool:
        statuses = STATUS_FILTERS[self._status_filter][1]
        kind = KIND_FILTERS[self._kind_filter]
        text = self._text_filter.lower()
        searchable = (media.message_id, media.sender_name, media.sender_id, media.chat_id)
        return (
            (not statuses or media.status in statuses)
            and (kind is None or media.kind is kind)
            and (not text or any(text in (value or "").lower() for value in searchable))
        )

    async def _reload(self) -> None:
        if self._reader is None:
            return
        self._reloads += 1
        self._reloading += 1
        try:
            page = await self._reader.list_media(self._query())
        finally:
            self._reloading -= 1
        self.query_one(MediaTable).show(page)
        held, self._held = self._held, {}
        self._show_changes(held.values())
        self._describe_filters()
        await self._show_detail()

    async def _next_page(self) -> None:
        table = self.query_one(MediaTable)
        oldest = table.oldest
        if self._reader is None or oldest is None or self._reloading:
            return
        reloads = self._reloads
        page = await self._reader.list_media(self._query(before_id=oldest))
        # Rows that fell off the end meanwhile would leave a gap: the next move tries again.
        if reloads == self._reloads and table.oldest == oldest:
            table.add_page(page)

    def _describe_filters(self) -> None:
        parts = [f"status {STATUS_FILTERS[self._status_filter][0]}"]
        kind = KIND_FILTERS[self._kind_filter]
        parts.append(f"kind {kind.value if kind else 'all'}")
        if self._text_filter:
            parts.append(f"search “{self._text_filter}”")
        self.query_one(TopBar).showing = " · ".join(parts)

    async def action_cycle_status(self) -> None:
        self._status_filter = (self._status_filter + 1) % len(STATUS_FILTERS)
        await self._reload()
        self.notify(f"Showing {STATUS_FILTERS[self._status_filter][0]} media", timeout=2)

    async def action_cycle_kind(self) -> None:
        self._kind_filter = (self._kind_filter + 1) % len(KIND_FILTERS)
        await self._reload()
        kind = KIND_FILTERS[self._kind_filter]
        self.notify(f"Showing {kind.value if kind else 'every kind of'} media", timeout=2)

    def action_search(self) -> None:
        search = self.query_one("#filter", Input)
        search.add_class("-shown")
        search.focus()

    @on(Input.Submitted, "#filter")
    async def _search_submitted(self, submitted: Input.Submitted) -> None:
        self._text_filter = submitted.value.strip()
        if not self._text_filter:
            submitted.input.remove_class("-shown")
        self.query_one(MediaTable).focus()
        await self._reload()

    # The selected media.

    @on(DataTable.RowHighlighted)
    async def _row_highlighted(self) -> None:
        await self._unless_closing(self._cursor_moved)()

    async def _cursor_moved(self) -> None:
        table = self.query_one(MediaTable)
        shown = self.query_one(DetailPane).media
        # The cursor follows its media as new rows arrive above it: same media, no query.
        if shown is None or table.selected is None or shown.id != table.selected.id:
            await self._show_detail()
        if table.near_end:
            await self._next_page()

    async def _show_detail(self) -> None:
        pane = self.query_one(DetailPane)
        media = self.query_one(MediaTable).selected
        reader = self._reader
        if media is None or reader is None:
            pane.show(None)
            return
        fresh = await reader.get_media(media.id) or media
        pane.show(fresh, await reader.attempts(media.id))

    @on(DataTable.RowSelected)
    def _row_selected(self) -> None:
        # The table takes enter for itself and reports it as a selection.
        self.action_toggle_detail()

    def action_toggle_detail(self) -> None:
        self.query_one(DetailPane).toggle_class("-hidden")

    async def action_reprocess_selected(self) -> None:
        media = self._selected_or_say("reprocess")
        if media is None:
            return
        if media.status is MediaStatus.DOWNLOADING:
            self.notify("This media is downloading right now.", severity="warning")
            return
        await self._reprocess(message_ids=[media.message_id], what="the selected media")

    async def action_reprocess_failed(self) -> None:
        await self._reprocess(statuses=[MediaStatus.FAILED], what="failed media")

    async def action_reprocess_missing(self) -> None:
        await self._reprocess(statuses=[MediaStatus.MISSING], what="missing media")

    async def _reprocess(
        self,
        *,
        what: str,
        statuses: Iterable[MediaStatus] = (),
        message_ids: Iterable[str] = (),
    ) -> None:
        if not self.runtime.running:
            self.notify("Still starting; try again in a moment.", severity="warning")
            return
        queued = await self.runtime.reprocess(statuses=statuses, message_ids=message_ids)
        if queued:
            self.notify(f"Queued {len(queued)} {what} again.")
        else:
            self.notify(f"There is no {what} to reprocess.", severity="warning")

    def action_open_file(self) -> None:
        path = self._stored_path_or_say("open")
        if path is None:
            return
        opener = "open" if sys.platform == "darwin" else "xdg-open"
        if shutil.which(opener) is None:
            self.notify(f"No {opener} here to open files with; the path is {path}")
            return
        subprocess.Popen([opener, path], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def action_copy_path(self) -> None:
        path = self._stored_path_or_say("copy")
        if path is not None:
            self.copy_to_clipboard(path)
            self.notify(f"Copied {path}")

    def _selected_or_say(self, verb: str) -> MediaRecord | None:
        media = self.query_one(MediaTable).selected
        if media is None:
            self.notify(f"Select a media to {verb} first.", severity="warning")
        return media

    def _stored_path_or_say(self, verb: str) -> str | None:
        media = self._selected_or_say(verb)
        if media is None:
            return None
        if media.path is None or media.status is not MediaStatus.DONE:
            self.notify(
                f"This media has no file on disk ({media.status.value}).", severity="warning"
            )
            return None
        return str(self.config.storage.media_dir / media.path)

    # Everything else.

    async def action_replay_webhook(self) -> None:
        """Feed the selected media's webhook through intake again, as `mediamon replay`."""
        media = self._selected_or_say("replay")
        if media is None:
            return
        if media.event_id is None or not self.runtime.running:
            self.notify("This media's webhook is not at hand to replay.", severity="warning")
            return
        try:
            result = await self.runtime.replay(media.event_id)
        except MediamonError as error:
            self.notify(str(error), severity="warning")
            return
        answer = "kept once (already known)" if result.duplicate else result.outcome
        self.notify(f"Replayed webhook #{media.event_id}: {answer}.")

    async def action_scan(self) -> None:
        if not self.runtime.running:
            self.notify("Still starting; try again in a moment.", severity="warning")
            return
        report = await self.runtime.scan()
        self.notify(f"Scan: {report.summary()}", timeout=6)

    def action_toggle_pause(self) -> None:
        if not self.runtime.running:
            return
        manager = self.runtime.manager
        if manager.paused:
            manager.resume()
        else:
            manager.pause()
        self.query_one(TopBar).paused = manager.paused
        self.notify("Downloads paused." if manager.paused else "Downloads resumed.")

    def action_webhook_events(self) -> None:
        reader = self._reader
        if reader is None or not self.runtime.running:
            self.notify("Still starting; try again in a moment.", severity="warning")
            return
        screen = WebhookEventsScreen(
            partial(reader.list_events, bodies=False),
            reader.get_event,
            self.runtime.replay,
            running=lambda: self.runtime.running,
            secrets=self.config.secrets,
        )
        self.push_screen(screen)

    def action_help(self) -> None:
        self.push_screen(HelpScreen())

    def get_system_commands(self, screen: Screen[object]) -> Iterable[SystemCommand]:
        yield from super().get_system_commands(screen)
        if isinstance(screen, WebhookEventsScreen):
            return  # the media actions would act, unseen, on the table behind it
        actions = (
            ("Reprocess selected media", "Queue the selected media again", "reprocess_selected"),
            ("Reprocess all failed", "Queue every failed media again", "reprocess_failed"),
            ("Reprocess all missing", "Queue every missing media again", "reprocess_missing"),
            ("Scan now", "Compare the database with the files on disk", "scan"),
            ("Replay webhook", "Feed the selected media's webhook in again", "replay_webhook"),
            ("Pause or resume downloads", "Start no new downloads, or start again", "toggle_pause"),
            ("Webhook events", "Every webhook as it arrived; read or replay one", "webhook_events"),
            ("Cycle status filter", "all, active, failed, missing, done", "cycle_status"),
            ("Cycle kind filter", "image, video, audio, document, sticker", "cycle_kind"),
            ("Search", "Filter by message id, sender, chat or file name", "search"),
            ("Open file", "Open the selected file with the system's opener", "open_file"),
            ("Copy path", "Copy the selected file's path", "copy_path"),
            ("Show or hide detail", "The selected media and its attempts", "toggle_detail"),
            ("Keys", "Every key and what it does", "help"),
        )
        for title, help_text, action in actions:
            yield SystemCommand(title, help_text, self._runner(action))

    def _runner(self, action: str) -> Callable[[], Awaitable[None]]:
        async def run() -> None:
            await self.run_action(action)

        return run


def _media_of(event: Event) -> MediaRecord | None:
    media = getattr(event, "media", None)
    return media if isinstance(media, MediaRecord) else None


class _ToEventLog(logging.Handler):
    """Log lines reach the event log instead of the terminal, which Textual owns.

    Records may come from other threads (the database's), so each line is handed to
    the app's loop; once the app is gone the handler drops lines instead of failing.
    """

    def __init__(self, log: EventLog, secrets: Iterable[str]) -> None:
        super().__init__(logging.INFO)
        self._log = log
        self._loop = asyncio.get_running_loop()
        self.addFilter(SecretFilter(secrets))

    def emit(self, record: logging.LogRecord) -> None:
        # Lines about events are drawn from the events themselves.
        if record.name == "mediamon.core.eventlog" or self._loop.is_closed():
            return
        if record.levelno >= logging.WARNING:
            line, style = f"!!  {record.getMessage()}", "yellow"
        else:
            line, style = f"    {record.getMessage()}", "dim"
        self._loop.call_soon_threadsafe(self._write, line, style)

    def _write(self, line: str, style: str) -> None:
        if self._log.is_attached:
            self._log.add_line(line, style=style)


def _log_file(config: Config) -> logging.Handler:
    """Every line, tracebacks included, beside the database: the screen shows one line."""
    path = config.storage.database.with_suffix(".log")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        handler: logging.Handler = RotatingFileHandler(
            path, maxBytes=5_000_000, backupCount=2, encoding="utf-8"
        )
    except OSError:
        return logging.NullHandler()
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    handler.addFilter(SecretFilter(config.secrets))
    return handler


def run(config: Config) -> int:
    return MonitorApp(config).run() or 0
