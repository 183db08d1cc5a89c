"""`flakewright update REPO...` / `check REPO...`: many repos in one run, and `update --dry-run`."""
from __future__ import annotations

import re
from pathlib import Path

import pytest

from helpers import TemplateRepo, commit_all, copy_releases, flakewright, git, listed, literal_line, render_tagged


def table_row(stdout: str, repo: Path) -> list[str]:
    """The summary-table row of ``repo``: its cells split on runs of two or more spaces."""
    line = next(line for line in stdout.splitlines() if line.startswith(f"{repo} ") or line == str(repo))
    return re.split(r"\s{2,}", line.strip())


@pytest.fixture(scope="module")
def fleet_release(tmp_path_factory) -> Path:
    """Built once: a v2 template and three darwinix repos made from v1: clean, conflicting, dirty."""
    root = tmp_path_factory.mktemp("fleet")
    template = TemplateRepo.create(root / "template")
    clean = render_tagged(template, root / "clean", "darwinix")
    conflicting = render_tagged(template, root / "conflicting", "darwinix")
    render_tagged(template, root / "dirty", "darwinix")
    requirement = literal_line(template.source("pyproject.toml"), clean / "pyproject.toml")
    text = (conflicting / "pyproject.toml").read_text()
    (conflicting / "pyproject.toml").write_text(text.replace(f"{requirement}\n", f"{requirement}  # user pin\n", 1))
    commit_all(conflicting, "user pin")
    decl_src = template.source("pyproject.toml")
    decl_src.write_text(decl_src.read_text().replace(f"{requirement}\n", f"{requirement}  # template v2 pin\n", 1))
    (template.path / "template" / "CONTRIBUTING.md").write_text("How to contribute\n")
    template.release("v2.0.0")
    return root


@pytest.fixture
def fleet(fleet_release, tmp_path: Path):
    """fleet_release copied for one test to change; the dirty repo gets its uncommitted file."""
    template, (clean, conflicting, dirty) = copy_releases(fleet_release, tmp_path, "clean", "conflicting", "dirty")
    (dirty / "NOTES.md").write_text("not committed\n")
    return template, clean, conflicting, dirty


def test_update_many_repos_reports_each_and_goes_on_past_a_refused_one(fleet) -> None:
    _, clean, conflicting, dirty = fleet
    dirty_head = git(dirty, "rev-parse", "HEAD")

    result = flakewright("update", clean, dirty, conflicting)

    assert result.returncode == 2, result.stdout + result.stderr  # any refused beats any conflict
    assert table_row(result.stdout, clean) == [str(clean), "1.0.0 -> 2.0.0", "1", "1", "0", "0", "0", "clean"]
    assert table_row(result.stdout, conflicting) == [str(conflicting), "1.0.0 -> 2.0.0", "1", "1", "0", "1", "0", "conflicts"]
    for repo in (clean, conflicting):  # each count is the length of the list of that name in the repo's report
        section = result.stdout.split(f"== {repo}\n", 1)[1].split("\n== ", 1)[0]
        lists = [listed(section, name) for name in ("new", "changed", "merged with your edits", "conflicts", "deleted")]
        assert table_row(result.stdout, repo)[2:7] == [str(len(paths)) for paths in lists], section
    assert table_row(result.stdout, dirty)[-1] == "refused"
    assert re.search(r"refused: .*uncommitted change", result.stderr)
    # the others went on; the refused one is untouched
    assert (clean / "CONTRIBUTING.md").read_text() == (conflicting / "CONTRIBUTING.md").read_text() == "How to contribute\n"
    assert "<<<<<<< " in (conflicting / "pyproject.toml").read_text()
    assert not (dirty / "CONTRIBUTING.md").exists()
    assert git(dirty, "rev-parse", "HEAD") == dirty_head
    assert (dirty / "NOTES.md").read_text() == "not committed\n"


def test_update_many_exits_1_on_conflicts_and_0_when_all_clean(fleet, tmp_path: Path) -> None:
    template, clean, conflicting, _ = fleet
    assert flakewright("update", clean, conflicting).returncode == 1
    second = render_tagged(template, tmp_path / "second", "darwinix")
    other = render_tagged(template, tmp_path / "other", "pipulate")
    template.source("README.md").write_text(template.source("README.md").read_text() + "\nv3\n")
    template.release("v3.0.0")
    result = flakewright("update", second, other)
    assert result.returncode == 0, result.stdout + result.stderr
    assert table_row(result.stdout, second)[1] == "2.0.0 -> 3.0.0"
    assert table_row(result.stdout, other)[-1] == "clean"


def test_dry_run_says_per_file_what_would_happen_and_writes_nothing(fleet) -> None:
    template, clean, conflicting, _ = fleet
    # a merged file too: the user's edit at the top of README, the template's at its end
    readme = conflicting / "README.md"
    readme.write_text("User's own first line.\n" + readme.read_text())
    commit_all(conflicting, "user readme line")
    heads = {repo: git(repo, "rev-parse", "HEAD") for repo in (clean, conflicting)}

    result = flakewright("update", "--dry-run", clean, conflicting)

    assert result.returncode == 1, result.stdout + result.stderr
    section = result.stdout.split(f"== {conflicting}\n", 1)[1].split("\n== ", 1)[0]  # repos report as they end
    outcomes = dict(reversed(m) for m in re.findall(r"^  (new|clean|merged|conflict|deleted)\s+(\S+)$", section, re.M))
    assert outcomes["CONTRIBUTING.md"] == "new"
    assert outcomes["pyproject.toml"] == "conflict"
    assert "README.md" not in outcomes  # the template did not touch README in v2
    for repo in (clean, conflicting):
        assert git(repo, "status", "--porcelain", "--untracked-files=all") == ""
        assert git(repo, "rev-parse", "HEAD") == heads[repo]
    assert not (clean / "CONTRIBUTING.md").exists()
    assert table_row(result.stdout, conflicting)[-1] == "would conflict"
    assert table_row(result.stdout, clean)[-1] == "would update"


def test_dry_run_lists_merged_and_deleted(released, tmp_path: Path) -> None:
    template, dest = released("pipulate", "-d", "jupyter=true")
    readme = dest / "README.md"
    readme.write_text("User's own first line.\n" + readme.read_text())
    commit_all(dest, "user readme line")
    source = template.source("README.md")
    source.write_text(source.read_text() + "\nTemplate v2 paragraph.\n")
    template.release("v2.0.0")

    result = flakewright("update", dest, "--dry-run", "-d", "jupyter=false")

    assert result.returncode == 0, result.stdout + result.stderr
    assert re.search(r"^  merged\s+README\.md$", result.stdout, re.M), result.stdout
    assert re.search(r"^  deleted\s+notebooks/starter\.ipynb$", result.stdout, re.M), result.stdout
    assert (dest / "notebooks").is_dir()
    assert git(dest, "status", "--porcelain", "--untracked-files=all") == ""


def test_check_many_repos_one_table(fleet, tmp_path: Path) -> None:
    _, clean, conflicting, _ = fleet
    broken = tmp_path / "broken"
    broken.mkdir()
    result = flakewright("check", clean, conflicting, broken)
    assert result.returncode == 2, result.stdout + result.stderr
    assert table_row(result.stdout, clean) == [str(clean), "1.0.0 -> 2.0.0", "0", "update available"]
    assert table_row(result.stdout, conflicting) == [str(conflicting), "1.0.0 -> 2.0.0", "1", "update available, drift"]
    assert table_row(result.stdout, broken)[-1] == "refused"
    assert ".copier-answers.yml" in result.stderr
    both = flakewright("check", clean, conflicting)
    assert both.returncode == 30, both.stdout + both.stderr
