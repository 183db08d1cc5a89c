"""``flakewright backport``'s command line: ``[COMMIT]... [-- PATH...]``, the yes it waits for, what it prints.

Imported by ``_cli`` at startup, so it imports nothing heavy (``_backport`` loads copier: only at run time).
"""
from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING

import typer
from typer.core import TyperCommand

from ._errors import ExitCode, FlakewrightError
from ._reports import out

if TYPE_CHECKING:
    from ._backport import BackportResult

PATHS = "backport_paths"


class CommitsThenPaths(TyperCommand):
    """Arguments after ``--`` are paths (kept in ``ctx.meta``), those before it commits, as with ``git log``."""

    def parse_args(self, ctx: typer.Context, args: list[str]) -> list[str]:
        if "--" in args:
            at = args.index("--")
            ctx.meta[PATHS] = args[at + 1 :]
            args = args[:at]
        return super().parse_args(ctx, args)


def run(
    *, ctx: typer.Context, repo: Path, commits: list[str], template: str | None, branch: str | None, yes: bool,
    dry_run: bool,
) -> int:
    """Run a backport as the command line asks; return the exit code."""
    ask = not yes and not dry_run
    if ask and not sys.stdin.isatty():
        raise FlakewrightError("backport commits only after a yes: run it on a terminal, or pass --yes "
                               "(--dry-run shows what it would send)")
    from ._backport import backport

    result = backport(
        dest=repo, commits=commits, paths=ctx.meta.get(PATHS, []), template=template, branch=branch,
        dry_run=dry_run, confirm=_confirm if ask else None,
    )
    if ask and result.sends and result.exit_code != ExitCode.FAILED:
        _outcome(result)  # the rest was printed before the question
    else:
        report(result)
    return 0 if result.declined or (not result.files and not result.dry_run) else result.exit_code


def _confirm(preview: BackportResult) -> bool:
    report(preview, preview=True)
    return typer.confirm(f"Commit this to a new branch of {preview.template}?", default=False)


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


def _file(file: object) -> None:
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
