"""The SLA view: working-day deadlines from the recorded arrival, one SLA state per request, statistics.

Ledgers are built directly from signed envelopes (no NATS is needed for a fold of the ledger).
"""
from __future__ import annotations

import itertools
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from pathlib import Path

import pytest
import sqlite_utils

from aggregates.calendar_store import CalendarStore
from aggregates.database import is_postgres
from aggregates.workdays import SHANGHAI, WorkingCalendar, YearSchedule
from broker.ledger.store import Ledger
from broker.signing import Signer
from projections.sla import SlaError, SlaView
from schemas.assistance import (
    Applicant,
    AssistanceDeclined,
    AssistanceReceived,
    AssistanceReplied,
    AssistanceRequested,
    AssistanceWithdrawn,
    CommitmentItem,
    ItemResult,
    Matter,
)
from schemas.envelope import Envelope, new_id
from tests.conftest import StoreLocations, beside
from tests.test_signing import make_signer


def sh(*args: int) -> datetime:
    return datetime(*args, tzinfo=SHANGHAI)


@dataclass(frozen=True)
class Case:
    """What later events of one request need to refer to it."""

    id: str
    request_id: str
    digest: str
    number: str
    requester: str
    assistor: str


class Book:
    """Writes signed assistance events straight into a ledger, as the 司法局 ledger service would."""

    def __init__(self, ledger: Ledger) -> None:
        self.ledger = ledger
        self.signers: dict[str, Signer] = {}
        self.seq = itertools.count(1)
        self.numbers: dict[tuple[str, int], itertools.count[int]] = {}

    def _append(self, sender: str, recipient: str, case: str, number: str, when: datetime, payload: object,
                stored: datetime | None = None) -> Envelope:
        """Sign ``payload`` dated ``when``; the platform stores it at ``stored`` (default: then too)."""
        signer = self.signers.setdefault(sender, make_signer(sender))
        env = Envelope(id=new_id(), sender=sender, recipient=recipient, case=case, number=number, time=when,
                       payload=payload)  # type: ignore[arg-type]
        signed = signer.sign(env)
        self.ledger.append([(signed, env, next(self.seq), stored or when)])
        self._last_digest = signed.digest
        return env

    def request(self, sent: datetime, *, requester: str = "shenpi", assistor: str = "gongan",
                reply_within: int = 3, decline_within: int = 2, channel: str = "platform",
                stored: datetime | None = None, case: str | None = None) -> Case:
        serial = next(self.numbers.setdefault((requester, sent.year), itertools.count(1)))  # YYYYNNNN per requester
        number, case = f"{sent.year}{serial:04d}", case or new_id()
        env = self._append(requester, assistor, case, number, sent, AssistanceRequested(
            requester=requester, assistor=assistor,
            applicant=Applicant(kind="person", name="张三", id_number="370405199001011234"),
            matter=Matter(code="370405-XK-0101", name="食品经营许可"), applied_on=sent.date(),
            items=[CommitmentItem(no=1, text="本人无犯罪记录", check="police.no-criminal-record")],
            channel=channel, staff=["李明", "王芳"] if channel == "letter" else [],  # type: ignore[arg-type]
            catalogue_item="XZ-0001", catalogue_version=2,
            reply_within=reply_within, decline_within=decline_within), stored)
        return Case(case, env.id, self._last_digest, number, requester, assistor)

    def receive(self, c: Case, at: datetime, stored: datetime | None = None) -> None:
        self._append(c.assistor, c.requester, c.id, c.number, at,
                     AssistanceReceived(request_id=c.request_id, request_hash=c.digest, arrived_at=at), stored)

    def reply(self, c: Case, at: datetime, verdict: str = "true", stored: datetime | None = None,
              channel: str = "platform") -> None:
        self._append(c.assistor, c.requester, c.id, c.number, at, AssistanceReplied(
            request_id=c.request_id, request_hash=c.digest, channel=channel,  # type: ignore[arg-type]
            results=[ItemResult(no=1, verdict=verdict, reason="档案未移交" if verdict == "unverifiable" else "")],  # type: ignore[arg-type]
            answered_by="operator:王伟"), stored)

    def decline(self, c: Case, at: datetime) -> None:
        self._append(c.assistor, c.requester, c.id, c.number, at, AssistanceDeclined(
            request_id=c.request_id, request_hash=c.digest, channel="platform",
            reasons="不属于本机关职权范围", answered_by="operator:王伟"))

    def withdraw(self, c: Case, at: datetime) -> None:
        self._append(c.requester, c.assistor, c.id, c.number, at,
                     AssistanceWithdrawn(request_id=c.request_id, reason="申请人撤回申请"))

    def arrived(self, at: datetime, **kw: object) -> Case:
        """A request the platform stored at ``at`` (its legal arrival), acknowledged by the assistor then."""
        c = self.request(at, **kw)  # type: ignore[arg-type]
        self.receive(c, at)
        return c


@pytest.fixture
def ledger(store_location: StoreLocations) -> Iterator[Ledger]:
    """The ledger, and beside it the views: SQLite files, and (marked ``postgres``) schemas of PostgreSQL."""
    led = Ledger(store_location("ledger"))
    yield led
    led.close()


@pytest.fixture
def book(ledger: Ledger) -> Book:
    return Book(ledger)


def view_of(tmp_path: Path, ledger: Ledger, calendar: object = None) -> SlaView:
    view = SlaView(beside(ledger.location, tmp_path / "projections" / "sla.db"), calendar)  # type: ignore[arg-type]
    view.follow(ledger)
    return view


def only(view: SlaView, now: datetime) -> dict[str, object]:
    [row] = view.rows(now=now)
    return row


# --- deadlines ------------------------------------------------------------------------------------------------


def test_a_request_arriving_before_national_day_is_due_at_24_00_of_the_make_up_saturday(
        tmp_path: Path, book: Book, ledger: Ledger) -> None:
    """10-08, 10-09 and the make-up Saturday 10-10 are the 3 working days; 10-01..07 are the holiday."""
    book.arrived(sh(2026, 9, 30, 10))
    row = only(view_of(tmp_path, ledger), sh(2026, 9, 30, 11))
    assert row["arrived_at"] == "2026-09-30T10:00:00+08:00"
    assert row["due_at"] == "2026-10-11T00:00:00+08:00"
    assert row["decline_due_at"] == "2026-10-10T00:00:00+08:00"  # 2 working days: 10-08, 10-09
    assert row["provisional"] is False
    assert (row["reply_within"], row["decline_within"]) == (3, 2)
    assert (row["catalogue_item"], row["catalogue_version"], row["channel"]) == ("XZ-0001", 2, "platform")
    assert row["status"] == "received"


def test_the_deadline_runs_from_the_platforms_record_not_from_the_sending_nor_the_acknowledgment(
        tmp_path: Path, book: Book, ledger: Ledger) -> None:
    """第五条: 信息推送行为结束即视为对方接收到信息，时间以系统记录的到达时间为准 (decision 28)."""
    c = book.request(sh(2026, 9, 24, 16), stored=sh(2026, 9, 28, 9))  # dated before Mid-Autumn, pushed after
    book.receive(c, sh(2026, 10, 8, 9))  # the assistor signs an arrival eight days late
    row = only(view_of(tmp_path, ledger), sh(2026, 10, 8, 10))
    assert row["arrived_at"] == "2026-09-28T09:00:00+08:00"
    assert row["due_at"] == "2026-10-09T00:00:00+08:00"  # 09-29, 09-30, 10-08: the late record moves nothing
    assert row["acknowledged_at"] == "2026-10-08T09:00:00+08:00"
    assert "时间与平台记录不符（第五条）" in row["time_flags"]
    assert "2026-10-08T09:00:00+08:00" in row["time_flags"]


def test_a_shorter_time_agreed_by_the_catalogue_row_sets_the_deadline(
        tmp_path: Path, book: Book, ledger: Ledger) -> None:
    book.arrived(sh(2026, 11, 2, 10), reply_within=2, decline_within=1)  # a Monday
    row = only(view_of(tmp_path, ledger), sh(2026, 11, 2, 11))
    assert row["due_at"] == "2026-11-05T00:00:00+08:00"  # Tue, Wed
    assert row["decline_due_at"] == "2026-11-04T00:00:00+08:00"


def test_a_request_allowing_more_than_the_plans_3_and_2_days_is_judged_by_3_and_2_and_flagged(
        tmp_path: Path, book: Book, ledger: Ledger) -> None:
    """三(二): 3个工作日内履行协助义务, 2个工作日内书面告知; a request cannot lengthen them."""
    book.arrived(sh(2026, 11, 2, 10), reply_within=30, decline_within=10)  # a Monday
    row = only(view_of(tmp_path, ledger), sh(2026, 11, 2, 11))
    assert (row["reply_within"], row["decline_within"]) == (3, 2)
    assert row["due_at"] == "2026-11-06T00:00:00+08:00"  # Tue..Thu
    assert row["decline_due_at"] == "2026-11-05T00:00:00+08:00"
    assert "时限超过方案规定（三(二)）" in row["time_flags"]


# --- states ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("now", "state"), [
    (sh(2026, 9, 30, 11), "on-time"),
    (sh(2026, 10, 8, 9), "on-time"),  # due 10-10; the next working day is 10-09
    (sh(2026, 10, 9, 9), "due-soon"),  # the deadline ends with the next working day (the make-up Saturday)
    (sh(2026, 10, 10, 0), "due-today"),
    (sh(2026, 10, 10, 23, 59, 59), "due-today"),
    (sh(2026, 10, 11, 0), "overdue"),  # 24:00 of 10-10 has passed
    (sh(2026, 10, 12, 9), "overdue"),
])
def test_an_open_request_is_judged_at_now(tmp_path: Path, book: Book, ledger: Ledger, now: datetime,
                                         state: str) -> None:
    book.arrived(sh(2026, 9, 30, 10))
    assert only(view_of(tmp_path, ledger), now)["state"] == state


def test_due_soon_looks_across_a_holiday_to_the_next_working_day(tmp_path: Path, book: Book, ledger: Ledger) -> None:
    book.arrived(sh(2026, 9, 28, 10))  # due at 24:00 of 10-08
    view = view_of(tmp_path, ledger)
    assert only(view, sh(2026, 9, 30, 15))["state"] == "due-soon"  # 10-01..07 are not working days
    assert only(view, sh(2026, 9, 29, 15))["state"] == "on-time"


def test_a_platform_request_never_acknowledged_is_due_from_its_push_and_goes_overdue(
        tmp_path: Path, book: Book, ledger: Ledger) -> None:
    """The assistor's agent never ran: the deadline runs from the platform's record all the same."""
    book.request(sh(2026, 9, 30, 10))
    view = view_of(tmp_path, ledger)
    row = only(view, sh(2026, 9, 30, 11))
    assert (row["state"], row["status"], row["acknowledged_at"]) == ("on-time", "requested", None)
    assert row["due_at"] == "2026-10-11T00:00:00+08:00"
    assert only(view, sh(2026, 12, 1, 9))["state"] == "overdue"


def test_a_letter_not_yet_delivered_is_in_transit_with_no_deadline(
        tmp_path: Path, book: Book, ledger: Ledger) -> None:
    """协助函（二）: a letter carried by staff arrives with the visit the assistor records."""
    c = book.request(sh(2026, 9, 30, 10), channel="letter")
    view = view_of(tmp_path, ledger)
    row = only(view, sh(2026, 12, 1, 9))
    assert (row["state"], row["status"], row["due_at"]) == ("in-transit", "requested", None)
    book.receive(c, sh(2026, 10, 9, 10))
    view.follow(ledger)
    assert only(view, sh(2026, 10, 9, 11))["due_at"] == "2026-10-14T00:00:00+08:00"  # 10-10 (make-up), 10-12, 10-13


def test_a_letter_recorded_as_arriving_before_it_was_sent_starts_no_deadline(
        tmp_path: Path, book: Book, ledger: Ledger) -> None:
    c = book.request(sh(2026, 9, 30, 10), channel="letter")
    book.receive(c, sh(2026, 9, 20, 10))  # backdated before the letter existed: the fold refuses it
    row = only(view_of(tmp_path, ledger), sh(2026, 10, 9, 11))
    assert (row["state"], row["due_at"], row["acknowledged_at"]) == ("in-transit", None, None)


def test_an_answer_counts_when_the_platform_stored_it_not_when_its_envelope_says(
        tmp_path: Path, book: Book, ledger: Ledger) -> None:
    c = book.arrived(sh(2026, 9, 30, 10))  # due 10-10 24:00
    book.reply(c, sh(2026, 10, 9, 9), stored=sh(2026, 10, 19, 9))  # dated in time, pushed ten days later
    row = only(view_of(tmp_path, ledger), sh(2026, 10, 20, 9))
    assert (row["state"], row["answered_at"]) == ("answered-late", "2026-10-19T09:00:00+08:00")
    assert row["claimed_answered_at"] == "2026-10-09T09:00:00+08:00"
    assert "时间与平台记录不符（第五条）" in row["time_flags"]


@pytest.mark.parametrize(("answer", "at", "state", "days"), [
    ("reply", sh(2026, 9, 30, 15), "answered-on-time", 0),
    ("reply", sh(2026, 10, 10, 23, 59), "answered-on-time", 3),
    ("reply", sh(2026, 10, 11, 0), "answered-late", 3),  # 10-11 is a Sunday: still 3 working days
    ("reply", sh(2026, 10, 12, 9), "answered-late", 4),
    ("decline", sh(2026, 10, 9, 17), "declined-on-time", 2),
    ("decline", sh(2026, 10, 10, 9), "declined-late", 3),  # after the 2-day limit, though before the reply's
    ("withdraw", sh(2026, 10, 12, 9), "withdrawn", None),
])
def test_a_closed_request_keeps_the_state_it_was_closed_in(tmp_path: Path, book: Book, ledger: Ledger,
                                                          answer: str, at: datetime, state: str,
                                                          days: int | None) -> None:
    c = book.arrived(sh(2026, 9, 30, 10))
    getattr(book, answer)(c, at)
    view = view_of(tmp_path, ledger)
    for now in (at, sh(2026, 10, 9, 9), sh(2027, 6, 1, 9)):
        row = only(view, now)
        assert (row["state"], row["working_days_taken"]) == (state, days)
    assert row["answered_at"] == at.isoformat()


def test_an_answer_that_crossed_a_withdrawal_is_recorded_and_the_request_stays_withdrawn(
        tmp_path: Path, book: Book, ledger: Ledger) -> None:
    """Decision 12: both stand; no deadline is judged on a withdrawn request, even a late answer."""
    c = book.arrived(sh(2026, 9, 30, 10))
    book.withdraw(c, sh(2026, 10, 12, 9))
    book.reply(c, sh(2026, 10, 12, 10))
    row = only(view_of(tmp_path, ledger), sh(2026, 10, 13, 9))
    assert (row["status"], row["state"], row["outcome"]) == ("withdrawn", "withdrawn", "true")
    assert row["working_days_taken"] is None


def test_rows_filter_by_state_bureau_and_status(tmp_path: Path, book: Book, ledger: Ledger) -> None:
    late = book.arrived(sh(2026, 9, 21, 10))
    book.reply(late, sh(2026, 9, 30, 10))
    book.arrived(sh(2026, 9, 22, 10), assistor="ziran")  # overdue at now
    book.arrived(sh(2026, 9, 30, 10))  # on time at now
    view = view_of(tmp_path, ledger)
    now = sh(2026, 10, 8, 9)
    assert [r["assistor"] for r in view.rows(state="overdue", now=now)] == ["ziran"]
    assert [r["state"] for r in view.rows(state="answered-late", now=now)] == ["answered-late"]
    assert [r["state"] for r in view.rows(bureau="gongan", now=now)] == ["answered-late", "on-time"]
    assert [r["state"] for r in view.rows(status="received", now=now)] == ["overdue", "on-time"]
    assert view.rows(state="due-today", now=now) == []


@pytest.mark.parametrize("kwargs", [{"state": "late"}, {"status": "answered"}, {"now": datetime(2026, 10, 8, 9)}])
def test_an_unknown_state_or_status_or_a_naive_now_is_a_clear_error(tmp_path: Path, ledger: Ledger,
                                                                    kwargs: dict[str, object]) -> None:
    with pytest.raises(SlaError):
        view_of(tmp_path, ledger).rows(**kwargs)  # type: ignore[arg-type]


# --- provisional years and loaded schedules -------------------------------------------------------------------

#: A schedule written for these tests (not the State Council's): Spring Festival 02-08..12, make-up Sat 02-20.
SCHEDULE_2027 = YearSchedule(year=2027, holidays=frozenset(date(2027, 2, d) for d in range(8, 13)),
                             workdays=frozenset({date(2027, 2, 20)}), source="test schedule")


def test_a_2027_deadline_is_provisional_until_the_schedule_is_loaded_then_recomputed(
        tmp_path: Path, book: Book, ledger: Ledger) -> None:
    book.arrived(sh(2027, 2, 4, 10))  # a Thursday
    cal = WorkingCalendar()
    view = view_of(tmp_path, ledger, cal)
    row = only(view, sh(2027, 2, 5, 9))
    assert row["provisional"] is True
    assert row["due_at"] == "2027-02-10T00:00:00+08:00"  # Monday–Friday: 02-05, 02-08, 02-09
    cal.load(SCHEDULE_2027)
    view.follow(ledger)  # no new entries: the view notices the calendar changed
    row = only(view, sh(2027, 2, 5, 9))
    assert row["provisional"] is False
    assert row["due_at"] == "2027-02-17T00:00:00+08:00"  # 02-05, then after the Spring Festival 02-15, 02-16
    assert row["decline_due_at"] == "2027-02-16T00:00:00+08:00"


def test_a_schedule_loaded_into_the_store_reaches_a_view_opened_on_it(
        tmp_path: Path, book: Book, ledger: Ledger) -> None:
    book.arrived(sh(2027, 2, 4, 10))
    store = CalendarStore(tmp_path / "calendar")
    view = view_of(tmp_path, ledger, store)
    assert only(view, sh(2027, 2, 5, 9))["provisional"] is True
    source = tmp_path / "2027.toml"
    source.write_text('year = 2027\nholidays = [2027-02-08, 2027-02-09, 2027-02-10, 2027-02-11, 2027-02-12]\n'
                      'workdays = [2027-02-20]\nsource = "test schedule"\n', encoding="utf-8")
    assert store.load_file(source) == SCHEDULE_2027
    view.follow(ledger)
    assert only(view, sh(2027, 2, 5, 9))["provisional"] is False
    assert [s.year for s in CalendarStore(tmp_path / "calendar").schedules()] == [2027]


# --- statistics -----------------------------------------------------------------------------------------------


def test_stats_per_bureau_count_rates_working_days_and_breaches(tmp_path: Path, book: Book, ledger: Ledger) -> None:
    """A hand-made November 2026 (no holidays); arrivals on Monday 11-02 10:00 are due at 24:00 of Thursday 11-05."""
    mon = sh(2026, 11, 2, 10)
    replies = {0: mon + timedelta(hours=5), 1: sh(2026, 11, 3, 9), 2: sh(2026, 11, 4, 9), 3: sh(2026, 11, 5, 9),
               5: sh(2026, 11, 9, 9), 7: sh(2026, 11, 11, 9)}  # working days taken -> answered at
    for days in (0, 1, 1, 2, 3, 3, 5, 7):  # answered late: the 5 and the 7
        book.reply(book.arrived(mon), replies[days] + timedelta(minutes=days))
    book.decline(book.arrived(mon), sh(2026, 11, 3, 16))  # 1 working day: on time
    book.decline(book.arrived(mon), sh(2026, 11, 5, 9))  # 3 working days: after 24:00 of 11-04, late
    book.arrived(mon)  # never answered: overdue at now
    book.arrived(sh(2026, 11, 19, 10))  # open, not yet due at now
    book.withdraw(book.arrived(mon), sh(2026, 11, 3, 9))
    book.arrived(mon, requester="gongan", assistor="shenpi")  # the other way round
    book.reply(book.arrived(sh(2026, 10, 30, 10)), sh(2026, 11, 20, 9))  # arrived before the period: not counted
    book.request(sh(2026, 11, 20, 8), channel="letter")  # in transit: a letter not yet delivered

    view = view_of(tmp_path, ledger)
    now = sh(2026, 11, 20, 10)
    stats = {s["bureau"]: s for s in view.stats(start=date(2026, 11, 1), end=date(2026, 11, 30), now=now)}
    assert stats["gongan"] == {
        "bureau": "gongan", "sent": 1, "received": 13, "answered": 10, "declined": 2, "withdrawn": 1, "open": 2,
        "on_time": 7,  # 6 replies and 1 decline
        "breaches": 4,  # answered late x2, declined late, the unanswered one (the 11-19 one is not yet due)
        "on_time_rate": 0.7, "decline_rate": 0.2,
        "median_working_days": 2.5,  # [0, 1, 1, 1, 2, 3, 3, 3, 5, 7]
        "p90_working_days": 5,  # nearest rank: the 9th of 10
    }
    assert stats["shenpi"]["sent"] == 14 and stats["shenpi"]["received"] == 1 and stats["shenpi"]["breaches"] == 1
    assert stats["shenpi"]["on_time_rate"] is None and stats["shenpi"]["p90_working_days"] is None

    before = {s["bureau"]: s for s in view.stats(start=date(2026, 10, 1), end=date(2026, 10, 31), now=now)}
    assert before["gongan"]["received"] == 1 and before["gongan"]["answered"] == 1
    assert before["gongan"]["on_time_rate"] == 0.0
    with pytest.raises(SlaError):
        view.stats(start=date(2026, 11, 30), end=date(2026, 11, 1), now=now)


# --- rebuild and schema changes -------------------------------------------------------------------------------


def test_the_rebuilt_view_equals_the_live_one_row_for_row(tmp_path: Path, book: Book, ledger: Ledger) -> None:
    view = SlaView(beside(ledger.location, tmp_path / "projections" / "sla.db"))
    a = book.arrived(sh(2026, 9, 30, 10))
    view.follow(ledger)
    b = book.arrived(sh(2026, 9, 28, 10), assistor="ziran")
    book.reply(a, sh(2026, 10, 11, 9), verdict="false")
    view.follow(ledger)
    book.decline(b, sh(2026, 10, 9, 9))
    c = book.arrived(sh(2026, 12, 30, 10))  # its deadline runs into provisional 2027
    book.withdraw(c, sh(2026, 12, 31, 9))
    book.reply(c, sh(2026, 12, 31, 10))
    book.request(sh(2027, 1, 4, 9), channel="letter")
    book.arrived(sh(2027, 1, 4, 10))
    view.follow(ledger)
    now = sh(2027, 1, 6, 12)
    live = view.rows(now=now)
    raw = list(view.db.table("assistance_requests").rows)
    assert {r["state"] for r in live} == {"answered-late", "declined-late", "withdrawn", "in-transit", "due-soon"}
    assert any(r["provisional"] for r in live)
    assert view.rebuild(ledger) == len(ledger)
    assert view.rows(now=now) == live
    assert list(view.db.table("assistance_requests").rows) == raw
    fresh = SlaView(beside(ledger.location, tmp_path / "fresh" / "sla.db"))
    fresh.follow(ledger)
    assert fresh.rows(now=now) == live


def test_an_sla_db_with_the_old_layout_rebuilds_itself_from_the_ledger(tmp_path: Path, book: Book,
                                                                      ledger: Ledger) -> None:
    if is_postgres(ledger.location):
        pytest.skip("the old layout is a SQLite file from before the view's current columns")
    book.reply(book.arrived(sh(2026, 9, 30, 10)), sh(2026, 10, 9, 9))
    path = tmp_path / "projections" / "sla.db"
    path.parent.mkdir(parents=True)
    old = sqlite_utils.Database(path)
    old["_positions"].insert({"name": "sla", "position": len(ledger)}, pk="name")
    old["assistance_requests"].insert({"case_id": "x", "number": "20260001", "requester": "shenpi",
                                       "assistor": "gongan", "status": "replied", "answered_at": "…"}, pk="case_id")
    old.close()
    view = SlaView(path)
    assert view.layout_reset and view.position == 0
    view.follow(ledger)
    row = only(view, sh(2026, 10, 9, 10))
    assert (row["state"], row["due_at"]) == ("answered-on-time", "2026-10-11T00:00:00+08:00")
    assert not SlaView(path).layout_reset  # the new layout stays


def test_a_view_commits_without_fsync_and_one_that_lost_its_last_commits_follows_them_again(
        tmp_path: Path, book: Book, ledger: Ledger) -> None:
    """Decision 71: a view's commits are not fsynced (the ledger's are).  A power cut can take a view
    back to an earlier whole state, rows and position together; it then follows those entries again
    and ends as the view that never lost them."""
    if is_postgres(ledger.location):
        pytest.skip("SQLite's synchronous pragma: a PostgreSQL view commits as its server is configured")
    import sqlite3

    view = SlaView(beside(ledger.location, tmp_path / "projections" / "sla.db"))
    assert view.db.execute("PRAGMA synchronous").fetchone()[0] == 1  # NORMAL: no fsync at commit in WAL mode
    assert ledger._db.sqlite.execute("PRAGMA synchronous").fetchone()[0] == 2  # the record's: FULL
    a = book.arrived(sh(2026, 9, 30, 10))
    view.follow(ledger)
    lost = tmp_path / "as-after-the-cut.db"  # the view as the file held it before its last commits
    with sqlite3.connect(lost) as copy:
        view.db.conn.backup(copy)
    book.reply(a, sh(2026, 10, 9, 9))
    b = book.arrived(sh(2026, 10, 9, 10), assistor="ziran")
    book.decline(b, sh(2026, 10, 12, 9))
    view.follow(ledger)
    now = sh(2026, 10, 20, 12)
    behind = SlaView(lost)
    assert behind.position < view.position
    assert behind.follow(ledger) == 4  # what it lost: a's reply, b's request, receipt and decline
    assert behind.rows(now=now) == view.rows(now=now)
    assert list(behind.db.table("assistance_requests").rows) == list(view.db.table("assistance_requests").rows)
