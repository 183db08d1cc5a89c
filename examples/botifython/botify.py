"""Botify tools: connect an API token, then export a project's analyses to CSV.

server.py calls ``setup()`` once and puts ``card()`` on the page. The token
lives in data/botify_token (mode 0600) and is never sent back to a page.
"""
from __future__ import annotations

import asyncio
import csv
import os
import re
import secrets
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
from fasthtml.common import (
    H3,
    A,
    Article,
    Button,
    Code,
    Div,
    Fieldset,
    FileResponse,
    Form,
    HtmxResponseHeaders,
    Input,
    Option,
    P,
    Response,
    Select,
)

APP_TITLE = "Botifython"
DEFAULT_API_BASE = "https://api.botify.com/v1"
ANALYSIS_COLUMNS = ("id", "slug", "name", "status", "date_launched", "date_finished")
MAX_ATTEMPTS = 5
MAX_RETRY_WAIT = 60.0
RECONNECT = "Botify rejected the saved token (401): paste a fresh token on the Botify card to reconnect."

Report = Callable[..., Awaitable[None]]
StartTask = Callable[..., Any]


class BotifyError(Exception):
    """A Botify problem, worded as one line the user can act on."""


class TokenRejected(BotifyError):
    """Botify answered 401: the token is wrong, expired or revoked."""


# --- Settings -----------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class _Settings:
    data_dir: Path
    start_task: StartTask

    @property
    def token_file(self) -> Path:
        return self.data_dir / "botify_token"

    @property
    def exports_dir(self) -> Path:
        return self.data_dir / "exports"


_settings: _Settings | None = None


def setup(rt: Callable, *, data_dir: Path, start_task: StartTask) -> None:
    """Register the Botify routes with the app's ``rt``; call once from server.py."""
    global _settings
    _settings = _Settings(data_dir=Path(data_dir), start_task=start_task)
    rt("/botify/connect", methods=["post"])(botify_connect)
    rt("/botify/disconnect", methods=["post"])(botify_disconnect)
    rt("/botify/projects", methods=["get"])(botify_projects)
    rt("/botify/export", methods=["post"])(botify_export)
    rt("/botify/exports/{stem}", methods=["get"])(botify_exports)


def settings() -> _Settings:
    if _settings is None:
        raise RuntimeError("botify.setup() has not been called")
    return _settings


def api_base() -> str:
    return os.environ.get("BOTIFY_API_BASE", DEFAULT_API_BASE).rstrip("/")


# --- Token storage ------------------------------------------------------------


def read_token() -> str | None:
    try:
        return settings().token_file.read_text(encoding="utf-8").strip() or None
    except FileNotFoundError:
        return None


def save_token(token: str) -> None:
    """Write the token atomically; the file is 0600 from the moment it exists."""
    path = settings().token_file
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f".{path.name}.{secrets.token_hex(4)}")
    fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as file:
            file.write(token)
        os.replace(partial, path)
    finally:
        partial.unlink(missing_ok=True)


def forget_token() -> None:
    settings().token_file.unlink(missing_ok=True)


def token_problem(token: str) -> str | None:
    if not token:
        return "Paste a Botify API token first."
    if not (token.isascii() and token.isprintable()) or any(c.isspace() for c in token):
        return "A Botify API token is one word of letters and digits; copy it again from your Botify account page."
    return None


def masked(token: str) -> str:
    return "••••" + token[-4:] if len(token) > 8 else "••••"


# --- Botify API ---------------------------------------------------------------


async def _no_log(line: str) -> None:
    pass


class BotifyApi:
    """GETs against the Botify API that retry 429 and 5xx answers with backoff.

    ``on_retry`` receives a line for every retry so a task can show the wait.
    BOTIFY_RETRY_SECONDS sets the first backoff step when Botify sends no Retry-After.
    """

    def __init__(self, token: str, *, on_retry: Callable[[str], Awaitable[None]] = _no_log):
        self.base = api_base()
        self._backoff = float(os.environ.get("BOTIFY_RETRY_SECONDS", "1"))
        self._on_retry = on_retry
        self._client = httpx.AsyncClient(
            headers={"Authorization": f"Token {token}", "Accept": "application/json"},
            timeout=30,
        )

    async def __aenter__(self) -> BotifyApi:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self._client.aclose()

    async def username(self) -> str:
        profile = await self.get(f"{self.base}/authentication/profile")
        try:
            return profile["data"]["username"]
        except (KeyError, TypeError):
            raise BotifyError("Botify's profile answer has no data.username; is BOTIFY_API_BASE right?") from None

    async def pages(self, path: str) -> AsyncIterator[dict]:
        """Yield each page of a paginated listing, following ``next`` to the end."""
        url: str | None = f"{self.base}/{path}"
        while url:
            # The token goes with every request, so never follow a link off the API.
            if not url.startswith(f"{self.base}/"):
                raise BotifyError(f"Botify's next page points outside {self.base}; stopped.")
            page = await self.get(url)
            if not isinstance(page, dict) or not isinstance(page.get("results"), list):
                raise BotifyError("Botify sent a page without a results list.")
            if not isinstance(page.get("next"), (str, type(None))):
                raise BotifyError("Botify sent a next page link that is not a URL.")
            yield page
            url = page.get("next")

    async def get(self, url: str) -> dict:
        for attempt in range(1, MAX_ATTEMPTS):
            response = await self._send(url)
            if not _busy(response):
                return _json(response)
            wait = _retry_wait(response, first_step=self._backoff * 2 ** (attempt - 1))
            await self._on_retry(
                f"Botify answered {response.status_code} {response.reason_phrase}; "
                f"retrying in {wait:g}s (attempt {attempt + 1} of {MAX_ATTEMPTS})"
            )
            await asyncio.sleep(wait)
        return _json(await self._send(url))

    async def _send(self, url: str) -> httpx.Response:
        try:
            return await self._client.get(url)
        except httpx.TransportError as exc:
            raise BotifyError(f"Could not reach Botify at {self.base} ({type(exc).__name__}).") from exc


def _busy(response: httpx.Response) -> bool:
    return response.status_code == 429 or response.is_server_error


def _retry_wait(response: httpx.Response, *, first_step: float) -> float:
    header = response.headers.get("Retry-After", "").strip()
    if header.isdigit():
        wait = float(header)
    else:
        try:
            wait = (parsedate_to_datetime(header) - datetime.now(UTC)).total_seconds()
        except (TypeError, ValueError):  # TypeError: a date without a zone cannot be compared to now
            wait = first_step
    return min(max(wait, 0.0), MAX_RETRY_WAIT)


def _json(response: httpx.Response) -> dict:
    if response.status_code == 401:
        raise TokenRejected(RECONNECT)
    if _busy(response):
        raise BotifyError(
            f"Botify kept answering {response.status_code} {response.reason_phrase} "
            f"after {MAX_ATTEMPTS} attempts; try again later."
        )
    if response.is_error:
        raise BotifyError(f"Botify answered {response.status_code} {response.reason_phrase} for {response.url.path}.")
    try:
        answer = response.json()
    except ValueError:
        raise BotifyError(f"Botify sent something that is not JSON for {response.url.path}.") from None
    if not isinstance(answer, dict):
        raise BotifyError(f"Botify sent an unexpected answer for {response.url.path}.")
    return answer


# --- Export task --------------------------------------------------------------


async def export_analyses(report: Report, *, project: str) -> Any:
    """Task: write every analysis of ``project`` to a CSV under data/exports."""
    token = read_token()
    if not token:
        raise BotifyError("Not connected to Botify: paste a token on the Botify card first.")
    done = total = 0

    async def log_retry(line: str) -> None:
        await report(done, total, line)

    async with BotifyApi(token, on_retry=log_retry) as api:
        username = await api.username()
        await report(done, total, f"Signed in to Botify as {username}")
        listing = f"analyses/{quote(username, safe='')}/{quote(project, safe='')}/light"
        with _export_file(project) as (path, writer):
            async for page in api.pages(listing):
                analyses = page["results"]
                writer.writerows([_cell(analysis.get(column)) for column in ANALYSIS_COLUMNS] for analysis in analyses)
                done += len(analyses)
                total = max(page.get("count") or 0, done)
                await report(done, total, f"Fetched {done} of {total} analyses")
    return download_link(path, rows=done)


@contextmanager
def _export_file(project: str) -> Iterator[tuple[Path, Any]]:
    """Yield a CSV writer; the file appears under its final name only when complete."""
    exports = settings().exports_dir
    exports.mkdir(parents=True, exist_ok=True)
    stem = re.sub(r"[^A-Za-z0-9_-]+", "-", project).strip("-") or "project"
    path = exports / f"{stem}-analyses-{datetime.now():%Y%m%d-%H%M%S}.csv"
    partial = exports / f".{path.name}.{secrets.token_hex(4)}"
    try:
        with partial.open("w", newline="", encoding="utf-8") as file:
            writer = csv.writer(file)
            writer.writerow(ANALYSIS_COLUMNS)
            yield path, writer
        partial.replace(path)
    finally:
        partial.unlink(missing_ok=True)


def export_problem(project: str) -> str | None:
    if not read_token():
        return "Connect a Botify token first."
    if not project:
        return "Choose a project first."
    return None


def _cell(value: object) -> str:
    text = "" if value is None else str(value)
    # Spreadsheets run cells that start like a formula, and analysis names are typed by users.
    return f"'{text}" if text.startswith(("=", "+", "-", "@")) else text


def export_path(stem: str) -> Path | None:
    """The finished export named ``stem``; None for anything else, including files still being written."""
    exports = settings().exports_dir.resolve()
    path = (exports / f"{stem}.csv").resolve()
    finished = path.parent == exports and not path.name.startswith(".") and path.is_file()
    return path if finished else None


# --- Components ---------------------------------------------------------------


def card(*, error: str = "", notice: str = "") -> Any:
    """The Botify card: connection state, token form and, once connected, projects."""
    token = read_token()
    return Article(
        H3("Botify"),
        connection_status(token),
        token_form(connected=bool(token)),
        message(error, alert=True) if error else None,
        message(notice) if notice else None,
        projects_loader() if token else None,
        id="botify",
    )


def connection_status(token: str | None) -> Any:
    if not token:
        return P(f"Connect {APP_TITLE} to Botify with an API token from your Botify account page.")
    return Div(
        P("Connected with token ", Code(masked(token))),
        Button("Disconnect", hx_post="/botify/disconnect", hx_target="#botify", hx_swap="outerHTML", cls="secondary"),
    )


def token_form(*, connected: bool) -> Any:
    return Form(
        Fieldset(
            Input(type="password", name="token", placeholder="Botify API token", autocomplete="off",
                  aria_label="Botify API token"),
            Button("Replace token" if connected else "Connect"),
            role="group",
        ),
        hx_post="/botify/connect",
        hx_target="#botify",
        hx_swap="outerHTML",
    )


def message(text: str, *, alert: bool = False) -> Any:
    return P(text, role="alert" if alert else "status", cls="botify-message")


def projects_loader() -> Any:
    return Div(
        Button("Load projects", hx_get="/botify/projects", hx_target="#botify-projects"),
        Div(id="botify-projects"),
    )


def project_picker(projects: list[dict]) -> Any:
    if not projects:
        return message("This Botify account has no projects.")
    return Form(
        Select(
            *(Option(project.get("name") or project["slug"], value=project["slug"]) for project in projects),
            name="project",
            aria_label="Botify project",
        ),
        Button("Export analyses to CSV"),
        Div(id="botify-export-message"),
        hx_post="/botify/export",
        hx_target="#task-list",
        hx_swap="afterbegin",
    )


def download_link(path: Path, *, rows: int) -> Any:
    return P(f"{rows} analyses exported: ", A(path.name, href=f"/botify/exports/{path.stem}", download=path.name))


# --- Routes -------------------------------------------------------------------


async def botify_connect(token: str = "") -> Any:
    token = token.strip()
    if problem := token_problem(token):
        return card(error=problem)
    try:
        async with BotifyApi(token) as api:
            username = await api.username()
    except TokenRejected:
        return card(error="Botify rejected that token; the saved connection is unchanged.")
    except BotifyError as exc:
        return card(error=f"{exc} The saved connection is unchanged.")
    save_token(token)
    return card(notice=f"Connected to Botify as {username}.")


def botify_disconnect() -> Any:
    forget_token()
    return card(notice="Disconnected: the token file was deleted.")


async def botify_projects() -> Any:
    token = read_token()
    if not token:
        return message("Connect a Botify token first.", alert=True)
    try:
        async with BotifyApi(token) as api:
            username = await api.username()
            listing = f"projects/{quote(username, safe='')}"
            projects = [project async for page in api.pages(listing) for project in page["results"]
                        if isinstance(project, dict) and isinstance(project.get("slug"), str)]
    except BotifyError as exc:
        return message(str(exc), alert=True)
    return project_picker(projects)


# async so start_task runs on the event-loop thread, where server.py keeps its database connection.
async def botify_export(req, project: str = "") -> Any:
    project = project.strip()
    if problem := export_problem(project):
        return message(problem, alert=True), *HtmxResponseHeaders(retarget="#botify-export-message", reswap="innerHTML")
    return settings().start_task(
        req, title=f"Export Botify analyses of {project}", fn=export_analyses, params={"project": project}
    )


def botify_exports(stem: str) -> Any:
    path = export_path(stem)
    if path is None:
        return Response("No such export.", status_code=404)
    return FileResponse(path, media_type="text/csv", filename=path.name)
