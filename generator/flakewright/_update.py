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

from ._bundle import offline_stand_in
from ._console import status
from ._copier import file_mode_read_once
from ._derived import DerivedRepo
from ._errors import ExitCode, FlakewrightError, copier_errors
from ._git import git
from ._landing import landing
from ._merges import follow_renames, merge_notebooks, remerge_conflicts
from ._outcomes import FileOutcome, Tree, label
from ._releases import Releases
from ._template import TemplateSource
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
    repo = DerivedRepo.open(dest)
    data = dict(data or {})
    with offline_stand_in(recorded=repo.recorded, commit=repo.commit, template=template) as override:
        _refuse_dirty(repo)
        source = TemplateSource.resolve(recorded=repo.recorded, commit=repo.commit, override=override)
        from_label = to_label = repo.commit
        target = to
        if source.releases is not None:
            current = str(source.current)
            target = source.releases.resolve(to) if to else source.latest
            from_label = source.label(current)
            if not to and source.releases.is_ancestor(target, current):
                target = current  # the newest release is behind this repo: stay, never downgrade by default
            to_label = source.label(target)
            if target == current and not data:
                return UpdateResult(from_version=from_label, to_version=to_label, dry_run=dry_run)
            if not trust:
                _refuse_pending_migrations(source.releases, target=target, from_label=from_label, to_label=to_label)
        with landing() as land, TemporaryDirectory(prefix="flakewright-update-", ignore_cleanup_errors=True) as tmp:
            fetched = source.tagged(Path(tmp) / "template")
            scratch = repo.moved(top=_scratch_clone(repo.top, Path(tmp) / "repo"))
            files, notes, updated = _run(repo=scratch, source=fetched, target=target, data=data, conflict=conflict, trust=trust)
            if source.releases is None:
                to_label = updated.commit
            result = UpdateResult(from_version=from_label, to_version=to_label, files=files, notes=notes, dry_run=dry_run)
            if dry_run:
                return result
            _refuse_deletions(result.deleted, asked=bool(data), force=force, confirm=confirm_deletions)
            _refuse_dirty(repo)  # the user may have edited files while the update ran
            with prepared_move(clone=scratch.top, top=repo.top) as move:
                done = f"{repo.dest} is updated {from_label} -> {to_label} (review it with `git diff`)"
                with land.final(changes=repo.dest, done=done):
                    carry(move)
    return result


def _refuse_dirty(repo: DerivedRepo) -> None:
    dirty = repo.uncommitted()
    if dirty:
        raise FlakewrightError(
            f"{repo.top} has {len(dirty)} uncommitted change(s) (e.g. {dirty[0][3:]}); "
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
    *, repo: DerivedRepo, source: TemplateSource, target: str | None, data: dict[str, object], conflict: Conflict,
    trust: bool,
) -> tuple[dict[str, FileOutcome], dict[str, str], DerivedRepo]:
    """copier's update in the scratch clone ``repo``, then each file's outcome against the pristine old render;
    the repo comes back with its new answers."""
    import copier

    with source.redirect(), status("Updating from the template"):
        with repo.pristine(ref=source.current) as old:
            with copier_errors(action="update", refs="--template and --to"), file_mode_read_once():
                copier.run_update(
                    str(repo.dest),
                    data=data,
                    defaults=True,
                    overwrite=True,
                    quiet=True,
                    conflict=conflict,
                    unsafe=trust,
                    vcs_ref=target,
                )
            updated = repo.reread()
            statuses = repo.statuses()
            tree = Tree(top=repo.top, dest=repo.dest)
            conflicts = _conflicted(repo.dest, statuses, conflict=conflict)
            files, notes = label(tree=tree, old=old, statuses=statuses, conflicts=conflicts)
            with ExitStack() as renders:
                rendered: list[Path] = []

                def new() -> Path:
                    """The new version's pristine render, made the first time a merge needs it."""
                    if not rendered:
                        rendered.append(renders.enter_context(updated.pristine(ref=target)))
                    return rendered[0]

                remerge_conflicts(tree=tree, old=old, new=new, files=files, notes=notes, inline=conflict == "inline")
                follow_renames(tree=tree, old=old, new=new, files=files, notes=notes)
                merge_notebooks(tree=tree, old=old, new=new, files=files, notes=notes)
            return files, notes, updated


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


def _refuse_pending_migrations(releases: Releases, *, target: str, from_label: str, to_label: str) -> None:
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

