"""A bureau's own event store: eventsourcing aggregates over signed envelopes.

Every bureau writes only its own store.  An assistance case aggregate records each
envelope of the case, outgoing ones (signed here, to be relayed) and incoming ones
(verified elsewhere, kept as the exact bytes received), and its state is the pure fold
of :mod:`aggregates.assistance`.  Intake markers and number series live in the same
store so that each change and its bookkeeping commit in one transaction.
"""
from __future__ import annotations

import base64
import uuid
from collections.abc import Callable, Iterator, Sequence
from datetime import date, datetime
from pathlib import Path
from typing import Any, ClassVar, Protocol
from zoneinfo import ZoneInfo

from eventsourcing.application import AggregateNotFoundError, Application
from eventsourcing.domain import Aggregate, DomainEventProtocol
from eventsourcing.persistence import (
    IntegrityError,
    JSONTranscoder,
    Mapper,
    MapperDeserialisationError,
    StoredEvent,
    Transcoding,
)
from eventsourcing.utils import Environment, get_topic

from aggregates import assistance
from aggregates.assistance import CaseState
from aggregates.cipher import AeadCipher, StoreUndecryptable
from aggregates.clock import Clock
from aggregates.commitment import CommitmentState
from aggregates.commitment_cases import CommitmentCase, CommitmentCommands, commitment_topics
from aggregates.dispute_cases import DisputeCommands, dispute_topics
from aggregates.errors import RuleError, WrongOrder
from aggregates.notices import Notice, NoticeIn
from schemas.access import DisclosureRecorded
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
from schemas.commitment import ItemVerified, PunishmentReferral
from schemas.dispute import DISPUTE_EVENTS
from schemas.envelope import LEDGER, Envelope, Signed, decode_envelope, encode_envelope, envelope_id, new_id
from schemas.errors import XiezhuError
from schemas.sla import DeadlineBreached, DeadlineReminder

SHANGHAI = ZoneInfo("Asia/Shanghai")
_NS = uuid.UUID("6f1c1a52-8f0e-4d5e-9a51-7a1e5c3b9d20")

SignFn = Callable[[Envelope], Signed]
#: Optimistic-concurrency retries for taking a letter number.
CONFLICT_RETRIES = 20


class CatalogueCheck(Protocol):
    """第七条: may ``requester`` ask ``assistor`` under ``item_code``? Returns the item and the version."""

    def check_request(self, requester: str, assistor: str, item_code: str) -> tuple[Any, int]: ...

    def check_matter(self, bureau: str, matter_code: str) -> tuple[Any, int]:
        """一(三): is ``matter_code`` on the published 附件8 list for ``bureau``? Returns the row and the version."""
        ...


class CreditGateSource(Protocol):
    """四(二): an applicant's standing at a time, as the credit view (区司法局's record) knows it."""

    def standing(self, applicant: str, at: datetime | None = None) -> Any: ...


class StoreError(XiezhuError):
    """Something about a bureau's own store."""

    code = "store"


class UnknownCase(StoreError):
    """No case with that id or number in this bureau's store."""

    code = "store.unknown-case"


class DuplicateEvent(StoreError):
    """The event id was applied before; nothing changed.

    ``same_bytes`` tells a harmless copy (a redelivery, a relay's re-publish, a replay)
    from a different body under a known id, which a sender should never produce.
    """

    code = "store.duplicate"

    def __init__(self, message: str, /, *, same_bytes: bool) -> None:
        super().__init__(message, same_bytes=same_bytes)
        self.same_bytes = same_bytes


class _BytesAsBase64(Transcoding):
    type = bytes
    name = "b64"

    def encode(self, obj: bytes) -> str:
        return base64.b64encode(obj).decode("ascii")

    def decode(self, data: str) -> bytes:
        return base64.b64decode(data)


def _signed(ev: Any) -> Signed:
    return Signed(body=ev.body, kid=ev.kid, sig=ev.sig)


class AssistanceCase(Aggregate):
    """One assistance case as this bureau has recorded it."""

    class Requested(Aggregate.Created):
        """This bureau opened the case by sending a request."""

        body: bytes
        kid: str
        sig: bytes
        clear: bytes

    class Arrived(Aggregate.Created):
        """The case opened here when another bureau's request arrived."""

        body: bytes
        kid: str
        sig: bytes
        clear: bytes
        stream_seq: int

    class Sent(Aggregate.Event):
        """This bureau emitted one more event of the case."""

        body: bytes
        kid: str
        sig: bytes
        clear: bytes

        def apply(self, aggregate: Any) -> None:
            aggregate._fold(self)

    class Got(Aggregate.Event):
        """Another bureau's event of the case arrived here."""

        body: bytes
        kid: str
        sig: bytes
        clear: bytes
        stream_seq: int

        def apply(self, aggregate: Any) -> None:
            aggregate._fold(self)

    state: CaseState
    envelopes: list[Signed]

    def __init__(self, body: bytes, kid: str, sig: bytes, clear: bytes, stream_seq: int = 0) -> None:
        env = decode_envelope(clear)
        self.state = assistance.start(env, _digest(body))
        self.envelopes = [Signed(body=body, kid=kid, sig=sig)]

    @classmethod
    def open(cls, signed: Signed, env: Envelope, *, outgoing: bool, stream_seq: int = 0) -> AssistanceCase:
        """Guard (the request must be a valid start), then record the opening event."""
        assistance.start(env, signed.digest)
        case_id = uuid.UUID(env.case)
        clear = encode_envelope(env)
        if outgoing:
            return cls._create(cls.Requested, id=case_id, body=signed.body, kid=signed.kid, sig=signed.sig,
                               clear=clear)
        return cls._create(cls.Arrived, id=case_id, body=signed.body, kid=signed.kid, sig=signed.sig, clear=clear,
                           stream_seq=stream_seq)

    def add(self, signed: Signed, env: Envelope, *, outgoing: bool, stream_seq: int = 0) -> None:
        """Guard (the fold's rules), then record one more envelope."""
        assistance.apply(self.state, env, signed.digest)
        clear = encode_envelope(env)
        if outgoing:
            self.trigger_event(self.Sent, body=signed.body, kid=signed.kid, sig=signed.sig, clear=clear)
        else:
            self.trigger_event(self.Got, body=signed.body, kid=signed.kid, sig=signed.sig, clear=clear,
                               stream_seq=stream_seq)

    def _fold(self, ev: Any) -> None:
        env = decode_envelope(ev.clear)
        self.state = assistance.apply(self.state, env, _digest(ev.body))
        self.envelopes.append(_signed(ev))


class Intake(Aggregate):
    """Marks an incoming event id as applied; its unique id makes a second apply impossible."""

    class Applied(Aggregate.Created):
        """The event was applied to this store."""

        event_id: str
        stream_seq: int

    def __init__(self, event_id: str, stream_seq: int) -> None:
        self.event_id = event_id
        self.stream_seq = stream_seq

    @staticmethod
    def id_for(event_id: str) -> uuid.UUID:
        """The marker's aggregate id for an event id."""
        return uuid.uuid5(_NS, f"intake:{event_id}")

    @classmethod
    def mark(cls, event_id: str, stream_seq: int) -> Intake:
        """A new marker for ``event_id``."""
        return cls._create(cls.Applied, id=cls.id_for(event_id), event_id=event_id, stream_seq=stream_seq)


class NumberSeries(Aggregate):
    """A bureau's numbers for one year: letters 20260001, …; commitment cases C20260001, …"""

    class Started(Aggregate.Created):
        """The series of a bureau and year began."""

        bureau: str
        year: int
        prefix: str

    class Allocated(Aggregate.Event):
        """One number was taken."""

        number: str

        def apply(self, aggregate: Any) -> None:
            aggregate.last = int(self.number[-4:])

    def __init__(self, bureau: str, year: int, prefix: str) -> None:
        self.bureau = bureau
        self.year = year
        self.prefix = prefix
        self.last = 0

    @staticmethod
    def id_for(bureau: str, year: int, prefix: str = "") -> uuid.UUID:
        """The series' aggregate id."""
        return uuid.uuid5(_NS, f"numbers:{bureau}:{year}" + (f":{prefix}" if prefix else ""))

    @classmethod
    def begin(cls, bureau: str, year: int, prefix: str = "") -> NumberSeries:
        """A new, empty series."""
        return cls._create(cls.Started, id=cls.id_for(bureau, year, prefix), bureau=bureau, year=year,
                           prefix=prefix)

    def allocate(self) -> str:
        """Take the next number; 9999 a year is the format's limit."""
        if self.last >= 9999:
            raise StoreError(f"{self.bureau} has used every number of {self.year}")
        number = f"{self.prefix}{self.year}{self.last + 1:04d}"
        self.trigger_event(self.Allocated, number=number)
        return number


def _digest(body: bytes) -> str:
    return Signed(body=body, kid="", sig=b"").digest


def store_env(path: Path | str | None, *, cipher_key: bytes | None = None) -> dict[str, str]:
    """eventsourcing settings for a store file (``None``: in memory).

    With ``cipher_key`` (32 bytes) every event's state is encrypted at rest (:mod:`aggregates.cipher`).
    """
    env: dict[str, str]
    if path is None:
        env = {"PERSISTENCE_MODULE": "eventsourcing.popo"}
    elif isinstance(path, str) and path.startswith(("postgres://", "postgresql://")):
        env = _postgres_env(path)
    else:
        env = {"PERSISTENCE_MODULE": "eventsourcing.sqlite", "SQLITE_DBNAME": str(path), "SQLITE_LOCK_TIMEOUT": "30"}
    if cipher_key is not None:
        env |= {"CIPHER_TOPIC": get_topic(AeadCipher), AeadCipher.CIPHER_KEY: AeadCipher.encode_key(cipher_key)}
    return env


def _postgres_env(url: str) -> dict[str, str]:
    from urllib.parse import urlparse

    u = urlparse(url)
    return {
        "PERSISTENCE_MODULE": "eventsourcing.postgres",
        "POSTGRES_DBNAME": u.path.lstrip("/"),
        "POSTGRES_HOST": u.hostname or "127.0.0.1",
        "POSTGRES_PORT": str(u.port or 5432),
        "POSTGRES_USER": u.username or "postgres",
        "POSTGRES_PASSWORD": u.password or "",
    }


class _StoreMapper(Mapper[uuid.UUID]):
    """eventsourcing's mapper, except that a store the key cannot decrypt says so, not as a deserialisation error."""

    def to_domain_event(self, stored_event: StoredEvent) -> DomainEventProtocol[uuid.UUID]:
        try:
            return super().to_domain_event(stored_event)
        except MapperDeserialisationError as e:
            if isinstance(e.__cause__, StoreUndecryptable):
                raise e.__cause__ from None
            raise


class BureauStore(CommitmentCommands, DisputeCommands, Application[uuid.UUID]):
    """One bureau's event-sourced store and the commands that change it."""

    def __init__(self, bureau: str, location: Path | str | None, sign: SignFn, clock: Clock,
                 catalogue: CatalogueCheck | None = None, *, store_key: bytes | None = None) -> None:
        """``store_key`` (32 bytes) encrypts every event at rest; the composition root always gives one."""
        self.bureau = bureau
        self._sign = sign
        self.clock = clock
        #: 第七条: with a catalogue, only catalogued items can be requested (the composition
        #: root always gives one; unit tests of other rules may leave it out).
        self.catalogue = catalogue
        #: 四(二): where the composition root wires the credit view in, applications read the gate from it.
        self.credit: CreditGateSource | None = None
        super().__init__(env=store_env(location, cipher_key=store_key))
        try:
            self._check_store_key()
        except BaseException:
            self.close()
            raise

    def _check_store_key(self) -> None:
        """Refuse at open, before anything is written, a store whose events the key given cannot read."""
        first = self.recorder.select_notifications(start=None, limit=1)
        if not first:
            return
        try:
            self.mapper.to_domain_event(first[0])
        except StoreUndecryptable as e:
            raise StoreUndecryptable(f"{self.bureau}'s store: {e}") from None
        except MapperDeserialisationError:
            if self.mapper.cipher is not None:
                raise
            raise StoreUndecryptable(f"{self.bureau}'s store cannot be read without its store key: its events are "
                                     f"not plain JSON, so it was probably written encrypted") from None

    #: A snapshot every so many events keeps loading a year's number series and a long
    #: case O(interval) instead of O(events).
    snapshotting_intervals: ClassVar[dict[type[Any], int]] = {NumberSeries: 50}

    def construct_env(self, name: str, env: Any = None) -> Environment:
        # Settings come only from the composition root, never from os.environ.
        return Environment(name, {"IS_SNAPSHOTTING_ENABLED": "y", **dict(env or {})})

    def construct_mapper(self) -> Mapper[uuid.UUID]:
        return self.factory.mapper(transcoder=self.construct_transcoder(), mapper_class=_StoreMapper)

    def register_transcodings(self, transcoder: JSONTranscoder) -> None:
        super().register_transcodings(transcoder)
        transcoder.register(_BytesAsBase64())

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
        and records the catalogue version and the item's time limits.  Two writers taking a
        number at once conflict on the series; the loser retries.
        """
        if self.catalogue is not None:
            item, catalogue_version = self.catalogue.check_request(self.bureau, assistor, catalogue_item)
            reply_within, decline_within = item.reply_within, item.decline_within
        assistance.check_time_limits(reply_within, decline_within)
        for attempt in range(CONFLICT_RETRIES):
            try:
                return self._request(AssistanceRequested(
                    requester=self.bureau, assistor=assistor, applicant=applicant, matter=matter,
                    applied_on=applied_on, items=list(items), channel=channel, staff=list(staff),
                    catalogue_item=catalogue_item, catalogue_version=catalogue_version,
                    commitment_case=commitment_case, reply_within=reply_within, decline_within=decline_within))
            except IntegrityError as e:
                if attempt == CONFLICT_RETRIES - 1:
                    raise StoreError(f"{self.bureau}: could not take a letter number after "
                                     f"{CONFLICT_RETRIES} tries; retry") from e
        raise AssertionError("unreachable")

    def _request(self, payload: AssistanceRequested) -> CaseState:
        now = self.clock.now()
        series = self._series(now.astimezone(SHANGHAI).year)
        env = Envelope(id=new_id(), sender=self.bureau, recipient=payload.assistor, case=new_id(),
                       number=series.allocate(), time=now, payload=payload)
        signed = self._sign(env)
        case = AssistanceCase.open(signed, env, outgoing=True)
        self.save(series, case)
        return case.state

    def _series(self, year: int, prefix: str = "") -> NumberSeries:
        try:
            series: NumberSeries = self.repository.get(NumberSeries.id_for(self.bureau, year, prefix))
            return series
        except AggregateNotFoundError:
            return NumberSeries.begin(self.bureau, year, prefix)

    # -- commands of the assistor --------------------------------------------------

    def reply(self, case_id: str, results: Sequence[ItemResult], answered_by: str,
              on_behalf_of: str = "") -> CaseState:
        """Send the 回复函: a verdict for every item asked (for an archive institution, if forwarded)."""
        return self._emit(case_id, lambda st: AssistanceReplied(
            request_id=st.request_id, request_hash=st.request_hash, channel=st.request.channel,
            results=list(results), answered_by=answered_by, on_behalf_of=on_behalf_of))

    def forward(self, case_id: str, institution: str, note: str = "") -> CaseState:
        """第五条: ask the institution that holds pre-reform archives; the forward joins the case history."""
        return self._emit(case_id, lambda st: AssistanceForwarded(
            request_id=st.request_id, request_hash=st.request_hash, institution=institution, note=note))

    def withdraw_request(self, case_id: str, reason: str) -> CaseState:
        """The requester withdraws a request it no longer needs (only while it is open here)."""
        def withdrawal(st: CaseState) -> AssistanceWithdrawn:
            if st.status not in assistance.OPEN:
                raise WrongOrder(f"request {st.number} is {st.status}; nothing to withdraw")
            return AssistanceWithdrawn(request_id=st.request_id, reason=reason)
        return self._emit(case_id, withdrawal)

    def decline(self, case_id: str, reasons: str, answered_by: str) -> CaseState:
        """Decline in writing, with the reasons."""
        return self._emit(case_id, lambda st: AssistanceDeclined(
            request_id=st.request_id, request_hash=st.request_hash, channel=st.request.channel,
            reasons=reasons, answered_by=answered_by))

    def _emit(self, case_id: str, make: Callable[[CaseState], Any]) -> CaseState:
        """Build the payload from the case as it is now, guard, sign, save; retry if it changed meanwhile."""
        for _ in range(CONFLICT_RETRIES):
            case = self.case(case_id)
            st = case.state
            if st.status == "withdrawn" and st.assistor == self.bureau:
                raise WrongOrder(f"{st.requester} withdrew request {st.number}: {st.withdrawn_reason}")
            other = st.requester if st.assistor == self.bureau else st.assistor
            env = Envelope(id=new_id(), sender=self.bureau, recipient=other, case=st.case,
                           number=st.number, time=self.clock.now(), payload=make(st))
            case.add(self._sign(env), env, outgoing=True)
            try:
                self.save(case)
            except IntegrityError:
                continue  # an incoming event changed the case meanwhile: look again
            return case.state
        raise StoreError(f"case {case_id} kept changing meanwhile; retry")

    # -- intake --------------------------------------------------------------------

    def accept(self, signed: Signed, env: Envelope, *, stream_seq: int, arrived_at: datetime) -> CaseState | None:
        """Apply a verified incoming envelope exactly once.

        The intake marker, the case change and (for a request) the signed arrival record
        commit in one transaction.  Raises :class:`DuplicateEvent` if the event id was
        applied before, :class:`RuleError` if the event breaks a rule of its case.  A
        notice (a deadline reminder or breach) is kept as it came; it returns ``None``.  A
        dispute event (附件2 第八条) joins 区司法局's dispute file, and only 区司法局's; it also
        returns ``None``.
        """
        if isinstance(env.payload, DisclosureRecorded):
            raise RuleError(f"{env.sender} sent a disclosure record to {self.bureau}: it belongs to the ledger only")
        marker = Intake.mark(env.id, stream_seq)
        if isinstance(env.payload, DeadlineReminder | DeadlineBreached | PunishmentReferral):
            self._accept_notice(signed, env, marker, stream_seq)
            return None
        if isinstance(env.payload, DISPUTE_EVENTS):
            self._accept_dispute(signed, env, marker, stream_seq)
            return None
        if Intake.id_for(env.id) in self.repository and uuid.UUID(env.case) not in self.repository:
            # A known event id under a case this store never saw: not an honest copy.
            raise DuplicateEvent(f"event {env.id} was already applied, to another case", same_bytes=False)
        if isinstance(env.payload, AssistanceRequested):
            if uuid.UUID(env.case) in self.repository:
                self._raise_if_seen(env.id, signed.body, self.case(env.case))
                raise RuleError(f"case {env.case} ({env.number}) already exists here")
            case = AssistanceCase.open(signed, env, outgoing=False, stream_seq=stream_seq)
            receipt = Envelope(
                id=new_id(), sender=self.bureau, recipient=env.sender, case=env.case, number=env.number,
                time=self.clock.now(),
                payload=AssistanceReceived(request_id=env.id, request_hash=signed.digest, arrived_at=arrived_at),
            )
            signed_receipt = self._sign(receipt)
            case.add(signed_receipt, receipt, outgoing=True)
        else:
            case = self.case(env.case)
            self._raise_if_in_case(env.id, signed.body, case)
            case.add(signed, env, outgoing=False, stream_seq=stream_seq)
        linked = self._verified_commitment(case, env)
        try:
            self.save(case, marker, *linked)
        except IntegrityError as e:
            self._raise_if_seen(env.id, signed.body, self.case(env.case))
            raise StoreError(f"concurrent change to case {env.number}; retry") from e
        return case.state

    def _accept_notice(self, signed: Signed, env: Envelope, marker: Intake, stream_seq: int) -> None:
        try:
            self.save(NoticeIn.got(signed, env, stream_seq), marker)
        except IntegrityError as e:
            if Intake.id_for(env.id) in self.repository:
                known: NoticeIn = self.repository.get(NoticeIn.id_for(env.id))
                raise DuplicateEvent(f"notice {env.id} was already received",
                                     same_bytes=known.signed.body == signed.body) from e
            raise StoreError(f"could not record notice {env.id}; retry") from e

    def send_notice(self, key: str, case: str, number: str, copies: Sequence[tuple[str, Any]]) -> bool:
        """Sign and commit a notice about ``key`` to each recipient, once; ``False`` if it was sent before."""
        if Notice.id_for(key) in self.repository:
            return False
        now = self.clock.now()
        signed = [self._sign(Envelope(id=new_id(), sender=self.bureau, recipient=recipient, case=case,
                                      number=number, time=now, payload=payload)) for recipient, payload in copies]
        try:
            self.save(Notice.send(key, signed))
        except IntegrityError:
            return False  # another monitor (or this one before a restart) sent it meanwhile
        return True

    def record_disclosure(self, case: str, number: str, disclosure: DisclosureRecorded) -> None:
        """Tell the 司法局 ledger that personal data of ``case`` was shown in full here (decision 27).

        A notice about the case, sealed and signed like every event; the relay sends it.
        """
        self.send_notice(f"disclosure:{new_id()}", case, number, [(LEDGER, disclosure)])

    def notices(self) -> list[Envelope]:
        """Notices received here (reminders, breaches), oldest first."""
        out = []
        for n in self._notifications([_topic(NoticeIn.Got)]):
            got: NoticeIn = self.repository.get(n.originator_id)
            out.append(got.envelope)
        return out

    def _verified_commitment(self, case: AssistanceCase, env: Envelope) -> list[CommitmentCase]:
        """A reply to a request made for a commitment case verifies those items, in the same transaction."""
        link = case.state.request.commitment_case
        if not link or not isinstance(env.payload, AssistanceReplied) or case.state.requester != self.bureau:
            return []
        try:
            cc = self.commitment(link)
            for r in env.payload.results:
                self.stage(cc, ItemVerified(no=r.no, verdict=r.verdict, reason=r.reason,
                                            source=f"assistance:{case.state.requester}/{case.state.number}"))
        except RuleError:
            return []  # the commitment case moved on (withdrawn, verified otherwise): the reply stays on record
        return [cc]

    def assistance_for(self, commitment_case: str) -> list[CaseState]:
        """The assistance requests this bureau made for one of its commitment cases."""
        return [s for s in self.cases() if s.request.commitment_case == commitment_case]

    @staticmethod
    def _raise_if_in_case(event_id: str, body: bytes, case: AssistanceCase) -> None:
        for known in case.envelopes:
            if envelope_id(known.body) == event_id:
                raise DuplicateEvent(f"event {event_id} was already applied", same_bytes=known.body == body)

    def _raise_if_seen(self, event_id: str, body: bytes, case: AssistanceCase) -> None:
        if Intake.id_for(event_id) in self.repository:
            self._raise_if_in_case(event_id, body, case)
            raise DuplicateEvent(f"event {event_id} was already applied", same_bytes=False)

    def seen(self, event_id: str) -> bool:
        """Whether an incoming event id was applied here."""
        return Intake.id_for(event_id) in self.repository

    # -- queries -------------------------------------------------------------------

    def case(self, case_id: str) -> AssistanceCase:
        """Load one case by id."""
        try:
            case: AssistanceCase = self.repository.get(uuid.UUID(case_id))
            return case
        except (ValueError, TypeError) as e:
            raise UnknownCase(f"{case_id!r} is not a case id") from e
        except AggregateNotFoundError as e:
            raise UnknownCase(f"no case {case_id} in {self.bureau}'s store") from e

    def cases(self) -> Iterator[CaseState]:
        """Every case in this store, oldest first, as its current state."""
        topics = [_topic(AssistanceCase.Requested), _topic(AssistanceCase.Arrived)]
        for n in self._notifications(topics):
            yield self.case(str(n.originator_id)).state

    def inbox(self) -> list[CaseState]:
        """Requests addressed to this bureau that still wait for an answer."""
        return [s for s in self.cases() if s.assistor == self.bureau and s.status in assistance.OPEN]

    def outgoing_topics(self) -> list[str]:
        """Notification topics of events this bureau signed and must relay."""
        return [_topic(AssistanceCase.Requested), _topic(AssistanceCase.Sent), *commitment_topics(_topic),
                _topic(Notice.Sent), _topic(Notice.SentAlso), *dispute_topics(_topic)]

    def commitments(self) -> Iterator[CommitmentState]:
        """Every commitment case of this bureau, oldest first."""
        for n in self._notifications([_topic(CommitmentCase.Opened)]):
            yield self.commitment(str(n.originator_id)).state

    def _notifications(self, topics: Sequence[str], start: int = 1) -> Iterator[Any]:
        size = self.notification_log.section_size
        while True:
            batch = self.notification_log.select(start, size, topics=topics)
            yield from batch
            if len(batch) < size:
                return
            start = batch[-1].id + 1

    def outgoing_since(self, after: int, limit: int) -> list[tuple[int, Signed]]:
        """Outgoing signed envelopes with notification id > ``after``, oldest first."""
        rows = self.recorder.select_notifications(start=after + 1, limit=limit, topics=self.outgoing_topics())
        out = []
        for n in rows:
            ev = self.mapper.to_domain_event(n)
            out.append((n.id, _signed(ev)))
        return out


def _topic(cls: type) -> str:
    return get_topic(cls)
