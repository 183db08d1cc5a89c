"""What the commands print: an update's report, a check's, and the tables of many-repo runs (backport's is in
``_backport_cli``)."""
from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from ._console import err, out

if TYPE_CHECKING:
    from ._check import CheckResult
    from ._update import UpdateResult

UPDATE_COLUMNS = ("repo", "from -> to", "new", "changed", "merged", "conflicts", "deleted", "status")
CHECK_COLUMNS = ("repo", "version", "drift", "status")
# A repo's status in the table when the command did not finish there, by how it ended (see _fleet.Outcome).
UPDATE_STATES = {
    "refused": "refused",
    "failed": "failed",
    "interrupted": "interrupted, unchanged",
    "landed": "updated, then interrupted",
    "not started": "not started",
}
CHECK_STATES = {state: state for state in ("refused", "failed", "interrupted", "landed", "not started")}


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
    held = [path for path in result.conflicts if path not in result.kept]
    if held:
        err.print(f"{len(held)} file(s) hold conflicts ({_where_conflicts_are(result, held, inline=inline)}); "
                  "resolve them, then commit")
    if result.kept:
        err.print(
            f"{len(result.kept)} file(s) the new release deletes were kept because you edited them; "
            "keep them (`git add`) or remove them (`git rm`), then commit"
        )
    if not result.conflicts and result.files:
        out.print("Review with `git diff`, then `git add -A && git commit`.")


def check_row(path: Path, result: CheckResult) -> tuple[str, ...]:
    versions = f"{result.current_version} -> {result.latest_version}" if result.update_available else result.current_version
    state = ", ".join(s for s, on in (("update available", result.update_available), ("drift", result.drift)) if on)
    return (str(path), versions, str(len(result.drift)), state or "up to date")


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


def _where_conflicts_are(result: UpdateResult, held: list[str], *, inline: bool) -> str:
    """Where the conflicts of ``held`` wait: markers in the file, or (``--conflict rej``) a FILE.rej next to it.

    Under rej only copier's own conflicts leave a .rej; a file flakewright merged itself (a notebook, cell by
    cell; a file the fork renamed) holds its markers inline in either mode, and is the one with a note.
    """
    rej = 0 if inline else sum(1 for path in held if path not in result.notes)
    marked = len(held) - rej
    markers = "markers <<<<<<< / >>>>>>>"
    if not rej:
        return markers
    files = "a .rej file" if rej == 1 else ".rej files"
    if not marked:
        return f"{files} next to {'it' if rej == 1 else 'them'}"
    return f"{markers} in {marked}, {files} next to {rej}"


def _noted(result: UpdateResult, path: str) -> str:
    note = result.notes.get(path)
    return f"{path} ({note})" if note else path


def _list(label: str, paths: list[str]) -> None:
    if paths:
        out.print(f"{label} ({len(paths)}):")
        for path in paths:
            out.print(f"  {path}")


def table(header: tuple[str, ...], rows: list[tuple[str, ...]]) -> None:
    widths = [max(len(r[i]) for r in (header, *rows)) for i in range(len(header))]
    for row in (header, *rows):
        out.print("  ".join(cell.ljust(width) for cell, width in zip(row, widths)).rstrip())
