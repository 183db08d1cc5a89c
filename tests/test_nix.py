"""The rendered flake, entered for real with `nix develop` against the offline stand-in.

Each variant is rendered once (Python 3.11, the host's), committed to a git
checkout and entered once by the module fixture; the tests then share it.
"""
from __future__ import annotations

import json
import os
import re
import shlex
import socket
import stat
import subprocess
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import pytest

from packaging.utils import canonicalize_name

from helpers import flags, free_port, need, own_basetemp
from nixenv import CASES, OVERRIDE, current_system, eval_raw, flake_check, flake_ref, flake_show, git_checkout, run, shell
from uvlock import installs, venv_python

TITLE = 'My "App" ${x} \\ é'
SYSTEMS = {"x86_64-linux", "aarch64-linux", "x86_64-darwin", "aarch64-darwin"}
# A pip-built .venv carries pip itself (and setuptools before Python 3.12): the installer, not the lock.
INSTALLER_OWN = {"pip", "setuptools"}


@dataclass(frozen=True)
class Entered:
    name: str
    answers: dict
    render: Path
    repo: Path
    env: dict[str, str]
    first_entry: subprocess.CompletedProcess

    def shell(self, script: str, *, env: dict[str, str] | None = None, **kwargs) -> subprocess.CompletedProcess[str]:
        return shell(self.repo, script, env={**self.env, **(env or {})}, **kwargs)


@pytest.fixture(scope="module", params=list(CASES))
def entered(request, render, pip_wheels, tmp_path_factory) -> Entered:
    need("nix")
    answers = {**CASES[request.param], "python_version": "3.11", "app_title": TITLE}
    rendered = render(**answers)
    repo = git_checkout(rendered, tmp_path_factory.mktemp("nix") / request.param)
    env = pip_wheels(repo / "requirements.txt") if answers.get("installer") == "pip" else {}
    return Entered(request.param, answers, rendered, repo, env, shell(repo, "true", env=env))


def execs_during_entry(entered: Entered, tmp: Path) -> list[str]:
    """Basenames of every program exec'd while entering the shell (strace -f)."""
    trace = tmp / "execve.trace"
    # --seccomp-bpf stops the traced processes at execve only, not at every system call of an install.
    run(["strace", "-f", "--seccomp-bpf", "-qq", "-e", "trace=execve", "-o", str(trace),
         "nix", "develop", flake_ref(entered.repo), *OVERRIDE, "-c", "true"], cwd=entered.repo, env=entered.env)
    return [Path(m).name for m in re.findall(r'execve\("([^"]+)", .*\) = 0', trace.read_text())]


def test_flake_check_evaluates_every_system(entered):
    flake_check(entered.repo)
    assert set(flake_show(entered.repo)["devShells"]) == SYSTEMS


def test_darwin_shell_instantiates_without_linux_libraries(entered):
    assert eval_raw(entered.repo, "devShells.aarch64-darwin.default.drvPath").startswith("/nix/store/")
    assert eval_raw(entered.repo, "devShells.aarch64-darwin.default.LD_LIBRARY_PATH") == ""
    linux = eval_raw(entered.repo, "devShells.x86_64-linux.default.LD_LIBRARY_PATH").split(":")
    assert len(linux) == 2 and all(p.startswith("/nix/store/") and p.endswith("/lib") for p in linux)


def test_title_round_trips_through_nix_and_the_shell(entered):
    system = current_system()
    assert eval_raw(entered.repo, f"devShells.{system}.default.APP_TITLE") == TITLE
    assert entered.shell('printf %s "$APP_TITLE"').stdout == TITLE
    assert f"== {TITLE} ==" in entered.first_entry.stderr.splitlines()


def venv_packages(entered: Entered) -> dict[str, str]:
    """Canonical name -> version of every distribution in the shell's .venv, as Python sees it."""
    out = entered.shell("python -c 'import json, importlib.metadata as m; "
                      "print(json.dumps({d.metadata[\"Name\"]: d.version for d in m.distributions()}))'").stdout
    installed = {canonicalize_name(name): version for name, version in json.loads(out).items()}
    return {name: version for name, version in installed.items() if name not in INSTALLER_OWN}


def lock_for_this_machine(repo: Path) -> dict[str, str]:
    return installs(repo / "uv.lock", venv_python(repo / ".venv"))


def test_first_entry_installs_the_lock_and_numpy_imports(entered):
    assert "venv.sh: creating .venv" in entered.first_entry.stderr
    assert (entered.repo / ".venv" / ".installed").is_file()
    out = entered.shell('python -c "import sys, numpy; print(sys.prefix); print(numpy.ones(3).sum())"').stdout
    assert out.split() == [str(entered.repo / ".venv"), "3.0"]
    locked = lock_for_this_machine(entered.repo)
    assert {"numpy", "pandas", "pytest"} <= locked.keys()
    assert venv_packages(entered) == locked


def test_warm_entry_starts_no_installer_and_no_python(entered, tmp_path):
    need("strace")
    warm = execs_during_entry(entered, tmp_path)
    assert "bash" in warm and "true" in warm  # the trace does see the shell and the command
    assert not {"uv", "pip", "pip3"} & set(warm) and not any(n.startswith("python") for n in warm), warm

    uv = entered.answers.get("installer", "uv") == "uv"
    lock = entered.repo / ("uv.lock" if uv else "requirements.txt")
    original, unchanged = lock.read_text(), lock.stat()
    try:
        lock.write_text(original + "# changed\n")
        changed = execs_during_entry(entered, tmp_path)
        assert ("uv" if uv else "python") in changed, changed  # pip runs as python -m pip
    finally:
        # The .venv now holds the original lock plus a comment: the same packages. Restoring the lock's
        # content and age leaves it warm, so the next test does not pay for a reinstall.
        lock.write_text(original)
        os.utime(lock, ns=(unchanged.st_atime_ns, unchanged.st_mtime_ns))


def test_cuda_is_detected_at_run_time_only(entered, tmp_path):
    path = os.pathsep.join(d for d in os.environ["PATH"].split(os.pathsep) if not (Path(d) / "nvidia-smi").exists())
    assert "CUDA: no NVIDIA GPU found, running on CPU" in entered.shell("true", env={"PATH": path}).stderr
    fake = tmp_path / "bin"
    fake.mkdir()
    (fake / "nvidia-smi").write_text("#!/bin/sh\nexit 0\n")
    (fake / "nvidia-smi").chmod(0o755)
    with_gpu = entered.shell("true", env={"PATH": f"{fake}{os.pathsep}{path}"}).stderr
    assert "CUDA: NVIDIA driver found" in with_gpu
    closure = run(["nix", "show-derivation", "-r", f"{flake_ref(entered.repo)}#devShells.{current_system()}.default",
                   *OVERRIDE]).stdout
    assert "cudatoolkit" not in closure.lower()
    assert not [drv for drv in json.loads(closure) if "cuda" in drv.lower()]


def test_rendered_repo_own_test_suite_passes(entered, tmp_path):
    command = shlex.join(["python", "-m", "pytest", "-q", "-p", "no:cacheprovider", *own_basetemp(tmp_path)])
    result = entered.shell(command, check=False, timeout=900)
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    assert re.search(r"\d+ passed", result.stdout)


def test_scripts_keep_their_executable_bits(entered):
    scripts = entered.render / "scripts"
    expected = {"venv.sh", "deps"}
    if flags(entered.answers)["jupyter"]:
        expected |= {"start", "stop"}
    if flags(entered.answers)["web"]:
        expected |= {"run", "migrate-to-postgres"}
    assert {p.name for p in scripts.iterdir()} == expected
    for name in expected - {"venv.sh"}:
        assert (scripts / name).stat().st_mode & stat.S_IXUSR, name


def status(port: int, token: str | None) -> int:
    headers = {"Authorization": f"token {token}"} if token else {}
    try:
        with urllib.request.urlopen(urllib.request.Request(f"http://127.0.0.1:{port}/api/status", headers=headers), timeout=5) as r:
            return r.status
    except urllib.error.HTTPError as e:
        return e.code


def test_jupyter_start_and_stop(entered, tmp_path):
    if not flags(entered.answers)["jupyter"]:
        offered = entered.shell("command -v start stop", check=False)
        assert offered.returncode != 0 and not offered.stdout.strip(), "jupyter is off, yet start/stop are on PATH"
        return
    need("tmux")
    port = free_port()
    env = {"TMUX_TMPDIR": str(tmp_path), "JUPYTER_PORT": str(port)}
    try:
        started = entered.shell("start", env=env, timeout=300)
        token_file = entered.repo / "data" / "jupyter_token"
        token = token_file.read_text()
        assert stat.S_IMODE(token_file.stat().st_mode) == 0o600
        assert f"http://127.0.0.1:{port}/lab?token={token}" in started.stdout
        assert status(port, token) == 200
        assert status(port, None) == 403
        assert status(port, "wrong") == 403
        xsrf = urllib.request.Request(f"http://127.0.0.1:{port}/api/contents", method="POST",
                                      headers={"Cookie": "_xsrf=forged"}, data=b"{}")
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(xsrf, timeout=5)
        assert refused.value.code == 403
        cmdlines = [p.read_bytes() for p in Path("/proc").glob("[0-9]*/cmdline") if p.exists()]
        assert not [c for c in cmdlines if token.encode() in c], "token visible in a process command line"
        assert token not in (entered.repo / "data" / "jupyter.log").read_text()

        again = entered.shell("start", env=env, timeout=120)
        assert f"http://127.0.0.1:{port}/lab?token={token}" in again.stdout
        with socket.create_connection(("127.0.0.1", port), timeout=5):
            pass

        assert "JupyterLab stopped" in entered.shell("stop", env=env).stdout
        with pytest.raises(OSError):
            socket.create_connection(("127.0.0.1", port), timeout=2).close()
        assert "not running" in entered.shell("stop", env=env).stdout
    finally:
        entered.shell("stop", env=env, check=False)
        subprocess.run(["tmux", "kill-server"], env={**os.environ, **env}, capture_output=True)


def test_starter_notebook_runs_in_the_venv(entered):
    """The notebook-to-app bridge, executed headless by nbclient with the shell's own .venv kernel."""
    notebook = entered.repo / "notebooks" / "starter.ipynb"
    if not flags(entered.answers)["jupyter"]:
        assert not notebook.exists(), "jupyter is off, yet a starter notebook was rendered"
        return
    result = entered.shell("jupyter execute --kernel_name=python3 notebooks/starter.ipynb", check=False, timeout=600)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "Executing notebook" in result.stderr or "Executing notebook" in result.stdout


def test_removed_dependency_leaves_the_venv(entered):
    """deps remove relocks and installs; a checkout that only pulls the relocked files follows on entry.

    Last in the module: it leaves the .venv holding the relocked files, and no later test enters this case."""
    repo = entered.repo
    files = ("pyproject.toml", "uv.lock", "requirements.txt")
    original = {name: (repo / name).read_text() for name in files}
    try:
        entered.shell("deps remove pandas", timeout=600)
        relocked = {name: (repo / name).read_text() for name in files}
        assert all(relocked[name] != original[name] for name in files)
        assert "pandas" not in lock_for_this_machine(repo) and "pandas" not in venv_packages(entered)

        for name in files:
            (repo / name).write_text(original[name])
        entered.shell("true")
        assert venv_packages(entered) == lock_for_this_machine(repo) and "pandas" in venv_packages(entered)

        for name in files:
            (repo / name).write_text(relocked[name])
        entered.shell("true")
        assert venv_packages(entered) == lock_for_this_machine(repo) and "pandas" not in venv_packages(entered)
    finally:
        for name in files:
            (repo / name).write_text(original[name])
