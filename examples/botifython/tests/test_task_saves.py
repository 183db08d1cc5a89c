"""Tasks in one server process under stress: a task that reports in a tight loop, bars and rows the database
refuses, saves that are busy or shared, and pages that stall and read again. In-process, with the `server`
fixture's rooms (core.tasks, core.live): no socket, no second process.
"""
from __future__ import annotations

import asyncio
import re
import sys
import time
from types import SimpleNamespace

import pytest

from conftest import COUNT, open_page, receive_until, task_id_of


# --- a task that reports in a tight loop -----------------------------------------------------------------


REPORTS = 100_000


@pytest.fixture
def tight_loop(server, web_app):
    async def tight(report):
        for step in range(1, REPORTS + 1):
            await report(step, REPORTS, f"line {step}")
        return "reported"

    @web_app.post("/test-task/tight")
    def tight_start(req):
        return server.tasks.start_task(req, title="tight loop", fn=tight, params={})


GAP = re.compile(r"… ([\d,]+) lines not shown here")


def test_a_task_reporting_100k_times_sends_few_small_frames_and_loses_no_line(client, server, tight_loop):
    headers = open_page(client)
    with client.websocket_connect(f"/ws?tab={headers['X-Tab']}") as ws:
        task_id = task_id_of(client.post("/test-task/tight", headers=headers).text)
        started = time.monotonic()
        frames = receive_until(ws, f'id="task-{task_id}" class="task done"', timeout=300)
        seconds = time.monotonic() - started
    progress = [f for f in frames if f'id="task-{task_id}-bar"' in f]
    # The first push, one per PUSH_EVERY, the last progress, the final row, and one window for the task
    # having started before the clock did.
    assert len(progress) <= seconds / server.tasks.PUSH_EVERY + 4, (len(progress), seconds)
    shown, skipped = [], 0
    for text in re.findall(r'hx-swap-oob="beforeend">(.*?)</pre>', "".join(progress), re.S):
        lines = text.splitlines()
        if gap := GAP.match(lines[0]):
            skipped += int(gap[1].replace(",", ""))
            lines = lines[1:]
        assert len(lines) <= server.task_rows.TASK_LOG_LINES, "a frame carries more lines than the row shows"
        shown += lines
    steps = [int(line.removeprefix("line ")) for line in shown]
    assert steps == sorted(set(steps)) and steps[-1] == REPORTS, "lines out of order, twice, or the last missing"
    assert len(steps) + skipped == REPORTS, "a line neither shown nor counted as not shown"
    assert f"{REPORTS}/{REPORTS}" in frames[-1]
    task = server.db.tasks[task_id]
    assert (task.status, task.done, task.total) == ("done", REPORTS, REPORTS)
    newest = range(REPORTS - server.task_rows.TASK_LOG_LINES + 1, REPORTS + 1)
    assert task.log.splitlines() == [f"line {step}" for step in newest]
    full = client.get(f"/tasks/{task_id}/log", headers=headers).text.splitlines()
    assert full == [f"line {step}" for step in range(1, REPORTS + 1)]


def test_a_poll_of_a_running_task_does_not_race_its_reports(client, server, tight_loop):
    headers = open_page(client)
    task_id = task_id_of(client.post("/test-task/tight", headers=headers).text)
    counts = []
    while server.tasks.RUNS:
        counts.append(int(COUNT.search(client.get(f"/tasks/{task_id}", headers=headers).text)[1]))
    assert counts == sorted(counts) and server.db.tasks[task_id].done == REPORTS


@pytest.mark.sqlite  # counts the calls into apsw, SQLite's driver
def test_a_save_of_many_tasks_makes_as_many_python_calls_to_the_database_as_a_save_of_one(server, monkeypatch):
    profile_id = server.profiles.current_profile({}).id
    new = dict(profile_id=profile_id, tab="", title="t", status="running", done=0, total=0, log="", result="",
               kind="", params="")
    ids = [server.db.tasks.insert(**new).id for _ in range(50)]
    calls = []

    class Counted:
        """The thread's connection, counting the calls from Python that run SQL."""

        def __init__(self, conn):
            self.conn = conn

        def __getattr__(self, name: str):
            if name in ("execute", "executemany", "cursor"):
                calls.append(name)
            return getattr(self.conn, name)

    database = server.db.db.here()
    monkeypatch.setattr(database, "conn", Counted(database.conn))
    counts = []
    for batch in ([(("running", 1, 3, "a\n", "", ids[0]), 0, ["a"])],
                  [(("running", 2, 3, f"a\nb{i}\n", "", i), 1, [f"b{i}"]) for i in ids],
                  [(("done", 3, 3, f"c{i}\n", "ok", i), 2, [f"c{i}", f"d{i}"]) for i in ids]):
        calls.clear()
        server.tasks.save_tasks(batch)
        counts.append(len(calls))
    monkeypatch.undo()
    assert counts == [4, 4, 4]  # BEGIN, the lines, the rows, COMMIT
    for i in ids:
        task = server.db.tasks[i]
        assert (task.status, task.done, task.total, task.log, task.result) == ("done", 3, 3, f"c{i}\n", "ok")
        lines = server.db.db.execute("SELECT n, line FROM task_lines WHERE task_id = ? ORDER BY n", [i]).fetchall()
        assert lines == ([(0, "a")] if i == ids[0] else []) + [(1, f"b{i}"), (2, f"c{i}"), (3, f"d{i}")]


def launched(server, work):
    """`work(report)` started as a task of no tab, on the running loop; its run."""
    task = server.tasks.new_task(SimpleNamespace(session={}, headers={"x-tab": ""}), title="t")
    server.tasks.launch(task, work)
    return server.tasks.RUNS[task.id]


def run_tasks(server, *works) -> list[int]:
    """Run each `work(report)` as a task on a loop of its own, to the end (a minute at most: a task whose end is
    never saved would otherwise hang the test); their ids."""
    async def main() -> list[int]:
        runs = [launched(server, work) for work in works]
        await asyncio.wait_for(asyncio.gather(*(run.job for run in runs)), 60)
        return [run.task.id for run in runs]

    return asyncio.run(main())


def counting_yields(server, monkeypatch) -> list[float]:
    """The delays of the asyncio.sleep calls the server makes from now on."""
    calls, sleep = [], asyncio.sleep

    def counted(delay, *args):
        calls.append(delay)
        return sleep(delay, *args)

    monkeypatch.setattr(server.tasks.asyncio, "sleep", counted)
    return calls


def test_a_task_reporting_in_a_tight_loop_lets_the_loop_run_between_slices(server, monkeypatch):
    progress, seen = {"done": 0}, []

    async def tight(report):
        for step in range(1, 20_001):
            progress["done"] = step
            await report(step, 20_000)
        return "reported"

    async def watcher(report):
        while progress["done"] < 20_000:
            seen.append(progress["done"])
            await asyncio.sleep(0.001)
        return "watched"

    yields = counting_yields(server, monkeypatch)
    run_tasks(server, tight, watcher)
    assert yields.count(0) >= 2, "a tight loop of reports held the event loop for its whole run"
    assert any(0 < done < 20_000 for done in seen), "another task never ran while the tight loop reported"


@pytest.mark.parametrize("done, total", [("x", 10), (None, 10), (1, "<b>"), (float("nan"), 10), (float("inf"), 10),
                                         ([1], 10), (10**20, 10**20), (1, -2**63 - 1), (2**63, 1)])
def test_a_bar_that_is_not_whole_numbers_fails_its_own_task_in_one_line(server, done, total):
    async def bad(report):
        await report(1, 10, "fine")
        await report(done, total, "never logged")
        return "not reached"

    (task_id,) = run_tasks(server, bad)
    task = server.db.tasks[task_id]
    assert (task.status, task.done, task.total, task.log) == ("failed", 1, 10, "fine\n")
    assert task.result.startswith("Failed: report(done, total) takes whole numbers below 2**63, not ")
    assert "\n" not in task.result and "<b>" not in task.result


def saved_rows(server, ids) -> list[tuple]:
    """The tasks' rows as the database holds them, not the server's memory."""
    return [tuple(server.db.db.execute("SELECT status, done, total, result FROM tasks WHERE id = ?", [i]).fetchone())
            for i in ids]


SAVE_SOON = 0.1  # SAVE_EVERY in the tests below: periodic saves happen while their tasks wait


async def reports_then_waits(report):
    await report(1, 2, "first")
    await asyncio.sleep(3 * SAVE_SOON)
    await report(2, 2, "second")
    return "finished"


def test_a_bar_too_big_for_the_database_fails_its_own_task_and_every_other_is_saved(server, monkeypatch):
    monkeypatch.setattr(server.tasks, "SAVE_EVERY", SAVE_SOON)

    async def huge(report):
        await report(10**20, 10**20, "too big")
        return "never"

    ids = run_tasks(server, reports_then_waits, huge, reports_then_waits)
    rows = saved_rows(server, ids)
    assert [row[:3] for row in rows] == [("done", 2, 2), ("failed", 0, 0), ("done", 2, 2)]
    assert rows[1][3].startswith("Failed: report(done, total) takes whole numbers below 2**63, not ")


REFUSE_A_ROW = {
    "sqlite": ["CREATE TRIGGER refuse BEFORE UPDATE ON tasks WHEN NEW.log LIKE '%refuse me%' "
               "BEGIN SELECT RAISE(ABORT, 'this row is refused'); END"],
    "postgres": ["CREATE FUNCTION refuse() RETURNS trigger LANGUAGE plpgsql AS "
                 "$$ BEGIN RAISE EXCEPTION 'this row is refused'; END $$",
                 "CREATE TRIGGER refuse BEFORE UPDATE ON tasks FOR EACH ROW WHEN (NEW.log LIKE '%refuse me%') "
                 "EXECUTE FUNCTION refuse()"],
}


def test_a_row_the_database_refuses_fails_that_task_alone_and_the_rest_are_saved(server, monkeypatch):
    monkeypatch.setattr(server.tasks, "SAVE_EVERY", SAVE_SOON)
    for sql in REFUSE_A_ROW["postgres" if server.settings.DATABASE_URL else "sqlite"]:
        server.db.db.execute(sql)

    async def refused(report):
        await report(1, 2, "refuse me")
        await asyncio.sleep(5 * SAVE_SOON)
        return "never saved"

    ids = run_tasks(server, reports_then_waits, refused, reports_then_waits)
    rows = saved_rows(server, ids)
    assert [row[:3] for row in rows] == [("done", 2, 2), ("failed", 0, 0), ("done", 2, 2)]
    assert "this row is refused" in rows[1][3] and "\n" not in rows[1][3]


class Page:
    """A tab's socket in memory: it reads while `reading` is set, and keeps what it read."""

    def __init__(self):
        self.frames: list[str] = []
        self.reading = asyncio.Event()
        self.reading.set()

    async def send_text(self, text: str) -> None:
        await self.reading.wait()
        self.frames.append(text)


def test_frames_reach_a_page_that_stalls_and_reads_again_all_and_in_order(server):
    async def main() -> Page:
        page, other = Page(), Page()
        tab = server.live.TABS["stalls"] = server.live.Tab(page)
        server.live.TABS["other"] = server.live.Tab(other)
        tab.report(1, 1, 3, ["one"])
        if sys.version_info >= (3, 12):  # the writer starts eagerly: the frame left within report()
            assert len(page.frames) == 1
        await asyncio.sleep(0)
        assert len(page.frames) == 1 and tab.writer.done(), "the writer did not end once it had sent all"
        page.reading.clear()
        tab.report(1, 2, 3, ["two"])
        tab.report(1, 3, 3, ["three"])
        tab.finish(1, server.tasks.Div("row", id="task-1", hx_swap_oob="true"))
        server.live.TABS["other"].report(2, 1, 1, ["meanwhile"])
        await asyncio.sleep(0.05)
        assert len(page.frames) == 1 and len(other.frames) == 1, "a stalled page held up another page"
        page.reading.set()
        await tab.writer
        return page

    page = asyncio.run(main())
    shown = [re.sub("<[^>]*>", " ", frame).split() for frame in page.frames]  # [count, *log lines] or [row]
    assert [line for frame in shown[:-1] for line in frame[1:]] == ["one", "two", "three"], page.frames
    assert shown[-2][0] == "3/3" and shown[-1] == ["row"], page.frames


def test_tasks_that_end_together_share_their_final_write(server, monkeypatch):
    writes, save_tasks = [], server.tasks.save_tasks
    monkeypatch.setattr(server.tasks, "save_tasks", lambda batch: writes.append(len(batch)) or save_tasks(batch))
    monkeypatch.setattr(server.tasks, "SAVE_EVERY", 3600.0)  # only ends write

    async def short(report):
        await report(1, 1, "only line")
        return "ok"

    ids = run_tasks(server, *[short] * 200)
    assert sum(writes) == 200 and len(writes) <= 3, writes
    assert {(server.db.tasks[i].status, server.db.tasks[i].log) for i in ids} == {("done", "only line\n")}


def test_a_save_refused_as_busy_is_carried_by_the_next_and_loses_no_line(server, monkeypatch):
    refused, save_tasks = [], server.tasks.save_tasks

    def busy_once(batch):
        if not refused:
            refused.append(batch)
            raise server.db.BUSY_ERRORS[0]("database is locked")
        save_tasks(batch)

    monkeypatch.setattr(server.tasks, "save_tasks", busy_once)
    monkeypatch.setattr(server.tasks, "SAVE_EVERY", 0.01)

    async def lines(report):
        for step in range(1, 101):
            await report(step, 100, f"line {step}")
            await asyncio.sleep(0.002)
        return "ok"

    [task_id] = run_tasks(server, lines)
    assert refused, "no save was refused: the test proves nothing"
    task = server.db.tasks[task_id]
    assert (task.status, task.done) == ("done", 100)
    saved = server.db.db.execute("SELECT n, line FROM task_lines WHERE task_id = ? ORDER BY n", [task_id]).fetchall()
    assert saved == [(n, f"line {n + 1}") for n in range(100)]


def test_a_second_cancel_while_the_task_saves_its_end_leaves_nothing_running(server, monkeypatch):
    save_tasks = server.tasks.save_tasks
    monkeypatch.setattr(server.tasks, "save_tasks", lambda batch: time.sleep(0.2) or save_tasks(batch))

    async def forever(report):
        await report(1, 2, "started")
        await asyncio.Event().wait()

    async def main() -> int:
        run = launched(server, forever)
        while run.task.done < 1:
            await asyncio.sleep(0.01)
        run.job.cancel()  # the Cancel button, clicked twice: the second lands while the end is saved
        await asyncio.sleep(0.05)
        run.job.cancel()
        await asyncio.wait([run.job])
        deadline = time.monotonic() + 60
        while server.tasks.RUNS and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        return run.task.id

    task_id = asyncio.run(main())
    assert not server.tasks.RUNS, "the task stayed running in memory"
    assert server.db.tasks[task_id].status == "interrupted"


@pytest.mark.sqlite  # traced by SQLite's own statement hook
def test_starting_a_task_runs_one_insert_and_reads_no_schema(server):
    request = SimpleNamespace(session={}, headers={"x-tab": "a-tab"})
    statements = []
    conn = server.db.db.here().conn
    conn.exec_trace = lambda cursor, sql, bindings: statements.append(sql) or True
    try:
        task = server.tasks.new_task(request, title="t", kind="tool:x", params={"a": 1})
    finally:
        conn.exec_trace = None
    on_tasks = [sql for sql in statements if "tasks" in sql.lower()]
    assert len(on_tasks) == 1 and on_tasks[0].startswith("INSERT INTO tasks"), statements
    assert server.db.tasks[task.id] == task
