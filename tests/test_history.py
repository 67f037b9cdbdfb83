"""Case histories from the 司法局 ledger alone (第九条/第十条), and the letters rebuilt from them."""
from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta

import pytest

from aggregates.assistance import CaseState
from aggregates.commitment import CommitmentState
from broker.ledger.store import Ledger
from broker.signing import Signer
from projections.documents.case_letters import letters_for
from projections.documents.letters import render
from projections.history import (
    BEYOND,
    BEYOND_COMMITMENT,
    BREACHED,
    CONSEQUENCE_OUTSTANDING,
    TIME_CLAIM,
    UNSUPPORTED,
    UnknownCase,
    find_assistance_for,
    find_cases,
    history,
)
from schemas.assistance import (
    AssistanceDeclined,
    AssistanceForwarded,
    AssistanceReceived,
    AssistanceReplied,
    AssistanceRequested,
    CommitmentItem,
    ItemResult,
    Matter,
)
from schemas.commitment import (
    ApplicationReceived,
    Approved,
    CommitmentSigned,
    CreditRecorded,
    DecisionRevoked,
    FalseCommitmentFound,
    ItemVerified,
    NoticeIssued,
    PlannedItem,
    RouteChosen,
    VerificationPlanned,
)
from schemas.envelope import LEDGER, Envelope, Signed, new_id
from schemas.events import Payload
from schemas.letters import ApplicantCommitment, AssistanceLetter, CommitmentNotice, DeclineLetter, ReplyLetter
from schemas.sla import DeadlineBreached
from tests.conftest import StoreLocations
from tests.test_signing import make_signer
from tests.test_store import APPLICANT

T0 = datetime(2026, 9, 21, 1, tzinfo=UTC)  # Monday 09:00 in Shanghai
ITEMS = [CommitmentItem(no=1, text="本人户籍所在地为运河街道", check="hukou.residence", facts={"address": "运河街道"}),
         CommitmentItem(no=2, text="本人无犯罪记录", check="police.no-criminal-record")]
NAMES = {"shenpi": "区审批服务局", "gongan": "区公安分局"}
SIGNERS: dict[str, Signer] = {code: make_signer(code) for code in (*NAMES, "sifa")}


class Recorder:
    """Signs envelopes as their senders and appends them to a real ledger, as the ledger service would."""

    def __init__(self, ledger: Ledger) -> None:
        self.ledger = ledger
        self.seq = 0

    def add(self, sender: str, recipient: str, case: str, number: str, when: datetime,
            payload: Payload) -> tuple[Envelope, Signed]:
        env = Envelope(id=new_id(), sender=sender, recipient=recipient, case=case, number=number, time=when,
                       payload=payload)
        signed = SIGNERS[sender].sign(env)
        self.seq += 1
        self.ledger.append([(signed, env, self.seq, when + timedelta(seconds=2))])
        return env, signed


class Request:
    """One assistance case shenpi → gongan, step by step."""

    def __init__(self, rec: Recorder, *, items: list[CommitmentItem] = ITEMS, number: str = "20260001",
                 when: datetime = T0, commitment_case: str = "", channel: str = "platform",
                 staff: list[str] | None = None) -> None:
        self.rec, self.case, self.number = rec, new_id(), number
        self.env, signed = rec.add("shenpi", "gongan", self.case, number, when, AssistanceRequested(
            requester="shenpi", assistor="gongan", applicant=APPLICANT, matter=Matter(code="X1", name="食品经营许可"),
            applied_on=date(2026, 9, 21), items=items, channel=channel, staff=staff or [],  # type: ignore[arg-type]
            commitment_case=commitment_case))
        self.hash = signed.digest

    def received(self, when: datetime) -> None:
        self.rec.add("gongan", "shenpi", self.case, self.number, when,
                     AssistanceReceived(request_id=self.env.id, request_hash=self.hash, arrived_at=when))

    def forwarded(self, when: datetime, institution: str) -> None:
        self.rec.add("gongan", "shenpi", self.case, self.number, when,
                     AssistanceForwarded(request_id=self.env.id, request_hash=self.hash, institution=institution))

    def reply(self, when: datetime, *results: ItemResult, on_behalf_of: str = "") -> None:
        channel = self.env.payload.channel  # type: ignore[union-attr]
        self.rec.add("gongan", "shenpi", self.case, self.number, when, AssistanceReplied(
            request_id=self.env.id, request_hash=self.hash, channel=channel, results=list(results),
            answered_by="operator:李四", on_behalf_of=on_behalf_of))

    def decline(self, when: datetime, reasons: str) -> None:
        channel = self.env.payload.channel  # type: ignore[union-attr]
        self.rec.add("gongan", "shenpi", self.case, self.number, when, AssistanceDeclined(
            request_id=self.env.id, request_hash=self.hash, channel=channel, reasons=reasons,
            answered_by="operator:李四"))


def true(no: int, reason: str = "") -> ItemResult:
    return ItemResult(no=no, verdict="true", reason=reason)


def false(no: int) -> ItemResult:
    return ItemResult(no=no, verdict="false")


@pytest.fixture
def rec(store_location: StoreLocations) -> Iterator[Recorder]:
    """A ledger to record into: a SQLite file, and (marked ``postgres``) a PostgreSQL schema."""
    ledger = Ledger(store_location("ledger"))
    yield Recorder(ledger)
    ledger.close()


def application(mode: str) -> ApplicationReceived:
    return ApplicationReceived(applicant=APPLICANT, matter_code="370405-XK-0101", matter_name="食品经营许可",
                               certificate_name="无犯罪记录证明", issuing_unit="区公安分局", mode=mode,  # type: ignore[arg-type]
                               items=ITEMS, applied_on=date(2026, 9, 21))


def commitment_case(rec: Recorder, when: datetime = T0, number: str = "C20260001") -> tuple[str, datetime]:
    """A commitment case of shenpi up to approval and plan; returns its id and the time of its last step."""
    case = new_id()
    steps: list[Payload] = [
        application("可选择"), NoticeIssued(), RouteChosen(route="commitment"),
        CommitmentSigned(signed_on=date(2026, 9, 21)), Approved(decision_no="台审批许〔2026〕4号"),
        VerificationPlanned(items=[PlannedItem(no=1, method="assistance", due_on=date(2026, 9, 24), detail="XZ-0001"),
                                   PlannedItem(no=2, method="online", due_on=date(2026, 9, 24))]),
    ]
    for step in steps:
        rec.add("shenpi", LEDGER, case, number, when, step)
        when += timedelta(minutes=10)
    return case, when


def record(rec: Recorder, case: str, when: datetime, payload: Payload) -> None:
    rec.add("shenpi", LEDGER, case, "C20260001", when, payload)


def test_an_assistance_history_shows_who_asked_for_what_and_that_the_reply_kept_to_it(rec: Recorder) -> None:
    req = Request(rec)
    req.received(T0 + timedelta(minutes=1))
    req.reply(T0 + timedelta(hours=2), true(1), false(2))
    h = history(rec.ledger, req.case)
    assert (h.kind, h.number) == ("assistance", "20260001")
    assert [line.summary for line in h.lines] == [
        "shenpi → gongan 行政协助函 20260001: 2 items [1,2], platform",
        "gongan recorded arrival at 2026-09-21 09:01 Asia/Shanghai",
        "gongan 回复: 1 真实, 2 虚假; answered by operator:李四",
    ]
    assert [(line.pos, line.sender, line.recipient, line.kid) for line in h.lines] == [
        (1, "shenpi", "gongan", "shenpi-k1"), (2, "gongan", "shenpi", "gongan-k1"),
        (3, "gongan", "shenpi", "gongan-k1")]
    assert h.lines[0].time == T0 and h.lines[0].arrived_at == T0 + timedelta(seconds=2)
    assert all(not line.findings for line in h.lines)
    assert h.findings == [
        "第九条: shenpi asked gongan to verify items [1,2]: 1 本人户籍所在地为运河街道；2 本人无犯罪记录",
        "第十条: gongan's reply (pos 3) answered exactly the items asked [1,2]",
    ]
    assert h.flags == []
    assert isinstance(h.state, CaseState) and h.state.status == "replied"
    assert [(r.no, r.verdict) for r in h.state.results] == [(1, "true"), (2, "false")]


def test_a_reply_answering_an_item_not_asked_is_flagged_beyond_the_request_without_crashing(rec: Recorder) -> None:
    req = Request(rec, items=ITEMS[:1])
    req.received(T0 + timedelta(minutes=1))
    req.reply(T0 + timedelta(hours=2), true(1), false(2))  # item 2 was never asked
    h = history(rec.ledger, req.case)
    reply = h.lines[2]
    assert reply.findings[0].startswith("rule.items: request 20260001 asked items [1]")
    assert reply.findings[1] == f"{BEYOND}: items [2]"
    assert f"第十条: gongan's reply (pos 3) {BEYOND}: items [2]" in h.findings
    assert any(f.startswith("pos 3 assistance.replied: rule.items:") for f in h.flags)
    # The state is the one before the reply: the ledger shows the reply, the fold did not take it.
    assert isinstance(h.state, CaseState) and h.state.status == "received" and h.state.results == ()


def test_a_reply_before_the_arrival_record_is_flagged_with_the_rule_code_and_the_fold_goes_on(rec: Recorder) -> None:
    req = Request(rec)
    req.reply(T0 + timedelta(minutes=5), true(1), true(2))
    req.received(T0 + timedelta(minutes=6))
    h = history(rec.ledger, req.case)
    assert [line.type for line in h.lines] == ["assistance.requested", "assistance.replied", "assistance.received"]
    assert h.lines[1].findings == ["rule.not-yet: case 20260001 has no recorded arrival yet"]
    assert "pos 2 assistance.replied: rule.not-yet: case 20260001 has no recorded arrival yet" in h.findings
    assert isinstance(h.state, CaseState) and h.state.status == "received"


@pytest.mark.parametrize("language", ["zh", "en"])
def test_a_rule_break_reads_in_chinese_by_default_and_in_english_with_lang_en_at_80_columns(
        rec: Recorder, language: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    """`xiezhu history`: a broken rule by its labels.RULE and code; the English detail with --lang en."""
    from rich.cells import cell_len

    from xiezhu.cli.common import print_history

    req = Request(rec)
    req.reply(T0 + timedelta(minutes=5), true(1), true(2))
    h = history(rec.ledger, req.case)
    assert h.findings_zh[-1] == "第 2 条（assistance.replied）：所需的前一步骤尚未记录（rule.not-yet）"
    monkeypatch.setenv("COLUMNS", "80")
    monkeypatch.setenv("XIEZHU_LANG", language)
    print_history(h, "20260001")
    shown = capsys.readouterr().out
    assert max(cell_len(line) for line in shown.splitlines()) <= 80 and "…" not in shown
    if language == "zh":
        assert "所需的前一步骤尚未记录（rule.not-yet）" in shown and "has no recorded arrival" not in shown
        assert "发送 → 接收" in shown
    else:
        assert "rule.not-yet: case 20260001 has no recorded arrival yet" in " ".join(shown.split())
        assert "所需" not in shown


def test_a_signed_breach_notice_joins_the_history_as_a_missed_deadline_not_a_rule_break(rec: Recorder) -> None:
    req = Request(rec)
    req.received(T0 + timedelta(minutes=1))
    due = datetime(2026, 9, 24, 16, tzinfo=UTC)  # 24:00 Shanghai on the third working day
    breach = DeadlineBreached(request_id=req.env.id, requester="shenpi", assistor="gongan", kind="reply", due_at=due,
                              detected_at=due + timedelta(minutes=5))
    for recipient in ("shenpi", "gongan"):  # one notice, one signed copy to each party
        rec.add("sifa", recipient, req.case, req.number, due + timedelta(minutes=5), breach)
    req.reply(due + timedelta(days=1), true(1), true(2))
    h = history(rec.ledger, req.case)
    assert h.lines[2].summary == ("breach notice to shenpi: reply due 2026-09-25 00:00 Asia/Shanghai missed, "
                                  "still unanswered at 2026-09-25 00:05 Asia/Shanghai")
    assert all(not line.findings for line in h.lines)
    assert h.flags == [f"{BREACHED}: gongan reply due 2026-09-25 00:00 Asia/Shanghai missed, still unanswered at "
                       "2026-09-25 00:05 Asia/Shanghai (pos 3, notice by sifa)"]
    assert isinstance(h.state, CaseState) and h.state.status == "replied"


def test_a_commitment_history_lists_its_steps_outcomes_and_the_assistance_it_caused(rec: Recorder) -> None:
    case, t = commitment_case(rec)
    req = Request(rec, commitment_case=case, when=t)
    req.received(t + timedelta(minutes=1))
    req.reply(t + timedelta(hours=1), false(1), true(2))
    t += timedelta(hours=2)
    for step in (ItemVerified(no=1, verdict="false", source="assistance:shenpi/20260001"),
                 ItemVerified(no=2, verdict="true", source="online:电子证照库"),
                 FalseCommitmentFound(items=[1], legal_reason="三(三)：承诺不实"),
                 DecisionRevoked(licence_return_due=t + timedelta(days=1), legal_reason="三(三)：撤销行政许可"),
                 CreditRecorded(record="虚假承诺：食品经营许可", legal_reason="三(三)：推送信用中国")):
        record(rec, case, t, step)
    h = history(rec.ledger, case, now=t)
    assert (h.kind, h.number) == ("commitment", "C20260001")
    assert [line.summary for line in h.lines] == [
        "申请 C20260001: 张* 食品经营许可 (可选择), in place of 无犯罪记录证明 from 区公安分局; "
        "items [1,2], standing good",
        "承诺告知书",
        "route chosen: commitment",
        "申请人承诺书 signed 2026-09-21",
        "approved 台审批许〔2026〕4号",
        "verification planned: 1 部门间行政协助 by 2026-09-24, 2 在线核查 by 2026-09-24",
        "item 1 verified 虚假 via assistance:shenpi/20260001",
        "item 2 verified 真实 via online:电子证照库",
        "false commitment, items [1]: 三(三)：承诺不实",
        "revoked, licence due back by 2026-09-22 12:00 Asia/Shanghai: 三(三)：撤销行政许可",
        "credit recorded 虚假承诺：食品经营许可: 三(三)：推送信用中国",
    ]
    assert isinstance(h.state, CommitmentState)
    assert (h.state.status, h.state.outcomes, h.state.false_items) == ("revoked", ("revoked", "credit-recorded"), (1,))
    assert h.linked == find_assistance_for(rec.ledger, case) == [req.case]
    assert h.findings == [
        "shenpi recorded commitment case C20260001; the applicant committed items [1,2]",
        f"assistance request 20260001 shenpi → gongan (case {req.case}) asked items [1,2]: replied",
        "第十条: item 1 虚假 rests on gongan's reply to 20260001",
        f"{CONSEQUENCE_OUTSTANDING}: 尚未推送监管部门予以惩处（附件6）",
    ]
    assert h.flags == [f"{CONSEQUENCE_OUTSTANDING}: 尚未推送监管部门予以惩处（附件6）"]
    # The same in 中文, one for one, bureaus by name (issue 16.4); and each event worded again.
    assert h.findings_zh == [
        "区审批服务局受理告知承诺案件 C20260001；申请人承诺第1、2项",
        "行政协助请求 20260001 区审批服务局 → 区公安分局 请求核查第1、2项：已答复",
        "第十条：第 1 项虚假，依据区公安分局对 20260001 的回复",
        f"{CONSEQUENCE_OUTSTANDING}: 尚未推送监管部门予以惩处（附件6）",
    ]
    from aggregates.registry import Registry
    from projections.wording import describe

    assert [describe(line.envelope, Registry.load().name) for line in h.lines if line.envelope][6:] == [
        "第1项核查为虚假，依 区审批服务局 行政协助函 20260001 的回复",
        "第2项核查为真实，经在线核查（电子证照库）",
        "认定虚假承诺，第1项：三(三)：承诺不实",
        "撤销行政决定，许可证件应于 2026-09-22 12:00 前交回：三(三)：撤销行政许可",
        "计入信用记录 虚假承诺：食品经营许可：三(三)：推送信用中国",
    ]
    linked = history(rec.ledger, req.case)
    assert linked.linked == [case]
    assert linked.lines[0].summary.endswith(", for commitment case C20260001")
    assert "the request is for commitment case C20260001 and asks only about its committed items" in linked.findings


def test_a_request_beyond_the_commitment_and_a_verification_the_reply_does_not_support_are_flagged(
        rec: Recorder) -> None:
    case, t = commitment_case(rec)
    req = Request(rec, commitment_case=case, when=t,
                  items=[ITEMS[0], CommitmentItem(no=3, text="本人名下无不动产")])  # item 3 was never committed
    req.received(t + timedelta(minutes=1))
    req.reply(t + timedelta(hours=1), true(1), true(3))
    record(rec, case, t + timedelta(hours=2), ItemVerified(no=1, verdict="false", source="assistance:shenpi/20260001"))
    h = history(rec.ledger, case)
    assert (f"20260001: {BEYOND_COMMITMENT}: items [3] are not among the items of C20260001 as committed"
            in h.flags)
    assert f"{UNSUPPORTED}: item 1 recorded 虚假, but gongan's reply to 20260001 said 真实" in h.flags


def test_a_commitment_step_out_of_order_keeps_the_previous_state_and_names_the_rule(rec: Recorder) -> None:
    case = new_id()
    record(rec, case, T0, application("必须实行"))
    record(rec, case, T0 + timedelta(minutes=1), Approved(decision_no="台审批许〔2026〕9号"))
    h = history(rec.ledger, case)
    assert h.lines[1].findings == ["rule.order: case C20260001 is applied; it cannot be approved now"]
    assert isinstance(h.state, CommitmentState) and h.state.status == "applied" and not h.state.approved


def test_find_cases_finds_assistance_numbers_and_commitment_numbers_by_sender(rec: Recorder) -> None:
    case, t = commitment_case(rec)
    req = Request(rec, commitment_case=case, when=t)
    assert find_cases(rec.ledger, "20260001") == [req.case]
    assert find_cases(rec.ledger, "C20260001") == [case]
    assert find_cases(rec.ledger, "C20260001", "shenpi") == [case]
    assert find_cases(rec.ledger, "C20260001", "gongan") == []
    assert find_cases(rec.ledger, "C20260002") == []
    with pytest.raises(UnknownCase):
        history(rec.ledger, new_id())


def test_letters_for_an_assistance_case_render_the_request_and_the_reply_on_their_shanghai_days(
        rec: Recorder) -> None:
    req = Request(rec)
    req.received(T0 + timedelta(minutes=1))
    req.forwarded(T0 + timedelta(minutes=30), "区档案馆")
    # 2026-09-22 17:30 UTC is already 23 September in Shanghai.
    req.reply(datetime(2026, 9, 22, 17, 30, tzinfo=UTC), true(1, reason="与户籍库一致"),
              ItemResult(no=2, verdict="unverifiable", reason="2010年以前的档案未移交"), on_behalf_of="区档案馆")
    letters = letters_for(history(rec.ledger, req.case), NAMES.__getitem__)
    assert [type(letter) for letter in letters] == [AssistanceLetter, ReplyLetter]
    request, reply = (render(letter) for letter in letters)
    assert request.startswith("区审批服务局行政协助函（一）\n（编号：20260001）\n\n区公安分局：\n")
    assert "2026年9月21日，张三到我单位办理食品经营许可事项" in request
    assert "1、本人户籍所在地为运河街道\n2、本人无犯罪记录\n" in request
    assert request.endswith("区审批服务局\n2026年9月21日\n（一式两份，部门一份，行政协助部门一份）\n")
    assert reply.startswith("区公安分局行政协助回复函\n（编号：20260001）\n\n区审批服务局：\n2026年9月21日，")
    assert "1、本人户籍所在地为运河街道\n2、本人无犯罪记录\n根据贵单位" in reply
    assert "申请人承诺事项第1项为真实，第2项无法证实其真实性（原因另附纸说明）。" in reply
    assert "经我单位向区档案馆核实" in reply
    assert "原因：2010年以前的档案未移交" in reply and "与户籍库一致" not in reply
    assert "区公安分局\n2026年9月23日\n" in reply and "（加盖区公安分局公章）" in reply


def test_letters_for_a_letter_carried_by_staff_and_declined_render_letter_two_and_the_decline(
        rec: Recorder) -> None:
    req = Request(rec, channel="letter", staff=["王伟", "李娜"], number="20260002")
    req.received(T0 + timedelta(minutes=1))
    req.decline(T0 + timedelta(days=1), "该事项不在本单位行政协助事项目录内\n请向区档案馆申请")
    h = history(rec.ledger, req.case)
    assert h.lines[2].summary == "declined: 该事项不在本单位行政协助事项目录内 / 请向区档案馆申请"
    letters = letters_for(h, NAMES.__getitem__)
    assert [type(letter) for letter in letters] == [AssistanceLetter, DeclineLetter]
    request, decline = (render(letter) for letter in letters)
    assert request.startswith("区审批服务局行政协助函（二）\n（编号：20260002）")
    assert "我单位指派王伟、李娜两名同志前往贵单位调查核实" in request
    assert decline.startswith("区公安分局不能提供行政协助告知书\n（编号：20260002）")
    assert "该事项不在本单位行政协助事项目录内\n请向区档案馆申请\n" in decline and "2026年9月22日" in decline


def test_letters_for_a_commitment_case_render_the_notice_and_the_signed_commitment(rec: Recorder) -> None:
    case = new_id()
    record(rec, case, T0, application("必须实行"))
    record(rec, case, datetime(2026, 9, 21, 17, tzinfo=UTC), NoticeIssued())  # 22 September 01:00 in Shanghai
    record(rec, case, datetime(2026, 9, 22, 2, tzinfo=UTC), CommitmentSigned(signed_on=date(2026, 9, 22)))
    letters = letters_for(history(rec.ledger, case), NAMES.__getitem__)
    assert [type(letter) for letter in letters] == [CommitmentNotice, ApplicantCommitment]
    notice, signed = (render(letter) for letter in letters)
    assert notice.startswith("承诺告知书\n\n张三：\n2026年9月21日，张三到我单位办理食品经营许可事项，")
    assert "应当提供区公安分局出具的无犯罪记录证明（法律、法规规定的要件）" in notice
    assert "1、本人户籍所在地为运河街道\n2、本人无犯罪记录\n" in notice
    assert notice.endswith("区审批服务局\n2026年9月22日\n")
    assert signed.startswith("申请人承诺书\n\n区审批服务局：\n2026年9月21日，张三到贵单位办理食品经营许可事项，")
    assert signed.endswith("申请人（签字、捺印）：\n2026年9月22日\n")


def test_an_arrival_signed_a_week_after_the_platform_stored_the_request_is_flagged(rec: Recorder) -> None:
    """第五条: the assistor's receipt is evidence, not the clock; a claim against the platform's record is flagged."""
    req = Request(rec)  # the ledger stores it at T0 + 2 s
    req.received(T0 + timedelta(days=7))
    h = history(rec.ledger, req.case)
    assert h.lines[1].findings and h.lines[1].findings[0].startswith(f"{TIME_CLAIM}: gongan records the arrival")
    assert [f for f in h.flags if f.startswith(TIME_CLAIM)] == [f"{h.lines[1].findings[0]} (pos 2)"]
    assert isinstance(h.state, CaseState) and h.state.recorded_at == T0 + timedelta(seconds=2)


def test_an_arrival_recorded_in_step_with_the_platform_is_not_flagged(rec: Recorder) -> None:
    req = Request(rec)
    req.received(T0 + timedelta(seconds=2))
    assert not [f for f in history(rec.ledger, req.case).findings if f.startswith(TIME_CLAIM)]


def test_a_request_under_an_item_it_could_not_be_asked_under_is_flagged_given_the_catalogue(rec: Recorder) -> None:
    """第七条: 未纳入行政协助目录的事项不得请求行政协助 — the ledger keeps it; the history says so."""
    from aggregates.clock import SimulatedClock
    from aggregates.store.catalogue import CatalogueRegistry
    from projections.history import NOT_CATALOGUED
    from tests.test_catalogue import item, through

    catalogue = CatalogueRegistry(None, SimulatedClock(T0))
    through(catalogue, "assistance", "shenpi", adds=[item(handling="shenpi")])  # 区司法局 holds a published list
    req = Request(rec)  # names no catalogued item
    flagged = [f for f in history(rec.ledger, req.case, catalogue=catalogue).flags if f.startswith(NOT_CATALOGUED)]
    assert flagged == [f"{NOT_CATALOGUED}: rule.catalogue.not-catalogued: 第七条: the request names no item of the "
                       "行政协助目录; 未纳入行政协助目录的事项不得请求行政协助"]
    assert not [f for f in history(rec.ledger, req.case).flags if f.startswith(NOT_CATALOGUED)]
    catalogue.close()
