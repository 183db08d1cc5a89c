"""The README's first command, for real and without Nix: the CLI renders a Pipulate and
scripts/run builds the app's own .venv with the host python3 and serves it on 127.0.0.1."""
from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from packaging.utils import canonicalize_name

from helpers import PIP_NO_COMPILING, REPO, free_port, need
from uvlock import installs, venv_python


def venv_packages(venv: Path, *, ignore: set[str]) -> dict[str, str]:
    out = subprocess.run([venv / "bin" / "python", "-c", "import importlib.metadata as m; "
                          "print(*(d.metadata['Name'] + '==' + d.version for d in m.distributions()))"],
                         capture_output=True, text=True, check=True).stdout
    pins = (pin.split("==") for pin in out.split())
    return {canonicalize_name(name): version for name, version in pins if canonicalize_name(name) not in ignore}


def wait_for_page(url: str, proc: subprocess.Popen, *, timeout: float) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"scripts/run exited {proc.returncode} before serving:\n{proc.stdout.read()}")
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                return response.read().decode()
        except OSError:
            time.sleep(0.5)
    raise AssertionError(f"nothing answered on {url} within {timeout}s")


def interpreter(version: str) -> str:
    """This interpreter, or another CPython of that version (pyenv's, on CI's machine); a skip where there is none
    (a failure under FLAKEWRIGHT_REQUIRE_ALL)."""
    if f"{sys.version_info.major}.{sys.version_info.minor}" == version:
        return sys.executable
    found = sorted(Path.home().glob(f".pyenv/versions/{version}.*/bin/python{version}"))
    return str(found[-1]) if found else need(f"python{version}", why="the pip path is tested on each supported Python")


def bundled_pip(python: str) -> str:
    return subprocess.run([python, "-c", "import ensurepip; print(ensurepip.version())"], capture_output=True,
                          text=True, check=True).stdout.strip()


# The pip path runs with the pip each Python bundles (ensurepip's), as a bare machine has it: 23.2 on 3.11 and
# 3.12 refused the exported lock in hash mode once a newer uvicorn was published.
@pytest.mark.parametrize("hide_uv, version", [(False, "3.11"), (True, "3.11"), (True, "3.12"), (True, "3.13")],
                         ids=["uv", "no-uv-pip-3.11", "no-uv-pip-3.12", "no-uv-pip-3.13"])
def test_new_then_scripts_run_serves_the_app_without_nix(tmp_path: Path, hide_uv: bool, version: str) -> None:
    python = interpreter(version)
    dest = tmp_path / "my-pipulate"
    flakewright = shutil.which("flakewright") or pytest.fail("flakewright is not installed: pip install -e .")
    # The fallback proves pip installs the exported lock; without JupyterLab that lock is a third as long.
    answers = ["-d", "jupyter=false"] if hide_uv else []
    subprocess.run([flakewright, "new", "pipulate", str(dest), "--defaults", *answers, "-t", str(REPO), "--vcs-ref", "HEAD"],
                   check=True, capture_output=True, text=True)

    # A PATH with python3 and bash but, for the fallback case, no uv: a bare machine.
    bindir = tmp_path / "bin"
    bindir.mkdir()
    (bindir / "python3").symlink_to(python)
    path = [str(bindir), "/usr/bin", "/bin"]
    if not hide_uv:
        path.insert(1, str(Path(shutil.which("uv") or pytest.fail("uv is not installed")).parent))
    port = free_port()
    env = {**os.environ, "PATH": os.pathsep.join(path), "PORT": str(port), "MY_PIPULATE_ENV": "prod",
           **PIP_NO_COMPILING}
    env.pop("VIRTUAL_ENV", None)
    proc = subprocess.Popen([str(dest / "scripts" / "run")], cwd=tmp_path, env=env, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        page = wait_for_page(f"http://127.0.0.1:{port}/", proc, timeout=600)
        assert "<title>My Pipulate</title>" in page
        assert (dest / "data" / "my-pipulate.db").is_file()
        assert (dest / ".venv" / "bin" / "python").exists()
        installer = (dest / ".venv" / ".interpreter").read_text().split()[-1]
        assert installer == ("pip" if hide_uv else "uv")
        if hide_uv:
            assert venv_packages(dest / ".venv", ignore=set())["pip"] == bundled_pip(python)
        assert venv_packages(dest / ".venv", ignore={"pip", "setuptools"} if hide_uv else set()) == \
            installs(dest / "uv.lock", venv_python(dest / ".venv"))  # pip installs the same lock, exported
        with pytest.raises(OSError):
            socket.create_connection(("127.0.0.2", port), timeout=1).close()  # bound to 127.0.0.1 only
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
            proc.wait(timeout=30)


def readme_first_command() -> str:
    """The first shell block under the README's Quick start heading, as a user copies it."""
    text = (REPO / "README.md").read_text()
    section = text.split("## Quick start", 1)[1]
    return section.split("```sh\n", 1)[1].split("\n```", 1)[0]


def test_the_readme_first_command_works_as_written_from_a_fresh_home(tmp_path: Path) -> None:
    """As a new user runs it: from the checkout, with a home of its own, no flakewright installed, the CLI in a
    venv, the app rendered outside the checkout."""
    home = tmp_path / "home"
    home.mkdir()
    bindir = tmp_path / "bin"
    bindir.mkdir()
    (bindir / "python3").symlink_to(sys.executable)
    port = free_port()
    cache = Path(os.environ.get("PIP_CACHE_DIR", Path.home() / ".cache" / "pip"))  # downloads once per machine
    env = {**os.environ, "HOME": str(home), "PATH": os.pathsep.join([str(bindir), "/usr/bin", "/bin"]),
           "PORT": str(port), "PIP_CACHE_DIR": str(cache), **PIP_NO_COMPILING}
    env.pop("VIRTUAL_ENV", None)
    proc = subprocess.Popen(["bash", "-c", readme_first_command()], cwd=REPO, env=env, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        page = wait_for_page(f"http://127.0.0.1:{port}/", proc, timeout=600)
        assert "<title>My Pipulate</title>" in page
        assert (home / "my-pipulate" / "data" / "my-pipulate.db").is_file()
        assert not (REPO / "my-pipulate").exists()
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
            proc.wait(timeout=30)
