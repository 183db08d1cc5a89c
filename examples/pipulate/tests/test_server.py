"""The web app, end to end: the page, profiles, static files, other sites, the socket and tasks."""
from __future__ import annotations

import asyncio
import gc
import html
import json
import re
import socket
import threading

import httpx
import pytest
from starlette.websockets import WebSocketDisconnect

from conftest import open_page, receive_until, wait_until, write_lock

APP_TITLE = json.loads(r'''"Pipulate"''')


def profile_id(server, name: str) -> int:
    return next(p.id for p in server.db.profiles() if p.name == name)


# --- page, store, static files ---------------------------------------------------------------------------


def test_page_has_title_profiles_tools_and_tasks(client, server):
    page = client.get("/").text
    assert server.settings.TITLE == APP_TITLE
    assert f"<title>{html.escape(APP_TITLE, quote=False)}</title>" in page
    for part in ('id="profiles"', 'id="tools"', 'id="task-list"', 'ws-connect="/ws?tab='):
        assert part in page
    assert (server.settings.DATA / ".sesskey").stat().st_mode & 0o077 == 0


def test_start_up_freezes_what_lives_as_long_as_the_server(client):
    assert gc.get_freeze_count() > 0, "a full garbage collection would walk every module and route"


def test_store_is_a_persistent_dict(server):
    store = server.db.store
    assert "theme" not in store and store.get("theme", "light") == "light"
    store["theme"] = {"dark": True}
    assert "theme" in store and store["theme"] == {"dark": True}
    del store["theme"]
    assert store.get("theme") is None
    with pytest.raises(KeyError):
        store["theme"]


# --- profiles --------------------------------------------------------------------------------------------


def test_profiles_create_switch_rename_delete(client, server):
    headers = open_page(client)
    default = server.profiles.current_profile({}).id
    page = client.post("/profiles", data={"name": "Work"}, headers=headers).text
    work = profile_id(server, "Work")
    assert server.profiles.current_profile({}).id == work and '<option value="%d" selected>Work</option>' % work in page
    client.post("/profiles/switch", data={"id": default}, headers=headers)
    assert server.profiles.current_profile({}).id == default
    assert ">Job</option>" in client.post(f"/profiles/{work}/rename", data={"name": "Job"}, headers=headers).text
    client.delete(f"/profiles/{work}", headers=headers)
    assert {p.name for p in server.db.profiles()} == {"Default"}


def test_bad_profile_requests_change_nothing(client, server):
    headers = open_page(client)
    only = server.profiles.current_profile({}).id
    cases = [("POST", "/profiles", {"name": "  "}, "Give the profile a name"),
             ("POST", "/profiles", {"name": "n" * 501}, "Keep it to 500 characters"),
             ("POST", "/profiles/switch", {"id": "999"}, "no longer exists"),
             ("POST", "/profiles/999/rename", {"name": "x"}, "no longer exists"),
             ("POST", f"/profiles/{only}/rename", {"name": ""}, "Give the profile a name"),
             ("DELETE", "/profiles/999", None, "no longer exists"),
             ("DELETE", f"/profiles/{only}", None, "Keep at least one profile")]
    for method, url, data, error in cases:
        assert error in client.request(method, url, data=data, headers=headers).text, url
    assert [(p.id, p.name) for p in server.db.profiles()] == [(only, "Default")]


def test_the_chosen_profile_survives_a_restart(live_server):
    with live_server() as url, httpx.Client(base_url=url) as browser:
        browser.get("/")
        browser.post("/profiles", data={"name": "Kept"})
        cookies = dict(browser.cookies)
    with live_server() as url:
        with httpx.Client(base_url=url, cookies=cookies) as same_browser:
            page = same_browser.get("/").text
        with httpx.Client(base_url=url) as new_browser:
            fresh = new_browser.get("/").text
    for text in (page, fresh):
        assert re.search(r'<option value="\d+" selected>Kept</option>', text)


def raw_get(url: str, path: str) -> bytes:
    """GET with the path exactly as written: HTTP clients and TestClient would normalize the dots away."""
    host, port = url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=5) as s:
        s.sendall(f"GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n".encode())
        return b"".join(iter(lambda: s.recv(65536), b""))


def test_page_loads_every_asset_from_this_server(client, server):
    page = client.get("/").text
    links = re.findall(r'<(?:script|link|img)\b[^>]*\b(?:src|href)="([^"]*)"', page)  # what the page loads
    assert "://" not in page and all(link.startswith("/static/") for link in links), links
    kinds = {".js": "javascript", ".css": "text/css", ".svg": "image/svg+xml"}
    assert {link.rpartition("/")[2] for link in links} == {"htmx.min.js", "ws.js", "app.js", "tables.js", "pico.min.css",
                                                           "app.css", "favicon.svg"}
    for link in links:
        response = client.get(link)
        assert response.status_code == 200 and kinds[link[link.rindex("."):]] in response.headers["content-type"]
        assert response.content == (server.settings.STATIC / link.removeprefix("/static/")).read_bytes()


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
    with write_lock(server) as release:
        threading.Timer(0.5, release).start()
        response = client.post("/profiles", data={"name": "after the lock"}, headers=headers)
    assert ">after the lock</option>" in response.text
    assert server.db.store["held"] == 1


# --- other sites and host names --------------------------------------------------------------------------


def test_writes_from_another_site_are_refused_and_change_nothing(client, server):
    headers = open_page(client)
    refused = client.post("/profiles", data={"name": "planted"}, headers={**headers, "Origin": "https://evil.example"})
    assert refused.status_code == 403 and "another site" in refused.text
    assert [p.name for p in server.db.profiles()] == ["Default"]
    own = client.post("/profiles", data={"name": "mine"}, headers={**headers, "Origin": "http://127.0.0.1"})
    assert own.status_code == 200 and [p.name for p in server.db.profiles()] == ["Default", "mine"]


def test_socket_from_another_site_is_refused(client, server):
    tab = open_page(client)["X-Tab"]
    with pytest.raises(WebSocketDisconnect) as refused:
        with client.websocket_connect(f"/ws?tab={tab}", headers={"Origin": "https://evil.example"}):
            pass
    assert refused.value.code == 1008 and server.live.TABS == {}


def test_other_host_names_are_refused(client):
    assert client.get("/", headers={"Host": "evil.example"}).status_code == 400  # DNS rebinding
    assert client.get("/", headers={"Host": "localhost:5001"}).status_code == 200


def test_ids_too_big_for_sqlite_are_unknown_not_a_crash(client):
    headers = open_page(client)
    huge = 10**30
    assert "no longer exists" in client.post("/profiles/switch", data={"id": huge}, headers=headers).text
    assert "does not exist" in client.get(f"/tasks/{huge}", headers=headers).text


# --- websocket: frames and registry ----------------------------------------------------------------------


def test_socket_without_a_tab_id_is_refused(client, server):
    with client.websocket_connect("/ws") as ws:
        closed = ws.receive()
    assert (closed["type"], closed["code"]) == ("websocket.close", 1008) and server.live.TABS == {}


# --- tasks -----------------------------------------------------------------------------------------------


def task_ids(frames: list[str]) -> set[str]:
    return set(re.findall(r'id="task-(\d+)-', "".join(frames)))


@pytest.fixture
def task_route(server, web_app):
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

    async def quick(report):
        await report(1, 1, "quick step")
        return "quick result"

    @web_app.post("/test-task/{kind}")
    async def test_task(req, kind: str):
        fn, params = {"slow": (slow, {"steps": 3}), "busy": (slow, {"steps": 5, "reported": 4}),
                      "failing": (failing, {}), "quick": (quick, {})}[kind]
        return server.tasks.start_task(req, title=f"{kind} task", fn=fn, params=params)

    return test_task


def test_cancel_stops_a_running_task_and_a_reload_shows_where_it_is(client, server, task_route):
    headers = open_page(client)
    with client.websocket_connect(f"/ws?tab={headers['X-Tab']}") as ws:
        row = client.post("/test-task/slow", headers=headers).text
        task_id = int(re.search(r'id="task-(\d+)"', row)[1])
        receive_until(ws, "first step")
        assert server.db.tasks[task_id].status == "running"
        reloaded = client.get("/").text
        assert "1/3" in reloaded and f'hx-get="/tasks/{task_id}"' in reloaded
        cancelled = client.post(f"/tasks/{task_id}/cancel", headers=headers).text
        assert 'class="task cancelled"' in cancelled
    assert server.db.tasks[task_id].status == "cancelled" and server.tasks.RUNS == {}


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
    assert server.live.TABS == {} and server.db.tasks[task_id].status == "running"
    quick = int(re.search(r'id="task-(\d+)"', client.post("/test-task/quick", headers=headers).text)[1])
    wait_until(client, lambda: quick not in server.tasks.RUNS)
    assert (server.db.tasks[quick].status, server.db.tasks[quick].result) == ("done", "quick result")
    client.post(f"/tasks/{task_id}/cancel", headers=headers)


def test_a_tab_that_missed_every_push_still_sees_the_task_end(client, server, task_route):
    headers = open_page(client)  # no websocket: like a fast task whose pushes beat the row onto the page
    row = client.post("/test-task/failing", headers=headers).text
    task_id = int(re.search(r'id="task-(\d+)"', row)[1])
    assert f'hx-get="/tasks/{task_id}"' in row and 'hx-trigger="every 2s"' in row
    wait_until(client, lambda: not server.tasks.RUNS)
    polled = client.get(f"/tasks/{task_id}", headers=headers).text
    assert 'class="task failed"' in polled and "Failed: the API said no" in polled and "hx-get" not in polled


def test_a_poll_shows_progress_not_saved_yet(client, server, task_route, monkeypatch):
    monkeypatch.setattr(server.tasks, "SAVE_EVERY", 3600.0)  # only the first report reaches the database
    headers = open_page(client)
    task_id = int(re.search(r'id="task-(\d+)"', client.post("/test-task/busy", headers=headers).text)[1])
    wait_until(client, lambda: server.tasks.RUNS[task_id].task.done == 4)
    polled = client.get(f"/tasks/{task_id}", headers=headers).text
    assert server.db.tasks[task_id].done < 4 and "4/5" in polled and "step 4" in polled
    client.post(f"/tasks/{task_id}/cancel", headers=headers)


def test_unknown_task_ids_are_refused(client, server):
    headers = open_page(client)
    assert "does not exist" in client.get("/tasks/999", headers=headers).text
    assert "does not exist" in client.post("/tasks/999/cancel", headers=headers).text
