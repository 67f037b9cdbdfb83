"""Commitment cases (告知承诺): every rule of the plan as the handling bureau's store applies it."""
from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest

from agencies.agent import BureauAgent
from aggregates import errors
from aggregates.clock import SimulatedClock
from aggregates.commitment import outstanding
from aggregates.store import SHANGHAI, BureauStore
from broker.relay import Positions
from broker.signing import KeyRing
from schemas.assistance import CommitmentItem, ItemResult, Matter
from schemas.commitment import PlannedItem
from schemas.envelope import decode_envelope
from tests.conftest import StoreLocations
from tests.test_signing import entry, make_signer
from tests.test_store import APPLICANT

ITEMS = [CommitmentItem(no=1, text="本人户籍所在地为运河街道", check="hukou.residence", facts={"address": "运河街道"}),
         CommitmentItem(no=2, text="本人无犯罪记录", check="police.no-criminal-record")]
T0 = datetime(2026, 9, 21, 1, tzinfo=UTC)


@pytest.fixture
def store(store_location: StoreLocations) -> BureauStore:
    return BureauStore("shenpi", store_location("s"), make_signer("shenpi").sign, SimulatedClock(T0))


def apply(store: BureauStore, *, mode: str = "可选择", disclose: bool = False, standing: str = "good") -> str:
    return store.commitments.open(applicant=APPLICANT, matter_code="370405-XK-0101", matter_name="食品经营许可",
                                  certificate_name="无犯罪记录证明", issuing_unit="区公安分局", mode=mode,  # type: ignore[arg-type]
                                  items=ITEMS, applied_on=date(2026, 9, 21), disclose=disclose,
                                  standing=standing).case  # type: ignore[arg-type]


def committed(store: BureauStore, **kw: object) -> str:
    case = apply(store, **kw)  # type: ignore[arg-type]
    store.commitments.issue_notice(case)
    if store.commitments.case(case).state.mode == "可选择":
        store.commitments.choose_route(case, "commitment")
    store.commitments.sign(case, date(2026, 9, 21))
    return case


def plan(store: BureauStore, case: str, exempt_second: bool = False) -> None:
    store.commitments.plan_verification(case, [
        PlannedItem(no=1, method="assistance", due_on=date(2026, 9, 24), detail="XZ-0001"),
        PlannedItem(no=2, method="online", due_on=date(2026, 9, 24), exempt=exempt_second)])


def test_the_happy_path_ends_closed_when_every_item_is_true(store: BureauStore) -> None:
    case = committed(store)
    store.commitments.approve(case, "台审批许〔2026〕1号")
    plan(store, case)
    store.commitments.verify_item(case, 1, "true", "online:电子证照库")
    assert store.commitments.conclude(case) is None  # item 2 still open
    store.commitments.verify_item(case, 2, "true", "online:信息共享平台")
    st = store.commitments.conclude(case)
    assert st is not None and st.status == "closed" and st.number == "C20260001"


def test_the_credit_gate_closes_the_commitment_route(store: BureauStore) -> None:
    case = apply(store, standing="unrepaired-false-commitment")
    with pytest.raises(errors.CreditGate):
        store.commitments.issue_notice(case)
    st = store.commitments.refuse_route(case, "credit",
                                        "四(二)：曾作出虚假承诺且未修复信用，不适用告知承诺制，应提交证明。")
    assert st.status == "certificate-required" and st.route == "certificate"
    with pytest.raises(errors.CreditGate):
        store.commitments.refuse_route(apply(store), "credit", "无理由拒绝")


def test_a_disclosed_matter_tells_the_applicant_and_a_refusal_requires_the_certificate(store: BureauStore) -> None:
    case = apply(store, disclose=True)
    assert store.commitments.issue_notice(case).told_disclosure
    st = store.commitments.refuse_route(case, "disclosure-refused", "二(四)：当事人拒绝公开承诺书，应当提交证明。")
    assert st.status == "certificate-required"
    with pytest.raises(errors.WrongOrder):
        store.commitments.refuse_route(apply(store), "disclosure-refused", "该事项不公开承诺书")


def test_a_mandatory_matter_takes_the_commitment_route(store: BureauStore) -> None:
    case = apply(store, mode="必须实行")
    store.commitments.issue_notice(case)
    with pytest.raises(errors.RouteNotOptional):
        store.commitments.choose_route(case, "certificate")
    assert store.commitments.sign(case, date(2026, 9, 21)).status == "signed"


def test_an_optional_matter_lets_the_applicant_bring_the_certificate(store: BureauStore) -> None:
    case = apply(store)
    store.commitments.issue_notice(case)
    assert store.commitments.choose_route(case, "certificate").status == "certificate-required"
    with pytest.raises(errors.WrongOrder):
        store.commitments.sign(case, date(2026, 9, 21))


def test_withdrawal_midway_is_allowed_before_the_decision_only(store: BureauStore) -> None:
    case = committed(store)
    assert store.commitments.withdraw(case, "申请人决定自行提交证明").status == "certificate-required"
    later = committed(store)
    store.commitments.approve(later, "台审批许〔2026〕2号")
    with pytest.raises(errors.WrongOrder):
        store.commitments.withdraw(later, "已作出决定后不能退出")


def test_the_plan_covers_exactly_the_committed_items_with_due_dates(store: BureauStore) -> None:
    case = committed(store)
    with pytest.raises(errors.NotCommitted):
        store.commitments.plan_verification(case, [PlannedItem(no=1, method="online", due_on=date(2026, 9, 24))])
    with pytest.raises(errors.Deadline):
        store.commitments.plan_verification(case, [PlannedItem(no=1, method="online"),
                                                   PlannedItem(no=2, method="online", due_on=date(2026, 9, 24))])


def test_exempt_items_are_not_verified_and_do_not_hold_the_case_open(store: BureauStore) -> None:
    case = committed(store)
    store.commitments.approve(case, "台审批许〔2026〕3号")
    plan(store, case, exempt_second=True)
    with pytest.raises(errors.NotCommitted):
        store.commitments.verify_item(case, 2, "true", "online:平台")
    store.commitments.verify_item(case, 1, "true", "on-site:王伟、李娜")
    assert store.commitments.conclude(case).status == "closed"  # type: ignore[union-attr]


def test_a_false_commitment_after_approval_leads_to_revocation_credit_and_referral(store: BureauStore) -> None:
    case = committed(store)
    store.commitments.approve(case, "台审批许〔2026〕4号")
    plan(store, case)
    with pytest.raises(errors.NotFalse):
        store.commitments.revoke(case, "尚未发现虚假承诺")
    store.commitments.verify_item(case, 1, "false", "assistance:shenpi/20260001")
    store.commitments.verify_item(case, 2, "true", "online:平台")
    assert store.commitments.conclude(case).status == "false-commitment"  # type: ignore[union-attr]
    with pytest.raises(errors.WrongOrder):
        store.commitments.terminate(case, "已批准的事项应撤销而非终止")
    st = store.commitments.revoke(case, "三(三)：承诺不实，撤销行政许可")
    # 撤销之日起2日内, counted by date: revoked Monday 09-21, due by 24:00 of Wednesday 09-23.
    assert st.licence_return_due == datetime(2026, 9, 24, tzinfo=SHANGHAI)
    assert "credit-recorded" in st.outcomes  # 并将数据推送至信用中国: made with the finding, not a choice
    with pytest.raises(errors.WrongOrder):
        store.commitments.record_credit(case, "再次记录", "重复")
    store.commitments.penalise(case, "罚款2000元", "《行政许可法》第七十九条")
    st = store.commitments.refer(case, "台儿庄区公安分局", "涉嫌伪造证明，依法移送")
    assert st.status == "revoked" and set(st.outcomes) == {"revoked", "credit-recorded", "penalty", "referred"}


def test_a_false_commitment_before_approval_terminates_processing(store: BureauStore) -> None:
    case = committed(store)
    plan(store, case)
    store.commitments.verify_item(case, 1, "false", "online:平台")
    store.commitments.verify_item(case, 2, "true", "online:平台")
    store.commitments.conclude(case)
    with pytest.raises(errors.WrongOrder):
        store.commitments.revoke(case, "尚未批准，无可撤销")
    assert store.commitments.terminate(case, "三(三)：承诺不实，终止办理").status == "terminated"
    with pytest.raises(errors.Deadline):
        store.commitments.order_rectification(case, date(2026, 9, 1), "整改期限已过")
    assert store.commitments.order_rectification(case, date(2026, 10, 30), "责令限期整改").rectify_by == date(2026, 10,
                                                 30)


def _replied(store_location: StoreLocations) -> tuple[BureauStore, KeyRing, str]:
    """shenpi's store after gongan's reply (item 1 true, item 2 false) to a request of its commitment case."""
    clock = SimulatedClock(T0)
    a, b = make_signer("shenpi"), make_signer("gongan")
    ring = KeyRing([entry(a, valid_from=T0 - timedelta(days=1)), entry(b, valid_from=T0 - timedelta(days=1))])
    requester = BureauStore("shenpi", store_location("a"), a.sign, clock)
    assistor = BureauStore("gongan", store_location("b"), b.sign, clock)
    case = committed(requester)
    plan(requester, case)
    req = requester.assistance.request(assistor="gongan", applicant=APPLICANT,
                                       matter=Matter(code="X", name="食品经营许可"),
                            applied_on=date(2026, 9, 21), items=ITEMS, commitment_case=case)
    for _, s in requester.outgoing_since(0, 100):
        env = ring.verify(s)
        if env.recipient == "gongan":
            assistor.accept(s, env, stream_seq=1, arrived_at=clock.now())
    assistor.assistance.reply(req.case, [ItemResult(no=1, verdict="true"), ItemResult(no=2, verdict="false")],
                              "auto:hukou")
    for n, s in assistor.outgoing_since(0, 100):
        requester.accept(s, ring.verify(s), stream_seq=n, arrived_at=clock.now())
    return requester, ring, case


def test_an_assistance_reply_verifies_the_linked_commitment_items(store_location: StoreLocations) -> None:
    requester, _, case = _replied(store_location)
    st = requester.commitments.case(case).state
    assert [(v.no, v.verdict, v.source) for v in st.verified] == [
        (1, "true", "assistance:shenpi/20260001"), (2, "false", "assistance:shenpi/20260001")]
    assert requester.commitments.conclude(case).status == "false-commitment"  # type: ignore[union-attr]


def test_an_agent_killed_between_a_reply_and_its_conclusion_concludes_when_it_starts_again(
        tmp_path: Path, store_location: StoreLocations) -> None:
    # Found by the kill -9 campaign: the conclusion is its own transaction after the reply's, and an
    # acked reply is not delivered again, so the case stayed with every item verified and no finding.
    requester, ring, case = _replied(store_location)
    assert requester.commitments.case(case).state.status == "signed"
    agent = BureauAgent("shenpi", requester, ring, Positions(tmp_path / "relay.db"), [], SimulatedClock(T0),
                        "nats://127.0.0.1:4222", opener=None)
    assert agent._sweep_conclusions() == 1  # as start() does before it consumes
    st = requester.commitments.case(case).state
    assert st.status == "false-commitment" and st.credit != "none"
    assert agent._sweep_conclusions() == 0


def test_withdrawing_the_commitment_withdraws_its_open_assistance_request(store: BureauStore) -> None:
    case = committed(store)
    req = store.assistance.request(assistor="gongan", applicant=APPLICANT, matter=Matter(code="X", name="x"),
                                   applied_on=date(2026, 9, 21), items=ITEMS, commitment_case=case)
    store.commitments.withdraw(case, "申请人改为提交证明")
    assert store.assistance.case(req.case).state.status == "withdrawn"


def test_an_item_that_could_not_be_verified_may_be_checked_again_on_site(store: BureauStore) -> None:
    case = committed(store)
    store.commitments.approve(case, "台审批许〔2026〕5号")
    plan(store, case, exempt_second=True)
    store.commitments.verify_item(case, 1, "unverifiable", "assistance:shenpi/20260001", reason="档案未移交")
    assert store.commitments.conclude(case) is None
    store.commitments.verify_item(case, 1, "true", "on-site:王伟、李娜")
    with pytest.raises(errors.WrongOrder):
        store.commitments.verify_item(case, 1, "false", "online:平台")
    assert store.commitments.conclude(case).status == "closed"  # type: ignore[union-attr]


def test_supervision_is_after_the_decision_by_the_plans_ways_on_committed_items_only(store: BureauStore) -> None:
    """三(三): 双随机、一公开 / 重点监管 / 互联网＋监管 / 智慧监管, of what the applicant committed to."""
    case = committed(store)
    with pytest.raises(errors.WrongOrder):  # not yet decided: that is verification, not supervision
        store.commitments.supervise(case, 1, "false", "重点监管", "")
    store.commitments.approve(case, "台审批许〔2026〕7号")
    plan(store, case)
    store.commitments.verify_item(case, 1, "true", "online:电子证照库")
    store.commitments.verify_item(case, 2, "true", "online:信息共享平台")
    assert store.commitments.conclude(case).status == "closed"  # type: ignore[union-attr]
    with pytest.raises(errors.NotFalse):  # nothing found false: a closed case has no false commitment to record
        store.commitments.revoke(case, "尚未发现虚假承诺")
    with pytest.raises(errors.BadRequest):
        store.commitments.supervise(case, 1, "false", "随便看看")
    with pytest.raises(errors.NotCommitted):
        store.commitments.supervise(case, 3, "false", "重点监管")
    assert store.commitments.supervise(case, 1, "true", "智慧监管").status == "closed"  # a true finding changes nothing
    st = store.commitments.supervise(case, 1, "false", "互联网＋监管")  # a later finding overrides the earlier true
    assert (st.status, st.false_items) == ("false-commitment", (1,))
    assert store.commitments.revoke(case, "三(三)：事中事后监管发现承诺不实，撤销行政许可").status == "revoked"


def test_the_consequences_of_a_false_commitment_follow_附件6(store: BureauStore) -> None:
    """并将数据推送至信用中国 (required), 推送监管部门予以惩处 (a notice), the licence back 撤销之日起2日内."""
    case = committed(store)
    store.commitments.approve(case, "台审批许〔2026〕5号")
    plan(store, case)
    store.commitments.verify_item(case, 1, "false", "online:电子证照库")
    store.commitments.verify_item(case, 2, "true", "online:平台")
    st = store.commitments.conclude(case)
    assert st is not None and st.outcomes == ("credit-recorded",) and st.credit == "recorded"
    now = store.clock.now()
    assert outstanding(st, now) == ["尚未推送监管部门予以惩处（附件6）"]
    store.clock.set(datetime(2026, 9, 21, 15, 30, tzinfo=UTC))  # 23:30 Monday in Shanghai
    st = store.commitments.revoke(case, "三(三)：承诺不实，撤销行政许可")
    assert st.licence_return_due == datetime(2026, 9, 24, tzinfo=SHANGHAI)  # the revocation day not counted
    st = store.commitments.notify_supervisor(case, "shichang", "附件6：将申请人信息推送监管部门予以惩处")
    assert st.supervisor == "shichang"
    sent = [decode_envelope(s.body) for _, s in store.outgoing_since(0, 1000)]
    [referral] = [e for e in sent if e.type == "notice.punishment"]
    assert referral.recipient == "shichang" and referral.payload.false_items == [1]  # type: ignore[union-attr]
    with pytest.raises(errors.WrongOrder):
        store.commitments.notify_supervisor(case, "shichang", "再次推送")
    assert outstanding(st, datetime(2026, 9, 23, 23, 59, tzinfo=SHANGHAI)) == []
    assert outstanding(st, datetime(2026, 9, 24, 0, 0, tzinfo=SHANGHAI)) == [
        "证件原件逾期未交回（撤销之日起2日内，至 2026-09-24T00:00:00+08:00）"]
    with pytest.raises(errors.Deadline):
        store.commitments.return_licence(case, datetime(2026, 9, 20, tzinfo=SHANGHAI))  # before the revocation
    store.clock.set(datetime(2026, 9, 23, 2, tzinfo=UTC))
    st = store.commitments.return_licence(case, datetime(2026, 9, 23, 9, 30, tzinfo=SHANGHAI), "申请人交回许可证原件")
    assert st.licence_returned_at == datetime(2026, 9, 23, 9, 30, tzinfo=SHANGHAI)
    assert outstanding(st, datetime(2026, 10, 1, tzinfo=SHANGHAI)) == []
    with pytest.raises(errors.WrongOrder):
        store.commitments.return_licence(case, datetime(2026, 9, 23, 9, 31, tzinfo=SHANGHAI))


def test_a_bureau_that_is_itself_the_supervising_department_records_it_and_sends_itself_nothing(
        store: BureauStore) -> None:
    """附件6 推送监管部门: where the handling bureau is the matter's 监管部门, no notice goes to itself."""
    from projections.wording import describe

    case = committed(store)
    plan(store, case)
    store.commitments.verify_item(case, 1, "false", "online:电子证照库")
    store.commitments.verify_item(case, 2, "true", "online:平台")
    store.commitments.conclude(case)
    st = store.commitments.notify_supervisor(case, "shenpi", "本机关为该事项监管部门，依职权予以惩处")
    assert st.supervisor == "shenpi" and outstanding(st, store.clock.now()) == []
    sent = [decode_envelope(s.body) for _, s in store.outgoing_since(0, 1000)]
    assert [e.type for e in sent if e.type == "notice.punishment"] == []
    [told] = [e for e in sent if e.type == "commitment.supervisor-notified"]
    assert describe(told, str).startswith("推送监管部门予以惩处：本机关即监管部门")


def test_a_decision_that_is_no_licence_is_revoked_with_no_licence_due_back(store: BureauStore) -> None:
    """最低生活保障 is a 行政给付 (JF in its 编码): revoked, it leaves no 证件 to hand back (附件6 is a licence's)."""
    from projections.documents.report import build_report
    from schemas.commitment import DecisionRevoked

    case = store.commitments.open(applicant=APPLICANT, matter_code="ZM-minzheng-0001", matter_name="最低生活保障",
                                  certificate_name="社会保险缴费证明", issuing_unit="区人力资源社会保障局",
                                  mode="必须实行", items=ITEMS, applied_on=date(2026, 9, 21),
                                  service_matter_code="370405-JF-0701").case
    store.commitments.issue_notice(case)
    store.commitments.sign(case, date(2026, 9, 21))
    store.commitments.approve(case, "台民政决〔2026〕0001号")
    plan(store, case)
    store.commitments.verify_item(case, 1, "false", "online:电子证照库")
    store.commitments.verify_item(case, 2, "true", "online:平台")
    store.commitments.conclude(case)
    with pytest.raises(errors.BadRequest, match="no licence"):  # a return due for a 证件 there is not
        store.commitments.record(case, DecisionRevoked(licence_return_due=datetime(2026, 9, 23, tzinfo=SHANGHAI),
                                                       legal_reason="三(三)：撤销决定"))
    st = store.commitments.revoke(case, "三(三)：承诺不实，撤销给付决定")
    assert (st.status, st.licence_return_due) == ("revoked", None)
    assert not any("证件" in line for line in outstanding(st, datetime(2026, 12, 1, tzinfo=SHANGHAI)))
    with pytest.raises(errors.WrongOrder):
        store.commitments.return_licence(case, store.clock.now())
    report = build_report(start=date(2026, 9, 1), end=date(2026, 11, 30), sla_rows=[], sla_stats=[], cases=[st],
                          judged_at=datetime(2026, 12, 1, tzinfo=SHANGHAI), names=str)
    assert report.licences_not_returned == [] and report.commitment_totals[0]["licences_not_returned"] == 0


def test_a_revocation_giving_more_than_2_days_by_date_is_refused(store: BureauStore) -> None:
    from schemas.commitment import DecisionRevoked

    case = committed(store)
    store.commitments.approve(case, "台审批许〔2026〕6号")
    plan(store, case)
    store.commitments.verify_item(case, 1, "false", "online:电子证照库")
    store.commitments.verify_item(case, 2, "true", "online:平台")
    store.commitments.conclude(case)
    with pytest.raises(errors.Deadline):
        store.commitments.record(case,
                                 DecisionRevoked(licence_return_due=datetime(2026, 9, 24, 0, 0, 1, tzinfo=SHANGHAI),
                                           legal_reason="三(三)：撤销行政许可"))
