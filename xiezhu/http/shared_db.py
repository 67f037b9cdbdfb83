"""One SQLite connection shared by the event loop and worker threads, safely.

The HTTP front's small databases (tokens, users, the feed, the alerts) are used from the
event loop and from ``asyncio.to_thread`` workers.  A ``sqlite3`` connection opened with
``check_same_thread=False`` may be used from several threads, but not at the same time, and
closing it while a worker is inside a statement crashes the process (a segmentation fault
seen in the suite).  Every statement here runs under one lock, its rows are fetched under
it, a transaction holds it from ``BEGIN`` to ``COMMIT``, and ``close`` waits for it.
"""
from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any


class Result:
    """The rows of one statement, fetched while the lock was held."""

    def __init__(self, rows: list[Any], rowcount: int, lastrowid: int | None) -> None:
        self._rows = rows
        self.rowcount = rowcount
        self.lastrowid = lastrowid

    def fetchone(self) -> Any:
        return self._rows[0] if self._rows else None

    def fetchall(self) -> list[Any]:
        return list(self._rows)

    def __iter__(self) -> Iterator[Any]:
        return iter(self._rows)


class SharedConnection:
    """A SQLite connection in autocommit mode whose every use is serialised by one re-entrant lock."""

    def __init__(self, path: Path | str) -> None:
        self._lock = threading.RLock()
        self._conn: sqlite3.Connection | None = sqlite3.connect(path, check_same_thread=False,
                                                                isolation_level=None)

    def _open(self) -> sqlite3.Connection:
        if self._conn is None:
            raise sqlite3.ProgrammingError("the database was closed")
        return self._conn

    def execute(self, sql: str, args: Any = ()) -> Result:
        with self._lock:
            cur = self._open().execute(sql, args)
            return Result(cur.fetchall(), cur.rowcount, cur.lastrowid)

    def executescript(self, script: str) -> None:
        with self._lock:
            self._open().executescript(script)

    @contextmanager
    def transaction(self) -> Iterator[SharedConnection]:
        """``BEGIN IMMEDIATE`` … ``COMMIT`` (``ROLLBACK`` on any error), holding the lock throughout."""
        with self._lock:
            self.execute("BEGIN IMMEDIATE")
            try:
                yield self
            except BaseException:
                self.execute("ROLLBACK")
                raise
            self.execute("COMMIT")

    def close(self) -> None:
        """Close once no statement or transaction is running; later uses raise ``ProgrammingError``."""
        with self._lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None
