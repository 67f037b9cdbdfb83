"""What every read model built from the ledger shares: its position, kept in the same transaction."""
from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Callable
from pathlib import Path

import sqlite_utils

from aggregates.database import Location, describe, is_postgres
from broker.ledger.store import Entry, Ledger
from projections.encrypted_columns import columns_for
from schemas.envelope import Envelope
from schemas.errors import XiezhuError

POSITIONS = "_positions"
#: How often opening a view tries again to create its tables when another process holds the new file.
ENSURE_ATTEMPTS = 20
#: At most this often (seconds) a follow that brought nothing the view wants saves its position alone.
POSITION_EVERY_S = 1.0


def _cannot_write(e: sqlite3.OperationalError) -> bool:
    text = str(e)
    return "readonly" in text or "unable to open" in text or "read-only" in text


def _copy_in_memory(path: Path) -> sqlite3.Connection:
    """An in-memory copy of the view file (empty if there is none or it cannot be read), never written back."""
    mem = sqlite3.connect(":memory:", check_same_thread=False)
    if path.is_file():
        try:
            src = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro&immutable=1", uri=True)
            try:
                src.backup(mem)
            finally:
                src.close()
        except sqlite3.DatabaseError:  # unreadable: the view is built again from the ledger, in memory
            mem.close()
            mem = sqlite3.connect(":memory:", check_same_thread=False)
    return mem


class LedgerProjection:
    """A sqlite-utils read model that follows the ledger exactly once and can be rebuilt from it.

    The position applied is saved in the same transaction as the rows it produced, so
    following the ledger after a crash neither skips nor double-applies an entry, and a
    rebuild from position 0 gives the same tables as following it live.
    """

    #: Name of the projection (its row in ``_positions``).
    name = ""
    #: Tables this projection owns (dropped on rebuild).
    tables: tuple[str, ...] = ()

    def __init__(self, path: Location) -> None:
        """``path``: the view's SQLite file, or its PostgreSQL schema (``postgresql://…?schema=…``)."""
        # One user of the shared connection at a time: no reader sees a half-applied batch.
        self._lock = threading.RLock()
        #: Set by a service that follows the ledger live and calls :meth:`keep_position` when it stops:
        #: a follow that brings nothing the view wants keeps its position in memory (see :meth:`follow`).
        self.lazy_position = False
        #: The last ledger position followed past without a transaction, ahead of the saved one;
        #: and when a follow last saved the position alone.
        self._passed = 0
        self._passed_saved_at: float | None = None
        #: True where the file could not be written (a read-only copy of a data directory): the view
        #: then lives in memory, copied from the file where there is one, and catches up there.
        self.in_memory = False
        if is_postgres(path):
            from projections.postgres import PgDatabase

            self.db: sqlite_utils.Database = PgDatabase(str(path))
            self._ensure()
            return
        path = Path(path)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            # Used from worker threads (one at a time), so not bound to the creating thread.
            self.db = sqlite_utils.Database(sqlite3.connect(path, check_same_thread=False))
            self.db.enable_wal()
            # A view is a fold of the ledger, whose entries are fsynced: a commit lost to a power
            # cut takes the view back to an earlier whole state (rows and position in one
            # transaction), and it follows those entries again.  So its commits are not fsynced.
            self.db.conn.execute("PRAGMA synchronous=NORMAL")
            self._ensure()
        except (sqlite3.OperationalError, PermissionError) as e:
            if isinstance(e, sqlite3.OperationalError) and not _cannot_write(e):
                raise
            self.db = sqlite_utils.Database(_copy_in_memory(path))
            self.in_memory = True
            self._ensure()

    def _ensure(self) -> None:
        conn = self.db.conn
        if not isinstance(conn, sqlite3.Connection):  # PostgreSQL: one writer per schema in a transaction
            with conn:
                self._create_all()
            return
        # Two processes opening a new view file at once (the ledger, and a clerk's command or the
        # campaign's driver) both saw no table and both created it: "table … already exists".  The
        # check and the creation are one write transaction.  A new file's first writers can still
        # meet SQLite's deadlock guard ("database is locked" at once, while the other switches the
        # file to WAL): that is tried again, from the check.
        for attempt in range(ENSURE_ATTEMPTS):
            with self._lock:
                try:
                    if not conn.in_transaction:
                        conn.execute("BEGIN IMMEDIATE")
                    self._create_all()
                    conn.commit()
                    return
                except BaseException as e:
                    if conn.in_transaction:
                        conn.rollback()
                    locked = isinstance(e, sqlite3.OperationalError) and "locked" in str(e)
                    if not locked or attempt == ENSURE_ATTEMPTS - 1:
                        raise
            time.sleep(0.05 * (attempt + 1))

    def _create_all(self) -> None:
        if not self.db.table(POSITIONS).exists():
            self.db.table(POSITIONS).create({"name": str, "position": int}, pk="name")
        self.create_tables()

    def close(self) -> None:
        """Close the view's connection (a command that opened it is done with it)."""
        with self._lock:
            self.db.close()  # sqlite-utils closes the file; PostgreSQL's stand-in gives its connection back

    def create_tables(self) -> None:
        """Create this projection's tables if they do not exist."""
        raise NotImplementedError

    def apply(self, env: Envelope, arrived_at: str) -> None:
        """Apply one ledger entry, opened (inside the follow transaction)."""
        raise NotImplementedError

    def apply_entry(self, entry: Entry, env: Envelope) -> None:
        """Apply one ledger entry; a view that needs more of the entry than its arrival overrides this."""
        self.apply(env, entry.arrived_at)

    def wants(self, event_type: str) -> bool:
        """Whether entries of this type concern the view (the others are not even opened)."""
        return True

    @property
    def position(self) -> int:
        """The last ledger position applied (or passed: nothing after the saved one concerned the view)."""
        return max(self.saved_position, self._passed)

    @property
    def saved_position(self) -> int:
        """The last ledger position applied, as the file says (what another process following it sees)."""
        with self._lock:  # plain SQL: sqlite-utils' get reads the table's layout on every call (issue 14)
            row = self.db.execute(f"SELECT position FROM {POSITIONS} WHERE name = ?", [self.name]).fetchone()
            return int(row[0]) if row else 0

    def follow(self, ledger: Ledger, *, batch: int = 1000, progress: Callable[[int], None] | None = None) -> int:
        """Apply every ledger entry after the saved position; returns how many.

        With :attr:`lazy_position`, entries none of which the view wants are passed without a
        transaction: the position is kept in memory and saved with the next entry the view wants,
        by :meth:`keep_position`, or by a later such follow at most every
        :data:`POSITION_EVERY_S` (issue 14: the commitment views want no assistance entry, and each
        follow of the running ledger committed and fsynced their position alone).  A view that
        stops before that follows those entries again, and passes them again.
        """
        done = 0
        while True:
            entries = list(ledger.entries(self.position, batch))
            if not entries:
                return done
            if (self.lazy_position and self._passed_saved_at is not None
                    and time.monotonic() - self._passed_saved_at < POSITION_EVERY_S
                    and not any(self.wants(e.type) for e in entries)):
                with self._lock:
                    self._passed = max(self._passed, entries[-1].pos)
                fresh = entries
            else:
                with self._lock, self.db.conn:
                    # Another process may follow the same file (a clerk's command beside the running ledger):
                    # take the write lock first, then skip what it applied since the position was read.
                    if not self.db.conn.in_transaction:
                        self.db.conn.execute("BEGIN IMMEDIATE")
                    after = self.position
                    fresh = [e for e in entries if e.pos > after]
                    wanted = False
                    for e in fresh:
                        if self.wants(e.type):
                            wanted = True
                            self.apply_entry(e, ledger.envelope(e))
                    if fresh:
                        self._save_position(fresh[-1].pos)
                        if not wanted:
                            self._passed_saved_at = time.monotonic()
            done += len(fresh)
            if progress:
                progress(len(entries))

    def _save_position(self, position: int) -> None:
        self.db.execute(f"INSERT INTO {POSITIONS} (name, position) VALUES (?, ?) "
                        "ON CONFLICT(name) DO UPDATE SET position = excluded.position", [self.name, position])

    def keep_position(self) -> None:
        """Save the position followed past in memory, if it is ahead of the file's (before the view is left)."""
        with self._lock:
            if self._passed > self.saved_position:
                with self.db.conn:
                    self._save_position(self._passed)

    def rebuild(self, ledger: Ledger, progress: Callable[[int], None] | None = None) -> int:
        """Drop the tables and build them again from the first ledger entry."""
        with self._lock, self.db.conn:
            for t in self.tables:
                self.db.table(t).drop(ignore=True)
            self.db.execute(f"DELETE FROM {POSITIONS} WHERE name = ?", [self.name])
            self._passed = 0
        self._ensure()
        return self.follow(ledger, progress=progress)


class KeyedProjection(LedgerProjection):
    """A read model that keeps personal data under a view key (decision 26): encrypted, never in clear.

    A view written with another key raises
    :class:`~projections.encrypted_columns.ViewKeyMismatch` at open and is left as it was.
    """

    def __init__(self, path: Location, *, view_key: bytes | None = None) -> None:
        self._columns = columns_for(view_key)
        self._where = describe(path)
        try:
            super().__init__(path)
        except XiezhuError:
            if hasattr(self, "db"):
                self.db.conn.close()
            raise
