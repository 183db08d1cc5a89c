"""What backport plans for one rendered file, and what it reports.

Each changed region (hunk) of a rendered file is mapped through a traced render
(see ``_trace``) onto the template lines that produced it. A hunk whose lines
are all verbatim copies of consecutive template lines, or an insertion next to
such a line, becomes an edit of the template file; any other hunk touches text
Jinja produced and is refused, with the template lines it came from.
"""
from __future__ import annotations

import difflib
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from ._errors import ExitCode
from ._selection import SentCommit, Wanted, link_on_disk
from ._trace import TracedFile, read, split_lines

Outcome = Literal["applied", "partly applied", "refused", "relocked", "failed"]


@dataclass(frozen=True, kw_only=True)
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


@dataclass(frozen=True, kw_only=True)
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
class Edit:
    start: int  # 0-based index of the first template line replaced
    end: int  # 0-based index after the last one (== start for an insertion)
    lines: list[str]



def plan(
    relative: str, *, plain: Path, wanted: Wanted, trace: TracedFile, template: Path
) -> tuple[FileReport, list[Edit], str]:
    """The report on ``relative``, the template edits that make its wanted text, and the render they plan."""
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
    edits: list[Edit] = []
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
    """Why ``root / relative`` must not be read: a symlink on the way, or a path leading out of ``root``. None
    when it is safe."""
    if link := link_on_disk(root, relative):
        return link
    if not (root / relative).resolve().is_relative_to(root.resolve()):
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


def _edit_for(lines: list[int | None], i1: int, i2: int, added: list[str]) -> Edit | None:
    """Where a hunk replacing rendered lines ``i1:i2`` lands in the template, if it is literal text."""
    if i2 > i1:
        numbers = lines[i1:i2]
        if None in numbers or numbers != list(range(numbers[0], numbers[0] + len(numbers))):
            return None
        return Edit(numbers[0] - 1, numbers[-1], added)
    before = lines[i1 - 1] if i1 > 0 else None
    if before is not None:
        return Edit(before, before, added)
    after = lines[i1] if i1 < len(lines) else None
    if after is not None:
        return Edit(after - 1, after - 1, added)
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


def apply(text: str, edits: list[Edit]) -> str:
    """``text`` (a template file) with ``edits`` made."""
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
