"""The assistance case as a pure fold over signed envelopes, with the rules of 附件2.

The same fold serves the requester's store, the assistor's store, the 司法局 ledger's
replay and the projections, so that every party applies the same rules to the same bytes.
"""
from __future__ import annotations

from datetime import datetime
from typing import Literal

import msgspec

from aggregates import errors
from schemas.assistance import (
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
    sent_at: datetime
    arrived_at: datetime | None = None
    answered_at: datetime | None = None
    results: tuple[ItemResult, ...] = ()
    reasons: str = ""
    answered_by: str = ""
    #: 第五条: institutions holding pre-reform archives the assistor asked.
    forwarded_to: tuple[str, ...] = ()
    withdrawn_reason: str = ""
    events: int = 1


def start(env: Envelope, digest: str) -> CaseState:
    """Open a case from its request envelope."""
    req = env.payload
    if not isinstance(req, AssistanceRequested):
        raise errors.NotFirst(f"case {env.case} must start with a request, not {env.type}")
    check_request(env, req)
    return CaseState(
        case=env.case,
        number=env.number,
        requester=req.requester,
        assistor=req.assistor,
        request_id=env.id,
        request_hash=digest,
        request=req,
        sent_at=env.time,
    )


def check_request(env: Envelope, req: AssistanceRequested) -> None:
    """The request names its parties consistently and lists distinct items."""
    if (env.sender, env.recipient) != (req.requester, req.assistor):
        raise errors.WrongParty(
            f"request {env.number} is sent {env.sender}→{env.recipient} but names "
            f"{req.requester}→{req.assistor}"
        )
    if req.requester == req.assistor:
        raise errors.BadRequest("a bureau cannot request assistance from itself")
    nos = [i.no for i in req.items]
    if len(set(nos)) != len(nos):
        raise errors.BadRequest(f"request {env.number} numbers its items twice: {nos}")
    if req.channel == "letter" and len(req.staff) != 2:
        raise errors.BadRequest("协助函（二）: a letter carried by staff names the two staff members")


def apply(state: CaseState | None, env: Envelope, digest: str) -> CaseState:
    """Fold one more envelope into the case; raises a RuleError if it breaks a rule."""
    if state is None:
        return start(env, digest)
    match env.payload:
        case AssistanceRequested():
            raise errors.NotFirst(f"case {state.number} was already requested")
        case AssistanceReceived() as ev:
            _from_assistor(state, env)
            _answers_request(state, ev.request_id, ev.request_hash)
            if state.arrived_at is not None:
                raise errors.WrongOrder(f"case {state.number}: arrival was already recorded")
            if state.status == "withdrawn":  # the withdrawal crossed the arrival record in transit
                return _next(state, arrived_at=ev.arrived_at)
            return _next(state, status="received", arrived_at=ev.arrived_at)
        case AssistanceReplied() as ev:
            _answerable(state, env, ev.request_id, ev.request_hash, ev.channel)
            _check_results(state, ev.results)
            if ev.on_behalf_of and ev.on_behalf_of not in state.forwarded_to:
                raise errors.WrongParty(f"case {state.number} was never forwarded to {ev.on_behalf_of}")
            status = "withdrawn" if state.status == "withdrawn" else "replied"
            return _next(state, status=status, answered_at=env.time, results=tuple(ev.results),
                         answered_by=ev.answered_by)
        case AssistanceDeclined() as ev:
            _answerable(state, env, ev.request_id, ev.request_hash, ev.channel)
            status = "withdrawn" if state.status == "withdrawn" else "declined"
            return _next(state, status=status, answered_at=env.time, reasons=ev.reasons,
                         answered_by=ev.answered_by)
        case AssistanceForwarded() as ev:
            _from_assistor(state, env)
            _answers_request(state, ev.request_id, ev.request_hash)
            if state.status != "received":
                raise errors.WrongOrder(f"case {state.number} is {state.status}; only a received request is forwarded")
            if ev.institution in state.forwarded_to:
                raise errors.WrongOrder(f"case {state.number} was already forwarded to {ev.institution}")
            return _next(state, forwarded_to=(*state.forwarded_to, ev.institution))
        case AssistanceWithdrawn() as ev:
            if (env.sender, env.recipient) != (state.requester, state.assistor):
                raise errors.WrongParty(f"only {state.requester} may withdraw its request {state.number}")
            if ev.request_id != state.request_id:
                raise errors.HashMismatch(f"withdrawal does not name request {state.number}")
            if state.withdrawn_reason:
                raise errors.WrongOrder(f"case {state.number} was already withdrawn")
            if state.status not in OPEN:
                # Crossed in transit with the answer: both stand on record; the answer stays.
                return _next(state, withdrawn_reason=ev.reason)
            return _next(state, status="withdrawn", withdrawn_reason=ev.reason, answered_at=env.time)
    raise errors.WrongOrder(f"event type {env.type} does not belong to an assistance case")


def item_texts(state: CaseState) -> dict[int, str]:
    """The asked items by number (第十条: the answer may cover only these)."""
    return {i.no: i.text for i in state.request.items}


def _next(state: CaseState, **changes: object) -> CaseState:
    return msgspec.structs.replace(state, events=state.events + 1, **changes)


def _from_assistor(state: CaseState, env: Envelope) -> None:
    if (env.sender, env.recipient) != (state.assistor, state.requester):
        raise errors.WrongParty(
            f"only {state.assistor} may answer case {state.number} to {state.requester}; "
            f"got {env.sender}→{env.recipient}"
        )


def _answers_request(state: CaseState, request_id: str, request_hash: str) -> None:
    if request_id != state.request_id or request_hash != state.request_hash:
        raise errors.HashMismatch(f"answer does not carry the hash of request {state.number}")


def _answerable(state: CaseState, env: Envelope, request_id: str, request_hash: str, channel: str) -> None:
    _from_assistor(state, env)
    _answers_request(state, request_id, request_hash)
    if state.arrived_at is None:
        raise errors.NotYet(f"case {state.number} has no recorded arrival yet")
    if state.status == "withdrawn":
        return  # an answer that crossed the withdrawal in transit: recorded, the case stays withdrawn
    if state.status not in OPEN:
        raise errors.WrongOrder(f"case {state.number} is already {state.status}")
    if channel != state.request.channel:
        raise errors.ChannelMismatch(
            f"request {state.number} came by {state.request.channel}; the answer must use it, not {channel}"
        )


def _check_results(state: CaseState, results: list[ItemResult]) -> None:
    asked = sorted(i.no for i in state.request.items)
    answered = sorted(r.no for r in results)
    if answered != asked:
        raise errors.ItemsMismatch(
            f"request {state.number} asked items {asked}; the reply answers {answered}"
        )
    for r in results:
        if r.verdict == "unverifiable" and not r.reason.strip():
            raise errors.MissingReason(f"item {r.no} of {state.number} cannot be verified but gives no reason")
