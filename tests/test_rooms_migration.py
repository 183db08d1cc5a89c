"""A fork of the release before the rooms (one big server.py) updates to the rooms and keeps what it added.

The previous release is commit PREVIOUS of this repo (the last one CI landed before server.py was split into
core/, settings.py and the demo add-ons). A Pipulate rendered from it gets a route appended to server.py and a
tool of its own; the template then becomes this working tree, and `flakewright update` must carry both: the
route still answers under `python server.py`, the tool still has its page.
"""
from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from helpers import REPO, TemplateRepo, commit_all, flakewright, git, listed, render_tagged

PREVIOUS = "404240daee09042e13e61f16cfa07661d4c5b749"
ROUTE = '\n\n@rt("/mine")\ndef mine():\n    return "my own route"\n'
TOOL = 'def shout(text: str) -> str:\n    """Say it louder."""\n    return text.upper()\n'


@pytest.fixture
def previous_template(tmp_path: Path) -> TemplateRepo:
    if subprocess.run(["git", "-C", str(REPO), "cat-file", "-e", f"{PREVIOUS}^{{commit}}"]).returncode:
        pytest.fail(f"this clone lacks the previous release {PREVIOUS[:7]}: clone with full history")
    path = tmp_path / "template"
    path.mkdir()
    archive = subprocess.run(["git", "-C", str(REPO), "archive", PREVIOUS, "copier.yml", "template"],
                             capture_output=True, check=True).stdout
    subprocess.run(["tar", "-x", "-C", str(path)], input=archive, check=True)
    git(path, "init", "-q")
    template = TemplateRepo(path)
    template.release("v1.0.0")
    return template


def release_this_tree(template: TemplateRepo) -> None:
    shutil.rmtree(template.path / "template")
    shutil.copytree(REPO / "template", template.path / "template", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy2(REPO / "copier.yml", template.path / "copier.yml")
    template.release("v2.0.0")


def test_a_route_appended_to_the_old_server_py_and_a_tool_survive_the_update(previous_template, tmp_path):
    dest = render_tagged(previous_template, tmp_path / "app", "pipulate")
    assert len((dest / "server.py").read_text().splitlines()) > 1000  # the release before the rooms
    with (dest / "server.py").open("a") as server:
        server.write(ROUTE)
    (dest / "tools" / "mine.py").write_text(TOOL)
    commit_all(dest, "my route and my tool")
    release_this_tree(previous_template)

    result = flakewright("update", dest)

    assert result.returncode == 0, result.stdout + result.stderr
    assert listed(result.stdout, "merged with your edits") == ["server.py"], result.stdout
    assert (dest / "core" / "app.py").is_file() and not (dest / "toolbox.py").exists()
    assert ROUTE.strip() in (dest / "server.py").read_text()
    with serving(dest) as url:
        assert httpx.get(f"{url}/mine").text == "my own route"
        assert 'href="/tools/shout"' in httpx.get(f"{url}/").text
        assert "Say it louder." in httpx.get(f"{url}/tools/shout").text


class serving:
    """`python server.py` of the app in production mode on a port the kernel picks; its base URL."""

    def __init__(self, app: Path):
        prefix = re.search(r'^ENV_PREFIX = "(\w+)"', (app / "settings.py").read_text(), re.M)[1]
        self.log = app / "server.log"
        env = {**os.environ, "HOST": "127.0.0.1", "PORT": "0", f"{prefix}_ENV": "prod"}
        with self.log.open("wb") as out:
            self.process = subprocess.Popen([sys.executable, "server.py"], cwd=app, env=env, stdout=out, stderr=out)

    def __enter__(self) -> str:
        deadline = time.monotonic() + 30
        while not (found := re.search(r"Uvicorn running on (\S+)", self.log.read_text(errors="replace"))):
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.process.kill()
                raise AssertionError(f"the server did not start:\n{self.log.read_text(errors='replace')}")
            time.sleep(0.05)
        return found[1]

    def __exit__(self, *exc) -> None:
        self.process.terminate()
        self.process.wait(10)
