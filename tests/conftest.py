"""Shared fixtures: render each variant once per session and reuse the render.

Helpers shared between test modules live in helpers.py; tests that need external
tools (nix, chromium) call ``helpers.need(tool)``.
"""
from __future__ import annotations

import pytest

from helpers import render_variant


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
