"""The ``flakewright`` command line."""
from __future__ import annotations

import os
import sys
from enum import Enum
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.console import Console

from . import __version__
from ._check import check as run_check
from ._data import parse_data
from ._errors import USAGE, FlakewrightError
from ._pristine import read_answers
from ._render import new as run_new
from ._source import default_template, questions
from ._update import update as run_update
from ._variants import VARIANTS

try:  # typer >= 0.20 vendors click
    from typer._click import exceptions as click_exceptions
except ImportError:  # pragma: no cover - older typer uses click itself
    from click import exceptions as click_exceptions

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

app = typer.Typer(
    name="flakewright",
    help="Render and update Nix + Python repos from the flakewright copier template.",
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)
out = Console(highlight=False, soft_wrap=True)
err = Console(stderr=True, highlight=False, soft_wrap=True)


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
    src = template or default_template()
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
    dest: Annotated[Path, typer.Argument(help="Repo to update.")] = Path("."),
    to: Annotated[Optional[str], typer.Option("--to", help="Template git ref to update to (default: newest release tag).")] = None,
    conflict: Annotated[
        ConflictMode, typer.Option("--conflict", help="Conflicts as inline markers or as .rej files.")
    ] = ConflictMode.inline,
    data: DataOption = None,
    trust: TrustOption = False,
    template: Annotated[
        Optional[str],
        typer.Option("--template", "-t", help="Fetch the template from here instead of the answers file's _src_path (e.g. a local clone)."),
    ] = None,
) -> None:
    """Update DEST to a newer template version, merging your edits.

    Exits 1 when conflicts remain (resolve them, then commit)."""
    src = template or _recorded_source(dest)
    answers = parse_data(data or (), questions=questions(src) if src else None)
    result = run_update(
        dest=dest, to=to, conflict=conflict.value, data=answers, trust=trust, template=template
    )
    out.print(f"Updated {result.from_version} -> {result.to_version}")
    _list("changed", result.changed)
    _list("merged with your edits", result.merged)
    _list("conflicts", result.conflicts)
    if result.conflicts:
        hint = "markers <<<<<<< / >>>>>>>" if conflict is ConflictMode.inline else ".rej files"
        err.print(f"{len(result.conflicts)} file(s) hold conflicts ({hint}); resolve them, then commit")
        raise typer.Exit(1)
    if result.changed:
        out.print("Review with `git diff`, then commit.")


@app.command(help=CHECK_HELP)
def check(
    dest: Annotated[Path, typer.Argument(help="Repo to check.")] = Path("."),
    template: Annotated[
        Optional[str],
        typer.Option("--template", "-t", help="Fetch the template from here instead of the answers file's _src_path."),
    ] = None,
) -> None:
    result = run_check(dest=dest, template=template)
    if result.update_available:
        out.print(f"update available: {result.current_version} -> {result.latest_version} (run `flakewright update`)")
    else:
        out.print(f"up to date: {result.current_version}")
    if result.drift:
        out.print(f"drift: {len(result.drift)} file(s) differ from the last render")
        for path in result.drift:
            out.print(f"  {path}")
    else:
        out.print("no drift: generated files match the last render")
    raise typer.Exit(result.exit_code)


@app.command()
def backport(
    dest: Annotated[Path, typer.Argument(help="Derived repo whose edits to template files go back to the template.")] = Path("."),
    template: Annotated[
        Optional[str],
        typer.Option("--template", "-t", help="Local git checkout of the template (default: the recorded source, when it is one)."),
    ] = None,
    branch: Annotated[
        Optional[str], typer.Option("--branch", help="Branch to create in the template checkout (default: backport/<repo name>).")
    ] = None,
) -> None:
    """Turn DEST's edits to generated files into a commit on a new branch of the template.

    Edits to lines the template holds verbatim (inside any {% if %} the render took) are
    applied; edits to text Jinja produced (expressions, loops) are refused and shown with
    the template lines they came from. Exits 1 when anything was refused."""
    from ._backport import backport as run_backport

    result = run_backport(dest=dest, template=template, branch=branch)
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
                out.print(f"    - {line.rstrip()}")
            for line in hunk.added:
                out.print(f"    + {line.rstrip()}")
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
    raise typer.Exit(result.exit_code)


def _recorded_source(dest: Path) -> str | None:
    try:
        return str(read_answers(dest.expanduser())["_src_path"])
    except FlakewrightError:
        return None


def _list(label: str, paths: list[str]) -> None:
    if paths:
        out.print(f"{label} ({len(paths)}):")
        for path in paths:
            out.print(f"  {path}")


def main() -> None:
    """Console entry point: one-line errors, never a traceback."""
    try:
        code = app(standalone_mode=False)
    except FlakewrightError as exc:
        err.print(f"flakewright: error: {exc}", soft_wrap=True)
        sys.exit(exc.exit_code)
    except typer.Exit as exc:
        sys.exit(exc.exit_code)
    except typer.Abort:
        err.print("flakewright: aborted")
        sys.exit(130)
    except click_exceptions.NoArgsIsHelpError as exc:
        out.print(exc.ctx.get_help() if exc.ctx else "")
        sys.exit(0)
    except click_exceptions.ClickException as exc:
        message = " ".join(exc.format_message().split())
        err.print(f"flakewright: error: {message} (see flakewright --help)", soft_wrap=True)
        sys.exit(USAGE)
    except KeyboardInterrupt:
        err.print("flakewright: interrupted")
        sys.exit(130)
    except Exception as exc:
        if os.environ.get("FLAKEWRIGHT_DEBUG"):
            raise
        err.print(f"flakewright: internal error: {type(exc).__name__}: {exc} (set FLAKEWRIGHT_DEBUG=1 for details)", soft_wrap=True)
        sys.exit(70)
    sys.exit(code if isinstance(code, int) else 0)
