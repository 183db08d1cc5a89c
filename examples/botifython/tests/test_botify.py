"""Botify against a fake Botify API on 127.0.0.1: the card's routes and export runs through the app; what Botify
may send, and the export's files, through direct calls of the botify_export tool (they patch the tool's limits
and clock, which a run in its own process would not see)."""
from __future__ import annotations

import csv
import fcntl
import html
import importlib
import io
import os
import re
import socket
import stat
import sys
import time
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import httpx
import pytest

import fake_botify
from conftest import open_page, receive_until, wait_until
from fake_botify import VALID_TOKEN

OTHER_TOKEN = "ffffffffffffffffffffffffffffffffffff1234"
LISTING = "/v1/analyses/jdoe/site-2/light"
MASKED = "••••f00d"
NOT_CONNECTED = "Not connected to Botify: paste a token on the Botify card first."


@pytest.fixture
def fake(monkeypatch):
    fake, http_server = fake_botify.serve()
    monkeypatch.setenv("BOTIFY_API_BASE", f"{fake.base}/v1")
    monkeypatch.setenv("BOTIFY_RETRY_SECONDS", "0.01")
    fake.analyses["site-2"] = fake_botify.make_analyses("site-2", 11)
    yield fake
    for release in fake.holds.values():
        release.set()
    http_server.shutdown()
    http_server.server_close()


def listing_requests(fake) -> list[str]:
    return [path for path, _ in fake.requests if path.startswith(LISTING)]


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


# --- the tool called directly, as a notebook would: what Botify may send, and the files ---------------------


@pytest.fixture
def app_module(app_dir):
    """Import a module of the app copy by name (``tools.botify_export``), never one left by another test's copy."""
    def ours(name: str) -> bool:
        return name.partition(".")[0] in ("tools", "addons", "toolbox")

    saved = {name: sys.modules.pop(name) for name in [name for name in sys.modules if ours(name)]}
    sys.path.insert(0, str(app_dir))
    yield importlib.import_module
    sys.path.remove(str(app_dir))
    for name in [name for name in sys.modules if ours(name)]:
        del sys.modules[name]
    sys.modules.update(saved)


@pytest.fixture
def botify(app_module):
    """tools/_botify.py of the app copy: the client and checks the tool uses, for patching its limits."""
    return app_module("tools._botify")


class Export:
    """Runs the export tool with the saved token, in a folder of its own as the app does, recording its log."""

    def __init__(self, tool, folder):
        self.tool, self.folder, self.log = tool, folder, []

    def report(self, done: int, total: int, line: str = "") -> None:
        if line:
            self.log.append(line)

    def __call__(self, project: str = "site-2"):
        return self.tool.botify_export(project, report=self.report)

    def rows(self, project: str = "site-2") -> list[dict]:
        with self(project).open(newline="", encoding="utf-8") as f:
            return list(csv.DictReader(f))

    def fails(self, error, message: str) -> None:
        """The export stops with ``message`` and leaves no file, finished or partial."""
        with pytest.raises(error) as raised:
            self()
        assert str(raised.value) == message
        assert list(self.folder.iterdir()) == []


@pytest.fixture
def run_export(app_dir, app_module, botify, fake, tmp_path, monkeypatch):
    tool = app_module("tools.botify_export")
    token = app_dir / "data" / "botify_token"
    token.parent.mkdir(mode=0o700, exist_ok=True)
    token.write_text(VALID_TOKEN)
    folder = tmp_path / "outputs"
    folder.mkdir(mode=0o700)
    monkeypatch.chdir(folder)
    return Export(tool, folder)


def test_the_tool_writes_its_csv_in_the_current_folder(run_export, fake):
    path = run_export()
    assert path.parent == run_export.folder and path.suffix == ".csv"
    assert run_export.log == ["Signed in to Botify as jdoe", *(f"Fetched {n} of 11 analyses" for n in (3, 6, 9, 11))]
    assert len(run_export.rows()) == 11


def test_in_a_notebook_the_tool_prints_its_progress_and_returns_the_file(run_export, capsys):
    path = run_export.tool.botify_export("site-2")
    printed = capsys.readouterr().out
    assert "Signed in to Botify as jdoe" in printed and "Fetched 11 of 11 analyses" in printed
    assert path.parent == run_export.folder and len(list(csv.DictReader(path.open()))) == 11


def test_the_tool_without_a_token_fails_at_once(run_export, botify, app_dir, fake):
    (app_dir / "data" / "botify_token").unlink()
    run_export.fails(botify.BotifyError, NOT_CONNECTED)
    assert fake.requests == []


def test_next_links_off_the_api_host_are_not_followed(run_export, botify, fake):
    fake.next_base = f"http://localhost:{fake.base.rsplit(':', 1)[1]}"
    run_export.fails(botify.BotifyError, f"Botify's next page points outside {fake.base}/v1; stopped.")
    assert listing_requests(fake) == [LISTING]


def test_a_next_link_back_to_the_same_page_stops_with_one_line(run_export, botify, fake):
    page_2 = f"{fake.base}{LISTING}?page=2"
    fake.reshape = lambda page: {**page, "next": page_2} if page["page"] == 2 else page
    run_export.fails(botify.BotifyError,
                     "Botify's next link points back to a page it already sent; stopped after 2 pages.")
    assert listing_requests(fake) == [LISTING, f"{LISTING}?page=2"]


def test_a_next_link_back_to_an_earlier_page_stops_too(run_export, botify, fake):
    fake.reshape = lambda page: {**page, "next": f"{fake.base}{LISTING}"} if page["page"] == 3 else page
    run_export.fails(botify.BotifyError,
                     "Botify's next link points back to a page it already sent; stopped after 3 pages.")
    assert len(listing_requests(fake)) == 3


def test_a_listing_that_never_ends_stops_at_the_page_cap(run_export, botify, fake, monkeypatch):
    monkeypatch.setattr(botify, "MAX_PAGES", 6)
    fake.reshape = lambda page: {**page, "next": f"{fake.base}{LISTING}?page={page['page'] + 1}"}
    run_export.fails(botify.BotifyError, "Botify's listing goes on past 6 pages; stopped.")
    assert len(listing_requests(fake)) == 6


def nested(depth: int) -> bytes:
    return b'{"count": 1, "next": null, "results": ' + b"[" * depth + b"]" * depth + b"}"


@pytest.mark.parametrize("reshape, message", [
    (lambda page: {**page, "results": [1, 2]}, "Botify sent an analysis that is not an object: 1."),
    (lambda page: {**page, "results": ["x"]}, 'Botify sent an analysis that is not an object: "x".'),
    (lambda page: {**page, "results": [None]}, "Botify sent an analysis that is not an object: null."),
    (lambda page: {**page, "results": [[{"id": 1}]]}, 'Botify sent an analysis that is not an object: [{"id": 1}].'),
    (lambda page: {**page, "results": "abc"}, 'Botify sent a page whose results are "abc", not a list.'),
    (lambda page: {**page, "results": {"id": 1}}, 'Botify sent a page whose results are {"id": 1}, not a list.'),
    (lambda page: {key: value for key, value in page.items() if key != "results"},
     "Botify sent a page without a results list."),
    (lambda page: {**page, "count": "11"}, 'Botify sent a count of "11"; expected a whole number, 0 or more.'),
    (lambda page: {**page, "count": -1}, "Botify sent a count of -1; expected a whole number, 0 or more."),
    (lambda page: {**page, "count": 11.5}, "Botify sent a count of 11.5; expected a whole number, 0 or more."),
    (lambda page: {**page, "count": True}, "Botify sent a count of true; expected a whole number, 0 or more."),
    (lambda page: {**page, "count": {"n": 11}},
     'Botify sent a count of {"n": 11}; expected a whole number, 0 or more.'),
    (lambda page: {**page, "next": 2}, "Botify sent a next link that is not a URL: 2."),
    (lambda page: {**page, "results": [{**page["results"][0], "name": {"text": "x"}}]},
     'Botify sent an analysis whose name is {"text": "x"}, not a single value.'),
    (lambda page: {**page, "results": [{**page["results"][0], "status": ["a", "b"]}]},
     'Botify sent an analysis whose status is ["a", "b"], not a single value.'),
    (lambda page: {**page, "results": ["x" * 200]},
     f'Botify sent an analysis that is not an object: "{"x" * 58}….'),
    (lambda page: {**page, "results": ["line\nbreak\u202e"]},
     'Botify sent an analysis that is not an object: "line\\nbreak\\u202e".'),
    (lambda page: [1, 2], "Botify sent something other than a JSON object for /v1/analyses/jdoe/site-2/light: [1, 2]."),
    (lambda page: nested(100_000), "Botify sent JSON nested too deeply to read for /v1/analyses/jdoe/site-2/light."),
])
def test_malformed_pages_fail_saying_what_botify_sent(run_export, botify, fake, reshape, message):
    fake.reshape = reshape
    run_export.fails(botify.BotifyError, message)


@pytest.mark.parametrize("reshape", [
    lambda page: {key: value for key, value in page.items() if key != "count"},
    lambda page: {**page, "count": None},
])
def test_a_missing_count_still_exports_everything(run_export, fake, reshape):
    fake.reshape = reshape
    rows = run_export.rows()
    assert "Fetched 11 of 11 analyses" in run_export.log
    assert [row["slug"] for row in rows] == [a["slug"] for a in fake.analyses["site-2"]]


def test_missing_fields_are_empty_cells(run_export, fake):
    fake.reshape = lambda page: {**page, "results": [{"id": 7}]} if page["page"] == 1 else page
    rows = run_export.rows()
    assert len(rows) == 9 and rows[0] == {column: "7" if column == "id" else "" for column in rows[0]}


def retry_wait(botify, retry_after: str | None) -> float:
    headers = {"Retry-After": retry_after} if retry_after else {}
    return botify.retry_wait(httpx.Response(429, headers=headers), first_step=0.5)


@pytest.mark.parametrize("retry_after, wait", [
    ("2", 2), ("86400", 60), (None, 0.5), ("soon", 0.5), ("Wed, 21 Oct 2015 07:28:00 -0000", 0.5)])
def test_retry_wait_follows_retry_after_within_a_minute(botify, retry_after, wait):
    assert retry_wait(botify, retry_after) == wait


def test_retry_wait_understands_an_http_date(botify):
    in_30s = format_datetime(datetime.now(UTC) + timedelta(seconds=30), usegmt=True)
    assert 25 <= retry_wait(botify, in_30s) <= 30


@pytest.mark.parametrize("break_", ["reset", "hang up", "truncate", "stall"])
def test_a_connection_broken_mid_export_is_retried_and_logged(run_export, botify, fake, monkeypatch, break_):
    if break_ == "stall":  # only here: a short timeout elsewhere could expire on a busy machine and retry more
        monkeypatch.setattr(botify, "TIMEOUT", fake_botify.STALL_SECONDS / 2)
    fake.fail(f"{LISTING}?page=2", break_)
    rows = run_export.rows()
    retries = [line for line in run_export.log if "retrying" in line]
    assert len(retries) == 1 and re.fullmatch(
        r"Botify's connection broke \(\w+\); retrying in 0.01s \(attempt 2 of 5\)", retries[0]), run_export.log
    assert [status for path, status in fake.requests if path == f"{LISTING}?page=2"] == [break_, 200]
    assert [row["slug"] for row in rows] == [a["slug"] for a in fake.analyses["site-2"]]


def test_a_connection_that_keeps_breaking_fails_after_the_last_attempt(run_export, botify, fake):
    fake.fail(f"{LISTING}?page=2", *["reset"] * 5)
    with pytest.raises(botify.BotifyError) as raised:
        run_export()
    assert re.fullmatch(r"Botify's connection broke \(\w+\); gave up after 5 attempts, try again later\.",
                        str(raised.value)), raised.value
    assert len([line for line in run_export.log if "retrying" in line]) == 4
    assert list(run_export.folder.iterdir()) == []


def test_5xx_on_every_attempt_fails_with_one_line(run_export, botify, fake):
    fake.fail(f"{LISTING}?page=2", *[503] * 5)
    run_export.fails(botify.BotifyError,
                     "Botify answered 503 Service Unavailable; gave up after 5 attempts, try again later.")


class FrozenClock(datetime):
    @classmethod
    def now(cls, tz=None):
        return cls(2024, 5, 6, 7, 8, 9, tzinfo=tz)


def test_exports_started_in_the_same_second_get_their_own_files(run_export, fake, monkeypatch):
    monkeypatch.setattr(run_export.tool, "datetime", FrozenClock)
    fake.analyses["site-3"] = fake_botify.make_analyses("site-3", 2)
    paths = [run_export(), run_export(), run_export(), run_export("site-3")]
    assert [path.name for path in paths] == [
        "site-2-analyses-20240506-070809.csv", "site-2-analyses-20240506-070809-2.csv",
        "site-2-analyses-20240506-070809-3.csv", "site-3-analyses-20240506-070809.csv"]
    assert [len(list(csv.DictReader(path.open()))) for path in paths] == [11, 11, 11, 2]
    assert sorted(run_export.folder.iterdir()) == sorted(paths)


def test_exports_are_0600_whatever_the_umask(run_export):
    old = os.umask(0)
    try:
        path = run_export()
    finally:
        os.umask(old)
    assert [stat.S_IMODE(p.stat().st_mode) for p in run_export.folder.iterdir()] == [0o600]
    assert path.exists()


@pytest.mark.parametrize("name", [
    '=HYPERLINK("http://evil.example")', "=1+2", "+1", "-1", "@SUM(A1)", "\tx", "\rx", "\nx", "\t", "\x00x",
    " =1+1", "  @x", "\u00a0=1", '"=1+1', "'=1+1", " '+1", "\r\n=1",
])
def test_formula_like_cells_are_quoted_text_in_a_spreadsheet(run_export, fake, name):
    fake.analyses["site-2"][0]["name"] = name
    assert run_export.rows()[0]["name"] == "'" + name


@pytest.mark.parametrize("name", ["Weekly crawl", " weekly", "crawl = 3", "a-b", "'quoted'", "", "x\ty"])
def test_ordinary_cells_are_left_as_they_are(run_export, fake, name):
    fake.analyses["site-2"][0]["name"] = name
    assert run_export.rows()[0]["name"] == name


def test_every_field_is_quoted_as_owasp_asks(run_export, fake):
    fake.analyses["site-2"][0]["name"] = '=1+2";=1+2'
    fake.analyses["site-2"][1]["name"] = "=1+2'\" ;,=1+2"
    lines = run_export().read_text(encoding="utf-8").splitlines()
    assert lines[0] == '"id","slug","name","status","date_launched","date_finished"'
    assert all(line.startswith('"') and line.endswith('"') for line in lines)
    assert '"\'=1+2"";=1+2"' in lines[1] and '"\'=1+2\'"" ;,=1+2"' in lines[2]


def test_the_export_disarms_cells_with_the_apps_one_escaper_and_numbers_stay_numbers(run_export, botify, app_module,
                                                                                     fake):
    assert botify.spreadsheet_text is app_module("toolbox").spreadsheet_text  # as a DataFrame result's CSV does
    fake.analyses["site-2"][0]["id"] = -3
    fake.analyses["site-2"][1]["name"] = "=cmd|' /C calc'!A0"
    rows = run_export.rows()
    assert (rows[0]["id"], rows[1]["name"]) == ("-3", "'=cmd|' /C calc'!A0")
