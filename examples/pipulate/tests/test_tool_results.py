"""What a run shows: results rendered as HTML (text, numbers, frames, paths, figures), and notebook tools run
in their kernel."""
import asyncio
import errno
import json
import os
import re
import socket
import tempfile
from pathlib import Path

import pytest

from tool_runs import one_tool, render, run, run_reporting, toolbox, TOOL_NICE, TOOL_SESSION, cancel_after_first_report, cells_notebook, write


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


def test_a_dataframe_renders_its_size_its_rows_to_page_through_and_a_csv_of_all_of_it(tmp_path):
    import pandas as pd

    frame = pd.DataFrame({"country": [f"c{n}" for n in range(1_500)], "total": range(1_500)})
    out = tmp_path / "out"
    html = render(frame, out)
    assert html.startswith('<p>1,500 rows × 2 columns; the first 1,000 shown. <a href="/files/sales.csv" download>')
    assert '<table data-page="20"><thead><tr><th></th><th>country</th><th>total</th></tr></thead>' in html, html[:300]
    assert "<tr><th>999</th><td>c999</td><td>999</td></tr></tbody></table>" in html and "c1000" not in html
    assert pd.read_csv(out / "sales.csv").equals(frame)
    assert render(frame.head(25), out).startswith('<p>25 rows × 2 columns. <a href="/files/sales-1.csv" download>')
    assert "1 rows × 1 columns" in render(pd.Series([7], name="n"), out)
    assert (out / "sales-2.csv").read_text() == "n\n7\n"


def test_a_table_of_long_rows_holds_as_many_as_fit_its_budget_and_always_a_first_page(tmp_path):
    import pandas as pd

    frame = pd.DataFrame({f"c{n}": ["y" * 90] * 300 for n in range(5)})
    html = render(frame, tmp_path / "out")
    held = int(re.match(r"<p>300 rows × 5 columns; the first (\d+) shown\. ", html)[1])
    assert toolbox.tables.TABLE_ROWS < held < 300 and html.count("<tr>") == held + 1
    assert len(html.split("<tbody>")[1]) <= toolbox.tables.MAX_TABLE + 50


def test_a_file_left_empty_leaves_the_functions_own_default_file(app):
    (app / "tools" / "orders.csv").write_text("country\nFR\nDE\n")
    tool = one_tool(app, '''
        from pathlib import Path


        def count(orders: Path = Path(__file__).with_name("orders.csv"), note: str | None = None):
            return f"{len(orders.read_text().splitlines()) - 1} orders; note {note}"
    ''')
    params, errors = toolbox.parse(tool, {})
    assert errors == {} and params == {"orders": None, "note": None}
    shown, _ = run(tool, app / "data" / "outputs" / "1", params)
    assert shown == "2 orders; note None", shown


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
    result, _ = run_reporting(tool, {"rows": 3}, app / "data" / "outputs" / "7")
    assert result.startswith('<p>3 rows × 1 columns. <a href="/tasks/1/files/frame.csv" download>frame.csv</a></p>')
    assert (app / "data" / "outputs" / "7" / "frame.csv").read_text() == "n\n0\n1\n2\n"



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
    cells_notebook(app, f"{name}.ipynb", *cells)
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
    result, reports = run_reporting(tool, params, outputs)
    assert result == '<pre>&lt;ab&gt;&lt;ab&gt;\n</pre><pre>50</pre><p><a href="/tasks/1/files/report.ipynb" download>' \
        'report.ipynb</a></p>'
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
    result, _ = run_reporting(tool, {}, app / "data" / "outputs" / "7")
    assert result.startswith(f"<pre>{TOOL_NICE} {TOOL_SESSION}\n</pre><p>")


def test_a_notebook_tools_kernel_listens_on_private_unix_sockets_that_go_with_the_run(app):
    tool = one_notebook_tool(
        app, "sockets", ("code", "unused = 0", ["parameters"]),
        ("code", "import json, os\nfrom ipykernel.connect import get_connection_info\n"
                 "info = json.loads(get_connection_info())\nfolder = os.path.dirname(info['ip']) or '.'\n"
                 "print(info['transport'], oct(os.stat(folder).st_mode & 0o777), os.getpid(), folder)", []))
    result, _ = run_reporting(tool, {}, app / "data" / "outputs" / "8")
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
    result, _ = run_reporting(tool, {}, app / "data" / "outputs" / "9")
    assert isinstance(result, str) and result.startswith("<pre>42</pre><p>"), result


def test_a_failing_notebook_tool_names_the_kernel_error_and_its_failing_cell_is_not_done(app):
    tool = one_notebook_tool(app, "bad", ("code", "x = 1", ["parameters"]),
                             ("code", "1 / 0", ["raises-exception"]),  # expected to raise: done, and the run goes on
                             ("code", "{}['country']", []), ("code", "print('never')", []))
    error, reports = run_reporting(tool, {"x": 2}, app / "data" / "outputs" / "5")
    assert isinstance(error, toolbox.ToolFailed)
    assert str(error) == "KeyError: 'country' (bad.ipynb)"
    assert (app / "data" / "outputs" / "5" / "bad.ipynb").exists()
    lines = [line for *_, line in reports if line]
    assert lines[-2:] == ["cell 3 of 5 done", "cell 4 of 5 failed: KeyError"], reports
    assert max(done for done, *_ in reports) == 3 and reports[-1][:2] == (3, 5), reports


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
