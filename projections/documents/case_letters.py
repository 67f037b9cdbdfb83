"""The letters of a case, built from its folded state so that a clerk can print them (附件4–7, 三（二）).

Bureau names come from a ``names`` callable (code → Chinese name, e.g. the registry's
``name``), so this module needs no registry. Letters are dated on the Asia/Shanghai day of
the envelope that gave rise to them. A state the template cannot print raises
:class:`schemas.letters.LetterError`, as building any letter does.
"""
from __future__ import annotations

from collections.abc import Callable, Iterable
from datetime import date, datetime, timedelta

from aggregates.assistance import CaseState, time_limits
from aggregates.commitment import CommitmentState
from aggregates.store import SHANGHAI
from projections.history import CaseHistory, Kind, State, fold_step
from schemas.assistance import AssistanceDeclined, AssistanceReplied, AssistanceRequested
from schemas.commitment import (
    CommitmentSigned,
    DecisionRevoked,
    NoticeIssued,
    ProcessingTerminated,
    RectificationOrdered,
)
from schemas.envelope import Envelope
from schemas.letters import (
    ApplicantCommitment,
    AssistanceLetter,
    CommitmentNotice,
    Consequence,
    ConsequenceNotice,
    DeclineLetter,
    Letter,
    ReplyItem,
    ReplyLetter,
)

#: Bureau code → the Chinese name printed on letters.
Names = Callable[[str], str]


def shanghai_day(t: datetime) -> date:
    """The date a letter carries: the Asia/Shanghai day of ``t``."""
    return t.astimezone(SHANGHAI).date()


def assistance_letter(state: CaseState, names: Names) -> AssistanceLetter:
    """附件4-1 行政协助函（一）, or 4-2 （二） when the request came by letter with two staff."""
    req = state.request
    return AssistanceLetter(
        number=state.number, requester_name=names(state.requester), assistor_name=names(state.assistor),
        applicant_name=req.applicant.name, applied_on=req.applied_on, matter_name=req.matter.name,
        items=[i.text for i in req.items], staff=list(req.staff) if req.channel == "letter" else [],
        reply_within=time_limits(req)[0], dated=shanghai_day(state.sent_at),
    )


def reply_letter(state: CaseState, names: Names, on_behalf_of: str = "") -> ReplyLetter | None:
    """附件5 回复函, or None if the case has no reply.

    The items are printed in the request's order. Reasons are kept only for items that cannot
    be verified: the template prints reasons on the sheet of those items alone. ``on_behalf_of``
    comes from the reply's payload (the state does not keep it).
    """
    if not state.results or state.answered_at is None:
        return None
    verdicts = {r.no: r for r in state.results}
    items = [ReplyItem(text=i.text, verdict=verdicts[i.no].verdict,
                       reason=verdicts[i.no].reason if verdicts[i.no].verdict == "unverifiable" else "")
             for i in state.request.items if i.no in verdicts]
    return ReplyLetter(
        number=state.number, replier_name=names(state.assistor), requester_name=names(state.requester),
        requested_on=shanghai_day(state.sent_at), items=items, dated=shanghai_day(state.answered_at),
        on_behalf_of=on_behalf_of, stamped_by=names(state.assistor), reply_number=state.reply_number,
    )


def decline_letter(state: CaseState, names: Names) -> DeclineLetter | None:
    """书面告知 of 三（二）, or None if the case was not declined."""
    if not state.reasons or state.answered_at is None:
        return None
    return DeclineLetter(
        number=state.number, decliner_name=names(state.assistor), requester_name=names(state.requester),
        requested_on=shanghai_day(state.sent_at), reasons=state.reasons, dated=shanghai_day(state.answered_at),
    )


def commitment_notice(state: CommitmentState, names: Names, dated: date) -> CommitmentNotice:
    """附件6 承诺告知书, dated the day it was issued (the state does not keep that day)."""
    return CommitmentNotice(
        applicant_name=state.applicant.name, applied_on=state.applied_on, bureau_name=names(state.bureau),
        matter_name=state.matter_name, issuing_unit=state.issuing_unit, certificate_name=state.certificate_name,
        items=[i.text for i in state.items], dated=dated, disclosed=state.told_disclosure,
    )


def applicant_commitment(state: CommitmentState, names: Names) -> ApplicantCommitment:
    """附件7 申请人承诺书; the date is blank until it is signed."""
    return ApplicantCommitment(
        bureau_name=names(state.bureau), applicant_name=state.applicant.name, applied_on=state.applied_on,
        matter_name=state.matter_name, items=[i.text for i in state.items], signed_on=state.signed_on,
    )


def assistance_letters(state: CaseState, names: Names, on_behalf_of: str = "") -> list[Letter]:
    """A request's letters from its folded state alone (a bureau's store): the request, then its reply
    or decline, if any. ``on_behalf_of`` is the reply's (the state does not keep it)."""
    letters: list[Letter] = [assistance_letter(state, names)]
    answer = reply_letter(state, names, on_behalf_of) or decline_letter(state, names)
    if answer is not None:
        letters.append(answer)
    return letters


def consequence_notice(state: CommitmentState, names: Names, consequence: Consequence, legal_reason: str,
                       dated: date, *, deadline: date | None = None, return_by: date | None = None
                       ) -> ConsequenceNotice:
    """三（三）: a notice of what follows the false commitment, naming the items found false."""
    false = set(state.false_items)
    return ConsequenceNotice(
        consequence=consequence, number=state.number, bureau_name=names(state.bureau),
        applicant_name=state.applicant.name, applied_on=state.applied_on, matter_name=state.matter_name,
        items=[i.text for i in state.items if i.no in false] or [i.text for i in state.items],
        legal_reason=legal_reason, deadline=deadline, decision_no=state.decision_no, return_by=return_by,
        # A case opened before the 政务服务事项编码 was recorded is taken for a licence, as notices were.
        dated=dated, licence=state.licence,
    )


def letters_for(history: CaseHistory, names: Names) -> list[Letter]:
    """Every letter of the case, in the order of the events that produced them.

    An assistance case gives its request letter, then its reply or decline letter; a commitment
    case its 承诺告知书 (at notice-issued) and 申请人承诺书 (at signed), then a notice of each
    consequence of a false commitment. The history's envelopes are folded again, and only an
    event that kept the rules yields a letter: one the fold refused is on the history with its
    rule, not on paper.
    """
    return letters_of(history.kind, [(line.envelope, line.digest) for line in history.lines
                                     if line.envelope is not None], names)


def letters_of(kind: Kind, envelopes: Iterable[tuple[Envelope, str]], names: Names) -> list[Letter]:
    """The letters of a case from its envelopes (with their digests) in order: a ledger history's, or
    a bureau store's (see :func:`letters_for`)."""
    letters: list[Letter] = []
    state: State | None = None
    for env, digest in envelopes:
        state, err = fold_step(state, kind, env, digest)
        if err is None and state is not None:
            letters.extend(_letters_at(state, env.payload, shanghai_day(env.time), names))
    return letters


def _letters_at(state: State, payload: object, day: date, names: Names) -> list[Letter]:
    """The letters an event that has just been folded into ``state`` gives rise to.

    A licence's revocation gives two: the decision that revokes, and the notice to hand the licence
    back by the day it is due (the applicant keeps the one, the bureau files the other's receipt);
    another decision's (a 行政给付's) only the first.
    """
    match state, payload:
        case CommitmentState(), ProcessingTerminated(legal_reason=reason):
            return [consequence_notice(state, names, "terminated", reason, day)]
        case CommitmentState(), RectificationOrdered(legal_reason=reason, deadline=deadline):
            return [consequence_notice(state, names, "rectification", reason, day, deadline=deadline)]
        case CommitmentState(), DecisionRevoked(legal_reason=reason, licence_return_due=due):
            if not state.decision_no:
                return []
            revoked = consequence_notice(state, names, "revoked", reason, day)
            if not revoked.licence or due is None:  # a decision that is no licence leaves no 证件 to hand back
                return [revoked]
            return [revoked, consequence_notice(state, names, "licence-return", reason, day,
                                                # the last day: a due at 00:00 is the end of the day before
                                                return_by=shanghai_day(due - timedelta(microseconds=1)))]
    single = _letter_at(state, payload, day, names)
    return [single] if single is not None else []


def _letter_at(state: State, payload: object, day: date, names: Names) -> Letter | None:
    """The letter an event that has just been folded into ``state`` gives rise to, if any."""
    match state, payload:
        case CaseState(), AssistanceRequested():
            return assistance_letter(state, names)
        case CaseState(), AssistanceReplied(on_behalf_of=on_behalf_of):
            return reply_letter(state, names, on_behalf_of)
        case CaseState(), AssistanceDeclined():
            return decline_letter(state, names)
        case CommitmentState(), NoticeIssued():
            return commitment_notice(state, names, day)
        case CommitmentState(), CommitmentSigned():
            return applicant_commitment(state, names)
    return None
