"""``flakewright check``: is a newer template out, and does the repo still match its render?"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from ._bundle import offline_stand_in
from ._console import status
from ._derived import DerivedRepo
from ._errors import ExitCode
from ._git import git
from ._pristine import differing_files
from ._renames import renames
from ._template import TemplateSource

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
    repo = DerivedRepo.open(dest, answers_first=True)
    with offline_stand_in(recorded=repo.recorded, commit=repo.commit, template=template) as override:
        source = TemplateSource.resolve(recorded=repo.recorded, commit=repo.commit, override=override)
        with source.redirect(), status("Checking"):
            available, current_label, latest_label = source.newer(dest=repo.dest)
            with repo.pristine(ref=source.current) as pristine:
                drift = differing_files(pristine, repo.dest)
                missing = [p for p in drift if not (repo.dest / p).exists() and not (repo.dest / p).is_symlink()]
                moved = _renamed(pristine, repo.dest, missing)
    return CheckResult(
        current_version=current_label, latest_version=latest_label, update_available=available, drift=drift,
        deleted=[p for p in missing if p not in moved], renamed=moved, uncommitted=len(repo.uncommitted()),
    )


def _renamed(pristine: Path, dest: Path, missing: list[str]) -> dict[str, str]:
    """Which ``missing`` generated files the repo has under another name (tracked files only)."""
    if not missing:
        return {}
    tracked = [p for p in git("ls-files", "-z", "--", ".", cwd=dest).split("\0") if p]
    added = {p: (dest / p).read_bytes for p in tracked if not (pristine / p).exists() and (dest / p).is_file()}
    return renames(gone={p: pristine / p for p in missing}, added=added)
