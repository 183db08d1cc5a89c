"""``flakewright backport``: carry a derived repo's edits to template files back into the template.

What is sent is chosen by name (see ``_selection``): commits of the fork (their
changes replayed onto a pristine render of the recorded template commit, so no
other edit of the fork travels along), files (their whole difference from that
render), or by default the commits since the last update. Each changed region
(hunk) is mapped through a traced render (see ``_trace``) onto the template
lines that produced it (see ``_backport_plan``): a hunk whose lines are all
verbatim copies of consecutive template lines, or an insertion next to such a
line, is applied there; any other hunk touches text Jinja produced and is
refused. Lock files are never sent: a change to pyproject.toml relocks the
template's locks on the branch (see ``_relock``). The patched template is
rendered again and must reproduce exactly the applied edits, file by file,
before anything is committed. The result is a commit on a new branch of the
template checkout, made without touching its work tree (see ``_backport_branch``).
"""
from __future__ import annotations

import difflib
import io
import subprocess
import tarfile
from collections.abc import Callable, Sequence
from dataclasses import replace
from pathlib import Path
from tempfile import TemporaryDirectory

import copier

from ._backport_branch import branch_part, check_branch, commit_edits, create_branch, free_branch
from ._backport_plan import BackportResult, Edit, FileReport, apply, plan
from ._console import status
from ._derived import DerivedRepo
from ._errors import ExitCode, FlakewrightError, copier_errors
from ._landing import landing
from ._pristine import rendered_files
from ._relock import LOCKS, is_lock, is_pyproject, relock
from ._selection import Selection, select, wanted_files
from ._template import TemplateSource
from ._trace import instrument, read, read_trace, split_lines, write

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
    repo = DerivedRepo.open(
        dest, not_a_dir="pass the derived repo with -C PATH", not_git="backport sends commits and files of one"
    )
    source = TemplateSource.local_checkout(recorded=repo.recorded, commit=repo.commit, override=template)
    dest, checkout, base = repo.dest, source.checkout, str(source.current)
    if branch:
        check_branch(checkout, branch)
    selection = select(dest=dest, commits=commits, paths=paths)
    data = repo.data
    empty = BackportResult(
        files=[], branch=None, commit=None, template=checkout, base=base, commits=selection.commits, dry_run=dry_run,
        since=selection.since,
    )
    if selection.by_commit and not selection.commits:
        return empty
    with landing() as land, TemporaryDirectory(prefix="flakewright-backport-") as tmp:
        work = Path(tmp)
        with status("Tracing the template"):
            reports, changed, originals = _prepare(
                work=work, checkout=checkout, base=base, data=data, dest=dest, selection=selection
            )
        patched = work / "source"
        diff = _template_diff(originals, {p: read(patched / p) for p in changed})
        preview = replace(empty, files=reports, diff=diff)
        if not changed or dry_run or preview.exit_code == ExitCode.FAILED:
            return preview
        if confirm is not None and not confirm(preview):
            return replace(preview, declined=True)
        files = {p: read(patched / p) for p in sorted(changed)}
        locks = relock(patched) if any(is_pyproject(p) for p in changed) else {}
        name = branch or free_branch(checkout, f"backport/{branch_part(dest.name)}")
        check_branch(checkout, name)
        commit = commit_edits(
            checkout, base=base, files={**files, **locks}, dest=dest, reports=reports, sent=selection.commits
        )
        with land.final(changes=checkout, done=f"branch {name} is committed in {checkout}"):
            create_branch(checkout, name, commit)
    return replace(preview, branch=name, commit=commit, relocked=sorted(locks))


def _prepare(
    *, work: Path, checkout: Path, base: str, data: dict[str, object], dest: Path, selection: Selection
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
    planned: dict[str, list[Edit]] = {}
    expected: dict[str, str] = {}
    for relative in sorted(wanted):
        trace = read_trace(template=source, plain=plain, tagged=work / "tagged", sources=sources, relative=relative)
        report, edits, result_text = plan(relative, plain=plain, wanted=wanted[relative], trace=trace, template=source)
        reports.append(report)
        if edits and report.source:
            planned.setdefault(report.source, []).extend(edits)
            expected[relative] = result_text
    originals = {path: read(source / path) for path in planned}
    for path, edits in planned.items():
        write(source / path, apply(originals[path], edits))
    reports = _verify(
        reports, template=source, target=work / "verify", data=data, expected=expected, originals=originals
    )
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


def _verify(
    reports: list[FileReport],
    *,
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
