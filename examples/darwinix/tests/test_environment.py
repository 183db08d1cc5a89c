"""The environment this repo promises: its own .venv, every requirement installed
and importable, and numpy working on this machine."""
import importlib
import importlib.metadata
import os
import sys
from pathlib import Path

import pytest
from packaging.requirements import Requirement

ROOT = Path(__file__).resolve().parent.parent


def requirements() -> list[Requirement]:
    lines = (ROOT / "requirements.txt").read_text().splitlines()
    return [Requirement(line) for line in (raw.split("#")[0].strip() for raw in lines) if line]


def test_interpreter_is_the_repo_venv():
    assert sys.prefix != sys.base_prefix
    assert Path(sys.prefix).resolve() == (ROOT / ".venv").resolve()


@pytest.mark.skipif(not os.environ.get("IN_NIX_SHELL"), reason="the flake pins the version only inside nix develop")
def test_python_is_the_version_the_flake_asks_for():
    assert "%d.%d" % sys.version_info[:2] == "3.12"


@pytest.mark.parametrize("requirement", requirements(), ids=str)
def test_requirement_is_installed_and_imports(requirement: Requirement):
    installed = importlib.metadata.version(requirement.name)
    assert requirement.specifier.contains(installed, prereleases=True), f"{requirement.name} {installed} does not satisfy {requirement}"
    modules = {
        module
        for module, dists in importlib.metadata.packages_distributions().items()
        if requirement.name.lower().replace("_", "-") in {d.lower().replace("_", "-") for d in dists}
        and module.isidentifier()
        and not module.startswith("_")
    }
    assert modules, f"{requirement.name} provides no importable module"
    for module in sorted(modules):
        importlib.import_module(module)


def test_numpy_computes():
    import numpy

    assert numpy.arange(6).reshape(2, 3).sum(axis=0).tolist() == [3, 5, 7]


def test_venv_was_installed_from_this_requirements_txt():
    stamp = (ROOT / ".venv" / ".installed").read_text()
    recorded = stamp.split("requirements.txt:\n", 1)[1]
    assert recorded == (ROOT / "requirements.txt").read_text().rstrip("\n"), "requirements.txt changed: enter the shell again to install it"
