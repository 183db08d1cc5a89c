"""Where the template comes from: the checkout flakewright was installed from, or --template.

By default flakewright renders the template it was installed from: the
directory holding ``copier.yml`` and ``template/`` found by walking up from
this file. An editable install (``pip install -e .``) therefore always renders
the checkout it points at. ``FLAKEWRIGHT_TEMPLATE`` or ``--template`` (a path
or git URL) override it.
"""
from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
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


@contextmanager
def redirected_source(*, recorded: str, template: str | None) -> Iterator[None]:
    """Make git fetch ``template`` whenever copier asks for the recorded ``_src_path``.

    The answers file keeps its public URL; only this process sees the redirect
    (``url.<template>.insteadOf``), so offline mirrors and local clones work.
    """
    from plumbum import local

    if template and is_local(template):
        template = str(Path(template).expanduser().resolve())
    if not template or template == recorded:
        yield
        return
    index = int(os.environ.get("GIT_CONFIG_COUNT", "0"))
    redirect = {
        "GIT_CONFIG_COUNT": str(index + 1),
        f"GIT_CONFIG_KEY_{index}": f"url.{template}.insteadOf",
        f"GIT_CONFIG_VALUE_{index}": recorded,
    }
    saved = {key: os.environ.get(key) for key in redirect}
    os.environ.update(redirect)
    try:
        with local.env(**redirect):  # copier runs git through plumbum's own env copy
            yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
