"""examples/<variant>/ must be exactly what the template renders today.

They are what `nix flake init -t .#<variant>` copies, so a stale example ships
an old template. Regenerate with `python examples/regenerate.py`.
"""
from __future__ import annotations

import importlib.util
import os
import re
from pathlib import Path

import pytest
import yaml

from helpers import ANSWERS, REPO, TemplateRepo, commit_all, flakewright, git

_spec = importlib.util.spec_from_file_location("regenerate", REPO / "examples" / "regenerate.py")
regenerate = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(regenerate)


@pytest.mark.parametrize("variant", regenerate.VARIANTS)
def test_example_matches_a_fresh_render(variant: str, tmp_path: Path) -> None:
    fresh = regenerate.render_example(variant, tmp_path / variant)
    stale = regenerate.stale_files(fresh, REPO / "examples" / variant)
    assert stale == [], f"examples/{variant} is stale; run `python examples/regenerate.py` ({stale[:5]})"


def test_example_answers_point_at_the_public_source_and_a_release_tag(tmp_path: Path) -> None:
    fresh = regenerate.render_example("pipulate", tmp_path / "pipulate")
    answers = yaml.safe_load((fresh / ANSWERS).read_text())
    assert answers["_src_path"] == regenerate.PUBLIC_SRC
    assert answers["_commit"] == regenerate.release_tag()
    assert answers["variant"] == "pipulate"


def test_a_nix_flake_init_repo_can_be_brought_under_update(tmp_path: Path) -> None:
    """A copy of an example updates through a local clone standing in for the public URL."""
    template = TemplateRepo.create(tmp_path / "template", tag=regenerate.release_tag())
    dest = regenerate.render_example("darwinix", tmp_path / "from-flake-init")
    git(dest, "init", "-q")
    commit_all(dest, "nix flake init -t .#darwinix")
    readme = template.source("README.md")
    readme.write_text(readme.read_text() + "\nA later release adds this.\n")
    major, minor, patch = regenerate.release_tag().removeprefix("v").split(".")
    later = f"v{major}.{minor}.{int(patch) + 1}"
    template.release(later)

    check = flakewright("check", dest, "--template", template.path)
    assert check.returncode == 10, check.stdout + check.stderr
    result = flakewright("update", dest, "--template", template.path)

    assert result.returncode == 0, result.stdout + result.stderr
    assert "A later release adds this." in (dest / "README.md").read_text()
    answers = yaml.safe_load((dest / ANSWERS).read_text())
    assert answers["_commit"] == later
    assert answers["_src_path"] == regenerate.PUBLIC_SRC


def test_without_a_reachable_source_update_says_how_to_fix(tmp_path: Path) -> None:
    dest = regenerate.render_example("darwinix", tmp_path / "offline")
    git(dest, "init", "-q")
    commit_all(dest, "nix flake init")
    result = flakewright("update", dest)
    assert result.returncode == 2
    assert len(result.stderr.strip().splitlines()) == 1
    assert "--template" in result.stderr


def test_regenerate_uses_this_checkouts_generator_whatever_is_installed(tmp_path: Path) -> None:
    """An installed flakewright of another version must neither render the examples nor name their tag."""
    import subprocess
    import sys

    installed = tmp_path / "site" / "flakewright"
    installed.mkdir(parents=True)
    (installed / "__init__.py").write_text('__version__ = "9.9.9"\nVARIANTS = {}\n')
    probe = (
        "import runpy; g = runpy.run_path('examples/regenerate.py');"
        "print(g['release_tag']()); print(g['flakewright'].__file__)"
    )
    done = subprocess.run([sys.executable, "-c", probe], cwd=REPO, capture_output=True, text=True,
                          env={**os.environ, "PYTHONPATH": str(installed.parent)})
    assert done.returncode == 0, done.stderr
    tag, module = done.stdout.split()
    version = re.search(r'__version__ = "(.+)"', (REPO / "generator/flakewright/_version.py").read_text()).group(1)
    assert tag == f"v{version}"
    assert Path(module).resolve() == REPO / "generator" / "flakewright" / "__init__.py"
