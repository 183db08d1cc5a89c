"""The template a derived repo came from, resolved once: where it is recorded, what stands in for it, its
releases and commits, and the git redirect that makes copier fetch the stand-in.

A local git checkout has releases by name (see ``_releases``); a remote source
(a git URL) has only copier's tag-based versions.
"""
from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from functools import cached_property
from pathlib import Path

from ._errors import FlakewrightError, copier_errors
from ._git import git
from ._releases import Releases
from ._source import is_local


@dataclass(frozen=True, kw_only=True)
class TemplateSource:
    """The template of one derived repo."""

    recorded: str  # the answers' _src_path
    commit: str  # the answers' _commit, as recorded (a tag, a release, a hash)
    override: str | None = None  # fetched in the recorded source's place: --template, or the wheel's stand-in
    releases: Releases | None = None  # a local git checkout's releases; None for a remote source
    current: str | None = None  # ``commit`` as a hash (None for a remote source)

    @classmethod
    def resolve(cls, *, recorded: str, commit: str, override: str | None) -> TemplateSource:
        """The source ``update`` and ``check`` fetch: a local checkout or a remote one."""
        src = override or recorded
        if src.startswith(("/", "~", "./", "../")) and not Path(src).expanduser().exists():
            raise FlakewrightError(f"the template {src} is gone; pass --template PATH_OR_GIT_URL to where it is now")
        releases = None
        if is_local(src):
            path = Path(src).expanduser().resolve()
            if git("rev-parse", "--show-toplevel", cwd=path, check=False).strip():
                releases = Releases(path)
        current = releases.resolve(commit) if releases is not None else None
        return cls(recorded=recorded, commit=commit, override=override, releases=releases, current=current)

    @classmethod
    def local_checkout(cls, *, recorded: str, commit: str, override: str | None) -> TemplateSource:
        """The source ``backport`` commits to: the top of a local git checkout that has the recorded commit."""
        src = override or recorded
        if not is_local(src):
            raise FlakewrightError(
                f"the template {src} is not a local checkout; pass --template PATH to a git clone of it"
            )
        path = Path(src).expanduser().resolve()
        top = git("rev-parse", "--show-toplevel", cwd=path, check=False).strip()
        if not top or Path(top).resolve() != path:
            raise FlakewrightError(f"{path} is not the top of a git checkout of the template; pass --template PATH")
        if not (path / "copier.yml").is_file():
            raise FlakewrightError(f"{path} has no copier.yml; pass --template PATH to a checkout of the template")
        releases = Releases(path)
        current = releases.commit(commit)  # a tag, a `git describe`, or a release named in CHANGELOG.md
        if not current:
            raise FlakewrightError(
                f"{path} lacks {commit}, the template commit this repo was rendered from; fetch it there first"
            )
        return cls(recorded=recorded, commit=commit, override=override, releases=releases, current=current)

    @property
    def checkout(self) -> Path:
        """The local checkout (only for a source that has releases)."""
        assert self.releases is not None
        return self.releases.repo

    @cached_property
    def latest(self) -> str:
        """The newest release's commit, else the checkout's HEAD (only for a source that has releases)."""
        assert self.releases is not None
        return self.releases.newest.commit if self.releases.newest else self.releases.resolve("HEAD")

    def label(self, commit: str) -> str:
        """``0.2.0`` on a release commit, ``0.2.0+1a2b3c4`` after one (only for a source that has releases)."""
        assert self.releases is not None
        return self.releases.label(commit)

    def newer(self, *, dest: Path) -> tuple[bool, str, str]:
        """Whether a newer release than the recorded one is out, with the labels of both; for a remote source
        copier asks its tags (inside ``redirect()``, so that the override answers)."""
        if self.releases is None:
            from ._copier import update_data

            with copier_errors(action="check"):
                return update_data(dest)
        current, newest = str(self.current), self.latest
        available = newest != current and self.releases.is_ancestor(current, newest)
        return available, self.label(current), self.label(newest if available else current)

    def tagged(self, target: Path) -> TemplateSource:
        """This source, fetched from a throwaway clone at ``target`` when the recorded commit is a release only
        CHANGELOG.md knows: copier re-renders the recorded version by its recorded name, and the clone has it as
        a tag. The user's own checkout is left as it is."""
        if self.releases is None or self.releases.is_git_ref(self.commit):
            return self
        repo = self.releases.repo
        git("clone", "--quiet", "--shared", "--no-checkout", "--", str(repo), str(target), cwd=repo)
        git("tag", "--", self.commit, str(self.current), cwd=target)
        return replace(self, override=str(target))

    @contextmanager
    def redirect(self) -> Iterator[None]:
        """Make git fetch the override whenever copier asks for the recorded ``_src_path``.

        The answers file keeps its public URL; only this process sees the redirect
        (``url.<override>.insteadOf``), so offline mirrors and local clones work.
        """
        from plumbum import local

        template = self.override
        if template and is_local(template):
            template = str(Path(template).expanduser().resolve())
        if not template or template == self.recorded:
            yield
            return
        index = int(os.environ.get("GIT_CONFIG_COUNT", "0"))
        redirect = {
            "GIT_CONFIG_COUNT": str(index + 1),
            f"GIT_CONFIG_KEY_{index}": f"url.{template}.insteadOf",
            f"GIT_CONFIG_VALUE_{index}": self.recorded,
        }
        saved = {key: os.environ.get(key) for key in redirect}
        os.environ.update(redirect)
        try:
            with local.env(**redirect):  # copier runs git through plumbum's own env copy
                yield
        finally:
            for key, value in saved.items():
                if value is None:
                    os.environ.pop(key, None)
                else:
                    os.environ[key] = value
