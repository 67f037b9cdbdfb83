"""The one receive pipeline: check a received message, apply it once, or dead-letter it.

Every receiver takes its JetStream messages through here: a bureau's agent
(:mod:`agencies.agent`) and 区司法局's ledger service (:mod:`agencies.ledger_service`).

1. :func:`delivery_of`: the parts of a JetStream message that intake needs.
2. :meth:`Intake.receive`: the checks, in a fixed order; the first failure names the
   dead-letter reason: size → signature headers → key, signature, key validity and sender
   (the key ring) → recipient is us (agents only: the ledger takes everything) → subject
   agrees with the envelope → the payload is sealed to us and opens.  Then the arrival
   time (the time the sending stream stored the message where the receiver looked it up,
   as the ledger does, else ``XZ``'s stored time, or the simulated clock's now) and the
   signing key checked at that time: a key revoked or expired before the message arrived
   is refused whatever time the envelope claims, because a stolen key can backdate it.
3. The receiver applies it (:meth:`Intake.handle`): an agent to its store, exactly once,
   the intake marker committed in the same transaction as the change; the ledger appends
   a batch of them.  :meth:`Intake.handle_batch` does the same for a fetched batch: the
   checks of all of it in a worker thread, then one apply of everything that passed (one
   store transaction: group commit), one by one if that apply could not commit.
4. What failed goes through :data:`DEAD_LETTER_REASONS`, the one table from error to
   dead-letter reason (:meth:`Intake.refuse`): a listed error is dead-lettered with its
   reason, any other is transient and raised again, so that the message is redelivered.
"""
from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from email.header import Header, decode_header
from types import MappingProxyType
from typing import Final, Literal, cast

from nats.aio.msg import Msg
from nats.js import JetStreamContext
from nats.js.api import PubAck
from nats.js.errors import NotFoundError

from aggregates.clock import Clock
from aggregates.errors import NotYet, RuleError
from aggregates.registry import zh_name
from aggregates.store.base import ConcurrentChange, DuplicateEvent, UnknownCase
from broker.pushed import SOURCE_HEADER, read_sent, source_of
from broker.signing import (
    BadSignature,
    CannotOpen,
    KeyNotValid,
    KeyRing,
    Malformed,
    NotSealed,
    Opens,
    Oversized,
    Rejected,
    UnknownKey,
    Unsigned,
    WrongRecipient,
    WrongSender,
    open_checked,
    unb64,
)
from broker.streams import DLQ_PREFIX, DLQ_STREAM, dlq_subject, sender_of
from broker.threads import in_thread
from schemas.envelope import (
    HDR_KEY,
    HDR_ORIGINAL_SUBJECT,
    HDR_REJECT_BY,
    HDR_REJECT_CODE,
    HDR_REJECT_REASON,
    HDR_SIG,
    MAX_MESSAGE_BYTES,
    Envelope,
    Signed,
    subject_for,
)
from schemas.privacy import mask_text

#: Oversized bodies are cut to this in the dead-letter copy (the reason says how big it was).
DLQ_MAX_BODY = 1024 * 1024

log = logging.getLogger(__name__)


class HandlerFailed(Rejected):
    """Processing failed on every redelivery (or a check broke on hostile bytes); parked for an operator."""

    code = "handler-failed"


#: In :data:`DEAD_LETTER_REASONS`: not a reason, the error is transient and the message comes again.
RETRY: Final = None

#: The one table from error to dead-letter reason: the reason is the last token of the
#: dead-letter subject (``xz.dlq.<receiver>.<reason>``) and the ``Xz-Reject-Code`` header, and
#: ``xiezhu dead-letters --reason`` offers exactly these.  An error is looked up along its
#: class hierarchy, the class itself first, so a listed subclass overrides its base.  An error
#: none of whose classes is listed is **transient** — a busy store, NATS away, a concurrent
#: writer (a retry-on-conflict that gave up), a store key not yet there — and is raised again
#: so that the message is redelivered; it is never dead-lettered.  After ``MAX_DELIVER`` tries
#: the agent parks it as ``handler-failed`` (decision 6).
DEAD_LETTER_REASONS: Final[Mapping[type[Exception], str | None]] = MappingProxyType({
    # The checks (broker.signing), each under its class's code, in the order operators see them listed.
    Unsigned: "unsigned",
    UnknownKey: "unknown-key",
    BadSignature: "bad-signature",
    KeyNotValid: "key-not-valid",
    WrongSender: "wrong-sender",
    WrongRecipient: "wrong-recipient",
    NotSealed: "not-sealed",
    CannotOpen: "cannot-open",
    Malformed: "malformed",
    Oversized: "oversized",
    # The receiver's store (aggregates).  A known event id: the same bytes are only counted, a
    # different body is dead-lettered (decision 4).
    DuplicateEvent: "duplicate",
    # A well-signed event that breaks a rule of its case (one class per rule, aggregates.errors) …
    RuleError: "rule-violation",
    # … except an event that came before the one it follows: it is retried (decision 6).
    NotYet: RETRY,
    UnknownCase: RETRY,
    # Other writers kept changing the case meanwhile: retried (listed for the reader; unlisted would do).
    ConcurrentChange: RETRY,
    # Parked by the pipeline itself.
    HandlerFailed: "handler-failed",
})


def reason_for(error: BaseException) -> str | None:
    """The dead-letter reason :data:`DEAD_LETTER_REASONS` gives ``error``; ``None``: transient, retry it."""
    for cls in type(error).__mro__:
        if cls in DEAD_LETTER_REASONS:
            return DEAD_LETTER_REASONS[cls]
    return RETRY


#: Every reason a receiver gives, in the table's order.
REASONS: Final = tuple(r for r in DEAD_LETTER_REASONS.values() if r is not None)
DUPLICATE: Final = "duplicate"


@dataclass(frozen=True)
class Delivery:
    """One message as JetStream delivered it."""

    subject: str
    data: bytes
    headers: Mapping[str, str]
    stream_seq: int
    num_delivered: int
    #: When ``XZ`` stored it.
    timestamp: datetime
    #: When the sender's sending stream stored it, the end of the push (decision 57), where the
    #: receiver looked it up (:func:`with_push_times`); ``None``: not looked up.
    pushed_at: datetime | None = None


def delivery_of(raw: Msg) -> Delivery:
    """The parts of a JetStream message that intake needs (``timestamp``: the time ``XZ`` stored it)."""
    md = raw.metadata
    return Delivery(subject=raw.subject, data=raw.data, headers=dict(raw.headers or {}),
                    stream_seq=md.sequence.stream, num_delivered=md.num_delivered, timestamp=md.timestamp)


async def with_push_times(js: JetStreamContext, deliveries: Sequence[Delivery]) -> list[Delivery]:
    """``deliveries`` with the time each push ended: the sending stream's stored time of the original
    that the copy's ``Nats-Stream-Source`` names, read in one pipelined round (decision 57).

    A delivery whose copy names no sending stream of its sender (the layout before decision 50), or
    whose original the stream does not hold or holds with other bytes, keeps ``XZ``'s time (logged).
    Raises what the reads raise (NATS away, a read not permitted): transient, the batch comes again.
    """
    sources = [source_of(d.subject, d.headers) for d in deliveries]
    sent = await read_sent(js, (s for s in sources if s is not None))
    out: list[Delivery] = []
    for d, src in zip(deliveries, sources, strict=True):
        got = sent.get(src) if src is not None else None
        if got is not None and got.data == d.data:
            out.append(replace(d, pushed_at=got.time))
            continue
        if src is not None:
            log.error("XZ sequence %d names %s, which holds %s; its arrival is XZ's stored time", d.stream_seq, src,
                      "another message" if got is not None else "no message")
        out.append(d)
    return out


@dataclass(frozen=True)
class Received:
    """A delivery that passed every check: its signed bytes, the opened envelope and when it arrived."""

    signed: Signed
    envelope: Envelope
    delivery: Delivery
    arrived: datetime


#: Applies a received envelope to the receiver's state, exactly once; raises what the store raises.
ApplyFn = Callable[[Received], Awaitable[object]]


@dataclass(frozen=True)
class Handled:
    """What became of one delivery: ``applied``, ``duplicate`` or ``rejected``.

    ``reason``: the dead-letter reason, and ``why`` its text, when it is dead-lettered (a
    rejection, a different body under a known event id); ``received`` is ``None`` when a
    check refused it; ``result`` is what the apply function returned.
    """

    status: Literal["applied", "duplicate", "rejected"]
    reason: str | None = None
    why: str = ""
    received: Received | None = None
    result: object = None


#: The receiver's own follow-up of an applied or duplicate delivery (an answer, the relay).
ThenFn = Callable[[Handled], Awaitable[None]]

#: Applies received envelopes, in order, in one transaction: for each, what it returned or the
#: error it raised.  It stops after the first transient error (one :data:`DEAD_LETTER_REASONS`
#: does not list), which is its last entry: what follows was not tried.  It raises if the
#: transaction could not commit (nothing was applied).  It runs in a worker thread, right after
#: the checks, so that a batch costs one hop off the event loop.
ApplyBatchFn = Callable[[list[Received]], list[object]]


@dataclass
class IntakeStats:
    """Counters an operator and the demo summary read."""

    #: Deliveries taken to be checked (applied, duplicate or rejected, or failed for a passing reason).
    received: int = 0
    applied: int = 0
    duplicates: int = 0
    rejected: int = 0
    signatures_verified: int = 0
    rejected_by_code: dict[str, int] = field(default_factory=dict)


def check(delivery: Delivery, ring: KeyRing, me: str | None, opener: Opens | None, *,
          max_bytes: int = MAX_MESSAGE_BYTES) -> tuple[Signed, Envelope]:
    """Every check that needs no state, then the payload opened; raises :class:`Rejected` with the reason.

    ``me``: the receiver, or ``None`` to take messages addressed to anyone (the ledger).
    ``opener`` holds the receiver's X25519 keys; a clear envelope is refused (``not-sealed``),
    and so is one not sealed to the receiver (``cannot-open``).  ``None`` accepts only
    clear envelopes: for tools that build them, never for a receiver on the wire.
    """
    # Not counted: the header the server adds to XZ's copy of a sending stream's message (decision 50).
    size = len(delivery.data) + sum(len(k) + len(v) for k, v in delivery.headers.items() if k != SOURCE_HEADER)
    if size > max_bytes:
        raise Oversized(f"message of {size} bytes exceeds the {max_bytes}-byte limit",
                        zh=f"消息大小 {size} 字节，超过 {max_bytes} 字节的上限")
    kid, sig = delivery.headers.get(HDR_KEY, ""), delivery.headers.get(HDR_SIG, "")
    if not kid or not sig:
        raise Unsigned("message carries no Xz-Kid/Xz-Sig headers", zh="消息未带 Xz-Kid/Xz-Sig 签名头")
    signed = Signed(body=delivery.data, kid=kid, sig=unb64(sig))
    head = ring.check(signed)
    if me is not None and head.recipient != me:
        raise WrongRecipient(f"addressed to {head.recipient}, not to {me}",
                             zh=f"消息发往{zh_name(head.recipient)}，不是{zh_name(me)}")
    if delivery.subject != subject_for(head):
        raise Malformed(f"subject {delivery.subject} disagrees with the envelope ({subject_for(head)})",
                        zh=f"主题 {delivery.subject} 与信封不一致（{subject_for(head)}）")
    return signed, open_checked(head, opener)


#: Each sender's dead letters are copied in full up to this many at once, then at
#: :data:`DLQ_REFILL_PER_S`; beyond that they are summarised (decision 50).  Writing a dead
#: letter costs an fsync; 5,000 of them from one bureau's flood held another's request ~10 s.
DLQ_BURST = 50
DLQ_REFILL_PER_S = 1.0
#: How long :meth:`DeadLetters.flush` waits for JetStream's acks of the full dead letters it sent.
DLQ_ACK_TIMEOUT_S = 10.0
#: Headers of a summary: how many it stands for, and their stream sequences (``a-b,c,…``).
HDR_SUMMARY_COUNT = "Xz-Summary-Count"
HDR_SUMMARY_SEQS = "Xz-Summary-Seqs"


@dataclass
class _Summary:
    """The rejections of one sender for one reason, over its budget, not yet written."""

    count: int = 0
    seqs: list[int] = field(default_factory=list)
    subject: str = ""
    reason: str = ""


class DeadLetters:
    """Puts rejected messages, unchanged, on the dead-letter stream with the reason in headers.

    Fair to the other senders (decision 50): each sender (the subject's ``xz.<sender>`` token,
    which only that bureau may publish on) has a budget of :data:`DLQ_BURST` full copies,
    refilled at :data:`DLQ_REFILL_PER_S`.  Past it, its rejections are counted into one
    summary per reason, written by :meth:`flush` (which the receiver calls before it acks), so
    a flood costs a few writes instead of one each.  A summary names the XZ stream sequences it
    stands for; the bodies stay in ``XZ`` and the sender's stream, from which nothing is deleted.

    Full copies are sent without waiting for each ack in turn; :meth:`flush` waits for all of them,
    so a batch's fifty rejections cost about one round of fsyncs, not fifty.  Each carries the
    message id ``<receiver>.<XZ sequence>``: if a batch fails and comes again, a copy already
    stored is not stored twice (the stream's duplicate window).
    """

    def __init__(self, js: JetStreamContext, receiver: str, stats: IntakeStats, *, burst: int = DLQ_BURST,
                 refill_per_s: float = DLQ_REFILL_PER_S) -> None:
        self.js = js
        self.receiver = receiver
        self.stats = stats
        self.burst = burst
        self.refill_per_s = refill_per_s
        self.written = 0
        self.summarised = 0
        self._tokens: dict[str, tuple[float, float]] = {}
        self._pending: dict[tuple[str, str], _Summary] = {}
        self._acks: list[asyncio.Future[PubAck]] = []

    def over_budget(self, sender: str) -> bool:
        """Whether ``sender``'s next rejection would be summarised: its budget of full dead letters is spent.

        The agent's lanes (decision 58) hold such a sender's messages apart from the others'.
        """
        got = self._tokens.get(sender)
        if got is None:
            return False
        tokens, then = got
        return tokens + (time.monotonic() - then) * self.refill_per_s < 1.0

    def _take(self, sender: str) -> bool:
        now = time.monotonic()
        tokens, then = self._tokens.get(sender, (float(self.burst), now))
        tokens = min(float(self.burst), tokens + (now - then) * self.refill_per_s)
        if tokens >= 1.0:
            self._tokens[sender] = (tokens - 1.0, now)
            return True
        self._tokens[sender] = (tokens, now)
        return False

    async def put(self, d: Delivery, code: str, reason: str) -> None:
        """Dead-letter one delivery under ``code`` (one of :data:`REASONS`), saying why in ``reason``.

        Sends the copy; :meth:`flush`, which the receiver calls before it acks, waits for
        JetStream's ack, so that no rejection is lost. Past the sender's budget the rejection joins
        a summary, which :meth:`flush` writes.
        """
        if code != DUPLICATE:
            self.stats.rejected += 1
            self.stats.rejected_by_code[code] = self.stats.rejected_by_code.get(code, 0) + 1
        sender = sender_of(d.subject)
        if not self._take(sender):
            summary = self._pending.setdefault((sender, code), _Summary(subject=d.subject, reason=mask_text(reason)))
            summary.count += 1
            summary.seqs.append(d.stream_seq)
            self.summarised += 1
            return
        headers = {k: v for k, v in d.headers.items() if not k.startswith("Nats-")}
        headers.update({
            HDR_REJECT_CODE: code,
            HDR_REJECT_REASON: _header_safe(mask_text(reason)),
            HDR_REJECT_BY: self.receiver,
            HDR_ORIGINAL_SUBJECT: d.subject,
            "Nats-Msg-Id": f"{self.receiver}.{d.stream_seq}",
        })
        self._acks.append(await self.js.publish_async(dlq_subject(self.receiver, code), d.data[:DLQ_MAX_BODY],
                                                      headers=headers, stream=DLQ_STREAM))
        log.info("%s rejected a message on %s: %s: %s", self.receiver, d.subject, code, mask_text(reason),
                 extra={"bureau": self.receiver, "event_id": d.headers.get("Nats-Msg-Id", ""), "event_type": code})

    @property
    def pending(self) -> int:
        """Rejections counted into summaries not yet written."""
        return sum(s.count for s in self._pending.values())

    async def flush(self) -> None:
        """Wait for the full copies sent, then write every pending summary (one dead letter per sender
        and reason); call it before acking.  Raises if JetStream refuses or does not ack in time."""
        if self._acks:
            acks, self._acks = self._acks, []
            try:
                # nats-py never answers the future of a publish the server refuses: bound the wait
                await asyncio.wait_for(asyncio.gather(*acks), timeout=DLQ_ACK_TIMEOUT_S)
            except BaseException:
                for f in acks:
                    f.cancel()
                raise
            self.written += len(acks)
        while self._pending:
            (sender, code), summary = next(iter(self._pending.items()))
            seqs = _ranges(summary.seqs)
            why = (f"{summary.count} more messages from {sender or 'an unknown sender'} rejected as {code} past "
                   f"its budget of dead letters, e.g. {summary.reason}; their bodies stay in XZ at sequences {seqs}")
            headers = {HDR_REJECT_CODE: code, HDR_REJECT_REASON: _header_safe(why), HDR_REJECT_BY: self.receiver,
                       HDR_ORIGINAL_SUBJECT: summary.subject, HDR_SUMMARY_COUNT: str(summary.count),
                       HDR_SUMMARY_SEQS: seqs}
            body = json.dumps({"summary": True, "sender": sender, "count": summary.count, "stream_seqs": seqs})
            await self.js.publish(dlq_subject(self.receiver, code), body.encode(), headers=headers,
                                  stream=DLQ_STREAM)
            del self._pending[(sender, code)]
            self.written += 1
            log.warning("%s: %s", self.receiver, why, extra={"bureau": self.receiver, "event_type": code})


    def forget(self) -> None:
        """Drop the pending summaries and copies (their deliveries were not acked and come again)."""
        for f in self._acks:
            f.cancel()
        self._acks.clear()
        self.summarised -= self.pending
        self._pending.clear()


def _ranges(seqs: Sequence[int]) -> str:
    """``1-3,7,9-10``: sorted sequences as ranges (bounded, so that it fits a header)."""
    out: list[str] = []
    ordered = sorted(set(seqs))
    i = 0
    while i < len(ordered):
        j = i
        while j + 1 < len(ordered) and ordered[j + 1] == ordered[j] + 1:
            j += 1
        out.append(str(ordered[i]) if i == j else f"{ordered[i]}-{ordered[j]}")
        i = j + 1
    text = ",".join(out)
    return text if len(text) <= 900 else f"{ordered[0]}-{ordered[-1]} (not all)"


class Intake:
    """The receive path of one receiver: check, apply once, or dead-letter.

    ``receiver``: the bureau code, or ``ledger``; it names the dead letters.  ``addressed_only``:
    refuse what is addressed to another bureau (an agent); the ledger takes everything.
    ``arrival_clock``: a simulated clock whose ``now()`` is the arrival time (the demo); ``None``:
    the time the sending stream stored the message where the delivery carries it (the ledger looks
    it up: decision 57), else the time ``XZ`` stored it (an agent's own receipt, decision 5).
    """

    def __init__(self, receiver: str, ring: KeyRing, js: JetStreamContext, *, opener: Opens | None,
                 addressed_only: bool = True, arrival_clock: Clock | None = None,
                 max_bytes: int = MAX_MESSAGE_BYTES, stats: IntakeStats | None = None) -> None:
        self.receiver = receiver
        self.ring = ring
        self.opener = opener
        self.addressed_only = addressed_only
        self.arrival_clock = arrival_clock
        self.max_bytes = max_bytes
        self.stats = stats if stats is not None else IntakeStats()
        self.dead_letters = DeadLetters(js, receiver, self.stats)

    def arrival(self, d: Delivery) -> datetime:
        """When the message arrived: the end of the push (the sending stream's stored time) where the
        delivery carries it, else ``XZ``'s stored time; on a simulated clock, its now."""
        if self.arrival_clock is not None:
            return self.arrival_clock.now()
        return d.pushed_at if d.pushed_at is not None else d.timestamp

    def receive(self, d: Delivery) -> Received:
        """Run every check on ``d`` and take its arrival time; raises :class:`Rejected` with the reason."""
        self.stats.received += 1
        signed, env = check(d, self.ring, self.receiver if self.addressed_only else None, self.opener,
                            max_bytes=self.max_bytes)
        self.stats.signatures_verified += 1
        arrived = self.arrival(d)
        # A key revoked or expired before the message arrived is refused whatever time the
        # envelope claims: a stolen key can backdate it.
        self.ring.check_received(signed.kid, arrived)
        return Received(signed=signed, envelope=env, delivery=d, arrived=arrived)

    def receive_all(self, deliveries: Sequence[Delivery]) -> list[Received | Exception]:
        """:meth:`receive` of each delivery, in order: what passed, or why not (for a worker thread:
        PyNaCl releases the GIL in libsodium)."""
        out: list[Received | Exception] = []
        for d in deliveries:
            try:
                out.append(self.receive(d))
            except Exception as e:
                out.append(e)
        return out

    async def handle_batch(self, deliveries: Sequence[Delivery], apply_batch: ApplyBatchFn, apply: ApplyFn,
                           then: ThenFn | None = None) -> list[Handled | None]:
        """Receive a fetched batch and apply what passed in one transaction (group commit); dead-letter the rest.

        Returns one entry per delivery, in order: its :class:`Handled` (it may be acked), or
        ``None`` (transient: it comes again, and so must every ``None`` after it, so that the
        events of a case keep their order).  Entries after the first ``None`` are ``None``
        unless they were dead-lettered.  If the batch could not commit (another writer
        changed a case meanwhile, the store is busy), each delivery is applied on its own
        with ``apply``, as :meth:`handle` does, until the first transient failure.
        ``then`` follows each applied or duplicate delivery up after the commit.
        """
        checked, applied = await in_thread(self._check_and_apply, deliveries, apply_batch)
        out: list[Handled | None] = [None] * len(deliveries)
        stop = len(deliveries)
        for i, (d, got) in enumerate(zip(deliveries, checked, strict=True)):
            if isinstance(got, Exception):
                try:
                    out[i] = await self.refuse(d, got, flush=False)
                except Exception:  # a check that failed for a passing reason: it and the rest come again
                    stop = i
                    break
        good = [i for i in range(stop) if out[i] is None]
        results: list[object] | None = None
        if isinstance(applied, Exception):
            log.warning("%s: a batch of %d could not commit (%s); applying one by one", self.receiver,
                        len(good), mask_text(str(applied)))
        else:
            results = applied
        for n, i in enumerate(good):
            got = cast(Received, checked[i])
            try:
                if results is None:
                    try:
                        done = Handled("applied", received=got, result=await apply(got))
                    except Exception as e:
                        done = self.judge(e, got)
                elif n >= len(results):
                    break  # not tried: the batch stopped at a transient error before it
                elif isinstance(results[n], Exception):
                    done = self.judge(cast(Exception, results[n]), got)
                else:
                    done = Handled("applied", received=got, result=results[n])
                if then is not None and done.status != "rejected":
                    await then(done)
                await self._record(deliveries[i], done)
            except Exception:  # transient: this one and every one after it come again, in order
                break
            out[i] = done
        await self.flush()  # before any of them is acked
        return out

    def _check_and_apply(self, deliveries: Sequence[Delivery], apply_batch: ApplyBatchFn,
                         ) -> tuple[list[Received | Exception], list[object] | Exception]:
        """In a worker thread: every check, then one apply of what passed up to the first transient check failure."""
        checked = self.receive_all(deliveries)
        good: list[Received] = []
        for got in checked:
            if isinstance(got, Received):
                good.append(got)
            elif reason_for(got) is None:
                break  # it and what follows come again (handle_batch stops there too)
        if not good:
            return checked, []
        try:
            return checked, apply_batch(good)
        except Exception as e:  # the batch could not commit: nothing of it was applied
            return checked, e

    async def handle(self, d: Delivery, apply: ApplyFn, then: ThenFn | None = None) -> Handled:
        """Receive ``d`` and apply it once, or dead-letter it.

        ``then`` follows an applied or duplicate delivery up (the agent answers a request it
        can decide); it runs before the delivery is counted, and what it raises is transient
        (the event is in the store already; its redelivery comes back as a duplicate).
        Returns normally whenever the message may be acked; raises only a transient error
        (one :data:`DEAD_LETTER_REASONS` does not list), so that the message is redelivered.
        """
        try:
            got = self.receive(d)
        except Exception as e:
            return await self.refuse(d, e)
        try:
            done = Handled("applied", received=got, result=await apply(got))
        except Exception as e:
            done = self.judge(e, got)
        if then is not None and done.status != "rejected":
            await then(done)
        await self._record(d, done)
        await self.flush()
        return done

    def judge(self, error: Exception, received: Received | None = None) -> Handled:
        """What :data:`DEAD_LETTER_REASONS` makes of ``error``; raises a transient ``error`` again.

        A known event id with the same bytes is a harmless duplicate, not dead-lettered; with
        a different body it is dead-lettered as ``duplicate`` (decision 4).
        """
        code = reason_for(error)
        if code is None:
            raise error
        if isinstance(error, DuplicateEvent):
            if error.same_bytes:
                return Handled("duplicate", received=received)
            return Handled("duplicate", reason=code, why=f"{error}, with a different body", received=received)
        why = f"{error.code}: {error}" if isinstance(error, RuleError) else str(error)
        return Handled("rejected", reason=code, why=why, received=received)

    async def refuse(self, d: Delivery, error: Exception, received: Received | None = None, *,
                     flush: bool = True) -> Handled:
        """Dead-letter ``d`` for ``error`` as :data:`DEAD_LETTER_REASONS` says, or raise a transient ``error`` again.

        ``flush=False``: a summary it joins is written by the caller's :meth:`flush`, before it acks.
        """
        done = self.judge(error, received)
        await self._record(d, done)
        if flush:
            await self.flush()
        return done

    async def flush(self) -> None:
        """Write the dead-letter summaries pending (decision 50); raises, forgetting them, if NATS refuses:
        the deliveries they count are not acked, so they come again and are counted again."""
        try:
            await self.dead_letters.flush()
        except Exception:
            self.dead_letters.forget()
            raise

    async def _record(self, d: Delivery, done: Handled) -> None:
        if done.status == "applied":
            self.stats.applied += 1
        elif done.status == "duplicate":
            self.stats.duplicates += 1
        if done.reason is not None:
            await self.dead_letters.put(d, done.reason, done.why)


def _header_safe(text: str) -> str:
    # NATS headers are single-line; keep the reason readable and bounded.
    return " ".join(text.split())[:1000]


@dataclass(frozen=True)
class DeadLetter:
    """One rejected message as the dead-letter stream keeps it.

    ``rejected_by`` and ``code`` come from the subject, ``xzdlq.<receiver>.<reason>``, which
    only the receiver itself may publish on (decision 22); the ``Xz-Rejected-By`` and
    ``Xz-Reject-Code`` headers are the writer's claim and decide nothing.  ``reason`` (the
    text) and ``original_subject`` are what that receiver wrote.
    """

    seq: int
    subject: str
    original_subject: str
    code: str
    reason: str
    rejected_by: str
    data: bytes
    headers: Mapping[str, str]


def dead_letter_of(seq: int, subject: str, headers: Mapping[str, object], data: bytes) -> DeadLetter:
    """A stored dead letter, judged by its subject (see :class:`DeadLetter`).

    A subject that is not ``xzdlq.<receiver>.<reason>`` names nobody: receiver and code empty.
    """
    h = {k: header_text(v) for k, v in headers.items()}
    parts = subject.split(".")
    receiver, code = (parts[1], parts[2]) if len(parts) == 3 and parts[0] == DLQ_PREFIX else ("", "")
    return DeadLetter(seq=seq, subject=subject, original_subject=h.get(HDR_ORIGINAL_SUBJECT, ""), code=code,
                      reason=h.get(HDR_REJECT_REASON, ""), rejected_by=receiver, data=data, headers=h)


def header_text(value: object) -> str:
    """A header value of ``js.get_msg`` as text.

    nats-py parses those headers with the e-mail parser, which turns a value that is not
    ASCII (a reason quoting 第七条) into a ``Header`` of raw bytes: the UTF-8 that was sent.
    """
    if isinstance(value, Header):
        return "".join(part.decode("utf-8", errors="replace") if isinstance(part, bytes) else part
                       for part, _charset in decode_header(value))
    return str(value)


async def read_dead_letters(js: JetStreamContext, *, after: int = 0, limit: int = 1000) -> list[DeadLetter]:
    """Dead letters with stream sequence > ``after``, oldest first."""
    info = await js.stream_info(DLQ_STREAM)
    out: list[DeadLetter] = []
    seq = max(after + 1, info.state.first_seq)
    while seq <= info.state.last_seq and len(out) < limit:
        try:
            m = await js.get_msg(DLQ_STREAM, seq)
        except NotFoundError:
            seq += 1
            continue
        out.append(dead_letter_of(seq, m.subject or "", m.headers or {}, m.data or b""))
        seq += 1
    return out
