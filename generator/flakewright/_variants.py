"""The three variants: what each renders and which answers select it."""
from __future__ import annotations

from dataclasses import dataclass

from ._errors import FlakewrightError


@dataclass(frozen=True, kw_only=True)
class Variant:
    """One kind of repo the template renders."""

    name: str
    extends: str | None
    adds: tuple[str, ...]

    @property
    def answers(self) -> dict[str, object]:
        """Answers that select this variant; everything else keeps its default."""
        return {"variant": self.name}


DARWINIX = Variant(
    name="darwinix",
    extends=None,
    adds=(
        "Nix flake dev shell with Python",
        ".venv filled from requirements.txt",
        "numpy import check, CUDA detection at runtime",
        "JupyterLab start/stop in tmux",
    ),
)
PIPULATE = Variant(
    name="pipulate",
    extends="darwinix",
    adds=(
        "FastHTML server.py on 127.0.0.1",
        "SQLite via fastlite: profiles, todos",
        "HTMX partials, WebSocket chat from local Ollama",
        "long-running tasks streaming progress",
    ),
)
BOTIFYTHON = Variant(
    name="botifython",
    extends="pipulate",
    adds=(
        "internal-tools layer (botify.py)",
        "Botify API token stored in data/ (0600)",
        "paginated API export task -> CSV",
    ),
)

VARIANTS: dict[str, Variant] = {v.name: v for v in (DARWINIX, PIPULATE, BOTIFYTHON)}


def get_variant(name: str) -> Variant:
    """Return the variant called ``name`` or raise a message listing the valid ones."""
    try:
        return VARIANTS[name]
    except KeyError:
        raise FlakewrightError(
            f"unknown variant {name!r}; choose one of {', '.join(VARIANTS)} "
            "(see `flakewright variants`)"
        ) from None
