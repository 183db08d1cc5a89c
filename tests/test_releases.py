"""Releases are named in CHANGELOG.md: a template clone without tags still knows them."""
from __future__ import annotations

import tomllib
from pathlib import Path

import yaml

from flakewright._releases import Releases
from flakewright._version import __version__
from helpers import ANSWERS, REPO, TemplateRepo, commit_all, flakewright, flakewright_process, git, render_tagged


def changelog(*releases: str) -> str:
    body = "".join(f"## {name}\n\n- what {name} brings\n\n" for name in releases)
    return f"# Changelog\n\n## Unreleased\n\n{body}"


def untagged_template(path: Path) -> TemplateRepo:
    """A template whose only release record is CHANGELOG.md (no git tags at all)."""
    template = TemplateRepo.create(path)
    git(path, "tag", "-d", "v1.0.0")
    (path / "CHANGELOG.md").write_text(changelog("1.0.0"))
    commit_all(path, "release 1.0.0")
    assert git(path, "tag") == ""
    return template


def test_untagged_clone_reports_the_changelog_release_and_updates_by_name(tmp_path: Path) -> None:
    template = untagged_template(tmp_path / "template")
    dest = render_tagged(template, tmp_path / "app", "darwinix")

    check = flakewright("check", dest)
    assert check.returncode == 0, check.stdout + check.stderr
    assert check.stdout.splitlines()[0] == "up to date: 1.0.0"

    # unreleased work after 1.0.0 is not an update; naming it shows it is past the release
    readme = template.source("README.md")
    readme.write_text(readme.read_text() + "\nWork in progress.\n")
    commit_all(template.path, "unreleased change")
    assert flakewright("check", dest).returncode == 0
    released = git(template.path, "rev-parse", "HEAD").strip()
    (template.path / "CHANGELOG.md").write_text(changelog("2.0.0", "1.0.0"))
    commit_all(template.path, "release 2.0.0")
    readme.write_text(readme.read_text() + "\nAfter 2.0.0.\n")
    commit_all(template.path, "work after 2.0.0")

    behind = flakewright("check", dest)
    assert behind.returncode == 10, behind.stdout + behind.stderr
    assert "update available: 1.0.0 -> 2.0.0" in behind.stdout

    moved = flakewright("update", dest, "--to", "2.0.0")
    assert moved.returncode == 0, moved.stdout + moved.stderr
    assert moved.stdout.startswith("Updated 1.0.0 -> 2.0.0")
    text = (dest / "README.md").read_text()
    assert "Work in progress." in text and "After 2.0.0." not in text
    commit_all(dest, "update to 2.0.0")
    assert flakewright("check", dest).stdout.splitlines()[0] == "up to date: 2.0.0"
    assert flakewright("update", dest).stdout.strip() == "already at 2.0.0, nothing to do"

    # the default target is the newest release; HEAD is reachable by ref, and named after its release
    ahead = flakewright("update", dest, "--to", "HEAD")
    assert ahead.returncode == 0, ahead.stdout + ahead.stderr
    head = git(template.path, "rev-parse", "--short=7", "HEAD").strip()
    assert ahead.stdout.startswith(f"Updated 2.0.0 -> 2.0.0+{head}")
    assert "After 2.0.0." in (dest / "README.md").read_text()
    assert yaml.safe_load((dest / ANSWERS).read_text())["_commit"].endswith(head)
    assert Releases(template.path).commit("1.0.0") != released


def test_unknown_release_name_is_one_line(tmp_path: Path) -> None:
    template = untagged_template(tmp_path / "template")
    dest = render_tagged(template, tmp_path / "app", "darwinix")
    result = flakewright("update", dest, "--to", "9.9.9")
    assert result.returncode == 2
    assert len(result.stderr.strip().splitlines()) == 1
    assert "9.9.9 is neither a release nor a git ref" in result.stderr and "releases: 1.0.0" in result.stderr


def test_version_is_the_newest_changelog_release_and_pyproject_version() -> None:
    text = (REPO / "CHANGELOG.md").read_text()
    newest = next(line[3:].strip() for line in text.splitlines() if line.startswith("## ") and "Unreleased" not in line)
    pyproject = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["version"]
    assert __version__ == newest == pyproject
    result = flakewright_process("--version")
    assert result.returncode == 0
    assert result.stdout.strip() == f"flakewright {newest}"


def test_this_repo_names_its_releases_without_tags(tmp_path: Path) -> None:
    """A fresh clone (no tags travel with it) of this repo labels its HEAD with the CHANGELOG release."""
    clone = tmp_path / "clone"
    git(tmp_path, "clone", "-q", "--no-tags", str(REPO), str(clone))
    releases = Releases(clone)
    assert releases.newest is not None and releases.newest.name == __version__
    head = git(clone, "rev-parse", "HEAD").strip()
    assert releases.label(head).split("+")[0] == __version__


def test_repo_recording_a_tag_updates_from_a_clone_without_tags(tmp_path: Path) -> None:
    """Like `nix flake init` repos: `_commit: v1.0.0`, while the template clone at hand has no tags."""
    template = TemplateRepo.create(tmp_path / "template")
    (template.path / "CHANGELOG.md").write_text(changelog("1.0.0"))
    commit_all(template.path, "changelog")
    git(template.path, "tag", "-f", "v1.0.0")
    dest = render_tagged(template, tmp_path / "app", "darwinix")
    assert yaml.safe_load((dest / ANSWERS).read_text())["_commit"] == "v1.0.0"
    mirror = tmp_path / "mirror"
    git(tmp_path, "clone", "-q", "--no-tags", str(template.path), str(mirror))
    assert git(mirror, "tag") == ""
    readme = mirror / "template" / "README.md.jinja"
    readme.write_text(readme.read_text() + "\nNew in 2.0.0.\n")
    (mirror / "CHANGELOG.md").write_text(changelog("2.0.0", "1.0.0"))
    commit_all(mirror, "release 2.0.0")

    check = flakewright("check", dest, "--template", mirror)
    assert check.returncode == 10, check.stdout + check.stderr
    assert "update available: 1.0.0 -> 2.0.0" in check.stdout and "no drift" in check.stdout

    result = flakewright("update", dest, "--template", mirror)
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.startswith("Updated 1.0.0 -> 2.0.0")
    assert "New in 2.0.0." in (dest / "README.md").read_text()
