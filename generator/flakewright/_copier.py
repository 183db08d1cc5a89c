"""copier's private API, used here only; tests/test_check.py pins both uses."""
from __future__ import annotations

import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


def update_data(dest: Path) -> tuple[bool, str, str]:
    """copier's own check of a repo against its template's tags: (newer?, current, latest)."""
    from copier import _main

    return _main.get_update_data(dst_path=dest)


@contextmanager
def file_mode_read_once() -> Iterator[None]:
    """copier asks git for ``core.fileMode`` once per rendered file (``Worker._sync_git_index_executable_bit``:
    a git process each, some 200 per render, a fifth of an update's time); within the block it asks once per
    destination and calls copier's own method only where the answer is "false", the one case where that method
    does anything. Every copier render here (new, update, pristine renders) runs in one."""
    from copier._main import Worker

    original = getattr(Worker, "_sync_git_index_executable_bit", None)
    if original is None:  # another copier: it asks as it likes
        yield
        return
    modes: dict[Path, bool] = {}

    def sync(self: Worker, dst_relpath: Path, src_mode: int) -> None:
        root = Path(self.subproject.local_abspath)
        if root not in modes:
            try:
                done = subprocess.run(
                    ["git", "config", "--type=bool", "--get", "core.fileMode"], cwd=root, capture_output=True, text=True
                )
            except OSError:
                modes[root] = False
            else:
                modes[root] = done.returncode == 0 and done.stdout.strip() == "false"
        if modes[root]:
            original(self, dst_relpath, src_mode)

    Worker._sync_git_index_executable_bit = sync  # type: ignore[method-assign]
    try:
        yield
    finally:
        Worker._sync_git_index_executable_bit = original  # type: ignore[method-assign]
