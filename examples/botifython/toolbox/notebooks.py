"""Notebook tools: a notebook under tools/ with a cell tagged `parameters`, made a form and run headless.

In the server, notebook_tool() (notebook_form.py) reads the parameters cell into form fields without running
anything (for discover). In a run's child, run_notebook() executes the notebook and shows every output it made, in
order, as HTML; in the notebook's kernel, show_value() shows the last cell's value the way a function tool's result
is shown. The kernel works in the notebook's own folder, as Jupyter's does. nbformat, nbclient, mistune and nh3 are
imported when a notebook runs.
"""
from __future__ import annotations

import ast
import base64
import datetime
import html
import os
import sys
from collections.abc import Callable
from contextlib import suppress
from pathlib import Path, PurePath
from urllib.parse import quote

from .child import Link, failure, lower_session_priority
from .common import ToolFailed, label, text_html
from .downloads import MAX_ZIP_FILES, link_to, owner_only, path_result, unique
from .kinds import argument
from .notebook_form import Source, cell_text, notebook_tool, parameters, parameters_cell
from .results import (MAX_HTML, MAX_TEXT, capped, figure_of, image_html, long_text, render_result, rich, sanitized,
                      several_results)

__all__ = ["notebook_tool", "run_notebook", "show_value"]
RESULT = "application/x-toolbox-result+html"  # how the kernel hands the last cell's value, shown, to run_notebook


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
        """A cell that raised is not done: the run stops there (unless the cell is tagged raises-exception, as
        nbclient and papermill allow, and then it is done)."""
        nonlocal ran
        reply = (execute_reply or {}).get("content", {})
        if cell is result:
            return
        if reply.get("status", "ok") != "ok" and "raises-exception" not in cell.metadata.get("tags", ()):
            link.report(ran, len(code), f"cell {ran + 1} of {len(code)} failed: {reply.get('ename', 'an error')}")
            return
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
    lines = [f"{name} = {python(given(name, answer, hints[name]))}" for name, answer in params.items()
             if answer is not None and name in hints]
    imports = [f"import {module} as _{module}" for module in ("datetime", "pathlib")
               if any(f"_{module}." in line for line in lines)]
    return "\n".join(["# Parameters", *imports, *lines])


def given(name: str, answer, hint):
    """The answer as the value the notebook gets: for a plain literal no field offers (a dict, a list of numbers),
    its text read as Python by ast.literal_eval, which runs nothing; ToolFailed when it is not one of its type."""
    if not isinstance(hint, Source):
        return argument(hint, answer)
    try:
        value = ast.literal_eval(str(answer).strip())
    except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
        value = None
    else:
        if hint.kind is None or isinstance(value, hint.kind):
            return value
    what = f"a Python {hint.kind.__name__}" if hint.kind else "a Python literal"
    raise ToolFailed(f"{label(name)}: enter {what}, such as {hint.text}")


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
    """The cells' outputs in order, each a block of its own, up to MAX_HTML characters, then a line saying the
    rest is in the executed notebook. The last cell's value is `value` when show_value() showed it. A picture
    the run showed already is not shown again: a cell ending in `fig` draws its figure and shows it as its value."""
    shown, size, pictures = [], 0, set()
    for cell in cells:
        for output in merged(cell.get("outputs", [])):
            data = output.get("data", {})
            if picture := next((str(data[mime]) for mime in IMAGES if mime in data), None):
                if picture in pictures:
                    continue
                pictures.add(picture)
            if value is not None and cell is cells[-1] and output.get("output_type") == "execute_result":
                part = f"<div>{value}</div>"
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
    """One output as a block of HTML, as Jupyter shows each on lines of its own: printed text, an image as a file
    of the run, the kernel's HTML and markdown as HTML sanitized, LaTeX and plain text escaped, an error as its one
    line. Text is cut at MAX_TEXT as a function's is."""
    kind = output.get("output_type")
    if kind == "stream":
        return long_text(output.get("text", ""), outputs, href, stem, pre=True)
    if kind == "error":
        return text_html(f"{output.get('ename', 'Error')}: {output.get('evalue', '')}", pre=True)
    data = output.get("data", {})
    for mime, suffix in IMAGES.items():
        if mime in data:
            path = unique(outputs, f"{stem}{suffix}")
            with open(path, "xb", opener=owner_only) as file:
                file.write(base64.b64decode(data[mime]))
            return f"<div>{image_html(path, href, stem)}</div>"
    if "application/vnd.plotly.v1+json" in data:  # its HTML is a script, which the page would not run
        return "<p>A plotly chart: it shows in the executed notebook, or here when the last cell's value.</p>"
    if "text/html" in data:
        return f"<div>{capped(sanitized(cell_text({'source': data['text/html']})), outputs, href, stem)}</div>"
    if "text/markdown" in data:
        text = cell_text({"source": data["text/markdown"]})
        if len(text) > MAX_TEXT:  # its start as text, and all of it as a download
            return long_text(text, outputs, href, stem)
        return f"<div>{sanitized(markdown_html(text))}</div>"
    for mime in ("text/latex", "text/plain"):  # LaTeX as its source: drawing it takes a script (MathJax)
        if mime in data:
            return long_text(cell_text({"source": data[mime]}), outputs, href, stem, pre=True)
    return ""


def markdown_html(text: str) -> str:
    """Markdown as HTML, by mistune, which Jupyter's nbconvert renders markdown with (so it comes with jupyter).
    Raw HTML in it is kept for sanitized() to clean, as the kernel's own HTML is."""
    import mistune

    return mistune.html(text).strip()


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
