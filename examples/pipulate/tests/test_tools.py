"""toolbox and tools/__init__.py, called directly: discovery, form parsing, the child-process runner, results,
and recording a notebook run into the app's task history."""
import asyncio
import datetime
import errno
import json
import logging
import os
import shutil
import socket
import sys
import tempfile
import textwrap
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
import toolbox  # noqa: E402

AUTOGROUP = Path("/proc/self/autogroup")  # Linux's: the CPU share of this process's session against the others'
TOOL_NICE = min(os.nice(0) + toolbox.NICENESS, 19)  # a tool's process's nice value, counted from this process's
TOOL_SESSION = str(toolbox.NICENESS) if AUTOGROUP.exists() else "-"  # its session's autogroup value, if any


@pytest.fixture
def app(tmp_path: Path) -> Path:
    """An app folder holding the toolbox package and an empty tools/ package, as a render has them."""
    dest = tmp_path / "app"
    (dest / "tools").mkdir(parents=True)
    shutil.copytree(REPO / "toolbox", dest / "toolbox", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(REPO / "tools" / "__init__.py", dest / "tools")
    return dest


def write(app: Path, name: str, code: str) -> Path:
    path = app / "tools" / name
    path.write_text(textwrap.dedent(code), encoding="utf-8")
    return path


def notebook(app: Path, name: str, *cells: tuple[str, str, list[str]]) -> Path:
    """A notebook of (cell type, source, tags) cells, as Jupyter saves one."""
    path = app / "tools" / name
    path.write_text(json.dumps({"nbformat": 4, "nbformat_minor": 5, "metadata": {
        "kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}}, "cells": [
        {"cell_type": kind, "id": f"c{n}", "metadata": {"tags": tags}, "source": source,
         **({"outputs": [], "execution_count": None} if kind == "code" else {})}
        for n, (kind, source, tags) in enumerate(cells)]}), encoding="utf-8")
    return path


EVERY_TYPE = '''
    import datetime
    import enum
    from os.path import join
    from pathlib import Path
    from typing import Literal, Optional


    class Region(enum.Enum):
        NORTH = "n"
        SOUTH = "s"


    def sales(data: Path, country: str, top: int = 5, rate: float | None = None, totals: bool = True,
              unit: Literal["eur", "usd"] = "eur", region: Region = Region.SOUTH,
              since: datetime.date = datetime.date(2024, 1, 31), skip: list[str] = ["x"],
              note: Optional[str] = None, report=None):
        """Sum sales by country.

        Reads the CSV a shop exports.

        Args:
            data: the shop's CSV export
            country (str): the column that
                names the country
            top: how many rows to keep
        """


    def _helper():
        pass
'''


def test_discover_reads_every_parameter_type_and_the_docstring(app):
    write(app, "sales.py", EVERY_TYPE)
    write(app, "_private.py", "def hidden(): pass\n")
    tools, broken = toolbox.discover(app / "tools", jupyter=False)
    assert broken == []
    assert list(tools) == ["sales"]  # not _helper, nor join or Path imported into the module, nor _private.py
    tool = tools["sales"]
    assert (tool.title, tool.help, tool.notebook, tool.source) == (
        "Sales", "Sum sales by country.", False, app / "tools" / "sales.py")
    fields = {field.name: field for field in tool.fields}
    assert "report" not in fields
    assert {name: (field.kind, field.default, field.required, field.choices) for name, field in fields.items()} == {
        "data": ("file", None, True, ()),
        "country": ("text", None, True, ()),
        "top": ("int", 5, False, ()),
        "rate": ("float", None, False, ()),
        "totals": ("bool", True, False, ()),
        "unit": ("choice", "eur", False, ("eur", "usd")),
        "region": ("choice", "SOUTH", False, ("NORTH", "SOUTH")),
        "since": ("date", "2024-01-31", False, ()),
        "skip": ("lines", ["x"], False, ()),
        "note": ("text", None, False, ()),
    }
    assert fields["data"].help == "the shop's CSV export"
    assert fields["country"].help == "the column that names the country"
    assert fields["top"].help == "how many rows to keep"
    assert fields["top"].label == "Top"


def test_discover_reads_postponed_annotations_and_numpy_and_sphinx_docstrings(app):
    write(app, "styles.py", '''
        from __future__ import annotations


        def numpy_style(count: int, name: str = "a"):
            """Count things.

            Parameters
            ----------
            count : int
                How many
                to count.
            name : str
                Whose.
            """


        def sphinx_style(count: int):
            """Count things.

            :param count: how many to count
            """
    ''')
    tools, broken = toolbox.discover(app / "tools", jupyter=False)
    assert broken == []
    assert [(f.name, f.kind, f.help) for f in tools["numpy_style"].fields] == [
        ("count", "int", "How many to count."), ("name", "text", "Whose.")]
    assert [(f.name, f.kind, f.help) for f in tools["sphinx_style"].fields] == [("count", "int", "how many to count")]


def test_a_module_that_fails_to_import_is_a_card_with_its_line_and_the_rest_still_load(app):
    write(app, "broken.py", "import os\n\nvalue = undefined_name + 1\n")
    write(app, "typo.py", "def f(:\n    pass\n")
    write(app, "quits.py", "import sys\n\nsys.exit(2)\n")
    write(app, "fine.py", "def fine():\n    return 1\n")
    tools, broken = toolbox.discover(app / "tools", jupyter=False)
    assert list(tools) == ["fine"]
    assert [(card.source.name, card.problem) for card in broken] == [
        ("broken.py", "broken.py:3: NameError: name 'undefined_name' is not defined"),
        ("quits.py", "quits.py:3: SystemExit: 2"),
        ("typo.py", "typo.py:1: SyntaxError: invalid syntax")]


def test_an_unsupported_parameter_is_a_card_naming_the_function_and_parameter(app):
    write(app, "odd.py", '''
        def options(settings: dict):
            pass


        def many(*names: str):
            pass


        def fine(x: int):
            pass
    ''')
    tools, broken = toolbox.discover(app / "tools", jupyter=False)
    assert list(tools) == ["fine"]
    problems = [card.problem for card in broken]
    assert problems[0].startswith("odd.py: options(): parameter settings: dict is not supported; use one of str, int")
    assert problems[1].startswith("odd.py: many(): parameter names: *args and **kwargs cannot be form fields")


def test_two_tools_with_one_name_are_both_cards_naming_both_files(app):
    write(app, "a.py", "def report_sales():\n    pass\n")
    write(app, "b.py", "def report_sales():\n    pass\n")
    tools, broken = toolbox.discover(app / "tools", jupyter=False)
    assert tools == {}
    assert [card.source.name for card in broken] == ["a.py", "b.py"]
    assert {card.problem for card in broken} == {"Two tools are named report_sales: in a.py and b.py; rename one."}


def test_discover_imports_afresh_so_an_edit_shows(app):
    write(app, "edit.py", "def before():\n    pass\n")
    assert list(toolbox.discover(app / "tools", jupyter=False)[0]) == ["before"]
    write(app, "edit.py", "def after():\n    pass\n")
    assert list(toolbox.discover(app / "tools", jupyter=False)[0]) == ["after"]


def test_a_notebook_with_a_parameters_cell_is_a_tool_and_needs_jupyter(app):
    notebook(app, "Monthly Report.ipynb",
             ("markdown", "# Monthly report\n\nSales of one month, by country.", []),
             ("code", "import pandas as pd", []),
             ("code", "month = 3  # which month\nname = 'all'\nratio = 0.5\nfull = False\ncountries = ['fr']\n"
                      "nothing = None", ["parameters"]))
    notebook(app, "untagged.ipynb", ("code", "x = 1", []))
    tools, broken = toolbox.discover(app / "tools", jupyter=True)
    tool = tools["monthly_report"]
    assert (tool.title, tool.help, tool.notebook) == ("Monthly report", "Sales of one month, by country.", True)
    assert [(f.name, f.kind, f.default, f.required, f.help) for f in tool.fields] == [
        ("month", "int", 3, False, "which month"), ("name", "text", "all", False, ""),
        ("ratio", "float", 0.5, False, ""), ("full", "bool", False, False, ""),
        ("countries", "lines", ["fr"], False, ""), ("nothing", "text", None, False, "")]
    assert [card.problem.split(";")[0] for card in broken] == ["untagged.ipynb: no cell is tagged parameters"]
    tools, broken = toolbox.discover(app / "tools", jupyter=False)
    assert tools == {}
    assert broken[0].problem == f"Monthly Report.ipynb: {toolbox.NEED_JUPYTER}"


def form_tool(app: Path):
    write(app, "form.py", EVERY_TYPE)
    return toolbox.discover(app / "tools", jupyter=False)[0]["sales"]


def test_parse_turns_a_filled_form_into_json_ready_values(app):
    upload = app / "upload.csv"
    upload.write_text("a\n1\n")
    params, errors = toolbox.parse(form_tool(app), {
        "data": str(upload), "country": " fr ", "top": "12", "rate": "2.5", "totals": "on", "unit": "usd",
        "region": "NORTH", "since": "2024-02-29", "skip": "a\n\n  b \r\n", "note": ""})
    assert errors == {}
    assert params == {"data": str(upload), "country": "fr", "top": 12, "rate": 2.5, "totals": True, "unit": "usd",
                      "region": "NORTH", "since": "2024-02-29", "skip": ["a", "b"], "note": None}
    assert json.loads(json.dumps(params)) == params


def test_parse_fills_defaults_and_names_each_missing_required_field(app):
    params, errors = toolbox.parse(form_tool(app), {"country": "   "})
    assert errors == {"data": "Data: choose a file.", "country": "Country: fill this in."}
    assert (params["top"], params["rate"], params["totals"], params["unit"], params["since"], params["skip"]) == (
        5, None, False, "eur", "2024-01-31", ["x"])  # an unticked box is absent from a form: False


@pytest.mark.parametrize("field, value, error", [
    ("top", "1.5", "Top: enter a whole number."),
    ("top", "1e3", "Top: enter a whole number."),
    ("top", "٣", "Top: enter a whole number."),
    ("top", "1_000", "Top: enter a whole number."),
    ("top", "9" * 5000, "Top: enter a whole number."),
    ("top", "9223372036854775808", "Top: enter a number between -9223372036854775807 and 9223372036854775807."),
    ("rate", "nan", "Rate: enter a number, such as 2.5."),
    ("rate", "-inf", "Rate: enter a number, such as 2.5."),
    ("rate", "1e999", "Rate: enter a number, such as 2.5."),
    ("rate", "٣.٥", "Rate: enter a number, such as 2.5."),
    ("rate", "\ud800", "Rate: enter a number, such as 2.5."),
    ("totals", "maybe", "Totals: tick the box or leave it empty."),
    ("unit", "gbp", "Unit: choose one of eur, usd."),
    ("unit", "\ud800", "Unit: choose one of eur, usd."),
    ("region", "n", "Region: choose one of NORTH, SOUTH."),
    ("since", "2023-02-29", "Since: enter a date as YYYY-MM-DD."),
    ("since", "2024-1-1", "Since: enter a date as YYYY-MM-DD."),
    ("since", "20240101", "Since: enter a date as YYYY-MM-DD."),
    ("since", "２０２４-01-01", "Since: enter a date as YYYY-MM-DD."),
    ("data", "/no/such/file", "Data: the uploaded file is missing; choose it again."),
], ids=lambda value: ascii(value)[:24])
def test_parse_answers_bad_input_with_one_line_naming_the_field(app, field, value, error):
    _, errors = toolbox.parse(form_tool(app), {"country": "fr", field: value})
    assert errors[field] == error


@pytest.mark.parametrize("value", ["", " ", "\x00", "\ud800", "\udfff\ud800", "𝟙", "1" * 100_000, "\u202e", "on\n"],
                         ids=lambda value: ascii(value)[:12])
def test_parse_never_raises_on_any_string_a_browser_can_send(app, value):
    tool = form_tool(app)
    params, errors = toolbox.parse(tool, {field.name: value for field in tool.fields})
    for message in errors.values():
        assert "\n" not in message and message.split(":")[0] in {field.label for field in tool.fields}
    json.dumps(params).encode()  # storable: lone surrogates are gone
    assert all("\ud800" not in str(value) for value in params.values())


def run(tool, params=None, outputs: Path | None = None, *, reports: list | None = None):
    """Run a tool to its end, collecting its reports; returns (result HTML or the exception, reports)."""
    reports = [] if reports is None else reports
    outputs = outputs or tool.source.parent.parent / "data" / "outputs" / "1"

    async def report(done, total, line=""):
        reports.append((done, total, line))

    async def main():
        return await toolbox.run_tool(tool, params or {}, report=report, outputs=outputs,
                                      download_url=lambda name: f"/tasks/1/files/{name}")
    try:
        return asyncio.run(main()), reports
    except Exception as error:
        return error, reports


def one_tool(app: Path, code: str, name: str = "tool.py"):
    write(app, name, code)
    tools, broken = toolbox.discover(app / "tools", jupyter=False)
    assert broken == []
    return next(iter(tools.values()))


def test_a_sync_tool_runs_in_a_child_with_its_cwd_in_outputs_and_streams_its_progress(app):
    tool = one_tool(app, '''
        import os
        from pathlib import Path


        def count(words: list[str], report):
            for n, word in enumerate(words, 1):
                report(n, len(words), f"counted {word}")
            print("printed <too>")
            Path("out.txt").write_text(str(os.getpid()))
            return f"{len(words)} words"
    ''')
    result, reports = run(tool, {"words": ["a", "b", "c"]})
    assert result == "3 words"
    assert [line for _, _, line in reports] == ["counted a", "counted b", "counted c", "printed <too>"]
    assert reports[-1][:2] == (3, 3)
    child = int((app / "data" / "outputs" / "1" / "out.txt").read_text())
    assert child != os.getpid()
    assert oct((app / "data" / "outputs" / "1").stat().st_mode & 0o777) == "0o700"


def test_a_tool_runs_at_a_lower_cpu_priority_than_the_server_and_so_does_its_session(app):
    tool = one_tool(app, '''
        import os
        from pathlib import Path


        def niceness() -> str:
            group = Path("/proc/self/autogroup")
            session = group.read_text().split()[-1] if group.exists() else "-"
            return f"{os.nice(0)} {os.getsid(0) == os.getpid()} {session}"
    ''')
    result, _ = run(tool, {})
    assert result == f"{TOOL_NICE} True {TOOL_SESSION}"
    assert TOOL_NICE > os.nice(0)


def test_the_bar_is_coalesced_in_the_child_but_every_line_arrives_in_order(app):
    tool = one_tool(app, '''
        def busy(report):
            for n in range(1, 100_001):
                report(n, 100_000, f"line {n}" if n % 100 == 0 else "")
    ''')
    result, reports = run(tool)
    assert result == "Done."
    assert [line for _, _, line in reports if line] == [f"line {n}" for n in range(100, 100_001, 100)]
    assert len(reports) < 2_000  # one call per line at most, plus one per batch without lines
    assert reports[-1][:2] == (100_000, 100_000)


def test_a_bar_that_does_not_move_is_sent_once(app):
    tool = one_tool(app, '''
        import time


        def still(report):
            end = time.monotonic() + 1  # twenty of the child's sending rounds
            while time.monotonic() < end:
                report(1, 2)
            report(2, 2, "last")
    ''')
    result, reports = run(tool, {})
    assert result == "Done."
    assert reports == [(1, 2, ""), (2, 2, "last")]


def test_a_busy_sync_tool_leaves_the_event_loop_free(app):
    tool = one_tool(app, '''
        import time
        from pathlib import Path


        def spin(report):
            report(0, 1, "spinning")
            deadline = time.monotonic() + 60
            while not Path("go").exists() and time.monotonic() < deadline:
                pass  # busy, holding this process's GIL, until the event loop (in the parent) writes "go"
            return "released" if Path("go").exists() else "the event loop never ran"
    ''')
    outputs = app / "data" / "outputs" / "8"

    async def main():
        started = asyncio.Event()

        async def report(done, total, line=""):
            started.set()

        job = asyncio.create_task(toolbox.run_tool(tool, {}, report=report, outputs=outputs,
                                                   download_url=lambda name: name))
        await started.wait()
        (outputs / "go").touch()
        return await job
    assert asyncio.run(main()) == "released"


def test_an_async_tool_awaits_its_reports(app):
    tool = one_tool(app, '''
        import asyncio


        async def wait(times: int, report):
            for n in range(times):
                await asyncio.sleep(0)
                await report(n + 1, times)
            return {"waited": times}
    ''')
    result, reports = run(tool, {"times": 4})
    assert result == '<pre>{\n  &quot;waited&quot;: 4\n}</pre>'
    assert reports[-1] == (4, 4, "")


def test_a_failing_tool_names_the_error_and_its_own_line_and_logs_the_traceback(app, caplog):
    tool = one_tool(app, '''
        def _lookup(row):
            return row["country"]


        def sales(data: str = ""):
            return _lookup({})
    ''', "sales.py")
    with caplog.at_level(logging.ERROR, logger="toolbox"):
        error, _ = run(tool)
    assert isinstance(error, toolbox.ToolFailed)
    assert str(error) == "KeyError: 'country' (sales.py:3)"
    assert 'in _lookup\n    return row["country"]' in caplog.text


def test_a_tool_whose_process_dies_fails_with_its_exit_code(app):
    tool = one_tool(app, "import os\n\n\ndef die():\n    os._exit(3)\n")
    error, _ = run(tool)
    assert isinstance(error, toolbox.ToolFailed)
    assert str(error) == "the tool's process exited with code 3"


def cancel_after_first_report(tool, outputs: Path):
    """Start the tool, cancel it once it has reported, and return what the awaiting coroutine raised."""
    async def main():
        started = asyncio.Event()

        async def report(done, total, line=""):
            started.set()

        job = asyncio.create_task(toolbox.run_tool(tool, {}, report=report, outputs=outputs,
                                                   download_url=lambda name: name))
        await started.wait()
        job.cancel()
        try:
            await job
        except BaseException as error:
            return error
    return asyncio.run(main())


def test_cancel_raises_cancelled_at_the_next_report_of_a_sync_tool(app):
    tool = one_tool(app, '''
        import time
        from pathlib import Path

        import toolbox


        def forever(report):
            try:
                while True:
                    report(0, 1, "working")
                    time.sleep(0.01)
            except toolbox.Cancelled:
                Path("cancelled").write_text("yes")
                raise
    ''')
    outputs = app / "data" / "outputs" / "2"
    assert isinstance(cancel_after_first_report(tool, outputs), asyncio.CancelledError)
    assert (outputs / "cancelled").read_text() == "yes"


def test_cancel_kills_a_tool_that_never_reports_again_after_the_grace(app, monkeypatch):
    monkeypatch.setattr(toolbox.runner, "CANCEL_GRACE", 0.3)
    tool = one_tool(app, '''
        import os
        import time
        from pathlib import Path


        def stuck(report):
            Path("pid").write_text(str(os.getpid()))
            report(0, 1)
            while True:
                time.sleep(1)
    ''')
    outputs = app / "data" / "outputs" / "3"
    assert isinstance(cancel_after_first_report(tool, outputs), asyncio.CancelledError)
    with pytest.raises(ProcessLookupError):  # killed and reaped
        os.kill(int((outputs / "pid").read_text()), 0)


def render(value, outputs: Path) -> str:
    outputs.mkdir(exist_ok=True)
    return toolbox.render_result(value, outputs, lambda name: f"/files/{name}", name="sales")


@pytest.mark.parametrize("value, html", [
    (None, "Done."),
    ("<b>3</b>", "&lt;b&gt;3&lt;/b&gt;"),
    ("two\nlines", "<pre>two\nlines</pre>"),
    (42, "42"),
    (2.5, "2.5"),
    (True, "True"),
    ({"a": ["<x>"]}, '<pre>{\n  &quot;a&quot;: [\n    &quot;&lt;x&gt;&quot;\n  ]\n}</pre>'),
    ([1, object], "<pre>[1, &lt;class &#x27;object&#x27;&gt;]</pre>"),
    ("lone \ud800", "lone \ufffd"),
])
def test_plain_results_render_escaped(tmp_path, value, html):
    assert render(value, tmp_path / "out") == html


def test_numpy_scalars_render_as_plain_numbers(tmp_path):
    import numpy as np

    assert [render(value, tmp_path / "out") for value in (np.int64(3), np.float32(0.5), np.True_)] == [
        "3", "0.5", "True"]


def test_an_unrenderable_result_shows_its_repr_and_never_raises(tmp_path):
    class Odd:
        def __repr__(self):
            return "<Odd & strange>"

    class Hostile:
        def __repr__(self):
            raise RuntimeError("no repr")

    assert render(Odd(), tmp_path / "out") == "<pre>&lt;Odd &amp; strange&gt;</pre>"
    assert render(Hostile(), tmp_path / "out") == "<pre>&lt;a Hostile object&gt;</pre>"


def test_a_dataframe_renders_its_size_first_rows_and_a_csv_of_all_of_it(tmp_path):
    import pandas as pd

    frame = pd.DataFrame({"country": [f"<c{n}>" for n in range(25)], "total": range(25)})
    out = tmp_path / "out"
    html = render(frame, out)
    assert html.startswith('<p>25 rows × 2 columns; the first 20 shown. <a href="/files/sales.csv" download>')
    assert "<th>country</th><th>total</th>" in html
    assert "<td>&lt;c19&gt;</td><td>19</td>" in html and "c20" not in html
    assert pd.read_csv(out / "sales.csv").equals(frame)
    assert "1 rows × 1 columns" in render(pd.Series([7], name="n"), out)
    assert (out / "sales-1.csv").read_text() == "n\n7\n"


def test_a_path_result_is_a_download_copied_into_outputs_when_it_lives_elsewhere(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "report.xlsx").write_bytes(b"inside")
    (tmp_path / "report.xlsx").write_bytes(b"outside")
    assert render(Path("report.xlsx"), out) == '<a href="/files/report.xlsx" download>report.xlsx</a>'  # cwd: outputs
    assert render(tmp_path / "report.xlsx", out) == '<a href="/files/report-1.xlsx" download>report-1.xlsx</a>'
    assert (out / "report-1.xlsx").read_bytes() == b"outside"
    assert render(tmp_path / "missing.csv", out) == f"{tmp_path / 'missing.csv'} (no such file)"


def test_an_ft_component_renders_as_its_html(tmp_path):
    from fasthtml.common import Div

    assert render(Div("<x>", cls="total"), tmp_path / "out") == '<div class="total">&lt;x&gt;</div>\n'


def test_a_dataframe_result_crosses_from_the_child_as_html(app):
    tool = one_tool(app, '''
        import pandas as pd


        def frame(rows: int = 3):
            return pd.DataFrame({"n": range(rows)})
    ''')
    result, _ = run(tool, {"rows": 3}, app / "data" / "outputs" / "7")
    assert result.startswith('<p>3 rows × 1 columns. <a href="/tasks/1/files/frame.csv" download>frame.csv</a></p>')
    assert (app / "data" / "outputs" / "7" / "frame.csv").read_text() == "n\n0\n1\n2\n"


@pytest.fixture
def tools_package(app_dir: Path, monkeypatch: pytest.MonkeyPatch):
    """The tools package of the app copy the server fixture imports, imported as a notebook imports it."""
    monkeypatch.syspath_prepend(str(app_dir))
    for name in [name for name in sys.modules if name == "tools" or name.startswith("tools.")]:
        monkeypatch.delitem(sys.modules, name)
    import tools
    return tools


def test_record_awaits_an_async_tool(app_dir, tools_package, server):
    server.db.profiles.insert(name="Default")
    write(app_dir, "waits.py", '''
        async def waits(times: int, report):
            for n in range(times):
                await report(n + 1, times, f"waited {n + 1}")
            return times
    ''')
    from tools.waits import waits

    assert asyncio.run(tools_package.record(waits, times=2)) == 2
    task, = server.db.tasks()
    assert (task.status, task.done, task.total, task.log, task.result) == ("done", 2, 2, "waited 1\nwaited 2\n", "2")


def test_record_without_the_app_database_says_to_start_the_app_and_runs_nothing(app_dir, tools_package):
    ran = []
    with pytest.raises(FileNotFoundError, match=r"does not exist yet: start the app once with ./scripts/run first"):
        tools_package.record(lambda: ran.append(1))
    assert ran == [] and not (app_dir / "data").exists()


def test_record_stores_a_finished_task_the_app_shows_for_the_profile_last_chosen(app_dir, tools_package, server,
                                                                                 client, capsys):
    server.db.profiles.insert(name="Default")
    server.db.store["profile_id"] = work = server.db.profiles.insert(name="Work").id
    write(app_dir, "sales.py", '''
        import datetime


        def sales(country: str, since: datetime.date, report=None):
            report(1, 2, "read <rows>")
            report(2, 2, "summed")
            return {"country": country}


        def missing():
            return {}["country"]
    ''')
    from tools.sales import missing, sales

    assert tools_package.record(sales, country="fr", since=datetime.date(2024, 5, 1)) == {"country": "fr"}
    assert "read <rows>\n" in capsys.readouterr().out
    with pytest.raises(KeyError):
        tools_package.record(missing)
    done, failed = server.db.tasks(order_by="id")
    assert (done.profile_id, done.title, done.status, done.done, done.total, done.kind, json.loads(done.params)) == (
        work, "Sales", "done", 2, 2, "tool:sales", {"country": "fr", "since": "2024-05-01"})
    assert (failed.status, failed.result) == ("failed", "Failed: KeyError: &#x27;country&#x27; (sales.py:12)")
    row = client.get(f"/tasks/{done.id}").text
    assert f'id="task-{done.id}"' in row and 'class="task done"' in row
    assert "read &lt;rows&gt;\nsummed" in row and "<pre>{\n  &quot;country&quot;: &quot;fr&quot;\n}</pre>" in row
    assert client.get(f"/tasks/{done.id}/log").text == "read <rows>\nsummed\n"


def test_a_notebook_kernels_sockets_go_to_tmp_when_the_temporary_folder_refuses_them(monkeypatch):
    """The temporary folder is on a file system without Unix sockets, as a Windows drive is under WSL 2. It is
    short and in /tmp: a socket's path in pytest's own folders would be too long anyway."""
    with tempfile.TemporaryDirectory(prefix="drive-", dir="/tmp") as drive:
        monkeypatch.setattr(tempfile, "tempdir", drive)
        bind = socket.socket.bind

        def refused(self, address):
            if isinstance(address, str) and address.startswith(drive):
                raise OSError(errno.EOPNOTSUPP, "Operation not supported")
            return bind(self, address)

        with monkeypatch.context() as refusing:
            refusing.setattr(socket.socket, "bind", refused)
            with toolbox.kernel_folder() as folder:
                assert Path(folder).parent == Path("/tmp")
                assert os.listdir(drive) == []  # no probe left behind
        toolbox.holds_sockets.cache_clear()  # the same folder, now holding sockets
        with toolbox.kernel_folder() as folder:
            assert Path(folder).parent == Path(drive) and os.listdir(drive) == [Path(folder).name]


def test_a_figure_renders_as_a_png_in_outputs(tmp_path):
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure

    figure = Figure()
    figure.subplots().plot([1, 2, 3])
    out = tmp_path / "out"
    assert render(figure, out) == '<img src="/files/sales.png" alt="sales">'
    assert (out / "sales.png").read_bytes().startswith(b"\x89PNG\r\n\x1a\n")


def one_notebook_tool(app: Path, name: str, *cells: tuple[str, str, list[str]]):
    notebook(app, f"{name}.ipynb", *cells)
    return toolbox.discover(app / "tools", jupyter=True)[0][name]


def test_a_notebook_tool_runs_with_its_answers_injected_after_the_parameters_cell(app):
    tool = one_notebook_tool(app, "report",
                             ("markdown", "# Report", []),
                             ("code", "month = 1  # which month\nname = 'none'", ["parameters"]),
                             ("code", "print(name * 2)", []),
                             ("code", "month * 10", []))
    params, errors = toolbox.parse(tool, {"month": "5", "name": "<ab>"})
    assert errors == {}
    outputs = app / "data" / "outputs" / "4"
    result, reports = run(tool, params, outputs)
    assert result == '<pre>&lt;ab&gt;&lt;ab&gt;\n</pre>50<p><a href="/tasks/1/files/report.ipynb" download>report.ipynb</a></p>'
    assert reports[-1][:2] == (4, 4)  # the parameters cell, the injected one and the two after it
    import nbformat

    executed = nbformat.read(outputs / "report.ipynb", as_version=4)
    injected = executed.cells[2]
    assert injected.metadata.tags == ["injected-parameters"]
    assert injected.source == "# Parameters\nmonth = 5\nname = '<ab>'"
    assert executed.cells[3].outputs[0].text == "<ab><ab>\n"


def test_a_notebook_tools_kernel_runs_at_the_tools_lower_cpu_priority_and_so_does_its_session(app):
    tool = one_notebook_tool(
        app, "priority", ("code", "unused = 0", ["parameters"]),
        ("code", "import os\nfrom pathlib import Path\ngroup = Path('/proc/self/autogroup')\n"
                 "print(os.nice(0), group.read_text().split()[-1] if group.exists() else '-')", []))
    result, _ = run(tool, {}, app / "data" / "outputs" / "7")
    assert result.startswith(f"<pre>{TOOL_NICE} {TOOL_SESSION}\n</pre><p>")


def test_a_notebook_tools_kernel_listens_on_private_unix_sockets_that_go_with_the_run(app):
    tool = one_notebook_tool(
        app, "sockets", ("code", "unused = 0", ["parameters"]),
        ("code", "import json, os\nfrom ipykernel.connect import get_connection_info\n"
                 "info = json.loads(get_connection_info())\nfolder = os.path.dirname(info['ip']) or '.'\n"
                 "print(info['transport'], oct(os.stat(folder).st_mode & 0o777), os.getpid(), folder)", []))
    result, _ = run(tool, {}, app / "data" / "outputs" / "8")
    transport, mode, pid, folder = result.removeprefix("<pre>").split("\n")[0].split(" ", 3)
    assert (transport, mode) == ("ipc", "0o700")  # no port for another program to take while the kernel starts
    assert not Path(folder).exists()
    with pytest.raises(ProcessLookupError):  # stopped with the run, not left to notice its parent has gone
        os.kill(int(pid), 0)


def test_a_notebook_tool_runs_when_the_temporary_folders_path_is_too_long_for_a_socket(app, monkeypatch):
    deep = app / ("t" * 100)
    deep.mkdir()
    monkeypatch.setenv("TMPDIR", str(deep))  # the tool's process, and its kernel, read it afresh
    tool = one_notebook_tool(app, "deep", ("code", "x = 2", ["parameters"]), ("code", "x * 21", []))
    result, _ = run(tool, {}, app / "data" / "outputs" / "9")
    assert isinstance(result, str) and result.startswith("42<p>"), result


def test_a_failing_notebook_tool_names_the_kernel_error(app):
    tool = one_notebook_tool(app, "bad", ("code", "x = 1", ["parameters"]), ("code", "{}['country']", []))
    error, _ = run(tool, {"x": 2}, app / "data" / "outputs" / "5")
    assert isinstance(error, toolbox.ToolFailed)
    assert str(error) == "KeyError: 'country' (bad.ipynb)"
    assert (app / "data" / "outputs" / "5" / "bad.ipynb").exists()


def test_cancel_stops_a_notebook_tool_after_its_current_cell(app, monkeypatch):
    monkeypatch.setattr(toolbox.runner, "CANCEL_GRACE", 30)  # cancelled by the cell hook, never killed: no race with it
    tool = one_notebook_tool(app, "slow", ("code", "pause = 0.2", ["parameters"]),
                             *[("code", "import time\ntime.sleep(pause)", [])] * 20)
    outputs = app / "data" / "outputs" / "6"
    assert isinstance(cancel_after_first_report(tool, outputs), asyncio.CancelledError)
    executed = json.loads((outputs / "slow.ipynb").read_text())
    assert sum(1 for cell in executed["cells"] if cell.get("execution_count")) < 20


def test_a_notebook_tool_killed_on_cancel_leaves_no_kernel_folder_behind(app, monkeypatch):
    monkeypatch.setattr(toolbox.runner, "CANCEL_GRACE", 0.5)  # its cell outlasts the grace: the tool's process is killed
    made, kernel_folder = [], toolbox.kernel_folder

    def recorded():
        made.append(folder := kernel_folder())
        return folder

    monkeypatch.setattr(toolbox.runner, "kernel_folder", recorded)
    tool = one_notebook_tool(app, "stuck", ("code", "pause = 30", ["parameters"]),
                             ("code", "import time\ntime.sleep(pause)", []))
    assert isinstance(cancel_after_first_report(tool, app / "data" / "outputs" / "10"), asyncio.CancelledError)
    assert len(made) == 1 and not Path(made[0].name).exists()


def test_a_notebook_imports_a_tool_and_runs_it_with_a_progress_bar(app, monkeypatch):
    import nbformat
    from nbclient import NotebookClient

    write(app, "words.py", '''
        def count(words: list[str], report):
            for n, word in enumerate(words, 1):
                report(n, len(words), f"saw {word}")
            return len(words)
    ''')
    (app / "notebooks").mkdir()
    cells = [nbformat.v4.new_code_cell("from tools import progress\nfrom tools.words import count"),
             nbformat.v4.new_code_cell("count(['a', 'b'], report=progress)")]
    # What the venv's repo-root.pth does for a real render: the app folder is importable from notebooks/.
    monkeypatch.setenv("PYTHONPATH", str(app))
    executed = NotebookClient(nbformat.v4.new_notebook(cells=cells), kernel_name="python3",
                              resources={"metadata": {"path": str(app / "notebooks")}}).execute()
    outputs = executed.cells[1].outputs
    printed = "".join(output.get("text", "") for output in outputs if output.output_type == "stream")
    assert "saw a\n" in printed and "saw b\n" in printed and "2/2" in printed
    assert outputs[-1].data["text/plain"] == "2"
