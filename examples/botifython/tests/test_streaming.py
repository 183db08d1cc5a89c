"""What streams to a tab under stress, over the real wire: odd text in the chat, a page that stops reading,
and running tasks across a second start and a crash. (In-process task saves and reports: test_task_saves.py.)

Tests that need the real wire (UTF-8 encoding, TCP back-pressure, two processes) run the app under uvicorn
with `streaming_app.py`, a small add-on module written next to server.py that registers test tasks.
"""
from __future__ import annotations

import base64
import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import apsw
import httpx
import pytest
from websockets.sync.client import connect

from conftest import COUNT, ENV_PREFIX, ollama_host, started, task_id_of, wait_until

STREAMING_APP = '''
import asyncio

from fasthtml.common import Div

from core.live import TABS
from core.tasks import start_task
from server import create_app

app = create_app()


async def chatter(report, size: int, steps: int = 0, pause: float = 0.0):
    """Report `steps` lines of `size` characters (forever if 0), `pause` seconds apart."""
    step = 0
    while not steps or step < steps:
        step += 1
        await report(step, steps, f"{step} " + "x" * size)
        await asyncio.sleep(pause)
    return f"{step} lines"


@app.post("/test/chatter")
def chatter_start(req, size: int = 10, steps: int = 0, pause: float = 0.0):
    return start_task(req, title="chatter", fn=chatter, params=dict(size=size, steps=steps, pause=pause))


@app.post("/test/send")
async def send_odd_text(tab: str):
    TABS[tab].send(Div("odd \\ud800 text", id="odd"))
    return "sent"
'''


@pytest.fixture
def app_server(app_dir: Path, request: pytest.FixtureRequest):
    """Factory: a context manager running streaming_app under uvicorn; yields (base URL, process)."""
    (app_dir / "streaming_app.py").write_text(STREAMING_APP)
    env = dict(os.environ, **{f"{ENV_PREFIX}_ENV": "prod"}, OLLAMA_HOST=ollama_host(request))

    def command(port: int) -> list[str]:
        return [sys.executable, "-m", "uvicorn", "streaming_app:app", "--host", "127.0.0.1", "--port", str(port)]

    @contextlib.contextmanager
    def run():
        process, url = started(command(0), cwd=app_dir, env=env)
        try:
            yield url, process
        finally:
            if process.poll() is None:
                process.terminate()
                process.wait(10)

    run.command, run.env = command, env
    return run


def db_row(app_dir: Path, task_id: int) -> tuple[str, int]:
    """The task's status and steps done in the database file itself, not in the server's memory."""
    (db_file,) = (app_dir / "data").glob("*.db")
    with contextlib.closing(apsw.Connection(str(db_file))) as conn:
        return conn.execute("SELECT status, done FROM tasks WHERE id = ?", [task_id]).fetchall()[0]


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


# --- chat: any string JSON accepts gets a reply or a note -----------------------------------------------


CHAT_WAIT = 60.0  # a server's first chat imports ollama first: seconds, on a loaded machine


def settle(ws) -> None:
    """Stop whatever may still stream; the chat must answer, so a jammed reply fails here."""
    ws.send('{"type": "stop"}')
    while "Stopped." not in (frame := ws.recv(timeout=CHAT_WAIT)) and "Nothing to stop" not in frame:
        pass


def replies(ws, frame: str) -> list[str]:
    """Send a raw frame; the frames up to the end of its reply, or up to its note."""
    ws.send(frame)
    frames = []
    while not frames or ("message note" not in frames[-1] and ">!</span>" not in frames[-1]):
        frames.append(ws.recv(timeout=CHAT_WAIT))
    return frames


ODD_FRAMES = [
    (r'{"type": "chat", "msg": "x\ud800y"}', "x\ufffdy"),
    (r'{"type": "chat", "msg": "\udfff"}', "\ufffd"),
    (r'{"type": "chat", "msg": "pair \ud83d\ude00 and lone \ude00"}', "pair \U0001F600 and lone \ufffd"),
    (r'{"type": "chat", "msg": "nul \u0000 inside"}', "nul \x00 inside"),
    ('{"type": "chat", "msg": "' + "long " * 12_000 + '"}', "long long"),
    (r'{"type": "\ud800"}', "Unknown frame type '\ufffd'"),
    (r'{"type": ["chat"]}', "Unknown frame type:"),
    (r'{"type": 7}', "Unknown frame type:"),
    (r'{"type": "chat", "msg": 12}', "Type a message first"),
    (r'{"type": "chat", "msg": [1]}', "Type a message first"),
    (r'{"type": "chat", "msg": true}', "Type a message first"),
    (r'"\ud800"', "Unknown frame type:"),
]


def test_any_json_string_gets_a_reply_or_a_note_and_the_chat_goes_on(app_server, fake_ollama):
    with app_server() as (url, _):
        for i, (frame, answer) in enumerate(ODD_FRAMES):
            with connect(url.replace("http", "ws") + f"/ws?tab=odd{i}") as ws:
                frames = replies(ws, frame)
                assert answer in "".join(frames) and "Traceback" not in "".join(frames), frame
                settle(ws)
                frames = replies(ws, '{"type": "chat", "msg": "and now?"}')
                assert "still streaming" not in "".join(frames) and ">!</span>" in frames[-1], frame
            history = fake_ollama.requests[-1]["messages"]
            assert all(m["content"].encode("utf-8") for m in history)  # a lone surrogate cannot be encoded


def test_unencodable_text_from_ollama_or_the_app_reaches_the_page_replaced(app_server, fake_ollama):
    fake_ollama.tokens = ["bad \ud800 token", "!"]
    with app_server() as (url, _), connect(url.replace("http", "ws") + "/ws?tab=odd") as ws:
        assert "bad \ufffd token" in "".join(replies(ws, '{"type": "chat", "msg": "hi"}'))
        settle(ws)
        assert httpx.post(f"{url}/test/send", params={"tab": "odd"}).text == "sent"
        assert 'id="odd">odd \ufffd text' in ws.recv(timeout=5)
        fake_ollama.tokens = ["fine", "!"]
        assert ">fine</span>" in "".join(replies(ws, '{"type": "chat", "msg": "again"}'))


# --- the page's socket ----------------------------------------------------------------------------------


def test_the_served_socket_sends_its_frames_uncompressed(live_server):
    with live_server() as url, connect(url.replace("http", "ws") + "/ws?tab=plain") as ws:  # offers deflate
        assert ws.response.headers.get("Sec-WebSocket-Extensions") is None


# --- a page that stops reading ---------------------------------------------------------------------------


def silent_socket(url: str, tab: str) -> socket.socket:
    """A websocket client that completes the handshake and then never reads: the page of a frozen tab."""
    host, port = url.removeprefix("http://").split(":")
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.connect((host, int(port)))
    key = base64.b64encode(os.urandom(16)).decode()
    sock.sendall(f"GET /ws?tab={tab} HTTP/1.1\r\nHost: {host}:{port}\r\nUpgrade: websocket\r\n"
                 f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n".encode())
    response = b""
    while not response.endswith(b"\r\n\r\n"):
        response += sock.recv(1)  # byte by byte: nothing past the handshake is read
    assert response.startswith(b"HTTP/1.1 101"), response
    return sock


def send_text_frame(sock: socket.socket, text: str) -> None:
    """One masked text frame, as a browser sends it."""
    payload, mask = text.encode(), os.urandom(4)
    length = bytes([0x80 | len(payload)]) if len(payload) < 126 else bytes([0xFE]) + len(payload).to_bytes(2, "big")
    sock.sendall(b"\x81" + length + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(payload)))


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


def test_a_page_that_stops_reading_a_long_reply_is_closed_and_the_reply_stops(app_server, fake_ollama):
    fake_ollama.tokens = ["y" * 60_000] * 800
    with app_server() as (url, _), contextlib.closing(silent_socket(url, "frozen")) as sock:
        send_text_frame(sock, '{"type": "chat", "msg": "tell me everything"}')
        assert fake_ollama.client_gone.wait(60)
        with connect(url.replace("http", "ws") + "/ws?tab=awake") as other:
            other.send('{"type": "stop"}')
            assert "Nothing to stop" in other.recv(timeout=5)


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
