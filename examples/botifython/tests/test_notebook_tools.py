"""Results a notebook makes, as a tool's result: tables with dates and named index columns, several at once,
charts, styled tables; and notebook tools as a colleague uses them: annotated inputs (a file, a date, a choice),
paths that mean what they mean in Jupyter, every output of a run shown in order, and a failed run's outputs up to
the failing cell."""
from __future__ import annotations

import asyncio
import io
import json
import re
import sys
from pathlib import Path

import pandas as pd
import pytest

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
import toolbox  # noqa: E402

from conftest import open_page  # noqa: E402


def render(value, outputs: Path, name: str = "sales") -> str:
    outputs.mkdir(exist_ok=True)
    return toolbox.render_result(value, outputs, lambda file: f"/files/{file}", name=name)


# --- tables ----------------------------------------------------------------------------------------------------


def test_a_table_shows_dates_as_dates_and_names_its_index_column(tmp_path):
    days = pd.date_range("2012-01-01", periods=3, name="day")
    frame = pd.DataFrame({"rides": [5, 7, 9], "seen": pd.to_datetime(["2012-01-01 08:30", None, "2012-01-03 00:00"])},
                         index=days)
    shown = render(frame, tmp_path / "out")
    assert "<thead><tr><th>day</th><th>rides</th><th>seen</th></tr></thead>" in shown, shown
    assert "<tr><th>2012-01-01</th><td>5</td><td>2012-01-01 08:30:00</td></tr>" in shown, shown
    assert "<tr><th>2012-01-02</th><td>7</td><td>NaT</td></tr>" in shown
    assert "2012-01-02 00:00:00" not in shown


def test_each_index_level_is_a_column_named_by_its_level(tmp_path):
    frame = pd.DataFrame({"n": [1, 2]}, index=pd.MultiIndex.from_tuples([("fr", 2024), ("de", 2025)],
                                                                        names=["country", None]))
    shown = render(frame, tmp_path / "out")
    assert "<thead><tr><th>country</th><th></th><th>n</th></tr></thead>" in shown, shown
    assert "<tr><th>fr</th><th>2024</th><td>1</td></tr>" in shown


def test_a_short_list_or_dict_of_tables_is_several_results_and_a_list_of_text_stays_json(tmp_path):
    out = tmp_path / "out"
    north, south = pd.DataFrame({"n": [1]}), pd.DataFrame({"n": [2, 3]})
    shown = render({"north": north, "south": south}, out)
    assert shown.index("<h4>north</h4>") < shown.index("1 rows × 1 columns") < shown.index("<h4>south</h4>") < \
        shown.index("2 rows × 1 columns"), shown
    assert sorted(path.name for path in out.iterdir()) == ["sales-north.csv", "sales-south.csv"]
    both = render((north, "two tables"), out, name="pair")
    assert "pair-1.csv" in both and both.endswith("<div>two tables</div>"), both
    assert render(["a", "b"], out) == '<pre>[\n  &quot;a&quot;,\n  &quot;b&quot;\n]</pre>'


# --- charts and styled tables ------------------------------------------------------------------------------------


@pytest.fixture
def pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    yield plt
    plt.close("all")


def test_an_axes_as_df_plot_returns_it_is_a_chart(tmp_path, pyplot):
    axes = pd.DataFrame({"rides": [1, 3, 2]}).plot()
    assert render(axes, tmp_path / "out") == '<img src="/files/sales.png" alt="sales">'
    assert (tmp_path / "out" / "sales.png").read_bytes().startswith(b"\x89PNG")


def test_a_grid_holding_its_figure_as_seaborn_does_is_a_chart(tmp_path, pyplot):
    class Grid:  # what seaborn's FacetGrid and PairGrid hold: .figure (and .fig, older)
        def __init__(self):
            self.fig, self.axes = pyplot.subplots(1, 2)

    assert render(Grid(), tmp_path / "out") == '<img src="/files/sales.png" alt="sales">'


def test_lines_of_one_chart_show_it_once_and_a_table_with_a_chart_shows_both(tmp_path, pyplot):
    lines = pyplot.plot([1, 2], [3, 4], [1, 2], [4, 3])
    assert render(lines, tmp_path / "out").count("<img") == 1
    figure, axes = pyplot.subplots()
    both = render((pd.DataFrame({"n": [1]}), figure), tmp_path / "out", name="both")
    assert re.fullmatch(r'<div><p>1 rows × 1 columns\. <a href="/files/both-1\.csv" download>both-1\.csv</a></p>'
                        r'<table data-page="20">.*</table></div><div><img src="/files/both-2\.png" alt="both-2"></div>',
                        both), both


def test_a_styler_is_its_formatted_table_sanitized_and_its_data_as_csv(tmp_path):
    frame = pd.DataFrame({"share": [0.5, 0.25]}, index=pd.Index(["fr", "de"], name="country"))
    styled = frame.style.format("{:.1%}").highlight_max().set_caption("<script>alert(1)</script>Shares")
    out = tmp_path / "out"
    shown = render(styled, out)
    assert re.match(r'<p>2 rows × 1 columns\. <a href="/files/sales\.csv" download>sales\.csv</a></p>\s*<table>',
                    shown), shown
    assert "50.0%" in shown and "25.0%" in shown and "Shares" in shown
    assert not re.search(r"<style|<script|alert|\bid=|\bclass=|background", shown), shown
    assert pd.read_csv(out / "sales.csv").values.tolist() == [["fr", 0.5], ["de", 0.25]]


def test_a_plotly_figure_is_a_picture_or_an_interactive_page_to_download(tmp_path):
    graph_objects = pytest.importorskip("plotly.graph_objects")
    shown = render(graph_objects.Figure(graph_objects.Bar(x=["a", "b"], y=[1, 2])), tmp_path / "out")
    assert shown == '<img src="/files/sales.png" alt="sales">' or \
        shown.startswith('<p>A plotly chart, to open in your browser: <a href="/files/sales.html" download>'), shown
    assert "<script" not in shown


# --- notebook tools: their form -----------------------------------------------------------------------------------


def notebook(path: Path, *cells: tuple[str, str, list[str]]) -> Path:
    """A notebook of (cell type, source, tags) cells, as Jupyter saves one."""
    path.write_text(json.dumps({"nbformat": 4, "nbformat_minor": 5, "metadata": {"kernelspec": {
        "name": "python3", "display_name": "Python 3", "language": "python"}}, "cells": [
        {"cell_type": kind, "id": f"c{n}", "metadata": {"tags": tags}, "source": source,
         **({"outputs": [], "execution_count": None} if kind == "code" else {})}
        for n, (kind, source, tags) in enumerate(cells)]}), encoding="utf-8")
    return path


@pytest.fixture
def app(tmp_path: Path) -> Path:
    """An app folder holding the toolbox package and an empty tools/ package, as a render has them."""
    import shutil

    dest = tmp_path / "app"
    (dest / "tools").mkdir(parents=True)
    shutil.copytree(REPO / "toolbox", dest / "toolbox", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(REPO / "tools" / "__init__.py", dest / "tools")
    return dest


# --- notebook tools: a run -----------------------------------------------------------------------------------------


def run(tool, params: dict, outputs: Path):
    """Run the tool to its end; its result HTML, or the exception."""
    async def main():
        async def report(done, total, line=""):
            pass

        return await toolbox.run_tool(tool, params, report=report, outputs=outputs,
                                      download_url=lambda name: f"/tasks/1/files/{name}")
    try:
        return asyncio.run(main())
    except Exception as error:
        return error


def test_a_path_and_a_date_arrive_as_a_path_and_a_date_and_relative_paths_are_the_notebooks(app):
    tools = app / "tools"
    (tools / "data").mkdir()
    (tools / "data" / "bikes.csv").write_text("bike,rides\nred,3\nblue,4\n")
    (tools / "orders.csv").write_text("country,amount\nFR,10\n")
    upload = app / "data" / "uploads" / "mine.csv"
    upload.parent.mkdir(parents=True)
    upload.write_text("country,amount\nJP,1\nJP,2\n")
    notebook(tools / "paths.ipynb",
             ("code", 'import datetime\nfrom pathlib import Path\n\norders: Path = Path("orders.csv")\n'
                      "day: datetime.date = datetime.date(2024, 1, 1)", ["parameters"]),
             ("code", "import pandas as pd\nprint(type(orders).__name__, type(day).__name__, day.isoformat())\n"
                      "print(len(pd.read_csv(orders)), 'orders;', pd.read_csv('data/bikes.csv').rides.sum(), 'rides')\n"
                      "pd.read_csv(orders).to_csv('summary.csv', index=False)", []))
    tool = toolbox.discover(tools, jupyter=True)[0]["paths"]
    params, errors = toolbox.parse(tool, {"orders": str(upload), "day": "2024-02-29"})
    assert errors == {}
    outputs = app / "data" / "outputs" / "1"

    uploaded = run(tool, params, outputs)
    assert "PosixPath date 2024-02-29\n2 orders; 7 rides\n" in uploaded, uploaded
    assert 'Files the notebook wrote: <a href="/tasks/1/files/summary.csv" download>summary.csv</a>' in uploaded
    assert (outputs / "summary.csv").read_text() == "country,amount\nJP,1\nJP,2\n"  # kept as this run left it
    assert oct((outputs / "summary.csv").stat().st_mode & 0o777) == "0o600"
    executed = json.loads((outputs / "paths.ipynb").read_text())
    assert "".join(executed["cells"][1]["source"]) == (
        f"# Parameters\nimport datetime as _datetime\nimport pathlib as _pathlib\n"
        f"orders = _pathlib.Path({str(upload)!r})\nday = _datetime.date(2024, 2, 29)")

    default = run(tool, toolbox.parse(tool, {})[0], app / "data" / "outputs" / "2")  # the file beside the notebook
    assert "PosixPath date 2024-01-01\n1 orders; 7 rides\n" in default, default
    assert (tools / "summary.csv").read_text() == "country,amount\nFR,10\n"  # written where Jupyter writes it


OUTPUTS = [
    ("code", "%matplotlib inline\nimport pandas as pd\nfrom IPython.display import HTML, Markdown, display", []),
    ("code", "rows = 3", ["parameters"]),
    ("code", "print('first print')\nframe = pd.DataFrame({'day': pd.date_range('2012-01-01', periods=rows), "
             "'rides': range(rows)})\nframe", []),
    ("code", "display(Markdown('**a note**, [a link](javascript:steal()) <span onclick=steal()>span</span>'))\n"
             "display(HTML('<b onclick=\"steal()\">bold</b><script>steal()</script><style>b {}</style>'))", []),
    ("code", "frame.plot(x='day', y='rides')", []),
    ("code", "print('last print')\nframe.set_index('day')", []),
]


def test_every_output_of_a_run_shows_in_order_and_the_last_table_downloads_as_csv(app):
    notebook(app / "tools" / "outputs.ipynb", *OUTPUTS)
    tool = toolbox.discover(app / "tools", jupyter=True)[0]["outputs"]
    outputs = app / "data" / "outputs" / "1"
    shown = run(tool, {"rows": 4}, outputs)
    assert isinstance(shown, str), shown
    order = ["first print", "<td>2012-01-01</td>", "<strong>a note</strong>, <a", "<b>bold</b>",
             "&lt;Axes: xlabel=&#x27;day&#x27;&gt;",
             '<img src="/tasks/1/files/outputs.png"', "last print", "4 rows × 1 columns",
             "<th>2012-01-04</th><td>3</td>", "outputs.ipynb"]
    assert [shown.find(part) for part in order] == sorted(shown.find(part) for part in order), shown
    assert -1 not in [shown.find(part) for part in order], shown
    assert not re.search(r"<script|<style|onclick|steal", shown), shown
    assert shown.count("<img") == 1
    assert (outputs / "outputs.png").read_bytes().startswith(b"\x89PNG")
    assert pd.read_csv(outputs / "outputs.csv").values.tolist()[-1] == ["2012-01-04", 3]
    executed = json.loads((outputs / "outputs.ipynb").read_text())
    assert len(executed["cells"]) == len(OUTPUTS) + 1  # the answers' cell, and nothing of the app's own


def test_a_chart_or_a_table_and_a_chart_as_the_last_value_show_once_each(app):
    notebook(app / "tools" / "last.ipynb",
             ("code", "both = True", ["parameters"]),
             ("code", "%matplotlib inline\nimport pandas as pd\nframe = pd.DataFrame({'n': [1, 2]})", []),
             ("code", "(frame, frame.plot()) if both else frame.plot()", []))
    tool = toolbox.discover(app / "tools", jupyter=True)[0]["last"]
    chart = run(tool, {"both": False}, app / "data" / "outputs" / "1")
    assert chart.count("<img") == 1 and "rows ×" not in chart, chart
    both = run(tool, {"both": True}, app / "data" / "outputs" / "2")
    assert both.count("<img") == 1 and "2 rows × 1 columns" in both, both


def test_each_text_output_is_a_block_of_its_own_not_run_together_with_the_next(app):
    notebook(app / "tools" / "lines.ipynb",
             ("code", "n = 3", ["parameters"]),
             ("code", "from IPython.display import HTML, Latex, Markdown, display\nprint('one', end='')", []),
             ("code", "print('<two>', end='')", []),
             ("code", "'a'", []),
             ("code", "display(Markdown('**note**'))\ndisplay(HTML('<b>bold</b>'))", []),
             ("code", "%%latex\n$\\frac{\\pi}{2}$", []),  # as jupytext's test notebook of html and latex cells has it
             ("code", "n", []))
    tool = toolbox.discover(app / "tools", jupyter=True)[0]["lines"]
    shown = run(tool, {"n": 4}, app / "data" / "outputs" / "1")
    assert shown == "<pre>one</pre><pre>&lt;two&gt;</pre><pre>&#x27;a&#x27;</pre>" \
                    "<div><p><strong>note</strong></p></div><div><b>bold</b></div><pre>$\\frac{\\pi}{2}$\n</pre>" \
                    '<pre>4</pre><p><a href="/tasks/1/files/lines.ipynb" download>lines.ipynb</a></p>', shown


@pytest.mark.parametrize("drawn_in", ["its own cell", "an earlier cell"])
def test_a_figure_as_the_last_value_shows_once(app, drawn_in):
    notebook(app / "tools" / "fig.ipynb",
             ("code", "same_cell = True", ["parameters"]),
             ("code", "%matplotlib inline\nimport matplotlib.pyplot as plt", []),
             ("code", "fig, axes = plt.subplots()\naxes.plot([1, 3, 2])\nfig if same_cell else None", []),
             ("code", "fig if not same_cell else None", []))
    tool = toolbox.discover(app / "tools", jupyter=True)[0]["fig"]
    outputs = app / "data" / "outputs" / "1"
    shown = run(tool, {"same_cell": drawn_in == "its own cell"}, outputs)
    assert shown.count("<img") == 1, shown
    assert [path.suffix for path in outputs.iterdir()].count(".png") == 1


def test_a_failed_run_shows_the_outputs_up_to_the_failing_cell_the_error_and_the_executed_notebook(app):
    notebook(app / "tools" / "bad.ipynb",
             ("code", "x = 1", ["parameters"]),
             ("code", "print('before the error')\nimport pandas as pd\npd.DataFrame({'n': [41 + x]})", []),
             ("code", "{}['country']", []),
             ("code", "print('never')", []))
    tool = toolbox.discover(app / "tools", jupyter=True)[0]["bad"]
    error = run(tool, {"x": 1}, app / "data" / "outputs" / "1")
    assert isinstance(error, toolbox.ToolFailed) and str(error) == "KeyError: 'country' (bad.ipynb)"
    assert "before the error" in error.shown and "<td>42</td>" in error.shown, error.shown
    assert "KeyError: &#x27;country&#x27;" in error.shown and "never" not in error.shown
    assert error.shown.endswith('<p><a href="/tasks/1/files/bad.ipynb" download>bad.ipynb</a></p>'), error.shown


def test_a_notebook_needing_a_module_that_is_not_installed_names_the_command_that_adds_it(app, monkeypatch):
    monkeypatch.delenv("IN_NIX_SHELL", raising=False)
    notebook(app / "tools" / "needs.ipynb",
             ("code", "start = '2001-08-05'", ["parameters"]),
             ("code", "import pandas as pd\nimport not_installed_here.sub as sb", []))
    tool = toolbox.discover(app / "tools", jupyter=True)[0]["needs"]
    error = run(tool, {}, app / "data" / "outputs" / "1")
    assert str(error) == "ModuleNotFoundError: No module named 'not_installed_here' (needs.ipynb); add it with: " \
                         "./scripts/deps add not_installed_here", error


# --- notebook tools: through the app ---------------------------------------------------------------------------

DONE_WHEN = [
    ("markdown", "Orders per country, from a CSV export.", []),
    ("code", "%matplotlib inline\nfrom pathlib import Path\n\nimport pandas as pd", []),
    ("code", 'orders: Path = Path("orders.csv")  # country and amount per order\ntop: int = 3', ["parameters"]),
    ("code", 'frame = pd.read_csv(orders)\nprint(f"read {len(frame)} orders")', []),
    ("code", "frame.head(2)", []),
    ("code", 'totals = frame.groupby("country")["amount"].sum().sort_values(ascending=False).head(top)\n'
             'totals.plot(kind="bar")', []),
    ("code", 'totals.reset_index(name="total")', []),
]


def task_row(client, server, response, headers: dict) -> str:
    """The row of the task the form post started, once the run has ended."""
    assert response.status_code == 200 and 'class="task running"' in response.text, response.text
    task_id = int(re.search(r'id="task-(\d+)"', response.text)[1])
    for _ in range(2400):
        if task_id not in server.tasks.RUNS:
            return client.get(f"/tasks/{task_id}", headers=headers).text
        client.portal.call(asyncio.sleep, 0.05)
    raise AssertionError(f"task {task_id} did not end")


@pytest.mark.parametrize("upload, inputs, printed, second, totals", [
    # The card cannot name the default file yet: core/task_rows.py's Inputs shows only what was sent.
    (None, "top: 3", "read 4 orders", r"<td>DE</td>\s*<td>5\.0</td>", [["FR", 12.5], ["US", 7.0], ["DE", 5.0]]),
    (b"country,amount\nJP,4\nJP,1\nBR,3\n", "orders: mine.csv · top: 3", "read 3 orders",
     r"<td>JP</td>\s*<td>1</td>", [["JP", 5], ["BR", 3]]),
])
def test_a_real_notebook_runs_from_its_form_with_its_default_file_or_an_upload(client, server, app_dir, upload,
                                                                                inputs, printed, second, totals):
    (app_dir / "tools" / "orders.csv").write_text("country,amount\nFR,10\nDE,5\nFR,2.5\nUS,7\n")
    notebook(app_dir / "tools" / "orders.ipynb", *DONE_WHEN)
    headers = open_page(client)
    page = client.get("/tools/orders", headers=headers).text
    assert 'type="file"' in page and 'name="orders"' in page and "(empty: orders.csv)" in page, page
    files = {"orders": ("mine.csv", upload, "text/csv")} if upload else None
    row = task_row(client, server, client.post("/tools/orders", data={"top": "3"}, files=files, headers=headers),
                   headers)
    assert 'class="task done"' in row, row
    assert re.search(rf'<p class="inputs">\s*<small>{re.escape(inputs)}</small>\s*</p>', row), row
    shown = row.split('class="result"', 1)[1]
    chart = re.search(r'<img src="(/tasks/\d+/files/[^"]+\.png)"', shown)
    assert shown.index(printed) < re.search(second, shown).start() < chart.start()  # the first two orders, a table
    chart = chart[1]
    assert client.get(chart, headers=headers).content.startswith(b"\x89PNG")
    assert f"{len(totals)} rows × 2 columns" in shown
    csv = re.search(r'href="(/tasks/\d+/files/orders\.csv)" download', shown)[1]
    assert pd.read_csv(io.StringIO(client.get(csv, headers=headers).text)).values.tolist() == totals


def test_a_failed_notebooks_row_shows_its_outputs_and_its_executed_notebook(client, server, app_dir):
    notebook(app_dir / "tools" / "bad.ipynb",
             ("code", "x = 1", ["parameters"]),
             ("code", "print('before the error')", []),
             ("code", "{}['country']", []))
    headers = open_page(client)
    row = task_row(client, server, client.post("/tools/bad", data={"x": "1"}, headers=headers), headers)
    assert 'class="task failed"' in row and "Failed: KeyError: &#x27;country&#x27; (bad.ipynb)" in row, row
    assert "before the error" in row and re.search(r'href="/tasks/\d+/files/bad\.ipynb" download', row), row

