"""Helpers for the browser tests: serve a rendered app, load its fakes, take screenshots."""
from __future__ import annotations

import importlib.util
import os
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType

import httpx

from helpers import free_port

REPO = Path(__file__).resolve().parents[2]
ARTIFACTS = REPO / "test-artifacts" / "e2e"
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
    "--disable-sync",
    "--disable-quic",
]
VIEWPORT = {"width": 1000, "height": 720}
STARTUP_TIMEOUT = 30.0


def wait_until(predicate, *, timeout: float, interval: float = 0.05, what: str) -> None:
    """Poll ``predicate`` until it is truthy; fail with ``what`` after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")


def load_module(path: Path, name: str) -> ModuleType:
    """Import a file from a rendered repo (e.g. its tests/fake_ollama.py) under a unique name."""
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


@dataclass
class Server:
    """A rendered app's ``python server.py`` running in its own process group."""

    root: Path
    url: str
    process: subprocess.Popen
    log: Path

    def log_tail(self, lines: int = 40) -> str:
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])

    def stop(self) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(timeout=10)


def start_server(root: Path, *, log: Path, env: dict[str, str]) -> Server:
    """Run ``python server.py`` in ``root`` on a free 127.0.0.1 port; wait until / answers."""
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "server.py"],
        cwd=root,
        env={**os.environ, "HOST": "127.0.0.1", "PORT": str(port), "PYTHONUNBUFFERED": "1", **env},
        stdout=log.open("wb"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    server = Server(root=root, url=f"http://127.0.0.1:{port}", process=process, log=log)

    def ready() -> bool:
        if process.poll() is not None:
            raise AssertionError(f"server.py exited with {process.returncode}:\n{server.log_tail()}")
        try:
            return httpx.get(server.url + "/", timeout=2).status_code == 200
        except httpx.TransportError:
            return False

    try:
        wait_until(ready, timeout=STARTUP_TIMEOUT, interval=0.1, what=f"{server.url}/ to answer")
    except AssertionError:
        server.stop()
        raise
    return server


def offsite_router(offsite: list[str]):
    """A route handler that aborts every off-machine request and records its URL in ``offsite``.

    The apps serve htmx, its ws extension and Pico CSS from their own static/ folder, so any such request
    is a page that would break offline (or behind a firewall): the test fails with the URL.
    """

    def route_offsite(route) -> None:
        offsite.append(route.request.url)
        route.abort("blockedbyclient")

    return route_offsite


def htmx_idle(page) -> None:
    """Wait until htmx has no request in flight and has settled (wired up) everything it swapped in.

    htmx activates new content about 20 ms after inserting it; a click in that gap reaches a bare element.
    Call it after waiting for the visible result of an action, before the next action.
    """
    page.wait_for_function(
        "() => !document.querySelector('.htmx-request, .htmx-swapping, .htmx-settling, .htmx-added')"
    )


def screenshot(page, name: str, *, docs: bool = False) -> Path:
    """Save the page to test-artifacts/e2e/<name>.png; ``docs`` shots also go to $FLAKEWRIGHT_SCREENSHOTS."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    page.screenshot(path=str(path))
    docs_dir = os.environ.get("FLAKEWRIGHT_SCREENSHOTS")
    if docs and docs_dir:
        target = Path(docs_dir) if Path(docs_dir).is_absolute() else REPO / docs_dir
        target.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, target / f"{name}.png")
    return path
