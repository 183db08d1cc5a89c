"""How a task shows in the page: its row (with its owner's share controls), and its progress frames."""
import html
import json
import time
from pathlib import Path

from fasthtml.common import A, Article, Button, Div, Header, NotStr, P, Pre, Progress, Safe, Small, Span, Strong

from core.auth import SIGNIN
from core.db import Task
from core.profiles import is_upload
from core.ui import Error

TASK_LOG_LINES = 50


def dom_id(task_id: int, part: str = "") -> str:
    """The id of a task's row in the page, or of one of its parts (bar, count, log, error)."""
    return f"task-{task_id}-{part}" if part else f"task-{task_id}"


def TaskRow(task: Task):
    """A task's progress, newest log lines and result. Running rows poll: pushes reach only the tab that started
    the task, and a fast task can push its last update before that tab has shown the row."""
    running, own = task.status == "running", dom_id(task.id)
    swap = dict(hx_target=f"#{own}", hx_swap="outerHTML")
    poll = dict(hx_get=f"/tasks/{task.id}", hx_trigger="every 2s", **swap) if running else {}
    count = Span(f"{task.done}/{task.total}", id=dom_id(task.id, "count"))
    starting = running and not (task.total or task.done or task.log)  # a notebook's kernel may take a while
    again = Button("Run again", hx_post=f"/tasks/{task.id}/again", hx_target="#task-list", hx_swap="afterbegin",
                   cls="outline") if not running and task.kind.startswith("tool:") else ""
    full_log = A("Full log", href=f"/tasks/{task.id}/log", target="_blank") if not running and task.log else ""
    return Article(
        Header(Strong(task.title), " ", Small(f"{'starting' if starting else task.status} · ", count, when(task)),
               Button("Cancel", hx_post=f"/tasks/{task.id}/cancel", cls="secondary", **swap) if running else again),
        Inputs(task.params) if task.params else "",
        Progress(value=task.done, max=task.total or 1, id=dom_id(task.id, "bar")),
        Pre(task.log, id=dom_id(task.id, "log")),
        full_log,
        Div(NotStr(task.result), cls="result") if task.result else "",
        Sharing(task),
        id=own, cls=f"task {task.status}", **poll)


def Sharing(task: Task):
    """Once sign-in lets others in, an ended run's owner may share it: a read-only link for anyone signed in
    (core/shares.py), until they unshare it."""
    if not SIGNIN or task.status == "running":
        return ""
    swap = dict(hx_target=f"#{dom_id(task.id)}", hx_swap="outerHTML", cls="outline secondary")
    if task.share:
        return P(A("Shared link", href=f"/shared/{task.share}", target="_blank"),
                 Small("anyone signed in may open it, read-only"),
                 Button("Unshare", hx_post=f"/tasks/{task.id}/unshare", **swap), cls="share")
    return P(Button("Share", hx_post=f"/tasks/{task.id}/share", **swap), cls="share")


def when(task: Task) -> str:
    """' · started 2026-05-01 14:03:05 · took 2.4 s', as far as the row knows."""
    if not task.started:
        return ""
    text = f" · started {time.strftime('%Y-%m-%d %H:%M:%S', time.localtime(task.started))}"
    return f"{text} · took {task.ended - task.started:,.1f} s" if task.ended else text


def Inputs(params: str):
    """What a run was given, so that two runs of one tool tell apart: an upload by the name it was sent with."""
    shown = []
    for name, value in json.loads(params).items():
        if isinstance(value, str) and is_upload(value):
            value = Path(value).name.partition("-")[2]
        text = ", ".join(map(str, value)) if isinstance(value, list) else "" if value is None else str(value)
        if text:
                shown.append(f"{name.replace('_', ' ')}: {text if len(text) <= 80 else text[:79] + '…'}")
    return P(Small(" · ".join(shown)), cls="inputs")


def UnknownTask(task_id: int):
    return Article(Error("That task does not exist.", id=dom_id(task_id, "error")), id=dom_id(task_id))


def ProgressUpdate(task_id: int, done: int, total: int, lines: list[str], skipped: int = 0) -> Safe:
    """The bar, count and new log lines of one progress frame. A string template, not FT: it goes out many
    times a second, and building the three elements would cost more than sending them."""
    gap = f"… {skipped:,} lines not shown here: the full log has them\n" if skipped else ""
    new = "\n".join(lines) + "\n" if lines else ""
    text = html.escape(gap + new)  # escaped once, not per line: a frame may carry thousands of lines
    log_line = f'<pre id="{dom_id(task_id, "log")}" hx-swap-oob="beforeend">{text}</pre>' if text else ""
    return Safe(f'<progress id="{dom_id(task_id, "bar")}" value="{done}" max="{total or 1}" '
                f'hx-swap-oob="true"></progress>'
                f'<span id="{dom_id(task_id, "count")}" hx-swap-oob="true">{done}/{total}</span>{log_line}')
