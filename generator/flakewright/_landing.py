"""Ctrl-C and SIGTERM against commands that change files: all of the change, or none of it.

A command prepares its whole result where the user does not look (a scratch
clone, a hidden folder, loose git objects) and makes it visible in one final,
short step of plain file operations. A signal before that step leaves nothing
changed and propagates as the usual KeyboardInterrupt. A signal during the step
waits for the step to end: stopping half-way would leave a mix of old and new
files that nothing marks as such. From the step on, an interrupt surfaces as
``Interrupted``, whose message says what already landed.
"""
from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from ._errors import Interrupted

_SIGNALS = (signal.SIGINT, signal.SIGTERM)

# What each final step of this process changed, in order: a caller that is interrupted after a command returned
# (printing its report, going on to the next repo) learns here what landed. Appended while signals are held.
LANDED: list[tuple[Path, str]] = []


class Landing:
    """Whether a command's final step has run, and what to say if it is interrupted after it."""

    def __init__(self) -> None:
        self.done: str | None = None

    @contextmanager
    def final(self, *, changes: Path, done: str) -> Iterator[None]:
        """Run the body to its end through SIGINT and SIGTERM; it changes ``changes``, and ``done`` says how."""
        with held_signals():
            yield
            self.done = done
            LANDED.append((changes, done))


@contextmanager
def landing() -> Iterator[Landing]:
    """The scope of a command with one final step (``Landing.final``): an interrupt after it is Interrupted."""
    state = Landing()
    try:
        yield state
    except KeyboardInterrupt:
        if state.done is None:
            raise
        raise Interrupted(state.done) from None


@contextmanager
def held_signals() -> Iterator[None]:
    """Hold SIGINT and SIGTERM back until the body ends, then deliver the first that came, to the handler
    that was in place (so a caller that never installed one still dies of SIGTERM)."""
    if threading.current_thread() is not threading.main_thread():  # Python runs handlers in the main thread only
        yield
        return
    pending: list[int] = []
    saved: dict[int, object] = {}
    try:
        for signum in _SIGNALS:
            saved[signum] = signal.signal(signum, lambda number, frame: pending.append(number))
        yield
    finally:
        for signum, handler in saved.items():
            signal.signal(signum, signal.SIG_DFL if handler is None else handler)
    if pending:
        signal.raise_signal(pending[0])
