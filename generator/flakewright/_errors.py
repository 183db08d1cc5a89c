"""The one exception users see, and every exit code the CLI uses."""
from __future__ import annotations

from enum import IntEnum


class ExitCode(IntEnum):
    """What ``flakewright`` exits with. ``check``'s 10 and 20 add up: 30 is both."""

    OK = 0
    CONFLICTS = 1  # update left conflicts; backport refused some edits
    USAGE = 2  # bad usage or answers, or a refused operation (a dirty repo, say)
    UPDATE_AVAILABLE = 10
    DRIFT = 20
    INTERNAL = 70
    INTERRUPTED = 130


USAGE = ExitCode.USAGE


class FlakewrightError(Exception):
    """A problem the user can fix; ``str()`` is a one-line message saying how.

    ``exit_code`` is what the CLI exits with: 2 for bad usage or answers unless a
    command documents another code.
    """

    def __init__(self, message: str, *, exit_code: int = ExitCode.USAGE) -> None:
        super().__init__(" ".join(message.split()))
        self.exit_code = exit_code
