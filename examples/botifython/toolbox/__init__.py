"""Tools: the functions and notebooks under tools/, turned into forms, run in a child process and shown as HTML.

discover() reads tools/ into Tool descriptions (or Broken cards), parse() checks a submitted form against a Tool,
run_tool() runs one in a fresh child process and returns its result as HTML, render_result() turns a value into
that HTML. The modules, by the process each runs in:

    common.py     every process: Tool, Field, Broken, the errors a run ends with, one_line()
    kinds.py      every process: the table of field kinds (KINDS), parse() in the server, argument() in a run
    discovery.py  the server, and the discovery child it starts to import each tools/*.py
    runner.py     the server: a run's parent side (run_tool), Cancel, and ending every process a run started
    child.py      a run's child process: calling the tool, its report() and printed lines, its result
    results.py    where a result is made (a run's child, a notebook's kernel): values as HTML, with
    tables.py       DataFrames as tables and CSVs, and
    downloads.py    the run's files: names, copies, zips
    notebook_form.py  the server (discovery child): a notebook's parameters cell read into a form, never run
    notebooks.py  notebook tools: their run in a run's child, their outputs, their last value in the kernel

Only the standard library is imported here: a run's child imports this package before anything else, and pandas,
matplotlib, nbclient or nh3 are imported only when a result or a notebook needs them. Below is what the server, the
tools package and the tests use; a setting (CANCEL_GRACE, MAX_ZIP…) is read in its own module, so set it there.
"""
from .child import MAX_LINE, NICENESS, Link
from .common import Broken, Cancelled, Field, Tool, ToolFailed, install_hint, label, one_line, place, scrub
from .discovery import DISCOVER_TIMEOUT, NEED_JUPYTER, discover
from .kinds import KINDS, Kind, field_type, is_file, parse
from .results import MAX_HTML, MAX_TEXT, render_result
from .runner import KERNELS, RUN_MARK, holds_sockets, kernel_folder, note_kernel, reap_leftovers, run_tool
from .tables import spreadsheet_text

__all__ = ["Broken", "Cancelled", "DISCOVER_TIMEOUT", "Field", "KERNELS", "KINDS", "Kind", "Link", "MAX_HTML",
           "MAX_LINE", "MAX_TEXT", "NEED_JUPYTER", "NICENESS", "RUN_MARK", "Tool", "ToolFailed", "discover",
           "field_type", "holds_sockets", "install_hint", "is_file", "kernel_folder", "label", "note_kernel",
           "one_line", "parse", "place", "reap_leftovers", "render_result", "run_tool", "scrub", "spreadsheet_text"]
