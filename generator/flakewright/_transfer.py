"""Carry an update made in a scratch clone into the user's work tree, as one final step.

The clone starts as a checkout of the user's HEAD, and the user's tree was
clean, so whatever differs in the clone is the update: files written (ignored
ones too: copier updates a generated file that happens to be ignored), files
removed, and the index entries copier records for a conflict, which make
`git status` say "both modified" and `git commit` wait until it is resolved.
What can be checked or staged is, before the final step, which copies the
changed files into place (each by a rename), removes files and swaps the index.
"""
from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from ._errors import FlakewrightError
from ._git import git

_NO_OBJECT = "0" * 40


@dataclass
class Move:
    clone: Path
    top: Path
    writes: list[str]
    removals: list[str]
    index: tuple[Path, Path] | None = None  # (the new index, staged as the lock file; the index it replaces)
    carried: bool = False


@contextmanager
def prepared_move(*, clone: Path, top: Path) -> Iterator[Move]:
    """The clone's changes, checked against the user's tree, with a new index staged in git's own lock file.

    The lock is released if the move is never carried: the user's index stays as it was.
    """
    move = Move(clone=clone, top=top, **_changes(clone))
    _refuse_obstacles(move)
    entries = _index_changes(clone, top)
    if not entries:
        yield move
        return
    _copy_objects(entries, clone=clone, top=top)
    index = top / git("rev-parse", "--git-path", "index", cwd=top).strip()
    lock = index.with_name(index.name + ".lock")
    try:
        with os.fdopen(os.open(lock, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644), "wb") as handle:
            handle.write(index.read_bytes())
    except FileExistsError:
        raise FlakewrightError(
            f"{lock} exists: another git command is running in {top}; let it finish (or delete the file "
            "if none is running), then run again"
        ) from None
    try:
        _git_bytes("update-index", "-z", "--index-info", cwd=top, stdin=entries, env={"GIT_INDEX_FILE": str(lock)})
        move.index = (lock, index)
        yield move
    finally:
        if not move.carried:
            lock.unlink(missing_ok=True)


def carry(move: Move) -> None:
    """The final step: the clone's files replace the user's, one rename each, then the index."""
    for path in sorted(move.removals, reverse=True):
        target = move.top / path
        if target.is_symlink() or target.is_file():
            target.unlink()
        _prune_parents(move, path)
    for path in move.writes:
        _place(move.clone / path, move.top / path)
    if move.index:
        os.replace(*move.index)
    move.carried = True


def _changes(clone: Path) -> dict[str, list[str]]:
    """Paths under the clone that differ from HEAD, split into files to write and paths to remove."""
    tracked = git("diff", "--name-only", "-z", "--no-renames", "HEAD", "--", cwd=clone).split("\0")
    untracked = git("ls-files", "-z", "--others", cwd=clone).split("\0")  # ignored files too: no --exclude-standard
    writes, removals = [], []
    for path in sorted(set(filter(None, tracked + untracked))):
        source = clone / path
        (writes if source.is_symlink() or source.is_file() else removals).append(path)
    return {"writes": writes, "removals": removals}


def _refuse_obstacles(move: Move) -> None:
    """Files only the user's tree has (ignored ones) where the update puts a file or a folder."""
    removed = set(move.removals)
    for path in move.writes:
        target = move.top / path
        if target.is_dir() and not target.is_symlink():
            left = [p for p in target.rglob("*") if not p.is_dir() and p.relative_to(move.top).as_posix() not in removed]
            if left:
                _in_the_way(left[0], move.top)
        for parent in PurePosixPath(path).parents:
            folder = move.top / parent
            if str(parent) != "." and (folder.is_symlink() or folder.exists() and not folder.is_dir()):
                if str(parent) not in removed:
                    _in_the_way(folder, move.top)


def _in_the_way(path: Path, top: Path) -> None:
    raise FlakewrightError(
        f"{path} (not tracked by git) is in the way of the update; move it out of {top}, then run again"
    )


def _index_changes(clone: Path, top: Path) -> bytes:
    """`update-index --index-info` input that gives the user's index the clone's entries where they differ."""
    theirs, ours = _stages(clone), _stages(top)
    lines = []
    for path in sorted(set(theirs) | set(ours)):
        if theirs.get(path) != ours.get(path):
            lines.append(f"0 {_NO_OBJECT}\t{path}")  # drops every stage of the path first
            lines.extend(f"{entry}\t{path}" for entry in theirs.get(path, []))
    return "".join(f"{line}\0" for line in lines).encode()


def _stages(repo: Path) -> dict[str, list[str]]:
    """Each indexed path's entries ("mode object stage")."""
    found: dict[str, list[str]] = {}
    for record in filter(None, git("ls-files", "--stage", "-z", cwd=repo).split("\0")):
        entry, _, path = record.partition("\t")
        found.setdefault(path, []).append(entry)
    return found


def _copy_objects(entries: bytes, *, clone: Path, top: Path) -> None:
    """Put the blobs the new entries name (copier's merge bases, written in the clone) into the user's repo.

    Loose objects nothing refers to yet: git shows nothing of them, and gc drops them if the move never lands.
    """
    objects = {line.split(b" ")[1].decode() for line in entries.split(b"\0") if line and not line.startswith(b"0 ")}
    for found in _git_bytes("cat-file", "--batch-check", cwd=top, stdin="\n".join(objects).encode()).splitlines():
        name, _, kind = found.decode().partition(" ")
        if kind == "missing":
            blob = _git_bytes("cat-file", "blob", name, cwd=clone)
            _git_bytes("hash-object", "-w", "--stdin", cwd=top, stdin=blob)


def _git_bytes(*args: str, cwd: Path, stdin: bytes = b"", env: dict[str, str] | None = None) -> bytes:
    done = subprocess.run(["git", *args], cwd=cwd, input=stdin, capture_output=True, env={**os.environ, **(env or {})})
    if done.returncode:
        raise FlakewrightError(f"git {args[0]} failed in {cwd}: {done.stderr.decode(errors='replace').strip()}")
    return done.stdout


def _prune_parents(move: Move, path: str) -> None:
    """Remove the folders a removal emptied, as copier does, unless the clone still has them."""
    for parent in PurePosixPath(path).parents:
        folder = move.top / parent
        if str(parent) == "." or (move.clone / parent).is_dir() or not folder.is_dir() or any(folder.iterdir()):
            return
        folder.rmdir()


def _place(source: Path, target: Path) -> None:
    """``source``'s file (or symlink) at ``target``, replaced in one rename: no reader sees half a file."""
    target.parent.mkdir(parents=True, exist_ok=True)
    if target.is_dir() and not target.is_symlink():
        target.rmdir()  # a folder the update turns into a file; its files went with the removals
    staged = target.with_name(f".{target.name}.flakewright-{os.getpid()}")
    if source.is_symlink():
        os.symlink(os.readlink(source), staged)
    else:
        shutil.copy2(source, staged)
    os.replace(staged, target)
