"""The Botify layer through the app's routes, against a fake Botify API on 127.0.0.1."""
from __future__ import annotations

import asyncio
import csv
import fcntl
import html
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
    disposition, text = download_text(client, task)
    return disposition, list(csv.DictReader(io.StringIO(text, newline="")))


def download_text(client, task) -> tuple[str, str]:
    assert task.status == "done", task.result
    href = re.search(r'href="(/botify/exports/[^"]+)"', task.result)[1]
    response = client.get(href)
    assert response.status_code == 200
    return response.headers["content-disposition"], response.text


def failed_with(client, server, task_id: int, message: str) -> None:
    """The task failed with ``message`` on one line, and left no export, finished or partial."""
    task = finished(client, server, task_id)
    assert task.status == "failed"
    assert html.unescape(task.result) == f"Failed: {message}"
    exports = server.DATA / "exports"
    assert not exports.exists() or not any(exports.iterdir())


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


# --- what Botify sends: pagination, shapes, broken connections ---------------------------------------------


def test_a_next_link_back_to_the_same_page_stops_with_one_line(client, server, fake, tab, connected):
    page_2 = f"{fake.base}{LISTING}?page=2"
    fake.reshape = lambda page: {**page, "next": page_2} if page["page"] == 2 else page
    failed_with(client, server, export(client, tab),
                "Botify's next link points back to a page it already sent; stopped after 2 pages.")
    assert [path for path, _ in fake.requests if path.startswith(LISTING)] == [LISTING, f"{LISTING}?page=2"]


def test_a_next_link_back_to_an_earlier_page_stops_too(client, server, fake, tab, connected):
    fake.reshape = lambda page: {**page, "next": f"{fake.base}{LISTING}"} if page["page"] == 3 else page
    failed_with(client, server, export(client, tab),
                "Botify's next link points back to a page it already sent; stopped after 3 pages.")
    assert len([path for path, _ in fake.requests if path.startswith(LISTING)]) == 3


def test_a_listing_that_never_ends_stops_at_the_page_cap(client, server, fake, tab, connected, monkeypatch):
    monkeypatch.setattr(server.botify, "MAX_PAGES", 6)
    fake.reshape = lambda page: {**page, "next": f"{fake.base}{LISTING}?page={page['page'] + 1}"}
    failed_with(client, server, export(client, tab), "Botify's listing goes on past 6 pages; stopped.")
    assert len([path for path, _ in fake.requests if path.startswith(LISTING)]) == 6


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
def test_malformed_pages_fail_saying_what_botify_sent(client, server, fake, tab, connected, reshape, message):
    fake.reshape = reshape
    failed_with(client, server, export(client, tab), message)


@pytest.mark.parametrize("reshape", [
    lambda page: {key: value for key, value in page.items() if key != "count"},
    lambda page: {**page, "count": None},
])
def test_a_missing_count_still_exports_everything(client, server, fake, tab, connected, reshape):
    fake.reshape = reshape
    task = finished(client, server, export(client, tab))
    assert "Fetched 11 of 11 analyses" in task.log
    assert [row["slug"] for row in download(client, task)[1]] == [a["slug"] for a in fake.analyses["site-2"]]


def test_missing_fields_are_empty_cells(client, server, fake, tab, connected):
    fake.reshape = lambda page: {**page, "results": [{"id": 7}]} if page["page"] == 1 else page
    _, rows = download(client, finished(client, server, export(client, tab)))
    assert len(rows) == 9 and rows[0] == {column: "7" if column == "id" else "" for column in rows[0]}


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
    assert not (server.DATA / "botify_token").exists()


@pytest.mark.parametrize("break_", ["reset", "hang up", "truncate", "stall"])
def test_a_connection_broken_mid_export_is_retried_and_logged(client, server, fake, tab, connected, monkeypatch,
                                                               break_):
    if break_ == "stall":  # only here: a short timeout elsewhere could expire on a busy machine and retry more
        monkeypatch.setattr(server.botify, "TIMEOUT", fake_botify.STALL_SECONDS / 2)
    fake.fail(f"{LISTING}?page=2", break_)
    task = finished(client, server, export(client, tab))
    assert task.status == "done", task.result
    assert re.search(r"Botify's connection broke \(\w+\); retrying in 0.01s \(attempt 2 of 5\)", task.log), task.log
    assert [status for path, status in fake.requests if path == f"{LISTING}?page=2"] == [break_, 200]
    assert [row["slug"] for row in download(client, task)[1]] == [a["slug"] for a in fake.analyses["site-2"]]


def test_a_connection_that_keeps_breaking_fails_after_the_last_attempt(client, server, fake, tab, connected):
    fake.fail(f"{LISTING}?page=2", *["reset"] * 5)
    task = finished(client, server, export(client, tab))
    assert task.status == "failed"
    assert re.fullmatch(r"Failed: Botify's connection broke \(\w+\); gave up after 5 attempts, try again later\.",
                        html.unescape(task.result)), task.result
    assert task.log.count("retrying") == 4
    assert not any((server.DATA / "exports").iterdir())


def test_5xx_on_every_attempt_fails_with_one_line(client, server, fake, tab, connected):
    fake.fail(f"{LISTING}?page=2", *[503] * 5)
    failed_with(client, server, export(client, tab),
                "Botify answered 503 Service Unavailable; gave up after 5 attempts, try again later.")


# --- export files ---------------------------------------------------------------------------------------------


class FrozenClock(datetime):
    @classmethod
    def now(cls, tz=None):
        return cls(2024, 5, 6, 7, 8, 9, tzinfo=tz)


def test_exports_started_in_the_same_second_get_their_own_files(client, server, fake, tab, connected, monkeypatch):
    monkeypatch.setattr(server.botify, "datetime", FrozenClock)
    fake.analyses["site-3"] = fake_botify.make_analyses("site-3", 2)
    task_ids = [export(client, tab), export(client, tab), export(client, tab), export(client, tab, "site-3")]
    tasks = [finished(client, server, task_id) for task_id in task_ids]
    names = [re.search(r'download="([^"]+)"', task.result)[1] for task in tasks]
    assert sorted(names[:3]) == ["site-2-analyses-20240506-070809-2.csv", "site-2-analyses-20240506-070809-3.csv",
                                 "site-2-analyses-20240506-070809.csv"]
    assert names[3] == "site-3-analyses-20240506-070809.csv"
    assert [len(download(client, task)[1]) for task in tasks] == [11, 11, 11, 2]
    assert sorted(p.name for p in (server.DATA / "exports").iterdir()) == sorted(names)


def test_a_long_project_name_still_makes_a_valid_file_name(client, server, fake, tab, connected):
    project = "p" * 300
    fake.analyses[project] = fake_botify.make_analyses(project, 1)
    task = finished(client, server, export(client, tab, project))
    name = re.search(r'download="([^"]+)"', task.result)[1]
    assert len(name) < 120 and len(download(client, task)[1]) == 1


def test_exports_are_0600_in_a_0700_folder_whatever_the_umask(client, server, fake, tab, connected):
    old = os.umask(0)
    try:
        task = finished(client, server, export(client, tab))
    finally:
        os.umask(old)
    exports = server.DATA / "exports"
    assert task.status == "done"
    assert stat.S_IMODE(exports.stat().st_mode) == 0o700
    assert [stat.S_IMODE(p.stat().st_mode) for p in exports.iterdir()] == [0o600]


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
    abandoned = old_file(exports / ".site-2-analyses-20240101-000000.csv.0123abcd")
    token_partial = old_file(data / ".botify_token.89abcdef", VALID_TOKEN)
    writing = old_file(exports / ".site-2-analyses-20240101-000001.csv.fedcba98")
    just_made = exports / ".site-2-analyses-20240101-000002.csv.01234567"
    just_made.write_text("")
    finished_export = old_file(exports / "site-2-analyses-20240101-000000.csv", "id\n", mode=0o644)
    read_only = old_file(exports / "site-2-analyses-20240101-000003.csv", "id\n", mode=0o400)
    token = old_file(data / "botify_token", VALID_TOKEN, mode=0o644)
    not_ours = old_file(data / ".other.0123abcd")
    with writing.open() as live:
        fcntl.flock(live, fcntl.LOCK_EX)  # as a still-running export in another server process holds it
        request.getfixturevalue("server")
    assert not abandoned.exists() and not token_partial.exists()
    assert writing.exists() and just_made.exists() and not_ours.exists()
    assert finished_export.read_text() == "id\n" and token.read_text() == VALID_TOKEN
    modes = {p.name: stat.S_IMODE(p.stat().st_mode) for p in (exports, finished_export, read_only, token)}
    assert modes == {"exports": 0o700, finished_export.name: 0o600, read_only.name: 0o400, "botify_token": 0o600}


@pytest.mark.parametrize("name", [
    "=1+2", "+1", "-1", "@SUM(A1)", "\tx", "\rx", "\nx", "\t", "\x00x",
    " =1+1", "  @x", "\u00a0=1", '"=1+1', "'=1+1", " '+1", "\r\n=1",
])
def test_formula_like_cells_are_quoted_text_in_a_spreadsheet(client, server, fake, tab, connected, name):
    fake.analyses["site-2"][0]["name"] = name
    _, text = download_text(client, finished(client, server, export(client, tab)))
    assert next(csv.DictReader(io.StringIO(text, newline="")))["name"] == "'" + name


@pytest.mark.parametrize("name", ["Weekly crawl", " weekly", "crawl = 3", "a-b", "'quoted'", "", "x\ty"])
def test_ordinary_cells_are_left_as_they_are(client, server, fake, tab, connected, name):
    fake.analyses["site-2"][0]["name"] = name
    _, rows = download(client, finished(client, server, export(client, tab)))
    assert rows[0]["name"] == name


def test_every_field_is_quoted_as_owasp_asks(client, server, fake, tab, connected):
    fake.analyses["site-2"][0]["name"] = '=1+2";=1+2'
    fake.analyses["site-2"][1]["name"] = "=1+2'\" ;,=1+2"
    _, text = download_text(client, finished(client, server, export(client, tab)))
    lines = text.splitlines()
    assert lines[0] == '"id","slug","name","status","date_launched","date_finished"'
    assert all(line.startswith('"') and line.endswith('"') for line in lines)
    assert '"\'=1+2"";=1+2"' in lines[1] and '"\'=1+2\'"" ;,=1+2"' in lines[2]
