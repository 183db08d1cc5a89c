"""Notebook tools: a notebook under tools/ with a cell tagged `parameters`, made a form and run headless.

In the server, notebook_tool() reads the parameters cell into form fields without running anything (for discover).
In a run's child, run_notebook() executes the notebook and shows every output it made, in order, as HTML; in the
notebook's kernel, show_value() shows the last cell's value the way a function tool's result is shown. The kernel
works in the notebook's own folder, as Jupyter's does. nbformat, nbclient and nh3 are imported when a notebook runs.
"""
from __future__ import annotations

import ast
import base64
import datetime
import html
import json
import os
import re
import sys
import typing
from collections.abc import Callable
from contextlib import suppress
from dataclasses import dataclass
from pathlib import Path, PurePath
from urllib.parse import quote

from .child import Link, failure, lower_session_priority
from .common import Broken, Field, Tool, ToolFailed, label, one_line, text_html
from .downloads import MAX_ZIP_FILES, link_to, owner_only, path_result, unique
from .kinds import Unsupported, argument, field_type, form_default
from .results import MAX_HTML, capped, figure_of, image_html, long_text, render_result, rich, sanitized, several_results

ALLOWED = "it may hold only assignments (months = 12, orders: Path = Path('orders.csv')), imports and comments"
NOTEBOOK_TYPES = "str, int, float, bool, Literal[...], datetime.date, Path, list[str] or X | None"
# What an annotation or a default may name: the types a function tool's form offers, read from the source, never run.
TYPES = {"str": str, "int": int, "float": float, "bool": bool, "None": type(None), "Path": Path, "pathlib.Path": Path,
         "date": datetime.date, "datetime.date": datetime.date}
MADE = {"Path": Path, "pathlib.Path": Path, "date": datetime.date, "datetime.date": datetime.date}
RESULT = "application/x-toolbox-result+html"  # how the kernel hands the last cell's value, shown, to run_notebook


@dataclass(frozen=True)
class Parameter:
    name: str
    hint: object  # a type hint, as a function's would be: str, Path, typing.Literal["a", "b"], list[str]...
    default: object
    help: str


class Unreadable(Exception):
    """A line of the parameters cell that cannot be a form field."""

    def __init__(self, line: int, why: str):
        super().__init__(why)
        self.line = line


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
        return [], [Broken(source=path, problem=f"{path.name}: the parameters cell, line {problem.line}: {problem}")]
    name = re.sub(r"\W", "_", path.stem.lower(), flags=re.ASCII)
    name = f"notebook_{name}" if name[0].isdigit() else name
    return [Tool(name=name, title=label(path.stem), help=notebook_help(cells), source=path,
                 fields=tuple(map(field, found)), notebook=True)], []


def field(parameter: Parameter) -> Field:
    kind, choices, _ = field_type(parameter.hint)
    help, default = parameter.help, form_default(kind, parameter.default)
    if default is None and parameter.default is not None:  # one the form cannot show (a file field's): said instead
        help = f"{help} (empty: {parameter.default})".strip()
    return Field(name=parameter.name, label=label(parameter.name), kind=kind, choices=choices, default=default,
                 required=False, help=help)


def parameters(source: str) -> list[Parameter]:
    """The parameters cell's assignments, read without running it (papermill's --help-notebook reads the same).
    Raises Unreadable for a line that is not an assignment of a literal of a supported type, an import or a
    comment."""
    lines = source.splitlines()
    try:
        tree = ast.parse(source)
    except SyntaxError as error:
        text = lines[error.lineno - 1].strip() if error.lineno and error.lineno <= len(lines) else ""
        what = "an IPython magic or shell command; move it to another cell" if text.startswith(("%", "!")) else \
            f"SyntaxError: {error.msg}"
        raise Unreadable(error.lineno or 1, f"`{text}` is {what}; {ALLOWED}") from None
    found = []
    for node in tree.body:
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            continue
        target = node.targets[0] if isinstance(node, ast.Assign) and len(node.targets) == 1 else \
            node.target if isinstance(node, ast.AnnAssign) and node.value else None
        if not isinstance(target, ast.Name):
            raise Unreadable(node.lineno, f"`{lines[node.lineno - 1].strip()}` is not an assignment to a name; "
                                          f"{ALLOWED}")
        try:
            default = value_of(node.value)
        except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
            raise Unreadable(node.lineno, f"{target.id} = {ast.unparse(node.value)} is not a literal (a number, text, "
                                          f"a list of text, Path('...') or datetime.date(...)); {ALLOWED}") from None
        try:
            hint = annotation(node.annotation) if isinstance(node, ast.AnnAssign) else inferred(default)
            field_type(hint)
        except Unsupported:
            shown = ast.unparse(node.annotation) if isinstance(node, ast.AnnAssign) else type(default).__name__
            raise Unreadable(node.lineno, f"{target.id}: {shown} is not supported; use {NOTEBOOK_TYPES}") from None
        rest = lines[node.end_lineno - 1][node.end_col_offset:].strip()
        found.append(Parameter(target.id, hint, default, rest[1:].strip() if rest.startswith("#") else ""))
    return found


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


# --- a run ----------------------------------------------------------------------------------------------------


def run_notebook(source: Path, params: dict, outputs: Path, href: Callable[[str], str], link: Link, *,
                 sockets: Path) -> str:
    """Execute the notebook with the answers in a cell after the parameters cell, as papermill does, its kernel
    working in the notebook's folder and listening in the private folder `sockets`. The result: every output, in
    order, the last cell's value shown as a function's result is, the files the run wrote beside the notebook, and
    the executed notebook as a download. A failed run raises ToolFailed with all that up to the failing cell."""
    import nbformat
    from nbclient import NotebookClient
    from traitlets.config import Config

    notebook = nbformat.read(source, as_version=4)
    index = parameters_cell(notebook.cells)
    hints = {parameter.name: parameter.hint for parameter in parameters(cell_text(notebook.cells[index]))}
    notebook.cells.insert(index + 1, nbformat.v4.new_code_cell(
        injected(params, hints), metadata={"tags": ["injected-parameters"]}))
    code = [cell for cell in notebook.cells if cell.cell_type == "code" and cell.source.strip()]
    result = nbformat.v4.new_code_cell(value_cell(outputs, href, source.stem))
    notebook.cells.append(result)
    os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [str(source.parent.parent),
                                                             os.environ.get("PYTHONPATH")]))
    ran = 0

    def executed(cell, cell_index, execute_reply):
        nonlocal ran
        if cell is not result:
            ran += 1
            link.report(ran, len(code), f"cell {ran} of {len(code)} done")

    def started(notebook):
        lower_session_priority(client.km.provisioner.pid)

    # Unix sockets, not TCP ports: a port is chosen free and bound only later by the kernel, so another program
    # can take it in between and the run fails.
    # The kernel has nothing to save: stopping it at once makes the end of a run, and Cancel, quicker.
    kernel = Config(KernelManager=dict(transport="ipc", ip=str(sockets / "ipc"),
                                       connection_file=str(sockets / "kernel.json")))
    client = NotebookClient(notebook, kernel_name="python3", config=kernel, timeout=None, shutdown_kernel="immediate",
                            resources={"metadata": {"path": str(source.parent)}}, on_notebook_start=started,
                            on_cell_executed=executed)
    before = files_in(source.parent)
    failed = None
    try:
        client.execute()
    except Exception as error:  # a cell's error, or a kernel that died: shown with what ran before it
        failed = error
    finally:  # named once it has run: the notebook may have written a file of that name
        notebook.cells.pop()  # `result`
        saved = unique(outputs, f"{source.stem}.ipynb")
        with open(saved, "x", encoding="utf-8", opener=owner_only) as file:
            nbformat.write(notebook, file)
    value = next((output.data[RESULT] for output in result.get("outputs", ()) if RESULT in output.get("data", {})),
                 None)
    shown = cells_html(code, value, outputs, href, source.stem) + \
        written_html(before, files_in(source.parent), outputs, href) + f"<p>{link_to(saved, href)}</p>"
    if failed is not None:
        raise ToolFailed(failure(source, failed), shown) from failed
    return shown


def injected(params: dict, hints: dict[str, object]) -> str:
    """The cell that sets the run's answers. A Path or a date is made through modules imported under names of
    their own: the notebook's own `Path` or `date` may be anything. An empty answer (None) leaves the notebook's
    own value, such as a file beside it."""
    lines = [f"{name} = {python(argument(hints[name], answer))}" for name, answer in params.items()
             if answer is not None and name in hints]
    imports = [f"import {module} as _{module}" for module in ("datetime", "pathlib")
               if any(f"_{module}." in line for line in lines)]
    return "\n".join(["# Parameters", *imports, *lines])


def python(value) -> str:
    if isinstance(value, PurePath):
        return f"_pathlib.Path({str(value)!r})"
    if isinstance(value, datetime.date):
        return f"_datetime.date({value.year}, {value.month}, {value.day})"
    return repr(value)


def value_cell(outputs: Path, href: Callable[[str], str], name: str) -> str:
    """The code of a last cell, added for the run and left out of the executed notebook, that shows the value of
    the cell before it (IPython's Out) with show_value(). That cell's number is len(In) - 2 (In holds a blank
    entry, then every cell run so far, this one too): execution_count is that number on IPython 8 and one more on
    IPython 9, which counts before it runs a cell."""
    before, after = href("NAME").rsplit("NAME", 1)
    return ("from toolbox import notebooks as _toolbox_notebooks\n"
            "_toolbox_notebooks.show_value(Out.get(len(In) - 2), "
            f"{str(outputs)!r}, {before!r}, {after!r}, {name!r})")


def show_value(value, outputs: str, before: str, after: str, name: str) -> None:
    """In the kernel: the last cell's value as a function's result is shown (a table with its CSV, several
    results, a download), handed to run_notebook as an output of its own. A value Jupyter shows as well as that
    (text, a chart the inline backend drew) is left to its own output."""
    value = undrawn(value)
    if isinstance(value, PurePath):  # relative to the notebook's folder, where the kernel works, not to outputs
        value = Path(value).resolve()
    if value is None or not (rich(value) or several_results(value)):
        return
    from IPython.display import display

    shown = render_result(value, Path(outputs), lambda file: before + quote(file) + after, name=name)
    display({RESULT: shown}, raw=True)


def undrawn(value):
    """The value less the charts the notebook showed already: the inline backend draws each pyplot figure when its
    cell ends, then closes it. A figure pyplot never held (Figure()) or still holds is kept."""
    def drawn(item) -> bool:
        figure, pyplot = figure_of(item), sys.modules.get("matplotlib.pyplot")
        return bool(figure is not None and pyplot and getattr(figure, "number", None) is not None
                    and not pyplot.fignum_exists(figure.number))

    if drawn(value):
        return None
    if isinstance(value, (list, tuple)):
        return [item for item in value if not drawn(item)]
    if isinstance(value, dict):
        return {key: item for key, item in value.items() if not drawn(item)}
    return value


def cells_html(cells: list, value: str | None, outputs: Path, href: Callable[[str], str], stem: str) -> str:
    """The cells' outputs in order, up to MAX_HTML characters, then a line saying the rest is in the
    executed notebook. The last cell's value is `value` when show_value() showed it."""
    shown, size = [], 0
    for cell in cells:
        for output in merged(cell.get("outputs", [])):
            if value is not None and cell is cells[-1] and output.get("output_type") == "execute_result":
                part = value
            else:
                part = output_html(output, outputs, href, stem)
            if size + len(part) > MAX_HTML:
                return "".join(shown) + "<p>The other outputs are in the executed notebook.</p>"
            shown.append(part)
            size += len(part)
    return "".join(shown)


def merged(outputs: list) -> list:
    """The outputs with each run of printed text to one stream joined into one, as Jupyter shows them."""
    joined = []
    for output in outputs:
        if output.get("output_type") == "stream" and joined and joined[-1].get("output_type") == "stream" \
                and joined[-1].get("name") == output.get("name"):
            joined[-1] = {**joined[-1], "text": joined[-1]["text"] + output.get("text", "")}
        else:
            joined.append(output)
    return joined


IMAGES = {"image/png": ".png", "image/jpeg": ".jpg"}


def output_html(output: dict, outputs: Path, href: Callable[[str], str], stem: str) -> str:
    """One output as HTML: printed text, an image as a file of the run, the kernel's HTML sanitized, markdown or
    plain text escaped, an error as its one line. Text is cut at MAX_TEXT as a function's is."""
    kind = output.get("output_type")
    if kind == "stream":
        return long_text(output.get("text", ""), outputs, href, stem)
    if kind == "error":
        return text_html(f"{output.get('ename', 'Error')}: {output.get('evalue', '')}", pre=True)
    data = output.get("data", {})
    for mime, suffix in IMAGES.items():
        if mime in data:
            path = unique(outputs, f"{stem}{suffix}")
            with open(path, "xb", opener=owner_only) as file:
                file.write(base64.b64decode(data[mime]))
            return image_html(path, href, stem)
    if "application/vnd.plotly.v1+json" in data:  # its HTML is a script, which the page would not run
        return "<p>A plotly chart: it shows in the executed notebook, or here when the last cell's value.</p>"
    if "text/html" in data:
        return capped(sanitized(cell_text({"source": data["text/html"]})), outputs, href, stem)
    for mime in ("text/markdown", "text/plain"):
        if mime in data:
            return long_text(cell_text({"source": data[mime]}), outputs, href, stem)
    return ""


MAX_WRITTEN = 20  # files a run wrote beside the notebook that it offers as downloads; the rest are only named


def files_in(folder: Path) -> dict[Path, tuple[int, int]]:
    """Each file under the folder with its time and size, up to MAX_ZIP_FILES of them. Hidden files and
    folders (an editor's, JupyterLab's checkpoints), bytecode and links are left out."""
    found = {}
    for top, folders, names in os.walk(folder):
        folders[:] = sorted(name for name in folders if not name.startswith(".") and name != "__pycache__")
        for path in (Path(top, name) for name in sorted(names) if not name.startswith(".")):
            with suppress(OSError):  # removed meanwhile
                if not path.is_symlink():
                    stat = path.stat()
                    found[path] = (stat.st_mtime_ns, stat.st_size)
            if len(found) >= MAX_ZIP_FILES:
                return found
    return found


def written_html(before: dict, after: dict, outputs: Path, href: Callable[[str], str]) -> str:
    """Downloads of the files the run made or changed under the notebook's folder, copied into the run's folder:
    they stay beside the notebook, as in Jupyter, and the run keeps them as they were when it ended."""
    written = [path for path, stamp in after.items() if before.get(path) != stamp]
    if not written:
        return ""
    links = [path_result(path, outputs, href) for path in written[:MAX_WRITTEN]]
    rest = f"; and {len(written) - MAX_WRITTEN:,} more, beside the notebook" if len(written) > MAX_WRITTEN else ""
    return f"<p>Files the notebook wrote: {', '.join(links)}{html.escape(rest)}</p>"
