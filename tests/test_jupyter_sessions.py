"""JupyterLab per repo: scripts/start and scripts/stop of two darwinix renders that share a project_name.

Both repos live in folders of the same name, so the default project_name is the same, and their
start scripts run against one private tmux server (TMUX_TMPDIR). Each repo's .venv holds links to
this interpreter and its real JupyterLab, so no install runs; the scripts themselves are the
rendered ones, run as the user would.
"""
from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
import yaml

from helpers import REPO, flakewright, need

URL = re.compile(r"JupyterLab: http://127\.0\.0\.1:(\d+)/lab\?token=(\S+)")
SESSION = re.compile(r"\(tmux session (\S+);")


class Repo:
    """A darwinix made by `flakewright new --defaults`, its .venv pointing at this interpreter's JupyterLab."""

    def __init__(self, path: Path, env: dict[str, str]) -> None:
        created = flakewright("new", "darwinix", path, "--defaults", "--template", REPO, "--vcs-ref", "HEAD")
        assert created.returncode == 0, created.stderr
        self.path = path.resolve()
        bin_dir = self.path / ".venv" / "bin"
        bin_dir.mkdir(parents=True)
        (bin_dir / "python").symlink_to(sys.executable)
        (bin_dir / "jupyter-lab").write_text(f'#!/bin/sh\nexec {sys.executable} -m jupyterlab "$@"\n')
        (bin_dir / "jupyter-lab").chmod(0o755)
        self.env = {**env, "VIRTUAL_ENV": str(self.path / ".venv")}

    @property
    def project_name(self) -> str:
        return yaml.safe_load((self.path / ".copier-answers.yml").read_text())["project_name"]

    def run(self, script: str, *, check: bool = True) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(["bash", str(self.path / "scripts" / script)], cwd=self.path, env=self.env,
                                capture_output=True, text=True, timeout=180)
        assert not check or result.returncode == 0, f"{script} failed:\n{result.stdout}\n{result.stderr}"
        return result

    def start(self) -> tuple[int, str, str]:
        """Run scripts/start; return the port, token and tmux session it reports."""
        out = self.run("start").stdout
        url, session = URL.search(out), SESSION.search(out)
        assert url and session, out
        return int(url.group(1)), url.group(2), session.group(1)


def answers(port: int, token: str) -> bool:
    try:
        response = httpx.get(f"http://127.0.0.1:{port}/api/status", headers={"Authorization": f"token {token}"}, timeout=5)
    except httpx.TransportError:
        return False
    return response.status_code == 200


@pytest.fixture
def tmux_env(tmp_path):
    need("tmux")
    state = tmp_path / "jupyter-state"
    env = {
        **{k: v for k, v in os.environ.items() if k not in ("JUPYTER_PORT", "TMUX", "VIRTUAL_ENV")},
        "TMUX_TMPDIR": str(tmp_path / "tmux"),
        "JUPYTER_RUNTIME_DIR": str(state / "runtime"),
        "JUPYTERLAB_WORKSPACES_DIR": str(state / "workspaces"),
        "JUPYTERLAB_SETTINGS_DIR": str(state / "settings"),
    }
    (tmp_path / "tmux").mkdir()
    yield env
    subprocess.run(["tmux", "kill-server"], env=env, capture_output=True)  # only this test's private server


def test_two_repos_with_one_project_name_run_side_by_side(tmp_path, tmux_env):
    one = Repo(tmp_path / "one" / "lab", tmux_env)
    two = Repo(tmp_path / "two" / "lab", tmux_env)
    assert one.project_name == two.project_name == "lab"
    try:
        port_one, token_one, session_one = one.start()
        port_two, token_two, session_two = two.start()

        assert port_one != port_two and session_one != session_two
        assert answers(port_one, token_one) and answers(port_two, token_two)
        assert one.start() == (port_one, token_one, session_one), "start again reuses this repo's own session"
        assert answers(port_two, token_two)

        assert "JupyterLab stopped" in one.run("stop").stdout
        assert not answers(port_one, token_one)
        assert answers(port_two, token_two), "stopping one repo stopped the other's JupyterLab"
        assert "not running" in one.run("stop").stdout
        assert answers(port_two, token_two)
    finally:
        one.run("stop", check=False)
        two.run("stop", check=False)


def test_a_session_of_the_same_name_from_elsewhere_is_never_reused_or_killed(tmp_path, tmux_env):
    repo = Repo(tmp_path / "lab", tmux_env)
    port, token, session = repo.start()
    assert "JupyterLab stopped" in repo.run("stop").stdout
    decoy = subprocess.run(["tmux", "new-session", "-d", "-s", session, "-e", f"JUPYTER_ROOT={tmp_path / 'other'}",
                            "-e", f"JUPYTER_PORT={port}", "sleep 600"], env=tmux_env, capture_output=True, text=True)
    assert decoy.returncode == 0, decoy.stderr

    refused = repo.run("start", check=False)
    assert refused.returncode == 1
    assert refused.stderr.strip() == f"start: tmux session {session} belongs to {tmp_path / 'other'}, not this repo; stop it there first"
    assert "not running here" in repo.run("stop").stdout

    alive = subprocess.run(["tmux", "has-session", "-t", f"={session}"], env=tmux_env, capture_output=True)
    assert alive.returncode == 0, "the other repo's session was killed"
    assert not answers(port, token)


SQUAT = """import socket, sys, time
port = next(int(arg.split("=", 1)[1]) for arg in sys.argv[1:] if arg.startswith("--port="))
with socket.socket() as squatter:
    try:
        squatter.bind(("127.0.0.1", port))
        squatter.listen()
    except OSError:  # another test's JupyterLab, on another worker, took it first: taken all the same
        pass
    open(sys.argv[0] + ".port", "w").write(str(port))
    time.sleep(120)
"""


def test_a_port_taken_between_the_check_and_the_bind_moves_start_to_the_next(tmp_path, tmux_env):
    """As when two repos start at the same moment: the port start found free is taken before JupyterLab binds it."""
    repo = Repo(tmp_path / "lab", tmux_env)
    shim = repo.path / ".venv" / "bin" / "jupyter-lab"
    squat = repo.path / ".venv" / "squat.py"
    squat.write_text(SQUAT)
    # The first launch only: another program binds the chosen port, then JupyterLab tries it.
    shim.write_text(f'#!/bin/sh\nif [ ! -e {squat}.port ]; then {sys.executable} {squat} "$@" & '
                    f'while [ ! -e {squat}.port ]; do sleep 0.1; done; fi\nexec {sys.executable} -m jupyterlab "$@"\n')
    try:
        port, token, _ = repo.start()
        taken = int((squat.parent / "squat.py.port").read_text())
        assert port > taken and answers(port, token)
        assert f"port {taken} is already in use" in (repo.path / "data" / "jupyter.log").read_text()
    finally:
        repo.run("stop", check=False)
        subprocess.run(["pkill", "-f", str(squat)])
