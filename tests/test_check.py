"""`flakewright check`: newer template versions and drift, with stable exit codes."""
from __future__ import annotations

from pathlib import Path

import pytest

from test_update import TemplateRepo, commit_all, flakewright, render

UP_TO_DATE, UPDATE_AVAILABLE, DRIFT, BOTH = 0, 10, 20, 30


@pytest.fixture
def rendered(tmp_path: Path) -> tuple[TemplateRepo, Path]:
    template = TemplateRepo.create(tmp_path / "template")
    return template, render(template, tmp_path / "app", "pipulate")


def test_clean_repo_is_up_to_date(rendered: tuple[TemplateRepo, Path]) -> None:
    _, dest = rendered
    result = flakewright("check", dest)
    assert result.returncode == UP_TO_DATE, result.stdout + result.stderr
    assert "up to date: 1.0.0" in result.stdout
    assert "no drift" in result.stdout


def test_repo_behind_the_latest_tag_reports_the_update(rendered: tuple[TemplateRepo, Path]) -> None:
    template, dest = rendered
    readme = template.source("README.md")
    readme.write_text(readme.read_text() + "\nNew in v2.\n")
    template.release("v2.0.0")

    result = flakewright("check", dest)

    assert result.returncode == UPDATE_AVAILABLE, result.stdout + result.stderr
    assert "update available: 1.0.0 -> 2.0.0" in result.stdout
    assert "no drift" in result.stdout


def test_hand_edited_generated_file_is_drift(rendered: tuple[TemplateRepo, Path]) -> None:
    _, dest = rendered
    with (dest / "requirements.txt").open("a") as handle:
        handle.write("rich\n")
    (dest / "NOTES.md").write_text("a file of the user's own is not drift\n")
    commit_all(dest, "hand edits")

    result = flakewright("check", dest)

    assert result.returncode == DRIFT, result.stdout + result.stderr
    drift = result.stdout.split("differ from the last render", 1)[1].split()
    assert drift == ["requirements.txt"]


def test_deleted_generated_file_and_update_together_exit_30(rendered: tuple[TemplateRepo, Path]) -> None:
    template, dest = rendered
    (dest / "README.md").unlink()
    commit_all(dest, "drop the readme")
    template.release("v1.1.0")

    result = flakewright("check", dest)

    assert result.returncode == BOTH, result.stdout + result.stderr
    assert "update available: 1.0.0 -> 1.1.0" in result.stdout
    assert "  README.md" in result.stdout


def test_check_outside_a_rendered_repo_is_one_line(tmp_path: Path) -> None:
    result = flakewright("check", tmp_path)
    assert result.returncode == 2
    assert len(result.stderr.strip().splitlines()) == 1
    assert ".copier-answers.yml" in result.stderr


def test_exit_codes_are_documented_in_help() -> None:
    result = flakewright("check", "--help")
    assert result.returncode == 0
    for code, meaning in ((" 0", "up to date"), ("10", "newer template"), ("20", "drift"), ("30", "both")):
        assert any(line.strip().startswith(code.strip()) and meaning in line for line in result.stdout.splitlines()), code
