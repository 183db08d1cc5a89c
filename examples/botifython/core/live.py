"""The page's socket: one Tab per open page, the frames on their way to it, and the frame handlers add-ons
register. A page that only listens (progress, finished rows) sends nothing; an add-on that takes frames from the
page (the chat) registers a handler for its frame type in FRAMES."""
import asyncio
import json
import logging
import re
import sys
from collections import deque
from contextlib import suppress
from dataclasses import dataclass, field

from fasthtml.common import WebSocket, WebSocketDisconnect, to_xml

from core import auth
from core.task_rows import TASK_LOG_LINES, ProgressUpdate
from toolbox import scrub
from settings import DEV

OUTBOX_FRAMES = 256  # frames a page may fall behind by before its socket is closed
TAB_LOG_BACKLOG = 1_000_000  # characters of log waiting for a page; older lines are skipped (the full log has them)
MAX_FRAME = 64 * 1024

log = logging.getLogger(__name__)


EAGER = dict(eager_start=True) if sys.version_info >= (3, 12) else {}  # decided once: it is asked on every frame


def start_eagerly(coro) -> asyncio.Task:
    """A task that runs at once, up to its first wait, where Python can (3.12 on); from the loop's next turn before."""
    return asyncio.Task(coro, loop=asyncio.get_running_loop(), **EAGER)


@dataclass(eq=False)
class Pending:
    """A task's progress on its way to a tab: the latest bar, and the newest log lines since the last frame.

    A task's row shows its last TASK_LOG_LINES lines (its poll and a reload show no more), so a frame carries at
    most those, and a line count for the rest, which the full log has: a task logging thousands of lines a
    second costs its page, and the server that compresses every frame, no more than one logging fifty."""
    done: int = 0
    total: int = 0
    lines: deque = field(default_factory=deque)
    size: int = 0
    skipped: int = 0

    def add(self, done: int, total: int, lines: list[str]) -> None:
        self.done, self.total = done, total
        if len(lines) > TASK_LOG_LINES:
            self.skipped += len(lines) - TASK_LOG_LINES
            lines = lines[-TASK_LOG_LINES:]
        self.lines.extend(lines)
        self.size += sum(map(len, lines))
        while len(self.lines) > TASK_LOG_LINES or self.size > TAB_LOG_BACKLOG:
            self.size -= len(self.lines.popleft())
            self.skipped += 1

    def frame(self, task_id: int) -> str:
        return ProgressUpdate(task_id, self.done, self.total, self.lines, self.skipped)


@dataclass(eq=False)
class Tab:
    """One open page: its socket, the frames on their way, and what add-ons keep for it (`state`, by add-on).

    Nothing waits for the page to read: send() queues a frame, and a writer started for the socket sends what
    is queued and ends. Progress waits per task, so a page that falls behind gets the latest bar and the log
    lines it missed in one frame; a page that falls OUTBOX_FRAMES other frames behind is closed.
    """
    socket: WebSocket
    outbox: deque = field(default_factory=deque)
    progress: dict = field(default_factory=dict)  # task id -> Pending
    state: dict = field(default_factory=dict)
    writer: asyncio.Task | None = None
    open: bool = True

    def send(self, *parts) -> None:
        if not self.open:
            return
        if len(self.outbox) >= OUTBOX_FRAMES:
            return self.drop()
        self.outbox.append(to_xml(*parts, indent=False))
        self.flush()

    def report(self, task_id: int, done: int, total: int, lines: list[str]) -> None:
        if not self.open:
            return
        if (pending := self.progress.get(task_id)) is None:  # not setdefault: it would build a Pending every time
            pending = self.progress[task_id] = Pending()
        pending.add(done, total, lines)
        self.flush()

    def finish(self, task_id: int, *parts) -> None:
        """The task's last frames, in order: the progress not sent yet, then its row."""
        if pending := self.progress.pop(task_id, None):
            self.outbox.append(pending.frame(task_id))
        self.send(*parts)

    def flush(self) -> None:
        """Start a writer unless one is sending. It starts eagerly: a page that is reading gets the frame now, in
        the caller's turn of the loop, not after every other task that is due in that turn has run."""
        if not self.writer or self.writer.done():
            self.writer = start_eagerly(self.write())

    async def write(self) -> None:
        try:
            while self.outbox or self.progress:
                if self.outbox:
                    text = self.outbox.popleft()
                else:
                    task_id, pending = self.progress.popitem()
                    text = pending.frame(task_id)
                try:
                    await self.socket.send_text(text)
                except UnicodeEncodeError:
                    await self.socket.send_text(scrub(text))
        except (WebSocketDisconnect, RuntimeError):  # the page has gone: nothing more to queue for it
            self.open = False

    def drop(self) -> None:
        """Close a page that stopped reading: its frames would pile up without bound."""
        log.warning("closing a tab that fell %s frames behind", len(self.outbox))
        self.close()
        self.outbox.clear()
        self.progress.clear()
        self.writer = asyncio.create_task(self.hang_up())

    async def hang_up(self) -> None:
        with suppress(WebSocketDisconnect, RuntimeError):
            await self.socket.close(code=1013, reason="This page fell behind: reload it.")

    def close(self) -> None:
        self.open = False
        if self.writer:
            self.writer.cancel()
        for closed in CLOSED:
            closed(self)


TABS: dict[str, Tab] = {}  # open pages by tab id; empty again once every page has closed
TAB_ID = re.compile(r"[\w-]{1,64}")


async def ws(socket: WebSocket):
    tab_id = socket.query_params.get("tab", "")
    await socket.accept()
    if not TAB_ID.fullmatch(tab_id):
        return await socket.close(code=1008, reason="Connect to /ws?tab=<the tab id of the page>.")
    # The page picks its tab id, so a reconnecting page takes its own tab over; another user's page must not take
    # it, or the page it belongs to would stop getting its frames.
    if (held := TABS.get(tab_id)) and auth.current_user(held.socket) != auth.current_user(socket):
        return await socket.close(code=1008, reason="That tab is another user's.")
    tab = TABS[tab_id] = Tab(socket)
    try:
        while (message := await socket.receive())["type"] == "websocket.receive":
            if FRAMES:  # else the page only listens: progress and finished rows come this way
                on_frame(tab, message.get("text"))
    finally:
        tab.close()
        if TABS.get(tab_id) is tab:
            del TABS[tab_id]


FRAMES: dict = {}  # frame type -> handler(tab, frame), of the add-ons that take frames from the page
NOTES: list = []  # how each of those shows a one-line note in the page (for a frame no handler takes)
CLOSED: list = []  # handlers(tab) of add-ons that keep something per tab, called once its page has gone (or is dropped)
SOCKETS = {"/ws": ws}  # websocket handlers by path


def take_frames(handlers: dict, *, note, closed=None) -> None:
    """For an add-on that takes frames from the page: its handlers by frame type, how it shows a one-line note, and
    what to do once a tab's page has gone (a function of the tab; it may be called more than once)."""
    FRAMES.update(handlers)
    NOTES.append(note)
    if closed:
        CLOSED.append(closed)


def on_frame(tab: Tab, text: str | None) -> None:
    """Hand one frame from the page, {"type": ..., ...}, to the handler of its type."""
    note = NOTES[-1]
    if text is None or len(text.encode(errors="surrogatepass")) > MAX_FRAME:
        return tab.send(note(f"Send JSON text frames of at most {MAX_FRAME // 1024} KiB."))
    try:
        frame = json.loads(text)
    except (ValueError, RecursionError):
        return tab.send(note("That frame was not JSON: send {\"type\": ..., ...}."))
    kind = frame.get("type") if isinstance(frame, dict) else None
    if handler := FRAMES.get(kind) if isinstance(kind, str) else None:
        return handler(tab, frame)
    named = f" {scrub(kind)[:40]!r}" if isinstance(kind, str) else ""
    kinds = " or ".join(f'"{kind}"' for kind in FRAMES)
    tab.send(note(f"Unknown frame type{named}: use {kinds}."))


async def live_reload(socket: WebSocket) -> None:
    """Held open while the page is; static/live-reload.js reloads the page once it closes and the server is
    back. A page that goes away is no error (FastHTML's own handler logged one for every page change)."""
    await socket.accept()
    while (await socket.receive())["type"] == "websocket.receive":
        pass


if DEV:
    SOCKETS["/live-reload"] = live_reload
