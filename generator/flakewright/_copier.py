"""copier's private API, used here only; tests/test_check.py pins it."""
from __future__ import annotations

from pathlib import Path


def update_data(dest: Path) -> tuple[bool, str, str]:
    """copier's own check of a repo against its template's tags: (newer?, current, latest)."""
    from copier import _main

    return _main.get_update_data(dst_path=dest)
