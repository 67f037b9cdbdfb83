"""Disputes (附件2 第八条) in the bureaus' stores, and the commands that move them.

A dispute is 区司法局's file.  Each store keeps the envelopes of a dispute it knows, and the
state is the fold of :mod:`aggregates.dispute`:

- the raising bureau's store: its raise and its negotiation notes (outgoing, relayed to ``sifa``);
- the other party's store: the raise as handed over (:meth:`DisputeCases.join`, never over the
  wire) and its own notes (outgoing, to ``sifa``);
- 区司法局's store: every party's event as it arrived (:meth:`DisputeCases.accept`, with the
  intake marker in the same transaction), and its own steps (outgoing, to the ledger).
"""
from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from typing import TYPE_CHECKING, Any, Protocol, Self, TypeVar, cast

import msgspec
from eventsourcing.persistence import IntegrityError

from aggregates import dispute
from aggregates.assistance import CaseState
from aggregates.catalogue import Adjustment, owner_of
from aggregates.dispute import DisputeState
from aggregates.errors import (
    CatalogueAmendment,
    DisputeOrder,
    InvalidDispute,
    NotDisputeAuthority,
    NotDisputeParty,
)
from aggregates.registry import zh_name
from aggregates.store.assistance import AssistanceCases
from aggregates.store.base import (
    BureauApplication,
    ConcurrentChange,
    DuplicateEvent,
    IntakeMarker,
    SignedCase,
    retry_on_conflict,
)
from aggregates.store.notices import Notices
from schemas import labels
from schemas.catalogue import JUSTICE, STAFFING_OFFICE, Kind, Row
from schemas.dispute import (
    DecisionCatalogued,
    DisputeEscalated,
    DisputeEvent,
    DisputeRaised,
    DisputeReferred,
    DisputeRuled,
    DisputeSettled,
    DistrictDecided,
    NegotiationRecorded,
    Outcome,
)
from schemas.envelope import LEDGER, Envelope, Signed, new_id
from schemas.sla import DISTRICT_GOVERNMENT

#: The units that determine a dispute unless more are named (第八条: 区司法局会同区委编办).
CO_DECIDERS = (JUSTICE, STAFFING_OFFICE)


class DisputeCase(SignedCase):
    """One dispute as this bureau has recorded it."""

    if TYPE_CHECKING:
        state: DisputeState

    @classmethod
    def _start(cls, env: Envelope, digest: str) -> DisputeState:
        return dispute.start(env)

    @classmethod
    def _next(cls, state: Any, env: Envelope, digest: str) -> DisputeState:
        return dispute.apply(state, env)

    @classmethod
    def open(cls, signed: Signed, env: Envelope, *, outgoing: bool, stream_seq: int = 0,
             case: CaseState | None = None) -> Self:
        """Guard (a valid raise, matching the assistance ``case`` if given), then record it."""
        dispute.start(env, case)
        return super().open(signed, env, outgoing=outgoing, stream_seq=stream_seq)


class CatalogueAmender(Protocol):
    """区司法局's catalogue registry (:class:`aggregates.store.catalogue.CatalogueRegistry`), as a ruling uses it."""

    def current(self, kind: Kind) -> Sequence[Row]: ...

    def apply_adjustment(self, kind: Kind, applicant: str, basis: str, *, adds: Sequence[Row] = (),
                         removes: Sequence[str] = (), replaces: Sequence[Row] = (), dispute: str = "") -> str: ...

    def adjustment(self, adjustment_id: str) -> Adjustment: ...


class DisputeCases:
    """What the parties and 区司法局 do with a dispute, and the queries."""

    def __init__(self, app: BureauApplication, assistance: AssistanceCases) -> None:
        self._app = app
        self._assistance = assistance

    # -- the parties --------------------------------------------------------------------------

    def raise_dispute(self, case_id: str, claim: str, evidence: Sequence[str] = ()) -> DisputeState:
        """第八条: raise a dispute about an assistance case of this store with 区司法局; takes a ``D`` number."""
        app = self._app
        st = self._assistance.case(case_id).state
        if app.bureau not in (st.requester, st.assistor):
            raise NotDisputeParty(f"{app.bureau} is not a party of request {st.number}",
                                  zh=f"{zh_name(app.bureau)}不是请求 {st.number} 的当事方")
        other = st.assistor if app.bureau == st.requester else st.requester
        payload = _checked(DisputeRaised(
            raised_by=app.bureau, other_party=other, requester=st.requester, assistor=st.assistor,
            assistance_case=st.case, assistance_number=st.number, claim=claim, evidence=list(evidence)))

        def attempt() -> DisputeState:
            series, number, now = app.next_number("D")
            env = Envelope(id=new_id(), sender=app.bureau, recipient=JUSTICE, case=new_id(),
                           number=number, time=now, payload=payload)
            case = DisputeCase.open(app.sign(env), env, outgoing=True, case=st)
            app.save(series, case)  # conflicts if another writer took the number: take the next
            return case.state
        return retry_on_conflict(attempt, f"{app.bureau}'s dispute numbers")

    def join(self, signed: Signed, env: Envelope) -> DisputeState:
        """The other party takes up a dispute raised against it, from the raise's signed bytes.

        The raise travels only to 区司法局, so the caller hands it over from the ledger (or the
        raiser's store) after verifying its signature.  Its notes are then guarded by the same
        fold.  Taking up a dispute already here changes nothing.
        """
        app = self._app
        ev = env.payload
        if not isinstance(ev, DisputeRaised):
            raise DisputeOrder(f"a dispute is taken up from its dispute.raised, not {env.type}",
                               zh=f"争议从其 dispute.raised 受理，而不是 {env.type}")
        if ev.other_party != app.bureau:
            raise NotDisputeParty(f"dispute {env.number} is raised against {ev.other_party}, not {app.bureau}",
                                  zh=f"争议 {env.number} 针对的是{zh_name(ev.other_party)}，"
                                     f"而不是{zh_name(app.bureau)}")
        if app.has(env.case):
            return self.case(env.case).state
        case: CaseState | None = None
        if app.has(ev.assistance_case):
            case = self._assistance.case(ev.assistance_case).state
        dc = DisputeCase.open(signed, env, outgoing=False, case=case)
        try:
            app.save(dc, IntakeMarker.mark(env.id, 0))
        except IntegrityError:
            return self.case(env.case).state  # taken up meanwhile
        return dc.state

    def negotiate(self, dispute_id: str, note: str, outcome: Outcome = "continuing") -> DisputeState:
        """A party notes the negotiation (协商); ``failed`` records 协商不成."""
        bureau = self._app.bureau
        return self.step(dispute_id, lambda st: NegotiationRecorded(party=bureau, note=note, outcome=outcome))

    def settle(self, dispute_id: str, agreement: str) -> DisputeState:
        """协商解决: the parties' agreement closes the dispute."""
        return self.step(dispute_id, lambda st: DisputeSettled(agreed_by=list(st.parties), agreement=agreement))

    # -- 区司法局 ----------------------------------------------------------------------------

    def refer(self, dispute_id: str, reasons: str) -> DisputeState:
        """协商不成: 区司法局 takes the dispute up, to determine it with 区委编办."""
        self._justice("takes a dispute up", "受理争议")
        return self.step(dispute_id, lambda st: DisputeReferred(reasons=reasons))

    def amend_catalogue(self, dispute_id: str, kind: Kind, basis: str, *, adds: Sequence[Row] = (),
                        replaces: Sequence[Row] = (), removes: Sequence[str] = ()) -> str:
        """区司法局 applies the catalogue adjustment a ruling or decision needs; returns its id.

        It carries the dispute's number, so the catalogue lets 区司法局 change rows another
        bureau lists; this command keeps that to the rows of the dispute's two parties.  It is
        then reviewed and published like every adjustment.  Only while the dispute is taken up,
        escalated, or decided by 区政府 and not yet taken into the catalogue.
        """
        self._justice("amends the catalogue for a dispute", "为争议调整目录")
        st = self.case(dispute_id).state
        if st.status not in ("referred", "escalated", "decided"):
            raise DisputeOrder(f"dispute {st.number} is {st.step}; the catalogue is amended for a dispute "
                               f"{JUSTICE} has taken up and not yet closed",
                               zh=f"争议 {st.number} 为“{labels.DISPUTE_STEP.get(st.step, st.step)}”；"
                                  f"只有{zh_name(JUSTICE)}已受理且尚未结束的争议才调整目录")
        registry = self._registry()
        published = {r.code: r for r in registry.current(kind)}
        touched = [*adds, *replaces, *(published[c] for c in [*(r.code for r in replaces), *removes]
                                       if c in published)]
        others = sorted({f"{r.code} ({owner_of(r)})" for r in touched if owner_of(r) not in st.parties})
        if others:
            raise CatalogueAmendment(f"dispute {st.number} is between {st.raised_by} and {st.other_party}; "
                                     f"its ruling does not change the rows of others: {', '.join(others)}",
                                     zh=f"争议 {st.number} 是{zh_name(st.raised_by)}与{zh_name(st.other_party)}之间的；"
                                        f"其研究确定意见不改动他人的事项：{'、'.join(others)}")
        adjustment_id: str = registry.apply_adjustment(kind, JUSTICE, basis, adds=adds, replaces=replaces,
                                                       removes=removes, dispute=st.number)
        return adjustment_id

    def rule(self, dispute_id: str, ruling: str, co_deciders: Sequence[str] = CO_DECIDERS,
             adjustment: str = "") -> DisputeState:
        """区司法局会同区委编办研究确定; with ``adjustment``, the ruling amends the catalogue through it."""
        self._justice("rules on a dispute", "研究确定争议")
        if adjustment:
            self._check_adjustment(dispute_id, adjustment)
        return self.step(dispute_id, lambda st: DisputeRuled(
            ruling=ruling, co_deciders=list(co_deciders), amends_catalogue=bool(adjustment), adjustment=adjustment))

    def escalate(self, dispute_id: str, reasons: str, petitioners: Sequence[str] = CO_DECIDERS) -> DisputeState:
        """必要时: 区司法局 and 区委编办 ask 区政府 to decide."""
        self._justice("asks 区政府 to decide", "提请区政府决定")
        return self.step(dispute_id, lambda st: DisputeEscalated(petitioners=list(petitioners), reasons=reasons))

    def take_in(self, dispute_id: str, adjustment: str) -> DisputeState:
        """决定作出后纳入行政协助目录: 区司法局 names the adjustment that takes 区政府's decision in; closes it."""
        self._justice("takes 区政府's decision into the catalogue", "将区政府的决定纳入目录")
        if not adjustment.startswith("assistance-"):
            raise CatalogueAmendment(f"第八条: 决定作出后纳入行政协助目录 — name the 行政协助事项清单's adjustment "
                                     f"that takes the decision in, not {adjustment or 'none'}",
                                     zh="第八条："
                                        "决定作出后纳入行政协助目录——请写明将该决定纳入的行政协助事项清单调整申请，"
                                        f"而不是 {adjustment or '无'}")
        self._check_adjustment(dispute_id, adjustment)
        return self.step(dispute_id, lambda st: DecisionCatalogued(adjustment=adjustment))

    # -- 区政府 (through 区政府办公室) ---------------------------------------------------------------

    def decide(self, dispute_case: str, number: str, decision: str, decision_no: str = "") -> bool:
        """区政府's decision on escalated dispute ``number`` (case id ``dispute_case``), signed here and sent to
        区司法局, whose file checks it; once per dispute (``False`` if it was decided before).

        区政府办公室 does not keep the dispute's file (the parties' events are sealed to them and to
        区司法局): the caller checks on the ledger that the dispute was escalated and not yet decided.
        """
        app = self._app
        if app.bureau != DISTRICT_GOVERNMENT:
            raise NotDisputeAuthority(f"第八条: 区政府 decides through 区政府办公室 ({DISTRICT_GOVERNMENT}); "
                                      f"not {app.bureau}",
                                      zh=f"第八条：区政府通过区政府办公室（{DISTRICT_GOVERNMENT}）作出决定；"
                                         f"不是{zh_name(app.bureau)}", actor=app.bureau)
        payload = _checked(DistrictDecided(decision=decision, decision_no=decision_no))
        return Notices(app).send(f"dispute-decision:{dispute_case}", dispute_case, number, [(JUSTICE, payload)])

    # -- recording -------------------------------------------------------------------------------

    def step(self, dispute_id: str, make: Callable[[DisputeState], DisputeEvent]) -> DisputeState:
        """Sign one step of a dispute as it is now (a party's to ``sifa``, 区司法局's to the ledger) and save it."""
        app = self._app

        def attempt() -> DisputeState:
            dc = self.case(dispute_id)
            payload = _checked(make(dc.state))
            recipient = LEDGER if app.bureau == JUSTICE else JUSTICE
            env = Envelope(id=new_id(), sender=app.bureau, recipient=recipient, case=dc.state.case,
                           number=dc.state.number, time=app.clock.now(), payload=payload)
            dc.add(app.sign(env), env, outgoing=True)
            app.save(dc)  # conflicts if a party's step arrived meanwhile: guard again on the new state
            return dc.state
        return retry_on_conflict(attempt, f"dispute {dispute_id}")

    def accept(self, signed: Signed, env: Envelope, marker: IntakeMarker, *, stream_seq: int) -> None:
        """Intake at 区司法局: a party's dispute event, with its intake marker, in one transaction."""
        app = self._app
        if app.bureau != JUSTICE:
            raise NotDisputeAuthority(f"第八条: a dispute is {JUSTICE}'s file; {env.type} of {env.number} "
                                      f"cannot be kept by {app.bureau}",
                                      zh=f"第八条：争议由{zh_name(JUSTICE)}立卷；"
                                         f"{env.number} 的 {env.type} 不能由{zh_name(app.bureau)}保存")
        if isinstance(env.payload, DisputeRaised) and not app.has(env.case):
            dc = DisputeCase.open(signed, env, outgoing=False, stream_seq=stream_seq)
        else:
            dc = self.case(env.case)  # an unknown dispute: its raise has not arrived yet
            dc.raise_if_held(env.id, signed.body)
            dc.add(signed, env, outgoing=False, stream_seq=stream_seq)
        try:
            app.save(dc, marker)
        except IntegrityError as e:
            if app.has(IntakeMarker.id_for(env.id)):
                known = self.case(env.case).holds(env.id)
                raise DuplicateEvent(f"event {env.id} was already applied", zh=f"事件 {env.id} 已应用",
                                     same_bytes=known is not None and known.body == signed.body) from e
            raise ConcurrentChange(f"concurrent change to dispute {env.number}; retry",
                                   zh=f"争议 {env.number} 同时被修改；请重试") from e

    def _justice(self, what: str, what_zh: str) -> None:
        bureau = self._app.bureau
        if bureau != JUSTICE:
            raise NotDisputeAuthority(f"第八条: only {JUSTICE} {what}; not {bureau}",
                                      zh=f"第八条：只有{zh_name(JUSTICE)}可以{what_zh}；"
                                         f"{zh_name(bureau)}不能", actor=bureau)

    def _registry(self) -> CatalogueAmender:
        """The catalogue registry this store checks requests against (区司法局's catalogues)."""
        catalogue = self._app.catalogue
        if catalogue is None or not hasattr(catalogue, "apply_adjustment"):
            raise CatalogueAmendment(f"{self._app.bureau}'s store has no catalogue to amend",
                                     zh=f"{zh_name(self._app.bureau)}的存储没有可调整的目录")
        return cast(CatalogueAmender, catalogue)

    def _check_adjustment(self, dispute_id: str, adjustment: str) -> None:
        """With a catalogue at hand: the adjustment exists, carries this dispute, and was not rejected."""
        catalogue = self._app.catalogue
        if catalogue is None or not hasattr(catalogue, "adjustment"):
            return  # a store without the catalogue: the fold's rules alone
        st = self.case(dispute_id).state
        adj = cast(CatalogueAmender, catalogue).adjustment(adjustment)
        if adj.dispute != st.number:
            raise CatalogueAmendment(f"adjustment {adjustment} does not carry dispute {st.number} "
                                     f"({adj.dispute or 'no dispute'})",
                                     zh=f"调整申请 {adjustment} 未载明争议 {st.number}"
                                        f"（{adj.dispute or '无争议'}）", adjustment=adjustment)
        if adj.status == "rejected":
            raise CatalogueAmendment(f"adjustment {adjustment} was rejected: {adj.reasons}",
                                     zh=f"调整申请 {adjustment} 已被驳回：{adj.reasons}", adjustment=adjustment)

    # -- queries ---------------------------------------------------------------------------------

    def case(self, dispute_id: str) -> DisputeCase:
        """Load one dispute by id (:class:`aggregates.store.UnknownCase` if this store has none)."""
        dc = self._app.load(dispute_id, "dispute")
        if not isinstance(dc, DisputeCase):
            raise DisputeOrder(f"{dispute_id} is not a dispute", zh=f"{dispute_id} 不是争议")
        return dc

    def cases(self) -> Iterator[DisputeState]:
        """Every dispute this store knows, oldest first, as its current state."""
        for n in self._app.notifications(DisputeCase.opening_topics()):
            yield self.case(str(n.originator_id)).state


_Payload = TypeVar("_Payload", bound=DisputeEvent)


def _checked(payload: _Payload) -> _Payload:
    """Validate a payload as a receiver will decode it: a Struct built in Python skips its constraints."""
    try:
        return msgspec.convert(msgspec.to_builtins(payload), type(payload))
    except msgspec.ValidationError as e:
        raise InvalidDispute(f"{type(payload).__struct_config__.tag}: {e}",
                             zh=f"{type(payload).__struct_config__.tag}：{e}") from e
