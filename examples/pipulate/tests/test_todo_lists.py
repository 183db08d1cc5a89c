"""Long todo lists: a page of 10,000 todos costs what a page of 10 does, moves write one row, and two servers on
one database lose no update."""
from __future__ import annotations

import random
import re
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

from conftest import LocalClient, open_page, query, write_lock


def seed(server, profile_id: int, count: int, rank=float) -> None:
    """`count` todos written straight into the database, as a long-used app would have them."""
    with server.db.transaction():
        server.db.db.executemany("INSERT INTO todos (profile_id, title, done, priority) VALUES (?, ?, 0, ?)",
                                 [(profile_id, f"todo {i}", rank(i)) for i in range(count)])


def order(server, profile_id: int) -> list[int]:
    return [t.id for t in server.todos.todos(where="profile_id = ?", where_args=[profile_id], order_by="priority, id")]


def shown(page: str) -> list[str]:
    return re.findall(r'<li id="todo-\d+" class="todo[^"]*">.*?name="title" value="([^"]*)"', page)


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
        assert server.todos.todos[todo_id].done
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
    connect = server.db.connect

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

    monkeypatch.setattr(server.db, "connect", traced)
    return counts


@pytest.mark.sqlite  # counted by SQLite's own statement and update hooks
def test_a_move_writes_one_row_and_runs_the_same_statements_at_100_and_10_000_todos(server, monkeypatch):
    counts = traced_connections(server, monkeypatch)
    with LocalClient(server.create_app()) as client:
        headers = open_page(client)
        profile = server.profiles.current_profile({}).id
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
    rows = {todo: (done, priority) for todo, done, priority in query(app_dir, "SELECT id, done, priority FROM todos")}
    assert rows[todo_id][0] == 0  # 100 toggles: back where it started
    assert len(rows) == 101 and len({priority for _, priority in rows.values()}) == 101  # each add at its own place


def test_a_todo_write_past_the_busy_timeout_gets_one_line_not_a_500(server, monkeypatch):
    monkeypatch.setattr(server.db.backend, "BUSY_TIMEOUT", 0.05)
    with LocalClient(server.create_app()) as client:
        headers = open_page(client)
        kept = client.post("/todos", data={"title": "kept"}, headers=headers).text
        todo_id = re.search(r'id="todo-(\d+)"', kept)[1]
        writes = [("POST", "/todos", {"title": "new"}), ("POST", f"/todos/{todo_id}/toggle", None),
                  ("POST", f"/todos/{todo_id}/rename", {"title": "renamed"}),
                  ("POST", f"/todos/{todo_id}/move", {"by": "1"}), ("DELETE", f"/todos/{todo_id}", None)]
        with write_lock(server):
            for method, url, data in writes:
                response = client.request(method, url, data=data, headers=headers)
                assert (response.status_code, response.text) == (503, server.db.BUSY), url
                assert response.headers["HX-Retarget"] == "#notice" and "Traceback" not in response.text
    assert [(t.title, t.done) for t in server.todos.todos()] == [("kept", False)]
