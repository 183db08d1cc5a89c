"""Where the template comes from: the checkout flakewright was installed from, or --template.

By default flakewright renders the template it was installed from: the
directory holding ``copier.yml`` and ``template/`` found by walking up from
this file. An editable install (``pip install -e .``) therefore always renders
the checkout it points at. ``FLAKEWRIGHT_TEMPLATE`` or ``--template`` (a path
or git URL) override it.
"""
from __future__ import annotations

import os
from pathlib import Path

from ._errors import FlakewrightError

ENV_VAR = "FLAKEWRIGHT_TEMPLATE"


def template_source(template: str | None = None) -> str:
    """The template to render: ``template`` (--template), else $FLAKEWRIGHT_TEMPLATE, else the checkout
    flakewright was installed from. A local path comes back absolute, so copier records where it is."""
    src = template or os.environ.get(ENV_VAR) or _installed_from()
    return str(Path(src).expanduser().resolve()) if is_local(src) else src


def _installed_from() -> str:
    """The checkout an editable install points at, else the copy a wheel carries (see _bundle)."""
    from ._bundle import bundled

    for parent in Path(__file__).resolve().parents:
        if (parent / "copier.yml").is_file() and (parent / "template").is_dir():
            return str(parent)
    if (packaged := bundled()) is not None:
        return str(packaged)
    raise FlakewrightError(
        "cannot find the flakewright template next to this installation; "
        f"pass --template PATH_OR_GIT_URL or set {ENV_VAR}"
    )


def is_local(src: str) -> bool:
    """True when ``src`` names a directory on this machine (not a git URL)."""
    return "://" not in src and not src.startswith(("git@", "gh:", "gl:")) and Path(src).expanduser().is_dir()

