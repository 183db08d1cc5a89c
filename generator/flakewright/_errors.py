"""The one exception users see, every exit code the CLI uses, and copier's failures translated into it.

copier loads only when copier_errors runs, so `flakewright --help` never imports it.
"""
from __future__ import annotations

import io
import re
import warnings
from collections.abc import Iterator
from contextlib import contextmanager, redirect_stderr
from enum import IntEnum


class ExitCode(IntEnum):
    """What ``flakewright`` exits with. ``check``'s 10 and 20 add up: 30 is both."""

    OK = 0
    CONFLICTS = 1  # update left conflicts
    REFUSED = 1  # backport sent what it could; some edits were refused, each with its reason
    USAGE = 2  # bad usage or answers, or a refused operation (a dirty repo, say)
    FAILED = 3  # backport failed (an edit did not reproduce, relocking failed): nothing was committed
    UPDATE_AVAILABLE = 10
    DRIFT = 20
    INTERNAL = 70
    INTERRUPTED = 130


USAGE = ExitCode.USAGE


class FlakewrightError(Exception):
    """A problem the user can fix; ``str()`` is a one-line message saying how.

    ``exit_code`` is what the CLI exits with: 2 for bad usage or answers unless a
    command documents another code.
    """

    def __init__(self, message: str, *, exit_code: int = ExitCode.USAGE) -> None:
        super().__init__(" ".join(message.split()))
        self.exit_code = exit_code


class Interrupted(KeyboardInterrupt):
    """Ctrl-C or SIGTERM that came after a command's change landed; ``str()`` says what landed.

    A plain KeyboardInterrupt means the command changed nothing (see ``_landing``).
    """


@contextmanager
def copier_errors(*, action: str, refs: str = "--template") -> Iterator[None]:
    """Translate anything copier raises while doing ``action`` into one line.

    ``refs`` names the options that pick the template and its ref for this command.

    Copier's own stderr chatter (warnings, "using HEAD as ref") is swallowed:
    what matters reaches the user as the one-line error.
    """
    from copier.errors import CopierError, InteractiveSessionError, TaskError, UnsafeTemplateError, UserMessageError
    from plumbum import ProcessExecutionError

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
            message = first_line(exc)
            if re.match(r"(Validation error|Invalid choice) for ", message):
                message = re.sub(r"^Validation error for question '[^']+': ", "", message)
                raise FlakewrightError(f"bad answer: {message}") from None
            raise FlakewrightError(f"{action} failed: {message}") from None
        except UserMessageError as exc:
            raise FlakewrightError(f"{action} failed: {first_line(exc)}") from None
        except ProcessExecutionError as exc:
            detail = first_line(exc.stderr) or f"{exc.argv[0]} exited with {exc.retcode}"
            raise FlakewrightError(f"{action} failed: {detail}; check {refs}") from None
        except (CopierError, OSError) as exc:
            raise FlakewrightError(f"{action} failed: {first_line(exc)}") from None


def first_line(value: object) -> str:
    lines = [line.strip() for line in str(value).splitlines() if line.strip()]
    for line in lines:
        if line.startswith(("fatal:", "error:")):
            return line
    return lines[0] if lines else ""
