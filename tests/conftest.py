"""Shared fixtures: render each variant once per session and reuse the render.

Tests that need external tools (nix, chromium) call ``need(tool)``. Locally a
missing tool skips the test with the reason; with FLAKEWRIGHT_REQUIRE_ALL=1
(set by .ci/run) the same situation fails, so CI can never go green by skipping.
"""
from __future__ import annotations

import os
import shutil
import socket
from pathlib import Path

import copier
import pytest

REPO = Path(__file__).resolve().parent.parent
VARIANTS = ("darwinix", "pipulate", "botifython")
REQUIRE_ALL = os.environ.get("FLAKEWRIGHT_REQUIRE_ALL") == "1"


def need(tool: str, *, why: str = "") -> str:
    """Return the path of ``tool`` or skip (fail under FLAKEWRIGHT_REQUIRE_ALL)."""
    found = shutil.which(tool) or (tool if os.path.isabs(tool) and os.access(tool, os.X_OK) else None)
    if found:
        return found
    message = f"{tool} is not installed{': ' + why if why else ''}"
    if REQUIRE_ALL:
        pytest.fail(f"{message} (FLAKEWRIGHT_REQUIRE_ALL=1 forbids skipping)")
    pytest.skip(message)


def free_port() -> int:
    """A port nothing on 127.0.0.1 listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def render_variant(dest: Path, variant: str, **data: object) -> Path:
    """Render the working-tree template into ``dest`` with default answers."""
    copier.run_copy(
        str(REPO),
        str(dest),
        data={"variant": variant, "project_name": variant, **data},  # as examples/<variant>/ gets from its folder
        defaults=True,
        overwrite=True,
        quiet=True,
        vcs_ref="HEAD",  # the working tree, dirty changes included; tags would pick a release
    )
    return dest


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
