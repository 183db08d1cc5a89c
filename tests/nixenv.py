"""Run Nix offline against tests/nixpkgs-standin.

Every flake under test is evaluated with ``--override-input nixpkgs
path:<stand-in>``, so nothing is downloaded. Other test modules import these
helpers; callers check ``need("nix")`` first.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

from helpers import REPO

STANDIN = REPO / "tests" / "nixpkgs-standin"
NIX_CONFIG = "\n".join(
    [
        "experimental-features = nix-command flakes",
        "sandbox = false",
        "substituters =",
        "build-users-group =",
        "warn-dirty = false",
    ]
)
OVERRIDE = ["--no-write-lock-file", "--override-input", "nixpkgs", f"path:{STANDIN}"]
# The renders test_nix.py enters (and whose own suites it runs in their shells); test_rendered_suites.py
# runs the suites of the default renders these do not cover. The pipulate case is the cheap web one
# (no demo, no JupyterLab): the default pipulate, which has both, runs its suite on the host.
CASES = {
    "darwinix": {"variant": "darwinix"},
    "darwinix-pip": {"variant": "darwinix", "installer": "pip", "jupyter": False},
    "pipulate": {"variant": "pipulate", "demo": False, "jupyter": False},
    "botifython": {"variant": "botifython", "jupyter": True},
}
GIT_ID = ["-c", "user.name=flakewright tests", "-c", "user.email=tests@flakewright.invalid"]


def nix_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    """The environment for a nix command: offline config, nothing inherited from a user's nix.conf mistakes."""
    env = {**os.environ, "NIX_CONFIG": NIX_CONFIG}
    env.update(extra or {})
    return env


def run(args: list[str], *, cwd: Path | None = None, env: dict[str, str] | None = None,
        timeout: float = 900, check: bool = True) -> subprocess.CompletedProcess[str]:
    """Run a command; on failure raise with its output so pytest shows why."""
    result = subprocess.run(args, cwd=cwd, env=nix_env(env), capture_output=True, text=True, timeout=timeout)
    if check and result.returncode != 0:
        raise AssertionError(
            f"{' '.join(map(str, args))} exited {result.returncode}\n--- stdout\n{result.stdout}\n--- stderr\n{result.stderr}"
        )
    return result


def flake_ref(flake: Path) -> str:
    """A git checkout is referenced as is (Nix copies tracked files only); anything else as path:."""
    return str(flake) if (flake / ".git").exists() else f"path:{flake}"


def develop(flake: Path, *command: str, env: dict[str, str] | None = None, timeout: float = 900,
            check: bool = True) -> subprocess.CompletedProcess[str]:
    """``nix develop <flake> -c command...`` from inside the flake directory."""
    return run(["nix", "develop", flake_ref(flake), *OVERRIDE, "-c", *command],
               cwd=flake, env=env, timeout=timeout, check=check)


def shell(flake: Path, script: str, **kwargs) -> subprocess.CompletedProcess[str]:
    """Run a bash script inside the flake's dev shell."""
    return develop(flake, "bash", "-c", script, **kwargs)


def eval_json(flake: Path, attr: str, **kwargs) -> object:
    """``nix eval --json <flake>#attr``."""
    return json.loads(run(["nix", "eval", "--json", f"{flake_ref(flake)}#{attr}", *OVERRIDE], **kwargs).stdout)


def eval_raw(flake: Path, attr: str, **kwargs) -> str:
    """``nix eval --raw <flake>#attr``."""
    return run(["nix", "eval", "--raw", f"{flake_ref(flake)}#{attr}", *OVERRIDE], **kwargs).stdout


def flake_check(flake: Path, **kwargs) -> subprocess.CompletedProcess[str]:
    """``nix flake check --no-build``: evaluates every output for every system."""
    return run(["nix", "flake", "check", "--no-build", flake_ref(flake), *OVERRIDE], **kwargs)


def flake_show(flake: Path, **kwargs) -> dict:
    """``nix flake show --json``."""
    return json.loads(run(["nix", "flake", "show", "--json", flake_ref(flake), *OVERRIDE], **kwargs).stdout)


def git_checkout(source: Path, dest: Path) -> Path:
    """Copy ``source`` to ``dest`` and commit it, as a user's fork would be.

    Nix then copies only tracked files into the store: .venv and data/ stay out
    (they are in the rendered .gitignore), which keeps warm shell entry fast.
    """
    shutil.copytree(source, dest, symlinks=True, ignore=shutil.ignore_patterns(".git", ".venv", "data"))
    run(["git", "init", "-q", str(dest)])
    run(["git", "-C", str(dest), "add", "-A"])
    run(["git", "-C", str(dest), *GIT_ID, "commit", "-q", "-m", "rendered by flakewright"])
    return dest


def current_system() -> str:
    """The system Nix builds for here, e.g. x86_64-linux."""
    return run(["nix", "eval", "--impure", "--raw", "--expr", "builtins.currentSystem"]).stdout
