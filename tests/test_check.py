"""`flakewright check`: newer template versions and drift, with stable exit codes."""
from __future__ import annotations

from pathlib import Path

import pytest

from helpers import TemplateRepo, commit_all, flakewright, git

UP_TO_DATE, UPDATE_AVAILABLE, DRIFT, BOTH = 0, 10, 20, 30


@pytest.fixture
def rendered(released) -> tuple[TemplateRepo, Path]:
    return released("pipulate")


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
    assert drift == ["edited", "requirements.txt"]


def test_deleted_generated_file_and_update_together_exit_30(rendered: tuple[TemplateRepo, Path]) -> None:
    template, dest = rendered
    (dest / "README.md").unlink()
    commit_all(dest, "drop the readme")
    template.release("v1.1.0")

    result = flakewright("check", dest)

    assert result.returncode == BOTH, result.stdout + result.stderr
    assert "update available: 1.0.0 -> 1.1.0" in result.stdout
    assert "  deleted  README.md" in result.stdout  # told apart from an edit


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


def test_check_with_template_suggests_update_with_the_same_template(rendered, tmp_path: Path) -> None:
    template, dest = rendered
    mirror = tmp_path / "mirror"
    git(tmp_path, "clone", "-q", str(template.path), str(mirror))
    readme = mirror / "template" / "README.md.jinja"
    readme.write_text(readme.read_text() + "\nNew in v2.\n")
    commit_all(mirror, "v2")
    git(mirror, "tag", "v2.0.0")

    result = flakewright("check", dest, "--template", mirror)

    assert result.returncode == UPDATE_AVAILABLE, result.stdout + result.stderr
    assert f"(run `flakewright update --template {mirror}`)" in result.stdout


def test_check_when_the_template_is_gone_is_one_line_without_update_options(rendered, tmp_path: Path) -> None:
    template, dest = rendered
    template.path.rename(tmp_path / "moved")
    result = flakewright("check", dest)
    assert result.returncode == 2, result.stdout + result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert "--template" in result.stderr
    assert "--vcs-ref" not in result.stderr and "--to" not in result.stderr


def test_check_in_a_rendered_folder_that_is_not_a_git_repo_is_one_line(rendered, tmp_path: Path) -> None:
    template, _ = rendered
    loose = tmp_path / "loose"
    assert flakewright("new", "darwinix", loose, "--template", template.path, "--defaults").returncode == 0
    result = flakewright("check", loose)
    assert result.returncode == 2, result.stdout + result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert "not a git repository" in result.stderr
    assert "update available" not in result.stdout


def test_copiers_private_update_check_is_still_there(rendered) -> None:
    """flakewright._copier.update_data is the one use of copier's private API (remote templates)."""
    from flakewright._copier import update_data

    _, dest = rendered
    available, current, latest = update_data(dest)
    assert (available, current, latest) == (False, "1.0.0", "1.0.0")


def test_check_with_an_unreachable_template_url_is_one_line(rendered) -> None:
    _, dest = rendered
    answers = dest / ".copier-answers.yml"
    text = answers.read_text()
    recorded = next(line for line in text.splitlines() if line.startswith("_src_path:"))
    answers.write_text(text.replace(recorded, "_src_path: https://127.0.0.1:9/flakewright.git"))
    commit_all(dest, "template moved to a server that is down")
    result = flakewright("check", dest)
    assert result.returncode == 2, result.stdout + result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert result.stderr.startswith("flakewright: error: check failed") and "--template" in result.stderr
    assert "--vcs-ref" not in result.stderr and "--to" not in result.stderr


def test_check_warns_that_update_will_refuse_a_dirty_repo(rendered: tuple[TemplateRepo, Path]) -> None:
    _, dest = rendered
    (dest / "NOTES.md").write_text("not committed yet\n")
    result = flakewright("check", dest)
    assert result.returncode == UP_TO_DATE, result.stdout + result.stderr
    assert "1 uncommitted change(s)" in result.stderr and "`flakewright update` refuses it" in result.stderr


def test_copiers_private_file_mode_sync_is_still_the_one_the_fleet_wraps() -> None:
    """flakewright._copier.file_mode_read_once wraps Worker._sync_git_index_executable_bit in every copier render: it must still take
    (dst_relpath, src_mode) and do nothing unless git's core.fileMode is "false"."""
    import inspect

    from copier._main import Worker

    method = Worker._sync_git_index_executable_bit
    assert list(inspect.signature(method).parameters) == ["self", "dst_relpath", "src_mode"]
    source = inspect.getsource(method)
    assert '"core.fileMode"' in source and 'if file_mode_setting != "false":' in source


def test_copiers_private_clone_is_still_the_one_the_fleet_shares() -> None:
    """flakewright._copier.shared_clones replaces copier._template.clone for a fleet run: Template must still clone
    through that name, with (url, ref, location=...), and use the folder it returns."""
    import inspect

    from copier import _template, _vcs

    assert _template.clone is _vcs.clone
    assert list(inspect.signature(_vcs.clone).parameters) == ["url", "ref", "location"]
    source = inspect.getsource(_template.Template.local_abspath.func)
    assert "clone(" in source and "location=str(self._temp_clone_path)" in source
