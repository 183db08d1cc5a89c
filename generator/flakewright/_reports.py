"""What the commands print: an update's report, a backport's, and the tables of many-repo runs."""
from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from rich.console import Console

if TYPE_CHECKING:
    from ._backport import BackportResult
    from ._update import UpdateResult

out = Console(highlight=False, soft_wrap=True)
err = Console(stderr=True, highlight=False, soft_wrap=True)

UPDATE_COLUMNS = ("repo", "from -> to", "changed", "merged", "conflicts", "deleted", "status")


def update_row(path: Path, result: UpdateResult) -> tuple[str, ...]:
    merged, conflicts, deleted = len(result.merged), len(result.conflicts), len(result.deleted)
    counts = [len(result.files) - merged - conflicts - deleted, merged, conflicts, deleted]
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
            out.print(f"  {outcome:<9} {path}")
        if not result.files:
            out.print("  no file would change")
        return
    out.print(f"Updated {result.from_version} -> {result.to_version}")
    _list("new", result.new)
    _list("changed", [p for p in result.changed if p not in result.new and p not in result.deleted])
    _list("deleted", result.deleted)
    _list("merged with your edits", result.merged)
    _list("conflicts", result.conflicts)
    if result.conflicts:
        hint = "markers <<<<<<< / >>>>>>>" if inline else ".rej files"
        err.print(f"{len(result.conflicts)} file(s) hold conflicts ({hint}); resolve them, then commit")
    elif result.changed:
        out.print("Review with `git diff`, then `git add -A && git commit`.")


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
