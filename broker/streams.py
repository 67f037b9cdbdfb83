"""Streams, subjects and durable consumers: the JetStream layout every part agrees on.

``XZ`` holds every bureau event on ``xz.<sender>.<recipient>.<type>``, sourced from the
sending streams ``XZ_FROM_<sender>``, which take what each bureau publishes under that
bureau's limits (decision 50); ``XZ_DLQ`` holds
rejected messages on ``xzdlq.<receiver>.<reason>``.  Each bureau agent reads its own
mail through a pre-provisioned durable consumer ``agent-<code>`` filtered on
``xz.*.<code>.>``; the 司法局 ledger reads everything through ``ledger``.  ``XZ_TRUST``
keeps every version of the root-signed trust list on ``xztrust.list``; readers take the
last one by direct get and subscribe to the subject for new ones.  ``XZ_WITNESS`` keeps
every checkpoint head 区司法局 signed (``xzwit.heads``) and sources each bureau's
countersignatures of the heads it saw from ``XZ_WITNESS_<code>`` (``xzwit.cosign.<code>``,
under that bureau's own limits); like ``XZ`` they refuse deletes and purges (decisions 49, 59).
"""
from __future__ import annotations

import asyncio
import contextlib
import enum
import json
import logging
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from nats.js import JetStreamContext
from nats.js.api import (
    AckPolicy,
    ConsumerConfig,
    DeliverPolicy,
    DiscardPolicy,
    RetentionPolicy,
    StorageType,
    StreamConfig,
    StreamSource,
)
from nats.js.errors import APIError, NotFoundError

from aggregates.registry import Registry
from broker.server import START_TIMEOUT_S
from schemas.envelope import MAX_MESSAGE_BYTES
from schemas.errors import XiezhuError

log = logging.getLogger(__name__)

EVENTS_STREAM = "XZ"
DLQ_STREAM = "XZ_DLQ"
EVENTS_SUBJECTS = "xz.>"
#: ``XZ_FROM_<code>``: what one bureau sent, under that bureau's limits; ``XZ`` sources them.
SENDING_PREFIX = "XZ_FROM_"
DLQ_PREFIX = "xzdlq"
TRUST_STREAM = "XZ_TRUST"
TRUST_SUBJECT = "xztrust.list"
LEDGER_CONSUMER = "ledger"
WITNESS_STREAM = "XZ_WITNESS"
WITNESS_SUBJECTS = "xzwit.>"
#: ``XZ_WITNESS_<code>``: one bureau's countersignatures, under its own limits; ``XZ_WITNESS`` sources them.
WITNESS_PREFIX = "XZ_WITNESS_"
#: Where 区司法局's signed checkpoint heads are published, for every bureau to see and keep.
HEADS_SUBJECT = "xzwit.heads"
COSIGN_PREFIX = "xzwit.cosign"
#: Where the ledger asks 区司法局's checkpoint signer, on another host, to sign a head (core NATS request).
SIGN_SUBJECT = "xzsign.checkpoint"
#: JetStream drops a re-published Nats-Msg-Id within this window; intake dedup covers the rest.
DUPLICATE_WINDOW_S = 24 * 3600
#: Redeliveries before a message that keeps failing is dead-lettered as ``handler-failed`` (an agent's).
MAX_DELIVER = 10
#: The ledger's consumer redelivers without end: the ledger is the record and never skips an event.
#: From :data:`MAX_DELIVER` deliveries on it raises the alarm instead (decision 62).
LEDGER_MAX_DELIVER = -1
#: How long JetStream waits for an ack before redelivering.  Handling one message takes
#: milliseconds; an ack lost in a server restart comes back after this long.
ACK_WAIT_S = 10.0
#: Messages a consumer delivers without an ack before it waits: an agent holds its slow lane's
#: messages unacked (decision 58), so this is above ``broker.lanes.MAX_HELD`` and a batch.
MAX_ACK_PENDING = 52_000
#: How long one pull request waits.  After a server restart an outstanding pull is lost
#: and the client only notices when it expires, so this bounds that stall.
PULL_TIMEOUT_S = 1.0
#: How often an agent and the ledger check that their consumer is still as provisioned.
CONSUMER_CHECK_S = 30.0


def agent_consumer(code: str) -> str:
    """The durable consumer name of a bureau's agent."""
    return f"agent-{code}"


def inbox_filter(code: str) -> str:
    """Subjects addressed to ``code``."""
    return f"xz.*.{code}.>"


def cosign_subject(code: str) -> str:
    """Where bureau ``code`` publishes its countersignatures of the heads it saw."""
    return f"{COSIGN_PREFIX}.{code}"


def dlq_subject(receiver: str, reason: str) -> str:
    """Where a receiver puts what it rejected."""
    return f"{DLQ_PREFIX}.{receiver}.{reason}"


#: The largest message the events streams store, headers included: the envelope's own limit
#: (:data:`schemas.envelope.MAX_MESSAGE_BYTES`), so that the server refuses what intake would.
MAX_EVENT_BYTES = MAX_MESSAGE_BYTES
#: What one bureau may have in its sending stream by default: 128 MiB and 1,000,000 messages,
#: some 40,000 sealed events (2–6 KB each), a decade of one bureau's correspondence, and
#: bounded: a flood stops at it instead of filling the disk (decision 50).  JetStream reserves
#: each stream's ``max_bytes`` in its storage, so the 37 bureaus' defaults take 4.6 GiB of it
#: and the disk can never be promised twice.  ``xiezhu provision --bureau-max-bytes`` sets others.
BUREAU_MAX_BYTES = 128 * 1024 ** 2
BUREAU_MAX_MSGS = 1_000_000


#: The largest witness record (a countersigned head is about 0.6 KB).
MAX_WITNESS_BYTES = 4096
#: What one bureau may have in its witness stream by default: 64 MiB and 100,000 countersignatures
#: (about 0.65 KB each stored), one per checkpoint, which come at most every 10 s while entries
#: arrive: some three years at 100 checkpoints a day.  Bounded, so that a bureau publishing junk
#: on its own countersignature subject stops at it (decision 59); 37 bureaus reserve 2.3 GiB.
WITNESS_MAX_BYTES = 64 * 1024 ** 2
WITNESS_MAX_MSGS = 100_000


def sender_of(subject: str) -> str:
    """The sender token of ``xz.<sender>.<recipient>.<type>`` (only that bureau may publish on it); empty for
    any other subject."""
    parts = subject.split(".", 2)
    return parts[1] if len(parts) > 2 and parts[0] == "xz" else ""


def sending_stream(code: str) -> str:
    """The stream that takes what bureau ``code`` publishes (``xz.<code>.>``), under its own limits."""
    return f"{SENDING_PREFIX}{code}"


def witness_stream(code: str) -> str:
    """The stream that takes bureau ``code``'s countersignatures (``xzwit.cosign.<code>``), under its own limits."""
    return f"{WITNESS_PREFIX}{code}"


@dataclass(frozen=True)
class BureauLimits:
    """What the server lets one bureau put in its sending stream and its witness stream; past it, a publish
    is refused.

    ``None`` leaves a setting to what an existing stream has (a node's own provisioning at
    start), or the default where the stream is created.
    """

    max_bytes: int | None = None
    max_msgs: int | None = None
    witness_max_bytes: int | None = None
    witness_max_msgs: int | None = None


#: Every limit left to an existing stream, or to the defaults where the stream is created.
UNSET_LIMITS = BureauLimits()


async def ensure_streams(js: JetStreamContext, bureaus: Iterable[str] | None = None, *, replicas: int | None = None,
                         create: bool = True, limits: BureauLimits = UNSET_LIMITS) -> None:
    """Create the sending, event, dead-letter, trust-list and witness streams where missing, check them where not.

    Idempotent.  ``bureaus``: every bureau that may publish (default: the registry's).
    Each has a sending stream ``XZ_FROM_<code>`` on ``xz.<code>.>`` with its limits (message
    size, bytes, messages; a full stream refuses new messages and nothing can be purged or
    deleted from it), and ``XZ`` sources them all: one stream, one sequence, every consumer
    (decision 50).

    ``create=False`` only checks (the ``admin`` user may not create): a missing stream is an error.

    ``replicas`` is 1 on the embedded server and 3 on a 3-node cluster, so that losing
    one node loses no message and stops nothing.  ``None`` (a node's own provisioning at
    start) creates a missing stream with the server's default of 1 and accepts whatever
    an existing stream has: ``xiezhu provision --replicas N`` set it.
    """
    codes = list(Registry.load().codes() if bureaus is None else bureaus)
    await _refuse_capturing_stream(js, EVENTS_STREAM, 50, "sending streams")
    await _refuse_capturing_stream(js, WITNESS_STREAM, 59, "witness streams", keep=[HEADS_SUBJECT])
    # The bureaus' streams are independent of each other: asked for at once (74 of them), the first
    # error in the registry's order raised once all have answered.
    done = await asyncio.gather(
        *(_ensure_stream(js, sending_config(code, limits, replicas), create,
                         defaults={"max_bytes": BUREAU_MAX_BYTES, "max_msgs": BUREAU_MAX_MSGS}) for code in codes),
        *(_ensure_stream(js, witness_config(code, limits, replicas), create,
                         defaults={"max_bytes": WITNESS_MAX_BYTES, "max_msgs": WITNESS_MAX_MSGS}) for code in codes),
        return_exceptions=True)
    for outcome in done:
        if isinstance(outcome, BaseException):
            raise outcome
    await _ensure_stream(js, StreamConfig(
        name=EVENTS_STREAM, subjects=[], sources=[StreamSource(name=sending_stream(c)) for c in codes],
        retention=RetentionPolicy.LIMITS, storage=StorageType.FILE, duplicate_window=DUPLICATE_WINDOW_S,
        max_msg_size=MAX_EVENT_BYTES + _SOURCE_HEADER_ROOM, deny_delete=True, deny_purge=True,
        num_replicas=replicas,
    ), create)
    await _ensure_stream(js, StreamConfig(
        name=DLQ_STREAM, subjects=[f"{DLQ_PREFIX}.>"], retention=RetentionPolicy.LIMITS,
        storage=StorageType.FILE, max_msg_size=2 * 1024 * 1024, num_replicas=replicas,
    ), create)
    # Every version stays (the list's history is evidence too); direct get serves the last.
    await _ensure_stream(js, StreamConfig(
        name=TRUST_STREAM, subjects=[TRUST_SUBJECT], retention=RetentionPolicy.LIMITS,
        storage=StorageType.FILE, duplicate_window=DUPLICATE_WINDOW_S, max_msg_size=1024 * 1024,
        allow_direct=True, deny_delete=True, deny_purge=True, num_replicas=replicas,
    ), create)
    # The witnesses of the ledger's checkpoints: nobody may remove a head once published (decision 49).
    # The heads (only the ledger and the signer publish them) land here; each bureau's
    # countersignatures in its own bounded stream, sourced here in one order (decision 59).
    await _ensure_stream(js, StreamConfig(
        name=WITNESS_STREAM, subjects=[HEADS_SUBJECT], sources=[StreamSource(name=witness_stream(c)) for c in codes],
        retention=RetentionPolicy.LIMITS, storage=StorageType.FILE, duplicate_window=DUPLICATE_WINDOW_S,
        max_msg_size=MAX_WITNESS_BYTES + _SOURCE_HEADER_ROOM, allow_direct=True, deny_delete=True, deny_purge=True,
        num_replicas=replicas,
    ), create)


async def _refuse_capturing_stream(js: JetStreamContext, name: str, decision: int, sources: str,
                                   keep: list[str] | None = None) -> None:
    """A stream of the layout before ``decision`` captures the bureaus' subjects itself; no per-bureau stream
    can be made beside it (the server refuses overlapping subjects)."""
    try:
        info = await js.stream_info(name)
    except NotFoundError:
        return
    extra = [s for s in info.config.subjects or [] if s not in (keep or [])]
    if extra:
        now = f"keep only {', '.join(keep)}" if keep else "remove its subjects"
        now_zh = f"只保留 {', '.join(keep)}" if keep else "删除其主题"
        raise StreamLayoutError(
            f"stream {name} captures {', '.join(extra)} itself (the layout before decision {decision}): as the "
            f"NATS operator {now}, run `xiezhu provision` to create the {sources}, then add them to its sources",
            zh=f"流 {name} 自身捕获 {', '.join(extra)}（决定{decision}之前的布局）：请以 NATS 管理员身份{now_zh}，"
               f"运行 `xiezhu provision` 创建{sources}，再将其加入来源",
            stream=name, setting="subjects")


@dataclass(frozen=True)
class SendingUsage:
    """How much of its limits one bureau's sending (or witness) stream holds."""

    code: str
    msgs: int
    bytes: int
    max_msgs: int
    max_bytes: int
    max_msg_size: int

    @property
    def share(self) -> float:
        """The larger of the two fractions used (1.0: full, every publish refused)."""
        return max(self.msgs / self.max_msgs if self.max_msgs > 0 else 0.0,
                   self.bytes / self.max_bytes if self.max_bytes > 0 else 0.0)


async def sending_usage(js: JetStreamContext, bureaus: Iterable[str],
                        stream: Callable[[str], str] = sending_stream) -> list[SendingUsage]:
    """Each bureau's sending stream's (or ``stream=witness_stream``: witness stream's) use and limits, as the
    server reports them (STREAM.INFO)."""
    out = []
    for code in bureaus:
        info = await js.stream_info(stream(code))
        c = info.config
        out.append(SendingUsage(code=code, msgs=info.state.messages, bytes=info.state.bytes,
                                max_msgs=c.max_msgs or -1, max_bytes=c.max_bytes or -1,
                                max_msg_size=c.max_msg_size or -1))
    return out


#: The words of :func:`usage_line`, per language.
_USAGE_WORDS = {
    "en": {"none": "no {kind} streams", "join": "; ", "limit": "{b}, {m}, {z} a message", "bytes": "bytes",
           "messages": "messages", "unlimited": "unlimited {unit}", "kinds": {},
           "line": "{n} {kind} streams, each bureau at most {limits}; fullest {code}: "
                   "{msgs:,} messages, {size:,} bytes ({share:.1%})"},
    "zh": {"none": "没有{kind}流", "join": "；", "limit": "{b}、{m}、每条消息 {z}", "bytes": "字节",
           "messages": "条消息", "unlimited": "不限{unit}", "kinds": {"sending": "发送", "witness": "见证"},
           "line": "{kind}流 {n} 个，每个单位最多 {limits}；最满的是 {code}："
                   "{msgs:,} 条消息，{size:,} 字节（{share:.1%}）"},
}


def usage_line(usage: list[SendingUsage], kind: str = "sending", language: str = "en") -> str:
    """One line: the ``kind`` (sending, witness) streams' limits and the fullest one (in 中文 for "zh")."""
    w: dict[str, Any] = _USAGE_WORDS["zh" if language == "zh" else "en"]
    kind = w["kinds"].get(kind, kind)
    if not usage:
        return str(w["none"]).format(kind=kind)

    def amount(n: int, unit: str) -> str:
        return str(w["unlimited"]).format(unit=w[unit]) if n < 0 else f"{n:,} {w[unit]}"

    top = max(usage, key=lambda u: u.share)
    sizes = sorted({(u.max_bytes, u.max_msgs, u.max_msg_size) for u in usage})
    limits = str(w["join"]).join(str(w["limit"]).format(b=amount(b, "bytes"), m=amount(m, "messages"),
                                                        z=amount(z, "bytes")) for b, m, z in sizes)
    return str(w["line"]).format(n=len(usage), kind=kind, limits=limits, code=top.code, msgs=top.msgs,
                                 size=top.bytes, share=top.share)



#: JetStream's error code for a stream whose ``max_bytes`` the server's storage cannot reserve.
_NO_STORAGE = 10047
#: JetStream's error codes for a publish refused by a stream's limits: too big, or the stream
#: is full (``discard: new``; the description says of bytes or of messages).
_TOO_BIG, _STREAM_FULL = 10054, 10077


def full_stream_error(error: APIError, kind: str = "sending", largest: int = MAX_EVENT_BYTES) -> str | None:
    """One line for a publish the ``kind`` stream refused under its limits; None for any other error."""
    if error.err_code == _TOO_BIG:
        return f"the server refused a message over {largest:,} bytes ({error.description})"
    if error.err_code == _STREAM_FULL:
        return (f"the {kind} stream is full ({error.description}); it refuses every new message until the NATS "
                f"operator raises its limits (`xiezhu provision` shows them)")
    return None


#: ``XZ`` stores a sourced copy with a ``Nats-Stream-Source`` header the server adds.
_SOURCE_HEADER_ROOM = 512


def sending_config(code: str, limits: BureauLimits = UNSET_LIMITS, replicas: int | None = None) -> StreamConfig:
    """Bureau ``code``'s sending stream: its subjects, its limits, nothing removable (decision 50)."""
    return StreamConfig(
        name=sending_stream(code), subjects=[f"xz.{code}.>"], retention=RetentionPolicy.LIMITS,
        storage=StorageType.FILE, duplicate_window=DUPLICATE_WINDOW_S, max_msg_size=MAX_EVENT_BYTES,
        max_bytes=limits.max_bytes, max_msgs=limits.max_msgs, discard=DiscardPolicy.NEW,
        deny_delete=True, deny_purge=True, num_replicas=replicas,
    )


def witness_config(code: str, limits: BureauLimits = UNSET_LIMITS, replicas: int | None = None) -> StreamConfig:
    """Bureau ``code``'s witness stream: its countersignature subject, its limits, nothing removable (decision 59)."""
    return StreamConfig(
        name=witness_stream(code), subjects=[cosign_subject(code)], retention=RetentionPolicy.LIMITS,
        storage=StorageType.FILE, duplicate_window=DUPLICATE_WINDOW_S, max_msg_size=MAX_WITNESS_BYTES,
        max_bytes=limits.witness_max_bytes, max_msgs=limits.witness_max_msgs, discard=DiscardPolicy.NEW,
        deny_delete=True, deny_purge=True, num_replicas=replicas,
    )


class StreamLayoutError(XiezhuError):
    """A stream exists with another configuration than xiezhu's layout."""

    code = "nats.streams"


#: The stream settings xiezhu's layout fixes, compared with an existing stream's.
_COMPARED = ("subjects", "sources", "retention", "storage", "duplicate_window", "max_msg_size", "max_bytes",
             "max_msgs", "discard", "deny_delete", "deny_purge", "allow_direct", "num_replicas")


async def _ensure_stream(js: JetStreamContext, config: StreamConfig, create: bool,
                         defaults: Mapping[str, Any] | None = None) -> None:
    """Create the stream if it is missing; an existing one must already have the layout's settings.

    ``defaults``: the values a setting left ``None`` gets when the stream is created (an
    existing stream's are accepted as they are).

    Provisioning never updates a stream: the provisioner's NATS user may not (an update can
    add subjects or shrink limits, decision 22).  A stream that differs is the operator's
    to change, deliberately, as a NATS user of their own.
    """
    try:
        info = await js.stream_info(config.name or "")
    except NotFoundError:
        if not create:
            raise LayoutMissing(f"stream {config.name} is missing: {_NEEDS_PROVISIONER}",
                                zh=f"流 {config.name} 不存在：{_NEEDS_PROVISIONER_ZH}",
                                    stream=config.name) from None
        unset = {k: v for k, v in (defaults or {}).items() if getattr(config, k) is None}
        try:
            await js.add_stream(config.evolve(**unset) if unset else config)
        except APIError as e:
            if e.err_code != _NO_STORAGE:
                raise
            raise StreamLayoutError(
                f"cannot create stream {config.name}: the server has no room left to reserve its "
                f"{(unset.get('max_bytes') or config.max_bytes or 0):,} bytes ({e.description}); free disk, raise "
                f"JetStream's max_file_store, or give `xiezhu provision --bureau-max-bytes` or `--witness-max-bytes` "
                f"less",
                zh=f"无法创建流 {config.name}："
                   f"服务器已无空间预留其 {(unset.get('max_bytes') or config.max_bytes or 0):,} 字节"
                   f"（{e.description}）；请释放磁盘、提高 JetStream 的 max_file_store，"
                   "或减小 `xiezhu provision --bureau-max-bytes` 或 `--witness-max-bytes`",
                stream=config.name) from None
        return
    for name in _COMPARED:
        want, have = _comparable(name, getattr(config, name)), _comparable(name, getattr(info.config, name))
        if want is None or (name == "duplicate_window" and not want):  # left to the server's default
            continue
        if have != want:
            raise StreamLayoutError(
                f"stream {config.name} exists with {name} {have!r}, not {want!r}; provisioning does not change an "
                f"existing stream: change it as the NATS operator (e.g. `nats stream edit {config.name}`)",
                zh=f"流 {config.name} 已存在，其 {name} 为 {have!r}，而不是 {want!r}；配置不修改已有的流："
                   f"请以 NATS 管理员身份修改（如 `nats stream edit {config.name}`）",
                stream=config.name, setting=name)


def _comparable(name: str, value: Any) -> Any:
    """A stream setting as compared: sources by name only, no subjects as an empty list."""
    if name == "sources":
        return None if value is None else sorted(src.name for src in value)
    if name == "subjects":
        return list(value or [])
    return value


def consumer_config(durable: str, filter_subject: str) -> ConsumerConfig:
    """A durable pull consumer with explicit acks; an agent's redelivers :data:`MAX_DELIVER` times, the
    ledger's without end (decision 62)."""
    return ConsumerConfig(
        durable_name=durable, filter_subject=filter_subject, ack_policy=AckPolicy.EXPLICIT,
        deliver_policy=DeliverPolicy.ALL,
        max_deliver=LEDGER_MAX_DELIVER if durable == LEDGER_CONSUMER else MAX_DELIVER, ack_wait=ACK_WAIT_S,
        max_ack_pending=MAX_ACK_PENDING,
    )


def expected_consumers(bureaus: Iterable[str]) -> list[ConsumerConfig]:
    """Every pre-provisioned durable consumer: each bureau's agent's, then the ledger's."""
    return [*(consumer_config(agent_consumer(code), inbox_filter(code)) for code in bureaus),
            consumer_config(LEDGER_CONSUMER, EVENTS_SUBJECTS)]


async def ensure_consumers(js: JetStreamContext, bureaus: Iterable[str], *, create: bool = True) -> None:
    """Pre-provision every agent's durable consumer and the ledger's where missing, check them where not.

    An existing consumer must have exactly the layout's configuration (:func:`consumer_differences`);
    provisioning never changes one.  ``create=False`` only checks.
    """
    # Independent of each other: asked for at once (one a bureau and the ledger's), as the streams are; the
    # first error in the registry's order raised once all have answered.
    done = await asyncio.gather(*(_ensure_consumer(js, config, create) for config in expected_consumers(bureaus)),
                                return_exceptions=True)
    for outcome in done:
        if isinstance(outcome, BaseException):
            raise outcome


async def _ensure_consumer(js: JetStreamContext, config: ConsumerConfig, create: bool) -> None:
    name = config.durable_name or ""
    have = await consumer_settings(js, name)
    if have is None:
        if not create:
            raise LayoutMissing(f"consumer {name} of {EVENTS_STREAM} is missing: {_NEEDS_PROVISIONER}",
                                zh=f"{EVENTS_STREAM} 的消费者 {name} 不存在：{_NEEDS_PROVISIONER_ZH}",
                                consumer=name)
        await _create_consumer(js, config)
        return
    check_consumer(name, have, config)


_NEEDS_PROVISIONER = ("creating it needs the one-shot provisioner: on an embedded server the node does it at start; "
                      "elsewhere `xiezhu nats-config --provisioner`, reload the servers, `xiezhu provision`")
_NEEDS_PROVISIONER_ZH = ("创建它需要一次性的配置程序：内置服务器由节点在启动时创建；其他情况请运行 "
                         "`xiezhu nats-config --provisioner`，重新加载服务器，再运行 `xiezhu provision`")


class LayoutMissing(StreamLayoutError):
    """A stream or durable consumer of the layout does not exist (yet)."""

    code = "nats.missing"


class ConsumerChanged(StreamLayoutError):
    """A durable consumer is missing or its configuration is not the one provisioning gave it.

    Nobody may change a consumer after provisioning (decision 34): a narrowed filter stops
    events reaching the ledger, ``max_deliver=1`` or ``headers_only`` lose them,
    ``inactive_threshold`` lets the server delete the consumer, a push ``deliver_subject``
    sends a bureau's mail elsewhere.  Agents and the ledger refuse to run on such a consumer.
    """

    code = "nats.consumer-changed"


#: Server-side settings that say nothing about what is delivered to whom, or how often.
_CONSUMER_IGNORED = frozenset({"name", "durable_name", "description", "metadata", "max_waiting", "created"})


def _unset(value: Any) -> bool:
    return value is None or value == 0 or value is False or value in ("", [], {})


def consumer_differences(have: Mapping[str, Any], want: ConsumerConfig) -> list[str]:
    """The settings where a consumer's configuration as the server reports it (raw JSON) differs from ``want``.

    Every setting counts, the ones this nats-py does not know included (a pause, priority
    groups): a setting ``want`` leaves unset must be unset on the server too.
    """
    expected = {k: (v.value if isinstance(v, enum.Enum) else v) for k, v in want.as_dict().items()}
    out = []
    for key in sorted(set(have) | set(expected)):
        if key in _CONSUMER_IGNORED:
            continue
        a, b = have.get(key), expected.get(key)
        if (_unset(a) and _unset(b)) or a == b:
            continue
        out.append(f"{key} {a!r}, not {b!r}")
    return out


def check_consumer(name: str, have: Mapping[str, Any], want: ConsumerConfig) -> None:
    """Raise :class:`ConsumerChanged` if the consumer's configuration is not ``want``."""
    diff = consumer_differences(have, want)
    if diff:
        raise ConsumerChanged(
            f"consumer {name} of {EVENTS_STREAM} was changed after provisioning ({'; '.join(diff)}); "
            f"nothing may run on it until the NATS operator restores it",
            zh=f"{EVENTS_STREAM} 的消费者 {name} 在配置后被修改（{'；'.join(diff)}）；"
               "在 NATS 管理员恢复之前不得在其上运行", consumer=name, settings=diff)


async def consumer_state(js: JetStreamContext, name: str, *,
                         timeout: float = START_TIMEOUT_S) -> dict[str, Any] | None:
    """A consumer's info as the server reports it (raw, every field kept); None if there is none.

    Asked with CONSUMER.INFO, which every user may do for its own consumer.
    """
    try:
        return dict(await js._api_request(f"$JS.API.CONSUMER.INFO.{EVENTS_STREAM}.{name}", b"", timeout=timeout))
    except NotFoundError:
        return None


async def consumer_settings(js: JetStreamContext, name: str, *,
                            timeout: float = START_TIMEOUT_S) -> dict[str, Any] | None:
    """A consumer's configuration as the server reports it (raw, every field kept); None if there is none."""
    info = await consumer_state(js, name, timeout=timeout)
    if info is None:
        return None
    config = info.get("config")
    return dict(config) if isinstance(config, dict) else {}


def _server_time(value: object) -> datetime | None:
    """An RFC 3339 time of the server's (nanoseconds, ``Z``), or None."""
    if not isinstance(value, str) or not value:
        return None
    with contextlib.suppress(ValueError):
        return datetime.fromisoformat(value)
    return None


def ack_wait_left(info: Mapping[str, Any], ack_wait: float) -> float:
    """Seconds until every message ``info``'s consumer handed out and has not had acked may be delivered again.

    Each was handed out at the consumer's last delivery (``delivered.last_active``) or before, so
    its ack wait is over ``ack_wait`` after that; both times are the server's (``ts`` is when it
    answered), so the clocks of this host and the server's do not matter.  A consumer whose leader
    has not delivered since it became leader does not say when: the whole ``ack_wait`` then.
    """
    delivered = info.get("delivered")
    last = _server_time(delivered.get("last_active") if isinstance(delivered, dict) else None)
    now = _server_time(info.get("ts"))
    if last is None or now is None:
        return ack_wait
    return min(ack_wait, max(0.0, ack_wait - (now - last).total_seconds()))


async def _create_consumer(js: JetStreamContext, config: ConsumerConfig) -> None:
    """Create, never update: ``action: create`` makes the server refuse an existing consumer of another shape.

    The subject names the consumer and its filter (``CONSUMER.CREATE.XZ.<name>.<filter>``), the
    only form the provisioner's permissions allow.
    """
    name = config.durable_name or ""
    req = {"stream_name": EVENTS_STREAM, "config": config.evolve(name=name).as_dict(), "action": "create"}
    await js._api_request(f"$JS.API.CONSUMER.CREATE.{EVENTS_STREAM}.{name}.{config.filter_subject}",
                          json.dumps(req).encode(), timeout=START_TIMEOUT_S)


async def await_previous_deliveries(who: str, info: Mapping[str, Any], ack_wait: float) -> None:
    """Let what a previous run fetched and never acked (it was killed) come again before anything newer.

    JetStream hands those messages out again only once their ack wait is over, and new messages
    meanwhile: a restarted ledger recorded a reply before its request's receipt, and the views, which
    fold in the ledger's order, dropped the reply; a restarted agent applied an answer given for an
    archive before the forward to it, refused it as breaking a rule and dead-lettered it (both found
    by the kill -9 campaign, issue 15).  Once the ack wait is over they come first: JetStream serves
    redeliveries before new messages.  ``info``: the consumer's, as the start's check read it; only
    what is left of the ack wait since the consumer's last delivery is waited (:func:`ack_wait_left`).
    """
    pending = int(info.get("num_ack_pending") or 0)
    if pending:
        left = ack_wait_left(info, ack_wait)
        log.warning("%s: %d messages fetched by a run that did not finish them; taking them first, in %.1f s",
                    who, pending, left)
        await asyncio.sleep(left + 0.5)


class ConsumerGuard:
    """Checks a service's own consumer at start and every ``interval`` seconds; stops it on a change.

    An agent or the ledger must not run on a consumer someone re-configured (decision 34):
    at start :meth:`check` raises :class:`ConsumerChanged`; afterwards the loop logs one line
    and calls ``on_changed`` once.  A check that cannot reach NATS is skipped until the next.
    """

    def __init__(self, js: JetStreamContext, want: ConsumerConfig, on_changed: Callable[[ConsumerChanged], None],
                 *, interval: float = CONSUMER_CHECK_S) -> None:
        self.js = js
        self.want = want
        self.name = want.durable_name or ""
        self.on_changed = on_changed
        self.interval = interval
        self.changed: ConsumerChanged | None = None
        #: The consumer's info as the server gave it at the last check (raw).
        self.info: dict[str, Any] = {}
        self._task: asyncio.Task[None] | None = None

    async def check(self, timeout: float = START_TIMEOUT_S) -> None:
        """Raise :class:`ConsumerChanged` if the consumer is missing or differs from the layout; keep its
        :attr:`info`.  ``timeout``: what the server's answer may take."""
        info = await consumer_state(self.js, self.name, timeout=timeout)
        have = None if info is None else dict(info.get("config") or {})
        self.info = info or {}
        if have is None:
            raise ConsumerChanged(f"consumer {self.name} of {EVENTS_STREAM} is missing; run `xiezhu provision`",
                                  zh=f"{EVENTS_STREAM} 的消费者 {self.name} 不存在；请运行 `xiezhu provision`",
                                  consumer=self.name)
        check_consumer(self.name, have, self.want)

    def start(self) -> None:
        """Start the periodic check (after a first :meth:`check` passed)."""
        self._task = asyncio.create_task(self._run(), name=f"guard-{self.name}")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self.interval)
            try:
                await self.check()
            except ConsumerChanged as e:
                self.changed = e
                log.error("%s", e)
                self.on_changed(e)
                return
            except Exception as e:  # NATS away: the next check tries again
                log.debug("consumer %s not checked: %s", self.name, e)
