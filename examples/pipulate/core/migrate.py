"""Copy the data folder's SQLite database into PostgreSQL: `scripts/migrate-to-postgres postgresql://...`.

Every table the app and its add-ons define, row for row, in one transaction. It can run again: a row already
there with the same values is left as it is; a row with the same key but other values stops it before anything is
written, since that database holds other data. Afterwards every row read is checked to be there, and the counts
are printed. The SQLite file is only read. Uploads and outputs stay files in the data folder: serve with the same
DATA_DIR and DATABASE_URL.
"""
import os
import sys


class Refused(Exception):
    """What stops the copy, in one line; nothing was written."""


def main(argv: list[str]) -> int:
    url = argv[0] if argv else os.environ.get("DATABASE_URL", "")
    if len(argv) > 1 or not url.startswith(("postgresql://", "postgres://")):
        print("usage: scripts/migrate-to-postgres postgresql://user@host/name (or set DATABASE_URL)", file=sys.stderr)
        return 2
    os.environ["DATABASE_URL"] = url  # before settings is imported: core.db then opens PostgreSQL
    try:
        for line in migrate():
            print(line)
    except Refused as problem:
        print(f"migrate-to-postgres: {problem}", file=sys.stderr)
        return 1
    return 0


def migrate() -> list[str]:
    import apsw
    import psycopg

    from core import db
    from core.app import import_addons
    from settings import DB_FILE

    import_addons()  # their tables join db.SCHEMA
    if not DB_FILE.exists():
        raise Refused(f"{DB_FILE} does not exist: set DATA_DIR to the data folder to copy")
    source = apsw.Connection(str(DB_FILE), flags=apsw.SQLITE_OPEN_READONLY)
    try:
        source.execute("BEGIN")  # one snapshot of every table, even while a server writes to it
        tables = [(name, pk, list(columns), rows(source, name, columns)) for name, pk, columns in db.SCHEMA]
        unknown(source, {name for name, _, _ in db.SCHEMA})
        counted = source.execute("SELECT 1 FROM sqlite_master WHERE name = 'sqlite_sequence'").fetchone()
        highest = dict(source.execute("SELECT name, seq FROM sqlite_sequence")) if counted else {}  # ids given out
    finally:
        source.close()
    if problem := db.backend.unreachable():
        raise Refused(f"cannot reach PostgreSQL: {problem}")
    try:
        with db.transaction():
            plans = [(name, pk, columns, *plan(name, pk, columns, found)) for name, pk, columns, found in tables]
            for name, pk, columns, missing, _ in plans:
                db.db.executemany(f'INSERT INTO "{name}" ({quoted(columns)}) VALUES ({", ".join("?" * len(columns))})',
                                  missing)
                if pk == "id":
                    go_on_after(name, highest.get(name, 0))
            for name, pk, columns, _, read in plans:
                read_back(name, pk, columns, read)
    except psycopg.Error as error:
        raise Refused(f"PostgreSQL refused the copy ({type(error).__name__}: {str(error).splitlines()[0]}); "
                      "nothing was written") from None
    return [f"{name}: {len(read)} rows, {len(missing)} copied, {len(read) - len(missing)} already there"
            for name, _, _, missing, read in plans] + [f"done: serve with DATABASE_URL set and DATA_DIR={db.DATA}"]


def go_on_after(name: str, highest: int) -> None:
    """New ids go on after every id given out so far: the copied rows', the deleted ones' SQLite remembers, and
    PostgreSQL's own; never back (a deleted row's id handed out again would give a new row its links)."""
    from core import db

    sequence = db.db.execute("SELECT pg_get_serial_sequence(?, 'id')", [f'"{name}"']).fetchone()[0]
    db.db.execute(f'SELECT setval(?, greatest((SELECT coalesce(max(id), 0) FROM "{name}"), ?, '
                  f"(SELECT CASE WHEN is_called THEN last_value ELSE 0 END FROM {sequence})) + 1, false)",
                  [sequence, highest])


def read_back(name: str, pk, columns: list[str], read: list[tuple]) -> None:
    """Every row read from SQLite is there, as it was."""
    try:
        missing, _ = plan(name, pk, columns, read)
    except Refused:
        raise Refused(f"{name} reads back from PostgreSQL unlike SQLite held it (a value its column's type changes, "
                      "such as 2.5 in a whole-number column); nothing was kept") from None
    if missing:
        raise Refused(f"{len(missing)} row(s) of {name} are not there after the copy; nothing was kept")


def rows(source, name: str, columns: dict) -> list[tuple]:
    """The table's rows, in the app's column order; a column an older version lacked reads as NULL."""
    have = {row[1] for row in source.execute(f'PRAGMA table_info("{name}")')}
    if not have:
        return []
    if extra := have - set(columns):
        raise Refused(f"{name} has columns the app does not define ({', '.join(sorted(extra))}): they would be "
                      "lost; add them to its core.db.table(...) first")
    picked = ", ".join(f'"{column}"' if column in have else "NULL" for column in columns)
    return [tuple(row) for row in source.execute(f'SELECT {picked} FROM "{name}"')]


def unknown(source, known: set[str]) -> None:
    names = [name for name, in source.execute("SELECT name FROM sqlite_master WHERE type = 'table' "
                                               "AND name NOT LIKE 'sqlite_%'") if name not in known]
    if names:
        raise Refused(f"tables no module defines would be lost: {', '.join(names)}; define them with "
                      "core.db.table(...) in an add-on first")


def plan(name: str, pk, columns: list[str], read: list[tuple]) -> tuple[list[tuple], list[tuple]]:
    """The rows PostgreSQL still lacks, and all read; a row there under the same key with other values refuses."""
    from core import db

    keys = [columns.index(column) for column in ((pk,) if isinstance(pk, str) else pk)]
    there = {tuple(row[i] for i in keys): tuple(row) for row in
             db.db.execute(f'SELECT {quoted(columns)} FROM "{name}"')}
    missing = []
    for row in read:
        key = tuple(row[i] for i in keys)
        if key not in there:
            missing.append(row)
        elif there[key] != row:
            raise Refused(f"{name} already holds a different row with {'/'.join(map(str, key))}: this database holds "
                          "other data; copy into an empty database")
    return missing, read


def quoted(columns) -> str:
    return ", ".join(f'"{column}"' for column in columns)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
