"""A notebook tool's form: the notebook's cell tagged `parameters`, read into form fields without running anything,
as papermill's --help-notebook reads it. notebook_tool() runs in the server (for discover); a run's child reads
the same cell again (parameters()) for the type hints of the answers it sets. Only the standard library.
"""
from __future__ import annotations

import ast
import datetime
import json
import re
import typing
from dataclasses import dataclass
from pathlib import Path, PurePath

from .common import Broken, Field, Tool, label, one_line
from .kinds import Unsupported, field_type, form_default

ALLOWED = "it may hold only assignments (months = 12, orders: Path = Path('orders.csv')), imports and comments"
LITERALS = "a number, text, a list, tuple or dict of those, Path('...') or datetime.date(...)"
NOTEBOOK_TYPES = "str, int, float, bool, Literal[...], datetime.date, Path, list[str] or X | None"
# What an annotation or a default may name: the types a function tool's form offers, read from the source, never run.
TYPES = {"str": str, "int": int, "float": float, "bool": bool, "None": type(None), "Path": Path, "pathlib.Path": Path,
         "date": datetime.date, "datetime.date": datetime.date}
MADE = {"Path": Path, "pathlib.Path": Path, "date": datetime.date, "datetime.date": datetime.date}
# Annotations of plain Python values no field kind offers: a literal so annotated is typed as Python (Source).
PLAIN = {prefix + name for name in ("dict", "Dict", "list", "List", "tuple", "Tuple", "set", "Set", "frozenset",
                                    "FrozenSet", "complex", "bytes", "Any")
         for prefix in ("", "typing.")} | {"object"}
MAGIC = re.compile(r"^(\w+\s*=\s*)?[%!]")  # `%matplotlib inline`, `!pip install x`, `files = !ls`
MAX_PROBLEMS = 10  # lines a card about a parameters cell names; it says how many more there are


@dataclass(frozen=True)
class Parameter:
    name: str
    hint: object  # a type hint, as a function's would be: str, Path, typing.Literal["a", "b"], list[str]... or Source
    default: object
    help: str


@dataclass(frozen=True)
class Source:
    """The hint of a parameter whose plain literal no field kind offers (a dict, a tuple, a list of numbers), as
    papermill takes it: a text field holding it as Python, read back with ast.literal_eval (never run) when a run
    starts, and then of the same type as the notebook's value (`kind`; None for any)."""
    kind: type | None
    text: str  # the notebook's value, as Python


class Unreadable(Exception):
    """The lines of the parameters cell that cannot be form fields, each as (line, what is wrong, the notes to
    add once after them all: what a literal is, what the cell may hold), all of them in one line of text."""

    def __init__(self, problems: list[tuple[int, str, tuple[str, ...]]]):
        problems = sorted(problems, key=lambda problem: problem[0])
        parts = [f"line {line}: {text}" for line, text, _ in problems[:MAX_PROBLEMS]]
        if len(problems) > MAX_PROBLEMS:
            parts.append(f"and {len(problems) - MAX_PROBLEMS} more lines")
        notes = [note for note in (f"a literal is {LITERALS}", ALLOWED)
                 if any(note in added for _, _, added in problems)]
        super().__init__("; ".join(parts + notes))
        self.problems = problems


def tool_name(stem: str) -> str:
    """The tool name of a notebook (and what /tools/<name> looks for among the cards): 'Weekly Report' is
    weekly_report."""
    name = re.sub(r"\W", "_", stem.lower(), flags=re.ASCII)
    return f"notebook_{name}" if name[:1].isdigit() else name


def notebook_tool(path: Path) -> tuple[list[Tool], list[Broken]]:
    try:
        cells = json.loads(path.read_text(encoding="utf-8"))["cells"]
    except (OSError, ValueError, KeyError, TypeError) as error:
        return [], [Broken(source=path, problem=f"{path.name}: not a readable notebook ({one_line(error)})")]
    index = parameters_cell(cells)
    if index is None:
        return [], [Broken(source=path, problem=f"{path.name}: no cell is tagged parameters; tag the cell that "
                                                "holds the inputs (in JupyterLab: the gear icon, Add Tag)")]
    try:
        found = parameters(cell_text(cells[index]))
    except Unreadable as problem:
        return [], [Broken(source=path, problem=f"{path.name}: the parameters cell, {problem}")]
    return [Tool(name=tool_name(path.stem), title=label(path.stem), help=notebook_help(cells), source=path,
                 fields=tuple(map(field, found)), notebook=True)], []


def field(parameter: Parameter) -> Field:
    if isinstance(source := parameter.hint, Source):
        what = f"a Python {source.kind.__name__}" if source.kind else "a Python literal"
        return Field(name=parameter.name, label=label(parameter.name), kind="text", choices=(), default=source.text,
                     required=False, help=f"{parameter.help} ({what})".strip())
    kind, choices, _ = field_type(parameter.hint)
    help, default = parameter.help, form_default(kind, parameter.default)
    if default is None and parameter.default is not None:  # one the form cannot show (a file field's): said instead
        help = f"{help} (empty: {parameter.default})".strip()
    return Field(name=parameter.name, label=label(parameter.name), kind=kind, choices=choices, default=default,
                 required=False, help=help)


def parameters(source: str) -> list[Parameter]:
    """The parameters cell's assignments, read without running it. Raises Unreadable naming every line that is
    not an assignment of a literal, an import or a comment, or that annotates one with a type no field offers."""
    lines, problems = source.splitlines(), []
    code = list(lines)
    while True:  # a line that does not parse (a magic) is named, and blanked so the lines after it are read too
        try:
            tree = ast.parse("\n".join(code))
            break
        except SyntaxError as error:
            number = error.lineno if error.lineno and error.lineno <= len(lines) else 1
            text = lines[number - 1].strip() if lines else ""
            problem = f"`{text}` is an IPython magic or shell command; move it to another cell" if MAGIC.match(text) \
                else f"`{text}` is SyntaxError: {error.msg}"
            problems.append((number, problem, (ALLOWED,)))
            if not code[number - 1].strip():  # blanked already (an unclosed bracket above): nothing more to read
                raise Unreadable(problems) from None
            code[number - 1] = ""
    found, end = [], 0
    for node in tree.body:
        above, end = comment_above(lines, end, node.lineno), node.end_lineno
        if isinstance(node, (ast.Import, ast.ImportFrom, ast.Pass)) or \
                isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant) or \
                isinstance(node, ast.AnnAssign) and node.value is None:  # a docstring, `x: int`: nothing to ask
            continue
        rest = lines[node.end_lineno - 1][node.end_col_offset:].strip()
        help = "; ".join(filter(None, [above, rest[1:].strip() if rest.startswith("#") else ""]))
        try:
            found += [parameter(name, value, hint, help) for name, value, hint in assigned(node)]
        except Unreadable as problem:
            problems += [(node.lineno, text, notes) for _, text, notes in problem.problems]
    if problems:
        raise Unreadable(problems)
    return found


def assigned(node: ast.stmt) -> list[tuple[str, ast.expr, ast.expr | None]]:
    """(name, value, annotation) for each name the statement sets: `a = 1`, `a: int = 1`, `a = b = 1` and
    `a, b = 1, 2` (papermill takes them all); raises Unreadable for any other statement."""
    if isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
        return [(node.target.id, node.value, node.annotation)]
    if isinstance(node, ast.Assign):
        found = []
        for target in node.targets:
            if isinstance(target, ast.Name):
                found.append((target.id, node.value, None))
            elif isinstance(target, (ast.Tuple, ast.List)) and all(isinstance(name, ast.Name) for name in target.elts) \
                    and isinstance(node.value, (ast.Tuple, ast.List)) and len(node.value.elts) == len(target.elts):
                found += [(name.id, value, None) for name, value in zip(target.elts, node.value.elts)]
            else:
                break
        else:
            return found
    raise Unreadable([(node.lineno, f"`{ast.unparse(node)}` is not an assignment to a name", (ALLOWED,))])


def parameter(name: str, value: ast.expr, note: ast.expr | None, help: str) -> Parameter:
    try:
        default = value_of(value)
    except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
        raise Unreadable([(0, f"{name} = {ast.unparse(value)} is not a literal",
                           (f"a literal is {LITERALS}", ALLOWED))]) from None
    plain = not isinstance(default, (PurePath, datetime.date))
    try:
        hint = annotation(note) if note is not None else inferred(default)
        field_type(hint)
    except Unsupported:
        if note is not None and not (plain and is_plain(note)):
            raise Unreadable([(0, f"{name}: {ast.unparse(note)} is not supported; use {NOTEBOOK_TYPES}",
                               ())]) from None
        hint = Source(None if default is None else type(default), ast.unparse(value))
    return Parameter(name, hint, default, help)


def comment_above(lines: list[str], after: int, line: int) -> str:
    """The comment on the lines right above line `line` (from 1) and below line `after`, as the help of what that
    line sets: `# The region to report on` over `region = "EU"`. A heading (`# Parameters`), a bare `#` or
    commented-out code (`# region = "US"`) ends it."""
    taken = []
    for number in range(line - 1, after, -1):
        text = lines[number - 1].strip()
        words = text.lstrip("#").strip()
        if not text.startswith("#") or words.lower().rstrip(":") in ("", "parameters") or \
                re.match(r"\w+\s*(:[^=]*)?=[^=]", words):
            break
        taken.append(words)
    return " ".join(reversed(taken))


def value_of(node: ast.expr):
    """A literal, or Path('...') or datetime.date(...) of literals."""
    if isinstance(node, ast.Call) and dotted(node.func) in MADE and not node.keywords:
        return MADE[dotted(node.func)](*map(ast.literal_eval, node.args))
    return ast.literal_eval(node)


def annotation(node: ast.expr):
    """The type hint an annotation names, from TYPES and Literal, Optional, list and `|` over them; raises
    Unsupported for anything else."""
    if isinstance(node, ast.Constant) and node.value is None:
        return type(None)
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.BitOr):
        return typing.Union[annotation(node.left), annotation(node.right)]
    if isinstance(node, ast.Subscript):
        outer, inner = dotted(node.value), node.slice
        if outer in ("Literal", "typing.Literal"):
            try:
                return typing.Literal[tuple(map(ast.literal_eval, inner.elts if isinstance(inner, ast.Tuple)
                                                else [inner]))]
            except ValueError:
                raise Unsupported from None
        if outer in ("Optional", "typing.Optional"):
            return typing.Optional[annotation(inner)]
        if outer in ("list", "List", "typing.List"):
            return list[annotation(inner)]
    if (name := dotted(node)) in TYPES:
        return TYPES[name]
    raise Unsupported


def is_plain(node: ast.expr) -> bool:
    """Whether an annotation names a plain Python value's type (dict, list[int], tuple | None...)."""
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.BitOr):
        return all(is_plain(side) or isinstance(side, ast.Constant) and side.value is None
                   for side in (node.left, node.right))
    if isinstance(node, ast.Subscript):
        return dotted(node.value) in PLAIN or dotted(node.value) in ("Optional", "typing.Optional") and \
            is_plain(node.slice)
    return dotted(node) in PLAIN


def dotted(node: ast.expr) -> str | None:
    """'datetime.date' for that name, or None for what is not a (dotted) name."""
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute) and (outer := dotted(node.value)):
        return f"{outer}.{node.attr}"
    return None


def inferred(default) -> object:
    """The type hint of an unannotated parameter, from its default: None is optional text."""
    if default is None:
        return typing.Optional[str]
    if isinstance(default, PurePath):
        return Path
    if isinstance(default, list) and all(isinstance(item, str) for item in default):
        return list[str]
    return type(default)


def parameters_cell(cells: list) -> int | None:
    return next((index for index, cell in enumerate(cells) if cell.get("cell_type") == "code"
                 and "parameters" in cell.get("metadata", {}).get("tags", ())), None)


def cell_text(cell: dict) -> str:
    source = cell.get("source", "")
    return "".join(source) if isinstance(source, list) else source


def notebook_help(cells: list) -> str:
    """The first paragraph of the first markdown cell that is not just a heading."""
    for cell in cells:
        if cell.get("cell_type") == "markdown":
            for paragraph in cell_text(cell).split("\n\n"):
                if (text := paragraph.strip()) and not text.startswith("#"):
                    return " ".join(text.split())
    return ""
