"""A backport that changes the template's pyproject.toml relocks the template's lock files on its branch.

A render ships the lock of its flags from ``template/_locks/<key>/``; one whose
pyproject.toml gained a dependency the lock lacks fails in ``scripts/venv.sh``.
The template's own ``scripts/relock.py`` (see its docstring) relocks every key
from the patched template, in the scratch copy backport commits from. It needs
``uv`` and, for a new package, the package index.
"""
from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

from ._errors import ExitCode, FlakewrightError, first_line

PYPROJECT = "pyproject.toml.jinja"
LOCK_SOURCES = ("uv.lock.jinja", "requirements.txt.jinja")
SCRIPT = "scripts/relock.py"
LOCKS = "template/_locks"


def is_pyproject(source: str | None) -> bool:
    return source is not None and Path(source).name == PYPROJECT


def is_lock(source: str | None) -> bool:
    return source is not None and Path(source).name in LOCK_SOURCES


def relock(template: Path) -> dict[str, str]:
    """Run ``scripts/relock.py`` in ``template`` (a scratch copy); return the lock files it changed (path: text)."""
    script = template / SCRIPT
    if not script.is_file():
        raise FlakewrightError(
            f"the template has no {SCRIPT} to relock {LOCKS} after the pyproject.toml change; nothing was committed",
            exit_code=ExitCode.FAILED,
        )
    if not shutil.which("uv"):
        raise FlakewrightError(
            "relocking the template needs uv (pip install uv); nothing was committed", exit_code=ExitCode.FAILED
        )
    before = _locks(template)
    done = subprocess.run([sys.executable, str(script)], cwd=template, capture_output=True, text=True, check=False)
    if done.returncode:
        detail = first_line(done.stderr) or f"exit {done.returncode}"
        raise FlakewrightError(f"{SCRIPT} failed: {detail}; nothing was committed", exit_code=ExitCode.FAILED)
    after = _locks(template)
    return {path: text for path, text in after.items() if before.get(path) != text}


def _locks(template: Path) -> dict[str, str]:
    root = template / LOCKS
    if not root.is_dir():
        return {}
    return {p.relative_to(template).as_posix(): p.read_text(encoding="utf-8") for p in sorted(root.rglob("*")) if p.is_file()}
