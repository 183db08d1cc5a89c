"""Drive a command in a real terminal (tmux on a private socket), as a person at a keyboard would."""
from __future__ import annotations

import os
import shlex
import subprocess
import sys
import time
from pathlib import Path

from helpers import need


class Terminal:
    """One tmux window running ``args`` (via this interpreter's ``-m``), ``width`` columns by ``height`` rows."""

    def __init__(self, *args: str | Path, width: int = 80, height: int = 30, cwd: Path | None = None) -> None:
        self.tmux = [need("tmux", why="drives an interactive prompt"), "-L", f"flakewright-test-{os.getpid()}"]
        command = " ".join(shlex.quote(str(a)) for a in (sys.executable, "-m", *args))
        env = " ".join(
            f"{key}={shlex.quote(os.environ[key])}" for key in ("PYTHONPATH", "GIT_AUTHOR_NAME", "GIT_AUTHOR_EMAIL") if key in os.environ
        )
        shell = f"cd {shlex.quote(str(cwd or Path.cwd()))} && env {env} {command}; echo EXIT=$?; sleep 60"
        subprocess.run([*self.tmux, "new-session", "-d", "-x", str(width), "-y", str(height), shell], check=True)

    def screen(self) -> str:
        return subprocess.run([*self.tmux, "capture-pane", "-p"], capture_output=True, text=True).stdout

    def wait_for(self, text: str, *, timeout: float = 90) -> str:
        """The screen once ``text`` shows (lines joined, so wrapped text counts), or as it is at the timeout."""
        deadline = time.monotonic() + timeout
        while True:
            screen = self.screen()
            if text in screen.replace("\n", "") or time.monotonic() > deadline:
                return screen
            time.sleep(0.2)

    def type(self, *keys: str) -> None:
        subprocess.run([*self.tmux, "send-keys", *keys], check=True)

    def close(self) -> None:
        subprocess.run([*self.tmux, "kill-server"], capture_output=True)

    def __enter__(self) -> Terminal:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
