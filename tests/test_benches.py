"""Every bench under bench/ still runs, at its smallest size, and prints the figures its docs quote.

The benches are the only proof of the performance claims in docs/benchmarks.md, and nothing else runs them: a
bench left behind by a change to another (tasks.py once called ws_stream's server helper with an old
signature) fails here, not on the day someone needs its figures. Nothing here judges a figure: that is what
running the bench at full size is for. The "before" side is HEAD, which any clone has.
"""
from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from helpers import REPO, need

BENCHES = {
    "tasks.py": (["--before", "HEAD", "--reports", "2000", "--tabs", "2", "--repeats", "1", "--cap", "5"],
                 ["cancel with a stalled tab", "its tab closed p50", r"now +\d+ frames in .* final row exact: True"]),
    "ws_stream.py": (["--before", "HEAD", "--clients", "5", "--messages", "20", "--repeats", "1", "--rounds", "1",
                      "--chunks", "5"],
                     ["now/bare: throughput", "before/bare: throughput", "demo task", "forwarding adds"]),
    "todos_scaling.py": (["--before", "HEAD", "--sizes", "10", "100", "--repeats", "1", "--rounds", "1"],
                         ["exponent", "before/after", "the minimal FastHTML app", "Start-up to the first 200"]),
    "faults.py": (["--rounds", "1"], ["during a 3 s lock", "an add past the 5 s busy timeout: 503", "round-trip"]),
    "task_saves.py": (["--before", "HEAD", "--tasks", "10", "--seconds", "1", "--repeats", "1"],
                      ["now/before: ticks late p99"]),
    "task_ends.py": (["--before", "HEAD", "--tasks", "10", "--repeats", "1"], ["now/before: time"]),
    "tools_latency.py": (["--before", "HEAD", "--requests", "40", "--repeats", "1"],
                         ["running/paused", "4 threads", "4 processes"]),
    "render_update.py": (["--reps", "1", "--fleet-reps", "1"], ["target --help vs copier --help"]),
    "backends.py": (["--todos", "10", "--repeats", "1", "--users", "3", "--seconds", "1"],
                    ["PG/SQLite", r"postgres +\d+ requests .* pool 10, at most \d+ connections",
                     r"fastsql +\d+ operations/s"]),
    "shell_entry.py": (["--before", "HEAD", "--reps", "1", "--cold-reps", "1"], ["cold", "seed / lock"]),
}


def test_every_bench_is_listed_here() -> None:
    benches = {path.name for path in (REPO / "bench").glob("*.py")} - {"baseline.py", "minimal_todo.py"}
    assert benches == set(BENCHES)


@pytest.mark.parametrize("bench", BENCHES)
def test_bench_runs_and_prints_its_figures(bench: str, tmp_path: Path) -> None:
    if bench == "shell_entry.py":
        need("nix", why="bench/shell_entry.py enters Nix shells")
    args, figures = BENCHES[bench]
    # A session of its own and TMPDIR in tmp_path: a bench that hangs takes its servers, kernels and renders with it.
    bench_run = subprocess.Popen([sys.executable, f"bench/{bench}", *args], cwd=REPO, stdout=subprocess.PIPE,
                                 stderr=subprocess.PIPE, text=True, start_new_session=True,
                                 env={**os.environ, "TMPDIR": str(tmp_path)})
    try:
        out, err = bench_run.communicate(timeout=900)
    except subprocess.TimeoutExpired:
        os.killpg(bench_run.pid, signal.SIGKILL)
        bench_run.communicate()
        pytest.fail(f"bench/{bench} did not finish within 15 minutes")
    assert bench_run.returncode == 0, err[-3000:]
    missing = [figure for figure in figures if not re.search(figure, out)]
    assert not missing, f"{bench} did not print {missing}:\n{out[-3000:]}"
