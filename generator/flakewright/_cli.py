"""The ``flakewright`` command line."""
from __future__ import annotations

import os
import shlex
import signal
import sys
from collections.abc import Callable, Mapping
from enum import Enum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Optional, TypeVar

import typer
from typer.core import TyperGroup

from ._answers import parse_data, questions
from . import _backport_cli as backport_cli
from ._console import err, out
from ._errors import ExitCode, FlakewrightError
from ._landing import LANDED
from ._reports import (
    CHECK_COLUMNS, CHECK_STATES, UPDATE_COLUMNS, UPDATE_STATES, check_row, report_check, report_update, table, update_row,
)
from ._source import template_source
from ._variants import VARIANTS
from ._version import __version__

if TYPE_CHECKING:
    from ._fleet import Outcome
    from ._update import UpdateResult

Result = TypeVar("Result")

CHECK_HELP = """Say whether a newer template release exists and whether DEST still matches
its last render (drift: generated files edited or deleted by hand).

\b
Exit codes:
   0  up to date and no drift
  10  a newer template version is available
  20  drift: files differ from the recorded render (listed)
  30  both 10 and 20
   2  bad usage or not a flakewright repo
"""


class Commands(TyperGroup):
    """typer's command group, keeping flakewright's promise: every failure is one line on stderr, never a
    traceback or a usage block; click's standalone mode then exits with the code."""

    def parse_args(self, ctx: typer.Context, args: list[str]) -> list[str]:
        if not args and self.no_args_is_help:  # click would show the help, then exit 2
            out.print(ctx.get_help())
            raise typer.Exit(0)
        try:
            return super().parse_args(ctx, args)
        except typer.TyperException as exc:
            raise _fail(_usage(exc), ExitCode.USAGE) from None

    def invoke(self, ctx: typer.Context) -> object:
        landed = len(LANDED)
        try:
            return super().invoke(ctx)
        except typer.Exit:
            raise
        except FlakewrightError as exc:
            raise _fail(f"flakewright: error: {exc}", exc.exit_code) from None
        except typer.TyperException as exc:  # click's own errors: bad usage
            raise _fail(_usage(exc), ExitCode.USAGE) from None
        except (KeyboardInterrupt, typer.Abort):  # Ctrl-C, SIGTERM (see _interrupt), or Ctrl-C at a prompt
            raise _fail(f"flakewright: {_interrupted(LANDED[landed:])}", ExitCode.INTERRUPTED) from None
        except Exception as exc:
            if os.environ.get("FLAKEWRIGHT_DEBUG"):
                raise
            raise _fail(
                f"flakewright: internal error: {type(exc).__name__}: {exc} (set FLAKEWRIGHT_DEBUG=1 for details)",
                ExitCode.INTERNAL,
            ) from None


def _interrupted(landed: list[tuple[Path, str]]) -> str:
    """What an interrupt left: each command changes files in one final step (see _landing), or not at all."""
    if not landed:
        return "interrupted; nothing was changed"
    if len(landed) == 1:
        return f"interrupted, but {landed[0][1]}"
    return f"interrupted, but {len(landed)} changes landed, the last: {landed[-1][1]}"


def _usage(exc: typer.TyperException) -> str:
    return f"flakewright: error: {' '.join(exc.format_message().split())} (see flakewright --help)"


def _fail(line: str, code: int) -> typer.Exit:
    err.print(line, soft_wrap=True)
    return typer.Exit(int(code))


app = typer.Typer(
    name="flakewright",
    cls=Commands,
    help="Render and update Nix + Python repos from the flakewright copier template.",
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)


class ConflictMode(str, Enum):
    inline = "inline"
    rej = "rej"


DataOption = Annotated[
    Optional[list[str]],
    typer.Option("--data", "-d", metavar="KEY=VALUE", help="Answer a question (repeatable), e.g. -d app_title='My App'."),
]
TrustOption = Annotated[
    bool, typer.Option("--trust", help="Allow the template's tasks and migrations to run (copier unsafe mode).")
]
TemplateOption = Annotated[
    Optional[str],
    typer.Option("--template", "-t", help="Template path or git URL (default: the template this flakewright was installed from)."),
]


JobsOption = Annotated[
    Optional[int],
    typer.Option("--jobs", "-j", min=1, help="With several repos: how many run at once (default: the number of CPUs)."),
]


def _version(value: bool) -> None:
    if value:
        out.print(f"flakewright {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Show the version and exit.")
    ] = False,
) -> None:
    """Render and update Nix + Python repos from the flakewright copier template."""


@app.command()
def new(
    variant: Annotated[str, typer.Argument(help=f"One of: {', '.join(VARIANTS)}.")],
    dest: Annotated[Path, typer.Argument(help="Directory to create (must be empty unless --force).")],
    data: DataOption = None,
    defaults: Annotated[bool, typer.Option("--defaults", help="Use defaults for unanswered questions instead of asking.")] = False,
    force: Annotated[bool, typer.Option("--force", help="Render into a non-empty DEST, overwriting template files.")] = False,
    trust: TrustOption = False,
    template: TemplateOption = None,
    vcs_ref: Annotated[Optional[str], typer.Option("--vcs-ref", help="Template git ref (default: newest release tag).")] = None,
) -> None:
    """Render VARIANT into DEST."""
    from ._new import new as run_new

    src = template_source(template)
    answers = parse_data(data, questions=questions(src)) if data else {}
    rendered = run_new(
        variant=variant,
        dest=dest,
        data=answers,
        defaults=defaults or not sys.stdin.isatty(),
        force=force,
        trust=trust,
        template=src,
        vcs_ref=vcs_ref,
    )
    out.print(f"Rendered {variant} into {rendered}")
    out.print(
        f"Next: cd {rendered} && git init && git add -A && git commit -m 'flakewright {variant}' && nix develop",
        soft_wrap=True,
    )


@app.command()
def variants() -> None:
    """List the variants and what each adds."""
    from rich.table import Table  # only this command draws a table; keep startup lean

    table = Table(box=None, pad_edge=False, show_edge=False)
    table.add_column("variant", style="bold")
    table.add_column("builds on")
    table.add_column("adds")
    for variant in VARIANTS.values():
        table.add_row(variant.name, variant.extends or "-", "; ".join(variant.adds))
    out.print(table)


@app.command()
def update(
    repos: Annotated[Optional[list[Path]], typer.Argument(metavar="[REPO]...", help="Repos to update (default: .).")] = None,
    to: Annotated[Optional[str], typer.Option("--to", help="Release (e.g. 0.2.0) or git ref to update to (default: the newest release).")] = None,
    conflict: Annotated[
        ConflictMode, typer.Option("--conflict", help="Conflicts as inline markers or as .rej files.")
    ] = ConflictMode.inline,
    data: DataOption = None,
    trust: TrustOption = False,
    template: Annotated[
        Optional[str],
        typer.Option("--template", "-t", help="Fetch the template from here instead of the answers file's _src_path (e.g. a local clone)."),
    ] = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Say per file what the update would do (new, clean, merged, conflict, deleted); write nothing.")] = False,
    force: Annotated[bool, typer.Option("--force", help="Let changed answers (-d) remove files without asking.")] = False,
    jobs: JobsOption = None,
) -> None:
    """Update each REPO to a newer template release, merging your edits.

    \b
    Exit codes: 0 all clean, 1 conflicts remain somewhere (resolve them, then
    commit), 2 a repo was refused (dirty, not a flakewright repo, bad answers).
    With several repos a refused one does not stop the others."""
    from ._update import update as run_update

    paths = repos or [Path(".")]
    confirm = _confirm_deletions if sys.stdin.isatty() and not force and len(paths) == 1 else None

    def one(path: Path) -> UpdateResult:
        src = template or _recorded_source(path)
        answers = parse_data(data or (), questions=questions(src) if src else None)
        return run_update(
            dest=path, to=to, conflict=conflict.value, data=answers, trust=trust, template=template,
            dry_run=dry_run, force=force, confirm_deletions=confirm,
        )

    inline = conflict is ConflictMode.inline
    outcomes, stopped = _each_repo(
        paths, one, jobs=jobs, report=lambda path, result: report_update(result, inline=inline),
        columns=UPDATE_COLUMNS, row=update_row, states=UPDATE_STATES,
    )
    if stopped is not None:
        where = f" during {', '.join(map(str, stopped))}" if stopped else ""
        raise _fail(f"flakewright: interrupted{where}; each repo is updated whole or untouched, as the table says",
                    ExitCode.INTERRUPTED)
    codes = [
        outcome.result.exit_code if outcome.kind == "done" else ExitCode.USAGE if outcome.kind == "refused" else outcome.code
        for outcome in outcomes if outcome is not None
    ]
    code = ExitCode.USAGE if ExitCode.USAGE in codes else max(codes, default=0)
    raise typer.Exit(int(code))


def _confirm_deletions(paths: list[str]) -> bool:
    out.print(f"The new answers remove {len(paths)} file(s):")
    for path in paths:
        out.print(f"  {path}")
    return typer.confirm("Remove them?", default=False)


@app.command(help=CHECK_HELP)
def check(
    repos: Annotated[Optional[list[Path]], typer.Argument(metavar="[REPO]...", help="Repos to check (default: .).")] = None,
    template: Annotated[
        Optional[str],
        typer.Option("--template", "-t", help="Fetch the template from here instead of the answers file's _src_path."),
    ] = None,
    jobs: JobsOption = None,
) -> None:
    from ._check import check as run_check

    suggestion = "flakewright update" + (f" --template {shlex.quote(template)}" if template else "")
    outcomes, stopped = _each_repo(
        repos or [Path(".")], lambda path: run_check(dest=path, template=template), jobs=jobs,
        report=lambda path, result: report_check(result, path=path, suggestion=suggestion),
        columns=CHECK_COLUMNS, row=check_row, states=CHECK_STATES,
    )
    if stopped is not None:
        raise _fail("flakewright: interrupted; check changes nothing", ExitCode.INTERRUPTED)
    if any(outcome is None or outcome.kind != "done" for outcome in outcomes):
        raise typer.Exit(ExitCode.USAGE)
    results = [outcome.result for outcome in outcomes if outcome is not None]
    update_available = any(r.update_available for r in results)
    drift = any(r.drift for r in results)
    raise typer.Exit((ExitCode.UPDATE_AVAILABLE if update_available else 0) + (ExitCode.DRIFT if drift else 0))


def _each_repo(
    paths: list[Path],
    work: Callable[[Path], Result],
    *,
    jobs: int | None,
    report: Callable[[Path, Result], None],
    columns: tuple[str, ...],
    row: Callable[[Path, Result], tuple[str, ...]],
    states: Mapping[str, str],
) -> tuple[list[Outcome | None], list[Path] | None]:
    """Run ``work`` on each repo. One repo: its report, then exit with its code. Several: each in a process of
    its own (see _fleet), each report as the repo ends, then a table (``row`` for a repo with a result, else its
    state by how it ended); returns how each ended and, after a signal, the repos that were running."""
    if len(paths) == 1:
        result = work(paths[0])
        report(paths[0], result)
        raise typer.Exit(int(result.exit_code))
    from ._fleet import default_jobs, run_each

    def done(outcome: Outcome) -> None:
        out.print(f"== {outcome.path}")
        if outcome.kind == "done":
            report(outcome.path, outcome.result)
        elif outcome.message:
            err.print(f"refused: {outcome.message}" if outcome.kind == "refused" else outcome.message, soft_wrap=True)

    def end(outcomes: list[Outcome | None]) -> None:
        table(columns, [
            row(path, outcome.result) if outcome is not None and outcome.kind == "done"
            else (str(path), *["-"] * (len(columns) - 2), states[outcome.kind if outcome else "not started"])
            for path, outcome in zip(paths, outcomes)
        ])

    return run_each(paths, work, jobs=jobs or default_jobs(), on_done=done, on_end=end)


@app.command(cls=backport_cli.CommitsThenPaths)
def backport(
    ctx: typer.Context,
    commits: Annotated[
        Optional[list[str]],
        typer.Argument(metavar="[COMMIT]... [-- PATH...]", help="Commits of the repo to send (default: those since the last update); after --, files to send instead (or to limit the commits to)."),
    ] = None,
    repo: Annotated[Path, typer.Option("--repo", "-C", help="The derived repo (default: .).")] = Path("."),
    template: Annotated[
        Optional[str],
        typer.Option("--template", "-t", help="Local git checkout of the template (default: the recorded source, when it is one)."),
    ] = None,
    branch: Annotated[
        Optional[str], typer.Option("--branch", help="Branch to create in the template checkout (default: backport/<repo name>).")
    ] = None,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Commit without asking (needed without a terminal).")] = False,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Show the template diff it would commit; change nothing.")] = False,
) -> None:
    """Send commits (or files) of a derived repo back to the template, as a commit on a new branch.

    Lists what it would send and asks first (or --yes). Edits to lines the template holds
    verbatim (inside any {% if %} the render took) are applied; edits to text Jinja produced
    (expressions, loops) are refused and shown with the template lines they came from; lock
    files are never sent, and a pyproject.toml change relocks the template's locks on the branch.

    \b
    Exit codes: 0 all sent, 1 sent with refusals (each with its reason), 2 bad usage or input
    (nothing changed), 3 failed (nothing committed)."""
    ask = backport_cli.asks(yes=yes, dry_run=dry_run)
    from ._backport import backport as run_backport

    result = run_backport(
        dest=repo, commits=commits or [], paths=backport_cli.paths(ctx), template=template, branch=branch,
        dry_run=dry_run, confirm=backport_cli.confirm if ask else None,
    )
    raise typer.Exit(backport_cli.finish(result, asked=ask))


def _recorded_source(dest: Path) -> str | None:
    from ._answers import read_answers

    try:
        return str(read_answers(dest.expanduser())["_src_path"])
    except FlakewrightError:
        return None


def _interrupt(signum: int, frame: object) -> None:
    """SIGTERM unwinds like Ctrl-C, so a half-made DEST is removed on the way out."""
    raise KeyboardInterrupt


def main() -> None:
    """Console entry point: click's standalone mode, with every failure one line (see ``Commands``)."""
    signal.signal(signal.SIGTERM, _interrupt)
    app()
