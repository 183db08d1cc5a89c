"""Tasks: work that runs on the server's event loop for a tab, its progress kept in memory, pushed to the tab
and saved in batches, and the routes that show, cancel and read a task."""
import asyncio
import fcntl
import html
import json
import logging
import os
import time
from collections import deque
from contextlib import suppress
from dataclasses import dataclass, field, replace
from functools import partial

import anyio
from fasthtml.common import APIRouter, Div, FileResponse, Pre, Response, Safe, to_xml

import toolbox
from toolbox import scrub
from core.db import BUSY_ERRORS, OUTPUTS, Task, backend, by_id, db, fits, tasks, transaction
from core.live import TABS
from core.auth import current_user
from core.profiles import current_profile
from core.security import notice
from core.task_rows import TASK_LOG_LINES, TaskRow, UnknownTask
from settings import BUSY_TIMEOUT, DATA

INTERRUPTED = "Interrupted: the server stopped while this task was running. Run it again to start over."
NO_FILE = "That file does not exist, or belongs to another profile's task."
SAVE_EVERY = 2.0  # what a server that dies can lose of running tasks' progress; pages read it from memory
PUSH_EVERY = 0.05  # progress frames per task and tab: 20 a second at most, the latest bar wins
REPORT_SLICE = 0.005  # a task that reports in a tight loop holds the event loop this long at most
INLINE_SUFFIXES = {".png", ".jpg", ".jpeg", ".gif", ".webp"}  # shown in the page; every other file downloads

log = logging.getLogger(__name__)
router = APIRouter()


# The task contract, for add-on modules and notebooks:
#   async def fn(report, **params) -> str | FT
#     `await report(done, total, line="")` records progress: every line and the last done/total reach the
#     `tasks` table and the page of the tab that started the task, if it is still open (a few times a second,
#     however often fn reports). done and total become whole numbers by int(); what int() refuses fails the
#     task right there. fn may raise: the task fails and the page shows the exception's message, never a
#     traceback. Cancel arrives as asyncio.CancelledError. A returned FT is stored as its HTML; a returned str
#     as escaped text.
#   start_task(req, *, title, fn, params) -> FT
#     Starts fn(report, **params) on the server's event loop for the request's tab (X-Tab header) and profile,
#     and returns the task-panel row for HTMX to insert. Call it from any handler, plain `def` or `async def`.
#     Its frames go to that tab only while the tab's socket is signed in as the request's user.
# fn runs on the event loop, so it must await whatever takes time; a tool (core/tool_pages.py) runs in a process
# of its own.


def new_task(req, *, title: str, kind: str = "", params: dict | None = None) -> Task:
    """The row of a task starting now for the request's tab and profile. A plain INSERT: fastlite's insert reads
    the table's schema three times first, and 500 tabs starting tasks at once waited on that. In a write
    transaction: on PostgreSQL a profile being deleted meanwhile would otherwise take the new run's row and folder
    with it."""
    row = dict(profile_id=current_profile(req.session).id, tab=req.headers.get("x-tab", ""), title=scrub(title),
               status="running", done=0, total=0, log="", result="", kind=kind,
               params="" if params is None else json.dumps(params), started=time.time(), ended=None)
    with transaction():
        task_id = db.execute(f"INSERT INTO tasks ({', '.join(row)}) VALUES ({', '.join('?' * len(row))}) "
                             "RETURNING id", list(row.values())).fetchone()[0]
    return Task(id=task_id, **row)


def start_task(req, *, title: str, fn, params: dict):
    task = new_task(req, title=title)
    launch(task, partial(fn, **params), user=current_user(req))
    return TaskRow(task)


def launch(task: Task, work, user: str | None = None) -> None:
    """Run `await work(report)` as the task on the event loop, whether the handler runs there or in a worker
    thread. `user` started it (None while sign-in is off): only their tab gets its frames."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return anyio.from_thread.run_sync(launch, task, work, user)
    run = RUNS[task.id] = Run(task, user=user)
    run.job = asyncio.create_task(run.execute(work))


def result_html(result) -> str:
    """A finished task's result as HTML: a str is text, Safe HTML and FT are markup, and a result that cannot
    be shown is its repr (the work is done either way)."""
    if isinstance(result, str) and not isinstance(result, Safe):
        return html.escape(result)
    try:
        return to_xml(result)
    except Exception:
        log.exception("showing a task's result failed")
        return to_xml(Pre(repr(result)))


def failed(message: str, shown: str = "") -> dict:
    """A failed task's row: its one line, then what the run showed before it failed (a notebook's outputs up to the
    failing cell and the executed notebook: HTML toolbox made safe)."""
    return dict(status="failed", result=scrub(html.escape(f"Failed: {message}") + shown))


def save_tasks(batch: list[tuple[tuple, int, list[str]]]) -> None:
    """Write tasks' rows (status, done, total, log, result, id) and their new log lines, numbered from the given
    first one, in one transaction; runs in a worker thread. Each through one executemany, whose loop is in C and
    lets go of the GIL on every row: a Python call per task, or one JSON of every row, held the GIL long enough,
    with hundreds of tasks running, to delay every tab's frames."""
    now = time.time()
    with transaction():
        db.executemany(backend.SAVE_LINES,
                       [(row[-1], first, json.dumps(lines)) for row, first, lines in batch if lines])
        # A plain UPDATE: fastlite's update re-reads the table schema on every call. A task's end is when its
        # final row is written.
        db.executemany("UPDATE tasks SET status = ?, done = ?, total = ?, log = ?, result = ?, "
                       "ended = CASE WHEN ? = 'running' THEN NULL ELSE coalesce(ended, ?) END WHERE id = ?",
                       [(*row[:5], row[0], now, row[5]) for row, _, _ in batch])


def save_each(runs: list, batch: list) -> list[tuple]:
    """Write each run's row on its own; the runs whose row the database refuses, each with why. Such a row is
    written as failed, without its progress, so that a restart does not show it running."""
    refused = []
    for run, (row, first, lines) in zip(runs, batch):
        try:
            save_tasks([(row, first, lines)])
        except Exception as error:
            refused.append((run, error))
            with suppress(Exception):
                save_tasks([(("failed", 0, 0, "", html.escape(f"Failed: {toolbox.one_line(error)}"), row[-1]), first, [])])
    return refused


class Saver:
    """Writes running tasks to the database, one write at a time, each one thread hop and one transaction however
    many tasks it holds: all their progress every SAVE_EVERY seconds, and at once when a task ends, with every
    other task that ended meanwhile. A write that fails puts its rows back, and the next one carries them."""

    def __init__(self):
        self.unsaved: dict = {}  # runs with progress not written yet, in order (a dict used as a set)
        self.ended: list[asyncio.Future] = []  # resolved by the next write that lands: it holds their final rows
        self.wake: asyncio.Future | None = None
        self.writer: asyncio.Task | None = None

    def mark(self, run) -> None:
        self.unsaved[run] = None
        if not self.writer:
            self.writer = asyncio.create_task(self.write_all())

    async def save(self, run) -> None:
        """Returns once the run's row as it stands now is in the database. Hundreds of tasks ending at once
        share a write, rather than each waiting its turn for one of its own."""
        written = asyncio.get_running_loop().create_future()
        self.ended.append(written)
        self.mark(run)
        if self.wake and not self.wake.done():
            self.wake.set_result(None)
        await written

    async def write_all(self) -> None:
        try:
            while self.unsaved:
                if not self.ended:
                    self.wake = asyncio.get_running_loop().create_future()
                    await asyncio.wait([self.wake], timeout=SAVE_EVERY)
                if not await self.write():
                    await asyncio.sleep(SAVE_EVERY)
        finally:
            self.writer = None

    async def write(self) -> bool:
        """Write every marked run's row as it stands; whether it landed."""
        runs, ended = list(self.unsaved), self.ended
        self.unsaved, self.ended = {}, []
        batch = [run.snapshot() for run in runs]
        try:
            await asyncio.to_thread(save_tasks, batch)
        except BUSY_ERRORS:
            log.warning("the database is busy: the progress of %s task(s) waits for the next save", len(runs))
            for run, (_, first, lines) in zip(runs, batch):
                run.unsaved[:0], run.lines_saved = lines, first
            self.unsaved = dict.fromkeys(runs) | self.unsaved
            self.ended[:0] = ended
            return False
        except Exception as error:  # a row the database refuses: each alone, so it holds back no other task
            log.error("saving task progress failed; saving each task alone", exc_info=error)
            for run, refused in await asyncio.to_thread(save_each, runs, batch):
                run.fail(f"its progress could not be saved ({toolbox.one_line(refused)})")
        for written in ended:
            if not written.done():  # its task was cancelled while it waited
                written.set_result(None)
        return True


SAVER = Saver()


@dataclass(eq=False)
class Run:
    """A running task's row, kept current in memory, pushed to its tab at most every PUSH_EVERY seconds and saved
    with every other running task's every SAVE_EVERY seconds; both again at the end."""
    task: Task
    user: str | None = None  # who started it
    tail: deque = field(default_factory=lambda: deque(maxlen=TASK_LOG_LINES))
    unsent: list = field(default_factory=list)
    unsaved: list = field(default_factory=list)
    lines_saved: int = 0
    pushed: float = 0.0
    yielded: float = 0.0
    timer: asyncio.TimerHandle | None = None
    job: asyncio.Task | None = None
    cancelled: bool = False  # by its Cancel button; a server that stops cancels the rest, which are interrupted
    failure: str = ""  # why the server stopped it, when neither Cancel nor a stopping server did
    ending: bool = False

    @property
    def current(self) -> Task:
        return replace(self.task, log="".join(self.tail))

    async def report(self, done: int, total: int, line: str = "") -> None:
        try:
            bar = int(done), int(total)
        except (TypeError, ValueError, OverflowError):  # fails this task here, not the tab's frames later
            bar = None
        if bar is None or not all(map(fits, bar)):  # one that SQLite cannot store would fail every task's save
            raise ValueError(f"report(done, total) takes whole numbers below 2**63, not {done!r:.40} and "
                             f"{total!r:.40}")
        self.task.done, self.task.total = bar
        if line:
            line = scrub(str(line))
            self.tail.append(line + "\n")
            self.unsent.append(line)
            self.unsaved.append(line)
        if not self.timer:
            if (wait := self.pushed + PUSH_EVERY - time.monotonic()) <= 0:
                self.push()
            else:
                self.timer = asyncio.get_running_loop().call_later(wait, self.push)
        SAVER.mark(self)
        if time.monotonic() - self.yielded >= REPORT_SLICE:  # every other tab runs between slices
            await asyncio.sleep(0)
            self.yielded = time.monotonic()

    def push(self) -> None:
        """Send the tab the latest bar and the log lines since the last push."""
        self.timer, self.pushed = None, time.monotonic()
        lines, self.unsent = self.unsent, []
        if tab := self.tab():
            tab.report(self.task.id, self.task.done, self.task.total, lines)

    def tab(self):
        """The open page that started the task, while its socket is signed in as the user who did: a socket
        opened for another page's tab id, by someone else, gets no frame of this task."""
        tab = TABS.get(self.task.tab)
        return tab if tab and current_user(tab.socket) == self.user else None

    def snapshot(self) -> tuple[tuple, int, list[str]]:
        """The row as it stands, the log lines not saved yet and the number of the first, for a write. Plain
        values, not a copy of the Task: a copy costs more than the write, with hundreds of tasks saved at once."""
        lines, first, self.unsaved = self.unsaved, self.lines_saved, []
        self.lines_saved += len(lines)
        task = self.task
        return (task.status, task.done, task.total, "".join(self.tail), task.result, task.id), first, lines

    async def execute(self, work) -> None:
        try:
            outcome = dict(status="done", result=scrub(result_html(await work(self.report))))
        except asyncio.CancelledError:
            outcome = failed(self.failure) if self.failure else \
                dict(status="cancelled", result="Cancelled.") if self.cancelled else \
                dict(status="interrupted", result=INTERRUPTED)
        except toolbox.ToolFailed as error:  # its traceback is in the log already
            outcome = failed(str(error), error.shown)
        except Exception as error:
            log.exception("task %s (%s) failed", self.task.id, self.task.title)
            outcome = failed(str(error) or type(error).__name__)
        await asyncio.shield(self.end(outcome))  # a second Cancel, or the server stopping, cannot cut it short

    def fail(self, message: str) -> None:
        """Stop the task as failed, with this one line, unless it is ending already."""
        if not self.ending:
            self.failure = message
            self.job.cancel()

    async def end(self, outcome: dict) -> None:
        self.ending = True
        if self.timer:
            self.timer.cancel()
        self.push()
        # What a poll or Cancel shows meanwhile, and the final frame
        self.task = replace(self.task, log="".join(self.tail), ended=time.time(), **outcome)
        await SAVER.save(self)
        RUNS.pop(self.task.id)
        if tab := self.tab():
            tab.finish(self.task.id, TaskRow(self.task)(hx_swap_oob="true"))


RUNS: dict[int, Run] = {}  # tasks running now, by id


async def interrupt_runs() -> None:
    """A server that stops saves its running tasks as interrupted, with their progress, before it exits."""
    if jobs := [run.job for run in RUNS.values()]:
        for job in jobs:
            job.cancel()
        await asyncio.wait(jobs, timeout=BUSY_TIMEOUT)


def task_of(sess: dict, task_id: int) -> Task | None:
    """The task as it stands now, if it is this browser's profile's (so its user's, or an admin's choosing)."""
    task = run.current if (run := RUNS.get(task_id)) else by_id(tasks, task_id)
    return task if task and task.profile_id == current_profile(sess).id else None


def TaskList(profile_id: int, kind: str | None = None):
    """The profile's newest tasks (of one kind, if given), running ones as they stand in memory: a running task
    is saved only every SAVE_EVERY."""
    where, args = ("profile_id = ?", [profile_id]) if kind is None else \
        ("profile_id = ? AND kind = ?", [profile_id, kind])
    saved = tasks(where=where, where_args=args, order_by="id desc", limit=20)
    return Div(*(TaskRow(run.current if (run := RUNS.get(task.id)) else task) for task in saved), id="task-list")



DATA_LOCK: list[int] = []  # the descriptor holding data/server.lock, once this process owns data/


def data_owner() -> bool:
    """Whether this process owns data/: the lock is held until the process exits, so a second server on the same
    folder, or a start that fails because the port is taken, knows the tasks marked running are not its own."""
    if not DATA_LOCK:
        fd = os.open(DATA / "server.lock", os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(fd)
            return False
        DATA_LOCK.append(fd)
    return True


def mark_interrupted() -> None:
    """At start-up, the tasks a stopped server left running are interrupted: only the owner of data/ says so, and
    of the database (on PostgreSQL, other servers with data folders of their own may be running theirs)."""
    if data_owner():
        toolbox.reap_leftovers(OUTPUTS)  # first: what a killed server left running would write into those runs
        if db.owns_running_tasks():
            db.execute("UPDATE tasks SET status = 'interrupted', result = ? WHERE status = 'running'", [INTERRUPTED])


@router.get("/tasks/{id}")
def tasks_row(sess, id: int):
    task = task_of(sess, id)
    return TaskRow(task) if task else UnknownTask(id)


def full_log(task_id: int) -> Response:
    """Every line the task logged, as text."""
    lines = db.execute("SELECT line FROM task_lines WHERE task_id = ? ORDER BY n", [task_id]).fetchall()
    return Response("".join(f"{line}\n" for line, in lines), media_type="text/plain")


def output_file(task_id: int, name: str):
    """A file the task's run wrote, straight inside its outputs folder; images show, the rest download."""
    path = OUTPUTS / str(task_id) / name
    if "/" in name or "\\" in name or name.startswith(".") or path.is_symlink() or not path.is_file():
        return notice(NO_FILE, 404)
    shown = path.suffix.lower() in INLINE_SUFFIXES
    return FileResponse(path, filename=name, content_disposition_type="inline" if shown else "attachment")


@router.get("/tasks/{id}/log")
def tasks_log(sess, id: int):
    return full_log(id) if task_of(sess, id) else UnknownTask(id)


@router.get("/tasks/{id}/files/{name}")
def tasks_file(sess, id: int, name: str):
    return output_file(id, name) if task_of(sess, id) else notice(NO_FILE, 404)


@router.post("/tasks/{id}/cancel")
async def tasks_cancel(sess, id: int):
    """Cancel and answer with the row as it ends; a task that ignores the cancel for a second keeps polling."""
    if not await asyncio.to_thread(task_of, sess, id):
        return UnknownTask(id)
    if run := RUNS.get(id):
        run.cancelled = True
        run.job.cancel()
        await asyncio.wait([run.job], timeout=1)
        return TaskRow(run.current)
    return TaskRow(await asyncio.to_thread(tasks.get, id))
