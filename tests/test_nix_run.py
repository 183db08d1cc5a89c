"""`nix run` of a web render, for real against the offline stand-in: it serves the app, and every file the app
writes lands in the data folder (DATA_DIR, else $XDG_DATA_HOME/<slug>), none beside its code in the store.

What the stand-in cannot show (docs/deploy.md): that the real nixpkgs' python, uv and writeShellScriptBin build
the same way, and a first start without a network.
"""
from __future__ import annotations

import os
import re
import signal
import stat
import subprocess
import time
import urllib.request
from pathlib import Path

import pytest

from helpers import need
from nixenv import OVERRIDE, flake_ref, flake_show, git_checkout, nix_env, run

SYSTEMS = {"x86_64-linux", "aarch64-linux", "x86_64-darwin", "aarch64-darwin"}
LISTENING = re.compile(r"Uvicorn running on (http://\S+)")
INSTALLING = "installing the locked Python packages"
CASES = {
    "uv": {"variant": "pipulate", "demo": False, "jupyter": False, "python_version": "3.11"},
    "pip": {"variant": "pipulate", "demo": False, "jupyter": False, "python_version": "3.11", "installer": "pip"},
}


def uv_cache() -> str:
    """The host's uv cache: a test moves XDG_CACHE_HOME, and uv would otherwise download the lock again."""
    return subprocess.run(["uv", "cache", "dir"], capture_output=True, text=True, check=True).stdout.strip()


@pytest.fixture(scope="module", params=list(CASES))
def checkout(request, render, pip_wheels, tmp_path_factory) -> tuple[Path, dict[str, str]]:
    need("nix")
    need("uv")
    repo = git_checkout(render(**CASES[request.param]), tmp_path_factory.mktemp("nix-run") / "pipulate")
    env = pip_wheels(repo / "requirements.txt") if request.param == "pip" else {}
    return repo, {**env, "UV_CACHE_DIR": uv_cache()}


def serve(repo: Path, env: dict[str, str], log: Path) -> tuple[subprocess.Popen, str]:
    """`nix run <repo>` on a port the kernel picks; the process and the address it reports."""
    with log.open("w") as out:
        process = subprocess.Popen(["nix", "run", flake_ref(repo), *OVERRIDE], cwd=log.parent,
                                   env=nix_env({"PORT": "0", **env}), stdout=out, stderr=out, start_new_session=True)
    deadline = time.monotonic() + 600  # a first start installs the lock
    while not (listening := LISTENING.search(log.read_text())):
        if process.poll() is not None or time.monotonic() > deadline:
            stop(process)
            raise AssertionError(f"nix run did not serve:\n{log.read_text()[-4000:]}")
        time.sleep(0.2)
    return process, listening[1]


def stop(process: subprocess.Popen) -> None:
    """nix run execs the launcher, which execs python: the group started for it holds the server."""
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(15)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()


def get(url: str) -> int:
    with urllib.request.urlopen(url, timeout=30) as answer:
        return answer.status


def store_files(folder: Path) -> set[str]:
    return {str(p.relative_to(folder)) for p in folder.rglob("*")}


def app_in_store(repo: Path) -> Path:
    """The app's code as the package runs it: the store folder named on the launcher's exec line."""
    built = run(["nix", "build", "--no-link", "--json", f"{flake_ref(repo)}#default", *OVERRIDE]).stdout
    launcher = Path(re.search(r'"out":"([^"]+)"', built)[1]) / "bin" / "pipulate"
    return Path(re.search(r"(/nix/store/[^/\s]+-pipulate-app)/server\.py", launcher.read_text())[1])


def assert_owner_only_state(data: Path) -> None:
    assert stat.S_IMODE(data.stat().st_mode) == 0o700
    for name in ("pipulate.db", ".sesskey", "server.lock"):
        assert stat.S_IMODE((data / name).stat().st_mode) == 0o600, name
    for name in ("uploads", "outputs"):
        assert stat.S_IMODE((data / name).stat().st_mode) == 0o700, name


def test_packages_and_apps_for_every_system(checkout):
    repo, _ = checkout
    shown = flake_show(repo)
    assert set(shown["packages"]) == set(shown["apps"]) == set(shown["devShells"]) == SYSTEMS


def test_nix_run_serves_with_state_in_the_data_folder_only(checkout, tmp_path):
    repo, env = checkout
    home = tmp_path / "home"
    env = {**env, "HOME": str(home), "XDG_DATA_HOME": str(tmp_path / "share"), "XDG_CACHE_HOME": str(tmp_path / "cache")}
    env.pop("DATA_DIR", None)
    app = app_in_store(repo)
    code = store_files(app)
    assert "server.py" in code and not {"data", ".venv"} & code

    process, url = serve(repo, env, tmp_path / "first.log")
    try:
        assert get(url + "/") == 200
    finally:
        stop(process)
    assert INSTALLING in (tmp_path / "first.log").read_text()
    assert_owner_only_state(tmp_path / "share" / "pipulate")
    assert (tmp_path / "cache" / "pipulate" / "venv" / ".installed").is_file()
    # Host tools may keep their own settings in HOME (rustup does); nothing of the app's is there.
    assert not [p for p in home.rglob("*") if "pipulate" in p.name], "the app wrote outside its XDG folders"
    assert store_files(app) == code, "the app wrote beside its code in the store"

    # DATA_DIR wins over XDG_DATA_HOME, a parent that does not exist yet is made, and a warm start installs nothing.
    elsewhere = tmp_path / "team" / "state"
    process, url = serve(repo, {**env, "DATA_DIR": str(elsewhere)}, tmp_path / "second.log")
    try:
        assert get(url + "/") == 200
    finally:
        stop(process)
    assert INSTALLING not in (tmp_path / "second.log").read_text()
    assert_owner_only_state(elsewhere)
    assert store_files(app) == code


def test_darwinix_has_no_app(render, tmp_path):
    need("nix")
    repo = git_checkout(render("darwinix", jupyter=False), tmp_path / "darwinix")
    shown = flake_show(repo)
    assert "apps" not in shown and "packages" not in shown and set(shown["devShells"]) == SYSTEMS
