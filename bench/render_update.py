"""Bench: flakewright against raw copier, both as real subprocesses.

- `flakewright new` vs `copier copy` (target <= 1.2x)
- `flakewright update` v1 -> v2 of one Pipulate vs `copier update` (target <= 1.2x)
- `flakewright update` of 10 derived repos in one run (in parallel, os.cpu_count() at a time) vs 10 sequential
  `copier update` runs (target <= 0.5x; medians and the spread min-max are printed)
- `flakewright --help` vs `copier --help` start-up (target <= 1.0x)
- `flakewright backport` of a one-file edit (absolute time; copier has no equivalent)

Each pair runs on the same template repo and answers, interleaved repetition
by repetition (alternating which goes first) so machine noise hits both
equally. Prints medians and ratios.

With --before DIR (a copy of another checkout's generator/, e.g. `git archive HEAD generator | tar -x -C DIR`)
the 10-repo comparison times that flakewright too, in the same repetitions: before and after side by side.

Usage: python bench/render_update.py [--reps N] [--fleet-reps N] [--fleet-only] [--jobs N] [--before DIR]
"""
from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
ENV = {
    **os.environ,
    "GIT_AUTHOR_NAME": "bench",
    "GIT_AUTHOR_EMAIL": "bench@flakewright.invalid",
    "GIT_COMMITTER_NAME": "bench",
    "GIT_COMMITTER_EMAIL": "bench@flakewright.invalid",
}
FLAKEWRIGHT = [sys.executable, "-m", "flakewright"]
COPIER = [sys.executable, "-m", "copier"]
# The installed console scripts, as a user types them (start-up is what --help measures).
FLAKEWRIGHT_SCRIPT = [sys.executable, str(Path(sys.executable).parent / "flakewright")]
COPIER_SCRIPT = [sys.executable, str(Path(sys.executable).parent / "copier")]


def run(*args: object, cwd: Path | None = None) -> None:
    subprocess.run([str(a) for a in args], cwd=cwd, env=ENV, check=True, capture_output=True)


def timed(*args: object, ok: tuple[int, ...] = (0,), env: dict[str, str] | None = None) -> float:
    start = time.perf_counter()
    result = subprocess.run([str(a) for a in args], env=env or ENV, capture_output=True, text=True)
    elapsed = time.perf_counter() - start
    if result.returncode not in ok:
        raise SystemExit(f"{' '.join(map(str, args[:4]))} failed ({result.returncode}): {result.stderr.strip()}")
    return elapsed


def template_repo(root: Path) -> Path:
    """This repo's copier.yml + template/ as a git repo tagged v1.0.0 and v2.0.0."""
    tpl = root / "template-repo"
    tpl.mkdir()
    shutil.copy2(REPO / "copier.yml", tpl / "copier.yml")
    shutil.copytree(REPO / "template", tpl / "template")
    run("git", "init", "-q", cwd=tpl)
    run("git", "add", "-A", cwd=tpl)
    run("git", "commit", "-qm", "v1", cwd=tpl)
    run("git", "tag", "v1.0.0", cwd=tpl)
    readme = next((tpl / "template").glob("README.md*"))
    readme.write_text(readme.read_text() + "\nAdded in v2.\n")
    (tpl / "template" / "CONTRIBUTING.md").write_text("Added in v2.\n")
    run("git", "add", "-A", cwd=tpl)
    run("git", "commit", "-qm", "v2", cwd=tpl)
    run("git", "tag", "v2.0.0", cwd=tpl)
    return tpl


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--reps", type=int, default=11)
    parser.add_argument("--fleet-reps", type=int, default=3)
    parser.add_argument("--fleet-only", action="store_true", help="only the 10-repo comparison")
    parser.add_argument("--jobs", type=int, help="flakewright update --jobs for the 10 repos (default: its own)")
    parser.add_argument("--before", type=Path, help="another generator/ folder to time on the 10 repos too")
    args = parser.parse_args()
    reps, fleet_reps = args.reps, args.fleet_reps
    with tempfile.TemporaryDirectory(prefix="flakewright-bench-") as tmp:
        root = Path(tmp)
        tpl = template_repo(root)

        new_times, copy_times = [], []
        for i in range(0 if args.fleet_only else reps):
            ours = lambda: new_times.append(  # noqa: E731
                timed(*FLAKEWRIGHT, "new", "pipulate", root / f"new-{i}", "-t", tpl, "--defaults")
            )
            theirs = lambda: copy_times.append(  # noqa: E731
                timed(*COPIER, "copy", "--quiet", "--defaults", "-d", "variant=pipulate", tpl, root / f"copy-{i}")
            )
            for step in (ours, theirs) if i % 2 else (theirs, ours):
                step()

        base = root / "base"
        run(*FLAKEWRIGHT, "new", "pipulate", base, "-t", tpl, "--defaults", "--vcs-ref", "v1.0.0")
        run("git", "init", "-q", cwd=base)
        run("git", "add", "-A", cwd=base)
        run("git", "commit", "-qm", "render v1", cwd=base)
        update_times, copier_update_times = [], []
        for i in range(0 if args.fleet_only else reps):
            ours, theirs = root / f"upd-{i}", root / f"cupd-{i}"
            shutil.copytree(base, ours, symlinks=True)
            shutil.copytree(base, theirs, symlinks=True)
            steps = [
                lambda: update_times.append(timed(*FLAKEWRIGHT, "update", ours)),
                lambda: copier_update_times.append(timed(*COPIER, "update", "--quiet", "--defaults", theirs)),
            ]
            for step in steps if i % 2 else reversed(steps):
                step()

        fleet_times, copier_fleet_times, before_fleet_times = [], [], []
        jobs = ["--jobs", str(args.jobs)] if args.jobs else []
        before_env = {**ENV, "PYTHONPATH": str(args.before.resolve())} if args.before else ENV
        for i in range(fleet_reps):
            ours = [root / f"fleet-{i}-{n}" for n in range(10)]
            theirs = [root / f"cfleet-{i}-{n}" for n in range(10)]
            earlier = [root / f"bfleet-{i}-{n}" for n in range(10 if args.before else 0)]
            for path in (*ours, *theirs, *earlier):
                shutil.copytree(base, path, symlinks=True)
            steps = [
                lambda: fleet_times.append(timed(*FLAKEWRIGHT, "update", *jobs, *ours)),
                lambda: copier_fleet_times.append(
                    sum(timed(*COPIER, "update", "--quiet", "--defaults", path) for path in theirs)
                ),
            ]
            if args.before:
                steps.append(lambda: before_fleet_times.append(
                    timed(*FLAKEWRIGHT, "update", *jobs, *earlier, env=before_env)
                ))
            for step in steps[i % len(steps):] + steps[:i % len(steps)]:  # each goes first in turn
                step()

        help_times, copier_help_times = [], []
        for i in range(0 if args.fleet_only else reps):
            steps = [
                lambda: help_times.append(timed(*FLAKEWRIGHT_SCRIPT, "--help")),
                lambda: copier_help_times.append(timed(*COPIER_SCRIPT, "--help")),
            ]
            for step in steps if i % 2 else reversed(steps):
                step()

        backport_times = []
        for i in range(0 if args.fleet_only else reps):
            derived = root / f"bp-{i}"
            shutil.copytree(base, derived, symlinks=True)
            server = derived / "server.py"
            server.write_text(server.read_text() + "\n\ndef added_by_the_user():\n    return 1\n")
            run("git", "commit", "-qam", "user edit", cwd=derived)
            backport_times.append(timed(*FLAKEWRIGHT, "backport", "-C", derived, "--yes", "--branch", f"bench-{i}"))

    def report(label: str, ours: list[float], theirs: list[float], other: str) -> float:
        m_ours, m_theirs = statistics.median(ours), statistics.median(theirs)
        print(f"{label:<30} median {m_ours:6.3f} s   {other:<26} median {m_theirs:6.3f} s   ratio {m_ours / m_theirs:4.2f}x")
        return m_ours / m_theirs

    def target(label: str, ratio: float, goal: float) -> None:
        print(f"target {label} <= {goal:.2f}x: {'met' if ratio <= goal else 'MISSED'} ({ratio:.2f}x)")

    def spread(times: list[float]) -> str:
        return f"min {min(times):6.2f} s, max {max(times):6.2f} s, runs " + ", ".join(f"{t:.2f}" for t in times)

    print(f"{reps} interleaved repetitions ({fleet_reps} for 10 repos), pipulate, subprocesses (interpreter start included), "
          f"{os.cpu_count()} CPUs")
    if not args.fleet_only:
        new_ratio = report("flakewright new", new_times, copy_times, "copier copy")
        update_ratio = report("flakewright update v1->v2", update_times, copier_update_times, "copier update")
    fleet_ratio = report("flakewright update 10 repos", fleet_times, copier_fleet_times, "10 x copier update")
    if args.before:
        report("  the same, --before", before_fleet_times, copier_fleet_times, "10 x copier update")
    print(f"  flakewright update 10 repos: {spread(fleet_times)}")
    if args.before:
        print(f"  the same, --before:          {spread(before_fleet_times)}")
    print(f"  10 x copier update:          {spread(copier_fleet_times)}")
    ratios = [ours / theirs for ours, theirs in zip(fleet_times, copier_fleet_times)]
    print(f"  ratio per repetition: {', '.join(f'{r:.2f}' for r in ratios)} (min {min(ratios):.2f}, max {max(ratios):.2f})")
    if args.before:
        ratios = [ours / theirs for ours, theirs in zip(before_fleet_times, copier_fleet_times)]
        print(f"  --before per repetition: {', '.join(f'{r:.2f}' for r in ratios)} (min {min(ratios):.2f}, max {max(ratios):.2f})")
    if not args.fleet_only:
        help_ratio = report("flakewright --help", help_times, copier_help_times, "copier --help")
        print(f"{'flakewright backport':<30} median {statistics.median(backport_times):6.3f} s   (one-file edit, 3 renders)")
        target("new vs copier copy", new_ratio, 1.2)
        target("update vs copier update", update_ratio, 1.2)
    target("update 10 repos vs 10 copier updates", fleet_ratio, 0.5)
    if not args.fleet_only:
        target("--help vs copier --help", help_ratio, 1.0)

if __name__ == "__main__":
    main()
