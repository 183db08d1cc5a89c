"""The web app's data under load, faults and abuse: big lists, other processes writing, framing, request size,
the files under data/, IPv6 loopback and start-up imports."""
from __future__ import annotations

import contextlib
import random
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

from conftest import ENV_PREFIX, LocalClient, open_page

HOLD_WRITE_LOCK = """
import sys, apsw
conn = apsw.Connection(sys.argv[1])
conn.execute("BEGIN IMMEDIATE")
conn.execute("INSERT INTO store (key, value) VALUES ('held', '1')")
print("locked", flush=True)
sys.stdin.readline()
conn.execute("COMMIT")
"""


@contextlib.contextmanager
def write_lock(db_file):
    """Another process (a notebook, say) holding the database's write lock until the block ends."""
    holder = subprocess.Popen([sys.executable, "-c", HOLD_WRITE_LOCK, str(db_file)], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline() == "locked\n"
        yield
    finally:
        holder.communicate("release\n", timeout=30)


def seed(server, profile_id: int, count: int, rank=float) -> None:
    """`count` todos written straight into the database, as a long-used app would have them."""
    conn = apsw.Connection(str(server.DB_FILE))
    with conn:
        conn.executemany("INSERT INTO todos (profile_id, title, done, priority) VALUES (?, ?, 0, ?)",
                         [(profile_id, f"todo {i}", rank(i)) for i in range(count)])
    conn.close()


def order(server, profile_id: int) -> list[int]:
    return [t.id for t in server.todos(where="profile_id = ?", where_args=[profile_id], order_by="priority, id")]


def shown(page: str) -> list[str]:
    return re.findall(r'<li id="todo-\d+" class="todo[^"]*">.*?name="title" value="([^"]*)"', page)


@pytest.fixture
def me(client, server) -> tuple[dict, int]:
    """The HTMX headers of an open page, and its profile's id."""
    headers = open_page(client)
    return headers, server.current_profile({}).id


# --- big lists -------------------------------------------------------------------------------------------


def test_ten_thousand_todos_show_a_page_and_the_way_to_the_rest(client, server, me):
    headers, profile = me
    seed(server, profile, 10_000)
    page = client.get("/").text
    assert shown(page) == [f"todo {i}" for i in range(50)]
    assert "1–50 of 10,000" in page and 'aria-label="Next page"' in page
    second = client.get("/todos", params={"page": 1}, headers=headers).text
    assert shown(second) == [f"todo {i}" for i in range(50, 100)] and "51–100 of 10,000" in second
    for asked, first in ((199, 9_950), (10**30, 9_950), (-3, 0)):
        listing = client.get("/todos", params={"page": asked}, headers=headers).text
        assert shown(listing)[0] == f"todo {first}", asked
    added = client.post("/todos", data={"title": "the newest"}, headers=headers).text
    assert shown(added)[-1] == "the newest" and "10,001–10,001 of 10,001" in added


def test_move_toggle_rename_delete_work_anywhere_in_ten_thousand(client, server, me):
    headers, profile = me
    seed(server, profile, 10_000)
    ids = order(server, profile)
    for position in (0, 4_321, 9_999):
        todo_id = ids[position]
        assert " checked" in client.post(f"/todos/{todo_id}/toggle", headers=headers).text
        assert server.todos[todo_id].done
        renamed = client.post(f"/todos/{todo_id}/rename", data={"title": f"renamed {position}"}, headers=headers)
        assert f'value="renamed {position}"' in renamed.text
    moved = client.post(f"/todos/{ids[4_321]}/move", data={"by": "-1"}, headers=headers).text
    expected = ids[:4_320] + [ids[4_321], ids[4_320]] + ids[4_322:]
    assert order(server, profile) == expected and "renamed 4321" in moved and "4,301–4,350 of 10,000" in moved
    client.post(f"/todos/{ids[9_999]}/move", data={"by": "5"}, headers=headers)
    client.post(f"/todos/{ids[0]}/move", data={"by": "-5"}, headers=headers)
    assert order(server, profile) == expected
    client.post(f"/todos/{ids[0]}/move", data={"by": "20000"}, headers=headers)
    assert order(server, profile) == expected[1:] + [ids[0]]
    assert client.delete(f"/todos/{ids[9_999]}", headers=headers).text == ""
    assert len(order(server, profile)) == 9_999 and ids[9_999] not in order(server, profile)


def traced_connections(server, monkeypatch) -> dict:
    """Counts of SQL statements run and rows written by the app's threads from now on."""
    counts = {"statements": 0, "rows": 0}
    connect = server.connect

    def statement(cursor, sql: str, bindings) -> bool:
        counts["statements"] += 1
        return True  # run it

    def row_written(*change) -> None:
        counts["rows"] += 1

    def traced():
        conn = connect()
        conn.conn.exec_trace = statement
        conn.conn.set_update_hook(row_written)
        return conn

    monkeypatch.setattr(server, "connect", traced)
    return counts


def test_a_move_writes_one_row_and_runs_the_same_statements_at_100_and_10_000_todos(server, monkeypatch):
    counts = traced_connections(server, monkeypatch)
    with LocalClient(server.app) as client:
        headers = open_page(client)
        profile = server.current_profile({}).id
        traces = {}
        for size in (100, 10_000):
            seed(server, profile, size - len(order(server, profile)), rank=lambda i: 10.0 * size + i)  # after the rest
            ids = order(server, profile)
            for position, by in ((50, -1), (50, 3), (1, -1), (-1, -size), (0, size)):
                counts.update(statements=0, rows=0)
                client.post(f"/todos/{ids[position]}/move", data={"by": by}, headers=headers)
                traces.setdefault(size, []).append(dict(counts))
    assert all(trace["rows"] == 1 for trace in traces[100] + traces[10_000]), traces
    assert traces[100] == traces[10_000]


def test_moves_keep_the_order_through_equal_and_exhausted_ranks(client, server, me):
    headers, profile = me
    seed(server, profile, 30, rank=lambda i: float(i // 10))  # ties, as crashes mid-move used to leave
    expected = order(server, profile)

    def move(todo_id: int, by: int) -> None:
        client.post(f"/todos/{todo_id}/move", data={"by": by}, headers=headers)
        position = expected.index(todo_id)
        expected.remove(todo_id)
        expected.insert(max(0, min(len(expected), position + by)), todo_id)
        assert order(server, profile) == expected

    for _ in range(70):  # each lands between the first todo and the one moved before: the gap halves every time
        move(expected[-1], -(len(expected) - 2))
    shuffle = random.Random(7)
    for _ in range(60):
        move(shuffle.choice(expected), shuffle.choice([-100, -3, -1, 1, 2, 100]))


def test_two_servers_adding_and_toggling_at_once_lose_no_update(live_server, app_dir):
    with live_server() as first, live_server() as second:
        with httpx.Client(base_url=first) as browser:
            browser.get("/")
            todo = browser.post("/todos", data={"title": "shared"}).text
            cookies = dict(browser.cookies)
        todo_id = int(re.search(r'id="todo-(\d+)"', todo)[1])

        def work(url: str, name: str) -> None:
            with httpx.Client(base_url=url, cookies=cookies) as browser:
                for i in range(25):
                    assert browser.post(f"/todos/{todo_id}/toggle").status_code == 200
                    assert browser.post("/todos", data={"title": f"{name} {i}"}).status_code == 200

        with ThreadPoolExecutor(4) as pool:
            for job in [pool.submit(work, url, f"{url} {n}") for url in (first, second) for n in range(2)]:
                job.result()
    conn = apsw.Connection(str(next((app_dir / "data").glob("*.db"))))
    rows = {todo: (done, priority) for todo, done, priority in conn.execute("SELECT id, done, priority FROM todos")}
    conn.close()
    assert rows[todo_id][0] == 0  # 100 toggles: back where it started
    assert len(rows) == 101 and len({priority for _, priority in rows.values()}) == 101  # each add at its own place


# --- another program holding the database ----------------------------------------------------------------


def test_a_write_waiting_on_another_process_holds_up_no_other_request(server, monkeypatch):
    waiting = threading.Event()
    connect = server.connect

    def noting_waits():
        conn = connect()

        def busy(tries: int) -> bool:
            waiting.set()
            time.sleep(0.005)
            return True  # wait as long as the lock is held

        conn.conn.set_busy_handler(busy)
        return conn

    monkeypatch.setattr(server, "connect", noting_waits)
    with LocalClient(server.app) as client, ThreadPoolExecutor(1) as pool:
        headers = open_page(client)
        with write_lock(server.DB_FILE):
            add = pool.submit(client.post, "/todos", data={"title": "after the lock"}, headers=headers)
            assert waiting.wait(30)
            assert client.get("/static/app.css").status_code == 200
            page = client.get("/")
            assert page.status_code == 200 and "todo-list" in page.text
            assert not add.done()
        assert 'value="after the lock"' in add.result(30).text
    assert server.store["held"] == 1


def test_a_write_past_the_busy_timeout_gets_one_line_not_a_500(server, monkeypatch):
    monkeypatch.setattr(server, "BUSY_TIMEOUT", 0.05)
    with LocalClient(server.app) as client:
        headers = open_page(client)
        profile = server.current_profile({}).id
        kept = client.post("/todos", data={"title": "kept"}, headers=headers).text
        todo_id = re.search(r'id="todo-(\d+)"', kept)[1]
        writes = [("POST", "/todos", {"title": "new"}), ("POST", f"/todos/{todo_id}/toggle", None),
                  ("POST", f"/todos/{todo_id}/rename", {"title": "renamed"}),
                  ("POST", f"/todos/{todo_id}/move", {"by": "1"}), ("DELETE", f"/todos/{todo_id}", None),
                  ("POST", "/profiles", {"name": "Other"}), ("POST", "/profiles/switch", {"id": str(profile)}),
                  ("POST", f"/profiles/{profile}/rename", {"name": "Renamed"}),
                  ("DELETE", f"/profiles/{profile}", None)]
        with write_lock(server.DB_FILE):
            for method, url, data in writes:
                response = client.request(method, url, data=data, headers=headers)
                assert (response.status_code, response.text) == (503, server.BUSY), url
                assert response.headers["HX-Retarget"] == "#notice" and "Traceback" not in response.text
    assert [(t.title, t.done) for t in server.todos()] == [("kept", False)]
    assert [p.name for p in server.profiles()] == ["Default"]


# --- framing, scripts, request size, host names ----------------------------------------------------------


def test_pages_refuse_framing_and_run_only_scripts_from_static(client):
    page = client.get("/")
    for response in (page, client.get("/static/app.css")):
        assert response.headers["X-Frame-Options"] == "DENY"
        policy = dict(rule.strip().split(" ", 1) for rule in response.headers["Content-Security-Policy"].split(";"))
        assert policy["frame-ancestors"] == "'none'" and policy["script-src"] == "'self'"
        assert "unsafe" not in response.headers["Content-Security-Policy"]
    scripts = re.findall(r"<script([^>]*)>(.*?)</script>", page.text, re.S)
    assert scripts and all(re.search(r'src="/static/[\w.-]+"', attrs) and not body.strip() for attrs, body in scripts)
    assert not re.search(r"<[^>]*\s(on\w+|hx-on[\w:-]*)=", page.text)  # no inline event handlers either


def test_bodies_over_the_limit_get_a_clear_message_and_write_nothing(client, server, me):
    headers, profile = me
    for size in (server.MAX_BODY + 1, 10 * 1024 * 1024):
        response = client.post("/todos", content=b"title=" + b"x" * (size - 6),
                               headers={**headers, "Content-Type": "application/x-www-form-urlencoded"})
        assert response.status_code == 413 and "the limit here is 1,024 KiB" in response.text
    assert server.todos() == []
    fits = client.post("/todos", data={"title": "x" * 1000}, headers=headers)
    assert fits.status_code == 200 and "Keep it to 500 characters" in fits.text


def test_a_big_body_is_refused_before_it_is_read(live_server):
    with live_server() as url:
        host, port = url.removeprefix("http://").split(":")
        with socket.create_connection((host, int(port)), timeout=10) as s:  # says 100 MB, sends none of it
            s.sendall(f"POST /todos HTTP/1.1\r\nHost: {host}\r\nContent-Length: {100 * 1024 * 1024}\r\n"
                      "Content-Type: application/x-www-form-urlencoded\r\n\r\n".encode())
            assert s.recv(65536).startswith(b"HTTP/1.1 413")
        with socket.create_connection((host, int(port)), timeout=10) as s:  # chunked: 2 MiB of a body that never ends
            s.sendall(f"POST /todos HTTP/1.1\r\nHost: {host}\r\nTransfer-Encoding: chunked\r\n"
                      "Content-Type: application/x-www-form-urlencoded\r\n\r\n".encode())
            for _ in range(64):  # up to 4 MiB, until the server answers
                s.sendall(b"10000\r\n" + b"x" * 0x10000 + b"\r\n")
                if select.select([s], [], [], 0)[0]:
                    break
            assert s.recv(65536).startswith(b"HTTP/1.1 413")
        assert httpx.get(url + "/").status_code == 200


def test_ipv6_loopback_names_are_answered(client):
    assert client.get("/", headers={"Host": "[::1]:5001"}).status_code == 200
    assert client.post("/todos", data={"title": "over IPv6"},
                       headers={"Host": "[::1]:5001", "Origin": "http://[::1]:5001"}).status_code == 200
    for host in ("[::1", "[::2]:5001", "evil.example"):
        assert client.get("/", headers={"Host": host}).status_code == 400, host


def test_the_app_serves_on_ipv6_loopback(live_server):
    with live_server(HOST="::1") as url, httpx.Client(base_url=url) as browser:
        assert url.startswith("http://[::1]:") and browser.get("/").status_code == 200
        assert 'value="from ::1"' in browser.post("/todos", data={"title": "from ::1"},
                                                  headers={"Origin": url}).text


# --- files under data/, start-up ------------------------------------------------------------------------


def test_data_and_its_files_are_owner_only(live_server, app_dir):
    (app_dir / "data").mkdir(mode=0o755)  # as an older version left it
    with live_server() as url, httpx.Client(base_url=url) as browser:
        browser.get("/")
        browser.post("/todos", data={"title": "written"})
        data = app_dir / "data"
        files = [data / ".sesskey", *data.glob("*.db"), *data.glob("*.db-wal"), *data.glob("*.db-shm")]
        assert len(files) == 4
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


def test_starting_the_app_imports_no_pandas_yet_tools_still_can(app_dir):
    probe = ("import sys, server; print(sorted({'pandas', 'numpy'} & set(sys.modules)));"
             "import pandas; print(pandas.DataFrame({'a': [1]}).shape)")
    out = subprocess.run([sys.executable, "-c", probe], cwd=app_dir, capture_output=True, text=True,
                         env={**os.environ, f"{ENV_PREFIX}_ENV": "prod"}, check=True).stdout
    assert out.splitlines() == ["[]", "(1, 1)"]
