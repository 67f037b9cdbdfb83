"""Assistance cases (行政协助) in a bureau's store, and what a requester and an assistor do with them.

An assistance case aggregate records each envelope of the case, outgoing ones (signed here,
to be relayed) and incoming ones (verified elsewhere, kept as the exact bytes received), and
its state is the pure fold of :mod:`aggregates.assistance`.
"""
from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from datetime import date, datetime
from typing import TYPE_CHECKING, Any

import msgspec
from eventsourcing.persistence import IntegrityError

from aggregates import assistance
from aggregates.assistance import CaseState
from aggregates.errors import RuleError, WrongOrder
from aggregates.registry import zh_name
from aggregates.store.base import (
    BureauApplication,
    ConcurrentChange,
    DuplicateEvent,
    IntakeMarker,
    SignedCase,
    UnknownCase,
    retry_on_conflict,
)
from aggregates.store.commitments import CommitmentCase, CommitmentCases
from schemas import labels
from schemas.assistance import (
    Applicant,
    AssistanceDeclined,
    AssistanceForwarded,
    AssistanceReceived,
    AssistanceReplied,
    AssistanceRequested,
    AssistanceWithdrawn,
    Channel,
    CommitmentItem,
    ItemResult,
    Matter,
)
from schemas.commitment import ItemVerified
from schemas.envelope import Envelope, Signed, new_id


class AssistanceCase(SignedCase):
    """One assistance case as this bureau has recorded it."""

    if TYPE_CHECKING:
        state: CaseState

    @classmethod
    def _start(cls, env: Envelope, digest: str) -> CaseState:
        return assistance.start(env, digest)

    @classmethod
    def _next(cls, state: Any, env: Envelope, digest: str) -> CaseState:
        return assistance.apply(state, env, digest)


class AssistanceCases:
    """The assistance cases of one bureau's store: the requester's and the assistor's commands, and queries."""

    def __init__(self, app: BureauApplication, commitments: CommitmentCases) -> None:
        self._app = app
        self._commitments = commitments

    # -- commands of the requester -------------------------------------------------

    def request(
        self,
        *,
        assistor: str,
        applicant: Applicant,
        matter: Matter,
        applied_on: date,
        items: Sequence[CommitmentItem],
        channel: Channel = "platform",
        staff: Sequence[str] = (),
        catalogue_item: str = "",
        catalogue_version: int = 0,
        commitment_case: str = "",
        reply_within: int = 3,
        decline_within: int = 2,
    ) -> CaseState:
        """Send a 行政协助函: allocate its number, sign it and commit it for the relay.

        With a catalogue, the item must be catalogued for this pair (第七条; on-site items
        need a filed memorandum, 第六条): the request is refused before anything is sent,
        and records the catalogue version and the item's time limits.  Requests of several
        threads at once commit together (:meth:`BureauApplication.grouped`), on consecutive
        numbers; two writers of one store file taking a number at once conflict on the
        series, and the loser retries.
        """
        app = self._app
        if app.catalogue is not None:
            item, catalogue_version = app.catalogue.check_request(app.bureau, assistor, catalogue_item)
            reply_within, decline_within = item.reply_within, item.decline_within
        assistance.check_time_limits(reply_within, decline_within)
        payload = AssistanceRequested(
            requester=app.bureau, assistor=assistor, applicant=applicant, matter=matter,
            applied_on=applied_on, items=list(items), channel=channel, staff=list(staff),
            catalogue_item=catalogue_item, catalogue_version=catalogue_version,
            commitment_case=commitment_case, reply_within=reply_within, decline_within=decline_within)

        def attempt() -> CaseState:
            series, number, now = app.next_number()
            env = Envelope(id=new_id(), sender=app.bureau, recipient=assistor, case=new_id(),
                           number=number, time=now, payload=payload)
            case = AssistanceCase.open(app.sign(env), env, outgoing=True)
            app.save(series, case)
            return case.state
        return app.grouped(lambda: retry_on_conflict(attempt, f"{app.bureau}'s letter numbers"))

    def withdraw(self, case_id: str, reason: str) -> CaseState:
        """The requester withdraws a request it no longer needs (only while it is open here)."""
        def withdrawal(st: CaseState) -> AssistanceWithdrawn:
            if st.status not in assistance.OPEN:
                raise WrongOrder(f"request {st.number} is {st.status}; nothing to withdraw",
                                 zh=f"请求 {st.number} 为“{labels.REQUEST_STATUS.get(st.status, st.status)}”；无可撤回")
            return AssistanceWithdrawn(request_id=st.request_id, reason=reason)
        return self._emit(case_id, withdrawal)

    # -- commands of the assistor --------------------------------------------------

    def reply(self, case_id: str, results: Sequence[ItemResult], answered_by: str,
              on_behalf_of: str = "") -> CaseState:
        """Send the 回复函: a verdict for every item asked (for an archive institution, if forwarded), under a
        number of the assistor's own series (附件5: 编号), taken in the same transaction."""
        return self._emit(case_id, lambda st: AssistanceReplied(
            request_id=st.request_id, request_hash=st.request_hash, channel=st.request.channel,
            results=list(results), answered_by=answered_by, on_behalf_of=on_behalf_of), numbered=True)

    def forward(self, case_id: str, institution: str, note: str = "") -> CaseState:
        """第五条: ask the institution that holds pre-reform archives; the forward joins the case history."""
        return self._emit(case_id, lambda st: AssistanceForwarded(
            request_id=st.request_id, request_hash=st.request_hash, institution=institution, note=note))

    def decline(self, case_id: str, reasons: str, answered_by: str) -> CaseState:
        """Decline in writing, with the reasons."""
        return self._emit(case_id, lambda st: AssistanceDeclined(
            request_id=st.request_id, request_hash=st.request_hash, channel=st.request.channel,
            reasons=reasons, answered_by=answered_by))

    def _emit(self, case_id: str, make: Callable[[CaseState], Any], *, numbered: bool = False) -> CaseState:
        """Build the payload from the case as it is now, guard, sign, save; again if it changed meanwhile.

        ``numbered``: the payload takes the next number of this bureau's letter series (its ``number``).
        """
        app = self._app

        def attempt() -> CaseState:
            case = self.case(case_id)
            st = case.state
            if st.status == "withdrawn" and st.assistor == app.bureau:
                raise WrongOrder(f"{st.requester} withdrew request {st.number}: {st.withdrawn_reason}",
                                 zh=f"{zh_name(st.requester)}已撤回请求 {st.number}：{st.withdrawn_reason}")
            other = st.requester if st.assistor == app.bureau else st.assistor
            payload, series = make(st), None
            if numbered:
                series, own, _ = app.next_number()
                payload = msgspec.structs.replace(payload, number=own)
            env = Envelope(id=new_id(), sender=app.bureau, recipient=other, case=st.case,
                           number=st.number, time=app.clock.now(), payload=payload)
            case.add(app.sign(env), env, outgoing=True)
            app.save(*(a for a in (series, case) if a is not None))  # conflicts if the case changed: look again
            return case.state
        return app.grouped(lambda: retry_on_conflict(attempt, f"case {case_id}"))

    # -- intake --------------------------------------------------------------------

    def accept(self, signed: Signed, env: Envelope, marker: IntakeMarker, *, stream_seq: int,
               arrived_at: datetime) -> CaseState:
        """Apply a verified incoming envelope of an assistance case, with its intake marker, in one transaction.

        A request opens the case and is answered at once by the signed arrival record
        (``AssistanceReceived``); a reply to a request made for a commitment case verifies
        those items in the same transaction (decision 14).
        """
        app = self._app
        if app.has(IntakeMarker.id_for(env.id)) and not app.has(env.case):
            # A known event id under a case this store never saw: not an honest copy.
            raise DuplicateEvent(f"event {env.id} was already applied, to another case",
                                 zh=f"事件 {env.id} 已应用于另一个案件", same_bytes=False)
        if isinstance(env.payload, AssistanceRequested):
            if app.has(env.case):
                self._raise_if_seen(env.id, signed.body, self.case(env.case))
                raise RuleError(f"case {env.case} ({env.number}) already exists here",
                                zh=f"案件 {env.case}（{env.number}）在此已存在")
            if app.catalogue is not None and env.recipient == app.bureau:
                app.catalogue.check_cited(env.payload)  # 第七条, 第六条: not only the sender's command checks
            case = AssistanceCase.open(signed, env, outgoing=False, stream_seq=stream_seq)
            receipt = Envelope(
                id=new_id(), sender=app.bureau, recipient=env.sender, case=env.case, number=env.number,
                time=app.clock.now(),
                payload=AssistanceReceived(request_id=env.id, request_hash=signed.digest, arrived_at=arrived_at),
            )
            case.add(app.sign(receipt), receipt, outgoing=True)
        else:
            case = self.case(env.case)
            case.raise_if_held(env.id, signed.body)
            case.add(signed, env, outgoing=False, stream_seq=stream_seq)
        linked = self._verified_commitment(case, env)
        try:
            app.save(case, marker, *linked)
        except IntegrityError as e:
            self._raise_if_seen(env.id, signed.body, self.case(env.case))
            raise ConcurrentChange(f"concurrent change to case {env.number}; retry",
                                   zh=f"案件 {env.number} 同时被修改；请重试") from e
        return case.state

    def _verified_commitment(self, case: AssistanceCase, env: Envelope) -> list[CommitmentCase]:
        """A reply to a request made for a commitment case verifies those items, in the same transaction."""
        link = case.state.request.commitment_case
        if not link or not isinstance(env.payload, AssistanceReplied) or case.state.requester != self._app.bureau:
            return []
        try:
            cc = self._commitments.case(link)
            for r in env.payload.results:
                self._commitments.stage(cc, ItemVerified(
                    no=r.no, verdict=r.verdict, reason=r.reason,
                    source=f"assistance:{case.state.requester}/{case.state.number}"))
        except RuleError:
            return []  # the commitment case moved on (withdrawn, verified otherwise): the reply stays on record
        return [cc]

    def _raise_if_seen(self, event_id: str, body: bytes, case: AssistanceCase) -> None:
        if self._app.has(IntakeMarker.id_for(event_id)):
            case.raise_if_held(event_id, body)
            raise DuplicateEvent(f"event {event_id} was already applied",
                                 zh=f"事件 {event_id} 已应用", same_bytes=False)

    # -- queries -------------------------------------------------------------------

    def case(self, case_id: str) -> AssistanceCase:
        """Load one case by id (:class:`UnknownCase` if this store has none)."""
        case = self._app.load(case_id, "case")
        if not isinstance(case, AssistanceCase):
            raise UnknownCase(f"{case_id} is not an assistance case in {self._app.bureau}'s store",
                              zh=f"{case_id} 不是{zh_name(self._app.bureau)}存储中的行政协助案件")
        return case

    def cases(self) -> Iterator[CaseState]:
        """Every case in this store, oldest first, as its current state."""
        for n in self._app.notifications(AssistanceCase.opening_topics()):
            yield self.case(str(n.originator_id)).state

    def inbox(self) -> list[CaseState]:
        """Requests addressed to this bureau that still wait for an answer."""
        return [s for s in self.cases() if s.assistor == self._app.bureau and s.status in assistance.OPEN]

    def for_commitment(self, commitment_case: str) -> list[CaseState]:
        """The assistance requests this bureau made for one of its commitment cases."""
        return [s for s in self.cases() if s.request.commitment_case == commitment_case]
