"""How each file came out of an update, judged against the pristine render of the fork's recorded version.

copier's update leaves its result in the scratch clone; this module names each
changed file (``new``, ``clean``, ``merged``, ``conflict``, ``kept``,
``deleted``) and fixes what copier gets wrong:

- A file the fork edited is one that differs from the pristine render of the
  recorded version (not one committed since the last update: an edit made
  before an update that changed only answers is still the fork's edit).
- A file the release deletes but the fork edited is kept, as a conflict
  (``kept``: "deleted upstream, edited here"), with index stages that make
  `git status` say "deleted by them" until the user decides.
"""
from __future__ import annotations

import os
import subprocess
from collections.abc import Iterable
from pathlib import Path
from typing import Literal

from ._errors import FlakewrightError

FileOutcome = Literal["new", "clean", "merged", "conflict", "kept", "deleted"]
KEPT_NOTE = "deleted upstream, edited here: kept"


class Tree:
    """The scratch clone of an update: its HEAD (the fork before the update) and its work tree (after)."""

    def __init__(self, *, top: Path, dest: Path) -> None:
        self.top, self.dest = top, dest
        prefix = dest.relative_to(top).as_posix()
        self.prefix = "" if prefix in ("", ".") else prefix + "/"

    def head(self, path: str) -> bytes | None:
        """``path`` (relative to the repo's folder) as the fork committed it, or None."""
        done = subprocess.run(
            ["git", "cat-file", "blob", f"HEAD:{self.prefix}{path}"], cwd=self.top, capture_output=True, check=False
        )
        return done.stdout if done.returncode == 0 else None

    def head_files(self) -> list[str]:
        listed = run_git(["ls-tree", "-r", "-z", "--name-only", "HEAD", "--", "."], cwd=self.dest)
        return [p.decode() for p in listed.split(b"\0") if p]

    def mark_conflict(self, path: str, *, base: bytes | None, ours: bytes | None, theirs: bytes | None) -> None:
        """Record ``path`` as unmerged in the clone's index (stages 1 base, 2 ours, 3 theirs), as a merge would."""
        mode = "100755" if os.access(self.dest / path, os.X_OK) else "100644"
        lines = [f"0 {'0' * 40}\t{self.prefix}{path}"]
        for stage, content in ((1, base), (2, ours), (3, theirs)):
            if content is not None:
                blob = run_git(["hash-object", "-w", "--stdin"], cwd=self.top, stdin=content).decode().strip()
                lines.append(f"{mode} {blob} {stage}\t{self.prefix}{path}")
        run_git(["update-index", "--index-info"], cwd=self.top, stdin="\n".join(lines).encode() + b"\n")

    def unmark(self, path: str) -> None:
        """``path``'s index entry back to HEAD's (no conflict stages)."""
        run_git(["reset", "-q", "HEAD", "--", f"{self.prefix}{path}"], cwd=self.top, check=False)


def run_git(args: list[str], *, cwd: Path, stdin: bytes = b"", check: bool = True) -> bytes:
    done = subprocess.run(["git", *args], cwd=cwd, input=stdin, capture_output=True, check=False)
    if check and done.returncode:
        raise FlakewrightError(f"git {args[0]} failed in {cwd}: {done.stderr.decode(errors='replace').strip()}")
    return done.stdout


def pristine_bytes(old: Path, path: str) -> bytes | None:
    target = old / path
    return target.read_bytes() if target.is_file() and not target.is_symlink() else None


def label(
    *, tree: Tree, old: Path, statuses: dict[str, str], conflicts: Iterable[str]
) -> tuple[dict[str, FileOutcome], dict[str, str]]:
    """Each changed file's outcome, and a note for those that need one; keeps edited files a release deleted."""
    conflicts = set(conflicts)
    written = {
        _blob(tree.dest / p) for p, code in statuses.items() if "D" not in code and (tree.dest / p).is_file()
    }
    files: dict[str, FileOutcome] = {}
    notes: dict[str, str] = {}
    for path, code in statuses.items():
        if path in conflicts:
            files[path] = "conflict"
        elif code == "??":
            files[path] = "new"
        elif "D" in code:
            base, ours = pristine_bytes(old, path), tree.head(path)
            if base is not None and ours is not None and ours != base and _blob_of(ours) not in written:
                # the release removes it, the fork changed it: keep the fork's copy and say so
                run_git(["checkout", "-q", "HEAD", "--", f"{tree.prefix}{path}"], cwd=tree.top)
                tree.mark_conflict(path, base=base, ours=ours, theirs=None)
                files[path], notes[path] = "kept", KEPT_NOTE
            else:
                files[path] = "deleted"
        else:
            files[path] = "merged" if tree.head(path) != pristine_bytes(old, path) else "clean"
    return files, notes


def _blob(path: Path) -> str:
    return _blob_of(path.read_bytes())


def _blob_of(content: bytes) -> str:
    import hashlib

    return hashlib.sha1(content).hexdigest()
