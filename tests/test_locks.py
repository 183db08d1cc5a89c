"""The locks the template ships: fresh against the declarations, rendered byte for byte, and
carried into derived repos by `flakewright update`, where the next shell entry installs them."""
from __future__ import annotations

import os
import platform
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from packaging.utils import canonicalize_name

from helpers import REPO, VARIANTS, WEB, commit_all, copy_template, flakewright, git, need, render_tagged
from nixenv import shell
from uvlock import installs, venv_python

LOCKS = REPO / "template" / "_locks"
RELOCK = REPO / "scripts" / "relock.py"


def relock_check(repo: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, str(repo / "scripts" / "relock.py"), "--check"],
                          capture_output=True, text=True, timeout=900)


def template_copy(path: Path) -> Path:
    """This repo's template and relock script in a git repo of their own, for a test to edit."""
    copy_template(path)
    (path / "scripts").mkdir()
    shutil.copy2(RELOCK, path / "scripts" / "relock.py")
    git(path, "init", "-q")
    commit_all(path, "template")
    return path


def test_shipped_locks_match_their_declarations():
    need("uv")
    result = relock_check(REPO)
    assert result.returncode == 0, f"{result.stderr}\nrelock with: python scripts/relock.py"


def test_a_declaration_without_relock_is_reported_stale(tmp_path: Path):
    need("uv")
    copy = template_copy(tmp_path / "template")
    declarations = copy / "template" / "pyproject.toml.jinja"
    declarations.write_text(declarations.read_text().replace('    "requests",\n', '    "requests",\n    "rich",\n'))
    commit_all(copy, "declare rich, forget to relock")
    result = relock_check(copy)
    assert result.returncode == 1
    stale = [line for line in result.stderr.splitlines() if line.startswith("stale: ")]
    assert len(stale) == 2 * len(VARIANTS), result.stderr  # every render declares requests
    assert "relock with: python scripts/relock.py" in result.stderr


def test_an_edited_export_is_reported_stale(tmp_path: Path):
    need("uv")
    copy = template_copy(tmp_path / "template")
    export = copy / "template" / "_locks" / "base" / "requirements.txt"
    export.write_text(export.read_text().replace("numpy==", "numpy>=", 1))
    commit_all(copy, "hand-edit the export")
    result = relock_check(copy)
    assert result.returncode == 1
    assert "darwinix jupyter=false (base): requirements.txt is not the export of uv.lock" in result.stderr


@pytest.mark.parametrize("variant", VARIANTS)
@pytest.mark.parametrize("jupyter", [False, True], ids=["lab-off", "lab-on"])
def test_render_ships_the_lock_for_its_flags(render, variant: str, jupyter: bool):
    repo = render(variant, jupyter=jupyter)
    key = ("web" if variant in WEB else "base") + ("-jupyter" if jupyter else "")
    for name in ("uv.lock", "requirements.txt"):
        assert (repo / name).read_bytes() == (LOCKS / key / name).read_bytes(), name
    assert not (repo / "_locks").exists()
    locked = installs(repo / "uv.lock", platform.python_version())
    assert {"numpy", "pandas", "requests", "pytest"} <= locked.keys()
    assert ("jupyterlab" in locked) == jupyter
    assert ("python-fasthtml" in locked) == (variant in WEB)


def locked_requests(repo: Path) -> str:
    return installs(repo / "uv.lock", venv_python(repo / ".venv"))["requests"]


def venv_versions(repo: Path) -> dict[str, str]:
    out = shell(repo, "python -c 'import importlib.metadata as m; "
                      "print(*(d.metadata[\"Name\"].lower() + \"==\" + d.version for d in m.distributions()))'").stdout
    return {canonicalize_name(name): version for name, version in (pin.split("==") for pin in out.split())}


def test_update_to_a_release_with_a_bumped_lock_reinstalls_on_next_entry(released, tmp_path: Path):
    """v1.1 ships requests 2.31.0; v2 ships today's lock. The user never touched the lock."""
    need("nix")
    need("uv")
    template, scratch = released("darwinix", "-d", "jupyter=false")
    base = template.path / "template" / "_locks" / "base"
    today = {name: (base / name).read_text() for name in ("uv.lock", "requirements.txt")}
    env = {k: v for k, v in os.environ.items() if k != "VIRTUAL_ENV"} | {"UV_PYTHON": sys.executable}
    for step in (["lock", "--upgrade-package", "requests==2.31.0"], ["export", "--frozen", "--quiet", "--output-file", "requirements.txt"]):
        subprocess.run(["uv", *step], cwd=scratch, env=env, check=True, capture_output=True, timeout=300)
    for name in today:
        shutil.copyfile(scratch / name, base / name)
    template.release("v1.1.0")
    for name, text in today.items():
        (base / name).write_text(text)
    template.release("v2.0.0")

    dest = render_tagged(template, tmp_path / "user", "darwinix", "-d", "jupyter=false", "--vcs-ref", "v1.1.0")
    shell(dest, "true")
    assert locked_requests(dest) == "2.31.0" == venv_versions(dest)["requests"]

    result = flakewright("update", dest)
    assert result.returncode == 0, result.stderr
    assert (dest / "uv.lock").read_text() == today["uv.lock"]
    commit_all(dest, "update to v2.0.0")
    entry = shell(dest, "true")
    assert "venv.sh: installing uv.lock into .venv" in entry.stderr
    bumped = installs(dest / "uv.lock", venv_python(dest / ".venv"))
    assert bumped["requests"] != "2.31.0"
    assert venv_versions(dest) == bumped


def test_a_conflicted_lock_says_how_to_relock(released, tmp_path: Path):
    """The user relocked too (a newer certifi); the update's lock conflicts; entry says deps lock; deps lock fixes it."""
    need("nix")
    need("uv")
    template, dest = released("darwinix", "-d", "jupyter=false")
    lock = dest / "uv.lock"
    lock.write_text(lock.read_text().replace('version = "', 'version = "0!', 1))
    commit_all(dest, "user relocks")
    shipped = template.path / "template" / "_locks" / "base" / "uv.lock"
    shipped.write_text(shipped.read_text().replace('version = "', 'version = "1!', 1))
    template.release("v2.0.0")

    result = flakewright("update", dest)
    assert "uv.lock" in result.stdout + result.stderr
    assert "<<<<<<< " in lock.read_text()
    entry = shell(dest, "true", check=False)
    assert "venv.sh: uv.lock has merge conflict markers; relock it from pyproject.toml with deps lock" in entry.stderr
    assert not (dest / ".venv" / ".installed").exists()

    shell(dest, "deps lock", timeout=600)
    assert "<<<<<<< " not in lock.read_text()
    assert venv_versions(dest) == installs(lock, venv_python(dest / ".venv"))
