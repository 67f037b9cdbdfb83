"""The 区司法局 ledger: every signed event as received, in one total order, hash-chained.

Each entry keeps the exact signed bytes, the key id and signature, the arrival time, the
message's sequence in the ``XZ`` stream and its position.  ``leaf = SHA-256(position ‖
stream_seq ‖ arrival ‖ kid ‖ sig ‖ body)`` (the variable parts length-prefixed; decision 49:
every stored field the audit trusts is hashed) and ``hash = SHA-256(prev_hash ‖ leaf)``, so
that changing, removing or reordering any stored entry breaks the chain from there on, and a
proof that an entry leads to a later head needs only the leaves in between, not their
contents.  Checkpoints are chain heads signed by 区司法局 (:meth:`Ledger.checkpoint`) and
published on ``XZ_WITNESS`` for other parties to keep (:mod:`broker.witness`).  The decoded
columns (case, number, sender …) are an index for queries; the bytes are the record.

``openings`` keeps, beside an entry, its payload key wrapped under a key derived from 区司法局's
box key (:meth:`broker.sealing.Opener.opening`), written in the same transaction when the opener
that checked the entry is the ledger's own.  It is outside the chain, as the index columns are:
it is a shortcut for reading (a rebuild of the views opens a million payloads), never evidence,
and an entry without one, or with one that does not open, is read through its sealed box.
"""
from __future__ import annotations

import hashlib
import sqlite3
import struct
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from aggregates.database import Location, Sql, db_errors, describe, is_postgres
from broker.sealing import Opener
from broker.signing import CannotOpen, Opens, Rejected, decode_checked
from schemas.envelope import Envelope, Signed
from schemas.errors import XiezhuError

GENESIS = b"\x00" * 32
#: How many recently appended entries keep the envelope the ledger service opened (see :meth:`Ledger.envelope`).
OPENED_CACHE = 4096

_SCHEMA = """
CREATE TABLE IF NOT EXISTS entries (
    pos         INTEGER PRIMARY KEY,
    event_id    TEXT NOT NULL UNIQUE,
    case_id     TEXT NOT NULL,
    number      TEXT NOT NULL,
    type        TEXT NOT NULL,
    sender      TEXT NOT NULL,
    recipient   TEXT NOT NULL,
    event_time  TEXT NOT NULL,
    arrived_at  TEXT NOT NULL,
    stream_seq  INTEGER NOT NULL,
    kid         TEXT NOT NULL,
    sig         BLOB NOT NULL,
    body        BLOB NOT NULL,
    prev_hash   BLOB NOT NULL,
    hash        BLOB NOT NULL
);
CREATE INDEX IF NOT EXISTS entries_case ON entries (case_id, pos);
CREATE TABLE IF NOT EXISTS checkpoints (
    pos         INTEGER PRIMARY KEY,
    head        BLOB NOT NULL,
    sealed_at   TEXT NOT NULL,  -- when 区司法局 signed it (the column keeps its first name)
    kid         TEXT NOT NULL,
    sig         BLOB NOT NULL
);
CREATE INDEX IF NOT EXISTS entries_number ON entries (number, sender);
CREATE TABLE IF NOT EXISTS openings (
    pos         INTEGER PRIMARY KEY,
    kid         TEXT NOT NULL,
    wrapped     BLOB NOT NULL
);
"""


#: How much of the ledger file a reader of a position range maps into memory (SQLite caps it at 2 GB unless built
#: otherwise): pages read through the mapping rather than a read() each.  The ledger is only ever appended to, never
#: truncated (no VACUUM), so a mapping stays valid.
LEDGER_MMAP_BYTES = 1 << 40


def open_mapped(path: Path) -> sqlite3.Connection:
    """:func:`open_read_only`, the file memory-mapped: for a worker process reading its own range of positions."""
    db = open_read_only(path)
    db.execute(f"PRAGMA mmap_size = {LEDGER_MMAP_BYTES}")
    return db


def position_ranges(head: int, n: int, workers: int = 1) -> list[tuple[int, int]]:
    """At most ``n`` ranges ``(first, last)`` of positions, none empty, that together hold ``1 … head`` in order.

    The ranges shrink towards the end, ``workers`` of a size at a time (8 ranges on 2 workers: 4 4 3 3 2 2 1 1
    parts of 20): workers that take them in order end about together, and what the main process still has to do
    with the last range once they are done is small (the rebuild and the audit, decision 65)."""
    n = max(1, min(n, head))
    weights = [(n - i + workers - 1) // workers for i in range(n)]
    total, cuts, at = sum(weights), [0], 0
    for w in weights:
        at += w
        cuts.append(head * at // total)
    return [(a + 1, b) for a, b in zip(cuts, cuts[1:], strict=False) if b > a]


def open_read_only(path: Path) -> sqlite3.Connection:
    """A read-only connection to a SQLite file that may sit in a read-only directory (an archive).

    A WAL database read from a directory where its ``-shm`` cannot be made fails with "attempt
    to write a readonly database"; then it is opened as immutable, which is right for a copy
    nobody writes to.  A missing file is an error, never created.
    """
    if not path.is_file():
        raise LedgerError(f"no ledger at {path}", zh=f"{path} 处没有账本", path=str(path))
    uri = path.resolve().as_uri()
    for query in ("mode=ro", "mode=ro&immutable=1"):
        db = sqlite3.connect(f"{uri}?{query}", uri=True, check_same_thread=False, isolation_level=None)
        try:
            db.execute("SELECT 1 FROM sqlite_master LIMIT 1").fetchone()
            return db
        except sqlite3.OperationalError as e:
            db.close()
            if "readonly" not in str(e) and "unable to open" not in str(e):
                raise LedgerError(f"cannot read {path}: {e}", zh=f"无法读取 {path}：{e}", path=str(path)) from e
        except sqlite3.DatabaseError as e:
            db.close()
            raise LedgerError(f"{path} is not a readable SQLite file: {e}",
                              zh=f"{path} 不是可读的 SQLite 文件：{e}", path=str(path)) from e
    raise LedgerError(f"cannot open {path} even read-only", zh=f"即使以只读方式也无法打开 {path}", path=str(path))


class LedgerError(XiezhuError):
    """The ledger file cannot be opened or is inconsistent."""

    code = "ledger"


class LedgerDamaged(LedgerError):
    """An entry read from the ledger does not match its hash, or does not link to the one before."""

    code = "ledger.damaged"


class NoLedgerKey(CannotOpen):
    """Reading what the ledger says needs 区司法局's box key, which this machine does not hold."""

    code = "ledger.no-key"


@dataclass(frozen=True)
class Entry:
    """One ledger entry, as stored."""

    pos: int
    event_id: str
    case_id: str
    number: str
    type: str
    sender: str
    recipient: str
    event_time: str
    arrived_at: str
    stream_seq: int
    signed: Signed
    prev_hash: bytes
    hash: bytes


def leaf_hash(pos: int, arrived_at: str, kid: str, sig: bytes, body: bytes, *, stream_seq: int | None) -> bytes:
    """What entry ``pos`` contributes to the chain.

    ``stream_seq`` is the message's sequence in ``XZ``, hashed since decision 49; ``None`` computes the
    leaf as bundles made before it hashed it (they carry no sequence), and nothing else.
    """
    # One join and one SHA-256 call (a rebuild and an audit hash a million of these): the same bytes as
    # hashing the parts one after the other.  The sequence is signed: a tampered negative value still hashes.
    a, k = arrived_at.encode(), kid.encode()
    return hashlib.sha256(b"".join((_POS(pos) if stream_seq is None else _POS_SEQ(pos, stream_seq),
                                    _LEN(len(a)), a, _LEN(len(k)), k, _LEN(len(sig)), sig,
                                    _LEN(len(body)), body))).digest()


_POS = struct.Struct(">Q").pack
_POS_SEQ = struct.Struct(">Qq").pack
_LEN = struct.Struct(">I").pack


def link(prev: bytes, leaf: bytes) -> bytes:
    """The chain hash after an entry: ``SHA-256(prev ‖ leaf)``."""
    return hashlib.sha256(prev + leaf).digest()


def chain_hash(prev: bytes, pos: int, arrived_at: str, stream_seq: int, kid: str, sig: bytes, body: bytes) -> bytes:
    """The hash that links entry ``pos`` to its predecessor."""
    return link(prev, leaf_hash(pos, arrived_at, kid, sig, body, stream_seq=stream_seq))


CHECKPOINT_CONTEXT = b"xiezhu-ledger-checkpoint/1\n"


def checkpoint_message(pos: int, head: bytes, signed_at: str) -> bytes:
    """The exact bytes a checkpoint's signature covers."""
    return CHECKPOINT_CONTEXT + struct.pack(">Q", pos) + head + signed_at.encode()


@dataclass(frozen=True)
class Checkpoint:
    """A chain head at ``pos``, signed by 区司法局's key."""

    pos: int
    head: bytes
    #: When 区司法局 signed it, ISO 8601 (stored in the column ``sealed_at``, bundled as ``sealed_at``).
    signed_at: str
    kid: str
    sig: bytes


_COLUMNS = ("pos, event_id, case_id, number, type, sender, recipient, event_time, arrived_at, "
            "stream_seq, kid, sig, body, prev_hash, hash")


def _entry(row: tuple) -> Entry:  # type: ignore[type-arg]
    """An entry as stored, whose hash must match its contents: a damaged ledger is never read as if whole.

    Reading through :class:`Ledger` (the views, replay, history) checks each entry's own hash, one
    SHA-256, and :meth:`Ledger.entries` also its link to the entry before; ``xiezhu audit`` checks
    everything else.  Raises :class:`LedgerDamaged`.
    """
    (pos, event_id, case_id, number, type_, sender, recipient, event_time, arrived_at,
     stream_seq, kid, sig, body, prev_hash, hash_) = row
    try:
        entry = Entry(pos, event_id, case_id, number, type_, sender, recipient, event_time, arrived_at,
                      stream_seq, Signed(body=bytes(body), kid=kid, sig=bytes(sig)), bytes(prev_hash), bytes(hash_))
        whole = type(stream_seq) is int and entry.hash == chain_hash(
            entry.prev_hash, pos, arrived_at, stream_seq, kid, entry.signed.sig, entry.signed.body)
    except (TypeError, ValueError, AttributeError, struct.error):
        whole = False
    if not whole:
        raise LedgerDamaged(f"the ledger is damaged at position {pos}: the entry does not match its hash; "
                            "run `xiezhu audit` (nothing read from it is trusted)",
                            zh=f"账本在位置 {pos} 处已损坏：条目与其哈希值不符；请运行 `xiezhu audit`"
                               "（从中读取的内容均不可信）", position=pos)
    return entry


class Ledger:
    """Append-only, hash-chained store of signed events: a SQLite file, or a PostgreSQL schema (decision 49)."""

    def __init__(self, path: Location, *, opener: Opens | None = None, read_only: bool = False) -> None:
        """``path``: the SQLite file, or ``postgresql://…?schema=…``.  ``opener``: 区司法局's X25519 keys, to
        read what the entries say (:meth:`envelope`); an audit and a bundle's proofs need none.  ``read_only``:
        for commands that only read; it works on a read-only copy (an archive) too, and never creates or
        changes the file."""
        self.location: Location = path if is_postgres(path) else Path(path)
        #: The SQLite file (on PostgreSQL, the location's text: messages name it, nothing opens it as a file).
        self.path = Path(path) if not is_postgres(path) else Path(describe(path))
        self.opener = opener
        self.read_only = read_only
        self._lock = threading.Lock()
        try:
            self._db = self._connect(read_only=read_only)
            if not read_only:
                self._db.script(_SCHEMA)
            row = self._db.execute("SELECT pos, hash FROM entries ORDER BY pos DESC LIMIT 1").fetchone()
        except db_errors() as e:
            if hasattr(self, "_db"):
                self._db.close()
            raise LedgerError(f"{describe(self.location)} cannot be read as a ledger: {e}; run `xiezhu audit`",
                              zh=f"{describe(self.location)} 无法作为账本读取：{e}；请运行 `xiezhu audit`",
                              path=str(self.path)) from e
        self._head_pos: int = int(row[0]) if row else 0
        self._head_hash: bytes = bytes(row[1]) if row else GENESIS
        #: pos → (body, envelope) of entries appended here: the views read them without opening them again.
        self._opened: dict[int, tuple[bytes, Envelope]] = {}
        #: Each thread's reading connection (:meth:`_reader`), all of them to close with the ledger.
        self._readers = threading.local()
        self._reader_conns: list[Sql] = []

    def _connect(self, *, read_only: bool) -> Sql:
        if is_postgres(self.location):
            return Sql(self.location, read_only=read_only)
        if read_only:
            return Sql.wrap(open_read_only(self.path), self.path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        db = Sql(self.path)
        db.sqlite.execute("PRAGMA journal_mode=WAL")
        db.sqlite.execute("PRAGMA synchronous=FULL")
        return db

    @contextmanager
    def reader(self) -> Iterator[Sql]:
        """A separate read-only connection, for look-ups the ledger has no method for (SQLite's dialect)."""
        conn = self._connect(read_only=True)
        try:
            yield conn
        finally:
            conn.close()

    def append(self, items: Sequence[tuple[Signed, Envelope, int, datetime]]) -> list[int | None]:
        """Append verified events in one transaction; a known event id is skipped (``None``)."""
        out: list[int | None] = []
        opened: list[tuple[int, bytes, Envelope]] = []
        remembers = self.opener if isinstance(self.opener, Opener) and self.opener.remember else None
        with self._lock:
            pos, head = self._head_pos, self._head_hash
            with self._db.transaction():
                if self._db.postgres:
                    # One appender at a time, as SQLite's BEGIN IMMEDIATE gives (readers go on), and from
                    # the head as it is now, whoever else appended: the chain never forks.
                    self._db.execute("LOCK TABLE entries IN EXCLUSIVE MODE")
                    row = self._db.execute("SELECT pos, hash FROM entries ORDER BY pos DESC LIMIT 1").fetchone()
                    pos, head = (int(row[0]), bytes(row[1])) if row else (0, GENESIS)
                # One query for the batch's known ids and one batched insert: on PostgreSQL each statement
                # is a round trip, and a per-event query made appends there ten times slower than SQLite's.
                known = self._known([env.id for _, env, _, _ in items])
                rows = []
                for signed, env, stream_seq, arrived in items:
                    if env.id in known:
                        out.append(None)
                        continue
                    known.add(env.id)
                    pos += 1
                    arrived_at = arrived.isoformat()
                    h = chain_hash(head, pos, arrived_at, stream_seq, signed.kid, signed.sig, signed.body)
                    rows.append((pos, env.id, env.case, env.number, env.type, env.sender, env.recipient,
                                 env.time.isoformat(), arrived_at, stream_seq, signed.kid, signed.sig, signed.body,
                                 head, h))
                    head = h
                    out.append(pos)
                    opening = remembers.opening(env.id, signed.body) if remembers is not None else None
                    if opening is not None:
                        self._db.execute("INSERT INTO openings (pos, kid, wrapped) VALUES (?,?,?)", (pos, *opening))
                    if self.opener is not None:  # what this machine could not open, it must not read
                        opened.append((pos, signed.body, env))
                if rows:
                    self._db.executemany(f"INSERT INTO entries ({_COLUMNS}) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
                                         rows)
            self._head_pos, self._head_hash = pos, head
            for p, body, env in opened:
                self._opened[p] = (body, env)
            while len(self._opened) > OPENED_CACHE:
                del self._opened[next(iter(self._opened))]
        return out

    def _known(self, event_ids: list[str]) -> set[str]:
        """Which of these event ids are recorded (the caller holds the lock)."""
        found: set[str] = set()
        for i in range(0, len(event_ids), 500):
            chunk = event_ids[i:i + 500]
            marks = ",".join("?" * len(chunk))
            found.update(r[0] for r in self._db.execute(f"SELECT event_id FROM entries WHERE event_id IN ({marks})",
                                                        chunk))
        return found

    def contains(self, event_id: str) -> bool:
        """Whether an event id is recorded."""
        with self._lock:
            return self._db.execute("SELECT 1 FROM entries WHERE event_id = ?", (event_id,)).fetchone() is not None

    @property
    def head(self) -> tuple[int, bytes]:
        """Position and hash of the last entry (0 and the genesis hash when empty)."""
        return self._head_pos, self._head_hash

    def __len__(self) -> int:
        # Reads take the lock too: the connection is shared with append's transaction.
        with self._lock:
            return int(self._db.execute("SELECT COUNT(*) FROM entries").fetchone()[0])

    def entries(self, after: int = 0, limit: int | None = None) -> Iterator[Entry]:
        """Entries with position > ``after``, in order (a fresh cursor: safe while appending)."""
        sql = f"SELECT {_COLUMNS} FROM entries WHERE pos > ? ORDER BY pos"
        args: tuple[int, ...] = (after,)
        if limit is not None:
            sql += " LIMIT ?"
            args = (after, limit)
        own = self.read_only or self._db.postgres
        try:
            conn = self._connect(read_only=True) if own else self._reader()
            # A cursor of its own, closed at the end: a statement left open would hold the reader's snapshot.
            rows: Any = conn.stream(sql, args) if own else conn.sqlite.execute(sql, args)
        except db_errors() as e:
            raise LedgerDamaged(f"the ledger cannot be read: {e}; run `xiezhu audit`",
                                zh=f"无法读取账本：{e}；请运行 `xiezhu audit`") from e
        try:
            prev: Entry | None = None
            for row in rows:
                entry = _entry(row)
                if (entry.pos != (prev.pos if prev else after) + 1
                        or (prev is not None and entry.prev_hash != prev.hash)):
                    raise LedgerDamaged(f"the ledger is damaged at position {entry.pos}: it does not follow position "
                                        f"{prev.pos if prev else after}; run `xiezhu audit`",
                                        zh=f"账本在位置 {entry.pos} 处已损坏："
                                           f"它不接续位置 {prev.pos if prev else after}；"
                                           "请运行 `xiezhu audit`", position=entry.pos)
                prev = entry
                yield entry
        except db_errors() as e:
            raise LedgerDamaged(f"the ledger file is damaged: {e}; run `xiezhu audit`",
                                zh=f"账本文件已损坏：{e}；请运行 `xiezhu audit`") from e
        finally:
            rows.close()  # its cursor first: the connection then goes back to the pool clean
            if own:
                conn.close()

    def _reader(self) -> Sql:
        """This thread's reading connection to the SQLite file, kept open: opening one for every read
        (a view follows after each append) cost more than the read (issue 14)."""
        conn: Sql | None = getattr(self._readers, "conn", None)
        if conn is None:
            conn = Sql.wrap(sqlite3.connect(self.path, check_same_thread=False), self.path)
            with self._lock:
                self._reader_conns.append(conn)
            self._readers.conn = conn
        return conn

    def case(self, case_id: str) -> list[Entry]:
        """Every entry of one case, in ledger order (indexed: fast however large the ledger)."""
        with self._lock:
            rows = self._db.execute(f"SELECT {_COLUMNS} FROM entries WHERE case_id = ? ORDER BY pos", (case_id,))
            return [_entry(r) for r in rows]

    def find(self, number: str, sender: str | None = None) -> list[str]:
        """Case ids whose request has ``number`` (from ``sender``, if given)."""
        sql = "SELECT DISTINCT case_id FROM entries WHERE number = ? AND type = 'assistance.requested'"
        args: tuple[str, ...] = (number,)
        if sender:
            sql += " AND sender = ?"
            args = (number, sender)
        with self._lock:
            return [r[0] for r in self._db.execute(sql, args)]

    def checkpoint(self, sign: Callable[[bytes], tuple[str, bytes]], at: datetime) -> Checkpoint | None:
        """Sign the current head as a checkpoint (``None`` if the ledger is empty or has one there already)."""
        with self._lock:
            pos, head = self._head_pos, self._head_hash
            if pos == 0 or self._db.execute("SELECT 1 FROM checkpoints WHERE pos = ?", (pos,)).fetchone():
                return None
            signed_at = at.isoformat()
            kid, sig = sign(checkpoint_message(pos, head, signed_at))
            self._db.execute("INSERT INTO checkpoints (pos, head, sealed_at, kid, sig) VALUES (?,?,?,?,?)",
                             (pos, head, signed_at, kid, sig))
            return Checkpoint(pos, head, signed_at, kid, sig)

    def add_checkpoint(self, cp: Checkpoint) -> bool:
        """Keep a checkpoint signed elsewhere (a signer off this host, decision 49); False if one is there already.

        Its head must be the chain's hash at its position: a checkpoint this ledger does not reproduce
        is refused (:class:`LedgerError`).  Its signature is the signer's to give and the audit's to check.
        """
        with self._lock:
            row = self._db.execute("SELECT hash FROM entries WHERE pos = ?", (cp.pos,)).fetchone()
            if row is None or bytes(row[0]) != cp.head:
                raise LedgerError(f"a checkpoint at position {cp.pos} does not match this ledger's chain there",
                                  zh=f"位置 {cp.pos} 的检查点与本账本在该处的链不符",
                                  position=cp.pos)
            if self._db.execute("SELECT 1 FROM checkpoints WHERE pos = ?", (cp.pos,)).fetchone():
                return False
            self._db.execute("INSERT INTO checkpoints (pos, head, sealed_at, kid, sig) VALUES (?,?,?,?,?)",
                             (cp.pos, cp.head, cp.signed_at, cp.kid, cp.sig))
            return True

    def checkpoints(self, after: int = 0) -> list[Checkpoint]:
        """Every signed checkpoint past position ``after``, oldest first."""
        with self._lock:
            rows = self._db.execute("SELECT pos, head, sealed_at, kid, sig FROM checkpoints WHERE pos > ? ORDER BY pos",
                                    (after,)).fetchall()
        return [Checkpoint(int(p), bytes(h), t, k, bytes(s)) for p, h, t, k, s in rows]

    def envelope(self, entry: Entry) -> Envelope:
        """What an entry says: its sealed payload opened with 区司法局's keys.

        Raises :class:`~broker.signing.CannotOpen` where this machine holds no key that opens it.
        An entry appended through this object shortly before comes from memory: the ledger
        service opened those very bytes with the same keys before appending them, and each
        opening costs a sealed box (issue 14: the views would open every event again).
        """
        cached = self._opened.get(entry.pos)
        if cached is not None and cached[0] == entry.signed.body:
            return cached[1]
        return self.open(entry.signed.body)

    def open(self, body: bytes) -> Envelope:
        """What the bytes of an entry say (see :meth:`envelope`)."""
        head = decode_checked(body)
        if isinstance(head, Envelope):  # from before payloads were sealed (the ledger service refuses them)
            return head
        if self.opener is None:
            raise NoLedgerKey("the ledger's entries are sealed, and this machine does not hold 区司法局's box key "
                              "(keys/box/) that opens them; `xiezhu audit` checks the ledger without it",
                              zh="账本条目已加密，本机没有区司法局的解密密钥（keys/box/）；"
                                 "`xiezhu audit` 无需该密钥即可检查账本")
        return self.opener.open_routed(head)

    def read(self, body: bytes) -> tuple[Envelope | None, Rejected | None]:
        """What entry bytes say, or why they cannot be read: a finding for a replay, not an error.

        Only a machine without 区司法局's box key raises (:class:`NoLedgerKey`): it can read nothing.
        """
        try:
            return self.open(body), None
        except NoLedgerKey:
            raise
        except Rejected as e:
            return None, e

    def close(self) -> None:
        """Close the file (on PostgreSQL, give the connection back to the pool)."""
        with self._lock:
            readers, self._reader_conns = self._reader_conns, []
        for conn in readers:
            conn.close()
        self._readers = threading.local()
        self._db.close()
