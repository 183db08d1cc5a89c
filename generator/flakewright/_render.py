"""``flakewright new``: render one variant into a fresh directory."""
from __future__ import annotations

import shutil
from collections.abc import Mapping
from pathlib import Path

import copier

from ._copier import copier_errors, status
from ._errors import FlakewrightError
from ._source import default_template, is_local
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

    Refuses a non-empty ``dest`` unless ``force``. On bad answers nothing is
    left behind: a destination this call created is removed again.
    """
    chosen = get_variant(variant)
    answers = dict(data or {})
    if "variant" in answers:
        raise FlakewrightError("choose the variant with the VARIANT argument, not --data variant=...")
    dest = Path(dest).expanduser()
    if dest.exists() and not dest.is_dir():
        raise FlakewrightError(f"{dest} is a file; choose a directory for DEST")
    existed = dest.exists()
    was_empty = not existed or not any(dest.iterdir())
    if not was_empty and not force:
        raise FlakewrightError(f"{dest} is not empty; choose a new directory or pass --force to render over it")
    src = template or default_template()
    if is_local(src):
        src = str(Path(src).expanduser().resolve())
    try:
        with status(f"Rendering {chosen.name} into {dest}", enabled=defaults), copier_errors(action="new"):
            copier.run_copy(
                src,
                str(dest),
                data={**chosen.answers, **answers},
                defaults=defaults,
                overwrite=force,
                quiet=True,
                unsafe=trust,
                vcs_ref=vcs_ref,
                cleanup_on_error=False,
            )
    except BaseException:
        if not existed:
            shutil.rmtree(dest, ignore_errors=True)
        elif was_empty:
            for child in dest.iterdir():
                shutil.rmtree(child) if child.is_dir() and not child.is_symlink() else child.unlink()
        raise
    return dest
