"""Tools: the functions and notebooks under tools/, turned into forms, run in a child process and shown as HTML.

discover() reads tools/ into Tool descriptions (or Broken cards), parse() checks a submitted form against a Tool,
run_tool() runs one in a fresh child process and returns its result as an HTML fragment, render_result() turns a
value into that fragment. Notebooks are toolbox_notebooks.py's, imported only for one. Only the standard library is
imported here: the child process imports this module before anything else, and pandas, matplotlib, nbclient or nh3 are
imported only when a result or a notebook needs them.
"""
from __future__ import annotations

import asyncio
import datetime
import enum
import functools
import html
import importlib.util
import inspect
import io
import json
import logging
import math
import numbers
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import traceback
import types
import typing
from collections.abc import Callable, Mapping
from contextlib import suppress
from dataclasses import dataclass, is_dataclass
from multiprocessing.connection import Connection, Pipe
from pathlib import Path, PurePath
from urllib.parse import quote

log = logging.getLogger(__name__)

NICENESS = 10  # tools run at a lower CPU priority than the server: pages stay quick while tools fill every core
CANCEL_GRACE = 3.0  # seconds a cancelled tool has to reach its next report() before its process is killed
BAR_EVERY = 0.05  # the child sends progress at most 20 times a second; the parent's tab needs no more
DISCOVER_TIMEOUT = 10.0  # seconds a tool module may take to import before discovery gives up on it, with a card
TABLE_ROWS = 20
MAX_TEXT = 50_000  # characters of a text result shown inline (a page stays quick); the whole goes to a file
MAX_INT = 2**63 - 1  # what SQLite stores as a number, and far beyond any form answer a tool could mean
SUPPORTED = "str, int, float, bool, Literal[...], an Enum, datetime.date, pathlib.Path, list[str], or X | None"
NEED_JUPYTER = "Notebook tools need Jupyter: run `flakewright update -d jupyter=true`"
LONE_SURROGATE = re.compile(r"[\ud800-\udfff]")
KINDS = {str: "text", int: "int", float: "float", bool: "bool", datetime.date: "date", Path: "file"}


class Cancelled(BaseException):
    """Raised by report() after Cancel; a BaseException so that `except Exception` in a tool lets it through."""


class ToolFailed(Exception):
    """A run that ended in an error; the message is one line naming the error and the line of the tool's file.
    `shown` is the HTML of what the run showed before it failed (a notebook's outputs up to the failing cell, and
    the executed notebook), or ''."""

    def __init__(self, message: str, shown: str = ""):
        super().__init__(message)
        self.shown = shown


@dataclass(frozen=True, kw_only=True)
class Field:
    """One form field. `default` is in parse()'s terms: a date as ISO text, a choice as its text, lines as a list."""
    name: str
    label: str
    kind: str  # 'text', 'int', 'float', 'bool', 'choice', 'date', 'file' or 'lines'
    default: object
    required: bool
    choices: tuple[str, ...]
    help: str


@dataclass(frozen=True, kw_only=True)
class Tool:
    name: str
    title: str
    help: str
    source: Path
    fields: tuple[Field, ...]
    notebook: bool


@dataclass(frozen=True, kw_only=True)
class Broken:
    source: Path
    problem: str


class Unsupported(Exception):
    """A parameter discover() cannot make a field of."""


def discover(folder: Path, *, jupyter: bool) -> tuple[dict[str, Tool], list[Broken]]:
    """The tools in `folder` by name, and a card for each file or function that cannot be one. Modules are
    imported afresh on every call, so an edited file shows its edit, and in a child process, never in this one
    (read_modules); notebooks are only parsed, here."""
    found: dict[str, list[Tool]] = {}
    broken: list[Broken] = []
    folder = Path(folder).resolve()
    paths = [path for path in (sorted(folder.iterdir()) if folder.is_dir() else [])
             if not path.name.startswith(("_", ".")) and path.suffix in (".py", ".ipynb") and path.is_file()]
    modules = read_modules([path for path in paths if path.suffix == ".py"])
    for path in paths:
        tools, problems = modules[path] if path.suffix == ".py" else carded(notebook_tool, path, jupyter)
        for tool in tools:
            found.setdefault(tool.name, []).append(tool)
        broken += problems
    tools = {}
    for name, same in found.items():
        if len(same) == 1:
            tools[name] = same[0]
            continue
        files = " and ".join(tool.source.name for tool in same)
        broken += [Broken(source=tool.source, problem=f"Two tools are named {name}: in {files}; rename one.")
                   for tool in same]
    return tools, broken


def carded(read: Callable, path: Path, *args) -> tuple[list[Tool], list[Broken]]:
    """read(path, *args): the file's tools and cards, or one card if reading it fails (a bug here must cost one
    card, not the app)."""
    try:
        return read(path, *args)
    except Exception as error:
        log.exception("reading the tool file %s failed", path)
        return [], [Broken(source=path, problem=f"{path.name}: {one_line(error)}")]


def read_modules(paths: list[Path]) -> dict[Path, tuple[list[Tool], list[Broken]]]:
    """Each module's tools and cards, read in a child process: importing a module runs its code, which may exit,
    crash in C, hang or load pandas, and none of that may happen to the server. A module that ends the child or
    outlasts DISCOVER_TIMEOUT gets a card saying so, and a new child reads the modules after it."""
    read: dict[Path, tuple[list[Tool], list[Broken]]] = {}
    while len(read) < len(paths):
        read |= read_in_child(paths[len(read):])
    return read


def read_in_child(paths: list[Path]) -> dict[Path, tuple[list[Tool], list[Broken]]]:
    """The tools and cards of the first modules, in order, up to and including one that ends the child or
    outlasts DISCOVER_TIMEOUT. The first module's time includes the child's start."""
    ours, theirs = Pipe()
    # A fresh interpreter, as for a run (see run_tool), finding this very toolbox.py, and the app folder so that
    # tools import each other as tools.<x>. -B: writing tools/__pycache__ would change the folder the server
    # watches, and have it read the tools again.
    child = subprocess.Popen(
        [sys.executable, "-B", "-c", "import sys; sys.path[:0] = sys.argv[1:3]; import toolbox; "
                                     "toolbox.discovery_main(int(sys.argv[3]), sys.argv[4:])",
         str(Path(__file__).resolve().parent), str(paths[0].parent.parent), str(theirs.fileno()), *map(str, paths)],
        pass_fds=[theirs.fileno()], stdin=subprocess.DEVNULL, start_new_session=True)
    theirs.close()
    read = {}
    try:
        for path in paths:
            if not ours.poll(DISCOVER_TIMEOUT):
                read[path] = failed(path, f"importing it took longer than {DISCOVER_TIMEOUT:g} s")
                break
            try:
                read[path] = decoded(ours.recv_bytes())
            except EOFError:  # os._exit(), a crash in C, the kernel's out-of-memory killer
                read[path] = failed(path, f"importing it ended its process ({exit_status(child)})")
                break
    finally:
        ours.close()
        kill(child)  # with whatever the modules started: threads, processes
        child.wait()
    return read


def discovery_main(fd: int, sources: list[str]) -> None:
    """The discovery child: import each module in turn, and send its tools and cards to the server as JSON."""
    conn = Connection(fd)
    threading.Thread(target=exit_with_parent, args=(conn,), daemon=True).start()
    for path in map(Path, sources):
        conn.send_bytes(json.dumps(carded(module_tools, path), default=as_json).encode())


def exit_with_parent(conn: Connection) -> None:
    """In a thread of the discovery child: exit once the server closes its end of the pipe, as it does when done
    or when it dies, so that a module that never finishes importing never outlives it."""
    with suppress(EOFError, OSError):
        conn.poll(None)
    os._exit(0)


def as_json(value):
    """JSON's fallback: a Tool, Field or Broken as its fields, a path (or a default JSON cannot hold) as text."""
    return vars(value) if is_dataclass(value) else str(value)


def decoded(message: bytes) -> tuple[list[Tool], list[Broken]]:
    """A module's tools and cards as the discovery child sent them."""
    tools, broken = json.loads(message)
    return ([Tool(**{**tool, "source": Path(tool["source"]), "fields": tuple(
                Field(**{**field, "choices": tuple(field["choices"])}) for field in tool["fields"])})
             for tool in tools],
            [Broken(source=Path(card["source"]), problem=card["problem"]) for card in broken])


def exit_status(child: subprocess.Popen) -> str:
    """'exit code 3' or 'signal SIGSEGV'. A child that closed its end of the pipe and lives on is killed."""
    try:
        code = child.wait(DISCOVER_TIMEOUT)
    except subprocess.TimeoutExpired:
        kill(child)
        code = child.wait()
    if code >= 0:
        return f"exit code {code}"
    with suppress(ValueError):  # a real-time signal has no name
        return f"signal {signal.Signals(-code).name}"
    return f"signal {-code}"


def failed(path: Path, what: str) -> tuple[list[Tool], list[Broken]]:
    """No tools and a card, for a module that took the discovery child down with it; logged, as it is rare."""
    log.warning("the tool file %s: %s", path, what)
    return [], [Broken(source=path, problem=f"{path.name}: {what}")]


def load_module(path: Path) -> types.ModuleType:
    """A fresh import of tools/<stem>.py as the module tools.<stem>."""
    name = f"tools.{path.stem}"
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses and pickle look a module up by name while it runs
    try:
        spec.loader.exec_module(module)
    except BaseException:
        del sys.modules[name]
        raise
    return module


def module_tools(path: Path) -> tuple[list[Tool], list[Broken]]:
    try:
        module = load_module(path)
    except BaseException as error:  # in the discovery child: sys.exit() or KeyboardInterrupt is a card too
        return [], [Broken(source=path, problem=import_problem(path, error))]
    tools, broken = [], []
    for name, fn in vars(module).items():
        if name.startswith("_") or not inspect.isfunction(fn) or fn.__module__ != module.__name__:
            continue
        try:
            tools.append(function_tool(path, fn))
        except Unsupported as problem:
            broken.append(Broken(source=path, problem=f"{path.name}: {name}(): {problem}"))
    return tools, broken


def import_problem(path: Path, error: BaseException) -> str:
    """"sales.py:12: NameError: name 'x' is not defined", at the deepest line of that file the error passed."""
    if isinstance(error, SyntaxError) and error.filename and Path(error.filename).resolve() == path.resolve():
        return f"{path.name}:{error.lineno}: SyntaxError: {error.msg}"
    return f"{place(path, error.__traceback__) or path.name}: {one_line(error)}{install_hint(error)}"


def install_hint(error: BaseException) -> str:
    """For a module that is not installed, how to add it, by the command that exists here: `deps` in the Nix shell,
    the script without it. (A package may be named otherwise than its module: PIL is pillow.)"""
    if not isinstance(error, ModuleNotFoundError) or not error.name:
        return ""
    deps = "deps" if os.environ.get("IN_NIX_SHELL") else "./scripts/deps"
    return f"; add it with: {deps} add {error.name.partition('.')[0]}"


def place(path: Path, tb: types.TracebackType | None) -> str:
    """'sales.py:12' for the deepest frame of the traceback in that file, or ''."""
    where = ""
    for frame, line in traceback.walk_tb(tb):
        if Path(frame.f_code.co_filename).resolve() == path.resolve():
            where = f"{path.name}:{line}"
    return where


def one_line(error: BaseException) -> str:
    text = " ".join(str(error).split())
    text = f"{type(error).__name__}: {text}" if text else type(error).__name__
    return text if len(text) <= 300 else text[:299] + "…"


def function_tool(path: Path, fn: Callable) -> Tool:
    try:
        hints = typing.get_type_hints(fn)
    except Exception as error:
        raise Unsupported(f"its type hints do not resolve ({one_line(error)})") from None
    summary, helps = docstring(inspect.getdoc(fn) or "")
    fields = []
    for param in inspect.signature(fn).parameters.values():
        if param.name == "report":
            continue
        if param.kind in (param.VAR_POSITIONAL, param.VAR_KEYWORD):
            raise Unsupported(f"parameter {param.name}: *args and **kwargs cannot be form fields; use one of "
                              f"{SUPPORTED}")
        default = None if param.default is param.empty else param.default
        hint = hints.get(param.name, type(default) if default is not None else str)
        try:
            kind, choices, optional = field_type(hint)
        except Unsupported:
            raise Unsupported(f"parameter {param.name}: {type_name(hint)} is not supported; use one of "
                              f"{SUPPORTED}") from None
        fields.append(Field(name=param.name, label=label(param.name), kind=kind, choices=choices,
                            default=form_default(kind, default), help=helps.get(param.name, ""),
                            required=param.default is param.empty and not optional and kind != "bool"))
    return Tool(name=fn.__name__, title=label(fn.__name__), help=summary, source=path, fields=tuple(fields),
                notebook=False)


def field_type(hint) -> tuple[str, tuple[str, ...], bool]:
    """The field kind, the choices and whether None is allowed, for a type hint."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (typing.Union, types.UnionType) and type(None) in args and len(args) == 2:
        kind, choices, _ = field_type(next(arg for arg in args if arg is not type(None)))
        return kind, choices, True
    if origin is typing.Literal and all(isinstance(arg, (str, int, float, bool)) for arg in args):
        return "choice", tuple(str(arg) for arg in args), False
    if isinstance(hint, type) and issubclass(hint, enum.Enum):
        return "choice", tuple(hint.__members__), False
    if origin is list and args == (str,):
        return "lines", (), False
    if hint in KINDS:  # exact types: a datetime is a date, but a date field cannot hold its time
        return KINDS[hint], (), False
    raise Unsupported


def type_name(hint) -> str:
    return hint.__name__ if isinstance(hint, type) else str(hint).replace("typing.", "")


def label(name: str) -> str:
    return name.replace("_", " ").strip().capitalize()


def form_default(kind: str, value):
    if value is None or kind == "file":
        return None
    if kind == "date":
        return value.isoformat()
    if kind == "choice":
        return value.name if isinstance(value, enum.Enum) else str(value)
    if kind == "lines":
        return [str(line) for line in value]
    return value


SECTIONS = {"Args", "Arguments", "Parameters", "Returns", "Yields", "Raises", "Example", "Examples", "Note",
            "Notes", "See Also", "Attributes", "References", "Warning", "Warnings", "Other Parameters"}
ARG_SECTIONS = {"Args", "Arguments", "Parameters"}
GOOGLE_ARG = re.compile(r"\*{0,2}(\w+)\s*(?:\([^)]*\))?\s*:\s*(.*)")
NUMPY_ARG = re.compile(r"\*{0,2}(\w+)\s*(?::.*)?")
SPHINX_ARG = re.compile(r":param\s+(?:[^:]*\s)?(\w+)\s*:\s*(.*)")


def docstring(doc: str) -> tuple[str, dict[str, str]]:
    """The summary (first paragraph) and each parameter's help, in Google, NumPy or Sphinx (`:param x:`) style."""
    lines = doc.splitlines()
    summary = []
    for line in lines:
        if not line.strip() or line.rstrip(":") in SECTIONS or line.startswith(":"):
            break
        summary.append(line.strip())
    helps: dict[str, str] = {}
    style = current = entry = None  # the section's style, the parameter being described, its entries' indent
    for number, line in enumerate(lines):
        text, indent = line.strip(), len(line) - len(line.lstrip())
        underlined = number + 1 < len(lines) and lines[number + 1].strip().startswith("---")
        if match := SPHINX_ARG.fullmatch(text):
            style, current = "sphinx", match[1]
            helps[current] = match[2].strip()
        elif indent == 0 and (text.endswith(":") and text[:-1] in SECTIONS or underlined and text in SECTIONS):
            style = None if text.rstrip(":") not in ARG_SECTIONS else "numpy" if underlined else "google"
            current = entry = None
        elif not text or style == "numpy" and text.startswith("---"):
            current = None if style == "sphinx" else current
        elif style == "google" and indent == (entry := entry if entry is not None else indent) and \
                (match := GOOGLE_ARG.fullmatch(text)):
            current = match[1]
            helps[current] = match[2].strip()
        elif style == "numpy" and indent == 0 and (match := NUMPY_ARG.fullmatch(text)):
            current = match[1]
            helps[current] = ""
        elif current and indent > (entry or 0):
            helps[current] = f"{helps[current]} {text}".strip()
        elif indent == 0:
            style = current = None
    return " ".join(summary), helps


def notebook_tool(path: Path, jupyter: bool) -> tuple[list[Tool], list[Broken]]:
    if not jupyter:
        return [], [Broken(source=path, problem=f"{path.name}: {NEED_JUPYTER}")]
    import toolbox_notebooks

    return toolbox_notebooks.notebook_tool(path)


TRUE, FALSE = {"on", "true", "1", "yes"}, {"", "off", "false", "0", "no"}
WHOLE = re.compile(r"[+-]?[0-9]{1,19}")
ISO_DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")


def parse(tool: Tool, form: Mapping[str, str | list[str]]) -> tuple[dict, dict[str, str]]:
    """The form's answers as JSON-ready values (dates as ISO text, files as the saved path, choices as their text),
    and a one-line error per field that has none; never raises, whatever the strings."""
    params, errors = {}, {}
    for field in tool.fields:
        raw = form.get(field.name, [])
        values = [scrub(str(value)) for value in (raw if isinstance(raw, (list, tuple)) else [raw])]
        try:
            params[field.name] = answer(field, values)
        except ValueError as error:
            errors[field.name] = str(error)
    return params, errors


def answer(field: Field, values: list[str]):
    text = values[-1].strip() if values else ""
    if field.kind == "bool":
        if text.lower() not in TRUE | FALSE:
            raise ValueError(f"{field.label}: tick the box or leave it empty.")
        return text.lower() in TRUE
    if field.kind == "lines":
        lines = [line.strip() for value in values for line in value.splitlines() if line.strip()]
        if not lines and field.required:
            raise ValueError(f"{field.label}: enter at least one line.")
        return lines if lines or field.default is None else field.default
    if not text:
        if field.required:
            raise ValueError(f"{field.label}: {'choose a file' if field.kind == 'file' else 'fill this in'}.")
        return field.default
    if field.kind == "int":
        if not WHOLE.fullmatch(text):
            raise ValueError(f"{field.label}: enter a whole number.")
        if abs(number := int(text)) > MAX_INT:
            raise ValueError(f"{field.label}: enter a number between -{MAX_INT} and {MAX_INT}.")
        return number
    if field.kind == "float":
        try:
            number = float(text) if text.isascii() else math.nan
        except ValueError:
            number = math.nan
        if not math.isfinite(number):
            raise ValueError(f"{field.label}: enter a number, such as 2.5.")
        return number
    if field.kind == "date":
        try:
            if ISO_DATE.fullmatch(text):
                return datetime.date.fromisoformat(text).isoformat()
        except ValueError:
            pass
        raise ValueError(f"{field.label}: enter a date as YYYY-MM-DD.")
    if field.kind == "choice" and text not in field.choices:
        raise ValueError(f"{field.label}: choose one of {', '.join(field.choices)}.")
    if field.kind == "file" and not is_file(text):
        raise ValueError(f"{field.label}: the uploaded file is missing; choose it again.")
    return text


def is_file(text: str) -> bool:
    try:
        return Path(text).is_file()
    except (OSError, ValueError):  # a name too long for the file system, or holding a NUL
        return False


def scrub(text: str) -> str:
    """The text with lone surrogates (which UTF-8 cannot hold) replaced."""
    return text if text.isascii() else LONE_SURROGATE.sub("\ufffd", text)


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
    # die_with_parent) fires when the thread that started the child ends, not only its process.
    child = subprocess.Popen(
        [sys.executable, "-c", "import sys; sys.path.insert(0, sys.argv[1]); import toolbox; "
                               "toolbox.child_main(int(sys.argv[2]))", app_dir, str(theirs.fileno())],
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


PR_SET_PDEATHSIG = 1  # from linux/prctl.h


def die_with_parent(parent: int) -> None:
    """In the child: have Linux kill this process when the server's dies, even by kill -9 (what it started is then
    reap_leftovers()'s, at the next start). A server that died before this call shows as a changed parent pid.
    macOS has no such call: there Link.send_every ends the run's group once the pipe to the server closes."""
    if sys.platform == "linux":
        import ctypes

        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    if os.getppid() != parent:
        os._exit(1)


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


def size_text(size: int) -> str:
    """'2 GiB', '1.5 MiB' or '300 bytes'."""
    for unit, scale in (("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if size >= scale:
            return f"{size / scale:.3g} {unit}"
    return f"{size} bytes"


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


MAX_LINE = 2_000  # characters of a log line (printed or reported); a longer one is cut, and kept whole in LONG_LINES
LONG_LINES = "long-lines.txt"
MAX_PENDING = 2**20  # characters printed without a newline before they are a log line of their own


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


def lower_session_priority(pid: int) -> None:
    """NICENESS for the whole session `pid` leads (a tool's process, a notebook's kernel): Linux shares CPU time
    between sessions (autogroups) before nice values count, so a nice value alone counts only inside the session.
    Without autogroups there is no such file, and nice values suffice."""
    with suppress(OSError):
        Path(f"/proc/{pid}/autogroup").write_text(str(NICENESS))


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
            import toolbox_notebooks

            result = toolbox_notebooks.run_notebook(source, job["params"], outputs, href, link,
                                                    sockets=Path(job["sockets"]))
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


def call(source: Path, name: str, params: dict, link: Link):
    fn = getattr(load_module(source), name)
    hints = typing.get_type_hints(fn)
    kwargs = {}
    for param in inspect.signature(fn).parameters.values():
        if param.name == "report":
            kwargs["report"] = link.areport if inspect.iscoroutinefunction(fn) else link.report
        elif param.name in params:
            kwargs[param.name] = argument(hints.get(param.name, str), params[param.name])
    if inspect.iscoroutinefunction(fn):
        return asyncio.run(fn(**kwargs))
    return fn(**kwargs)


def argument(hint, value):
    """A parsed form value (JSON) as the Python value the parameter's type hint asks for."""
    if value is None:
        return None
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        hint = next(arg for arg in typing.get_args(hint) if arg is not type(None))
    if typing.get_origin(hint) is typing.Literal:
        return next((arg for arg in typing.get_args(hint) if str(arg) == value), value)
    if isinstance(hint, type) and issubclass(hint, enum.Enum):
        return hint[value]
    if hint is datetime.date:
        return datetime.date.fromisoformat(value)
    if hint is Path:
        return Path(value)
    if hint is float:
        return float(value)
    return value


def failure(source: Path, error: BaseException) -> str:
    """"KeyError: 'country' (sales.py:12)": the error and the deepest line of the tool's own file it passed."""
    if type(error).__name__ == "CellExecutionError":  # nbclient's: the kernel's error, named by the kernel
        return f"{getattr(error, 'ename', 'Error')}: {' '.join(str(getattr(error, 'evalue', '')).split())} " \
               f"({source.name})"
    where = place(source, error.__traceback__)
    return (f"{one_line(error)} ({where})" if where else one_line(error)) + install_hint(error)


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


def render_result(value, outputs: Path, download_url: Callable[[str], str], *, name: str = "result") -> str:
    """The value as an HTML fragment, writing any file it needs (a DataFrame's CSV, a figure's PNG) to `outputs`
    under `name`. Never raises: finished work is never marked failed because of how it is shown. Every part is
    cut to what a page shows quickly (MAX_TEXT, TABLE_ROWS, TABLE_COLUMNS, MAX_CELL, MAX_HTML), with a line saying
    so and a download of the whole."""
    outputs = Path(outputs).resolve()
    try:
        return scrub(capped(rendered(value, outputs, download_url, name), outputs, download_url, name))
    except Exception:
        log.exception("showing a %s result failed; showing its repr", type(value).__name__)
        text = safe_repr(value)
        return scrub(text_html(text if len(text) <= MAX_TEXT else text[:MAX_TEXT] + "\n…", pre=True))


def rendered(value, outputs: Path, download_url: Callable[[str], str], name: str) -> str:
    if type(value).__module__ == "numpy" and getattr(value, "ndim", None) == 0:  # np.int64(3), np.True_: plain
        value = value.item()
    if value is None:
        return "Done."
    if isinstance(value, str):
        return long_text(value, outputs, download_url, name)
    if isinstance(value, (bool, numbers.Number)):
        return html.escape(str(value))
    if isinstance(value, PurePath):
        return path_result(Path(value), outputs, download_url)
    if hasattr(value, "__ft__") or type(value).__module__.startswith("fastcore."):
        from fastcore.xml import to_xml
        return to_xml(value)
    pandas = sys.modules.get("pandas")
    if pandas and isinstance(value, (pandas.DataFrame, pandas.Series)):
        return frame_result(value.to_frame() if isinstance(value, pandas.Series) else value, outputs,
                            download_url, name)
    if is_styler(value):  # its formatted text as the table, its data as the CSV
        return frame_result(value.data, outputs, download_url, name, table=sanitized(
            value.to_html(max_rows=TABLE_ROWS, max_columns=TABLE_COLUMNS)))
    if (figure := figure_of(value)) is not None:
        return chart(figure, outputs, download_url, name)
    if is_plotly(value):
        return plotly_result(value, outputs, download_url, name)
    if several_results(value):
        return several(value, outputs, download_url, name)
    if isinstance(value, (dict, list, tuple)):
        try:
            text = json.dumps(value, indent=2, ensure_ascii=False)
        except (TypeError, ValueError):
            text = safe_repr(value)
        return long_text(text, outputs, download_url, name, pre=True)
    return long_text(safe_repr(value), outputs, download_url, name, pre=True)


def rich(value) -> bool:
    """Whether the value shows as more than text: a table, a chart, a download or a component."""
    pandas = sys.modules.get("pandas")
    return bool(pandas and isinstance(value, (pandas.DataFrame, pandas.Series)) or is_styler(value)
                or figure_of(value) is not None or is_plotly(value) or isinstance(value, PurePath)
                or hasattr(value, "__ft__"))


def figure_of(value):
    """The matplotlib Figure the value draws: a Figure, an Axes (what df.plot() returns), an array of them
    (subplots), or a grid holding one as .figure or .fig (seaborn's); else None."""
    figure = sys.modules.get("matplotlib.figure")
    if figure is None:
        return None
    if type(value).__module__ == "numpy" and getattr(value, "dtype", None) == object and value.size:
        value = value.flat[0]
    for candidate in (value, getattr(value, "figure", None), getattr(value, "fig", None)):
        if isinstance(candidate, figure.Figure):
            return candidate
    return None


def is_styler(value) -> bool:
    style = sys.modules.get("pandas.io.formats.style")
    return bool(style and isinstance(value, style.Styler))


def is_plotly(value) -> bool:
    figures = sys.modules.get("plotly.basedatatypes")
    return bool(figures and isinstance(value, figures.BaseFigure))


def chart(figure, outputs: Path, download_url: Callable[[str], str], name: str) -> str:
    path = unique(outputs, f"{name}.png")
    with open(path, "xb", opener=owner_only) as file:
        figure.savefig(file, format="png", bbox_inches="tight")
    return image_html(path, download_url, name)


def image_html(path: Path, download_url: Callable[[str], str], name: str) -> str:
    return f'<img src="{html.escape(download_url(path.name))}" alt="{html.escape(name)}">'


def plotly_result(figure, outputs: Path, download_url: Callable[[str], str], name: str) -> str:
    """A plotly figure as a PNG when kaleido is there to draw one. Otherwise the interactive chart as a page to
    download and open: its HTML runs inline script, which the app's pages refuse (their CSP)."""
    try:
        image = figure.to_image(format="png")
    except Exception:  # no kaleido, or no browser for it
        path = unique(outputs, f"{name}.html")
        with open(path, "x", encoding="utf-8", opener=owner_only) as file:
            figure.write_html(file, include_plotlyjs=True)
        return f"<p>A plotly chart, to open in your browser: {link_to(path, download_url)} (to draw it here " \
               "instead, add the kaleido package)</p>"
    path = unique(outputs, f"{name}.png")
    with open(path, "xb", opener=owner_only) as file:
        file.write(image)
    return image_html(path, download_url, name)


MAX_PARTS = 20  # items of a list, tuple or dict shown as results of their own; a longer one is JSON


def several_results(value) -> bool:
    """Whether the value is a few results at once: a short list, tuple or dict holding a rich() one."""
    return isinstance(value, (dict, list, tuple)) and len(value) <= MAX_PARTS and any(map(rich, parts(value).values()))


def parts(value: dict | list | tuple) -> dict[str, object]:
    """A list's or tuple's items by their number from 1, a dict's by their key."""
    return {str(key): item for key, item in (value.items() if isinstance(value, dict) else enumerate(value, 1))}


def several(value: dict | list | tuple, outputs: Path, download_url: Callable[[str], str], name: str) -> str:
    """Each item as a result of its own, in order (a dict's under its key); a chart drawn by an earlier item (the
    lines plt.plot() returns share one) is not drawn again."""
    shown, drawn = [], set()
    for key, item in parts(value).items():
        if (figure := figure_of(item)) is not None:
            if id(figure) in drawn:
                continue
            drawn.add(id(figure))
        heading = f"<h4>{html.escape(key)}</h4>" if isinstance(value, dict) else ""
        shown.append(heading + rendered(item, outputs, download_url, f"{name}-{key}"))
    return "".join(f"<div>{part}</div>" for part in shown)


def sanitized(markup: str) -> str:
    """HTML from a notebook or a library (a pandas Styler's) with only what is safe in the page: nh3 keeps text,
    tables and formatting, and drops scripts, styles, event handlers and any attribute that could run code."""
    import nh3

    return nh3.clean(markup)


MAX_HTML = 8 * MAX_TEXT  # characters of a result's HTML: MAX_TEXT characters escaped fit; a bigger one is a file


def long_text(text: str, outputs: Path, download_url: Callable[[str], str], name: str, *, pre: bool = False) -> str:
    """The text as HTML; past MAX_TEXT characters, its start, a line saying where it was cut, and all of it as a
    download (`name`.txt)."""
    if len(text) <= MAX_TEXT:
        return text_html(text, pre=pre)
    path = unique(outputs, f"{name}.txt")
    with open(path, "x", encoding="utf-8", errors="surrogatepass", opener=owner_only) as file:
        file.write(text)
    return text_html(text[:MAX_TEXT] + "\n…", pre=True) + \
        f"<p>Cut at {MAX_TEXT:,} of {len(text):,} characters; all of it: {link_to(path, download_url)}</p>"


def capped(markup: str, outputs: Path, download_url: Callable[[str], str], name: str) -> str:
    """The result's HTML; past MAX_HTML characters (a FastHTML component can be any size), a line saying so
    with all of it as a download (`name`.html) instead."""
    if len(markup) <= MAX_HTML:
        return markup
    path = unique(outputs, f"{name}.html")
    with open(path, "x", encoding="utf-8", errors="surrogatepass", opener=owner_only) as file:
        file.write(markup)
    return f"<p>The result is {len(markup):,} characters of HTML, more than the {MAX_HTML:,} shown here; all of " \
           f"it: {link_to(path, download_url)}</p>"


def owner_only(path: str, flags: int) -> int:
    """open()'s opener for every file a result is written to: readable by this user only, whatever the umask (a
    run's child sets its own, but a tool may change it, and record() renders in a notebook's process)."""
    return os.open(path, flags, 0o600)


def text_html(text: str, *, pre: bool = False) -> str:
    return f"<pre>{html.escape(text)}</pre>" if pre or "\n" in text else html.escape(text)


def safe_repr(value) -> str:
    try:
        return repr(value)
    except Exception:
        return f"<a {type(value).__name__} object>"


def unique(folder: Path, name: str) -> Path:
    """A path in the folder under that name, or name-1, name-2… when taken. Names keep to safe characters."""
    stem, suffix = os.path.splitext(re.sub(r"[^\w.-]", "_", name).lstrip(".") or "file")
    path, number = folder / f"{stem}{suffix}", 0
    while path.exists():
        number += 1
        path = folder / f"{stem}-{number}{suffix}"
    return path


def link_to(path: Path, download_url: Callable[[str], str]) -> str:
    return f'<a href="{html.escape(download_url(path.name))}" download>{html.escape(path.name)}</a>'


MAX_ZIP = 2**30  # bytes of a returned folder zipped, or of a returned file copied, at most; the rest stays put
MAX_ZIP_FILES = 100_000  # files of a returned folder zipped at most


def path_result(path: Path, outputs: Path, download_url: Callable[[str], str]) -> str:
    """A download link; a file elsewhere is copied into outputs first (downloads come only from there), readable by
    this user only whatever its own mode; a folder is zipped (zip_result)."""
    path = (outputs / path).resolve()  # relative to the cwd the tool ran in, which is outputs
    if path.is_dir():
        return zip_result(path, outputs, download_url)
    if not path.is_file():
        return text_html(f"{path} (no such file)")
    if path.parent != outputs or path.name.startswith("."):
        if (size := path.stat().st_size) > MAX_ZIP:
            return text_html(f"{path} is {size_text(size)}, more than the {size_text(MAX_ZIP)} a download is "
                             "copied for; it stays where it is.")
        copy = unique(outputs, path.name)
        with open(path, "rb") as source, open(copy, "xb", opener=owner_only) as target:
            copy_bytes(source, target, size)
        path = copy
    return link_to(path, download_url)


def zip_result(folder: Path, outputs: Path, download_url: Callable[[str], str]) -> str:
    """A download link to the folder zipped into outputs, with a line saying where a zip past MAX_ZIP bytes or
    MAX_ZIP_FILES files stopped. A folder that holds outputs (`.`, `..`, `/`) is refused with a line: the zip,
    written inside it, would take itself in for as long as it grows."""
    if outputs.is_relative_to(folder):
        return text_html(f"{folder} is not zipped: it holds this run's own folder, and so the zip itself. Return "
                         "a folder inside it instead.")
    zipped = unique(outputs, f"{folder.name}.zip")
    stopped = zip_folder(folder, zipped)
    if stopped is None:
        return link_to(zipped, download_url)
    return f"{link_to(zipped, download_url)}<p>" + text_html(
        f"The zip stops at {size_text(MAX_ZIP)} or {MAX_ZIP_FILES:,} files: {stopped} and the files after it "
        f"are left out. The whole folder is {folder}") + "</p>"


def zip_folder(folder: Path, zipped: Path) -> str | None:
    """Zip the folder's files into `zipped`, in name order, up to MAX_ZIP bytes and MAX_ZIP_FILES files; the first
    file left out (relative to the folder), or None. Links are left out: one may point anywhere, or back up the
    folder, and os.walk does not follow them."""
    import zipfile

    room, files = MAX_ZIP, MAX_ZIP_FILES
    with open(zipped, "xb", opener=owner_only) as file, zipfile.ZipFile(file, "w", zipfile.ZIP_DEFLATED) as archive:
        for top, folders, names in os.walk(folder):
            folders.sort()
            for path in (Path(top, name) for name in sorted(names)):
                if path.is_symlink() or not path.is_file():
                    continue
                inside = str(path.relative_to(folder))
                if (size := path.stat().st_size) > room or not files:
                    return inside
                room, files = room - size, files - 1
                entry = zipfile.ZipInfo.from_file(path, inside)
                entry.compress_type = zipfile.ZIP_DEFLATED
                with open(path, "rb") as source, archive.open(entry, "w") as target:
                    copy_bytes(source, target, size)
    return None


def copy_bytes(source: io.BufferedIOBase, target, size: int) -> None:
    """Copy `size` bytes at most: a file that something keeps writing to is taken as it was when it was looked at."""
    while size > 0 and (chunk := source.read(min(size, 2**20))):
        target.write(chunk)
        size -= len(chunk)


TABLE_COLUMNS = 25  # columns of a DataFrame shown in the table; all of them are in its CSV
MAX_CELL = 100  # characters of a table cell shown; all of it is in the CSV


def frame_result(frame, outputs: Path, download_url: Callable[[str], str], name: str, *, table: str = "") -> str:
    """'N rows × M columns', the first rows and columns as a table (or `table`, already made) and the whole frame
    as a CSV download."""
    pandas = sys.modules["pandas"]
    path = unique(outputs, f"{name}.csv")
    index = not isinstance(frame.index, pandas.RangeIndex)
    with open(path, "x", encoding="utf-8", newline="", opener=owner_only) as file:
        spreadsheet_frame(frame, index=index).to_csv(file, index=index)
    rows, columns = frame.shape
    if columns > TABLE_COLUMNS:
        more = f"; the first {f'{TABLE_ROWS} rows and ' if rows > TABLE_ROWS else ''}{TABLE_COLUMNS} columns shown"
    else:
        more = f"; the first {TABLE_ROWS} shown" if rows > TABLE_ROWS else ""
    return (f"<p>{rows:,} rows × {columns:,} columns{more}. {link_to(path, download_url)}</p>"
            f"{table or table_html(frame.iloc[:TABLE_ROWS, :TABLE_COLUMNS])}")


def table_html(head) -> str:
    """The frame as a table: a header cell per index level (its name, if it has one) and per column, then its rows."""
    def cell(tag: str, text: str) -> str:
        return f"<{tag}>{html.escape(text if len(text) <= MAX_CELL else text[:MAX_CELL] + '…')}</{tag}>"

    levels = [cell_texts(head.index.get_level_values(level)) for level in range(head.index.nlevels)]
    columns = [cell_texts(head.iloc[:, number]) for number in range(head.shape[1])]
    header = "".join(cell("th", "" if name is None else str(name)) for name in head.index.names) + \
        "".join(cell("th", str(column)) for column in head.columns)
    body = "".join("<tr>" + "".join(cell("th", text) for text in row[:len(levels)]) +
                   "".join(cell("td", text) for text in row[len(levels):]) + "</tr>"
                   for row in zip(*levels, *columns))
    return f"<table><thead><tr>{header}</tr></thead><tbody>{body}</tbody></table>"


def cell_texts(values) -> list[str]:
    """A column's or index level's values as text; times that are all midnight as dates (2012-01-01, not
    2012-01-01 00:00:00), as pandas shows them."""
    column = sys.modules["pandas"].Series(values)
    if column.dtype.kind == "M" and (known := column.dropna()).equals(known.dt.normalize()):
        return column.dt.strftime("%Y-%m-%d").fillna("NaT").tolist()
    return [str(value) for value in column]


# OWASP's CSV injection list (=, +, -, @, tab, carriage return) plus line feed and NUL (ASVS 1.2.10). Spreadsheets
# skip leading spaces and quotes before they look, so a trigger counts after those too.
FORMULA_START = re.compile(r"[\s\"']*[=+\-@\t\r\n\0]")
NUMBER_KINDS = "biufcM"  # numpy's dtype kinds of booleans, numbers and dates: never text, so never a formula


def spreadsheet_text(value):
    """A CSV cell that a spreadsheet shows and never runs. Text that starts like a formula gets a leading single
    quote, which a spreadsheet takes as "this is text". A number is returned as it is: -3 is a number to a
    spreadsheet, not a formula, and a quote would make it text that no sum counts. None is an empty cell.
    Every CSV the app writes goes through this: frame_result's, and any an add-on or tool of the template writes."""
    if value is None:
        return ""
    if isinstance(value, numbers.Number):
        return value
    text = str(value)
    return f"'{text}" if FORMULA_START.match(text) else text


def spreadsheet_frame(frame, *, index: bool):
    """The frame as its CSV holds it: the text of its cells, column names and (if written) index through
    spreadsheet_text(); columns of numbers and dates as they are, missing cells missing."""
    safe = frame.apply(lambda column: column if column.dtype.kind in NUMBER_KINDS else
                       column.map(spreadsheet_text, na_action="ignore"))
    safe.columns = spreadsheet_labels(frame.columns)
    if index:
        safe.index = spreadsheet_labels(frame.index)
    return safe


def spreadsheet_labels(labels):
    """A pandas Index with its text through spreadsheet_text(), level by level for a MultiIndex, and its names
    too (a CSV's top row holds them)."""
    names = [spreadsheet_text(name) if isinstance(name, str) else name for name in labels.names]
    if hasattr(labels, "levels"):
        labels = labels.set_levels([spreadsheet_labels(level) for level in labels.levels])
    elif labels.dtype.kind not in NUMBER_KINDS:
        labels = labels.map(spreadsheet_text)
    return labels.set_names(names)
