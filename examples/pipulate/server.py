"""One-page local web app: profiles, todos, a chat pane streamed from Ollama and long-running tasks.

Run `python server.py` (or ./scripts/run). Sections: config, data, components, routes, websocket, tasks, serve.
Importing this module starts nothing: a notebook can use `db`, `store` and the task functions directly.
"""
import asyncio
import html
import json
import logging
import os
import re
import secrets
import time
from collections import deque
from dataclasses import dataclass, field, replace
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import ollama
import uvicorn
from fasthtml.common import *
from fastlite import database

# --- config ----------------------------------------------------------------------------------------------

APP_DIR = Path(__file__).resolve().parent
DATA = APP_DIR / "data"
STATIC = APP_DIR / "static"
DB_FILE = DATA / "pipulate.db"
TITLE = "Pipulate"
HOST = os.environ.get("HOST", "127.0.0.1")
PORT = int(os.environ.get("PORT", "5001"))
DEV = os.environ.get("PIPULATE_ENV", "dev") != "prod"
OLLAMA_HOST = os.environ.get("OLLAMA_HOST", "http://127.0.0.1:11434")
OLLAMA_MODEL = os.environ.get("OLLAMA_MODEL", "")
# Host names the app answers to; binding a wildcard address opts out of the check (and into the network).
ALLOWED_HOSTS = ["*"] if HOST in ("0.0.0.0", "::") else sorted({"127.0.0.1", "localhost", "::1", HOST})
MAX_TEXT = 500
NO_TITLE = "Give the todo a title."
NO_NAME = "Give the profile a name."
UNKNOWN_TODO = "That todo does not exist (deleted, or another profile's)."
MAX_FRAME = 64 * 1024
CHAT_TURNS = 20
TASK_LOG_LINES = 50
SAVE_EVERY = 0.5
TEXT_SUFFIXES = {".txt", ".md", ".csv", ".json", ".html", ".py", ".yml", ".yaml", ".toml", ".log"}

log = logging.getLogger(__name__)

# --- data ------------------------------------------------------------------------------------------------


DATA.mkdir(exist_ok=True)
db = database(DB_FILE)
db.conn.set_busy_timeout(5000)  # a notebook or a second server may hold the write lock for a moment
db.execute("PRAGMA synchronous = NORMAL")  # WAL stays consistent without an fsync per progress update


class Store:
    """Dict-like settings kept in the `store` table; values round-trip through JSON."""

    def __init__(self, rows):
        self.rows = rows

    def get(self, key: str, default=None):
        row = self.rows.get(key, default=None)
        return default if row is None else json.loads(row.value)

    def __getitem__(self, key: str):
        if (row := self.rows.get(key, default=None)) is None:
            raise KeyError(key)
        return json.loads(row.value)

    def __setitem__(self, key: str, value) -> None:
        self.rows.upsert(key=key, value=json.dumps(value))

    def __delitem__(self, key: str) -> None:
        self.rows.delete_where("key = ?", [key])

    def __contains__(self, key: str) -> bool:
        return self.rows.get(key, default=None) is not None


def table(name: str, /, *, pk: str = "id", **columns):
    """The table, created or migrated to these columns, and its row dataclass."""
    tbl = db.t[name]
    tbl.create(columns, pk=pk, transform=tbl.exists())
    return tbl, tbl.dataclass()


store = Store(table("store", pk="key", key=str, value=str)[0])
profiles, Profile = table("profiles", id=int, name=str)
todos, Todo = table("todos", id=int, profile_id=int, title=str, done=bool, priority=int)
tasks, Task = table("tasks", id=int, profile_id=int, tab=str, title=str, status=str, done=int, total=int, log=str,
                    result=str)


def current_profile(sess: dict) -> Profile:
    """This browser's profile; a new browser gets the last one chosen anywhere, so the choice survives restarts."""
    if chosen := profiles.get(sess.get("profile_id", 0), default=None):
        return chosen
    chosen = profiles.get(store.get("profile_id", 0), default=None)
    chosen = chosen or first(profiles(order_by="id", limit=1)) or profiles.insert(name="Default")
    sess["profile_id"] = chosen.id
    return chosen


def choose_profile(sess: dict, profile_id: int) -> None:
    sess["profile_id"] = store["profile_id"] = profile_id


def row(table, row_id: int):
    """The row with this id, or None; an id too big for SQLite is as unknown as a missing one."""
    return table.get(row_id, default=None) if -2**63 <= row_id < 2**63 else None


def missing_profile(profile_id: int) -> str:
    return "" if row(profiles, profile_id) else "That profile no longer exists."


def todos_of(profile_id: int) -> list[Todo]:
    return todos(where="profile_id = ?", where_args=[profile_id], order_by="priority, id")


def todo_of(profile_id: int, todo_id: int) -> Todo | None:
    """The todo if it belongs to this profile; another profile's id is as unknown as a missing one."""
    todo = row(todos, todo_id)
    return todo if todo and todo.profile_id == profile_id else None


def text_error(text: str, *, empty: str) -> str:
    """Why a todo title or profile name can't be saved, or ''."""
    if not text.strip():
        return empty
    if len(text) > MAX_TEXT:
        return f"Keep it to {MAX_TEXT} characters ({len(text)} now)."
    return ""


# --- components ------------------------------------------------------------------------------------------

# Served from static/ so the page works offline: htmx.org 2.0.7, htmx-ext-ws 2.0.3, @anyblades/pico 2.5.0 (npm).
HEAD = (charset, viewport, Script(src="/static/htmx.min.js"), Script(src="/static/ws.js"),
        Link(rel="stylesheet", href="/static/pico.min.css"), Link(rel="stylesheet", href="/static/app.css"))


def Error(message: str, id: str):
    return Small(message, id=id, cls="error", role="alert")


def ProfileMenu(profile: Profile, error: str = ""):
    options = [Option(p.name, value=p.id, selected=p.id == profile.id) for p in profiles(order_by="name")]
    swap = dict(hx_target="#workspace", hx_swap="outerHTML")
    return Section(
        Select(*options, name="id", hx_post="/profiles/switch", aria_label="Profile", **swap),
        Form(Fieldset(Input(name="name", placeholder="New profile"), Button("Create"), role="group"),
             hx_post="/profiles", **swap),
        Form(Fieldset(Input(name="name", value=profile.name, aria_label="Profile name"), Button("Rename"), role="group"),
             hx_post=f"/profiles/{profile.id}/rename", **swap),
        Button("Delete profile", hx_delete=f"/profiles/{profile.id}", cls="secondary",
               hx_confirm=f"Delete {profile.name} and its todos?", **swap),
        Error(error, id="profile-error"),
        id="profiles")


def TodoItem(todo: Todo, error: str = ""):
    swap = dict(hx_target=f"#todo-{todo.id}", hx_swap="outerHTML")
    return Li(
        Input(type="checkbox", checked=bool(todo.done), hx_post=f"/todos/{todo.id}/toggle", aria_label="Done", **swap),
        Input(name="title", value=todo.title, hx_post=f"/todos/{todo.id}/rename", hx_trigger="change", **swap),
        Button("↑", hx_post=f"/todos/{todo.id}/move", hx_vals={"by": -1}, hx_target="#todo-list", cls="outline"),
        Button("↓", hx_post=f"/todos/{todo.id}/move", hx_vals={"by": 1}, hx_target="#todo-list", cls="outline"),
        Button("✕", hx_delete=f"/todos/{todo.id}", cls="outline", **swap),
        Error(error, id=f"todo-{todo.id}-error") if error else "",
        id=f"todo-{todo.id}", cls="todo done" if todo.done else "todo")


def UnknownTodo(todo_id: int):
    return Li(Error(UNKNOWN_TODO, id=f"todo-{todo_id}-error"), id=f"todo-{todo_id}")


def TodoList(profile_id: int, error: str = ""):
    return Ul(*map(TodoItem, todos_of(profile_id)), Li(Error(error, id="todo-list-error")) if error else "",
              id="todo-list")


def NewTodo(draft: str = "", error: str = ""):
    return Form(
        Fieldset(Input(name="title", value=draft, placeholder="New todo", maxlength=MAX_TEXT, aria_label="New todo"),
                 Button("Add"), role="group"),
        Error(error, id="new-todo-error"),
        id="new-todo", hx_post="/todos", hx_target="#todo-list", hx_swap="beforeend")


def TaskRow(task: Task):
    """A task's progress, log and result. Running rows poll: pushes reach only the tab that started the task,
    and a fast task can push its last update before that tab has shown the row."""
    running, row = task.status == "running", f"task-{task.id}"
    swap = dict(hx_target=f"#{row}", hx_swap="outerHTML")
    poll = dict(hx_get=f"/tasks/{task.id}", hx_trigger="every 2s", **swap) if running else {}
    count = Span(f"{task.done}/{task.total}", id=f"{row}-count")
    return Article(
        Header(Strong(task.title), " ", Small(f"{task.status} · ", count),
               Button("Cancel", hx_post=f"/tasks/{task.id}/cancel", cls="secondary", **swap) if running else ""),
        Progress(value=task.done, max=task.total or 1, id=f"{row}-bar"),
        Pre(task.log, id=f"{row}-log"),
        Div(NotStr(task.result), cls="result") if task.result else "",
        id=row, cls=f"task {task.status}", **poll)


def UnknownTask(task_id: int):
    return Article(Error("That task does not exist.", id=f"task-{task_id}-error"), id=f"task-{task_id}")


def ProgressUpdate(task_id: int, done: int, total: int, line: str) -> Safe:
    """The bar, count and log line one report() sends. A string template, not FT: it goes out once per
    report, and building the three elements would cost more than sending them."""
    log_line = f'<pre id="task-{task_id}-log" hx-swap-oob="beforeend">{html.escape(line)}\n</pre>' if line else ""
    return Safe(f'<progress id="task-{task_id}-bar" value="{int(done)}" max="{int(total) or 1}" hx-swap-oob="true">'
                f'</progress><span id="task-{task_id}-count" hx-swap-oob="true">{int(done)}/{int(total)}</span>'
                f'{log_line}')


def TaskPanel(profile_id: int):
    recent = tasks(where="profile_id = ?", where_args=[profile_id], order_by="id desc", limit=20)
    return Section(
        H2("Tasks"),
        Button("Count words in data/", hx_post="/tasks/count-words", hx_target="#task-list", hx_swap="afterbegin"),
        Div(*map(TaskRow, recent), id="task-list"),
        id="tasks")


def Workspace(profile: Profile, error: str = ""):
    return Div(
        ProfileMenu(profile, error),
        Section(H2(f"Todos · {profile.name}"), TodoList(profile.id), NewTodo(), id="todos"),
        TaskPanel(profile.id),
        id="workspace")


def ChatMessage(role: str, text: str = "", id: str | None = None):
    return Div(Strong(role), Div(text, id=id, cls="reply"), cls=f"message {role}")


def ChatAppend(*messages):
    return Div(*messages, id="chat-log", hx_swap_oob="beforeend")


def ChatNote(text: str):
    return ChatAppend(Div(text, cls="message note error", role="alert"))


def ChatPane():
    return Section(
        H2("Chat"),
        Div(id="chat-log", aria_live="polite"),
        Div(Form(Fieldset(Input(name="msg", placeholder="Ask the local model…", aria_label="Message"),
                          Input(type="hidden", name="type", value="chat"), Button("Send"), role="group"),
                 ws_send=True, hx_on__ws_after_send="this.reset()"),
            Form(Input(type="hidden", name="type", value="stop"), Button("Stop", cls="secondary"), ws_send=True),
            cls="chat-controls"),
        id="chat")


# --- routes ----------------------------------------------------------------------------------------------


def session_secret(path: Path) -> str:
    """The cookie-signing key, created owner-only on first run."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return path.read_text()
    with os.fdopen(fd, "w") as f:
        f.write(key := secrets.token_urlsafe(32))
    return key


def mark_interrupted():
    db.execute("UPDATE tasks SET status = 'interrupted' WHERE status = 'running'")


class SameOrigin:
    """Refuses writes and sockets that another site's page starts.

    Listening on 127.0.0.1 keeps other machines out, not other web pages: any page in the browser can post a
    form here or open the socket. Browsers send Origin with both, so it must name this very host.
    """

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] in ("http", "websocket") and not same_origin(scope):
            if scope["type"] == "websocket":
                return await WebSocket(scope, receive, send).close(code=1008)
            return await Response("Refused: this request came from another site.", 403)(scope, receive, send)
        await self.app(scope, receive, send)


def same_origin(scope) -> bool:
    headers = Headers(scope=scope)
    origin = headers.get("origin")
    reads = scope["type"] == "http" and scope["method"] in ("GET", "HEAD", "OPTIONS")
    return reads or not origin or urlsplit(origin).netloc == headers.get("host")


# FastHTML() rather than fast_app(): fast_app's static route follows ../ out of the app folder.
# No default headers: they load htmx and helper scripts from a CDN; HEAD has what the page uses, served locally.
app = (FastHTMLWithLiveReload if DEV else FastHTML)(
    title=TITLE, default_hdrs=False, hdrs=HEAD, canonical=False, secret_key=session_secret(DATA / ".sesskey"),
    on_startup=[mark_interrupted],
    middleware=[Middleware(TrustedHostMiddleware, allowed_hosts=ALLOWED_HOSTS), Middleware(SameOrigin)])
rt = app.route
app.mount("/static", StaticFiles(directory=STATIC), name="static")

# Every handler that touches the database is async: the fastlite connection and tables keep per-call state
# (such as the rows an insert returned), so all queries stay on the event-loop thread.


@rt("/")
async def index(sess, bodykw):
    tab = secrets.token_urlsafe(12)
    bodykw.update(hx_headers=json.dumps({"X-Tab": tab}), hx_ext="ws", ws_connect=f"/ws?tab={tab}")
    profile = current_profile(sess)
    return (Title(TITLE), Header(H1(TITLE), cls="container"),
            Main(Div(Workspace(profile), ChatPane(), cls="layout"), cls="container"))


@app.post("/profiles")
async def profiles_create(sess, name: str = ""):
    if not (error := text_error(name, empty=NO_NAME)):
        choose_profile(sess, profiles.insert(name=name.strip()).id)
    return Workspace(current_profile(sess), error)


@app.post("/profiles/switch")
async def profiles_switch(sess, id: int = 0):
    if not (error := missing_profile(id)):
        choose_profile(sess, id)
    return Workspace(current_profile(sess), error)


@app.post("/profiles/{id}/rename")
async def profiles_rename(sess, id: int, name: str = ""):
    if not (error := missing_profile(id) or text_error(name, empty=NO_NAME)):
        profiles.update(id=id, name=name.strip())
    return Workspace(current_profile(sess), error)


@app.delete("/profiles/{id}")
async def profiles_delete(sess, id: int):
    last = "Keep at least one profile: create another first." if profiles.count == 1 else ""
    if not (error := missing_profile(id) or last):
        todos.delete_where("profile_id = ?", [id])
        profiles.delete(id)
    return Workspace(current_profile(sess), error)


@app.post("/todos")
async def todos_add(sess, title: str = ""):
    if error := text_error(title, empty=NO_TITLE):
        return NewTodo(title, error)(hx_swap_oob="true")
    profile_id = current_profile(sess).id
    priority = max((t.priority for t in todos_of(profile_id)), default=-1) + 1
    todo = todos.insert(profile_id=profile_id, title=title.strip(), done=False, priority=priority)
    return TodoItem(todo), NewTodo()(hx_swap_oob="true")


@app.post("/todos/{id}/toggle")
async def todos_toggle(sess, id: int):
    if not (todo := todo_of(current_profile(sess).id, id)):
        return UnknownTodo(id)
    return TodoItem(todos.update(id=id, done=not todo.done))


@app.post("/todos/{id}/rename")
async def todos_rename(sess, id: int, title: str = ""):
    if not (todo := todo_of(current_profile(sess).id, id)):
        return UnknownTodo(id)
    if error := text_error(title, empty=NO_TITLE):
        return TodoItem(todo, error)
    return TodoItem(todos.update(id=id, title=title.strip()))


@app.delete("/todos/{id}")
async def todos_delete(sess, id: int):
    if not todo_of(current_profile(sess).id, id):
        return UnknownTodo(id)
    todos.delete(id)
    return ""


@app.post("/todos/{id}/move")
async def todos_move(sess, id: int, by: int = 0):
    """Move a todo `by` places (negative is up) and renumber the profile's list."""
    profile_id = current_profile(sess).id
    order = [t.id for t in todos_of(profile_id)]
    if id not in order:
        return TodoList(profile_id, UNKNOWN_TODO)
    position = order.index(id) + by
    order.remove(id)
    order.insert(max(0, min(len(order), position)), id)
    for priority, todo_id in enumerate(order):
        todos.update(id=todo_id, priority=priority)
    return TodoList(profile_id)


@app.post("/tasks/count-words")
async def tasks_count_words(req):
    return start_task(req, title="Count words in data/", fn=count_words, params={})


def task_of(sess: dict, task_id: int) -> Task | None:
    """The task as it stands now, if it is this profile's."""
    task = RUNS[task_id].current if task_id in RUNS else row(tasks, task_id)
    return task if task and task.profile_id == current_profile(sess).id else None


@app.get("/tasks/{id}")
async def tasks_row(sess, id: int):
    task = task_of(sess, id)
    return TaskRow(task) if task else UnknownTask(id)


@app.post("/tasks/{id}/cancel")
async def tasks_cancel(sess, id: int):
    if not task_of(sess, id):
        return UnknownTask(id)
    if run := RUNS.get(id):
        run.job.cancel()
        await asyncio.wait([run.job])
    return TaskRow(tasks[id])


# --- websocket -------------------------------------------------------------------------------------------


@dataclass
class Tab:
    """One open page: its socket, its bounded chat history and the reply streaming into it."""
    socket: WebSocket
    history: deque = field(default_factory=lambda: deque(maxlen=2 * CHAT_TURNS))
    reply: asyncio.Task | None = None
    llm: ollama.AsyncClient | None = None  # made on the first message: building a client takes ~20 ms

    async def send(self, *parts) -> None:
        try:
            await self.socket.send_text(to_xml(*parts, indent=False))
        except (WebSocketDisconnect, RuntimeError):
            pass  # the page closed mid-send; the task or reply that sent this carries on or ends on its own


TABS: dict[str, Tab] = {}  # open pages by tab id; empty again once every page has closed
TAB_ID = re.compile(r"[\w-]{1,64}")


async def push(tab_id: str, *parts) -> None:
    if tab := TABS.get(tab_id):
        await tab.send(*parts)


async def ws(socket: WebSocket):
    tab_id = socket.query_params.get("tab", "")
    await socket.accept()
    if not TAB_ID.fullmatch(tab_id):
        return await socket.close(code=1008, reason="Connect to /ws?tab=<the tab id of the page>.")
    tab = TABS[tab_id] = Tab(socket)
    try:
        while (message := await socket.receive())["type"] == "websocket.receive":
            await ws_frame(tab, message.get("text"))
    finally:
        if tab.reply:
            tab.reply.cancel()
        if tab.llm:
            await tab.llm.close()
        if TABS.get(tab_id) is tab:
            del TABS[tab_id]


app.router.add_websocket_route("/ws", ws)


async def ws_frame(tab: Tab, text: str | None) -> None:
    """Handle one frame from the page: {"type": "chat", "msg": ...} or {"type": "stop"}."""
    if text is None or len(text.encode()) > MAX_FRAME:
        return await tab.send(ChatNote(f"Send JSON text frames of at most {MAX_FRAME // 1024} KiB."))
    try:
        frame = json.loads(text)
    except (ValueError, RecursionError):
        return await tab.send(ChatNote("That frame was not JSON: send {\"type\": \"chat\", \"msg\": \"...\"}."))
    kind = frame.get("type") if isinstance(frame, dict) else None
    if kind == "chat":
        prompt = frame.get("msg")
        if not isinstance(prompt, str) or not (prompt := prompt.strip()):
            return await tab.send(ChatNote("Type a message first."))
        if tab.reply:
            return await tab.send(ChatNote("A reply is still streaming: wait for it or press Stop."))
        tab.reply = asyncio.create_task(reply(tab, prompt))
    elif kind == "stop":
        if not tab.reply:
            return await tab.send(ChatNote("Nothing to stop."))
        tab.reply.cancel()
    else:
        await tab.send(ChatNote(f"Unknown frame type {kind!r}: use \"chat\" or \"stop\"."))


async def best_model(client: ollama.AsyncClient) -> str:
    """The largest installed chat model; '' when there is none.

    Bigger models answer better; set OLLAMA_MODEL to trade quality for speed. Embedding models cannot chat.
    """
    def chats(m):
        return "embed" not in (m.model or "") and "bert" not in ((m.details and m.details.family) or "")

    return max(filter(chats, (await client.list()).models), key=lambda m: m.size or 0,
               default=ollama.ListResponse.Model(model="")).model


def ollama_problem(error: Exception, model: str) -> str:
    """One sentence a user can act on, for whatever stopped a reply."""
    if isinstance(error, (ConnectionError, httpx.ConnectError)):
        return f"Ollama is not reachable at {OLLAMA_HOST}: start it with `ollama serve`, then send again."
    if isinstance(error, ollama.ResponseError) and error.status_code == 404:
        return f"The model {model} is not installed: run `ollama pull {model}` or set OLLAMA_MODEL to an installed one."
    if isinstance(error, ollama.ResponseError):
        return f"Ollama answered with an error: {error.error}"
    return f"The reply from Ollama broke off midway ({error or type(error).__name__}); send again."


async def reply(tab: Tab, prompt: str) -> None:
    """Stream the model's answer into the tab chunk by chunk, as Ollama produces it."""
    reply_id = f"reply-{secrets.token_hex(6)}"
    await tab.send(ChatAppend(ChatMessage("you", prompt), ChatMessage("assistant", id=reply_id)))
    tab.history.append({"role": "user", "content": prompt})
    chunks, model = [], OLLAMA_MODEL
    client = tab.llm = tab.llm or ollama.AsyncClient(host=OLLAMA_HOST)
    try:
        model = model or await best_model(client)
        if not model:
            return await tab.send(ChatNote("Ollama has no model yet: run `ollama pull llama3.2`, then send again."))
        finished = False
        async for part in await client.chat(model=model, messages=list(tab.history), stream=True):
            if part.message.content:
                chunks.append(part.message.content)
                await tab.send(Span(part.message.content, hx_swap_oob=f"beforeend:#{reply_id}"))
            finished = part.done
        if not finished:
            raise httpx.RemoteProtocolError("the stream ended before Ollama said it was done")
    except asyncio.CancelledError:
        await tab.send(ChatNote("Stopped."))
        raise
    except (ConnectionError, httpx.HTTPError, ollama.ResponseError, ValueError) as error:
        await tab.send(ChatNote(ollama_problem(error, model)))
    finally:
        if chunks:
            tab.history.append({"role": "assistant", "content": "".join(chunks)})
        tab.reply = None


# --- tasks -----------------------------------------------------------------------------------------------
# The task contract, for add-on modules and notebooks:
#   async def fn(report, **params) -> str | FT
#     `await report(done, total, line="")` stores progress in the `tasks` table and pushes a progress bar and
#     the log line to the tab that started the task, if that tab is still open. fn may raise: the task fails
#     and the page shows the exception's message, never a traceback. Cancel arrives as asyncio.CancelledError.
#     A returned FT is stored as its HTML; a returned str as escaped text.
#   start_task(req, *, title, fn, params) -> FT
#     Starts fn(report, **params) for the request's tab (X-Tab header) and profile and returns the task-panel
#     row for HTMX to insert. Call it from an `async def` handler: the task runs on the server's event loop.
#   DATA is the folder for files a task reads or writes.

def start_task(req, *, title: str, fn, params: dict):
    task = tasks.insert(profile_id=current_profile(req.session).id, tab=req.headers.get("x-tab", ""), title=title,
                        status="running", done=0, total=0, log="", result="")
    run = RUNS[task.id] = Run(task)
    run.job = asyncio.create_task(run.execute(fn, params))
    return TaskRow(task)


@dataclass
class Run:
    """A running task's row, kept current in memory and saved at most every SAVE_EVERY seconds and at the end."""
    task: Task
    lines: deque = field(default_factory=lambda: deque(maxlen=TASK_LOG_LINES))
    saved: float = 0.0
    job: asyncio.Task | None = None

    @property
    def current(self) -> Task:
        return replace(self.task, log="".join(self.lines))

    async def report(self, done: int, total: int, line: str = "") -> None:
        self.task.done, self.task.total = done, total
        if line:
            self.lines.append(line + "\n")
        if time.monotonic() - self.saved >= SAVE_EVERY:
            self.save()
        await push(self.task.tab, ProgressUpdate(self.task.id, done, total, line))

    def save(self, **outcome) -> Task:
        task = self.task = replace(self.task, log="".join(self.lines), **outcome)
        # A plain UPDATE: fastlite's update re-reads the table schema on every call.
        db.execute("UPDATE tasks SET status = ?, done = ?, total = ?, log = ?, result = ? WHERE id = ?",
                   [task.status, task.done, task.total, task.log, task.result, task.id])
        self.saved = time.monotonic()
        return task

    async def execute(self, fn, params: dict) -> None:
        try:
            result = await fn(self.report, **params)
            outcome = dict(status="done", result=html.escape(result) if isinstance(result, str) else to_xml(result))
        except asyncio.CancelledError:
            outcome = dict(status="cancelled", result="Cancelled.")
        except Exception as error:
            log.exception("task %s (%s) failed", self.task.id, getattr(fn, "__name__", fn))
            outcome = dict(status="failed", result=html.escape(f"Failed: {error or type(error).__name__}"))
        RUNS.pop(self.task.id)
        await push(self.task.tab, TaskRow(self.save(**outcome))(hx_swap_oob="true"))


RUNS: dict[int, Run] = {}  # tasks running now, by id


def word_count(path: Path) -> int:
    with path.open(encoding="utf-8", errors="replace") as f:
        return sum(len(line.split()) for line in f)


async def count_words(report, folder: Path = DATA):
    """Demo task: count the words of every text file under `folder`, one file per step."""
    folder = Path(folder)
    files = sorted(p for p in folder.rglob("*") if p.suffix.lower() in TEXT_SUFFIXES and p.is_file())
    await report(0, len(files), f"{len(files)} text files under {folder.name}/")
    counts = {}
    for done, path in enumerate(files, 1):
        counts[path.relative_to(folder)] = words = await asyncio.to_thread(word_count, path)
        await report(done, len(files), f"{path.relative_to(folder)}: {words:,} words")
    if not files:
        return f"No text files under {folder}: add .txt, .md or .csv files and run it again."
    top = sorted(counts.items(), key=lambda item: -item[1])[:10]
    return Div(P(f"{sum(counts.values()):,} words in {len(files)} files."),
               Table(*(Tr(Td(str(name)), Td(f"{words:,}")) for name, words in top)))


# --- serve -----------------------------------------------------------------------------------------------

if __name__ == "__main__":
    uvicorn.run(f"{Path(__file__).stem}:app", host=HOST, port=PORT, app_dir=str(APP_DIR),
                reload=DEV, reload_dirs=[str(APP_DIR)] if DEV else None)
