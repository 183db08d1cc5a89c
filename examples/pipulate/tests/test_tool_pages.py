"""Tools through the web app, as a colleague uses them: the menu, a tool's page and form, runs with progress,
cancel and run again, results of every kind, uploads and downloads, broken files, and add-ons."""
from __future__ import annotations

import asyncio
import csv
import html
import io
import json
import os
import re
import textwrap
from pathlib import Path

import apsw
import pytest

from conftest import LocalClient, open_page, receive_until

TASK_ID = re.compile(r'id="task-(\d+)"')

EVERY_TYPE = '''
import datetime
import enum
from pathlib import Path
from typing import Literal


class Colour(enum.Enum):
    RED = "red"
    BLUE = "blue"


def echo(text: str, count: int, ratio: float, day: datetime.date, data: Path, names: list[str],
         mode: Literal["fast", "slow"] = "slow", colour: Colour = Colour.BLUE, loud: bool = False,
         note: str | None = None):
    """Send back what arrived, with its Python type.

    Args:
        text: Any words.
        count: A whole number.
    """
    return {"text": text, "count": count, "ratio": ratio, "day": day.isoformat(), "data": data.read_text(),
            "data_type": type(data).__name__, "names": names, "mode": mode, "colour": colour.name, "loud": loud,
            "note": note, "day_type": type(day).__name__}
'''

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

WAITING = '''
import time
from pathlib import Path


def wait_for(flag: str, report):
    """Report, then wait until the file `flag` exists: a sync tool that would freeze a thread-run app."""
    report(0, 1, "waiting")
    while not Path(flag).exists():
        time.sleep(0.02)
    report(1, 1, "saw it")
    return "released"


def forever(report):
    step = 0
    while True:
        step += 1
        report(step, 0, f"step {step}")
        time.sleep(0.02)
'''

FAILING = '''
def sales(country: str = "fr"):
    totals = {"de": 1}
    return totals[country]
'''


def add_tool(app_dir: Path, name: str, source: str) -> None:
    (app_dir / "tools" / name).write_text(textwrap.dedent(source))


def task_id_of(row: str) -> int:
    return int(TASK_ID.search(row)[1])


def ended(client, server, task_id: int, headers: dict) -> str:
    """The task's row once it has ended (a notebook's kernel runs at the tools' lower priority: on a loaded
    machine it waits for whatever else is running)."""
    for _ in range(2400):
        if task_id not in server.tasks.RUNS:
            return client.get(f"/tasks/{task_id}", headers=headers).text
        client.portal.call(asyncio.sleep, 0.05)
    raise AssertionError(f"task {task_id} did not end")


def run(client, server, headers: dict, name: str, data: dict | None = None, files: dict | None = None) -> str:
    """Start the tool through its form and return its row once the run has ended."""
    response = client.post(f"/tools/{name}", data=data or {}, files=files, headers=headers)
    assert response.status_code == 200 and 'class="task running"' in response.text, response.text
    return ended(client, server, task_id_of(response.text), headers)


def result_of(row: str) -> str:
    return re.search(r'<div class="result">(.*?)</div>\s*</article>', row, re.S)[1]


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
    assert "&lt;b&gt;19&lt;/b&gt;" in result and "&lt;b&gt;20&lt;/b&gt;" not in result and "<b>" not in result
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
    (folder / "link.txt").symlink_to(server.db.DB_FILE)
    for name in (".hidden", "inner", "link.txt", "..%2F..%2F.sesskey", "%2E%2E", "missing.txt"):
        response = client.get(f"/tasks/{task_id}/files/{name}", headers=headers)
        assert response.status_code == 404 and "secret" not in response.text, name
    assert client.get(f"/tasks/{task_id}/files/report.txt", headers=headers).status_code == 200
    client.post("/profiles", data={"name": "Other"}, headers=headers)
    refused = client.get(f"/tasks/{task_id}/files/report.txt", headers=headers)
    assert refused.status_code == 404 and "made by the tool" not in refused.text


# --- runs: not blocking, cancel, failures, run again ------------------------------------------------------


def test_a_sync_tool_waiting_blocks_no_other_request(client, server, app_dir, tmp_path):
    add_tool(app_dir, "waiting.py", WAITING)
    headers = open_page(client)
    flag = tmp_path / "go"
    with client.websocket_connect(f"/ws?tab={headers['X-Tab']}") as ws:
        task_id = task_id_of(client.post("/tools/wait_for", data={"flag": str(flag)}, headers=headers).text)
        receive_until(ws, "waiting", timeout=30)
        assert client.get("/").status_code == 200 and client.get("/tools/wait_for").status_code == 200
        assert server.tasks.RUNS[task_id].task.status == "running"
        flag.touch()
        frames = receive_until(ws, f'id="task-{task_id}" class="task done"', timeout=30)
    assert "saw it" in "".join(frames) and "released" in frames[-1]


def test_cancel_ends_a_sync_tool(client, server, app_dir):
    add_tool(app_dir, "waiting.py", WAITING)
    headers = open_page(client)
    task_id = task_id_of(client.post("/tools/forever", headers=headers).text)
    for _ in range(600):
        if server.tasks.RUNS[task_id].task.done >= 3:
            break
        client.portal.call(asyncio.sleep, 0.05)
    client.post(f"/tasks/{task_id}/cancel", headers=headers)
    row = ended(client, server, task_id, headers)
    assert 'class="task cancelled"' in row and server.db.tasks[task_id].status == "cancelled"


def test_a_failing_tool_names_the_error_and_the_users_line_not_a_traceback(client, server, app_dir, caplog):
    add_tool(app_dir, "failing.py", FAILING)
    headers = open_page(client)
    row = run(client, server, headers, "sales")
    assert 'class="task failed"' in row and "Failed: KeyError: &#x27;fr&#x27; (failing.py:4)" in row, row
    assert "Traceback" not in row and "Traceback" not in server.db.tasks[task_id_of(row)].result


def test_run_again_reuses_the_answers_and_the_upload(client, server, app_dir):
    add_tool(app_dir, "every.py", EVERY_TYPE)
    headers = open_page(client)
    data = {"text": "again", "count": "3", "ratio": "1", "day": "2026-01-02", "names": "x"}
    first = run(client, server, headers, "echo", data, files={"data": ("in.csv", b"kept")})
    assert f'hx-post="/tasks/{task_id_of(first)}/again"' in first
    again = client.post(f"/tasks/{task_id_of(first)}/again", headers=headers).text
    second = ended(client, server, task_id_of(again), headers)
    assert task_id_of(second) != task_id_of(first) and result_of(second) == result_of(first)
    assert server.db.tasks[task_id_of(second)].params == server.db.tasks[task_id_of(first)].params
    tool_page = client.get("/tools/echo").text
    runs = re.search(r'<section id="tasks">(.*?)</section>', tool_page, re.S)[1]
    assert [int(i) for i in TASK_ID.findall(runs)] == [task_id_of(second), task_id_of(first)]
    client.post("/profiles", data={"name": "Other"}, headers=headers)
    assert not TASK_ID.search(re.search(r'<section id="tasks">(.*?)</section>', client.get("/tools/echo").text,
                                        re.S)[1])


def test_an_upload_unused_for_its_days_goes_when_another_arrives_and_its_run_asks_for_it(client, server, app_dir):
    add_tool(app_dir, "every.py", EVERY_TYPE)
    headers = open_page(client)
    data = {"text": "old", "count": "3", "ratio": "1", "day": "2026-01-02", "names": "x"}
    first = run(client, server, headers, "echo", data, files={"data": ("old.csv", b"old")})
    (old,) = (server.settings.DATA / "uploads").iterdir()
    kept_until = old.stat().st_mtime - server.tool_pages.KEEP_UPLOADS_DAYS * 86400
    os.utime(old, (kept_until - 1, kept_until - 1))
    second = run(client, server, headers, "echo", data, files={"data": ("new.csv", b"new")})
    assert '"data": "new"' in html.unescape(result_of(second))
    assert [path.name.split("-", 1)[1] for path in (server.settings.DATA / "uploads").iterdir()] == ["new.csv"]
    runs = len(server.db.tasks())
    again = client.post(f"/tasks/{task_id_of(first)}/again", headers=headers).text
    assert f"Data: the file this run used is gone (uploads are kept {server.tool_pages.KEEP_UPLOADS_DAYS} days)" in again
    assert len(server.db.tasks()) == runs and not TASK_ID.search(again)
    (new,) = (server.settings.DATA / "uploads").iterdir()
    os.utime(new, (kept_until, kept_until))
    again = client.post(f"/tasks/{task_id_of(second)}/again", headers=headers).text
    assert '"data": "new"' in html.unescape(result_of(ended(client, server, task_id_of(again), headers)))
    assert new.stat().st_mtime > kept_until + 86400  # kept for as long again from this run on


LOOK = '''
def look(p: str, n: int = 1):
    return p
'''

NOW_A_FILE = '''
from pathlib import Path


def look(p: Path, n: int = 1):
    return p.read_text()
'''

NOW_A_DATE = '''
import datetime


def look(p: str, n: datetime.date | None = None):
    return n.isoformat()
'''


@pytest.mark.parametrize("answers, changed", [({"p": "SECRET"}, NOW_A_FILE), ({"p": "words", "n": "3"}, NOW_A_DATE)],
                         ids=["text-now-a-file", "int-now-a-date"])
def test_run_again_checks_the_saved_answers_against_the_tool_as_it_is_now(client, server, app_dir, answers, changed):
    secret = app_dir / "secret.txt"  # any file on the server, outside data/uploads/
    secret.write_text("not for the page")
    os.utime(secret, (1_000_000, 1_000_000))
    add_tool(app_dir, "look.py", LOOK)
    headers = open_page(client)
    first = run(client, server, headers, "look", {name: value.replace("SECRET", str(secret))
                                                 for name, value in answers.items()})
    assert 'class="task done"' in first
    add_tool(app_dir, "look.py", changed)
    runs = len(server.db.tasks())
    again = client.post(f"/tasks/{task_id_of(first)}/again", headers=headers).text
    assert "run the tool from its page" in again and not TASK_ID.search(again) and "not for the page" not in again
    assert len(server.db.tasks()) == runs and secret.stat().st_mtime == 1_000_000


def test_a_runs_card_shows_its_inputs_and_when_it_ran(client, server, app_dir):
    add_tool(app_dir, "every.py", EVERY_TYPE)
    add_tool(app_dir, "waiting.py", WAITING)
    headers = open_page(client)
    data = {"text": "<b>bold</b>", "count": "3", "ratio": "1", "day": "2026-01-02", "names": "x\ny"}
    row = run(client, server, headers, "echo", data, files={"data": ("sales 2024.csv", b"kept")})
    inputs = re.search(r'<p class="inputs">\s*<small>(.*?)</small>', row)[1]
    assert "text: &lt;b&gt;bold&lt;/b&gt; · count: 3 · " in inputs and "data: sales_2024.csv" in inputs
    assert "names: x, y" in inputs and "<b>" not in inputs
    assert "note:" not in inputs  # an answer left empty
    assert re.search(r"done · <span[^>]*>0/0</span> · started \d{4}-\d\d-\d\d \d\d:\d\d:\d\d · took [\d.,]+ s", row), row
    fresh = client.post("/tools/forever", headers=headers).text
    assert re.search(r"starting · <span[^>]*>0/0</span> · started ", fresh), fresh
    client.post(f"/tasks/{task_id_of(fresh)}/cancel", headers=headers)
    ended(client, server, task_id_of(fresh), headers)


def test_a_database_an_older_version_made_is_migrated_and_keeps_its_runs(app_dir, request):
    data = app_dir / "data"
    data.mkdir()
    db_name = next(app_dir.glob("tools/__init__.py")).read_text().split('"data" / "', 1)[1].split('"', 1)[0]
    conn = apsw.Connection(str(data / db_name))
    conn.execute("CREATE TABLE [profiles] ([id] INTEGER PRIMARY KEY, [name] TEXT)")
    conn.execute("CREATE TABLE [tasks] ([id] INTEGER PRIMARY KEY, [profile_id] INTEGER, [tab] TEXT, [title] TEXT, "
                 "[status] TEXT, [done] INTEGER, [total] INTEGER, [log] TEXT, [result] TEXT, [kind] TEXT, [params] TEXT)")
    conn.execute("INSERT INTO profiles VALUES (1, 'Default'), (2, 'Deleted later')")
    conn.execute("INSERT INTO tasks VALUES (7, 1, '', 'Old run', 'done', 1, 1, '', 'old result', '', '')")
    conn.execute("DELETE FROM profiles WHERE id = 2")
    conn.close()
    server = request.getfixturevalue("server")
    client = request.getfixturevalue("client")
    headers = open_page(client)
    assert "old result" in client.get("/tasks/7", headers=headers).text
    client.post("/profiles", data={"name": "New"}, headers=headers)
    assert [profile.id for profile in server.db.profiles(order_by="id")] == [1, 2]  # 2 was free: ids go on from 1
    row = server.db.db.execute("SELECT sql FROM sqlite_master WHERE name = 'tasks'").fetchall()[0][0]
    assert "AUTOINCREMENT" in row and "[started]" in row and "[ended]" in row


def test_a_deleted_profile_takes_its_runs_uploads_and_outputs_and_its_ids_reach_nothing(client, server, app_dir):
    add_tool(app_dir, "every.py", EVERY_TYPE)
    add_tool(app_dir, "waiting.py", WAITING)
    headers = open_page(client)
    kept = server.profiles.current_profile({}).id
    client.post("/profiles", data={"name": "Leaving"}, headers=headers)
    gone = max(profile.id for profile in server.db.profiles())
    data = {"text": "mine", "count": "3", "ratio": "1", "day": "2026-01-02", "names": "x"}
    task_id = task_id_of(run(client, server, headers, "echo", data, files={"data": ("private.csv", b"private")}))
    (upload,) = (server.settings.DATA / "uploads").iterdir()
    outputs = server.db.OUTPUTS / str(task_id)
    (outputs / "result.csv").write_text("private")
    running = task_id_of(client.post("/tools/forever", headers=headers).text)
    client.post("/profiles/switch", data={"id": str(kept)}, headers=headers)
    refused = client.delete(f"/profiles/{gone}", headers=headers).text
    assert "A task of this profile is running" in refused and server.db.profiles[gone].name == "Leaving"
    client.post("/profiles/switch", data={"id": str(gone)}, headers=headers)
    client.post(f"/tasks/{running}/cancel", headers=headers)
    ended(client, server, running, headers)
    client.post("/profiles/switch", data={"id": str(kept)}, headers=headers)
    client.delete(f"/profiles/{gone}", headers=headers)
    assert gone not in [profile.id for profile in server.db.profiles()]
    assert not upload.exists() and not outputs.exists() and not (server.db.OUTPUTS / str(running)).exists()
    lines = server.db.db.execute("SELECT count(*) FROM task_lines WHERE task_id IN (?, ?)", [task_id, running]).fetchall()
    assert lines == [(0,)] and not server.db.tasks(where="id IN (?, ?)", where_args=[task_id, running])
    client.post("/profiles", data={"name": "Arriving"}, headers=headers)  # takes the highest id: never the old one
    assert server.profiles.current_profile({}).id not in (gone, kept)
    for method, url in [("GET", f"/tasks/{task_id}"), ("GET", f"/tasks/{task_id}/log"),
                        ("GET", f"/tasks/{task_id}/files/result.csv"), ("POST", f"/tasks/{task_id}/again"),
                        ("POST", f"/tasks/{task_id}/cancel"), ("POST", f"/profiles/{gone}/rename"),
                        ("DELETE", f"/profiles/{gone}")]:
        answer = client.request(method, url, headers=headers, data={"name": "taken"} if "rename" in url else None)
        assert "private" not in answer.text and "mine" not in answer.text, url
        assert "does not exist" in answer.text or "no longer exists" in answer.text or answer.status_code == 404, url
    switched = client.post("/profiles/switch", data={"id": str(gone)}, headers=headers).text
    assert "That profile no longer exists." in switched
    new_run = task_id_of(run(client, server, headers, "echo", data, files={"data": ("other.csv", b"other")}))
    assert new_run > running  # a new run never lands in a deleted run's id or folder


def test_an_upload_over_the_limit_gets_the_413_notice_and_keeps_nothing(client, server, app_dir, monkeypatch):
    add_tool(app_dir, "every.py", EVERY_TYPE)
    monkeypatch.setitem(server.security.BODY_LIMITS, "/tools/", 64 * 1024)
    headers = open_page(client)
    response = client.post("/tools/echo", data={"text": "t"}, files={"data": ("big.csv", b"x" * 100_000)},
                           headers=headers)
    assert response.status_code == 413 and "the limit here is 64 KiB" in response.text
    assert response.headers["HX-Retarget"] == "#notice"
    assert server.db.tasks() == [] and list((server.settings.DATA / "uploads").iterdir()) == []


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
