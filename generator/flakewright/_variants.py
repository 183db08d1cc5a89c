"""The variants, read from variants.toml: what each renders and which answers select it."""
from __future__ import annotations

import tomllib
from dataclasses import dataclass
from pathlib import Path

from ._errors import FlakewrightError

TABLE_FILE = Path(__file__).with_name("variants.toml")


@dataclass(frozen=True, kw_only=True)
class Variant:
    """One kind of repo the template renders."""

    name: str
    label: str
    description: str
    extends: str | None
    adds: tuple[str, ...]
    flags: dict[str, bool]
    next: str

    @property
    def answers(self) -> dict[str, object]:
        """Answers that select this variant; everything else keeps its default."""
        return {"variant": self.name}


def _load(path: Path) -> tuple[dict[str, Variant], str]:
    table = tomllib.loads(path.read_text(encoding="utf-8"))
    variants = {
        name: Variant(
            name=name,
            label=entry["label"],
            description=entry["description"],
            extends=entry["extends"] or None,
            adds=tuple(entry["adds"]),
            flags=dict(entry["flags"]),
            next=entry["next"],
        )
        for name, entry in table["variants"].items()
    }
    return variants, table["default"]


VARIANTS, DEFAULT_VARIANT = _load(TABLE_FILE)


def get_variant(name: str) -> Variant:
    """Return the variant called ``name`` or raise a message listing the valid ones."""
    try:
        return VARIANTS[name]
    except KeyError:
        raise FlakewrightError(
            f"unknown variant {name!r}; choose one of {', '.join(VARIANTS)} "
            "(see `flakewright variants`)"
        ) from None
