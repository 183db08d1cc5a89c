"""Warm shell entry: a rendered Darwinix flake vs a seed-style flake.

Both are entered with `nix develop -c true` through the same offline nixpkgs
stand-in, in the same run, interleaved, after one untimed entry each has built
its .venv. Prints the median per flake and the ratio.

    python bench/shell_entry.py [--reps 15]
"""
from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "tests"))

from conftest import render_variant  # noqa: E402
from nixenv import develop, git_checkout  # noqa: E402

TARGET_SECONDS = 0.15
TARGET_RATIO = 5.0


def timed_entry(repo: Path) -> float:
    start = time.perf_counter()
    develop(repo, "true")
    return time.perf_counter() - start


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=15, help="timed entries per flake (default 15)")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="flakewright-bench-") as tmp:
        tmp = Path(tmp)
        rendered = render_variant(tmp / "render", "darwinix", python_version="3.11")
        flakes = {
            "darwinix": git_checkout(rendered, tmp / "darwinix"),
            "seed": git_checkout(REPO / "bench" / "seed", tmp / "seed"),
        }
        for name, repo in flakes.items():
            print(f"warming {name} (first entry builds its .venv) ...", flush=True)
            develop(repo, "true", timeout=1800)

        times: dict[str, list[float]] = {name: [] for name in flakes}
        for _ in range(args.reps):
            for name, repo in flakes.items():
                times[name].append(timed_entry(repo))

    medians = {name: statistics.median(samples) for name, samples in times.items()}
    for name, samples in times.items():
        print(f"{name:9} median {medians[name]:.3f} s  (min {min(samples):.3f}, max {max(samples):.3f}, n={len(samples)})")
    ratio = medians["seed"] / medians["darwinix"]
    print(f"ratio     seed / darwinix = {ratio:.1f}x")
    print(f"targets   darwinix <= {TARGET_SECONDS} s: {'met' if medians['darwinix'] <= TARGET_SECONDS else 'MISSED'}; "
          f">= {TARGET_RATIO:.0f}x: {'met' if ratio >= TARGET_RATIO else 'MISSED'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
