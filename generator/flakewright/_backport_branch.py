"""backport's one change to the template checkout: a commit made through a private index, then a new branch.

The checkout's work tree and index are never touched; until the branch is
created, the commit is loose objects that nothing names.
"""
from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path
from tempfile import TemporaryDirectory

from ._backport_plan import FileReport
from ._errors import FlakewrightError
from ._git import git
from ._selection import SentCommit


def free_branch(checkout: Path, wanted: str) -> str:
    name, n = wanted, 1
    while git("rev-parse", "--verify", "--quiet", f"refs/heads/{name}", cwd=checkout, check=False).strip():
        n += 1
        name = f"{wanted}-{n}"
    return name


def branch_part(name: str) -> str:
    """A folder name as a part of a branch name: what git refuses in one (spaces, `..`, a leading dash) as `-`."""
    return re.sub(r"[^A-Za-z0-9_.+]+|\.{2,}", "-", name).strip("-.") or "repo"


def check_branch(checkout: Path, branch: str) -> None:
    """Refuse what git would not take as a new branch's name: an option (`-m`, `--force`), `@{-1}`, a name taken."""
    checked = subprocess.run(
        ["git", "check-ref-format", "--branch", branch], cwd=checkout, capture_output=True, text=True, check=False
    )
    if branch.startswith("-") or checked.returncode or checked.stdout.strip() != branch:
        raise FlakewrightError(f"{branch!r} is not a valid branch name; choose another with --branch")
    if git("rev-parse", "--verify", "--quiet", f"refs/heads/{branch}", cwd=checkout, check=False).strip():
        raise FlakewrightError(f"branch {branch} already exists in {checkout}; choose another with --branch")


def commit_edits(
    checkout: Path, *, base: str, files: dict[str, str], dest: Path, reports: list[FileReport], sent: list[SentCommit]
) -> str:
    """A commit of ``files`` (path: text) on top of ``base``, made through a private index: objects only, no ref,
    and the checkout's work tree and index untouched."""
    with TemporaryDirectory(prefix="flakewright-index-") as tmp:
        env = {**os.environ, "GIT_INDEX_FILE": str(Path(tmp) / "index"), "GIT_LITERAL_PATHSPECS": "1"}
        if not git("config", "user.email", cwd=checkout, check=False).strip():
            env.update(
                GIT_AUTHOR_NAME="flakewright backport", GIT_AUTHOR_EMAIL="flakewright@localhost",
                GIT_COMMITTER_NAME="flakewright backport", GIT_COMMITTER_EMAIL="flakewright@localhost",
            )

        def run(*args: str, stdin: str = "") -> str:
            done = subprocess.run(["git", *args], cwd=checkout, env=env, input=stdin.encode(), capture_output=True)
            if done.returncode:
                raise FlakewrightError(f"git {args[0]} failed in {checkout}: {done.stderr.decode(errors='replace').strip()}")
            return done.stdout.decode().strip()

        run("read-tree", base)
        for path, text in files.items():
            mode = run("ls-tree", base, "--", path).split(" ", 1)[0] or "100644"
            blob = run("hash-object", "-w", "--stdin", f"--path={path}", stdin=text)
            run("update-index", "--add", "--cacheinfo", f"{mode},{blob},{path}")
        tree = run("write-tree")
        summary = "\n".join(f"- {r.path}: {r.outcome}" for r in reports)
        origin = "".join(f"- {c.commit[:10]} {c.subject}\n" for c in sent)
        origin = f"\n\nFrom the commits:\n{origin}" if origin else ""
        return run("commit-tree", tree, "-p", base, stdin=f"Backport edits from {dest.name}\n\n{summary}{origin}\n")


def create_branch(checkout: Path, branch: str, commit: str) -> None:
    """The one change the checkout sees. Its own session: a Ctrl-C at the terminal does not stop it half-way."""
    done = subprocess.run(
        ["git", "update-ref", "-m", "flakewright backport", f"refs/heads/{branch}", commit, ""],
        cwd=checkout, capture_output=True, text=True, check=False, start_new_session=True,
    )
    if done.returncode:
        raise FlakewrightError(f"git update-ref failed in {checkout}: {done.stderr.strip()}")
