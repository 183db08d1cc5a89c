"""Processes a run starts end with it: when it is done, fails, crashes or is cancelled, and when the server is
killed (the next start ends what the dead server's runs left)."""
from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import tempfile
import textwrap
import time
from pathlib import Path

import httpx
import pytest

from tool_runs import LINUX, all_gone, alive, kill_all, one_tool, run, toolbox, notebook

SLEEPERS = '''
    import os
    import subprocess
    from pathlib import Path


    def _sleepers() -> None:
        """Start two sleeps, one in the run's group and one in a session of its own, and note their pids."""
        inside = subprocess.Popen(["sleep", "300"])
        detached = subprocess.Popen(["sleep", "300"], start_new_session=True)
        Path("pids").write_text(f"{os.getpid()} {os.getppid()} {inside.pid} {detached.pid}")
'''


@pytest.mark.skipif(not LINUX, reason="a process that leaves the run's group is found through /proc, on Linux")
@pytest.mark.parametrize("end", ["done", "failed", "crashed", "cancelled"])
def test_every_process_a_tool_starts_ends_with_its_run(app, end):
    tool = one_tool(app, SLEEPERS + '''

    def starts(end: str, report):
        import time

        _sleepers()
        if end == "failed":
            raise RuntimeError("failed")
        if end == "crashed":
            os._exit(3)
        while end == "cancelled":
            report(0, 1, "waiting")
            time.sleep(0.05)
        return "done"
    ''')
    outputs = app / "data" / "outputs" / "1"
    outcome, _ = run(tool, outputs, {"end": end}, cancel_after=0.1 if end == "cancelled" else None)
    pids = [int(pid) for pid in (outputs / "pids").read_text().split()]
    try:
        expected = {"done": "done", "failed": r"RuntimeError: failed \(tool.py:\d+\)",
                    "crashed": "the tool's process exited with code 3", "cancelled": ""}[end]
        assert re.fullmatch(expected, str(outcome)), outcome
        child, _, inside, detached = pids
        assert all_gone([child, inside, detached])
    finally:
        kill_all(pids[2:])


@pytest.mark.skipif(not LINUX, reason="a process that leaves the run's group is found through /proc, on Linux")
def test_reap_leftovers_ends_the_processes_of_a_dead_servers_runs_and_their_kernel_folders(tmp_path):
    outputs = tmp_path / "data" / "outputs"
    (outputs / "7").mkdir(parents=True)
    ours = subprocess.Popen(["sleep", "300"], start_new_session=True,
                            env={**os.environ, toolbox.RUN_MARK: str(outputs / "7")})
    others = subprocess.Popen(["sleep", "300"], start_new_session=True,
                              env={**os.environ, toolbox.RUN_MARK: str(tmp_path / "other" / "outputs" / "7")})
    sockets = Path(tempfile.mkdtemp(prefix="kernel-"))
    toolbox.note_kernel(outputs / "7", str(sockets))
    try:
        toolbox.reap_leftovers(outputs)
        assert ours.wait(10) == -signal.SIGKILL
        assert others.poll() is None  # another app's run
        assert not sockets.exists() and list((outputs / toolbox.KERNELS).iterdir()) == []
    finally:
        others.kill()
        others.wait()
        shutil.rmtree(sockets, ignore_errors=True)


def started_run(browser: httpx.Client, name: str) -> int:
    row = browser.post(f"/tools/{name}").text
    return int(re.search(r'id="task-(\d+)"', row)[1])


def wait_for(path: Path, timeout: float = 60.0) -> str:
    deadline = time.monotonic() + timeout
    while not path.exists() or not path.read_text():
        assert time.monotonic() < deadline, f"{path} never came"
        time.sleep(0.05)
    return path.read_text()


@pytest.mark.skipif(not LINUX, reason="a process that leaves the run's group is found through /proc, on Linux")
def test_after_kill_9_of_the_server_a_restart_ends_what_its_runs_left(live_server, app_dir):
    (app_dir / "tools" / "sleepers.py").write_text(textwrap.dedent(SLEEPERS + '''

    def sleepers():
        import time

        _sleepers()
        time.sleep(300)
    '''))
    notebook(app_dir / "tools" / "kernel.ipynb", "pause = 300",
             "import os, time\nopen('kernel-pid', 'w').write(str(os.getpid()))\ntime.sleep(pause)")
    outputs = app_dir / "data" / "outputs"
    pids = []
    try:
        with live_server() as url, httpx.Client(base_url=url, timeout=30) as browser:
            browser.get("/")
            task = started_run(browser, "sleepers")
            pids[:] = map(int, wait_for(outputs / str(task) / "pids").split())
            child, server = pids[:2]
            started_run(browser, "kernel")
            pids.append(kernel := int(wait_for(app_dir / "tools" / "kernel-pid")))  # a kernel works beside its notebook
            command = Path(f"/proc/{kernel}/cmdline").read_text().split("\0")
            sockets = Path(command[command.index("-f") + 1]).parent  # where its connection file is
            assert sockets.name.startswith("kernel-") and sockets.is_dir()
            cookies = dict(browser.cookies)
            os.kill(server, signal.SIGKILL)
            assert all_gone([child])  # it dies with the server
        assert any(alive(pid) for pid in pids[2:])  # pid 1 has them now: the next start ends them
        with live_server() as url, httpx.Client(base_url=url, cookies=cookies, timeout=30) as browser:
            assert "Interrupted" in browser.get("/").text
            assert all_gone(pids)
            assert not sockets.exists()
    finally:
        kill_all(pids[2:])
