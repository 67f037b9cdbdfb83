"""A dispute about an assistance case (附件2 第八条) as a pure fold over signed envelopes.

The path of 第八条, and who may take each step:

- ``raised``: a party of the assistance case (its requester or its assistor) raises the dispute
  against the other party, addressed to 区司法局 (``sifa``).  The two parties differ and neither
  is 区司法局.  Where the raising bureau's store holds the assistance case, the raise must match
  it (number, requester, assistor): pass its state to :func:`start`.
- ``negotiation-recorded``: either party notes the negotiation (协商), addressed to 区司法局,
  while the dispute is being negotiated.  A note with the outcome ``failed`` records 协商不成;
  the parties may still note or settle until 区司法局 takes the dispute up.
- ``settled``: 协商解决 — agreed by both parties, signed by one of them; the dispute is closed.
- ``referred``: 区司法局 takes the dispute up, only after a failed negotiation.
- ``ruled``: 区司法局会同区委编办等有关部门研究确定 — by 区司法局, with ``sifa`` and ``bianban`` among
  the co-deciders, after referral; closes the dispute.  A ruling that amends the catalogue
  names the adjustment it led to, and one that names an adjustment says it amends.
- ``escalated``: 区司法局 and 区委编办 ask 区政府 to decide, after referral and before a ruling.
- ``decided``: 区政府's decision after the escalation, signed by 区政府办公室 (``zhengfuban``, through
  which 区政府 acts) and sent to 区司法局; it names no adjustment, since 区司法局 keeps the catalogue.
- ``catalogued``: 决定作出后纳入行政协助目录 — 区司法局 names the assistance-catalogue adjustment
  that takes the decision in (decision 51).  Closes the dispute.

The parties' steps and 区政府's decision are addressed to ``sifa``; 区司法局's own steps to the ledger.
"""
from __future__ import annotations

from datetime import datetime
from typing import Literal

import msgspec

from aggregates import errors
from aggregates.assistance import CaseState
from aggregates.registry import zh_name
from schemas import labels
from schemas.catalogue import JUSTICE, STAFFING_OFFICE
from schemas.dispute import (
    DecisionCatalogued,
    DisputeEscalated,
    DisputeRaised,
    DisputeReferred,
    DisputeRuled,
    DisputeSettled,
    DistrictDecided,
    NegotiationRecorded,
    Outcome,
)
from schemas.envelope import LEDGER, Envelope
from schemas.sla import DISTRICT_GOVERNMENT

Status = Literal["negotiating", "settled", "referred", "ruled", "escalated", "decided", "catalogued"]
#: A dispute in one of these takes no further step.
CLOSED: frozenset[str] = frozenset({"settled", "ruled", "catalogued"})


class NegotiationNote(msgspec.Struct, frozen=True, kw_only=True):
    """One party's note of the negotiation."""

    party: str
    note: str
    outcome: Outcome
    at: datetime


class DisputeState(msgspec.Struct, frozen=True, kw_only=True):
    """What is known of one dispute after folding its events."""

    case: str
    number: str
    raised_by: str
    other_party: str
    requester: str
    assistor: str
    assistance_case: str
    assistance_number: str
    claim: str
    evidence: tuple[str, ...]
    raised_at: datetime
    status: Status = "negotiating"
    negotiation: tuple[NegotiationNote, ...] = ()
    #: A party recorded 协商不成; 区司法局 may take the dispute up.
    negotiation_failed: bool = False
    agreement: str = ""
    agreed_by: tuple[str, ...] = ()
    referral: str = ""
    referred_at: datetime | None = None
    ruling: str = ""
    co_deciders: tuple[str, ...] = ()
    escalation: str = ""
    petitioners: tuple[str, ...] = ()
    escalated_at: datetime | None = None
    decision: str = ""
    decision_no: str = ""
    #: Who signed the decision (区政府办公室).
    decided_by: str = ""
    decided_at: datetime | None = None
    #: The catalogue adjustment the ruling or the decision led to ("" if none).
    adjustment: str = ""
    closed_at: datetime | None = None
    events: int = 1

    @property
    def parties(self) -> tuple[str, str]:
        """The raising bureau and the other party."""
        return self.raised_by, self.other_party

    @property
    def step(self) -> str:
        """The status, with a failed negotiation shown as ``negotiation-failed``."""
        if self.status == "negotiating" and self.negotiation_failed:
            return "negotiation-failed"
        return self.status

    @property
    def closed(self) -> bool:
        """Settled, ruled, or decided and taken into the catalogue: nothing more can happen."""
        return self.status in CLOSED


def start(env: Envelope, case: CaseState | None = None) -> DisputeState:
    """Open a dispute from its raise; with ``case``, the raise must match that assistance case."""
    ev = env.payload
    if not isinstance(ev, DisputeRaised):
        raise errors.NotFirst(f"dispute {env.case} must start with dispute.raised, not {env.type}",
                              zh=f"争议 {env.case} 须以 dispute.raised 开始，而不是 {env.type}")
    if env.recipient != JUSTICE:
        raise errors.NotDisputeAuthority(f"第八条: a dispute is raised with {JUSTICE}, not sent to {env.recipient}",
                                         zh=f"第八条：争议向{zh_name(JUSTICE)}提出，不发往{zh_name(env.recipient)}")
    if env.sender != ev.raised_by:
        raise errors.NotDisputeParty(f"{env.sender} cannot raise a dispute in the name of {ev.raised_by}",
                                     zh=f"{zh_name(env.sender)}不能以{zh_name(ev.raised_by)}的名义提出争议")
    if ev.requester == ev.assistor:
        raise errors.DisputeCaseMismatch(f"dispute {env.number}: the requester and the assistor are both "
                                         f"{ev.requester}",
                                         zh=f"争议 {env.number}：提出方和协助方都是{zh_name(ev.requester)}")
    if ev.raised_by == ev.other_party:
        raise errors.NotDisputeParty(f"dispute {env.number}: {ev.raised_by} cannot dispute with itself",
                                     zh=f"争议 {env.number}：{zh_name(ev.raised_by)}不能与自身发生争议")
    if JUSTICE in (ev.raised_by, ev.other_party):
        raise errors.NotDisputeParty(f"第八条: {JUSTICE} determines disputes between the parties; it is not one",
                                     zh=f"第八条：{zh_name(JUSTICE)}协调处理双方之间的争议；其本身不是争议一方")
    if {ev.raised_by, ev.other_party} != {ev.requester, ev.assistor}:
        raise errors.NotDisputeParty(
            f"dispute {env.number}: only {ev.requester} and {ev.assistor}, the parties of request "
            f"{ev.assistance_number}, dispute it; not {ev.raised_by} with {ev.other_party}",
            zh=f"争议 {env.number}："
               f"只有请求 {ev.assistance_number} 的双方{zh_name(ev.requester)}和{zh_name(ev.assistor)}可以提出争议；"
               f"{zh_name(ev.raised_by)}与{zh_name(ev.other_party)}不能")
    if case is not None:
        check_case(env, ev, case)
    return DisputeState(
        case=env.case, number=env.number, raised_by=ev.raised_by, other_party=ev.other_party,
        requester=ev.requester, assistor=ev.assistor, assistance_case=ev.assistance_case,
        assistance_number=ev.assistance_number, claim=ev.claim, evidence=tuple(ev.evidence), raised_at=env.time,
    )


def check_case(env: Envelope, ev: DisputeRaised, case: CaseState) -> None:
    """The raise names ``case`` as it is: case id, letter number, requester and assistor."""
    named = (ev.assistance_case, ev.assistance_number, ev.requester, ev.assistor)
    actual = (case.case, case.number, case.requester, case.assistor)
    if named != actual:
        raise errors.DisputeCaseMismatch(
            f"dispute {env.number} names request {ev.assistance_number} {ev.requester}→{ev.assistor} "
            f"(case {ev.assistance_case}), but that case is {case.number} {case.requester}→{case.assistor} "
            f"(case {case.case})",
            zh=f"争议 {env.number} 写明的请求是 {ev.assistance_number} {zh_name(ev.requester)}→{zh_name(ev.assistor)}"
               f"（案件 {ev.assistance_case}），"
               f"但该案件是 {case.number} {zh_name(case.requester)}→{zh_name(case.assistor)}（案件 {case.case}）")


def apply(state: DisputeState | None, env: Envelope) -> DisputeState:
    """Fold one more envelope into the dispute; raises a RuleError if it breaks a rule."""
    if state is None:
        return start(env)
    ev = env.payload
    if isinstance(ev, DisputeRaised):
        raise errors.NotFirst(f"dispute {state.number} was already raised", zh=f"争议 {state.number} 已提出")
    if state.closed:
        raise errors.DisputeClosed(f"dispute {state.number} is {state.status}; it takes no further step",
                                   zh=f"争议 {state.number} 为“{labels.DISPUTE_STEP.get(state.status, state.status)}”；"
                                      "不再进行后续步骤",
                                   status=state.status)
    match ev:
        case NegotiationRecorded():
            return _negotiated(state, env, ev)
        case DisputeSettled():
            return _settled(state, env, ev)
        case DisputeReferred():
            _by_justice(state, env, "takes a dispute up", "受理争议")
            if state.status != "negotiating" or not state.negotiation_failed:
                raise errors.DisputeOrder(f"第八条: 协商不成的 only — dispute {state.number} is {state.step}",
                                          zh="第八条："
                                             f"仅限协商不成的争议——争议 {state.number} 为"
                                             f"{labels.DISPUTE_STEP.get(state.step, state.step)}")
            return _next(state, status="referred", referral=ev.reasons, referred_at=env.time)
        case DisputeRuled():
            return _ruled(state, env, ev)
        case DisputeEscalated():
            _by_justice(state, env, "asks 区政府 to decide", "提请区政府决定")
            if state.status != "referred":
                raise errors.DisputeOrder(f"dispute {state.number} is {state.step}; only a dispute taken up "
                                          "and not yet ruled is escalated",
                                          zh=f"争议 {state.number} 为"
                                             f"“{labels.DISPUTE_STEP.get(state.step, state.step)}”"
                                             "；只有已受理且尚未研究确定的争议才能报请")
            _with_staffing_office(state, ev.petitioners, "asks 区政府 to decide", "提请区政府决定")
            return _next(state, status="escalated", escalation=ev.reasons, petitioners=tuple(ev.petitioners),
                         escalated_at=env.time)
        case DistrictDecided():
            return _decided(state, env, ev)
        case DecisionCatalogued():
            return _catalogued(state, env, ev)
    raise errors.DisputeOrder(f"event type {env.type} does not belong to a dispute",
                              zh=f"事件类型 {env.type} 不属于争议")


def _next(state: DisputeState, **changes: object) -> DisputeState:
    return msgspec.structs.replace(state, events=state.events + 1, **changes)


def _by_party(state: DisputeState, env: Envelope, what: str, what_zh: str) -> None:
    if env.sender not in state.parties:
        raise errors.NotDisputeParty(f"only {state.raised_by} and {state.other_party} {what} dispute "
                                     f"{state.number}, not {env.sender}",
                                     zh=f"只有{zh_name(state.raised_by)}和{zh_name(state.other_party)}可以就争议 "
                                        f"{state.number} {what_zh}，{zh_name(env.sender)}不能")
    if env.recipient != JUSTICE:
        raise errors.NotDisputeAuthority(f"a party's step of dispute {state.number} goes to {JUSTICE}, "
                                         f"not {env.recipient}",
                                         zh=f"争议 {state.number} 中当事方的步骤报送{zh_name(JUSTICE)}，"
                                            f"不发往{zh_name(env.recipient)}")


def _by_justice(state: DisputeState, env: Envelope, what: str, what_zh: str) -> None:
    if env.sender != JUSTICE:
        raise errors.NotDisputeAuthority(f"第八条: only {JUSTICE} {what}; not {env.sender}",
                                         zh=f"第八条：只有{zh_name(JUSTICE)}可以{what_zh}；"
                                            f"{zh_name(env.sender)}不能", actor=env.sender)
    if env.recipient != LEDGER:
        raise errors.NotDisputeAuthority(f"{JUSTICE}'s steps of dispute {state.number} are recorded for the "
                                         f"ledger, not sent to {env.recipient}",
                                         zh=f"{zh_name(JUSTICE)}在争议 {state.number} 中的步骤记入账本，"
                                            f"不发往{zh_name(env.recipient)}")


def _with_staffing_office(state: DisputeState, units: list[str], what: str, what_zh: str) -> None:
    missing = [u for u in (JUSTICE, STAFFING_OFFICE) if u not in units]
    if missing:
        raise errors.MissingCoDecider(f"第八条: {JUSTICE} and {STAFFING_OFFICE} together {what} "
                                      f"(dispute {state.number}); missing {', '.join(missing)}",
                                      zh=f"第八条：{zh_name(JUSTICE)}会同{zh_name(STAFFING_OFFICE)}{what_zh}"
                                         f"（争议 {state.number}）；"
                                         f"缺少{'、'.join(zh_name(x) for x in missing)}", missing=missing)
    if len(set(units)) != len(units):
        raise errors.MissingCoDecider(f"dispute {state.number}: a unit is named twice in {units}",
                                      zh=f"争议 {state.number}："
                                         f"{'、'.join(zh_name(u) for u in units)} 中有单位重复列出")


def _negotiated(state: DisputeState, env: Envelope, ev: NegotiationRecorded) -> DisputeState:
    _by_party(state, env, "negotiate", "协商")
    if ev.party != env.sender:
        raise errors.NotDisputeParty(f"{env.sender} cannot note the negotiation for {ev.party}",
                                     zh=f"{zh_name(env.sender)}不能代{zh_name(ev.party)}记录协商情况")
    if state.status != "negotiating":
        raise errors.DisputeOrder(f"dispute {state.number} is {state.step}; the parties no longer negotiate",
                                  zh=f"争议 {state.number} 为“{labels.DISPUTE_STEP.get(state.step, state.step)}”；"
                                     "双方不再协商")
    note = NegotiationNote(party=ev.party, note=ev.note, outcome=ev.outcome, at=env.time)
    return _next(state, negotiation=(*state.negotiation, note),
                 negotiation_failed=state.negotiation_failed or ev.outcome == "failed")


def _settled(state: DisputeState, env: Envelope, ev: DisputeSettled) -> DisputeState:
    _by_party(state, env, "settle", "协商解决")
    if sorted(ev.agreed_by) != sorted(state.parties):
        raise errors.NotDisputeParty(f"协商解决: dispute {state.number} is settled by {state.raised_by} and "
                                     f"{state.other_party} together, not by {ev.agreed_by}",
                                     zh="协商解决："
                                        f"争议 {state.number} 由{zh_name(state.raised_by)}和"
                                        f"{zh_name(state.other_party)}共同确认解决，而不是由 {ev.agreed_by}")
    if state.status != "negotiating":
        raise errors.DisputeOrder(f"dispute {state.number} is {state.step}; only a negotiated dispute is settled",
                                  zh=f"争议 {state.number} 为“{labels.DISPUTE_STEP.get(state.step, state.step)}”；"
                                     "只有协商中的争议才能协商解决")
    return _next(state, status="settled", agreement=ev.agreement, agreed_by=tuple(ev.agreed_by),
                 closed_at=env.time)


def _ruled(state: DisputeState, env: Envelope, ev: DisputeRuled) -> DisputeState:
    _by_justice(state, env, "rules on a dispute", "研究确定争议")
    if state.status != "referred":
        raise errors.DisputeOrder(f"dispute {state.number} is {state.step}; {JUSTICE} rules on a dispute it "
                                  "took up and did not escalate",
                                  zh=f"争议 {state.number} 为“{labels.DISPUTE_STEP.get(state.step, state.step)}”；"
                                     f"{zh_name(JUSTICE)}只对已受理且未报请区政府的争议研究确定")
    _with_staffing_office(state, ev.co_deciders, "determine a dispute (会同区委编办研究确定)", "会同研究确定争议")
    if ev.amends_catalogue and not ev.adjustment:
        raise errors.CatalogueAmendment(f"the ruling of dispute {state.number} amends the catalogue but names "
                                        "no adjustment",
                                        zh=f"争议 {state.number} 的研究确定意见调整目录，但未写明调整申请")
    if ev.adjustment and not ev.amends_catalogue:
        raise errors.CatalogueAmendment(f"the ruling of dispute {state.number} names adjustment {ev.adjustment} "
                                        "but does not say it amends the catalogue",
                                        zh=f"争议 {state.number} 的研究确定意见写明了调整申请 {ev.adjustment}，"
                                           "但未说明其调整目录")
    return _next(state, status="ruled", ruling=ev.ruling, co_deciders=tuple(ev.co_deciders),
                 adjustment=ev.adjustment, closed_at=env.time)


def _decided(state: DisputeState, env: Envelope, ev: DistrictDecided) -> DisputeState:
    if env.sender != DISTRICT_GOVERNMENT:
        raise errors.NotDisputeAuthority(f"第八条: 区政府 decides, through 区政府办公室 ({DISTRICT_GOVERNMENT}); "
                                         f"not {env.sender}",
                                         zh=f"第八条：区政府通过区政府办公室（{DISTRICT_GOVERNMENT}）作出决定；"
                                            f"不是{zh_name(env.sender)}", actor=env.sender)
    if env.recipient != JUSTICE:
        raise errors.NotDisputeAuthority(f"区政府's decision of dispute {state.number} goes to {JUSTICE}, "
                                         f"not {env.recipient}",
                                         zh=f"区政府对争议 {state.number} 的决定送{zh_name(JUSTICE)}，"
                                            f"不发往{zh_name(env.recipient)}")
    if state.status != "escalated":
        raise errors.DisputeOrder(f"dispute {state.number} is {state.step}; 区政府 decides only an escalated dispute",
                                  zh=f"争议 {state.number} 为“{labels.DISPUTE_STEP.get(state.step, state.step)}”；"
                                     "区政府只对已报请的争议作出决定")
    if ev.adjustment:
        raise errors.CatalogueAmendment(f"区政府's decision of dispute {state.number} names no adjustment; "
                                        f"{JUSTICE} takes it into the catalogue",
                                        zh=f"区政府对争议 {state.number} 的决定未写明调整申请；"
                                           f"由{zh_name(JUSTICE)}纳入目录")
    return _next(state, status="decided", decision=ev.decision, decision_no=ev.decision_no,
                 decided_by=env.sender, decided_at=env.time)


def _catalogued(state: DisputeState, env: Envelope, ev: DecisionCatalogued) -> DisputeState:
    _by_justice(state, env, "takes 区政府's decision into the catalogue", "将区政府的决定纳入目录")
    if state.status != "decided":
        raise errors.DisputeOrder(f"dispute {state.number} is {state.step}; only 区政府's decision is taken into "
                                  "the 行政协助目录",
                                  zh=f"争议 {state.number} 为“{labels.DISPUTE_STEP.get(state.step, state.step)}”；"
                                     "只有区政府的决定才纳入行政协助目录")
    if not ev.adjustment.startswith("assistance-"):
        raise errors.CatalogueAmendment(
            f"第八条: 决定作出后纳入行政协助目录 — dispute {state.number} names the adjustment of the "
            f"行政协助事项清单 that takes the decision in, not {ev.adjustment or 'none'}",
            zh=f"第八条：决定作出后纳入行政协助目录——争议 {state.number} 须写明将该决定纳入的行政协助事项清单调整申请，"
               f"而不是 {ev.adjustment or '无'}")
    return _next(state, status="catalogued", adjustment=ev.adjustment, closed_at=env.time)
