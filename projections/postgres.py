"""The read models on PostgreSQL: the part of sqlite-utils the views use, over one schema (decision 52).

The views are written against sqlite-utils (``db.table(name).upsert(…)``, ``rows_where``,
``db.execute`` in SQLite's dialect).  :class:`PgDatabase` gives them the same calls on a
PostgreSQL schema, through :class:`aggregates.database.Sql`, so a view's code is one code on both
backends.  It keeps what they rely on:

- ``rowid``: every table gets a ``rowid BIGSERIAL`` column, last, which nothing reads back
  (``SELECT *`` names the other columns), so ``ORDER BY rowid`` is the order of insertion as on
  SQLite;
- ordering: text columns are ``COLLATE "C"`` (SQLite compares bytes) and ``rows_where`` puts
  NULLs first in an ascending order, as SQLite does, and without an order reads in rowid order;
- ``with db.conn:`` is one transaction; a statement outside it commits on its own;
- ``typeof(x)`` is ``pg_typeof(x)``; a ``bool`` is stored as SQLite stores it, 0 or 1.

Only what the views call is here: a call sqlite-utils has and this does not fails loudly.
"""
from __future__ import annotations

import re
from collections.abc import Generator, Iterable, Sequence
from contextlib import AbstractContextManager
from types import TracebackType
from typing import Any

import sqlite_utils
from sqlite_utils.db import NotFoundError

from aggregates.database import Cursor, Sql

_TYPES: dict[object, str] = {
    str: 'TEXT COLLATE "C"', int: "BIGINT", float: "DOUBLE PRECISION", bytes: "BYTEA", bool: "BIGINT",
    "TEXT": 'TEXT COLLATE "C"', "INTEGER": "BIGINT", "FLOAT": "DOUBLE PRECISION", "REAL": "DOUBLE PRECISION",
    "BLOB": "BYTEA",
}
_SELECT_ALL = re.compile(r"\bSELECT\s+\*\s+FROM\s+(\w+)", re.IGNORECASE)
_DDL = re.compile(r"^\s*(CREATE|DROP|ALTER)\b", re.IGNORECASE)
_IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def _q(name: str) -> str:
    if not _IDENT.fullmatch(name):
        raise ValueError(f"{name!r} is not a column or table name a view uses")
    return f'"{name}"'


def _literal(value: object) -> str:
    if isinstance(value, bool | int | float):
        return str(int(value) if isinstance(value, bool) else value)
    return "'" + str(value).replace("'", "''") + "'"


def _nulls_first(order_by: str) -> str:
    """SQLite's order of NULLs (first when ascending, last when descending) in PostgreSQL's words."""
    terms = []
    for term in order_by.split(","):
        t = term.strip()
        terms.append(t + (" NULLS LAST" if t.upper().endswith(" DESC") else " NULLS FIRST"))
    return ", ".join(terms)


class _Transaction:
    """``with db.conn:``: one transaction (nested ones are savepoints), one writer per schema at a time.

    The outermost takes a transaction-scoped advisory lock on the schema, as SQLite's ``BEGIN
    IMMEDIATE`` takes the file's write lock: two processes following one view apply each entry once.
    """

    def __init__(self, db: PgDatabase) -> None:
        self._db = db
        self._open: list[AbstractContextManager[None]] = []

    def execute(self, statement: str, args: Sequence[Any] = ()) -> Cursor:
        return self._db.execute(statement, args)

    @property
    def in_transaction(self) -> bool:
        return bool(self._open)

    def __enter__(self) -> _Transaction:
        tx = self._db.sql.transaction()
        tx.__enter__()
        self._open.append(tx)
        if len(self._open) == 1:
            self._db.sql.execute("SELECT pg_advisory_xact_lock(hashtext(current_schema()))")
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self._open.pop().__exit__(kind, exc, tb)

    def close(self) -> None:
        self._db.close()


class PgDatabase(sqlite_utils.Database):
    """A view's tables in one PostgreSQL schema, called as sqlite-utils' :class:`~sqlite_utils.Database` is."""

    def __init__(self, location: str) -> None:  # no SQLite connection: nothing of the base is set up
        self.sql = Sql(location)
        self.conn = _Transaction(self)  # type: ignore[assignment]
        self._columns: dict[str, list[str]] = {}
        self._pks: dict[str, list[str]] = {}

    def table(self, table_name: str, **kwargs: Any) -> PgTable:
        return PgTable(self, table_name)

    def __getitem__(self, table_name: str) -> PgTable:
        return self.table(table_name)

    def execute(self, sql: str, parameters: Sequence[Any] | dict[str, Any] | None = None) -> Cursor:  # type: ignore[override]
        if _DDL.match(sql):
            self._columns.clear()
            self._pks.clear()
        sql = _SELECT_ALL.sub(lambda m: f"SELECT {', '.join(map(_q, self.columns(m[1])))} FROM {m[1]}", sql)
        sql = re.sub(r"\btypeof\(", "pg_typeof(", sql)
        args = [int(a) if isinstance(a, bool) else a for a in (parameters or ())]
        return self.sql.execute(sql, args)

    def query(self, sql: str,
              params: Sequence[Any] | dict[str, Any] | None = None) -> Generator[dict[str, Any], None, None]:
        cur = self.execute(sql, params)
        names = [d[0] for d in cur.description]
        for row in cur.fetchall():
            yield dict(zip(names, row, strict=True))

    def enable_wal(self) -> None:
        """Nothing to do: PostgreSQL has its own write-ahead log."""

    def close(self) -> None:
        self.sql.close()

    def columns(self, table: str) -> list[str]:
        """A table's columns in order, without the ``rowid`` it keeps for the order of insertion."""
        if table not in self._columns:
            rows = self.sql.execute("SELECT column_name::text FROM information_schema.columns WHERE table_schema = "
                                    "current_schema() AND table_name = ? ORDER BY ordinal_position", (table,))
            self._columns[table] = [r[0] for r in rows if r[0] != "rowid"]
        return self._columns[table]

    def primary_key(self, table: str) -> list[str]:
        if table not in self._pks:
            rows = self.sql.execute(
                "SELECT a.attname::text FROM pg_index i JOIN pg_attribute a ON a.attrelid = i.indrelid "
                "AND a.attnum = ANY(i.indkey) WHERE i.indrelid = to_regclass(?) AND i.indisprimary", (table,))
            self._pks[table] = [r[0] for r in rows]
        return self._pks[table]


class PgTable(sqlite_utils.db.Table):
    """One table of a :class:`PgDatabase`."""

    def __init__(self, db: PgDatabase, name: str) -> None:
        self.pg, self.name = db, name

    def exists(self) -> bool:
        return self.pg.sql.table_exists(self.name)

    @property
    def columns_dict(self) -> dict[str, Any]:
        return {c: object for c in self.pg.columns(self.name)}

    def create(self, columns: dict[str, Any], pk: Any = None, *args: Any,  # type: ignore[override]
               not_null: Iterable[str] | None = None, defaults: dict[str, Any] | None = None, **kw: Any) -> PgTable:
        not_null, defaults = set(not_null or ()), defaults or {}
        parts = [f"{_q(c)} {_TYPES[t]}" + (" NOT NULL" if c in not_null else "")
                 + (f" DEFAULT {_literal(defaults[c])}" if c in defaults else "") for c, t in columns.items()]
        parts.append("rowid BIGSERIAL")
        if pk:
            keys = [pk] if isinstance(pk, str) else list(pk)
            parts.append(f"PRIMARY KEY ({', '.join(map(_q, keys))})")
        self.pg.execute(f"CREATE TABLE IF NOT EXISTS {_q(self.name)} ({', '.join(parts)})")
        return self

    def create_index(self, columns: Iterable[Any], index_name: str | None = None,
                     *args: Any, **kw: Any) -> PgTable:
        cols = [str(c) for c in columns]
        name = index_name or f"idx_{self.name}_{'_'.join(cols)}"
        self.pg.execute(f"CREATE INDEX IF NOT EXISTS {_q(name)} ON {_q(self.name)} ({', '.join(map(_q, cols))})")
        return self

    def drop(self, ignore: bool = False) -> None:
        self.pg.execute(f"DROP TABLE {'IF EXISTS ' if ignore else ''}{_q(self.name)}")

    def insert(self, record: dict[str, Any], pk: Any = None, *args: Any, replace: bool = False,  # type: ignore[override]
               ignore: bool = False, **kw: Any) -> PgTable:
        return self.insert_all([record], pk, replace=replace, ignore=ignore)

    def insert_all(self, records: Iterable[Any], pk: Any = None, *args: Any,  # type: ignore[override]
                   replace: bool = False, ignore: bool = False, **kw: Any) -> PgTable:
        for record in records:
            self._insert(record, "update" if replace else ("nothing" if ignore else None))
        return self

    def upsert(self, record: dict[str, Any], pk: Any = None, *args: Any, **kw: Any) -> PgTable:
        self._insert(record, "update")
        return self

    def _insert(self, record: dict[str, Any], conflict: str | None) -> None:
        names = list(record)
        sql = f"INSERT INTO {_q(self.name)} ({', '.join(map(_q, names))}) VALUES ({', '.join('?' * len(names))})"
        if conflict is not None:
            keys = self.pg.primary_key(self.name)
            sets = [f"{_q(c)} = excluded.{_q(c)}" for c in names if c not in keys]
            action = f"UPDATE SET {', '.join(sets)}" if conflict == "update" and sets else "NOTHING"
            sql += f" ON CONFLICT ({', '.join(map(_q, keys))}) DO {action}"
        self.pg.execute(sql, list(record.values()))

    def _key_where(self, pk_values: Any) -> tuple[str, list[Any]]:
        keys = self.pg.primary_key(self.name)
        values = list(pk_values) if isinstance(pk_values, list | tuple) else [pk_values]
        return " AND ".join(f"{_q(k)} = ?" for k in keys), values

    def get(self, pk_values: Any) -> dict[str, Any]:
        where, args = self._key_where(pk_values)
        for row in self.rows_where(where, args):
            return row
        raise NotFoundError

    def update(self, pk_values: Any, updates: dict[str, Any] | None = None,
               *args: Any, **kw: Any) -> PgTable:
        if updates:
            where, key = self._key_where(pk_values)
            sets = ", ".join(f"{_q(c)} = ?" for c in updates)
            self.pg.execute(f"UPDATE {_q(self.name)} SET {sets} WHERE {where}", [*updates.values(), *key])
        return self

    @property
    def rows(self) -> Generator[dict[str, Any], None, None]:
        return self.rows_where()

    def rows_where(self, where: str | None = None, where_args: Sequence[Any] | dict[str, Any] | None = None,
                   order_by: str | None = None, select: str = "*", limit: int | None = None,
                   offset: int | None = None) -> Generator[dict[str, Any], None, None]:
        sql = f"SELECT {select} FROM {self.name}"  # `*` is named column by column by PgDatabase.execute
        if where:
            sql += f" WHERE {where}"
        # Without an order, SQLite reads a table in rowid order; PostgreSQL in whatever order its pages hold.
        sql += f" ORDER BY {_nulls_first(order_by)}" if order_by else " ORDER BY rowid"
        if limit is not None:
            sql += f" LIMIT {int(limit)}"
        if offset is not None:
            sql += f" OFFSET {int(offset)}"
        return self.pg.query(sql, where_args)

    def delete_where(self, where: str | None = None,
                     where_args: Sequence[Any] | dict[str, Any] | None = None, analyze: bool = False) -> PgTable:
        self.pg.execute(f"DELETE FROM {_q(self.name)}" + (f" WHERE {where}" if where else ""), where_args)
        return self
