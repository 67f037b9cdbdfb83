"""Exactly-once intake: check a received message, apply it once, or dead-letter it.

The checks run in a fixed order and the first failure names the dead-letter reason:
size → signature headers → key, signature, key validity and sender (the key ring) →
subject agrees with the envelope → recipient is us → the store applies it (its rules,
and its intake marker committed in the same transaction as the change).
"""
from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from email.header import Header, decode_header

from nats.js import JetStreamContext
from nats.js.errors import NotFoundError

from broker.signing import (
    Duplicate,
    KeyRing,
    Malformed,
    Opens,
    Oversized,
    Rejected,
    RuleViolation,
    Unsigned,
    WrongRecipient,
    open_checked,
    unb64,
)
from broker.streams import DLQ_STREAM, dlq_subject
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
from schemas.errors import XiezhuError
from schemas.privacy import mask_text

#: Oversized bodies are cut to this in the dead-letter copy (the reason says how big it was).
DLQ_MAX_BODY = 1024 * 1024

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Delivery:
    """One message as JetStream delivered it."""

    subject: str
    data: bytes
    headers: Mapping[str, str]
    stream_seq: int
    num_delivered: int
    timestamp: datetime


class AlreadyApplied(XiezhuError):
    """Raised by an apply function when the event id was applied before.

    A copy with the same bytes is harmless and only counted; a different body under a
    known id is dead-lettered, because no honest sender produces one.
    """

    code = "duplicate"

    def __init__(self, message: str, /, *, same_bytes: bool) -> None:
        super().__init__(message)
        self.same_bytes = same_bytes


class NotApplicable(XiezhuError):
    """Raised by an apply function when a well-signed event breaks a rule of its case."""

    code = "rule-violation"


#: Applies a verified envelope to the receiver's state, exactly once.
ApplyFn = Callable[[Signed, Envelope, Delivery], Awaitable[object]]


@dataclass
class IntakeStats:
    """Counters an operator and the demo summary read."""

    applied: int = 0
    duplicates: int = 0
    rejected: int = 0
    signatures_verified: int = 0
    rejected_by_code: dict[str, int] = field(default_factory=dict)


def check(delivery: Delivery, ring: KeyRing, me: str | None, opener: Opens | None, *,
          max_bytes: int = MAX_MESSAGE_BYTES) -> tuple[Signed, Envelope]:
    """Every check that needs no state, then the payload opened; raises :class:`Rejected` with the reason.

    ``opener`` holds the receiver's X25519 keys; a clear envelope is refused (``not-sealed``),
    and so is one not sealed to the receiver (``cannot-open``).  ``None`` accepts only
    clear envelopes: for tools that build them, never for a receiver on the wire.
    """
    size = len(delivery.data) + sum(len(k) + len(v) for k, v in delivery.headers.items())
    if size > max_bytes:
        raise Oversized(f"message of {size} bytes exceeds the {max_bytes}-byte limit")
    kid, sig = delivery.headers.get(HDR_KEY, ""), delivery.headers.get(HDR_SIG, "")
    if not kid or not sig:
        raise Unsigned("message carries no Xz-Kid/Xz-Sig headers")
    signed = Signed(body=delivery.data, kid=kid, sig=unb64(sig))
    head = ring.check(signed)
    if me is not None and head.recipient != me:
        raise WrongRecipient(f"addressed to {head.recipient}, not to {me}")
    if delivery.subject != subject_for(head):
        raise Malformed(f"subject {delivery.subject} disagrees with the envelope ({subject_for(head)})")
    return signed, open_checked(head, opener)


class DeadLetters:
    """Puts rejected messages, unchanged, on the dead-letter stream with the reason in headers."""

    def __init__(self, js: JetStreamContext, receiver: str, stats: IntakeStats) -> None:
        self.js = js
        self.receiver = receiver
        self.stats = stats

    async def put(self, d: Delivery, why: Rejected) -> None:
        """Dead-letter one delivery; waits for JetStream's ack so no rejection is lost."""
        if why.code != Duplicate.code:
            self.stats.rejected += 1
            self.stats.rejected_by_code[why.code] = self.stats.rejected_by_code.get(why.code, 0) + 1
        headers = {k: v for k, v in d.headers.items() if not k.startswith("Nats-")}
        headers.update({
            HDR_REJECT_CODE: why.code,
            HDR_REJECT_REASON: _header_safe(mask_text(why.message)),
            HDR_REJECT_BY: self.receiver,
            HDR_ORIGINAL_SUBJECT: d.subject,
        })
        await self.js.publish(dlq_subject(self.receiver, why.code), d.data[:DLQ_MAX_BODY], headers=headers,
                              stream=DLQ_STREAM)
        log.info("%s rejected a message on %s: %s: %s", self.receiver, d.subject, why.code, mask_text(why.message))


class Intake:
    """The receive path of one bureau agent: check, apply once, or dead-letter."""

    def __init__(self, me: str, ring: KeyRing, apply: ApplyFn, js: JetStreamContext,
                 *, opener: Opens | None, max_bytes: int = MAX_MESSAGE_BYTES) -> None:
        self.me = me
        self.ring = ring
        self.opener = opener
        self._apply = apply
        self.max_bytes = max_bytes
        self.stats = IntakeStats()
        self.dead_letters = DeadLetters(js, me, self.stats)

    async def handle(self, d: Delivery) -> str:
        """Process one delivery; returns ``applied``, ``duplicate`` or ``rejected:<code>``.

        Returns normally whenever the message may be acked; raises only for transient
        failures (the store is busy, NATS is away), so that the message is redelivered.
        """
        try:
            signed, env = check(d, self.ring, self.me, self.opener, max_bytes=self.max_bytes)
            self.stats.signatures_verified += 1
            await self._apply(signed, env, d)
        except AlreadyApplied as e:
            self.stats.duplicates += 1
            if not e.same_bytes:
                await self.dead_letters.put(d, Duplicate(f"{e}, with a different body"))
            return "duplicate"
        except NotApplicable as e:
            await self.dead_letters.put(d, RuleViolation(str(e)))
            return f"rejected:{RuleViolation.code}"
        except Rejected as e:
            await self.dead_letters.put(d, e)
            return f"rejected:{e.code}"
        self.stats.applied += 1
        return "applied"


def _header_safe(text: str) -> str:
    # NATS headers are single-line; keep the reason readable and bounded.
    return " ".join(text.split())[:1000]


@dataclass(frozen=True)
class DeadLetter:
    """One rejected message as the dead-letter stream keeps it."""

    seq: int
    subject: str
    original_subject: str
    code: str
    reason: str
    rejected_by: str
    data: bytes
    headers: Mapping[str, str]


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
        h = {k: header_text(v) for k, v in (m.headers or {}).items()}
        out.append(DeadLetter(seq=seq, subject=m.subject or "", original_subject=h.get(HDR_ORIGINAL_SUBJECT, ""),
                              code=h.get(HDR_REJECT_CODE, ""), reason=h.get(HDR_REJECT_REASON, ""),
                              rejected_by=h.get(HDR_REJECT_BY, ""), data=m.data or b"", headers=h))
        seq += 1
    return out
