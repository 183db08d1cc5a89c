"""Shared fixtures: render each variant once per session and reuse the render.

Helpers shared between test modules live in helpers.py; tests that need external
tools (nix, chromium) call ``helpers.need(tool)``.
"""
from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from helpers import ANSWERS, TemplateRepo, git, render_tagged, render_variant


@pytest.fixture(scope="session")
def render(tmp_path_factory: pytest.TempPathFactory):
    """Factory ``render(variant, **answers) -> Path``, cached per session.

    Renders are shared between tests: treat them as read-only, or copy first.
    """
    cache: dict[tuple, Path] = {}

    def _render(variant: str, **data: object) -> Path:
        key = (variant, tuple(sorted(data.items())))
        if key not in cache:
            dest = tmp_path_factory.mktemp(f"render-{variant}")
            cache[key] = render_variant(dest, variant, **data)
        return cache[key]

    return _render


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
        root = first_releases(variant, extra, name)
        template = TemplateRepo(shutil.copytree(root / "template", tmp_path / "template", symlinks=True))
        dest = shutil.copytree(root / name, tmp_path / name, symlinks=True)
        answers = dest / ANSWERS
        text = answers.read_text()
        cached, copied = f"_src_path: {(root / 'template').resolve()}\n", f"_src_path: {template.path.resolve()}\n"
        assert cached in text, text
        answers.write_text(text.replace(cached, copied))
        git(dest, "commit", "-q", "--amend", "-a", "--no-edit")
        return template, dest

    return make
