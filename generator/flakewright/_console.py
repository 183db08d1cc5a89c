"""The terminal: where output goes, a spinner while copier works, and prompts whose errors wrap."""
from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager

from rich.console import Console

out = Console(highlight=False, soft_wrap=True)
err = Console(stderr=True, highlight=False, soft_wrap=True)


@contextmanager
def status(message: str, *, enabled: bool = True) -> Iterator[None]:
    """Show a spinner on stderr while work runs.

    Silent when stderr is not a terminal, or when copier may prompt (``enabled=False``).
    """
    if not enabled or not sys.stderr.isatty():
        yield
        return
    with Console(file=sys.stderr).status(message):
        yield


def wrap_validation_messages() -> None:
    """Let a prompt's validation message wrap instead of being cut at the terminal's width.

    copier asks through questionary, whose prompt_toolkit session shows the
    message in a one-row window. Patched once per process, before copier asks;
    tests/test_cli.py pins the prompt_toolkit shape this relies on.
    """
    from prompt_toolkit.filters import has_validation_error
    from prompt_toolkit.layout import ConditionalContainer, Window
    from prompt_toolkit.widgets import toolbars

    original = toolbars.ValidationToolbar.__init__
    if getattr(original, "wraps", False):
        return

    def __init__(self: toolbars.ValidationToolbar, show_position: bool = False) -> None:
        original(self, show_position)
        self.container = ConditionalContainer(content=Window(self.control, wrap_lines=True), filter=has_validation_error)

    __init__.wraps = True  # type: ignore[attr-defined]
    toolbars.ValidationToolbar.__init__ = __init__  # type: ignore[method-assign]
