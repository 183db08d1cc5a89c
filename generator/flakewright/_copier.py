"""copier's private API, used here only; tests/test_check.py pins each use."""
from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import tempfile
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


@contextmanager
def shared_clones(folder: Path) -> Iterator[None]:
    """copier clones the template for every render it makes (an update makes two: git clone, checkout and
    submodule update, four git processes each). Within the block, and in processes forked in it, each template
    and ref is cloned once into ``folder``, and every later clone of it is a copy of that one. For a fleet run,
    whose repos all render the same few versions; the caller removes the folder."""
    from copier import _template, _vcs

    original = _template.clone
    # git's redirects (--template, an offline stand-in) decide what the source is, as much as its name
    redirects = sorted((k, v) for k, v in os.environ.items() if k.startswith("GIT_CONFIG_"))

    def clone(url: str, ref: str = "HEAD", location: str | None = None) -> str:
        key = hashlib.sha256(repr((url, ref, redirects)).encode()).hexdigest()
        cached = folder / key
        if not cached.is_dir():
            staging = folder / f"{key}.{os.getpid()}"
            staging.mkdir()
            original(url, ref, location=str(staging))
            try:
                os.rename(staging, cached)
            except OSError:  # another process's clone got there first: the same commit
                shutil.rmtree(staging, ignore_errors=True)
        location = location or tempfile.mkdtemp(prefix=_vcs.CLONE_PREFIX)
        shutil.copytree(cached, location, symlinks=True, dirs_exist_ok=True)
        return location

    _template.clone = clone
    try:
        yield
    finally:
        _template.clone = original
