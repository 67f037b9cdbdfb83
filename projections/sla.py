"""The SLA view: one row per assistance request, with its working-day deadlines, built from the ledger only.

Each row is the assistance fold (:mod:`aggregates.assistance`) of the request's ledger entries,
each folded at the time the platform stored it (the ledger's arrival), so the view applies
exactly the rules every bureau applies, and what the fold refuses changes nothing here.

Deadlines (三(二) and 附件2 第五条) run from the legal arrival
(:func:`aggregates.assistance.legal_arrival`, decision 28): on the platform channel the time the
platform stored the request, whether or not the assisting bureau ever acknowledges it; on the
letter channel the visit the assistor recorded.  An answer counts as given when the platform
stored it (``answered_at``); the assistor's own records are kept beside them
(``acknowledged_at``, ``claimed_answered_at``), and a claim that contradicts the platform is
listed in ``time_flags``.  The arrival day is not counted; a deadline ends at
24:00 Asia/Shanghai of its last working day, stored as the exclusive instant
``due_at`` (00:00 of the next day):

- ``due_at``: arrival + ``reply_within`` working days (三(二): 3; a shorter time its catalogue
  item agreed, never longer — :func:`aggregates.assistance.time_limits`);
- ``decline_due_at``: arrival + ``decline_within`` working days (2), the limit for a written decline.

A deadline that touches a year the calendar does not cover is computed Monday–Friday and
the row is flagged ``provisional``.  The view keeps a digest of the calendar of every year
its rows touch; when the calendar changes (an operator ran ``xiezhu calendar load``), the
next ``follow`` recomputes every deadline, so a loaded schedule takes effect without a
rebuild and a rebuilt view still equals the live one.

Every request is in exactly one SLA ``state``.  Closed requests keep the state they were
closed in (stored); open ones are judged at query time against ``now``:

==================  ======  ===============================================================
state               open?   meaning
==================  ======  ===============================================================
in-transit          open    a letter not yet delivered (no visit recorded): no deadline runs
on-time             open    arrived, its reply deadline ends after the next working day
due-soon            open    its reply deadline ends at 24:00 of the next working day
due-today           open    its reply deadline ends at 24:00 today (Asia/Shanghai)
overdue             open    ``now >= due_at``
answered-on-time    closed  replied before ``due_at``
answered-late       closed  replied at or after ``due_at``
declined-on-time    closed  declined in writing before ``decline_due_at``
declined-late       closed  declined at or after ``decline_due_at`` (even if before ``due_at``)
withdrawn           closed  the requester withdrew it; no deadline is judged
==================  ======  ===============================================================

``status`` (requested, received, replied, declined, withdrawn) is the request's lifecycle
and is unchanged.  ``working_days_taken`` counts the working days after the arrival day
up to and including the answer's day (an answer on the arrival day took 0).

Schema changes: when an existing ``sla.db`` has another table layout, the view drops its
tables on opening and rebuilds itself from the ledger at the next ``follow``; a view is a
pure fold of the ledger, so nothing is lost.
"""
from __future__ import annotations

import functools
import math
import operator
import sqlite3
import statistics
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping
from datetime import UTC, date, datetime, timedelta
from typing import Any, Protocol

import msgspec

from aggregates import assistance
from aggregates.assistance import CaseState
from aggregates.calendar_store import CalendarSource
from aggregates.database import Location
from aggregates.errors import RuleError
from aggregates.workdays import SHANGHAI, WorkingCalendar
from broker.ledger.store import Entry, Ledger
from projections.base import POSITIONS, LedgerProjection
from schemas import labels
from schemas.assistance import (
    Applicant,
    AssistanceDeclined,
    AssistanceForwarded,
    AssistanceReceived,
    AssistanceReplied,
    AssistanceRequested,
    AssistanceWithdrawn,
    CommitmentItem,
    ItemResult,
)
from schemas.envelope import Envelope
from schemas.errors import XiezhuError

__all__ = [
    "CLOSED_STATES", "OPEN_STATES", "STATES", "STATUSES", "SlaError", "SlaView",
    "IN_TRANSIT", "ON_TIME", "DUE_SOON", "DUE_TODAY", "OVERDUE",
    "ANSWERED_ON_TIME", "ANSWERED_LATE", "DECLINED_ON_TIME", "DECLINED_LATE", "WITHDRAWN",
]

TABLE = "assistance_requests"
CALENDAR_TABLE = "sla_calendar"
NAME = "sla"

IN_TRANSIT = "in-transit"
ON_TIME = "on-time"
DUE_SOON = "due-soon"
DUE_TODAY = "due-today"
OVERDUE = "overdue"
ANSWERED_ON_TIME = "answered-on-time"
ANSWERED_LATE = "answered-late"
DECLINED_ON_TIME = "declined-on-time"
DECLINED_LATE = "declined-late"
WITHDRAWN = "withdrawn"

#: States judged at query time against ``now``.
OPEN_STATES = (IN_TRANSIT, ON_TIME, DUE_SOON, DUE_TODAY, OVERDUE)
#: States fixed when the request is closed.
CLOSED_STATES = (ANSWERED_ON_TIME, ANSWERED_LATE, DECLINED_ON_TIME, DECLINED_LATE, WITHDRAWN)
STATES = OPEN_STATES + CLOSED_STATES
#: A closed state that means the deadline was missed (with ``overdue`` while open).
LATE_STATES = (ANSWERED_LATE, DECLINED_LATE)
#: The request's lifecycle, as before.
STATUSES = ("requested", "received", "replied", "declined", "withdrawn")

_COLUMNS: dict[str, type] = {
    "case_id": str, "number": str, "requester": str, "assistor": str, "matter": str, "channel": str,
    "items": int, "applicant_kind": str, "catalogue_item": str, "catalogue_version": int,
    "reply_within": int, "decline_within": int, "sent_at": str, "arrived_at": str, "due_at": str,
    "decline_due_at": str, "provisional": int, "answered_at": str, "status": str, "outcome": str,
    "false_items": int, "answered_by": str, "working_days_taken": int, "state": str,
    "acknowledged_at": str, "claimed_answered_at": str, "time_flags": str, "catalogue_flag": str, "fold": str,
}
_ASSISTANCE = (AssistanceRequested, AssistanceReceived, AssistanceReplied, AssistanceDeclined, AssistanceForwarded,
               AssistanceWithdrawn)
_ONE_DAY = timedelta(days=1)
_ANSWERED = ("replied", "declined")
_CLOSED = {"replied": ANSWERED_ON_TIME, "declined": DECLINED_ON_TIME, "withdrawn": WITHDRAWN}
#: What :func:`_folded` gives, then what :func:`_deadlines` gives (its years aside), then the catalogue flag.
_FOLDED = ("case_id", "number", "requester", "assistor", "matter", "channel", "items", "applicant_kind",
           "catalogue_item", "catalogue_version", "reply_within", "decline_within", "sent_at", "arrived_at",
           "answered_at", "status", "outcome", "false_items", "answered_by", "acknowledged_at", "claimed_answered_at",
           "time_flags", "fold")
#: What the monitor reads of a row (:meth:`SlaView.notice_rows`).
_NOTICE_COLUMNS = ("case_id, number, requester, assistor, status, answered_at, due_at, decline_due_at, provisional, "
                   "catalogue_flag")
_DEADLINES = ("due_at", "decline_due_at", "provisional", "working_days_taken", "state")
_in_table_order = operator.itemgetter(*[(*_FOLDED, *_DEADLINES, "years", "catalogue_flag").index(c)
                                        for c in (*_COLUMNS, "years")])


class CitedCheck(Protocol):
    """第七条, 第六条: raises a RuleError if a request cites an item it could not be asked under."""

    def check_cited(self, request: AssistanceRequested) -> object: ...


class SlaError(XiezhuError):
    """The SLA view was asked something it cannot answer (an unknown state, a naive time …)."""

    code = "sla.error"


class SlaView(LedgerProjection):
    """The requests table: one row per assistance request, with its deadlines and SLA state."""

    name = NAME
    tables = (TABLE, CALENDAR_TABLE)

    def __init__(self, path: Location, calendar: WorkingCalendar | CalendarSource | None = None, *,
                 catalogue: CitedCheck | None = None) -> None:
        """``catalogue``: 区司法局's catalogue, against which each request's cited item is checked (第七条,
        第六条); a request that could not be asked is flagged in ``catalogue_flag`` and the monitor
        sends no notice about it."""
        self._catalogue = catalogue
        self._source = calendar if calendar is not None else WorkingCalendar()
        #: The calendar of the current follow (read once per follow, not once per event).
        self._current = self.calendar
        #: True when an older table layout was found and dropped (the next follow rebuilds it).
        self.layout_reset = False
        self._known_years: set[int] | None = None
        super().__init__(path)
        self.refresh_deadlines()

    @property
    def calendar(self) -> WorkingCalendar:
        """The working calendar in force (re-read from a live source such as a CalendarStore)."""
        if isinstance(self._source, WorkingCalendar):
            return self._source
        return self._source.calendar()

    # -- tables -------------------------------------------------------------------------

    def create_tables(self) -> None:
        t = self.db.table(TABLE)
        if t.exists() and set(t.columns_dict) != set(_COLUMNS):
            # An older layout: a view is a fold of the ledger, so drop it and replay from 0.
            with self._lock, self.db.conn:
                for name in self.tables:
                    self.db.table(name).drop(ignore=True)
                self.db.execute(f"DELETE FROM {POSITIONS} WHERE name = ?", [self.name])
            self.layout_reset = True
        if not t.exists():
            t.create(_COLUMNS, pk="case_id", not_null={"number", "requester", "assistor", "status"})
            t.create_index(["requester", "number"])
            t.create_index(["assistor", "status"])
            t.create_index(["state"])
        if not self.db.table(CALENDAR_TABLE).exists():
            self.db.table(CALENDAR_TABLE).create({"year": int, "digest": str}, pk="year")

    def follow(self, ledger: Ledger, *, batch: int = 1000, progress: Callable[[int], None] | None = None) -> int:
        """Recompute deadlines if the calendar changed, then apply every new ledger entry."""
        self.refresh_deadlines()
        self._known_years = None
        return super().follow(ledger, batch=batch, progress=progress)

    # -- the fold -----------------------------------------------------------------------

    def apply(self, env: Envelope, arrived_at: str) -> None:
        raise SlaError("the SLA view folds whole ledger entries (apply_entry): it needs the signed digest",
                       zh="SLA 视图按完整的账本条目归并（apply_entry）：需要签名摘要")

    def wants(self, event_type: str) -> bool:
        return event_type.startswith("assistance.")

    def apply_entry(self, entry: Entry, env: Envelope) -> None:
        """Fold one entry with the assistance fold, at the time the platform stored it (第五条).

        An event the fold refuses (a rule it breaks) changes nothing, as in a replay.
        """
        if not isinstance(env.payload, _ASSISTANCE):
            return
        row = self._row(env.case)
        before = _thaw(row["fold"]) if row is not None else None
        if before is None and row is not None:
            return  # a row without a fold: cannot happen in a view built by this code
        try:
            state = assistance.apply(before, env, entry.signed.digest, recorded_at=_parse(entry.arrived_at))
        except RuleError:
            return
        values, years = row_values(state, self._current)  # the deadlines too: one write per event
        columns = dict(zip(_COLUMNS, values, strict=True))
        if before is None:
            columns["catalogue_flag"] = self._cited(state.request)
        else:
            del columns["catalogue_flag"]  # checked once, with the request
        self._requests.upsert(columns)
        self._record_years(years, self._current)

    @property
    def _requests(self) -> _Rows:
        return _Rows(self.db.conn, TABLE, "case_id")

    @property
    def catalogue(self) -> CitedCheck | None:
        """The catalogue requests are checked against (``None``: none on this machine)."""
        return self._catalogue

    def _cited(self, request: AssistanceRequested) -> str:
        return cited_flag(self._catalogue, request)

    def _row(self, case_id: str) -> dict[str, Any] | None:
        # None: an event whose request the ledger does not hold, nothing to attach it to
        return self._requests.get(case_id)

    # -- the calendar the deadlines were computed with ------------------------------------

    def _record_years(self, years: Iterable[int], cal: WorkingCalendar) -> None:
        if self._known_years is None:  # read once per follow, not once per event
            self._known_years = {r[0] for r in self.db.execute(f"SELECT year FROM {CALENDAR_TABLE}").fetchall()}
        missing = sorted(set(years) - self._known_years)
        if missing:
            self.db.table(CALENDAR_TABLE).insert_all(
                [{"year": y, "digest": _year_digest(cal, y)} for y in missing], pk="year", ignore=True)
            self._known_years.update(missing)

    def refresh_deadlines(self) -> int:
        """Recompute every deadline if the calendar of a year the rows touch changed; returns rows changed."""
        cal = self._current = self.calendar
        with self._lock:
            stored = dict(self.db.execute(f"SELECT year, digest FROM {CALENDAR_TABLE}").fetchall())
            if all(_year_digest(cal, y) == d for y, d in stored.items()):
                return 0
            changed, touched = 0, set[int]()
            self._known_years = None
            with self.db.conn:
                self.db.table(CALENDAR_TABLE).delete_where()
                for row in list(self.db.table(TABLE).rows):
                    derived, years = _derived(row, cal)
                    touched |= years
                    if any(row[k] != v for k, v in derived.items()):
                        self.db.table(TABLE).update(row["case_id"], derived)
                        changed += 1
                self._record_years(touched, cal)
            return changed

    # -- queries --------------------------------------------------------------------------

    def rows(self, *, bureau: str | None = None, status: str | None = None, state: str | None = None,
             now: datetime | None = None) -> list[dict[str, Any]]:
        """Rows, oldest request first, filtered by bureau (either side), status and SLA state at ``now``.

        ``now`` defaults to the system clock; open requests are judged against it.
        """
        if status is not None and status not in STATUSES:
            raise SlaError(f"unknown status {status!r}; one of {', '.join(STATUSES)}",
                           zh=f"未知的办理状态 {status!r}；应为 "
                              + "、".join(f"{s}（{labels.REQUEST_STATUS.get(s, s)}）" for s in STATUSES) + " 之一",
                           status=status)
        if state is not None and state not in STATES:
            raise SlaError(f"unknown state {state!r}; one of {', '.join(STATES)}",
                           zh=f"未知的时限状态 {state!r}；应为 "
                              + "、".join(f"{s}（{labels.SLA_STATE.get(s, s)}）" for s in STATES) + " 之一",
                           state=state)
        now = _now(now)
        where, args = [], []
        if bureau:
            where.append("(requester = ? OR assistor = ?)")
            args += [bureau, bureau]
        if status:
            where.append("status = ?")
            args.append(status)
        if state in CLOSED_STATES:
            where.append("state = ?")
            args.append(state)
        elif state in OPEN_STATES:
            where.append("state IS NULL")
        judge = _Judge(self.calendar, now)
        with self._lock:
            found = list(self.db.table(TABLE).rows_where(" AND ".join(where) or None, args,
                                                         order_by="sent_at, number"))
        out = [judge.present(r) for r in found]
        return [r for r in out if state is None or r["state"] == state]

    def notice_rows(self) -> list[dict[str, Any]]:
        """The rows that may call for a deadline notice, as stored, oldest request first: the open ones and
        the ones answered or declined late (what :class:`agencies.monitor.SlaMonitor` reads).

        A request replied or declined in time, or withdrawn, never calls for one.  The monitor looks
        after every follow of the ledger, and reading every row each time made a follow's cost grow
        with the view (issue 14).
        """
        with self._lock:
            return list(self.db.table(TABLE).rows_where("state IS NULL OR state IN (?, ?)",
                                                        [ANSWERED_LATE, DECLINED_LATE],
                                                        order_by="sent_at, number", select=_NOTICE_COLUMNS))

    def counts(self) -> dict[str, int]:
        """Requests per status."""
        with self._lock:
            rows = self.db.query(f"SELECT status, COUNT(*) AS n FROM {TABLE} GROUP BY status")
            return {r["status"]: r["n"] for r in rows}

    def stats(self, *, start: date | None = None, end: date | None = None,
              now: datetime | None = None) -> list[dict[str, Any]]:
        """Per bureau, the requests of a period (both ends included), judged at ``now``.

        A request falls in the period by the Asia/Shanghai day of its system-recorded
        arrival, or of its sending while it has not arrived.  For each bureau:

        - ``sent``: requests it sent; ``received``: requests that arrived at it;
        - ``answered``: of those, replied or declined; ``declined``, ``withdrawn``, ``open``;
        - ``on_time``: answered before their deadline (a decline before ``decline_due_at``);
        - ``on_time_rate`` = on_time / answered; ``decline_rate`` = declined / answered
          (``None`` when nothing was answered);
        - ``median_working_days`` (statistics.median) and ``p90_working_days`` (nearest rank:
          the smallest value at least 90% of answers took no more than) over answered requests;
        - ``breaches``: deadlines missed — answered late, declined late, or open and overdue at ``now``.
        """
        if start and end and start > end:
            raise SlaError(f"the period starts {start} after it ends {end}",
                           zh=f"统计期间的开始日 {start} 晚于结束日 {end}", start=str(start), end=str(end))
        return stats_of(self.rows(now=now), start=start, end=end)


def stats_of(rows: Iterable[Mapping[str, Any]], *, start: date | None = None, end: date | None = None,
             by_matter: bool = False) -> list[dict[str, Any]]:
    """:meth:`SlaView.stats` of rows already judged (``SlaView.rows(now=…)``); ``by_matter`` counts
    each bureau's requests per matter too (the report's table per bureau and matter), adding ``matter``."""
    def key(bureau: str, r: Mapping[str, Any]) -> tuple[str, str]:
        return (bureau, r["matter"] if by_matter else "")

    per: dict[tuple[str, str], dict[str, Any]] = defaultdict(_empty_stats)
    taken: dict[tuple[str, str], list[int]] = defaultdict(list)
    for r in rows:
        day = _shanghai_day(r["arrived_at"] or r["sent_at"])
        if (start and day < start) or (end and day > end):
            continue
        per[key(r["requester"], r)]["sent"] += 1
        if not r["arrived_at"]:
            continue
        at = key(r["assistor"], r)
        b = per[at]
        b["received"] += 1
        if r["status"] in ("replied", "declined"):
            b["answered"] += 1
            b["declined"] += r["status"] == "declined"
            b["on_time"] += r["state"] in (ANSWERED_ON_TIME, DECLINED_ON_TIME)
            if r.get("working_days_taken") is not None:
                taken[at].append(r["working_days_taken"])
        elif r["status"] == "withdrawn":
            b["withdrawn"] += 1
        else:
            b["open"] += 1
        b["breaches"] += r["state"] in (*LATE_STATES, OVERDUE)
    result = []
    for k in sorted(per):
        b = per[k]
        days = sorted(taken[k])
        answered = b["answered"]
        result.append({
            "bureau": k[0], **({"matter": k[1]} if by_matter else {}), **b,
            "on_time_rate": b["on_time"] / answered if answered else None,
            "decline_rate": b["declined"] / answered if answered else None,
            "median_working_days": statistics.median(days) if days else None,
            "p90_working_days": days[math.ceil(0.9 * len(days)) - 1] if days else None,
        })
    return result


def cited_flag(catalogue: CitedCheck | None, request: AssistanceRequested) -> str:
    """第七条, 第六条: why the request could not be asked under the item it cites ("" if it could)."""
    if catalogue is None:
        return ""
    try:
        catalogue.check_cited(request)
    except RuleError as e:
        return f"{e.code}: {e}"
    return ""


class _Rows:
    """One table's rows by primary key, in plain SQL, for the fold (issue 14).

    sqlite-utils' ``upsert``, ``get`` and ``update`` read the table's layout (``PRAGMA
    table_info``, its primary keys, its foreign keys) on every call; per ledger event that
    cost more than the fold itself.  The column names come from the fold, never from input.
    """

    def __init__(self, conn: sqlite3.Connection, table: str, pk: str) -> None:
        self.conn, self.table, self.pk = conn, table, pk

    def get(self, key: str) -> dict[str, Any] | None:
        cur = self.conn.execute(f"SELECT * FROM {self.table} WHERE {self.pk} = ?", (key,))
        row = cur.fetchone()
        return None if row is None else dict(zip([d[0] for d in cur.description], row, strict=True))

    def upsert(self, row: dict[str, Any]) -> None:
        """Insert the row, or set the columns given on the row with its key (others keep their values)."""
        sets = ", ".join(f"{c} = excluded.{c}" for c in row if c != self.pk)
        self.conn.execute(f"INSERT INTO {self.table} ({', '.join(row)}) VALUES ({', '.join('?' * len(row))}) "
                          f"ON CONFLICT({self.pk}) DO UPDATE SET {sets}", list(row.values()))

    def update(self, key: str, values: dict[str, Any]) -> None:
        sets = ", ".join(f"{column} = ?" for column in values)
        self.conn.execute(f"UPDATE {self.table} SET {sets} WHERE {self.pk} = ?", [*values.values(), key])


def _empty_stats() -> dict[str, Any]:
    return {"sent": 0, "received": 0, "answered": 0, "declined": 0, "withdrawn": 0, "open": 0,
            "on_time": 0, "breaches": 0}


class _Judge:
    """Judges open rows at one instant (today and the next working day computed once)."""

    def __init__(self, cal: WorkingCalendar, now: datetime) -> None:
        self.now = now
        self.today = now.astimezone(SHANGHAI).date()
        self.next_working_day = cal.add_working_days(now, 1).last_day

    def present(self, row: dict[str, Any]) -> dict[str, Any]:
        row.pop("fold", None)  # the view's own working state, not part of the answer
        row["provisional"] = bool(row["provisional"])
        if row["state"] is None:
            row["state"] = self.open_state(row)
        return row

    def open_state(self, row: dict[str, Any]) -> str:
        if not row["due_at"]:
            return IN_TRANSIT
        due = datetime.fromisoformat(row["due_at"])
        if self.now >= due:
            return OVERDUE
        last_day = (due.astimezone(SHANGHAI) - _ONE_DAY).date()
        if last_day == self.today:
            return DUE_TODAY
        if last_day == self.next_working_day:
            return DUE_SOON
        return ON_TIME


def _derived(row: dict[str, Any], cal: WorkingCalendar) -> tuple[dict[str, Any], set[int]]:
    """The calendar-dependent columns of a stored row, and the years their computation touched."""
    answered = _parse(row["answered_at"]) if row["status"] in _ANSWERED else None
    due, decline_due, provisional, days, state, years = _deadlines(
        _parse(row["arrived_at"]), answered, row["status"], row["reply_within"], row["decline_within"], cal)
    return {"due_at": due, "decline_due_at": decline_due, "provisional": provisional, "working_days_taken": days,
            "state": state}, years


def _deadlines(arrived: datetime | None, answered: datetime | None, status: str, reply_within: int,
               decline_within: int, cal: WorkingCalendar) -> tuple[str | None, str | None, int, int | None,
                                                                    str | None, set[int]]:
    """``due_at``, ``decline_due_at``, ``provisional``, ``working_days_taken``, ``state`` and the years touched,
    from the legal arrival and answer (``answered`` only for a reply or a decline)."""
    closed = _CLOSED.get(status)
    if arrived is None:  # no deadline runs before the arrival is recorded
        return None, None, 0, None, closed, set()
    reply = cal.add_working_days(arrived, reply_within)
    decline = cal.add_working_days(arrived, decline_within)
    days: int | None = None
    provisional = False
    last = max(reply.last_day, decline.last_day)
    if answered is not None:
        days, provisional = cal.working_days_between(arrived, answered)
        last = max(last, answered.astimezone(SHANGHAI).date())
        if status == "replied" and answered >= reply.ends_at:
            closed = ANSWERED_LATE
        elif status == "declined" and answered >= decline.ends_at:
            closed = DECLINED_LATE
    first = arrived.astimezone(SHANGHAI).year
    return (_ends_iso(reply.ends_at), _ends_iso(decline.ends_at),
            int(reply.provisional or decline.provisional or provisional), days, closed,
            set(range(first, last.year + 1)))


@functools.lru_cache(maxsize=4096)
def _ends_iso(ends_at: datetime) -> str:
    """A deadline's end as stored: deadlines end at a few thousand midnights, each formatted once."""
    return ends_at.isoformat()


def row_values(st: CaseState, cal: WorkingCalendar) -> tuple[tuple[Any, ...], set[int]]:
    """Every column of the case's row in the table's order (``catalogue_flag`` None), and the years its deadlines
    touched: the deadlines from the legal times as folded, without formatting and parsing them again."""
    arrived, answer = assistance.legal_arrival(st), assistance.legal_answer(st)
    reply_within, decline_within = assistance.time_limits(st.request)
    picked = _in_table_order((*_folded(st, arrived, answer, reply_within, decline_within), *_deadlines(
        arrived, answer if st.status in _ANSWERED else None, st.status, reply_within, decline_within, cal), None))
    return picked[:-1], picked[-1]


def _folded(st: CaseState, arrived: datetime | None, answer: datetime | None, reply_within: int,
            decline_within: int) -> tuple[Any, ...]:
    """The columns of :data:`_FOLDED`: legal times decide, claims are kept beside them."""
    r = st.request
    verdicts = [x.verdict for x in st.results]
    false = verdicts.count("false")
    # An answer that crossed a withdrawal (decision 12) keeps its outcome beside the withdrawn status.
    outcome = ("false" if false else ("unverifiable" if "unverifiable" in verdicts else "true")) if verdicts else (
        "declined" if st.reasons else ("withdrawn" if st.status == "withdrawn" else None))
    return (st.case, st.number, st.requester, st.assistor, r.matter.name, r.channel, len(r.items), r.applicant.kind,
            r.catalogue_item, r.catalogue_version, reply_within, decline_within, st.sent_at.isoformat(),
            _iso(arrived), _iso(answer), st.status, outcome, false, st.answered_by or None, _iso(st.arrived_at),
            _iso(st.answered_at), "\n".join(st.time_flags), _freeze(st))


def _freeze(st: CaseState) -> str:
    """The folded case as the view keeps it: without personal data (decision 26), which the fold
    no longer needs once the request is open (only the items' numbers, the parties and the times)."""
    r = st.request
    bare = msgspec.structs.replace(r, applicant=_BARE_APPLICANT[r.applicant.kind],
                                   items=[_bare_item(i.no) for i in r.items], staff=[])
    return msgspec.json.encode(msgspec.structs.replace(
        st, request=bare, reasons="-" if st.reasons else "", withdrawn_reason="-" if st.withdrawn_reason else "",
        results=tuple(_bare_result(x.no, x.verdict, bool(x.reason)) for x in st.results),
    )).decode()


#: The scrubbed parts of a frozen case, made once (frozen structs: the same values every time).
_BARE_APPLICANT = {kind: Applicant(kind=kind, name="-", id_number="0" * 15) for kind in ("person", "organisation")}


@functools.lru_cache(maxsize=64)
def _bare_item(no: int) -> CommitmentItem:
    return CommitmentItem(no=no, text="-")


@functools.lru_cache(maxsize=256)
def _bare_result(no: int, verdict: str, reason: bool) -> ItemResult:
    return ItemResult(no=no, verdict=verdict, reason="-" if reason else "")  # type: ignore[arg-type]


def _thaw(text: str | None) -> CaseState | None:
    return msgspec.json.decode(text, type=CaseState) if text else None


def _iso(t: datetime | None) -> str | None:
    return t.isoformat() if t is not None else None


def _year_digest(cal: WorkingCalendar, year: int) -> str:
    """A fingerprint of one year of the calendar: which days work, and whether it is covered (computed once
    per calendar and year: every follow compares them)."""
    return cal.fingerprint(year)


def _parse(iso: str | None) -> datetime | None:
    return datetime.fromisoformat(iso) if iso else None


def _shanghai_day(iso: str) -> date:
    return datetime.fromisoformat(iso).astimezone(SHANGHAI).date()


def _now(now: datetime | None) -> datetime:
    if now is None:
        return datetime.now(UTC)
    if now.utcoffset() is None:
        raise SlaError(f"now must be a timezone-aware time, got {now.isoformat()}",
                       zh=f"now 须为带时区的时间，实为 {now.isoformat()}", now=now.isoformat())
    return now
