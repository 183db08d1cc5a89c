"""Generated files the fork renamed (`git mv`, or a delete and an add of much the same text).

Found with git's own rename detection (``git diff --no-index -M``) between the
pristine render's files the fork no longer has and the fork's files the render
does not have, so a rename made at any time since the render counts, before
or after the last update.
"""
from __future__ import annotations

import subprocess
from collections.abc import Callable
from pathlib import Path
from tempfile import TemporaryDirectory

_LARGEST = 1 << 20  # bytes; bigger files are not followed


def renames(*, gone: dict[str, Path], added: dict[str, Callable[[], bytes | None]]) -> dict[str, str]:
    """``{old path: new path}`` for each of ``gone`` (pristine files, by path) that git sees renamed to one of
    ``added`` (the fork's files, read on demand)."""
    if not gone or not added:
        return {}
    with TemporaryDirectory(prefix="flakewright-renames-") as tmp:
        root = Path(tmp)
        for side, files in (("a", {p: f.read_bytes for p, f in gone.items()}), ("b", added)):
            (root / side).mkdir()
            for path, read in files.items():
                content = read()
                if content is None or len(content) > _LARGEST:
                    continue
                target = root / side / path
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_bytes(content)
        done = subprocess.run(
            ["git", "diff", "--no-index", "-M", "--name-status", "-z", "--diff-filter=R", "--", "a", "b"],
            cwd=root, capture_output=True, check=False,
        )
    fields = done.stdout.decode(errors="surrogateescape").split("\0")
    found = {}
    for i, field in enumerate(fields):
        if field.startswith("R") and i + 2 < len(fields):
            found[fields[i + 1].removeprefix("a/")] = fields[i + 2].removeprefix("b/")
    return found
