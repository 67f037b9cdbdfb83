"""Witnessed checkpoints: 区司法局's signed chain heads, kept and countersigned by the bureaus (decision 49).

A checkpoint signed by 区司法局 proves what the ledger held, but only while the ledger keeps
it: whoever can change the ledger's file can cut its tail together with its last checkpoints,
and whoever also holds 区司法局's signing key can rewrite, re-chain and re-sign.  So every
checkpoint head is published on ``xzwit.heads`` in ``XZ_WITNESS``, a stream that refuses
deletes and purges (server-enforced, and no NATS user may update it), and each bureau's agent

- walks the heads it has not yet seen, checks 区司法局's signature under the trust list,
- keeps each in its own file (``<bureau>/witness.db``), so that a copy survives outside the
  ledger's host and the NATS servers, and warns in one line when a head contradicts one it
  kept (two heads for one position: a fork; a lower position signed later: a rollback),
- and publishes its countersignature on ``xzwit.cosign.<code>``: "this bureau saw this head
  at this time", signed with the bureau's own key.

``xiezhu audit --witnesses …`` then compares the ledger with what the witnesses kept
(:func:`broker.ledger.audit.compare_witnesses`).  The records travel and are exported as
JSON lines, tagged ``head`` or ``cosign``.
"""
from __future__ import annotations

import asyncio
import contextlib
import logging
import sqlite3
import struct
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, NamedTuple

import msgspec
import nacl.exceptions
import nacl.signing
from nats.aio.client import Client
from nats.js import JetStreamContext
from nats.js.errors import APIError, NotFoundError

from broker.ledger.store import Checkpoint, Ledger, checkpoint_message
from broker.pushed import PIPELINE, Sent, Source, read_sent, source_of
from broker.signing import KeyRing
from broker.streams import (
    EVENTS_STREAM,
    HEADS_SUBJECT,
    LEDGER_CONSUMER,
    MAX_WITNESS_BYTES,
    WITNESS_STREAM,
    WITNESS_SUBJECTS,
    cosign_subject,
    full_stream_error,
    witness_stream,
)
from broker.threads import in_thread
from schemas.errors import XiezhuError
from schemas.trust import TrustEntry

log = logging.getLogger(__name__)

#: The bureau whose key signs checkpoints.
CHECKPOINT_SIGNER = "sifa"
#: Seconds between a witness's walks of the heads it has not seen, besides the walk each new head wakes.
WITNESS_POLL_S = 30.0
COSIGN_CONTEXT = b"xiezhu-witness-cosign/1\n"
#: Seconds before a walk that failed (NATS away, a request timed out) is tried again.
RETRY_S = 1.0


class WitnessError(XiezhuError):
    """A witness file cannot be read."""

    code = "witness"


class Head(msgspec.Struct, frozen=True, kw_only=True, tag="head", tag_field="kind"):
    """A checkpoint as published: position, chain head, when and with which key 区司法局 signed it."""

    pos: int
    #: The chain hash at ``pos``, hex.
    head: str
    signed_at: str
    kid: str
    sig: bytes

    @classmethod
    def of(cls, cp: Checkpoint) -> Head:
        return cls(pos=cp.pos, head=cp.head.hex(), signed_at=cp.signed_at, kid=cp.kid, sig=cp.sig)

    def head_bytes(self) -> bytes:
        try:
            return bytes.fromhex(self.head)
        except ValueError:
            return b""


class Cosigned(msgspec.Struct, frozen=True, kw_only=True, tag="cosign", tag_field="kind"):
    """A bureau's countersignature: ``witness`` saw ``head`` at ``seen_at`` (signed with its key ``kid``)."""

    witness: str
    head: Head
    seen_at: str
    kid: str
    sig: bytes


#: One line of a witness file, or one message of ``XZ_WITNESS``.
Record = Head | Cosigned


def cosign_message(witness: str, head: Head, seen_at: str) -> bytes:
    """The exact bytes a countersignature covers: the witness, 区司法局's whole signed head, the time seen."""
    out = bytearray(COSIGN_CONTEXT)
    for part in (witness.encode(), checkpoint_message(head.pos, head.head_bytes(), head.signed_at),
                 head.kid.encode(), head.sig, seen_at.encode()):
        out += struct.pack(">I", len(part)) + part
    return bytes(out)


def checkpoint_problems(ring: KeyRing, pos: object, head: bytes, signed_at: object, kid: object,
                        sig: bytes) -> list[tuple[str, str]]:
    """Why a checkpoint is not 区司法局's signature over this head (kind, reason); empty if it is."""
    where = f"checkpoint at position {pos}"
    entry = ring.entry(kid) if isinstance(kid, str) else None
    if entry is None:
        return [("checkpoint-key", f"{where}: key {kid!r} is not in the trust list")]
    if entry.bureau != CHECKPOINT_SIGNER:
        return [("checkpoint-key", f"{where}: signed with {entry.bureau}'s key {kid}, not 区司法局's")]
    when = _time(signed_at)
    if when is None:
        return [("checkpoint-signature", f"{where}: signed_at {signed_at!r} is not a time with a timezone")]
    problems: list[tuple[str, str]] = []
    if not valid_at(entry, when):
        problems.append(("checkpoint-key", f"{where}: key {kid} was not valid when it was signed ({signed_at})"))
    if not isinstance(pos, int) or not _verifies(entry, checkpoint_message(pos, head, str(signed_at)), sig):
        problems.append(("checkpoint-signature", f"{where}: 区司法局's signature does not verify"))
    return problems


def record_problem(ring: KeyRing, record: Record) -> str | None:
    """Why a witness record proves nothing (one line), or ``None`` if every signature in it verifies."""
    head = record.head if isinstance(record, Cosigned) else record
    problems = checkpoint_problems(ring, head.pos, head.head_bytes(), head.signed_at, head.kid, head.sig)
    if problems:
        return problems[0][1]
    if isinstance(record, Cosigned):
        entry = ring.entry(record.kid)
        when = _time(record.seen_at)
        if entry is None or entry.bureau != record.witness:
            return f"{record.witness}'s countersignature of position {head.pos}: key {record.kid!r} is not its key"
        if when is None or not valid_at(entry, when):
            return f"{record.witness}'s countersignature of position {head.pos}: key not valid at {record.seen_at!r}"
        if not _verifies(entry, cosign_message(record.witness, head, record.seen_at), record.sig):
            return f"{record.witness}'s countersignature of position {head.pos} does not verify"
    return None


def valid_at(entry: TrustEntry, when: datetime) -> bool:
    """Whether a key was valid at ``when`` (neither before its start, after its end, nor revoked)."""
    if when < entry.valid_from or (entry.valid_to is not None and when >= entry.valid_to):
        return False
    return entry.revoked_at is None or when < entry.revoked_at


def _time(value: object) -> datetime | None:
    try:
        when = datetime.fromisoformat(value) if isinstance(value, str) else None
    except ValueError:
        return None
    return when if when is not None and when.tzinfo is not None else None


def _verifies(entry: TrustEntry, message: bytes, sig: object) -> bool:
    try:
        nacl.signing.VerifyKey(entry.public_key).verify(message, sig if isinstance(sig, bytes) else b"")
        return True
    except (nacl.exceptions.BadSignatureError, ValueError, TypeError):
        return False


def encode(record: Record) -> bytes:
    return msgspec.json.encode(record)


def decode(data: bytes) -> Record:
    """One record; raises :class:`msgspec.DecodeError` (a ``ValueError``) on anything else."""
    return msgspec.json.decode(data, type=Record)


async def publish_heads(js: JetStreamContext, ledger: Ledger, published: int) -> int:
    """Publish every checkpoint past position ``published`` on ``xzwit.heads``; returns the last position published.

    ``published`` 0 (a service that just started) reads the last head on the stream first.  A
    stream whose last head lies past the ledger's end means the ledger lost entries since it was
    published (a rollback, or a restore from an older backup): that is logged as an error, and
    the ledger's own heads are published all the same, where the audit sees both.
    """
    if published == 0:
        try:
            last = decode((await js.get_last_msg(WITNESS_STREAM, HEADS_SUBJECT, direct=True)).data or b"")
        except NotFoundError:
            last = None
        except ValueError:
            last = None
        if isinstance(last, Head):
            end = ledger.head[0]
            if last.pos > end:
                log.error("rollback: 区司法局 published a head at position %d but the ledger ends at %d; "
                          "run `xiezhu audit --witness-stream`", last.pos, end)
            published = min(last.pos, end)
    for cp in await in_thread(ledger.checkpoints, published):
        head = Head.of(cp)
        await js.publish(HEADS_SUBJECT, encode(head), headers={"Nats-Msg-Id": f"head:{head.pos}:{head.head}"})
        published = cp.pos
    return published


# -- a bureau's own copy ---------------------------------------------------------------------

_SCHEMA = """
CREATE TABLE IF NOT EXISTS heads (
    pos         INTEGER NOT NULL,
    head        TEXT NOT NULL,
    record      BLOB NOT NULL,   -- the Cosigned record as published (or to publish)
    seen_at     TEXT NOT NULL,
    published   INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (pos, head)
);
CREATE TABLE IF NOT EXISTS walked (id INTEGER PRIMARY KEY CHECK (id = 1), stream_seq INTEGER NOT NULL);
"""


@dataclass(frozen=True)
class Kept:
    """What keeping a head found: whether it was new, and a contradiction with what was kept before."""

    new: bool
    fork: Head | None = None
    rollback: Head | None = None


class WitnessStore:
    """A bureau's own copy of the heads it saw and countersigned (SQLite, one file)."""

    def __init__(self, path: Path, *, read_only: bool = False) -> None:
        self.path = Path(path)
        if read_only:
            if not self.path.is_file():
                raise WitnessError(f"no witness file at {self.path}",
                                   zh=f"{self.path} 处没有见证文件", path=str(self.path))
            self._db = sqlite3.connect(f"{self.path.resolve().as_uri()}?mode=ro", uri=True, check_same_thread=False)
        else:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.executescript(_SCHEMA)

    @property
    def walked(self) -> int:
        """The last ``XZ_WITNESS`` sequence walked (0: none)."""
        row = self._db.execute("SELECT stream_seq FROM walked").fetchone()
        return int(row[0]) if row else 0

    def keep(self, record: Cosigned, stream_seq: int) -> Kept:
        """Keep a countersigned head; report a fork or a rollback against the heads kept before."""
        head = record.head
        with self._db:
            self._db.execute("BEGIN IMMEDIATE")
            known = [decode(r[0]) for r in self._db.execute("SELECT record FROM heads WHERE pos = ?", (head.pos,))]
            heads = [k.head for k in known if isinstance(k, Cosigned)]
            if any(h.head == head.head for h in heads):
                new = False
            else:
                self._db.execute("INSERT INTO heads (pos, head, record, seen_at) VALUES (?,?,?,?)",
                                 (head.pos, head.head, encode(record), record.seen_at))
                new = True
            top = self._db.execute("SELECT record FROM heads WHERE pos > ? ORDER BY pos DESC LIMIT 1",
                                   (head.pos,)).fetchone()
            self._db.execute("INSERT INTO walked (id, stream_seq) VALUES (1, ?) ON CONFLICT (id) DO UPDATE "
                             "SET stream_seq = MAX(stream_seq, excluded.stream_seq)", (stream_seq,))
        fork = next((h for h in heads if h.head != head.head), None)
        later = decode(top[0]) if top else None
        rollback = later.head if isinstance(later, Cosigned) and new else None
        return Kept(new=new, fork=fork, rollback=rollback)

    def skip(self, stream_seq: int) -> None:
        """Note that a sequence was walked without keeping anything (a record that proves nothing)."""
        self._db.execute("INSERT INTO walked (id, stream_seq) VALUES (1, ?) ON CONFLICT (id) DO UPDATE "
                         "SET stream_seq = MAX(stream_seq, excluded.stream_seq)", (stream_seq,))

    def unpublished(self) -> list[Cosigned]:
        rows = self._db.execute("SELECT record FROM heads WHERE published = 0 ORDER BY pos").fetchall()
        return [r for r in (decode(row[0]) for row in rows) if isinstance(r, Cosigned)]

    def mark_published(self, record: Cosigned) -> None:
        self._db.execute("UPDATE heads SET published = 1 WHERE pos = ? AND head = ?",
                         (record.head.pos, record.head.head))

    def records(self) -> Iterator[Cosigned]:
        """Every countersigned head kept, by position."""
        for (data,) in self._db.execute("SELECT record FROM heads ORDER BY pos, seen_at").fetchall():
            r = decode(data)
            if isinstance(r, Cosigned):
                yield r

    def __len__(self) -> int:
        return int(self._db.execute("SELECT COUNT(*) FROM heads").fetchone()[0])

    def close(self) -> None:
        self._db.close()


# -- reading witnesses ---------------------------------------------------------------------------


def read_file(path: Path) -> list[Record]:
    """The records of a witness file: a bureau's ``witness.db``, or JSON lines (``xiezhu witness export``).

    A line that is not a record is an error naming the line: a witness file is evidence and is
    read whole or not at all.
    """
    path = Path(path)
    try:
        with path.open("rb") as f:
            magic = f.read(16)
    except OSError as e:
        raise WitnessError(f"cannot read witness file {path}: {e.strerror or e}",
                           zh=f"无法读取见证文件 {path}：{e.strerror or e}", path=str(path)) from e
    if magic == b"SQLite format 3\x00":
        store = WitnessStore(path, read_only=True)
        try:
            return list(store.records())
        except sqlite3.DatabaseError as e:
            raise WitnessError(f"{path} is not a witness file: {e}",
                               zh=f"{path} 不是见证文件：{e}", path=str(path)) from e
        finally:
            store.close()
    out: list[Record] = []
    for n, line in enumerate(path.read_bytes().splitlines(), start=1):
        if not line.strip():
            continue
        try:
            out.append(decode(line))
        except ValueError as e:
            raise WitnessError(f"{path}, line {n}: not a witness record ({e})",
                               zh=f"{path} 第 {n} 行：不是见证记录（{e}）", path=str(path), line=n) from e
    return out


async def read_stream(js: JetStreamContext, subjects: str = WITNESS_SUBJECTS) -> tuple[list[Record], int]:
    """Every record on ``XZ_WITNESS`` (by direct get, which every user may do), and how many were not records."""
    out: list[Record] = []
    bad = 0
    async for _, data in _walk(js, 1, subjects):
        try:
            out.append(decode(data))
        except ValueError:
            bad += 1
    return out, bad


class Stored(NamedTuple):
    """A message as the platform stores it: ``XZ``'s copy, and the original in the sending stream it names.

    The legal arrival is the time the sending stream stored the original (the push ended, decision
    57); ``XZ``'s time is its copy's, later by the sourcing delay, which ledgers before decision 57
    recorded.
    """

    data: bytes
    #: When ``XZ`` stored its copy.
    time: datetime
    #: The sending stream and sequence the copy names (``Nats-Stream-Source``); None: ``XZ`` took it itself.
    source: Source | None = None
    #: What that sending stream holds there; None: nothing (or no source).
    sent: Sent | None = None


async def read_stored(js: JetStreamContext, sequences: Iterable[int]) -> dict[int, Stored]:
    """The ``XZ`` messages at ``sequences`` and their originals in the sending streams (the platform's
    record; only the ``ledger`` user may read them), each round of reads pipelined.

    A sequence ``XZ`` does not hold is left out.
    """
    out: dict[int, Stored] = {}

    async def one(seq: int) -> None:
        try:
            m = await js.get_msg(EVENTS_STREAM, seq)
        except NotFoundError:
            return
        if m.time is not None:
            out[seq] = Stored(m.data or b"", m.time, source_of(m.subject or "", m.headers or {}))

    wanted = [seq for seq in dict.fromkeys(sequences) if seq > 0]
    for i in range(0, len(wanted), PIPELINE):
        await asyncio.gather(*(one(seq) for seq in wanted[i:i + PIPELINE]))
    sent = await read_sent(js, (m.source for m in out.values() if m.source is not None))
    return {seq: m._replace(sent=sent.get(m.source)) if m.source is not None else m
            for seq, m in sorted(out.items())}


#: At most this many ``XZ`` messages past the ledger's last recorded sequence are read by one audit.
TAKEN_LIMIT = 1000


class Taken(NamedTuple):
    """What the platform holds past the ledger's last recorded ``XZ`` sequence, of what the ledger took.

    ``acked``: the ledger's consumer's ack floor: the ledger acknowledged every ``XZ`` message up
    to it (recorded, a duplicate, or dead-lettered), and acknowledges only after its commit.
    ``messages``: each message after the sequence asked for, up to ``acked`` (at most
    :data:`TAKEN_LIMIT`): sequence, subject, headers, bytes.
    """

    acked: int
    messages: list[tuple[int, str, dict[str, str], bytes]]


async def read_taken(js: JetStreamContext, after: int, *, limit: int = TAKEN_LIMIT) -> Taken:
    """The ``XZ`` messages after sequence ``after`` that the ledger already acknowledged (as the ``ledger`` user:
    CONSUMER.INFO of its own consumer, and messages by sequence)."""
    info = await js.consumer_info(EVENTS_STREAM, LEDGER_CONSUMER)
    acked = int(info.ack_floor.stream_seq or 0) if info.ack_floor is not None else 0
    out: list[tuple[int, str, dict[str, str], bytes]] = []
    for seq in range(after + 1, min(acked, after + limit) + 1):
        try:
            m = await js.get_msg(EVENTS_STREAM, seq)
        except NotFoundError:
            continue
        out.append((seq, m.subject or "", dict(m.headers or {}), m.data or b""))
    return Taken(acked, out)


async def _walk(js: JetStreamContext, seq: int, subject: str) -> Any:
    while True:
        try:
            m = await js.get_msg(WITNESS_STREAM, seq, subject=subject, next=True, direct=True)
        except NotFoundError:
            return
        yield int(m.seq or seq), m.data or b""
        seq = int(m.seq or seq) + 1


# -- a bureau's witness ----------------------------------------------------------------------------


class Witness:
    """Follows ``xzwit.heads`` for one bureau: checks, keeps and countersigns every head.

    It walks the heads after the last one it walked (a restart resumes there, from its file),
    at start, when a head is published (it subscribes to the subject) and every ``interval``
    seconds.  What it cannot publish now it publishes on the next walk.
    """

    def __init__(self, code: str, ring: KeyRing, store: WitnessStore,
                 sign: Callable[[bytes, datetime], tuple[str, bytes]], now: Callable[[], datetime],
                 *, interval: float = WITNESS_POLL_S) -> None:
        """``sign(message, at)``: the bureau's key id and signature, with its key valid ``at``."""
        self.code = code
        self.ring = ring
        self.store = store
        self.sign = sign
        self.now = now
        self.interval = interval
        self.kept = 0
        self.alarms: list[str] = []
        #: Why the server refuses this bureau's countersignatures (its witness stream is full), or None.
        self.refused: str | None = None
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._js: JetStreamContext | None = None
        self._sub: Any = None

    async def start(self, nc: Client) -> None:
        self._js = nc.jetstream()
        self._sub = await nc.subscribe(HEADS_SUBJECT, cb=self._on_head)
        self._wake.set()
        self._task = asyncio.create_task(self._run(), name=f"witness-{self.code}")

    async def _on_head(self, _msg: Any) -> None:
        self._wake.set()

    async def stop(self) -> None:
        if self._sub is not None:
            with contextlib.suppress(Exception):
                await self._sub.unsubscribe()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        self.store.close()

    async def _run(self) -> None:
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self.interval)
            self._wake.clear()
            try:
                await self.catch_up()
            except Exception as e:  # NATS away or slow: walk again shortly
                log.warning("witness %s: heads not walked: %s", self.code, e)
                await asyncio.sleep(RETRY_S)
                self._wake.set()

    async def catch_up(self) -> int:
        """Walk, keep and countersign every head not walked yet; publish what is unpublished. Returns heads kept."""
        assert self._js is not None, "start() first"
        kept = 0
        async for seq, data in _walk(self._js, self.store.walked + 1, HEADS_SUBJECT):
            kept += await in_thread(self._take, seq, data)
        waiting = await in_thread(self.store.unpublished)
        for n, record in enumerate(waiting):
            try:
                await self._js.publish(
                    cosign_subject(self.code), encode(record),
                    headers={"Nats-Msg-Id": f"cosign:{self.code}:{record.head.pos}:{record.head.head}"})
            except APIError as e:
                why = full_stream_error(e, "witness", MAX_WITNESS_BYTES)
                if why is None:
                    raise
                self._refused(f"{why}; {self.store.path.name} keeps the {len(waiting) - n} not published, "
                              f"which go out once it takes them")
                break
            await in_thread(self.store.mark_published, record)
        else:
            if self.refused is not None and waiting:
                log.warning("witness %s: %s takes its countersignatures again", self.code, witness_stream(self.code))
                self.refused = None
        self.kept += kept
        return kept

    def _refused(self, why: str) -> None:
        """One line when the server starts refusing this bureau's countersignatures; quiet while it goes on."""
        if self.refused is None:
            log.error("witness %s: %s refuses its countersignatures: %s", self.code, witness_stream(self.code), why)
        self.refused = why

    def _take(self, seq: int, data: bytes) -> int:
        try:
            head = decode(data)
        except ValueError as e:
            return self._skip(seq, f"message {seq} on {HEADS_SUBJECT} is not a head ({e})")
        if not isinstance(head, Head):
            return self._skip(seq, f"message {seq} on {HEADS_SUBJECT} is not a head")
        why = record_problem(self.ring, head)
        if why is not None:
            return self._skip(seq, f"head {seq} on {HEADS_SUBJECT} proves nothing: {why}")
        seen_at = self.now().isoformat()
        kid, sig = self.sign(cosign_message(self.code, head, seen_at), self.now())
        kept = self.store.keep(Cosigned(witness=self.code, head=head, seen_at=seen_at, kid=kid, sig=sig), seq)
        if kept.fork is not None:
            self._alarm(f"fork: 区司法局 signed two heads for position {head.pos}: {kept.fork.head[:16]}… "
                        f"(signed {kept.fork.signed_at}) and {head.head[:16]}… (signed {head.signed_at})")
        if kept.rollback is not None:
            self._alarm(f"rollback: 区司法局 signed position {head.pos} at {head.signed_at}, after it had signed "
                        f"position {kept.rollback.pos} at {kept.rollback.signed_at}")
        return int(kept.new)

    def _skip(self, seq: int, why: str) -> int:
        log.error("witness %s: %s", self.code, why)
        self.store.skip(seq)
        return 0

    def _alarm(self, line: str) -> None:
        self.alarms.append(line)
        log.error("witness %s: %s; run `xiezhu audit --witness-stream`", self.code, line)


def heads(records: Iterable[Record]) -> Iterator[tuple[Head, str]]:
    """Each record's head and who kept it (``XZ_WITNESS`` for a head as published, else the bureau)."""
    for r in records:
        yield (r.head, r.witness) if isinstance(r, Cosigned) else (r, WITNESS_STREAM)
