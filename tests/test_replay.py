"""Dispute replay and evidence bundles, on real ledgers of signed envelopes (附件2 第八条)."""
from __future__ import annotations

import hashlib
import io
import itertools
import json
import shutil
import sqlite3
import zipfile
from collections.abc import Callable, Iterator
from contextlib import closing
from datetime import date, datetime, timedelta
from pathlib import Path

import msgspec
import nacl.public
import pytest

from agencies.trust.keys import KeyStore
from aggregates.clock import SystemClock
from aggregates.database import Sql, is_postgres
from aggregates.workdays import SHANGHAI, WorkingCalendar
from broker.ledger.store import Ledger, NoLedgerKey
from broker.sealing import Opener
from broker.sealing import seal as seal_payload
from broker.signing import KeyRing, Signer
from projections import history
from projections.bundle import MANIFEST, NoCheckpoint, verify_bundle, write_bundle
from projections.replay import NotYetRecorded, Replay, render_text, replay
from schemas.assistance import (
    AssistanceDeclined,
    AssistanceReceived,
    AssistanceReplied,
    AssistanceRequested,
    ItemResult,
    Matter,
)
from schemas.commitment import (
    Approved,
    CommitmentSigned,
    ItemVerified,
    NoticeIssued,
    PlannedItem,
    RouteChosen,
    VerificationPlanned,
)
from schemas.envelope import LEDGER, Envelope, Signed, new_id
from schemas.events import Payload
from schemas.sla import DeadlineBreached
from schemas.trust import TrustEntry
from tests.conftest import StoreLocations, beside
from tests.helpers import invoke
from tests.test_history import ITEMS, application
from tests.test_signing import entry, make_signer
from tests.test_store import APPLICANT
from xiezhu.cli.ledger import ledger_app
from xiezhu.settings import Settings

CAL = WorkingCalendar()


def sh(year: int, month: int, day: int, hour: int = 0, minute: int = 0, second: int = 0) -> datetime:
    """An instant in Asia/Shanghai."""
    return datetime(year, month, day, hour, minute, second, tzinfo=SHANGHAI)


#: Wednesday before National Day 2026: the reply limit (3) ends 10-10 (a make-up Saturday), the decline limit 10-09.
ARRIVAL = sh(2026, 9, 30, 10)


#: 区司法局's box key in these tests: every entry is sealed to it, and the ledger opens with it.
SIFA_BOX = nacl.public.PrivateKey.generate()


def sealed_by(signers: dict[str, Signer], env: Envelope) -> Signed:
    """As a bureau's store signs: the payload sealed to 区司法局, then the sealed bytes signed."""
    body = seal_payload(env, [("sifa-box", bytes(SIFA_BOX.public_key))])
    signer = signers[env.sender]
    return Signed(body=body, kid=signer.kid, sig=signer.sign_bytes(body))


class Desk:
    """Signs envelopes as their senders and appends them to a real ledger, as the ledger service would."""

    def __init__(self, ledger: Ledger, signers: dict[str, Signer],
                 sign: Callable[[Envelope], Signed] | None = None) -> None:
        self.ledger = ledger
        self.signers = signers
        self.seq = itertools.count(1)
        self.sign = sign or (lambda env: sealed_by(signers, env))

    def add(self, sender: str, recipient: str, case: str, number: str, when: datetime, payload: Payload, *,
            arrives: datetime | None = None) -> str:
        """Append one signed event; the ledger receives it 2 s after its time unless ``arrives`` says when."""
        env = Envelope(id=new_id(), sender=sender, recipient=recipient, case=case, number=number, time=when,
                       payload=payload)
        signed = self.sign(env)
        self.ledger.append([(signed, env, next(self.seq), arrives or when + timedelta(seconds=2))])
        return signed.digest


class Req:
    """One assistance request shenpi → gongan and its answers."""

    def __init__(self, desk: Desk, sent: datetime, *, number: str = "20260001", commitment_case: str = "",
                 reply_within: int = 3, decline_within: int = 2) -> None:
        self.desk, self.case, self.number, self.request_id = desk, new_id(), number, ""
        env = Envelope(id=new_id(), sender="shenpi", recipient="gongan", case=self.case, number=number, time=sent,
                       payload=AssistanceRequested(
                           requester="shenpi", assistor="gongan", applicant=APPLICANT,
                           matter=Matter(code="X1", name="食品经营许可"), applied_on=date(2026, 9, 21), items=ITEMS,
                           channel="platform", commitment_case=commitment_case, reply_within=reply_within,
                           decline_within=decline_within))
        signed = desk.sign(env)
        desk.ledger.append([(signed, env, next(desk.seq), sent + timedelta(seconds=2))])
        self.request_id, self.hash = env.id, signed.digest

    def received(self, at: datetime) -> None:
        self.desk.add("gongan", "shenpi", self.case, self.number, at,
                      AssistanceReceived(request_id=self.request_id, request_hash=self.hash, arrived_at=at))

    def reply(self, at: datetime, *, arrives: datetime | None = None) -> None:
        self.desk.add("gongan", "shenpi", self.case, self.number, at, AssistanceReplied(
            request_id=self.request_id, request_hash=self.hash, channel="platform",
            results=[ItemResult(no=1, verdict="true"), ItemResult(no=2, verdict="false")],
            answered_by="operator:李四"), arrives=arrives)

    def decline(self, at: datetime) -> None:
        self.desk.add("gongan", "shenpi", self.case, self.number, at, AssistanceDeclined(
            request_id=self.request_id, request_hash=self.hash, channel="platform", reasons="不属于本机关职权范围",
            answered_by="operator:李四"))

    def breach_notice(self, at: datetime, due: datetime) -> None:
        for to in ("shenpi", "gongan"):
            self.desk.add("sifa", to, self.case, self.number, at, DeadlineBreached(
                request_id=self.request_id, requester="shenpi", assistor="gongan", kind="reply", due_at=due,
                detected_at=at))


@pytest.fixture
def signers() -> dict[str, Signer]:
    return {code: make_signer(code) for code in ("shenpi", "gongan", "sifa", "minzheng")}


@pytest.fixture
def desk(tmp_path: Path, store_location: StoreLocations, signers: dict[str, Signer]) -> Iterator[Desk]:
    """The ledger the cases are recorded in: a SQLite file, and (marked ``postgres``) a PostgreSQL schema."""
    ledger = Ledger(beside(store_location("ledger"), tmp_path / "ledger" / "ledger.db"),
                    opener=Opener("sifa", {"sifa-box": bytes(SIFA_BOX)}))
    yield Desk(ledger, signers)
    ledger.close()


def trust_of(signers: dict[str, Signer], **revocations: datetime) -> list[TrustEntry]:
    return [entry(s, revoked_at=revocations.get(code), revoked_reason="key leaked" if code in revocations else "")
            for code, s in signers.items()]


def ring_of(signers: dict[str, Signer], **revocations: datetime) -> KeyRing:
    return KeyRing(trust_of(signers, **revocations))


def checkpoint(desk: Desk, at: datetime) -> None:
    sifa = desk.signers["sifa"]
    assert desk.ledger.checkpoint(lambda msg: (sifa.kid, sifa.sign_bytes(msg)), at) is not None


def noise(desk: Desk, n: int, when: datetime) -> None:
    """``n`` entries of other cases (minzheng → gongan requests), appended in one transaction."""
    batch = []
    for i in range(n):
        env = Envelope(id=new_id(), sender="minzheng", recipient="gongan", case=new_id(), number=f"2026{5000 + i:04d}",
                       time=when, payload=AssistanceRequested(
                           requester="minzheng", assistor="gongan", applicant=APPLICANT,
                           matter=Matter(code="X9", name="婚姻登记"), applied_on=date(2026, 9, 21), items=ITEMS[:1],
                           channel="platform"))
        batch.append((desk.sign(env), env, next(desk.seq), when + timedelta(seconds=2)))
    desk.ledger.append(batch)


# -- the case as it stood --------------------------------------------------------------------------------------


def test_replay_shows_the_case_as_the_ledger_knew_it_at_each_moment(desk: Desk, signers: dict[str, Signer]) -> None:
    req = Req(desk, ARRIVAL - timedelta(minutes=5))
    req.received(ARRIVAL)
    req.reply(sh(2026, 10, 9, 15))
    ring = ring_of(signers)

    with pytest.raises(NotYetRecorded, match="not in the ledger yet"):
        replay(desk.ledger, req.case, ring, CAL, as_of=ARRIVAL - timedelta(minutes=5))  # sent, not yet recorded
    with pytest.raises(history.UnknownCase):
        replay(desk.ledger, new_id(), ring, CAL)

    before_reply = replay(desk.ledger, req.case, ring, CAL, as_of=sh(2026, 10, 9, 12))
    assert before_reply.status == "received"
    assert [(e.before, e.after) for e in before_reply.events] == [(None, "requested"), ("requested", "received")]
    assert before_reply.later_entries == 1
    reply_limit = before_reply.deadlines[0]
    assert (reply_limit.kind, reply_limit.state, reply_limit.working_days_used) == ("reply", "open", 2)

    after_reply = replay(desk.ledger, req.case, ring, CAL, as_of=sh(2026, 10, 9, 15, 0, 2))  # its arrival, inclusive
    assert after_reply.status == "replied" and after_reply.later_entries == 0
    assert [(e.before, e.after) for e in after_reply.events][-1] == ("received", "replied")
    assert after_reply.events[-1].summary == "gongan 回复: 1 真实, 2 虚假; answered by operator:李四"
    assert [(e.sender, e.kid, e.signature.status) for e in after_reply.events] == [
        ("shenpi", "shenpi-k1", "valid"), ("gongan", "gongan-k1", "valid"), ("gongan", "gongan-k1", "valid")]
    assert after_reply.events[-1].arrived_at == sh(2026, 10, 9, 15, 0, 2)
    assert after_reply.bureaus == ["gongan", "shenpi"]


def test_as_of_cuts_by_ledger_arrival_not_by_the_senders_clock(desk: Desk, signers: dict[str, Signer]) -> None:
    req = Req(desk, ARRIVAL - timedelta(minutes=5))
    req.received(ARRIVAL)
    req.reply(sh(2026, 10, 9, 15), arrives=sh(2026, 10, 12, 9))  # signed on the 9th, relayed late
    r = replay(desk.ledger, req.case, ring_of(signers), CAL, as_of=sh(2026, 10, 10, 9))
    assert r.status == "received" and r.later_entries == 1 and r.cutoff == "ledger arrival"
    full = replay(desk.ledger, req.case, ring_of(signers), CAL)
    # 第五条 (decision 28): an answer counts when the platform stored it, not when its envelope says.
    assert (full.deadlines[0].state, full.deadlines[0].answered_at) == ("missed", sh(2026, 10, 12, 9))
    assert full.events[-1].findings and full.events[-1].findings[0].startswith("时间与平台记录不符（第五条）")
    assert "时间与平台记录不符" in render_text(full)
    # One layout in two languages: line for line, the 中文 text says what the English one says.
    for shown in (r, full):
        en, zh = render_text(shown).splitlines(), render_text(shown, "zh").splitlines()
        assert len(en) == len(zh) and [bool(line) for line in en] == [bool(line) for line in zh]
        assert "截至北京时间" in render_text(r, "zh") and "按账本收到时间；其后 1 条未列出" in render_text(r, "zh")


# -- time limits in working days -------------------------------------------------------------------------------


@pytest.mark.parametrize(("answer", "at", "reply", "decline"), [
    # 10-01..10-07 are National Day holidays, 10-10 a make-up working Saturday: reply by 10-10, decline by 10-09.
    ("reply", sh(2026, 10, 10, 16), ("met", 3, 0), ("not-applicable", 0, 0)),
    ("reply", sh(2026, 10, 12, 9), ("missed", 4, 1), ("not-applicable", 0, 0)),
    ("decline", sh(2026, 10, 9, 11), ("not-applicable", 0, 0), ("met", 2, 0)),
    ("decline", sh(2026, 10, 10, 11), ("not-applicable", 0, 0), ("missed", 3, 1)),
])
def test_time_limits_are_met_or_missed_in_working_days_across_national_day_2026(
        desk: Desk, signers: dict[str, Signer], answer: str, at: datetime,
        reply: tuple[str, int, int], decline: tuple[str, int, int]) -> None:
    req = Req(desk, ARRIVAL - timedelta(minutes=5))
    req.received(ARRIVAL)
    if answer == "reply":
        req.reply(at)
    else:
        req.decline(at)
    r = replay(desk.ledger, req.case, ring_of(signers), CAL)
    got = {d.kind: d for d in r.deadlines}
    assert (got["reply"].last_day, got["decline"].last_day) == (date(2026, 10, 10), date(2026, 10, 9))
    assert got["reply"].ends_at == sh(2026, 10, 11) and not got["reply"].provisional
    assert (got["reply"].state, got["reply"].working_days_used, got["reply"].working_days_late) == reply
    assert (got["decline"].state, got["decline"].working_days_used, got["decline"].working_days_late) == decline
    answered = [d for d in r.deadlines if d.state in ("met", "missed")]
    # The answer counts when the ledger stored it (Desk: two seconds after it was signed), decision 28.
    assert [d.answered_pos for d in answered] == [3] and answered[0].answered_at == at + timedelta(seconds=2)


def test_a_request_allowing_more_than_3_and_2_days_is_replayed_and_printed_with_the_plans(
        desk: Desk, signers: dict[str, Signer]) -> None:
    """三(二): 3个工作日 and 2个工作日 are the plan's — a request signed with 30 and 10 (an old build, a hostile
    one) is judged in replay by 3 and 2, flagged, and its letter from the ledger asks for 3."""
    from projections.documents.case_letters import letters_for
    from projections.documents.letters import render
    from projections.history import LONGER_LIMIT

    req = Req(desk, ARRIVAL - timedelta(minutes=5), reply_within=30, decline_within=10)
    req.received(ARRIVAL)
    req.reply(sh(2026, 10, 12, 9))  # after 10-10, the third working day; long before a 30th
    r = replay(desk.ledger, req.case, ring_of(signers), CAL)
    got = {d.kind: d for d in r.deadlines}
    assert (got["reply"].working_days, got["decline"].working_days) == (3, 2)
    assert (got["reply"].last_day, got["reply"].state, got["reply"].working_days_late) == (date(2026, 10, 10),
                                                                                            "missed", 1)
    assert [f for f in r.events[0].findings if f.startswith(LONGER_LIMIT)]
    names = {"shenpi": "区审批服务局", "gongan": "区公安分局"}
    [letter, _] = letters_for(history.history(desk.ledger, req.case), names.__getitem__)
    assert "并在3个工作日内给予书面回复" in render(letter) and "30个工作日" not in render(letter)


def test_a_request_under_an_item_it_could_not_be_asked_under_is_flagged_in_replay_given_the_catalogue(
        desk: Desk, signers: dict[str, Signer], tmp_path: Path) -> None:
    """第七条: 未纳入行政协助目录的事项不得请求行政协助 — the ledger keeps the request; its replay says so."""
    from aggregates.clock import SimulatedClock
    from aggregates.store.catalogue import CatalogueRegistry
    from projections.history import NOT_CATALOGUED
    from tests.test_catalogue import item, through

    catalogue = CatalogueRegistry(None, SimulatedClock(ARRIVAL))
    through(catalogue, "assistance", "shenpi", adds=[item(handling="shenpi")])  # 区司法局 holds a published list
    req = Req(desk, ARRIVAL - timedelta(minutes=5))  # names no catalogued item
    req.received(ARRIVAL)
    flagged = replay(desk.ledger, req.case, ring_of(signers), CAL, catalogue=catalogue)
    assert [f for f in flagged.events[0].findings if f.startswith(NOT_CATALOGUED)] == [
        f"{NOT_CATALOGUED}: rule.catalogue.not-catalogued: 第七条: the request names no item of the 行政协助目录; "
        "未纳入行政协助目录的事项不得请求行政协助"]
    assert NOT_CATALOGUED in render_text(flagged)
    assert not [f for e in replay(desk.ledger, req.case, ring_of(signers), CAL).events for f in e.findings
                if f.startswith(NOT_CATALOGUED)]
    # the evidence bundle's report says it too (`xiezhu replay --bundle` and the console pass the catalogue)
    checkpoint(desk, ARRIVAL + timedelta(hours=1))
    made = make_bundle(desk, req, tmp_path / "20260001.zip", catalogue=catalogue)
    with zipfile.ZipFile(made) as z:
        assert NOT_CATALOGUED in z.read("report.txt").decode()
    assert verify_bundle(made).ok
    catalogue.close()


def test_an_open_request_is_judged_at_as_of_and_holidays_do_not_count(desk: Desk, signers: dict[str, Signer]) -> None:
    req = Req(desk, ARRIVAL - timedelta(minutes=5))
    req.received(ARRIVAL)
    ring = ring_of(signers)
    in_holiday = {d.kind: d for d in replay(desk.ledger, req.case, ring, CAL, as_of=sh(2026, 10, 7, 18)).deadlines}
    assert (in_holiday["reply"].state, in_holiday["reply"].working_days_used) == ("open", 0)
    assert in_holiday["decline"].state == "open"
    after = {d.kind: d for d in replay(desk.ledger, req.case, ring, CAL, as_of=sh(2026, 10, 12, 9)).deadlines}
    assert (after["reply"].state, after["reply"].working_days_late) == ("missed", 1)
    assert after["decline"].state == "elapsed"  # too late for a written decline, and not itself a breach


def test_an_unknown_years_holidays_make_the_limits_provisional(desk: Desk, signers: dict[str, Signer]) -> None:
    req = Req(desk, sh(2099, 3, 2, 9), number="20990001")
    req.received(sh(2099, 3, 2, 10))
    r = replay(desk.ledger, req.case, ring_of(signers), CAL, as_of=sh(2099, 3, 3, 10))
    assert all(d.provisional for d in r.deadlines)
    assert "(provisional calendar)" in render_text(r)


def test_a_request_never_acknowledged_runs_its_time_limits_from_the_ledgers_record(
        desk: Desk, signers: dict[str, Signer]) -> None:
    """第五条: 信息推送行为结束即视为对方接收到信息 — the assistor's receipt is not what starts the clock."""
    req = Req(desk, ARRIVAL)
    r = replay(desk.ledger, req.case, ring_of(signers), CAL, now=sh(2026, 12, 1))
    assert r.status == "requested" and not r.notes
    got = {d.kind: d for d in r.deadlines}
    assert got["reply"].starts == ARRIVAL + timedelta(seconds=2)  # the ledger's arrival of the request
    assert (got["reply"].last_day, got["reply"].state) == (date(2026, 10, 10), "missed")


# -- signatures at their time ----------------------------------------------------------------------------------


def test_a_signature_made_after_its_keys_revocation_fails_while_earlier_ones_verify(
        desk: Desk, signers: dict[str, Signer]) -> None:
    req = Req(desk, ARRIVAL - timedelta(minutes=5))
    req.received(ARRIVAL)
    req.reply(sh(2026, 10, 9, 15))
    ring = ring_of(signers, gongan=sh(2026, 10, 8, 9))  # gongan's key leaked on 10-08
    r = replay(desk.ledger, req.case, ring, CAL, now=sh(2026, 10, 12, 9))
    assert [e.signature.status for e in r.events] == ["valid", "valid", "key-not-valid"]
    assert "revoked" in r.events[2].signature.reason and "key leaked" in r.events[2].signature.reason
    # An event whose signature does not hold is listed but changes nothing: the request is still unanswered.
    assert (r.events[2].before, r.events[2].after, r.status) == ("received", "received", "received")
    assert r.events[2].findings == ["not applied: the signature does not hold (key-not-valid)"]
    assert r.deadlines[0].state == "missed"
    assert "key-not-valid" in render_text(r)


def test_a_signature_made_before_revocation_but_received_after_it_holds_with_a_note(
        desk: Desk, signers: dict[str, Signer]) -> None:
    req = Req(desk, ARRIVAL - timedelta(minutes=5))
    req.received(ARRIVAL)
    req.reply(sh(2026, 10, 9, 15), arrives=sh(2026, 10, 9, 18))
    r = replay(desk.ledger, req.case, ring_of(signers, gongan=sh(2026, 10, 9, 16)), CAL)
    reply = r.events[2]
    assert reply.signature.status == "valid" and r.status == "replied"
    assert "before the ledger received this" in reply.signature.note


def test_a_key_outside_the_trust_list_is_reported_as_unknown(desk: Desk, signers: dict[str, Signer]) -> None:
    req = Req(desk, ARRIVAL)
    ring = KeyRing([entry(signers["gongan"])])
    r = replay(desk.ledger, req.case, ring, CAL)
    assert r.events[0].signature.status == "unknown-key" and r.status is None


# -- linked cases ----------------------------------------------------------------------------------------------


def commitment(desk: Desk, when: datetime, number: str = "C20260001") -> str:
    """A commitment case of shenpi up to its verification plan (items verified through assistance)."""
    case = new_id()
    steps: list[Payload] = [
        application("可选择"), NoticeIssued(), RouteChosen(route="commitment"),
        CommitmentSigned(signed_on=date(2026, 9, 30)), Approved(decision_no="台审批许〔2026〕4号"),
        VerificationPlanned(items=[PlannedItem(no=1, method="assistance", due_on=date(2026, 10, 12)),
                                   PlannedItem(no=2, method="assistance", due_on=date(2026, 10, 12))]),
    ]
    for step in steps:
        desk.add("shenpi", LEDGER, case, number, when, step)
        when += timedelta(minutes=1)
    return case


def test_a_commitment_case_and_its_requests_list_each_other(desk: Desk, signers: dict[str, Signer]) -> None:
    cc = commitment(desk, ARRIVAL - timedelta(hours=1))
    answered = Req(desk, ARRIVAL - timedelta(minutes=5), commitment_case=cc)
    answered.received(ARRIVAL)
    answered.reply(sh(2026, 10, 9, 15))
    for no, verdict in ((1, "true"), (2, "false")):
        desk.add("shenpi", LEDGER, cc, "C20260001", sh(2026, 10, 9, 16), ItemVerified(
            no=no, verdict=verdict, source="assistance:shenpi/20260001"))  # type: ignore[arg-type]
    unanswered = Req(desk, sh(2026, 10, 9, 17), number="20260002", commitment_case=cc)
    ring = ring_of(signers)

    r = replay(desk.ledger, cc, ring, CAL)
    assert r.kind == "commitment" and r.number == "C20260001"
    assert [(link.number, link.status) for link in r.linked] == [("20260001", "replied")]
    assert r.linked[0].via.startswith("cited by item 1's verification")
    assert r.linked[0].deadlines[0].state == "met"
    assert any("--all-links" in n for n in r.notes)

    scanned = replay(desk.ledger, cc, ring, CAL, scan_links=True)
    assert [(link.number, link.status) for link in scanned.linked] == [("20260001", "replied"),
                                                                      ("20260002", "requested")]
    back = replay(desk.ledger, unanswered.case, ring, CAL)
    assert [(link.kind, link.number, link.via) for link in back.linked] == [
        ("commitment", "C20260001", "named by the assistance.requested (commitment_case)")]
    assert "for commitment case C20260001" in back.events[0].summary


def test_replaying_one_case_of_a_large_ledger_reads_only_that_case_by_index(
        desk: Desk, signers: dict[str, Signer], monkeypatch: pytest.MonkeyPatch) -> None:
    if is_postgres(desk.ledger.location):
        pytest.skip("the query plans checked are SQLite's (EXPLAIN QUERY PLAN); PostgreSQL has the same indexes")
    noise(desk, 1500, ARRIVAL - timedelta(hours=2))
    cc = commitment(desk, ARRIVAL - timedelta(hours=1))
    req = Req(desk, ARRIVAL - timedelta(minutes=5), commitment_case=cc)
    noise(desk, 1500, ARRIVAL)
    req.received(ARRIVAL)
    req.reply(sh(2026, 10, 9, 15))
    desk.add("shenpi", LEDGER, cc, "C20260001", sh(2026, 10, 9, 16),
             ItemVerified(no=1, verdict="true", source="assistance:shenpi/20260001"))
    assert len(desk.ledger) == 3010

    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("a replay must not read the whole ledger")

    monkeypatch.setattr(Ledger, "entries", refuse)
    monkeypatch.setattr(history, "find_assistance_for", refuse)
    monkeypatch.setattr("projections.replay.find_assistance_for", refuse)
    statements: list[str] = []
    desk.ledger._db.sqlite.set_trace_callback(statements.append)  # the Ledger's own connection: every query it runs
    try:
        assistance = replay(desk.ledger, req.case, ring_of(signers), CAL)
        committed = replay(desk.ledger, cc, ring_of(signers), CAL)
    finally:
        desk.ledger._db.sqlite.set_trace_callback(None)
    assert assistance.status == "replied" and [link.status for link in assistance.linked] == ["approved"]
    assert [link.number for link in committed.linked] == ["20260001"]
    selects = [s for s in statements if s.lstrip().upper().startswith("SELECT")]
    assert selects
    probe = sqlite3.connect(desk.ledger.path)
    try:
        for sql in selects:
            plan = " / ".join(str(row[-1]) for row in probe.execute("EXPLAIN QUERY PLAN " + sql))
            assert "USING INDEX" in plan and "SCAN" not in plan, (sql, plan)
    finally:
        probe.close()


# -- evidence bundles ------------------------------------------------------------------------------------------


@pytest.fixture
def checkpointed(desk: Desk) -> Req:
    """A replied case among other entries, with a breach notice by sifa, covered by a signed checkpoint."""
    noise(desk, 5, ARRIVAL - timedelta(hours=2))
    req = Req(desk, ARRIVAL - timedelta(minutes=5))
    noise(desk, 3, ARRIVAL - timedelta(minutes=2))
    req.received(ARRIVAL)
    noise(desk, 4, ARRIVAL + timedelta(hours=1))
    req.breach_notice(sh(2026, 10, 11, 0, 5), sh(2026, 10, 11))
    req.reply(sh(2026, 10, 12, 9))
    noise(desk, 2, sh(2026, 10, 12, 10))
    checkpoint(desk, sh(2026, 10, 12, 11))
    return req


def make_bundle(desk: Desk, req: Req, path: Path, *, signed: bool = True, **kw: object) -> Path:
    write_bundle(desk.ledger, req.case, trust_of(desk.signers), path, calendar=CAL,
                 signer=desk.signers["sifa"] if signed else None, created_at=sh(2026, 10, 12, 12), **kw)  # type: ignore[arg-type]
    return path


def test_a_bundle_verifies_offline_without_the_ledger(desk: Desk, checkpointed: Req, tmp_path: Path) -> None:
    made = make_bundle(desk, checkpointed, tmp_path / "out" / "20260001.zip")
    elsewhere = tmp_path / "court" / "20260001.zip"
    elsewhere.parent.mkdir()
    shutil.copy(made, elsewhere)
    desk.ledger.close()
    if is_postgres(desk.ledger.location):
        with closing(Sql(desk.ledger.location)) as db:
            db.execute("DROP TABLE entries, checkpoints")
    else:
        shutil.rmtree(tmp_path / "ledger")
    shutil.rmtree(tmp_path / "out")

    report = verify_bundle(elsewhere)
    assert report.ok, report.failures
    assert (report.case, report.number, report.kind) == (checkpointed.case, "20260001", "assistance")
    assert [e.type for e in report.events] == ["assistance.requested", "assistance.received", "sla.breached",
                                               "sla.breached", "assistance.replied"]
    assert {e.signature.status for e in report.events} == {"valid"}
    assert report.checkpoint_pos == 19 and report.sealed_by == "sifa-k1" and report.attested_by == "sifa-k1"
    assert report.warnings == []
    with zipfile.ZipFile(elsewhere) as z:
        assert sorted(z.namelist()) == ["events.jsonl", "keys.json", "manifest.json", "proof.json", "report.txt",
                                        "signature.json"]
        proof = json.loads(z.read("proof.json"))
        assert (proof["first_pos"], len(proof["leaves"])) == (6, 14)  # pos 6..19, other cases as opaque leaves
        assert {k["kid"] for k in json.loads(z.read("keys.json"))} == {"shenpi-k1", "gongan-k1", "sifa-k1"}
        text = z.read("report.txt").decode()
        zh, _, en = text.partition(" English ")  # 中文 for 区司法局's reviewer first, then the English
        assert zh.startswith("行政协助案件 20260001") and "区审批服务局" in zh and "逾期" in zh and "shenpi →" not in zh
        assert "missed" in en and "shenpi →" in en
        manifest = json.loads(z.read("manifest.json"))
        assert manifest["positions"] == [6, 10, 15, 16, 17] and manifest["number"] == "20260001"
        assert manifest["files"]["events.jsonl"] == hashlib.sha256(z.read("events.jsonl")).hexdigest()


def test_a_bundle_as_of_a_moment_holds_only_what_the_ledger_had_then(desk: Desk, checkpointed: Req,
                                                                      tmp_path: Path) -> None:
    path = make_bundle(desk, checkpointed, tmp_path / "b.zip", as_of=sh(2026, 10, 9))
    report = verify_bundle(path)
    assert report.ok and [e.type for e in report.events] == ["assistance.requested", "assistance.received"]
    with zipfile.ZipFile(path) as z:
        assert "as it stood at 2026-10-09 00:00:00" in z.read("report.txt").decode()


def test_a_bundle_needs_a_checkpoint_that_covers_the_case(desk: Desk, checkpointed: Req, tmp_path: Path) -> None:
    checkpointed.reply(sh(2026, 10, 13, 9))  # answered again after the checkpoint: its last entry is not covered
    with pytest.raises(NoCheckpoint, match=r"xiezhu checkpoint.*Ledger\.checkpoint"):
        make_bundle(desk, checkpointed, tmp_path / "b.zip")
    assert not (tmp_path / "b.zip").exists()
    checkpoint(desk, sh(2026, 10, 13, 10))
    assert verify_bundle(make_bundle(desk, checkpointed, tmp_path / "b.zip")).ok


def rewrite(path: Path, name: str, change: Callable[[bytes], bytes], *, fix_manifest: bool) -> None:
    """Change one member; with ``fix_manifest`` also its digest in the manifest, as a careful forger would."""
    with zipfile.ZipFile(path) as z:
        files = {n: z.read(n) for n in z.namelist()}
    files[name] = change(files[name])
    if fix_manifest:
        manifest = json.loads(files[MANIFEST])
        for member in manifest["files"]:
            manifest["files"][member] = hashlib.sha256(files[member]).hexdigest()
        if name == "events.jsonl":
            manifest["positions"] = [json.loads(line)["pos"] for line in files[name].splitlines()]
        files[MANIFEST] = json.dumps(manifest).encode()
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        for n, data in files.items():
            z.writestr(n, data)
    path.write_bytes(buf.getvalue())


def edit_line(i: int, change: Callable[[dict[str, object]], None]) -> Callable[[bytes], bytes]:
    def go(data: bytes) -> bytes:
        lines = data.splitlines()
        obj = json.loads(lines[i])
        change(obj)
        lines[i] = json.dumps(obj).encode()
        return b"\n".join(lines) + b"\n"
    return go


def flip_body_byte(obj: dict[str, object]) -> None:
    import base64
    body = bytearray(base64.b64decode(str(obj["body"])))
    body[body.index(b'"number":"') + 12] ^= 0x01  # a digit of the letter number: still valid JSON
    obj["body"] = base64.b64encode(bytes(body)).decode()


def edit_proof(change: Callable[[dict[str, object]], None]) -> Callable[[bytes], bytes]:
    def go(data: bytes) -> bytes:
        obj = json.loads(data)
        change(obj)
        return json.dumps(obj).encode()
    return go


def _other_leaf(proof: dict[str, object]) -> None:
    leaves = proof["leaves"]
    assert isinstance(leaves, list)
    leaves[1] = "00" * 32  # pos 7: another case's entry


def _case_leaf(proof: dict[str, object]) -> None:
    leaves = proof["leaves"]
    assert isinstance(leaves, list)
    leaves[0] = hashlib.sha256(b"forged").hexdigest()  # pos 6: the request


def _head(proof: dict[str, object]) -> None:
    cp = proof["checkpoint"]
    assert isinstance(cp, dict)
    cp["head"] = hashlib.sha256(b"another head").hexdigest()


def _sealed_at(proof: dict[str, object]) -> None:
    cp = proof["checkpoint"]
    assert isinstance(cp, dict)
    cp["sealed_at"] = "2026-10-01T00:00:00+08:00"


@pytest.mark.parametrize(("member", "change", "fix", "expected"), [
    ("events.jsonl", edit_line(4, flip_body_byte), False, "events.jsonl does not match the SHA-256"),
    ("events.jsonl", edit_line(4, flip_body_byte), True, "event at position 17: bad-signature"),
    ("events.jsonl", edit_line(4, flip_body_byte), True, "event at position 17: its bytes"),
    ("events.jsonl", edit_line(1, lambda e: e.update(arrived_at="2026-09-30T02:00:01+00:00")), True,
     "event at position 10: its bytes, key id, signature or arrival time do not match the ledger's leaf"),
    ("proof.json", edit_proof(_other_leaf), True, "does not reach the head of checkpoint 19"),
    ("proof.json", edit_proof(_case_leaf), True, "event at position 6: its bytes"),
    ("events.jsonl", lambda d: b"\n".join(d.splitlines()[:2] + d.splitlines()[3:]) + b"\n", False,
     "holds positions 6, 10, 16, 17 but the manifest lists 6, 10, 15, 16, 17"),
    ("events.jsonl", lambda d: b"\n".join(d.splitlines()[:2] + d.splitlines()[3:]) + b"\n", True,
     "the manifest's signature: the signature by key sifa-k1 does not verify"),
    ("events.jsonl", lambda d: b"\n".join(d.splitlines()[1:]) + b"\n", True,
     "the proof starts at position 6 but the first event is at 10"),
    ("proof.json", edit_proof(_head), True, "does not reach the head of checkpoint 19"),
    ("proof.json", edit_proof(_head), True, "checkpoint 19: the signature by key sifa-k1 does not verify"),
    ("proof.json", edit_proof(_sealed_at), True, "checkpoint 19: the signature by key sifa-k1 does not verify"),
    ("report.txt", lambda d: d.replace(b"missed", b"met"), False, "report.txt does not match the SHA-256"),
], ids=["body-byte", "body-byte-forged-manifest-signature", "body-byte-forged-manifest-leaf", "arrival-time",
        "other-leaf", "case-leaf", "removed-event", "removed-event-forged-manifest", "removed-first-event",
        "checkpoint-head-chain", "checkpoint-head-signature", "checkpoint-time", "report"])
def test_each_tampering_of_a_bundle_fails_with_a_clear_reason(
        desk: Desk, checkpointed: Req, tmp_path: Path, member: str, change: Callable[[bytes], bytes], fix: bool,
        expected: str) -> None:
    path = make_bundle(desk, checkpointed, tmp_path / "b.zip")
    assert verify_bundle(path).ok
    rewrite(path, member, change, fix_manifest=fix)
    report = verify_bundle(path)
    assert not report.ok and report.reason == report.failures[0]
    assert any(expected in f for f in report.failures), report.failures


def test_an_unsigned_bundle_says_it_cannot_show_that_no_event_was_left_out(
        desk: Desk, checkpointed: Req, tmp_path: Path) -> None:
    path = make_bundle(desk, checkpointed, tmp_path / "b.zip", signed=False)
    assert verify_bundle(path).warnings[0].startswith("the manifest is not signed by sifa")
    rewrite(path, "events.jsonl", lambda d: b"\n".join(d.splitlines()[:2] + d.splitlines()[3:]) + b"\n",
            fix_manifest=True)
    report = verify_bundle(path)  # a careful forger's removal of a middle event passes the chain …
    assert report.ok and report.attested_by == ""
    assert "not that none of the case's events was left out" in report.warnings[0]  # … and the report says so


def test_a_bundle_is_checked_against_a_published_trust_list_when_given(
        desk: Desk, checkpointed: Req, tmp_path: Path, signers: dict[str, Signer]) -> None:
    path = make_bundle(desk, checkpointed, tmp_path / "b.zip")
    revoked_later = trust_of(signers, gongan=sh(2026, 10, 10))
    report = verify_bundle(path, trusted=revoked_later)
    assert report.ok  # a later revocation is not tampering …
    assert report.events[-1].signature.status == "key-not-valid"  # … but the reply was signed after it
    assert any("position 17" in w and "revoked" in w for w in report.warnings)
    impostor = [entry(make_signer("gongan")) if e.kid == "gongan-k1" else e for e in trust_of(signers)]
    assert "key gongan-k1 of the bundle differs from the trust list's" in verify_bundle(path, trusted=impostor).failures


def test_a_file_that_is_not_a_bundle_fails_without_a_traceback(tmp_path: Path) -> None:
    junk = tmp_path / "junk.zip"
    junk.write_bytes(b"not a zip at all")
    report = verify_bundle(junk)
    assert not report.ok and report.reason.startswith("not a readable bundle (ZIP)")


# -- the command line ------------------------------------------------------------------------------------------


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    """A data directory with real keys (sifa's included), a trust list and a checkpointed ledger of one replied case."""
    d = tmp_path / "xiezhu"
    settings = Settings(data_dir=d)
    keys = KeyStore(settings.keys_dir)
    keys.ensure(["shenpi", "gongan", "sifa"], valid_from=sh(2020, 1, 1))  # before any machine clock
    ledger = Ledger(settings.ledger_path)
    ring = keys.ring()
    desk = Desk(ledger, {code: keys.signer(code) for code in ("shenpi", "gongan", "sifa")},
                sign=lambda env: keys.bureau_signer(env.sender, ring).sign(env))
    req = Req(desk, ARRIVAL - timedelta(minutes=5))
    req.received(ARRIVAL)
    req.reply(sh(2026, 10, 9, 15))
    checkpoint(desk, sh(2026, 10, 9, 16))
    ledger.close()
    return d


def test_the_replay_and_verify_bundle_commands_work_end_to_end(data_dir: Path, tmp_path: Path) -> None:
    env = {"XIEZHU_DATA_DIR": str(data_dir), "COLUMNS": "80"}
    text = invoke(ledger_app, ["replay", "20260001", "--as-of", "2026-10-09T12:00"], env=env)
    assert text.exit_code == 0, text.output
    assert text.stdout.startswith("行政协助案件 20260001（") and "状态：已收到" in text.stdout
    assert "答复 3 个工作日" in text.stdout and "区审批服务局 → 区公安分局" in text.stdout
    assert "按账本收到时间" in text.stdout and "；办理中，已用 2 个工作日" in text.stdout
    assert "…" not in text.stdout and "status:" not in text.stdout and "shenpi → " not in text.stdout
    text = invoke(ledger_app, ["replay", "20260001", "--as-of", "2026-10-09T12:00"], env=env | {"XIEZHU_LANG": "en"})
    assert "status: received" in text.stdout and "reply   3 working days" in text.stdout

    bundle = tmp_path / "20260001.zip"
    as_json = invoke(ledger_app, ["replay", "20260001", "--from", "shenpi", "--json", "--bundle", str(bundle)],
                            env=env)
    assert as_json.exit_code == 0, as_json.output
    r = msgspec.json.decode(as_json.stdout, type=Replay)
    assert r.status == "replied" and r.deadlines[0].state == "met"
    assert "由 sifa-" in as_json.stderr

    trust = ["--trust", str(data_dir / "keys" / "trust.json")]
    ok = invoke(ledger_app, ["verify-bundle", str(bundle), *trust])
    assert ok.exit_code == 0, ok.output
    assert ok.stdout.startswith(f"证据包 {bundle}：核验通过") and "证据包清单由 sifa-" in ok.stdout
    assert "行政协助案件 20260001" in ok.stdout and "区审批服务局 → " in ok.stdout and "签名有效" in ok.stdout
    assert "manifest" not in ok.stdout and "shenpi →" not in ok.stdout and "…" not in ok.stdout
    english = invoke(ledger_app, ["verify-bundle", str(bundle), *trust], env={"XIEZHU_LANG": "en"})
    assert "OK" in english.stdout and "manifest attested by sifa-" in english.stdout and "shenpi →" in english.stdout

    rewrite(bundle, "proof.json", edit_proof(_head), fix_manifest=True)
    bad = invoke(ledger_app, ["verify-bundle", str(bundle), "--json"])
    assert bad.exit_code == 1
    assert json.loads(bad.stdout)["ok"] is False
    assert bad.stderr.startswith("错误：证据包 ") and len(bad.stderr.strip().splitlines()) == 1
    failed = json.loads(bad.stdout)
    assert len(failed["failures_zh"]) == len(failed["failures"]) and failed["reason_zh"] == failed["failures_zh"][0]
    assert failed["reason_zh"] in bad.stderr and "不能到达检查点" in " ".join(failed["failures_zh"])
    assert "未通过：" in invoke(ledger_app, ["verify-bundle", str(bundle)]).stdout
    bad = invoke(ledger_app, ["verify-bundle", str(bundle)], env={"XIEZHU_LANG": "en"})
    assert bad.exit_code == 1 and bad.stderr.startswith("error: bundle ") and "failed verification" in bad.stderr


def test_replay_of_an_unknown_number_is_one_clear_error(data_dir: Path) -> None:
    result = invoke(ledger_app, ["replay", "20269999"], env={"XIEZHU_DATA_DIR": str(data_dir)})
    assert isinstance(result.exception, history.UnknownCase)
    assert str(result.exception) == "no case numbered 20269999 in the ledger"



def test_reveal_shows_the_applicant_in_full_only_with_a_reason_and_on_the_record(data_dir: Path) -> None:
    from agencies.disclosure import AccessLog, DisclosureRefused
    from xiezhu.cli import app

    env = {"XIEZHU_DATA_DIR": str(data_dir), "COLUMNS": "200"}
    masked = invoke(ledger_app, ["replay", "20260001"], env=env)
    assert masked.exit_code == 0, masked.output
    assert APPLICANT.id_number not in masked.stdout and APPLICANT.name not in masked.stdout
    refused = invoke(ledger_app, ["replay", "20260001", "--reveal"], env=env)
    assert isinstance(refused.exception, DisclosureRefused) and "--reason" in str(refused.exception)
    assert APPLICANT.id_number not in refused.stdout
    assert list(AccessLog(data_dir).entries()) == []

    shown = invoke(ledger_app, ["replay", "20260001", "--reveal", "--reason", "复核核查结果",
                                       "--operator", "王审查"], env=env)
    assert shown.exit_code == 0, shown.output
    assert f"{APPLICANT.name} (person) {APPLICANT.id_number}" in shown.stdout
    assert all(f"{i.no}. {i.text}" in shown.stdout for i in ITEMS)
    history_json = invoke(app, ["history", "20260001", "--json", "--reveal", "--reason", "第九条复核"], env=env)
    assert history_json.exit_code == 0, history_json.output
    assert json.loads(history_json.stdout)["revealed"]["id_number"] == APPLICANT.id_number
    [first, second] = AccessLog(data_dir).entries()
    assert (first.operator, first.command, first.subject, first.reason) == ("王审查", "replay", "shenpi/20260001",
                                                                           "复核核查结果")
    assert second.command == "history" and first.entitled_by.startswith("sifa")
    assert (data_dir / "access-log.jsonl").stat().st_mode & 0o777 == 0o600
    listed = invoke(app, ["access-log", "--json"], env=env)
    assert [e["reason"] for e in json.loads(listed.stdout)] == ["复核核查结果", "第九条复核"]
    # Each disclosure also waits in 区司法局's outbox for the ledger: a notice about the case, sealed.
    from xiezhu.bootstrap import open_store

    keys = KeyStore(data_dir / "keys")
    store = open_store(Settings(data_dir=data_dir), keys, "sifa", SystemClock())
    sent = [keys.opener("sifa").open(signed.body) for _, signed in store.outgoing_since(0, 100)]
    assert [(e.type, e.recipient, e.number) for e in sent] == [("access.disclosed", "ledger", "20260001")] * 2
    assert [(e.payload.operator, e.payload.command) for e in sent][0] == ("王审查", "replay")  # type: ignore[union-attr]


def test_without_justices_box_key_a_machine_audits_the_ledger_but_cannot_read_or_reveal_it(data_dir: Path) -> None:
    from xiezhu.cli import app

    for path in (data_dir / "keys" / "box").glob("sifa-*.x25519"):
        path.unlink()
    env = {"XIEZHU_DATA_DIR": str(data_dir), "COLUMNS": "200"}
    audited = invoke(app, ["audit", "--json"], env=env)
    assert audited.exit_code == 0, audited.output
    replayed = invoke(app, ["replay", "20260001"], env=env)
    assert isinstance(replayed.exception, NoLedgerKey) and "box key" in str(replayed.exception)
    revealed = invoke(app, ["history", "20260001", "--reveal", "--reason", "想看看"], env=env)
    assert isinstance(revealed.exception, NoLedgerKey) and APPLICANT.id_number not in revealed.stdout
    assert not (data_dir / "access-log.jsonl").exists()
