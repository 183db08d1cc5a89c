"""Fixtures for the web app's tests.

Each test gets its own copy of the app in a temporary folder, so it starts from an empty data/ and never
touches yours. `server` imports that copy in-process (Starlette TestClient); `live_server` runs it as a real
`python server.py` on 127.0.0.1 and stops it afterwards. An add-on's fake outside service (the chat's fake Ollama)
comes as a plugin beside the add-on's tests, in PLUGINS.
"""
from __future__ import annotations

import asyncio
import contextlib
import gc
import importlib
import json
import os
import re
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path
from types import SimpleNamespace
from urllib.parse import urljoin

import anyio
import pytest
from starlette.testclient import TestClient

REPO = Path(__file__).resolve().parent.parent
# postgres: `pytest --postgres`; tool_runs: the `app` (a toolbox and tools/ without the app) and `umask` fixtures;
# wire: `app_server`; fake_oidc: a sign-in provider, `fake`; then the fakes of outside services that the add-ons
# rendered here talk to, each with its own fixtures.
PLUGINS = ["postgres", "tool_runs", "wire", "fake_oidc", "fake_ollama"]
pytest_plugins = [name for name in PLUGINS if (Path(__file__).parent / f"{name}.py").exists()]
ENV_PREFIX = "PIPULATE"
LISTENING = re.compile(r"Uvicorn running on (\S+)")


# Settings your shell may hold: they would point a test's app at your own data, or put it behind sign-in.
# (DATABASE_URL is the postgres plugin's: a database of the test's own under --postgres, else none.)
SHELL_SETTINGS = ("DATA_DIR", "ENV_FILE", "OIDC_ISSUER", "OIDC_CLIENT_ID", "OIDC_CLIENT_SECRET", "OIDC_USER_CLAIM",
                  "TRUSTED_PROXIES", "PROXY_USER_HEADER", "ALLOWED_USERS", "ADMINS", "PUBLIC_URL", "HOST", "PORT")


@pytest.fixture(autouse=True)
def no_settings_from_your_shell(monkeypatch: pytest.MonkeyPatch):
    """Tests start without the settings your shell sets."""
    for name in SHELL_SETTINGS:
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def app_dir(tmp_path: Path) -> Path:
    dest = tmp_path / "app"
    dest.mkdir()
    for source in REPO.glob("*.py"):
        shutil.copy(source, dest)
    for folder in ("static", "tools", "addons", "core", "toolbox"):
        shutil.copytree(REPO / folder, dest / folder, ignore=shutil.ignore_patterns("__pycache__"))
    return dest


@pytest.fixture
def server(app_dir: Path, monkeypatch: pytest.MonkeyPatch):
    """A fresh import of the app copy: its server module's create_app, each room by name (server.db,
    server.tasks, server.live, ...) and each add-on by name (server.todos), the very modules the app uses, so a
    test may patch them."""
    monkeypatch.setenv(f"{ENV_PREFIX}_ENV", "prod")
    monkeypatch.syspath_prepend(str(app_dir))
    for name in [name for name in sys.modules if name.partition(".")[0] in APP_MODULES]:
        monkeypatch.delitem(sys.modules, name)  # another test's copy: this one imports its own
    module = importlib.import_module("server")
    rooms = {name: importlib.import_module(f"core.{name}") for name in
             ("db", "security", "auth", "profiles", "live", "task_rows", "tasks", "shares", "tool_pages", "workspace",
              "app")}
    for source in sorted((app_dir / "addons").glob("[!_]*.py")):
        rooms.setdefault(source.stem, importlib.import_module(f"addons.{source.stem}"))
    yield SimpleNamespace(**rooms, settings=sys.modules["settings"], toolbox=sys.modules["toolbox"],
                          create_app=module.create_app)
    if rooms["db"].db.made():
        rooms["db"].db.close()


APP_MODULES = {"server", "settings", "core", "toolbox", "tools", "addons"}


@pytest.fixture
def web_app(server):
    """An app of the test's own, made as `python server.py` makes it; a test may add routes to it."""
    return server.create_app()


class LocalClient(TestClient):
    """A TestClient that talks to the app as a browser on this machine does: the app refuses other host names."""

    def __init__(self, app):
        super().__init__(app, base_url="http://127.0.0.1")

    def websocket_connect(self, url: str, *args, **kwargs):
        return super().websocket_connect(urljoin("ws://127.0.0.1", url), *args, **kwargs)


@pytest.fixture
def client(web_app):
    with LocalClient(web_app) as test_client:
        yield test_client
    gc.unfreeze()  # the app's start froze what was alive; this process starts a fresh app for every test


TASK_ID = re.compile(r'id="task-(\d+)"')
COUNT = re.compile(r'-count">(\d+)/(\d+)<')  # a task row's done/total


def task_id_of(row: str) -> int:
    """The id of the task whose row this HTML holds."""
    return int(TASK_ID.search(row)[1])


HOLD_WRITE_LOCK = """
import os, sys
if url := os.environ.get("DATABASE_URL"):  # as the app's write transactions begin, then every table held for writes
    import psycopg
    conn = psycopg.connect(url)
    conn.execute("SELECT pg_advisory_xact_lock(%s)", [int(sys.argv[2])])
    tables = [name for name, in conn.execute("SELECT tablename FROM pg_tables WHERE schemaname = current_schema()")]
    conn.execute(f"LOCK TABLE {', '.join(tables)} IN EXCLUSIVE MODE")
    conn.execute("INSERT INTO store (key, value) VALUES ('held', '1')")
else:
    import apsw
    conn = apsw.Connection(sys.argv[1])
    conn.execute("BEGIN IMMEDIATE")
    conn.execute("INSERT INTO store (key, value) VALUES ('held', '1')")
print("locked", flush=True)
sys.stdin.readline()
conn.execute("COMMIT")
"""


@contextlib.contextmanager
def write_lock(server):
    """Another process (a notebook, say) holding the database's write lock, as SQLite's BEGIN IMMEDIATE or the
    app's write transactions on PostgreSQL hold it, until the block ends or it calls the `release` it is given."""
    holder = subprocess.Popen([sys.executable, "-c", HOLD_WRITE_LOCK, str(server.settings.DB_FILE),
                               str(getattr(server.db.backend, "WRITES", 0))],
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)

    releasing = threading.Lock()  # the block's end and a timer's call may come at once

    def release():
        with releasing:
            if holder.returncode is None:
                holder.communicate("release\n", timeout=30)

    try:
        assert holder.stdout.readline() == "locked\n"
        yield release
    finally:
        release()


def query(app_dir: Path, sql: str, args=()) -> list[tuple]:
    """Rows straight from the app copy's database, not the server's memory, read as another program reads them."""
    if url := os.environ.get("DATABASE_URL"):
        import psycopg

        with psycopg.connect(url) as conn:
            return conn.execute(sql.replace("?", "%s"), args).fetchall()
    import apsw

    (db_file,) = (app_dir / "data").glob("*.db")
    with contextlib.closing(apsw.Connection(str(db_file))) as conn:
        return conn.execute(sql, args).fetchall()


def open_page(client: TestClient) -> dict:
    """Load the page like a browser tab and return the headers its HTMX requests carry."""
    page = client.get("/")
    assert page.status_code == 200
    tab = json.loads(re.search(r"hx-headers='([^']+)'", page.text)[1])["X-Tab"]
    assert f'ws-connect="/ws?tab={tab}"' in page.text
    return {"HX-Request": "true", "X-Tab": tab}


@pytest.fixture
def me(client, server) -> tuple[dict, int]:
    """The HTMX headers of an open page, and its profile's id."""
    headers = open_page(client)
    return headers, server.profiles.current_profile({}).id


def receive(ws, timeout: float = 5.0) -> str:
    """Next text frame, failing instead of hanging (TestClient's own receive has no timeout)."""
    async def next_message():
        with anyio.fail_after(timeout):
            return await ws._send_rx.receive()
    message = ws.portal.call(next_message)
    assert message["type"] == "websocket.send", message
    return message["text"]


def receive_until(ws, text: str, timeout: float = 10.0) -> list[str]:
    """Frames up to and including the first one containing `text`."""
    frames, deadline = [], time.monotonic() + timeout
    while not frames or text not in frames[-1]:
        frames.append(receive(ws, max(0.01, deadline - time.monotonic())))
    return frames


def wait_until(client: TestClient, ready, timeout: float = 60.0) -> bool:
    """Let the app's event loop run until `ready()`; whether it was before `timeout` seconds. Generous: work in
    a worker thread can wait seconds for a core on a loaded machine, and a test that passes waits no longer."""
    deadline = time.monotonic() + timeout
    while not ready():
        if time.monotonic() > deadline:
            return False
        client.portal.call(asyncio.sleep, 0.02)
    return True


def started(command: list[str], *, cwd: Path, env: dict[str, str]) -> tuple[subprocess.Popen, str]:
    """Run `command`, a server told to listen on port 0, and return it with the address it reports.

    The kernel then picks a port nothing holds. A port picked here first could be taken by another process
    (another suite, run in parallel) before the server binds it, and the test would talk to that one.
    """
    log = cwd / "server.log"
    seen = log.stat().st_size if log.exists() else 0
    with log.open("ab") as out:
        process = subprocess.Popen(command, cwd=cwd, env=env, stdout=out, stderr=out)
    deadline = time.monotonic() + 30
    while True:
        output = log.read_bytes()[seen:].decode(errors="replace")
        if listening := LISTENING.search(output):
            return process, listening[1]
        if process.poll() is not None or time.monotonic() > deadline:
            process.kill()
            raise AssertionError(f"the server did not start within 30 s:\n{output}")
        time.sleep(0.05)


@pytest.fixture
def live_server(app_dir: Path):
    """Factory: a context manager running `python server.py` from the app copy; yields its base URL.

    Keyword arguments are extra environment variables, such as HOST="::1".
    """

    @contextlib.contextmanager
    def run(**extra_env: str):
        env = {**os.environ, "HOST": "127.0.0.1", "PORT": "0", f"{ENV_PREFIX}_ENV": "prod", **extra_env}
        process, url = started([sys.executable, "server.py"], cwd=app_dir, env=env)
        try:
            yield url
        finally:
            process.terminate()
            try:
                process.wait(10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
    return run
