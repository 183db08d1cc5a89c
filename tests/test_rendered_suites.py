"""Each rendered variant's own test suite passes, run with this interpreter from inside the render."""
from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from helpers import VARIANTS

# These assert that pytest runs inside the render's own .venv, which only the Nix/venv tests build;
# every other test of the rendered suite must pass with this interpreter.
NEEDS_REPO_VENV = ("tests/test_environment.py::test_interpreter_is_the_repo_venv",
                   "tests/test_environment.py::test_venv_holds_exactly_the_lock",
                   "tests/test_environment.py::test_venv_was_installed_from_this_lock")


@pytest.mark.parametrize("variant", VARIANTS)
def test_rendered_suite_passes(render, variant: str, tmp_path: Path) -> None:
    repo = shutil.copytree(render(variant), tmp_path / variant)  # running the suite writes data/ and caches
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests",
         *(arg for test in NEEDS_REPO_VENV for arg in ("--deselect", test))],
        cwd=repo, capture_output=True, text=True, timeout=900,
    )
    assert result.returncode == 0, result.stdout[-6000:] + result.stderr[-3000:]
    assert " passed" in result.stdout.splitlines()[-1]
