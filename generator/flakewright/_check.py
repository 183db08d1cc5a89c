"""``flakewright check``: is a newer template out, and does the repo still match its render?"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from ._answers import read_answers
from ._bundle import offline_stand_in
from ._console import status
from ._copier import update_data
from ._errors import ExitCode, copier_errors
from ._git import git
from ._pristine import differing_files, pristine_render
from ._renames import renames
from ._source import redirected_source
from ._update import repo_root, template_releases

UP_TO_DATE = ExitCode.OK
UPDATE_AVAILABLE = ExitCode.UPDATE_AVAILABLE
DRIFT = ExitCode.DRIFT
UPDATE_AND_DRIFT = UPDATE_AVAILABLE + DRIFT


@dataclass(frozen=True, kw_only=True)
class CheckResult:
    """Where a derived repo stands relative to its template."""

    current_version: str
    latest_version: str
    update_available: bool
    drift: list[str] = field(default_factory=list)  # every generated file not as rendered
    deleted: list[str] = field(default_factory=list)  # drift: generated files the repo no longer has
    renamed: dict[str, str] = field(default_factory=dict)  # drift: generated files the repo moved (old: new)
    uncommitted: int = 0  # changes `git status` shows; `update` refuses the repo until they are committed

    @property
    def edited(self) -> list[str]:
        """Drift that is an edit: generated files still there, with other content."""
        return [p for p in self.drift if p not in self.deleted and p not in self.renamed]

    @property
    def exit_code(self) -> int:
        """0 up to date and clean, 10 update available, 20 drift, 30 both."""
        return (UPDATE_AVAILABLE if self.update_available else 0) + (DRIFT if self.drift else 0)


def check(*, dest: Path | str = ".", template: str | None = None) -> CheckResult:
    """Compare ``dest`` with the newest template release and with its own last render."""
    from ._update import _recorded

    with offline_stand_in(**_recorded(dest), template=template) as source:
        return _check(dest=dest, template=source)


def _check(*, dest: Path | str, template: str | None) -> CheckResult:
    dest = Path(dest).expanduser().resolve()
    answers = read_answers(dest)
    top = repo_root(dest)
    recorded = str(answers["_src_path"])
    releases = template_releases(template or recorded)
    with redirected_source(recorded=recorded, template=template), status("Checking"):
        current = None
        if releases is not None:
            current = releases.resolve(str(answers["_commit"]))
            newest = releases.newest.commit if releases.newest else releases.resolve("HEAD")
            available = newest != current and releases.is_ancestor(current, newest)
            latest = newest if available else current
            current_label, latest_label = releases.label(current), releases.label(latest)
        else:
            with copier_errors(action="check"):
                available, current_label, latest_label = update_data(dest)
        with pristine_render(dest, answers=answers, ref=current) as pristine:
            drift = differing_files(pristine, dest)
            missing = [p for p in drift if not (dest / p).exists() and not (dest / p).is_symlink()]
            moved = _renamed(pristine, dest, missing)
    uncommitted = git("--no-optional-locks", "status", "--porcelain", "--untracked-files=all", cwd=top).splitlines()
    return CheckResult(
        current_version=current_label, latest_version=latest_label, update_available=available, drift=drift,
        deleted=[p for p in missing if p not in moved], renamed=moved, uncommitted=len(uncommitted),
    )


def _renamed(pristine: Path, dest: Path, missing: list[str]) -> dict[str, str]:
    """Which ``missing`` generated files the repo has under another name (tracked files only)."""
    if not missing:
        return {}
    tracked = [p for p in git("ls-files", "-z", "--", ".", cwd=dest).split("\0") if p]
    added = {p: (dest / p).read_bytes for p in tracked if not (pristine / p).exists() and (dest / p).is_file()}
    return renames(gone={p: pristine / p for p in missing}, added=added)
