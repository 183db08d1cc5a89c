"""Calls into copier and git, with copier's failures turned into FlakewrightError."""
from __future__ import annotations

import io
import re
import subprocess
import sys
import warnings
from collections.abc import Iterator
from contextlib import contextmanager, redirect_stderr
from pathlib import Path

from copier.errors import (
    CopierError,
    InteractiveSessionError,
    TaskError,
    UnsafeTemplateError,
    UserMessageError,
)
from plumbum import ProcessExecutionError
from rich.console import Console

from ._errors import FlakewrightError

@contextmanager
def copier_errors(*, action: str, refs: str = "--template") -> Iterator[None]:
    """Translate anything copier raises while doing ``action`` into one line.

    ``refs`` names the options that pick the template and its ref for this command.

    Copier's own stderr chatter (warnings, "using HEAD as ref") is swallowed:
    what matters reaches the user as the one-line error.
    """
    with warnings.catch_warnings(), redirect_stderr(io.StringIO()):
        warnings.simplefilter("ignore")
        try:
            yield
        except UnsafeTemplateError as exc:
            features = str(exc).split(":", 1)[-1].split(".")[0].strip()
            raise FlakewrightError(
                f"the template wants to run {features}; read copier.yml, then re-run with --trust"
            ) from None
        except TaskError as exc:
            raise FlakewrightError(f"{action} failed: a template task exited with {exc.returncode}") from None
        except InteractiveSessionError:
            raise FlakewrightError(f"{action} needs answers but there is no terminal; pass --defaults") from None
        except ValueError as exc:
            message = _first_line(exc)
            if re.match(r"(Validation error|Invalid choice) for ", message):
                message = re.sub(r"^Validation error for question '[^']+': ", "", message)
                raise FlakewrightError(f"bad answer: {message}") from None
            raise FlakewrightError(f"{action} failed: {message}") from None
        except UserMessageError as exc:
            raise FlakewrightError(f"{action} failed: {_first_line(exc)}") from None
        except ProcessExecutionError as exc:
            detail = _first_line(exc.stderr) or f"{exc.argv[0]} exited with {exc.retcode}"
            raise FlakewrightError(f"{action} failed: {detail}; check {refs}") from None
        except (CopierError, OSError) as exc:
            raise FlakewrightError(f"{action} failed: {_first_line(exc)}") from None


def _first_line(value: object) -> str:
    lines = [line.strip() for line in str(value).splitlines() if line.strip()]
    for line in lines:
        if line.startswith(("fatal:", "error:")):
            return line
    return lines[0] if lines else ""


@contextmanager
def status(message: str, *, enabled: bool = True) -> Iterator[None]:
    """Show a spinner on stderr while work runs.

    Silent when stderr is not a terminal, or when copier may prompt (``enabled=False``).
    """
    if not enabled or not sys.stderr.isatty():
        yield
        return
    with Console(file=sys.stderr).status(message):
        yield


def wrap_validation_messages() -> None:
    """Let a prompt's validation message wrap instead of being cut at the terminal's width.

    copier asks through questionary, whose prompt_toolkit session shows the
    message in a one-row window. Patched once per process, before copier asks;
    tests/test_cli.py pins the prompt_toolkit shape this relies on.
    """
    from prompt_toolkit.filters import has_validation_error
    from prompt_toolkit.layout import ConditionalContainer, Window
    from prompt_toolkit.widgets import toolbars

    original = toolbars.ValidationToolbar.__init__
    if getattr(original, "wraps", False):
        return

    def __init__(self: toolbars.ValidationToolbar, show_position: bool = False) -> None:
        original(self, show_position)
        self.container = ConditionalContainer(content=Window(self.control, wrap_lines=True), filter=has_validation_error)

    __init__.wraps = True  # type: ignore[attr-defined]
    toolbars.ValidationToolbar.__init__ = __init__  # type: ignore[method-assign]


def update_data(dest: Path) -> tuple[bool, str, str]:
    """copier's own check of a repo against its template's tags: (newer?, current, latest)."""
    from copier import _main  # copier's private API, used here only; tests/test_check.py pins it

    return _main.get_update_data(dst_path=dest)


def git(*args: str, cwd: Path, check: bool = True) -> str:
    """Run git in ``cwd`` and return its stdout."""
    result = subprocess.run(
        ["git", *args], cwd=cwd, capture_output=True, text=True, check=False
    )
    if check and result.returncode:
        raise FlakewrightError(
            f"git {args[0]} failed in {cwd}: {_first_line(result.stderr) or result.returncode}"
        )
    return result.stdout
