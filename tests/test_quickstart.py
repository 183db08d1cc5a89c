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

from helpers import PIP_NO_COMPILING, REPO, free_port
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


@pytest.mark.parametrize("hide_uv", [False, True], ids=["uv", "no-uv-falls-back-to-pip"])
def test_new_then_scripts_run_serves_the_app_without_nix(tmp_path: Path, hide_uv: bool) -> None:
    dest = tmp_path / "my-pipulate"
    flakewright = shutil.which("flakewright") or pytest.fail("flakewright is not installed: pip install -e .")
    # The fallback proves pip installs the exported lock; without JupyterLab that lock is a third as long.
    answers = ["-d", "jupyter=false"] if hide_uv else []
    subprocess.run([flakewright, "new", "pipulate", str(dest), "--defaults", *answers, "-t", str(REPO), "--vcs-ref", "HEAD"],
                   check=True, capture_output=True, text=True)

    # A PATH with python3 and bash but, for the fallback case, no uv: a bare machine.
    bindir = tmp_path / "bin"
    bindir.mkdir()
    (bindir / "python3").symlink_to(sys.executable)
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
        assert venv_packages(dest / ".venv", ignore={"pip", "setuptools"} if hide_uv else set()) == \
            installs(dest / "uv.lock", venv_python(dest / ".venv"))  # pip installs the same lock, exported
        with pytest.raises(OSError):
            socket.create_connection(("127.0.0.2", port), timeout=1).close()  # bound to 127.0.0.1 only
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
            proc.wait(timeout=30)
