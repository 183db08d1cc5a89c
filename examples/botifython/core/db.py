"""The app's database: SQLite in data/ (the default), or PostgreSQL when DATABASE_URL is set; the schema,
transactions, and the app's own tables.

One API over both: `db.execute(sql, args)` (rows to fetchone/fetchall or iterate), `db.executemany(sql, rows)`,
`transaction()`, and `table(...)` for a table of MiniDataAPI calls. SQL is written once, in the subset both speak:
? placeholders, "quoted" names, INSERT ... ON CONFLICT, RETURNING, UPDATE ... FROM, no date functions (the app
passes times in). Importable from a notebook without the web stack: `from core.db import db, store` reads and
writes what the app does. Nothing opens at import; the first connection of a process makes data/ and the tables.
"""
import json
import threading
from contextlib import contextmanager
from dataclasses import field, make_dataclass

from settings import DATA, DATABASE_URL

UPLOADS = DATA / "uploads"
OUTPUTS = DATA / "outputs"  # a run's files: data/outputs/<task id>/, also the tool's working directory
BUSY = "The database is busy (another program is writing); try again."

# Handlers that touch the database are plain `def`: FastHTML runs them in a thread pool, so a query waiting on
# another program's lock, or a slow one, holds one worker thread and never the event loop that serves every
# tab, socket and static file. A handler written as `def` is therefore always safe. Coroutines (the socket and
# tasks) reach the database through `await asyncio.to_thread(...)`.


def make_data_folders() -> None:
    """data/ and its folders, owner-only (also a data/ an older version made 0755). A DATA_DIR's missing parents
    are made as mkdir -p makes them (~/.local/share on a fresh account)."""
    for folder in (DATA, UPLOADS, OUTPUTS):
        folder.mkdir(mode=0o700, parents=folder is DATA, exist_ok=True)
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


SCHEMA: list = []  # (name, primary key, columns) of each table
INDEXES: list[str] = []
SCHEMA_KEY = 0x666C6B73  # the lock that makes PostgreSQL's schema one process at a time
SCHEMA_MADE = threading.Lock()


def make_schema(database) -> None:
    """Create each missing table, add each missing column, and give ids their never-reused form where an older
    version made them without (a deleted profile's or task's id handed to a new one would give it the old one's
    sessions, links and output folder). A table that already fits is left alone. All of it is one write
    transaction, so another process starting at the same moment, or serving, never sees a table half made."""
    with database.transaction(key=SCHEMA_KEY):
        for name, pk, columns in SCHEMA:
            if not (have := database.columns(name)):
                database.execute(create_table_sql(name, pk, columns))
                continue
            for column, kind in columns.items():
                if column not in have:
                    database.execute(f'ALTER TABLE "{name}" ADD COLUMN "{column}" {backend.SQL_TYPES[kind]}')
            if pk == "id":
                database.fix_ids(name)
        for sql in INDEXES:
            database.execute(sql)


def create_table_sql(name: str, pk: str | tuple, columns: dict) -> str:
    defined = [f'"{column}" ' + (backend.ID if column == pk == "id" else
                                 backend.SQL_TYPES[kind] + (" PRIMARY KEY" if column == pk else ""))
               for column, kind in columns.items()]
    if isinstance(pk, tuple):
        defined.append("PRIMARY KEY (" + ", ".join(f'"{column}"' for column in pk) + ")")
    return f'CREATE TABLE "{name}" ({", ".join(defined)})'


if DATABASE_URL:
    from core import postgres as backend

    db = backend.Postgres(first_use=make_schema)
else:
    from core import sqlite as backend

    def connect():
        """This thread's connection; the process's first one makes data/ and the tables."""
        global schema_made
        with SCHEMA_MADE:
            if not schema_made:
                make_data_folders()
            database = backend.connect()
            if not schema_made:
                make_schema(database)
                schema_made = True
        return database

    schema_made = False
    db = PerThread(lambda: connect())  # looks `connect` up per new thread, so it can be wrapped (to trace statements)

BUSY_ERRORS = backend.BUSY_ERRORS  # what a write that waited BUSY_TIMEOUT in vain raises: the user sees BUSY


def transaction():
    """One atomic write: what it reads stays as read until it ends (see each backend's transaction)."""
    return db.transaction()


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
    return PerThread(lambda: db.table_of(name, pk, row_class)), row_class


store = Store(table("store", pk="key", key=str, value=str)[0])
# owner is the signed-in user whose profile it is (core/auth.py); a profile made while sign-in was off has none.
profiles, Profile = table("profiles", id=int, name=str, owner=str)
# kind is "tool:<name>" for a tool's run, whose params (JSON) let it run again.
# started and ended are Unix times; a task a stopped server left running has no end.
# share is the unguessable token of the run's read-only permalink, /shared/<token>, while its owner shares it.
tasks, Task = table("tasks", id=int, profile_id=int, tab=str, title=str, status=str, done=int, total=int, log=str,
                    result=str, kind=str, params=str, started=float, ended=float, share=str)
INDEXES.append("CREATE UNIQUE INDEX IF NOT EXISTS tasks_by_share ON tasks (share)")
INDEXES.append("CREATE INDEX IF NOT EXISTS profiles_by_owner ON profiles (owner)")
task_lines, TaskLine = table("task_lines", pk=("task_id", "n"), task_id=int, n=int, line=str)


def fits(row_id: int) -> bool:
    """Whether the database can hold this id (64 bits on both); a bigger one is as unknown as a missing one."""
    return -2**63 <= row_id < 2**63


def by_id(table, row_id: int):
    """The row with this id, or None."""
    return table.get(row_id, default=None) if fits(row_id) else None
