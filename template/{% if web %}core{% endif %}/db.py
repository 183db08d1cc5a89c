"""The app's database: one connection per thread, the schema, transactions, and the app's own tables.

Importable from a notebook without the web stack: `from core.db import db, store` reads and writes what the app
does. Nothing opens at import; the first connection of a process makes data/ and the tables.
"""
import json
import re
import threading
from contextlib import contextmanager
from dataclasses import field, make_dataclass

import apsw
from fastlite import Database

from settings import BUSY_TIMEOUT, DATA, DB_FILE

UPLOADS = DATA / "uploads"
OUTPUTS = DATA / "outputs"  # a run's files: data/outputs/<task id>/, also the tool's working directory
BUSY = "The database is busy (another program is writing); try again."
BUSY_ERRORS = (apsw.BusyError,)  # what a write that waited BUSY_TIMEOUT in vain raises: the user sees BUSY


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
    """Create each missing table, add each missing column, and give an id column AUTOINCREMENT where an older
    version made it without (ids are never reused: a deleted profile's or task's id handed to a new one would give
    it the old one's sessions, links and output folder). A table that already fits is left alone. All of it is one
    write transaction, so another process starting at the same moment, or serving, never sees a table half made."""
    database.execute("BEGIN IMMEDIATE")
    try:
        for name, pk, columns in SCHEMA:
            have = {row[1] for row in database.execute(f"PRAGMA table_info([{name}])")}
            if not have:
                database.execute(create_table_sql(name, pk, columns))
                continue
            for column, kind in columns.items():
                if column not in have:
                    database.execute(f"ALTER TABLE [{name}] ADD COLUMN [{column}] {SQL_TYPES[kind]}")
            if pk == "id":
                autoincrement(database, name)
        for sql in INDEXES:
            database.execute(sql)
    except BaseException:
        database.execute("ROLLBACK")
        raise
    database.execute("COMMIT")


SQL_TYPES = {int: "INTEGER", bool: "INTEGER", float: "FLOAT", str: "TEXT"}


def create_table_sql(name: str, pk: str | tuple, columns: dict) -> str:
    defined = [f"[{column}] {SQL_TYPES[kind]}" + (" PRIMARY KEY AUTOINCREMENT" if column == pk == "id" else
                                                   " PRIMARY KEY" if column == pk else "")
               for column, kind in columns.items()]
    if isinstance(pk, tuple):
        defined.append(f"PRIMARY KEY ({', '.join(f'[{column}]' for column in pk)})")
    return f"CREATE TABLE [{name}] ({', '.join(defined)})"


def autoincrement(database: Database, name: str) -> None:
    """Rebuild the table with AUTOINCREMENT on its id if it lacks it. Ids go on from the highest one it holds."""
    sql = database.execute("SELECT sql FROM sqlite_master WHERE type = 'table' AND name = ?", [name]).fetchone()[0]
    if "AUTOINCREMENT" in sql.upper():
        return
    fixed = re.sub(r"\[?id\]?\s+INTEGER\s+PRIMARY\s+KEY", "[id] INTEGER PRIMARY KEY AUTOINCREMENT", sql, count=1,
                   flags=re.IGNORECASE)
    database.execute(f"ALTER TABLE [{name}] RENAME TO [{name}_old]")
    database.execute(fixed)
    database.execute(f"INSERT INTO [{name}] SELECT * FROM [{name}_old]")
    database.execute(f"DROP TABLE [{name}_old]")


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
# kind is "tool:<name>" for a tool's run, whose params (JSON) let it run again.
# started and ended are Unix times; a task a stopped server left running has no end.
tasks, Task = table("tasks", id=int, profile_id=int, tab=str, title=str, status=str, done=int, total=int, log=str,
                    result=str, kind=str, params=str, started=float, ended=float)
task_lines, TaskLine = table("task_lines", pk=("task_id", "n"), task_id=int, n=int, line=str)


def fits(row_id: int) -> bool:
    """Whether SQLite can hold this id; a bigger one is as unknown as a missing one."""
    return -2**63 <= row_id < 2**63


def by_id(table, row_id: int):
    """The row with this id, or None."""
    return table.get(row_id, default=None) if fits(row_id) else None
