"""``flakewright backport``'s command line: ``[COMMIT]... [-- PATH...]``, the yes it waits for, what it prints.

Imported by ``_cli`` at startup, so it imports nothing heavy (``_backport`` loads copier; ``_cli`` imports it
only at run time).
"""
from __future__ import annotations

import sys
from typing import TYPE_CHECKING

import typer
from typer.core import TyperCommand

from ._console import out
from ._errors import ExitCode, FlakewrightError

if TYPE_CHECKING:
    from ._backport_plan import BackportResult, FileReport

PATHS = "backport_paths"


class CommitsThenPaths(TyperCommand):
    """Arguments after ``--`` are paths (kept in ``ctx.meta``), those before it commits, as with ``git log``."""

    def parse_args(self, ctx: typer.Context, args: list[str]) -> list[str]:
        if "--" in args:
            at = args.index("--")
            ctx.meta[PATHS] = args[at + 1 :]
            args = args[:at]
        return super().parse_args(ctx, args)


def paths(ctx: typer.Context) -> list[str]:
    """The paths given after ``--``."""
    return ctx.meta.get(PATHS, [])


def asks(*, yes: bool, dry_run: bool) -> bool:
    """Whether backport must ask before it commits; without a terminal to ask on, how to go on."""
    ask = not yes and not dry_run
    if ask and not sys.stdin.isatty():
        raise FlakewrightError("backport commits only after a yes: run it on a terminal, or pass --yes "
                               "(--dry-run shows what it would send)")
    return ask


def confirm(preview: BackportResult) -> bool:
    report(preview, preview=True)
    return typer.confirm(f"Commit this to a new branch of {preview.template}?", default=False)


def finish(result: BackportResult, *, asked: bool) -> int:
    """Print what the backport did (after a yes, what ``confirm`` did not print yet); return the exit code."""
    if asked and result.sends and result.exit_code != ExitCode.FAILED:
        _outcome(result)  # the rest was printed before the question
    else:
        report(result)
    return 0 if result.declined or (not result.files and not result.dry_run) else result.exit_code


def report(result: BackportResult, *, preview: bool = False) -> None:
    """What was selected, each file's outcome, and (dry run) the template diff."""
    if not result.files:
        out.print(_nothing(result))
        return
    _selected(result)
    for file in result.files:
        _file(file)
    if result.dry_run:
        out.print(result.diff.rstrip("\n") if result.diff else "(no template line would change)", markup=False)
    if not preview:
        _outcome(result)


def _nothing(result: BackportResult) -> str:
    if result.commits:
        return "nothing to backport: the selected commits change no generated file (files you added are yours)"
    if result.since:
        return f"nothing to backport: no commit since the last update ({result.since[:10]})"
    return "nothing to backport: generated files match the last render"


def _selected(result: BackportResult) -> None:
    if result.commits:
        out.print(f"Sending {len(result.commits)} commit(s):")
        for sent in result.commits:
            out.print(f"  {sent.commit[:10]} {sent.subject}", markup=False)
    else:
        out.print("Sending the named files as they are in the work tree:")


def _file(file: FileReport) -> None:
    where = f" ({file.source})" if file.source else ""
    if file.outcome == "applied":
        out.print(f"applied: {file.path}{where}", markup=False)
    elif file.outcome == "partly applied":
        out.print(f"partly applied: {file.path}{where}: {file.applied} hunk(s) applied, {len(file.refused)} not", markup=False)
    else:
        out.print(f"{file.outcome}: {file.path}{where}" + (f": {file.reason}" if file.reason else ""), markup=False)
    for hunk in file.refused:
        span = f"line {hunk.first}" if hunk.first == hunk.last else f"lines {hunk.first}-{hunk.last}"
        out.print(f"  not applied, {span}: {hunk.reason}", markup=False)
        for line in hunk.removed:
            out.print(f"    - {_shown(line)}", markup=False)
        for line in hunk.added:
            out.print(f"    + {_shown(line)}", markup=False)
        if hunk.template_lines:
            out.print("    from the template lines:")
            for number, text in hunk.template_lines:
                out.print(f"    {number:>5} | {text}", markup=False)


def _outcome(result: BackportResult) -> None:
    relock = any(f.outcome == "relocked" for f in result.files)
    if result.exit_code == ExitCode.FAILED:
        out.print("Backport failed: nothing was committed; the template is unchanged.")
    elif result.dry_run:
        out.print("Dry run: nothing was committed" + (
            "; the branch would also relock template/_locks" if relock else "") + ".")
    elif result.declined:
        out.print("Nothing sent; the template is unchanged.")
    elif result.commit:
        out.print(
            f"Committed on branch {result.branch} in {result.template} ({result.commit[:10]}, based on "
            f"{result.base[:10]}){f', {len(result.relocked)} lock file(s) relocked' if result.relocked else ''}; "
            "review it, merge it and release the template.", markup=False,
        )
    else:
        out.print("Nothing was applied; the template is unchanged.")


def _shown(line: str) -> str:
    """A diff line as printed: its newline dropped, a carriage return or trailing space made visible."""
    text = line.removesuffix("\n").replace("\r", "\\r")
    stripped = text.rstrip(" \t")
    return stripped + "·" * (len(text) - len(stripped))
