"""The assistance case as a pure fold over signed envelopes, with the rules of 附件2.

The same fold serves the requester's store, the assistor's store, the 司法局 ledger's
replay and the projections, so that every party applies the same rules to the same bytes.
"""
from __future__ import annotations

from datetime import datetime, timedelta
from typing import Literal

import msgspec

from aggregates import errors
from aggregates.registry import zh_name
from schemas import labels
from schemas.assistance import (
    DECLINE_DAYS,
    REPLY_DAYS,
    AssistanceDeclined,
    AssistanceForwarded,
    AssistanceReceived,
    AssistanceReplied,
    AssistanceRequested,
    AssistanceWithdrawn,
    ItemResult,
)
from schemas.envelope import Envelope

Status = Literal["requested", "received", "replied", "declined", "withdrawn"]
OPEN: frozenset[str] = frozenset({"requested", "received"})

#: How far a time a party claims may stray from the platform's record of the same step before
#: it is flagged (clocks of two machines disagree by seconds, not minutes).
CLAIM_TOLERANCE = timedelta(minutes=5)
#: 三(二): a request that asks for more time than the plan's 3 and 2 working days.
LONGER_LIMIT = "时限超过方案规定（三(二)）"
#: The flag a contradicted claim carries in replay and history (附件2 第五条: 以系统记录的到达时间为准).
TIME_CLAIM = "时间与平台记录不符（第五条）"


class CaseState(msgspec.Struct, frozen=True, kw_only=True):
    """What is known of one assistance case after folding its events."""

    case: str
    number: str
    requester: str
    assistor: str
    request_id: str
    request_hash: str
    request: AssistanceRequested
    status: Status = "requested"
    #: The requester's envelope time (its claim of when it sent the request).
    sent_at: datetime
    #: The assistor's signed arrival record (``assistance.received``): evidence that it saw the
    #: request; on the letter channel, the visit that delivered the letter.
    arrived_at: datetime | None = None
    #: 第五条: when the platform stored the request (JetStream's stored time, the ledger's arrival).
    #: On the platform channel this is the legal arrival; ``None`` where it is not known (the
    #: requester's own store, which never receives its request back).
    recorded_at: datetime | None = None
    #: The answer's (reply, decline, withdrawal) envelope time, as its sender signed it.
    answered_at: datetime | None = None
    #: When the platform stored that answer: the time the answer counts as given.
    answer_recorded_at: datetime | None = None
    #: Times a party claimed that contradict the platform's record (``TIME_CLAIM: …``), in order.
    time_flags: tuple[str, ...] = ()
    results: tuple[ItemResult, ...] = ()
    reasons: str = ""
    answered_by: str = ""
    #: 附件5: the reply letter's own number (the assistor's series), "" if it gave none.
    reply_number: str = ""
    #: 第五条: institutions holding pre-reform archives the assistor asked.
    forwarded_to: tuple[str, ...] = ()
    withdrawn_reason: str = ""
    events: int = 1


def start(env: Envelope, digest: str, *, recorded_at: datetime | None = None) -> CaseState:
    """Open a case from its request envelope; ``recorded_at``: when the platform stored it, if known."""
    req = env.payload
    if not isinstance(req, AssistanceRequested):
        raise errors.NotFirst(f"case {env.case} must start with a request, not {env.type}",
                              zh=f"案件 {env.case} 须以协助请求开始，而不是 {env.type}")
    check_request(env, req)
    flags: tuple[str, ...] = ()
    if recorded_at is not None and env.time > recorded_at + CLAIM_TOLERANCE:
        flags = (f"{TIME_CLAIM}: request {env.number} is dated {_iso(env.time)}, after the platform stored it "
                 f"at {_iso(recorded_at)}",)
    if req.reply_within > REPLY_DAYS or req.decline_within > DECLINE_DAYS:
        reply, decline = time_limits(req)
        flags = (*flags, f"{LONGER_LIMIT}: request {env.number} allows {req.reply_within} working days to reply "
                         f"and {req.decline_within} to decline; it is judged by {reply} and {decline}")
    return CaseState(
        case=env.case,
        number=env.number,
        requester=req.requester,
        assistor=req.assistor,
        request_id=env.id,
        request_hash=digest,
        request=req,
        sent_at=env.time,
        recorded_at=recorded_at,
        time_flags=flags,
    )


def time_limits(req: AssistanceRequested) -> tuple[int, int]:
    """三(二), 第五条: working days to reply and to decline in writing — the plan's 3 and 2, or the
    shorter time a catalogue item agreed (第十一条); a longer one asked for counts for nothing."""
    return min(req.reply_within, REPLY_DAYS), min(req.decline_within, DECLINE_DAYS)


def check_time_limits(reply_within: int, decline_within: int) -> None:
    """A request being sent may not give the assistor more time than the plan does."""
    if not 1 <= reply_within <= REPLY_DAYS or not 1 <= decline_within <= DECLINE_DAYS:
        raise errors.BadRequest(
            f"三(二): the assistor replies within {REPLY_DAYS} working days and declines within {DECLINE_DAYS}; "
            f"a request cannot allow {reply_within} and {decline_within}",
            zh=f"三(二)：协助机构应在 {REPLY_DAYS} 个工作日内答复、{DECLINE_DAYS} 个工作日内告知不能协助；"
               f"请求不能规定 {reply_within} 和 {decline_within} 个工作日")


def legal_arrival(state: CaseState) -> datetime | None:
    """第五条: when the request counts as received, the time its deadlines run from.

    On the platform channel: when the platform stored it (信息推送行为结束即视为对方接收到信息，时间以系统
    记录的到达时间为准): the push's end, when the sender's sending stream stored it, as the ledger records
    it (decision 57), whether or not the assistor ever acknowledges it.  On the letter channel: the
    visit that delivered the letter, as the assistor recorded it.  Where the platform's time is not
    known (a bureau's own store), the assistor's record stands in.
    """
    if state.request.channel == "platform" and state.recorded_at is not None:
        return state.recorded_at
    return state.arrived_at


def legal_answer(state: CaseState) -> datetime | None:
    """When the answer (reply, decline, withdrawal) counts as given: when the platform stored it.

    Its own envelope time is the sender's claim; it stands in only where the platform's time is
    not known.
    """
    if state.answered_at is None:
        return None
    return state.answer_recorded_at or state.answered_at


def check_request(env: Envelope, req: AssistanceRequested) -> None:
    """The request names its parties consistently and lists distinct items."""
    if (env.sender, env.recipient) != (req.requester, req.assistor):
        raise errors.WrongParty(
            f"request {env.number} is sent {env.sender}→{env.recipient} but names "
            f"{req.requester}→{req.assistor}",
            zh=f"请求 {env.number} 由{zh_name(env.sender)}发往{zh_name(env.recipient)}，"
               f"但写明的是{zh_name(req.requester)}→{zh_name(req.assistor)}"
        )
    if req.requester == req.assistor:
        raise errors.BadRequest("a bureau cannot request assistance from itself", zh="单位不能向自身请求行政协助")
    nos = [i.no for i in req.items]
    if len(set(nos)) != len(nos):
        raise errors.BadRequest(f"request {env.number} numbers its items twice: {nos}",
                                zh=f"请求 {env.number} 的事项序号有重复：{nos}")
    if req.channel == "letter" and len(req.staff) != 2:
        raise errors.BadRequest("协助函（二）: a letter carried by staff names the two staff members",
                                zh="协助函（二）：由工作人员持送的协助函须写明两名工作人员")


def apply(state: CaseState | None, env: Envelope, digest: str, *, recorded_at: datetime | None = None) -> CaseState:
    """Fold one more envelope into the case; raises a RuleError if it breaks a rule.

    ``recorded_at`` is when the platform stored this envelope (the ledger's arrival, JetStream's
    stored time), if the caller knows it: it decides the legal times, and a claimed time that
    contradicts it is flagged in ``time_flags``.
    """
    if state is None:
        return start(env, digest, recorded_at=recorded_at)
    new = _apply(state, env, digest, recorded_at)
    flags = _claim_flags(state, new, env, recorded_at)
    return msgspec.structs.replace(new, time_flags=(*new.time_flags, *flags)) if flags else new


def _apply(state: CaseState, env: Envelope, digest: str, recorded_at: datetime | None) -> CaseState:
    match env.payload:
        case AssistanceRequested():
            raise errors.NotFirst(f"case {state.number} was already requested", zh=f"案件 {state.number} 已提出过请求")
        case AssistanceReceived() as ev:
            _from_assistor(state, env)
            _answers_request(state, ev.request_id, ev.request_hash)
            if state.arrived_at is not None:
                raise errors.WrongOrder(f"case {state.number}: arrival was already recorded",
                                        zh=f"案件 {state.number}：已有送达记录")
            if state.request.channel == "letter" and ev.arrived_at < state.sent_at - CLAIM_TOLERANCE:
                # The letter's arrival starts its deadlines, so it cannot precede the letter.
                raise errors.WrongOrder(
                    f"case {state.number}: the letter is recorded as arriving at {_iso(ev.arrived_at)}, "
                    f"before it was sent at {_iso(state.sent_at)}",
                    zh=f"案件 {state.number}：记录的送达时间 {_iso(ev.arrived_at)} 早于发出时间 {_iso(state.sent_at)}")
            if state.status == "withdrawn":  # the withdrawal crossed the arrival record in transit
                return _next(state, arrived_at=ev.arrived_at)
            return _next(state, status="received", arrived_at=ev.arrived_at)
        case AssistanceReplied() as ev:
            _answerable(state, env, ev.request_id, ev.request_hash, ev.channel)
            _check_results(state, ev.results)
            if ev.on_behalf_of and ev.on_behalf_of not in state.forwarded_to:
                raise errors.WrongParty(f"case {state.number} was never forwarded to {ev.on_behalf_of}",
                                        zh=f"案件 {state.number} 从未转交{ev.on_behalf_of}")
            status = "withdrawn" if state.status == "withdrawn" else "replied"
            return _next(state, status=status, answered_at=env.time, answer_recorded_at=recorded_at,
                         results=tuple(ev.results), answered_by=ev.answered_by, reply_number=ev.number)
        case AssistanceDeclined() as ev:
            _answerable(state, env, ev.request_id, ev.request_hash, ev.channel)
            status = "withdrawn" if state.status == "withdrawn" else "declined"
            return _next(state, status=status, answered_at=env.time, answer_recorded_at=recorded_at,
                         reasons=ev.reasons, answered_by=ev.answered_by)
        case AssistanceForwarded() as ev:
            _from_assistor(state, env)
            _answers_request(state, ev.request_id, ev.request_hash)
            if state.status != "received":
                raise errors.WrongOrder(f"case {state.number} is {state.status}; only a received request is forwarded",
                                        zh=f"案件 {state.number} 为"
                                           f"{labels.REQUEST_STATUS.get(state.status, state.status)}；"
                                           "只有已收到的请求才能转交")
            if ev.institution in state.forwarded_to:
                raise errors.WrongOrder(f"case {state.number} was already forwarded to {ev.institution}",
                                        zh=f"案件 {state.number} 已转交{ev.institution}")
            return _next(state, forwarded_to=(*state.forwarded_to, ev.institution))
        case AssistanceWithdrawn() as ev:
            if (env.sender, env.recipient) != (state.requester, state.assistor):
                raise errors.WrongParty(f"only {state.requester} may withdraw its request {state.number}",
                                        zh=f"只有{zh_name(state.requester)}可以撤回其请求 {state.number}")
            if ev.request_id != state.request_id:
                raise errors.HashMismatch(f"withdrawal does not name request {state.number}",
                                          zh=f"撤回未写明请求 {state.number}")
            if state.withdrawn_reason:
                raise errors.WrongOrder(f"case {state.number} was already withdrawn", zh=f"案件 {state.number} 已撤回")
            if state.status not in OPEN:
                # Crossed in transit with the answer: both stand on record; the answer stays.
                return _next(state, withdrawn_reason=ev.reason)
            return _next(state, status="withdrawn", withdrawn_reason=ev.reason, answered_at=env.time,
                         answer_recorded_at=recorded_at)
    raise errors.WrongOrder(f"event type {env.type} does not belong to an assistance case",
                            zh=f"事件类型 {env.type} 不属于行政协助案件")


def item_texts(state: CaseState) -> dict[int, str]:
    """The asked items by number (第十条: the answer may cover only these)."""
    return {i.no: i.text for i in state.request.items}


def _next(state: CaseState, **changes: object) -> CaseState:
    return msgspec.structs.replace(state, events=state.events + 1, **changes)


def _claim_flags(old: CaseState, new: CaseState, env: Envelope, recorded_at: datetime | None) -> list[str]:
    """第五条: the times a party claims in this envelope, checked against the platform's record."""
    flags: list[str] = []
    ev = env.payload
    if isinstance(ev, AssistanceReceived):
        if old.request.channel == "platform" and old.recorded_at is not None \
                and abs(ev.arrived_at - old.recorded_at) > CLAIM_TOLERANCE:
            flags.append(f"{TIME_CLAIM}: {env.sender} records the arrival of {old.number} at {_iso(ev.arrived_at)}; "
                         f"the platform stored the request at {_iso(old.recorded_at)}, and its deadlines run "
                         f"from that")
        elif ev.arrived_at < old.sent_at - CLAIM_TOLERANCE:
            flags.append(f"{TIME_CLAIM}: {env.sender} records the arrival of {old.number} at {_iso(ev.arrived_at)}, "
                         f"before the request was sent at {_iso(old.sent_at)}")
        if recorded_at is not None and ev.arrived_at > recorded_at + CLAIM_TOLERANCE:
            flags.append(f"{TIME_CLAIM}: {env.sender} records the arrival of {old.number} at {_iso(ev.arrived_at)}, "
                         f"later than the platform stored that record at {_iso(recorded_at)}")
    if recorded_at is not None and new.answer_recorded_at == recorded_at and new.answered_at == env.time \
            and abs(env.time - recorded_at) > CLAIM_TOLERANCE:
        flags.append(f"{TIME_CLAIM}: {env.sender}'s {env.type} is dated {_iso(env.time)}; the platform stored it "
                     f"at {_iso(recorded_at)}, and it counts as given then")
    return flags


def _iso(t: datetime) -> str:
    return t.isoformat(timespec="seconds")


def _from_assistor(state: CaseState, env: Envelope) -> None:
    if (env.sender, env.recipient) != (state.assistor, state.requester):
        raise errors.WrongParty(
            f"only {state.assistor} may answer case {state.number} to {state.requester}; "
            f"got {env.sender}→{env.recipient}",
            zh=f"只有{zh_name(state.assistor)}可以就案件 {state.number} 答复{zh_name(state.requester)}；"
               f"收到的是{zh_name(env.sender)}→{zh_name(env.recipient)}"
        )


def _answers_request(state: CaseState, request_id: str, request_hash: str) -> None:
    if request_id != state.request_id or request_hash != state.request_hash:
        raise errors.HashMismatch(f"answer does not carry the hash of request {state.number}",
                                  zh=f"答复未附协助请求 {state.number} 的哈希值")


def _answerable(state: CaseState, env: Envelope, request_id: str, request_hash: str, channel: str) -> None:
    _from_assistor(state, env)
    _answers_request(state, request_id, request_hash)
    if state.arrived_at is None:  # the assistor answers what it has recorded as arrived (its signed receipt)
        raise errors.NotYet(f"case {state.number} has no recorded arrival yet", zh=f"案件 {state.number} 尚无送达记录")
    if state.status == "withdrawn":
        return  # an answer that crossed the withdrawal in transit: recorded, the case stays withdrawn
    if state.status not in OPEN:
        raise errors.WrongOrder(f"case {state.number} is already {state.status}",
                                zh=f"案件 {state.number} 已是"
                                   f"“{labels.REQUEST_STATUS.get(state.status, state.status)}”，不能重复办理")
    if channel != state.request.channel:
        raise errors.ChannelMismatch(
            f"request {state.number} came by {state.request.channel}; the answer must use it, not {channel}",
            zh=f"请求 {state.number} 经{labels.CHANNEL.get(state.request.channel, state.request.channel)}发出；"
               f"答复须使用同一方式，而不是{labels.CHANNEL.get(channel, channel)}"
        )


def _check_results(state: CaseState, results: list[ItemResult]) -> None:
    asked = sorted(i.no for i in state.request.items)
    answered = sorted(r.no for r in results)
    if answered != asked:
        raise errors.ItemsMismatch(
            f"request {state.number} asked items {asked}; the reply answers {answered}",
            zh=f"请求 {state.number} 请求核查第 {asked} 项；答复的是第 {answered} 项"
        )
    for r in results:
        if r.verdict == "unverifiable" and not r.reason.strip():
            raise errors.MissingReason(f"item {r.no} of {state.number} cannot be verified but gives no reason",
                                       zh=f"{state.number} 第 {r.no} 项无法证实，但未说明理由")
