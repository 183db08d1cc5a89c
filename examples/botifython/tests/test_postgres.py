"""PostgreSQL as a team server meets it: connections the server drops, text SQLite holds and PostgreSQL cannot,
many threads at the first use of a fresh database, and writers queued behind another program's lock."""
from __future__ import annotations

import asyncio
import re
import time
from concurrent.futures import ThreadPoolExecutor
from types import SimpleNamespace

import psycopg
import pytest

from conftest import LocalClient, open_page, write_lock

pytestmark = pytest.mark.postgres


def drop_connections(url: str) -> int:
    """What a database restart or a failover does to the app: every connection of its database is closed."""
    with psycopg.connect(url, autocommit=True) as conn:
        return len(conn.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                                "WHERE datname = current_database() AND pid <> pg_backend_pid()").fetchall())


def test_a_task_goes_on_through_connections_the_server_drops(server, database_url, monkeypatch):
    monkeypatch.setattr(server.tasks, "SAVE_EVERY", 0.05)

    async def steps(report):
        await report(1, 3, "step 1")
        await asyncio.sleep(0.3)  # saved by now, through pooled connections
        assert await asyncio.to_thread(drop_connections, database_url) >= 1
        await report(2, 3, "step 2")
        await asyncio.sleep(0.3)  # the next save finds those connections gone
        await report(3, 3, "step 3")
        return "whole"

    async def main() -> int:
        task = server.tasks.new_task(SimpleNamespace(session={}, headers={"x-tab": ""}), title="t")
        server.tasks.launch(task, steps)
        await asyncio.wait_for(server.tasks.RUNS[task.id].job, 60)
        return task.id

    row = server.db.tasks[asyncio.run(main())]
    assert (row.status, row.done, row.log, row.result) == ("done", 3, "step 1\nstep 2\nstep 3\n", "whole"), row


def test_pages_answer_after_the_server_drops_every_connection(client, database_url):
    assert client.get("/").status_code == 200
    assert drop_connections(database_url) >= 1
    assert [client.get("/").status_code for _ in range(3)] == [200] * 3


def test_a_nul_that_sqlite_would_hold_is_kept_as_a_replacement_character(server, client, me):
    headers, profile = me
    added = client.post("/profiles", data={"name": "a\x00b"}, headers=headers)
    assert added.status_code == 200 and "a\ufffdb" in added.text
    task_id = server.db.tasks.insert(profile_id=profile).id
    server.tasks.save_tasks([(("done", 1, 1, "x", "ok", task_id), 0, ["header PK\x03\x04\x00\x00", "next"])])
    lines = [line for line, in server.db.db.execute("SELECT line FROM task_lines ORDER BY n")]
    assert lines == ["header PK\x03\x04\ufffd\ufffd", "next"]


def test_threads_that_start_together_on_a_fresh_database_all_find_the_tables(server):
    def first_read(_):
        return server.db.tasks(limit=1)

    with ThreadPoolExecutor(40) as pool:
        assert list(pool.map(first_read, range(40))) == [[]] * 40


def test_a_first_use_that_fails_is_tried_again(server, database_url, monkeypatch):
    monkeypatch.setattr(server.db.backend, "BUSY_TIMEOUT", 0.2)
    with psycopg.connect(database_url) as holder:
        holder.execute("SELECT pg_advisory_xact_lock(%s)", [server.db.SCHEMA_KEY])  # another process making them
        with pytest.raises(server.db.BUSY_ERRORS):
            server.db.profiles(limit=1)
    assert server.db.profiles(limit=1) == []


def test_reads_do_not_wait_behind_writers_queued_on_another_programs_lock(server, monkeypatch):
    with LocalClient(server.create_app()) as client:
        headers = open_page(client)
        with write_lock(server), ThreadPoolExecutor(12) as writers:
            queued = [writers.submit(client.post, "/todos", data={"title": f"t{i}"}, headers=headers)
                      for i in range(12)] if hasattr(server, "todos") else \
                [writers.submit(client.post, "/profiles", data={"name": f"p{i}"}, headers=headers) for i in range(12)]
            time.sleep(0.5)
            started = time.perf_counter()
            page = client.get("/")
            waited = time.perf_counter() - started
            assert page.status_code == 200 and waited < 2, waited  # BUSY_TIMEOUT is 5 s
        assert {future.result().status_code for future in queued} <= {200, 503}


def test_an_id_given_by_hand_moves_the_next_ones_on_as_on_sqlite(server):
    server.db.profiles.insert(id=40, name="by hand")
    assert server.db.profiles.insert(name="next").id == 41


def test_ids_of_rows_deleted_before_the_move_are_never_given_again(server, app_dir, database_url, monkeypatch,
                                                                   request):
    """SQLite remembers the highest id AUTOINCREMENT gave out; a move into PostgreSQL keeps it."""
    import subprocess
    import sys

    monkeypatch.setenv("DATABASE_URL", "")
    subprocess.run([sys.executable, "-c", "import core.db as d; d.db.execute('SELECT 1');"
                    "[d.profiles.insert(name=f'p{i}') for i in range(3)]; d.profiles.delete(3)"],
                   cwd=app_dir, check=True)
    moved = subprocess.run([sys.executable, "-m", "core.migrate", database_url], cwd=app_dir, capture_output=True,
                           text=True)
    assert moved.returncode == 0, moved.stderr
    assert server.db.profiles.insert(name="new").id == 4
    server.db.profiles.delete(4)
    assert subprocess.run([sys.executable, "-m", "core.migrate", database_url], cwd=app_dir).returncode == 0
    assert server.db.profiles.insert(name="newer").id == 5  # running it again never moves them back
    assert re.fullmatch(r"p\d", server.db.profiles[1].name)


def test_a_value_postgresql_would_change_is_refused_and_nothing_is_kept(app_dir, database_url, monkeypatch):
    import subprocess
    import sys

    monkeypatch.setenv("DATABASE_URL", "")
    subprocess.run([sys.executable, "-c", "import core.db as d; d.db.execute('SELECT 1');"
                    "d.db.execute(\"INSERT INTO tasks (profile_id, title, done) VALUES (1, 't', 2.5)\")"],
                   cwd=app_dir, check=True)
    refused = subprocess.run([sys.executable, "-m", "core.migrate", database_url], cwd=app_dir,
                             capture_output=True, text=True)
    assert refused.returncode == 1 and refused.stderr.splitlines() == [
        "migrate-to-postgres: tasks reads back from PostgreSQL unlike SQLite held it (a value its column's type "
        "changes, such as 2.5 in a whole-number column); nothing was kept"]
    with psycopg.connect(database_url) as conn:
        assert conn.execute("SELECT count(*) FROM tasks").fetchone()[0] == 0


def test_a_second_server_on_the_database_leaves_the_first_ones_runs_running(live_server, app_dir, tmp_path):
    """Two servers, data folders of their own, one database: the second starting must not call the first one's run
    interrupted. (On SQLite the database is in the data folder, which one server owns.)"""
    import httpx

    from conftest import query, task_id_of
    from tool_forms import WAITING, add_tool

    add_tool(app_dir, "waiting.py", WAITING)
    flag = tmp_path / "go"
    with live_server() as first, httpx.Client(base_url=first, headers={"Origin": first}) as browser:
        browser.get("/")
        run = task_id_of(browser.post("/tools/wait_for", data={"flag": str(flag)}, headers={"HX-Request": "true"}).text)
        with live_server(DATA_DIR=str(tmp_path / "second")) as second:
            assert httpx.get(second + "/").status_code == 200  # started, its start-up done
            assert query(app_dir, "SELECT status FROM tasks WHERE id = ?", [run]) == [("running",)]
        flag.touch()
        for _ in range(300):
            if query(app_dir, "SELECT status FROM tasks WHERE id = ?", [run]) == [("done",)]:
                break
            time.sleep(0.05)
        assert query(app_dir, "SELECT status, result FROM tasks WHERE id = ?", [run]) == [("done", "released")]
