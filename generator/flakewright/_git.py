"""git, run the way every command needs it: output captured, failures as one line."""
from __future__ import annotations

import subprocess
from pathlib import Path

from ._errors import FlakewrightError, first_line


def git(*args: str, cwd: Path, check: bool = True) -> str:
    """Run git in ``cwd`` and return its stdout."""
    result = subprocess.run(
        ["git", *args], cwd=cwd, capture_output=True, text=True, check=False
    )
    if check and result.returncode:
        raise FlakewrightError(
            f"git {args[0]} failed in {cwd}: {first_line(result.stderr) or result.returncode}"
        )
    return result.stdout
