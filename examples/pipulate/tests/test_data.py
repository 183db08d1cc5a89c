"""The web app's data under load, faults and abuse: other processes writing, framing, request size,
the files under data/, IPv6 loopback and start-up imports."""
from __future__ import annotations

import contextlib
import fcntl
import json
import os
import re
import select
import socket
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import apsw
import httpx
import pytest

from conftest import ENV_PREFIX, LocalClient, open_page, query, started, write_lock

# --- another program holding the database ----------------------------------------------------------------


@pytest.mark.sqlite
def test_a_write_waiting_on_another_process_holds_up_no_other_request(server, monkeypatch):
    waiting = threading.Event()
    connect = server.db.connect

    def noting_waits():
        conn = connect()

        def busy(tries: int) -> bool:
            waiting.set()
            time.sleep(0.005)
            return True  # wait as long as the lock is held

        conn.conn.set_busy_handler(busy)
        return conn

    monkeypatch.setattr(server.db, "connect", noting_waits)
    with LocalClient(server.create_app()) as client, ThreadPoolExecutor(1) as pool:
        headers = open_page(client)
        with write_lock(server):
            add = pool.submit(client.post, "/profiles", data={"name": "after the lock"}, headers=headers)
            assert waiting.wait(30)
            assert client.get("/static/app.css").status_code == 200
            page = client.get("/")
            assert page.status_code == 200 and 'id="task-list"' in page.text
            assert not add.done()
        assert ">after the lock</option>" in add.result(30).text
    assert server.db.store["held"] == 1


def test_a_write_past_the_busy_timeout_gets_one_line_not_a_500(server, monkeypatch):
    monkeypatch.setattr(server.db.backend, "BUSY_TIMEOUT", 0.05)
    with LocalClient(server.create_app()) as client:
        headers = open_page(client)
        profile = server.profiles.current_profile({}).id
        writes = [("POST", "/profiles", {"name": "Other"}), ("POST", "/profiles/switch", {"id": str(profile)}),
                  ("POST", f"/profiles/{profile}/rename", {"name": "Renamed"}),
                  ("DELETE", f"/profiles/{profile}", None)]
        with write_lock(server):
            for method, url, data in writes:
                response = client.request(method, url, data=data, headers=headers)
                assert (response.status_code, response.text) == (503, server.db.BUSY), url
                assert response.headers["HX-Retarget"] == "#notice" and "Traceback" not in response.text
    assert [p.name for p in server.db.profiles()] == ["Default"]


# --- framing, scripts, request size, host names ----------------------------------------------------------


def test_pages_refuse_framing_and_run_only_scripts_from_static(client):
    page = client.get("/")
    for response in (page, client.get("/static/app.css")):
        assert response.headers["X-Frame-Options"] == "DENY"
        policy = dict(rule.strip().split(" ", 1) for rule in response.headers["Content-Security-Policy"].split(";"))
        assert policy["frame-ancestors"] == "'none'" and policy["script-src"] == "'self'"
        assert "unsafe" not in response.headers["Content-Security-Policy"]
    scripts = re.findall(r"<script([^>]*)>(.*?)</script>", page.text, re.S)
    own = re.compile(r'src="/static/(vendor/)?[\w.-]+"')
    assert scripts and all(own.search(attrs) and not body.strip() for attrs, body in scripts)
    assert not re.search(r"<[^>]*\s(on\w+|hx-on[\w:-]*)=", page.text)  # no inline event handlers either


def test_bodies_over_the_limit_get_a_clear_message_and_write_nothing(client, server, me):
    headers, profile = me
    for size in (server.security.MAX_BODY + 1, 10 * 1024 * 1024):
        response = client.post("/profiles", content=b"name=" + b"x" * (size - 5),
                               headers={**headers, "Content-Type": "application/x-www-form-urlencoded"})
        assert response.status_code == 413 and "the limit here is 1,024 KiB" in response.text
    assert [p.name for p in server.db.profiles()] == ["Default"]
    fits = client.post("/profiles", data={"name": "x" * 1000}, headers=headers)
    assert fits.status_code == 200 and "Keep it to 500 characters" in fits.text


def test_a_big_body_is_refused_before_it_is_read(live_server):
    with live_server() as url:
        host, port = url.removeprefix("http://").split(":")
        with socket.create_connection((host, int(port)), timeout=10) as s:  # says 100 MB, sends none of it
            s.sendall(f"POST /profiles HTTP/1.1\r\nHost: {host}\r\nContent-Length: {100 * 1024 * 1024}\r\n"
                      "Content-Type: application/x-www-form-urlencoded\r\n\r\n".encode())
            assert s.recv(65536).startswith(b"HTTP/1.1 413")
        with socket.create_connection((host, int(port)), timeout=10) as s:  # chunked: 2 MiB of a body that never ends
            s.sendall(f"POST /profiles HTTP/1.1\r\nHost: {host}\r\nTransfer-Encoding: chunked\r\n"
                      "Content-Type: application/x-www-form-urlencoded\r\n\r\n".encode())
            for _ in range(64):  # up to 4 MiB, until the server answers
                s.sendall(b"10000\r\n" + b"x" * 0x10000 + b"\r\n")
                if select.select([s], [], [], 0)[0]:
                    break
            assert s.recv(65536).startswith(b"HTTP/1.1 413")
        assert httpx.get(url + "/").status_code == 200


def test_ipv6_loopback_names_are_answered(client):
    assert client.get("/", headers={"Host": "[::1]:5001"}).status_code == 200
    assert client.post("/profiles", data={"name": "over IPv6"},
                       headers={"Host": "[::1]:5001", "Origin": "http://[::1]:5001"}).status_code == 200
    for host in ("[::1", "[::2]:5001", "evil.example"):
        assert client.get("/", headers={"Host": host}).status_code == 400, host


@pytest.mark.parametrize("host", ["::1", "[::1]"])
def test_the_app_serves_on_ipv6_loopback(live_server, host):
    with live_server(HOST=host) as url, httpx.Client(base_url=url) as browser:
        assert url.startswith("http://[::1]:") and browser.get("/").status_code == 200
        assert ">from ::1</option>" in browser.post("/profiles", data={"name": "from ::1"},
                                                    headers={"Origin": url}).text


# --- one owner of the database file ---------------------------------------------------------------------

SHARED_LOCK = (0x40000000 + 2, 510)  # SQLite's shared-lock bytes of the database file on Unix: first, count
OTHER_PROGRAMS = {
    "sqlite3": "import sqlite3, sys; sqlite3.connect(sys.argv[1]).execute('SELECT count(*) FROM tasks').fetchall()",
    "record": "import tools; tools.record(lambda: 'from a notebook')",
}


def profile_names(app_dir) -> list[str]:
    return [name for name, in query(app_dir, "SELECT name FROM profiles ORDER BY id")]


@pytest.mark.sqlite
@pytest.mark.parametrize("other", OTHER_PROGRAMS)
def test_writes_the_server_acknowledged_survive_another_program_and_a_kill(app_dir, other):
    """`python server.py` holds SQLite's shared lock on the database file all along: a program that opens and
    closes the database meanwhile (a notebook's record(), the sqlite3 shell, a backup) must never find it free,
    or it deletes the WAL that holds the server's acknowledged writes."""
    env = {**os.environ, "HOST": "127.0.0.1", "PORT": "0", f"{ENV_PREFIX}_ENV": "prod"}
    process, url = started([sys.executable, "server.py"], cwd=app_dir, env=env)
    try:
        with httpx.Client(base_url=url) as browser:
            browser.get("/")
            assert browser.post("/profiles", data={"name": "before"}).status_code == 200
            (db_file,) = (app_dir / "data").glob("*.db")
            with open(db_file, "rb") as probe, pytest.raises(OSError):
                fcntl.lockf(probe, fcntl.LOCK_EX | fcntl.LOCK_NB, SHARED_LOCK[1], SHARED_LOCK[0])
            subprocess.run([sys.executable, "-c", OTHER_PROGRAMS[other], str(db_file)], cwd=app_dir, env=env,
                           check=True, capture_output=True, timeout=60)
            assert browser.post("/profiles", data={"name": "after"}).status_code == 200
    finally:
        process.kill()  # no clean shutdown: what was acknowledged must already be safe
        process.wait()
    assert profile_names(app_dir)[-2:] == ["before", "after"]


def test_importing_the_app_opens_and_creates_nothing(app_dir):
    probe = "import json, server, settings; print(json.dumps(sorted(p.name for p in settings.APP_DIR.iterdir())))"
    before = sorted(p.name for p in app_dir.iterdir())
    out = subprocess.run([sys.executable, "-B", "-c", probe], cwd=app_dir, capture_output=True, text=True, check=True,
                         env={**os.environ, f"{ENV_PREFIX}_ENV": "prod"}).stdout  # -B: no bytecode folder either
    assert json.loads(out) == before and "data" not in before


@pytest.mark.sqlite
def test_another_process_starting_leaves_the_tables_as_they_are(client, server, app_dir):
    """A second server (or a notebook's tools.record()) starting while this one serves rebuilt every table it
    thought differed, dropping it for a moment: this one's writes failed with "no such table"."""
    headers = open_page(client)
    client.post("/profiles", data={"name": "Kept"}, headers=headers)
    version = server.db.db.execute("PRAGMA schema_version").fetchone()[0]
    start = "import server; from core.db import db; server.create_app(); db.execute('SELECT 1')"
    subprocess.run([sys.executable, "-c", start], cwd=app_dir, check=True, env={**os.environ, f"{ENV_PREFIX}_ENV": "prod"})
    assert server.db.db.execute("PRAGMA schema_version").fetchone()[0] == version
    assert [p.name for p in server.db.profiles(order_by="id")] == ["Default", "Kept"]


# --- files under data/, start-up ------------------------------------------------------------------------


def test_data_and_its_files_are_owner_only(live_server, app_dir):
    (app_dir / "data").mkdir(mode=0o755)  # as an older version left it
    with live_server() as url, httpx.Client(base_url=url) as browser:
        browser.get("/")
        browser.post("/todos", data={"title": "written"})
        data = app_dir / "data"
        files = [data / ".sesskey", *data.glob("*.db"), *data.glob("*.db-wal"), *data.glob("*.db-shm")]
        assert len(files) == (1 if os.environ["DATABASE_URL"] else 4)  # PostgreSQL keeps its files to itself
        assert data.stat().st_mode & 0o777 == 0o700
        assert {f.name: f.stat().st_mode & 0o777 for f in files} == {f.name: 0o600 for f in files}


@pytest.fixture(params=["", "cut short\n"])
def broken_key(request, app_dir):
    """The session key as a crash during the very first start can leave it."""
    (app_dir / "data").mkdir()
    (app_dir / "data" / ".sesskey").write_text(request.param)


def test_an_empty_or_short_session_key_counts_as_missing(broken_key, server, client, app_dir):
    key = (app_dir / "data" / ".sesskey").read_text()
    assert len(key) >= 32 and (app_dir / "data" / ".sesskey").stat().st_mode & 0o777 == 0o600
    assert not (app_dir / ".sesskey").exists()
    open_page(client)
    assert client.cookies.get("session_")


def test_starting_the_app_imports_no_pandas_or_rich_yet_tools_still_can(app_dir):
    probe = ("import sys, server; server.create_app();"
             "print(sorted({'pandas', 'numpy', 'rich'} & set(sys.modules)));"
             "import pandas; print(pandas.DataFrame({'a': [1]}).shape)")
    out = subprocess.run([sys.executable, "-c", probe], cwd=app_dir, capture_output=True, text=True,
                         env={**os.environ, f"{ENV_PREFIX}_ENV": "prod"}, check=True).stdout
    assert out.splitlines() == ["[]", "(1, 1)"]


def test_a_database_that_cannot_be_reached_stops_the_start_in_one_line(app_dir):
    """A team server whose PostgreSQL is down (or mistyped) says so before serving, and names no password."""
    env = {**os.environ, "HOST": "127.0.0.1", "PORT": "0", f"{ENV_PREFIX}_ENV": "prod",
           "DATABASE_URL": "postgresql://app:s3cret@127.0.0.1:1/app"}
    refused = subprocess.run([sys.executable, "server.py"], cwd=app_dir, env=env, capture_output=True, text=True,
                             timeout=60)
    lines = refused.stderr.splitlines()
    assert refused.returncode == 1 and len(lines) == 1, refused.stderr
    assert lines[0].startswith("server.py: cannot reach the database in DATABASE_URL (") and "s3cret" not in lines[0]
