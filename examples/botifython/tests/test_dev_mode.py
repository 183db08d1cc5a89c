"""`python server.py` as its author runs it all day: development mode, where editing a tool restarts nothing, and
the small things a server log or a browser notices (a page that closes, the favicon, a port already taken)."""
from __future__ import annotations

import html
import os
import re
import shutil
import socket
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import httpx
from websockets.sync.client import connect

from conftest import ENV_PREFIX

REPO = Path(__file__).resolve().parent.parent

WAITS = '''
import time
from pathlib import Path


def wait_for(flag: str, report):
    report(0, 1, "waiting")
    while not Path(flag).exists():
        time.sleep(0.02)
    return "released"
'''


def up(browser: httpx.Client, timeout: float = 30) -> str:
    """The page, once the server answers: in development mode the reloader listens before its server starts."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            return browser.get("/").text
        except httpx.TransportError:
            assert time.monotonic() < deadline, "the development server never answered"
            time.sleep(0.1)


def ended(browser: httpx.Client, task_id: int, timeout: float = 60) -> str:
    deadline = time.monotonic() + timeout
    while 'class="task running"' in (row := browser.get(f"/tasks/{task_id}").text):
        assert time.monotonic() < deadline, f"task {task_id} did not end"
        time.sleep(0.1)
    return row


def test_editing_tools_or_saving_a_notebook_in_development_mode_restarts_nothing(
        live_server, app_dir, tmp_path):
    (app_dir / "tools" / "waits.py").write_text(textwrap.dedent(WAITS))
    shutil.copytree(REPO / "notebooks", app_dir / "notebooks")
    flag = tmp_path / "go"
    with live_server(**{f"{ENV_PREFIX}_ENV": "dev"}) as url, httpx.Client(base_url=url, timeout=30) as browser:
        up(browser)
        with connect(f"ws://{url.removeprefix('http://')}/live-reload") as reload_socket:
            row = browser.post("/tools/wait_for", data={"flag": str(flag)}).text
            task_id = int(re.search(r'id="task-(\d+)"', row)[1])
            (app_dir / "tools" / "fresh.py").write_text("def fresh_tool(name: str = 'x'):\n    return name\n")
            (app_dir / "tools" / "waits.py").write_text(textwrap.dedent(WAITS) + "\n# edited\n")
            checkpoints = app_dir / "tools" / ".ipynb_checkpoints"
            checkpoints.mkdir()
            (checkpoints / "waits-checkpoint.py").write_text("autosaved = True\n")
            starter = app_dir / "notebooks" / "starter.ipynb"  # JupyterLab's autosave, every few minutes
            starter.write_text(starter.read_text())
            time.sleep(2)  # uvicorn's watcher polls; a restart would have begun by now
            assert "/tools/fresh_tool" in browser.get("/").text
            flag.touch()
            assert 'class="task done"' in ended(browser, task_id)
            reload_socket.ping().wait(5)  # the page's reload socket is still open: the page never reloaded
    log = (app_dir / "server.log").read_text()
    assert "Reloading" not in log and "detected changes" not in log, log[-2000:]
    assert "Traceback" not in log, log[-3000:]


def test_a_page_that_closes_logs_nothing_and_the_favicon_is_there(live_server, app_dir):
    with live_server(**{f"{ENV_PREFIX}_ENV": "dev"}) as url, httpx.Client(base_url=url) as browser:
        page = up(browser)
        assert 'rel="icon" href="/static/favicon.svg"' in page
        icon = browser.get("/favicon.ico")
        assert icon.status_code == 200 and icon.headers["content-type"].startswith("image/svg+xml")
        for _ in range(3):  # each page change closes the page's reload socket
            with connect(f"ws://{url.removeprefix('http://')}/live-reload"):
                pass
        time.sleep(0.5)
    log = (app_dir / "server.log").read_text()
    assert "Traceback" not in log and "/favicon.ico HTTP/1.1\" 404" not in log, log[-3000:]


def test_a_port_already_taken_gets_one_line_naming_it_and_PORT(app_dir):
    with socket.create_server(("127.0.0.1", 0)) as taken:
        port = taken.getsockname()[1]
        env = {**os.environ, "HOST": "127.0.0.1", "PORT": str(port), f"{ENV_PREFIX}_ENV": "prod"}
        result = subprocess.run([sys.executable, "server.py"], cwd=app_dir, env=env, capture_output=True, text=True,
                                timeout=60)
    assert result.returncode == 1 and "Traceback" not in result.stderr
    (line,) = result.stderr.strip().splitlines()
    assert f"port {port}" in line and f"PORT={port + 1}" in line


def test_a_module_that_is_not_installed_names_the_command_that_adds_it(client, app_dir, monkeypatch):
    (app_dir / "tools" / "needs.py").write_text("import not_installed_here.sub\n\n\ndef needs():\n    return 1\n")
    (app_dir / "tools" / "later.py").write_text("def later():\n    import also_missing\n")
    monkeypatch.delenv("IN_NIX_SHELL", raising=False)
    page = html.unescape(client.get("/").text)
    assert "needs.py:1: ModuleNotFoundError: No module named 'not_installed_here'; add it with: " \
           "./scripts/deps add not_installed_here" in page
    row = client.post("/tools/later", headers={"X-Tab": "t"}).text
    task_id = int(re.search(r'id="task-(\d+)"', row)[1])
    deadline = time.monotonic() + 60
    while 'class="task running"' in (row := client.get(f"/tasks/{task_id}").text):
        assert time.monotonic() < deadline
        time.sleep(0.1)
    assert "add it with: ./scripts/deps add also_missing" in row
