"""Many repos in one run: each repo in a process of its own, at most ``jobs`` at a time.

A child runs the one-repo command (``update`` or ``check``) with its usual
guarantees: an update lands in one final step that a signal waits for (see
``_landing``), so each repo is updated whole or not at all. Ctrl-C reaches
every process of the terminal's group; SIGTERM to flakewright alone is passed
on to the children. Either way the parent starts no more repos, waits for the
running ones to say how they ended, and ends the run with what it has: the
caller's table, then the removal of the run's one temporary folder (the shared
renders and every child's scratch files, which a signal may have cut short),
both of which a further signal waits for.
"""
from __future__ import annotations

import multiprocessing
import os
import shutil
import signal
import sys
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from multiprocessing.connection import Connection, wait
from pathlib import Path
from typing import Literal

from ._copier import shared_clones
from ._errors import ExitCode, FlakewrightError, Interrupted
from ._landing import LANDED, held_signals
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
    paths: list[Path],
    work: Callable[[Path], object],
    *,
    jobs: int,
    on_done: Callable[[Outcome], None],
    on_end: Callable[[list[Outcome | None]], None],
) -> tuple[list[Outcome | None], list[Path] | None]:
    """Run ``work(path)`` for each path, ``jobs`` at a time; ``on_done`` as each ends, in the order they end,
    then ``on_end`` with them all, which a signal does not cut short.

    Returns each path's outcome (None: never started) and, when a signal stopped the run, the paths that were
    running then (else None; [] for a signal that came once they had all ended). The repos share their
    pristine renders (see ``shared_renders``), their template clones (see ``shared_clones``) and copier,
    imported once before the children fork.
    """
    folder = Path(tempfile.mkdtemp(prefix="flakewright-fleet-"))
    outcomes: list[Outcome | None] = [None] * len(paths)
    running: dict[Connection, tuple[int, multiprocessing.process.BaseProcess]] = {}
    stopped: list[Path] | None = None
    try:
        (folder / "renders").mkdir()
        (folder / "clones").mkdir()
        import copier  # noqa: F401 - once here, not once in each child: they are forked from this process

        with shared_renders(folder / "renders"), shared_clones(folder / "clones"):
            _run_each(paths, work, jobs=jobs, on_done=on_done, folder=folder, outcomes=outcomes, running=running)
    except KeyboardInterrupt:
        with _signals_noted():
            stopped = [paths[index] for index, _ in running.values()]
            for _, process in running.values():
                if process.is_alive():
                    process.terminate()  # SIGTERM: the child unwinds as from Ctrl-C, or finishes its final step
            while running:
                _collect(wait(list(running)), paths=paths, outcomes=outcomes, running=running, on_done=on_done)
    with _signals_noted() as noted:
        try:
            on_end(outcomes)
        finally:
            shutil.rmtree(folder, ignore_errors=True)
    return outcomes, [] if stopped is None and noted else stopped


def _run_each(
    paths: list[Path],
    work: Callable[[Path], object],
    *,
    jobs: int,
    on_done: Callable[[Outcome], None],
    folder: Path,
    outcomes: list[Outcome | None],
    running: dict[Connection, tuple[int, multiprocessing.process.BaseProcess]],
) -> None:
    context = multiprocessing.get_context("fork" if "fork" in multiprocessing.get_all_start_methods() else "spawn")
    queue = list(enumerate(paths))
    while queue or running:
        while queue and len(running) < jobs:
            index, path = queue.pop(0)
            scratch = folder / str(index)
            scratch.mkdir()
            receiver, sender = context.Pipe(duplex=False)
            process = context.Process(target=_child, args=(sender, work, path, scratch), daemon=True)
            signal.pthread_sigmask(signal.SIG_BLOCK, _SIGNALS)  # a child started is a child known to be running;
            try:  # the child inherits the mask and the handlers, and unblocks first thing
                process.start()
                running[receiver] = (index, process)
            finally:
                signal.pthread_sigmask(signal.SIG_UNBLOCK, _SIGNALS)
            sender.close()
        _collect(wait(list(running)), paths=paths, outcomes=outcomes, running=running, on_done=on_done)


def _collect(
    ready: list[object],
    *,
    paths: list[Path],
    outcomes: list[Outcome | None],
    running: dict[Connection, tuple[int, multiprocessing.process.BaseProcess]],
    on_done: Callable[[Outcome], None],
) -> None:
    for conn in ready:
        with held_signals():  # an answer read is an answer kept: a signal must not lose it half-way
            index, process = running.pop(conn)  # type: ignore[index]
            outcome = outcomes[index] = _received(paths[index], conn)  # type: ignore[arg-type]
        process.join()
        on_done(outcome)


def _received(path: Path, conn: Connection) -> Outcome:
    try:
        kind, result, message, code = conn.recv()
    except (EOFError, OSError):
        return Outcome(path, "interrupted", message="the worker process ended without a word")
    return Outcome(path, kind, result, message, code)


def _child(conn: Connection, work: Callable[[Path], object], path: Path, scratch: Path) -> None:
    """One repo's command; the outcome goes back through ``conn``. Its temporary files (copier's too) go in
    ``scratch``, which the parent removes whatever a signal cut short here."""
    landed = len(LANDED)
    sys.stdout = sys.stderr = open(os.devnull, "w")  # the parent prints the reports
    tempfile.tempdir = str(scratch)
    os.environ["TMPDIR"] = str(scratch)
    try:
        signal.pthread_sigmask(signal.SIG_UNBLOCK, _SIGNALS)  # blocked since the fork (see _run_each)
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
def _signals_noted() -> Iterator[list[int]]:
    """While the run ends (the children answer, the table, the clean-up): a signal is noted in the list the block
    gets, and does not cut it short."""
    noted: list[int] = []
    saved = {signum: signal.signal(signum, lambda number, frame: noted.append(number)) for signum in _SIGNALS}
    try:
        yield noted
    finally:
        for signum, handler in saved.items():
            signal.signal(signum, handler)
