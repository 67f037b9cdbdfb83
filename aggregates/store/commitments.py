"""Commitment cases (告知承诺) in the handling bureau's store, and the commands that move them.

Every step is a signed envelope addressed to the 司法局 ledger; the aggregate keeps the
envelopes and its state is the fold of :mod:`aggregates.commitment`.
"""
from __future__ import annotations

from collections.abc import Iterator, Sequence
from datetime import date, datetime
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

import msgspec

from aggregates import commitment
from aggregates.assistance import CaseState
from aggregates.commitment import CommitmentState, licence_return_deadline
from aggregates.errors import CreditRule, RuleError
from aggregates.registry import zh_name
from aggregates.store.base import BureauApplication, SignedCase, UnknownCase, retry_on_conflict, topic
from aggregates.store.notices import Notice
from schemas.assistance import Applicant, CommitmentItem, Verdict
from schemas.commitment import (
    SUPERVISION_PREFIX,
    ApplicationReceived,
    Approved,
    Closed,
    CommitmentEvent,
    CommitmentSigned,
    CreditObjectionRaised,
    CreditObjectionReviewed,
    CreditRecorded,
    CreditRepairApplied,
    CreditRepairApproved,
    CreditRepairRejected,
    DecisionRevoked,
    FalseCommitmentFound,
    ItemVerified,
    LicenceReturned,
    Mode,
    NoticeIssued,
    PenaltyImposed,
    PlannedItem,
    ProcessingTerminated,
    PunishmentReferral,
    RectificationOrdered,
    Rectified,
    ReferredToJudiciary,
    ReviewOutcome,
    RouteChosen,
    RouteRefused,
    Standing,
    SupervisorNotified,
    VerificationPlanned,
    Withdrawn,
)
from schemas.envelope import LEDGER, Envelope, new_id


class CommitmentCase(SignedCase):
    """One commitment case of the handling bureau (every envelope is its own: ``Opened`` and ``Sent``)."""

    if TYPE_CHECKING:
        state: CommitmentState

    @classmethod
    def _start(cls, env: Envelope, digest: str) -> CommitmentState:
        return commitment.start(env)

    @classmethod
    def _next(cls, state: Any, env: Envelope, digest: str) -> CommitmentState:
        return commitment.apply(state, env)


class RequestsMade(Protocol):
    """The assistance requests this bureau made (:class:`aggregates.store.assistance.AssistanceCases`)."""

    def for_commitment(self, commitment_case: str) -> list[CaseState]: ...

    def withdraw(self, case_id: str, reason: str) -> CaseState: ...


class CommitmentCases:
    """What a handling bureau's clerk does with a commitment case, and the queries."""

    def __init__(self, app: BureauApplication) -> None:
        self._app = app
        #: Set by the facade once the assistance cases exist: withdrawing a commitment withdraws its requests.
        self.requests: RequestsMade | None = None

    def open(self, *, applicant: Applicant, matter_code: str, matter_name: str, certificate_name: str,
             issuing_unit: str, mode: Mode, items: Sequence[CommitmentItem], applied_on: date,
             disclose: bool = False, catalogue_version: int = 0, standing: Standing = "good",
             service_matter_code: str = "") -> CommitmentState:
        """Record an application for a matter on the certification-matter list; takes a ``C`` number.

        Where the store has the published catalogue (the composition root always gives it), the
        matter must be on the 附件8 list for this bureau, and its 实施方式, disclosure flag, names and
        version come from the list, not from the caller (一(三), 二(四)).  Where the credit view is
        wired in, the 四(二) gate reads it: the caller's ``standing`` can only make it worse (e.g.
        serious bad credit known from the public credit platform), never better.
        """
        app = self._app
        if app.catalogue is not None:
            row, catalogue_version = app.catalogue.check_matter(app.bureau, matter_code)
            matter_code, matter_name, mode, disclose = row.code, row.service_matter_name, row.mode, \
                row.disclose_commitment
            certificate_name, issuing_unit = row.certificate_name, row.issuing_unit
            service_matter_code = row.service_matter_code
        if app.credit is not None:
            standing = commitment.worse(standing, app.credit.standing(applicant.id_number, app.clock.now()))
        payload = ApplicationReceived(
            applicant=applicant, matter_code=matter_code, matter_name=matter_name,
            service_matter_code=service_matter_code, certificate_name=certificate_name, issuing_unit=issuing_unit,
            mode=mode, disclose=disclose,
            catalogue_version=catalogue_version, items=list(items), applied_on=applied_on, standing=standing)

        def attempt() -> CommitmentState:
            series, number, now = app.next_number("C")
            env = Envelope(id=new_id(), sender=app.bureau, recipient=LEDGER, case=new_id(),
                           number=number, time=now, payload=payload)
            case = CommitmentCase.open(app.sign(env), env, outgoing=True)
            app.save(series, case)  # conflicts if another writer took the number: take the next
            return case.state
        return retry_on_conflict(attempt, f"{app.bureau}'s commitment case numbers")

    def case(self, case_id: str) -> CommitmentCase:
        """Load one commitment case (a :class:`RuleError` if there is none: the step cannot be taken)."""
        try:
            case = self._app.load(case_id, "commitment case")
        except UnknownCase as e:
            raise RuleError(f"no commitment case {case_id!r} in {self._app.bureau}'s store",
                            zh=f"{zh_name(self._app.bureau)}的存储中没有告知承诺案件 {case_id!r}") from e
        if not isinstance(case, CommitmentCase):
            raise RuleError(f"{case_id} is not a commitment case", zh=f"{case_id} 不是告知承诺案件")
        return case

    def cases(self) -> Iterator[CommitmentState]:
        """Every commitment case of this bureau, oldest first."""
        for n in self._app.notifications([topic(CommitmentCase.Opened)]):
            yield self.case(str(n.originator_id)).state

    def stage(self, case: CommitmentCase, payload: CommitmentEvent) -> None:
        """Sign one step and add it to ``case`` without saving (the caller saves, in one transaction)."""
        app = self._app
        env = Envelope(id=new_id(), sender=app.bureau, recipient=LEDGER, case=case.state.case,
                       number=case.state.number, time=app.clock.now(), payload=payload)
        case.add(app.sign(env), env, outgoing=True)

    def record(self, case_id: str, payload: CommitmentEvent, *, extra: Sequence[Any] = (),
               also: Sequence[CommitmentEvent] = ()) -> CommitmentState:
        """Sign and record one step of a commitment case (with ``also`` steps after it and other aggregates,
        in one transaction)."""
        def attempt() -> CommitmentState:
            case = self.case(case_id)
            for step in (payload, *also):
                self.stage(case, step)
            self._app.save(case, *extra)  # conflicts if the agent recorded a verification meanwhile
            return case.state
        return retry_on_conflict(attempt, f"commitment case {case_id}")

    # -- the steps, by name --------------------------------------------------------------

    def refuse_route(self, case_id: str, cause: str, legal_reason: str) -> CommitmentState:
        """四(二) credit gate, or 二(四) refused disclosure: the certificate is required."""
        return self.record(case_id, RouteRefused(cause=cause, legal_reason=legal_reason))  # type: ignore[arg-type]

    def issue_notice(self, case_id: str) -> CommitmentState:
        """承诺告知书 (附件6); tells the applicant about disclosure where the catalogue requires it."""
        return self.record(case_id, NoticeIssued(told_disclosure=self.case(case_id).state.disclose))

    def choose_route(self, case_id: str, route: str) -> CommitmentState:
        """The applicant's choice for a 可选择 matter."""
        return self.record(case_id, RouteChosen(route=route))  # type: ignore[arg-type]

    def sign(self, case_id: str, signed_on: date) -> CommitmentState:
        """申请人承诺书 (附件7) signed."""
        return self.record(case_id, CommitmentSigned(signed_on=signed_on))

    def approve(self, case_id: str, decision_no: str) -> CommitmentState:
        """The matter is approved on the commitment."""
        return self.record(case_id, Approved(decision_no=decision_no))

    def withdraw(self, case_id: str, reason: str) -> CommitmentState:
        """二(三): the applicant leaves the commitment route; open assistance requests are withdrawn too."""
        state = self.record(case_id, Withdrawn(reason=reason))
        requests = self.requests
        if requests is not None:
            for st in requests.for_commitment(case_id):
                if st.status in ("requested", "received"):
                    requests.withdraw(st.case, f"申请人已退出告知承诺办理（{state.number}），不再需要核查。")
        return state

    def plan_verification(self, case_id: str, items: Sequence[PlannedItem]) -> CommitmentState:
        """三(一): method, due date and exemption per committed item."""
        return self.record(case_id, VerificationPlanned(items=list(items)))

    def verify_item(self, case_id: str, no: int, verdict: Verdict, source: str, reason: str = "") -> CommitmentState:
        """Record one verification result (online, on site, or from an assistance reply)."""
        return self.record(case_id, ItemVerified(no=no, verdict=verdict, source=source, reason=reason))

    def supervise(self, case_id: str, no: int, verdict: Verdict, way: str, reason: str = "") -> CommitmentState:
        """三(三) 事中事后监管: record what supervision found of one committed item, after the decision
        (also once the case is closed, and of an item exempt from verification), then conclude."""
        self.record(case_id, ItemVerified(no=no, verdict=verdict, source=SUPERVISION_PREFIX + way, reason=reason))
        concluded = self.conclude(case_id)
        return concluded if concluded is not None else self.case(case_id).state

    def conclude(self, case_id: str) -> CommitmentState | None:
        """Close a case whose items are all true, or record a false commitment; ``None`` if not yet.

        A closed case whose supervision found an item untrue (三(三)) is recorded as a false commitment.
        """
        st = self.case(case_id).state
        if st.status == "closed":
            found = sorted(no for no, verdict in commitment.latest(st).items() if verdict == "false")
            if not found:
                return None
            return self._found_false(st, found, "事中事后监管中发现申请人承诺不实（三(三)）")
        if st.status not in ("signed", "approved") or not st.plan or commitment.pending_items(st):
            return None
        verdicts = commitment.latest(st)
        false = sorted(no for no, verdict in verdicts.items() if verdict == "false")
        if false:
            return self._found_false(st, false, "经核查，申请人承诺事项不实（三(三)）")
        if st.status == "approved" and all(verdict == "true" for verdict in verdicts.values()):
            return self.record(case_id, Closed(summary="承诺事项经核查均属实"))
        return None

    def _found_false(self, st: CommitmentState, items: list[int], why: str) -> CommitmentState:
        """三(三): 发现承诺不实的……并将数据推送至信用中国 — the push is not a choice, so the credit record is
        made with the finding, in the same transaction (decision 39)."""
        return self.record(st.case, FalseCommitmentFound(items=items, legal_reason=why), also=[CreditRecorded(
            record=f"{st.matter_name}：作出虚假承诺（承诺事项第{'、'.join(map(str, items))}项不实）",
            legal_reason=why + "，相关数据推送至信用中国计入个人诚信档案")])

    def notify_supervisor(self, case_id: str, department: str, legal_reason: str) -> CommitmentState:
        """附件6/7: 将你的信息推送监管部门予以惩处 — a signed notice to ``department`` and the case's record of
        it, in one transaction; sent once.  Where the handling bureau is itself the matter's 监管部门 (教师资格认定
        at 区教育和体育局), the case records that and no bureau sends a notice to itself."""
        app = self._app
        if department == app.bureau:
            return self.record(case_id, SupervisorNotified(department=department, legal_reason=legal_reason))
        st = self.case(case_id).state
        referral = PunishmentReferral(commitment_case=st.case, bureau=st.bureau, applicant=st.applicant,
                                      matter_name=st.matter_name, false_items=list(st.false_items),
                                      legal_reason=legal_reason)
        copy = app.sign(Envelope(id=new_id(), sender=app.bureau, recipient=department, case=st.case,
                                 number=st.number, time=app.clock.now(), payload=referral))
        return self.record(case_id, SupervisorNotified(department=department, legal_reason=legal_reason),
                           extra=[Notice.send(f"punishment:{st.case}", [copy])])

    def return_licence(self, case_id: str, returned_at: datetime, note: str = "") -> CommitmentState:
        """附件6: the licence original came back (due 撤销之日起2日内, counted by date)."""
        return self.record(case_id, LicenceReturned(returned_at=returned_at, note=note))

    def terminate(self, case_id: str, legal_reason: str) -> CommitmentState:
        """依法终止办理 (before approval)."""
        return self.record(case_id, ProcessingTerminated(legal_reason=legal_reason))

    def order_rectification(self, case_id: str, deadline: date, legal_reason: str) -> CommitmentState:
        """责令限期整改."""
        return self.record(case_id, RectificationOrdered(deadline=deadline, legal_reason=legal_reason))

    def revoke(self, case_id: str, legal_reason: str) -> CommitmentState:
        """撤销行政决定; a licence's original is due back within 2 days (附件6), another decision has none."""
        due = licence_return_deadline(self._app.clock.now()) if self.case(case_id).state.licence else None
        return self.record(case_id, DecisionRevoked(licence_return_due=due, legal_reason=legal_reason))

    def penalise(self, case_id: str, penalty: str, legal_reason: str) -> CommitmentState:
        """予以行政处罚."""
        return self.record(case_id, PenaltyImposed(penalty=penalty, legal_reason=legal_reason))

    def record_credit(self, case_id: str, record: str, legal_reason: str) -> CommitmentState:
        """计入信用记录 (推送至信用中国)."""
        return self.record(case_id, CreditRecorded(record=record, legal_reason=legal_reason))

    def refer(self, case_id: str, to: str, legal_reason: str) -> CommitmentState:
        """涉嫌犯罪的，依法移送司法机关."""
        return self.record(case_id, ReferredToJudiciary(to=to, legal_reason=legal_reason))

    # -- 四(一): 异议处理 and 信用修复 of the case's credit record ----------------------------

    def confirm_rectification(self, case_id: str, evidence: str) -> CommitmentState:
        """The ordered rectification was done (a repair of this case needs it first)."""
        return self.record(case_id, _checked(Rectified(evidence=evidence)))

    def raise_objection(self, case_id: str, grounds: str) -> CommitmentState:
        """异议: the applicant disputes the credit record; it is under objection until reviewed."""
        return self.record(case_id, _checked(CreditObjectionRaised(grounds=grounds)))

    def review_objection(self, case_id: str, outcome: ReviewOutcome, reasons: str, record: str = "") -> CommitmentState:
        """Decide the objection: ``confirm``, ``correct`` (``record`` is the new text) or ``remove``."""
        return self.record(case_id, _checked(CreditObjectionReviewed(outcome=outcome, reasons=reasons, record=record)))

    def apply_repair(self, case_id: str, evidence: str) -> CommitmentState:
        """信用修复 applied for, with the evidence (after a confirmed rectification, if one was ordered)."""
        return self.record(case_id, _checked(CreditRepairApplied(evidence=evidence)))

    def approve_repair(self, case_id: str, reasons: str) -> CommitmentState:
        """The record is repaired: it no longer bars the applicant, from now."""
        return self.record(case_id, _checked(CreditRepairApproved(reasons=reasons)))

    def reject_repair(self, case_id: str, reasons: str) -> CommitmentState:
        """The repair is refused, with reasons; the applicant may apply again."""
        return self.record(case_id, _checked(CreditRepairRejected(reasons=reasons)))


_Step = TypeVar("_Step", Rectified, CreditObjectionRaised, CreditObjectionReviewed, CreditRepairApplied,
                CreditRepairApproved, CreditRepairRejected)


def _checked(payload: _Step) -> _Step:
    """Validate a credit step as a receiver will decode it: a Struct built in Python skips its constraints."""
    try:
        return msgspec.convert(msgspec.to_builtins(payload), type(payload))
    except msgspec.ValidationError as e:
        raise CreditRule(f"{type(payload).__struct_config__.tag}: {e}",
                         zh=f"{type(payload).__struct_config__.tag}：{e}") from e
