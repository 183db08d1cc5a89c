"""Many repos in one run: each repo in a process of its own, at most ``jobs`` at a time.

A child runs the one-repo command (``update`` or ``check``) with its usual
guarantees: an update lands in one final step that a signal waits for (see
``_landing``), so each repo is updated whole or not at all. Ctrl-C reaches
every process of the terminal's group; SIGTERM to flakewright alone is passed
on to the children. Either way the parent starts no more repos, waits for the
running ones to say how they ended, and returns what it has, so the caller
still prints its table.
"""
from __future__ import annotations

import multiprocessing
import os
import signal
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from multiprocessing.connection import Connection, wait
from pathlib import Path
from typing import Literal

from ._errors import ExitCode, FlakewrightError, Interrupted
from ._landing import LANDED
from ._pristine import shared_renders

Kind = Literal["done", "refused", "interrupted", "landed", "failed"]
_SIGNALS = (signal.SIGINT, signal.SIGTERM)


@dataclass(frozen=True)
class Outcome:
    path: Path
    kind: Kind
    result: object = None
    message: str = ""
    code: int = 0


def default_jobs() -> int:
    return max(1, os.cpu_count() or 1)


def run_each(
    paths: list[Path], work: Callable[[Path], object], *, jobs: int, on_done: Callable[[Outcome], None]
) -> tuple[list[Outcome | None], list[Path] | None]:
    """Run ``work(path)`` for each path, ``jobs`` at a time; ``on_done`` as each ends, in the order they end.

    Returns each path's outcome (None: never started) and, when a signal stopped the run, the paths that were
    running then (else None). The repos share their pristine renders (see ``shared_renders``).
    """
    with shared_renders():
        return _run_each(paths, work, jobs=jobs, on_done=on_done)


def _run_each(
    paths: list[Path], work: Callable[[Path], object], *, jobs: int, on_done: Callable[[Outcome], None]
) -> tuple[list[Outcome | None], list[Path] | None]:
    context = multiprocessing.get_context("fork" if "fork" in multiprocessing.get_all_start_methods() else "spawn")
    outcomes: list[Outcome | None] = [None] * len(paths)
    running: dict[Connection, tuple[int, multiprocessing.process.BaseProcess]] = {}
    queue = list(enumerate(paths))

    def collect(ready: list[object]) -> None:
        for conn in ready:
            index, process = running.pop(conn)  # type: ignore[index]
            outcomes[index] = _received(paths[index], conn)  # type: ignore[arg-type]
            process.join()
            on_done(outcomes[index])  # type: ignore[arg-type]

    try:
        while queue or running:
            while queue and len(running) < jobs:
                index, path = queue.pop(0)
                receiver, sender = context.Pipe(duplex=False)
                process = context.Process(target=_child, args=(sender, work, path), daemon=True)
                process.start()
                sender.close()
                running[receiver] = (index, process)
            collect(wait(list(running)))
    except KeyboardInterrupt:
        stopped = [paths[index] for index, _ in running.values()]
        with _signals_ignored():
            for _, process in running.values():
                if process.is_alive():
                    process.terminate()  # SIGTERM: the child unwinds as from Ctrl-C, or finishes its final step
            while running:
                collect(wait(list(running)))
        return outcomes, stopped
    return outcomes, None


def _received(path: Path, conn: Connection) -> Outcome:
    try:
        kind, result, message, code = conn.recv()
    except (EOFError, OSError):
        return Outcome(path, "interrupted", message="the worker process ended without a word")
    return Outcome(path, kind, result, message, code)


def _child(conn: Connection, work: Callable[[Path], object], path: Path) -> None:
    """One repo's command; the outcome goes back through ``conn``."""
    landed = len(LANDED)
    sys.stdout = sys.stderr = open(os.devnull, "w")  # the parent prints the reports
    try:
        try:
            outcome = ("done", work(path), "", 0)
        except Interrupted as exc:
            outcome = ("landed", None, str(exc), ExitCode.INTERRUPTED)
        except KeyboardInterrupt:
            outcome = ("landed" if len(LANDED) > landed else "interrupted", None, "", ExitCode.INTERRUPTED)
        except FlakewrightError as exc:
            outcome = ("refused", None, str(exc), exc.exit_code)
        except Exception as exc:  # noqa: BLE001 - reported in the table, the other repos go on
            outcome = ("failed", None, f"internal error: {type(exc).__name__}: {exc}", ExitCode.INTERNAL)
    except KeyboardInterrupt:  # a second signal while the first was handled
        outcome = ("landed" if len(LANDED) > landed else "interrupted", None, "", ExitCode.INTERRUPTED)
    signal.pthread_sigmask(signal.SIG_BLOCK, _SIGNALS)
    conn.send(outcome)
    conn.close()


@contextmanager
def _signals_ignored() -> Iterator[None]:
    """While the children finish: another Ctrl-C must not cut short the wait for their answers."""
    saved = {signum: signal.signal(signum, lambda number, frame: None) for signum in _SIGNALS}
    try:
        yield
    finally:
        for signum, handler in saved.items():
            signal.signal(signum, handler)
