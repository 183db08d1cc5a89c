"""Runs through a tool's page: a waiting tool blocks no other request, Cancel, failures, run again with the same
answers and uploads, a run's card, the data an older version left, and what deleting a profile takes."""
from __future__ import annotations

import asyncio
import html
import os
import re

import apsw
import pytest

from conftest import TASK_ID, open_page, receive_until, task_id_of
from tool_forms import EVERY_TYPE, FAILING, WAITING, add_tool, ended, result_of, run


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


@pytest.mark.sqlite  # older versions ran on SQLite alone
def test_a_database_an_older_version_made_is_migrated_and_keeps_its_runs(app_dir, request):
    data = app_dir / "data"
    data.mkdir()
    db_name = (app_dir / "settings.py").read_text().split('DB_FILE = DATA / "', 1)[1].split('"', 1)[0]
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
    assert "AUTOINCREMENT" in row and '"started"' in row and '"ended"' in row


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
