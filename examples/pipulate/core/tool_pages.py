"""The tools under tools/ as pages: a link to each, a form per tool, runs started from it and run again.

Every public function defined in tools/*.py, and every notebook there with a cell tagged `parameters`, is a tool
(the toolbox package reads them). A run is a task whose work happens in a child process: a sync tool, a tool that
never reports, or one that crashes holds up no other tab, and Cancel can always end it.
"""
import json
import os
import re
import secrets
import shutil
import threading
import time
from contextlib import suppress
from functools import partial
from pathlib import Path
from urllib.parse import quote

import anyio
from fasthtml.common import *
from starlette.datastructures import UploadFile

import toolbox
from toolbox.notebook_form import tool_name
from core.auth import current_user
from core.db import OUTPUTS, UPLOADS, Profile
from core.profiles import current_profile, is_upload
from core.security import notice
from core.task_rows import TaskRow, UnknownTask, dom_id
from core.tasks import TaskList, launch, new_task, task_of
from core.ui import Error, Page
from settings import JUPYTER, TITLE, TOOLS_DIR

KEEP_UPLOADS_DAYS = 30  # after the last run that used it, an upload is deleted; a run of it then asks for it again

router = APIRouter()


class Toolbox:
    """The tools under tools/, and the files there that are broken, found again once a file there changes.
    Finding them imports the user's modules, which may be slow: call it from a plain `def` handler."""

    def __init__(self, folder: Path):
        self.folder, self.lock = folder, threading.Lock()
        self.stamp: list | None = None
        self.found: tuple[dict[str, toolbox.Tool], list[toolbox.Broken]] = ({}, [])

    def current(self) -> tuple[dict[str, toolbox.Tool], list[toolbox.Broken]]:
        with self.lock:
            if (stamp := self.stamps()) != self.stamp:
                self.found, self.stamp = toolbox.discover(self.folder, jupyter=JUPYTER), stamp
            return self.found

    def tool(self, name: str) -> toolbox.Tool | None:
        return self.current()[0].get(name)

    def stamps(self) -> list[tuple[str, int, int]]:
        """Each file's name, time and size. Bytecode and hidden files (an editor's, JupyterLab's checkpoints) are
        not the tools: a run writing __pycache__ would otherwise make the next page read every tool again."""
        found = []
        for path in self.folder.glob("[!.]*"):
            if path.name == "__pycache__":
                continue
            with suppress(FileNotFoundError):  # removed while we looked
                stat = path.stat()
                found.append((path.name, stat.st_mtime_ns, stat.st_size))
        return sorted(found)


TOOLS = Toolbox(TOOLS_DIR)


def safe_name(name: str) -> str:
    """A browser's file name reduced to letters, digits, '.', '-' and '_', so it cannot leave its folder or hide."""
    base = re.sub(r"[^\w.-]+", "_", name.replace("\\", "/").rsplit("/", 1)[-1]).lstrip(".")
    return base[-100:] or "upload"


def save_upload(upload: UploadFile) -> Path:
    """The upload written to data/uploads/ under a name no other upload has, readable by this user only. Uploads
    older than KEEP_UPLOADS_DAYS are deleted first: nothing else would ever empty the folder."""
    prune_uploads(time.time() - KEEP_UPLOADS_DAYS * 86400)
    path = UPLOADS / f"{secrets.token_hex(8)}-{safe_name(upload.filename or '')}"
    with os.fdopen(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), "wb") as out:
        shutil.copyfileobj(upload.file, out)
    return path


def prune_uploads(before: float) -> None:
    for path in UPLOADS.iterdir():
        with suppress(FileNotFoundError):  # deleted by another request meanwhile
            if path.stat().st_mtime < before:
                path.unlink()


def uploads_of(tool: toolbox.Tool, params: dict) -> dict[str, Path]:
    """The uploads these answers name, by field label."""
    return {field.label: Path(params[field.name]) for field in tool.fields
            if widget(field) == "file" and params.get(field.name)}


def file_url(task_id: int, name: str) -> str:
    return f"/tasks/{task_id}/files/{quote(name)}"


def start_tool(req, tool: toolbox.Tool, params: dict):
    """Start a run of the tool, in a child process whose working folder is data/outputs/<task id>/."""
    task = new_task(req, title=tool.title, kind=f"tool:{tool.name}", params=params)

    async def work(report) -> Safe:
        return Safe(await toolbox.run_tool(tool, params, report=report, outputs=OUTPUTS / str(task.id),
                                           download_url=partial(file_url, task.id)))

    launch(task, work, user=current_user(req))
    return TaskRow(task)


def run_form(req, name: str, form) -> tuple | FT:
    """Start a run from the tool's submitted form; or, when an answer does not fit, the form again with a line
    for each wrong field, and nothing run or kept."""
    if not (tool := TOOLS.tool(name)):
        return notice(f"There is no tool named {name}: reload the page to see the tools there are.", 404)
    sent, saved = {}, []
    for param in tool.fields:
        values = form.getlist(param.name)
        if widget(param) == "file":
            if upload := next((v for v in values if isinstance(v, UploadFile) and v.filename), None):
                saved.append(save_upload(upload))
                sent[param.name] = str(saved[-1])
        elif texts := [v for v in values if isinstance(v, str)]:
            sent[param.name] = texts[0] if len(texts) == 1 else texts
    params, errors = toolbox.parse(tool, sent)
    if errors:
        for path in saved:
            path.unlink(missing_ok=True)
        return ToolForm(tool, sent, errors), HttpHeader("HX-Retarget", "#tool-form"), \
            HttpHeader("HX-Reswap", "outerHTML")
    return start_tool(req, tool, params)


def field_text(value) -> str:
    """A parameter's default (JSON-like: a date is already ISO text, a choice its name) as its input shows it."""
    if value is None:
        return ""
    return "\n".join(map(str, value)) if isinstance(value, (list, tuple)) else str(value)


def widget(field: toolbox.Field) -> str:
    """What the form shows for the field: its kind's widget (input, checkbox, select, textarea or file)."""
    return toolbox.KINDS[field.kind].widget


def FieldInput(field: toolbox.Field, value: str, checked: bool, invalid: bool):
    """The input for one parameter, as its kind's row in toolbox.KINDS says, holding `value` (or `checked`)."""
    kind = toolbox.KINDS[field.kind]
    named = dict(name=field.name, id=f"field-{field.name}", aria_invalid="true" if invalid else None)
    needed = dict(named, required=field.required)
    match kind.widget:
        case "checkbox":
            return Input(**kind.input, checked=checked, **named)
        case "select":
            unset = [] if field.required else [Option("", value="", selected=not value)]
            return Select(*unset, *(Option(choice, value=choice, selected=choice == value) for choice in field.choices),
                          **needed)
        case "textarea":
            return Textarea(value, **kind.input, **needed)
        case "file":
            return Input(**kind.input, **needed)
        case _:
            return Input(**kind.input, value=value, **needed)


def ToolField(field: toolbox.Field, value: str, checked: bool, error: str):
    """A parameter's label, input, help and, after a refused run, the one line saying what is wrong."""
    input_ = FieldInput(field, value, checked, invalid=bool(error))
    label = (input_, " ", field.label) if widget(field) == "checkbox" else (field.label, input_)
    return Label(*label, Small(field.help) if field.help else "",
                 Error(error, id=f"field-{field.name}-error") if error else "", fr=f"field-{field.name}")


def ToolForm(tool: toolbox.Tool, sent: dict | None = None, errors: dict | None = None):
    """The tool's form: its defaults, or what was sent with a line per wrong field. A run's row lands in the
    task list below it."""
    errors = errors or {}

    def shown(field: toolbox.Field) -> tuple[str, bool]:
        if sent is None:
            return field_text(field.default), field.default is True
        value = sent.get(field.name, "")
        if widget(field) == "file":
            return "", bool(value)
        return ("\n".join(value) if isinstance(value, list) else value), bool(value)

    return Form(*(ToolField(field, *shown(field), errors.get(field.name, "")) for field in tool.fields),
                Button("Run"),
                id="tool-form", hx_post=f"/tools/{tool.name}", hx_encoding="multipart/form-data",
                enctype="multipart/form-data", hx_target="#task-list", hx_swap="afterbegin")


def ToolMenu():
    """A link to each tool, and a card for each file under tools/ that could not become one, saying why."""
    found, broken = TOOLS.current()
    links = [Li(A(tool.title, href=f"/tools/{tool.name}"), " ", Small(tool.help.split("\n\n")[0]))
             for tool in sorted(found.values(), key=lambda tool: tool.title.lower())]
    return Section(
        H2("Tools"),
        Ul(*links) if links else P("No tools yet: add a function to a file in tools/ and reload this page."),
        *(Article(Strong(problem.source.name), P(problem.problem), cls="broken", role="alert") for problem in broken),
        id="tools")


def ToolPage(tool: toolbox.Tool, profile: Profile):
    return (Nav(A("← All tools", href="/"), cls="back"),
            Article(H2(tool.title), P(tool.help, cls="help") if tool.help else "", ToolForm(tool), id="tool"),
            Section(H2(f"Runs · {profile.name}"), TaskList(profile.id, f"tool:{tool.name}"), id="tasks"))


@router.post("/tasks/{id}/again")
def tasks_again(req, id: int):
    """Run a finished tool run's tool again with the same answers (uploads included)."""
    task = task_of(req.session, id)
    if not task:
        return UnknownTask(id)
    tool = TOOLS.tool(task.kind.removeprefix("tool:")) if task.kind.startswith("tool:") else None
    if task.status == "running" or not tool:
        return Article(Error("That task cannot run again.", id=dom_id(id, "error")))
    saved = json.loads(task.params)
    uploads = uploads_of(tool, saved)
    if gone := [label for label, path in uploads.items() if not is_upload(str(path))]:
        return Article(Error(f"{', '.join(gone)}: the file this run used is gone (uploads are kept "
                             f"{KEEP_UPLOADS_DAYS} days), or the tool's inputs changed since; run the tool from its "
                             "page with the file again.",
                             id=dom_id(id, "error")))
    # The tool may have changed since: its answers are checked again against what it takes now.
    params, errors = toolbox.parse(tool, {name: form_text(value) for name, value in saved.items()})
    if errors:
        why = next(iter(errors.values())).rstrip(".")
        return Article(Error(f"The tool's inputs changed since this run ({why}): run the tool from its page.",
                             id=dom_id(id, "error")))
    for path in uploads.values():
        with suppress(FileNotFoundError):  # pruned just now: the run says so
            os.utime(path)  # kept KEEP_UPLOADS_DAYS from now
    return start_tool(req, tool, params)


def form_text(value) -> str | list[str]:
    """A saved answer as its form field sent it."""
    if isinstance(value, list):
        return [str(item) for item in value]
    return "" if value is None else "true" if value is True else "false" if value is False else str(value)


@router.get("/tools/{name}")
def tools_page(sess, bodykw, name: str):
    """The tool's page; for a file that could not become the tool (its name, a notebook's, or a function's card),
    a 404 saying why, as its card on the main page does."""
    found, broken = TOOLS.current()
    if not (tool := found.get(name)):
        cards = [card for card in broken if tool_name(card.source.stem) == name
                 or card.problem.startswith((f"{card.source.name}: {name}(): ", f"Two tools are named {name}:"))]
        why = [Article(Strong(card.source.name), P(card.problem), cls="broken", role="alert") for card in cards]
        line = f"{name} could not become a tool:" if cards else \
            f"There is no tool named {name}: the main page lists the tools there are."
        return FtResponse(Page(bodykw, f"No tool {name} · {TITLE}", P(line, cls="error", role="alert"), *why,
                               Nav(A("← All tools", href="/"), cls="back"), user=current_user(sess)), status_code=404)
    return Page(bodykw, f"{tool.title} · {TITLE}", *ToolPage(tool, current_profile(sess)), user=current_user(sess))


@router.post("/tools/{name}")
async def tools_run(req, name: str):
    """Uploads are written and modules imported in a worker thread: the event loop only reads the body."""
    form = await req.form()
    try:
        return await anyio.to_thread.run_sync(run_form, req, name, form)
    finally:
        await form.close()
