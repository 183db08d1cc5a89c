"""What a derived repo looked like right after its last render.

Within ``shared_renders()`` (a fleet run), a pristine render is made once per
template source, ref and answers, and every repo that needs the same one, in
this process or one forked from it, reads that one: forks of a fleet often
share their answers, and each update needs the old and the new version.
"""
from __future__ import annotations

import filecmp
import hashlib
import json
import os
import shutil
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from tempfile import TemporaryDirectory

from ._answers import ANSWERS_FILE
from ._copier import file_mode_read_once
from ._errors import copier_errors

_shared: Path | None = None  # the folder of shared_renders(), while one is open


@contextmanager
def shared_renders(folder: Path) -> Iterator[None]:
    """Keep the pristine renders made in the block (and in processes forked in it) in ``folder`` for reuse; the
    caller removes the folder."""
    global _shared
    previous = _shared
    _shared = folder
    try:
        yield
    finally:
        _shared = previous


@contextmanager
def pristine_render(*, answers: Mapping[str, object], ref: str | None = None) -> Iterator[Path]:
    """Re-render the recorded template commit (or ``ref``, the same commit by hash) with the recorded answers.

    The render is read-only: within ``shared_renders()`` other repos read the same folder.
    """
    src, ref = str(answers["_src_path"]), ref or str(answers["_commit"])
    data = {k: v for k, v in answers.items() if not k.startswith("_")}
    if _shared is None:
        with TemporaryDirectory(prefix="flakewright-pristine-") as tmp:
            _render(src=src, ref=ref, data=data, target=Path(tmp))
            yield Path(tmp)
        return
    # git's redirects (--template, an offline stand-in) decide what the source is, as much as its name
    redirects = sorted((k, v) for k, v in os.environ.items() if k.startswith("GIT_CONFIG_"))
    key = hashlib.sha256(json.dumps([src, ref, data, redirects], sort_keys=True, default=str).encode()).hexdigest()
    cached = _shared / key
    with _locked(_shared / f"{key}.lock"):
        if not cached.is_dir():
            staging = _shared / f"{key}.{os.getpid()}"
            try:
                _render(src=src, ref=ref, data=data, target=staging)
                os.rename(staging, cached)
            finally:
                shutil.rmtree(staging, ignore_errors=True)
    yield cached


def _render(*, src: str, ref: str, data: dict[str, object], target: Path) -> None:
    import copier

    with copier_errors(action="re-rendering the last template version"), file_mode_read_once():
        copier.run_copy(src, str(target), data=data, defaults=True, quiet=True, vcs_ref=ref, skip_tasks=True)


@contextmanager
def _locked(path: Path) -> Iterator[None]:
    """Hold an exclusive lock on ``path`` (made if missing): one process renders, the others wait for it."""
    try:
        import fcntl
    except ImportError:  # no flock (Windows): two processes may both render; each gets a whole render
        yield
        return
    with open(path, "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def rendered_files(root: Path) -> list[str]:
    """Relative paths of every file in a render, answers file excluded."""
    return sorted(
        p.relative_to(root).as_posix()
        for p in root.rglob("*")
        if (p.is_file() or p.is_symlink()) and p.relative_to(root).as_posix() != ANSWERS_FILE
    )


def differing_files(pristine: Path, dest: Path) -> list[str]:
    """Files of the pristine render that ``dest`` no longer holds unchanged."""
    return [
        rel
        for rel in rendered_files(pristine)
        if not (dest / rel).is_file() or not filecmp.cmp(pristine / rel, dest / rel, shallow=False)
    ]
