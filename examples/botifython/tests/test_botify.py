"""The Botify layer through the app's routes, against a fake Botify API on 127.0.0.1."""
from __future__ import annotations

import asyncio
import csv
import io
import os
import re
import stat
import time
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import httpx
import pytest

import fake_botify
from conftest import free_port, open_page, receive_until
from fake_botify import VALID_TOKEN

OTHER_TOKEN = "ffffffffffffffffffffffffffffffffffff1234"
LISTING = "/v1/analyses/jdoe/site-2/light"
MASKED = "••••f00d"


@pytest.fixture
def fake(monkeypatch):
    fake, http_server = fake_botify.serve()
    monkeypatch.setenv("BOTIFY_API_BASE", f"{fake.base}/v1")
    monkeypatch.setenv("BOTIFY_RETRY_SECONDS", "0.01")
    fake.analyses["site-2"] = fake_botify.make_analyses("site-2", 11)
    yield fake
    http_server.shutdown()
    http_server.server_close()


@pytest.fixture
def tab(client, fake):
    return open_page(client)


@pytest.fixture
def connected(client, server, tab):
    card = client.post("/botify/connect", data={"token": VALID_TOKEN}, headers=tab).text
    assert "Connected to Botify as jdoe" in card
    return server.DATA / "botify_token"


def export(client, tab, project: str = "site-2") -> int:
    row = client.post("/botify/export", data={"project": project}, headers=tab).text
    return int(re.search(r'id="task-(\d+)"', row)[1])


def finished(client, server, task_id: int, timeout: float = 20.0):
    deadline = time.monotonic() + timeout
    while server.tasks[task_id].status == "running":
        assert time.monotonic() < deadline, f"task {task_id} still running after {timeout} s"
        client.portal.call(asyncio.sleep, 0.05)
    return server.tasks[task_id]


def download(client, task) -> tuple[str, list[dict]]:
    href = re.search(r'href="(/botify/exports/[^"]+)"', task.result)[1]
    response = client.get(href)
    assert response.status_code == 200
    return response.headers["content-disposition"], list(csv.DictReader(io.StringIO(response.text)))


# --- connect ---------------------------------------------------------------------------------------------


def test_connect_saves_the_token_0600_and_pages_show_it_masked(client, server, tab, connected):
    assert connected.read_text() == VALID_TOKEN
    assert stat.S_IMODE(connected.stat().st_mode) == 0o600
    bodies = [client.get("/").text, client.get("/botify/projects", headers=tab).text]
    assert MASKED in bodies[0] and 'value="site-1"' in bodies[1]
    assert not [body for body in bodies if VALID_TOKEN in body or VALID_TOKEN[:-4] in body]


def test_token_file_is_never_wider_than_0600(client, server, tab, fake, monkeypatch):
    os.umask(0)  # a permissive umask must not widen the file: the mode has to come from save_token itself
    modes_before_rename = []
    real_replace = os.replace

    def spy_replace(source, target, **kwargs):
        if str(target).endswith("botify_token"):
            modes_before_rename.append(stat.S_IMODE(os.stat(source).st_mode))
        real_replace(source, target, **kwargs)

    monkeypatch.setattr(os, "replace", spy_replace)
    try:
        client.post("/botify/connect", data={"token": VALID_TOKEN}, headers=tab)
    finally:
        os.umask(0o022)
    assert modes_before_rename == [0o600]
    assert stat.S_IMODE((server.DATA / "botify_token").stat().st_mode) == 0o600
    assert not [p.name for p in server.DATA.iterdir() if p.name.startswith(".botify_token")]


@pytest.mark.parametrize("token, error", [
    ("", "Paste a Botify API token first."),
    ("   ", "Paste a Botify API token first."),
    ("two words", "one word of letters and digits"),
])
def test_blank_or_malformed_token_is_an_inline_error_and_changes_nothing(client, fake, tab, connected, token, error):
    asked = len(fake.requests)
    card = client.post("/botify/connect", data={"token": token}, headers=tab).text
    assert error in card and 'role="alert"' in card and MASKED in card
    assert connected.read_text() == VALID_TOKEN and len(fake.requests) == asked


def test_rejected_token_keeps_the_old_one(client, tab, connected):
    card = client.post("/botify/connect", data={"token": OTHER_TOKEN}, headers=tab).text
    assert "Botify rejected that token; the saved connection is unchanged." in card
    assert MASKED in card and OTHER_TOKEN not in card
    assert connected.read_text() == VALID_TOKEN


def test_unreachable_api_keeps_the_old_token(client, tab, connected, monkeypatch):
    monkeypatch.setenv("BOTIFY_API_BASE", f"http://127.0.0.1:{free_port()}/v1")
    card = client.post("/botify/connect", data={"token": OTHER_TOKEN}, headers=tab).text
    assert "Could not reach Botify" in card and "The saved connection is unchanged." in card
    assert connected.read_text() == VALID_TOKEN


def test_disconnect_deletes_the_token_file(client, tab, connected):
    card = client.post("/botify/disconnect", headers=tab).text
    assert "the token file was deleted" in card and "Connect" in card and MASKED not in card
    assert not connected.exists()
    assert "Connect a Botify token first." in client.get("/botify/projects", headers=tab).text


# --- projects and the export task ------------------------------------------------------------------------


def test_projects_follow_every_page_into_the_select(client, fake, tab, connected):
    picker = client.get("/botify/projects", headers=tab).text
    assert re.findall(r'<option value="([^"]+)"', picker) == [p["slug"] for p in fake.projects]
    assert [path for path, _ in fake.requests if path.startswith("/v1/projects/")] == [
        "/v1/projects/jdoe", "/v1/projects/jdoe?page=2", "/v1/projects/jdoe?page=3"]


def test_export_streams_progress_to_its_tab_and_the_csv_holds_every_analysis_once(client, server, fake, tab, connected):
    with client.websocket_connect(f"/ws?tab={tab['X-Tab']}") as ws:
        task_id = export(client, tab)
        frames = "".join(receive_until(ws, f'id="task-{task_id}" class="task done"', timeout=20))
    assert "Signed in to Botify as jdoe" in frames and "Fetched 11 of 11 analyses" in frames
    assert [path for path, _ in fake.requests if path.startswith(LISTING)] == [
        LISTING, f"{LISTING}?page=2", f"{LISTING}?page=3", f"{LISTING}?page=4"]
    disposition, rows = download(client, finished(client, server, task_id))
    assert disposition.startswith("attachment") and ".csv" in disposition
    expected = fake.analyses["site-2"]
    assert [row["slug"] for row in rows] == [a["slug"] for a in expected]
    assert rows[0] == {column: str(expected[0][column]) for column in server.botify.ANALYSIS_COLUMNS}
    assert VALID_TOKEN not in frames + client.get("/").text


def test_429_is_retried_as_retry_after_says_and_the_log_says_so(client, server, fake, tab, connected):
    fake.fail(f"{LISTING}?page=2", 429, retry_after="1")
    task = finished(client, server, export(client, tab))
    assert task.status == "done"
    assert "Botify answered 429 Too Many Requests; retrying in 1s (attempt 2 of 5)" in task.log
    assert [status for path, status in fake.requests if path == f"{LISTING}?page=2"] == [429, 200]
    assert len(download(client, task)[1]) == 11


def retry_wait(server, retry_after: str | None) -> float:
    headers = {"Retry-After": retry_after} if retry_after else {}
    return server.botify._retry_wait(httpx.Response(429, headers=headers), first_step=0.5)


@pytest.mark.parametrize("retry_after, wait", [
    ("2", 2), ("86400", 60), (None, 0.5), ("soon", 0.5), ("Wed, 21 Oct 2015 07:28:00 -0000", 0.5)])
def test_retry_wait_follows_retry_after_within_a_minute(server, retry_after, wait):
    assert retry_wait(server, retry_after) == wait


def test_retry_wait_understands_an_http_date(server):
    in_30s = format_datetime(datetime.now(UTC) + timedelta(seconds=30), usegmt=True)
    assert 25 <= retry_wait(server, in_30s) <= 30


def test_500_then_401_mid_run_stops_and_asks_to_reconnect(client, server, fake, tab, connected):
    fake.fail(f"{LISTING}?page=3", 500, 401)
    task = finished(client, server, export(client, tab))
    assert task.status == "failed"
    assert "Botify answered 500 Internal Server Error; retrying" in task.log
    assert "Botify rejected the saved token (401): paste a fresh token on the Botify card to reconnect." in task.result
    assert [status for path, status in fake.requests if path == f"{LISTING}?page=3"] == [500, 401]
    assert not list((server.DATA / "exports").iterdir())
    assert connected.read_text() == VALID_TOKEN


def test_next_links_off_the_api_host_are_not_followed(client, server, fake, tab, connected):
    fake.next_base = f"http://localhost:{fake.base.rsplit(':', 1)[1]}"
    task = finished(client, server, export(client, tab))
    assert task.status == "failed" and "next page points outside" in task.result
    assert [path for path, _ in fake.requests if path.startswith(LISTING)] == [LISTING]


def test_formula_like_cells_cannot_run_in_a_spreadsheet(client, server, fake, tab, connected):
    fake.analyses["site-2"][0]["name"] = '=HYPERLINK("http://evil.example")'
    _, rows = download(client, finished(client, server, export(client, tab)))
    assert rows[0]["name"] == '\'=HYPERLINK("http://evil.example")'


def test_export_needs_a_token_and_a_project(client, server, tab, fake):
    response = client.post("/botify/export", data={"project": "site-2"}, headers=tab)
    assert "Connect a Botify token first." in response.text
    assert response.headers["hx-retarget"] == "#botify-export-message"
    client.post("/botify/connect", data={"token": VALID_TOKEN}, headers=tab)
    assert "Choose a project first." in client.post("/botify/export", data={"project": " "}, headers=tab).text
    assert server.tasks() == []


def test_downloads_serve_only_finished_exports(client, server, connected):
    (server.DATA / "secret.csv").write_text("secret")
    exports = server.DATA / "exports"
    exports.mkdir()
    (exports / ".half-written.csv").write_text("partial")
    assert server.botify.export_path("../secret") is None
    for stem in ("..%2Fsecret", "..%2F..%2Fsecret", "%2E%2E%2Fbotify_token", "missing", ".half-written"):
        response = client.get(f"/botify/exports/{stem}")
        assert response.status_code == 404 and "secret" not in response.text and VALID_TOKEN not in response.text
