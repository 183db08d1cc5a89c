"""Shared fixtures: render each variant once per session and reuse the render.

Helpers shared between test modules live in helpers.py; tests that need external
tools (nix, chromium) call ``helpers.need(tool)``.
"""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from helpers import PIP_NO_COMPILING, TemplateRepo, copy_releases, copy_template, render_tagged, render_variant


@pytest.hookimpl(tryfirst=True)  # before xdist reads the groups
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Tests that share a module-scoped setup (a served app, an entered Nix shell) run on one xdist worker,
    so the setup is built once; those groups are the longest, so they start first."""
    for item in items:
        shared = sorted(
            name for name, defs in item._fixtureinfo.name2fixturedefs.items() if defs and defs[-1].scope == "module"
        )
        if shared:
            params = getattr(item, "callspec", None)
            ids = [str(params.params[name]) for name in shared if params and name in params.params]
            item.add_marker(pytest.mark.xdist_group("::".join([item.path.name, *ids])))
    items.sort(key=lambda item: item.get_closest_marker("xdist_group") is None)


@pytest.fixture(scope="session")
def plain_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """copier.yml and template/ of the working tree outside git: copier renders it without cloning the repo."""
    return copy_template(tmp_path_factory.mktemp("template") / "flakewright")


@pytest.fixture(scope="session")
def render(tmp_path_factory: pytest.TempPathFactory, plain_template: Path):
    """Factory ``render(variant, **answers) -> Path``, cached per session.

    Renders are shared between tests: treat them as read-only, or copy first.
    """
    cache: dict[tuple, Path] = {}

    def _render(variant: str, **data: object) -> Path:
        key = (variant, tuple(sorted(data.items())))
        if key not in cache:
            dest = tmp_path_factory.mktemp(f"render-{variant}")
            cache[key] = render_variant(dest, variant, template=plain_template, **data)
        return cache[key]

    return _render


@pytest.fixture(scope="session")
def pip_wheels(tmp_path_factory: pytest.TempPathFactory):
    """Factory ``pip_wheels(requirements) -> env``: with ``env``, pip installs the hash-pinned ``requirements``
    from a session folder instead of the index.

    venv.sh's pip path rebuilds .venv from nothing on every lock change, so without this each install in
    a test downloads the whole lock again. The hashes are still checked against the lock.
    """
    folder = tmp_path_factory.mktemp("pip-wheels")

    def download(requirements: Path) -> dict[str, str]:
        subprocess.run([sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "--require-hashes",
                        "--dest", str(folder), "-r", str(requirements)], check=True, capture_output=True, timeout=600)
        return {"PIP_NO_INDEX": "1", "PIP_FIND_LINKS": str(folder), **PIP_NO_COMPILING}

    return download


@pytest.fixture(scope="session")
def first_releases(tmp_path_factory: pytest.TempPathFactory):
    """Factory ``(variant, extra, name) -> folder`` holding template/ (tagged v1.0.0) and <name>/ rendered from it, built once."""
    cache: dict[tuple, Path] = {}

    def build(variant: str, extra: tuple[str, ...], name: str) -> Path:
        if (variant, extra, name) not in cache:
            root = tmp_path_factory.mktemp(f"release-{variant}")
            render_tagged(TemplateRepo.create(root / "template"), root / name, variant, *extra)
            cache[variant, extra, name] = root
        return cache[variant, extra, name]

    return build


@pytest.fixture
def released(first_releases, tmp_path: Path):
    """Factory ``released(variant, *extra, name="app") -> (template, dest)`` for a test to edit freely.

    The same as ``TemplateRepo.create(tmp_path / "template")`` then ``render_tagged(template, tmp_path / name,
    variant, *extra)``, copied from a session cache: the render's answers point at this test's template.
    """
    def make(variant: str, *extra: str, name: str = "app") -> tuple[TemplateRepo, Path]:
        template, (dest,) = copy_releases(first_releases(variant, extra, name), tmp_path, name)
        return template, dest

    return make

