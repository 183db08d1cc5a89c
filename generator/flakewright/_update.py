"""``flakewright update``: bring a derived repo to a newer template version."""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import copier

from ._copier import copier_errors, git, status
from ._errors import FlakewrightError
from ._pristine import ANSWERS_FILE, differing_files, pristine_render, read_answers
from ._source import redirected_source

Conflict = Literal["inline", "rej"]
_MARKERS = (b"<<<<<<< ", b">>>>>>> ")


@dataclass(frozen=True, kw_only=True)
class UpdateResult:
    """What an update did to the derived repo."""

    from_version: str
    to_version: str
    changed: list[str] = field(default_factory=list)
    merged: list[str] = field(default_factory=list)
    conflicts: list[str] = field(default_factory=list)


def repo_root(dest: Path) -> Path:
    """Top of the git work tree holding ``dest``, or a message on how to make one."""
    if not dest.is_dir():
        raise FlakewrightError(f"{dest} is not a directory; pass the repo to update as DEST")
    top = git("rev-parse", "--show-toplevel", cwd=dest, check=False).strip()
    if not top:
        raise FlakewrightError(
            f"{dest} is not a git repository; run `git init && git add -A && git commit -m init` there first"
        )
    return Path(top)


def update(
    *,
    dest: Path | str = ".",
    to: str | None = None,
    conflict: Conflict = "inline",
    data: Mapping[str, object] | None = None,
    trust: bool = False,
    template: str | None = None,
) -> UpdateResult:
    """Update ``dest`` to template ref ``to`` (default: the newest release tag)."""
    dest = Path(dest).expanduser().resolve()
    top = repo_root(dest)
    answers = read_answers(dest)
    dirty = git("status", "--porcelain", "--untracked-files=all", cwd=top).splitlines()
    if dirty:
        example = dirty[0][3:]
        raise FlakewrightError(
            f"{top} has {len(dirty)} uncommitted change(s) (e.g. {example}); "
            "commit or stash them first so the update can be reviewed and undone"
        )
    recorded = str(answers["_src_path"])
    with redirected_source(recorded=recorded, template=template), status("Updating from the template"):
        with pristine_render(dest, answers=answers) as before:
            user_edited = set(differing_files(before, dest))
        with copier_errors(action="update"):
            copier.run_update(
                str(dest),
                data=dict(data or {}),
                defaults=True,
                overwrite=True,
                quiet=True,
                conflict=conflict,
                unsafe=trust,
                vcs_ref=to,
            )
    changed = _changed_files(top, dest)
    conflicts = _conflicted(top, dest, changed, conflict=conflict)
    merged = sorted(p for p in changed if p in user_edited and p not in conflicts and (dest / p).exists())
    return UpdateResult(
        from_version=str(answers["_commit"]),
        to_version=str(read_answers(dest)["_commit"]),
        changed=changed,
        merged=merged,
        conflicts=conflicts,
    )


def _changed_files(top: Path, dest: Path) -> list[str]:
    """Paths under ``dest`` (relative to it) that differ from HEAD, untracked included."""
    prefix = dest.relative_to(top).as_posix()
    entries = git(
        "status", "--porcelain", "-z", "--untracked-files=all", "--no-renames", "--", ".", cwd=dest
    ).split("\0")
    paths = []
    for entry in filter(None, entries):
        path = entry[3:]
        if prefix not in ("", "."):
            path = path.removeprefix(prefix + "/")
        if path != ANSWERS_FILE and not path.endswith(".rej"):
            paths.append(path)
    return sorted(set(paths))


def _conflicted(top: Path, dest: Path, changed: list[str], *, conflict: Conflict) -> list[str]:
    if conflict == "rej":
        return sorted(p.relative_to(dest).as_posix().removesuffix(".rej") for p in dest.rglob("*.rej"))
    found = []
    for path in changed:
        target = dest / path
        if target.is_file():
            with target.open("rb") as handle:
                if any(line.startswith(_MARKERS) for line in handle):
                    found.append(path)
    return found
