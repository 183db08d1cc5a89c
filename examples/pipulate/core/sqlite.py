"""SQLite, the laptop's database: one file in data/, no service to run. core.db uses it unless DATABASE_URL is set.

Each thread opens its own connection (SQLite connections, and fastlite tables, which keep the last insert's rowid
between calls, must not be shared between threads), and the database file is opened by SQLite alone. POSIX locks
belong to the process, and closing any descriptor of the file drops them all ("How To Corrupt An SQLite Database
File", 2.2): an os.open/os.close of it here would let another program (a notebook's record(), a backup) delete the
WAL holding writes already acknowledged.
"""
import re
import threading
from contextlib import contextmanager

import apsw
from fastlite import Database

from settings import BUSY_TIMEOUT, DB_FILE

BUSY_ERRORS = (apsw.BusyError,)  # a write that waited BUSY_TIMEOUT for another program's in vain
ID = "INTEGER PRIMARY KEY AUTOINCREMENT"  # ids are never reused, as a deleted row's id could name it again
SQL_TYPES = {int: "INTEGER", bool: "INTEGER", float: "FLOAT", str: "TEXT"}
# A task's new log lines, numbered from the first one's n, from one JSON list: one row of executemany per task.
SAVE_LINES = ("INSERT INTO task_lines (task_id, n, line) SELECT ?, ? + key, value FROM json_each(?) WHERE true "
              "ON CONFLICT DO NOTHING")
CONNECTING = threading.Lock()  # apsw.connection_hooks, swapped out while connecting, is global


class SQLite(Database):
    """fastlite's Database, with the few calls core.db's API adds for both backends."""

    def executemany(self, sql: str, rows) -> None:
        self.conn.executemany(sql, rows)

    def table_of(self, name: str, pk, row_class):
        tbl = self.t[name]
        tbl.cls = row_class
        return tbl

    def columns(self, name: str) -> set[str]:
        return {row[1] for row in self.execute(f'PRAGMA table_info("{name}")')}

    @contextmanager
    def transaction(self, *, key: int = 0):
        """One atomic write. BEGIN IMMEDIATE takes the write lock before the first read, so a read-then-write
        can't be undone by another process writing in between. (SQLite has one writer: `key` is PostgreSQL's.)"""
        self.execute("BEGIN IMMEDIATE")
        try:
            yield
        except BaseException:
            self.execute("ROLLBACK")
            raise
        self.execute("COMMIT")

    def owns_running_tasks(self) -> bool:
        """Yes: the file is in data/, which this server owns (core.tasks.data_owner)."""
        return True

    def fix_ids(self, name: str) -> None:
        """Rebuild the table with AUTOINCREMENT on its id if an older version made it without. Ids go on from the
        highest one it holds."""
        sql = self.execute("SELECT sql FROM sqlite_master WHERE type = 'table' AND name = ?", [name]).fetchone()[0]
        if "AUTOINCREMENT" in sql.upper():
            return
        fixed = re.sub(r"[\[\"]?id[\]\"]?\s+INTEGER\s+PRIMARY\s+KEY", f'"id" {ID}', sql, count=1, flags=re.IGNORECASE)
        self.execute(f'ALTER TABLE "{name}" RENAME TO "{name}_old"')
        self.execute(fixed)
        self.execute(f'INSERT INTO "{name}" SELECT * FROM "{name}_old"')
        self.execute(f'DROP TABLE "{name}_old"')


def unreachable() -> str:
    """Nothing to reach: the file is made on first use."""
    return ""


def connect() -> SQLite:
    """A connection to the app's database, in WAL mode so readers never wait for a writer."""
    # Opened without apsw's connection hooks: apswutils adds apsw's best practices there, and one of them runs
    # `PRAGMA optimize` on open, which may need the write lock and so failed a thread's first read while another
    # program was writing. The settings that matter here are made below.
    with CONNECTING:
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
    return SQLite(conn)
