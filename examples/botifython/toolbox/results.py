"""A tool's result as an HTML fragment: render_result() shows each kind of value (text, numbers, a DataFrame with
its CSV, a chart, a plotly figure, a file or folder to download, a FastHTML component, several of those), cut to
what a page shows quickly, with the whole as a download. Runs where a result is made: a run's child, a notebook's
kernel, and the process a tool's record() runs in. pandas, matplotlib, plotly and nh3 are never imported here:
a value of theirs is known by the modules already loaded (sys.modules), and nh3 only when HTML is to be cleaned.
"""
from __future__ import annotations

import html
import json
import logging
import numbers
import sys
from collections.abc import Callable
from pathlib import Path, PurePath

from .common import scrub, text_html
from .downloads import link_to, owner_only, path_result, unique
from .tables import TABLE_COLUMNS, TABLE_ROWS, frame_result

log = logging.getLogger(__name__)

MAX_TEXT = 50_000  # characters of a text result shown inline (a page stays quick); the whole goes to a file


def render_result(value, outputs: Path, download_url: Callable[[str], str], *, name: str = "result") -> str:
    """The value as an HTML fragment, writing any file it needs (a DataFrame's CSV, a figure's PNG) to `outputs`
    under `name`. Never raises: finished work is never marked failed because of how it is shown. Every part is
    cut to what a page shows quickly (MAX_TEXT, tables.py's limits, MAX_HTML), with a line saying so and a download
    of the whole."""
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


def safe_repr(value) -> str:
    try:
        return repr(value)
    except Exception:
        return f"<a {type(value).__name__} object>"
