"""What streams to a tab under stress, over the real wire: a page that stops reading, and running tasks across a
second start and a crash. (The chat's odd text and stalled replies: test_chat_wire.py, with the demo.) (In-process task saves and reports: test_task_saves.py.)

Tests that need the real wire (UTF-8 encoding, TCP back-pressure, two processes) run the app under uvicorn
with `streaming_app.py`, a small add-on module written next to server.py that registers test tasks.
"""
from __future__ import annotations

import contextlib
import signal
import subprocess
import time
from pathlib import Path

import httpx
from websockets.sync.client import connect

from conftest import COUNT, query, task_id_of, wait_until
from wire import silent_socket

def db_row(app_dir: Path, task_id: int) -> tuple[str, int]:
    """The task's status and steps done in the database file itself, not in the server's memory."""
    return query(app_dir, "SELECT status, done FROM tasks WHERE id = ?", [task_id])[0]


def db_status(app_dir: Path, task_id: int, becomes: str = "") -> str:
    """The saved status; with `becomes`, once it is that (the last save may still be on its way), or as it stays."""
    for _ in range(200 if becomes else 1):
        if (status := db_row(app_dir, task_id)[0]) == becomes:
            break
        time.sleep(0.05)
    return status


def wait_for_count(http: httpx.Client, task_id: int, at_least: int) -> str:
    """The task's row once it has reported `at_least` steps."""
    for _ in range(600):
        row = http.get(f"/tasks/{task_id}").text
        if int(COUNT.search(row)[1]) >= at_least:
            return row
        time.sleep(0.05)
    raise AssertionError(f"task {task_id} did not reach {at_least} steps: {row}")




# --- the page's socket ----------------------------------------------------------------------------------


def test_the_served_socket_sends_its_frames_uncompressed(live_server):
    with live_server() as url, connect(url.replace("http", "ws") + "/ws?tab=plain") as ws:  # offers deflate
        assert ws.response.headers.get("Sec-WebSocket-Extensions") is None


# --- a page that stops reading ---------------------------------------------------------------------------


def test_a_page_that_stops_reading_stalls_neither_its_task_nor_cancel(app_server, app_dir):
    with app_server() as (url, _), httpx.Client(base_url=url, timeout=30) as http, \
            contextlib.closing(silent_socket(url, "frozen")):
        http.get("/")
        row = http.post("/test/chatter", params={"size": 64_000, "pause": 0.005}, headers={"X-Tab": "frozen"}).text
        task_id = task_id_of(row)
        wait_for_count(http, task_id, 250)  # 16 MB of log for the page: far more than the socket buffers hold
        cancelled = http.post(f"/tasks/{task_id}/cancel", headers={"X-Tab": "frozen"})
        assert 'class="task cancelled"' in cancelled.text
        assert 'class="task cancelled"' in http.get(f"/tasks/{task_id}").text
        assert db_status(app_dir, task_id, becomes="cancelled") == "cancelled"
        with connect(url.replace("http", "ws") + "/ws?tab=awake") as other:
            http.post("/test/chatter", params={"size": 1, "steps": 2}, headers={"X-Tab": "awake"})
            while 'class="task done"' not in other.recv(timeout=5):
                pass  # the other page's frames keep coming




# --- running tasks across a second start and a crash -----------------------------------------------------


def finished(client, server, task_id: int) -> str:
    assert wait_until(client, lambda: task_id not in server.tasks.RUNS), f"task {task_id} did not end"
    return client.get(f"/tasks/{task_id}", headers={"HX-Request": "true"}).text


def test_a_failed_second_start_leaves_running_tasks_alone(app_server, app_dir):
    with app_server() as (url, _), httpx.Client(base_url=url) as http:
        http.get("/")
        task_id = task_id_of(http.post("/test/chatter", params={"pause": 3600}).text)
        wait_for_count(http, task_id, 1)  # then it sleeps: no later save can hide a wrong status
        second = subprocess.run(app_server.command(int(url.rsplit(":", 1)[1])), cwd=app_dir, env=app_server.env,
                                capture_output=True, text=True, timeout=60)
        assert second.returncode != 0 and "address already in use" in second.stderr.lower(), second.stderr
        assert db_status(app_dir, task_id) == "running"
        assert 'class="task cancelled"' in http.post(f"/tasks/{task_id}/cancel").text


def test_a_server_that_stops_saves_its_running_tasks_as_interrupted(app_server, app_dir):
    with app_server() as (url, process), httpx.Client(base_url=url) as http:
        http.get("/")
        task_id = task_id_of(http.post("/test/chatter", params={"pause": 0.05}).text)
        wait_for_count(http, task_id, 3)
        process.terminate()  # uvicorn shuts down gracefully, as on Ctrl-C
        process.wait(10)
    assert db_status(app_dir, task_id, becomes="interrupted") == "interrupted"


def test_a_crash_leaves_an_interrupted_task_with_its_progress(app_server, app_dir):
    with app_server() as (url, process), httpx.Client(base_url=url) as http:
        http.get("/")
        task_id = task_id_of(http.post("/test/chatter", params={"steps": 400, "pause": 0.05}).text)
        wait_for_count(http, task_id, 30)
        for _ in range(600):
            if db_row(app_dir, task_id)[1] >= 30:
                break
            time.sleep(0.05)
        process.send_signal(signal.SIGKILL)
        process.wait(10)
        cookies = dict(http.cookies)
    with app_server() as (url, _), httpx.Client(base_url=url, cookies=cookies) as http:
        row = http.get(f"/tasks/{task_id}").text
        assert 'class="task interrupted"' in row and "the server stopped while this task was running" in row
        done, total = map(int, COUNT.search(row).groups())
        assert done >= 30 and total == 400 and f"{done} xxxxxxxxxx" in row
        assert "cannot run again" in http.post(f"/tasks/{task_id}/again").text  # not a tool's run
        assert db_status(app_dir, task_id) == "interrupted"
