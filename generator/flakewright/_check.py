"""``flakewright check``: is a newer template out, and does the repo still match its render?"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from copier import _main as copier_main

from ._copier import copier_errors, status
from ._pristine import differing_files, pristine_render, read_answers
from ._source import redirected_source

UP_TO_DATE = 0
UPDATE_AVAILABLE = 10
DRIFT = 20
UPDATE_AND_DRIFT = UPDATE_AVAILABLE + DRIFT


@dataclass(frozen=True, kw_only=True)
class CheckResult:
    """Where a derived repo stands relative to its template."""

    current_version: str
    latest_version: str
    update_available: bool
    drift: list[str] = field(default_factory=list)

    @property
    def exit_code(self) -> int:
        """0 up to date and clean, 10 update available, 20 drift, 30 both."""
        return (UPDATE_AVAILABLE if self.update_available else 0) + (DRIFT if self.drift else 0)


def check(*, dest: Path | str = ".", template: str | None = None) -> CheckResult:
    """Compare ``dest`` with the newest template tag and with its own last render."""
    dest = Path(dest).expanduser().resolve()
    answers = read_answers(dest)
    with redirected_source(recorded=str(answers["_src_path"]), template=template), status("Checking"):
        with copier_errors(action="check"):
            available, current, latest = copier_main.get_update_data(dst_path=dest)
        with pristine_render(dest, answers=answers) as pristine:
            drift = differing_files(pristine, dest)
    return CheckResult(
        current_version=current, latest_version=latest, update_available=available, drift=drift
    )
