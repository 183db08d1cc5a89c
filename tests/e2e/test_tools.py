"""A colleague runs tools in Chromium: a function tool from a CSV upload to its table and download, a long table
sorted and paged in the page, a notebook tool, and a tool file added while the development server runs.

One development-mode Pipulate (live reload on, jupyter on) serves every scenario, with two tools dropped into
its tools/ folder before it starts. Every assertion reads what the page shows, or the file the browser saved.
"""
from __future__ import annotations

import csv
import re
import shutil

import nbformat
import pytest
from playwright.sync_api import Error as PlaywrightError
from playwright.sync_api import expect

from .harness import free_port, htmx_idle, screenshot, start_server, wait_until

STEPS = 8
SALES_TOOL = f'''"""Sales reports for the e2e tests."""
import time
from pathlib import Path
from typing import Literal

import pandas as pd


def e2e_sales(orders: Path, report, measure: Literal["revenue", "orders"] = "revenue") -> pd.DataFrame:
    """Total sales per country, largest first, slowly enough to watch.

    Args:
        orders: a CSV with `country` and `amount` columns.
        measure: add up the amounts or count the orders.
    """
    frame = pd.read_csv(orders)
    for step in range(1, {STEPS} + 1):
        time.sleep(0.25)
        report(step, {STEPS}, f"step {{step}} of {STEPS}")
    totals = frame.groupby("country")["amount"].agg("sum" if measure == "revenue" else "count")
    return totals.sort_values(ascending=False).reset_index(name=measure)
'''
LATE_TOOL = '''def e2e_late(name: str = "world") -> str:
    """Added while the server runs."""
    return f"Hello, {name}!"
'''
ORDERS = "country,amount\nFR,10\nDE,5\nFR,2.5\nUS,7\nDE,1\n"
# 100 rows in no order: amounts from -12.5 to 12.25 (as text, 1.5 would sort before 1.25 and -1 before -2), days
# over 100 days of two years.
TABLE_TOOL = '''import datetime

import pandas as pd


def e2e_table() -> pd.DataFrame:
    """A hundred orders."""
    return pd.DataFrame({"order": [f"order {n}" for n in range(100)],
                         "amount": [(n * 37 % 100 - 50) / 4 for n in range(100)],
                         "day": [datetime.date(2024, 12, 1) + datetime.timedelta(days=n * 53 % 100)
                                 for n in range(100)]})
'''

# Records every value a progress bar inside a task row shows, from the moment it is installed.
RECORD_PROGRESS = """() => {
    window.__progress = [];
    new MutationObserver(() => {
        for (const bar of document.querySelectorAll(".task progress")) {
            window.__progress.push(Number(bar.value) / Number(bar.max));
        }
    }).observe(document.body, {subtree: true, childList: true, attributes: true});
}"""


def forecast_notebook() -> nbformat.NotebookNode:
    notebook = nbformat.v4.new_notebook(metadata={"kernelspec": {
        "name": "python3", "display_name": "Python 3", "language": "python"}})
    notebook.cells = [
        nbformat.v4.new_code_cell("months = 12  # how many months to forecast\ngrowth = 0.05  # growth per month",
                                  metadata={"tags": ["parameters"]}),
        nbformat.v4.new_code_cell(
            "import pandas as pd\n\n"
            "revenue = [round(1000 * (1 + growth) ** month, 2) for month in range(months)]\n"
            'pd.DataFrame({"month": range(1, months + 1), "revenue": revenue})'),
    ]
    return notebook


@pytest.fixture(scope="module")
def server(render, tmp_path_factory):
    root = tmp_path_factory.mktemp("tools-dev")
    project = shutil.copytree(render("pipulate", jupyter=True), root / "app")
    (project / "tools" / "e2e_sales.py").write_text(SALES_TOOL)
    (project / "tools" / "e2e_table.py").write_text(TABLE_TOOL)
    nbformat.write(forecast_notebook(), project / "tools" / "e2e_forecast.ipynb")
    env = {"PIPULATE_ENV": "dev", "OLLAMA_HOST": f"http://127.0.0.1:{free_port()}"}
    running = start_server(project, log=root / "server.log", env=env)
    yield running
    running.stop()


def open_tool(context, server, name: str):
    page = context.new_page()
    page.goto(f"{server.url}/tools/{name}")
    page.wait_for_function(
        "() => document.body['htmx-internal-data']?.webSocket?.socket?.readyState === WebSocket.OPEN"
    )
    return page


def run(page):
    """Press the form's Run button; the row it starts, once it is on the page."""
    before = page.locator("article.task").count()
    page.locator("form").get_by_role("button", name=re.compile("^Run$", re.I)).click()
    expect(page.locator("article.task")).to_have_count(before + 1)
    return page.locator("article.task").first


def test_a_colleague_uploads_a_csv_and_downloads_the_table(context, server, tmp_path):
    page = open_tool(context, server, "e2e_sales")
    expect(page.locator("body")).to_contain_text("Total sales per country, largest first, slowly enough to watch.")
    page.evaluate(RECORD_PROGRESS)
    upload = tmp_path / "orders.csv"
    upload.write_text(ORDERS)
    page.locator('input[type=file][name="orders"]').set_input_files(upload)
    page.locator('select[name="measure"]').select_option("revenue")

    row = run(page)
    expect(row).to_have_class(re.compile(r"\btask running\b"))
    screenshot(page, "tools-running")
    expect(row).to_have_class(re.compile(r"\btask done\b"), timeout=60_000)

    fractions = page.evaluate("window.__progress")
    assert any(0 < f < 1 for f in fractions), f"the bar never showed a step between start and end: {fractions}"
    table = row.locator("table")
    expect(row).to_contain_text("3 rows × 2 columns")
    expect(table.locator("tbody tr")).to_have_count(3)
    cells = table.locator("tbody tr").evaluate_all("rows => rows.map(r => [...r.cells].map(c => c.textContent))")
    assert [[c for c in row_ if c in ("FR", "US", "DE")] for row_ in cells] == [["FR"], ["US"], ["DE"]], cells
    htmx_idle(page)
    screenshot(page, "tools-table")

    with page.expect_download() as download:
        row.locator('a[href$=".csv"]').click()
    saved = download.value.path()
    with open(saved, newline="") as handle:
        lines = list(csv.DictReader(handle))
    assert [(line["country"], float(line["revenue"])) for line in lines] == [("FR", 12.5), ("US", 7.0), ("DE", 6.0)]


SHOWN_ROWS = "table => [...table.tBodies[0].rows].filter(row => !row.hidden).map(row => [...row.cells].map(cell => " \
    "cell.textContent))"  # the cells of the rows the table shows now
AMOUNTS = sorted((n * 37 % 100 - 50) / 4 for n in range(100))


def test_a_long_table_sorts_and_pages_in_the_page_without_fetching_the_run_again(context, server):
    page = open_tool(context, server, "e2e_table")
    row = run(page)
    expect(row).to_have_class(re.compile(r"\btask done\b"), timeout=60_000)
    expect(row).to_contain_text("100 rows × 3 columns")
    table = row.locator("table")
    pager = row.locator("p", has_text="rows 1–20 of 100")
    expect(pager).to_be_visible()
    assert [cells[1] for cells in table.evaluate(SHOWN_ROWS)] == [f"order {n}" for n in range(20)]
    fetched = []
    page.on("request", lambda request: fetched.append(request.url))

    table.locator("th", has_text="amount").click()
    shown = table.evaluate(SHOWN_ROWS)
    assert [float(cells[2]) for cells in shown] == AMOUNTS[:20], shown  # numbers as numbers
    pager.get_by_role("button", name="Next").click()
    expect(row.locator("p", has_text="rows 21–40 of 100")).to_be_visible()
    assert [float(cells[2]) for cells in table.evaluate(SHOWN_ROWS)] == AMOUNTS[20:40]

    table.locator("th", has_text="amount").click()  # again: the other way, from the first page
    assert [float(cells[2]) for cells in table.evaluate(SHOWN_ROWS)] == AMOUNTS[::-1][:20]
    table.locator("th", has_text="day").click()
    days = [cells[3] for cells in table.evaluate(SHOWN_ROWS)]
    assert days[:2] == ["2024-12-01", "2024-12-02"] and days == sorted(days), days
    assert fetched == [], fetched  # all of it in the page: no request for the run
    htmx_idle(page)
    screenshot(page, "tools-table-sorted")


def test_a_notebook_tool_runs_with_the_colleagues_answers(context, server):
    page = open_tool(context, server, "e2e_forecast")
    page.locator('[name="months"]').fill("6")
    page.locator('[name="growth"]').fill("0.1")

    row = run(page)
    expect(row).to_have_class(re.compile(r"\btask done\b"), timeout=120_000)
    expect(row.locator(".result")).to_contain_text("6 rows × 2 columns")  # the last cell's DataFrame, as a table
    expect(row.locator(".result table tbody tr").last).to_contain_text(re.compile(r"6\s*1610\.51"))
    htmx_idle(page)
    screenshot(page, "tools-notebook")

    with page.expect_download() as download:
        row.locator('a[href$=".ipynb"]').click()
    executed = nbformat.read(download.value.path(), as_version=4)
    sources = [cell.source for cell in executed.cells]
    assert any(re.search(r"^months = 6$", source, re.M) and re.search(r"^growth = 0\.1$", source, re.M)
               for source in sources), sources


def test_a_tool_added_while_the_server_runs_appears_after_reload(context, server):
    page = context.new_page()
    page.goto(server.url + "/")
    expect(page.locator('a[href="/tools/e2e_sales"]').first).to_be_attached()
    assert page.locator('a[href="/tools/e2e_late"]').count() == 0

    (server.root / "tools" / "e2e_late.py").write_text(LATE_TOOL)

    def listed() -> bool:
        try:
            page.reload()
        except PlaywrightError:  # the server is restarting
            return False
        return page.locator('a[href="/tools/e2e_late"]').count() > 0

    wait_until(listed, timeout=30, interval=0.5, what="the new tool in the tools menu")

    def shows_the_tool() -> bool:
        try:
            page.goto(server.url + "/tools/e2e_late")
        except PlaywrightError:  # live reload reloads the page once the restarted server answers its socket
            return False
        return "Added while the server runs." in page.locator("body").inner_text()

    wait_until(shows_the_tool, timeout=30, interval=0.5, what="the new tool's page")
    page.locator('[name="name"]').fill("Ada")
    row = run(page)
    expect(row).to_have_class(re.compile(r"\btask done\b"), timeout=30_000)
    expect(row).to_contain_text("Hello, Ada!")
