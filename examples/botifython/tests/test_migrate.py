"""Moving a laptop's data folder into PostgreSQL (scripts/migrate-to-postgres, core/migrate.py): every row, counts
checked, safe to run again, and refused in one line, writing nothing, where it would lose or overwrite data."""
from __future__ import annotations

import re
import subprocess
import sys

import httpx
import psycopg
import pytest

from conftest import TASK_ID, open_page, task_id_of
from tool_forms import EVERY_TYPE, add_tool, run

pytestmark = pytest.mark.postgres

ANSWERS = {"text": "moved", "count": "2", "ratio": "1.5", "day": "2026-01-02", "names": "x"}


def migrate(app_dir, *args: str) -> subprocess.CompletedProcess:
    """What scripts/migrate-to-postgres runs, in .venv's stead this interpreter."""
    return subprocess.run([sys.executable, "-m", "core.migrate", *args], cwd=app_dir, capture_output=True, text=True,
                          timeout=120)


def counts(url: str) -> dict[str, int]:
    with psycopg.connect(url) as conn:
        tables = [name for name, in conn.execute("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")]
        return {name: conn.execute(f'SELECT count(*) FROM "{name}"').fetchone()[0] for name in tables}


@pytest.fixture
def laptop(request, app_dir, database_url, monkeypatch):
    """The app copy used on SQLite, as on a laptop: a second profile, a tool's run with an upload and, where the
    demo's todos are rendered, todos. Returns the run's id."""
    monkeypatch.setenv("DATABASE_URL", "")
    add_tool(app_dir, "every.py", EVERY_TYPE)
    server, client = request.getfixturevalue("server"), request.getfixturevalue("client")
    headers = open_page(client)
    client.post("/profiles", data={"name": "Team"}, headers=headers)
    task_id = task_id_of(run(client, server, headers, "echo", ANSWERS, files={"data": ("in.csv", b"a,b\n1,2\n")}))
    if hasattr(server, "todos"):
        for title in ("first", "second"):
            client.post("/todos", data={"title": title}, headers=headers)
    monkeypatch.setenv("DATABASE_URL", database_url)
    return task_id


def test_a_data_folder_moves_with_its_profiles_runs_uploads_and_add_on_rows(laptop, app_dir, database_url,
                                                                             live_server):
    moved = migrate(app_dir, database_url)
    assert moved.returncode == 0, moved.stderr
    copied = {line.split(":")[0]: line for line in moved.stdout.splitlines()}
    assert "profiles: 2 rows, 2 copied, 0 already there" in copied["profiles"]
    assert "tasks: 1 rows, 1 copied" in copied["tasks"] and copied["done"].startswith("done: serve with")
    before = counts(database_url)
    again = migrate(app_dir, database_url)
    assert again.returncode == 0 and "profiles: 2 rows, 0 copied, 2 already there" in again.stdout
    assert counts(database_url) == before
    with live_server(DATABASE_URL=database_url) as url, httpx.Client(base_url=url) as browser:
        page = browser.get("/").text  # the profile last chosen, Team, as the store table says
        assert '<option value="2" selected>Team</option>' in page
        row = browser.get(f"/tasks/{laptop}").text
        assert f'id="task-{laptop}"' in row and "moved" in row and 'class="task done"' in row
        writes = {"Origin": url, "HX-Request": "true"}
        again = browser.post(f"/tasks/{laptop}/again", headers=writes).text
        assert int(TASK_ID.search(again)[1]) > laptop  # the upload it used is still in the data folder
        if "todos" in before:
            assert re.findall(r'name="title" value="([^"]*)"', browser.get("/todos").text) == ["first", "second"]
        browser.post("/profiles", data={"name": "After"}, headers=writes)  # an id after the copied ones
    with psycopg.connect(database_url) as conn:
        assert [name for name, in conn.execute("SELECT name FROM profiles ORDER BY id")] == ["Default", "Team", "After"]


def test_a_database_holding_other_rows_is_refused_in_one_line_and_nothing_is_written(laptop, app_dir, database_url):
    assert migrate(app_dir, database_url).returncode == 0
    with psycopg.connect(database_url) as conn:
        conn.execute("UPDATE profiles SET name = 'theirs' WHERE name = 'Team'")
        conn.execute("DELETE FROM tasks")
    before = counts(database_url)
    refused = migrate(app_dir, database_url)
    assert refused.returncode == 1 and refused.stdout == ""
    assert refused.stderr.splitlines() == ["migrate-to-postgres: profiles already holds a different row with 2: this "
                                           "database holds other data; copy into an empty database"]
    assert counts(database_url) == before  # the tasks it lacks were not copied either


@pytest.mark.parametrize("args", [[], ["sqlite:///x.db"], ["postgresql://a/b", "extra"]])
def test_a_missing_or_wrong_address_gets_the_usage_line(app_dir, args, monkeypatch):
    monkeypatch.delenv("DATABASE_URL")
    refused = migrate(app_dir, *args)
    assert refused.returncode == 2 and refused.stderr.startswith("usage: scripts/migrate-to-postgres postgresql://")
    assert not (app_dir / "data").exists()


def test_a_table_no_module_defines_is_refused_not_dropped(laptop, app_dir, database_url):
    (db_file,) = (app_dir / "data").glob("*.db")
    subprocess.run([sys.executable, "-c", "import sqlite3, sys; c = sqlite3.connect(sys.argv[1]); "
                    "c.execute('CREATE TABLE notes (body TEXT)'); c.commit()", str(db_file)], check=True)
    refused = migrate(app_dir, database_url)
    assert refused.returncode == 1 and "tables no module defines would be lost: notes" in refused.stderr
    assert counts(database_url) == {}
