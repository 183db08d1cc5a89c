"""A run, from its own side: the child process run_tool() starts (child_main), which calls the tool, or runs the
notebook (notebooks.py), passes its report() calls and printed lines to the server through a Link, and sends back
its result as HTML (results.py). Runs in a run's child process; toolbox is the first thing it imports.
"""
from __future__ import annotations

import asyncio
import inspect
import io
import json
import os
import re
import signal
import sys
import threading
import traceback
import typing
from contextlib import suppress
from multiprocessing.connection import Connection
from pathlib import Path
from urllib.parse import quote

from .common import Cancelled, ToolFailed, install_hint, load_module, one_line, place
from .kinds import argument
from .results import owner_only, render_result, unique

NICENESS = 10  # tools run at a lower CPU priority than the server: pages stay quick while tools fill every core
BAR_EVERY = 0.05  # the child sends progress at most 20 times a second; the parent's tab needs no more
MAX_LINE = 2_000  # characters of a log line (printed or reported); a longer one is cut, and kept whole in LONG_LINES
LONG_LINES = "long-lines.txt"
MAX_PENDING = 2**20  # characters printed without a newline before they are a log line of their own
PR_SET_PDEATHSIG = 1  # from linux/prctl.h


def child_main(fd: int) -> None:
    """The child process: read the job, run the tool, send back its result as HTML."""
    os.umask(0o077)  # what the run writes, and its kernel, is this user's only: the app serves it to whom it may
    os.nice(NICENESS)
    lower_session_priority(os.getpid())
    conn = Connection(fd)
    job = json.loads(conn.recv_bytes())
    die_with_parent(job["parent"])
    link = Link(conn, Path(job["outputs"]))
    sys.stdout = printed = Printed(link)
    source, outputs = Path(job["source"]), Path(job["outputs"])
    before, after = job["href"]

    def href(name: str) -> str:
        return before + quote(name) + after

    try:
        if job["notebook"]:
            from . import notebooks

            result = notebooks.run_notebook(source, job["params"], outputs, href, link, sockets=Path(job["sockets"]))
        else:
            value = call(source, job["name"], job["params"], link)
            printed.flush()
            result = render_result(value, outputs, href, name=job["name"])
    except Cancelled:
        printed.flush()
        link.finish("cancelled")
    except BaseException as error:
        printed.flush()
        message, shown = (str(error), error.shown) if isinstance(error, ToolFailed) else (failure(source, error), "")
        link.finish("failed", message, "".join(traceback.format_exception(error)), shown)
    else:
        printed.flush()
        link.finish("done", result)


def lower_session_priority(pid: int) -> None:
    """NICENESS for the whole session `pid` leads (a tool's process, a notebook's kernel): Linux shares CPU time
    between sessions (autogroups) before nice values count, so a nice value alone counts only inside the session.
    Without autogroups there is no such file, and nice values suffice."""
    with suppress(OSError):
        Path(f"/proc/{pid}/autogroup").write_text(str(NICENESS))


def die_with_parent(parent: int) -> None:
    """Have Linux kill this process when the server's dies, even by kill -9 (what it started is then
    reap_leftovers()'s, at the next start). A server that died before this call shows as a changed parent pid.
    macOS has no such call: there Link.send_every ends the run's group once the pipe to the server closes."""
    if sys.platform == "linux":
        import ctypes

        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    if os.getppid() != parent:
        os._exit(1)


def call(source: Path, name: str, params: dict, link: Link):
    """The tool called with its answers. An empty answer (None) leaves a parameter's own default, which a form
    cannot always show (a file's, such as Path("orders.csv")), as an empty field of a notebook does."""
    fn = getattr(load_module(source), name)
    hints = typing.get_type_hints(fn)
    kwargs = {}
    for param in inspect.signature(fn).parameters.values():
        if param.name == "report":
            kwargs["report"] = link.areport if inspect.iscoroutinefunction(fn) else link.report
        elif param.name in params and not (params[param.name] is None and param.default is not param.empty):
            kwargs[param.name] = argument(hints.get(param.name, str), params[param.name])
    if inspect.iscoroutinefunction(fn):
        return asyncio.run(fn(**kwargs))
    return fn(**kwargs)


def failure(source: Path, error: BaseException) -> str:
    """"KeyError: 'country' (sales.py:12)": the error and the deepest line of the tool's own file it passed; for a
    module that is not installed, the command that adds it (a notebook's too, whose error its kernel names)."""
    if type(error).__name__ == "CellExecutionError":  # nbclient's: the kernel's error, named by the kernel
        name, value = getattr(error, "ename", "Error"), " ".join(str(getattr(error, "evalue", "")).split())
        missing = re.fullmatch(r"No module named '([\w.]+)'", value) if name == "ModuleNotFoundError" else None
        hint = install_hint(ModuleNotFoundError(name=missing[1])) if missing else ""
        return f"{name}: {value} ({source.name}){hint}"
    where = place(source, error.__traceback__)
    return (f"{one_line(error)} ({where})" if where else one_line(error)) + install_hint(error)


class Link:
    """The child's end of the pipe. report() only records the latest bar and the new lines; a thread sends them
    every BAR_EVERY seconds, a bar only when it moved (so a tool may report a million times a second, and one
    that reports the same bar wakes the server for nothing), and notices Cancel. A line longer than MAX_LINE is
    cut; the whole of it goes to a file in the run's folder, LONG_LINES, which the cut line names."""

    def __init__(self, conn: Connection, outputs: Path):
        self.conn, self.lock = conn, threading.Lock()
        self.bar: tuple[int, int] | None = None
        self.sent: tuple[int, int] | None = None
        self.lines: list[str] = []
        self.outputs, self.whole = outputs, None  # the folder, and the open file of long lines once one is cut
        self.cancelled = False
        self.finished = threading.Event()
        self.pump = threading.Thread(target=self.send_every, daemon=True)
        self.pump.start()

    def report(self, done: int, total: int, line: str = "") -> None:
        if self.cancelled:
            raise Cancelled
        bar = int(done), int(total)
        with self.lock:
            self.bar = bar
            if line:
                self.lines.append(self.fit(str(line)))

    async def areport(self, done: int, total: int, line: str = "") -> None:
        self.report(done, total, line)

    def say(self, text: str) -> None:
        """A log line without a bar (what the tool prints)."""
        with self.lock:
            self.lines.append(self.fit(text))

    def fit(self, line: str) -> str:
        """The line as the log keeps it (called with the lock held): every line is stored, sent to each open tab and
        shown in the page, so one must not weigh megabytes."""
        if len(line) <= MAX_LINE:
            return line
        if self.whole is None:
            self.whole = open(unique(self.outputs, LONG_LINES), "x", encoding="utf-8", errors="surrogatepass",
                              opener=owner_only)
        self.whole.write(line + "\n")
        self.whole.flush()
        return f"{line[:MAX_LINE]}… [cut at {MAX_LINE:,} of {len(line):,} characters; the whole line is in " \
               f"{Path(self.whole.name).name}, among the run's files]"

    def send_every(self) -> None:
        try:
            while not self.finished.wait(BAR_EVERY):
                if not self.cancelled and self.conn.poll():
                    self.cancelled = json.loads(self.conn.recv_bytes()) == "cancel"
                self.send_progress()
        except (EOFError, OSError):  # the server has gone: end the run's group, this process with it (on Linux,
            os.killpg(0, signal.SIGKILL)  # die_with_parent has done so already; macOS needs this)

    def send_progress(self) -> None:
        with self.lock:
            bar, lines, self.bar, self.lines = self.bar, self.lines, None, []
        if bar == self.sent:
            bar = None
        if bar or lines:
            self.conn.send_bytes(json.dumps(["progress", bar, lines]).encode())
            self.sent = bar or self.sent

    def finish(self, *message) -> None:
        self.finished.set()
        self.pump.join()
        self.send_progress()
        self.conn.send_bytes(json.dumps(message).encode())


class Printed(io.TextIOBase):
    """sys.stdout in the child: each printed line becomes a log line of the run. The line being printed is kept in
    pieces (adding to one string would copy it on every write), up to MAX_PENDING characters."""
    encoding = "utf-8"

    def __init__(self, link: Link):
        super().__init__()
        self.link, self.partial, self.pending = link, [], 0

    def writable(self) -> bool:
        return True

    def write(self, text: str) -> int:
        *lines, rest = text.split("\n")
        for line in lines:
            self.link.say("".join([*self.partial, line]).rstrip("\r"))
            self.partial, self.pending = [], 0
        if rest:
            self.partial.append(rest)
            self.pending += len(rest)
            if self.pending > MAX_PENDING:
                self.flush()
        return len(text)

    def flush(self) -> None:
        if self.partial:
            self.link.say("".join(self.partial))
            self.partial, self.pending = [], 0
