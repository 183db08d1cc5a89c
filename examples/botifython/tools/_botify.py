"""What the Botify card (addons/botify.py) and the botify_export tool share: files, the token, the API client and
the checks on what Botify sends.

Plain functions and classes that take what they need as arguments; importing the module does nothing else. Its
name starts with `_`, so it is a helper of the tools folder, never a tool itself.
"""
from __future__ import annotations

import csv
import fcntl
import itertools
import json
import os
import re
import secrets
import stat
import time
from collections.abc import Callable, Iterable, Iterator
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from pathlib import Path
from typing import IO, Any

import httpx

from toolbox import spreadsheet_text

DEFAULT_API_BASE = "https://api.botify.com/v1"
ANALYSIS_COLUMNS = ("id", "slug", "name", "status", "date_launched", "date_finished")
MAX_ATTEMPTS = 5
MAX_RETRY_WAIT = 60.0
MAX_PAGES = 10_000
TIMEOUT = 30.0
# A partial younger than this may belong to a writer that has created it but not locked it yet.
PARTIAL_GRACE_SECONDS = 10.0
PARTIAL_NAME = re.compile(r"\..+\.[0-9a-f]{8}")
NOT_CONNECTED = "Not connected to Botify: paste a token on the Botify card first."
RECONNECT = "Botify rejected the saved token (401): paste a fresh token on the Botify card to reconnect."


class BotifyError(Exception):
    """A Botify problem, worded as one line the user can act on."""


class TokenRejected(BotifyError):
    """Botify answered 401: the token is wrong, expired or revoked."""


def api_base() -> str:
    return os.environ.get("BOTIFY_API_BASE", DEFAULT_API_BASE).rstrip("/")


# --- Files --------------------------------------------------------------------


class PartialFile:
    """A hidden, locked, 0600 file beside ``final``, open for writing, that takes a final name only when published.

    Leaving the ``with`` block unpublished deletes it. The lock tells ``tidy`` in another process that a live
    writer still owns the file; the kernel drops it if the writer is killed.
    """

    def __init__(self, final: Path):
        self.final = final
        self.path = final.with_name(f".{final.name}.{secrets.token_hex(4)}")

    def __enter__(self) -> PartialFile:
        fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        self.file = os.fdopen(fd, "w", newline="", encoding="utf-8")
        fcntl.flock(self.file, fcntl.LOCK_EX)
        return self

    def __exit__(self, *exc_info: object) -> None:
        try:
            self.path.unlink(missing_ok=True)
        finally:
            self.file.close()

    def replace(self) -> Path:
        """Put the finished file in place of ``final``."""
        self._sync()
        os.replace(self.path, self.final)
        return self.final

    def publish_unique(self) -> Path:
        """Give the finished file ``final``'s name, or ``<stem>-2<suffix>`` and so on when that one is taken."""
        self._sync()
        for n in itertools.count(1):
            path = self.final if n == 1 else self.final.with_stem(f"{self.final.stem}-{n}")
            try:
                os.link(self.path, path)  # unlike a rename, never replaces another file
                return path
            except FileExistsError:
                continue

    def _sync(self) -> None:
        self.file.flush()
        os.fsync(self.file.fileno())


def abandoned(path: Path) -> bool:
    """True when no live process writes ``path``: nobody holds its lock and it is past the grace period."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except OSError:
        return False
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode) or time.time() - info.st_mtime < PARTIAL_GRACE_SECONDS:
            return False
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        return True
    except BlockingIOError:
        return False
    finally:
        os.close(fd)


def narrow(path: Path, mode: int) -> None:
    """Take away any permission beyond ``mode``; never add one."""
    try:
        info = path.lstat()
    except FileNotFoundError:
        return
    current = stat.S_IMODE(info.st_mode)
    if not stat.S_ISLNK(info.st_mode) and current & ~mode:
        path.chmod(current & mode)


def tidy(partials: Iterable[Path], *, private: Iterable[tuple[Path, int]]) -> None:
    """Delete the partials among ``partials`` that killed writers left, and narrow each private path to its mode."""
    for path in partials:
        if PARTIAL_NAME.fullmatch(path.name) and abandoned(path):
            path.unlink(missing_ok=True)
    for path, mode in private:
        narrow(path, mode)


# --- Token --------------------------------------------------------------------


def read_token(token_file: Path) -> str | None:
    try:
        return token_file.read_text(encoding="utf-8").strip() or None
    except FileNotFoundError:
        return None


def save_token(token_file: Path, token: str) -> None:
    """Write the token atomically; the file is 0600 from the moment it exists."""
    token_file.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    with PartialFile(token_file) as partial:
        partial.file.write(token)
        partial.replace()


def token_problem(token: str) -> str | None:
    if not token:
        return "Paste a Botify API token first."
    if not (token.isascii() and token.isprintable()) or any(c.isspace() for c in token):
        return "A Botify API token is one word of letters and digits; copy it again from your Botify account page."
    return None


def masked(token: str) -> str:
    return "••••" + token[-4:] if len(token) > 8 else "••••"


# --- What Botify sends --------------------------------------------------------


def shown(value: object, limit: int = 60) -> str:
    """``value`` as Botify sent it: JSON on one line, ASCII only, cut to ``limit`` characters."""
    try:
        text = json.dumps(value)
    except RecursionError:
        text = "(nested too deeply to show)"
    return text if len(text) <= limit else text[: limit - 1] + "…"


def checked_page(page: dict) -> dict:
    """``page`` if it is a listing page: a ``results`` list, a URL or null ``next``, a count of 0 or more if any."""
    if "results" not in page:
        raise BotifyError("Botify sent a page without a results list.")
    if not isinstance(page["results"], list):
        raise BotifyError(f"Botify sent a page whose results are {shown(page['results'])}, not a list.")
    if not isinstance(page.get("next"), str | None):
        raise BotifyError(f"Botify sent a next link that is not a URL: {shown(page['next'])}.")
    count = page.get("count")
    if count is not None and (type(count) is not int or count < 0):
        raise BotifyError(f"Botify sent a count of {shown(count)}; expected a whole number, 0 or more.")
    return page


def analysis_row(analysis: object) -> list:
    """The CSV cells of one analysis, in ANALYSIS_COLUMNS order, formula-like text disarmed by the app's one escaper
    (toolbox.spreadsheet_text); a field Botify left out is an empty cell."""
    if not isinstance(analysis, dict):
        raise BotifyError(f"Botify sent an analysis that is not an object: {shown(analysis)}.")
    values = [analysis.get(column) for column in ANALYSIS_COLUMNS]
    for column, value in zip(ANALYSIS_COLUMNS, values):
        if isinstance(value, dict | list):
            raise BotifyError(f"Botify sent an analysis whose {column} is {shown(value)}, not a single value.")
    return [spreadsheet_text(value) for value in values]


def csv_writer(file: IO[str], header: Iterable[str]) -> Any:
    """A CSV writer that quotes every field, as OWASP asks, after writing ``header``."""
    writer = csv.writer(file, quoting=csv.QUOTE_ALL)
    writer.writerow(header)
    return writer


def export_name(project: str, when: datetime) -> str:
    """A file name for an export of ``project``: safe characters only, and short enough for any file system."""
    stem = re.sub(r"[^A-Za-z0-9_-]+", "-", project).strip("-")[:80] or "project"
    return f"{stem}-analyses-{when:%Y%m%d-%H%M%S}.csv"


# --- Botify API ---------------------------------------------------------------

# Failures after the request went out: the same GET may well succeed again. A refused or timed-out
# connect is not among them, so a wrong BOTIFY_API_BASE says so at once instead of after the backoff.
BROKEN_CONNECTION = (
    httpx.ReadError, httpx.WriteError, httpx.CloseError, httpx.RemoteProtocolError, httpx.ReadTimeout,
    httpx.WriteTimeout,
)


def busy(response: httpx.Response) -> bool:
    return response.status_code == 429 or response.is_server_error


def retry_wait(response: httpx.Response, *, first_step: float) -> float:
    header = response.headers.get("Retry-After", "").strip()
    if header.isdigit():
        wait = float(header)
    else:
        try:
            wait = (parsedate_to_datetime(header) - datetime.now(UTC)).total_seconds()
        except (TypeError, ValueError):  # TypeError: a date without a zone cannot be compared to now
            wait = first_step
    return min(max(wait, 0.0), MAX_RETRY_WAIT)


def json_object(response: httpx.Response) -> dict:
    """The JSON object Botify answered with; a BotifyError saying what came instead."""
    if response.status_code == 401:
        raise TokenRejected(RECONNECT)
    if response.is_error:
        raise BotifyError(f"Botify answered {response.status_code} {response.reason_phrase} for {response.url.path}.")
    try:
        answer = response.json()
    except ValueError:
        raise BotifyError(f"Botify sent something that is not JSON for {response.url.path}.") from None
    except RecursionError:
        raise BotifyError(f"Botify sent JSON nested too deeply to read for {response.url.path}.") from None
    if not isinstance(answer, dict):
        raise BotifyError(
            f"Botify sent something other than a JSON object for {response.url.path}: {shown(answer)}."
        )
    return answer


def _no_log(line: str) -> None:
    pass


class BotifyApi:
    """GETs against the Botify API that retry 429 and 5xx answers and broken connections with backoff.

    ``on_retry`` receives a line for every retry so a tool can show the wait.
    BOTIFY_RETRY_SECONDS sets the first backoff step when Botify sends no Retry-After.
    """

    def __init__(self, token: str, *, on_retry: Callable[[str], None] = _no_log):
        self.base = api_base()
        self._backoff = float(os.environ.get("BOTIFY_RETRY_SECONDS", "1"))
        self._on_retry = on_retry
        self._client = httpx.Client(
            headers={"Authorization": f"Token {token}", "Accept": "application/json"},
            timeout=TIMEOUT,
        )

    def __enter__(self) -> BotifyApi:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._client.close()

    def get(self, url: str) -> dict:
        """The JSON object at ``url``, after up to MAX_ATTEMPTS tries; a BotifyError saying why when there is none."""
        for attempt in range(1, MAX_ATTEMPTS + 1):
            first_step = self._backoff * 2 ** (attempt - 1)
            try:
                response = self._client.get(url)
            except BROKEN_CONNECTION as exc:
                problem, wait = f"Botify's connection broke ({type(exc).__name__})", min(first_step, MAX_RETRY_WAIT)
            except (httpx.HTTPError, httpx.InvalidURL) as exc:
                raise BotifyError(f"Could not reach Botify at {self.base} ({type(exc).__name__}).") from exc
            else:
                if not busy(response):
                    return json_object(response)
                problem = f"Botify answered {response.status_code} {response.reason_phrase}"
                wait = retry_wait(response, first_step=first_step)
            if attempt == MAX_ATTEMPTS:
                break
            self._on_retry(f"{problem}; retrying in {wait:g}s (attempt {attempt + 1} of {MAX_ATTEMPTS})")
            time.sleep(wait)
        raise BotifyError(f"{problem}; gave up after {MAX_ATTEMPTS} attempts, try again later.")

    def username(self) -> str:
        profile = self.get(f"{self.base}/authentication/profile")
        data = profile.get("data")
        username = data.get("username") if isinstance(data, dict) else None
        if not isinstance(username, str) or not username:
            raise BotifyError(
                f"Botify's profile answer has no usable data.username (got {shown(username)}); "
                "is BOTIFY_API_BASE right?"
            )
        return username

    def pages(self, path: str) -> Iterator[dict]:
        """Yield each page of a paginated listing, checked by ``checked_page``, following ``next`` to the end.

        A ``next`` link back to a page already sent, or a listing longer than MAX_PAGES, stops with a BotifyError.
        """
        url: str | None = f"{self.base}/{path}"
        seen: set[str] = set()
        while url:
            # The token goes with every request, so never follow a link off the API.
            if not url.startswith(f"{self.base}/"):
                raise BotifyError(f"Botify's next page points outside {self.base}; stopped.")
            if url in seen:
                raise BotifyError(
                    f"Botify's next link points back to a page it already sent; stopped after {len(seen)} pages."
                )
            if len(seen) == MAX_PAGES:
                raise BotifyError(f"Botify's listing goes on past {MAX_PAGES} pages; stopped.")
            seen.add(url)
            page = checked_page(self.get(url))
            yield page
            url = page.get("next")
