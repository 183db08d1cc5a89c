"""A DataFrame as a result: a table of its first rows and columns, which static/tables.js pages and sorts in the
browser, and the whole as a CSV download, every cell of which a spreadsheet shows and never runs
(spreadsheet_text). Runs where a result is made (see results.py); pandas is the caller's, found in sys.modules,
never imported here.
"""
from __future__ import annotations

import html
import numbers
import re
import sys
from collections.abc import Callable
from pathlib import Path

from .downloads import link_to, owner_only, unique

TABLE_ROWS = 20  # rows of a table the page shows at once; tables.js pages through the others the table holds
MAX_ROWS = 1_000  # rows of a DataFrame its table holds, to page and sort through; all of them are in its CSV
MAX_TABLE = 50_000  # characters of a table's rows: the first TABLE_ROWS always, more while they fit, so that a
#   page listing many runs stays quick to load however wide their tables
TABLE_COLUMNS = 25  # columns of a DataFrame shown in the table; all of them are in its CSV
MAX_CELL = 100  # characters of a table cell shown; all of it is in the CSV


def frame_result(frame, outputs: Path, download_url: Callable[[str], str], name: str, *, table: str = "") -> str:
    """'N rows × M columns', its first rows and columns as a table (or `table`, already made, of its first
    TABLE_ROWS) and the whole frame as a CSV download."""
    pandas = sys.modules["pandas"]
    path = unique(outputs, f"{name}.csv")
    index = not isinstance(frame.index, pandas.RangeIndex)
    with open(path, "x", encoding="utf-8", newline="", opener=owner_only) as file:
        spreadsheet_frame(frame, index=index).to_csv(file, index=index)
    rows, columns = frame.shape
    shown = min(rows, TABLE_ROWS)
    if not table:
        table, shown = table_html(frame.iloc[:MAX_ROWS, :TABLE_COLUMNS])
    if columns > TABLE_COLUMNS:
        more = f"; the first {f'{shown:,} rows and ' if rows > shown else ''}{TABLE_COLUMNS} columns shown"
    else:
        more = f"; the first {shown:,} shown" if rows > shown else ""
    return f"<p>{rows:,} rows × {columns:,} columns{more}. {link_to(path, download_url)}</p>{table}"


def table_html(head) -> tuple[str, int]:
    """The frame as a table, and how many of its rows it holds: a header cell per index level (its name, if it has
    one) and per column, then the rows, up to MAX_TABLE characters of them. data-page tells tables.js how many
    rows to show at once."""
    def cell(tag: str, text: str) -> str:
        return f"<{tag}>{html.escape(text if len(text) <= MAX_CELL else text[:MAX_CELL] + '…')}</{tag}>"

    levels = [cell_texts(head.index.get_level_values(level)) for level in range(head.index.nlevels)]
    columns = [cell_texts(head.iloc[:, number]) for number in range(head.shape[1])]
    header = "".join(cell("th", "" if name is None else str(name)) for name in head.index.names) + \
        "".join(cell("th", str(column)) for column in head.columns)
    body, size = [], 0
    for row in zip(*levels, *columns):
        line = "<tr>" + "".join(cell("th", text) for text in row[:len(levels)]) + \
            "".join(cell("td", text) for text in row[len(levels):]) + "</tr>"
        if len(body) >= TABLE_ROWS and size + len(line) > MAX_TABLE:
            break
        body.append(line)
        size += len(line)
    return (f'<table data-page="{TABLE_ROWS}"><thead><tr>{header}</tr></thead><tbody>{"".join(body)}</tbody>'
            "</table>"), len(body)


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
