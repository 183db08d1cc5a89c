"""The web app, end to end: HTMX routes, profiles, the websocket chat against a fake Ollama, tasks."""
from __future__ import annotations

import asyncio
import html
import json
import re
import socket
import threading
from concurrent.futures import ThreadPoolExecutor

import apsw
import httpx
import pytest
from starlette.websockets import WebSocketDisconnect

from conftest import open_page, receive, receive_until

APP_TITLE = json.loads(r'''"Botifython"''')
CHUNK = re.compile(r'<span hx-swap-oob="beforeend:#(reply-\w+)">(.*?)</span>', re.S)


def todos_of(server, profile_id: int) -> list:
    return server.todos(where="profile_id = ?", where_args=[profile_id], order_by="priority, id")


def todo_titles(server, profile_id: int) -> list[str]:
    return [t.title for t in todos_of(server, profile_id)]


def profile_id(server, name: str) -> int:
    return next(p.id for p in server.profiles() if p.name == name)


def chat(ws, msg: str) -> None:
    ws.send_text(json.dumps({"type": "chat", "msg": msg}))


def wait_for_reply_end(client, server, tab: str) -> None:
    """The stream's closing line comes after the last chunk: wait until the reply task is gone."""
    for _ in range(200):
        if server.TABS[tab].reply is None:
            return
        client.portal.call(asyncio.sleep, 0.025)
    raise AssertionError("the reply did not end")


def chunks(frames: list[str]) -> list[str]:
    return [html.unescape(m[2]) for f in frames for m in CHUNK.finditer(f)]


# --- page, store, static files ---------------------------------------------------------------------------


def test_page_has_title_profile_todos_chat_and_tasks(client, server):
    page = client.get("/").text
    assert server.TITLE == APP_TITLE
    assert f"<title>{html.escape(APP_TITLE, quote=False)}</title>" in page
    for part in ('id="profiles"', 'id="todo-list"', 'id="chat-log"', 'id="task-list"', "ws-send"):
        assert part in page
    assert (server.DATA / ".sesskey").stat().st_mode & 0o077 == 0


def test_store_is_a_persistent_dict(server):
    store = server.store
    assert "theme" not in store and store.get("theme", "light") == "light"
    store["theme"] = {"dark": True}
    assert "theme" in store and store["theme"] == {"dark": True}
    del store["theme"]
    assert store.get("theme") is None
    with pytest.raises(KeyError):
        store["theme"]


# --- todos -----------------------------------------------------------------------------------------------


def test_todo_add_toggle_rename_move_delete(client, server):
    headers = open_page(client)
    me = server.current_profile({}).id
    for title in ("one", "two", "three"):
        assert f'value="{title}"' in client.post("/todos", data={"title": title}, headers=headers).text
    ids = [t.id for t in todos_of(server, me)]
    assert 'checked' in client.post(f"/todos/{ids[0]}/toggle", headers=headers).text
    assert server.todos[ids[0]].done
    client.post(f"/todos/{ids[1]}/rename", data={"title": "  TWO  "}, headers=headers)
    listing = client.post(f"/todos/{ids[2]}/move", data={"by": "-2"}, headers=headers).text
    assert listing.index('value="three"') < listing.index('value="one"') < listing.index('value="TWO"')
    assert todo_titles(server, me) == ["three", "one", "TWO"]
    client.delete(f"/todos/{ids[0]}", headers=headers)
    assert todo_titles(server, me) == ["three", "TWO"]


@pytest.mark.parametrize("title, error", [("", "Give the todo a title"), ("   ", "Give the todo a title"),
                                          ("x" * 501, "Keep it to 500 characters")])
def test_bad_todo_title_is_an_inline_error_and_writes_nothing(client, server, title, error):
    headers = open_page(client)
    client.post("/todos", data={"title": "keep"}, headers=headers)
    todo = server.todos()[0]
    added = client.post("/todos", data={"title": title}, headers=headers)
    renamed = client.post(f"/todos/{todo.id}/rename", data={"title": title}, headers=headers)
    for response in (added, renamed):
        assert response.status_code == 200 and error in response.text and "Traceback" not in response.text
    assert [t.title for t in server.todos()] == ["keep"]


def test_unknown_and_foreign_todo_ids_are_refused(client, server):
    headers = open_page(client)
    client.post("/todos", data={"title": "mine"}, headers=headers)
    mine = server.todos()[0]
    client.post("/profiles", data={"name": "Other"}, headers=headers)
    for todo_id in (mine.id, 999):
        for method, path, data in (("post", "toggle", {}), ("post", "rename", {"title": "stolen"}),
                                   ("post", "move", {"by": "1"}), ("delete", "", {})):
            url = f"/todos/{todo_id}/{path}".rstrip("/")
            response = client.request(method.upper(), url, data=data or None, headers=headers)
            assert "does not exist" in response.text, (method, url)
    assert server.todos[mine.id].title == "mine" and not server.todos[mine.id].done


# --- profiles --------------------------------------------------------------------------------------------


def test_profiles_create_switch_rename_delete(client, server):
    headers = open_page(client)
    default = server.current_profile({}).id
    client.post("/todos", data={"title": "default's"}, headers=headers)
    page = client.post("/profiles", data={"name": "Work"}, headers=headers).text
    work = profile_id(server, "Work")
    assert "Todos · Work" in page and "default's" not in page
    client.post("/todos", data={"title": "work's"}, headers=headers)
    assert 'value="default\'s"' in client.post("/profiles/switch", data={"id": default}, headers=headers).text
    assert ">Job</option>" in client.post(f"/profiles/{work}/rename", data={"name": "Job"}, headers=headers).text
    client.delete(f"/profiles/{work}", headers=headers)
    assert {p.name for p in server.profiles()} == {"Default"}
    assert [t.title for t in server.todos()] == ["default's"]


def test_bad_profile_requests_change_nothing(client, server):
    headers = open_page(client)
    only = server.current_profile({}).id
    cases = [("POST", "/profiles", {"name": "  "}, "Give the profile a name"),
             ("POST", "/profiles", {"name": "n" * 501}, "Keep it to 500 characters"),
             ("POST", "/profiles/switch", {"id": "999"}, "no longer exists"),
             ("POST", "/profiles/999/rename", {"name": "x"}, "no longer exists"),
             ("POST", f"/profiles/{only}/rename", {"name": ""}, "Give the profile a name"),
             ("DELETE", "/profiles/999", None, "no longer exists"),
             ("DELETE", f"/profiles/{only}", None, "Keep at least one profile")]
    for method, url, data, error in cases:
        assert error in client.request(method, url, data=data, headers=headers).text, url
    assert [(p.id, p.name) for p in server.profiles()] == [(only, "Default")]


def test_profiles_stay_isolated_under_concurrent_requests(live_server):
    with live_server() as url, httpx.Client(base_url=url) as alice, httpx.Client(base_url=url) as bob:
        for person, name in ((alice, "Alice"), (bob, "Bob")):
            person.get("/")
            person.post("/profiles", data={"name": name})

        def work(person: httpx.Client, name: str) -> list[str]:
            pages = []
            for i in range(25):
                assert person.post("/todos", data={"title": f"{name}-{i}"}).status_code == 200
                pages.append(person.get("/").text)
            return pages

        with ThreadPoolExecutor(2) as pool:
            runs = {name: pool.submit(work, person, name) for person, name in ((alice, "Alice"), (bob, "Bob"))}
        for name, other in (("Alice", "Bob"), ("Bob", "Alice")):
            pages = runs[name].result()
            assert all(f'value="{other}-' not in page for page in pages)
            assert all(f'value="{name}-{i}"' in pages[-1] for i in range(25))


def test_todos_and_chosen_profile_survive_a_restart(live_server):
    with live_server() as url, httpx.Client(base_url=url) as browser:
        browser.get("/")
        browser.post("/profiles", data={"name": "Kept"})
        browser.post("/todos", data={"title": "still here"})
        cookies = dict(browser.cookies)
    with live_server() as url:
        with httpx.Client(base_url=url, cookies=cookies) as same_browser:
            page = same_browser.get("/").text
        with httpx.Client(base_url=url) as new_browser:
            fresh = new_browser.get("/").text
    for text in (page, fresh):
        assert "Todos · Kept" in text and 'value="still here"' in text


def raw_get(url: str, path: str) -> bytes:
    """GET with the path exactly as written: HTTP clients and TestClient would normalize the dots away."""
    host, port = url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=5) as s:
        s.sendall(f"GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n".encode())
        return b"".join(iter(lambda: s.recv(65536), b""))


def test_page_loads_every_asset_from_this_server(client, server):
    page = client.get("/").text
    links = re.findall(r'\b(?:src|href)="([^"]*)"', page)
    assert "://" not in page and all(link.startswith("/static/") for link in links), links
    kinds = {".js": "javascript", ".css": "text/css"}
    assert {link.rpartition("/")[2] for link in links} == {"htmx.min.js", "ws.js", "app.js", "pico.min.css", "app.css"}
    for link in links:
        response = client.get(link)
        assert response.status_code == 200 and kinds[link[link.rindex("."):]] in response.headers["content-type"]
        assert response.content == (server.STATIC / link.removeprefix("/static/")).read_bytes()


def test_static_files_cannot_escape_the_static_folder(live_server, app_dir):
    (app_dir.parent / "secret.txt").write_text("TOP-SECRET outside")
    (app_dir / "static" / "hello.txt").write_text("public hello")
    with live_server() as url:
        (app_dir / "data" / "private.txt").write_text("TOP-SECRET data")
        assert b"public hello" in raw_get(url, "/static/hello.txt")
        for path in ("/static/../server.py", "/static/%2e%2e/server.py", "/static/.%2e/data/private.txt",
                     "/static/../data/private.txt", "/static/../../secret.txt", "/static/../data/.sesskey",
                     "/data/private.txt", "/server.py", "/../secret.txt"):
            response = raw_get(url, path)
            assert response.startswith(b"HTTP/1.1 404") and b"TOP-SECRET" not in response, path


def test_writes_wait_for_another_writer_instead_of_failing(client, server):
    headers = open_page(client)
    other = apsw.Connection(str(server.DB_FILE))
    other.execute("BEGIN IMMEDIATE")
    other.execute("INSERT INTO store (key, value) VALUES ('held', '1')")
    threading.Timer(0.5, lambda: other.execute("COMMIT")).start()
    response = client.post("/todos", data={"title": "after the lock"}, headers=headers)
    assert 'value="after the lock"' in response.text
    assert server.store["held"] == 1
    other.close()


# --- other sites and host names --------------------------------------------------------------------------


def test_writes_from_another_site_are_refused_and_change_nothing(client, server):
    headers = open_page(client)
    profile = server.current_profile({}).id
    refused = client.post("/todos", data={"title": "planted"}, headers={**headers, "Origin": "https://evil.example"})
    assert refused.status_code == 403 and "another site" in refused.text
    assert todo_titles(server, profile) == []
    own = client.post("/todos", data={"title": "mine"}, headers={**headers, "Origin": "http://127.0.0.1"})
    assert own.status_code == 200 and todo_titles(server, profile) == ["mine"]


def test_socket_from_another_site_is_refused(client, server):
    tab = open_page(client)["X-Tab"]
    with pytest.raises(WebSocketDisconnect) as refused:
        with client.websocket_connect(f"/ws?tab={tab}", headers={"Origin": "https://evil.example"}):
            pass
    assert refused.value.code == 1008 and server.TABS == {}


def test_other_host_names_are_refused(client):
    assert client.get("/", headers={"Host": "evil.example"}).status_code == 400  # DNS rebinding
    assert client.get("/", headers={"Host": "localhost:5001"}).status_code == 200


def test_ids_too_big_for_sqlite_are_unknown_not_a_crash(client):
    headers = open_page(client)
    huge = 10**30
    assert "does not exist" in client.post(f"/todos/{huge}/toggle", headers=headers).text
    assert "no longer exists" in client.post("/profiles/switch", data={"id": huge}, headers=headers).text
    assert "does not exist" in client.get(f"/tasks/{huge}", headers=headers).text


# --- websocket: frames and registry ----------------------------------------------------------------------


def test_bad_frames_get_an_error_and_the_socket_survives(client, server):
    tab = open_page(client)["X-Tab"]
    with client.websocket_connect(f"/ws?tab={tab}") as ws:
        for frame, error in (("{not json", "not JSON"), ("[1, 2]", "Unknown frame type"),
                             ('{"type": "dance"}', "Unknown frame type 'dance'"),
                             (json.dumps({"type": "chat", "msg": "x" * 70_000}), "at most 64 KiB"),
                             ('{"type": "chat", "msg": "  "}', "Type a message first"),
                             ('{"type": "chat", "msg": null}', "Type a message first"),
                             ('{"type": "chat", "msg": {"a": 1}}', "Type a message first"),
                             ("[" * 30_000 + "]" * 30_000, "not JSON")):
            ws.send_text(frame)
            assert error in receive(ws)
        ws.send_bytes(b"\x00\x01")
        assert "JSON text frames" in receive(ws)
        ws.send_text('{"type": "stop"}')
        assert "Nothing to stop" in receive(ws)
        assert set(server.TABS) == {tab}
    assert server.TABS == {}
    assert client.get("/").status_code == 200


def test_socket_without_a_tab_id_is_refused(client, server):
    with client.websocket_connect("/ws") as ws:
        closed = ws.receive()
    assert (closed["type"], closed["code"]) == ("websocket.close", 1008) and server.TABS == {}


# --- chat ------------------------------------------------------------------------------------------------


def test_chat_chunks_arrive_in_order_while_ollama_is_still_streaming(client, server, fake_ollama):
    fake_ollama.pause_after = 2
    tab = open_page(client)["X-Tab"]
    with client.websocket_connect(f"/ws?tab={tab}") as ws:
        chat(ws, "hello?")
        early = receive_until(ws, ">lo</span>")
        assert chunks(early) == ["Hel", "lo"] and not fake_ollama.resume.is_set()
        fake_ollama.resume.set()
        late = receive_until(ws, ">!</span>")
        assert chunks(early + late) == fake_ollama.tokens
        wait_for_reply_end(client, server, tab)
        ws.send_text('{"type": "stop"}')
        assert "Nothing to stop" in receive(ws)
    request = fake_ollama.requests[-1]
    assert request["model"] == "big:latest" and request["stream"] is True
    assert request["messages"] == [{"role": "user", "content": "hello?"}]


def test_chat_history_is_sent_back_and_bounded(client, server, fake_ollama):
    fake_ollama.tokens = ["ok"]
    tab = open_page(client)["X-Tab"]
    with client.websocket_connect(f"/ws?tab={tab}") as ws:
        for i in range(server.CHAT_TURNS + 3):
            chat(ws, f"question {i}")
            receive_until(ws, ">ok</span>")
            wait_for_reply_end(client, server, tab)
    messages = fake_ollama.requests[-1]["messages"]
    assert len(messages) <= 2 * server.CHAT_TURNS
    assert messages[-1] == {"role": "user", "content": f"question {server.CHAT_TURNS + 2}"}
    assert messages[-2] == {"role": "assistant", "content": "ok"}


def test_stop_cancels_the_stream_upstream(client, server, fake_ollama):
    fake_ollama.pause_after = 1
    fake_ollama.tokens = ["first"] + ["more"] * 50
    tab = open_page(client)["X-Tab"]
    with client.websocket_connect(f"/ws?tab={tab}") as ws:
        chat(ws, "long answer please")
        receive_until(ws, ">first</span>")
        ws.send_text('{"type": "stop"}')
        assert "more" not in "".join(receive_until(ws, "Stopped."))
        fake_ollama.resume.set()
        assert fake_ollama.client_gone.wait(5)
        chat(ws, "again")
        assert "still streaming" not in receive(ws)


def test_closing_the_tab_ends_its_stream_and_empties_the_registry(client, server, fake_ollama):
    fake_ollama.pause_after = 1
    fake_ollama.tokens = ["first"] + ["more"] * 50
    tab = open_page(client)["X-Tab"]
    with client.websocket_connect(f"/ws?tab={tab}") as ws:
        chat(ws, "talk to me")
        receive_until(ws, ">first</span>")
    fake_ollama.resume.set()
    assert fake_ollama.client_gone.wait(5)
    assert server.TABS == {}


@pytest.mark.parametrize("setup, sentence", [
    (lambda server, fake: setattr(server, "OLLAMA_HOST", "http://127.0.0.1:9"), "Ollama is not reachable"),
    (lambda server, fake: setattr(server, "OLLAMA_MODEL", "missing:7b"), "missing:7b is not installed"),
    (lambda server, fake: setattr(fake, "models", []), "Ollama has no model yet"),
    (lambda server, fake: setattr(fake, "break_after", 2), "broke off midway"),
])
def test_ollama_problems_become_a_sentence_and_the_socket_stays_open(client, server, fake_ollama, setup, sentence):
    setup(server, fake_ollama)
    tab = open_page(client)["X-Tab"]
    with client.websocket_connect(f"/ws?tab={tab}") as ws:
        chat(ws, "hi")
        frames = receive_until(ws, sentence)
        assert "Traceback" not in "".join(frames)
        wait_for_reply_end(client, server, tab)
        ws.send_text('{"type": "stop"}')
        assert "Nothing to stop" in receive(ws)


def test_best_model_is_the_largest_and_never_an_embedder(server):
    models = [server.ollama.ListResponse.Model(model=name, size=size, details={"family": family})
              for name, size, family in (("tiny", 1, "qwen"), ("big", 3, "llama"), ("mid", 2, "llama"),
                                         ("nomic-bert", 9, "nomic-bert"), ("mxbai-embed-large", 8, "bert"),
                                         ("qwen3-embedding", 7, "qwen3"))]

    class Tags:
        async def list(self):
            return server.ollama.ListResponse(models=models)

    assert asyncio.run(server.best_model(Tags())) == "big"


# --- tasks -----------------------------------------------------------------------------------------------


def write_text_files(server, count: int) -> int:
    words = 0
    for i in range(count):
        text = " ".join(f"w{j}" for j in range(i + 1))
        (server.DATA / f"doc{i}.txt").write_text(text)
        words += i + 1
    return words


def task_ids(frames: list[str]) -> set[str]:
    return set(re.findall(r'id="task-(\d+)-', "".join(frames)))


def test_task_progress_reaches_only_the_tab_that_started_it(client, server):
    words = write_text_files(server, 6)
    a, b = open_page(client), open_page(client)
    with client.websocket_connect(f"/ws?tab={a['X-Tab']}") as ws_a, \
            client.websocket_connect(f"/ws?tab={b['X-Tab']}") as ws_b:
        rows = [client.post("/tasks/count-words", headers=h).text for h in (a, a, b)]
        ids = [re.search(r'id="task-(\d+)"', row)[1] for row in rows]
        frames_a = receive_until(ws_a, f'id="task-{ids[0]}" class="task done"', timeout=20)
        frames_a += receive_until(ws_a, f'id="task-{ids[1]}" class="task done"', timeout=20) \
            if f'id="task-{ids[1]}" class="task done"' not in "".join(frames_a) else []
        frames_b = receive_until(ws_b, f'id="task-{ids[2]}" class="task done"', timeout=20)
        ws_a.send_text('{"type": "stop"}')
        frames_a += receive_until(ws_a, "Nothing to stop")
        ws_b.send_text('{"type": "stop"}')
        frames_b += receive_until(ws_b, "Nothing to stop")
    assert task_ids(frames_a) == {ids[0], ids[1]} and task_ids(frames_b) == {ids[2]}
    pushed = "".join(frames_b)
    assert "6 text files under data/" in pushed and all(f"doc{i}.txt: {i + 1} words" in pushed for i in range(6))
    for task_id in ids:
        task = server.tasks[int(task_id)]
        assert (task.status, task.done, task.total) == ("done", 6, 6)
        assert f"{words:,} words in 6 files" in task.result and "doc5.txt: 6 words" in task.log
    assert f"{words:,} words in 6 files" in client.get("/").text


def test_demo_task_runs_with_any_report_callable(server):
    words = write_text_files(server, 3)
    seen = []

    async def report(done, total, line=""):
        seen.append((done, total, line))

    result = asyncio.run(server.count_words(report, folder=server.DATA))
    assert seen[0][:2] == (0, 3) and seen[-1] == (3, 3, "doc2.txt: 3 words")
    assert f"{words:,} words in 3 files" in server.to_xml(result)


@pytest.fixture
def task_route(server):
    """A route starting a test task through the public start_task contract, as an add-on module would."""
    gate = {}

    async def slow(report, steps: int, reported: int = 1):
        for step in range(1, reported + 1):
            await report(step, steps, "first step" if step == 1 else f"step {step}")
        gate["event"] = asyncio.Event()
        await gate["event"].wait()
        return "never"

    async def failing(report):
        await report(1, 2, "about to fail")
        raise ValueError("the API said no")

    @server.app.post("/test-task/{kind}")
    async def test_task(req, kind: str):
        fn, params = {"slow": (slow, {"steps": 3}), "busy": (slow, {"steps": 5, "reported": 4}),
                      "failing": (failing, {})}[kind]
        return server.start_task(req, title=f"{kind} task", fn=fn, params=params)

    return test_task


def test_cancel_stops_a_running_task_and_a_reload_shows_where_it_is(client, server, task_route):
    headers = open_page(client)
    with client.websocket_connect(f"/ws?tab={headers['X-Tab']}") as ws:
        row = client.post("/test-task/slow", headers=headers).text
        task_id = int(re.search(r'id="task-(\d+)"', row)[1])
        receive_until(ws, "first step")
        assert server.tasks[task_id].status == "running"
        reloaded = client.get("/").text
        assert "1/3" in reloaded and f'hx-get="/tasks/{task_id}"' in reloaded
        cancelled = client.post(f"/tasks/{task_id}/cancel", headers=headers).text
        assert 'class="task cancelled"' in cancelled
    assert server.tasks[task_id].status == "cancelled" and server.RUNS == {}


def test_a_failing_task_shows_its_message_not_a_traceback(client, server, task_route):
    headers = open_page(client)
    with client.websocket_connect(f"/ws?tab={headers['X-Tab']}") as ws:
        client.post("/test-task/failing", headers=headers)
        frames = receive_until(ws, 'class="task failed"')
    assert "Failed: the API said no" in frames[-1] and "Traceback" not in "".join(frames)
    assert "Failed: the API said no" in client.get("/").text


def test_a_task_outlives_its_tab_and_records_the_result(client, server, task_route):
    headers = open_page(client)
    with client.websocket_connect(f"/ws?tab={headers['X-Tab']}") as ws:
        row = client.post("/test-task/slow", headers=headers).text
        task_id = int(re.search(r'id="task-(\d+)"', row)[1])
        receive_until(ws, "first step")
    assert server.TABS == {} and server.tasks[task_id].status == "running"
    write_text_files(server, 2)
    client.post("/tasks/count-words", headers=headers)
    for _ in range(100):
        if not any(t.status == "running" and t.title.startswith("Count") for t in server.tasks()):
            break
        client.portal.call(asyncio.sleep, 0.05)
    assert [t.status for t in server.tasks() if t.title.startswith("Count")] == ["done"]


def test_a_tab_that_missed_every_push_still_sees_the_task_end(client, server, task_route):
    headers = open_page(client)  # no websocket: like a fast task whose pushes beat the row onto the page
    row = client.post("/test-task/failing", headers=headers).text
    task_id = int(re.search(r'id="task-(\d+)"', row)[1])
    assert f'hx-get="/tasks/{task_id}"' in row and 'hx-trigger="every 2s"' in row
    for _ in range(100):
        if not server.RUNS:
            break
        client.portal.call(asyncio.sleep, 0.02)
    polled = client.get(f"/tasks/{task_id}", headers=headers).text
    assert 'class="task failed"' in polled and "Failed: the API said no" in polled and "hx-get" not in polled


def test_a_poll_shows_progress_not_saved_yet(client, server, task_route, monkeypatch):
    monkeypatch.setattr(server, "SAVE_EVERY", 3600.0)  # only the first report reaches the database
    headers = open_page(client)
    task_id = int(re.search(r'id="task-(\d+)"', client.post("/test-task/busy", headers=headers).text)[1])
    for _ in range(100):
        if server.RUNS[task_id].task.done == 4:
            break
        client.portal.call(asyncio.sleep, 0.02)
    polled = client.get(f"/tasks/{task_id}", headers=headers).text
    assert server.tasks[task_id].done < 4 and "4/5" in polled and "step 4" in polled
    client.post(f"/tasks/{task_id}/cancel", headers=headers)


def test_unknown_task_ids_are_refused(client, server):
    headers = open_page(client)
    assert "does not exist" in client.get("/tasks/999", headers=headers).text
    assert "does not exist" in client.post("/tasks/999/cancel", headers=headers).text
