"""``flakewright update``: bring a derived repo to a newer template version."""
from __future__ import annotations

import os
from contextlib import ExitStack
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from tempfile import TemporaryDirectory
from typing import Literal

import yaml
from packaging.version import InvalidVersion, Version

from ._answers import ANSWERS_FILE, read_answers
from ._bundle import offline_stand_in
from ._console import status
from ._errors import ExitCode, FlakewrightError, copier_errors
from ._git import git
from ._landing import landing
from ._merges import follow_renames, merge_notebooks, remerge_conflicts
from ._outcomes import FileOutcome, Tree, label
from ._pristine import pristine_render
from ._releases import Releases
from ._source import is_local, redirected_source
from ._transfer import carry, prepared_move

Conflict = Literal["inline", "rej"]
_MARKERS = (b"<<<<<<< ", b">>>>>>> ")


@dataclass(frozen=True, kw_only=True)
class UpdateResult:
    """What an update did (or, with ``dry_run``, would do) to the derived repo."""

    from_version: str
    to_version: str
    files: dict[str, FileOutcome] = field(default_factory=dict)
    notes: dict[str, str] = field(default_factory=dict)  # why a file has its outcome, where that needs saying
    dry_run: bool = False

    def _with(self, outcome: FileOutcome) -> list[str]:
        return sorted(p for p, o in self.files.items() if o == outcome)

    @property
    def new(self) -> list[str]:
        return self._with("new")

    @property
    def deleted(self) -> list[str]:
        return self._with("deleted")

    @property
    def merged(self) -> list[str]:
        return self._with("merged")

    @property
    def kept(self) -> list[str]:
        """Files the new release deletes but the repo had edited: kept, and counted as conflicts."""
        return self._with("kept")

    @property
    def conflicts(self) -> list[str]:
        """Files that need the user: conflicting merges and kept files."""
        return sorted(p for p, o in self.files.items() if o in ("conflict", "kept"))

    @property
    def changed(self) -> list[str]:
        """Files that were there before and got the template's changes (merged and conflicting ones too)."""
        return sorted(p for p, o in self.files.items() if o in ("clean", "merged", "conflict"))

    @property
    def nothing_to_do(self) -> bool:
        return not self.files and self.from_version == self.to_version

    @property
    def exit_code(self) -> int:
        return ExitCode.CONFLICTS if self.conflicts else ExitCode.OK


def repo_root(dest: Path) -> Path:
    """Top of the git work tree holding ``dest``, or a message on how to make one."""
    if not dest.is_dir():
        raise FlakewrightError(f"{dest} is not a directory; pass a repo made by flakewright")
    top = git("rev-parse", "--show-toplevel", cwd=dest, check=False).strip()
    if not top:
        raise FlakewrightError(
            f"{dest} is not a git repository; run `git init && git add -A && git commit -m init` there first"
        )
    return Path(top)


def template_releases(src: str) -> Releases | None:
    """Releases of a local template checkout; None for a remote source (copier's tags then rule)."""
    if src.startswith(("/", "~", "./", "../")) and not Path(src).expanduser().exists():
        raise FlakewrightError(f"the template {src} is gone; pass --template PATH_OR_GIT_URL to where it is now")
    if not is_local(src):
        return None
    path = Path(src).expanduser().resolve()
    if not git("rev-parse", "--show-toplevel", cwd=path, check=False).strip():
        return None
    return Releases(path)


def update(
    *,
    dest: Path | str = ".",
    to: str | None = None,
    conflict: Conflict = "inline",
    data: Mapping[str, object] | None = None,
    trust: bool = False,
    template: str | None = None,
    dry_run: bool = False,
    force: bool = False,
    confirm_deletions: Callable[[list[str]], bool] | None = None,
) -> UpdateResult:
    """Update ``dest`` to template release or ref ``to`` (default: the newest release).

    The update runs in a scratch clone of the repo and lands in the work tree in
    one final step (see ``_landing``): interrupted or refused before it, the tree
    is as it was. When new answers (``data``) make the update delete files, it
    lands only if ``force`` or ``confirm_deletions(paths)`` says yes.
    ``dry_run`` reports what the update would do and never lands it.
    """
    with offline_stand_in(**_recorded(dest), template=template) as source:
        return _update(
            dest=dest, to=to, conflict=conflict, data=data, trust=trust, template=source, dry_run=dry_run,
            force=force, confirm_deletions=confirm_deletions,
        )


def _recorded(dest: Path | str) -> dict[str, str]:
    """The answers' source and commit, for _bundle's stand-in; empty when they cannot be read (the update
    then says why)."""
    try:
        answers = read_answers(Path(dest).expanduser().resolve())
    except FlakewrightError:
        return {"recorded": "", "commit": ""}
    return {"recorded": str(answers["_src_path"]), "commit": str(answers["_commit"])}


def _update(
    *,
    dest: Path | str = ".",
    to: str | None = None,
    conflict: Conflict = "inline",
    data: Mapping[str, object] | None = None,
    trust: bool = False,
    template: str | None = None,
    dry_run: bool = False,
    force: bool = False,
    confirm_deletions: Callable[[list[str]], bool] | None = None,
) -> UpdateResult:
    dest = Path(dest).expanduser().resolve()
    top = repo_root(dest)
    answers = read_answers(dest)
    _refuse_dirty(top)
    recorded = str(answers["_src_path"])
    releases = template_releases(template or recorded)
    data = dict(data or {})
    from_label = to_label = str(answers["_commit"])
    vcs_ref = to
    current: str | None = None
    if releases is not None:
        current = releases.resolve(str(answers["_commit"]))
        target = releases.resolve(to) if to else (releases.newest.commit if releases.newest else None)
        if target is None:
            target = releases.resolve("HEAD")
        from_label = releases.label(current)
        if not to and releases.is_ancestor(target, current):
            target = current  # the newest release is behind this repo: stay, never downgrade by default
        to_label = releases.label(target)
        if target == current and not data:
            return UpdateResult(from_version=from_label, to_version=to_label, dry_run=dry_run)
        vcs_ref = target
        if not trust:
            _refuse_pending_migrations(releases, target, from_label, to_label)
    with landing() as land, TemporaryDirectory(prefix="flakewright-update-", ignore_cleanup_errors=True) as tmp:
        source = template
        if releases is not None and not releases.is_git_ref(str(answers["_commit"])):
            source = _with_tag(releases, str(answers["_commit"]), current, Path(tmp) / "template")
        clone = _scratch_clone(top, Path(tmp) / "repo")
        scratch = clone / dest.relative_to(top)
        files, notes = _run(
            dest=scratch, top=clone, recorded=recorded, template=source, data=data, conflict=conflict, trust=trust,
            vcs_ref=vcs_ref, old_ref=current,
        )
        if releases is None:
            to_label = str(read_answers(scratch)["_commit"])
        result = UpdateResult(
            from_version=from_label, to_version=to_label, files=files, notes=notes, dry_run=dry_run
        )
        if dry_run:
            return result
        _refuse_deletions(result.deleted, asked=bool(data), force=force, confirm=confirm_deletions)
        _refuse_dirty(top)  # the user may have edited files while the update ran
        with prepared_move(clone=clone, top=top) as move:
            with land.final(changes=dest, done=f"{dest} is updated {from_label} -> {to_label} (review it with `git diff`)"):
                carry(move)
    return result


def _refuse_dirty(top: Path) -> None:
    # --no-optional-locks: a status that an interrupt kills must not leave index.lock behind in the user's repo
    dirty = git("--no-optional-locks", "status", "--porcelain", "--untracked-files=all", cwd=top).splitlines()
    if dirty:
        raise FlakewrightError(
            f"{top} has {len(dirty)} uncommitted change(s) (e.g. {dirty[0][3:]}); "
            "commit or stash them first so the update can be reviewed and undone"
        )


def _scratch_clone(top: Path, clone: Path) -> Path:
    """A clone of ``top`` at its HEAD, sharing its objects; the user's repo is only read."""
    head = git("rev-parse", "--verify", "HEAD", cwd=top).strip()
    git("clone", "--quiet", "--shared", "--no-checkout", "--", str(top), str(clone), cwd=top)
    git("-c", f"core.hooksPath={os.devnull}", "checkout", "--quiet", "--detach", head, cwd=clone)
    return clone


def _refuse_deletions(
    deleted: list[str], *, asked: bool, force: bool, confirm: Callable[[list[str]], bool] | None
) -> None:
    """New answers that remove tracked files need --force or a yes; the update does not land otherwise."""
    if deleted and asked and not force and not (confirm and confirm(deleted)):
        shown = ", ".join(deleted[:3]) + (", ..." if len(deleted) > 3 else "")
        raise FlakewrightError(
            f"the new answers remove {len(deleted)} tracked file(s) ({shown}); nothing was changed: "
            "see them all with --dry-run, then re-run with --force to remove them"
        )


def _run(
    *,
    dest: Path,
    top: Path,
    recorded: str,
    template: str | None,
    data: dict[str, object],
    conflict: Conflict,
    trust: bool,
    vcs_ref: str | None,
    old_ref: str | None,
) -> tuple[dict[str, FileOutcome], dict[str, str]]:
    """copier's update in the scratch clone, then each file's outcome against the pristine old render."""
    import copier

    answers = read_answers(dest)
    with redirected_source(recorded=recorded, template=template), status("Updating from the template"):
        with pristine_render(dest, answers=answers, ref=old_ref) as old:
            with copier_errors(action="update", refs="--template and --to"):
                copier.run_update(
                    str(dest),
                    data=data,
                    defaults=True,
                    overwrite=True,
                    quiet=True,
                    conflict=conflict,
                    unsafe=trust,
                    vcs_ref=vcs_ref,
                )
            statuses = _statuses(top, dest)
            tree = Tree(top=top, dest=dest)
            files, notes = label(tree=tree, old=old, statuses=statuses, conflicts=_conflicted(dest, statuses, conflict=conflict))
            with ExitStack() as renders:
                rendered: list[Path] = []

                def new() -> Path:
                    """The new version's pristine render, made the first time a merge needs it."""
                    if not rendered:
                        rendered.append(renders.enter_context(pristine_render(dest, answers=read_answers(dest), ref=vcs_ref)))
                    return rendered[0]

                remerge_conflicts(tree=tree, old=old, new=new, files=files, notes=notes, inline=conflict == "inline")
                follow_renames(tree=tree, old=old, new=new, files=files, notes=notes)
                merge_notebooks(tree=tree, old=old, new=new, files=files, notes=notes)
            return files, notes


def _with_tag(releases: Releases, tag: str, commit: str, target: Path) -> str:
    """A throwaway clone of the template where ``tag`` (recorded, but known here only from CHANGELOG.md) exists.

    copier re-renders the recorded version by its recorded name; the user's own
    checkout is left as it is.
    """
    git("clone", "--quiet", "--shared", "--no-checkout", "--", str(releases.repo), str(target), cwd=releases.repo)
    git("tag", "--", tag, commit, cwd=target)
    return str(target)


def _statuses(top: Path, dest: Path) -> dict[str, str]:
    """Porcelain status code of each path under ``dest`` (relative to it) that differs from HEAD."""
    prefix = dest.relative_to(top).as_posix()
    entries = git(
        "status", "--porcelain", "-z", "--untracked-files=all", "--no-renames", "--", ".", cwd=dest
    ).split("\0")
    found = {}
    for entry in filter(None, entries):
        code, path = entry[:2], entry[3:]
        if prefix not in ("", "."):
            path = path.removeprefix(prefix + "/")
        if path != ANSWERS_FILE and not path.endswith(".rej"):
            found[path] = code
    return found


def _conflicted(dest: Path, statuses: dict[str, str], *, conflict: Conflict) -> list[str]:
    if conflict == "rej":
        return sorted(p.relative_to(dest).as_posix().removesuffix(".rej") for p in dest.rglob("*.rej"))
    found = []
    for path in statuses:
        target = dest / path
        if target.is_file():
            with target.open("rb") as handle:
                if any(line.startswith(_MARKERS) for line in handle):
                    found.append(path)
    return found


def _refuse_pending_migrations(releases: Releases, target: str, from_label: str, to_label: str) -> None:
    """Name the migrations an update from ``from_label`` to ``to_label`` would run, and ask for --trust."""
    try:
        config = yaml.safe_load(git("show", f"{target}:copier.yml", cwd=releases.repo, check=False) or "{}") or {}
        low, high = Version(from_label), Version(to_label)
    except (yaml.YAMLError, InvalidVersion):
        return
    pending = []
    for migration in config.get("_migrations", []) or []:
        try:
            version = Version(str(migration.get("version")))
        except (InvalidVersion, AttributeError):
            continue
        if low < version <= high:
            command = migration.get("command", "")
            words = command if isinstance(command, list) else str(command).split()
            pending.append(f"{version}: {_describe(words)}")
    if pending:
        raise FlakewrightError(
            f"updating {from_label} -> {to_label} runs {len(pending)} migration(s) from the template's copier.yml "
            f"({'; '.join(pending)}); read them, then re-run with --trust"
        )


def _describe(words: list[object]) -> str:
    """A migration command in a few words: a `sh -c SCRIPT NAME ARGS` shows NAME ARGS."""
    words = [str(w) for w in words]
    if len(words) > 3 and words[0] == "sh" and words[1] == "-c":
        words = words[3:]
    return " ".join(words)[:120]

