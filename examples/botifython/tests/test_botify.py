"""Botify against a fake Botify API on 127.0.0.1, through the app: the card's routes and export runs. (What Botify
may send and the export's files, through direct calls of the tool: test_botify_export.py.)"""
from __future__ import annotations

import csv
import fcntl
import html
import io
import os
import re
import socket
import stat
import time

import pytest

import fake_botify
from conftest import open_page, receive_until, wait_until
from fake_botify import LISTING, NOT_CONNECTED, VALID_TOKEN, fake, listing_requests  # noqa: F401 (fake: a fixture)

OTHER_TOKEN = "ffffffffffffffffffffffffffffffffffff1234"
MASKED = "••••f00d"


# --- through the app: the card ----------------------------------------------------------------------------


@pytest.fixture
def tab(client, fake):
    return open_page(client)


@pytest.fixture
def connected(client, server, tab):
    card = client.post("/botify/connect", data={"token": VALID_TOKEN}, headers=tab).text
    assert "Connected to Botify as jdoe" in card
    return server.settings.DATA / "botify_token"


def test_connect_saves_the_token_0600_and_pages_show_it_masked(client, server, tab, connected):
    assert connected.read_text() == VALID_TOKEN
    assert stat.S_IMODE(connected.stat().st_mode) == 0o600
    bodies = [client.get("/").text, client.get("/botify/projects", headers=tab).text]
    assert MASKED in bodies[0] and 'id="botify"' in bodies[0] and 'value="site-1"' in bodies[1]
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
    assert stat.S_IMODE((server.settings.DATA / "botify_token").stat().st_mode) == 0o600
    assert not [p.name for p in server.settings.DATA.iterdir() if p.name.startswith(".botify_token")]


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
    with socket.socket() as unlistened:  # bound but not listening: refuses every connection, and no one can take it
        unlistened.bind(("127.0.0.1", 0))
        monkeypatch.setenv("BOTIFY_API_BASE", f"http://127.0.0.1:{unlistened.getsockname()[1]}/v1")
        card = client.post("/botify/connect", data={"token": OTHER_TOKEN}, headers=tab).text
    assert "Could not reach Botify" in card and "The saved connection is unchanged." in card
    assert connected.read_text() == VALID_TOKEN


def test_disconnect_deletes_the_token_file(client, tab, connected):
    card = client.post("/botify/disconnect", headers=tab).text
    assert "the token file was deleted" in card and "Connect" in card and MASKED not in card
    assert not connected.exists()
    assert "Connect a Botify token first." in client.get("/botify/projects", headers=tab).text


@pytest.mark.parametrize("profile, shown", [
    ({"data": {"username": 5}}, "5"),
    ({"data": {"username": ""}}, '""'),
    ({"data": {"username": ["jdoe"]}}, '["jdoe"]'),
    ({"data": "jdoe"}, "null"),
    ({"detail": "ok"}, "null"),
])
def test_a_profile_without_a_username_is_refused_and_changes_nothing(client, server, fake, tab, profile, shown):
    fake.profile = profile
    card = html.unescape(client.post("/botify/connect", data={"token": VALID_TOKEN}, headers=tab).text)
    assert f"Botify's profile answer has no usable data.username (got {shown}); is BOTIFY_API_BASE right?" \
        " The saved connection is unchanged." in card
    assert not (server.settings.DATA / "botify_token").exists()


def test_projects_without_a_usable_name_show_their_slug_and_junk_is_skipped(client, fake, tab, connected):
    fake.projects = [{"slug": "a", "name": {"x": 1}}, {"slug": "b", "name": None}, {"slug": "c", "name": " "},
                     {"slug": "", "name": "empty"}, {"slug": 5}, "junk", {"slug": "d", "name": "Dee"}]
    picker = client.get("/botify/projects", headers=tab).text
    assert re.findall(r'<option value="([^"]+)">([^<]*)<', picker) == [("a", "a"), ("b", "b"), ("c", "c"), ("d", "Dee")]


def test_projects_follow_every_page_into_the_select(client, fake, tab, connected):
    picker = client.get("/botify/projects", headers=tab).text
    assert re.findall(r'<option value="([^"]+)"', picker) == [p["slug"] for p in fake.projects]
    assert [path for path, _ in fake.requests if path.startswith("/v1/projects/")] == [
        "/v1/projects/jdoe", "/v1/projects/jdoe?page=2", "/v1/projects/jdoe?page=3"]


# --- through the app: export runs ---------------------------------------------------------------------------


def export(client, tab, project: str = "site-2") -> int:
    """Start an export as the card's project picker does: a run of the botify_export tool."""
    row = client.post("/tools/botify_export", data={"project": project}, headers=tab).text
    return int(re.search(r'id="task-(\d+)"', row)[1])


def finished(client, server, task_id: int, timeout: float = 120.0):
    assert wait_until(client, lambda: server.db.tasks[task_id].status != "running", timeout), \
        f"task {task_id} still running after {timeout} s"
    return server.db.tasks[task_id]


def download(client, task) -> tuple[str, str, list[dict]]:
    """The export a finished run links to: its URL, Content-Disposition and rows."""
    assert task.status == "done", task.result
    href = html.unescape(re.search(r'href="(/tasks/\d+/files/[^"]+)"', task.result)[1])
    response = client.get(href)
    assert response.status_code == 200
    return href, response.headers["content-disposition"], list(csv.DictReader(io.StringIO(response.text, newline="")))


def outputs(server, task_id: int) -> list:
    folder = server.settings.DATA / "outputs" / str(task_id)
    return sorted(folder.iterdir()) if folder.exists() else []


def failed_with(client, server, task_id: int, error: str, message: str) -> None:
    """The run failed with ``message`` on one line, naming the tool's line, left no file and never showed the token."""
    task = finished(client, server, task_id)
    result = html.unescape(task.result)
    assert task.status == "failed"
    assert re.fullmatch(rf"Failed: {error}: {re.escape(message)} \(botify_export\.py:\d+\)", result), result
    assert outputs(server, task_id) == []
    assert VALID_TOKEN not in task.log + result + client.get(f"/tasks/{task_id}/log").text


def test_the_project_picker_starts_a_tool_run(client, server, fake, tab, connected):
    picker = client.get("/botify/projects", headers=tab).text
    form = re.search(r'<form[^>]*hx-post="([^"]+)"[^>]*>', picker)
    assert form[1] == "/tools/botify_export"
    assert 'hx-target="#task-list"' in form[0] and 'hx-swap="afterbegin"' in form[0]
    assert 'id="task-list"' in client.get("/").text
    field = re.search(r'<select[^>]*name="([^"]+)"', picker)[1]
    row = client.post(form[1], data={field: "site-2"}, headers=tab).text
    assert 'class="task running"' in row
    task = finished(client, server, int(re.search(r'id="task-(\d+)"', row)[1]))
    assert task.status == "done" and len(download(client, task)[2]) == 11


def test_export_streams_progress_to_its_tab_and_the_csv_holds_every_analysis_once(client, server, fake, tab, connected):
    with client.websocket_connect(f"/ws?tab={tab['X-Tab']}") as ws:
        task_id = export(client, tab)
        frames = "".join(receive_until(ws, f'id="task-{task_id}" class="task done"', timeout=120))
    assert "Signed in to Botify as jdoe" in frames and "Fetched 11 of 11 analyses" in frames
    assert listing_requests(fake) == [LISTING, f"{LISTING}?page=2", f"{LISTING}?page=3", f"{LISTING}?page=4"]
    href, disposition, rows = download(client, finished(client, server, task_id))
    assert href.startswith(f"/tasks/{task_id}/files/site-2-analyses-") and href.endswith(".csv")
    assert disposition.startswith("attachment") and ".csv" in disposition
    expected = fake.analyses["site-2"]
    assert [row["slug"] for row in rows] == [a["slug"] for a in expected]
    assert rows[0] == {column: str(expected[0][column]) for column in rows[0]}
    assert list(rows[0]) == ["id", "slug", "name", "status", "date_launched", "date_finished"]
    [csv_file] = outputs(server, task_id)
    assert stat.S_IMODE(csv_file.stat().st_mode) == 0o600
    assert not (server.settings.DATA / "exports").exists()
    assert VALID_TOKEN not in frames + client.get("/").text + client.get(f"/tasks/{task_id}/log").text


def test_export_without_a_token_fails_with_one_line(client, server, fake, tab):
    failed_with(client, server, export(client, tab), "BotifyError", NOT_CONNECTED)
    assert fake.requests == []


def test_a_blank_project_is_refused_inline_and_nothing_runs(client, server, fake, tab, connected):
    answer = client.post("/tools/botify_export", data={"project": "  "}, headers=tab).text
    assert 'name="project" aria-invalid="true"' in answer
    assert server.db.tasks() == [] and fake.requests[-1][0] == "/v1/authentication/profile"


def test_429_is_retried_as_retry_after_says_and_the_log_says_so(client, server, fake, tab, connected):
    fake.fail(f"{LISTING}?page=2", 429, retry_after="1")
    task = finished(client, server, export(client, tab))
    assert task.status == "done"
    assert "Botify answered 429 Too Many Requests; retrying in 1s (attempt 2 of 5)" in task.log
    assert [status for path, status in fake.requests if path == f"{LISTING}?page=2"] == [429, 200]
    assert len(download(client, task)[2]) == 11


def test_500_then_401_mid_run_stops_and_asks_to_reconnect(client, server, fake, tab, connected):
    fake.fail(f"{LISTING}?page=3", 500, 401)
    task_id = export(client, tab)
    failed_with(client, server, task_id, "TokenRejected",
                "Botify rejected the saved token (401): paste a fresh token on the Botify card to reconnect.")
    assert "Botify answered 500 Internal Server Error; retrying" in server.db.tasks[task_id].log
    assert [status for path, status in fake.requests if path == f"{LISTING}?page=3"] == [500, 401]
    assert connected.read_text() == VALID_TOKEN


def test_cancel_mid_export_leaves_no_file(client, server, fake, tab, connected):
    release = fake.hold(f"{LISTING}?page=2")
    with client.websocket_connect(f"/ws?tab={tab['X-Tab']}") as ws:
        task_id = export(client, tab)
        receive_until(ws, "Fetched 3 of 11 analyses", timeout=120)
        client.post(f"/tasks/{task_id}/cancel", headers=tab)
        release.set()
        task = finished(client, server, task_id)
    assert task.status == "cancelled"
    assert outputs(server, task_id) == []


def test_an_export_runs_again_into_a_new_file(client, server, fake, tab, connected):
    first = finished(client, server, export(client, tab))
    fake.analyses["site-2"] = fake_botify.make_analyses("site-2", 4)
    row = client.post(f"/tasks/{first.id}/again", headers=tab).text
    again = finished(client, server, int(re.search(r'id="task-(\d+)"', row)[1]))
    assert again.id != first.id
    assert [len(download(client, task)[2]) for task in (first, again)] == [11, 4]


def test_a_long_project_name_still_makes_a_valid_file_name(client, server, fake, tab, connected):
    project = "p" * 300
    fake.analyses[project] = fake_botify.make_analyses(project, 1)
    href, _, rows = download(client, finished(client, server, export(client, tab, project)))
    assert len(href.rsplit("/", 1)[1]) < 120 and len(rows) == 1


def test_exports_made_before_tools_stay_downloadable_and_only_they(client, server, connected):
    (server.settings.DATA / "secret.csv").write_text("secret")
    exports = server.settings.DATA / "exports"
    exports.mkdir()
    (exports / "site-2-analyses-20240101-000000.csv").write_text('"id"\n"1"\n')
    (exports / ".half-written.csv").write_text("partial")
    response = client.get("/botify/exports/site-2-analyses-20240101-000000")
    assert response.status_code == 200 and response.text == '"id"\n"1"\n'
    assert response.headers["content-disposition"].startswith("attachment")
    for stem in ("..%2Fsecret", "..%2F..%2Fsecret", "%2E%2E%2Fbotify_token", "missing", ".half-written"):
        response = client.get(f"/botify/exports/{stem}")
        assert response.status_code == 404 and "secret" not in response.text and VALID_TOKEN not in response.text


def old_file(path, text: str = "half written", mode: int = 0o600):
    path.write_text(text)
    path.chmod(mode)
    an_hour_ago = time.time() - 3600
    os.utime(path, (an_hour_ago, an_hour_ago))
    return path


def test_startup_deletes_partials_killed_writers_left_and_narrows_modes(app_dir, request):
    data = app_dir / "data"
    exports = data / "exports"
    exports.mkdir(parents=True)
    exports.chmod(0o755)  # as versions before 0700 exports made it
    data.chmod(0o700)
    run_folder = data / "outputs" / "7"
    run_folder.mkdir(parents=True)
    abandoned = old_file(exports / ".site-2-analyses-20240101-000000.csv.0123abcd")
    abandoned_run = old_file(run_folder / ".site-2-analyses-20240101-000000.csv.4567abcd")
    token_partial = old_file(data / ".botify_token.89abcdef", VALID_TOKEN)
    writing = old_file(exports / ".site-2-analyses-20240101-000001.csv.fedcba98")
    writing_run = old_file(run_folder / ".site-2-analyses-20240101-000001.csv.fedcba99")
    just_made = exports / ".site-2-analyses-20240101-000002.csv.01234567"
    just_made.write_text("")
    finished_export = old_file(exports / "site-2-analyses-20240101-000000.csv", "id\n", mode=0o644)
    read_only = old_file(exports / "site-2-analyses-20240101-000003.csv", "id\n", mode=0o400)
    token = old_file(data / "botify_token", VALID_TOKEN, mode=0o644)
    not_ours = [old_file(data / ".other.0123abcd"), old_file(run_folder / ".report.csv.0123abcd")]
    with writing.open() as live, writing_run.open() as live_run:
        fcntl.flock(live, fcntl.LOCK_EX)  # as a still-running export in another process holds it
        fcntl.flock(live_run, fcntl.LOCK_EX)
        request.getfixturevalue("web_app")  # the app starts: create_app() imports the add-ons
    assert not abandoned.exists() and not abandoned_run.exists() and not token_partial.exists()
    assert writing.exists() and writing_run.exists() and just_made.exists() and all(p.exists() for p in not_ours)
    assert finished_export.read_text() == "id\n" and token.read_text() == VALID_TOKEN
    modes = {p.name: stat.S_IMODE(p.stat().st_mode) for p in (exports, finished_export, read_only, token)}
    assert modes == {"exports": 0o700, finished_export.name: 0o600, read_only.name: 0o400, "botify_token": 0o600}
