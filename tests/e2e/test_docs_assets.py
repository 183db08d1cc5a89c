"""The docs' screenshots and links: what the e2e run writes to docs/screenshots/ stays small and is all used."""
from __future__ import annotations

import re
import struct
from pathlib import Path

import pytest

from .harness import REPO, VIEWPORT

DOCS = REPO / "docs"
SCREENSHOTS = DOCS / "screenshots"
MAX_BYTES = 150_000


def png_size(path: Path) -> tuple[int, int]:
    header = path.read_bytes()[:24]
    assert header[:8] == b"\x89PNG\r\n\x1a\n" and header[12:16] == b"IHDR", f"{path.name} is not a PNG"
    return struct.unpack(">II", header[16:24])


@pytest.mark.parametrize("path", sorted(SCREENSHOTS.glob("*.png")), ids=lambda p: p.name)
def test_screenshot_is_small_and_viewport_wide(path):
    assert png_size(path)[0] == VIEWPORT["width"]
    assert path.stat().st_size < MAX_BYTES, f"{path.name} is {path.stat().st_size} bytes"


def test_every_screenshot_is_documented_and_every_documented_one_exists():
    listed = set(re.findall(r"`([\w-]+\.png)`", (DOCS / "architecture.md").read_text()))
    taken = {path.name for path in SCREENSHOTS.glob("*.png")}
    assert "pipulate-chat.png" in taken, "README.md embeds docs/screenshots/pipulate-chat.png"
    assert listed == taken


@pytest.mark.parametrize("page", sorted(DOCS.glob("*.md")), ids=lambda p: p.name)
def test_relative_links_resolve(page):
    targets = re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", page.read_text())
    missing = [t for t in targets if "://" not in t and not (page.parent / t).exists()]
    assert not missing, f"{page.name} links to missing files: {missing}"
