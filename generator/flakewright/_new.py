"""``flakewright new``: render one variant into a fresh directory.

The render goes to a hidden sibling of DEST first (same folder name, so
anything derived from DEST's name comes out the same) and is moved into place
only when copier has finished: bad answers, a failed task, Ctrl-C or SIGTERM
leave DEST as it was. The move itself runs to its end through a signal (see
``_landing``): with --force it is one rename per file.
"""
from __future__ import annotations

import os
import shutil
from collections.abc import Mapping
from pathlib import Path
from tempfile import mkdtemp

from ._answers import ANSWERS_FILE
from ._bundle import is_bundled, record_public_source
from ._console import status, wrap_validation_messages
from ._copier import file_mode_read_once
from ._errors import FlakewrightError, copier_errors
from ._landing import landing
from ._source import template_source
from ._variants import get_variant


def new(
    *,
    variant: str,
    dest: Path | str,
    data: Mapping[str, object] | None = None,
    defaults: bool = True,
    force: bool = False,
    trust: bool = False,
    template: str | None = None,
    vcs_ref: str | None = None,
) -> Path:
    """Render ``variant`` into ``dest`` and return the destination path.

    Refuses a non-empty ``dest`` unless ``force``; with ``force``, rendered files
    replace files of the same name and everything else in ``dest`` stays.
    """
    import copier

    chosen = get_variant(variant)
    answers = dict(data or {})
    if "variant" in answers:
        raise FlakewrightError("choose the variant with the VARIANT argument, not --data variant=...")
    dest = Path(dest).expanduser().absolute()
    if dest.exists() and not dest.is_dir():
        raise FlakewrightError(f"{dest} is a file; choose a directory for DEST")
    if dest.is_dir() and any(dest.iterdir()) and not force:
        raise FlakewrightError(f"{dest} is not empty; choose a new directory or pass --force to render over it")
    src = template_source(template)
    try:
        dest.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(mkdtemp(prefix=f".{dest.name}.flakewright-", dir=dest.parent))
    except OSError as exc:
        raise FlakewrightError(f"cannot create {dest}: {exc.strerror or exc}") from None
    if not defaults:
        wrap_validation_messages()
    with landing() as land:
        try:
            rendered = staging / dest.name
            with status(f"Rendering {chosen.name} into {dest}", enabled=defaults), copier_errors(
                action="new", refs="--template and --vcs-ref"
            ), file_mode_read_once():
                copier.run_copy(
                    src,
                    str(rendered),
                    data={**chosen.answers, **answers},
                    defaults=defaults,
                    quiet=True,
                    unsafe=trust,
                    vcs_ref=vcs_ref,
                    cleanup_on_error=False,
                )
            if is_bundled(src):
                record_public_source(rendered / ANSWERS_FILE)
            with land.final(changes=dest, done=f"{dest} is rendered"):
                _move_into_place(rendered, dest)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
    return dest


def _move_into_place(rendered: Path, dest: Path) -> None:
    if not dest.exists() or not any(dest.iterdir()):
        if dest.exists():
            dest.rmdir()
        os.replace(rendered, dest)
        return
    files = [p for p in sorted(rendered.rglob("*")) if not p.is_dir() or p.is_symlink()]
    for path in files:
        relative = path.relative_to(rendered)
        target = dest / relative
        if target.is_dir() and not target.is_symlink():
            raise FlakewrightError(
                f"{target} is a directory where the template renders a file; move it away, then run again"
            )
        for parent in list(relative.parents)[:-1]:
            if (dest / parent).exists() and not (dest / parent).is_dir():
                raise FlakewrightError(
                    f"{dest / parent} is a file where the template renders a directory; move it away, then run again"
                )
    for path in files:
        target = dest / path.relative_to(rendered)
        target.parent.mkdir(parents=True, exist_ok=True)
        os.replace(path, target)
