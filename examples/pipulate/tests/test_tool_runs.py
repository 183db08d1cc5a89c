"""toolbox's runner called directly: a tool in its child process, its progress, priority, failures and Cancel;
and tools.record(), which puts a notebook's run in the app's task history."""
import asyncio
import datetime
import json
import logging
import os
import sys
from pathlib import Path

import pytest

from tool_runs import TOOL_NICE, TOOL_SESSION, cancel_after_first_report, one_tool, run_reporting, toolbox, write


def test_a_sync_tool_runs_in_a_child_with_its_cwd_in_outputs_and_streams_its_progress(app):
    tool = one_tool(app, '''
        import os
        from pathlib import Path


        def count(words: list[str], report):
            for n, word in enumerate(words, 1):
                report(n, len(words), f"counted {word}")
            print("printed <too>")
            Path("out.txt").write_text(str(os.getpid()))
            return f"{len(words)} words"
    ''')
    result, reports = run_reporting(tool, {"words": ["a", "b", "c"]})
    assert result == "3 words"
    assert [line for _, _, line in reports] == ["counted a", "counted b", "counted c", "printed <too>"]
    assert reports[-1][:2] == (3, 3)
    child = int((app / "data" / "outputs" / "1" / "out.txt").read_text())
    assert child != os.getpid()
    assert oct((app / "data" / "outputs" / "1").stat().st_mode & 0o777) == "0o700"


def test_a_tool_runs_at_a_lower_cpu_priority_than_the_server_and_so_does_its_session(app):
    tool = one_tool(app, '''
        import os
        from pathlib import Path


        def niceness() -> str:
            group = Path("/proc/self/autogroup")
            session = group.read_text().split()[-1] if group.exists() else "-"
            return f"{os.nice(0)} {os.getsid(0) == os.getpid()} {session}"
    ''')
    result, _ = run_reporting(tool, {})
    assert result == f"{TOOL_NICE} True {TOOL_SESSION}"
    assert TOOL_NICE > os.nice(0)


def test_the_bar_is_coalesced_in_the_child_but_every_line_arrives_in_order(app):
    tool = one_tool(app, '''
        def busy(report):
            for n in range(1, 100_001):
                report(n, 100_000, f"line {n}" if n % 100 == 0 else "")
    ''')
    result, reports = run_reporting(tool)
    assert result == "Done."
    assert [line for _, _, line in reports if line] == [f"line {n}" for n in range(100, 100_001, 100)]
    assert len(reports) < 2_000  # one call per line at most, plus one per batch without lines
    assert reports[-1][:2] == (100_000, 100_000)


def test_a_bar_that_does_not_move_is_sent_once(app):
    tool = one_tool(app, '''
        import time


        def still(report):
            end = time.monotonic() + 1  # twenty of the child's sending rounds
            while time.monotonic() < end:
                report(1, 2)
            report(2, 2, "last")
    ''')
    result, reports = run_reporting(tool, {})
    assert result == "Done."
    assert reports == [(1, 2, ""), (2, 2, "last")]


def test_a_busy_sync_tool_leaves_the_event_loop_free(app):
    tool = one_tool(app, '''
        import time
        from pathlib import Path


        def spin(report):
            report(0, 1, "spinning")
            deadline = time.monotonic() + 60
            while not Path("go").exists() and time.monotonic() < deadline:
                pass  # busy, holding this process's GIL, until the event loop (in the parent) writes "go"
            return "released" if Path("go").exists() else "the event loop never ran"
    ''')
    outputs = app / "data" / "outputs" / "8"

    async def main():
        started = asyncio.Event()

        async def report(done, total, line=""):
            started.set()

        job = asyncio.create_task(toolbox.run_tool(tool, {}, report=report, outputs=outputs,
                                                   download_url=lambda name: name))
        await started.wait()
        (outputs / "go").touch()
        return await job
    assert asyncio.run(main()) == "released"


def test_an_async_tool_awaits_its_reports(app):
    tool = one_tool(app, '''
        import asyncio


        async def wait(times: int, report):
            for n in range(times):
                await asyncio.sleep(0)
                await report(n + 1, times)
            return {"waited": times}
    ''')
    result, reports = run_reporting(tool, {"times": 4})
    assert result == '<pre>{\n  &quot;waited&quot;: 4\n}</pre>'
    assert reports[-1] == (4, 4, "")


def test_a_failing_tool_names_the_error_and_its_own_line_and_logs_the_traceback(app, caplog):
    tool = one_tool(app, '''
        def _lookup(row):
            return row["country"]


        def sales(data: str = ""):
            return _lookup({})
    ''', "sales.py")
    with caplog.at_level(logging.ERROR, logger="toolbox"):
        error, _ = run_reporting(tool)
    assert isinstance(error, toolbox.ToolFailed)
    assert str(error) == "KeyError: 'country' (sales.py:3)"
    assert 'in _lookup\n    return row["country"]' in caplog.text


def test_a_tool_whose_process_dies_fails_with_its_exit_code(app):
    tool = one_tool(app, "import os\n\n\ndef die():\n    os._exit(3)\n")
    error, _ = run_reporting(tool)
    assert isinstance(error, toolbox.ToolFailed)
    assert str(error) == "the tool's process exited with code 3"


def test_cancel_raises_cancelled_at_the_next_report_of_a_sync_tool(app):
    tool = one_tool(app, '''
        import time
        from pathlib import Path

        import toolbox


        def forever(report):
            try:
                while True:
                    report(0, 1, "working")
                    time.sleep(0.01)
            except toolbox.Cancelled:
                Path("cancelled").write_text("yes")
                raise
    ''')
    outputs = app / "data" / "outputs" / "2"
    assert isinstance(cancel_after_first_report(tool, outputs), asyncio.CancelledError)
    assert (outputs / "cancelled").read_text() == "yes"


def test_cancel_kills_a_tool_that_never_reports_again_after_the_grace(app, monkeypatch):
    monkeypatch.setattr(toolbox.runner, "CANCEL_GRACE", 0.3)
    tool = one_tool(app, '''
        import os
        import time
        from pathlib import Path


        def stuck(report):
            Path("pid").write_text(str(os.getpid()))
            report(0, 1)
            while True:
                time.sleep(1)
    ''')
    outputs = app / "data" / "outputs" / "3"
    assert isinstance(cancel_after_first_report(tool, outputs), asyncio.CancelledError)
    with pytest.raises(ProcessLookupError):  # killed and reaped
        os.kill(int((outputs / "pid").read_text()), 0)


@pytest.fixture
def tools_package(app_dir: Path, monkeypatch: pytest.MonkeyPatch):
    """The tools package of the app copy the server fixture imports, imported as a notebook imports it."""
    monkeypatch.syspath_prepend(str(app_dir))
    for name in [name for name in sys.modules if name in ("tools", "settings") or name.startswith("tools.")]:
        monkeypatch.delitem(sys.modules, name)
    import tools
    return tools


def test_record_awaits_an_async_tool(app_dir, tools_package, server):
    server.db.profiles.insert(name="Default")
    write(app_dir, "waits.py", '''
        async def waits(times: int, report):
            for n in range(times):
                await report(n + 1, times, f"waited {n + 1}")
            return times
    ''')
    from tools.waits import waits

    assert asyncio.run(tools_package.record(waits, times=2)) == 2
    task, = server.db.tasks()
    assert (task.status, task.done, task.total, task.log, task.result) == ("done", 2, 2, "waited 1\nwaited 2\n", "2")


@pytest.mark.sqlite  # PostgreSQL's database is made before the app starts
def test_record_without_the_app_database_says_to_start_the_app_and_runs_nothing(app_dir, tools_package):
    ran = []
    with pytest.raises(FileNotFoundError, match=r"does not exist yet: start the app once with ./scripts/run first"):
        tools_package.record(lambda: ran.append(1))
    assert ran == [] and not (app_dir / "data").exists()


def test_record_stores_a_finished_task_the_app_shows_for_the_profile_last_chosen(app_dir, tools_package, server,
                                                                                 client, capsys):
    server.db.profiles.insert(name="Default")
    server.db.store["profile_id"] = work = server.db.profiles.insert(name="Work").id
    write(app_dir, "sales.py", '''
        import datetime


        def sales(country: str, since: datetime.date, report=None):
            report(1, 2, "read <rows>")
            report(2, 2, "summed")
            return {"country": country}


        def missing():
            return {}["country"]
    ''')
    from tools.sales import missing, sales

    assert tools_package.record(sales, country="fr", since=datetime.date(2024, 5, 1)) == {"country": "fr"}
    assert "read <rows>\n" in capsys.readouterr().out
    with pytest.raises(KeyError):
        tools_package.record(missing)
    done, failed = server.db.tasks(order_by="id")
    assert (done.profile_id, done.title, done.status, done.done, done.total, done.kind, json.loads(done.params)) == (
        work, "Sales", "done", 2, 2, "tool:sales", {"country": "fr", "since": "2024-05-01"})
    assert (failed.status, failed.result) == ("failed", "Failed: KeyError: &#x27;country&#x27; (sales.py:12)")
    row = client.get(f"/tasks/{done.id}").text
    assert f'id="task-{done.id}"' in row and 'class="task done"' in row
    assert "read &lt;rows&gt;\nsummed" in row and "<pre>{\n  &quot;country&quot;: &quot;fr&quot;\n}</pre>" in row
    assert client.get(f"/tasks/{done.id}/log").text == "read <rows>\nsummed\n"
