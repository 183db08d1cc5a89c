"""What a uv.lock installs on one machine, read from the lock itself rather than through uv.

The tests compare a rendered .venv with this, so a venv.sh that installed the wrong thing cannot
pass by asking the same tool that installed it.
"""
from __future__ import annotations

import tomllib
from collections import defaultdict
from pathlib import Path

from packaging.markers import Marker, default_environment
from packaging.utils import canonicalize_name


def venv_python(venv: Path) -> str:
    """The full Python version a venv was made with, from its pyvenv.cfg."""
    for line in (venv / "pyvenv.cfg").read_text().splitlines():
        key, _, value = line.partition("=")
        if key.strip() in ("version", "version_info"):
            return value.strip()
    raise AssertionError(f"{venv}/pyvenv.cfg names no version")


def installs(lock: Path, python_full_version: str) -> dict[str, str]:
    """Canonical name -> version of every package the lock puts in .venv here, with that Python.

    Walks from the root project (its dependencies and dependency groups) along every edge whose
    marker holds on this machine, following requested extras.
    """
    packages = tomllib.loads(lock.read_text())["package"]
    by_name: dict[str, list[dict]] = defaultdict(list)
    for package in packages:
        by_name[package["name"]].append(package)
    (root,) = [p for p in packages if p["source"].get("virtual") == "." or p["source"].get("editable") == "."]
    env = default_environment() | {
        "python_full_version": python_full_version,
        "python_version": ".".join(python_full_version.split(".")[:2]),
    }

    edges = list(root.get("dependencies", []))
    edges += [dep for group in root.get("dev-dependencies", {}).values() for dep in group]
    found: dict[str, str] = {}
    followed: set[tuple[str, str, str]] = set()
    while edges:
        edge = edges.pop()
        if "marker" in edge and not Marker(edge["marker"]).evaluate(env):
            continue
        candidates = [p for p in by_name[edge["name"]] if "version" not in edge or p["version"] == edge["version"]]
        (package,) = candidates
        name = canonicalize_name(package["name"])
        assert found.setdefault(name, package["version"]) == package["version"], f"{name}: two versions apply"
        for part in ("", *edge.get("extra", [])):
            if (name, package["version"], part) in followed:
                continue
            followed.add((name, package["version"], part))
            edges += package.get("optional-dependencies", {}).get(part, []) if part else package.get("dependencies", [])
    return found
