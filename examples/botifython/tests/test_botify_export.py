"""The botify_export tool called directly, as a notebook would, against a fake Botify API on 127.0.0.1: what
Botify may send, and the export's files. Direct calls, because these tests patch the tool's limits and clock,
which a run in its own process would not see."""
from __future__ import annotations

import csv
import importlib
import os
import re
import stat
import sys
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import httpx
import pytest

import fake_botify
from fake_botify import LISTING, NOT_CONNECTED, VALID_TOKEN, fake, listing_requests  # noqa: F401 (fake: a fixture)


# --- the tool called directly, as a notebook would: what Botify may send, and the files ---------------------


@pytest.fixture
def app_module(app_dir):
    """Import a module of the app copy by name (``tools.botify_export``), never one left by another test's copy."""
    def ours(name: str) -> bool:
        return name.partition(".")[0] in ("settings", "tools", "addons", "toolbox")

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
