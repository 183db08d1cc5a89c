"""What every process of the toolbox shares: the descriptions of tools, the errors a run ends with, and how an error
becomes the one line a user reads. Runs wherever it is imported: the server, the discovery child, a run's child,
a notebook's kernel."""
from __future__ import annotations

import html
import importlib.util
import os
import re
import sys
import traceback
import types
from dataclasses import dataclass
from pathlib import Path

LONE_SURROGATE = re.compile(r"[\ud800-\udfff]")


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
    kind: str  # the name of its row in kinds.KINDS: 'text', 'int', 'float', 'bool', 'choice', 'date', 'file'…
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


def label(name: str) -> str:
    return name.replace("_", " ").strip().capitalize()


def one_line(error: BaseException) -> str:
    text = " ".join(str(error).split())
    text = f"{type(error).__name__}: {text}" if text else type(error).__name__
    return text if len(text) <= 300 else text[:299] + "…"


def place(path: Path, tb: types.TracebackType | None) -> str:
    """'sales.py:12' for the deepest frame of the traceback in that file, or ''."""
    where = ""
    for frame, line in traceback.walk_tb(tb):
        if Path(frame.f_code.co_filename).resolve() == path.resolve():
            where = f"{path.name}:{line}"
    return where


def install_hint(error: BaseException) -> str:
    """For a module that is not installed, how to add it, by the command that exists here: `deps` in the Nix shell,
    the script without it. (A package may be named otherwise than its module: PIL is pillow.)"""
    if not isinstance(error, ModuleNotFoundError) or not error.name:
        return ""
    deps = "deps" if os.environ.get("IN_NIX_SHELL") else "./scripts/deps"
    return f"; add it with: {deps} add {error.name.partition('.')[0]}"


def scrub(text: str) -> str:
    """The text with lone surrogates (which UTF-8 cannot hold) replaced."""
    return text if text.isascii() else LONE_SURROGATE.sub("\ufffd", text)


def load_module(path: Path) -> types.ModuleType:
    """A fresh import of tools/<stem>.py as the module tools.<stem> (in the discovery child, and in a run's)."""
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


def size_text(size: int) -> str:
    """'2 GiB', '1.5 MiB' or '300 bytes'."""
    for unit, scale in (("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if size >= scale:
            return f"{size / scale:.3g} {unit}"
    return f"{size} bytes"


def text_html(text: str, *, pre: bool = False) -> str:
    return f"<pre>{html.escape(text)}</pre>" if pre or "\n" in text else html.escape(text)
