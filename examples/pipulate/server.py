"""A local web app: profiles, the tools under tools/ and the tasks that run them, with a demo of todos, a chat
streamed from Ollama and a word-count tool.

Run `python server.py` (or ./scripts/run). Sections: config, data, app, components, websocket, chat, tasks,
tools, pages, routes, serve. Importing this module builds nothing and opens no file: `create_app()` makes data/,
imports the add-ons under addons/ and returns the app, and the database opens (and gets its tables) on first use
in each thread. A notebook can import it and read and write `db` and `store` directly.
"""
import asyncio
import fcntl
import gc
import html
import importlib
import json
import logging
import os
import re
import secrets
import shutil
import socket
import sys
import threading
import time
from collections import deque
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field, make_dataclass, replace
from functools import partial
from pathlib import Path
from urllib.parse import quote, urlsplit


@contextmanager
def hidden(*modules: str):
    """Inside the block, importing these modules fails as if they were not installed (unless already imported)."""
    absent = [name for name in modules if name not in sys.modules]
    sys.modules.update(dict.fromkeys(absent, None))
    try:
        yield
    finally:
        for name in absent:
            del sys.modules[name]


# Hidden while the libraries below import, these stay out of the server unless a tool imports them, which then
# works as usual. apswutils, under fastlite, tries `import pandas` and `import numpy` only to map their scalar
# types to SQL column types, which this app never stores: about 1.5 s and 40 MB. httpx, under FastHTML, imports
# its command-line client when rich is installed: about 0.1 s of CPU.
with hidden("numpy", "pandas", "rich"):
    import anyio
    import apsw
    import httpx
    import uvicorn
    from fasthtml.common import *
    from fastlite import Database
    from starlette.datastructures import UploadFile

import toolbox


# --- config ----------------------------------------------------------------------------------------------

APP_DIR = Path(__file__).resolve().parent
DATA = APP_DIR / "data"
STATIC = APP_DIR / "static"
TOOLS_DIR = APP_DIR / "tools"
ADDONS_DIR = APP_DIR / "addons"
UPLOADS = DATA / "uploads"
OUTPUTS = DATA / "outputs"  # a run's files: data/outputs/<task id>/, also the tool's working directory
DB_FILE = DATA / "pipulate.db"
TITLE = "Pipulate"
HOST = os.environ.get("HOST", "127.0.0.1")
PORT = int(os.environ.get("PORT", "5001"))
DEV = os.environ.get("PIPULATE_ENV", "dev") != "prod"
JUPYTER = True  # notebooks under tools/ are tools only with Jupyter in the venv
OLLAMA_HOST = os.environ.get("OLLAMA_HOST", "http://127.0.0.1:11434")
OLLAMA_MODEL = os.environ.get("OLLAMA_MODEL", "")
# Seconds a write waits while a notebook or a second server holds the write lock, before the user is told.
BUSY_TIMEOUT = float(os.environ.get("PIPULATE_BUSY_TIMEOUT", "5"))
# Host names the app answers to; binding a wildcard address opts out of the check (and into the network).
ALLOWED_HOSTS = {"*"} if HOST in ("0.0.0.0", "::") else {"127.0.0.1", "localhost", "::1", HOST.strip("[]")}
# Request bodies are forms unless their path starts with a prefix here; uploads arrive under /tools/.
MAX_BODY = 1024 * 1024
BODY_LIMITS = {"/tools/": 100 * 1024 * 1024}
MAX_TEXT = 500
PAGE = 50  # todos shown at once: a page costs the same with 10 or 10,000 todos stored
NO_TITLE = "Give the todo a title."
UNKNOWN_TODO = "That todo does not exist (deleted, or another profile's)."
NO_NAME = "Give the profile a name."
BUSY = "The database is busy (another program is writing); try again."
INTERRUPTED = "Interrupted: the server stopped while this task was running. Run it again to start over."
NO_FILE = "That file does not exist, or belongs to another profile's task."
MAX_FRAME = 64 * 1024
CHAT_TURNS = 20
TASK_LOG_LINES = 50
SAVE_EVERY = 2.0  # what a server that dies can lose of running tasks' progress; pages read it from memory
PUSH_EVERY = 0.05  # progress frames per task and tab: 20 a second at most, the latest bar wins
REPORT_SLICE = 0.005  # a task that reports in a tight loop holds the event loop this long at most
OUTBOX_FRAMES = 256  # frames a page may fall behind by before its socket is closed
TAB_LOG_BACKLOG = 1_000_000  # characters of log waiting for a page; older lines are skipped (the full log has them)
KEEP_UPLOADS_DAYS = 30  # after the last run that used it, an upload is deleted; a run of it then asks for it again
INLINE_SUFFIXES = {".png", ".jpg", ".jpeg", ".gif", ".webp"}  # shown in the page; every other file downloads

log = logging.getLogger(__name__)

# --- data ------------------------------------------------------------------------------------------------
# Handlers that touch the database are plain `def`: FastHTML runs them in a thread pool, so a query waiting on
# another program's lock, or a slow one, holds one worker thread and never the event loop that serves every
# tab, socket and static file. A handler written as `def` is therefore always safe. Coroutines (the socket and
# tasks) reach the database through `await asyncio.to_thread(...)`. SQLite connections, and fastlite tables
# (they keep the last insert's rowid between calls), must not be shared between threads, so `db` and every
# table stand for the calling thread's own, opened on first use.

#
# The database file is opened by SQLite alone. POSIX locks belong to the process, and closing any descriptor of
# the file drops them all ("How To Corrupt An SQLite Database File", 2.2): an os.open/os.close of it here would
# let another program (a notebook's record(), a backup) delete the WAL holding writes already acknowledged.


def make_data_folders() -> None:
    """data/ and its folders, owner-only (also a data/ an older version made 0755)."""
    for folder in (DATA, UPLOADS, OUTPUTS):
        folder.mkdir(mode=0o700, exist_ok=True)
        folder.chmod(0o700)


class PerThread:
    """Stands for an object each thread gets its own of, made by `make()` on first use in that thread."""

    def __init__(self, make):
        self._make, self._local = make, threading.local()

    def here(self):
        try:
            return self._local.obj
        except AttributeError:
            obj = self._local.obj = self._make()
            return obj

    def made(self) -> bool:
        """Whether this thread has its own yet."""
        return hasattr(self._local, "obj")

    def __getattr__(self, name: str):
        return getattr(self.here(), name)

    def __call__(self, *args, **kwargs):
        return self.here()(*args, **kwargs)

    def __getitem__(self, key):
        return self.here()[key]


CONNECTING = threading.Lock()  # apsw.connection_hooks, swapped out while connecting, is global; and the schema


def connect():
    """A connection to the app's database, in WAL mode so readers never wait for a writer. The process's first
    one makes data/ and the tables."""
    global schema_made
    # Opened without apsw's connection hooks: apswutils adds apsw's best practices there, and one of them runs
    # `PRAGMA optimize` on open, which may need the write lock and so failed a thread's first read while another
    # program was writing. The settings that matter here are made below.
    with CONNECTING:
        if not schema_made:
            make_data_folders()
        hooks, apsw.connection_hooks = apsw.connection_hooks, []
        try:
            conn = apsw.Connection(str(DB_FILE))
        finally:
            apsw.connection_hooks = hooks
        DB_FILE.chmod(0o600)  # by path, before WAL mode: SQLite gives its -wal and -shm files the file's mode
        conn.set_busy_timeout(int(BUSY_TIMEOUT * 1000))  # then apsw.BusyError: the user sees BUSY, not a 500
        conn.pragma("journal_mode", "wal")
        conn.pragma("synchronous", "NORMAL")  # WAL stays consistent without an fsync per progress update
        conn.pragma("foreign_keys", True)
        database = Database(conn)
        if not schema_made:
            make_schema(database)
            schema_made = True
    return database


db = PerThread(lambda: connect())  # looks `connect` up per new thread, so it can be wrapped (to trace statements)
SCHEMA: list = []  # (name, primary key, columns) of each table
INDEXES: list[str] = []
schema_made = False


def make_schema(database: Database) -> None:
    """Create or migrate every table. Ids are never reused (AUTOINCREMENT): a deleted profile's or task's id
    handed to a new one would give it the old one's sessions, links and output folder."""
    for name, pk, columns in SCHEMA:
        tbl = database.t[name]
        tbl.create(columns, pk=pk, transform=tbl.exists())
        if pk == "id":
            autoincrement(database, name)
    for sql in INDEXES:
        database.execute(sql)


def autoincrement(database: Database, name: str) -> None:
    """Rebuild the table with AUTOINCREMENT on its id if it lacks it (made by an older version, or by a migration
    that added a column). Ids go on from the highest one it holds."""
    sql = database.execute("SELECT sql FROM sqlite_master WHERE type = 'table' AND name = ?", [name]).fetchone()[0]
    if "AUTOINCREMENT" in sql.upper():
        return
    fixed = re.sub(r"\[?id\]?\s+INTEGER\s+PRIMARY\s+KEY", "[id] INTEGER PRIMARY KEY AUTOINCREMENT", sql, count=1,
                   flags=re.IGNORECASE)
    database.execute("BEGIN IMMEDIATE")
    try:
        database.execute(f"ALTER TABLE [{name}] RENAME TO [{name}_old]")
        database.execute(fixed)
        database.execute(f"INSERT INTO [{name}] SELECT * FROM [{name}_old]")
        database.execute(f"DROP TABLE [{name}_old]")
    except BaseException:
        database.execute("ROLLBACK")
        raise
    database.execute("COMMIT")


@contextmanager
def transaction():
    """One atomic write. BEGIN IMMEDIATE takes the write lock before the first read, so a read-then-write can't
    be undone by another process writing in between."""
    db.execute("BEGIN IMMEDIATE")
    try:
        yield
    except BaseException:
        db.execute("ROLLBACK")
        raise
    db.execute("COMMIT")


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
    """The table (usable from any thread; created or migrated to these columns on first use) and its row
    dataclass."""
    SCHEMA.append((name, pk, columns))
    row_class = make_dataclass(name.title(), [(column, kind | None, field(default=None))
                                              for column, kind in columns.items()])

    def here():
        tbl = db.t[name]
        tbl.cls = row_class
        return tbl

    return PerThread(here), row_class


store = Store(table("store", pk="key", key=str, value=str)[0])
profiles, Profile = table("profiles", id=int, name=str)
# priority is a rank: a moved todo takes a value between its new neighbours', so a move writes one row.
todos, Todo = table("todos", id=int, profile_id=int, title=str, done=bool, priority=float)
INDEXES.append("CREATE INDEX IF NOT EXISTS todos_in_order ON todos (profile_id, priority, id)")
# kind is "tool:<name>" for a tool's run, whose params (JSON) let it run again.
# started and ended are Unix times; a task a stopped server left running has no end.
tasks, Task = table("tasks", id=int, profile_id=int, tab=str, title=str, status=str, done=int, total=int, log=str,
                    result=str, kind=str, params=str, started=float, ended=float)
task_lines, TaskLine = table("task_lines", pk=("task_id", "n"), task_id=int, n=int, line=str)


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


def fits(row_id: int) -> bool:
    """Whether SQLite can hold this id; a bigger one is as unknown as a missing one."""
    return -2**63 <= row_id < 2**63


def by_id(table, row_id: int):
    """The row with this id, or None."""
    return table.get(row_id, default=None) if fits(row_id) else None


def missing_profile(profile_id: int) -> str:
    return "" if by_id(profiles, profile_id) else "That profile no longer exists."


def delete_profile(profile_id: int) -> str:
    """Delete the profile with everything it holds: its todos, its tasks and their logs, and the
    runs' output folders and uploads. Refused for the last profile, and while one of its tasks runs. Why not, or ''."""
    with transaction():
        if error := missing_profile(profile_id):
            return error
        if profiles.count == 1:
            return "Keep at least one profile: create another first."
        if db.execute("SELECT 1 FROM tasks WHERE profile_id = ? AND status = 'running'", [profile_id]).fetchone():
            return "A task of this profile is running: cancel it or let it end, then delete the profile."
        runs = db.execute("SELECT id, params FROM tasks WHERE profile_id = ?", [profile_id]).fetchall()
        db.execute("DELETE FROM task_lines WHERE task_id IN (SELECT id FROM tasks WHERE profile_id = ?)", [profile_id])
        db.execute("DELETE FROM tasks WHERE profile_id = ?", [profile_id])
        db.execute("DELETE FROM todos WHERE profile_id = ?", [profile_id])
        db.execute("DELETE FROM profiles WHERE id = ?", [profile_id])
    for task_id, params in runs:  # after the rows: a file left by a crash here is never shown to anyone
        shutil.rmtree(OUTPUTS / str(task_id), ignore_errors=True)
        for path in uploads_named(json.loads(params or "{}")):
            path.unlink(missing_ok=True)
    return ""


def uploads_named(params: dict) -> list[Path]:
    """The saved answers that are uploads: paths straight inside data/uploads/, and nothing else."""
    return [Path(value) for value in params.values() if isinstance(value, str) and is_upload(value)]


def is_upload(text: str) -> bool:
    path = Path(text)
    try:
        return path.parent == UPLOADS and not path.name.startswith(".") and path.is_file() and not path.is_symlink()
    except (OSError, ValueError):  # a name too long for the file system, or holding a NUL
        return False


def text_error(text: str, *, empty: str) -> str:
    """Why a todo title or profile name can't be saved, or ''."""
    if not text.strip():
        return empty
    if len(text) > MAX_TEXT:
        return f"Keep it to {MAX_TEXT} characters ({len(text)} now)."
    return ""


# Todo queries read and write only the rows they need, each in one statement or transaction, so their cost does
# not grow with the list and a second process (another server, a notebook) loses none of their updates.
TODO = "SELECT id, profile_id, title, done, priority FROM todos"
RETURNING = "RETURNING id, profile_id, title, done, priority"


def todo_rows(sql: str, args) -> list[Todo]:
    return [Todo(*values) for values in db.execute(sql, args)]


def todo_count(profile_id: int) -> int:
    return db.execute("SELECT count(*) FROM todos WHERE profile_id = ?", [profile_id]).fetchone()[0]


def todo_page(profile_id: int, page: int) -> list[Todo]:
    return todo_rows(f"{TODO} WHERE profile_id = ? ORDER BY priority, id LIMIT ? OFFSET ?",
                     [profile_id, PAGE, page * PAGE])


def todo_of(profile_id: int, todo_id: int) -> Todo | None:
    """The todo if it belongs to this profile; another profile's id is as unknown as a missing one."""
    found = fits(todo_id) and todo_rows(f"{TODO} WHERE id = ? AND profile_id = ?", [todo_id, profile_id])
    return found[0] if found else None


def page_of(todo: Todo) -> int:
    ahead = db.execute("SELECT count(*) FROM todos WHERE profile_id = ? AND (priority, id) < (?, ?)",
                       [todo.profile_id, todo.priority, todo.id]).fetchone()[0]
    return ahead // PAGE


def add_todo(profile_id: int, title: str) -> Todo:
    """A new todo at the end of the list."""
    return todo_rows("INSERT INTO todos (profile_id, title, done, priority) "
                     "SELECT ?, ?, 0, coalesce(max(priority) + 1, 0) FROM todos WHERE profile_id = ? "
                     f"{RETURNING}", [profile_id, title, profile_id])[0]


def change_todo(profile_id: int, todo_id: int, change: str, args=()) -> Todo | None:
    """The todo after `UPDATE todos SET {change}`, or None if it is not this profile's."""
    found = fits(todo_id) and todo_rows(f"UPDATE todos SET {change} WHERE id = ? AND profile_id = ? {RETURNING}",
                                        [*args, todo_id, profile_id])
    return found[0] if found else None


def delete_todo(profile_id: int, todo_id: int) -> bool:
    return fits(todo_id) and bool(db.execute("DELETE FROM todos WHERE id = ? AND profile_id = ? RETURNING id",
                                             [todo_id, profile_id]).fetchall())


def move_todo(profile_id: int, todo_id: int, by: int) -> Todo | None:
    """Move a todo `by` places (negative is up; past either end is to that end); None if it is not this profile's.

    The todo takes the rank halfway between its new neighbours', so a move writes one row. When their ranks are
    equal or have no float left between them (after about 50 moves into one gap), the list is renumbered first.
    """
    with transaction():
        if not (todo := todo_of(profile_id, todo_id)) or not by or not (gap := landing(todo, by)):
            return todo
        if not gap[0] < sum(gap) / 2 < gap[1]:
            renumber(profile_id)
            gap = landing(todo_of(profile_id, todo_id), by)
        return todo_rows(f"UPDATE todos SET priority = ? WHERE id = ? {RETURNING}", [sum(gap) / 2, todo_id])[0]


def landing(todo: Todo, by: int) -> tuple[float, float] | None:
    """The ranks (low, high) of the two todos that moving `by` places puts this one between; past either end of
    the list the far one is made up. None if the todo is at that end already."""
    beyond, toward, away = ("<", "DESC", "") if by < 0 else (">", "", "DESC")

    def ranks(order: str, offset: int) -> list[float]:
        return [rank for rank, in db.execute(
            f"SELECT priority FROM todos WHERE profile_id = ? AND (priority, id) {beyond} (?, ?) "
            f"ORDER BY priority {order}, id {order} LIMIT 2 OFFSET ?",
            [todo.profile_id, todo.priority, todo.id, offset])]

    found = ranks(toward, min(abs(by), 2**62) - 1) or ranks(away, 0)[:1]  # fewer todos that way: to the end
    if not found:
        return None
    near = found[0]
    far = found[1] if len(found) == 2 else near - 2 if by < 0 else near + 2
    return min(near, far), max(near, far)


def renumber(profile_id: int) -> None:
    db.execute("UPDATE todos SET priority = ranked.n FROM (SELECT id, row_number() OVER (ORDER BY priority, id) AS n "
               "FROM todos WHERE profile_id = ?) AS ranked WHERE todos.id = ranked.id", [profile_id])


# --- app -------------------------------------------------------------------------------------------------

# htmx swaps only 2xx answers by default; 404, 413 and 503 answers carry a one-line notice for the page to show.
# Indicator styles are in app.css: htmx would inject them as an inline <style>, which the page's CSP refuses.
HTMX_CONFIG = {"includeIndicatorStyles": False,
               "responseHandling": [{"code": "204", "swap": False}, {"code": "[23]..", "swap": True},
                                    {"code": "404|413|503", "swap": True},
                                    {"code": "...", "swap": False, "error": True}]}
# No inline script anywhere (the CSP forbids it): the page's own few lines are app.js and live-reload.js.
HEAD = (charset, viewport, Meta(name="htmx-config", content=json.dumps(HTMX_CONFIG)),
        Script(src="/static/htmx.min.js"), Script(src="/static/ws.js"), Script(src="/static/app.js"),
        *([Script(src="/static/live-reload.js")] if DEV else []),
        Link(rel="stylesheet", href="/static/pico.min.css"), Link(rel="stylesheet", href="/static/app.css"),
        Link(rel="icon", href="/static/favicon.svg", type="image/svg+xml"))


def session_secret(path: Path) -> str:
    """The cookie-signing key, made owner-only on first run. A file too short to be a key (a crash during the
    first start can leave it empty) counts as missing: given no key, FastHTML would write its own beside server.py."""
    try:
        key = path.read_text().strip()
    except FileNotFoundError:
        key = ""
    if len(key) >= 32:
        return key
    partial = path.with_name(f"{path.name}.{os.getpid()}")
    with os.fdopen(os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "w") as f:
        f.write(key := secrets.token_urlsafe(32))
    partial.replace(path)  # whole or not at all
    return key


DATA_LOCK: list[int] = []  # the descriptor holding data/server.lock, once this process owns data/


def data_owner() -> bool:
    """Whether this process owns data/: the lock is held until the process exits, so a second server on the same
    folder, or a start that fails because the port is taken, knows the tasks marked running are not its own."""
    if not DATA_LOCK:
        fd = os.open(DATA / "server.lock", os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(fd)
            return False
        DATA_LOCK.append(fd)
    return True


def mark_interrupted() -> None:
    """At start-up, the tasks a stopped server left running are interrupted: only the owner of data/ says so."""
    if data_owner():
        toolbox.reap_leftovers(OUTPUTS)  # first: what a killed server left running would write into those runs
        db.execute("UPDATE tasks SET status = 'interrupted', result = ? WHERE status = 'running'", [INTERRUPTED])


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


class KnownHost:
    """Refuses requests for a host name the app does not answer to: another site's name pointed at 127.0.0.1
    (DNS rebinding) would otherwise be same-origin with the app. Reads IPv6 hosts such as [::1]:5001, which
    Starlette's TrustedHostMiddleware cuts at the first colon."""

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        known = "*" in ALLOWED_HOSTS or scope["type"] not in ("http", "websocket") or host_name(scope) in ALLOWED_HOSTS
        if not known:
            return await Response("Refused: this app does not answer to that host name.", 400)(scope, receive, send)
        await self.app(scope, receive, send)


def host_name(scope) -> str:
    try:
        return urlsplit(f"//{Headers(scope=scope).get('host', '')}").hostname or ""
    except ValueError:  # such as an unclosed [
        return ""


# Scripts and styles only from this server (no inline script), and no framing by any page: another site could
# otherwise show this page invisibly under its own buttons and have the user click ours (clickjacking).
SECURITY_HEADERS = [
    (b"content-security-policy", b"default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
                                 b"connect-src 'self'; object-src 'none'; base-uri 'self'; form-action 'self'; "
                                 b"frame-ancestors 'none'"),
    (b"x-frame-options", b"DENY"),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"same-origin")]


class SecurityHeaders:
    """Adds SECURITY_HEADERS to every HTTP response. Sockets pass straight through: nothing is added per message."""

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)

        async def send_with_headers(message):
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", ()), *SECURITY_HEADERS]
            await send(message)

        await self.app(scope, receive, send_with_headers)


class BodyTooLarge(Exception):
    pass


class BodyLimit:
    """Refuses a request body over its route's limit (BODY_LIMITS, else MAX_BODY) before it fills memory: at once
    when Content-Length says so, and as soon as a chunked body passes the limit."""

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        limit = next((size for prefix, size in BODY_LIMITS.items() if scope["path"].startswith(prefix)), MAX_BODY)
        length = Headers(scope=scope).get("content-length", "0")
        if not length.isdigit() or int(length) > limit:
            return await too_large(limit)(scope, receive, send)
        received = 0

        async def receive_counted():
            nonlocal received
            message = await receive()
            received += len(message.get("body", b""))
            if received > limit:
                raise BodyTooLarge
            return message

        try:
            await self.app(scope, receive_counted, send)
        except BodyTooLarge:
            await too_large(limit)(scope, receive, send)


def notice(message: str, status: int, **headers) -> HTMLResponse:
    """A one-line answer that HTMX shows in the page's notice, whichever element asked."""
    return HTMLResponse(html.escape(message), status, headers={"HX-Retarget": "#notice", "HX-Reswap": "innerHTML",
                                                               **headers})


def too_large(limit: int) -> HTMLResponse:
    return notice(f"That is too much to send at once: the limit here is {limit // 1024:,} KiB.", 413)


def database_busy(request, error) -> HTMLResponse:
    return notice(BUSY, 503, **{"Retry-After": "1"})


class DirectSockets:
    """Hands websocket connections straight to their handler in SOCKETS.

    The session and exception middlewares after this one wrap the `send` of every frame, and a socket uses
    neither: it names its tab in the URL and handles its own errors. Host and Origin are checked before this.
    """

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] == "websocket" and (handler := SOCKETS.get(scope["path"])):
            return await handler(WebSocket(scope, receive, send))
        await self.app(scope, receive, send)


SOCKETS = {}  # websocket handlers by path
rt = APIRouter()  # the app's own routes, below; create_app() adds them and the add-ons' to each app it makes
ADDONS: list = []  # the add-on modules, imported by create_app()


def create_app() -> FastHTML:
    """The app: data/ made, the add-ons imported, every route added. `python server.py` calls it once; a test
    calls it for an app of its own.

    FastHTML() rather than fast_app(): fast_app's static route follows ../ out of the app folder. No default
    headers: they load htmx and helper scripts from a CDN; HEAD has what the page uses, served locally. Not
    FastHTMLWithLiveReload: it puts its script inline; static/live-reload.js is the same few lines. gc.freeze:
    what exists at start-up (modules, routes) lives as long as the server, and a full garbage collection walking
    it all would pause every tab and socket for about 20 ms at unpredictable moments.
    """
    make_data_folders()
    app = FastHTML(
        title=TITLE, default_hdrs=False, hdrs=HEAD, canonical=False, secret_key=session_secret(DATA / ".sesskey"),
        on_startup=[mark_interrupted, gc.freeze], on_shutdown=[interrupt_runs],
        exception_handlers={apsw.BusyError: database_busy},
        middleware=[Middleware(SecurityHeaders), Middleware(KnownHost), Middleware(SameOrigin), Middleware(BodyLimit),
                    Middleware(DirectSockets)])
    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    rt.to_app(app)
    ADDONS[:] = import_addons()
    for addon in ADDONS:
        if router := getattr(addon, "router", None):
            router.to_app(app)
    return app


def import_addons() -> list:
    """Every module addons/<name>.py (not starting with _), in name order. One may define `router`, a FastHTML
    APIRouter whose routes join the app, and `card()`, an FT shown in the workspace. Add-ons never import this
    module, so neither they nor a notebook using them start a server."""
    return [importlib.import_module(f"addons.{path.stem}") for path in sorted(ADDONS_DIR.glob("[!_]*.py"))]


# --- components ------------------------------------------------------------------------------------------


def Error(message: str, id: str):
    return Small(message, id=id, cls="error", role="alert")


def Notice():
    """Where the page shows an answer that belongs to no one element: the database is busy, a body too big."""
    return Div(id="notice", cls="error", role="alert")


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


def attr(text: str) -> str:
    """Text escaped for a double-quoted HTML attribute."""
    return html.escape(text, quote=False).replace('"', "&quot;")


MOVE_UP, MOVE_DOWN = json.dumps({"by": -1}), json.dumps({"by": 1})


def TodoItem(todo: Todo, error: str = "") -> Safe:
    """One todo. An HTML template rather than FT: a page renders PAGE of them on every add, move and page turn,
    and building and serializing the same FT elements took over 100 times as long."""
    i, done = todo.id, bool(todo.done)
    swap = f'hx-target="#todo-{i}" hx-swap="outerHTML"'
    move = f'hx-post="/todos/{i}/move" hx-target="#todo-page" hx-swap="outerHTML" class="outline"'
    return Safe(
        f'<li id="todo-{i}" class="todo{" done" if done else ""}">'
        f'<input type="checkbox" aria-label="Done" hx-post="/todos/{i}/toggle" {swap}{" checked" if done else ""}>'
        f'<input name="title" value="{attr(todo.title)}" aria-label="Title" hx-post="/todos/{i}/rename" '
        f'hx-trigger="change" {swap}>'
        f"<button {move} hx-vals='{MOVE_UP}' aria-label=\"Move up\">↑</button>"
        f"<button {move} hx-vals='{MOVE_DOWN}' aria-label=\"Move down\">↓</button>"
        f'<button hx-delete="/todos/{i}" {swap} class="outline" aria-label="Delete">✕</button>'
        f'{to_xml(Error(error, id=f"todo-{i}-error")) if error else ""}</li>')


def UnknownTodo(todo_id: int):
    return Li(Error(UNKNOWN_TODO, id=f"todo-{todo_id}-error"), id=f"todo-{todo_id}")


def Pager(page: int, last: int, total: int):
    def turn(label: str, to: int, name: str):
        return Button(label, hx_get="/todos", hx_vals={"page": to}, hx_target="#todo-page", hx_swap="outerHTML",
                      aria_label=name, disabled=to == page or not 0 <= to <= last,
                      id=f"todos-{name.split()[0].lower()}", cls="outline")

    shown = f"{page * PAGE + 1:,}–{min(total, (page + 1) * PAGE):,} of {total:,}"
    return Nav(turn("«", 0, "First page"), turn("‹", page - 1, "Previous page"), Span(shown),
               turn("›", page + 1, "Next page"), turn("»", last, "Last page"), aria_label="Todo pages", cls="pager")


def TodoPage(profile_id: int, page: int = 0, error: str = ""):
    """A page of the profile's todos, with buttons to the other pages when there are more than PAGE."""
    total = todo_count(profile_id)
    last = max(total - 1, 0) // PAGE
    page = max(0, min(page, last))
    items = Safe("".join(map(TodoItem, todo_page(profile_id, page))))
    return Div(Ul(items, Li(Error(error, id="todo-list-error")) if error else "", id="todo-list"),
               Pager(page, last, total) if total > PAGE else "", id="todo-page")


def NewTodo(draft: str = "", error: str = ""):
    return Form(
        Fieldset(Input(name="title", value=draft, placeholder="New todo", maxlength=MAX_TEXT, aria_label="New todo"),
                 Button("Add"), role="group"),
        Error(error, id="new-todo-error"),
        id="new-todo", hx_post="/todos", hx_target="#todo-page", hx_swap="outerHTML")


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
        id=own, cls=f"task {task.status}", **poll)


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


def field_text(value) -> str:
    """A parameter's default (JSON-like: a date is already ISO text, a choice its name) as its input shows it."""
    if value is None:
        return ""
    return "\n".join(map(str, value)) if isinstance(value, (list, tuple)) else str(value)


def FieldInput(field: toolbox.Field, value: str, checked: bool, invalid: bool):
    """The input for one parameter, by its kind, holding `value` (or `checked`, for a yes/no)."""
    named = dict(name=field.name, id=f"field-{field.name}", aria_invalid="true" if invalid else None)
    needed = dict(named, required=field.required)
    match field.kind:
        case "bool":
            return Input(type="checkbox", role="switch", value="true", checked=checked, **named)
        case "choice":
            unset = [] if field.required else [Option("", value="", selected=not value)]
            return Select(*unset, *(Option(choice, value=choice, selected=choice == value) for choice in field.choices),
                          **needed)
        case "lines":
            return Textarea(value, rows=4, placeholder="One per line", **needed)
        case "file":
            return Input(type="file", **needed)
        case "int":
            return Input(type="number", step="1", value=value, **needed)
        case "float":
            return Input(type="number", step="any", value=value, **needed)
        case "date":
            return Input(type="date", value=value, **needed)
        case _:
            return Input(type="text", value=value, **needed)


def ToolField(field: toolbox.Field, value: str, checked: bool, error: str):
    """A parameter's label, input, help and, after a refused run, the one line saying what is wrong."""
    widget = FieldInput(field, value, checked, invalid=bool(error))
    label = (widget, " ", field.label) if field.kind == "bool" else (field.label, widget)
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
        return ("" if field.kind == "file" else "\n".join(value) if isinstance(value, list) else value), bool(value)

    return Form(*(ToolField(field, *shown(field), errors.get(field.name, "")) for field in tool.fields),
                Button("Run"),
                id="tool-form", hx_post=f"/tools/{tool.name}", hx_encoding="multipart/form-data",
                enctype="multipart/form-data", hx_target="#task-list", hx_swap="afterbegin")


# --- websocket -------------------------------------------------------------------------------------------


LONE_SURROGATE = re.compile("[\ud800-\udfff]")


def scrub(text: str) -> str:
    """The text with lone surrogates (valid in JSON, not in UTF-8) replaced, so it can be sent and stored."""
    return text if text.isascii() else LONE_SURROGATE.sub("\ufffd", text)


EAGER = dict(eager_start=True) if sys.version_info >= (3, 12) else {}  # decided once: it is asked on every frame


def start_eagerly(coro) -> asyncio.Task:
    """A task that runs at once, up to its first wait, where Python can (3.12 on); from the loop's next turn before."""
    return asyncio.Task(coro, loop=asyncio.get_running_loop(), **EAGER)


@dataclass(eq=False)
class Pending:
    """A task's progress on its way to a tab: the latest bar, and the newest log lines since the last frame.

    A task's row shows its last TASK_LOG_LINES lines (its poll and a reload show no more), so a frame carries at
    most those, and a line count for the rest, which the full log has: a task logging thousands of lines a
    second costs its page, and the server that compresses every frame, no more than one logging fifty."""
    done: int = 0
    total: int = 0
    lines: deque = field(default_factory=deque)
    size: int = 0
    skipped: int = 0

    def add(self, done: int, total: int, lines: list[str]) -> None:
        self.done, self.total = done, total
        if len(lines) > TASK_LOG_LINES:
            self.skipped += len(lines) - TASK_LOG_LINES
            lines = lines[-TASK_LOG_LINES:]
        self.lines.extend(lines)
        self.size += sum(map(len, lines))
        while len(self.lines) > TASK_LOG_LINES or self.size > TAB_LOG_BACKLOG:
            self.size -= len(self.lines.popleft())
            self.skipped += 1

    def frame(self, task_id: int) -> str:
        return ProgressUpdate(task_id, self.done, self.total, self.lines, self.skipped)


@dataclass(eq=False)
class Tab:
    """One open page: its socket, bounded chat history, the reply streaming into it and the frames on their way.

    Nothing waits for the page to read: send() queues a frame, and a writer started for the socket sends what
    is queued and ends. Progress waits per task, so a page that falls behind gets the latest bar and the log
    lines it missed in one frame; a page that falls OUTBOX_FRAMES other frames behind is closed.
    """
    socket: WebSocket
    history: deque = field(default_factory=lambda: deque(maxlen=2 * CHAT_TURNS))
    reply: asyncio.Task | None = None
    llm: object = None  # the ollama.AsyncClient, made on the first message: building one takes ~20 ms
    outbox: deque = field(default_factory=deque)
    progress: dict = field(default_factory=dict)  # task id -> Pending
    writer: asyncio.Task | None = None
    open: bool = True

    def send(self, *parts) -> None:
        if not self.open:
            return
        if len(self.outbox) >= OUTBOX_FRAMES:
            return self.drop()
        self.outbox.append(to_xml(*parts, indent=False))
        self.flush()

    def report(self, task_id: int, done: int, total: int, lines: list[str]) -> None:
        if not self.open:
            return
        if (pending := self.progress.get(task_id)) is None:  # not setdefault: it would build a Pending every time
            pending = self.progress[task_id] = Pending()
        pending.add(done, total, lines)
        self.flush()

    def finish(self, task_id: int, *parts) -> None:
        """The task's last frames, in order: the progress not sent yet, then its row."""
        if pending := self.progress.pop(task_id, None):
            self.outbox.append(pending.frame(task_id))
        self.send(*parts)

    def flush(self) -> None:
        """Start a writer unless one is sending. It starts eagerly: a page that is reading gets the frame now, in
        the caller's turn of the loop, not after every other task that is due in that turn has run."""
        if not self.writer or self.writer.done():
            self.writer = start_eagerly(self.write())

    async def write(self) -> None:
        try:
            while self.outbox or self.progress:
                if self.outbox:
                    text = self.outbox.popleft()
                else:
                    task_id, pending = self.progress.popitem()
                    text = pending.frame(task_id)
                try:
                    await self.socket.send_text(text)
                except UnicodeEncodeError:
                    await self.socket.send_text(scrub(text))
        except (WebSocketDisconnect, RuntimeError):  # the page has gone: nothing more to queue for it
            self.open = False

    def drop(self) -> None:
        """Close a page that stopped reading: its frames would pile up without bound."""
        log.warning("closing a tab that fell %s frames behind", len(self.outbox))
        self.close()
        self.outbox.clear()
        self.progress.clear()
        self.writer = asyncio.create_task(self.hang_up())

    async def hang_up(self) -> None:
        with suppress(WebSocketDisconnect, RuntimeError):
            await self.socket.close(code=1013, reason="This page fell behind: reload it.")

    def close(self) -> None:
        self.open = False
        for job in (self.writer, self.reply):
            if job:
                job.cancel()


TABS: dict[str, Tab] = {}  # open pages by tab id; empty again once every page has closed
TAB_ID = re.compile(r"[\w-]{1,64}")


# --- chat ------------------------------------------------------------------------------------------------
# The chat pane talks to a local Ollama over the page's socket. ollama is imported by the first message, in a
# worker thread, not at start-up: importing it costs about a third of a second, and many runs never chat.


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
                 ws_send=True),  # app.js clears it once sent
            Form(Input(type="hidden", name="type", value="stop"), Button("Stop", cls="secondary"), ws_send=True),
            cls="chat-controls"),
        id="chat")


async def best_model(client) -> str:
    """The largest installed chat model; '' when there is none.

    Bigger models answer better; set OLLAMA_MODEL to trade quality for speed. Embedding models cannot chat.
    """
    def chats(m):
        return "embed" not in (m.model or "") and "bert" not in ((m.details and m.details.family) or "")

    largest = max(filter(chats, (await client.list()).models), key=lambda m: m.size or 0, default=None)
    return largest.model if largest else ""


def ollama_problem(error: Exception, model: str) -> str:
    """One sentence a user can act on, for whatever stopped a reply."""
    import ollama  # already imported by reply()

    if isinstance(error, (ConnectionError, httpx.ConnectError)):
        return f"Ollama is not reachable at {OLLAMA_HOST}: start it with `ollama serve`, then send again."
    if isinstance(error, ollama.ResponseError) and error.status_code == 404:
        return f"The model {model} is not installed: run `ollama pull {model}` or set OLLAMA_MODEL to an installed one."
    if isinstance(error, ollama.ResponseError):
        return f"Ollama answered with an error: {error.error}"
    return f"The reply from Ollama broke off midway ({error or type(error).__name__}); send again."


async def reply(tab: Tab, prompt: str) -> None:
    """Stream the model's answer into the tab chunk by chunk, as Ollama produces it."""
    ollama = await asyncio.to_thread(importlib.import_module, "ollama")
    reply_id = f"reply-{secrets.token_hex(6)}"
    chunks, model = [], OLLAMA_MODEL
    try:
        tab.send(ChatAppend(ChatMessage("you", prompt), ChatMessage("assistant", id=reply_id)))
        tab.history.append({"role": "user", "content": prompt})
        client = tab.llm = tab.llm or ollama.AsyncClient(host=OLLAMA_HOST)
        model = model or await best_model(client)
        if not model:
            return tab.send(ChatNote("Ollama has no model yet: run `ollama pull llama3.2`, then send again."))
        finished = False
        async for part in await client.chat(model=model, messages=list(tab.history), stream=True):
            if content := scrub(part.message.content or ""):
                chunks.append(content)
                tab.send(Span(content, hx_swap_oob=f"beforeend:#{reply_id}"))
            finished = part.done
        if not finished:
            raise httpx.RemoteProtocolError("the stream ended before Ollama said it was done")
    except asyncio.CancelledError:
        tab.send(ChatNote("Stopped."))
        raise
    except (ConnectionError, httpx.HTTPError, ollama.ResponseError, ValueError) as error:
        tab.send(ChatNote(ollama_problem(error, model)))
    except Exception:
        log.exception("chat reply failed")
        tab.send(ChatNote("The reply failed: the server's log says why. Send again."))
    finally:
        if chunks:
            tab.history.append({"role": "assistant", "content": "".join(chunks)})
        tab.reply = None


def ws_frame(tab: Tab, text: str | None) -> None:
    """Handle one frame from the page: {"type": "chat", "msg": ...} or {"type": "stop"}."""
    if text is None or len(text.encode(errors="surrogatepass")) > MAX_FRAME:
        return tab.send(ChatNote(f"Send JSON text frames of at most {MAX_FRAME // 1024} KiB."))
    try:
        frame = json.loads(text)
    except (ValueError, RecursionError):
        return tab.send(ChatNote("That frame was not JSON: send {\"type\": \"chat\", \"msg\": \"...\"}."))
    kind = frame.get("type") if isinstance(frame, dict) else None
    if kind == "chat":
        prompt = frame.get("msg")
        if not isinstance(prompt, str) or not (prompt := scrub(prompt).strip()):
            return tab.send(ChatNote("Type a message first."))
        if tab.reply:
            return tab.send(ChatNote("A reply is still streaming: wait for it or press Stop."))
        tab.reply = asyncio.create_task(reply(tab, prompt))
    elif kind == "stop":
        if not tab.reply:
            return tab.send(ChatNote("Nothing to stop."))
        tab.reply.cancel()
    else:
        named = f" {scrub(kind)[:40]!r}" if isinstance(kind, str) else ""
        tab.send(ChatNote(f"Unknown frame type{named}: use \"chat\" or \"stop\"."))


async def ws(socket: WebSocket):
    tab_id = socket.query_params.get("tab", "")
    await socket.accept()
    if not TAB_ID.fullmatch(tab_id):
        return await socket.close(code=1008, reason="Connect to /ws?tab=<the tab id of the page>.")
    tab = TABS[tab_id] = Tab(socket)
    try:
        while (message := await socket.receive())["type"] == "websocket.receive":
            ws_frame(tab, message.get("text"))
    finally:
        tab.close()
        if tab.llm:
            await tab.llm.close()
        if TABS.get(tab_id) is tab:
            del TABS[tab_id]


SOCKETS["/ws"] = ws


async def live_reload(socket: WebSocket) -> None:
    """Held open while the page is; static/live-reload.js reloads the page once it closes and the server is
    back. A page that goes away is no error (FastHTML's own handler logged one for every page change)."""
    await socket.accept()
    while (await socket.receive())["type"] == "websocket.receive":
        pass


if DEV:
    SOCKETS["/live-reload"] = live_reload


# --- tasks -----------------------------------------------------------------------------------------------
# The task contract, for add-on modules and notebooks:
#   async def fn(report, **params) -> str | FT
#     `await report(done, total, line="")` records progress: every line and the last done/total reach the
#     `tasks` table and the page of the tab that started the task, if it is still open (a few times a second,
#     however often fn reports). done and total become whole numbers by int(); what int() refuses fails the
#     task right there. fn may raise: the task fails and the page shows the exception's message, never a
#     traceback. Cancel arrives as asyncio.CancelledError. A returned FT is stored as its HTML; a returned str
#     as escaped text.
#   start_task(req, *, title, fn, params) -> FT
#     Starts fn(report, **params) on the server's event loop for the request's tab (X-Tab header) and profile,
#     and returns the task-panel row for HTMX to insert. Call it from any handler, plain `def` or `async def`.
# fn runs on the event loop, so it must await whatever takes time; a tool (below) runs in a process of its own.


def new_task(req, *, title: str, kind: str = "", params: dict | None = None) -> Task:
    """The row of a task starting now for the request's tab and profile. A plain INSERT: fastlite's insert reads
    the table's schema three times first, and 500 tabs starting tasks at once waited on that."""
    row = dict(profile_id=current_profile(req.session).id, tab=req.headers.get("x-tab", ""), title=scrub(title),
               status="running", done=0, total=0, log="", result="", kind=kind,
               params="" if params is None else json.dumps(params), started=time.time(), ended=None)
    task_id = db.execute(f"INSERT INTO tasks ({', '.join(row)}) VALUES ({', '.join('?' * len(row))}) RETURNING id",
                         list(row.values())).fetchone()[0]
    return Task(id=task_id, **row)


def start_task(req, *, title: str, fn, params: dict):
    task = new_task(req, title=title)
    launch(task, partial(fn, **params))
    return TaskRow(task)


def launch(task: Task, work) -> None:
    """Run `await work(report)` as the task on the event loop, whether the handler runs there or in a worker
    thread."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return anyio.from_thread.run_sync(launch, task, work)
    run = RUNS[task.id] = Run(task)
    run.job = asyncio.create_task(run.execute(work))


def result_html(result) -> str:
    """A finished task's result as HTML: a str is text, Safe HTML and FT are markup, and a result that cannot
    be shown is its repr (the work is done either way)."""
    if isinstance(result, str) and not isinstance(result, Safe):
        return html.escape(result)
    try:
        return to_xml(result)
    except Exception:
        log.exception("showing a task's result failed")
        return to_xml(Pre(repr(result)))


def failed(message: str, shown: str = "") -> dict:
    """A failed task's row: its one line, then what the run showed before it failed (a notebook's outputs up to the
    failing cell and the executed notebook: HTML toolbox made safe)."""
    return dict(status="failed", result=scrub(html.escape(f"Failed: {message}") + shown))


def save_tasks(batch: list[tuple[tuple, int, list[str]]]) -> None:
    """Write tasks' rows (status, done, total, log, result, id) and their new log lines, numbered from the given
    first one, in one transaction; runs in a worker thread. Each through one executemany, whose loop is in C and
    lets go of the GIL on every row: a Python call per task, or one JSON of every row, held the GIL long enough,
    with hundreds of tasks running, to delay every tab's frames."""
    with transaction():
        db.conn.executemany("INSERT OR IGNORE INTO task_lines (task_id, n, line) "
                            "SELECT ?, ? + key, value FROM json_each(?)",
                            [(row[-1], first, json.dumps(lines)) for row, first, lines in batch if lines])
        # A plain UPDATE: fastlite's update re-reads the table schema on every call. A task's end is when its
        # final row is written, in the database's clock: the row carries no time of its own.
        db.conn.executemany("UPDATE tasks SET status = ?1, done = ?2, total = ?3, log = ?4, result = ?5, "
                            "ended = CASE WHEN ?1 = 'running' THEN NULL "
                            "ELSE coalesce(ended, (julianday('now') - 2440587.5) * 86400) END WHERE id = ?6",
                            [row for row, _, _ in batch])


def save_each(runs: list, batch: list) -> list[tuple]:
    """Write each run's row on its own; the runs whose row the database refuses, each with why. Such a row is
    written as failed, without its progress, so that a restart does not show it running."""
    refused = []
    for run, (row, first, lines) in zip(runs, batch):
        try:
            save_tasks([(row, first, lines)])
        except Exception as error:
            refused.append((run, error))
            with suppress(Exception):
                save_tasks([(("failed", 0, 0, "", html.escape(f"Failed: {toolbox.one_line(error)}"), row[-1]), first, [])])
    return refused


class Saver:
    """Writes running tasks to the database, one write at a time, each one thread hop and one transaction however
    many tasks it holds: all their progress every SAVE_EVERY seconds, and at once when a task ends, with every
    other task that ended meanwhile. A write that fails puts its rows back, and the next one carries them."""

    def __init__(self):
        self.unsaved: dict = {}  # runs with progress not written yet, in order (a dict used as a set)
        self.ended: list[asyncio.Future] = []  # resolved by the next write that lands: it holds their final rows
        self.wake: asyncio.Future | None = None
        self.writer: asyncio.Task | None = None

    def mark(self, run) -> None:
        self.unsaved[run] = None
        if not self.writer:
            self.writer = asyncio.create_task(self.write_all())

    async def save(self, run) -> None:
        """Returns once the run's row as it stands now is in the database. Hundreds of tasks ending at once
        share a write, rather than each waiting its turn for one of its own."""
        written = asyncio.get_running_loop().create_future()
        self.ended.append(written)
        self.mark(run)
        if self.wake and not self.wake.done():
            self.wake.set_result(None)
        await written

    async def write_all(self) -> None:
        try:
            while self.unsaved:
                if not self.ended:
                    self.wake = asyncio.get_running_loop().create_future()
                    await asyncio.wait([self.wake], timeout=SAVE_EVERY)
                if not await self.write():
                    await asyncio.sleep(SAVE_EVERY)
        finally:
            self.writer = None

    async def write(self) -> bool:
        """Write every marked run's row as it stands; whether it landed."""
        runs, ended = list(self.unsaved), self.ended
        self.unsaved, self.ended = {}, []
        batch = [run.snapshot() for run in runs]
        try:
            await asyncio.to_thread(save_tasks, batch)
        except apsw.BusyError:
            log.warning("the database is busy: the progress of %s task(s) waits for the next save", len(runs))
            for run, (_, first, lines) in zip(runs, batch):
                run.unsaved[:0], run.lines_saved = lines, first
            self.unsaved = dict.fromkeys(runs) | self.unsaved
            self.ended[:0] = ended
            return False
        except Exception as error:  # a row the database refuses: each alone, so it holds back no other task
            log.error("saving task progress failed; saving each task alone", exc_info=error)
            for run, refused in await asyncio.to_thread(save_each, runs, batch):
                run.fail(f"its progress could not be saved ({toolbox.one_line(refused)})")
        for written in ended:
            if not written.done():  # its task was cancelled while it waited
                written.set_result(None)
        return True


SAVER = Saver()


@dataclass(eq=False)
class Run:
    """A running task's row, kept current in memory, pushed to its tab at most every PUSH_EVERY seconds and saved
    with every other running task's every SAVE_EVERY seconds; both again at the end."""
    task: Task
    tail: deque = field(default_factory=lambda: deque(maxlen=TASK_LOG_LINES))
    unsent: list = field(default_factory=list)
    unsaved: list = field(default_factory=list)
    lines_saved: int = 0
    pushed: float = 0.0
    yielded: float = 0.0
    timer: asyncio.TimerHandle | None = None
    job: asyncio.Task | None = None
    cancelled: bool = False  # by its Cancel button; a server that stops cancels the rest, which are interrupted
    failure: str = ""  # why the server stopped it, when neither Cancel nor a stopping server did
    ending: bool = False

    @property
    def current(self) -> Task:
        return replace(self.task, log="".join(self.tail))

    async def report(self, done: int, total: int, line: str = "") -> None:
        try:
            bar = int(done), int(total)
        except (TypeError, ValueError, OverflowError):  # fails this task here, not the tab's frames later
            bar = None
        if bar is None or not all(map(fits, bar)):  # one that SQLite cannot store would fail every task's save
            raise ValueError(f"report(done, total) takes whole numbers below 2**63, not {done!r:.40} and "
                             f"{total!r:.40}")
        self.task.done, self.task.total = bar
        if line:
            line = scrub(str(line))
            self.tail.append(line + "\n")
            self.unsent.append(line)
            self.unsaved.append(line)
        if not self.timer:
            if (wait := self.pushed + PUSH_EVERY - time.monotonic()) <= 0:
                self.push()
            else:
                self.timer = asyncio.get_running_loop().call_later(wait, self.push)
        SAVER.mark(self)
        if time.monotonic() - self.yielded >= REPORT_SLICE:  # every other tab runs between slices
            await asyncio.sleep(0)
            self.yielded = time.monotonic()

    def push(self) -> None:
        """Send the tab the latest bar and the log lines since the last push."""
        self.timer, self.pushed = None, time.monotonic()
        lines, self.unsent = self.unsent, []
        if tab := TABS.get(self.task.tab):
            tab.report(self.task.id, self.task.done, self.task.total, lines)

    def snapshot(self) -> tuple[tuple, int, list[str]]:
        """The row as it stands, the log lines not saved yet and the number of the first, for a write. Plain
        values, not a copy of the Task: a copy costs more than the write, with hundreds of tasks saved at once."""
        lines, first, self.unsaved = self.unsaved, self.lines_saved, []
        self.lines_saved += len(lines)
        task = self.task
        return (task.status, task.done, task.total, "".join(self.tail), task.result, task.id), first, lines

    async def execute(self, work) -> None:
        try:
            outcome = dict(status="done", result=scrub(result_html(await work(self.report))))
        except asyncio.CancelledError:
            outcome = failed(self.failure) if self.failure else \
                dict(status="cancelled", result="Cancelled.") if self.cancelled else \
                dict(status="interrupted", result=INTERRUPTED)
        except toolbox.ToolFailed as error:  # its traceback is in the log already
            outcome = failed(str(error), error.shown)
        except Exception as error:
            log.exception("task %s (%s) failed", self.task.id, self.task.title)
            outcome = failed(str(error) or type(error).__name__)
        await asyncio.shield(self.end(outcome))  # a second Cancel, or the server stopping, cannot cut it short

    def fail(self, message: str) -> None:
        """Stop the task as failed, with this one line, unless it is ending already."""
        if not self.ending:
            self.failure = message
            self.job.cancel()

    async def end(self, outcome: dict) -> None:
        self.ending = True
        if self.timer:
            self.timer.cancel()
        self.push()
        # What a poll or Cancel shows meanwhile, and the final frame
        self.task = replace(self.task, log="".join(self.tail), ended=time.time(), **outcome)
        await SAVER.save(self)
        RUNS.pop(self.task.id)
        if tab := TABS.get(self.task.tab):
            tab.finish(self.task.id, TaskRow(self.task)(hx_swap_oob="true"))


RUNS: dict[int, Run] = {}  # tasks running now, by id


async def interrupt_runs() -> None:
    """A server that stops saves its running tasks as interrupted, with their progress, before it exits."""
    if jobs := [run.job for run in RUNS.values()]:
        for job in jobs:
            job.cancel()
        await asyncio.wait(jobs, timeout=BUSY_TIMEOUT)


def task_of(sess: dict, task_id: int) -> Task | None:
    """The task as it stands now, if it is this profile's."""
    task = run.current if (run := RUNS.get(task_id)) else by_id(tasks, task_id)
    return task if task and task.profile_id == current_profile(sess).id else None


# --- tools -----------------------------------------------------------------------------------------------
# Every public function defined in tools/*.py, and every notebook there with a cell tagged `parameters`, is a
# tool (toolbox.py reads them). A run is a task whose work happens in a child process: a sync tool, a tool that
# never reports, or one that crashes holds up no other tab, and Cancel can always end it.


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
            if field.kind == "file" and params.get(field.name)}


def file_url(task_id: int, name: str) -> str:
    return f"/tasks/{task_id}/files/{quote(name)}"


def start_tool(req, tool: toolbox.Tool, params: dict):
    """Start a run of the tool, in a child process whose working folder is data/outputs/<task id>/."""
    task = new_task(req, title=tool.title, kind=f"tool:{tool.name}", params=params)

    async def work(report) -> Safe:
        return Safe(await toolbox.run_tool(tool, params, report=report, outputs=OUTPUTS / str(task.id),
                                           download_url=partial(file_url, task.id)))

    launch(task, work)
    return TaskRow(task)


def run_form(req, name: str, form) -> tuple | FT:
    """Start a run from the tool's submitted form; or, when an answer does not fit, the form again with a line
    for each wrong field, and nothing run or kept."""
    if not (tool := TOOLS.tool(name)):
        return notice(f"There is no tool named {name}: reload the page to see the tools there are.", 404)
    sent, saved = {}, []
    for param in tool.fields:
        values = form.getlist(param.name)
        if param.kind == "file":
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


# --- pages -----------------------------------------------------------------------------------------------


def Page(bodykw: dict, heading: str, *content):
    """A whole page. Its HTMX requests name its tab, and its socket brings that tab's task progress."""
    tab = secrets.token_urlsafe(12)
    bodykw.update(hx_headers=json.dumps({"X-Tab": tab}), hx_ext="ws", ws_connect=f"/ws?tab={tab}")
    return (Title(heading), Header(H1(TITLE), cls="container"),
            Main(Notice(), *content, cls="container"))


def TaskList(profile_id: int, kind: str | None = None):
    """The profile's newest tasks (of one kind, if given), running ones as they stand in memory: a running task
    is saved only every SAVE_EVERY."""
    where, args = ("profile_id = ?", [profile_id]) if kind is None else \
        ("profile_id = ? AND kind = ?", [profile_id, kind])
    saved = tasks(where=where, where_args=args, order_by="id desc", limit=20)
    return Div(*(TaskRow(run.current if (run := RUNS.get(task.id)) else task) for task in saved), id="task-list")


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


def Workspace(profile: Profile, error: str = ""):
    return Div(
        ProfileMenu(profile, error),
        Section(H2(f"Todos · {profile.name}"), TodoPage(profile.id), NewTodo(), id="todos"),
        ToolMenu(),
        Section(H2("Tasks"), TaskList(profile.id), id="tasks"),
        *(addon.card() for addon in ADDONS if hasattr(addon, "card")),
        id="workspace")


def ToolPage(tool: toolbox.Tool, profile: Profile):
    return (Nav(A("← All tools", href="/"), cls="back"),
            Article(H2(tool.title), P(tool.help, cls="help") if tool.help else "", ToolForm(tool), id="tool"),
            Section(H2(f"Runs · {profile.name}"), TaskList(profile.id, f"tool:{tool.name}"), id="tasks"))


# --- routes ----------------------------------------------------------------------------------------------


@rt.get("/favicon.ico")
def favicon():
    """Browsers ask for this whatever the page names: the same icon, rather than a 404 in the log each time."""
    return FileResponse(STATIC / "favicon.svg", media_type="image/svg+xml")


@rt.get("/")
def index(sess, bodykw):
    return Page(bodykw, TITLE, Div(Workspace(current_profile(sess)), ChatPane(), cls="layout"))


@rt.post("/profiles")
def profiles_create(sess, name: str = ""):
    if not (error := text_error(name, empty=NO_NAME)):
        choose_profile(sess, profiles.insert(name=name.strip()).id)
    return Workspace(current_profile(sess), error)


@rt.post("/profiles/switch")
def profiles_switch(sess, id: int = 0):
    if not (error := missing_profile(id)):
        choose_profile(sess, id)
    return Workspace(current_profile(sess), error)


@rt.post("/profiles/{id}/rename")
def profiles_rename(sess, id: int, name: str = ""):
    with transaction():
        if not (error := missing_profile(id) or text_error(name, empty=NO_NAME)):
            profiles.update(id=id, name=name.strip())
    return Workspace(current_profile(sess), error)


@rt.delete("/profiles/{id}")
def profiles_delete(sess, id: int):
    return Workspace(current_profile(sess), delete_profile(id))


@rt.get("/todos")
def todos_page(sess, page: int = 0):
    return TodoPage(current_profile(sess).id, page)


@rt.post("/todos")
def todos_add(sess, title: str = ""):
    if error := text_error(title, empty=NO_TITLE):
        return NewTodo(title, error)(hx_swap_oob="true"), HttpHeader("HX-Reswap", "none")
    todo = add_todo(current_profile(sess).id, title.strip())
    return TodoPage(todo.profile_id, page_of(todo)), NewTodo()(hx_swap_oob="true")


@rt.post("/todos/{id}/toggle")
def todos_toggle(sess, id: int):
    todo = change_todo(current_profile(sess).id, id, "done = NOT done")
    return TodoItem(todo) if todo else UnknownTodo(id)


@rt.post("/todos/{id}/rename")
def todos_rename(sess, id: int, title: str = ""):
    profile_id = current_profile(sess).id
    if error := text_error(title, empty=NO_TITLE):
        todo = todo_of(profile_id, id)
        return TodoItem(todo, error) if todo else UnknownTodo(id)
    todo = change_todo(profile_id, id, "title = ?", [title.strip()])
    return TodoItem(todo) if todo else UnknownTodo(id)


@rt.delete("/todos/{id}")
def todos_delete(sess, id: int):
    return "" if delete_todo(current_profile(sess).id, id) else UnknownTodo(id)


@rt.post("/todos/{id}/move")
def todos_move(sess, id: int, by: int = 0):
    """Move a todo `by` places (negative is up) and show the page it lands on."""
    profile_id = current_profile(sess).id
    if not (todo := move_todo(profile_id, id, by)):
        return TodoPage(profile_id, error=UNKNOWN_TODO)
    return TodoPage(profile_id, page_of(todo))


@rt.get("/tasks/{id}")
def tasks_row(sess, id: int):
    task = task_of(sess, id)
    return TaskRow(task) if task else UnknownTask(id)


@rt.get("/tasks/{id}/log")
def tasks_log(sess, id: int):
    if not task_of(sess, id):
        return UnknownTask(id)
    lines = db.execute("SELECT line FROM task_lines WHERE task_id = ? ORDER BY n", [id]).fetchall()
    return Response("".join(f"{line}\n" for line, in lines), media_type="text/plain")


@rt.get("/tasks/{id}/files/{name}")
def tasks_file(sess, id: int, name: str):
    """A file a run of this profile's wrote, straight inside its outputs folder; images show, the rest download."""
    path = OUTPUTS / str(id) / name
    hidden_or_elsewhere = "/" in name or "\\" in name or name.startswith(".")
    if hidden_or_elsewhere or not task_of(sess, id) or path.is_symlink() or not path.is_file():
        return notice(NO_FILE, 404)
    shown = path.suffix.lower() in INLINE_SUFFIXES
    return FileResponse(path, filename=name, content_disposition_type="inline" if shown else "attachment")


@rt.post("/tasks/{id}/cancel")
async def tasks_cancel(sess, id: int):
    """Cancel and answer with the row as it ends; a task that ignores the cancel for a second keeps polling."""
    if not await asyncio.to_thread(task_of, sess, id):
        return UnknownTask(id)
    if run := RUNS.get(id):
        run.cancelled = True
        run.job.cancel()
        await asyncio.wait([run.job], timeout=1)
        return TaskRow(run.current)
    return TaskRow(await asyncio.to_thread(tasks.get, id))


@rt.post("/tasks/{id}/again")
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


@rt.get("/tools/{name}")
def tools_page(sess, bodykw, name: str):
    if not (tool := TOOLS.tool(name)):
        return FtResponse(Page(bodykw, f"No tool {name} · {TITLE}",
                               P(f"There is no tool named {name}: the main page lists the tools there are.",
                                 cls="error", role="alert"), Nav(A("← All tools", href="/"), cls="back")),
                           status_code=404)
    return Page(bodykw, f"{tool.title} · {TITLE}", *ToolPage(tool, current_profile(sess)))


@rt.post("/tools/{name}")
async def tools_run(req, name: str):
    """Uploads are written and modules imported in a worker thread: the event loop only reads the body."""
    form = await req.form()
    try:
        return await anyio.to_thread.run_sync(run_form, req, name, form)
    finally:
        await form.close()


# --- serve -----------------------------------------------------------------------------------------------

def port_taken() -> str:
    """Why the server cannot listen on HOST:PORT, in one line, or ''. uvicorn would say only "[Errno 98] Address
    already in use", naming neither the port nor how to choose another."""
    host = HOST.strip("[]")
    try:
        with socket.create_server((host, PORT), family=socket.AF_INET6 if ":" in host else socket.AF_INET):
            return ""
    except OSError as error:
        return f"server.py: cannot listen on {HOST} port {PORT} ({error.strerror}): stop what uses it, or choose " \
               f"another port with PORT={PORT + 1} python server.py"


if __name__ == "__main__":
    if problem := port_taken():
        sys.exit(problem)
    # The page's socket runs over loopback by default, where compressing frames costs a tenth of the server's CPU.
    serving = dict(host=HOST, port=PORT, ws_per_message_deflate=False)
    if DEV:
        # A change to a module or notebook restarts the server. tools/ is left out: the next page reads the tools
        # again without a restart, so a run going on and what a tab holds survive an edit there; so are data/ and
        # JupyterLab's checkpoints. The reloader imports the app by name in a process of its own; this one builds
        # nothing but data/, which uvicorn must find to leave out (a path it cannot find it reads as a pattern).
        make_data_folders()
        uvicorn.run(f"{Path(__file__).stem}:create_app", factory=True, app_dir=str(APP_DIR), reload=True,
                    reload_dirs=[str(APP_DIR)], reload_includes=["*.py", "*.ipynb"],
                    reload_excludes=[str(DATA), str(TOOLS_DIR), ".ipynb_checkpoints/*"], **serving)
    else:
        uvicorn.run(create_app(), **serving)  # this very module: it is imported once
