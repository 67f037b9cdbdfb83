"""The one SQL seam of the ledger and the read models: a SQLite file by default, a PostgreSQL schema when a URL says so.

The ledger and the views write their SQL once, in SQLite's dialect with ``?`` placeholders,
and run it through :class:`Sql`.  On PostgreSQL the few differences they use are translated
when a statement is first seen (and cached): ``?`` → ``%s``, ``BLOB`` → ``BYTEA``, ``INTEGER``
→ ``BIGINT`` (a position outgrows 32 bits long before a ledger does), ``INSERT OR IGNORE`` →
``ON CONFLICT DO NOTHING``.  Everything else they write is already common to both.

Where a record lives is a :data:`Location`: a path, or ``postgresql://…?schema=name`` — one
schema per SQLite file it replaces (decision 49), with the connection's ``search_path`` set to
it, so every query names its tables exactly as on SQLite.  Connections come from a psycopg 3
pool per location.
"""
from __future__ import annotations

import re
import sqlite3
import threading
from collections.abc import Generator, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol
from urllib.parse import parse_qs, unquote, urlencode, urlparse

from schemas.errors import XiezhuError

if TYPE_CHECKING:
    import psycopg
    from psycopg_pool import ConnectionPool

#: A SQLite file, or a PostgreSQL schema as ``postgresql://user@host/db?schema=name``.
Location = Path | str
#: The schema prefix when the URL names none (``?schema=PREFIX`` replaces it).
DEFAULT_PREFIX = "xiezhu"
#: A PostgreSQL schema name xiezhu makes: lower-case letters, digits and underscores.
SCHEMA_NAME = re.compile(r"[a-z_][a-z0-9_]{0,62}")


class DatabaseError(XiezhuError):
    """A database location xiezhu cannot use, or a database that refused a statement."""

    code = "database"


def is_postgres(location: object) -> bool:
    """Whether a location (or a database URL) is PostgreSQL."""
    return isinstance(location, str) and location.startswith(("postgresql://", "postgres://"))


def schema_location(database_url: str, name: str) -> str:
    """The location of schema ``<prefix>_<name>`` in the database of ``database_url``.

    ``?schema=PREFIX`` on the URL replaces ``xiezhu`` (several systems, or tests, in one database).
    """
    u = urlparse(database_url)
    query = parse_qs(u.query)
    prefix = query.pop("schema", [DEFAULT_PREFIX])[-1]
    query["schema"] = [f"{prefix}_{name}".replace("-", "_")]
    return u._replace(query=urlencode(query, doseq=True)).geturl()


def schema_prefix(database_url: str) -> str:
    """The prefix of every schema xiezhu makes in this database (``?schema=``, default ``xiezhu``)."""
    return parse_qs(urlparse(database_url).query).get("schema", [DEFAULT_PREFIX])[-1]


def schemas_with_prefix(database_url: str, prefix: str) -> list[str]:
    """The schemas ``<prefix>_…`` the database holds."""
    import psycopg

    with psycopg.connect(server_url(database_url), autocommit=True) as conn:
        return [r[0] for r in conn.execute("SELECT nspname::text FROM pg_namespace WHERE starts_with(nspname, %s) "
                                           "ORDER BY nspname", (f"{prefix}_",))]


def location_schema(location: str) -> str:
    """The schema of a PostgreSQL location (``public`` if it names none)."""
    return parse_qs(urlparse(location).query).get("schema", ["public"])[-1]


def server_url(location: str) -> str:
    """The location without xiezhu's own ``?schema=``: what psycopg connects to."""
    u = urlparse(location)
    query = parse_qs(u.query)
    query.pop("schema", None)
    return u._replace(query=urlencode(query, doseq=True)).geturl()


def describe(location: Location) -> str:
    """A location as an error message names it: the file, or the schema and host (never a password)."""
    if not is_postgres(location):
        return str(location)
    u = urlparse(str(location))
    return f"schema {location_schema(str(location))} of postgresql://{unquote(u.hostname or '')}{u.path}"


#: PostgreSQL records found to exist (a record once made stays: asked again, it is not looked up).
_FOUND: set[tuple[str, str]] = set()


def exists(location: Location, table: str) -> bool:
    """Whether a record was made there: its SQLite file, or ``table`` in its PostgreSQL schema (nothing is created)."""
    if not is_postgres(location):
        return Path(location).exists()
    if (str(location), table) in _FOUND:
        return True
    import psycopg

    with psycopg.connect(server_url(str(location)), autocommit=True) as conn:
        row = conn.execute("SELECT to_regclass(%s)", (f"{_checked_schema(str(location))}.{table}",)).fetchone()
    found = row is not None and row[0] is not None
    if found:
        _FOUND.add((str(location), table))
    return found


@contextmanager
def schema_lock(location: str) -> Iterator[psycopg.Connection[Any]]:
    """Held while this process makes the location's schema, types or tables (a connection of its own).

    PostgreSQL's ``CREATE … IF NOT EXISTS`` is not safe against another session making the same
    object at once, and ``CREATE TYPE`` has no such clause: the session that loses the race gets a
    unique violation.  Two processes opening a new store together (an agent and ``xiezhu records
    load``) take turns on this lock instead; the second finds everything made.
    """
    import psycopg

    schema = _checked_schema(location)
    with psycopg.connect(server_url(location), autocommit=True) as conn:
        conn.execute("SELECT pg_advisory_lock(hashtext(%s))", (f"xiezhu schema {schema}",))
        yield conn  # released with the connection


def create_schema(location: str) -> str:
    """Create the location's schema if it does not exist; returns its name."""
    from psycopg import sql

    schema = _checked_schema(location)
    with schema_lock(location) as conn:
        if conn.execute("SELECT 1 FROM pg_namespace WHERE nspname = %s", (schema,)).fetchone() is None:
            conn.execute(sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(sql.Identifier(schema)))
    return schema


def _checked_schema(location: str) -> str:
    schema = location_schema(location)
    if not SCHEMA_NAME.fullmatch(schema):
        raise DatabaseError(f"{schema!r} is not a schema name xiezhu uses (lower-case letters, digits, _)",
                            zh=f"{schema!r} 不是 xiezhu 使用的模式名（小写字母、数字、_）")
    return schema


# -- the dialect ------------------------------------------------------------------------------

_TRANSLATED: dict[str, str] = {}
_DDL = ((re.compile(r"\bBLOB\b"), "BYTEA"), (re.compile(r"\bINTEGER\b"), "BIGINT"))
_OR_IGNORE = re.compile(r"^\s*INSERT\s+OR\s+IGNORE\s+INTO\b", re.IGNORECASE)


def to_postgres(statement: str) -> str:
    """One statement in SQLite's dialect, as PostgreSQL reads it (see the module's docstring)."""
    out = _TRANSLATED.get(statement)
    if out is None:
        out = statement.replace("%", "%%").replace("?", "%s")
        if re.match(r"^\s*(CREATE|ALTER)\b", out, re.IGNORECASE):
            for pattern, replacement in _DDL:
                out = pattern.sub(replacement, out)
        if _OR_IGNORE.match(out):
            out = _OR_IGNORE.sub("INSERT INTO", out).rstrip().rstrip(";") + " ON CONFLICT DO NOTHING"
        if len(_TRANSLATED) > 4096:  # statements are few shapes; a caller building them from data must not grow it
            _TRANSLATED.clear()
        _TRANSLATED[statement] = out
    return out


def statements(script: str) -> list[str]:
    """The statements of a DDL script (no ``;`` inside a statement; ``--`` comments dropped)."""
    lines = [line.split("--", 1)[0] for line in script.splitlines()]
    return [s.strip() for s in "\n".join(lines).split(";") if s.strip()]


class Cursor(Protocol):
    """What a statement returns, on either backend."""

    @property
    def description(self) -> Any: ...

    @property
    def rowcount(self) -> int: ...

    def fetchone(self) -> Any: ...

    def fetchall(self) -> list[Any]: ...

    def __iter__(self) -> Iterator[Any]: ...


# -- connections --------------------------------------------------------------------------

_POOLS: dict[str, ConnectionPool[psycopg.Connection[Any]]] = {}
_POOLS_LOCK = threading.Lock()


def pool(location: str) -> ConnectionPool[psycopg.Connection[Any]]:
    """The process's connection pool for one schema (made on first use, its schema created)."""
    with _POOLS_LOCK:
        found = _POOLS.get(location)
        if found is None:
            from psycopg_pool import ConnectionPool

            schema = create_schema(location)
            found = ConnectionPool(server_url(location), min_size=1, max_size=8, open=True, name=schema,
                                   kwargs={"autocommit": True, "options": f"-c search_path={schema}"})
            _POOLS[location] = found
        return found


def close_pools() -> None:
    """Close every pool this process opened (at exit, and between tests that drop their schemas)."""
    with _POOLS_LOCK:
        for p in _POOLS.values():
            p.close()
        _POOLS.clear()


class Sql:
    """One connection to a location, in autocommit mode, speaking SQLite's dialect on both backends.

    Not thread-safe by itself: its owner serialises use (the ledger and the views hold a lock).
    """

    def __init__(self, location: Location, *, read_only: bool = False) -> None:
        self.location = location
        self.read_only = read_only
        self.postgres = is_postgres(location)
        self._pg: psycopg.Connection[Any] | None = None
        self._lite: sqlite3.Connection | None = None
        if self.postgres:
            self._pg = pool(str(location)).getconn()
            if read_only:
                self._pg.execute("SET default_transaction_read_only = on")
        else:
            self._lite = sqlite3.connect(location, check_same_thread=False, isolation_level=None)

    @classmethod
    def wrap(cls, conn: sqlite3.Connection, location: Location) -> Sql:
        """An existing SQLite connection (opened read-only by its owner) behind the same interface."""
        self = cls.__new__(cls)
        self.location, self.read_only, self.postgres = location, True, False
        self._pg, self._lite = None, conn
        return self

    @property
    def sqlite(self) -> sqlite3.Connection:
        """The SQLite connection (only on SQLite: PRAGMAs, backups)."""
        assert self._lite is not None, "a SQLite-only operation on a PostgreSQL location"
        return self._lite

    def execute(self, statement: str, args: Sequence[Any] = ()) -> Cursor:
        if self._pg is not None:
            return self._pg.execute(to_postgres(statement), tuple(args))
        return self.sqlite.execute(statement, tuple(args))

    def executemany(self, statement: str, rows: Sequence[Sequence[Any]]) -> None:
        if self._pg is not None:
            with self._pg.cursor() as cur:
                cur.executemany(to_postgres(statement), rows)
        else:
            self.sqlite.executemany(statement, rows)

    def script(self, ddl: str) -> None:
        """Run a DDL script (``CREATE … IF NOT EXISTS``), each statement in turn."""
        if self._pg is not None:
            for s in statements(ddl):
                self._pg.execute(to_postgres(s))
        else:
            self.sqlite.executescript(ddl)

    @contextmanager
    def transaction(self) -> Iterator[None]:
        """One write transaction: SQLite's ``BEGIN IMMEDIATE`` (the file's one writer), or PostgreSQL's own."""
        if self._pg is not None:
            with self._pg.transaction():
                yield
            return
        self.sqlite.execute("BEGIN IMMEDIATE")
        try:
            yield
        except BaseException:
            self.sqlite.execute("ROLLBACK")
            raise
        self.sqlite.execute("COMMIT")

    @contextmanager
    def snapshot(self) -> Iterator[None]:
        """One read transaction: every read inside sees the same state, however much is appended meanwhile."""
        if self._pg is not None:
            self._pg.execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
        else:
            self.sqlite.execute("BEGIN")
        try:
            yield
        finally:
            self.execute("ROLLBACK")

    def stream(self, statement: str, args: Sequence[Any] = (), *, size: int = 2000) -> Generator[Any, None, None]:
        """The rows of a long query, ``size`` at a time (a server-side cursor on PostgreSQL)."""
        if self._pg is None:
            yield from self.sqlite.execute(statement, tuple(args))
            return
        with self._pg.transaction(), self._pg.cursor(name="xiezhu_stream") as cur:
            cur.itersize = size
            cur.execute(to_postgres(statement), tuple(args))
            yield from cur

    def table_exists(self, table: str) -> bool:
        if self._pg is not None:
            return self._pg.execute("SELECT to_regclass(%s)", (table,)).fetchone() not in (None, (None,))
        return self.sqlite.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?",
                                   (table,)).fetchone() is not None

    def close(self) -> None:
        if self._pg is not None:
            conn, self._pg = self._pg, None
            if conn.info.transaction_status != 0:  # IDLE: give the pool a clean connection
                conn.rollback()
            if self.read_only:
                conn.execute("SET default_transaction_read_only = off")
            pool(str(self.location)).putconn(conn)
        elif self._lite is not None:
            self._lite.close()


def db_errors() -> tuple[type[Exception], ...]:
    """The exceptions a damaged or unreachable database raises, on both backends."""
    import psycopg

    return (sqlite3.DatabaseError, psycopg.Error)


# -- a role per bureau ----------------------------------------------------------------------------------------

#: The records of 区司法局's machine (beside its own store), each a schema ``<prefix>__<name>`` (decision 52).
JUSTICE_RECORDS = ("ledger", "catalogue", "sla", "commitments", "credit")


def _own(role: str, schema: str) -> list[str]:
    """``role`` owns ``schema`` and every table in it (made before the role, by whoever ran xiezhu first)."""
    return [
        f"CREATE SCHEMA IF NOT EXISTS {schema};",
        f"ALTER SCHEMA {schema} OWNER TO {role};",
        f"REVOKE ALL ON SCHEMA {schema} FROM PUBLIC;",
        "DO $$ DECLARE t record; BEGIN FOR t IN SELECT tablename FROM pg_tables WHERE schemaname = "
        f"'{schema}' LOOP EXECUTE format('ALTER TABLE %I.%I OWNER TO %I', '{schema}', t.tablename, '{role}'); "
        "END LOOP; END $$;",
    ]


def roles_sql(bureaus: Sequence[str], *, prefix: str = DEFAULT_PREFIX, justice: str = "sifa") -> str:
    """SQL that gives each bureau a role of its own, ``<prefix>_<code>``, with rights on its own schema only.

    Each role owns its schema (and the tables already in it); nobody else gets any right there.
    区司法局's role also owns the ledger's, the catalogue's and the views' schemas.  The catalogue is
    the one thing shared: every bureau reads it (each request is checked against it) and writes its
    own adjustment applications there (一(四)), so the bureaus' roles may select, insert and update
    in it, never elsewhere.  Run it as the database's owner; set each role's password afterwards
    (``ALTER ROLE … PASSWORD``) and give each machine ``postgresql://<role>:…@host/db``.
    """
    codes = list(dict.fromkeys([*bureaus, justice]))
    names = {code: f"{prefix}_{code}".replace("-", "_") for code in codes}
    for name in [*names.values(), *(f"{prefix}__{r}" for r in JUSTICE_RECORDS)]:
        if not SCHEMA_NAME.fullmatch(name):
            raise DatabaseError(f"{name!r} is not a role or schema name xiezhu uses (lower-case letters, digits, _)",
                                zh=f"{name!r} 不是 xiezhu 使用的角色名或模式名（小写字母、数字、_）")
    out = [f"-- xiezhu: one role per bureau, rights on its own schema only (decision 52). Prefix {prefix}."]
    for code, role in names.items():
        out += [f"-- {code}",
                f"DO $$ BEGIN IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '{role}') THEN "
                f"CREATE ROLE {role} LOGIN; END IF; END $$;",
                *_own(role, role)]
    sifa, catalogue = names[justice], f"{prefix}__catalogue"
    out.append(f"-- {justice}'s machine: the ledger, the catalogue and the read models")
    for record in JUSTICE_RECORDS:
        out += _own(sifa, f"{prefix}__{record}")
    for code, role in names.items():
        if code == justice:
            continue
        out += [f"-- {code} reads the catalogue and files its own adjustment applications there",
                f"GRANT USAGE ON SCHEMA {catalogue} TO {role};",
                f"GRANT SELECT, INSERT, UPDATE ON ALL TABLES IN SCHEMA {catalogue} TO {role};",
                f"GRANT USAGE ON ALL SEQUENCES IN SCHEMA {catalogue} TO {role};",
                f"ALTER DEFAULT PRIVILEGES FOR ROLE {sifa} IN SCHEMA {catalogue} "
                f"GRANT SELECT, INSERT, UPDATE ON TABLES TO {role};",
                f"ALTER DEFAULT PRIVILEGES FOR ROLE {sifa} IN SCHEMA {catalogue} GRANT USAGE ON SEQUENCES TO {role};"]
    out.append("-- then, for each role: ALTER ROLE <role> PASSWORD '…';")
    return "\n".join(out) + "\n"


def apply_roles(database_url: str, sql_text: str) -> None:
    """Run :func:`roles_sql`'s output on the database of ``database_url`` (as its owner), in one transaction."""
    import psycopg

    with psycopg.connect(server_url(database_url)) as conn, conn.transaction():
        conn.execute(sql_text.encode())


def drop_schemas(database_url: str, prefix: str) -> list[str]:
    """Drop every schema whose name starts with ``<prefix>_`` (a bench's or a test's), with what is in it."""
    import psycopg
    from psycopg import sql

    close_pools()
    names = schemas_with_prefix(database_url, prefix)
    with psycopg.connect(server_url(database_url), autocommit=True) as conn:
        conn.execute("SET lock_timeout = '10s'")
        for name in names:
            conn.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(name)))
    return names
