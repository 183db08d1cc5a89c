"""Ctrl-C and SIGTERM against `flakewright update` and `backport`: every repo is changed whole or not at all.

Each test runs the real console script in a subprocess of its own session, measures how long a whole run takes,
then interrupts fresh copies of the same repo at points spread over that time, the last second included: SIGINT
to the whole process group (what Ctrl-C at a terminal does, git children included), SIGTERM to flakewright alone
(what `kill` does). After each, the repo holds exactly what it held before, or exactly what a whole run leaves,
and the one line on stderr says which.
"""
from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from helpers import ANSWERS, GIT_ENV, commit_all, git, insert_after, literal_line

NOTHING_CHANGED = "flakewright: interrupted; nothing was changed"


def snapshot(repo: Path) -> dict[str, object]:
    """Everything a user sees of a repo: each file's bytes and mode (ignored ones too), the index, the refs."""
    files = {}
    for path in sorted(repo.rglob("*")):
        relative = path.relative_to(repo)
        if relative.parts[0] == ".git" or path.is_dir() and not path.is_symlink():
            continue
        content = os.readlink(path).encode() if path.is_symlink() else path.read_bytes()
        files[relative.as_posix()] = (content, path.lstat().st_mode)
    return {
        "files": files,
        "index": git(repo, "ls-files", "--stage"),
        "refs": git(repo, "for-each-ref", "--format=%(refname) %(objectname)"),
        "head": git(repo, "symbolic-ref", "-q", "HEAD") if (repo / ".git" / "HEAD").read_text().startswith("ref:") else "",
        "locks": sorted(p.name for p in (repo / ".git").rglob("*.lock")),
    }


class Run:
    """The console script, started in a session of its own; stdout and stderr go to files (a pipe that a
    killed child's children still hold would keep a reader waiting)."""

    def __init__(self, folder: Path, *args: str | Path, env: dict[str, str] | None = None) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        self.out, self.err = folder / "stdout", folder / "stderr"
        with self.out.open("w") as out, self.err.open("w") as err:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "flakewright", *map(str, args)], stdout=out, stderr=err,
                stdin=subprocess.DEVNULL, env={**os.environ, **GIT_ENV, **(env or {})}, start_new_session=True,
            )
        self.started = time.monotonic()

    def interrupt(self, signame: str) -> None:
        if self.process.poll() is not None:
            return
        if signame == "SIGINT":
            os.killpg(self.process.pid, signal.SIGINT)
        else:
            self.process.send_signal(signal.SIGTERM)

    def wait(self) -> tuple[int, str, str]:
        code = self.process.wait(timeout=120)
        return code, self.out.read_text(), self.err.read_text()


def timed(folder: Path, *args: str | Path) -> tuple[float, tuple[int, str, str]]:
    run = Run(folder, *args)
    result = run.wait()
    return time.monotonic() - run.started, result


def finished(code: int, stdout: str, report: str) -> bool:
    """Whether a run did all its work and printed its report. A signal that comes later still ends it: while
    Python shuts down, SIGINT and SIGTERM have their default actions again."""
    return report in stdout and code in (0, 1, -signal.SIGINT, -signal.SIGTERM)


def points(duration: float) -> list[float]:
    """Seconds after the start to signal at: spread over the run, then three in its last second."""
    spread = [duration * f for f in (0.15, 0.4, 0.65, 0.85)]
    return spread + [max(duration - before, 0.05) for before in (0.6, 0.3, 0.1)]


def interrupted(folder: Path, at: float, signame: str, *args: str | Path) -> tuple[int, str, str]:
    run = Run(folder, *args)
    time.sleep(max(0.0, at - (time.monotonic() - run.started)))
    run.interrupt(signame)
    return run.wait()


@pytest.fixture
def edited(released):
    """A Pipulate whose user edited server.py, toolbox/runner.py and README.md (and keeps an ignored database), and
    a template v2 that changes all three away from those edits, adds a file and conflicts on one pin."""
    template, dest = released("pipulate")
    for name, edit in (("server.py", "\n\n# the user's own route\n"),
                       ("toolbox/runner.py", "\n\n# the user's helper\n")):
        with (dest / name).open("a") as handle:
            handle.write(edit)
    (dest / "README.md").write_text("The user's first line.\n" + (dest / "README.md").read_text())
    requirement = literal_line(template.source("pyproject.toml"), dest / "pyproject.toml")
    pins = dest / "pyproject.toml"
    pins.write_text(pins.read_text().replace(f"{requirement}\n", f"{requirement}  # user pin\n", 1))
    commit_all(dest, "user edits")
    (dest / "data").mkdir(exist_ok=True)
    (dest / "data" / "app.db").write_bytes(b"SQLite format 3\0 the user's data")
    for name in ("server.py", "toolbox/runner.py"):
        source = template.source(name)
        insert_after(source, source.read_text().splitlines().index(literal_line(source, dest / name)), "# template v2")
    readme = template.source("README.md")
    readme.write_text(readme.read_text() + "\nTemplate v2 paragraph.\n")
    source = template.source("pyproject.toml")
    source.write_text(source.read_text().replace(f"{requirement}\n", f"{requirement}  # template v2 pin\n", 1))
    (template.path / "template" / "CONTRIBUTING.md").write_text("How to contribute\n")
    template.release("v2.0.0")
    return template, dest


def test_an_interrupted_update_leaves_the_repo_as_it_was_or_fully_updated(edited, tmp_path: Path) -> None:
    _, dest = edited
    before = snapshot(dest)
    whole = shutil.copytree(dest, tmp_path / "whole", symlinks=True)
    duration, (code, stdout, stderr) = timed(tmp_path / "logs-whole", "update", whole)
    assert code == 1, stdout + stderr  # the pin conflicts
    after = snapshot(whole)
    assert git(whole, "status", "--porcelain").count("UU ") == 1  # copier's conflict stages reached the index
    assert "# the user's own route" in (whole / "server.py").read_text()

    wrong, unchanged = [], 0
    for signame in ("SIGINT", "SIGTERM"):
        for n, at in enumerate(points(duration)):
            repo = shutil.copytree(dest, tmp_path / f"{signame}-{n}" / "app", symlinks=True)
            code, stdout, stderr = interrupted(tmp_path / f"{signame}-{n}" / "logs", at, signame, "update", repo)
            state = snapshot(repo)
            where = f"{signame} at {at:.2f}s of {duration:.2f}s (exit {code}, {stderr.strip()!r})"
            landed = rf"flakewright: interrupted, but {re.escape(str(repo))} is updated 1\.0\.0 -> 2\.0\.0 .*"
            if state == before:
                unchanged += 1
                if code != 130 or stderr.strip() != NOTHING_CHANGED:
                    wrong.append(f"{where}: unchanged, but the message does not say so")
            elif state != after:
                wrong.append(f"{where}: the repo is neither as it was nor fully updated")
            elif not (finished(code, stdout, "Updated 1.0.0 -> 2.0.0") or code == 130 and re.fullmatch(landed, stderr.strip())):
                wrong.append(f"{where}: fully updated, but the message does not say so")
    assert not wrong, "\n".join(wrong)
    assert unchanged >= 4, "too few signals came before the update landed to tell anything"


def test_ctrl_c_during_a_fleet_update_keeps_the_repos_done_and_names_the_one_it_stopped(edited, tmp_path: Path) -> None:
    _, dest = edited
    first, second, third = (shutil.copytree(dest, tmp_path / name, symlinks=True) for name in ("one", "two", "three"))
    untouched = snapshot(second)

    run = Run(tmp_path / "logs", "update", "--jobs", "1", first, second, third)  # one at a time: the second is stopped
    deadline = time.monotonic() + 90
    while "v2.0.0" not in (first / ANSWERS).read_text():  # the first repo's update has landed
        assert run.process.poll() is None and time.monotonic() < deadline, run.err.read_text()
        time.sleep(0.02)
    time.sleep(0.3)
    run.interrupt("SIGINT")
    code, stdout, stderr = run.wait()

    assert code == 130, stdout + stderr
    assert yaml.safe_load((first / ANSWERS).read_text())["_commit"] == "v2.0.0"
    assert "# the user's own route" in (first / "server.py").read_text()
    assert snapshot(second) == snapshot(third) == untouched
    rows = {line.split()[0]: line for line in stdout.splitlines() if line.startswith(str(tmp_path))}
    assert rows[str(first)].endswith("conflicts"), stdout
    assert rows[str(second)].endswith("interrupted, unchanged"), stdout
    assert rows[str(third)].endswith("not started"), stdout
    assert stderr.strip().splitlines()[-1] == (
        f"flakewright: interrupted during {second}; each repo is updated whole or untouched, as the table says"
    )


def scratch_clones(tmp: Path) -> dict[Path, Path]:
    """The updates in flight in a run whose TMPDIR is ``tmp``: each one's scratch clone (see _update), in TMPDIR or
    in a fleet run's folder of one repo, by the repo it clones, which its git alternates name (the clone borrows
    the repo's objects)."""
    found = {}
    for clone in (*tmp.glob("flakewright-update-*/repo"), *tmp.glob("*/*/flakewright-update-*/repo")):
        try:
            objects = (clone / ".git" / "objects" / "info" / "alternates").read_text().strip()
        except OSError:  # being made, or being removed
            continue
        found[Path(objects).parent.parent] = clone
    return found


def updated(repo: Path) -> bool:
    try:
        return "v2.0.0" in (repo / ANSWERS).read_text()
    except OSError:  # between the removal and the rename of a carried file
        return False


# When to signal a fleet update of four repos, two at a time, each by what it sees. In flight: a repo with a
# scratch clone whose own answers do not show the update yet.
FLEET_POINTS = {
    "two clones made": lambda flight, repos: len(flight) >= 2,
    "two clones checked out": lambda flight, repos: sum((c / ANSWERS).is_file() for c in flight.values()) >= 2,
    "copier has written in two": lambda flight, repos: sum((c / "CONTRIBUTING.md").is_file() for c in flight.values()) >= 2,
    "one landed, two in flight": lambda flight, repos: any(map(updated, repos)) and len(flight) >= 2,
    "three landed": lambda flight, repos: sum(map(updated, repos)) >= 3,
}


def test_a_signal_while_several_repos_are_in_flight_leaves_each_whole_or_untouched(edited, tmp_path: Path) -> None:
    """`update A B C D --jobs 2`, signalled while two updates run at once (seen in their scratch clones) and
    once while the last one runs alone. Each repo ends exactly as it was or exactly as a whole run leaves it,
    the table is printed with each repo's state, the last line names the repos that were in flight, and no
    scratch clone or shared render is left behind."""
    _, dest = edited
    before = snapshot(dest)
    names = ("a", "b", "c", "d")

    def fleet(folder: Path) -> tuple[list[Path], Path]:
        tmp = folder / "tmp"
        tmp.mkdir(parents=True)
        return [shutil.copytree(dest, folder / name, symlinks=True) for name in names], tmp

    repos, tmp = fleet(tmp_path / "whole")
    run = Run(tmp_path / "whole" / "logs", "update", "--jobs", "2", *repos, env={"TMPDIR": str(tmp)})
    code, stdout, stderr = run.wait()
    assert code == 1, stdout + stderr  # the pin conflicts, in every repo
    after = snapshot(repos[0])
    assert all(snapshot(repo) == after for repo in repos[1:])
    assert after != before and not list(tmp.iterdir())

    wrong = []
    for signame in ("SIGINT", "SIGTERM"):
        for point, (label, ready) in enumerate(FLEET_POINTS.items()):
            repos, tmp = fleet(tmp_path / f"{signame}-{point}")
            run = Run(tmp_path / f"{signame}-{point}" / "logs", "update", "--jobs", "2", *repos, env={"TMPDIR": str(tmp)})
            deadline = time.monotonic() + 120
            while not ready(flight := {r: c for r, c in scratch_clones(tmp).items() if not updated(r)}, repos):
                assert run.process.poll() is None and time.monotonic() < deadline, f"{label}: {run.err.read_text()}"
                time.sleep(0.005)
            run.interrupt(signame)
            code, stdout, stderr = run.wait()
            where = f"{signame} when {label} ({', '.join(r.name for r in flight)} in flight; exit {code})"
            last = stderr.strip().splitlines()[-1] if stderr.strip() else ""
            stopped = re.fullmatch(r"flakewright: interrupted(?: during (.*))?; each repo is updated whole or "
                                   r"untouched, as the table says", last)
            running = stopped[1].split(", ") if stopped and stopped[1] else []
            if label != "three landed":
                if code != 130 or not stopped:
                    wrong.append(f"{where}: {last!r}, not the interrupted line")
                    continue
                if len(running) < 2:
                    wrong.append(f"{where}: only {running} were in flight when the signal came")
            elif code != 130 and not finished(code, stdout, "Updated 1.0.0 -> 2.0.0") or code == 130 and not stopped:
                wrong.append(f"{where}: exit {code}, {last!r}")
            for repo in repos:
                rows = [line for line in stdout.splitlines() if line.startswith(f"{repo} ")]
                state = snapshot(repo)
                if len(rows) != 1:
                    wrong.append(f"{where}: {repo.name} has {len(rows)} rows in the table")
                elif state == before:
                    if not rows[0].endswith(("interrupted, unchanged", "not started")):
                        wrong.append(f"{where}: {repo.name} is unchanged, but its row says {rows[0]!r}")
                elif state == after:
                    if not rows[0].endswith(("conflicts", "updated, then interrupted")):
                        wrong.append(f"{where}: {repo.name} is updated, but its row says {rows[0]!r}")
                else:
                    wrong.append(f"{where}: {repo.name} is neither as it was nor fully updated")
                named = str(repo) in running
                if rows and rows[0].endswith(("interrupted, unchanged", "updated, then interrupted")) and not named:
                    wrong.append(f"{where}: {repo.name}'s row says it was interrupted, the last line does not name it")
            if left := sorted(p.name for p in tmp.iterdir()):
                wrong.append(f"{where}: left in TMPDIR: {left}")
    assert not wrong, "\n".join(wrong)


def test_an_interrupted_backport_leaves_the_template_checkout_as_it_was(released, tmp_path: Path) -> None:
    template, pip = released("pipulate", name="pip")
    server = pip / "server.py"
    line = literal_line(template.source("server.py"), server, from_end=True)
    server.write_text(server.read_text().replace(f"{line}\n", f"{line}  # backported\n", 1))
    commit_all(pip, "a literal edit")
    before = snapshot(template.path)

    duration, (code, stdout, stderr) = timed(tmp_path / "logs-whole", "backport", "-C", pip, "--yes")
    assert code == 0, stdout + stderr
    branch = git(template.path, "rev-parse", "backport/pip").strip()
    git(template.path, "branch", "-D", "backport/pip")
    assert snapshot(template.path) == before

    outcomes = []
    for signame, at in [("SIGINT", duration * 0.3), ("SIGTERM", duration * 0.6), ("SIGINT", duration - 0.3),
                        ("SIGTERM", duration - 0.1)]:
        code, stdout, stderr = interrupted(tmp_path / f"logs-{len(outcomes)}", at, signame, "backport", "-C", pip, "--yes")
        where = f"{signame} at {at:.2f}s of {duration:.2f}s: exit {code}, {stderr!r}"
        state = snapshot(template.path)
        if state == before:
            assert code == 130 and stderr.strip() == NOTHING_CHANGED, where
        else:
            made = git(template.path, "rev-parse", "backport/pip").strip()
            assert git(template.path, "rev-parse", f"{made}^{{tree}}") == git(template.path, "rev-parse", f"{branch}^{{tree}}"), where
            assert finished(code, stdout, "Committed on branch backport/pip") or code == 130 and (
                "interrupted, but branch backport/pip is committed" in stderr
            ), where
            git(template.path, "branch", "-D", "backport/pip")
            assert snapshot(template.path) == before, where
        outcomes.append(state == before)
    assert any(outcomes), "no signal came before the branch was made"


def test_a_signal_during_the_final_step_waits_for_it_and_then_says_what_landed(tmp_path: Path) -> None:
    from flakewright._errors import Interrupted
    from flakewright._landing import landing

    steps = []
    with pytest.raises(Interrupted, match="^it landed$"):
        with landing() as land:
            with land.final(changes=tmp_path, done="it landed"):
                os.kill(os.getpid(), signal.SIGINT)
                steps.append("went on past the signal")
    assert steps == ["went on past the signal"]
    with pytest.raises(KeyboardInterrupt) as before:
        with landing():
            os.kill(os.getpid(), signal.SIGINT)
            time.sleep(1)
    assert type(before.value) is KeyboardInterrupt
