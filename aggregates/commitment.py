"""The commitment case as a pure fold over the handling bureau's signed envelopes.

It follows the plan step by step: application (with the credit gate of 四(二) and the
disclosure rule of 二(四)), the commitment notice (附件6), the route (必须实行 / 可选择),
the applicant's commitment (附件7), approval, withdrawal midway (二(三)), the verification
plan and results (三(一)), what a false commitment leads to (三(三)), and what may follow its
credit record (四(一): 异议处理 and 信用修复, below).

Credit steps, all recorded by the bureau that made the record (the case's bureau):

- ``credit-objection`` marks a record in force (recorded or corrected) as under objection;
  one at a time, and not while a repair application is pending.  The record still bars
  the applicant while it is reviewed.
- ``credit-objection-reviewed`` decides it: ``confirm`` (back as it was), ``correct`` (new
  text; the applicant stays barred) or ``remove`` (the record no longer bars, from the
  review's time).
- ``rectified`` confirms an ordered rectification (责令限期整改) was done.  It is the stricter
  of the two possible rules: a deadline that merely passed proves nothing, so a repair of a
  case with a rectification order needs this confirmation first.
- ``credit-repair-applied`` (with evidence), then ``credit-repair-approved`` (the record is
  repaired from that time) or ``credit-repair-rejected`` (the applicant may apply again).
  Not while an objection is under review.
"""
from __future__ import annotations

from datetime import date, datetime, timedelta
from typing import Literal

import msgspec

from aggregates import errors
from aggregates.registry import zh_name
from aggregates.workdays import SHANGHAI
from schemas import labels
from schemas.assistance import Applicant, CommitmentItem
from schemas.commitment import (
    SUPERVISION_PREFIX,
    SUPERVISION_WAYS,
    ApplicationReceived,
    Approved,
    Closed,
    CommitmentSigned,
    CreditObjectionRaised,
    CreditObjectionReviewed,
    CreditRecorded,
    CreditRepairApplied,
    CreditRepairApproved,
    CreditRepairRejected,
    CreditStatus,
    DecisionRevoked,
    FalseCommitmentFound,
    ItemVerified,
    LicenceReturned,
    Mode,
    NoticeIssued,
    PenaltyImposed,
    PlannedItem,
    ProcessingTerminated,
    RectificationOrdered,
    Rectified,
    ReferredToJudiciary,
    RouteChosen,
    RouteRefused,
    Standing,
    SupervisorNotified,
    VerificationPlanned,
    Withdrawn,
)
from schemas.envelope import LEDGER, Envelope
from schemas.letters import is_licence

Status = Literal["applied", "certificate-required", "noticed", "committing", "signed", "approved", "closed",
                 "false-commitment", "terminated", "revoked"]
#: 附件6: 限你在撤销之日起2日内将取得证件（行政许可证）原件交回我单位 — two calendar days, counted by date.
LICENCE_RETURN_DAYS = 2


def licence_return_deadline(revoked_at: datetime) -> datetime:
    """附件6/7: 撤销之日起2日内.  The revocation day is not counted (as a time limit counted in days never
    counts its first day); the licence is due by 24:00 Asia/Shanghai of the second day after it, returned
    as the exclusive instant 00:00 of the day after that."""
    day = revoked_at.astimezone(SHANGHAI).date() + timedelta(days=LICENCE_RETURN_DAYS + 1)
    return datetime(day.year, day.month, day.day, tzinfo=SHANGHAI)


class CommitmentState(msgspec.Struct, frozen=True, kw_only=True):
    """What is known of one commitment case after folding its events."""

    case: str
    number: str
    bureau: str
    applicant: Applicant
    matter_code: str
    matter_name: str
    certificate_name: str
    issuing_unit: str
    mode: Mode
    disclose: bool
    catalogue_version: int
    items: tuple[CommitmentItem, ...]
    applied_on: date
    standing: Standing
    #: The 政务服务事项编码 (empty for a case opened before it was recorded).
    service_matter_code: str = ""
    status: Status = "applied"
    route: str = ""
    refused_cause: str = ""
    told_disclosure: bool = False
    signed_on: date | None = None
    decision_no: str = ""
    approved: bool = False
    withdrawn: bool = False
    plan: tuple[PlannedItem, ...] = ()
    verified: tuple[ItemVerified, ...] = ()
    false_items: tuple[int, ...] = ()
    outcomes: tuple[str, ...] = ()
    rectify_by: date | None = None
    licence_return_due: datetime | None = None
    #: When the decision was revoked, and when the licence original came back (附件6).
    revoked_at: datetime | None = None
    licence_returned_at: datetime | None = None
    #: 推送监管部门予以惩处: the supervising department told ("" until then).
    supervisor: str = ""
    events: int = 1
    #: When verification found the commitment false (三(三)); 四(二) bars the applicant from then on.
    found_false_at: datetime | None = None
    rectified_at: datetime | None = None

    @property
    def licence(self) -> bool:
        """Whether the decision is a 行政许可 with a 证件 to hand back if revoked (附件6); a case opened
        before the 政务服务事项编码 was recorded is taken for one, as its notices were."""
        return is_licence(self.service_matter_code) if self.service_matter_code else True

    # -- the credit record of this case (四(一)) --
    credit: CreditStatus = "none"
    #: The record's current text (the corrected one after a correction).
    credit_record: str = ""
    credit_recorded_at: datetime | None = None
    #: Grounds of the objection under review ("" when none is).
    objection: str = ""
    objected_at: datetime | None = None
    reviewed_at: datetime | None = None
    corrected_at: datetime | None = None
    removed_at: datetime | None = None
    #: Evidence of the repair application awaiting a decision ("" when none is).
    repair_evidence: str = ""
    repair_applied_at: datetime | None = None
    repaired_at: datetime | None = None

    @property
    def outcome(self) -> str:
        """One word for the case's end (or current step), for views and counts."""
        if self.outcomes:
            return "+".join(sorted(set(self.outcomes)))
        return self.status

    @property
    def credit_in_force(self) -> bool:
        """The record exists and was neither removed nor repaired (it may be under objection)."""
        return self.credit in ("recorded", "under-objection", "corrected")

    @property
    def repair_pending(self) -> bool:
        """A repair application waits for the bureau's decision."""
        return self.repair_applied_at is not None


#: 四(二), from the best standing to the worst.
STANDINGS: tuple[Standing, ...] = ("good", "unrepaired-false-commitment", "serious-bad-credit")


def worse(a: Standing, b: Standing) -> Standing:
    """The worse of two standings: what the credit record says can only be made worse by what else is known."""
    return a if STANDINGS.index(a) >= STANDINGS.index(b) else b


def start(env: Envelope) -> CommitmentState:
    """Open a case from its application."""
    ev = env.payload
    if not isinstance(ev, ApplicationReceived):
        raise errors.NotFirst(f"commitment case {env.case} must start with an application, not {env.type}",
                              zh=f"告知承诺案件 {env.case} 须以申请开始，而不是 {env.type}")
    if env.recipient != LEDGER:
        raise errors.WrongParty(f"a commitment case is recorded for the ledger, not sent to {env.recipient}",
                                zh=f"告知承诺案件记入账本，不发往{zh_name(env.recipient)}")
    nos = [i.no for i in ev.items]
    if len(set(nos)) != len(nos):
        raise errors.BadRequest(f"case {env.number} numbers its items twice: {nos}",
                                zh=f"案件 {env.number} 的事项序号有重复：{nos}")
    return CommitmentState(
        case=env.case, number=env.number, bureau=env.sender, applicant=ev.applicant, matter_code=ev.matter_code,
        matter_name=ev.matter_name, certificate_name=ev.certificate_name, issuing_unit=ev.issuing_unit,
        mode=ev.mode, disclose=ev.disclose, catalogue_version=ev.catalogue_version, items=tuple(ev.items),
        applied_on=ev.applied_on, standing=ev.standing, service_matter_code=ev.service_matter_code,
    )


def apply(state: CommitmentState | None, env: Envelope) -> CommitmentState:
    """Fold one more envelope into the case; raises a RuleError if it breaks a rule."""
    if state is None:
        return start(env)
    if env.sender != state.bureau or env.recipient != LEDGER:
        raise errors.WrongParty(f"only {state.bureau} records case {state.number}",
                                zh=f"只有{zh_name(state.bureau)}可以记录案件 {state.number}")
    ev = env.payload
    match ev:
        case ApplicationReceived():
            raise errors.NotFirst(f"case {state.number} already has its application",
                                  zh=f"案件 {state.number} 已有申请")
        case RouteRefused():
            return _route_refused(state, ev)
        case NoticeIssued():
            return _notice(state, ev)
        case RouteChosen():
            return _route_chosen(state, ev)
        case CommitmentSigned():
            _expect(state, ("committing",), "signed", "签署承诺")
            return _next(state, status="signed", signed_on=ev.signed_on)
        case Approved():
            _expect(state, ("signed",), "approved", "批准")
            return _next(state, status="approved", approved=True, decision_no=ev.decision_no)
        case Withdrawn():
            _expect(state, ("noticed", "committing", "signed"), "withdrawn from", "撤回")
            return _next(state, status="certificate-required", withdrawn=True, route="certificate")
        case VerificationPlanned():
            return _planned(state, ev)
        case ItemVerified():
            return _verified(state, ev)
        case Closed():
            return _closed(state)
        case FalseCommitmentFound():
            return _found_false(state, env, ev)
        case ProcessingTerminated() | RectificationOrdered() | DecisionRevoked() | PenaltyImposed() \
                | CreditRecorded() | ReferredToJudiciary() | SupervisorNotified():
            return _outcome(state, env, ev)
        case LicenceReturned():
            return _licence_returned(state, env, ev)
        case Rectified() | CreditObjectionRaised() | CreditObjectionReviewed() | CreditRepairApplied() \
                | CreditRepairApproved() | CreditRepairRejected():
            return _credit_step(state, env, ev)
    raise errors.WrongOrder(f"event type {env.type} does not belong to a commitment case",
                            zh=f"事件类型 {env.type} 不属于告知承诺案件")


def _next(state: CommitmentState, **changes: object) -> CommitmentState:
    return msgspec.structs.replace(state, events=state.events + 1, **changes)


def _expect(state: CommitmentState, allowed: tuple[str, ...], what: str, what_zh: str) -> None:
    if state.status not in allowed:
        raise errors.WrongOrder(f"case {state.number} is {state.status}; it cannot be {what} now",
                                zh=f"案件 {state.number} 当前为“{labels.CASE_STATUS.get(state.status, state.status)}”；"
                                   f"现在不能{what_zh}")


def _route_refused(state: CommitmentState, ev: RouteRefused) -> CommitmentState:
    _expect(state, ("applied", "noticed"), "refused the commitment route", "拒绝适用告知承诺")
    if ev.cause == "credit" and state.standing == "good":
        raise errors.CreditGate(f"applicant of {state.number} has good standing: no credit refusal",
                                zh=f"{state.number} 的申请人信用良好：不能以信用为由拒绝")
    if ev.cause == "disclosure-refused" and not state.disclose:
        raise errors.WrongOrder(f"matter {state.matter_code} is not disclosed; disclosure cannot be refused",
                                zh=f"事项 {state.matter_code} 不公示；不存在拒绝公示")
    return _next(state, status="certificate-required", refused_cause=ev.cause, route="certificate")


def _notice(state: CommitmentState, ev: NoticeIssued) -> CommitmentState:
    _expect(state, ("applied",), "given the commitment notice", "告知承诺事项")
    if state.standing != "good":
        raise errors.CreditGate(
            f"四(二): the applicant of {state.number} ({state.standing}) may not use the commitment route "
            "before credit repair; refuse the route and require the certificate",
            zh=f"四(二)：{state.number} 的申请人"
               f"（{labels.STANDING.get(state.standing, state.standing)}）在信用修复前不得适用告知承诺；"
               "请拒绝该方式并要求提交证明")
    if state.disclose and not ev.told_disclosure:
        raise errors.WrongOrder(f"二(四): matter {state.matter_code} is disclosed; the notice must say so",
                                zh=f"二(四)：事项 {state.matter_code} 须公示；告知书须写明")
    status = "committing" if state.mode == "必须实行" else "noticed"
    route = "commitment" if state.mode == "必须实行" else ""
    return _next(state, status=status, route=route, told_disclosure=ev.told_disclosure)


def _route_chosen(state: CommitmentState, ev: RouteChosen) -> CommitmentState:
    if state.mode == "必须实行":
        raise errors.RouteNotOptional(f"matter {state.matter_code} is 必须实行: it takes the commitment route",
                                      zh=f"事项 {state.matter_code} 为必须实行：须适用告知承诺")
    _expect(state, ("noticed",), "given a route", "选择办理方式")
    if ev.route == "certificate":
        return _next(state, status="certificate-required", route="certificate")
    return _next(state, status="committing", route="commitment")


def _planned(state: CommitmentState, ev: VerificationPlanned) -> CommitmentState:
    _expect(state, ("signed", "approved"), "planned", "制定核查计划")
    committed = sorted(i.no for i in state.items)
    if sorted(p.no for p in ev.items) != committed:
        raise errors.NotCommitted(f"the plan of {state.number} must cover exactly items {committed}",
                                  zh=f"{state.number} 的核查计划须恰好覆盖第 {committed} 项")
    for p in ev.items:
        if p.due_on is not None and p.due_on < state.applied_on:
            raise errors.Deadline(f"item {p.no} of {state.number} is due before the application",
                                  zh=f"{state.number} 第 {p.no} 项的期限早于申请日")
        if not p.exempt and p.due_on is None:
            raise errors.Deadline(f"item {p.no} of {state.number} needs a due date unless exempt",
                                  zh=f"{state.number} 第 {p.no} 项除免于核查外须有期限")
    return _next(state, plan=tuple(ev.items))


def _verified(state: CommitmentState, ev: ItemVerified) -> CommitmentState:
    if ev.source.startswith(SUPERVISION_PREFIX):
        return _supervised(state, ev)
    _expect(state, ("signed", "approved"), "verified", "核查")
    plan = {p.no: p for p in state.plan}
    if ev.no not in plan:
        raise errors.NotCommitted(f"item {ev.no} is not in the verification plan of {state.number}",
                                  zh=f"第 {ev.no} 项不在 {state.number} 的核查计划中")
    if plan[ev.no].exempt:
        raise errors.NotCommitted(f"item {ev.no} of {state.number} is exempt from verification",
                                  zh=f"{state.number} 第 {ev.no} 项免于核查")
    if latest(state).get(ev.no, "unverifiable") != "unverifiable":
        raise errors.WrongOrder(f"item {ev.no} of {state.number} was already verified",
                                zh=f"{state.number} 第 {ev.no} 项已核查")
    if ev.verdict == "unverifiable" and not ev.reason.strip():
        raise errors.MissingReason(f"item {ev.no} of {state.number} cannot be verified but gives no reason",
                                   zh=f"{state.number} 第 {ev.no} 项无法证实，但未说明理由")
    return _next(state, verified=(*state.verified, ev))


def _supervised(state: CommitmentState, ev: ItemVerified) -> CommitmentState:
    """三(三) 加强事中事后监管: after the decision — closed or not, exempt items included — supervision may
    find a committed item untrue; the latest finding stands, so a later false overrides an earlier true."""
    way = ev.source.removeprefix(SUPERVISION_PREFIX)
    if way not in SUPERVISION_WAYS:
        raise errors.BadRequest(f"三(三): supervision is by {'、'.join(SUPERVISION_WAYS)}, not {way!r}",
                                zh=f"三(三)：监管方式为 {'、'.join(SUPERVISION_WAYS)}，而不是 {way!r}")
    _expect(state, ("approved", "closed"), "checked under 事中事后监管", "事中事后监管检查")
    if ev.no not in {i.no for i in state.items}:
        raise errors.NotCommitted(f"item {ev.no} is not among the commitments of {state.number}",
                                  zh=f"第 {ev.no} 项不在 {state.number} 的承诺事项中")
    if ev.verdict == "unverifiable" and not ev.reason.strip():
        raise errors.MissingReason(f"item {ev.no} of {state.number} cannot be verified but gives no reason",
                                   zh=f"{state.number} 第 {ev.no} 项无法证实，但未说明理由")
    return _next(state, verified=(*state.verified, ev))


def latest(state: CommitmentState) -> dict[int, str]:
    """The latest verdict per item: one that could not be verified may be checked again (e.g. on site)."""
    return {v.no: v.verdict for v in state.verified}


def pending_items(state: CommitmentState) -> list[int]:
    """Planned, non-exempt items without a decisive (true/false) result yet."""
    done = {no for no, verdict in latest(state).items() if verdict != "unverifiable"}
    return [p.no for p in state.plan if not p.exempt and p.no not in done]


def _closed(state: CommitmentState) -> CommitmentState:
    _expect(state, ("approved",), "closed", "办结")
    if not state.plan:
        raise errors.WrongOrder(f"case {state.number} has no verification plan", zh=f"案件 {state.number} 没有核查计划")
    if pending_items(state):
        raise errors.WrongOrder(f"case {state.number} still waits for items {pending_items(state)}",
                                zh=f"案件 {state.number} 仍在等待第 {pending_items(state)} 项的核查结论")
    if any(verdict != "true" for verdict in latest(state).values()):
        raise errors.WrongOrder(f"case {state.number} has items that are not true; it cannot close as fulfilled",
                                zh=f"案件 {state.number} 有事项核查结论不是真实；不能以履行承诺办结")
    return _next(state, status="closed")


def _found_false(state: CommitmentState, env: Envelope, ev: FalseCommitmentFound) -> CommitmentState:
    # 三(三): 在信息核查和事中事后监管中发现承诺不实的 — also after the case closed.
    _expect(state, ("signed", "approved", "closed"), "found false", "认定虚假承诺")
    false = sorted(no for no, verdict in latest(state).items() if verdict == "false")
    if sorted(ev.items) != false or not false:
        raise errors.NotFalse(f"case {state.number}: items verified false are {false}, not {sorted(ev.items)}",
                              zh=f"案件 {state.number}：核查为虚假的事项是第 {false} 项，而不是 {sorted(ev.items)}")
    return _next(state, status="false-commitment", false_items=tuple(false), found_false_at=env.time)


def _outcome(state: CommitmentState, env: Envelope, ev: object) -> CommitmentState:
    if not state.false_items:
        raise errors.NotFalse(f"case {state.number} has no verified false commitment",
                              zh=f"案件 {state.number} 没有经核查认定的虚假承诺")
    tag = env.type.removeprefix("commitment.")
    match ev:
        case ProcessingTerminated():
            if state.approved:
                raise errors.WrongOrder(f"case {state.number} was approved: revoke the decision instead",
                                        zh=f"案件 {state.number} 已批准：应改为撤销该决定")
            return _next(state, status="terminated", outcomes=(*state.outcomes, tag))
        case DecisionRevoked():
            if not state.approved or "revoked" in state.outcomes:
                raise errors.WrongOrder(f"case {state.number} has no decision to revoke",
                                        zh=f"案件 {state.number} 没有可撤销的决定")
            due = ev.licence_return_due
            if not state.licence:
                if due is not None:
                    raise errors.BadRequest(f"the decision of {state.number} is no licence: there is no 证件 to hand "
                                          f"back, so no return is due",
                                          zh=f"{state.number} 的决定不是行政许可：没有须交回的证件，不应设交回期限")
            elif due is None or not env.time < due <= licence_return_deadline(env.time):
                raise errors.Deadline(f"附件6: the licence of {state.number} is due back within 2 days of revocation "
                                      f"(撤销之日起2日内: by {licence_return_deadline(env.time).isoformat()})",
                                      zh=f"附件6：{state.number} 的许可证应自撤销之日起2日内退回"
                                         f"（最迟 {licence_return_deadline(env.time).isoformat()}）")
            return _next(state, status="revoked", licence_return_due=due, revoked_at=env.time,
                         outcomes=(*state.outcomes, tag))
        case RectificationOrdered():
            if ev.deadline <= env.time.date():
                raise errors.Deadline(f"the rectification deadline of {state.number} is already past",
                                      zh=f"{state.number} 的整改期限已过")
            return _next(state, rectify_by=ev.deadline, outcomes=(*state.outcomes, tag))
        case CreditRecorded() | ReferredToJudiciary() | SupervisorNotified():
            if tag in state.outcomes:
                raise errors.WrongOrder(f"case {state.number} already has {tag}",
                                        zh=f"案件 {state.number} 已有{labels.CONSEQUENCE.get(tag, tag)}")
            if isinstance(ev, SupervisorNotified):
                return _next(state, outcomes=(*state.outcomes, tag), supervisor=ev.department)
            if isinstance(ev, CreditRecorded):
                return _next(state, outcomes=(*state.outcomes, tag), credit="recorded", credit_record=ev.record,
                             credit_recorded_at=env.time)
    return _next(state, outcomes=(*state.outcomes, tag))


def _licence_returned(state: CommitmentState, env: Envelope, ev: LicenceReturned) -> CommitmentState:
    if state.revoked_at is None or state.licence_return_due is None:
        raise errors.WrongOrder(f"case {state.number} has no revoked licence that could come back",
                                zh=f"案件 {state.number} 没有被撤销的行政许可，不存在需退回的许可证")
    if state.licence_returned_at is not None:
        raise errors.WrongOrder(f"the licence of {state.number} was already returned",
                                zh=f"{state.number} 的许可证已退回")
    if not state.revoked_at <= ev.returned_at <= env.time:
        raise errors.Deadline(f"the licence of {state.number} cannot be returned at {ev.returned_at.isoformat()}: "
                              f"before the revocation or after this record",
                              zh=f"{state.number} 的许可证不能记为于 {ev.returned_at.isoformat()} 退回："
                                 "早于撤销或晚于本次记录")
    return _next(state, licence_returned_at=ev.returned_at)


def outstanding(state: CommitmentState, now: datetime) -> list[str]:
    """What the plan requires after a false commitment that the case does not show yet (三(三), 附件6/7)."""
    if not state.false_items:
        return []
    out = []
    if "credit-recorded" not in state.outcomes:
        out.append("相关数据尚未推送至信用中国（三(三)）")
    if not state.supervisor:
        out.append("尚未推送监管部门予以惩处（附件6）")
    if state.licence_return_due is not None and state.licence_returned_at is None and now >= state.licence_return_due:
        out.append(f"证件原件逾期未交回（撤销之日起2日内，至 {state.licence_return_due.isoformat()}）")
    if state.licence_returned_at is not None and state.licence_return_due is not None \
            and state.licence_returned_at >= state.licence_return_due:
        out.append(f"证件原件逾期交回（{state.licence_returned_at.isoformat()}）")
    return out


def _credit_step(state: CommitmentState, env: Envelope, ev: object) -> CommitmentState:
    """四(一): 异议处理 and 信用修复 of the case's credit record (see the module docstring)."""
    match ev:
        case Rectified():
            if state.rectify_by is None:
                raise errors.RepairOrder(f"case {state.number} has no rectification order to confirm",
                                         zh=f"案件 {state.number} 没有待确认的责令整改")
            if state.rectified_at is not None:
                raise errors.RepairOrder(f"the rectification of {state.number} is already confirmed",
                                         zh=f"{state.number} 的整改已确认")
            return _next(state, rectified_at=env.time)
        case CreditObjectionRaised():
            _in_force(state, "objected to", "提出异议")
            if state.credit == "under-objection":
                raise errors.ObjectionOrder(f"the credit record of {state.number} is already under objection",
                                            zh=f"{state.number} 的信用记录已在异议审核中")
            if state.repair_pending:
                raise errors.ObjectionOrder(f"a repair of {state.number}'s record awaits a decision; decide it first",
                                            zh=f"{state.number} 的信用修复申请正待决定；请先作出决定")
            return _next(state, credit="under-objection", objection=ev.grounds, objected_at=env.time)
        case CreditObjectionReviewed():
            return _reviewed(state, env, ev)
        case CreditRepairApplied():
            _in_force(state, "repaired", "信用修复")
            if state.credit == "under-objection":
                raise errors.RepairOrder(f"the record of {state.number} is under objection; review it first",
                                         zh=f"{state.number} 的信用记录正在异议审核中；请先审核异议")
            if state.repair_pending:
                raise errors.RepairOrder(f"a repair of {state.number}'s record already awaits a decision",
                                         zh=f"{state.number} 的信用修复申请已在等待决定")
            if state.rectify_by is not None and state.rectified_at is None:
                raise errors.RepairOrder(
                    f"case {state.number} was ordered to rectify by {state.rectify_by}; "
                    "record the confirmed rectification before a repair",
                    zh=f"案件 {state.number} 被责令于 {state.rectify_by} 前整改；信用修复前须先记录已确认的整改")
            return _next(state, repair_evidence=ev.evidence, repair_applied_at=env.time)
        case CreditRepairApproved() | CreditRepairRejected():
            if not state.repair_pending:
                raise errors.RepairOrder(f"no repair of {state.number}'s record awaits a decision",
                                         zh=f"{state.number} 没有待决定的信用修复申请")
            if isinstance(ev, CreditRepairRejected):
                return _next(state, repair_evidence="", repair_applied_at=None)
            return _next(state, credit="repaired", repair_evidence="", repair_applied_at=None, repaired_at=env.time)
    raise errors.WrongOrder(f"event type {env.type} is not a credit step", zh=f"事件类型 {env.type} 不是信用步骤")


def _in_force(state: CommitmentState, what: str, what_zh: str) -> None:
    if not state.credit_in_force:
        why = "has no credit record" if state.credit == "none" else f"has a {state.credit} credit record"
        why_zh = "没有信用记录" if state.credit == "none" else \
            f"的信用记录为{labels.CREDIT_STATUS.get(state.credit, state.credit)}"
        raise errors.NoCreditRecord(f"case {state.number} {why}; it cannot be {what}",
                                    zh=f"案件 {state.number} {why_zh}；不能{what_zh}")


def _reviewed(state: CommitmentState, env: Envelope, ev: CreditObjectionReviewed) -> CommitmentState:
    if state.credit != "under-objection":
        raise errors.ObjectionOrder(f"the credit record of {state.number} is not under objection",
                                    zh=f"{state.number} 的信用记录不在异议审核中")
    if ev.outcome != "correct" and ev.record:
        raise errors.ObjectionOrder(f"only a correction of {state.number}'s record carries a new record text",
                                    zh=f"只有对 {state.number} 信用记录的更正才附新的记录内容")
    done = {"objection": "", "reviewed_at": env.time}
    match ev.outcome:
        case "confirm":
            before = "corrected" if state.corrected_at is not None else "recorded"
            return _next(state, credit=before, **done)
        case "correct":
            text = ev.record.strip()
            if len(text) < 2 or text == state.credit_record:
                raise errors.ObjectionOrder(f"a correction of {state.number}'s record needs the new record text",
                                            zh=f"更正 {state.number} 的信用记录须附新的记录内容")
            return _next(state, credit="corrected", credit_record=text, corrected_at=env.time, **done)
    return _next(state, credit="removed", removed_at=env.time, **done)
