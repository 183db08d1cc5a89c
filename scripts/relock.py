#!/usr/bin/env python3
"""Regenerate, or check, the locks the template ships: template/_locks/<key>/{uv.lock,requirements.txt}.

    python scripts/relock.py             # after editing template/pyproject.toml.jinja (needs PyPI)
    python scripts/relock.py --upgrade   # also move every package to its newest allowed version
    python scripts/relock.py --check     # exit 1 when a shipped lock is stale (offline)

Every variant is rendered with jupyter on and off; uv locks each render's pyproject.toml and
exports requirements.txt from that lock, and the results are copied back to the key the render
included (template/uv.lock.jinja picks it from the flags, see lock_key). A render that already has
an up-to-date lock keeps its versions unless --upgrade is given, as `uv lock` does in a derived repo.
"""
from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import warnings
from dataclasses import dataclass
from pathlib import Path

import copier
import jinja2

REPO = Path(__file__).resolve().parent.parent
LOCKS = REPO / "template" / "_locks"
VARIANTS = ("darwinix", "pipulate", "botifython")
FILES = ("uv.lock", "requirements.txt")
# The same command scripts/deps runs in a derived repo: the file's header records it.
EXPORT = ["uv", "export", "--frozen", "--quiet", "--output-file", "requirements.txt"]


@dataclass(frozen=True)
class Render:
    variant: str
    jupyter: bool
    key: str

    def __str__(self) -> str:
        return f"{self.variant} jupyter={str(self.jupyter).lower()} ({self.key})"


def lock_key(web: bool, jupyter: bool) -> str:
    """The folder under template/_locks that template/uv.lock.jinja includes for these flags."""
    return ("web" if web else "base") + ("-jupyter" if jupyter else "")


def copy(dest: Path, variant: str, jupyter: bool, *, pretend: bool = False) -> copier.Worker:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the dirty working tree is the point
        return copier.run_copy(str(REPO), str(dest), data={"variant": variant, "jupyter": jupyter},
                               defaults=True, overwrite=True, quiet=True, vcs_ref="HEAD", pretend=pretend)


def renders() -> list[Render]:
    """Every combination of answers the declarations depend on, with the key each one includes."""
    found = []
    for variant in VARIANTS:
        for jupyter in (False, True):
            with tempfile.TemporaryDirectory() as tmp:
                try:
                    flags = copy(Path(tmp), variant, jupyter, pretend=True).answers.combined
                except jinja2.TemplateNotFound as missing:
                    raise SystemExit(f"stale: {variant} jupyter={str(jupyter).lower()} includes {missing.name}, "
                                     "which is missing\nrelock with: python scripts/relock.py")
            found.append(Render(variant, jupyter, lock_key(flags["web"], jupyter)))
    return found


def placeholders() -> list[Path]:
    """Empty lock files for every key without one, so that renders work before their first lock."""
    made = []
    for key in {lock_key(web, jupyter) for web in (False, True) for jupyter in (False, True)}:
        for name in FILES:
            if not (path := LOCKS / key / name).exists():
                path.parent.mkdir(parents=True, exist_ok=True)
                path.touch()
                made.append(path)
    return made


def uv(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in ("VIRTUAL_ENV", "UV_PROJECT_ENVIRONMENT")}
    # uv needs an interpreter inside requires-python; this one, not a download.
    env |= {"UV_PYTHON": sys.executable, "UV_PYTHON_DOWNLOADS": "never"}
    return subprocess.run(["uv", *args], cwd=cwd, env=env, capture_output=True, text=True)


def stale(render: Render, tmp: Path) -> str | None:
    """Why the render's shipped lock does not match its declarations, or None."""
    repo = copy(tmp / "check", render.variant, render.jupyter).dst_path
    locked = uv("lock", "--check", "--offline", cwd=repo)
    if locked.returncode != 0:
        return f"uv.lock does not match pyproject.toml: {locked.stderr.strip().splitlines()[-1]}"
    shipped = (repo / "requirements.txt").read_text()
    exported = uv(*EXPORT[1:], cwd=repo)
    if exported.returncode != 0:
        return f"uv export failed: {exported.stderr.strip()}"
    if (repo / "requirements.txt").read_text() != shipped:
        return "requirements.txt is not the export of uv.lock"
    return None


def relock(render: Render, tmp: Path, *, upgrade: bool) -> None:
    target = LOCKS / render.key
    repo = copy(tmp / "relock", render.variant, render.jupyter).dst_path
    if not (repo / "uv.lock").read_text():
        (repo / "uv.lock").unlink()  # a placeholder: lock from scratch
    for step in (["lock", *(["--upgrade"] if upgrade else [])], EXPORT[1:]):
        done = uv(*step, cwd=repo)
        if done.returncode != 0:
            raise SystemExit(f"relock: uv {' '.join(step)} failed for {render}:\n{done.stderr.strip()}")
    for name in FILES:
        shutil.copyfile(repo / name, target / name)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    action = parser.add_mutually_exclusive_group()
    action.add_argument("--check", action="store_true", help="report stale locks, change nothing (offline)")
    action.add_argument("--upgrade", action="store_true", help="newest allowed versions of every package")
    args = parser.parse_args()
    if not shutil.which("uv"):
        raise SystemExit("relock: uv is not on PATH (pip install uv, or enter this repo's nix develop)")

    failures = []
    made = [] if args.check else placeholders()
    todo = renders()
    for render in todo:
        with tempfile.TemporaryDirectory(prefix="flakewright-relock-") as tmp:
            if args.check:
                if reason := stale(render, Path(tmp)):
                    failures.append(f"{render}: {reason}")
            else:
                relock(render, Path(tmp), upgrade=args.upgrade)
                print(f"locked {render}")
    for path in made:
        if not path.stat().st_size:
            path.unlink()
            if not any(path.parent.iterdir()):
                path.parent.rmdir()
    used = {render.key for render in todo}
    failures += [f"template/_locks/{p.name} is included by no render; delete it"
                 for p in LOCKS.iterdir() if p.is_dir() and p.name not in used]
    for failure in failures:
        print(f"stale: {failure}", file=sys.stderr)
    if failures:
        print("relock with: python scripts/relock.py", file=sys.stderr)
    return 1 if failures else 0


if __name__ == "__main__":
    raise SystemExit(main())
