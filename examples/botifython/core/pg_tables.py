"""A table on PostgreSQL through the MiniDataAPI calls fastlite gives on SQLite, so the app and add-ons call the
same ones on both: calling it (where, where_args, order_by, limit, offset, select), get and [pk], insert, update,
upsert (a row as keywords, a dict or a row object), delete, delete_where and count. Rows come back as the table's
row class. Not here: fastlite's xtra() and its schema changes, which core.db.table makes for both backends.
"""
from dataclasses import asdict, is_dataclass

from fastlite import NotFoundError  # what fastlite raises on SQLite, so the same `except` serves both

MISSING = object()


def as_dict(row, values: dict) -> dict:
    if row is None:
        return values
    return {**(asdict(row) if is_dataclass(row) else dict(row)), **values}


class Table:
    def __init__(self, database, name: str, pk, row_class):
        self.db, self.name, self.cls = database, name, row_class
        self.keys = (pk,) if isinstance(pk, str) else tuple(pk)
        self.columns = list(row_class.__dataclass_fields__)
        self.quoted = ", ".join(f'"{column}"' for column in self.columns)
        self.where_key = " AND ".join(f'"{key}" = ?' for key in self.keys)

    def rows(self, sql: str, args=()) -> list:
        return [self.cls(*values) for values in self.db.execute(sql, args)]

    def __call__(self, where: str | None = None, where_args=(), order_by: str | None = None,
                 limit: int | None = None, offset: int | None = None, select: str = "*"):
        picked = self.quoted if select == "*" else select
        sql = f'SELECT {picked} FROM "{self.name}"' + (f" WHERE {where}" if where else "")
        sql += (f" ORDER BY {order_by}" if order_by else "") + ("" if limit is None else f" LIMIT {int(limit)}")
        sql += "" if offset is None else f" OFFSET {int(offset)}"
        if select == "*":
            return self.rows(sql, where_args)
        return self.db.q(sql, where_args)

    def get(self, pk_value, default=MISSING):
        key = pk_value if isinstance(pk_value, tuple) else (pk_value,)
        found = self.rows(f'SELECT {self.quoted} FROM "{self.name}" WHERE {self.where_key}', key)
        if found:
            return found[0]
        if default is MISSING:
            raise NotFoundError(f"no {self.name} row with {'/'.join(map(str, key))}")
        return default

    def __getitem__(self, pk_value):
        return self.get(pk_value)

    def insert(self, row=None, /, **values):
        values = as_dict(row, values)
        if "id" in self.keys and values.get("id") is None:
            values.pop("id", None)  # the identity gives it
        names = ", ".join(f'"{column}"' for column in values)
        inserted = self.rows(f'INSERT INTO "{self.name}" ({names}) VALUES ({", ".join("?" * len(values))}) '
                             f"RETURNING {self.quoted}", list(values.values()))[0]
        if "id" in values and self.keys == ("id",):  # an id given by hand: new ones go on after it, as on SQLite
            self.db.execute(f"SELECT setval(pg_get_serial_sequence(?, 'id'), greatest(?, "
                            f"(SELECT last_value FROM {self.sequence()})))", [f'"{self.name}"', values["id"]])
        return inserted

    def sequence(self) -> str:
        return self.db.execute("SELECT pg_get_serial_sequence(?, 'id')", [f'"{self.name}"']).fetchone()[0]

    def update(self, row=None, /, **values):
        values = as_dict(row, values)
        changes = ", ".join(f'"{column}" = ?' for column in values if column not in self.keys)
        found = self.rows(f'UPDATE "{self.name}" SET {changes} WHERE {self.where_key} RETURNING {self.quoted}',
                          [*(v for column, v in values.items() if column not in self.keys),
                           *(values[key] for key in self.keys)])
        if not found:
            raise NotFoundError(f"no {self.name} row with {'/'.join(str(values[key]) for key in self.keys)}")
        return found[0]

    def upsert(self, row=None, /, **values):
        values = as_dict(row, values)
        names = ", ".join(f'"{column}"' for column in values)
        changes = ", ".join(f'"{column}" = excluded."{column}"' for column in values if column not in self.keys)
        keys = ", ".join(f'"{key}"' for key in self.keys)
        found = self.rows(f'INSERT INTO "{self.name}" ({names}) VALUES ({", ".join("?" * len(values))}) '
                          f"ON CONFLICT ({keys}) DO " + (f"UPDATE SET {changes}" if changes else "NOTHING") +
                          f" RETURNING {self.quoted}", list(values.values()))
        return found[0] if found else self.get(tuple(values[key] for key in self.keys))

    def delete(self, pk_value) -> None:
        self.delete_where(self.where_key, pk_value if isinstance(pk_value, tuple) else (pk_value,))

    def delete_where(self, where: str, args=()) -> None:
        self.db.execute(f'DELETE FROM "{self.name}" WHERE {where}', args)

    @property
    def count(self) -> int:
        return self.db.execute(f'SELECT count(*) FROM "{self.name}"').fetchone()[0]
