"""The demo: todos, the chat against a fake Ollama and the word-count tool. Left out with the demo."""
from __future__ import annotations

import asyncio
import html
import importlib.util
import json
import os
import re
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

from conftest import ENV_PREFIX, open_page, receive, receive_until, wait_until

CHUNK = re.compile(r'<span hx-swap-oob="beforeend:#(reply-\w+)">(.*?)</span>', re.S)


def todos_of(server, profile_id: int) -> list:
    return server.todos.todos(where="profile_id = ?", where_args=[profile_id], order_by="priority, id")


def todo_titles(server, profile_id: int) -> list[str]:
    return [t.title for t in todos_of(server, profile_id)]


def chat(ws, msg: str) -> None:
    ws.send_text(json.dumps({"type": "chat", "msg": msg}))


def wait_for_reply_end(client, server, tab: str) -> None:
    """The stream's closing line comes after the last chunk: wait until the reply task is gone."""
    assert wait_until(client, lambda: server.chat.chat_of(server.live.TABS[tab]).reply is None), "the reply did not end"


def chunks(frames: list[str]) -> list[str]:
    return [html.unescape(m[2]) for f in frames for m in CHUNK.finditer(f)]


def test_the_page_has_todos_the_chat_and_the_word_count_tool(client):
    page = client.get("/").text
    for part in ('id="todo-list"', 'id="new-todo"', 'id="chat-log"', "ws-send", 'href="/tools/count_words"'):
        assert part in page


# --- todos -----------------------------------------------------------------------------------------------


def test_todo_add_toggle_rename_move_delete(client, server):
    headers = open_page(client)
    me = server.profiles.current_profile({}).id
    for title in ("one", "two", "three"):
        assert f'value="{title}"' in client.post("/todos", data={"title": title}, headers=headers).text
    ids = [t.id for t in todos_of(server, me)]
    assert 'checked' in client.post(f"/todos/{ids[0]}/toggle", headers=headers).text
    assert server.todos.todos[ids[0]].done
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
    todo = server.todos.todos()[0]
    added = client.post("/todos", data={"title": title}, headers=headers)
    renamed = client.post(f"/todos/{todo.id}/rename", data={"title": title}, headers=headers)
    for response in (added, renamed):
        assert response.status_code == 200 and error in response.text and "Traceback" not in response.text
    assert [t.title for t in server.todos.todos()] == ["keep"]


def test_unknown_and_foreign_todo_ids_are_refused(client, server):
    headers = open_page(client)
    client.post("/todos", data={"title": "mine"}, headers=headers)
    mine = server.todos.todos()[0]
    client.post("/profiles", data={"name": "Other"}, headers=headers)
    for todo_id in (mine.id, 999):
        for method, path, data in (("post", "toggle", {}), ("post", "rename", {"title": "stolen"}),
                                   ("post", "move", {"by": "1"}), ("delete", "", {})):
            url = f"/todos/{todo_id}/{path}".rstrip("/")
            response = client.request(method.upper(), url, data=data or None, headers=headers)
            assert "does not exist" in response.text, (method, url)
    assert server.todos.todos[mine.id].title == "mine" and not server.todos.todos[mine.id].done
    assert "does not exist" in client.post(f"/todos/{10**30}/toggle", headers=headers).text


def test_todos_belong_to_their_profile_and_go_with_it(client, server):
    headers = open_page(client)
    default = server.profiles.current_profile({}).id
    client.post("/todos", data={"title": "default's"}, headers=headers)
    page = client.post("/profiles", data={"name": "Work"}, headers=headers).text
    assert "Todos · Work" in page and "default's" not in page
    client.post("/todos", data={"title": "work's"}, headers=headers)
    assert 'value="default\'s"' in client.post("/profiles/switch", data={"id": default}, headers=headers).text
    work = next(p.id for p in server.db.profiles() if p.name == "Work")
    client.delete(f"/profiles/{work}", headers=headers)
    assert [t.title for t in server.todos.todos()] == ["default's"]


def test_todos_survive_a_restart(live_server):
    with live_server() as url, httpx.Client(base_url=url) as browser:
        browser.get("/")
        browser.post("/profiles", data={"name": "Kept"})
        browser.post("/todos", data={"title": "still here"})
        cookies = dict(browser.cookies)
    with live_server() as url, httpx.Client(base_url=url, cookies=cookies) as same_browser:
        page = same_browser.get("/").text
    assert "Todos · Kept" in page and 'value="still here"' in page


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
        assert set(server.live.TABS) == {tab}
    assert server.live.TABS == {}
    assert client.get("/").status_code == 200


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
        for i in range(server.chat.CHAT_TURNS + 3):
            chat(ws, f"question {i}")
            receive_until(ws, ">ok</span>")
            wait_for_reply_end(client, server, tab)
    messages = fake_ollama.requests[-1]["messages"]
    assert len(messages) <= 2 * server.chat.CHAT_TURNS
    assert messages[-1] == {"role": "user", "content": f"question {server.chat.CHAT_TURNS + 2}"}
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
    assert server.live.TABS == {}


@pytest.mark.parametrize("setup, sentence", [
    (lambda server, fake: setattr(server.chat, "OLLAMA_HOST", "http://127.0.0.1:9"), "Ollama is not reachable"),
    (lambda server, fake: setattr(server.chat, "OLLAMA_MODEL", "missing:7b"), "missing:7b is not installed"),
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
    import ollama

    models = [ollama.ListResponse.Model(model=name, size=size, details={"family": family})
              for name, size, family in (("tiny", 1, "qwen"), ("big", 3, "llama"), ("mid", 2, "llama"),
                                         ("nomic-bert", 9, "nomic-bert"), ("mxbai-embed-large", 8, "bert"),
                                         ("qwen3-embedding", 7, "qwen3"))]

    class Tags:
        async def list(self):
            return ollama.ListResponse(models=models)

    assert asyncio.run(server.chat.best_model(Tags())) == "big"


def test_starting_the_app_leaves_ollama_unimported_until_a_chat(app_dir):
    probe = "import sys, server; print('ollama' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", probe], cwd=app_dir, capture_output=True, text=True,
                         env={**os.environ, f"{ENV_PREFIX}_ENV": "prod"}, check=True).stdout
    assert out.split() == ["False"]


# --- the word-count tool --------------------------------------------------------------------------------


def task_ids(frames: list[str]) -> set[str]:
    return set(re.findall(r'id="task-(\d+)-', "".join(frames)))


def write_text_files(server, count: int) -> int:
    words = 0
    for i in range(count):
        text = " ".join(f"w{j}" for j in range(i + 1))
        (server.settings.DATA / f"doc{i}.txt").write_text(text)
        words += i + 1
    return words


def test_task_progress_reaches_only_the_tab_that_started_it(client, server):
    words = write_text_files(server, 6)
    a, b = open_page(client), open_page(client)
    with client.websocket_connect(f"/ws?tab={a['X-Tab']}") as ws_a, \
            client.websocket_connect(f"/ws?tab={b['X-Tab']}") as ws_b:
        rows = [client.post("/tools/count_words", headers=h).text for h in (a, a, b)]
        ids = [re.search(r'id="task-(\d+)"', row)[1] for row in rows]
        frames_a = receive_until(ws_a, f'id="task-{ids[0]}" class="task done"', timeout=30)
        frames_a += receive_until(ws_a, f'id="task-{ids[1]}" class="task done"', timeout=30) \
            if f'id="task-{ids[1]}" class="task done"' not in "".join(frames_a) else []
        frames_b = receive_until(ws_b, f'id="task-{ids[2]}" class="task done"', timeout=30)
    assert task_ids(frames_a) == {ids[0], ids[1]} and task_ids(frames_b) == {ids[2]}
    pushed = "".join(frames_b)
    assert "6 text files under data/" in pushed and all(f"doc{i}.txt: {i + 1} words" in pushed for i in range(6))
    for task_id in ids:
        task = server.db.tasks[int(task_id)]
        assert (task.status, task.done, task.total) == ("done", 6, 6)
        assert f"{words:,} words in 6 files" in task.result and "doc5.txt: 6 words" in task.log
    assert f"{words:,} words in 6 files" in client.get("/").text


def test_the_word_count_tool_runs_in_a_notebook_with_any_report_callable(server, web_app, app_dir):
    words = write_text_files(server, 3)
    (server.db.OUTPUTS / "7").mkdir()
    (server.db.OUTPUTS / "7" / "result.txt").write_text("not the user's words")
    spec = importlib.util.spec_from_file_location("word_count_here", app_dir / "tools" / "word_count.py")
    spec.loader.exec_module(word_count := importlib.util.module_from_spec(spec))
    seen = []
    result = word_count.count_words(report=lambda done, total, line="": seen.append((done, total, line)))
    assert seen[0][:2] == (0, 3) and seen[-1] == (3, 3, "doc2.txt: 3 words")
    assert result.startswith(f"{words:,} words in 3 files.") and "doc2.txt" in result
