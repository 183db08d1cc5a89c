"""Shared runs: a run's owner shares it by a read-only permalink, /shared/<token>, that anyone signed in may open:
its inputs, log and result, with downloads of its files, and nothing to press. The token is unguessable and the
only way in: a run that is not shared, or no longer, is a 404 there for everyone, its owner too."""
import re
import secrets

from fasthtml.common import *

from core.auth import current_user
from core.db import Task, db, tasks
from core.task_rows import Inputs, UnknownTask, when
from core.tasks import NO_FILE, RUNS, full_log, output_file, task_of, tasks_row
from core.security import notice
from core.ui import Page
from settings import TITLE

TOKEN = re.compile(r"[\w-]{22}")  # secrets.token_urlsafe(16): 128 random bits
router = APIRouter()


@router.post("/tasks/{id}/share")
def tasks_share(sess, id: int):
    """Share an ended run of this profile's (a running one has nothing to show yet); sharing it again keeps its
    link."""
    if not task_of(sess, id):
        return UnknownTask(id)
    db.execute("UPDATE tasks SET share = coalesce(share, ?) WHERE id = ? AND status <> 'running'",
               [secrets.token_urlsafe(16), id])
    return tasks_row(sess, id)


@router.post("/tasks/{id}/unshare")
def tasks_unshare(sess, id: int):
    """Stop sharing: the link answers 404 from now on. Sharing again makes a new one."""
    if not task_of(sess, id):
        return UnknownTask(id)
    db.execute("UPDATE tasks SET share = NULL WHERE id = ?", [id])
    return tasks_row(sess, id)


def shared(token: str) -> Task | None:
    """The run shared under this token, as it stands now; None for any other token."""
    found = db.execute("SELECT id FROM tasks WHERE share = ?", [token]).fetchone() if TOKEN.fullmatch(token) else None
    return (run.current if (run := RUNS.get(found[0])) else tasks[found[0]]) if found else None


def SharedRun(task: Task, token: str):
    """The run read-only: no cancel, no run again, and its result's links to its files lead through the share."""
    result = task.result.replace(f'"/tasks/{task.id}/files/', f'"/shared/{token}/files/')
    return Article(
        Header(Strong(task.title), " ", Small(task.status, when(task))),
        Inputs(task.params) if task.params else "",
        Pre(task.log) if task.log else "",
        A("Full log", href=f"/shared/{token}/log", target="_blank") if task.log else "",
        Div(NotStr(result), cls="result") if result else "",
        cls=f"task {task.status} shared")


@router.get("/shared/{token}")
def shared_page(sess, bodykw, token: str):
    back, user = Nav(A("← Your workspace", href="/"), cls="back"), current_user(sess)
    if not (task := shared(token)):
        gone = P("Nothing is shared at this address: its owner may have stopped sharing it.", cls="error", role="alert")
        return FtResponse(Page(bodykw, f"Not shared · {TITLE}", gone, back, user=user), status_code=404)
    return Page(bodykw, f"{task.title} · {TITLE}", back, Section(H2("A shared run"), SharedRun(task, token),
                                                                 id="shared"), user=user)


@router.get("/shared/{token}/log")
def shared_log(token: str):
    return full_log(task.id) if (task := shared(token)) else Response("Nothing is shared at this address.", 404)


@router.get("/shared/{token}/files/{name}")
def shared_file(token: str, name: str):
    return output_file(task.id, name) if (task := shared(token)) else notice(NO_FILE, 404)
