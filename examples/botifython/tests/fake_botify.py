"""A fake Botify API on 127.0.0.1 that speaks the real JSON shapes.

Real HTTP in a thread, so tools/_botify.py's httpx client, retries and pagination
run unchanged, in the test process or in a tool's child process. Tests script
failures with ``fail(path, *statuses)``: the next requests for that path (query
string included) get those statuses in order. A status is an HTTP code or one of
BREAKS, a connection that fails mid-answer. ``reshape`` rewrites every listing
page, as a broken or hostile API might. ``hold(path)`` keeps the next answer for
a path back until the test sets the event it returns.
"""
from __future__ import annotations

import contextlib
import json
import socket
import struct
import threading
import time
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

import pytest

VALID_TOKEN = "0123456789abcdef0123456789abcdef0123f00d"
LISTING = "/v1/analyses/jdoe/site-2/light"
NOT_CONNECTED = "Not connected to Botify: paste a token on the Botify card first."  # what the app says
USERNAME = "jdoe"
PAGE_SIZE = 3
STALL_SECONDS = 3.0
HOLD_SECONDS = 30.0  # a held answer goes out after this even if the test never releases it


def make_projects(count: int) -> list[dict]:
    return [
        {"slug": f"site-{n}", "name": f"Site {n}", "user": {"login": USERNAME}, "url": f"https://site-{n}.example"}
        for n in range(1, count + 1)
    ]


def make_analyses(project: str, count: int) -> list[dict]:
    return [
        {
            "id": 1000 + n,
            "slug": f"2024{n:04d}",
            "name": f"{project} crawl {n}",
            "status": "success",
            "date_launched": f"2024-01-{n % 28 + 1:02d}T08:00:00Z",
            "date_finished": f"2024-01-{n % 28 + 1:02d}T09:30:00Z",
            "computing_revision": None,
            "config": {"max_depth": 10},
        }
        for n in range(1, count + 1)
    ]


@dataclass
class FakeBotify:
    """The API's state: profile, projects, analyses per project slug, scripted failures and every request seen.

    ``next_base`` makes pagination links point at another origin, as a hostile or broken API might.
    ``reshape(page)`` returns what to send instead of each listing page: any JSON value, or bytes sent as they are.
    """

    profile: dict = field(default_factory=lambda: {
        "data": {"username": USERNAME, "email": "jdoe@example.com", "first_name": "J"}})
    projects: list[dict] = field(default_factory=lambda: make_projects(7))
    analyses: dict[str, list[dict]] = field(default_factory=dict)
    failures: dict[str, list[tuple[int | str, str | None]]] = field(default_factory=lambda: defaultdict(list))
    requests: list[tuple[str, int | str]] = field(default_factory=list)
    holds: dict[str, threading.Event] = field(default_factory=dict)
    base: str = ""
    next_base: str = ""
    reshape: Callable[[dict], object] | None = None

    def fail(self, path: str, *statuses: int | str, retry_after: str | None = None) -> None:
        self.failures[path].extend((status, retry_after) for status in statuses)

    def hold(self, path: str) -> threading.Event:
        release = self.holds[path] = threading.Event()
        return release

    def wait_if_held(self, target: str) -> None:
        if release := self.holds.pop(target, None):
            release.wait(HOLD_SECONDS)

    def answer(self, target: str, authorization: str | None) -> tuple[int | str, object, dict]:
        scripted = self.failures.get(target)
        if scripted:
            status, retry_after = scripted.pop(0)
            headers = {"Retry-After": retry_after} if retry_after is not None else {}
            return status, {"detail": "scripted failure"}, headers
        if authorization != f"Token {VALID_TOKEN}":
            return 401, {"detail": "Invalid token."}, {}
        url = urlsplit(target)
        parts = url.path.strip("/").split("/")
        page = int(parse_qs(url.query).get("page", ["1"])[0])
        match parts:
            case ["v1", "authentication", "profile"]:
                return 200, self.profile, {}
            case ["v1", "projects", user] if user == USERNAME:
                return 200, self.paginated(url.path, self.projects, page), {}
            case ["v1", "analyses", user, project, "light"] if user == USERNAME and project in self.analyses:
                return 200, self.paginated(url.path, self.analyses[project], page), {}
        return 404, {"detail": "Not found."}, {}

    def paginated(self, path: str, items: list[dict], page: int) -> object:
        start = (page - 1) * PAGE_SIZE
        last = start + PAGE_SIZE >= len(items)
        answer = {
            "count": len(items),
            "next": None if last else f"{self.next_base or self.base}{path}?page={page + 1}",
            "previous": None if page == 1 else f"{self.base}{path}?page={page - 1}",
            "page": page,
            "size": PAGE_SIZE,
            "results": items[start : start + PAGE_SIZE],
        }
        return self.reshape(answer) if self.reshape else answer


def reset(handler: BaseHTTPRequestHandler) -> None:
    """Drop the connection with a TCP reset, as a crashed proxy does."""
    handler.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    handler.connection.close()


def hang_up(handler: BaseHTTPRequestHandler) -> None:
    with contextlib.suppress(OSError):  # the client may have given up already
        handler.connection.shutdown(socket.SHUT_RDWR)


def truncate(handler: BaseHTTPRequestHandler) -> None:
    """Promise a body and send only its start."""
    handler.send_response(200)
    handler.send_header("Content-Type", "application/json")
    handler.send_header("Content-Length", "1000")
    handler.end_headers()
    handler.wfile.write(b'{"count": 11, "res')
    handler.wfile.flush()
    handler.connection.shutdown(socket.SHUT_RDWR)


def stall(handler: BaseHTTPRequestHandler) -> None:
    """Answer nothing for STALL_SECONDS, longer than the tests' read timeout."""
    time.sleep(STALL_SECONDS)
    hang_up(handler)


BREAKS = {"reset": reset, "hang up": hang_up, "truncate": truncate, "stall": stall}


def serve() -> tuple[FakeBotify, ThreadingHTTPServer]:
    """Start a fake on a free port; the API base is ``fake.base + '/v1'``."""
    fake = FakeBotify()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            fake.wait_if_held(self.path)
            status, body, headers = fake.answer(self.path, self.headers.get("Authorization"))
            fake.requests.append((self.path, status))
            if isinstance(status, str):
                self.close_connection = True
                BREAKS[status](self)
                return
            payload = body if isinstance(body, bytes) else json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            for name, value in headers.items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(payload)

        def log_message(self, format: str, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    fake.base = f"http://127.0.0.1:{server.server_port}"
    threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.01}, daemon=True).start()
    return fake, server


@pytest.fixture
def fake(monkeypatch):
    fake, http_server = serve()
    monkeypatch.setenv("BOTIFY_API_BASE", f"{fake.base}/v1")
    monkeypatch.setenv("BOTIFY_RETRY_SECONDS", "0.01")
    fake.analyses["site-2"] = make_analyses("site-2", 11)
    yield fake
    for release in fake.holds.values():
        release.set()
    http_server.shutdown()
    http_server.server_close()


def listing_requests(fake) -> list[str]:
    """The paths of the analyses listing the fake was asked for, in order."""
    return [path for path, _ in fake.requests if path.startswith(LISTING)]
