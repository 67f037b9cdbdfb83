"""Rebuilding the read models from the ledger at once (``xiezhu projections rebuild``, issue 14 point 3).

:meth:`LedgerProjection.rebuild <projections.base.LedgerProjection.rebuild>` re-follows the ledger
one entry and a few SQL statements at a time, in one process, opening every payload it reads
(one X25519 operation each).  This builds the same views from the same ledger, with the same
folds, for a whole ledger at once:

- **The SLA view**, in worker processes (one per core), each taking a few ranges of positions
  one after the other.  A range's cases are those whose first entry lies in it (decision 65):
  the worker reads every entry of the range once, in position order, then drops the cases
  begun before it (one probe of the ``entries_case`` index per case, inside SQLite) and reads
  the later entries of the cases it began (one probe per case).  It checks each entry against
  its hash, the one before it (the positions without a gap, each naming the hash of the one
  before: the chain, which the main process joins from range to range) and its index columns
  against its signed bytes; decodes only the routing fields and the encrypted payload (not the
  sealed keys: :class:`_Route`); opens each ``assistance.*`` payload with the ledger's opening
  (:class:`broker.sealing.OpeningReader`, two symmetric decryptions into one reused buffer), or
  with the sealed box where there is none; folds each case with
  :func:`aggregates.assistance.apply` at the ledger's arrival times, the cases in a dict; and at
  the end writes one row per case (:func:`projections.sla.row_values`, as the live view makes
  it) to a file of its own, sorted by the case's first position.  The main process copies each
  range's rows into the new view as soon as the range is done, while the workers fold the
  next ones: the ranges' rows follow one another in the order of each case's first entry, as
  following the ledger inserts them (a case whose first entries the fold refused can break
  that order: then all the rows are merged again at the end).  Each distinct catalogue
  citation is checked once (第七条, 第六条).
  The whole ledger read is checked as :meth:`broker.ledger.store.Ledger.entries` checks it.
- **The commitment-case and credit views** read only ``commitment.*`` entries: the workers
  list their positions, and only those are read again and applied, with the views' own code.
- **Into a fresh file, then one rename.**  Each view is built in ``<file>.rebuild`` beside the
  old one, the SLA rows without a journal (a crash leaves a file nobody reads), and replaces
  the old one only once complete, with an atomic rename: a crash at any point leaves the old
  view as it was.  Tables a view keeps across a rebuild (the credit view's 信用中国 outbox,
  whose delivery state is not in the ledger; the view key's check) are copied from the old
  file first.  A view file open in another process (a running node) is refused before anything
  is replaced: that process would go on writing to the old file.

The rebuilt views equal the live ones row for row (``tests/test_rebuild.py``).
"""
from __future__ import annotations

import gc
import hashlib
import json
import multiprocessing
import operator
import os
import sqlite3
import struct
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import Future, ProcessPoolExecutor
from contextlib import closing
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path
from typing import Any

import msgspec

from aggregates import assistance
from aggregates.database import is_postgres
from aggregates.errors import RuleError
from aggregates.workdays import SHANGHAI, Deadline, WorkingCalendar
from broker.ledger.store import _COLUMNS as ENTRY_COLUMNS
from broker.ledger.store import (
    GENESIS,
    Entry,
    Ledger,
    NoLedgerKey,
    _entry,
    open_mapped,
    open_read_only,
    position_ranges,
)
from broker.sealing import Opener, OpeningReader
from broker.signing import CannotOpen, decode_checked
from projections.base import POSITIONS, LedgerProjection
from projections.encrypted_columns import KEY_CHECKS
from projections.sla import (
    _ASSISTANCE,
    _COLUMNS,
    CALENDAR_TABLE,
    TABLE,
    SlaView,
    _year_digest,
    cited_flag,
    row_values,
)
from schemas.assistance import AssistanceRequested
from schemas.envelope import ENVELOPE_VERSION, SEALED_VERSION, Envelope, SealedEnvelope, decode_sealed
from schemas.errors import XiezhuError

#: Position ranges per worker the SLA fold is split into (several: the main process copies a range's rows
#: while the workers fold the next, and a core that other work slows does not hold the rest).
RANGES_PER_WORKER = 4
#: SQLite attaches at most 10 databases to a connection.
MAX_RANGES = 8
FRESH_SUFFIX = ".rebuild"
#: Page cache of the connection that copies the rows into the fresh view (KiB; SQLite's default is 2 MiB).
COPY_CACHE_KIB = 256 * 1024
_SLA_NAMES = tuple(_COLUMNS)
_request = msgspec.json.Decoder(AssistanceRequested)


class RebuildError(XiezhuError):
    """A view could not be rebuilt; the old one is left as it was."""

    code = "rebuild"


@dataclass
class ViewRebuilt:
    """One view: the ledger entries it was built from and the seconds it took."""

    entries: int
    seconds: float
    #: Entries whose payload was opened for it (``opened_with_openings`` of them without a sealed box).
    opened: int = 0
    opened_with_openings: int = 0

    @property
    def rate_per_s(self) -> float:
        return self.entries / self.seconds if self.seconds else 0.0


@dataclass
class Rebuilt:
    """What a rebuild did: ledger entries read, seconds in all, and each view."""

    entries: int
    seconds: float
    views: dict[str, ViewRebuilt] = field(default_factory=dict)
    workers: int = 1
    #: CPU seconds of every process (workers and this one): what the rebuild costs whatever else runs.
    cpu_seconds: float = 0.0

    @property
    def rate_per_s(self) -> float:
        return self.entries / self.seconds if self.seconds else 0.0

    @property
    def rate_per_cpu_s(self) -> float:
        """Entries per CPU second; times the workers, what the rebuild reaches with a free core for each."""
        return self.entries / self.cpu_seconds if self.cpu_seconds else 0.0


# -- the workers -------------------------------------------------------------------------------------------------


class _RememberingCalendar(WorkingCalendar):
    """The same calendar, answering each deadline and span once per Shanghai day: a million rows ask about a
    few thousand days, and a deadline depends only on the day its count starts from."""

    def __init__(self, calendar: WorkingCalendar) -> None:
        self.__dict__.update(calendar.__dict__)  # its schedules and year tables
        self._deadlines: dict[tuple[date, int], Deadline] = {}
        self._spans: dict[tuple[date, date], tuple[int, bool]] = {}
        #: The last start asked about and its Shanghai day: a row asks about one start three times.
        self._start: datetime | None = None
        self._start_day = date.min

    def _day(self, start: datetime) -> date:
        if start is not self._start:
            self._start, self._start_day = start, start.astimezone(SHANGHAI).date()
        return self._start_day

    def add_working_days(self, start: datetime, n: int) -> Deadline:
        key = (self._day(start), n)
        found = self._deadlines.get(key)
        if found is None:
            found = self._deadlines[key] = super().add_working_days(start, n)
        return found if found.start == start else msgspec.structs.replace(found, start=start)

    def working_days_between(self, start: datetime, end: datetime) -> tuple[int, bool]:
        key = (self._day(start), end.astimezone(SHANGHAI).date())
        found = self._spans.get(key)
        if found is None:
            found = self._spans[key] = super().working_days_between(start, end)
        return found


@dataclass
class _Folded:
    """What one SLA worker sends back (its rows stay in its file)."""

    entries: int = 0
    rows: int = 0
    opened: int = 0
    with_openings: int = 0
    years: set[int] = field(default_factory=set)
    #: One request per distinct citation (encoded), for the catalogue check in the main process.
    citations: dict[str, bytes] = field(default_factory=dict)
    #: Positions of ``commitment.*`` entries, for the keyed views.
    commitments: list[int] = field(default_factory=list)
    #: The first positions of its first and last row (0: no rows).
    first: int = 0
    last: int = 0
    #: The hash the range's first entry names and its last entry's hash: the ranges join into one chain.
    first_prev: bytes = b""
    last_hash: bytes = b""
    #: CPU seconds the worker spent (the machine's other load does not count).
    cpu: float = 0.0
    error: str = ""
    error_zh: str = ""


@dataclass(frozen=True)
class _FoldTask:
    """Fold the cases whose first entry is at a position in ``first … last``."""

    ledger: str
    first: int
    last: int
    head: int
    out: str
    opener: tuple[str, dict[str, bytes]] | None
    calendar: WorkingCalendar


class _Box(msgspec.Struct, gc=False):
    nonce: bytes
    data: bytes


class _Route(msgspec.Struct, gc=False):
    """The routing fields of a sealed envelope and its encrypted payload, without the sealed keys: the
    rebuild opens each payload with its opening, so it never needs the boxes (decoding them is most of
    the cost of decoding a whole :class:`~schemas.envelope.SealedEnvelope`)."""

    v: int
    id: str
    sender: str
    recipient: str
    case: str
    number: str
    time: datetime
    type: str = ""
    sealed: _Box | None = None


_route = msgspec.json.Decoder(_Route).decode
_POS_SEQ = struct.Struct(">Qq").pack
_LEN = struct.Struct(">I").pack


def _fold_cases(task: _FoldTask) -> _Folded:
    """Worker: fold every case whose first entry is in the task's range, write its SLA row; errors come back as
    text."""
    started = time.process_time()
    gc.disable()  # a few hundred thousand folded cases stay alive until the end: nothing to collect meanwhile
    try:
        done = _fold(task)
    except XiezhuError as e:
        return _Folded(error=str(e), error_zh=e.text("zh"))
    finally:
        gc.enable()
    done.cpu = time.process_time() - started
    return done


def _fold(task: _FoldTask) -> _Folded:
    """Read the range and then the later entries of the cases it began, in position order (:func:`_owned`);
    check and fold each; then one row per case, written in the order of each case's first entry.

    Every position of the range is read once, here and nowhere else: each is checked against its hash, the
    one before it (the chain's link) and its index columns, and counted.  The entries of cases begun before
    the range are folded too (their fold refuses them, or starts a case that is dropped once the range is
    read); the entries of this range's cases that lie beyond it are read again and checked against their
    hash, but counted, linked and listed in the range they lie in."""
    opener = Opener(*task.opener) if task.opener is not None else None
    reader = OpeningReader(opener) if opener is not None else None
    done = _Folded()
    #: case id → [position of its first folded entry, its state]
    cases: dict[str, list[Any]] = {}
    commitments = done.commitments
    sha, parse, apply = hashlib.sha256, datetime.fromisoformat, assistance.apply
    first, last = task.first, task.last
    expect, linked = first, b""  # the next position of the range, and the hash the next entry names
    opened = with_openings = 0  # counted here, kept in ``done`` at the end
    signers: dict[str, bytes] = {}  # a key id as the leaf hash has it (its length, its bytes): a few dozen
    # Mapped (the case-index probes of _owned jump about a large file).
    with closing(open_mapped(Path(task.ledger))) as db:
        for pos, case_id, type_, arrived_at, seq, kid, sig, body, prev, hash_, okid, wrapped in _owned(db, task, cases):
            here = pos <= last  # in the range (else a later entry of a case it began)
            if here:
                if pos != expect:
                    raise _missing(expect)
                if prev != linked and pos != first:
                    raise RebuildError(f"the ledger is damaged at position {pos}: it does not follow position "
                                       f"{pos - 1}; run `xiezhu audit`",
                                       zh=f"账本在位置 {pos} 处已损坏：它不接续位置 {pos - 1}；请运行 `xiezhu audit`")
                expect, linked = pos + 1, hash_
            try:  # leaf_hash and link (broker.ledger.store), inline: this loop runs a million times
                a, k = arrived_at.encode(), signers.get(kid)
                if k is None:
                    k = signers[kid] = _LEN(len(kid.encode())) + kid.encode()
                whole = type(seq) is int and sha(prev + sha(b"".join((
                    _POS_SEQ(pos, seq), _LEN(len(a)), a, k, _LEN(len(sig)), sig, _LEN(len(body)),
                    body))).digest()).digest() == hash_
            except (TypeError, ValueError, AttributeError, struct.error):
                whole = False
            if not whole:
                raise RebuildError(f"the ledger is damaged at position {pos}: the entry does not match its hash; "
                                   "run `xiezhu audit` (nothing read from it is trusted)",
                                   zh=f"账本在位置 {pos} 处已损坏：条目与其哈希值不符；请运行 `xiezhu audit`"
                                      "（从中读取的内容均不可信）")
            if pos == first:
                done.first_prev = bytes(prev)
            try:
                r: _Route | None = _route(body)
            except msgspec.DecodeError:
                r = None
            if r is None or r.sealed is None or r.v != SEALED_VERSION or r.time.tzinfo is None:
                env = _slow(body, case_id, type_, pos, opener, okid, wrapped, done if here else _Folded())
                if env is None:
                    continue
            else:
                if r.case != case_id or r.type != type_:
                    raise _index_damaged(pos)
                if not type_.startswith("assistance."):
                    if here and type_.startswith("commitment."):
                        commitments.append(pos)
                    continue
                if reader is None:
                    raise _no_key()
                payload = (reader.payload(r.id, r.sender, r.recipient, r.case, r.number, type_, r.sealed.nonce,
                                          r.sealed.data, okid, wrapped) if okid is not None else None)
                if here:
                    opened += 1
                    with_openings += payload is not None
                if payload is not None:
                    env = Envelope(v=ENVELOPE_VERSION, id=r.id, sender=r.sender, recipient=r.recipient, case=r.case,
                                   number=r.number, time=r.time, payload=payload)
                else:  # another key, or damaged: the sealed box opens it
                    assert opener is not None
                    env = opener.open_routed(_sealed(body))
            if not isinstance(env.payload, _ASSISTANCE):
                continue
            slot = cases.get(case_id)
            try:  # the digest only opens a case (assistance.start): hashed for a case's first entry alone
                folded = (apply(None, env, sha(body).hexdigest(), recorded_at=parse(arrived_at)) if slot is None
                          else apply(slot[1], env, "", recorded_at=parse(arrived_at)))
            except RuleError:
                continue  # as following the ledger: what the fold refuses changes nothing
            if slot is None:
                cases[case_id] = [pos, folded]
            else:
                slot[1] = folded
    if expect != last + 1:
        raise _missing(expect)
    done.entries = last - first + 1
    done.last_hash = bytes(linked)
    done.opened += opened
    done.with_openings += with_openings
    _write_rows(task, cases, done)
    return done


def _owned(db: sqlite3.Connection, task: _FoldTask, cases: dict[str, list[Any]]) -> Iterator[tuple[Any, ...]]:
    """Every entry of the task's range in position order; then, the cases begun before the range dropped from
    ``cases`` (one probe of the ``entries_case`` index per case of the range, inside SQLite), the later entries
    of the cases it began (one probe per case; few, but a case may last for weeks)."""
    openings = db.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'openings'").fetchone()
    columns = ("e.pos, e.case_id, e.type, e.arrived_at, e.stream_seq, e.kid, e.sig, e.body, e.prev_hash, e.hash, "
               + ("o.kid, o.wrapped" if openings else "NULL, NULL"))
    opening = " LEFT JOIN openings o ON o.pos = e.pos" if openings else ""
    seen: set[str] = set()
    add = seen.add
    for row in db.execute(f"SELECT {columns} FROM entries e{opening} WHERE e.pos BETWEEN ? AND ? ORDER BY e.pos",
                          (task.first, task.last)):
        add(row[1])
        yield row
    if not seen:
        return
    # The case ids as one JSON array (json_each): cheaper than a temporary table filled row by row.
    ids = json.dumps(list(seen))
    if task.first > 1:  # a case's first position: the first entry of its index
        before = [c for (c,) in db.execute("SELECT value FROM json_each(?) WHERE (SELECT min(b.pos) FROM entries b "
                                           "WHERE b.case_id = value) < ?", (ids, task.first))]
        if before:
            for case_id in before:
                cases.pop(case_id, None)
            ids = json.dumps(list(seen.difference(before)))
    if task.last < task.head:
        # CROSS JOIN: the cases drive (one probe of entries_case each), not the rest of the ledger.
        yield from db.execute(f"SELECT {columns} FROM json_each(?) t CROSS JOIN entries e ON e.case_id = t.value "
                              f"AND e.pos > ? AND e.pos <= ?{opening} ORDER BY e.pos", (ids, task.last, task.head))


def _slow(body: bytes, case_id: str, type_: str, pos: int, opener: Opener | None, okid: str | None,
          wrapped: bytes | None, done: _Folded) -> Envelope | None:
    """An entry the fast path does not read: a clear envelope from before sealing, or bytes that need the full
    checks of :func:`~broker.signing.decode_checked` (which raises :class:`Malformed` with the reason)."""
    head = _routing(body)
    if head.case != case_id or head.type != type_:
        raise _index_damaged(pos)
    if type_.startswith("commitment."):
        done.commitments.append(pos)
    if not type_.startswith("assistance."):
        return None
    if isinstance(head, Envelope):  # from before payloads were sealed
        return head
    if opener is None:
        raise _no_key()
    done.opened += 1
    if okid is not None and wrapped is not None:
        try:
            env = opener.open_with_opening(head, okid, wrapped)
            done.with_openings += 1
            return env
        except CannotOpen:
            pass  # another key, or damaged: the sealed box opens it
    return opener.open_routed(head)


def _sealed(body: bytes) -> SealedEnvelope:
    head = _routing(body)
    if not isinstance(head, SealedEnvelope):
        raise RebuildError("an entry read as sealed is not",
                           zh="读作加密的条目并未加密")  # cannot happen: the fast path read it as sealed
    return head


def _missing(pos: int) -> RebuildError:
    return RebuildError(f"the ledger has no entry at position {pos}; run `xiezhu audit`",
                        zh=f"账本在位置 {pos} 处没有条目；请运行 `xiezhu audit`")


def _index_damaged(pos: int) -> RebuildError:
    return RebuildError(f"the ledger is damaged at position {pos}: its index columns do not match its "
                        "signed bytes; run `xiezhu audit`")


def _no_key() -> NoLedgerKey:
    return NoLedgerKey("the ledger's entries are sealed, and this machine does not hold 区司法局's box "
                       "key (keys/box/) that opens them")


def _write_rows(task: _FoldTask, cases: dict[str, list[Any]], done: _Folded) -> None:
    """One SLA row per folded case, with its deadlines, into the worker's own file, keyed by the case's first
    position (the main process copies the files' rows in that order)."""
    calendar = _RememberingCalendar(task.calendar)
    cites: dict[tuple[Any, ...], str] = {}
    rows: list[tuple[Any, ...]] = []
    years = done.years
    for first, state in cases.values():
        values, touched = row_values(state, calendar)  # catalogue_flag None: set from the citation when copied
        years |= touched
        r = state.request
        key = (r.requester, r.assistor, r.catalogue_item, r.catalogue_version, r.matter.code, r.matter.name)
        cite = cites.get(key)
        if cite is None:
            cite = cites[key] = msgspec.json.encode(key).decode()
            done.citations[cite] = msgspec.json.encode(r)
        rows.append((first, cite, *values))
    rows.sort(key=operator.itemgetter(0))
    done.rows = len(rows)
    if rows:
        done.first, done.last = rows[0][0], rows[-1][0]
    with closing(sqlite3.connect(task.out, isolation_level=None)) as out:
        out.execute("PRAGMA journal_mode=OFF")
        out.execute("PRAGMA synchronous=OFF")
        out.execute(f"CREATE TABLE rows (first_pos INTEGER PRIMARY KEY, cite TEXT, {', '.join(_SLA_NAMES)})")
        out.execute("BEGIN")
        out.executemany(f"INSERT INTO rows VALUES ({', '.join('?' * (2 + len(_SLA_NAMES)))})", rows)
        out.execute("COMMIT")


def _routing(body: bytes) -> Envelope | SealedEnvelope:
    """What :func:`~broker.signing.decode_checked` gives, parsing a sealed envelope once rather than twice."""
    try:
        sealed = decode_sealed(body)
    except msgspec.DecodeError:
        return decode_checked(body)  # a clear envelope from before sealing, or the reason it is malformed
    if sealed.v != SEALED_VERSION or sealed.time.tzinfo is None:
        return decode_checked(body)
    return sealed


# -- the main process ----------------------------------------------------------------------------------------------


def rebuild(ledger: Ledger, sla: tuple[Path, Callable[[Path], SlaView]],
            keyed: Sequence[tuple[str, Path, Callable[[Path], LedgerProjection]]] = (), *,
            workers: int | None = None, progress: Callable[[int], None] | None = None) -> Rebuilt:
    """Build the SLA view (``(path, make)``: ``make(path)`` opens an SLA view there) and the ``keyed`` views
    (``(name, path, make)``) from every entry of ``ledger``, each into a fresh file that then replaces the old.

    ``progress`` is called with the number of ledger entries folded, as chunks finish.  Raises
    :class:`RebuildError` (a damaged ledger, a view in use elsewhere), leaving every old view as it was
    unless it had been replaced already (the views are replaced one after the other, the SLA view first).
    """
    started, cpu = time.perf_counter(), time.process_time()
    if is_postgres(ledger.location):
        raise RebuildError("a ledger in PostgreSQL is rebuilt from view by view (LedgerProjection.rebuild)",
                           zh="PostgreSQL 中的账本逐个视图重建（LedgerProjection.rebuild）")
    with closing(open_read_only(ledger.path)) as db:
        head = int(db.execute("SELECT coalesce(max(pos), 0) FROM entries").fetchone()[0])
    opener = ledger.opener.portable() if isinstance(ledger.opener, Opener) else None
    if ledger.opener is not None and opener is None:
        raise RebuildError("the ledger's opener cannot be handed to worker processes",
                           zh="账本的解密器不能交给工作进程")
    sla_path, make_sla = sla
    workers = max(1, workers or os.cpu_count() or 1)
    bounds = _pos_ranges(head, workers * RANGES_PER_WORKER, workers)
    scratch = [_fresh(sla_path.with_name(f"{sla_path.name}.chunk{i}")) for i in range(len(bounds))]
    made = make_sla(_fresh(_fresh_name(sla_path)))
    report = Rebuilt(entries=head, seconds=0.0, workers=workers)
    try:
        tasks = [_FoldTask(str(ledger.path), first, last, head, str(out), opener, made.calendar)
                 for (first, last), out in zip(bounds, scratch, strict=True)]
        with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("forkserver")) as pool:
            folds: list[Future[_Folded]] = [pool.submit(_fold_cases, t) for t in tasks]
            results = []
            copy = _Copy(made)
            for f, path in zip(folds, scratch, strict=True):
                got = f.result()
                if got.error:
                    raise RebuildError(got.error, zh=got.error_zh)
                results.append(got)
                copy.add(got, path)  # while the workers fold the ranges after it
                if progress is not None:
                    progress(got.entries)
        _joined(results, head)
        report.cpu_seconds = sum(r.cpu for r in results)
        copy.finish(head)
        _swap(_fresh_name(sla_path), sla_path)
        report.views["sla"] = ViewRebuilt(head, time.perf_counter() - started,
                                          opened=sum(r.opened for r in results),
                                          opened_with_openings=sum(r.with_openings for r in results))
        entries = _entries_at(ledger, sorted(p for r in results for p in r.commitments))
        for name, path, make in keyed:
            t = time.perf_counter()
            _rebuild_keyed(path, make, entries, head)
            report.views[name] = ViewRebuilt(head, time.perf_counter() - t, opened=len(entries))
    finally:
        made.db.conn.close()
        for p in [*scratch, _fresh_name(sla_path), *(_fresh_name(path) for _, path, _ in keyed)]:
            _remove(p)
    report.seconds = time.perf_counter() - started
    report.cpu_seconds += time.process_time() - cpu
    return report


def _pos_ranges(head: int, n: int, workers: int = 1) -> list[tuple[int, int]]:
    """:func:`~broker.ledger.store.position_ranges`, at most :data:`MAX_RANGES` of them (the copy may attach every
    range's file at once)."""
    return position_ranges(head, min(n, MAX_RANGES), workers)


def _joined(ranges: list[_Folded], head: int) -> None:
    """The ranges, each checked link by link as it was read, join up into one chain from the genesis."""
    if head and ranges[0].first_prev != GENESIS:
        raise RebuildError("the ledger is damaged at position 1: it does not start the chain; run `xiezhu audit`",
                           zh="账本在位置 1 处已损坏：它不是链的开头；请运行 `xiezhu audit`")
    at = 0
    for a, b in zip(ranges, ranges[1:], strict=False):
        at += a.entries
        if b.first_prev != a.last_hash:
            raise RebuildError(f"the ledger is damaged at position {at + 1}: it does not follow position {at}; "
                               "run `xiezhu audit`",
                               zh=f"账本在位置 {at + 1} 处已损坏：它不接续位置 {at}；请运行 `xiezhu audit`")


def _fresh_name(path: Path) -> Path:
    return path.with_name(path.name + FRESH_SUFFIX)


def _remove(path: Path) -> None:
    for extra in ("", "-wal", "-shm", "-journal"):
        path.with_name(path.name + extra).unlink(missing_ok=True)


def _fresh(path: Path) -> Path:
    """``path`` with nothing left there from a rebuild that crashed."""
    _remove(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    return path


class _Copy:
    """The workers' rows into the fresh view, range by range as the workers finish them, in the order of each
    case's first entry; then its calendar digests and position.  Without a journal: until the rename nobody reads
    this file."""

    def __init__(self, view: SlaView) -> None:
        self.view = view
        self.db = db = view.db.conn
        self.files: list[Path] = []
        self.flags: dict[str, str] = {}
        self.years: set[int] = set()
        #: The first position of the last row copied; None once a range's rows would not follow it.
        self.last: int | None = 0
        db.isolation_level = None
        db.execute("PRAGMA journal_mode=OFF")
        db.execute("PRAGMA synchronous=OFF")
        # The case-id key takes the rows in random order: its pages in memory.  The other indexes are kept and
        # filled row by row: their keys (a bureau and its numbers, a status, a state) come nearly in order, and
        # building them at the end cost more (three scans of the whole table) on one core while the other idled.
        db.execute(f"PRAGMA cache_size = -{COPY_CACHE_KIB}")
        db.execute("CREATE TEMP TABLE flags (cite TEXT PRIMARY KEY, flag TEXT)")
        columns = ", ".join(_SLA_NAMES)
        chosen = ", ".join("f.flag AS catalogue_flag" if c == "catalogue_flag" else f"r.{c}" for c in _SLA_NAMES)
        self.insert = f"INSERT INTO {TABLE} ({columns}) SELECT {columns} FROM ({{rows}} ORDER BY 1)"
        self.select = f"SELECT r.first_pos, {chosen} FROM {{db}}.rows r LEFT JOIN temp.flags f ON f.cite = r.cite"

    def add(self, folded: _Folded, path: Path) -> None:
        """A range's rows (its file's order): copied now if they follow those copied, else by :meth:`finish`."""
        catalogue = self.view.catalogue
        new = {cite: cited_flag(catalogue, _request.decode(req)) for cite, req in folded.citations.items()
               if cite not in self.flags}
        self.flags |= new
        self.db.executemany("INSERT INTO temp.flags VALUES (?, ?)", new.items())
        self.years |= folded.years
        self.files.append(path)
        if self.last is None or not folded.rows:
            return
        if folded.first <= self.last:  # a case whose first folded entry came after the next range began
            self.last = None
            return
        self.db.execute("ATTACH DATABASE ? AS w", (str(path),))
        try:
            self.db.execute(self.insert.format(rows=self.select.format(db="w")))
        finally:
            self.db.execute("DETACH DATABASE w")
        self.last = folded.last

    def finish(self, head: int) -> None:
        db, cal = self.db, self.view.calendar
        if self.last is None:  # out of order: all the rows again, merged by their first positions
            db.execute(f"DELETE FROM {TABLE}")
            for i, path in enumerate(self.files):
                db.execute(f"ATTACH DATABASE ? AS w{i}", (str(path),))
            # Each file is in order already (its primary key): SQLite merges them as it reads (MERGE (UNION ALL)).
            db.execute(self.insert.format(rows=" UNION ALL ".join(self.select.format(db=f"w{i}")
                                                                  for i in range(len(self.files)))))
            for i in range(len(self.files)):
                db.execute(f"DETACH DATABASE w{i}")
        db.execute("BEGIN")
        db.execute(f"DELETE FROM {CALENDAR_TABLE}")
        db.executemany(f"INSERT INTO {CALENDAR_TABLE} (year, digest) VALUES (?, ?)",
                       [(y, _year_digest(cal, y)) for y in sorted(self.years)])
        db.execute(f"INSERT OR REPLACE INTO {POSITIONS} (name, position) VALUES (?, ?)", (self.view.name, head))
        db.execute("COMMIT")
        db.execute("DROP TABLE temp.flags")
        db.execute("PRAGMA journal_mode=DELETE")
        db.close()


def _entries_at(ledger: Ledger, positions: list[int]) -> list[tuple[Entry, Envelope]]:
    """The entries at ``positions`` (each checked against its hash), opened, in ledger order."""
    out: list[tuple[Entry, Envelope]] = []
    with closing(open_read_only(ledger.path)) as db:
        for i in range(0, len(positions), 500):
            part = positions[i:i + 500]
            rows = db.execute(f"SELECT {ENTRY_COLUMNS} FROM entries WHERE pos IN ({', '.join('?' * len(part))}) "
                              "ORDER BY pos", part)
            out += [(e, ledger.envelope(e)) for e in map(_entry, rows)]
    return out


def _rebuild_keyed(path: Path, make: Callable[[Path], LedgerProjection], entries: Iterable[tuple[Entry, Envelope]],
                   head: int) -> None:
    """One keyed view, in a fresh file: what it keeps across a rebuild copied first, then its entries applied."""
    fresh = _fresh(_fresh_name(path))
    view = make(fresh)
    try:
        if path.exists():
            _carry_over(view, path)
        with view._lock, view.db.conn:
            for entry, env in entries:
                if view.wants(entry.type):
                    view.apply_entry(entry, env)
            view.db.execute(f"INSERT OR REPLACE INTO {POSITIONS} (name, position) VALUES (?, ?)", [view.name, head])
        view.db.execute("PRAGMA journal_mode=DELETE")
    finally:
        view.db.conn.close()
    _swap(fresh, path)


def _carry_over(view: LedgerProjection, old: Path) -> None:
    """The tables of the old file that a rebuild does not drop (the outbox's delivery state), copied as they are."""
    db = view.db.conn
    db.execute("ATTACH DATABASE ? AS old", (f"{old.resolve().as_uri()}?mode=ro",))
    try:
        theirs = {n for (n,) in db.execute("SELECT name FROM old.sqlite_master WHERE type = 'table'")}
        ours = {n for (n,) in db.execute("SELECT name FROM main.sqlite_master WHERE type = 'table'")}
        kept = sorted((theirs & ours) - set(view.tables) - {POSITIONS, KEY_CHECKS})
        with db:
            for table in kept:
                cols = ", ".join(r[1] for r in db.execute(f"PRAGMA main.table_info({table})"))
                db.execute(f"INSERT OR IGNORE INTO main.{table} ({cols}) SELECT {cols} FROM old.{table} ORDER BY rowid")
    finally:
        db.execute("DETACH DATABASE old")


def _swap(fresh: Path, path: Path) -> None:
    """Replace ``path`` with ``fresh`` in one rename, once nothing else has the old file open."""
    if path.exists():
        try:
            with closing(sqlite3.connect(path, timeout=2)) as old:
                mode = str(old.execute("PRAGMA journal_mode=DELETE").fetchone()[0])
        except sqlite3.DatabaseError as e:
            mode = str(e)
        if mode.lower() != "delete":  # another connection holds its write-ahead log
            raise RebuildError(f"{path} is open in another process (a running node?): stop it and run the rebuild "
                               f"again; the view was left as it was",
                               zh=f"{path} 正被另一个进程打开（节点正在运行？）：请停止它后重新重建；视图保持原样")
    fd = os.open(fresh, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(fresh, path)
    fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
