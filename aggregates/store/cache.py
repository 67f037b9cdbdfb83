"""The aggregate cache of a store, kept current without a query per read.

eventsourcing's repository keeps recently used aggregates in memory and, on every ``get``,
fast-forwards a cached one with a query for events newer than it holds, so that a writer in
another process (a clerk's command, ``xiezhu catalogue publish``) is seen.  That is one query
through eventsourcing's connection pool per read, about 60–90 µs here, several times an
exchange (issue 14).  :class:`CurrentRepository` asks one cheaper question instead: the
store's last notification id (:class:`HeadWatch`, one indexed ``MAX`` on a connection of its
own, about 5 µs).  While it is the last id this process knows of, no one else wrote, and every
cached aggregate is current:

- after this process's own commit, its saved aggregates go into the cache, and the head it
  knows moves past their notification ids, if those directly follow it (one transaction's ids
  are consecutive);
- when the head moved further (another process, or another application on the same file,
  wrote), the aggregates those notifications belong to are dropped from the cache before the
  read, and are reconstructed from the store when next read;
- an aggregate reconstructed while the cache changed is returned but not cached, so that a
  read racing a commit cannot put an older state back;
- a save that conflicts (``IntegrityError``) drops its aggregates from the cache: whatever
  made a cached state stale, optimistic concurrency still refuses the save, and the retry
  reads the store.

PostgreSQL stores keep eventsourcing's fast-forward: a sequence's ids may commit out of order,
so a head there does not say that everything below it was seen.
"""
from __future__ import annotations

import sqlite3
import threading
import uuid
from collections.abc import Iterable, Sequence
from copy import deepcopy
from typing import Any, Protocol

from eventsourcing.application import ProjectorFunction, Repository
from eventsourcing.popo import POPOApplicationRecorder
from eventsourcing.sqlite import SQLiteApplicationRecorder


def project(aggregate: Any, events: Iterable[Any]) -> Any:
    """eventsourcing's ``project_aggregate`` without its runtime ``Protocol`` assertion on every event.

    Every event of a xiezhu store is an ``Aggregate`` event with a ``mutate`` method; the
    assertion checks that through ``typing``'s protocol machinery, which in Python 3.11 walks
    the protocol's attributes on each call.
    """
    for event in events:
        aggregate = event.mutate(aggregate)
    return aggregate


class HeadWatch(Protocol):
    """Where a store's notification log ends, and whose notifications lie in a range of it."""

    def head(self) -> int: ...

    def originators(self, after: int, upto: int) -> list[uuid.UUID]:
        """The aggregate ids of the notifications ``after < id <= upto``."""
        ...

    def holds(self, aggregate_id: uuid.UUID) -> bool:
        """Whether the store has an event of ``aggregate_id`` (one indexed look, nothing decoded)."""
        ...

    def close(self) -> None: ...


class SQLiteHead:
    """The head of a SQLite store, read through a connection of its own (WAL: each read sees the last commit)."""

    def __init__(self, db_name: str, table: str) -> None:
        self._db = sqlite3.connect(db_name, uri=True, check_same_thread=False, isolation_level=None, timeout=30)
        self._lock = threading.Lock()
        self._head_sql = f"SELECT MAX(rowid) FROM {table}"
        self._range_sql = f"SELECT originator_id FROM {table} WHERE rowid > ? AND rowid <= ?"
        self._holds_sql = f"SELECT 1 FROM {table} WHERE originator_id = ? LIMIT 1"

    def head(self) -> int:
        with self._lock:
            row = self._db.execute(self._head_sql).fetchone()
        return int(row[0] or 0)

    def originators(self, after: int, upto: int) -> list[uuid.UUID]:
        with self._lock:
            rows = self._db.execute(self._range_sql, (after, upto)).fetchall()
        return [r[0] if isinstance(r[0], uuid.UUID) else uuid.UUID(r[0]) for r in rows]

    def holds(self, aggregate_id: uuid.UUID) -> bool:
        with self._lock:
            return self._db.execute(self._holds_sql, (aggregate_id.hex,)).fetchone() is not None

    def close(self) -> None:
        with self._lock:
            self._db.close()


class MemoryHead:
    """The head of an in-memory store (tests; no other process can write it)."""

    def __init__(self, recorder: POPOApplicationRecorder) -> None:
        self._recorder = recorder

    def head(self) -> int:
        return int(self._recorder.max_notification_id() or 0)

    def originators(self, after: int, upto: int) -> list[uuid.UUID]:
        rows = self._recorder.select_notifications(start=after + 1, limit=max(1, upto - after), stop=upto)
        return [n.originator_id if isinstance(n.originator_id, uuid.UUID) else uuid.UUID(n.originator_id)
                for n in rows]

    def holds(self, aggregate_id: uuid.UUID) -> bool:
        return bool(self._recorder.select_events(aggregate_id, limit=1))

    def close(self) -> None:
        pass


def head_watch(recorder: object) -> HeadWatch | None:
    """A :class:`HeadWatch` for a SQLite file or an in-memory store; ``None`` elsewhere (PostgreSQL)."""
    if isinstance(recorder, SQLiteApplicationRecorder):
        pool = recorder.datastore.pool
        if pool.is_sqlite_memory_mode:
            return None
        return SQLiteHead(pool.db_name, recorder.events_table_name)
    if isinstance(recorder, POPOApplicationRecorder):
        return MemoryHead(recorder)
    return None


class CurrentRepository(Repository[uuid.UUID]):
    """eventsourcing's repository whose cache is kept current by the store's head (see the module)."""

    def __init__(self, *, watch: HeadWatch | None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.watch = watch if self.cache is not None else None
        if self.watch is not None:
            self.fastforward = False
        self._lock = threading.Lock()
        #: Every notification up to this id is reflected in the cache.
        self._seen = self.watch.head() if self.watch is not None else 0
        #: Moves whenever the cache is changed by a commit or a drop (a reconstruction racing it is not cached).
        self._generation = 0

    def get(self, aggregate_id: uuid.UUID, *, version: int | None = None,
            projector_func: ProjectorFunction[Any, Any] = project, fastforward_skipping: bool = False,
            deepcopy_from_cache: bool = True) -> Any:
        """The aggregate, from the cache while nobody else wrote, else from the store."""
        if self.watch is None or self.cache is None or version is not None:
            return super().get(aggregate_id, version=version, projector_func=projector_func,
                               fastforward_skipping=fastforward_skipping, deepcopy_from_cache=deepcopy_from_cache)
        self.catch_up()
        try:
            aggregate = self.cache.get(aggregate_id)
        except KeyError:
            generation = self._generation
            aggregate = self._reconstruct_aggregate(aggregate_id, None, projector_func)
            with self._lock:
                if generation == self._generation:
                    self.cache.put(aggregate_id, aggregate)
        if deepcopy_from_cache and self.deepcopy_from_cache:
            aggregate = deepcopy(aggregate)
        return aggregate

    def catch_up(self) -> None:
        """Drop from the cache what others wrote since the last look."""
        assert self.watch is not None and self.cache is not None
        head = self.watch.head()
        if head <= self._seen:
            return
        with self._lock:
            if head <= self._seen:
                return
            for originator in self.watch.originators(self._seen, head):
                self._drop(originator)
            self._seen = head
            self._generation += 1

    def recorded(self, aggregates: Iterable[Any], notification_ids: Sequence[int]) -> None:
        """This process committed ``aggregates`` as ``notification_ids``: cache them (drop them if others wrote)."""
        if self.watch is None or self.cache is None:
            return
        with self._lock:
            self._generation += 1
            follows = (bool(notification_ids) and notification_ids[0] == self._seen + 1
                       and notification_ids[-1] - notification_ids[0] == len(notification_ids) - 1)
            for aggregate in aggregates:
                if follows:
                    self.cache.put(aggregate.id, aggregate)
                else:
                    self._drop(aggregate.id)
            if follows:
                self._seen = notification_ids[-1]

    def forget(self, aggregate_ids: Iterable[uuid.UUID]) -> None:
        """Drop these aggregates from the cache (their save conflicted: the store holds something newer)."""
        if self.cache is None:
            return
        with self._lock:
            self._generation += 1
            for aggregate_id in aggregate_ids:
                self._drop(aggregate_id)

    def _drop(self, aggregate_id: uuid.UUID) -> None:
        assert self.cache is not None
        try:
            self.cache.get(aggregate_id, evict=True)
        except KeyError:
            pass


class RecentOutbox:
    """The outgoing envelopes this process committed lately, by notification id, for the relay (issue 14).

    The relay asks for what was committed after its position, and that is, nearly always, what
    this process has just committed.  Reading it back meant a query, a decryption and a decoding
    per envelope.  Every outgoing notification with an id in ``(start, upto]`` is held here, so a
    question about that range is answered from memory when the store's head is still ``upto``.
    Anything else (an older position, another writer's commit, a gap between two of this
    process's commits) is answered by the store.  What was asked for is released (the relay
    has published it), and at most ``limit`` envelopes are kept, where no relay asks.
    """

    def __init__(self, head: int, *, limit: int = 4096) -> None:
        self._lock = threading.Lock()
        self._rows: dict[int, Any] = {}
        self._start = self._upto = head
        self._limit = limit

    def committed(self, notification_ids: Sequence[int], outgoing: Sequence[Any]) -> None:
        """One commit's notification ids, and for each its outgoing envelope or ``None``."""
        if not notification_ids:
            return
        with self._lock:
            first, last = notification_ids[0], notification_ids[-1]
            if first != self._upto + 1 or last - first != len(notification_ids) - 1:
                self._rows.clear()  # someone else wrote in between: the store answers up to here
                self._start = self._upto = max(self._upto, last)
                return
            for nid, signed in zip(notification_ids, outgoing, strict=True):
                if signed is not None:
                    self._rows[nid] = signed
            self._upto = last
            while len(self._rows) > self._limit:
                self._start = next(iter(self._rows))
                del self._rows[self._start]

    def since(self, after: int, limit: int, head: int) -> list[tuple[int, Any]] | None:
        """The outgoing envelopes after ``after``, oldest first, if this holds all of them; else ``None``."""
        with self._lock:
            if after < self._start or head != self._upto:
                return None
            for nid in [n for n in self._rows if n <= after]:
                del self._rows[nid]
            self._start = after
            return list(self._rows.items())[:limit]
