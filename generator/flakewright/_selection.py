"""What ``backport`` sends: named commits of the fork, named files, or the commits since the last update.

Every name is checked before any work, and a bad one is one line that changes
nothing: a commit the fork does not have (or that is not on its current
branch), a path outside the repo. Whether a path is a file the template owns is
known only after the render: see ``check_owned``.

For commits, each template-owned file they touch is rebuilt from the pristine
render by replaying only those commits' changes onto it (a three-way merge per
commit: the file before the commit, after it, and the render so far), so edits
the fork made in other commits never travel along.
"""
from __future__ import annotations

import os
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from tempfile import TemporaryDirectory

from ._answers import ANSWERS_FILE
from ._errors import FlakewrightError
from ._git import git
from ._trace import read

_LINK, _SUBMODULE = "120000", "160000"


@dataclass(frozen=True)
class SentCommit:
    """A commit of the fork that backport sends: its hash, subject and the files it touches (repo-relative)."""

    commit: str
    subject: str
    files: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class Selection:
    """The commits to send (oldest first), and the paths to send or to restrict them to (None: every file)."""

    commits: list[SentCommit]
    paths: list[str] | None
    since: str | None = None  # the last update's commit, when the commits were not named

    @property
    def by_commit(self) -> bool:
        return bool(self.commits) or self.paths is None


@dataclass(frozen=True)
class Wanted:
    """A template-owned file as the selection wants it in the template, or why it cannot be sent."""

    text: str | None
    reason: str = ""


def select(*, dest: Path, commits: Sequence[str], paths: Sequence[str]) -> Selection:
    """Check the names given on the command line; with neither, the commits since the last update."""
    relative = [_inside(dest, path) for path in paths] if paths else None
    if commits:
        return Selection(commits=_named(dest, commits), paths=relative)
    if relative is not None:
        return Selection(commits=[], paths=relative)
    since = git("log", "-1", "--format=%H", "--", ANSWERS_FILE, cwd=dest).strip() or None
    listed = git("rev-list", "--reverse", "--topo-order", "--no-merges", f"{since}..HEAD", cwd=dest) if since else ""
    return Selection(commits=[_describe(dest, c) for c in listed.split()], paths=None, since=since)


def check_owned(selection: Selection, owned: set[str], *, dest: Path) -> list[str] | None:
    """The named paths as rendered files (a folder: the rendered files under it); one line for a path the
    template renders no file at."""
    if selection.paths is None:
        return None
    found: list[str] = []
    for path in selection.paths:
        under = sorted(o for o in owned if o == path or o.startswith(f"{path}/") or path == ".")
        if not under:
            raise FlakewrightError(
                f"{path} is no file the template renders; backport sends only files the template owns "
                f"(`flakewright check {dest}` lists the ones that differ)"
            )
        found += [o for o in under if o not in found]
    return found


def wanted_files(*, selection: Selection, dest: Path, plain: Path, owned: set[str]) -> dict[str, Wanted]:
    """Each template-owned file the selection sends, as it should read in a render of the template."""
    paths = check_owned(selection, owned, dest=dest)
    if not selection.by_commit:
        return {p: _from_work_tree(dest, p) for p in paths or [] if _differs(dest / p, plain / p)}
    wanted: dict[str, Wanted] = {}
    for sent in selection.commits:
        for entry in _changes(dest, sent.commit):
            if entry.path not in owned or (paths is not None and entry.path not in paths):
                continue
            current = wanted.get(entry.path) or _plain(plain / entry.path)
            if current.text is not None:
                wanted[entry.path] = _replay(dest, sent, entry, current.text)
    return {p: w for p, w in wanted.items() if w.text is None or w.text != _plain(plain / p).text}


def _plain(path: Path) -> Wanted:
    try:
        return Wanted(read(path))
    except UnicodeDecodeError:
        return Wanted(None, "not a UTF-8 text file")


@dataclass(frozen=True)
class _Change:
    path: str
    old_mode: str
    new_mode: str
    old: str
    new: str
    status: str


def _changes(dest: Path, commit: str) -> list[_Change]:
    """What ``commit`` changed under ``dest`` (paths relative to it), against its first parent."""
    raw = git("diff-tree", "-r", "-z", "--no-renames", "--relative", "--no-commit-id", f"{commit}^", commit, "--", ".",
              cwd=dest)
    fields = raw.split("\0")
    found = []
    for meta, path in zip(fields[0::2], fields[1::2]):
        old_mode, new_mode, old, new, status = meta.lstrip(":").split()
        found.append(_Change(path, old_mode, new_mode, old, new, status[0]))
    return found


def _replay(dest: Path, sent: SentCommit, change: _Change, current: str) -> Wanted:
    short = sent.commit[:10]
    link = _link_in_tree(dest, sent.commit, change.path) or (change.new_mode == _LINK and change.path)
    if link:
        return Wanted(None, f"{link} is a symlink in {short}; backport reads no file through one")
    if change.status == "D" or change.new_mode == _SUBMODULE:
        return Wanted(None, f"deleted in {short}; backport does not remove template files")
    try:
        before = _text(read_bytes=_blob(dest, change.old)) if change.status != "A" else current
        after = _text(read_bytes=_blob(dest, change.new))
    except UnicodeDecodeError:
        return Wanted(None, "not a UTF-8 text file")
    merged = merge_text(ours=current, base=before, theirs=after)
    if merged is None:
        return Wanted(None, f"{short}'s change to it builds on edits not sent; name those commits too, or send the file with -- PATH")
    return Wanted(merged)


def merge_text(*, ours: str, base: str, theirs: str) -> str | None:
    """``git merge-file`` of three texts: the merge, or None when it conflicts."""
    with TemporaryDirectory(prefix="flakewright-merge-") as tmp:
        names = []
        for name, text in (("ours", ours), ("base", base), ("theirs", theirs)):
            (Path(tmp) / name).write_bytes(text.encode("utf-8"))
            names.append(str(Path(tmp) / name))
        done = subprocess.run(["git", "merge-file", "-p", "--quiet", *names], capture_output=True, check=False)
    if done.returncode:
        return None
    return done.stdout.decode("utf-8")


def _from_work_tree(dest: Path, relative: str) -> Wanted:
    link = link_on_disk(dest, relative)
    if link:
        return Wanted(None, link)
    target = dest / relative
    if not target.is_file():
        return Wanted(None, "deleted in this repo; backport does not remove template files")
    try:
        return Wanted(read(target))
    except UnicodeDecodeError:
        return Wanted(None, "not a UTF-8 text file")


def _differs(fork: Path, plain: Path) -> bool:
    return not fork.is_file() or fork.is_symlink() or fork.read_bytes() != plain.read_bytes()


def link_on_disk(root: Path, relative: str) -> str | None:
    """Why ``root / relative`` must not be read through: the first symlink on the way, if any (its target may
    be a private file, or another file of the repo)."""
    current = root
    for part in Path(relative).parts:
        current = current / part
        if current.is_symlink():
            return f"{current.relative_to(root)} is a symlink in {root}; backport reads no file through one"
    return None


def _link_in_tree(dest: Path, commit: str, relative: str) -> str | None:
    """The first part of ``relative`` that is a symlink in ``commit``'s tree, if any."""
    parts = Path(relative).parts
    for n in range(1, len(parts) + 1):
        prefix = "/".join(parts[:n])
        entry = git("--literal-pathspecs", "ls-tree", commit, "--", prefix, cwd=dest).split(" ", 1)[0]
        if entry == _LINK:
            return prefix
    return None


def _blob(dest: Path, sha: str) -> bytes:
    return subprocess.run(["git", "cat-file", "blob", sha], cwd=dest, capture_output=True, check=True).stdout


def _text(*, read_bytes: bytes) -> str:
    return read_bytes.decode("utf-8")


def _inside(dest: Path, path: str) -> str:
    """``path`` (relative to the repo, or absolute) as a repo-relative path; one line for one outside it."""
    full = Path(os.path.normpath(Path(dest, path)))
    if not full.is_relative_to(dest):
        raise FlakewrightError(f"{path} is outside {dest}; name files of the repo (relative to it) after --")
    relative = full.relative_to(dest).as_posix()
    return relative or "."


def _named(dest: Path, names: Sequence[str]) -> list[SentCommit]:
    found: dict[str, None] = {}
    for name in names:
        found.setdefault(_commit_of(dest, name))
    order = {c: i for i, c in enumerate(git("rev-list", "--reverse", "--topo-order", "HEAD", cwd=dest).split())}
    return [_describe(dest, c) for c in sorted(found, key=order.__getitem__)]


def _commit_of(dest: Path, name: str) -> str:
    commit = git("rev-parse", "--verify", "--quiet", "--end-of-options", f"{name}^{{commit}}", cwd=dest, check=False).strip()
    if not commit:
        hint = f"; to name the repo, pass -C {name}" if Path(name).is_dir() else "; `git log` there lists them"
        raise FlakewrightError(f"{name} is not a commit of {dest}{hint}")
    on_branch = subprocess.run(["git", "merge-base", "--is-ancestor", commit, "HEAD"], cwd=dest, capture_output=True)
    if on_branch.returncode:
        raise FlakewrightError(f"{name} is not on {dest}'s current branch; check it out, or name a commit of it")
    if not git("rev-parse", "--verify", "--quiet", f"{commit}^", cwd=dest, check=False).strip():
        raise FlakewrightError(f"{name} is {dest}'s first commit, the render itself; name the commits after it")
    return commit


def _describe(dest: Path, commit: str) -> SentCommit:
    subject = git("log", "-1", "--format=%s", commit, cwd=dest).strip()
    files = git("diff-tree", "-r", "--no-commit-id", "--name-only", "--relative", f"{commit}^", commit, "--", ".",
                cwd=dest).split("\n")
    return SentCommit(commit=commit, subject=subject, files=[f for f in files if f])


