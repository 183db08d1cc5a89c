"""Bench: `flakewright new` vs raw `copier copy`, and `flakewright update` vs `copier update`.

Both sides run as real subprocesses on the same template repo and answers,
interleaved repetition by repetition (alternating which goes first) so
machine noise hits both equally.
Prints medians and ratios. Targets: new <= 1.2x copier copy; update <= 3 s.

Usage: python bench/render_update.py [--reps N]
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


def run(*args: object, cwd: Path | None = None) -> None:
    subprocess.run([str(a) for a in args], cwd=cwd, env=ENV, check=True, capture_output=True)


def timed(*args: object, ok: tuple[int, ...] = (0,)) -> float:
    start = time.perf_counter()
    result = subprocess.run([str(a) for a in args], env=ENV, capture_output=True, text=True)
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
    reps = parser.parse_args().reps
    with tempfile.TemporaryDirectory(prefix="flakewright-bench-") as tmp:
        root = Path(tmp)
        tpl = template_repo(root)

        new_times, copy_times = [], []
        for i in range(reps):
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
        for i in range(reps):
            ours, theirs = root / f"upd-{i}", root / f"cupd-{i}"
            shutil.copytree(base, ours, symlinks=True)
            shutil.copytree(base, theirs, symlinks=True)
            steps = [
                lambda: update_times.append(timed(*FLAKEWRIGHT, "update", ours)),
                lambda: copier_update_times.append(timed(*COPIER, "update", "--quiet", "--defaults", theirs)),
            ]
            for step in steps if i % 2 else reversed(steps):
                step()

    def report(label: str, ours: list[float], theirs: list[float], other: str) -> float:
        m_ours, m_theirs = statistics.median(ours), statistics.median(theirs)
        print(f"{label:<28} median {m_ours:6.3f} s   {other:<20} median {m_theirs:6.3f} s   ratio {m_ours / m_theirs:4.2f}x")
        return m_ours / m_theirs

    print(f"{reps} interleaved repetitions, pipulate, subprocesses (interpreter start included)")
    new_ratio = report("flakewright new", new_times, copy_times, "copier copy")
    report("flakewright update v1->v2", update_times, copier_update_times, "copier update")
    update_median = statistics.median(update_times)
    print(f"target new <= 1.20x copier copy: {'met' if new_ratio <= 1.2 else 'MISSED'} ({new_ratio:.2f}x)")
    print(f"target update <= 3 s: {'met' if update_median <= 3 else 'MISSED'} ({update_median:.2f} s)")


if __name__ == "__main__":
    main()
