"""Audit of the 区司法局 ledger: the whole file, checked from its own bytes and the trust list alone.

The audit reads the SQLite file through its own read-only connection, in one read
transaction (a consistent snapshot, even while the ledger service appends), in position
order, and checks:

- positions run 1..n with none missing;
- each row's ``prev_hash`` is the previous row's ``hash``, and ``hash`` is
  ``link(prev_hash, leaf)`` recomputed from the row's own position, ``XZ`` stream sequence,
  arrival, key id, signature and body (every stored column is either hashed, or an index
  checked against the signed body: decision 49);
- the index columns (event id, case, number, type, sender, recipient, event time) say
  what the signed body says;
- every signature verifies under the key that belonged to the sender at the envelope's
  time (:meth:`broker.signing.KeyRing.verify`);
- every checkpoint's head is the chain recomputed from the entries up to its position,
  and it is signed by a key of 区司法局 (``sifa``) valid when it was signed;
- the tables are the ledger's own (columns, types, primary keys, the uniqueness of event
  ids), and no event id is recorded twice: a file rebuilt without the unique index could
  otherwise hold a copy of an earlier, validly signed event in the unsealed tail.

Signature verification is most of the cost, so it runs in a process pool.  On a SQLite file
of the ledger's own schema each worker reads its own ranges of positions from the file
(memory-mapped, the ranges shrinking towards the end, as the rebuild reads them:
:func:`broker.ledger.store.position_ranges`) and walks the hash chain over each range as well;
this process joins the ranges' chains in order, walking a range again itself where it does not
start where the one before ended (damage), so the result is the one a single walk gives.  On
PostgreSQL, or a file whose tables are not the ledger's (positions need not be unique integers
there), this process reads the rows and walks the chain, and chunks of rows go to the workers.
The workers get the trust entries, never the ring object.

What the file alone cannot show (a rollback to an earlier checkpoint, a history rewritten
and re-signed with 区司法局's key) shows against the witnesses: the heads published on
``XZ_WITNESS`` and kept by the bureaus (:mod:`broker.witness`, decision 49), compared with
the chain recomputed here.
"""
from __future__ import annotations

import heapq
import itertools
import multiprocessing
import os
import sqlite3
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import Future, ProcessPoolExecutor
from contextlib import closing
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import msgspec

from aggregates.database import Location, Sql, db_errors, describe, is_postgres
from broker.ledger.store import (
    _SCHEMA,
    GENESIS,
    LedgerError,
    leaf_hash,
    link,
    open_mapped,
    open_read_only,
    position_ranges,
)
from broker.signing import KeyRing, Malformed, Rejected, decode_checked, unb64
from broker.witness import Head, Record, Stored, Taken, checkpoint_problems, heads, record_problem
from schemas.envelope import HDR_KEY, HDR_SIG, Envelope, SealedEnvelope, Signed, subject_for
from schemas.errors import XiezhuError, zh_of
from schemas.trust import TrustEntry

#: Rows per chunk sent to a worker: big enough that pickling is cheap, small enough to keep both busy (and the
#: smallest range of positions a SQLite ledger is split into).
CHUNK = 2000
#: Ranges of positions per worker a SQLite ledger is split into (progress is reported as each ends).
RANGES_PER_WORKER = 8
#: How many problems a report lists (the count covers all of them).
LISTED = 100
#: How many reasons for ignoring a witness record a report lists.
LISTED_NOTES = 5

#: Kinds of problem, in the order they are reported when one position has several.
KINDS = (
    "missing",          # positions absent: entries removed
    "out-of-order",     # a position where a later one was expected
    "column-type",      # a stored column holds the wrong type
    "prev-hash",        # the row does not link to the previous row
    "changed",          # the row's hash does not match its contents
    "unsigned", "unknown-key", "bad-signature", "key-not-valid", "wrong-sender", "malformed",
    "index",            # an index column disagrees with the signed body
    "checkpoint-position", "checkpoint-head", "checkpoint-key", "checkpoint-signature",
    "duplicate",        # an event id recorded at an earlier position too
    "schema",           # the tables are not the ledger's (reported at position 0)
    # Against the witnesses (decision 49):
    "rollback",         # a witnessed head lies past the ledger's end
    "fork",             # two different heads signed for one position
    "rewritten",        # the ledger's entries no longer hash to a witnessed head
    "platform",         # an unwitnessed entry differs from the platform's record of it in XZ
    "unrecorded",       # events the ledger took from XZ after its last entry are not in it: its end was cut
)
_RANK = {k: i for i, k in enumerate(KINDS)}

_ENTRIES = ("SELECT pos, event_id, case_id, number, type, sender, recipient, event_time, "
            "arrived_at, kid, sig, body, prev_hash, hash, stream_seq FROM entries WHERE pos > ? ORDER BY pos LIMIT ?")
_CHECKPOINTS = "SELECT pos, head, sealed_at, kid, sig FROM checkpoints ORDER BY pos"
_BEFORE_ALL = -(2**63)
_COLUMN_NAMES = ("pos", "event_id", "case_id", "number", "type", "sender", "recipient", "event_time",
                 "arrived_at", "kid", "sig", "body", "prev_hash", "hash", "stream_seq")
#: The hashed columns and the types the ledger stores them as.
_TYPES = ((8, str), (9, str), (10, bytes), (11, bytes), (12, bytes), (13, bytes), (14, int))
_INDEX_COLUMNS = ("event_id", "case_id", "number", "type", "sender", "recipient", "event_time")

#: What a worker gets per row: the row as selected (columns as in ``_COLUMN_NAMES``).
WorkRow = tuple[Any, ...]
#: What a worker reports per problem: position, kind, reason.
Found = tuple[int, str, str]


class AuditError(XiezhuError):
    """The ledger file cannot be read as a ledger (missing, not SQLite, no entries table)."""

    code = "audit"


class Problem(msgspec.Struct, frozen=True, kw_only=True):
    """One thing wrong with the ledger, at the position where it shows."""

    position: int
    #: One of :data:`KINDS`, or a :class:`~broker.signing.Rejected` code for a signature.
    kind: str
    reason: str


class AuditReport(msgspec.Struct, frozen=True, kw_only=True):
    """The outcome of one audit of the whole ledger."""

    ok: bool
    path: str
    #: Rows read.
    entries: int
    #: Entries whose signature verified under the key valid at the envelope's time.
    signatures_verified: int
    checkpoints: int
    #: Checkpoints whose head matches the chain and whose 区司法局 signature verifies.
    checkpoints_verified: int
    #: Entries and checkpoints found wrong (each counted once), plus each missing position.
    bad: int
    first_problem: Problem | None
    #: The first :data:`LISTED` problems by position (an entry can have several).
    problems: list[Problem]
    #: The last position and its stored hash, to compare with a head published elsewhere.
    head_position: int
    head_hash: str
    last_checkpoint: int | None
    #: Processes that verified signatures.
    workers: int
    seconds: float
    #: CPU seconds of this process and the verifying workers: what the audit costs, whatever else runs.
    cpu_seconds: float = 0.0
    #: Witness records compared (each a head whose signatures verified), who kept them, the highest position.
    witnesses: int = 0
    witness_parties: list[str] = msgspec.field(default_factory=list)
    witnessed_to: int | None = None
    #: Witness records that prove nothing (a signature that does not verify), and the first reasons.
    witnesses_ignored: int = 0
    witness_notes: list[str] = msgspec.field(default_factory=list)
    #: Entries compared with the platform's record in ``XZ`` (None: not compared), after which position.
    platform_checked: int | None = None
    platform_after: int | None = None
    #: Of those, entries whose arrival is ``XZ``'s stored time of its copy, as ledgers before decision 57
    #: recorded it (accepted only before the first entry on the sending stream's time).
    platform_legacy: int = 0
    #: The ledger's last entry's XZ sequence, and the sequence up to which its consumer acknowledged XZ
    #: (None: not compared); past the first, every validly signed event the ledger took must be in it.
    platform_last_seq: int | None = None
    platform_acked: int | None = None

    @property
    def rate_per_s(self) -> float:
        """Entries audited per second."""
        return self.entries / self.seconds if self.seconds > 0 else 0.0


def audit(ledger_path: Location, ring: KeyRing, *, workers: int | None = os.cpu_count(),
          progress: Callable[[int], None] | None = None, chunk: int = CHUNK,
          witnesses: Sequence[Record] | None = None,
          platform: Callable[[list[int]], Mapping[int, Stored]] | None = None,
          taken: Callable[[int], Taken] | None = None) -> AuditReport:
    """Check the whole ledger file; ``progress(k)`` is called as each ``k`` more entries are done.

    ``witnesses``: heads as published and as the bureaus kept them (:mod:`broker.witness`); each is
    compared with the chain the audit recomputes: a rollback, a fork or a rewritten history.
    ``platform(sequences)``: the ``XZ`` stream's messages at those sequences and the originals in the
    sending streams they name (the platform's record, decisions 28 and 57); every entry after the last
    witnessed head is compared with them, so that a backdated arrival or a changed sequence in the
    unwitnessed tail is found too.
    ``taken(seq)``: the ``XZ`` messages after the ledger's last recorded sequence that the ledger's
    consumer already acknowledged (:func:`broker.witness.read_taken`); each validly signed, sealed
    event among them that the ledger does not hold is missing from its end (entries cut together
    with the checkpoints after the last witnessed head).

    ``workers`` processes verify signatures; with ``1``, or a ledger that fits in one ``chunk``, this
    process does.  A SQLite ledger is split into at most ``workers`` × :data:`RANGES_PER_WORKER` ranges
    of positions, and no more than one per ``chunk`` positions (progress is reported as each ends); PostgreSQL's rows go
    in chunks of ``chunk``.  The workers start with the forkserver method (safe when the caller runs threads, as a
    progress bar does), so a script that calls this needs the usual ``if __name__ == "__main__":`` guard.
    """
    started, cpu = time.perf_counter(), time.process_time()
    workers = max(1, workers or 1)
    findings = _Findings()
    conn = _connect(ledger_path)
    try:
        with conn.snapshot():  # one snapshot for checkpoints and entries alike
            try:
                checkpoints = _read(conn, _CHECKPOINTS, ())
            except db_errors() as e:
                raise AuditError(f"{describe(ledger_path)} is not a xiezhu ledger: {e}",
                                 zh=f"{describe(ledger_path)} 不是 xiezhu 账本：{e}") from e
            differences = _schema_differences(conn)
            for reason in differences:
                findings.add(0, "schema", f"schema: {reason}")
                findings.bad += 1
            witnessed = _Witnessed(ring, witnesses or ())
            walk = _Walk(checkpoints, ring, findings, capture=set(witnessed.by_pos),
                         tail_after=(witnessed.top or 0) if platform is not None else None)
            if conn.postgres or differences:
                # The file is not the ledger's shape (positions need not be the rowid) or is on a server: this
                # process reads the rows and sends them to the workers.
                verify = _in_chunks(conn, walk, ring, workers, findings, progress, chunk)
                _duplicates(conn, findings)
            else:
                verify = _in_ranges(conn, Path(ledger_path), walk, checkpoints, ring, workers, findings, progress,
                                    chunk)
            walk.finish()
            beyond = taken(walk.last_seq) if taken is not None else None
            if beyond is not None:
                _compare_taken(conn, ring, walk, beyond, findings)
    finally:
        conn.close()
    witnessed.compare(walk, checkpoints, findings)
    legacy = 0
    if platform is not None:
        compared = [*([walk.pin] if walk.pin is not None else []), *walk.tail]
        legacy = _compare_platform(walk.tail, platform([seq for _, seq, _, _ in compared]), findings, pin=walk.pin)
    return AuditReport(
        ok=findings.bad == 0, path=describe(ledger_path), entries=walk.rows,
        signatures_verified=verify.verified, checkpoints=len(checkpoints),
        checkpoints_verified=walk.checkpoints_verified, bad=findings.bad,
        first_problem=findings.first(), problems=findings.listed(),
        head_position=walk.last_pos, head_hash=walk.stored_prev.hex(),
        last_checkpoint=int(checkpoints[-1][0]) if checkpoints else None,
        workers=verify.processes, seconds=round(time.perf_counter() - started, 3),
        cpu_seconds=round(time.process_time() - cpu + verify.worker_cpu, 3),
        witnesses=witnessed.verified, witness_parties=sorted(witnessed.parties), witnessed_to=witnessed.top,
        witnesses_ignored=len(witnessed.ignored), witness_notes=witnessed.ignored[:LISTED_NOTES],
        platform_checked=len(walk.tail) if platform is not None else None,
        platform_after=walk.tail_after, platform_legacy=legacy,
        platform_last_seq=walk.last_seq if beyond is not None else None,
        platform_acked=beyond.acked if beyond is not None else None,
    )


def _in_chunks(conn: Sql, walk: _Walk, ring: KeyRing, workers: int, findings: _Findings,
               progress: Callable[[int], None] | None, chunk: int) -> _Verifier:
    """This process reads the rows in position order and walks the chain; the workers verify chunks of them."""
    verify = _Verifier(ring, workers, findings, progress)
    try:
        while rows := _entries(conn, walk.last_pos if walk.rows else _BEFORE_ALL, chunk):
            verify.submit([walk.row(r) for r in rows], walk.take_bad(), more=len(rows) == chunk)
    finally:
        verify.close()
    return verify


def _in_ranges(conn: Sql, path: Path, walk: _Walk, checkpoints: list[tuple[Any, ...]], ring: KeyRing, workers: int,
               findings: _Findings, progress: Callable[[int], None] | None, chunk: int) -> _Verifier:
    """Each worker reads its own ranges of positions from the file and checks them whole (:func:`audit_range`);
    this process looks for repeated event ids meanwhile, then joins the ranges' chains in order.

    A range's walk starts from what its first row names (the position before it, its ``prev_hash`` as the
    chain).  If that is not where the range before it ended (a gap, a broken link, a chain that no longer
    matches the stored hashes), this process walks the range again from where the one before ended: the walk
    is a function of its start and the rows, so the result is the one a single walk gives.  Signatures and
    index columns do not depend on the start, and are not checked again."""
    lo, hi = _read(conn, "SELECT min(pos), max(pos) FROM entries", ())[0]
    verify = _Verifier(ring, workers, findings, progress)
    if lo is None:  # no entries
        _duplicates(conn, findings)
        return verify
    span = hi - lo + 1
    n = 1 if workers == 1 or span <= chunk else min(workers * RANGES_PER_WORKER, -(-span // chunk))
    bounds = [(a + lo - 1, b + lo - 1) for a, b in position_ranges(span, n, workers)]
    entries = ring.entries()
    tasks, at = [], 0
    for i, (first, last) in enumerate(bounds):
        upto = at
        while upto < len(checkpoints) and checkpoints[upto][0] <= last:
            upto += 1
        tasks.append(_RangeTask(str(path), first, last, walk.state() if i == 0 else None, checkpoints[at:upto],
                                entries, frozenset(p for p in walk.capture if first <= p <= last), walk.tail_after))
        at = upto
    walk.pending(checkpoints[at:])  # past the last entry
    if len(tasks) == 1:
        done: Iterable[_RangeDone] = [audit_range(tasks[0])]
        _duplicates(conn, findings)
    else:
        pool = ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("forkserver"))
        verify.pool = pool
        futures = [pool.submit(audit_range, t) for t in tasks]
        _duplicates(conn, findings)  # while the workers read
        done = (f.result() for f in futures)
    try:
        for task, got in zip(tasks, done, strict=True):
            walked = got.walked
            if got.rows and walked.start != walk.state():
                walked = _walk_range(task, ring, iter(_range_rows(conn, task)), walk.state(), None)[0]
            walk.join(walked)
            for pos, kind, reason in walked.problems:
                findings.add(pos, kind, reason)
            verify.collect((got.verified, got.signed, got.cpu), walked.flagged, got.rows, walked.bad)
    except sqlite3.Error as e:
        raise AuditError(f"cannot read the entries: {e}", zh=f"无法读取条目：{e}") from e
    finally:
        verify.close()
    return verify


def count_entries(ledger_path: Location) -> int:
    """How many entries the ledger holds (a progress bar's total)."""
    conn = _connect(ledger_path)
    try:
        return int(conn.execute("SELECT COUNT(*) FROM entries").fetchone()[0])
    except db_errors() as e:
        raise AuditError(f"{describe(ledger_path)} is not a xiezhu ledger: {e}",
                         zh=f"{describe(ledger_path)} 不是 xiezhu 账本：{e}") from e
    finally:
        conn.close()


def render(report: AuditReport, language: str = "en", name: Callable[[str], str] = lambda code: code) -> str:
    """The report as plain text, for the command line: in English, or in 中文 (``language="zh"``) with
    the witnesses' bureaus as ``name`` gives them.  Each problem's reason stays as the audit found it."""
    if language == "zh":
        return _render_zh(report, name)
    verdict = "OK" if report.ok else "FAILED"
    lines = [
        f"ledger audit {verdict}: {report.path}",
        f"  entries               {report.entries:,}",
        f"  signatures verified   {report.signatures_verified:,}",
        f"  checkpoints verified  {report.checkpoints_verified:,} of {report.checkpoints:,}",
        f"  bad                   {report.bad:,}",
        f"  head                  position {report.head_position:,}, hash {report.head_hash}",
        f"  last checkpoint       {'none' if report.last_checkpoint is None else f'{report.last_checkpoint:,}'}",
        f"  time                  {report.seconds:.1f} s, {report.rate_per_s:,.0f} entries/s, "
        f"{report.workers} worker{'s' if report.workers != 1 else ''}",
    ]
    lines.append(f"  witnesses             {_witness_line(report)}")
    lines += [f"  ignored witness       {note}" for note in report.witness_notes]
    if report.platform_checked is not None:
        legacy = (f"; {report.platform_legacy:,} recorded at XZ's time of its copy, as before decision 57"
                  if report.platform_legacy else "")
        lines.append(f"  platform record       {report.platform_checked:,} entries after position "
                     f"{report.platform_after or 0:,} compared with XZ and the sending streams (sequence, bytes, "
                     f"arrival: the time the sending stream stored it){legacy}")
    if report.platform_acked is not None:
        lines.append(f"  platform end          the ledger's last XZ sequence {report.platform_last_seq or 0:,}; "
                     f"XZ acknowledged by the ledger up to {report.platform_acked:,}")
    lines += _problem_lines(report, "first problem: ", "then:", f"  (only the first {LISTED} problems are listed)")
    return "\n".join(lines)


def _render_zh(report: AuditReport, name: Callable[[str], str]) -> str:
    last = "无" if report.last_checkpoint is None else f"位置 {report.last_checkpoint:,}"
    lines = [
        f"账本审计{'通过' if report.ok else '未通过'}：{report.path}",
        f"  条目          {report.entries:,}",
        f"  已验签名      {report.signatures_verified:,}",
        f"  已验检查点    {report.checkpoints_verified:,} / {report.checkpoints:,}",
        f"  问题          {report.bad:,}",
        f"  链头          位置 {report.head_position:,}，哈希 {report.head_hash}",
        f"  最近检查点    {last}",
        f"  用时          {report.seconds:.1f} 秒，每秒 {report.rate_per_s:,.0f} 条，{report.workers} 个进程",
    ]
    if report.witnessed_to is None:
        lines.append("  见证          未比对（发现回滚、重签须对照见证：--witnesses）")
    else:
        after = report.head_position - report.witnessed_to
        kept = "、".join(name(p) for p in sorted(set(report.witness_parties)))
        tail = f"；其后 {after:,} 条尚未见证" if after > 0 else ""
        lines.append(f"  见证          {report.witnesses:,} 个链头，由 {kept} 保存，"
                     f"至位置 {report.witnessed_to:,}{tail}")
    lines += [f"  未采用的见证  {note}" for note in report.witness_notes]
    if report.platform_checked is not None:
        legacy = (f"；其中 {report.platform_legacy:,} 条记的是 XZ 副本的存储时间（第 57 项决定之前的账本）"
                  if report.platform_legacy else "")
        lines.append(f"  平台记录      位置 {report.platform_after or 0:,} 之后的 {report.platform_checked:,} 条"
                     f"已与 XZ 流及各发送流比对（序号、字节、到达时间即发送流存储时间）{legacy}")
    if report.platform_acked is not None:
        lines.append(f"  平台末端      账本最后的 XZ 序号 {report.platform_last_seq or 0:,}；"
                     f"账本已确认 XZ 至序号 {report.platform_acked:,}")
    lines += _problem_lines(report, "首个问题：", "其后：", f"  （只列出前 {LISTED} 个问题）")
    return "\n".join(lines)


def _problem_lines(report: AuditReport, first: str, then: str, only: str) -> list[str]:
    """The problems found, the first with its reason and the others with their kind, in either language."""
    if report.first_problem is None:
        return []
    lines = [f"{first}{report.first_problem.reason}"]
    more = report.problems[1:]
    if more:
        lines.append(then)
        lines += [f"  [{p.kind}] {p.reason}" for p in more]
        if report.bad > len(report.problems):
            lines.append(only)
    return lines


def _witness_line(report: AuditReport) -> str:
    if report.witnessed_to is None:
        return ("none compared: a rollback or a history re-signed with 区司法局's key shows only against them "
                "(--witness-stream, --witnesses FILE)")
    after = report.head_position - report.witnessed_to
    tail = f"; {after:,} entries after it not witnessed yet" if after > 0 else ""
    return (f"{report.witnesses:,} heads kept by {_kept_by(report.witness_parties)}, up to position "
            f"{report.witnessed_to:,}{tail}")


# -- the witnesses (decision 49) ---------------------------------------------------------------


class _Witnessed:
    """The heads the witnesses kept, by position, and their comparison with the ledger."""

    def __init__(self, ring: KeyRing, records: Iterable[Record]) -> None:
        self.ring = ring
        self.verified = 0
        self.parties: set[str] = set()
        self.ignored: list[str] = []
        #: position → head (hex) → (the head, who kept it)
        self.by_pos: dict[int, dict[str, tuple[Head, list[str]]]] = {}
        records = list(records)
        for record, (head, party) in zip(records, heads(records), strict=True):
            why = record_problem(ring, record)
            if why is not None:
                self.ignored.append(f"{party}: {why}")
                continue
            self.verified += 1
            self.parties.add(party)
            self.by_pos.setdefault(head.pos, {}).setdefault(head.head, (head, []))[1].append(party)

    @property
    def top(self) -> int | None:
        return max(self.by_pos) if self.by_pos else None

    def compare(self, walk: _Walk, checkpoints: list[tuple[Any, ...]], findings: _Findings) -> None:
        """One line for each fork, one for the first rewritten head, one for a rollback."""
        signed = {int(cp[0]): _as_blob(cp[1]).hex() for cp in checkpoints
                  if isinstance(cp[0], int) and not _checkpoint_signature(self.ring, cp)}
        rewritten: list[int] = []
        beyond: list[int] = []
        for pos in sorted(self.by_pos):
            kept = self.by_pos[pos]
            ledger_head = signed.get(pos)
            if len(kept) > 1 or (ledger_head is not None and ledger_head not in kept):
                self._fork(pos, kept, ledger_head, findings)
            if pos > walk.last_pos:
                beyond.append(pos)
            elif any(h != walk.chain_at.get(pos, b"").hex() for h in kept):
                rewritten.append(pos)
        if rewritten:
            pos = rewritten[0]
            chain = walk.chain_at.get(pos, b"").hex()
            head, parties = next(v for h, v in self.by_pos[pos].items() if h != chain)
            later = f" (and {len(rewritten) - 1:,} later witnessed heads)" if len(rewritten) > 1 else ""
            findings.add(pos, "rewritten", (
                f"rewritten history: the ledger's entries no longer hash to the head {head.head[:16]}… that "
                f"区司法局 signed for position {pos:,} at {head.signed_at} and {_kept_by(parties)} kept{later}: "
                f"an entry at or before position {pos:,} was changed, removed or re-chained"))
            findings.bad += 1
        if beyond:
            pos = beyond[-1]
            head, parties = next(iter(self.by_pos[pos].values()))
            findings.add(pos, "rollback", (
                f"rollback: 区司法局 signed position {pos:,} at {head.signed_at} and {_kept_by(parties)} kept it, "
                f"but the ledger ends at position {walk.last_pos:,} ({pos - walk.last_pos:,} entries and "
                f"{len(beyond):,} witnessed heads gone)"))
            findings.bad += 1

    def _fork(self, pos: int, kept: dict[str, tuple[Head, list[str]]], ledger_head: str | None,
              findings: _Findings) -> None:
        seen = [f"{h[:16]}… ({_kept_by(parties)})" for h, (_, parties) in kept.items()]
        if ledger_head is not None and ledger_head not in kept:
            seen.append(f"{ledger_head[:16]}… (the ledger's checkpoint)")
        findings.add(pos, "fork", f"fork: 区司法局 signed {len(seen)} different heads for position {pos:,}: "
                                  + " and ".join(seen))
        findings.bad += 1


#: Arrival times are stored to the microsecond, the stream's to the nanosecond.
_SAME_TIME = timedelta(milliseconds=1)


def _compare_platform(tail: list[tuple[int, int, str, bytes]], stored: Mapping[int, Stored],
                      findings: _Findings, *, pin: tuple[int, int, str, bytes] | None = None) -> int:
    """One line for each entry that is not, at its stream sequence, what the platform stored when it did.

    The arrival must be the time the sending stream named by ``XZ``'s copy stored the original (the
    push ended, decision 57).  ``XZ``'s own time of the copy, which ledgers before decision 57 recorded,
    is accepted only until an entry, the witnessed ``pin`` included, is on the sending stream's time and
    not on ``XZ``'s (from there on the ledger records the push's end: an arrival moved to ``XZ``'s later
    time is found).  Returns how many entries were accepted on ``XZ``'s time.
    """
    legacy = 0
    pushed_from: int | None = None
    for n, (pos, seq, arrived_at, body) in enumerate([*([pin] if pin is not None else []), *tail]):
        witnessed = pin is not None and n == 0
        msg = stored.get(seq)
        if msg is None:
            why = f"XZ holds no message {seq:,} (its stream sequence was changed, or the stream no longer keeps it)"
        elif msg.data != body:
            why = f"the message at XZ sequence {seq:,} is another (its stream sequence was changed)"
        elif msg.source is not None and (msg.sent is None or msg.sent.data != body):
            why = (f"XZ's copy at sequence {seq:,} names {msg.source.stream} sequence {msg.source.seq:,}, which "
                   f"holds {'another message' if msg.sent is not None else 'no message'}")
        else:
            legal, where = ((msg.sent.time, f"{msg.source.stream} stored it (sequence {msg.source.seq:,})")
                            if msg.source is not None and msg.sent is not None
                            else (msg.time, f"XZ stored it (sequence {seq:,}; no sending stream named)"))
            on_legal, on_copy = _near(arrived_at, legal), _near(arrived_at, msg.time)
            if on_legal:
                if not on_copy and pushed_from is None:
                    pushed_from = pos
                continue
            if on_copy and pushed_from is None:
                legacy += 0 if witnessed else 1
                continue
            why = (f"arrival recorded as {arrived_at} but the push ended when {where} at {legal.isoformat()} "
                   "(the arrival was changed; decision 28's deadlines run from the platform's time")
            why += (f"; XZ's copy came at {msg.time.isoformat()}, which only ledgers before decision 57 record, "
                    f"and this one records the sending stream's time from position {pushed_from:,})"
                    if on_copy else ")")
        if witnessed:
            continue  # covered by the witnessed chain; it only tells what the tail records
        findings.add(pos, "platform", f"position {pos}: {why}")
        findings.bad += 1
    return legacy


def _near(arrived_at: str, t: datetime) -> bool:
    try:
        return abs(datetime.fromisoformat(arrived_at) - t) < _SAME_TIME
    except (TypeError, ValueError):
        return False


def _compare_taken(conn: Sql, ring: KeyRing, walk: _Walk, taken: Taken, findings: _Findings) -> None:
    """One line if events the ledger took from ``XZ`` after its last entry are not in it (its end was cut).

    Only a message the ledger must have recorded counts: signed under the trust list, on the subject
    its envelope names, sealed, and of an event id the ledger does not hold (a copy of a recorded event
    is a duplicate, acknowledged without an entry).  Anything else the ledger dead-lettered.
    """
    missing: list[tuple[int, str]] = []
    for seq, subject, headers, data in taken.messages:
        try:
            head = ring.check(Signed(body=data, kid=headers.get(HDR_KEY, ""), sig=unb64(headers.get(HDR_SIG, ""))))
        except (Rejected, ValueError):
            continue
        if not isinstance(head, SealedEnvelope) or subject != subject_for(head):
            continue
        if _read(conn, "SELECT 1 FROM entries WHERE event_id = ?", (head.id,)):
            continue
        missing.append((seq, head.id))
    if not missing:
        return
    first_seq, first_id = missing[0]
    read = len(taken.messages)
    more = f" (of the first {read:,} read)" if walk.last_seq + read < taken.acked else ""
    findings.add(walk.last_pos + 1, "unrecorded",
                 f"unrecorded: the ledger ends at position {walk.last_pos:,} (XZ sequence {walk.last_seq:,}), but its "
                 f"consumer acknowledged XZ up to sequence {taken.acked:,}, and {len(missing):,} validly signed "
                 f"events after it{more} are not in the ledger, the first at XZ sequence {first_seq:,} (event "
                 f"{first_id}): entries were removed from its end, or this is an older copy of it")
    findings.bad += len(missing)


def _kept_by(parties: list[str]) -> str:
    names = sorted(set(parties))
    return ", ".join(names[:4]) + (f" and {len(names) - 4} more" if len(names) > 4 else "")


# -- the file ------------------------------------------------------------------------------


def _connect(location: Location) -> Sql:
    """Read-only, from a read-only directory (an archive) too; on PostgreSQL, a read-only session."""
    if is_postgres(location):
        try:
            conn = Sql(location, read_only=True)
        except db_errors() as e:
            raise AuditError(f"cannot reach the ledger in {describe(location)}: {e}",
                             zh=f"无法连接 {describe(location)} 中的账本：{e}") from e
        if not conn.table_exists("entries"):
            conn.close()
            raise AuditError(f"no ledger in {describe(location)}", zh=f"{describe(location)} 中没有账本")
        return conn
    try:
        return Sql.wrap(open_read_only(Path(location)), location)
    except LedgerError as e:
        raise AuditError(str(e), zh=zh_of(e)) from e


def _entries(conn: Sql, after: int, limit: int) -> list[tuple[Any, ...]]:
    try:
        return _read(conn, _ENTRIES, (after, limit))
    except db_errors() as e:
        raise AuditError(f"cannot read the entries after position {after}: {e}",
                         zh=f"无法读取位置 {after} 之后的条目：{e}") from e


def _read(conn: Sql, sql: str, args: tuple[Any, ...]) -> list[tuple[Any, ...]]:
    """Rows of a query; text that is not UTF-8 (itself a sign of tampering) is read with replacement characters.

    (PostgreSQL refuses such text on the way in, so only a SQLite file can hold it.)"""
    try:
        return conn.execute(sql, args).fetchall()
    except sqlite3.OperationalError as e:
        if "decode" not in str(e):
            raise
    conn.sqlite.text_factory = _lenient_text
    try:
        return conn.execute(sql, args).fetchall()
    finally:
        conn.sqlite.text_factory = str


def _lenient_text(data: bytes) -> str:
    return data.decode("utf-8", "replace")


# -- the schema and the uniqueness of event ids ---------------------------------------------


def _shape(conn: Sql) -> dict[str, tuple[Any, ...]]:
    """Each ledger table's columns (name, type, not null, primary key) and its unique column sets."""
    if conn.postgres:
        return _pg_shape(conn)
    db = conn.sqlite
    out: dict[str, tuple[Any, ...]] = {}
    for table in ("entries", "checkpoints"):
        columns = tuple((r[1], r[2].upper(), bool(r[3]), r[5]) for r in db.execute(f"PRAGMA table_info({table})"))
        unique = sorted(tuple(c[2] for c in db.execute(f"PRAGMA index_info({_quoted(ix[1])})"))
                        for ix in db.execute(f"PRAGMA index_list({table})") if ix[2])
        out[table] = (columns, tuple(unique))
    return out


_PG_UNIQUE = """SELECT i.indisprimary, array_agg(a.attname::text ORDER BY k.ord) FROM pg_index i
    CROSS JOIN LATERAL unnest(i.indkey) WITH ORDINALITY AS k(attnum, ord)
    JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum
    WHERE i.indrelid = to_regclass(?) AND i.indisunique GROUP BY i.indexrelid, i.indisprimary"""
_PG_COLUMNS = """SELECT column_name::text, upper(data_type::text), is_nullable = 'NO' FROM information_schema.columns
    WHERE table_schema = current_schema() AND table_name = ? ORDER BY ordinal_position"""


def _pg_shape(conn: Sql) -> dict[str, tuple[Any, ...]]:
    """:func:`_shape` of a PostgreSQL schema, in SQLite's terms (a primary key's columns are not null there)."""
    out: dict[str, tuple[Any, ...]] = {}
    for table in ("entries", "checkpoints"):
        indexes = conn.execute(_PG_UNIQUE, (table,)).fetchall()
        pk = next((list(cols) for primary, cols in indexes if primary), [])
        columns = tuple((name, type_, notnull, pk.index(name) + 1 if name in pk else 0)
                        for name, type_, notnull in conn.execute(_PG_COLUMNS, (table,)))
        out[table] = (columns, tuple(sorted(tuple(cols) for _, cols in indexes)))
    return out


def _quoted(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _expected_shape(postgres: bool) -> dict[str, tuple[Any, ...]]:
    """The shape :data:`_SCHEMA` makes; on PostgreSQL, as its DDL is translated there."""
    conn = Sql(":memory:")
    try:
        conn.script(_SCHEMA)
        shape = _shape(conn)
    finally:
        conn.close()
    if not postgres:
        return shape
    types = {"INTEGER": "BIGINT", "BLOB": "BYTEA", "TEXT": "TEXT"}
    return {table: (tuple((name, types[type_], notnull or pk > 0, pk) for name, type_, notnull, pk in columns), unique)
            for table, (columns, unique) in shape.items()}


def _schema_differences(conn: Sql) -> list[str]:
    """What about the file's tables differs from the ledger's own schema."""
    want, have = _expected_shape(conn.postgres), _shape(conn)
    out = []
    for table in want:
        (want_cols, want_unique), (have_cols, have_unique) = want[table], have[table]
        if have_cols != want_cols:
            missing = [c[0] for c in want_cols if c not in have_cols]
            extra = [c[0] for c in have_cols if c not in want_cols]
            out.append(f"table {table} has other columns than the ledger's "
                       f"(differing: {', '.join(dict.fromkeys(missing + extra)) or 'their order'})")
        for cols in want_unique:
            if cols not in have_unique:
                out.append(f"table {table} does not keep {', '.join(cols)} unique (the file was rebuilt)")
    return out


def _duplicates(conn: Sql, findings: _Findings) -> None:
    """Every entry whose event id an earlier position already holds."""
    try:
        rows = _read(conn, "SELECT event_id, pos FROM entries WHERE event_id IN (SELECT event_id FROM entries "
                           "GROUP BY event_id HAVING COUNT(*) > 1) ORDER BY event_id, pos", ())
    except db_errors() as e:
        raise AuditError(f"cannot read the event ids: {e}", zh=f"无法读取事件编号：{e}") from e
    first: dict[Any, int] = {}
    for event_id, pos in rows:
        if event_id not in first:
            first[event_id] = pos
            continue
        findings.add(pos, "duplicate", f"position {pos}: event {event_id} is already recorded at position "
                                       f"{first[event_id]} (a copy of an earlier event)")
        findings.bad += 1


# -- problems --------------------------------------------------------------------------------


class _Findings:
    """The problems found: a count, and the first :data:`LISTED` by position."""

    def __init__(self) -> None:
        self.bad = 0
        self._heap: list[tuple[int, int, int, Problem]] = []  # negated keys: a max-heap
        self._seq = 0

    def add(self, position: int, kind: str, reason: str) -> None:
        self._seq += 1
        key = (-position, -_RANK.get(kind, len(KINDS)), -self._seq)
        heapq.heappush(self._heap, (*key, Problem(position=position, kind=kind, reason=reason)))
        if len(self._heap) > LISTED:
            heapq.heappop(self._heap)

    def listed(self) -> list[Problem]:
        return [p for *_, p in sorted(self._heap, reverse=True)]

    def found(self) -> list[Found]:
        """:meth:`listed` as tuples, for another process's findings (the first :data:`LISTED` of all are among
        the first of each)."""
        return [(p.position, p.kind, p.reason) for p in self.listed()]

    def first(self) -> Problem | None:
        return max(self._heap)[3] if self._heap else None


# -- the hash chain (this process) ---------------------------------------------------------


class _Walk:
    """The sequential checks: positions, the hash chain, the checkpoints."""

    def __init__(self, checkpoints: list[tuple[Any, ...]], ring: KeyRing, findings: _Findings,
                 capture: set[int] | None = None, tail_after: int | None = None) -> None:
        self.findings = findings
        #: The entries after position ``tail_after`` (position, stream sequence, arrival, body), to compare
        #: with the platform's record.
        self.tail_after = tail_after
        self.tail: list[tuple[int, int, str, bytes]] = []
        #: The entry at ``tail_after`` itself (witnessed): which time it records tells what the tail must record.
        self.pin: tuple[int, int, str, bytes] | None = None
        #: Positions whose recomputed chain hash the witnesses need, and those hashes.
        self.capture = capture or set()
        self.chain_at: dict[int, bytes] = {}
        self.ring = ring
        self.rows = 0
        self.last_pos = 0
        #: The highest XZ sequence an entry records.
        self.last_seq = 0
        self.checkpoints_verified = 0
        #: The chain recomputed from the genesis over every row's contents: what a checkpoint signed.
        self.chain = GENESIS
        #: The previous row's stored hash, and what its hash should have been (equal unless it was bad).
        self.stored_prev = GENESIS
        self.fixed_prev = GENESIS
        self._after_gap = False
        self._pending = deque(checkpoints)
        self._bad: set[int] = set()

    def state(self) -> State:
        """Where the walk stands between two rows."""
        return self.last_pos, self.chain, self.stored_prev, self.fixed_prev, self._after_gap

    def resume(self, state: State) -> None:
        self.last_pos, self.chain, self.stored_prev, self.fixed_prev, self._after_gap = state

    def pending(self, checkpoints: Iterable[tuple[Any, ...]]) -> None:
        """The checkpoints still to come (those of the ranges the workers walk are theirs)."""
        self._pending = deque(checkpoints)

    def walked(self, start: State | None, problems: _Findings) -> _Walked:
        """What a walk over one range found (``problems`` those it was given), to join to the walks before it."""
        return _Walked(start=start, end=self.state(), rows=self.rows, problems=problems.found(), bad=problems.bad,
                       flagged=self._bad, checkpoints_verified=self.checkpoints_verified, chain_at=self.chain_at,
                       tail=self.tail, pin=self.pin, last_seq=self.last_seq)

    def join(self, walked: _Walked) -> None:
        """A range's walk, which started where this one stands, taken as this one's continuation."""
        if walked.rows:
            self.resume(walked.end)
        self.rows += walked.rows
        self.checkpoints_verified += walked.checkpoints_verified
        self.chain_at |= walked.chain_at
        self.tail += walked.tail
        self.pin = walked.pin or self.pin
        self.last_seq = max(self.last_seq, walked.last_seq)

    def row(self, row: tuple[Any, ...]) -> WorkRow:
        """Check one row against its predecessor; returns it, as a signature worker needs it."""
        self.rows += 1
        pos = row[0]
        if pos != self.last_pos + 1:
            self._position(pos)
        if self._pending and self._pending[0][0] < pos:
            self.checkpoints_before(pos)
        # _TYPES, spelled out (a generator per row cost more than the hash)
        if not (type(row[8]) is str and type(row[9]) is str and type(row[10]) is bytes and type(row[11]) is bytes
                and type(row[12]) is bytes and type(row[13]) is bytes and type(row[14]) is int):
            row = self._retyped(row)
        arrived_at, kid, sig, body, prev_hash, hash_, stream_seq = row[8:15]
        leaf = leaf_hash(pos, arrived_at, kid, sig, body, stream_seq=stream_seq)
        linked = link(prev_hash, leaf)
        # One SHA-256 per row while all is well: then the recomputed chain is the stored prev_hash.
        self.chain = linked if self.chain == prev_hash else link(self.chain, leaf)
        if pos in self.capture:
            self.chain_at[pos] = self.chain
        if self.tail_after is not None and pos > self.tail_after:
            self.tail.append((pos, stream_seq, arrived_at, body))
        elif pos == self.tail_after:
            self.pin = (pos, stream_seq, arrived_at, body)
        if isinstance(stream_seq, int) and stream_seq > self.last_seq:
            self.last_seq = stream_seq
        if self._after_gap or prev_hash == self.stored_prev or prev_hash == self.fixed_prev:
            fixed = linked  # after a gap (reported already) only the row's own consistency is checked
            if hash_ != linked:
                self._flag(pos, "changed", f"position {pos}: hash does not match its contents (changed entry)")
        else:
            fixed = link(self.stored_prev, leaf)
            prev = pos - 1
            if hash_ == fixed:
                why = f"prev_hash was changed (its contents still follow position {prev})"
            elif hash_ == linked:
                why = (f"prev_hash does not match position {prev} "
                       f"(entries reordered or removed, or position {prev} rewritten)")
            else:
                why = (f"prev_hash does not match position {prev} and its hash does not match its contents "
                       "(entries reordered or changed)")
            self._flag(pos, "prev-hash", f"position {pos}: {why}")
        # The next row may name either this row's stored hash or the one its contents call for.
        self._after_gap = False
        self.stored_prev, self.fixed_prev = hash_, fixed
        self.last_pos = pos
        if self._pending and self._pending[0][0] == pos:
            self._checkpoints_at(pos)
        return row

    def _position(self, pos: int) -> None:
        expected = self.last_pos + 1
        if pos > expected:
            gap = pos - expected
            self._problem(expected, "missing", f"position {expected}: missing, the next entry is at {pos} "
                                               f"({gap} entr{'y' if gap == 1 else 'ies'} removed)", count=gap)
            self._after_gap = True
        else:
            self._flag(pos, "out-of-order", f"position {pos}: found after position {self.last_pos} "
                                            "(entries renumbered)")

    def _retyped(self, row: tuple[Any, ...]) -> tuple[Any, ...]:
        """The row with its hashed columns as text and bytes; a wrong stored type is itself tampering."""
        pos = row[0]
        for i, t in _TYPES:
            if type(row[i]) is not t:
                self._flag(pos, "column-type", f"position {pos}: column {_COLUMN_NAMES[i]} holds "
                                               f"{type(row[i]).__name__}, not {t.__name__} (changed entry)")
        return (*row[:8], _as_text(row[8]), _as_text(row[9]), *map(_as_blob, row[10:14]), _as_int(row[14]))

    def checkpoints_before(self, pos: int) -> None:
        while self._pending and self._pending[0][0] < pos:
            cp = self._pending.popleft()
            self._checkpoint(cp, ("checkpoint-position", f"checkpoint at position {cp[0]}: there is no entry "
                                                         "at that position (entries removed)"))

    def _checkpoints_at(self, pos: int) -> None:
        while self._pending and self._pending[0][0] == pos:
            cp = self._pending.popleft()
            wrong = None if cp[1] == self.chain else ("checkpoint-head", (
                f"checkpoint at position {pos}: its head does not match the chain recomputed from the entries "
                f"(an entry at or before position {pos} was changed, removed or reordered, or the head was changed)"))
            self._checkpoint(cp, wrong)

    def finish(self) -> None:
        """Checkpoints past the last entry: the end of the ledger was cut off."""
        while self._pending:
            cp = self._pending.popleft()
            self._checkpoint(cp, ("checkpoint-position", f"checkpoint at position {cp[0]}: the ledger ends at "
                                                         f"position {self.last_pos} (entries removed from the end)"))

    def _checkpoint(self, cp: tuple[Any, ...], head_problem: tuple[str, str] | None) -> None:
        pos = cp[0]
        problems = [] if head_problem is None else [head_problem]
        problems += _checkpoint_signature(self.ring, cp)
        for kind, reason in problems:
            self.findings.add(pos, kind, reason)
        if problems:
            self.findings.bad += 1
        else:
            self.checkpoints_verified += 1

    def _flag(self, pos: int, kind: str, reason: str) -> None:
        self.findings.add(pos, kind, reason)
        self._bad.add(pos)

    def _problem(self, pos: int, kind: str, reason: str, *, count: int) -> None:
        self.findings.add(pos, kind, reason)
        self.findings.bad += count

    def take_bad(self) -> set[int]:
        """Positions found bad since the last call (counted once with their signature problems)."""
        bad, self._bad = self._bad, set()
        return bad


def _checkpoint_signature(ring: KeyRing, cp: tuple[Any, ...]) -> list[tuple[str, str]]:
    pos, head, sealed_at, kid, sig = cp
    return checkpoint_problems(ring, pos, _as_blob(head), sealed_at, kid, _as_blob(sig))


def _as_text(value: object) -> str:
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    return value if isinstance(value, str) else str(value)


def _as_int(value: object) -> int:
    """A stored integer as it is; anything else hashes as 0 (never a stream sequence), so the row fails its hash."""
    return value if type(value) is int else 0


def _as_blob(value: object) -> bytes:
    if isinstance(value, bytes):
        return value
    return (value if isinstance(value, str) else str(value)).encode()


# -- signatures (worker processes) -----------------------------------------------------------


class _Verifier:
    """Sends chunks to the pool (or checks them here), collects results in order, reports progress."""

    def __init__(self, ring: KeyRing, workers: int, findings: _Findings,
                 progress: Callable[[int], None] | None) -> None:
        self.ring = ring
        self.findings = findings
        self.progress = progress
        self.verified = 0
        self.workers = workers
        self.pool: ProcessPoolExecutor | None = None
        self._in_flight: deque[tuple[Future[tuple[int, list[Found], float]], set[int], int]] = deque()
        #: CPU seconds the worker processes spent verifying (this process's own are the caller's to count).
        self.worker_cpu = 0.0
        self._limit = 2 * workers + 1

    @property
    def processes(self) -> int:
        """How many processes verified signatures."""
        return self.workers if self.pool is not None else 1

    def submit(self, rows: list[WorkRow], chain_bad: set[int], *, more: bool) -> None:
        """Verify a chunk; the pool starts with the first chunk that ``more`` may follow."""
        if self.pool is None and self.workers > 1 and more:
            # forkserver: a clean child even when the caller has threads (a progress bar, an event loop).
            self.pool = ProcessPoolExecutor(self.workers, mp_context=multiprocessing.get_context("forkserver"))
        if self.pool is None:
            self._collect((*check_rows(self.ring, rows), 0.0), chain_bad, len(rows))
            return
        kids = {r[9] for r in rows}
        entries = [e for e in map(self.ring.entry, kids) if e is not None]
        self._in_flight.append((self.pool.submit(verify_chunk, rows, entries), chain_bad, len(rows)))
        while len(self._in_flight) >= self._limit:
            self._take()

    def _take(self) -> None:
        future, chain_bad, n = self._in_flight.popleft()
        self._collect(future.result(), chain_bad, n)

    def _collect(self, result: tuple[int, list[Found], float], chain_bad: set[int], n: int) -> None:
        self.collect(result, chain_bad, n)

    def collect(self, result: tuple[int, list[Found], float], chain_bad: set[int], n: int, bad: int = 0) -> None:
        """``n`` rows done: their signature results, the positions the walk found bad, and ``bad`` more."""
        verified, found, cpu = result
        self.verified += verified
        self.worker_cpu += cpu
        for pos, kind, reason in found:
            self.findings.add(pos, kind, reason)
        self.findings.bad += bad + len(chain_bad | {pos for pos, _, _ in found})
        if self.progress:
            self.progress(n)

    def close(self) -> None:
        try:
            while self._in_flight:
                self._take()
        finally:
            if self.pool is not None:
                self.pool.shutdown(cancel_futures=True)


def verify_chunk(rows: Sequence[WorkRow], entries: Iterable[TrustEntry]) -> tuple[int, list[Found], float]:
    """Worker: verify a chunk of rows under a ring of the given trust entries; also the CPU seconds it took."""
    started = time.process_time()
    verified, found = check_rows(KeyRing(entries), rows)
    return verified, found, time.process_time() - started


def check_rows(ring: KeyRing, rows: Iterable[WorkRow]) -> tuple[int, list[Found]]:
    """Verify each row's signature and its index columns; returns how many verified, and the problems."""
    verified = 0
    found: list[Found] = []
    for row in rows:
        pos, kid, sig, body = row[0], row[9], row[10], row[11]
        env: Envelope | SealedEnvelope | None
        try:  # signatures and routing only: an audit needs no reader's key
            env = ring.check(Signed(body=body, kid=kid, sig=sig))
            verified += 1
        except Rejected as e:
            found.append((pos, e.code, f"position {pos}: {e} ({e.code})"))
            env = _decoded(body) if not isinstance(e, Malformed) else None
        if env is not None:
            mismatch = _index_mismatch(row, env)
            if mismatch:
                found.append((pos, "index", f"position {pos}: {mismatch}"))
    return verified, found


def _decoded(body: bytes) -> Envelope | SealedEnvelope | None:
    try:
        return decode_checked(body)
    except Malformed:
        return None


def _index_mismatch(row: WorkRow, env: Envelope | SealedEnvelope) -> str:
    signed = (env.id, env.case, env.number, env.type, env.sender, env.recipient, env.time.isoformat())
    if row[1:8] == signed:
        return ""
    wrong = [f"column {name} is {stored!r} but the signed body says {value!r}"
             for name, stored, value in zip(_INDEX_COLUMNS, row[1:8], signed, strict=True) if stored != value]
    return "; ".join(wrong)


# -- ranges of positions (worker processes, SQLite) -----------------------------------------------------------


#: The walk between two rows: the last position, the recomputed chain, the previous row's stored hash and the hash
#: its contents call for, whether a gap came just before.
State = tuple[int, bytes, bytes, bytes, bool]
_RANGE = f"SELECT {', '.join(_COLUMN_NAMES)} FROM entries WHERE pos BETWEEN ? AND ? ORDER BY pos"


@dataclass(frozen=True)
class _RangeTask:
    """Walk and verify the entries at positions ``first … last``."""

    ledger: str
    first: int
    last: int
    #: Where the walk starts; None: where the range's first row says (checked against the range before it).
    start: State | None
    #: The checkpoints at positions up to ``last`` that no range before holds.
    checkpoints: list[tuple[Any, ...]]
    entries: list[TrustEntry]
    capture: frozenset[int]
    tail_after: int | None


@dataclass
class _Walked:
    """The walk over one range: where it started and ended, and what it found."""

    start: State | None
    end: State
    rows: int
    problems: list[Found]
    #: Problems counted as they are (missing positions, checkpoints), and the positions found bad.
    bad: int
    flagged: set[int]
    checkpoints_verified: int
    chain_at: dict[int, bytes]
    tail: list[tuple[int, int, str, bytes]]
    pin: tuple[int, int, str, bytes] | None
    last_seq: int


@dataclass
class _RangeDone:
    """What a worker sends back for a range."""

    rows: int
    walked: _Walked
    verified: int
    signed: list[Found]
    cpu: float = 0.0


def audit_range(task: _RangeTask) -> _RangeDone:
    """Worker: read the range from the file itself (mapped), walk the chain over it and verify every row."""
    started = time.process_time()
    ring = KeyRing(task.entries)
    with closing(open_mapped(Path(task.ledger))) as db:
        try:
            rows = db.execute(_RANGE, (task.first, task.last))
            walked, verified, signed = _walk_range(task, ring, rows, task.start, ring)
        except sqlite3.OperationalError as e:
            if "decode" not in str(e):
                raise
            db.text_factory = _lenient_text  # text that is not UTF-8, itself a sign of tampering (see _read)
            rows = db.execute(_RANGE, (task.first, task.last))
            walked, verified, signed = _walk_range(task, ring, rows, task.start, ring)
    return _RangeDone(walked.rows, walked, verified, signed, time.process_time() - started)


def _walk_range(task: _RangeTask, ring: KeyRing, rows: Iterator[tuple[Any, ...]], start: State | None,
                verify: KeyRing | None) -> tuple[_Walked, int, list[Found]]:
    """Walk the range's rows from ``start`` (None: as its first row says) and, with a ``verify`` ring, check
    their signatures and index columns in the same pass."""
    problems = _Findings()
    walk = _Walk(task.checkpoints, ring, problems, capture=set(task.capture), tail_after=task.tail_after)
    verified, signed = 0, list[Found]()
    first = next(rows, None)
    if first is not None:
        start = start or (first[0] - 1, _as_blob(first[12]), _as_blob(first[12]), _as_blob(first[12]), False)
        walk.resume(start)
        each = map(walk.row, itertools.chain((first,), rows))
        if verify is not None:
            verified, signed = check_rows(verify, each)
        else:
            deque(each, maxlen=0)
    # Checkpoints at positions of the range after its last row: a later range holds the ledger's last entry.
    walk.checkpoints_before(task.last + 1)
    return walk.walked(start, problems), verified, signed


def _range_rows(conn: Sql, task: _RangeTask) -> list[tuple[Any, ...]]:
    return _read(conn, _RANGE, (task.first, task.last))
