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


async def ensure_streams(js: JetStreamContext, *, replicas: int = 1) -> None:
    """Create (or update) the event and dead-letter streams; idempotent.

    ``replicas`` is 1 on the embedded server and 3 on a 3-node cluster, so that losing
    one node loses no message and stops nothing.
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


async def _ensure_stream(js: JetStreamContext, config: StreamConfig) -> None:
    try:
        await js.stream_info(config.name or "")
    except NotFoundError:
        await js.add_stream(config)
        return
    await js.update_stream(config)


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
        await js.add_consumer(EVENTS_STREAM, config)
