"""docs/tools.md, followed literally: its code blocks go into a fresh Pipulate, which runs them over HTTP.

The guide's blocks titled with a path under tools/ are written there (the notebook's cells, in order, into
one .ipynb, tagged as the guide says); the app runs as a real `python server.py` on a free 127.0.0.1 port;
each page the guide links to is opened, its form posted the way a browser posts it, and the task row followed
to its result and downloads. The guide's notebook snippet then runs in the render, as a notebook would. The
rendered README's "Add a tool" block gets the same treatment in a render of its own.
"""
from __future__ import annotations

import html
import io
import json
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import nbformat
import pandas as pd
import pytest

from e2e.harness import start_server
from helpers import REPO

GUIDE = REPO / "docs" / "tools.md"
BLOCK = re.compile(r'^```python title="(?P<path>[^"]+)"(?: tags="(?P<tags>[^"]*)")?\n(?P<code>.*?)^```$', re.M | re.S)
PAGE = re.compile(r"http://127\.0\.0\.1:5001(/tools/\w+)")
TASK_ID = re.compile(r'id="task-(\d+)"')
ORDERS = "country,amount\nFR,10\nDE,5\nFR,2.5\nUS,7\nDE,1\n"
DAILY_ORDERS = "day,country,amount\n2024-01-01,FR,10\n2024-01-02,FR,5\n2024-01-02,DE,3\n2024-01-03,US,7\n" \
    "2024-01-03,DE,2\n2024-01-04,FR,1\n"
RUN_TIMEOUT = 120  # seconds; a notebook run starts a kernel, on a loaded 2-core machine


def guide_files() -> dict[str, str | nbformat.NotebookNode]:
    """Each path the guide's titled blocks name, with its content: module text, or a notebook of its cells."""
    files: dict[str, str | nbformat.NotebookNode] = {}
    for block in BLOCK.finditer(GUIDE.read_text()):
        path, code = block["path"], block["code"].rstrip("\n")
        if path.endswith(".ipynb"):
            notebook = files.setdefault(path, nbformat.v4.new_notebook(metadata={"kernelspec": {
                "name": "python3", "display_name": "Python 3", "language": "python"}}))
            tags = block["tags"].split() if block["tags"] else []
            notebook.cells.append(nbformat.v4.new_code_cell(code, metadata={"tags": tags} if tags else {}))
        else:
            assert path not in files, f"the guide shows {path} twice"
            files[path] = code + "\n"
    return files


def readme_tool(render: Path) -> str:
    """The code block of a rendered README's "Add a tool" section."""
    section = (render / "README.md").read_text().split("## Add a tool", 1)[1].split("\n## ", 1)[0]
    return re.search(r"^```python\n(.*?)^```$", section, re.M | re.S)[1]


def notebook_snippet() -> str:
    """The guide's untitled block under "Back in the notebook"."""
    section = GUIDE.read_text().split("## Back in the notebook", 1)[1]
    return re.search(r"^```python\n(.*?)^```$", section, re.M | re.S)[1]


@pytest.fixture(scope="module")
def app(render, tmp_path_factory) -> Path:
    root = shutil.copytree(render("pipulate", jupyter=True), tmp_path_factory.mktemp("guide") / "app")
    for path, content in guide_files().items():
        if isinstance(content, str):
            (root / path).write_text(content)
        else:
            nbformat.write(content, root / path)
    return root


@contextmanager
def serving(app: Path) -> Iterator[str]:
    """The app's `python server.py` on a free 127.0.0.1 port, in production mode; its URL once / answers."""
    server = start_server(app, log=app.parent / "server.log",
                          env={"PIPULATE_ENV": "prod", "OLLAMA_HOST": "http://127.0.0.1:9"})
    try:
        yield server.url
    finally:
        server.stop()


@pytest.fixture(scope="module")
def server(app) -> Iterator[str]:
    with serving(app) as url:
        yield url


@pytest.fixture
def http(server) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server, timeout=30, headers={"X-Tab": "guide"}) as client:
        client.get("/").raise_for_status()
        yield client


def finished_row(http: httpx.Client, posted: httpx.Response) -> tuple[str, str]:
    """The task id a form post started and its row once it has ended; fails unless it ended done."""
    assert posted.status_code == 200, posted.text
    task_id = TASK_ID.search(posted.text)
    assert task_id, f"the post did not answer with a task row: {posted.text[:500]}"
    deadline = time.monotonic() + RUN_TIMEOUT
    while 'class="task running"' in (row := http.get(f"/tasks/{task_id[1]}").text) or 'class="task' not in row:
        assert time.monotonic() < deadline, f"the run did not end in {RUN_TIMEOUT} s: {row[:500]}"
        time.sleep(0.2)
    assert f'id="task-{task_id[1]}" class="task done"' in row, row
    return task_id[1], row


def download(http: httpx.Client, task_id: str, row: str, suffix: str) -> bytes:
    """The file the row links to whose name ends in ``suffix``, fetched as a browser would."""
    links = re.findall(rf'href="(/tasks/{task_id}/files/[^"]+{re.escape(suffix)})"', row)
    assert len(links) == 1, f"expected one {suffix} download in the row: {row}"
    response = http.get(links[0])
    assert response.status_code == 200, response.text
    return response.content


def test_the_guide_shows_one_module_and_two_notebooks():
    assert sorted(guide_files()) == ["tools/daily_orders.ipynb", "tools/forecast.ipynb", "tools/sales.py"]
    assert sorted(set(PAGE.findall(GUIDE.read_text()))) == ["/tools/daily_orders", "/tools/forecast",
                                                            "/tools/sales_by_country"]


def test_the_function_tool_from_upload_to_table_and_csv(http):
    page = http.get("/tools/sales_by_country")
    assert page.status_code == 200, page.text
    assert 'type="file"' in page.text and 'name="orders"' in page.text
    assert re.search(r'<select[^>]*name="measure"', page.text), page.text
    assert "Total sales per country, largest first." in page.text
    assert "add up the amounts (revenue) or count the orders." in page.text

    posted = http.post("/tools/sales_by_country", data={"measure": "revenue"},
                       files={"orders": ("orders.csv", ORDERS.encode(), "text/csv")})
    task_id, row = finished_row(http, posted)

    assert re.search(r"3 rows × 2 columns", row), row
    cells = re.findall(r"<td>([^<]*)</td>", row)
    assert [c for c in cells if c in ("FR", "US", "DE")] == ["FR", "US", "DE"], cells
    assert "3 countries" in row  # the tool's last report() line
    table = pd.read_csv(io.BytesIO(download(http, task_id, row, ".csv")))
    assert table[["country", "revenue"]].values.tolist() == [["FR", 12.5], ["US", 7.0], ["DE", 6.0]]


def test_a_missing_upload_is_refused_as_the_guide_says_and_nothing_runs(http):
    refusal = re.search(r"under the field\s+\(`([^`]+)`\)", GUIDE.read_text())[1]
    before = len(TASK_ID.findall(http.get("/").text))
    answer = http.post("/tools/sales_by_country", data={"measure": "revenue"})
    assert refusal in answer.text and 'class="task' not in answer.text, answer.text
    assert len(TASK_ID.findall(http.get("/").text)) == before


def test_a_failing_run_shows_the_line_the_guide_names(http):
    shown = re.search(r"for example `([^`]+)` for a CSV without a `country` column", GUIDE.read_text())[1]
    posted = http.post("/tools/sales_by_country", data={"measure": "revenue"},
                       files={"orders": ("orders.csv", b"region,amount\nEU,10\n", "text/csv")})
    task_id = TASK_ID.search(posted.text)[1]
    deadline = time.monotonic() + RUN_TIMEOUT
    while 'class="task running"' in (row := http.get(f"/tasks/{task_id}").text):
        assert time.monotonic() < deadline, row
        time.sleep(0.2)
    assert f'id="task-{task_id}" class="task failed"' in row, row
    assert html.escape(shown, quote=False) in row or html.escape(shown) in row, row
    assert "Traceback" not in row


def test_the_notebook_tool_runs_with_the_answers_injected(http):
    page = http.get("/tools/forecast")
    assert page.status_code == 200, page.text
    assert 'name="months"' in page.text and 'name="growth"' in page.text
    assert "how many months to forecast" in page.text

    task_id, row = finished_row(http, http.post("/tools/forecast", files={"months": (None, "6"),
                                                                           "growth": (None, "0.1")}))

    result = row.split('class="result"', 1)[-1]
    assert "6 rows × 2 columns" in result and "<tr><th>5</th><td>6</td><td>1610.51</td></tr>" in result, row
    table = pd.read_csv(io.BytesIO(download(http, task_id, row, ".csv")))  # the guide's "table with its CSV"
    assert table.values.tolist()[-1] == [6, 1610.51] and len(table) == 6  # month 6 is the last
    executed = nbformat.reads(download(http, task_id, row, ".ipynb").decode(), as_version=4)
    sources = "\n".join(cell.source for cell in executed.cells)
    assert re.search(r"^months = 6$", sources, re.M) and re.search(r"^growth = 0\.1$", sources, re.M), sources
    outputs = json.dumps([cell.get("outputs", []) for cell in executed.cells])
    assert "1610.51" in outputs


def test_the_notebook_with_inputs_runs_from_its_form_with_an_upload_and_shows_what_the_guide_says(http):
    page = http.get("/tools/daily_orders")
    assert page.status_code == 200, page.text
    for field in (r'type="file"[^>]*name="orders"|name="orders"[^>]*type="file"',  # the guide's five widgets
                  r'type="date"[^>]*name="day"|name="day"[^>]*type="date"', r'<select[^>]*name="measure"',
                  r'<textarea[^>]*name="countries"', r'type="number"[^>]*name="limit"|name="limit"[^>]*type="number"'):
        assert re.search(field, page.text), (field, page.text)
    printed = re.search(r"the printed line \(`([^`]+)`\)", GUIDE.read_text())[1]

    posted = http.post("/tools/daily_orders", data={"day": "2024-01-02", "measure": "revenue",
                                                    "countries": "FR\nDE", "limit": ""},
                       files={"orders": ("orders.csv", DAILY_ORDERS.encode(), "text/csv")})
    task_id, row = finished_row(http, posted)

    result = row.split('class="result"', 1)[-1]
    first_orders = re.search(r"<td>2024-01-02</td>\s*<td>DE</td>", result)  # the first orders, a table
    chart = re.search(rf'<img src="(/tasks/{task_id}/files/[^"]+\.png)"', result)
    totals = result.find("2 rows × 2 columns")  # the totals per country, a table with its CSV
    assert -1 < result.find(printed) < first_orders.start() < chart.start() < totals, result
    assert http.get(chart[1]).content.startswith(b"\x89PNG")
    table = pd.read_csv(io.BytesIO(download(http, task_id, row, ".csv")))
    assert table.values.tolist() == [["FR", 6], ["DE", 5]] and list(table.columns) == ["country", "revenue"]


def test_the_notebook_snippet_records_a_run_the_app_shows(app, http):
    (app / "data" / "orders.csv").write_text(ORDERS)
    ran = subprocess.run([sys.executable, "-c", notebook_snippet()], cwd=app, capture_output=True, text=True,
                         timeout=RUN_TIMEOUT)
    assert ran.returncode == 0, ran.stderr

    page = http.get("/").text
    rows = re.split(r"(?=<article )", page)
    recorded = [row for row in rows if re.search(r"sales_by_country|Sales by country", row, re.I)]
    assert any('class="task done"' in row and "<td>FR</td>" in row and "orders" in row for row in recorded), page


def test_the_rendered_readme_s_tool_runs_as_it_says(render, tmp_path):
    app = shutil.copytree(render("pipulate", demo=False), tmp_path / "app")
    (app / "tools" / "sales.py").write_text(readme_tool(app))
    with serving(app) as url, httpx.Client(base_url=url, timeout=30, headers={"X-Tab": "readme"}) as http:
        menu = http.get("/").text
        assert 'href="/tools/sales_by_country"' in menu, menu
        posted = http.post("/tools/sales_by_country", files={"orders": ("orders.csv", ORDERS.encode(), "text/csv")})
        task_id, row = finished_row(http, posted)
        assert "3 rows × 2 columns" in row and "read 5 orders" in row, row
        table = pd.read_csv(io.BytesIO(download(http, task_id, row, ".csv")))
        assert table.values.tolist() == [["FR", 12.5], ["US", 7.0], ["DE", 6.0]]
