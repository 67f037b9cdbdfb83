"""Disputes between a requester and an assistor (附件2 第八条): the fold's rules, the stores, the catalogue."""
from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any

import msgspec
import pytest

from aggregates import assistance, dispute, errors
from aggregates import catalogue as cat
from aggregates.assistance import CaseState
from aggregates.clock import SimulatedClock
from aggregates.dispute import DisputeState
from aggregates.errors import RuleError
from aggregates.registry import Registry
from aggregates.store import BureauStore, DuplicateEvent, UnknownCase
from aggregates.store.catalogue import CatalogueRegistry
from broker.ledger.store import Ledger
from broker.signing import KeyRing, Signer
from projections.history import NOT_THE_DISPUTED_CASE, find_cases, history
from schemas.assistance import CommitmentItem, Matter
from schemas.catalogue import AdjustmentApplied, AssistanceItem, decode_event
from schemas.dispute import (
    DecisionCatalogued,
    DisputeEscalated,
    DisputeRaised,
    DisputeReferred,
    DisputeRuled,
    DisputeSettled,
    DistrictDecided,
    NegotiationRecorded,
)
from schemas.envelope import LEDGER, Envelope, Signed, decode_envelope, new_id
from schemas.events import Payload
from tests.conftest import ITEMS as CONFTEST_ITEMS
from tests.conftest import StoreLocations, make_node
from tests.test_signing import entry, make_signer, request_env
from tests.test_store import APPLICANT
from xiezhu.demo_dispute import dispute_a_decline
from xiezhu.settings import Settings

T0 = datetime(2026, 9, 21, 1, tzinfo=UTC)  # Monday 09:00 in Shanghai
CASE = new_id()
ASSISTANCE = new_id()
NUMBER = "D20260001"
BASIS = "《国务院办公厅关于全面推行证明事项告知承诺制的指导意见》"
ITEMS = [CommitmentItem(no=1, text="本人无犯罪记录", check="police.no-criminal-record")]


# -- the fold ---------------------------------------------------------------------------------------------


def env(sender: str, recipient: str, payload: Payload, *, case: str = CASE, number: str = NUMBER) -> Envelope:
    return Envelope(id=new_id(), sender=sender, recipient=recipient, case=case, number=number, time=T0,
                    payload=payload)


def raised(**changes: Any) -> DisputeRaised:
    fields: dict[str, Any] = dict(raised_by="shenpi", other_party="gongan", requester="shenpi", assistor="gongan",
                                  assistance_case=ASSISTANCE, assistance_number="20260001",
                                  claim="被请求机关拒绝协助的理由与清单不符", evidence=["行政协助函 20260001"])
    return DisputeRaised(**{**fields, **changes})


def note(party: str = "gongan", outcome: str = "continuing") -> Envelope:
    return env(party, "sifa", NegotiationRecorded(party=party, note="双方就协助范围交换意见", outcome=outcome))  # type: ignore[arg-type]


def referred() -> Envelope:
    return env("sifa", LEDGER, DisputeReferred(reasons="双方协商不成"))


def ruled(co_deciders: tuple[str, ...] = ("sifa", "bianban"), adjustment: str = "",
          amends: bool | None = None) -> Envelope:
    return env("sifa", LEDGER, DisputeRuled(ruling="由被请求机关协助核查", co_deciders=list(co_deciders),
                                            amends_catalogue=bool(adjustment) if amends is None else amends,
                                            adjustment=adjustment))


def escalated(petitioners: tuple[str, ...] = ("sifa", "bianban")) -> Envelope:
    return env("sifa", LEDGER, DisputeEscalated(petitioners=list(petitioners), reasons="涉及部门职责划分"))


def decided(adjustment: str = "", sender: str = "zhengfuban", recipient: str = "sifa") -> Envelope:
    return env(sender, recipient, DistrictDecided(decision="由被请求机关协助核查", adjustment=adjustment))


def catalogued(adjustment: str = "assistance-0002", sender: str = "sifa") -> Envelope:
    return env(sender, LEDGER, DecisionCatalogued(adjustment=adjustment))


def fold(*envs: Envelope) -> DisputeState:
    state: DisputeState | None = None
    for e in envs:
        state = dispute.apply(state, e)
    assert state is not None
    return state


def fold_on(state: DisputeState, *envs: Envelope) -> DisputeState:
    for e in envs:
        state = dispute.apply(state, e)
    return state


def opened() -> DisputeState:
    return fold(env("shenpi", "sifa", raised()))


def failed() -> DisputeState:
    return dispute.apply(dispute.apply(opened(), note("gongan")), note("shenpi", "failed"))


def taken_up() -> DisputeState:
    return dispute.apply(failed(), referred())


def test_a_dispute_starts_with_its_raise_and_is_raised_once() -> None:
    with pytest.raises(errors.NotFirst):
        dispute.apply(None, note())
    with pytest.raises(errors.NotFirst):
        dispute.apply(opened(), env("shenpi", "sifa", raised()))
    st = opened()
    assert (st.status, st.step, st.parties, st.assistance_number) == ("negotiating", "negotiating",
                                                                        ("shenpi", "gongan"), "20260001")


def test_only_a_party_of_the_assistance_case_raises() -> None:
    with pytest.raises(errors.NotDisputeParty):  # ziran is no party of shenpi → gongan
        dispute.start(env("ziran", "sifa", raised(raised_by="ziran")))
    with pytest.raises(errors.NotDisputeParty):  # signed by one bureau in the name of another
        dispute.start(env("gongan", "sifa", raised()))
    assert dispute.start(env("gongan", "sifa", raised(raised_by="gongan", other_party="shenpi"))).raised_by == "gongan"


def test_the_parties_differ_and_neither_is_sifa() -> None:
    with pytest.raises(errors.NotDisputeParty):
        dispute.start(env("shenpi", "sifa", raised(other_party="shenpi")))
    with pytest.raises(errors.NotDisputeParty):
        dispute.start(env("shenpi", "sifa", raised(other_party="sifa", assistor="sifa")))


def test_a_dispute_is_raised_with_sifa() -> None:
    with pytest.raises(errors.NotDisputeAuthority):
        dispute.start(env("shenpi", "gongan", raised()))
    with pytest.raises(errors.NotDisputeAuthority):
        dispute.start(env("shenpi", LEDGER, raised()))


def test_a_raise_must_match_the_assistance_case_it_names() -> None:
    req = request_env(sender="shenpi", recipient="gongan")
    case = assistance.start(req, "0" * 64)
    good = raised(assistance_case=case.case, assistance_number=case.number)
    assert dispute.start(env("shenpi", "sifa", good), case).assistance_case == case.case
    for wrong in (raised(assistance_case=case.case, assistance_number="20260002"),
                  raised(assistance_number=case.number),
                  raised(assistance_case=case.case, assistance_number=case.number, raised_by="gongan",
                         other_party="shenpi", requester="gongan", assistor="shenpi")):
        sender = wrong.raised_by
        with pytest.raises(errors.DisputeCaseMismatch):
            dispute.start(env(sender, "sifa", wrong), case)


def test_only_the_two_parties_negotiate_each_in_its_own_name_and_to_sifa() -> None:
    with pytest.raises(errors.NotDisputeParty):
        dispute.apply(opened(), note("ziran"))
    with pytest.raises(errors.NotDisputeParty):  # shenpi writing gongan's note
        dispute.apply(opened(), env("shenpi", "sifa", NegotiationRecorded(party="gongan", note="代为说明")))
    with pytest.raises(errors.NotDisputeAuthority):
        dispute.apply(opened(), env("gongan", LEDGER, NegotiationRecorded(party="gongan", note="说明情况")))
    st = dispute.apply(opened(), note("gongan"))
    assert [n.party for n in st.negotiation] == ["gongan"] and not st.negotiation_failed


def test_a_failed_negotiation_is_recorded_and_the_parties_may_still_settle_before_referral() -> None:
    st = failed()
    assert st.negotiation_failed and st.step == "negotiation-failed"
    settled = dispute.apply(st, env("gongan", "sifa", DisputeSettled(agreed_by=["gongan", "shenpi"],
                                                                     agreement="被请求机关于3个工作日内回复")))
    assert settled.status == "settled" and settled.closed


def test_negotiation_and_settlement_happen_only_while_negotiating() -> None:
    with pytest.raises(errors.DisputeOrder):
        dispute.apply(taken_up(), note("gongan"))
    with pytest.raises(errors.DisputeOrder):
        dispute.apply(taken_up(), env("shenpi", "sifa", DisputeSettled(agreed_by=["shenpi", "gongan"],
                                                                        agreement="双方同意")))


def test_a_settlement_is_agreed_by_both_parties() -> None:
    with pytest.raises(errors.NotDisputeParty):
        dispute.apply(opened(), env("shenpi", "sifa", DisputeSettled(agreed_by=["shenpi", "ziran"], agreement="同意")))
    with pytest.raises(errors.NotDisputeParty):  # only a party records it
        dispute.apply(opened(), env("ziran", "sifa", DisputeSettled(agreed_by=["shenpi", "gongan"], agreement="同意")))


def test_sifa_takes_a_dispute_up_only_after_a_failed_negotiation() -> None:
    with pytest.raises(errors.DisputeOrder):
        dispute.apply(dispute.apply(opened(), note("gongan")), referred())
    with pytest.raises(errors.NotDisputeAuthority):
        dispute.apply(failed(), env("shenpi", LEDGER, DisputeReferred(reasons="协商不成")))
    with pytest.raises(errors.NotDisputeAuthority):  # 区司法局's steps are recorded for the ledger
        dispute.apply(failed(), env("sifa", "shenpi", DisputeReferred(reasons="协商不成")))
    assert taken_up().status == "referred"


def test_a_ruling_is_by_sifa_with_bianban_after_referral() -> None:
    with pytest.raises(errors.DisputeOrder):
        dispute.apply(failed(), ruled())
    with pytest.raises(errors.MissingCoDecider):
        dispute.apply(taken_up(), ruled(("sifa", "fagai")))
    with pytest.raises(errors.MissingCoDecider):
        dispute.apply(taken_up(), ruled(("bianban", "fagai")))
    with pytest.raises(errors.NotDisputeAuthority):
        dispute.apply(taken_up(), env("bianban", LEDGER, DisputeRuled(ruling="研究确定",
                                                                      co_deciders=["sifa", "bianban"])))
    st = dispute.apply(taken_up(), ruled(("sifa", "bianban", "fagai")))
    assert (st.status, st.co_deciders, st.adjustment) == ("ruled", ("sifa", "bianban", "fagai"), "")


def test_a_ruling_that_amends_the_catalogue_names_its_adjustment() -> None:
    with pytest.raises(errors.CatalogueAmendment):
        dispute.apply(taken_up(), ruled(amends=True))
    with pytest.raises(errors.CatalogueAmendment):
        dispute.apply(taken_up(), ruled(adjustment="assistance-0002", amends=False))
    assert dispute.apply(taken_up(), ruled(adjustment="matters-0003")).adjustment == "matters-0003"


def test_escalation_is_by_sifa_with_bianban_after_referral_and_before_a_ruling() -> None:
    with pytest.raises(errors.DisputeOrder):
        dispute.apply(failed(), escalated())
    with pytest.raises(errors.DisputeOrder):
        dispute.apply(dispute.apply(taken_up(), ruled()), escalated())
    with pytest.raises(errors.MissingCoDecider):
        dispute.apply(taken_up(), escalated(("sifa",  "fagai")))
    with pytest.raises(errors.NotDisputeAuthority):
        dispute.apply(taken_up(), env("bianban", LEDGER, DisputeEscalated(petitioners=["sifa", "bianban"],
                                                                          reasons="提请区政府")))
    up = dispute.apply(taken_up(), escalated())
    assert up.status == "escalated"
    with pytest.raises(errors.DisputeOrder):  # 区政府 decides it now, not 区司法局
        dispute.apply(up, ruled())


def test_a_decision_comes_only_after_escalation_and_takes_it_into_the_assistance_catalogue() -> None:
    """第八条: 区政府 decides (signed by 区政府办公室, to 区司法局); 区司法局 then takes it into the 行政协助目录."""
    with pytest.raises(errors.DisputeOrder):
        dispute.apply(taken_up(), decided())
    up = dispute.apply(taken_up(), escalated())
    with pytest.raises(errors.NotDisputeAuthority):  # 区司法局 no longer records 区政府's decision for it
        dispute.apply(up, decided(sender="sifa", recipient=LEDGER))
    with pytest.raises(errors.NotDisputeAuthority):
        dispute.apply(up, decided(recipient=LEDGER))
    with pytest.raises(errors.CatalogueAmendment):  # 区政府 names no adjustment: the catalogue is 区司法局's
        dispute.apply(up, decided(adjustment="assistance-0002"))
    with pytest.raises(errors.DisputeOrder):  # nothing is taken in before the decision
        dispute.apply(up, catalogued())
    st = dispute.apply(up, decided())
    assert (st.status, st.decided_by, st.closed) == ("decided", "zhengfuban", False)
    with pytest.raises(errors.CatalogueAmendment):
        dispute.apply(st, catalogued(adjustment=""))
    with pytest.raises(errors.CatalogueAmendment):  # 纳入行政协助目录: the assistance catalogue
        dispute.apply(st, catalogued(adjustment="matters-0002"))
    with pytest.raises(errors.NotDisputeAuthority):
        dispute.apply(st, catalogued(sender="zhengfuban"))
    with pytest.raises(errors.DisputeOrder):
        dispute.apply(st, decided())
    done = dispute.apply(st, catalogued())
    assert (done.status, done.adjustment, done.closed) == ("catalogued", "assistance-0002", True)


@pytest.mark.parametrize("end", ["settled", "ruled", "catalogued"])
def test_nothing_follows_a_settled_ruled_or_decided_dispute(end: str) -> None:
    closing = {
        "settled": lambda: dispute.apply(opened(), env("shenpi", "sifa", DisputeSettled(
            agreed_by=["shenpi", "gongan"], agreement="双方同意"))),
        "ruled": lambda: dispute.apply(taken_up(), ruled()),
        "catalogued": lambda: fold_on(taken_up(), escalated(), decided(), catalogued()),
    }
    st = closing[end]()
    for step in (note("gongan"), referred(), ruled(), escalated(), decided(), catalogued()):
        with pytest.raises(errors.DisputeClosed):
            dispute.apply(st, step)


def test_every_dispute_error_is_a_rule_error_with_a_stable_code() -> None:
    codes = {errors.DisputeRule: "rule.dispute", errors.NotDisputeParty: "rule.dispute.not-party",
             errors.NotDisputeAuthority: "rule.dispute.not-sifa", errors.DisputeCaseMismatch: "rule.dispute.case",
             errors.DisputeOrder: "rule.dispute.order", errors.DisputeClosed: "rule.dispute.closed",
             errors.MissingCoDecider: "rule.dispute.co-deciders",
             errors.CatalogueAmendment: "rule.dispute.amendment", errors.InvalidDispute: "rule.dispute.invalid"}
    for cls, code in codes.items():
        assert issubclass(cls, RuleError) and cls.code == code


# -- through the stores -----------------------------------------------------------------------------------


def item(**changes: Any) -> AssistanceItem:
    fields: dict[str, Any] = dict(
        code="XZ-0001", seq=1, service_matter_name="食品经营许可", service_matter_code="370405-XK-0101",
        item_name="无犯罪记录核查", legal_basis=BASIS, handling_body="shenpi", assisting_body="gongan",
        verification_method="部门间行政协助")
    return AssistanceItem(**{**fields, **changes})


@dataclass
class World:
    """Three bureaus' stores (requester, assistor, 区司法局), the catalogue, and the wire between them."""

    clock: SimulatedClock
    ring: KeyRing
    catalogue: CatalogueRegistry
    stores: dict[str, BureauStore]
    ledger: Ledger
    relayed: dict[str, int] = field(default_factory=dict)
    seq: int = 0

    def __getitem__(self, code: str) -> BureauStore:
        return self.stores[code]

    def relay(self) -> None:
        """Every store's new outgoing events to the ledger, and to the bureau they are addressed to."""
        for code, store in self.stores.items():
            for n, s in store.outgoing_since(self.relayed.get(code, 0), 1000):
                self.relayed[code] = n
                e = self.ring.verify(s)
                self.seq += 1
                self.ledger.append([(s, e, self.seq, self.clock.now())])
                if e.recipient in self.stores:
                    self.stores[e.recipient].accept(s, e, stream_seq=self.seq, arrived_at=self.clock.now())

    def outgoing(self, code: str) -> list[Envelope]:
        return [decode_envelope(s.body) for _, s in self.stores[code].outgoing_since(0, 1000)]


@pytest.fixture
def w(store_location: StoreLocations) -> Iterator[World]:
    clock = SimulatedClock(T0)
    signers: dict[str, Signer] = {c: make_signer(c) for c in ("shenpi", "gongan", "sifa", "zhengfuban")}
    ring = KeyRing([entry(s, valid_from=T0 - timedelta(days=1)) for s in signers.values()])
    catalogue = CatalogueRegistry(None, clock)
    catalogue.review(catalogue.apply_adjustment("assistance", "shenpi", BASIS, adds=[item()]), True)
    catalogue.publish("assistance")
    stores = {c: BureauStore(c, store_location(c), s.sign, clock, catalogue) for c, s in signers.items()}
    ledger = Ledger(store_location("ledger"))
    yield World(clock, ring, catalogue, stores, ledger)
    ledger.close()
    for store in stores.values():
        store.close()


def declined_request(w: World) -> CaseState:
    """shenpi asks gongan under XZ-0001; gongan declines in writing."""
    req = w["shenpi"].assistance.request(assistor="gongan", applicant=APPLICANT,
            matter=Matter(code="X", name="食品经营许可"),
                              applied_on=date(2026, 9, 21), items=ITEMS, catalogue_item="XZ-0001")
    w.relay()
    w.clock.advance(timedelta(hours=2))
    w["gongan"].assistance.decline(req.case, "不属于本机关职权范围", "operator:值班员")
    w.relay()
    return w["shenpi"].assistance.case(req.case).state


def raised_and_failed(w: World) -> DisputeState:
    """shenpi disputes the decline; gongan takes it up; negotiation fails; everything reaches sifa."""
    case = declined_request(w)
    st = w["shenpi"].disputes.raise_dispute(case.case, "拒绝理由与行政协助事项清单不符",
           ["行政协助函 20260001", "XZ-0001"])
    w.relay()
    signed = w["shenpi"].disputes.case(st.case).envelopes[0]
    w["gongan"].disputes.join(signed, w.ring.verify(signed))
    w["gongan"].disputes.negotiate(st.case, "本机关认为该事项应由其他部门核查")
    w.relay()
    w["shenpi"].disputes.negotiate(st.case, "双方不能达成一致", "failed")
    w.relay()
    return st


def test_a_dispute_about_a_decline_is_raised_negotiated_referred_and_ruled_with_a_catalogue_amendment(
        w: World) -> None:
    case = declined_request(w)
    st = w["shenpi"].disputes.raise_dispute(case.case, "拒绝理由与行政协助事项清单不符", ["行政协助函 20260001"])
    assert (st.number, st.raised_by, st.other_party, st.assistance_number) == (NUMBER, "shenpi", "gongan",
                                                                               case.number)
    out = [e for e in w.outgoing("shenpi") if e.type.startswith("dispute.")]
    assert [(e.type, e.recipient) for e in out] == [("dispute.raised", "sifa")]
    w.relay()
    assert [d.number for d in w["sifa"].disputes.cases()] == [NUMBER]
    # The other party takes it up from the signed raise, and both note the negotiation.
    signed = w["shenpi"].disputes.case(st.case).envelopes[0]
    assert w["gongan"].disputes.join(signed, w.ring.verify(signed)).status == "negotiating"
    w["gongan"].disputes.negotiate(st.case, "本机关认为该事项应由其他部门核查")
    w.relay()
    w["shenpi"].disputes.negotiate(st.case, "双方不能达成一致", "failed")
    w.relay()
    at_sifa = w["sifa"].disputes.case(st.case).state
    assert at_sifa.step == "negotiation-failed" and [n.party for n in at_sifa.negotiation] == ["gongan", "shenpi"]
    # 区司法局 takes it up, amends shenpi's row under the dispute, reviews, publishes, rules.
    w["sifa"].disputes.refer(st.case, "双方协商不成，由区司法局会同区委编办研究确定")
    amended = item(notes=f"第八条争议 {NUMBER}：由区公安分局协助核查", reply_within=2)
    adj = w["sifa"].disputes.amend_catalogue(st.case, "assistance", f"第八条争议 {NUMBER} 研究确定意见",
                                             replaces=[amended])
    assert w.catalogue.adjustment(adj).dispute == NUMBER and w.catalogue.adjustment(adj).applicant == "sifa"
    w.catalogue.review(adj, True)
    assert w.catalogue.publish("assistance") == 2
    assert w.catalogue.current("assistance") == [amended]
    done = w["sifa"].disputes.rule(st.case, "由区公安分局依职权协助核查", ["sifa", "bianban"], adjustment=adj)
    assert (done.status, done.adjustment, done.co_deciders) == ("ruled", adj, ("sifa", "bianban"))
    w.relay()
    steps = [(e.type, e.recipient) for e in w.outgoing("sifa")]
    assert steps == [("dispute.referred", LEDGER), ("dispute.ruled", LEDGER)]
    # The next request under the item takes the amended version's time limit.
    again = w["shenpi"].assistance.request(assistor="gongan", applicant=APPLICANT,
              matter=Matter(code="X", name="食品经营许可"),
                                applied_on=date(2026, 9, 22), items=ITEMS, catalogue_item="XZ-0001")
    assert (again.request.catalogue_version, again.request.reply_within) == (2, 2)


def test_the_ledger_shows_a_dispute_readably_and_the_request_names_it(w: World) -> None:
    st = raised_and_failed(w)
    w["sifa"].disputes.refer(st.case, "双方协商不成")
    w["sifa"].disputes.rule(st.case, "由区公安分局协助核查", ["sifa", "bianban"])
    w.relay()
    assert find_cases(w.ledger, NUMBER, "shenpi") == [st.case] and find_cases(w.ledger, NUMBER, "gongan") == []
    h = history(w.ledger, st.case)
    assert h.kind == "dispute" and h.number == NUMBER and h.linked == [st.assistance_case]
    assert isinstance(h.state, DisputeState) and h.state.status == "ruled" and not h.flags
    summaries = [line.summary for line in h.lines]
    assert summaries[0].startswith(f"争议 {NUMBER}: shenpi disputes with gongan about 行政协助函 20260001")
    assert summaries[1:] == ["协商 (gongan, 协商中): 本机关认为该事项应由其他部门核查",
                             "协商 (shenpi, 协商不成): 双方不能达成一致",
                             "协商不成, taken up by sifa: 双方协商不成",
                             "研究确定 by sifa、bianban: 由区公安分局协助核查"]
    assert any(f.startswith("the dispute names request 20260001 shenpi → gongan") for f in h.findings)
    about = history(w.ledger, st.assistance_case)
    assert about.linked == [st.case]
    assert f"第八条: shenpi raised dispute {NUMBER} about this request (case {st.case}): 已研究确定" in about.findings


def test_a_dispute_naming_a_case_the_ledger_does_not_hold_is_flagged(w: World) -> None:
    s = make_signer("shenpi")
    e = env("shenpi", "sifa", raised())
    w.ledger.append([(s.sign(e), e, 1, T0)])
    h = history(w.ledger, CASE)
    assert any(NOT_THE_DISPUTED_CASE in f for f in h.flags)


def test_sifa_accepts_each_dispute_event_once_and_waits_for_the_raise(w: World) -> None:
    case = declined_request(w)
    st = w["shenpi"].disputes.raise_dispute(case.case, "拒绝理由与清单不符")
    raise_signed = w["shenpi"].disputes.case(st.case).envelopes[0]
    w["gongan"].disputes.join(raise_signed, w.ring.verify(raise_signed))
    w["gongan"].disputes.negotiate(st.case, "本机关说明情况")
    note_signed = w["gongan"].disputes.case(st.case).envelopes[-1]
    with pytest.raises(UnknownCase):  # the agent retries it later (an early event)
        w["sifa"].accept(note_signed, w.ring.verify(note_signed), stream_seq=1, arrived_at=w.clock.now())
    w["sifa"].accept(raise_signed, w.ring.verify(raise_signed), stream_seq=2, arrived_at=w.clock.now())
    w["sifa"].accept(note_signed, w.ring.verify(note_signed), stream_seq=3, arrived_at=w.clock.now())
    for s in (raise_signed, note_signed):
        with pytest.raises(DuplicateEvent) as dup:
            w["sifa"].accept(s, w.ring.verify(s), stream_seq=4, arrived_at=w.clock.now())
        assert dup.value.same_bytes
        assert w["sifa"].seen(decode_envelope(s.body).id)
    assert w["sifa"].disputes.case(st.case).state.events == 2


def test_a_dispute_event_at_a_bureau_other_than_sifa_is_a_rule_error(w: World) -> None:
    case = declined_request(w)
    st = w["shenpi"].disputes.raise_dispute(case.case, "拒绝理由与清单不符")
    signed = w["shenpi"].disputes.case(st.case).envelopes[0]
    with pytest.raises(errors.NotDisputeAuthority):
        w["gongan"].accept(signed, w.ring.verify(signed), stream_seq=9, arrived_at=w.clock.now())
    assert not w["gongan"].seen(decode_envelope(signed.body).id)
    with pytest.raises(errors.NotDisputeParty):  # nor can a bureau take up a dispute raised against another
        w["sifa"].disputes.join(signed, w.ring.verify(signed))


def test_only_sifa_takes_up_rules_escalates_and_decides(w: World) -> None:
    st = raised_and_failed(w)
    with pytest.raises(errors.NotDisputeAuthority):
        w["shenpi"].disputes.refer(st.case, "协商不成")
    with pytest.raises(errors.NotDisputeAuthority):
        w["gongan"].disputes.rule(st.case, "研究确定")
    with pytest.raises(errors.NotDisputeAuthority):
        w["shenpi"].disputes.amend_catalogue(st.case, "assistance", "依据", replaces=[item(notes="改")])
    with pytest.raises(errors.DisputeOrder):  # not before 区司法局 has taken it up
        w["sifa"].disputes.amend_catalogue(st.case, "assistance", "依据", replaces=[item(notes="改")])


def test_a_dispute_amends_only_the_rows_of_its_parties(w: World) -> None:
    w.catalogue.review(w.catalogue.apply_adjustment("assistance", "ziran", BASIS, adds=[
        item(code="XZ-0009", seq=1, handling_body="ziran", assisting_body="gongan")]), True)
    w.catalogue.publish("assistance")
    st = raised_and_failed(w)
    w["sifa"].disputes.refer(st.case, "双方协商不成")
    with pytest.raises(errors.CatalogueAmendment):  # ziran lists XZ-0009 and is no party of shenpi with gongan
        w["sifa"].disputes.amend_catalogue(st.case, "assistance", "依据", removes=["XZ-0009"])
    with pytest.raises(errors.CatalogueAmendment):  # nor may shenpi's row be handed to ziran
        w["sifa"].disputes.amend_catalogue(st.case, "assistance", "依据", replaces=[item(handling_body="ziran")])
    adj = w["sifa"].disputes.amend_catalogue(st.case, "assistance", "依据", replaces=[item(assisting_body="ziran")])
    assert w.catalogue.adjustment(adj).replaces == (item(assisting_body="ziran"),)


def test_a_ruling_names_an_adjustment_of_its_own_dispute(w: World) -> None:
    st = raised_and_failed(w)
    w["sifa"].disputes.refer(st.case, "双方协商不成")
    ordinary = w.catalogue.apply_adjustment("assistance", "shenpi", BASIS, replaces=[item(notes="本局调整")])
    with pytest.raises(errors.CatalogueAmendment):
        w["sifa"].disputes.rule(st.case, "研究确定", adjustment=ordinary)
    with pytest.raises(cat.UnknownAdjustment):
        w["sifa"].disputes.rule(st.case, "研究确定", adjustment="assistance-0099")
    with pytest.raises(errors.InvalidDispute):  # a ruling of one character determines nothing
        w["sifa"].disputes.rule(st.case, "定")
    assert w["sifa"].disputes.case(st.case).state.status == "referred"


def test_escalation_and_the_district_decision_take_it_into_the_catalogue(w: World) -> None:
    """第八条: 区政府's decision is its own step, signed by 区政府办公室; 区司法局 then takes it into the catalogue."""
    from agencies.desk import Desk
    from agencies.government import Government, GovernmentError

    st = raised_and_failed(w)
    sifa = w["sifa"]
    government = Government(Desk("zhengfuban", w["zhengfuban"], w.catalogue))
    sifa.disputes.refer(st.case, "双方协商不成")
    w.relay()
    with pytest.raises(GovernmentError, match="not escalated"):
        government.decide(w.ledger, st.case, NUMBER, "区政府决定：由区公安分局协助核查")
    sifa.disputes.escalate(st.case, "涉及部门职责划分，提请区政府决定")
    w.relay()
    with pytest.raises(errors.DisputeOrder):
        sifa.disputes.rule(st.case, "研究确定")
    with pytest.raises(errors.NotDisputeAuthority):  # 区司法局 cannot decide in 区政府's name
        sifa.disputes.decide(st.case, NUMBER, "区政府决定：由区公安分局协助核查")
    government.decide(w.ledger, st.case, NUMBER, "区政府决定：由区公安分局协助核查", "台政字〔2026〕5号")
    with pytest.raises(GovernmentError, match="already decided"):
        government.decide(w.ledger, st.case, NUMBER, "另一决定")
    assert [(e.type, e.sender, e.recipient) for e in w.outgoing("zhengfuban")] == [
        ("dispute.decided", "zhengfuban", "sifa")]
    w.relay()  # the decision reaches 区司法局's file
    decided = sifa.disputes.case(st.case).state
    assert (decided.status, decided.decided_by, decided.decision_no, decided.closed) == (
        "decided", "zhengfuban", "台政字〔2026〕5号", False)
    with pytest.raises(errors.CatalogueAmendment):
        sifa.disputes.take_in(st.case, "")
    amended = item(notes=f"区政府决定（争议 {NUMBER}）：由区公安分局协助核查")
    adj = sifa.disputes.amend_catalogue(st.case, "assistance", f"区政府关于争议 {NUMBER} 的决定", replaces=[amended])
    w.catalogue.review(adj, True)
    version = w.catalogue.publish("assistance")
    done = sifa.disputes.take_in(st.case, adj)
    assert (done.status, done.adjustment, done.closed) == ("catalogued", adj, True)
    assert w.catalogue.current("assistance") == [amended] and version == 2
    w.relay()
    assert [e.type for e in w.outgoing("sifa")] == ["dispute.referred", "dispute.escalated", "dispute.catalogued"]
    h = history(w.ledger, st.case)
    assert not h.flags and isinstance(h.state, DisputeState) and h.state.status == "catalogued"
    assert [line.summary for line in h.lines][-3:] == [
        "提请区政府决定 by sifa、bianban: 涉及部门职责划分，提请区政府决定",
        "区政府决定 台政字〔2026〕5号, by zhengfuban: 区政府决定：由区公安分局协助核查",
        f"区政府决定纳入行政协助目录 by sifa: adjustment {adj}"]


def test_a_settled_dispute_is_closed_at_sifa_too(w: World) -> None:
    case = declined_request(w)
    st = w["shenpi"].disputes.raise_dispute(case.case, "拒绝理由与清单不符")
    w["shenpi"].disputes.settle(st.case, "区公安分局同意于3个工作日内回复")
    w.relay()
    at_sifa = w["sifa"].disputes.case(st.case).state
    assert (at_sifa.status, at_sifa.agreed_by) == ("settled", ("shenpi", "gongan"))
    with pytest.raises(errors.DisputeClosed):
        w["sifa"].disputes.refer(st.case, "协商不成")


def test_dispute_numbers_are_a_series_of_the_raising_bureau(w: World) -> None:
    case = declined_request(w)
    numbers = [w["shenpi"].disputes.raise_dispute(case.case, f"争议事项 {i}").number for i in range(2)]
    assert numbers == ["D20260001", "D20260002"]
    assert w["gongan"].disputes.raise_dispute(case.case, "请求机关的请求超出清单").number == "D20260001"
    assert decode_envelope(w["gongan"].outgoing_since(0, 1000)[-1][1].body).number == "D20260001"


def test_the_raise_must_fit_its_schema(w: World) -> None:
    case = declined_request(w)
    with pytest.raises(errors.InvalidDispute):
        w["shenpi"].disputes.raise_dispute(case.case, "x")  # a claim of one character says nothing
    with pytest.raises(errors.InvalidDispute):
        w["shenpi"].disputes.raise_dispute(case.case, "拒绝理由与清单不符", ["附件"] * 21)


# -- the catalogue: sifa changes another bureau's rows only under a dispute -----------------------------


def test_sifa_changes_another_bureaus_rows_only_when_it_carries_a_dispute(w: World) -> None:
    reg = w.catalogue
    with pytest.raises(cat.NotOwner):
        reg.apply_adjustment("assistance", "sifa", BASIS, replaces=[item(notes="区司法局调整")])
    with pytest.raises(cat.NotOwner):
        reg.apply_adjustment("assistance", "sifa", BASIS, removes=["XZ-0001"])
    with pytest.raises(cat.NotOwner):  # a dispute number does not let any other bureau do it
        reg.apply_adjustment("assistance", "gongan", BASIS, replaces=[item(notes="公安调整")], dispute=NUMBER)
    adj = reg.apply_adjustment("assistance", "sifa", BASIS, replaces=[item(notes="研究确定")], dispute=NUMBER)
    assert reg.adjustment(adj).dispute == NUMBER and reg.adjustment(adj).status == "pending"
    ev = AdjustmentApplied(id="assistance-0003", kind="assistance", applicant="sifa", basis=BASIS,
                               adds=[item(code="XZ-0002", seq=2)], applied_at=T0, dispute="20260001")
    with pytest.raises(msgspec.ValidationError):  # the dispute field holds a dispute number
        msgspec.convert(msgspec.to_builtins(ev), AdjustmentApplied)


def test_an_adjustment_without_a_dispute_decodes_as_before() -> None:
    old = (b'{"type":"catalogue.adjustment-applied","id":"assistance-0001","kind":"assistance","applicant":"shenpi",'
           b'"basis":"b","removes":["XZ-0001"],"applied_at":"2026-09-21T01:00:00Z"}')
    ev = decode_event(old)
    assert isinstance(ev, AdjustmentApplied) and ev.dispute == ""


def test_a_signed_dispute_raise_round_trips_on_the_wire() -> None:
    s = make_signer("shenpi")
    e = env("shenpi", "sifa", raised())
    signed: Signed = s.sign(e)
    assert KeyRing([entry(s)]).verify(signed) == e


# -- over NATS: the sifa agent keeps the file, the ledger records it -------------------------------------


async def test_over_nats_a_disputed_decline_reaches_sifa_and_the_ruling_amends_the_catalogue(
        settings: Settings, registry: Registry, clock: SimulatedClock) -> None:
    """The demo's dispute: raised at the requester, negotiated, taken up and ruled by 区司法局's agent and store."""
    node = make_node(settings, registry, clock, agents=("shenpi", "ziran", "sifa"))
    await node.start()
    try:
        st = node.store("shenpi").assistance.request(
            assistor="ziran", applicant=APPLICANT, matter=Matter(code="370405-XK-0101", name="食品经营许可"),
            applied_on=date(2026, 9, 21), items=ITEMS, catalogue_item=CONFTEST_ITEMS["ziran"])
        node.wake_relays()
        await node.settle()
        node.store("ziran").assistance.decline(st.case, "不属于本机关职权范围，请向区公安分局核实。", "operator:王伟")
        await node.settle()
        summary = await dispute_a_decline(node, "shenpi")
        assert summary is not None
        assert {k: summary[k] for k in ("number", "raised_by", "other_party", "about", "status")} == {
            "number": NUMBER, "raised_by": "shenpi", "other_party": "ziran", "about": st.number, "status": "ruled"}
        at_sifa = next(node.store("sifa").disputes.cases())
        assert (at_sifa.status, at_sifa.adjustment, len(at_sifa.negotiation)) == ("ruled", summary["adjustment"], 2)
        assert node.catalogue.adjustment(summary["adjustment"]).dispute == NUMBER
        assert node.catalogue.item(CONFTEST_ITEMS["ziran"]).notes.startswith(f"附件2第八条争议 {NUMBER}")
        assert summary["catalogue_version"] == 2
        assert node.ledger is not None
        [case] = find_cases(node.ledger, NUMBER, "shenpi")
        h = history(node.ledger, case)
        assert [(line.type, line.sender, line.recipient) for line in h.lines] == [
            ("dispute.raised", "shenpi", "sifa"), ("dispute.negotiation-recorded", "ziran", "sifa"),
            ("dispute.negotiation-recorded", "shenpi", "sifa"), ("dispute.referred", "sifa", LEDGER),
            ("dispute.ruled", "sifa", LEDGER)]
        assert not h.flags
        intake = node.agents["sifa"].intake
        assert intake is not None and intake.stats.rejected == 0 and intake.stats.applied == 3
    finally:
        await node.stop()


def test_dispute_show_reads_at_80_columns(w: World, monkeypatch: pytest.MonkeyPatch,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    from rich.text import Text

    from xiezhu.cli.common import print_history as _print_history

    st = raised_and_failed(w)
    w["sifa"].disputes.refer(st.case, "双方协商不成")
    w["sifa"].disputes.rule(st.case, "由区公安分局协助核查", ["sifa", "bianban"])
    w.relay()
    h = history(w.ledger, st.case)
    monkeypatch.setenv("COLUMNS", "80")
    monkeypatch.delenv("XIEZHU_LANG", raising=False)
    _print_history(h, f"争议 {h.number}")
    text = capsys.readouterr().out
    assert max(Text(line).cell_len for line in text.splitlines()) <= 80 and "…" not in text
    positions = [line.split("│")[1].strip() for line in text.splitlines() if line.startswith("│")]
    assert [p for p in positions if p] == [str(line.pos) for line in h.lines]  # every event, its position whole
    assert "审批 → 司法" in text or "区审批服务局 → 区司法局" in text
