"""Template releases by name, with or without git tags.

A release is a ``## X.Y.Z`` heading in the template's CHANGELOG.md. Its commit
is the tag ``vX.Y.Z`` (or ``X.Y.Z``) when one exists, and otherwise the first
commit whose CHANGELOG.md carries the heading, so a clone that lost its tags
still knows its releases. A commit is labelled with the newest release at or
before it: ``0.2.0`` on the release commit itself, ``0.2.0+1a2b3c4`` after it.
This works on a local git checkout of the template; for a remote source
copier's own tag-based versions are used.
"""
from __future__ import annotations

import re
import subprocess
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

from packaging.version import InvalidVersion, Version

from ._git import git
from ._errors import FlakewrightError

CHANGELOG = "CHANGELOG.md"
_HEADING = re.compile(r"^## \[?v?(\d+(?:\.\d+)*[0-9A-Za-z.+-]*)\]?", re.M)


def _version(name: str) -> Version | None:
    try:
        return Version(name.removeprefix("v"))
    except InvalidVersion:
        return None


@dataclass(frozen=True)
class Release:
    name: str
    commit: str

    @property
    def version(self) -> Version:
        return Version(self.name)


@dataclass
class Releases:
    """The releases of the template checkout at ``repo``."""

    repo: Path

    @cached_property
    def all(self) -> list[Release]:
        """Every release, newest first."""
        found: dict[str, str] = {}
        for line in git("tag", "--list", "--format=%(refname:short) %(objectname) %(*objectname)", cwd=self.repo).splitlines():
            tag, _, commits = line.partition(" ")
            version = _version(tag)
            if version is not None and not version.is_prerelease:
                found.setdefault(str(version), commits.split()[-1])
        log = git("log", "--reverse", "--format=%x00%H", "-U0", "--", CHANGELOG, cwd=self.repo, check=False)
        for entry in log.split("\0")[1:]:
            commit, _, patch = entry.partition("\n")
            for added in re.findall(r"^\+(## .*)$", patch, re.M):
                match = _HEADING.match(added)
                version = _version(match.group(1)) if match else None
                if version is not None:
                    found.setdefault(str(version), commit.strip())
        return sorted((Release(n, c) for n, c in found.items()), key=lambda r: r.version, reverse=True)

    @property
    def newest(self) -> Release | None:
        return self.all[0] if self.all else None

    def commit(self, ref: str) -> str | None:
        """Full hash of ``ref`` (a release name, tag, branch, hash or `git describe` output)."""
        version = _version(ref)
        if version is not None:
            for release in self.all:
                if release.version == version:
                    return release.commit
        return self._rev_parse(ref) or None

    def is_git_ref(self, ref: str) -> bool:
        """True when git itself knows ``ref`` (a tag, branch or hash), not only CHANGELOG.md."""
        return bool(self._rev_parse(ref))

    def _rev_parse(self, ref: str) -> str:
        """The commit ``ref`` names, or "". ``ref`` comes from the user (--to, the answers file): after
        --end-of-options, `-m` or `--git-dir` is a name to look up, never an option."""
        return git(
            "rev-parse", "--verify", "--quiet", "--end-of-options", f"{ref}^{{commit}}", cwd=self.repo, check=False
        ).strip()

    def resolve(self, ref: str) -> str:
        found = self.commit(ref)
        if found is None:
            names = ", ".join(r.name for r in self.all[:5]) or "none yet"
            raise FlakewrightError(f"{ref} is neither a release nor a git ref of {self.repo} (releases: {names})")
        return found

    def is_ancestor(self, older: str, newer: str) -> bool:
        """True when ``older`` is ``newer`` or one of its ancestors."""
        done = subprocess.run(
            ["git", "merge-base", "--is-ancestor", older, newer], cwd=self.repo, capture_output=True, check=False
        )
        return done.returncode == 0

    def label(self, commit: str) -> str:
        """``0.2.0`` on a release commit, ``0.2.0+1a2b3c4`` after one, the short hash before any."""
        for release in self.all:
            if release.commit == commit:
                return release.name
        short = commit[:7]
        for release in self.all:
            if self.is_ancestor(release.commit, commit):
                return f"{release.name}+{short}"
        return short

