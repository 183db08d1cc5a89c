"""A stand-in Ollama on 127.0.0.1 that speaks the real wire format: GET /api/tags and the NDJSON
stream of POST /api/chat (chunked transfer, one JSON object per line, a final line with done=true).

Tests steer it through attributes: `tokens`, `delay` between tokens, `pause_after` (hold the stream
after that many tokens until `resume` is set), `break_after` (drop the connection mid-stream) and
`models`. It records what it saw: `requests` (chat bodies) and `client_gone` (the reader hung up).
"""
from __future__ import annotations

import json
import socket
import threading
import time
from datetime import datetime, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

MODELS = [
    {"name": "small:latest", "model": "small:latest", "size": 1_300_000_000,
     "details": {"format": "gguf", "family": "llama", "parameter_size": "1.2B", "quantization_level": "Q4_K_M"}},
    {"name": "big:latest", "model": "big:latest", "size": 4_700_000_000,
     "details": {"format": "gguf", "family": "llama", "parameter_size": "8.0B", "quantization_level": "Q4_K_M"}},
    {"name": "nomic-embed-text:latest", "model": "nomic-embed-text:latest", "size": 9_000_000_000,
     "details": {"format": "gguf", "family": "nomic-bert", "parameter_size": "137M", "quantization_level": "F16"}},
]


def now() -> str:
    return datetime.now(timezone.utc).isoformat().replace("+00:00", "Z")


class FakeOllama:
    def __init__(self) -> None:
        self.models = [dict(m, modified_at=now(), digest=f"{i:064x}") for i, m in enumerate(MODELS)]
        self.tokens = ["Hel", "lo", " wor", "ld", "!"]
        self.delay = 0.0
        self.pause_after: int | None = None
        self.resume = threading.Event()
        self.break_after: int | None = None
        self.stamp = False
        self.requests: list[dict] = []
        self.client_gone = threading.Event()
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.httpd.fake = self
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"

    def __enter__(self) -> FakeOllama:
        # shutdown() waits for the poll: the default 0.5 s would be paid by every test that uses a fake
        threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.01}, daemon=True).start()
        return self

    def __exit__(self, *exc) -> None:
        self.resume.set()
        self.httpd.shutdown()
        self.httpd.server_close()


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args) -> None:
        pass

    @property
    def fake(self) -> FakeOllama:
        return self.server.fake

    def do_GET(self) -> None:
        if self.path != "/api/tags":
            return self.reply(404, {"error": "not found"})
        self.reply(200, {"models": self.fake.models})

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        if self.path != "/api/chat":
            return self.reply(404, {"error": "not found"})
        self.fake.requests.append(body)
        if body["model"] not in {m["model"] for m in self.fake.models}:
            return self.reply(404, {"error": f'model "{body["model"]}" not found, try pulling it first'})
        self.stream(body["model"])

    def reply(self, status: int, payload: dict) -> None:
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json; charset=utf-8")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def chunk(self, payload: dict) -> None:
        line = json.dumps(payload).encode() + b"\n"
        self.wfile.write(b"%x\r\n%s\r\n" % (len(line), line))
        self.wfile.flush()

    def stream(self, model: str) -> None:
        fake = self.fake
        self.send_response(200)
        self.send_header("Content-Type", "application/x-ndjson")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        try:
            for sent, token in enumerate(fake.tokens):
                if sent == fake.break_after:
                    self.connection.shutdown(socket.SHUT_RDWR)
                    return
                if sent == fake.pause_after:
                    fake.resume.wait(10)
                time.sleep(fake.delay)
                content = f"{time.time_ns()} " if fake.stamp else token
                self.chunk({"model": model, "created_at": now(),
                            "message": {"role": "assistant", "content": content}, "done": False})
            self.chunk({"model": model, "created_at": now(), "message": {"role": "assistant", "content": ""},
                        "done_reason": "stop", "done": True, "total_duration": 1, "load_duration": 1,
                        "prompt_eval_count": 1, "prompt_eval_duration": 1, "eval_count": len(fake.tokens),
                        "eval_duration": 1})
            self.wfile.write(b"0\r\n\r\n")
            self.wfile.flush()
        except (BrokenPipeError, ConnectionResetError):
            fake.client_gone.set()
        self.close_connection = True


NO_OLLAMA = "http://127.0.0.1:9"  # the discard port: a chat that was not expected fails at once


@pytest.fixture
def fake_ollama():
    with FakeOllama() as fake:
        yield fake


@pytest.fixture(autouse=True)
def ollama_address(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Every test's app, in-process or served, talks to the fake Ollama if the test asked for it, else to an
    address where nothing answers; never to a real Ollama of yours."""
    url = request.getfixturevalue("fake_ollama").url if "fake_ollama" in request.fixturenames else NO_OLLAMA
    monkeypatch.setenv("OLLAMA_HOST", url)
    monkeypatch.delenv("OLLAMA_MODEL", raising=False)
    return url
