"""Disputes (附件2 第八条) in the bureaus' stores, and the commands that move them.

A dispute is 区司法局's file.  Each store keeps the envelopes of a dispute it knows, and the
state is the fold of :mod:`aggregates.dispute`:

- the raising bureau's store: its raise and its negotiation notes (outgoing, relayed to ``sifa``);
- the other party's store: the raise as handed over (:meth:`DisputeCommands.join_dispute`,
  never over the wire) and its own notes (outgoing, to ``sifa``);
- 区司法局's store: every party's event as it arrived (:meth:`BureauStore.accept`, with the
  intake marker in the same transaction), and its own steps (outgoing, to the ledger).

The commands are a mixin of :class:`aggregates.store.BureauStore`, which provides signing,
the clock, number series, the catalogue and saving.
"""
from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator, Sequence
from typing import Any, TypeVar

import msgspec
from eventsourcing.application import AggregateNotFoundError
from eventsourcing.domain import Aggregate
from eventsourcing.persistence import IntegrityError
from eventsourcing.utils import get_topic

from aggregates import dispute
from aggregates.assistance import CaseState
from aggregates.dispute import DisputeState
from aggregates.errors import (
    CatalogueAmendment,
    DisputeOrder,
    InvalidDispute,
    NotDisputeAuthority,
    NotDisputeParty,
    RuleError,
)
from schemas.catalogue import JUSTICE, STAFFING_OFFICE, Kind, Row
from schemas.dispute import (
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
from schemas.envelope import LEDGER, Envelope, Signed, decode_envelope, encode_envelope, envelope_id, new_id

#: Optimistic-concurrency retries (another writer took the number, or an event arrived meanwhile).
CONFLICT_RETRIES = 20
#: The units that determine a dispute unless more are named (第八条: 区司法局会同区委编办).
CO_DECIDERS = (JUSTICE, STAFFING_OFFICE)


class DisputeCase(Aggregate):
    """One dispute as this bureau has recorded it."""

    class Raised(Aggregate.Created):
        """This bureau raised the dispute (to be relayed to 区司法局)."""

        body: bytes
        kid: str
        sig: bytes
        clear: bytes

    class Arrived(Aggregate.Created):
        """The raise arrived (区司法局), or was handed over to the other party."""

        body: bytes
        kid: str
        sig: bytes
        clear: bytes
        stream_seq: int

    class Sent(Aggregate.Event):
        """This bureau signed one more step of the dispute."""

        body: bytes
        kid: str
        sig: bytes
        clear: bytes

        def apply(self, aggregate: Any) -> None:
            aggregate._fold(self)

    class Got(Aggregate.Event):
        """Another bureau's step of the dispute arrived here."""

        body: bytes
        kid: str
        sig: bytes
        clear: bytes
        stream_seq: int

        def apply(self, aggregate: Any) -> None:
            aggregate._fold(self)

    state: DisputeState
    envelopes: list[Signed]

    def __init__(self, body: bytes, kid: str, sig: bytes, clear: bytes, stream_seq: int = 0) -> None:
        self.state = dispute.start(decode_envelope(clear))
        self.envelopes = [Signed(body=body, kid=kid, sig=sig)]

    @classmethod
    def open(cls, signed: Signed, env: Envelope, *, outgoing: bool, stream_seq: int = 0,
             case: CaseState | None = None) -> DisputeCase:
        """Guard (a valid raise, matching ``case`` if given), then record it."""
        dispute.start(env, case)
        clear = encode_envelope(env)
        if outgoing:
            return cls._create(cls.Raised, id=uuid.UUID(env.case), body=signed.body, kid=signed.kid, sig=signed.sig,
                               clear=clear)
        return cls._create(cls.Arrived, id=uuid.UUID(env.case), body=signed.body, kid=signed.kid, sig=signed.sig,
                           clear=clear, stream_seq=stream_seq)

    def add(self, signed: Signed, env: Envelope, *, outgoing: bool, stream_seq: int = 0) -> None:
        """Guard (the fold's rules), then record one more envelope."""
        dispute.apply(self.state, env)
        clear = encode_envelope(env)
        if outgoing:
            self.trigger_event(self.Sent, body=signed.body, kid=signed.kid, sig=signed.sig, clear=clear)
        else:
            self.trigger_event(self.Got, body=signed.body, kid=signed.kid, sig=signed.sig, clear=clear,
                               stream_seq=stream_seq)

    def _fold(self, ev: Any) -> None:
        self.state = dispute.apply(self.state, decode_envelope(ev.clear))
        self.envelopes.append(Signed(body=ev.body, kid=ev.kid, sig=ev.sig))

    def holds(self, event_id: str) -> Signed | None:
        """The envelope with ``event_id`` if this dispute holds it."""
        for known in self.envelopes:
            if envelope_id(known.body) == event_id:
                return known
        return None


class DisputeCommands:
    """What the parties and 区司法局 do with a dispute (mixed into BureauStore)."""

    # -- the parties --------------------------------------------------------------------------

    def raise_dispute(self, case_id: str, claim: str, evidence: Sequence[str] = ()) -> DisputeState:
        """第八条: raise a dispute about an assistance case of this store with 区司法局; takes a ``D`` number."""
        from aggregates.store import SHANGHAI  # the store module imports this one

        host: Any = self  # the BureauStore this is mixed into
        st: CaseState = host.case(case_id).state
        if host.bureau not in (st.requester, st.assistor):
            raise NotDisputeParty(f"{host.bureau} is not a party of request {st.number}")
        other = st.assistor if host.bureau == st.requester else st.requester
        payload = _checked(DisputeRaised(
            raised_by=host.bureau, other_party=other, requester=st.requester, assistor=st.assistor,
            assistance_case=st.case, assistance_number=st.number, claim=claim, evidence=list(evidence)))
        for _ in range(CONFLICT_RETRIES):
            now = host.clock.now()
            series = host._series(now.astimezone(SHANGHAI).year, "D")
            env = Envelope(id=new_id(), sender=host.bureau, recipient=JUSTICE, case=new_id(),
                           number=series.allocate(), time=now, payload=payload)
            case = DisputeCase.open(host._sign(env), env, outgoing=True, case=st)
            try:
                host.save(series, case)
            except IntegrityError:
                continue  # another writer took the number: take the next
            return case.state
        raise RuleError(f"{host.bureau}: could not take a dispute number; retry")

    def join_dispute(self, signed: Signed, env: Envelope) -> DisputeState:
        """The other party takes up a dispute raised against it, from the raise's signed bytes.

        The raise travels only to 区司法局, so the caller hands it over from the ledger (or the
        raiser's store) after verifying its signature.  Its notes are then guarded by the same
        fold.  Taking up a dispute already here changes nothing.
        """
        from aggregates.store import Intake

        host: Any = self
        ev = env.payload
        if not isinstance(ev, DisputeRaised):
            raise DisputeOrder(f"a dispute is taken up from its dispute.raised, not {env.type}")
        if ev.other_party != host.bureau:
            raise NotDisputeParty(f"dispute {env.number} is raised against {ev.other_party}, not {host.bureau}")
        if uuid.UUID(env.case) in host.repository:
            return self.dispute(env.case).state
        case: CaseState | None = None
        if uuid.UUID(ev.assistance_case) in host.repository:
            case = host.case(ev.assistance_case).state
        dc = DisputeCase.open(signed, env, outgoing=False, case=case)
        try:
            host.save(dc, Intake.mark(env.id, 0))
        except IntegrityError:
            return self.dispute(env.case).state  # taken up meanwhile
        return dc.state

    def negotiate(self, dispute_id: str, note: str, outcome: Outcome = "continuing") -> DisputeState:
        """A party notes the negotiation (协商); ``failed`` records 协商不成."""
        host: Any = self
        return self.dispute_step(dispute_id, lambda st: NegotiationRecorded(party=host.bureau, note=note,
                                                                             outcome=outcome))

    def settle(self, dispute_id: str, agreement: str) -> DisputeState:
        """协商解决: the parties' agreement closes the dispute."""
        return self.dispute_step(dispute_id, lambda st: DisputeSettled(agreed_by=list(st.parties),
                                                                       agreement=agreement))

    # -- 区司法局 ----------------------------------------------------------------------------

    def refer_dispute(self, dispute_id: str, reasons: str) -> DisputeState:
        """协商不成: 区司法局 takes the dispute up, to determine it with 区委编办."""
        self._justice("takes a dispute up")
        return self.dispute_step(dispute_id, lambda st: DisputeReferred(reasons=reasons))

    def amend_catalogue(self, dispute_id: str, kind: Kind, basis: str, *, adds: Sequence[Row] = (),
                        replaces: Sequence[Row] = (), removes: Sequence[str] = ()) -> str:
        """区司法局 applies the catalogue adjustment a ruling or decision needs; returns its id.

        It carries the dispute's number, so the catalogue lets 区司法局 change rows another
        bureau lists; this command keeps that to the rows of the dispute's two parties.  It is
        then reviewed and published like every adjustment.  Only while the dispute is taken up
        or escalated.
        """
        from aggregates.catalogue import owner_of  # the catalogue module imports the store, which imports this

        self._justice("amends the catalogue for a dispute")
        st = self.dispute(dispute_id).state
        if st.status not in ("referred", "escalated"):
            raise DisputeOrder(f"dispute {st.number} is {st.step}; the catalogue is amended for a dispute "
                               f"{JUSTICE} has taken up and not yet closed")
        registry = self._registry()
        published = {r.code: r for r in registry.current(kind)}
        touched = [*adds, *replaces, *(published[c] for c in [*(r.code for r in replaces), *removes]
                                       if c in published)]
        others = sorted({f"{r.code} ({owner_of(r)})" for r in touched if owner_of(r) not in st.parties})
        if others:
            raise CatalogueAmendment(f"dispute {st.number} is between {st.raised_by} and {st.other_party}; "
                                     f"its ruling does not change the rows of others: {', '.join(others)}")
        adjustment_id: str = registry.apply_adjustment(kind, JUSTICE, basis, adds=adds, replaces=replaces,
                                                       removes=removes, dispute=st.number)
        return adjustment_id

    def rule(self, dispute_id: str, ruling: str, co_deciders: Sequence[str] = CO_DECIDERS,
             adjustment: str = "") -> DisputeState:
        """区司法局会同区委编办研究确定; with ``adjustment``, the ruling amends the catalogue through it."""
        self._justice("rules on a dispute")
        if adjustment:
            self._check_adjustment(dispute_id, adjustment)
        return self.dispute_step(dispute_id, lambda st: DisputeRuled(
            ruling=ruling, co_deciders=list(co_deciders), amends_catalogue=bool(adjustment), adjustment=adjustment))

    def escalate(self, dispute_id: str, reasons: str, petitioners: Sequence[str] = CO_DECIDERS) -> DisputeState:
        """必要时: 区司法局 and 区委编办 ask 区政府 to decide."""
        self._justice("asks 区政府 to decide")
        return self.dispute_step(dispute_id, lambda st: DisputeEscalated(petitioners=list(petitioners),
                                                                         reasons=reasons))

    def decide(self, dispute_id: str, decision: str, adjustment: str, decision_no: str = "") -> DisputeState:
        """Record 区政府's decision and the adjustment that takes it into the 行政协助目录."""
        self._justice("records 区政府's decision")
        if adjustment:
            self._check_adjustment(dispute_id, adjustment)
        return self.dispute_step(dispute_id, lambda st: DistrictDecided(
            decision=decision, adjustment=adjustment, decision_no=decision_no))

    # -- recording -------------------------------------------------------------------------------

    def dispute_step(self, dispute_id: str, make: Callable[[DisputeState], DisputeEvent]) -> DisputeState:
        """Sign one step of a dispute as it is now (a party's to ``sifa``, 区司法局's to the ledger) and save it."""
        host: Any = self
        for _ in range(CONFLICT_RETRIES):
            dc = self.dispute(dispute_id)
            payload = _checked(make(dc.state))
            recipient = LEDGER if host.bureau == JUSTICE else JUSTICE
            env = Envelope(id=new_id(), sender=host.bureau, recipient=recipient, case=dc.state.case,
                           number=dc.state.number, time=host.clock.now(), payload=payload)
            dc.add(host._sign(env), env, outgoing=True)
            try:
                host.save(dc)
            except IntegrityError:
                continue  # a party's step arrived meanwhile: guard again on the new state
            return dc.state
        raise RuleError(f"dispute {dispute_id} kept changing meanwhile; retry")

    def _accept_dispute(self, signed: Signed, env: Envelope, marker: Any, stream_seq: int) -> None:
        """Intake at 区司法局: a party's dispute event, with its intake marker, in one transaction."""
        from aggregates.store import DuplicateEvent, Intake, StoreError

        host: Any = self
        if host.bureau != JUSTICE:
            raise NotDisputeAuthority(f"第八条: a dispute is {JUSTICE}'s file; {env.type} of {env.number} "
                                      f"cannot be kept by {host.bureau}")
        if isinstance(env.payload, DisputeRaised) and uuid.UUID(env.case) not in host.repository:
            dc = DisputeCase.open(signed, env, outgoing=False, stream_seq=stream_seq)
        else:
            dc = self.dispute(env.case)  # an unknown dispute: its raise has not arrived yet
            self._raise_if_held(dc, env.id, signed.body)
            dc.add(signed, env, outgoing=False, stream_seq=stream_seq)
        try:
            host.save(dc, marker)
        except IntegrityError as e:
            if Intake.id_for(env.id) in host.repository:
                known = self.dispute(env.case).holds(env.id)
                raise DuplicateEvent(f"event {env.id} was already applied",
                                     same_bytes=known is not None and known.body == signed.body) from e
            raise StoreError(f"concurrent change to dispute {env.number}; retry") from e

    @staticmethod
    def _raise_if_held(dc: DisputeCase, event_id: str, body: bytes) -> None:
        from aggregates.store import DuplicateEvent

        known = dc.holds(event_id)
        if known is not None:
            raise DuplicateEvent(f"event {event_id} was already applied", same_bytes=known.body == body)

    def _justice(self, what: str) -> None:
        host: Any = self
        if host.bureau != JUSTICE:
            raise NotDisputeAuthority(f"第八条: only {JUSTICE} {what}; not {host.bureau}", actor=host.bureau)

    def _registry(self) -> Any:
        """The catalogue registry this store checks requests against (区司法局's catalogues)."""
        host: Any = self
        if host.catalogue is None or not hasattr(host.catalogue, "apply_adjustment"):
            raise CatalogueAmendment(f"{host.bureau}'s store has no catalogue to amend")
        return host.catalogue

    def _check_adjustment(self, dispute_id: str, adjustment: str) -> None:
        """With a catalogue at hand: the adjustment exists, carries this dispute, and was not rejected."""
        host: Any = self
        if host.catalogue is None or not hasattr(host.catalogue, "adjustment"):
            return  # a store without the catalogue: the fold's rules alone
        st = self.dispute(dispute_id).state
        adj = host.catalogue.adjustment(adjustment)
        if adj.dispute != st.number:
            raise CatalogueAmendment(f"adjustment {adjustment} does not carry dispute {st.number} "
                                     f"({adj.dispute or 'no dispute'})", adjustment=adjustment)
        if adj.status == "rejected":
            raise CatalogueAmendment(f"adjustment {adjustment} was rejected: {adj.reasons}", adjustment=adjustment)

    # -- queries ---------------------------------------------------------------------------------

    def dispute(self, dispute_id: str) -> DisputeCase:
        """Load one dispute by id (:class:`aggregates.store.UnknownCase` if this store has none)."""
        from aggregates.store import UnknownCase

        host: Any = self
        try:
            dc: DisputeCase = host.repository.get(uuid.UUID(dispute_id))
        except (ValueError, TypeError) as e:
            raise UnknownCase(f"{dispute_id!r} is not a dispute id") from e
        except AggregateNotFoundError as e:
            raise UnknownCase(f"no dispute {dispute_id} in {host.bureau}'s store") from e
        if not isinstance(dc, DisputeCase):
            raise DisputeOrder(f"{dispute_id} is not a dispute")
        return dc

    def disputes(self) -> Iterator[DisputeState]:
        """Every dispute this store knows, oldest first, as its current state."""
        host: Any = self
        for n in host._notifications([_topic(DisputeCase.Raised), _topic(DisputeCase.Arrived)]):
            yield self.dispute(str(n.originator_id)).state


_Payload = TypeVar("_Payload", bound=DisputeEvent)


def _checked(payload: _Payload) -> _Payload:
    """Validate a payload as a receiver will decode it: a Struct built in Python skips its constraints."""
    try:
        return msgspec.convert(msgspec.to_builtins(payload), type(payload))
    except msgspec.ValidationError as e:
        raise InvalidDispute(f"{type(payload).__struct_config__.tag}: {e}") from e


def _topic(cls: type) -> str:
    return get_topic(cls)


def dispute_topics(topic: Callable[[type], str]) -> list[str]:
    """Notification topics of dispute events this bureau signed (the raise, its own steps)."""
    return [topic(DisputeCase.Raised), topic(DisputeCase.Sent)]
