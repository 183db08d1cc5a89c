"""flakewright: render and keep up to date Nix + Python repos from one copier template.

Public API::

    from flakewright import new, update, check, FlakewrightError
"""
from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version

from ._check import CheckResult, check
from ._errors import FlakewrightError
from ._render import new
from ._update import UpdateResult, update
from ._variants import VARIANTS, Variant

try:
    __version__ = version("flakewright")
except PackageNotFoundError:
    __version__ = "0.0.0"

__all__ = [
    "VARIANTS",
    "CheckResult",
    "FlakewrightError",
    "UpdateResult",
    "Variant",
    "__version__",
    "check",
    "new",
    "update",
]
