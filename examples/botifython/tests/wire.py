"""For tests over the real wire: the app served by uvicorn with test routes beside it (`app_server`), and a
websocket client that never reads, as a frozen tab's page is."""
from __future__ import annotations

import base64
import contextlib
import os
import socket
import sys
from pathlib import Path

import pytest

from conftest import ENV_PREFIX, started

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
def app_server(app_dir: Path):
    """Factory: a context manager running streaming_app under uvicorn; yields (base URL, process)."""
    (app_dir / "streaming_app.py").write_text(STREAMING_APP)
    env = dict(os.environ, **{f"{ENV_PREFIX}_ENV": "prod"})

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
