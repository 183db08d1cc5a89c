"""A run, from the server's side: run_tool() starts a child process for it (child.py), follows its progress,
cancels it, and ends every process it started, wherever they went (containment). Runs in the server.
"""
from __future__ import annotations

import asyncio
import functools
import json
import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from contextlib import suppress
from multiprocessing.connection import Connection, Pipe
from pathlib import Path

from .common import Tool, ToolFailed, size_text

log = logging.getLogger(__name__)

CANCEL_GRACE = 3.0  # seconds a cancelled tool has to reach its next report() before its process is killed


async def run_tool(tool: Tool, params: dict, *, report, outputs: Path, download_url: Callable[[str], str]) -> str:
    """Run the tool in a child process with its cwd in `outputs`, passing its progress to `await report(done,
    total, line)`; the result as HTML. Raises ToolFailed with a one-line message, or CancelledError after
    cancelling the child (killed if it does not stop within CANCEL_GRACE). Every process the run started ends with
    it (end_run), and a run whose folder grows past MAX_DISK is stopped and fails (watch_disk)."""
    # Folders are made and removed in threads: the app's, or the temporary folder, may be on a slow drive (a Windows
    # one under WSL 2). The kernel's is made and removed here, not in the child: one killed on Cancel could not.
    outputs = Path(outputs).resolve()
    await asyncio.to_thread(outputs.mkdir, mode=0o700, parents=True, exist_ok=True)
    sockets = await asyncio.to_thread(kernel_folder) if tool.notebook else None
    if sockets:
        await asyncio.to_thread(note_kernel, outputs, sockets.name)
    before, after = download_url("NAME").rsplit("NAME", 1)  # the child builds each link from these two halves
    job = dict(source=str(tool.source.resolve()), name=tool.name, notebook=tool.notebook, params=params,
               outputs=str(outputs), href=[before, after], sockets=sockets and sockets.name, parent=os.getpid())
    ours, theirs = Pipe()
    app_dir = str(tool.source.resolve().parent.parent)
    # A fresh interpreter rather than multiprocessing's spawn or forkserver: those import the parent's __main__
    # (server.py) into the child again, which would open the database and load the web stack for every run.
    # Started from the event loop's thread, which lasts as long as the server: Linux's PR_SET_PDEATHSIG (see
    # child.die_with_parent) fires when the thread that started the child ends, not only its process.
    child = subprocess.Popen(
        [sys.executable, "-c", "import sys; sys.path.insert(0, sys.argv[1]); from toolbox import child; "
                               "child.child_main(int(sys.argv[2]))", app_dir, str(theirs.fileno())],
        pass_fds=[theirs.fileno()], cwd=outputs, stdin=subprocess.DEVNULL, start_new_session=True,
        env={**os.environ, RUN_MARK: str(outputs)})
    theirs.close()
    inbox: asyncio.Queue = asyncio.Queue()
    sending = threading.Lock()  # the job and a cancel, sent from two threads, must not interleave on the pipe
    threading.Thread(target=listen, args=(ours, sending, json.dumps(job).encode(), asyncio.get_running_loop(),
                                          inbox), daemon=True).start()
    over: list[str] = []  # why watch_disk stopped the run, once it has
    watched = threading.Event()
    threading.Thread(target=watch_disk, args=(outputs, child, watched, over), daemon=True).start()
    try:
        return await follow(inbox, report, child, tool)
    except ToolFailed:
        if over:  # the child was killed for it: say why, rather than which signal
            raise ToolFailed(over[0]) from None
        raise
    except asyncio.CancelledError:
        stopping = asyncio.ensure_future(stopped(inbox, ours, sending))
        try:
            await asyncio.wait([stopping], timeout=CANCEL_GRACE)
        finally:
            stopping.cancel()
            kill(child)
        raise
    except BaseException:
        kill(child)
        raise
    finally:
        watched.set()
        await asyncio.to_thread(end_run, child, outputs)
        ours.close()
        if sockets:
            await asyncio.to_thread(drop_kernel, outputs, sockets)


def listen(conn: Connection, sending: threading.Lock, job: bytes, loop: asyncio.AbstractEventLoop,
           inbox: asyncio.Queue) -> None:
    """In a thread: send the job (a large form would block the loop until the child reads it), then hand each
    message from the child to the loop, and None when the child's end closes."""
    with sending, suppress(OSError):  # a child that died at once: its exit code tells why
        conn.send_bytes(job)
    while True:
        try:
            message = json.loads(conn.recv_bytes())
        except (EOFError, OSError, ValueError):
            message = None
        try:
            loop.call_soon_threadsafe(inbox.put_nowait, message)
        except RuntimeError:  # the loop has closed: nobody is waiting
            return
        if message is None:
            return


async def follow(inbox: asyncio.Queue, report, child: subprocess.Popen, tool: Tool) -> str:
    done = total = 0
    while (message := await inbox.get()) is not None:
        kind, *rest = message
        if kind == "progress":
            bar, lines = rest
            done, total = bar or (done, total)
            for line in lines or [""]:
                await report(done, total, line)
        elif kind == "done":
            return rest[0]
        elif kind == "failed":
            log.error("tool %s failed:\n%s", tool.name, rest[1])
            raise ToolFailed(rest[0], rest[2])
    code = await asyncio.to_thread(child.wait)
    how = f"was stopped by signal {signal.Signals(-code).name}" if code < 0 else f"exited with code {code}"
    raise ToolFailed(f"the tool's process {how}")


async def stopped(inbox: asyncio.Queue, conn: Connection, sending: threading.Lock) -> None:
    """Ask the child to cancel, then wait for it to answer or close its end."""
    await asyncio.to_thread(cancel, conn, sending)
    while (message := await inbox.get()) is not None and message[0] not in ("cancelled", "done", "failed"):
        pass


def cancel(conn: Connection, sending: threading.Lock) -> None:
    with sending, suppress(OSError):  # it has already gone
        conn.send_bytes(b'"cancel"')


# --- containment: every process of a run ends with it --------------------------------------------------------------


def kill(child: subprocess.Popen) -> None:
    """End the child and the processes it started in its group (its own session). A group outlives its leader,
    so this also ends what an exited child left running there; what left the group is kill_marked()'s."""
    with suppress(ProcessLookupError, PermissionError):  # nothing left in the group
        os.killpg(child.pid, signal.SIGKILL)


def end_run(child: subprocess.Popen, outputs: Path) -> None:
    """In a thread, as the run ends (done, failed or cancelled): give a child that has answered CANCEL_GRACE to
    exit, then end every process of the run, wherever it went: its group, and those that left it."""
    try:
        child.wait(CANCEL_GRACE)
    except subprocess.TimeoutExpired:
        kill(child)
        child.wait()
    kill(child)
    kill_marked(lambda run: run == str(outputs))


# Every process of a run carries RUN_MARK, its outputs folder, in its environment: the child is started with it,
# and what it starts inherits it. A process group alone does not hold a run's processes: one started with
# start_new_session=True, or a notebook's kernel (jupyter_client starts it so), leaves the group, and a server
# killed with kill -9 leaves them all to pid 1. The mark still finds them, on Linux through /proc/<pid>/environ
# (a cgroup would need write access to one, which a user's session rarely grants; PR_SET_CHILD_SUBREAPER loses
# them once the child itself dies). A process the tool starts with an environment of its own, without the mark,
# is not found. macOS has no /proc: there a run's processes are its group's, and what leaves it may outlive it.
RUN_MARK = "TOOLBOX_RUN"
KILL_ROUNDS = 10  # passes over the processes, while each still finds one (a dying process may start another)


def kill_marked(belongs: Callable[[str], bool]) -> None:
    """Kill every process of this user whose RUN_MARK `belongs` (Linux; elsewhere there is no /proc to look in)."""
    for _ in range(KILL_ROUNDS):
        pids = [int(name) for name in os.listdir("/proc") if name.isdigit()] if os.path.isdir("/proc") else []
        if not [pid for pid in pids if pid != os.getpid() and kill_if(pid, belongs)]:
            return


def kill_if(pid: int, belongs: Callable[[str], bool]) -> bool:
    """Kill the process if its RUN_MARK belongs; whether it did. Through a pidfd: held while the mark is read, it
    cannot come to name a process that took the pid meanwhile."""
    try:
        handle = os.pidfd_open(pid)
    except ProcessLookupError:
        return False
    except OSError:  # Linux before 5.3 has no pidfds
        handle = None
    try:
        if (run := run_of(pid)) is None or not belongs(run):
            return False
        if handle is None:
            os.kill(pid, signal.SIGKILL)
        else:
            signal.pidfd_send_signal(handle, signal.SIGKILL)
        return True
    except OSError:  # it ended meanwhile
        return False
    finally:
        if handle is not None:
            os.close(handle)


def run_of(pid: int) -> str | None:
    """The process's RUN_MARK; None without one, for a zombie, or for another user's process (unreadable)."""
    try:
        with open(f"/proc/{pid}/environ", "rb") as file:
            environ = file.read()
    except OSError:
        return None
    mark = f"{RUN_MARK}=".encode()
    return next((os.fsdecode(entry[len(mark):]) for entry in environ.split(b"\0") if entry.startswith(mark)), None)


KERNELS = ".kernels"  # in the outputs root: a link per notebook run to its kernel's socket folder, while it runs


def note_kernel(outputs: Path, sockets: str) -> None:
    """Note where the run's kernel listens, so that a socket folder a dead server left is found at the next start."""
    registry = outputs.parent / KERNELS
    registry.mkdir(mode=0o700, exist_ok=True)
    (note := registry / outputs.name).unlink(missing_ok=True)
    note.symlink_to(sockets)


def drop_kernel(outputs: Path, sockets: tempfile.TemporaryDirectory) -> None:
    sockets.cleanup()
    (outputs.parent / KERNELS / outputs.name).unlink(missing_ok=True)


def reap_leftovers(outputs: Path) -> None:
    """At start-up, end what a server that died (kill -9, a crash, a power cut) left of its runs in `outputs`: their
    processes (the tool's own died with the server; Linux finds the rest by their RUN_MARK) and their kernels'
    socket folders. Only for the owner of the data folder: another server's runs are alive."""
    outputs = Path(outputs).resolve()
    kill_marked(lambda run: Path(run).parent == outputs)
    registry = outputs / KERNELS
    for note in registry.iterdir() if registry.is_dir() else ():
        with suppress(OSError):
            if (sockets := Path(os.readlink(note))).name.startswith("kernel-"):  # only what kernel_folder() made
                shutil.rmtree(sockets, ignore_errors=True)
            note.unlink()


MAX_DISK = 2 * 2**30  # bytes a run's folder may hold; past it the run is stopped and fails
DISK_EVERY = 1.0  # seconds between two looks at a run's folder, at the least


def watch_disk(outputs: Path, child: subprocess.Popen, done: threading.Event, over: list[str]) -> None:
    """In a thread of the server, until `done`: past MAX_DISK in the run's folder, note why in `over` and kill the
    run's processes. A folder of many files takes long to add up, so it is looked at less often: this thread
    shares the server's interpreter."""
    wait = DISK_EVERY
    while not done.wait(wait):
        started = time.monotonic()
        if folder_size(outputs) > MAX_DISK:
            over.append(f"the run's folder grew past {size_text(MAX_DISK)}, so the run was stopped")
            kill(child)
            kill_marked(lambda run: run == str(outputs))
            return
        wait = max(DISK_EVERY, 20 * (time.monotonic() - started))


def folder_size(folder: Path) -> int:
    """The bytes of the files in the folder and below, links not followed. The files' sizes, not the blocks they
    take: a file system that compresses, or is slow to allocate, would let a run write past the cap unseen."""
    total, pending = 0, [folder]
    while pending:
        with suppress(OSError), os.scandir(pending.pop()) as entries:  # removed meanwhile
            for entry in entries:
                with suppress(OSError):
                    total += entry.stat(follow_symlinks=False).st_size
                    if entry.is_dir(follow_symlinks=False):
                        pending.append(entry.path)
    return total


MAX_SOCKET_PATH = 103  # bytes in a Unix socket's path on macOS (107 on Linux)


def kernel_folder() -> tempfile.TemporaryDirectory:
    """A new private folder for a notebook kernel's sockets, removed by cleanup() or once dropped: in the temporary
    folder, or in /tmp when that one is too deep for a socket's path (macOS) or on a file system without Unix
    sockets (a Windows drive under WSL 2)."""
    temp = tempfile.gettempdir()
    longest = os.path.join(temp, "kernel-12345678", "ipc-5")  # mkdtemp's name for the folder; the kernel's last socket
    usable = len(os.fsencode(longest)) <= MAX_SOCKET_PATH and holds_sockets(temp)
    return tempfile.TemporaryDirectory(prefix="kernel-", ignore_cleanup_errors=True, dir=temp if usable else "/tmp")


@functools.cache  # asked once per folder: a Windows drive under WSL 2 is slow to make and remove folders on
def holds_sockets(folder: str) -> bool:
    """Whether a Unix socket can be made in the folder. No file system flag says so; WSL 2 refuses the bind
    (microsoft/WSL#5961)."""
    with tempfile.TemporaryDirectory(prefix="probe-", ignore_cleanup_errors=True, dir=folder) as probe:
        try:
            with socket.socket(socket.AF_UNIX) as listener:
                listener.bind(os.path.join(probe, "socket"))
        except OSError:
            return False
    return True
