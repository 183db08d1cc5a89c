"""``flakewright backport``: carry a derived repo's edits to template files back into the template.

The edits are the drift ``check`` reports: the repo's files against a render of
the recorded template commit with the recorded answers. Each changed region
(hunk) is mapped through a traced render (see ``_trace``) onto the template
lines that produced it. A hunk whose lines are all verbatim copies of
consecutive template lines, or an insertion next to such a line, is applied
there; any other hunk touches text Jinja produced and is refused. The patched
template is rendered again and must reproduce exactly the applied edits, file
by file, before anything is committed. The result is a commit on a new branch
of the template checkout, made without touching its work tree.
"""
from __future__ import annotations

import difflib
import io
import os
import re
import subprocess
import tarfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from tempfile import TemporaryDirectory
from typing import Literal

import copier

from ._answers import read_answers
from ._console import status
from ._errors import FlakewrightError, copier_errors
from ._git import git
from ._landing import landing
from ._pristine import differing_files
from ._releases import Releases
from ._source import is_local
from ._trace import TracedFile, instrument, read, read_trace, split_lines, write

Outcome = Literal["applied", "partly applied", "refused"]


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

    @property
    def exit_code(self) -> int:
        """0 when every edit reached the template, 1 when some were refused."""
        return 0 if self.files and all(f.outcome == "applied" for f in self.files) else 1


@dataclass(frozen=True)
class _Edit:
    start: int  # 0-based index of the first template line replaced
    end: int  # 0-based index after the last one (== start for an insertion)
    lines: list[str]


def backport(*, dest: Path | str = ".", template: str | None = None, branch: str | None = None) -> BackportResult:
    """Turn ``dest``'s edits to template-owned files into a commit on a new branch of ``template``."""
    dest = Path(dest).expanduser().resolve()
    if not dest.is_dir():
        raise FlakewrightError(f"{dest} is not a directory; pass the derived repo as DEST")
    answers = read_answers(dest)
    checkout = _checkout(template, recorded=str(answers["_src_path"]))
    base = _resolve(checkout, str(answers["_commit"]))
    if branch:
        _check_branch(checkout, branch)
    data = {k: v for k, v in answers.items() if not k.startswith("_")}
    with landing() as land, TemporaryDirectory(prefix="flakewright-backport-") as tmp, status("Tracing the template"):
        work = Path(tmp)
        source = work / "source"
        _export(checkout, base, source)
        sources = instrument(source, work / "tagged-src")
        plain = work / "plain"
        _render(source, plain, data)
        _render(work / "tagged-src", work / "tagged", data)
        drift = differing_files(plain, dest)
        reports: list[FileReport] = []
        planned: dict[str, list[_Edit]] = {}
        expected: dict[str, str] = {}
        for relative in drift:
            trace = read_trace(
                template=source, plain=plain, tagged=work / "tagged", sources=sources, relative=relative,
            )
            report, edits, result_text = _plan(relative, plain, dest, trace, source)
            reports.append(report)
            if edits and report.source:
                planned.setdefault(report.source, []).extend(edits)
                expected[relative] = result_text
        originals = {path: read(source / path) for path in planned}
        for path, edits in planned.items():
            write(source / path, _apply(originals[path], edits))
        reports = _verify(reports, source, work / "verify", data, expected, originals)
        changed = {r.source for r in reports if r.applied and r.source}
        commit = name = None
        if changed:
            name = branch or _free_branch(checkout, f"backport/{_branch_part(dest.name)}")
            _check_branch(checkout, name)
            commit = _commit(checkout, base, {p: read(source / p) for p in sorted(changed)}, dest, reports)
            with land.final(changes=checkout, done=f"branch {name} is committed in {checkout}"):
                _create_branch(checkout, name, commit)
    return BackportResult(files=reports, branch=name, commit=commit, template=checkout, base=base)


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


def _plan(relative: str, plain: Path, dest: Path, trace: TracedFile, template: Path) -> tuple[FileReport, list[_Edit], str]:
    target = dest / relative
    unsafe = _reached_through_link(dest, relative) or (trace.source and _reached_through_link(template, trace.source))
    if unsafe:
        return FileReport(relative, "refused", trace.source, reason=unsafe), [], ""
    if not target.is_file():
        return FileReport(relative, "refused", trace.source, reason="deleted in this repo; backport does not remove template files"), [], ""
    try:
        before = split_lines(read(plain / relative))
        after = split_lines(read(target))
    except UnicodeDecodeError:
        return FileReport(relative, "refused", trace.source, reason="not a UTF-8 text file"), [], ""
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
                    report.path, "refused", report.source,
                    reason="the patched template did not reproduce the edit; change the template by hand",
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


def _commit(checkout: Path, base: str, files: dict[str, str], dest: Path, reports: list[FileReport]) -> str:
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
        return run("commit-tree", tree, "-p", base, stdin=f"Backport edits from {dest.name}\n\n{summary}\n")


def _create_branch(checkout: Path, branch: str, commit: str) -> None:
    """The one change the checkout sees. Its own session: a Ctrl-C at the terminal does not stop it half-way."""
    done = subprocess.run(
        ["git", "update-ref", "-m", "flakewright backport", f"refs/heads/{branch}", commit, ""],
        cwd=checkout, capture_output=True, text=True, check=False, start_new_session=True,
    )
    if done.returncode:
        raise FlakewrightError(f"git update-ref failed in {checkout}: {done.stderr.strip()}")
