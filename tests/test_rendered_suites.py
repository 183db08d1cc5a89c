"""Each render's own test suite, run once per CI run, and the largest once more on a real PostgreSQL.

With nix installed, test_nix.py runs the suite of each of its cases inside the render's dev shell and
.venv (which also runs the environment tests deselected here). This module runs, with this interpreter,
the default render of every variant that no Nix case covers with the same flags and installer; without
nix, every variant's default render, so a local run without nix still runs each variant's suite.
"""
from __future__ import annotations

import glob
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from helpers import VARIANTS, flags, need, own_basetemp
from nixenv import CASES as NIX_CASES

# These assert that pytest runs inside the render's own .venv, which only the Nix/venv tests build;
# every other test of the rendered suite must pass with this interpreter.
NEEDS_REPO_VENV = ("tests/test_environment.py::test_interpreter_is_the_repo_venv",
                   "tests/test_environment.py::test_venv_holds_exactly_the_lock",
                   "tests/test_environment.py::test_venv_was_installed_from_this_lock")


def suite_key(answers: dict) -> tuple[str, bool, bool, str]:
    """What decides which tests a render's suite holds and how its .venv is made."""
    rendered = flags(answers)
    return answers["variant"], rendered["jupyter"], rendered["demo"], answers.get("installer", "uv")


IN_NIX = {suite_key(answers) for answers in NIX_CASES.values()} if shutil.which("nix") else set()
ON_HOST = [variant for variant in VARIANTS if suite_key({"variant": variant}) not in IN_NIX]


@pytest.mark.parametrize("variant", ON_HOST)
def test_rendered_suite_passes(render, variant: str, tmp_path: Path) -> None:
    repo = shutil.copytree(render(variant), tmp_path / variant)  # running the suite writes data/ and caches
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *own_basetemp(tmp_path), "tests",
         *(arg for test in NEEDS_REPO_VENV for arg in ("--deselect", test))],
        cwd=repo, capture_output=True, text=True, timeout=900,
    )
    assert result.returncode == 0, result.stdout[-6000:] + result.stderr[-3000:]
    assert " passed" in result.stdout.splitlines()[-1]


def test_rendered_suite_passes_on_postgres(render, tmp_path: Path) -> None:
    """The demo's suite with `--postgres`: each test on a fresh database of a PostgreSQL the suite starts
    (tests/postgres.py in the render), all but the tests of SQLite's own file and locks, and the notebook suites,
    whose runs take the database path every tool run takes (test_tool_runs, test_tool_page_runs and
    test_tool_results cover it) and spend their minutes starting kernels. Botifython adds files, not data paths,
    so the Pipulate render covers every table and query the app has. Two workers: this is the longest test."""
    initdb = shutil.which("initdb") or next(iter(glob.glob("/usr/lib/postgresql/*/bin/initdb")), "initdb")
    need(initdb, why="apt-get install postgresql")
    repo = shutil.copytree(render("pipulate"), tmp_path / "pipulate")
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *own_basetemp(tmp_path), "tests",
         "--postgres", "-n", "2", "--ignore", "tests/test_environment.py", "--ignore", "tests/test_notebook_tools.py",
         "--ignore", "tests/test_notebook_forms.py"],
        cwd=repo, capture_output=True, text=True, timeout=900,
    )
    assert result.returncode == 0, result.stdout[-6000:] + result.stderr[-3000:]
    summary = result.stdout.splitlines()[-1]
    assert " passed" in summary and "skipped" not in summary, summary
