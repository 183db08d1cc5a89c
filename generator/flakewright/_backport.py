"""``flakewright backport``: carry a derived repo's edits to template files back into the template.

What is sent is chosen by name (see ``_selection``): commits of the fork (their
changes replayed onto a pristine render of the recorded template commit, so no
other edit of the fork travels along), files (their whole difference from that
render), or by default the commits since the last update. Each changed region
(hunk) is mapped through a traced render (see ``_trace``) onto the template
lines that produced it. A hunk whose lines are all verbatim copies of
consecutive template lines, or an insertion next to such a line, is applied
there; any other hunk touches text Jinja produced and is refused. Lock files are
never sent: a change to pyproject.toml relocks the template's locks on the
branch (see ``_relock``). The patched template is rendered again and must
reproduce exactly the applied edits, file by file, before anything is
committed. The result is a commit on a new branch of the template checkout,
made without touching its work tree.
"""
from __future__ import annotations

import difflib
import io
import os
import re
import subprocess
import tarfile
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from tempfile import TemporaryDirectory
from typing import Literal

import copier

from ._answers import read_answers
from ._console import status
from ._errors import ExitCode, FlakewrightError, copier_errors
from ._git import git
from ._landing import landing
from ._pristine import rendered_files
from ._releases import Releases
from ._relock import LOCKS, is_lock, is_pyproject, relock
from ._selection import Selection, SentCommit, Wanted, select, wanted_files
from ._source import is_local
from ._trace import TracedFile, instrument, read, read_trace, split_lines, write

Outcome = Literal["applied", "partly applied", "refused", "relocked", "failed"]


@dataclass(frozen=True)
class Hunk:
    """One changed region of a rendered file, in the derived repo's line numbers."""

    first: int  # 1-based first line in the derived file (the line before it, for a deletion)
    last: int
    removed: list[str]
    added: list[str]
    reason: str = ""
    template_lines: list[tuple[int, str]] = field(default_factory=list)


@dataclass(frozen=True)
class FileReport:
    path: str
    outcome: Outcome
    source: str | None
    applied: int = 0
    refused: list[Hunk] = field(default_factory=list)
    reason: str = ""


@dataclass(frozen=True)
class BackportResult:
    files: list[FileReport]
    branch: str | None
    commit: str | None
    template: Path
    base: str
    commits: list[SentCommit] = field(default_factory=list)  # what was selected, oldest first
    diff: str = ""  # the template diff committed (or, dry run, that would be)
    relocked: list[str] = field(default_factory=list)  # lock files the branch relocked
    dry_run: bool = False
    declined: bool = False  # the confirmation said no: nothing changed
    since: str | None = None  # the last update's commit, when the commits were not named

    @property
    def sends(self) -> bool:
        """True when some edit would reach the template."""
        return any(f.applied for f in self.files)

    @property
    def exit_code(self) -> int:
        """0 when every selected edit reached the template (or there was none), 1 when some were refused with
        their reasons (the rest is committed), 3 when backport failed and committed nothing."""
        if any(f.outcome == "failed" for f in self.files):
            return ExitCode.FAILED
        return ExitCode.OK if all(f.outcome in ("applied", "relocked") for f in self.files) else ExitCode.REFUSED


@dataclass(frozen=True)
class _Edit:
    start: int  # 0-based index of the first template line replaced
    end: int  # 0-based index after the last one (== start for an insertion)
    lines: list[str]


Confirm = Callable[[BackportResult], bool]


def backport(
    *,
    dest: Path | str = ".",
    commits: Sequence[str] = (),
    paths: Sequence[str] = (),
    template: str | None = None,
    branch: str | None = None,
    dry_run: bool = False,
    confirm: Confirm | None = None,
) -> BackportResult:
    """Send ``commits`` of ``dest`` (or its files ``paths``; with neither, its commits since the last update)
    to a commit on a new branch of ``template``. ``dry_run`` stops before anything changes, with the template
    diff in the result; otherwise ``confirm(preview)``, when given, must say yes before anything changes."""
    dest = _fork(dest)
    answers = read_answers(dest)
    checkout = _checkout(template, recorded=str(answers["_src_path"]))
    base = _resolve(checkout, str(answers["_commit"]))
    if branch:
        _check_branch(checkout, branch)
    selection = select(dest=dest, commits=commits, paths=paths)
    data = {k: v for k, v in answers.items() if not k.startswith("_")}
    empty = BackportResult([], None, None, checkout, base, selection.commits, dry_run=dry_run, since=selection.since)
    if selection.by_commit and not selection.commits:
        return empty
    with landing() as land, TemporaryDirectory(prefix="flakewright-backport-") as tmp:
        work = Path(tmp)
        with status("Tracing the template"):
            reports, changed, originals = _prepare(work, checkout, base, data, dest, selection)
        source = work / "source"
        diff = _template_diff(originals, {p: read(source / p) for p in changed})
        preview = replace(empty, files=reports, diff=diff)
        if not changed or dry_run or preview.exit_code == ExitCode.FAILED:
            return preview
        if confirm is not None and not confirm(preview):
            return replace(preview, declined=True)
        files = {p: read(source / p) for p in sorted(changed)}
        locks = relock(source) if any(is_pyproject(p) for p in changed) else {}
        name = branch or _free_branch(checkout, f"backport/{_branch_part(dest.name)}")
        _check_branch(checkout, name)
        commit = _commit(checkout, base, {**files, **locks}, dest, reports, selection.commits)
        with land.final(changes=checkout, done=f"branch {name} is committed in {checkout}"):
            _create_branch(checkout, name, commit)
    return replace(preview, branch=name, commit=commit, relocked=sorted(locks))


def _fork(dest: Path | str) -> Path:
    dest = Path(dest).expanduser().resolve()
    if not dest.is_dir():
        raise FlakewrightError(f"{dest} is not a directory; pass the derived repo with -C PATH")
    if not git("rev-parse", "--show-toplevel", cwd=dest, check=False).strip():
        raise FlakewrightError(f"{dest} is not a git repository; backport sends commits and files of one")
    return dest


def _prepare(
    work: Path, checkout: Path, base: str, data: dict[str, object], dest: Path, selection: Selection
) -> tuple[list[FileReport], set[str], dict[str, str]]:
    """Trace the template, plan every selected file and patch the scratch template: the reports, the template
    files patched (verified by a render) and their original texts."""
    source = work / "source"
    _export(checkout, base, source)
    sources = instrument(source, work / "tagged-src")
    plain = work / "plain"
    _render(source, plain, data)
    wanted = wanted_files(selection=selection, dest=dest, plain=plain, owned=set(rendered_files(plain)))
    _render(work / "tagged-src", work / "tagged", data)
    reports: list[FileReport] = []
    planned: dict[str, list[_Edit]] = {}
    expected: dict[str, str] = {}
    for relative in sorted(wanted):
        trace = read_trace(template=source, plain=plain, tagged=work / "tagged", sources=sources, relative=relative)
        report, edits, result_text = _plan(relative, plain, wanted[relative], trace, source)
        reports.append(report)
        if edits and report.source:
            planned.setdefault(report.source, []).extend(edits)
            expected[relative] = result_text
    originals = {path: read(source / path) for path in planned}
    for path, edits in planned.items():
        write(source / path, _apply(originals[path], edits))
    reports = _verify(reports, source, work / "verify", data, expected, originals)
    changed = {r.source for r in reports if r.applied and r.source}
    reports = [_lock_report(r, relocking=any(is_pyproject(p) for p in changed)) for r in reports]
    return reports, changed, {p: originals[p] for p in changed}


def _lock_report(report: FileReport, *, relocking: bool) -> FileReport:
    """A lock file is never sent: the branch relocks the template's locks when pyproject.toml changes."""
    if not is_lock(report.source) or report.reason:  # refused before its lines were read: that reason stands
        return report
    if relocking:
        return FileReport(report.path, "relocked", report.source, reason=f"the branch relocks {LOCKS} from pyproject.toml")
    return FileReport(
        report.path, "refused", report.source,
        reason="a lock file is never sent; send the pyproject.toml change that made it, and the branch is relocked",
    )


def _template_diff(originals: dict[str, str], patched: dict[str, str]) -> str:
    parts = []
    for path in sorted(patched):
        parts += difflib.unified_diff(
            split_lines(originals[path]), split_lines(patched[path]), f"a/{path}", f"b/{path}"
        )
    return "".join(line if line.endswith("\n") else line + "\n\\ No newline at end of file\n" for line in parts)


def _checkout(template: str | None, *, recorded: str) -> Path:
    src = template or recorded
    if not is_local(src):
        raise FlakewrightError(
            f"the template {src} is not a local checkout; pass --template PATH to a git clone of it"
        )
    path = Path(src).expanduser().resolve()
    top = git("rev-parse", "--show-toplevel", cwd=path, check=False).strip()
    if not top or Path(top).resolve() != path:
        raise FlakewrightError(f"{path} is not the top of a git checkout of the template; pass --template PATH")
    if not (path / "copier.yml").is_file():
        raise FlakewrightError(f"{path} has no copier.yml; pass --template PATH to a checkout of the template")
    return path


def _resolve(checkout: Path, commit: str) -> str:
    """The recorded ``_commit`` as a hash: a tag, a `git describe`, or a release named in CHANGELOG.md."""
    found = Releases(checkout).commit(commit)
    if not found:
        raise FlakewrightError(
            f"{checkout} lacks {commit}, the template commit this repo was rendered from; fetch it there first"
        )
    return found


def _export(checkout: Path, commit: str, target: Path) -> None:
    archive = subprocess.run(["git", "archive", "--format=tar", commit], cwd=checkout, capture_output=True, check=False)
    if archive.returncode:
        raise FlakewrightError(f"git archive failed in {checkout}: {archive.stderr.decode(errors='replace').strip()}")
    target.mkdir(parents=True)
    with tarfile.open(fileobj=io.BytesIO(archive.stdout)) as tar:
        tar.extractall(target, filter="data")


def _render(template: Path, target: Path, data: dict[str, object]) -> None:
    with copier_errors(action="rendering the template"):
        copier.run_copy(str(template), str(target), data=data, defaults=True, quiet=True, skip_tasks=True)


def _plan(relative: str, plain: Path, wanted: Wanted, trace: TracedFile, template: Path) -> tuple[FileReport, list[_Edit], str]:
    unsafe = trace.source and _reached_through_link(template, trace.source)
    if unsafe or wanted.text is None:
        return FileReport(relative, "refused", trace.source, reason=unsafe or wanted.reason), [], ""
    try:
        before = split_lines(read(plain / relative))
    except UnicodeDecodeError:
        return FileReport(relative, "refused", trace.source, reason="not a UTF-8 text file"), [], ""
    after = split_lines(wanted.text)
    if trace.source is None:
        return FileReport(relative, "refused", None, reason="no template file renders it"), [], ""
    source_lines = read(template / trace.source).split("\n")
    edits: list[_Edit] = []
    refused: list[Hunk] = []
    result = list(before)
    offset = 0
    for i1, i2, j1, j2 in _hunks(before, after):
        edit = _edit_for(trace.lines, i1, i2, after[j1:j2])
        if edit is None:
            traced = trace.lines[i1:i2]
            refused.append(
                Hunk(
                    first=j1 + 1 if j2 > j1 else j1,
                    last=max(j2, j1 + 1) if j2 > j1 else j1,
                    removed=before[i1:i2],
                    added=after[j1:j2],
                    reason=(
                        "spans template lines with Jinja tags between them; make this edit by hand"
                        if traced and None not in traced
                        else "touches text produced by Jinja (an expression, a loop or whitespace control)"
                    ),
                    template_lines=_origin(trace.lines, i1, i2, source_lines),
                )
            )
            continue
        edits.append(edit)
        result[i1 + offset : i2 + offset] = after[j1:j2]
        offset += (j2 - j1) - (i2 - i1)
    if not edits and not refused:
        return FileReport(relative, "refused", trace.source, reason="no line differs; only bytes backport does not carry"), [], ""
    if not edits:
        outcome: Outcome = "refused"
    else:
        outcome = "partly applied" if refused else "applied"
    report = FileReport(relative, outcome, trace.source, applied=len(edits), refused=refused)
    return report, edits, "".join(result)


def _reached_through_link(root: Path, relative: str) -> str | None:
    """Why ``root / relative`` must not be read: a symlink on the way (its target may be a private file, or
    another file of the repo), or a path leading out of ``root``. None when it is safe."""
    current = root
    for part in Path(relative).parts:
        current = current / part
        if current.is_symlink():
            return f"{current.relative_to(root)} is a symlink in {root}; backport reads no file through one"
    if not current.resolve().is_relative_to(root.resolve()):
        return f"{relative} leads out of {root}; backport reads no file outside the repo"
    return None


def _hunks(before: list[str], after: list[str]) -> Iterator[tuple[int, int, int, int]]:
    """Changed regions as (i1, i2, j1, j2); a line-for-line replacement is one region per line."""
    matcher = difflib.SequenceMatcher(None, before, after, autojunk=False)
    for op, i1, i2, j1, j2 in matcher.get_opcodes():
        if op == "replace" and i2 - i1 == j2 - j1:
            yield from ((i1 + k, i1 + k + 1, j1 + k, j1 + k + 1) for k in range(i2 - i1))
        elif op != "equal":
            yield i1, i2, j1, j2


def _edit_for(lines: list[int | None], i1: int, i2: int, added: list[str]) -> _Edit | None:
    """Where a hunk replacing rendered lines ``i1:i2`` lands in the template, if it is literal text."""
    if i2 > i1:
        numbers = lines[i1:i2]
        if None in numbers or numbers != list(range(numbers[0], numbers[0] + len(numbers))):
            return None
        return _Edit(numbers[0] - 1, numbers[-1], added)
    before = lines[i1 - 1] if i1 > 0 else None
    if before is not None:
        return _Edit(before, before, added)
    after = lines[i1] if i1 < len(lines) else None
    if after is not None:
        return _Edit(after - 1, after - 1, added)
    return None


def _origin(lines: list[int | None], i1: int, i2: int, source: list[str]) -> list[tuple[int, str]]:
    """The template lines that produced rendered lines ``i1:i2``: those between the nearest traced neighbours."""
    low = next((lines[i] for i in range(i1 - 1, -1, -1) if lines[i] is not None), 0)
    high = next((lines[i] for i in range(i2, len(lines)) if lines[i] is not None), len(source) + 1)
    if high <= low:
        low, high = 0, len(source) + 1
    numbers = range(low + 1, high)
    if len(numbers) > 12:
        numbers = range(low + 1, low + 13)
    return [(n, source[n - 1]) for n in numbers if n - 1 < len(source)]


def _apply(text: str, edits: list[_Edit]) -> str:
    lines = split_lines(text)
    if lines and not lines[-1].endswith("\n"):
        lines[-1] += "\n"
        trailing = False
    else:
        trailing = True
    for edit in sorted(edits, key=lambda e: (e.start, e.end), reverse=True):
        lines[edit.start : edit.end] = edit.lines
    joined = "".join(lines)
    return joined if trailing or not joined.endswith("\n") else joined[:-1]


def _verify(
    reports: list[FileReport],
    template: Path,
    target: Path,
    data: dict[str, object],
    expected: dict[str, str],
    originals: dict[str, str],
) -> list[FileReport]:
    """Render the patched template; a file whose render is not exactly the planned result is refused whole."""
    if not expected:
        return reports
    _render(template, target, data)
    checked = []
    for report in reports:
        if report.path in expected:
            rendered = target / report.path
            ok = rendered.is_file() and read(rendered) == expected[report.path]
            if not ok and report.source:
                write(template / report.source, originals[report.source])
                report = FileReport(
                    report.path, "failed", report.source,
                    reason="the patched template did not reproduce the edit; nothing was committed",
                )
        checked.append(report)
    return checked


def _free_branch(checkout: Path, wanted: str) -> str:
    name, n = wanted, 1
    while git("rev-parse", "--verify", "--quiet", f"refs/heads/{name}", cwd=checkout, check=False).strip():
        n += 1
        name = f"{wanted}-{n}"
    return name


def _branch_part(name: str) -> str:
    """A folder name as a part of a branch name: what git refuses in one (spaces, `..`, a leading dash) as `-`."""
    return re.sub(r"[^A-Za-z0-9_.+]+|\.{2,}", "-", name).strip("-.") or "repo"


def _check_branch(checkout: Path, branch: str) -> None:
    """Refuse what git would not take as a new branch's name: an option (`-m`, `--force`), `@{-1}`, a name taken."""
    checked = subprocess.run(
        ["git", "check-ref-format", "--branch", branch], cwd=checkout, capture_output=True, text=True, check=False
    )
    if branch.startswith("-") or checked.returncode or checked.stdout.strip() != branch:
        raise FlakewrightError(f"{branch!r} is not a valid branch name; choose another with --branch")
    if git("rev-parse", "--verify", "--quiet", f"refs/heads/{branch}", cwd=checkout, check=False).strip():
        raise FlakewrightError(f"branch {branch} already exists in {checkout}; choose another with --branch")


def _commit(
    checkout: Path, base: str, files: dict[str, str], dest: Path, reports: list[FileReport], sent: list[SentCommit]
) -> str:
    """A commit of ``files`` (path: text) on top of ``base``, made through a private index: objects only, no ref,
    and the checkout's work tree and index untouched."""
    with TemporaryDirectory(prefix="flakewright-index-") as tmp:
        env = {**os.environ, "GIT_INDEX_FILE": str(Path(tmp) / "index"), "GIT_LITERAL_PATHSPECS": "1"}
        if not git("config", "user.email", cwd=checkout, check=False).strip():
            env.update(
                GIT_AUTHOR_NAME="flakewright backport", GIT_AUTHOR_EMAIL="flakewright@localhost",
                GIT_COMMITTER_NAME="flakewright backport", GIT_COMMITTER_EMAIL="flakewright@localhost",
            )

        def run(*args: str, stdin: str = "") -> str:
            done = subprocess.run(["git", *args], cwd=checkout, env=env, input=stdin.encode(), capture_output=True)
            if done.returncode:
                raise FlakewrightError(f"git {args[0]} failed in {checkout}: {done.stderr.decode(errors='replace').strip()}")
            return done.stdout.decode().strip()

        run("read-tree", base)
        for path, text in files.items():
            mode = run("ls-tree", base, "--", path).split(" ", 1)[0] or "100644"
            blob = run("hash-object", "-w", "--stdin", f"--path={path}", stdin=text)
            run("update-index", "--add", "--cacheinfo", f"{mode},{blob},{path}")
        tree = run("write-tree")
        summary = "\n".join(f"- {r.path}: {r.outcome}" for r in reports)
        origin = "".join(f"- {c.commit[:10]} {c.subject}\n" for c in sent)
        origin = f"\n\nFrom the commits:\n{origin}" if origin else ""
        return run("commit-tree", tree, "-p", base, stdin=f"Backport edits from {dest.name}\n\n{summary}{origin}\n")


def _create_branch(checkout: Path, branch: str, commit: str) -> None:
    """The one change the checkout sees. Its own session: a Ctrl-C at the terminal does not stop it half-way."""
    done = subprocess.run(
        ["git", "update-ref", "-m", "flakewright backport", f"refs/heads/{branch}", commit, ""],
        cwd=checkout, capture_output=True, text=True, check=False, start_new_session=True,
    )
    if done.returncode:
        raise FlakewrightError(f"git update-ref failed in {checkout}: {done.stderr.strip()}")
