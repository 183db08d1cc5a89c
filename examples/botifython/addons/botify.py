"""The Botify card: connect an API token, load the account's projects and export one with the botify_export tool.

The app adds ``router`` (routes under /botify) and shows ``card()``. The token lives in data/botify_token (0600)
and never goes back to a page. Importing this module deletes the partial files killed writers left and narrows
botify's files to 0600 (folders 0700).
"""
from __future__ import annotations

from pathlib import Path
from typing import Any
from urllib.parse import quote

from fasthtml.common import (
    H3,
    APIRouter,
    Article,
    Button,
    Code,
    Div,
    Fieldset,
    FileResponse,
    Form,
    Input,
    Option,
    P,
    Response,
    Select,
)

from core import hidden
from settings import DATA

with hidden("rich"):  # httpx, under tools._botify, imports its command-line client when rich is installed: 0.1 s
    from tools._botify import BotifyApi, BotifyError, TokenRejected, masked, read_token, save_token, tidy, token_problem

APP_TITLE = "Botifython"
TOKEN_FILE = DATA / "botify_token"
# Where exports went before they became runs of the botify_export tool; older task rows still link here.
OLD_EXPORTS = DATA / "exports"
OUTPUTS = DATA / "outputs"
EXPORT_TOOL = "botify_export"

router = APIRouter(prefix="/botify")

tidy(
    [*DATA.glob(f".{TOKEN_FILE.name}.*"), *OLD_EXPORTS.glob(".*"), *OUTPUTS.glob("*/.*-analyses-*.csv.*")],
    private=[(TOKEN_FILE, 0o600), (OLD_EXPORTS, 0o700), *((path, 0o600) for path in OLD_EXPORTS.glob("*.csv"))],
)


# --- Components ---------------------------------------------------------------


def message(text: str, *, alert: bool = False) -> Any:
    return P(text, role="alert" if alert else "status", cls="botify-message")


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


def projects_loader() -> Any:
    return Div(
        Button("Load projects", hx_get="/botify/projects", hx_target="#botify-projects"),
        Div(id="botify-projects"),
    )


def card(*, error: str = "", notice: str = "") -> Any:
    """The Botify card: connection state, token form and, once connected, projects."""
    token = read_token(TOKEN_FILE)
    return Article(
        H3("Botify"),
        connection_status(token),
        token_form(connected=bool(token)),
        message(error, alert=True) if error else None,
        message(notice) if notice else None,
        projects_loader() if token else None,
        id="botify",
    )


def project_label(project: dict) -> str:
    name = project.get("name")
    return name if isinstance(name, str) and name.strip() else project["slug"]


def project_picker(projects: list[dict]) -> Any:
    """A run of the export tool for the chosen project, added to the task list like any other tool run."""
    if not projects:
        return message("This Botify account has no projects.")
    return Form(
        Select(
            *(Option(project_label(project), value=project["slug"]) for project in projects),
            name="project",
            aria_label="Botify project",
        ),
        Button("Export analyses to CSV"),
        hx_post=f"/tools/{EXPORT_TOOL}",
        hx_target="#task-list",
        hx_swap="afterbegin",
    )


# --- Routes -------------------------------------------------------------------
# Plain `def`: they wait on Botify and the disk, so FastHTML runs them in its thread pool, off the event loop.


@router.post("/connect")
def botify_connect(token: str = "") -> Any:
    token = token.strip()
    if problem := token_problem(token):
        return card(error=problem)
    try:
        with BotifyApi(token) as api:
            username = api.username()
    except TokenRejected:
        return card(error="Botify rejected that token; the saved connection is unchanged.")
    except BotifyError as exc:
        return card(error=f"{exc} The saved connection is unchanged.")
    save_token(TOKEN_FILE, token)
    return card(notice=f"Connected to Botify as {username}.")


@router.post("/disconnect")
def botify_disconnect() -> Any:
    TOKEN_FILE.unlink(missing_ok=True)
    return card(notice="Disconnected: the token file was deleted.")


@router.get("/projects")
def botify_projects() -> Any:
    token = read_token(TOKEN_FILE)
    if not token:
        return message("Connect a Botify token first.", alert=True)
    try:
        with BotifyApi(token) as api:
            listing = f"projects/{quote(api.username(), safe='')}"
            projects = [project for page in api.pages(listing) for project in page["results"]
                        if isinstance(project, dict) and isinstance(project.get("slug"), str) and project["slug"]]
    except BotifyError as exc:
        return message(str(exc), alert=True)
    return project_picker(projects)


def old_export(stem: str) -> Path | None:
    """The finished export named ``stem`` in OLD_EXPORTS; None for anything else, including files being written."""
    folder = OLD_EXPORTS.resolve()
    path = (folder / f"{stem}.csv").resolve()
    return path if path.parent == folder and not path.name.startswith(".") and path.is_file() else None


@router.get("/exports/{stem}")
def botify_exports(stem: str) -> Any:
    path = old_export(stem)
    if path is None:
        return Response("No such export.", status_code=404)
    return FileResponse(path, media_type="text/csv", filename=path.name)
