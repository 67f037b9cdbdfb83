"""Streams, subjects and durable consumers: the JetStream layout every part agrees on.

``XZ`` holds every bureau event on ``xz.<sender>.<recipient>.<type>``; ``XZ_DLQ`` holds
rejected messages on ``xzdlq.<receiver>.<reason>``.  Each bureau agent reads its own
mail through a pre-provisioned durable consumer ``agent-<code>`` filtered on
``xz.*.<code>.>``; the 司法局 ledger reads everything through ``ledger``.  ``XZ_TRUST``
keeps every version of the root-signed trust list on ``xztrust.list``; readers take the
last one by direct get and subscribe to the subject for new ones.
"""
from __future__ import annotations

from collections.abc import Iterable

from nats.js import JetStreamContext
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy, RetentionPolicy, StorageType, StreamConfig
from nats.js.errors import NotFoundError

from schemas.errors import XiezhuError

EVENTS_STREAM = "XZ"
DLQ_STREAM = "XZ_DLQ"
EVENTS_SUBJECTS = "xz.>"
DLQ_PREFIX = "xzdlq"
TRUST_STREAM = "XZ_TRUST"
TRUST_SUBJECT = "xztrust.list"
LEDGER_CONSUMER = "ledger"
#: JetStream drops a re-published Nats-Msg-Id within this window; intake dedup covers the rest.
DUPLICATE_WINDOW_S = 24 * 3600
#: Redeliveries before a message that keeps failing is dead-lettered as ``handler-failed``.
MAX_DELIVER = 10
#: How long JetStream waits for an ack before redelivering.  Handling one message takes
#: milliseconds; an ack lost in a server restart comes back after this long.
ACK_WAIT_S = 10.0
#: How long one pull request waits.  After a server restart an outstanding pull is lost
#: and the client only notices when it expires, so this bounds that stall.
PULL_TIMEOUT_S = 1.0


def agent_consumer(code: str) -> str:
    """The durable consumer name of a bureau's agent."""
    return f"agent-{code}"


def inbox_filter(code: str) -> str:
    """Subjects addressed to ``code``."""
    return f"xz.*.{code}.>"


def dlq_subject(receiver: str, reason: str) -> str:
    """Where a receiver puts what it rejected."""
    return f"{DLQ_PREFIX}.{receiver}.{reason}"


async def ensure_streams(js: JetStreamContext, *, replicas: int | None = None) -> None:
    """Create the event, dead-letter and trust-list streams where missing, check them where not; idempotent.

    ``replicas`` is 1 on the embedded server and 3 on a 3-node cluster, so that losing
    one node loses no message and stops nothing.  ``None`` (a node's own provisioning at
    start) creates a missing stream with the server's default of 1 and accepts whatever
    an existing stream has: ``xiezhu provision --replicas N`` set it.
    """
    await _ensure_stream(js, StreamConfig(
        name=EVENTS_STREAM, subjects=[EVENTS_SUBJECTS], retention=RetentionPolicy.LIMITS,
        storage=StorageType.FILE, duplicate_window=DUPLICATE_WINDOW_S, max_msg_size=1024 * 1024,
        deny_delete=True, deny_purge=True, num_replicas=replicas,
    ))
    await _ensure_stream(js, StreamConfig(
        name=DLQ_STREAM, subjects=[f"{DLQ_PREFIX}.>"], retention=RetentionPolicy.LIMITS,
        storage=StorageType.FILE, max_msg_size=2 * 1024 * 1024, num_replicas=replicas,
    ))
    # Every version stays (the list's history is evidence too); direct get serves the last.
    await _ensure_stream(js, StreamConfig(
        name=TRUST_STREAM, subjects=[TRUST_SUBJECT], retention=RetentionPolicy.LIMITS,
        storage=StorageType.FILE, duplicate_window=DUPLICATE_WINDOW_S, max_msg_size=1024 * 1024,
        allow_direct=True, deny_delete=True, deny_purge=True, num_replicas=replicas,
    ))


class StreamLayoutError(XiezhuError):
    """A stream exists with another configuration than xiezhu's layout."""

    code = "nats.streams"


#: The stream settings xiezhu's layout fixes, compared with an existing stream's.
_COMPARED = ("subjects", "retention", "storage", "duplicate_window", "max_msg_size", "deny_delete", "deny_purge",
             "allow_direct", "num_replicas")


async def _ensure_stream(js: JetStreamContext, config: StreamConfig) -> None:
    """Create the stream if it is missing; an existing one must already have the layout's settings.

    Provisioning never updates a stream: the provisioner's NATS user may not (an update can
    add subjects or shrink limits, decision 22).  A stream that differs is the operator's
    to change, deliberately, as a NATS user of their own.
    """
    try:
        info = await js.stream_info(config.name or "")
    except NotFoundError:
        await js.add_stream(config)
        return
    for name in _COMPARED:
        want, have = getattr(config, name), getattr(info.config, name)
        if want is None or (name == "duplicate_window" and not want):  # left to the server's default
            continue
        if have != want:
            raise StreamLayoutError(
                f"stream {config.name} exists with {name} {have!r}, not {want!r}; provisioning does not change an "
                f"existing stream: change it as the NATS operator (e.g. `nats stream edit {config.name}`)",
                stream=config.name, setting=name)


def consumer_config(durable: str, filter_subject: str) -> ConsumerConfig:
    """A durable pull consumer with explicit acks and bounded redelivery."""
    return ConsumerConfig(
        durable_name=durable, filter_subject=filter_subject, ack_policy=AckPolicy.EXPLICIT,
        deliver_policy=DeliverPolicy.ALL, max_deliver=MAX_DELIVER, ack_wait=ACK_WAIT_S,
        max_ack_pending=1000,
    )


async def ensure_consumers(js: JetStreamContext, bureaus: Iterable[str]) -> None:
    """Pre-provision every agent's durable consumer and the ledger's; idempotent."""
    for code in bureaus:
        await _ensure_consumer(js, consumer_config(agent_consumer(code), inbox_filter(code)))
    await _ensure_consumer(js, consumer_config(LEDGER_CONSUMER, EVENTS_SUBJECTS))


async def _ensure_consumer(js: JetStreamContext, config: ConsumerConfig) -> None:
    try:
        await js.consumer_info(EVENTS_STREAM, config.durable_name or "")
    except NotFoundError:
        # Named as well as durable: nats-py then creates it on CONSUMER.CREATE.<stream>.<name>.<filter>,
        # a subject the provisioner's permissions pin to exactly this consumer and filter.
        await js.add_consumer(EVENTS_STREAM, config.evolve(name=config.durable_name))
