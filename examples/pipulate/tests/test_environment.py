"""The environment this repo promises: its own .venv holding exactly the lock, every
declared dependency importable, and numpy working on this machine."""
import importlib
import importlib.metadata
import os
import sys
import tomllib
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parent.parent


def declared() -> list[Requirement]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    groups = project.get("dependency-groups", {}).values()
    return [Requirement(line) for line in project["project"]["dependencies"] + [r for group in groups for r in group]]


def locked() -> dict[str, str]:
    """Name and version of every package the lock installs on this machine.

    requirements.txt is uv.lock exported: one pin per package, with markers saying where it applies."""
    pins = {}
    for line in (ROOT / "requirements.txt").read_text().replace("\\\n", " ").splitlines():
        pin = line.split(" --hash=")[0].strip()
        if pin and not pin.startswith("#"):
            requirement = Requirement(pin)
            if requirement.marker is None or requirement.marker.evaluate():
                (specifier,) = requirement.specifier
                pins[canonicalize_name(requirement.name)] = specifier.version
    return pins


def installer() -> str:
    return (ROOT / ".venv" / ".interpreter").read_text().split()[-1]


def test_interpreter_is_the_repo_venv():
    assert sys.prefix != sys.base_prefix
    assert Path(sys.prefix).resolve() == (ROOT / ".venv").resolve()


@pytest.mark.skipif(not os.environ.get("IN_NIX_SHELL"), reason="the flake pins the version only inside nix develop")
def test_python_is_the_version_the_flake_asks_for():
    assert "%d.%d" % sys.version_info[:2] == "3.12"


@pytest.mark.parametrize("requirement", declared(), ids=str)
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


def test_venv_holds_exactly_the_lock():
    installed = {canonicalize_name(d.metadata["Name"]): d.version for d in importlib.metadata.distributions()}
    # A pip-built .venv carries pip itself (and setuptools before Python 3.12): the installer, not the lock.
    tools = {"pip", "setuptools"} - locked().keys() if installer() == "pip" else set()
    assert {name: version for name, version in installed.items() if name not in tools} == locked()


def test_venv_was_installed_from_this_lock():
    lock = ROOT / ("uv.lock" if installer() == "uv" else "requirements.txt")
    stamp = ROOT / ".venv" / ".installed"
    assert f"\nlock: {lock.name}" in stamp.read_text()
    assert stamp.stat().st_mtime_ns >= lock.stat().st_mtime_ns, f"{lock.name} changed: enter the shell again to install it"
