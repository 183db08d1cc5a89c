"""The one exception users see."""
from __future__ import annotations

USAGE = 2


class FlakewrightError(Exception):
    """A problem the user can fix; ``str()`` is a one-line message saying how.

    ``exit_code`` is what the CLI exits with: 2 for bad usage or answers unless a
    command documents another code.
    """

    def __init__(self, message: str, *, exit_code: int = USAGE) -> None:
        super().__init__(" ".join(message.split()))
        self.exit_code = exit_code
