"""The kinds of form field, one row each in KINDS: the Python types a kind stands for, what its input on the form
is (plain data, which the server turns into HTML), how a parameter's default shows there, how a submitted answer is
checked (parse) and what the tool's parameter then gets (argument). A new input type for tool forms is one row here.

Runs in every process: field_type() and form_default() in the discovery child, parse() in the server, argument() in
a run's child.
"""
from __future__ import annotations

import datetime
import enum
import math
import re
import types
import typing
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from dataclasses import field as attribute
from pathlib import Path

from .common import Field, Tool, scrub


def same(value, *hint):
    return value


@dataclass(frozen=True, kw_only=True)
class Kind:
    """One kind of field: a row of KINDS, under the name a Field's `kind` holds."""
    named: str  # how the list of supported types, in a card about a parameter that is none of them, names it
    types: tuple[type, ...] = ()  # the type hints it stands for, exactly: a date field cannot hold a datetime's time
    parse: Callable[[str, Field], object] = same  # a filled-in answer (stripped) as a JSON-ready value; raises
    #   ValueError with what the user reads after the field's label: "enter a whole number."
    form: Callable[[object], object] = same  # a parameter's default (never None) in parse()'s terms, or None
    #   for a default the form cannot show
    argument: Callable[[object, object], object] = same  # (answer, type hint): what the tool's parameter gets
    input: Mapping[str, str] = attribute(default_factory=lambda: {"type": "text"})  # its input's attributes
    widget: str = "input"  # or what the server builds instead of an <input>: checkbox, select, textarea or file
    missing: str = "fill this in."  # what a required field left blank says
    blank_counts: bool = False  # a blank answer is one (an unticked box is no): parse reads it, never required
    read: Callable[[Field, list[str]], object] | None = None  # for a kind that reads every string sent under the
    #   field's name itself, instead of the last one (lines)


MAX_INT = 2**63 - 1  # what SQLite stores as a number, and far beyond any form answer a tool could mean
TRUE, FALSE = {"on", "true", "1", "yes"}, {"", "off", "false", "0", "no"}
WHOLE = re.compile(r"[+-]?[0-9]{1,19}")
ISO_DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")


def whole_number(text: str, field: Field) -> int:
    if not WHOLE.fullmatch(text):
        raise ValueError("enter a whole number.")
    if abs(number := int(text)) > MAX_INT:
        raise ValueError(f"enter a number between -{MAX_INT} and {MAX_INT}.")
    return number


def number(text: str, field: Field) -> float:
    try:
        value = float(text) if text.isascii() else math.nan
    except ValueError:
        value = math.nan
    if not math.isfinite(value):
        raise ValueError("enter a number, such as 2.5.")
    return value


def ticked(text: str, field: Field) -> bool:
    if text.lower() not in TRUE | FALSE:
        raise ValueError("tick the box or leave it empty.")
    return text.lower() in TRUE


def iso_date(text: str, field: Field) -> str:
    try:
        if ISO_DATE.fullmatch(text):
            return datetime.date.fromisoformat(text).isoformat()
    except ValueError:
        pass
    raise ValueError("enter a date as YYYY-MM-DD.")


def one_of(text: str, field: Field) -> str:
    if text not in field.choices:
        raise ValueError(f"choose one of {', '.join(field.choices)}.")
    return text


def uploaded(text: str, field: Field) -> str:
    if not is_file(text):
        raise ValueError("the uploaded file is missing; choose it again.")
    return text


def every_line(field: Field, values: list[str]) -> list[str]:
    lines = [line.strip() for value in values for line in value.splitlines() if line.strip()]
    if not lines and field.required:
        raise ValueError("enter at least one line.")
    return lines if lines or field.default is None else field.default


def chosen(value: str, hint):
    """A choice's text as the Literal's value or the Enum's member it names."""
    if typing.get_origin(hint) is typing.Literal:
        return next((arg for arg in typing.get_args(hint) if str(arg) == value), value)
    return hint[value]


KINDS: dict[str, Kind] = {
    "text": Kind(named="str", types=(str,)),
    "int": Kind(named="int", types=(int,), parse=whole_number, input={"type": "number", "step": "1"}),
    "float": Kind(named="float", types=(float,), parse=number, argument=lambda value, hint: float(value),
                  input={"type": "number", "step": "any"}),
    "bool": Kind(named="bool", types=(bool,), parse=ticked, blank_counts=True, widget="checkbox",
                 input={"type": "checkbox", "role": "switch", "value": "true"}),
    "choice": Kind(named="Literal[...], an Enum", parse=one_of, argument=chosen, widget="select", input={},
                   form=lambda value: value.name if isinstance(value, enum.Enum) else str(value)),
    "date": Kind(named="datetime.date", types=(datetime.date,), parse=iso_date, form=datetime.date.isoformat,
                 argument=lambda value, hint: datetime.date.fromisoformat(value), input={"type": "date"}),
    "file": Kind(named="pathlib.Path", types=(Path,), parse=uploaded, form=lambda value: None, missing="choose a file.",
                 argument=lambda value, hint: Path(value), widget="file", input={"type": "file"}),
    "lines": Kind(named="list[str]", read=every_line, form=lambda value: [str(line) for line in value],
                  widget="textarea", input={"rows": "4", "placeholder": "One per line"}),
}


class Unsupported(Exception):
    """A type hint no kind stands for."""


def supported() -> str:
    """The type hints a parameter may have, for a card about one that has none of them."""
    return ", ".join(kind.named for kind in KINDS.values()) + ", or X | None"


def optional(hint) -> tuple[object, bool]:
    """The hint without its `| None`, and whether it had one."""
    args = typing.get_args(hint)
    if typing.get_origin(hint) in (typing.Union, types.UnionType) and type(None) in args and len(args) == 2:
        return next(arg for arg in args if arg is not type(None)), True
    return hint, False


def field_type(hint) -> tuple[str, tuple[str, ...], bool]:
    """The field kind, the choices and whether None is allowed, for a type hint; raises Unsupported."""
    hint, none = optional(hint)
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin is typing.Literal and all(isinstance(arg, (str, int, float, bool)) for arg in args):
        return "choice", tuple(str(arg) for arg in args), none
    if isinstance(hint, type) and issubclass(hint, enum.Enum):
        return "choice", tuple(hint.__members__), none
    if origin is list and args == (str,):
        return "lines", (), none
    for name, kind in KINDS.items():
        if hint in kind.types:
            return name, (), none
    raise Unsupported


def form_default(kind: str, value):
    """A parameter's default as the form shows it, in parse()'s terms; None for none."""
    return None if value is None else KINDS[kind].form(value)


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
            errors[field.name] = f"{field.label}: {error}"
    return params, errors


def answer(field: Field, values: list[str]):
    kind = KINDS[field.kind]
    if kind.read:
        return kind.read(field, values)
    text = values[-1].strip() if values else ""
    if not text and not kind.blank_counts:
        if field.required:
            raise ValueError(kind.missing)
        return field.default
    return kind.parse(text, field)


def argument(hint, value):
    """A parsed answer (JSON) as the Python value the parameter's type hint asks for (in a run's child)."""
    if value is None:
        return None
    try:
        kind = field_type(hint)[0]
    except Unsupported:  # the file changed since its form was made: the answer as it is
        return value
    return KINDS[kind].argument(value, optional(hint)[0])


def is_file(text: str) -> bool:
    try:
        return Path(text).is_file()
    except (OSError, ValueError):  # a name too long for the file system, or holding a NUL
        return False
