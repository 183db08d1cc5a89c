"""Reading tools/ into Tool descriptions and Broken cards: discover() in the server, which reads each module in a
discovery child (discovery_main) and each notebook itself, through notebooks.py.
"""
from __future__ import annotations

import inspect
import json
import logging
import os
import re
import signal
import subprocess
import sys
import threading
import typing
from collections.abc import Callable
from contextlib import suppress
from dataclasses import is_dataclass
from multiprocessing.connection import Connection, Pipe
from pathlib import Path

from .common import Broken, Field, Tool, install_hint, label, load_module, one_line, place
from .kinds import KINDS, Unsupported, field_type, form_default, supported
from .runner import kill

log = logging.getLogger(__name__)

DISCOVER_TIMEOUT = 10.0  # seconds a tool module may take to import before discovery gives up on it, with a card
NEED_JUPYTER = "Notebook tools need Jupyter: run `flakewright update -d jupyter=true`"

# --- in the server ------------------------------------------------------------------------------------------------


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


def notebook_tool(path: Path, jupyter: bool) -> tuple[list[Tool], list[Broken]]:
    if not jupyter:
        return [], [Broken(source=path, problem=f"{path.name}: {NEED_JUPYTER}")]
    from . import notebooks

    return notebooks.notebook_tool(path)


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
    # A fresh interpreter, as for a run (see run_tool), finding this very toolbox package, and the app folder so
    # that tools import each other as tools.<x>. -B: writing tools/__pycache__ would change the folder the server
    # watches, and have it read the tools again.
    child = subprocess.Popen(
        [sys.executable, "-B", "-c", "import sys; sys.path[:0] = sys.argv[1:3]; from toolbox import discovery; "
                                     "discovery.discovery_main(int(sys.argv[3]), sys.argv[4:])",
         str(Path(__file__).resolve().parent.parent), str(paths[0].parent.parent), str(theirs.fileno()),
         *map(str, paths)],
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


# --- in the discovery child ---------------------------------------------------------------------------------------


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


def module_tools(path: Path) -> tuple[list[Tool], list[Broken]]:
    """The module's functions as tools, and a card for each that cannot be one (or one for the whole module)."""
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
                              f"{supported()}")
        default = None if param.default is param.empty else param.default
        hint = hints.get(param.name, type(default) if default is not None else str)
        try:
            kind, choices, optional = field_type(hint)
        except Unsupported:
            raise Unsupported(f"parameter {param.name}: {type_name(hint)} is not supported; use one of "
                              f"{supported()}") from None
        fields.append(Field(name=param.name, label=label(param.name), kind=kind, choices=choices,
                            default=form_default(kind, default), help=helps.get(param.name, ""),
                            required=param.default is param.empty and not optional and not KINDS[kind].blank_counts))
    return Tool(name=fn.__name__, title=label(fn.__name__), help=summary, source=path, fields=tuple(fields),
                notebook=False)


def type_name(hint) -> str:
    return hint.__name__ if isinstance(hint, type) else str(hint).replace("typing.", "")


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
