"""Shell entry: a rendered Darwinix installing its uv.lock vs the same template before the lock, and a seed-style flake.

Three flakes, entered with `nix develop -c true` through the same offline nixpkgs stand-in, in one run:

- lock: a Darwinix rendered from this working tree (.venv installed from uv.lock by `uv sync`);
- unpinned: a Darwinix rendered from the last template without a lock (``--before``, default d4b4253:
  `uv pip install -r requirements.txt`, which resolves against PyPI on every install);
- seed: `bench/seed/`, which reruns `pip install -r requirements.txt` on every entry (warm only).

Cold: .venv deleted before each entry (uv's download cache stays, as on a developer's machine), lock
and unpinned interleaved. Warm: after one untimed entry, all three interleaved. Prints medians and ratios.

    python bench/shell_entry.py [--reps 15] [--cold-reps 5] [--before d4b4253]
"""
from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path


REPO = Path(__file__).resolve().parent.parent
from baseline import BEFORE, render_at  # noqa: E402
sys.path.insert(0, str(REPO / "tests"))

from helpers import render_variant  # noqa: E402
from nixenv import develop, git_checkout  # noqa: E402

WARM_TARGET_SECONDS = 0.05
WARM_TARGET_RATIO = 5.0
COLD_TARGET_RATIO = 1.0  # lock / unpinned: no slower than before


def timed_entry(repo: Path) -> float:
    start = time.perf_counter()
    develop(repo, "true", timeout=1800)
    return time.perf_counter() - start


def cold_entry(repo: Path) -> float:
    shutil.rmtree(repo / ".venv", ignore_errors=True)
    return timed_entry(repo)


def report(label: str, samples: list[float]) -> float:
    median = statistics.median(samples)
    print(f"  {label:9} median {median:.3f} s  (min {min(samples):.3f}, max {max(samples):.3f}, n={len(samples)})")
    return median


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=15, help="timed warm entries per flake (default 15)")
    parser.add_argument("--cold-reps", type=int, default=5, help="timed cold entries per flake (default 5)")
    parser.add_argument("--before", default=BEFORE, help=f"template commit without the lock (default {BEFORE})")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="flakewright-bench-") as tmp:
        tmp = Path(tmp)
        flakes = {
            "lock": git_checkout(render_variant(tmp / "render", "darwinix", python_version="3.11"), tmp / "lock"),
            "unpinned": git_checkout(render_at(args.before, tmp / "before-render", "darwinix", python_version="3.11"),
                                     tmp / "unpinned"),
            "seed": git_checkout(REPO / "bench" / "seed", tmp / "seed"),
        }
        for name, repo in flakes.items():
            print(f"warming {name} (first entry builds its .venv and fills the download caches) ...", flush=True)
            develop(repo, "true", timeout=1800)

        cold: dict[str, list[float]] = {"lock": [], "unpinned": []}
        for rep in range(args.cold_reps):
            order = list(cold) if rep % 2 == 0 else list(reversed(cold))
            for name in order:
                cold[name].append(cold_entry(flakes[name]))
        for repo in flakes.values():
            develop(repo, "true", timeout=1800)  # leave every .venv built before the warm runs
        warm: dict[str, list[float]] = {name: [] for name in flakes}
        for _ in range(args.reps):
            for name, repo in flakes.items():
                warm[name].append(timed_entry(repo))

    print("cold first entry (.venv deleted, download cache kept):")
    cold_medians = {name: report(name, samples) for name, samples in cold.items()}
    cold_ratio = cold_medians["lock"] / cold_medians["unpinned"]
    print(f"  ratio     lock / unpinned = {cold_ratio:.2f}")
    print("warm entry:")
    warm_medians = {name: report(name, samples) for name, samples in warm.items()}
    warm_ratio = warm_medians["seed"] / warm_medians["lock"]
    print(f"  ratio     seed / lock = {warm_ratio:.1f}x, unpinned / lock = {warm_medians['unpinned'] / warm_medians['lock']:.2f}")
    print(f"targets   cold lock <= unpinned: {'met' if cold_ratio <= COLD_TARGET_RATIO else 'MISSED'}; "
          f"warm lock <= {WARM_TARGET_SECONDS} s: {'met' if warm_medians['lock'] <= WARM_TARGET_SECONDS else 'MISSED'}; "
          f"seed / lock >= {WARM_TARGET_RATIO:.0f}x: {'met' if warm_ratio >= WARM_TARGET_RATIO else 'MISSED'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
