"""Tools through the web app, as a colleague uses them: the menu, a tool's page and form, results of every kind
and downloads, broken files, add-ons and notebook tools. (Runs, cancel, run again, uploads: test_tool_page_runs.py.)"""
from __future__ import annotations

import csv
import html
import io
import json
import re

import pytest

from conftest import LocalClient, open_page, task_id_of
from tool_forms import EVERY_TYPE, add_tool, result_of, run

RESULTS = '''
from pathlib import Path


def frame(rows: int = 30):
    import pandas as pd

    return pd.DataFrame({"n": range(rows), "label": [f"<b>{i}</b>" for i in range(rows)]})


def figure():
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots()
    ax.plot([1, 2, 3])
    return fig


def written():
    Path("report.txt").write_text("made by the tool")
    return Path("report.txt")


def nothing():
    return None


def number():
    return 42


def mapping():
    return {"a": [1, 2], "b": "<tag>"}


def markup():
    from fasthtml.common import Strong

    return Strong("bold words")


def unshowable():
    class Odd:
        def __repr__(self):
            return "Odd()"

    return Odd()
'''


# --- the menu and a tool's page ---------------------------------------------------------------------------


def test_the_menu_lists_each_public_function_defined_under_tools(client, server, app_dir):
    add_tool(app_dir, "sales.py", '''
        from pathlib import Path
        from os.path import join


        def monthly_totals(month: int = 1):
            """Totals per month."""
            return _helper(month)


        def _helper(month):
            return month
    ''')
    add_tool(app_dir, "_private.py", "def hidden():\n    return 1\n")
    page = client.get("/").text
    menu = re.search(r'<section id="tools">(.*?)</section>', page, re.S)[1]
    assert re.findall(r'href="/tools/(\w+)"', menu) == sorted(re.findall(r'href="/tools/(\w+)"', menu))
    assert 'href="/tools/monthly_totals">Monthly totals</a>' in menu and "Totals per month." in menu
    for absent in ("_helper", "hidden", "/tools/Path", "/tools/join"):
        assert absent not in menu


def test_a_tool_page_has_a_field_of_the_right_kind_for_every_parameter(client, server, app_dir):
    add_tool(app_dir, "every.py", EVERY_TYPE)
    page = client.get("/tools/echo")
    assert page.status_code == 200
    form = re.search(r'<form [^>]*id="tool-form".*?</form>', page.text, re.S)[0]
    assert 'enctype="multipart/form-data"' in form and 'hx-encoding="multipart/form-data"' in form
    inputs = {name: tag for tag, name in re.findall(r'(<(?:input|select|textarea)[^>]*name="(\w+)"[^>]*>)', form)}
    kinds = {"text": 'type="text"', "count": 'type="number" step="1"', "ratio": 'type="number" step="any"',
             "day": 'type="date"', "data": 'type="file"', "names": "<textarea", "mode": "<select",
             "colour": "<select", "loud": 'type="checkbox"', "note": 'type="text"'}
    for name, kind in kinds.items():
        assert kind in inputs[name], (name, inputs[name])
    assert "required" in inputs["count"] and "required" not in inputs["note"]
    assert '<option value="slow" selected>slow</option>' in form
    assert '<option value="BLUE" selected>BLUE</option>' in form
    assert "Any words." in form and "A whole number." in form and "Send back what arrived" in page.text


def test_every_parameter_type_arrives_as_its_python_type(client, server, app_dir):
    add_tool(app_dir, "every.py", EVERY_TYPE)
    headers = open_page(client)
    data = {"text": "hello <you>", "count": "7", "ratio": "2.5", "day": "2026-11-22", "names": "ann\nbob\n\n",
            "mode": "fast", "colour": "RED", "loud": "true"}
    row = run(client, server, headers, "echo", data, files={"data": ("../../etc/my sales.csv", b"a,b\n1,2\n")})
    assert 'class="task done"' in row, row
    echoed = json.loads(html.unescape(re.search(r"<pre>(.*?)</pre>", result_of(row), re.S)[1]))
    assert echoed == {"text": "hello <you>", "count": 7, "ratio": 2.5, "day": "2026-11-22", "data": "a,b\n1,2\n",
                      "data_type": "PosixPath", "names": ["ann", "bob"], "mode": "fast", "colour": "RED",
                      "loud": True, "note": None, "day_type": "date"}
    (upload,) = (server.settings.DATA / "uploads").iterdir()
    assert re.fullmatch(r"[0-9a-f]{16}-my_sales\.csv", upload.name) and upload.stat().st_mode & 0o777 == 0o600
    assert (server.settings.DATA / "uploads").stat().st_mode & 0o777 == 0o700


def test_bad_answers_come_back_inline_one_line_per_field_and_nothing_runs(client, server, app_dir):
    add_tool(app_dir, "every.py", EVERY_TYPE)
    headers = open_page(client)
    data = {"text": "kept text", "count": "seven", "ratio": "lots", "day": "22/11/2026", "names": "",
            "mode": "sideways", "colour": "GREEN"}
    response = client.post("/tools/echo", data=data, files={"data": ("in.csv", b"1,2\n")}, headers=headers)
    assert response.status_code == 200 and response.headers["HX-Retarget"] == "#tool-form"
    errors = dict(re.findall(r'id="field-(\w+)-error"[^>]*>([^<]*)<', response.text))
    assert set(errors) == {"count", "ratio", "day", "names", "mode", "colour"}, errors
    assert all(line and "\n" not in line for line in errors.values())
    assert 'value="kept text"' in response.text and 'value="seven" name="count" aria-invalid="true"' in response.text
    assert server.db.tasks() == [] and server.tasks.RUNS == {} and list((server.settings.DATA / "uploads").iterdir()) == []


def test_an_unknown_tool_is_a_404_with_a_clear_line(client, server):
    headers = open_page(client)
    page = client.get("/tools/no_such_tool")
    assert page.status_code == 404 and "There is no tool named no_such_tool" in page.text
    posted = client.post("/tools/no_such_tool", data={"x": "1"}, headers=headers)
    assert posted.status_code == 404 and "There is no tool named no_such_tool" in posted.text
    assert server.db.tasks() == []


# --- results ---------------------------------------------------------------------------------------------


def test_a_dataframe_shows_its_size_and_first_rows_and_downloads_whole_as_csv(client, server, app_dir):
    add_tool(app_dir, "results.py", RESULTS)
    headers = open_page(client)
    row = run(client, server, headers, "frame", {"rows": "30"})
    result = result_of(row)
    assert 'class="task done"' in row and "30 rows × 2 columns" in result and "<table" in result
    assert "&lt;b&gt;29&lt;/b&gt;" in result and "<b>" not in result  # every row: the page pages them itself
    href = html.unescape(re.search(r'href="(/tasks/\d+/files/[^"]+\.csv)"', result)[1])
    download = client.get(href, headers=headers)
    assert download.status_code == 200 and download.headers["content-disposition"].startswith("attachment")
    rows = list(csv.DictReader(io.StringIO(download.text)))
    assert len(rows) == 30 and rows[29]["label"] == "<b>29</b>" and rows[29]["n"] == "29"


@pytest.mark.parametrize("tool, shown", [
    ("nothing", "Done."), ("number", "42"), ("mapping", '"b": "<tag>"'), ("markup", "<strong>bold words</strong>"),
    ("unshowable", "Odd()"),
])
def test_each_kind_of_result_shows(client, server, app_dir, tool, shown):
    add_tool(app_dir, "results.py", RESULTS)
    headers = open_page(client)
    row = run(client, server, headers, tool)
    assert 'class="task done"' in row and shown in html.unescape(result_of(row)), row
    assert "<tag>" not in result_of(row)


def test_a_figure_shows_inline(client, server, app_dir):
    """matplotlib comes with the jupyter feature."""
    add_tool(app_dir, "results.py", RESULTS)
    headers = open_page(client)
    figure = result_of(run(client, server, headers, "figure"))
    src = re.search(r'<img src="(/tasks/\d+/files/[^"]+\.png)"', figure)[1]
    image = client.get(src, headers=headers)
    assert image.content.startswith(b"\x89PNG") and image.headers["content-disposition"].startswith("inline")


def test_a_file_the_tool_wrote_downloads(client, server, app_dir):
    add_tool(app_dir, "results.py", RESULTS)
    headers = open_page(client)
    written = result_of(run(client, server, headers, "written"))
    href = re.search(r'href="(/tasks/\d+/files/report\.txt)"', written)[1]
    download = client.get(href, headers=headers)
    assert download.text == "made by the tool" and download.headers["content-disposition"].startswith("attachment")


def test_downloads_are_refused_outside_the_outputs_folder_and_for_another_profile(client, server, app_dir):
    add_tool(app_dir, "results.py", RESULTS)
    headers = open_page(client)
    task_id = task_id_of(run(client, server, headers, "written"))
    folder = server.db.OUTPUTS / str(task_id)
    (folder / ".hidden").write_text("secret")
    (folder / "inner").mkdir()
    (folder / "inner" / "deep.txt").write_text("secret")
    (folder / "link.txt").symlink_to(server.settings.DB_FILE)
    for name in (".hidden", "inner", "link.txt", "..%2F..%2F.sesskey", "%2E%2E", "missing.txt"):
        response = client.get(f"/tasks/{task_id}/files/{name}", headers=headers)
        assert response.status_code == 404 and "secret" not in response.text, name
    assert client.get(f"/tasks/{task_id}/files/report.txt", headers=headers).status_code == 200
    client.post("/profiles", data={"name": "Other"}, headers=headers)
    refused = client.get(f"/tasks/{task_id}/files/report.txt", headers=headers)
    assert refused.status_code == 404 and "made by the tool" not in refused.text


# --- broken files, changes, add-ons ----------------------------------------------------------------------


def test_a_broken_module_gets_a_card_and_the_other_tools_still_work(client, server, app_dir):
    add_tool(app_dir, "results.py", RESULTS)
    add_tool(app_dir, "broken.py", "import math\n\nvalue = undefined_name\n")
    add_tool(app_dir, "odd.py", "def takes_a_dict(options: dict):\n    return options\n")
    headers = open_page(client)
    page = client.get("/").text
    cards = re.findall(r'<article[^>]*class="broken"[^>]*>(.*?)</article>', page, re.S)
    assert len(cards) == 2
    assert any("broken.py:3" in card and "NameError" in card for card in cards)
    assert any("odd.py" in card and "takes_a_dict" in card and "options" in card for card in cards)
    assert 'href="/tools/number"' in page and "42" in result_of(run(client, server, headers, "number"))
    assert client.get("/tools/takes_a_dict").status_code == 404


def test_the_page_of_a_tool_that_could_not_become_one_says_why_as_its_card_does(client, server, app_dir):
    add_tool(app_dir, "broken.py", "import math\n\nvalue = undefined_name\n")
    add_tool(app_dir, "odd.py", "def takes_a_dict(options: dict):\n    return options\n")
    (app_dir / "tools" / "Bad Report.ipynb").write_text(notebook([("code", "x = 1", [])]))
    for name, card in [("takes_a_dict", "odd.py: takes_a_dict(): "), ("broken", "broken.py:3: NameError"),
                       ("bad_report", "Bad Report.ipynb: no cell is tagged parameters"),
                       ]:
        page = client.get(f"/tools/{name}")
        assert page.status_code == 404 and f"{name} could not become a tool:" in page.text, page.text
        cards = re.findall(r'<article[^>]*class="broken"[^>]*>(.*?)</article>', page.text, re.S)
        assert len(cards) == 1 and card in html.unescape(cards[0]), cards
    unknown = client.get("/tools/no_such_tool")
    assert unknown.status_code == 404 and "There is no tool named no_such_tool" in unknown.text
    assert 'class="broken"' not in unknown.text


def test_a_tool_added_or_changed_while_the_app_runs_shows_on_the_next_page(client, server, app_dir):
    assert 'href="/tools/late"' not in client.get("/").text
    add_tool(app_dir, "late.py", 'def late():\n    """First version."""\n')
    assert "First version." in client.get("/").text
    add_tool(app_dir, "late.py", 'def late():\n    """Second, longer version."""\n')
    assert "Second, longer version." in client.get("/tools/late").text
    (app_dir / "tools" / "late.py").unlink()
    assert client.get("/tools/late").status_code == 404


ADDON = '''
from fasthtml.common import APIRouter, Article, P

router = APIRouter(prefix="/greeting")


@router.get("/hello")
def hello(name: str = "you"):
    return P(f"Hello, {name}!", id="greeting")


def card():
    return Article(P("The greeting add-on is here."), id="greeting-card")
'''


def test_an_add_on_brings_its_routes_and_its_card(app_dir, request):
    (app_dir / "addons" / "greeting.py").write_text(ADDON)
    (app_dir / "addons" / "_draft.py").write_text("raise RuntimeError('never imported')\n")
    server = request.getfixturevalue("server")  # imported after the add-on is in place, as on a start
    with LocalClient(server.create_app()) as client:
        assert 'id="greeting-card"' in client.get("/").text
        assert "Hello, &lt;Ann&gt;!" in client.get("/greeting/hello", params={"name": "<Ann>"}).text


# --- notebooks -------------------------------------------------------------------------------------------


def notebook(cells: list[tuple[str, str, list[str]]]) -> str:
    return json.dumps({"nbformat": 4, "nbformat_minor": 5, "metadata": {"kernelspec": {"name": "python3",
                       "display_name": "Python 3", "language": "python"}},
                       "cells": [{"cell_type": kind, "id": f"c{i}", "metadata": {"tags": tags}, "source": source,
                                  **({"outputs": [], "execution_count": None} if kind == "code" else {})}
                                 for i, (kind, source, tags) in enumerate(cells)]})


def test_a_notebook_tool_runs_with_the_answers_injected(client, server, app_dir):
    (app_dir / "tools" / "Weekly Report.ipynb").write_text(notebook([
        ("markdown", "Sums the week's numbers.", []),
        ("code", "start = 2  # first number\nweeks = 3  # how many", ["parameters"]),
        ("code", "total = sum(range(start, start + weeks))", []),
        ("code", "print(f'total={total} from {start}')", []),
    ]))
    headers = open_page(client)
    page = client.get("/tools/weekly_report").text
    assert 'name="start"' in page and 'value="2"' in page and "first number" in page
    row = run(client, server, headers, "weekly_report", {"start": "10", "weeks": "4"})
    assert 'class="task done"' in row and "total=46 from 10" in result_of(row), row
    href = re.search(r'href="(/tasks/\d+/files/[^"]+\.ipynb)"', result_of(row))[1]
    executed = json.loads(client.get(href, headers=headers).text)
    assert any("injected-parameters" in cell["metadata"].get("tags", []) for cell in executed["cells"])
