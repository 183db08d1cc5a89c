"""The derived repo a command works on: its folder, its git work tree, its answers (read once), its state."""
from __future__ import annotations

from collections.abc import Mapping
from contextlib import AbstractContextManager
from dataclasses import dataclass, replace
from pathlib import Path
from types import MappingProxyType

from ._answers import ANSWERS_FILE, read_answers
from ._errors import FlakewrightError
from ._git import git
from ._pristine import pristine_render


@dataclass(frozen=True, kw_only=True)
class DerivedRepo:
    """A repo rendered from the template, as it was when the command opened it."""

    dest: Path  # the folder rendered into, absolute
    top: Path  # the top of the git work tree holding it
    answers: Mapping[str, object]  # its answers file, read-only

    @classmethod
    def open(
        cls,
        dest: Path | str,
        *,
        answers_first: bool = False,
        not_a_dir: str = "pass a repo made by flakewright",
        not_git: str = "run `git init && git add -A && git commit -m init` there first",
    ) -> DerivedRepo:
        """``dest`` with its answers, or a message on what is missing: ``not_a_dir`` and ``not_git`` say how to
        fix the work tree; ``answers_first`` reports an unreadable answers file before a missing work tree."""
        dest = Path(dest).expanduser().resolve()
        answers = read_answers(dest) if answers_first else None
        if not dest.is_dir():
            raise FlakewrightError(f"{dest} is not a directory; {not_a_dir}")
        top = git("rev-parse", "--show-toplevel", cwd=dest, check=False).strip()
        if not top:
            raise FlakewrightError(f"{dest} is not a git repository; {not_git}")
        answers = answers if answers is not None else read_answers(dest)
        return cls(dest=dest, top=Path(top), answers=MappingProxyType(answers))

    @property
    def recorded(self) -> str:
        """The template source the answers record (``_src_path``)."""
        return str(self.answers["_src_path"])

    @property
    def commit(self) -> str:
        """The template commit the answers record (``_commit``), as recorded: a tag, a release, a hash."""
        return str(self.answers["_commit"])

    @property
    def data(self) -> dict[str, object]:
        """The answers to the template's questions (copier's own ``_`` keys left out)."""
        return {k: v for k, v in self.answers.items() if not k.startswith("_")}

    def moved(self, *, top: Path) -> DerivedRepo:
        """The same repo with its work tree at ``top`` (a clone), answers as read here."""
        return replace(self, dest=top / self.dest.relative_to(self.top), top=top)

    def reread(self) -> DerivedRepo:
        """The repo with its answers read again, after a command changed them."""
        return replace(self, answers=MappingProxyType(read_answers(self.dest)))

    def uncommitted(self) -> list[str]:
        """`git status` lines of the work tree, untracked files included."""
        # --no-optional-locks: a status that an interrupt kills must not leave index.lock behind in the user's repo
        return git("--no-optional-locks", "status", "--porcelain", "--untracked-files=all", cwd=self.top).splitlines()

    def statuses(self) -> dict[str, str]:
        """Porcelain status code of each path under ``dest`` (relative to it) that differs from HEAD; neither the
        answers file nor copier's ``.rej`` files count."""
        prefix = self.dest.relative_to(self.top).as_posix()
        entries = git(
            "status", "--porcelain", "-z", "--untracked-files=all", "--no-renames", "--", ".", cwd=self.dest
        ).split("\0")
        found = {}
        for entry in filter(None, entries):
            code, path = entry[:2], entry[3:]
            if prefix not in ("", "."):
                path = path.removeprefix(prefix + "/")
            if path != ANSWERS_FILE and not path.endswith(".rej"):
                found[path] = code
        return found

    def pristine(self, *, ref: str | None = None) -> AbstractContextManager[Path]:
        """The render the answers make from the recorded commit (or ``ref``, the same by hash): read-only."""
        return pristine_render(answers=self.answers, ref=ref)

