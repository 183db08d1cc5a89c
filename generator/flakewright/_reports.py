"""What the commands print: an update's report, a backport's, and the tables of many-repo runs."""
from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from rich.console import Console

if TYPE_CHECKING:
    from ._backport import BackportResult
    from ._check import CheckResult
    from ._update import UpdateResult

out = Console(highlight=False, soft_wrap=True)
err = Console(stderr=True, highlight=False, soft_wrap=True)

UPDATE_COLUMNS = ("repo", "from -> to", "new", "changed", "merged", "conflicts", "deleted", "status")


def update_row(path: Path, result: UpdateResult) -> tuple[str, ...]:
    """One repo's row: each count is the length of the list of that name in the repo's own report."""
    lists = (result.new, result.changed, result.merged, result.conflicts, result.deleted)
    counts = [len(paths) for paths in lists]
    state = "up to date" if result.nothing_to_do else ("conflicts" if result.conflicts else "clean")
    if result.dry_run and not result.nothing_to_do:
        state = "would conflict" if result.conflicts else "would update"
    return (str(path), f"{result.from_version} -> {result.to_version}", *map(str, counts), state)


def report_update(result: UpdateResult, *, inline: bool) -> None:
    if result.nothing_to_do:
        out.print(f"already at {result.to_version}, nothing to do")
        return
    if result.dry_run:
        out.print(f"Would update {result.from_version} -> {result.to_version} (dry run: nothing written)")
        for path, outcome in sorted(result.files.items()):
            out.print(f"  {outcome:<9} {_noted(result, path)}")
        if not result.files:
            out.print("  no file would change")
        return
    out.print(f"Updated {result.from_version} -> {result.to_version}")
    _list("new", result.new)
    _list("changed", result.changed)
    _list("deleted", result.deleted)
    _list("merged with your edits", [_noted(result, p) for p in result.merged])
    _list("conflicts", [_noted(result, p) for p in result.conflicts])
    marked = len(result.conflicts) - len(result.kept)
    if marked:
        hint = "markers <<<<<<< / >>>>>>>" if inline else ".rej files"
        err.print(f"{marked} file(s) hold conflicts ({hint}); resolve them, then commit")
    if result.kept:
        err.print(
            f"{len(result.kept)} file(s) the new release deletes were kept because you edited them; "
            "keep them (`git add`) or remove them (`git rm`), then commit"
        )
    if not result.conflicts and result.files:
        out.print("Review with `git diff`, then `git add -A && git commit`.")


def report_check(result: CheckResult, *, path: Path, suggestion: str) -> None:
    if result.update_available:
        out.print(f"update available: {result.current_version} -> {result.latest_version} (run `{suggestion}`)")
    else:
        out.print(f"up to date: {result.current_version}")
    if result.drift:
        out.print(f"drift: {len(result.drift)} file(s) differ from the last render")
        for drifted in result.edited:
            out.print(f"  edited   {drifted}")
        for drifted in result.deleted:
            out.print(f"  deleted  {drifted}")
        for old, new in result.renamed.items():
            out.print(f"  renamed  {old} -> {new}")
    else:
        out.print("no drift: generated files match the last render")
    if result.uncommitted:
        err.print(
            f"warning: {path} has {result.uncommitted} uncommitted change(s); `flakewright update` refuses it "
            "until they are committed or stashed"
        )


def report_backport(result: BackportResult) -> None:
    if not result.files:
        out.print("nothing to backport: generated files match the last render")
        return
    for report in result.files:
        where = f" ({report.source})" if report.source else ""
        if report.outcome == "applied":
            out.print(f"applied: {report.path}{where}")
        elif report.outcome == "partly applied":
            out.print(f"partly applied: {report.path}{where}: {report.applied} hunk(s) applied, {len(report.refused)} not")
        else:
            out.print(f"refused: {report.path}{where}" + (f": {report.reason}" if report.reason else ""))
        for hunk in report.refused:
            span = f"line {hunk.first}" if hunk.first == hunk.last else f"lines {hunk.first}-{hunk.last}"
            out.print(f"  not applied, {span}: {hunk.reason}")
            for line in hunk.removed:
                out.print(f"    - {_shown(line)}")
            for line in hunk.added:
                out.print(f"    + {_shown(line)}")
            if hunk.template_lines:
                out.print("    from the template lines:")
                for number, text in hunk.template_lines:
                    out.print(f"    {number:>5} | {text}")
    if result.commit:
        out.print(
            f"Committed on branch {result.branch} in {result.template} ({result.commit[:10]}, based on {result.base[:10]}); "
            "review it, merge it and release the template."
        )
    else:
        out.print("Nothing was applied; the template is unchanged.")


def _noted(result: UpdateResult, path: str) -> str:
    note = result.notes.get(path)
    return f"{path} ({note})" if note else path


def _shown(line: str) -> str:
    """A diff line as printed: its newline dropped, a carriage return or trailing space made visible."""
    text = line.removesuffix("\n").replace("\r", "\\r")
    stripped = text.rstrip(" \t")
    return stripped + "·" * (len(text) - len(stripped))


def _list(label: str, paths: list[str]) -> None:
    if paths:
        out.print(f"{label} ({len(paths)}):")
        for path in paths:
            out.print(f"  {path}")


def table(header: tuple[str, ...], rows: list[tuple[str, ...]]) -> None:
    widths = [max(len(r[i]) for r in (header, *rows)) for i in range(len(header))]
    for row in (header, *rows):
        out.print("  ".join(cell.ljust(width) for cell, width in zip(row, widths)).rstrip())
