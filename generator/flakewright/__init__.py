"""flakewright: render and keep up to date Nix + Python repos from one copier template.

Public API::

    from flakewright import new, update, check, backport, FlakewrightError

Names load on first use, so ``flakewright --help`` never imports copier.
"""
from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING

from ._errors import ExitCode, FlakewrightError, Interrupted
from ._version import __version__

if TYPE_CHECKING:
    from ._backport import BackportResult, backport
    from ._check import CheckResult, check
    from ._new import new
    from ._update import UpdateResult, update
    from ._variants import VARIANTS, Variant

_LAZY = {
    "BackportResult": "_backport",
    "backport": "_backport",
    "CheckResult": "_check",
    "check": "_check",
    "new": "_new",
    "UpdateResult": "_update",
    "update": "_update",
    "VARIANTS": "_variants",
    "Variant": "_variants",
}


def __getattr__(name: str) -> object:
    if name in _LAZY:
        return getattr(import_module(f".{_LAZY[name]}", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "VARIANTS",
    "BackportResult",
    "CheckResult",
    "ExitCode",
    "FlakewrightError",
    "Interrupted",
    "UpdateResult",
    "Variant",
    "__version__",
    "backport",
    "check",
    "new",
    "update",
]
