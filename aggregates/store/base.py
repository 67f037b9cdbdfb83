"""What every event store of xiezhu shares: the eventsourcing application, its settings and errors.

- :class:`StoreApplication`: eventsourcing's ``Application`` with xiezhu's settings (only from the
  composition root), the store cipher (decision 24) and bytes stored as base64.
- :class:`BureauApplication`: one bureau's store (signing, the clock, the catalogue it checks
  requests against, the store-key check at open, number series, notification scans).  The
  modules of each case type (:mod:`aggregates.store.assistance`, ``commitments``, ``disputes``,
  ``notices``) work on it; :class:`aggregates.store.bureau.BureauStore` is the facade.
- :class:`SignedCase`: the one shape of a case aggregate that records signed envelopes (the
  assistance, commitment and dispute cases): each event keeps the envelope as signed (``body``,
  ``kid``, ``sig``) and as opened (``clear``), and the state is a pure fold over them.
- :func:`retry_on_conflict` and :class:`ConcurrentChange`: the one way an optimistic-concurrency
  conflict is retried, and the one error it ends in (transient: the caller may try again).
"""
from __future__ import annotations

import base64
import contextlib
import copy
import os
import threading
import uuid
from collections.abc import Callable, Iterator, Sequence
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Generic, Protocol, Self, TypeVar
from zoneinfo import ZoneInfo

from eventsourcing.application import AggregateNotFoundError, Application, ProcessingEvent, Repository
from eventsourcing.domain import Aggregate, DomainEventProtocol
from eventsourcing.persistence import (
    IntegrityError,
    JSONTranscoder,
    Mapper,
    MapperDeserialisationError,
    Recording,
    StoredEvent,
    Transcoding,
)
from eventsourcing.utils import Environment, get_topic

from aggregates.cipher import AeadCipher, StoreUndecryptable
from aggregates.clock import Clock
from aggregates.database import SCHEMA_NAME, create_schema, location_schema, schema_location, schema_lock
from aggregates.registry import zh_name
from aggregates.store.cache import CurrentRepository, head_watch, project
from schemas.assistance import AssistanceRequested
from schemas.envelope import Envelope, Signed, decode_envelope, encode_envelope, envelope_id
from schemas.errors import XiezhuError, zh_of

SHANGHAI = ZoneInfo("Asia/Shanghai")
_NS = uuid.UUID("6f1c1a52-8f0e-4d5e-9a51-7a1e5c3b9d20")

SignFn = Callable[[Envelope], Signed]
#: Optimistic-concurrency tries before a conflict is reported as :class:`ConcurrentChange`.
CONFLICT_RETRIES = 20
#: Aggregates a bureau store keeps in memory (eventsourcing's cache, fast-forwarded on every get).
AGGREGATE_CACHE_SIZE = 1000

T = TypeVar("T")
A = TypeVar("A", bound=Aggregate)


# -- errors ------------------------------------------------------------------------------


#: What :meth:`load` is told it loads, in 中文 (for the error that says it is not there).
_WHAT_ZH = {"case": "行政协助案件", "dispute": "争议", "commitment case": "告知承诺案件"}


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

    def __init__(self, message: str, /, *, same_bytes: bool, zh: str | None = None) -> None:
        super().__init__(message, zh=zh, same_bytes=same_bytes)
        self.same_bytes = same_bytes


class ConcurrentChange(StoreError):
    """Other writers kept changing what this command changes; nothing was recorded, try again.

    Transient, never a broken rule: the agent retries the message, a clerk the command.
    """

    code = "store.concurrent-change"


def retry_on_conflict(attempt: Callable[[], T], what: str, *, tries: int = CONFLICT_RETRIES) -> T:
    """Run ``attempt`` (load, guard, record, save) until its save does not conflict.

    A save conflicts (eventsourcing's ``IntegrityError``) when another writer changed the same
    aggregate first, or took the same number; the next attempt loads, guards and records again
    on what is there now.  After ``tries`` conflicts, :class:`ConcurrentChange` about ``what``.
    """
    for _ in range(tries):
        try:
            return attempt()
        except IntegrityError:
            continue
    raise ConcurrentChange(f"{what} kept changing meanwhile ({tries} tries); retry",
                           zh=f"数据在此期间一再被修改（{tries} 次）；请重试")


# -- settings ----------------------------------------------------------------------------


class _BytesAsBase64(Transcoding):
    type = bytes
    name = "b64"

    def encode(self, obj: bytes) -> str:
        return base64.b64encode(obj).decode("ascii")

    def decode(self, data: str) -> bytes:
        return base64.b64decode(data)


def _read_only(path: Path) -> bool:
    """Whether ``path`` is an existing file this process may not write, or in a directory it may not write."""
    if not path.is_file():
        return False
    try:
        os.close(os.open(path, os.O_RDWR))
    except OSError:
        return True
    return not os.access(path.parent, os.W_OK, effective_ids=True)


def store_env(path: Path | str | None, *, cipher_key: bytes | None = None) -> dict[str, str]:
    """eventsourcing settings for a store file (``None``: in memory).

    With ``cipher_key`` (32 bytes) every event's state is encrypted at rest (:mod:`aggregates.cipher`).
    """
    env: dict[str, str]
    if path is None:
        env = {"PERSISTENCE_MODULE": "eventsourcing.popo"}
    elif isinstance(path, str) and path.startswith(("postgres://", "postgresql://")):
        env = _postgres_env(path)
    elif _read_only(Path(path)):
        # A read-only copy of a data directory (an archive): read it as it is, create nothing.
        # Immutable, since its WAL's shared memory cannot be made there; a write fails clearly.
        uri = Path(path).resolve().as_uri() + "?mode=ro&immutable=1"
        env = {"PERSISTENCE_MODULE": "eventsourcing.sqlite", "SQLITE_DBNAME": uri, "CREATE_TABLE": "false"}
    else:
        env = {"PERSISTENCE_MODULE": "eventsourcing.sqlite", "SQLITE_DBNAME": str(path), "SQLITE_LOCK_TIMEOUT": "30"}
    if cipher_key is not None:
        env |= {"CIPHER_TOPIC": get_topic(AeadCipher), AeadCipher.CIPHER_KEY: AeadCipher.encode_key(cipher_key)}
    return env


def bureau_location(database_url: str, code: str) -> str:
    """Where bureau ``code``'s store lives in a PostgreSQL database: its own schema, ``xiezhu_<code>``.

    eventsourcing's PostgreSQL recorder names its table after the application class, so every
    bureau's store would share one table in one schema; a schema per bureau keeps their rows
    apart (and lets a deployment grant each bureau's role only its own schema).  A
    ``?schema=PREFIX`` on ``database_url`` replaces ``xiezhu`` (several systems in one database).
    """
    return schema_location(database_url, code)


def _postgres_env(url: str) -> dict[str, str]:
    """eventsourcing's PostgreSQL settings from ``postgresql://user[:password]@host[:port]/db[?schema=name]``.

    The schema is created if it does not exist.  The recorder keeps a psycopg 3 connection pool.
    """
    from urllib.parse import unquote, urlparse

    u = urlparse(url)
    schema = location_schema(url)
    if not SCHEMA_NAME.fullmatch(schema):
        raise StoreError(f"{schema!r} is not a schema name xiezhu uses (lower-case letters, digits, _)",
                         zh=f"{schema!r} 不是 xiezhu 使用的模式名（小写字母、数字、_）")
    env = {
        "PERSISTENCE_MODULE": "eventsourcing.postgres",
        "POSTGRES_DBNAME": u.path.lstrip("/"),
        "POSTGRES_HOST": u.hostname or "127.0.0.1",
        "POSTGRES_PORT": str(u.port or 5432),
        "POSTGRES_USER": unquote(u.username or "postgres"),
        "POSTGRES_PASSWORD": unquote(u.password or ""),
        "POSTGRES_SCHEMA": schema,
        # A store is used by a few threads at most, and a demo runs ~20 stores in one process: PostgreSQL
        # allows 100 connections by default, so one is kept open and up to four more made when busy.
        "POSTGRES_POOL_SIZE": "1",
        "POSTGRES_MAX_OVERFLOW": "4",
    }
    if schema != "public":
        create_schema(url)
    return env | {_LOCATION: url}


#: The store's PostgreSQL location, in its eventsourcing settings (for :meth:`StoreApplication.construct_recorder`).
_LOCATION = "XIEZHU_LOCATION"


class _StoreMapper(Mapper[uuid.UUID]):
    """eventsourcing's mapper, except that a store the key cannot decrypt says so, not as a deserialisation error."""

    def to_domain_event(self, stored_event: StoredEvent) -> DomainEventProtocol[uuid.UUID]:
        try:
            return super().to_domain_event(stored_event)
        except MapperDeserialisationError as e:
            if isinstance(e.__cause__, StoreUndecryptable):
                raise e.__cause__ from None
            raise


class StoreApplication(Application[uuid.UUID]):
    """eventsourcing's application as every xiezhu store uses it."""

    #: Settings every store of this class gets unless the composition root says otherwise.
    default_settings: ClassVar[dict[str, str]] = {}

    def construct_env(self, name: str, env: Any = None) -> Environment:
        # Settings come only from the composition root, never from os.environ.
        return Environment(name, {**self.default_settings, **dict(env or {})})

    def __init__(self, env: dict[str, str] | None = None) -> None:
        """eventsourcing's application; on PostgreSQL the store's types and tables (its events', its
        snapshots') are made holding the schema's lock, as two processes may open a new store at once
        (:func:`aggregates.database.schema_lock`)."""
        location = (env or {}).get(_LOCATION)
        if not location:
            super().__init__(env=env)
            return
        with schema_lock(location):
            super().__init__(env=env)

    def construct_mapper(self) -> Mapper[uuid.UUID]:
        return self.factory.mapper(transcoder=self.construct_transcoder(), mapper_class=_StoreMapper)

    def construct_repository(self) -> Repository[uuid.UUID]:
        """eventsourcing's repository, its cache kept current by the store's head (:mod:`aggregates.store.cache`)."""
        plain = super().construct_repository()
        return CurrentRepository(watch=head_watch(self.recorder), event_store=plain.event_store,
                                 snapshot_store=plain.snapshot_store, cache_maxsize=self._cache_maxsize(),
                                 fastforward=plain.fastforward, fastforward_skipping=plain.fastforward_skipping,
                                 deepcopy_from_cache=plain.deepcopy_from_cache)

    def _cache_maxsize(self) -> int | None:
        size = self.env.get(self.AGGREGATE_CACHE_MAXSIZE)
        return int(size) if size else None

    def save(self, *objs: Any, **kwargs: Any) -> list[Recording[uuid.UUID]]:
        """eventsourcing's ``save`` for aggregates, without its runtime ``Protocol`` checks of each object."""
        processing = ProcessingEvent[uuid.UUID]()
        for obj in objs:
            if isinstance(obj, Aggregate):
                processing.events.extend(obj.collect_events())
                processing.aggregates[obj.id] = obj
            elif obj is not None:
                processing.collect_events(obj)
        processing.saved_kwargs.update(kwargs)
        recordings = self._record(processing)
        self._take_snapshots(processing)
        self._notify(recordings)
        self.notify(processing.events)  # eventsourcing's deprecated hook, called as its own save does
        return recordings

    def _record(self, processing: ProcessingEvent[uuid.UUID]) -> list[Recording[uuid.UUID]]:
        repository = self.repository
        try:
            recordings = self.events.put(processing.events, tracking=processing.tracking, **processing.saved_kwargs)
        except IntegrityError:
            if isinstance(repository, CurrentRepository):
                repository.forget(processing.aggregates)
            raise
        if isinstance(repository, CurrentRepository):
            repository.recorded(processing.aggregates.values(), [r.notification.id for r in recordings])
        return recordings

    def close(self) -> None:
        repository = self.repository
        if isinstance(repository, CurrentRepository) and repository.watch is not None:
            repository.watch.close()
        super().close()

    def register_transcodings(self, transcoder: JSONTranscoder) -> None:
        super().register_transcodings(transcoder)
        transcoder.register(_BytesAsBase64())

    def notifications(self, topics: Sequence[str], start: int = 1) -> Iterator[Any]:
        """Every notification with one of ``topics``, oldest first, read a section at a time."""
        size = self.notification_log.section_size
        while True:
            batch = self.notification_log.select(start, size, topics=topics)
            yield from batch
            if len(batch) < size:
                return
            start = batch[-1].id + 1


# -- the aggregates every bureau store holds ----------------------------------------------


def _digest(body: bytes) -> str:
    return Signed(body=body, kid="", sig=b"").digest


def topic(cls: type) -> str:
    """The notification topic of an event class."""
    return get_topic(cls)


class SignedCase(Aggregate):
    """A case that records signed envelopes; its state is a pure fold over them.

    A subclass names its fold with :meth:`_start` and :meth:`_next`.  The four event classes
    are defined once here; eventsourcing redefines them in each subclass, so every case type
    keeps topics of its own (``aggregates.store.assistance:AssistanceCase.Sent``, …).
    """

    class Opened(Aggregate.Created):
        """This bureau opened the case with an envelope it signed (to be relayed)."""

        body: bytes
        kid: str
        sig: bytes
        clear: bytes

    class Arrived(Aggregate.Created):
        """The case opened here with an envelope another bureau signed (arrived, or handed over)."""

        body: bytes
        kid: str
        sig: bytes
        clear: bytes
        stream_seq: int

    class Sent(Aggregate.Event):
        """This bureau signed one more envelope of the case (to be relayed)."""

        body: bytes
        kid: str
        sig: bytes
        clear: bytes

        def apply(self, aggregate: Any) -> None:
            aggregate._fold(self)

    class Got(Aggregate.Event):
        """Another bureau's envelope of the case arrived here."""

        body: bytes
        kid: str
        sig: bytes
        clear: bytes
        stream_seq: int

        def apply(self, aggregate: Any) -> None:
            aggregate._fold(self)

    # Declared for the type checker only: real annotations would make eventsourcing treat
    # every subclass as a dataclass and give it a generated ``__init__``.
    if TYPE_CHECKING:
        state: Any
        envelopes: list[Signed]

    def __init__(self, body: bytes, kid: str, sig: bytes, clear: bytes, stream_seq: int = 0) -> None:
        self.state = self._start(decode_envelope(clear), _digest(body))
        self.envelopes = [Signed(body=body, kid=kid, sig=sig)]

    @classmethod
    def _start(cls, env: Envelope, digest: str) -> Any:
        """The fold's first state from the opening envelope (raises the fold's rule errors)."""
        raise NotImplementedError

    @classmethod
    def _next(cls, state: Any, env: Envelope, digest: str) -> Any:
        """The fold's next state (raises the fold's rule errors)."""
        raise NotImplementedError

    @classmethod
    def open(cls, signed: Signed, env: Envelope, *, outgoing: bool, stream_seq: int = 0) -> Self:
        """Guard (the envelope must start a case of this type), then record the opening event."""
        cls._start(env, signed.digest)
        clear = encode_envelope(env)
        if outgoing:
            return cls._create(cls.Opened, id=uuid.UUID(env.case), body=signed.body, kid=signed.kid, sig=signed.sig,
                               clear=clear)
        return cls._create(cls.Arrived, id=uuid.UUID(env.case), body=signed.body, kid=signed.kid, sig=signed.sig,
                           clear=clear, stream_seq=stream_seq)

    def add(self, signed: Signed, env: Envelope, *, outgoing: bool, stream_seq: int = 0) -> None:
        """Guard (the fold's rules), then record one more envelope."""
        self._next(self.state, env, signed.digest)
        clear = encode_envelope(env)
        if outgoing:
            self.trigger_event(self.Sent, body=signed.body, kid=signed.kid, sig=signed.sig, clear=clear)
        else:
            self.trigger_event(self.Got, body=signed.body, kid=signed.kid, sig=signed.sig, clear=clear,
                               stream_seq=stream_seq)

    def _fold(self, ev: Any) -> None:
        self.state = self._next(self.state, decode_envelope(ev.clear), _digest(ev.body))
        self.envelopes.append(Signed(body=ev.body, kid=ev.kid, sig=ev.sig))

    def __deepcopy__(self, memo: dict[int, Any]) -> Self:
        """The copy a command works on (the aggregate cache, a batch's staged case): the folded state and
        the signed envelopes are immutable values, so only the lists that grow are copied."""
        return _copy_with_lists(self, "envelopes")

    def holds(self, event_id: str) -> Signed | None:
        """The envelope with ``event_id`` if this case holds it."""
        for known in self.envelopes:
            if envelope_id(known.body) == event_id:
                return known
        return None

    def raise_if_held(self, event_id: str, body: bytes) -> None:
        """:class:`DuplicateEvent` if this case holds ``event_id`` already."""
        known = self.holds(event_id)
        if known is not None:
            raise DuplicateEvent(f"event {event_id} was already applied",
                                 zh=f"事件 {event_id} 已应用", same_bytes=known.body == body)

    @classmethod
    def opening_topics(cls) -> list[str]:
        """Notification topics of the events that open a case of this type."""
        return [topic(cls.Opened), topic(cls.Arrived)]

    @classmethod
    def outgoing_topics(cls) -> list[str]:
        """Notification topics of the events this bureau signed, which the relay sends."""
        return [topic(cls.Opened), topic(cls.Sent)]


class IntakeMarker(Aggregate):
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
    def mark(cls, event_id: str, stream_seq: int) -> IntakeMarker:
        """A new marker for ``event_id``."""
        return cls._create(cls.Applied, id=cls.id_for(event_id), event_id=event_id, stream_seq=stream_seq)


def _copy_with_lists(aggregate: A, *lists: str) -> A:
    """A copy of ``aggregate`` sharing its immutable values, with its pending events and ``lists`` copied."""
    new: A = object.__new__(type(aggregate))
    new.__dict__.update(aggregate.__dict__)
    for name in ("_pending_events", *lists):
        setattr(new, name, list(getattr(aggregate, name)))
    return new


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

    def __deepcopy__(self, memo: dict[int, Any]) -> Self:
        """A command's copy: every attribute but the pending events is an immutable value."""
        return _copy_with_lists(self)

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
            raise StoreError(f"{self.bureau} has used every number of {self.year}",
                             zh=f"{zh_name(self.bureau)} {self.year} 年的编号已用完")
        number = f"{self.prefix}{self.year}{self.last + 1:04d}"
        self.trigger_event(self.Allocated, number=number)
        return number


# -- one bureau's store --------------------------------------------------------------------


class _Grouped(Generic[T]):
    """One command waiting in :meth:`BureauApplication.grouped`, and what came of it."""

    __slots__ = ("command", "done", "error", "value")

    def __init__(self, command: Callable[[], T]) -> None:
        self.command = command
        self.done = False
        self.value: T | None = None
        self.error: BaseException | None = None

    def run(self) -> bool:
        """Run the command (again), keeping its value or its error; whether it succeeded."""
        self.value, self.error = None, None
        try:
            self.value = self.command()
        except Exception as e:  # noqa: BLE001 - the caller's own error, raised in the caller's thread
            self.error = e
            return False
        return True

    def outcome(self) -> T:
        """The command's value, or its error raised."""
        if self.error is not None:
            raise self.error
        return self.value  # type: ignore[return-value]


class CatalogueCheck(Protocol):
    """第七条: may ``requester`` ask ``assistor`` under ``item_code``? Returns the item and the version."""

    def check_request(self, requester: str, assistor: str, item_code: str) -> tuple[Any, int]: ...

    def check_matter(self, bureau: str, matter_code: str) -> tuple[Any, int]:
        """一(三): is ``matter_code`` on the published 附件8 list for ``bureau``? Returns the row and the version."""
        ...

    def check_cited(self, request: AssistanceRequested) -> Any:
        """第七条, 第六条 at the receiver: the item and version a request cites allow it; raises a RuleError."""
        ...


class CreditGateSource(Protocol):
    """四(二): an applicant's standing at a time, as the credit view (区司法局's record) knows it."""

    def standing(self, applicant: str, at: datetime | None = None) -> Any: ...


class BureauApplication(StoreApplication):
    """One bureau's event store: what the case types' modules need to sign, number and save."""

    # The aggregate cache keeps recently used aggregates (a case being answered, this year's number
    # series) in memory; a cached one is fast-forwarded from the store on every get, so writers in
    # other processes (a clerk's command) are seen, and optimistic concurrency still guards each save.
    default_settings: ClassVar[dict[str, str]] = {"IS_SNAPSHOTTING_ENABLED": "y",
                                                  "AGGREGATE_CACHE_MAXSIZE": str(AGGREGATE_CACHE_SIZE)}
    #: A snapshot every so many events keeps loading a year's number series and a long
    #: case O(interval) instead of O(events).
    snapshotting_intervals: ClassVar[dict[type[Any], int]] = {NumberSeries: 50}
    snapshotting_projectors: ClassVar[dict[type[Any], Any]] = {NumberSeries: project}

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
        #: This thread's staged batch (:meth:`batch`), if one is open.
        self._staging = threading.local()
        #: :meth:`grouped`: the commands waiting for a commit, and the lock of the thread committing them.
        self._waiting: list[_Grouped[Any]] = []
        self._waiting_lock = threading.Lock()
        self._commit_lock = threading.Lock()
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
            raise StoreUndecryptable(f"{self.bureau}'s store: {e}",
                                     zh=f"{zh_name(self.bureau)}的存储：{zh_of(e)}") from None
        except MapperDeserialisationError:
            if self.mapper.cipher is not None:
                raise
            raise StoreUndecryptable(f"{self.bureau}'s store cannot be read without its store key: its events are "
                                     f"not plain JSON, so it was probably written encrypted",
                                     zh=f"没有存储密钥无法读取{zh_name(self.bureau)}的存储：其事件不是明文 JSON，"
                                        "可能是加密写入的") from None

    def sign(self, env: Envelope) -> Signed:
        """Sign an envelope as this bureau."""
        return self._sign(env)

    # -- group commit -----------------------------------------------------------------------

    @contextlib.contextmanager
    def batch(self) -> Iterator[dict[uuid.UUID, Any]]:
        """Stage every :meth:`save` of this thread inside the block, and commit them all in one transaction at its end.

        Within the block each command works as if on its own transaction: :meth:`load`,
        :meth:`has` and :meth:`series` see what earlier commands of the batch saved, each
        load gets a copy, so a command that raises half-way leaves nothing staged.  At the
        end one ``save`` records every staged aggregate, in the order they were first
        saved, atomically: a conflict with another writer (``IntegrityError``) or any
        other failure raises and commits nothing, and the caller applies the commands one
        by one instead.  An exception out of the block discards the batch.  Other threads
        (a clerk's command while the agent applies a batch) are not affected.
        """
        if getattr(self._staging, "pending", None) is not None:
            raise StoreError("a batch is already open in this thread", zh="本线程已开启一个批次")
        pending: dict[uuid.UUID, Any] = {}
        self._staging.pending = pending
        try:
            yield pending
        finally:
            self._staging.pending = None
        if pending:
            super().save(*pending.values())

    def grouped(self, command: Callable[[], T]) -> T:
        """Run ``command`` (load, guard, record, save) and commit it together with the commands of other threads.

        A clerk's command (a request, a reply) is one transaction and one fsync of its own, and
        commands that arrive together queued behind each other's fsync.  Here a thread that
        finds no commit under way runs its command alone, as before.  Commands that arrive
        while a commit is under way wait for it; the first of them to get the commit lock then
        runs every waiting command in one :meth:`batch` (in arrival order, each on what the
        ones before it staged, so two requests take consecutive numbers without a conflict)
        and commits them in one transaction.  A command that raises leaves nothing staged and
        gets its own error; the others commit.  If the group cannot commit (another writer
        changed a staged case, the store is busy), each of its commands runs again alone, with
        its own retries, as if no group had been made.  Each caller returns, or raises, only
        after its own command's commit.  Inside a batch of this thread the command just runs
        (it is staged there).
        """
        if getattr(self._staging, "pending", None) is not None or getattr(self._staging, "leading", False):
            return command()
        item = _Grouped(command)
        with self._waiting_lock:
            self._waiting.append(item)
        with self._commit_lock:
            if not item.done:
                with self._waiting_lock:
                    group, self._waiting = self._waiting, []
                self._staging.leading = True
                try:
                    self._commit_group(group)
                finally:
                    self._staging.leading = False
        return item.outcome()

    def _commit_group(self, group: list[_Grouped[Any]]) -> None:
        """Every command of ``group`` run and committed: in one transaction if it can, else each alone."""
        try:
            if len(group) > 1:
                try:
                    with self.batch() as pending:
                        for item in group:
                            before = dict(pending)
                            if not item.run():
                                pending.clear()  # what the failed command staged goes; the others' stays
                                pending.update(before)
                except Exception:  # noqa: BLE001 - the group could not commit: nothing of it is recorded
                    pass
                else:
                    for item in group:
                        item.done = True
                    return
            for item in group:
                item.run()
                item.done = True
        finally:
            for item in group:  # interrupted (KeyboardInterrupt, SystemExit): no caller waits for ever
                if not item.done:
                    item.error = StoreError("the commit of this command was interrupted; retry",
                                            zh="本命令的提交被中断；请重试")
                    item.done = True

    def _staged(self, aggregate_id: uuid.UUID) -> Any:
        pending: dict[uuid.UUID, Any] | None = getattr(self._staging, "pending", None)
        if pending is None or aggregate_id not in pending:
            return None
        return copy.deepcopy(pending[aggregate_id])

    def save(self, *objs: Any, **kwargs: Any) -> Any:
        """eventsourcing's ``save``; inside :meth:`batch`, only staged until the batch commits."""
        pending: dict[uuid.UUID, Any] | None = getattr(self._staging, "pending", None)
        if pending is None:
            return super().save(*objs, **kwargs)
        for obj in objs:
            if obj is None:
                continue
            if not isinstance(obj, Aggregate) or kwargs:
                raise StoreError("only aggregates can be saved inside a batch", zh="批次中只能保存聚合")
            pending[obj.id] = obj
        return []

    def series(self, year: int, prefix: str = "") -> NumberSeries:
        """This bureau's number series of ``year`` (``""`` letters, ``C`` commitment cases, ``D`` disputes)."""
        series_id = NumberSeries.id_for(self.bureau, year, prefix)
        staged: NumberSeries | None = self._staged(series_id)
        if staged is not None:
            return staged
        try:
            series: NumberSeries = self.repository.get(series_id)
            return series
        except AggregateNotFoundError:
            return NumberSeries.begin(self.bureau, year, prefix)

    def next_number(self, prefix: str = "") -> tuple[NumberSeries, str, Any]:
        """Take the next number of this year's series: the series (to save with the case), the number, the time."""
        now = self.clock.now()
        series = self.series(now.astimezone(SHANGHAI).year, prefix)
        return series, series.allocate(), now

    def load(self, case_id: str, what: str) -> object:
        """One aggregate by id; :class:`UnknownCase` if this store has none (``what``: e.g. "case")."""
        try:
            aggregate_id = uuid.UUID(case_id)
        except (ValueError, TypeError, AttributeError) as e:
            raise UnknownCase(f"{case_id!r} is not a {what} id",
                              zh=f"{case_id!r} 不是{_WHAT_ZH.get(what, what)}编号") from e
        staged = self._staged(aggregate_id)
        if staged is not None:
            return staged
        try:
            found: object = self.repository.get(aggregate_id)
        except AggregateNotFoundError as e:
            raise UnknownCase(f"no {what} {case_id} in {self.bureau}'s store",
                              zh=f"{zh_name(self.bureau)}的存储中没有{_WHAT_ZH.get(what, what)} {case_id}") from e
        return found

    def has(self, aggregate_id: uuid.UUID | str) -> bool:
        """Whether this store holds an aggregate with that id (or a batch of this thread staged one)."""
        uid = uuid.UUID(aggregate_id) if isinstance(aggregate_id, str) else aggregate_id
        pending: dict[uuid.UUID, Any] | None = getattr(self._staging, "pending", None)
        if pending is not None and uid in pending:
            return True
        repository = self.repository
        cache = repository.cache
        if cache is not None:
            try:  # nothing is ever deleted from a store: a cached aggregate exists
                cache.get(uid)
                return True
            except KeyError:
                pass
        if isinstance(repository, CurrentRepository) and repository.watch is not None:
            return repository.watch.holds(uid)  # the same look without eventsourcing's connection pool
        return bool(self.recorder.select_events(uid, limit=1))  # one indexed look, nothing decoded
