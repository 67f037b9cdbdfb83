"""The 区司法局 ledger service: consumes every event on ``xz.>`` and records it.

It trusts no bureau: each message is verified against the trust list before it is
appended; what fails goes to the dead-letter stream.  Each entry's arrival is the time the
sender's sending stream stored the message (the push ended, 附件2 第五条; decision 57), read
from that stream by the sequence ``XZ``'s copy names, a batch at a time.  Messages are fetched in batches and
appended in one transaction per batch, then acked, so a crash at any point re-delivers
and the ledger's unique event ids make the second append a no-op.

It signs a checkpoint every ``checkpoint_every`` entries, every ``checkpoint_interval``
seconds while the head moves, and at stop, and publishes each on ``xzwit.heads`` for the
bureaus to witness (decision 49); a head it could not publish goes out with the next.
"""
from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any

import nats
from nats.aio.client import Client
from nats.errors import MsgAlreadyAckdError
from nats.js import JetStreamContext

from aggregates.clock import Clock
from broker.intake import (
    Delivery,
    HandlerFailed,
    Intake,
    IntakeStats,
    Received,
    delivery_of,
    reason_for,
    with_push_times,
)
from broker.ledger.signer import RemoteSigner, SignerRefused
from broker.ledger.store import Ledger
from broker.patience import PASSING, patiently
from broker.pull import PullLoop
from broker.server import START_TIMEOUT_S, server_list
from broker.signing import KeyRing, Opens
from broker.streams import (
    ACK_WAIT_S,
    CONSUMER_CHECK_S,
    EVENTS_STREAM,
    EVENTS_SUBJECTS,
    LEDGER_CONSUMER,
    MAX_DELIVER,
    ConsumerChanged,
    ConsumerGuard,
    await_previous_deliveries,
    consumer_config,
)
from broker.threads import in_thread
from broker.witness import publish_heads
from schemas.envelope import Envelope, Signed
from schemas.errors import XiezhuError

log = logging.getLogger(__name__)

#: Seconds before a batch that failed for a passing reason is recorded again (as the agents wait).
RETRY_DELAY_S = 1.0
#: Ack waits a gap in ``XZ``'s sequences is waited out before what follows it is recorded anyway.
GAP_WAITS = 2
#: Seconds between checkpoints while entries arrive: what is not yet witnessed is at most this old.
CHECKPOINT_INTERVAL_S = 10.0


#: What the ledger appends of one event: its signed bytes, the opened envelope, ``XZ``'s sequence, its arrival.
Item = tuple[Signed, Envelope, int, datetime]


def _item(got: Received) -> Item:
    return (got.signed, got.envelope, got.delivery.stream_seq, got.arrived)


class LedgerService:
    """Pulls from the ``ledger`` consumer and appends verified events to the ledger."""

    def __init__(self, ledger: Ledger, ring: KeyRing, clock: Clock, nats_url: str, *,
                 opener: Opens | None, batch: int = 256, simulated_arrival: bool = False,
                 on_append: Callable[[], None] | None = None,
                 sign_checkpoint: Callable[[bytes], tuple[str, bytes]] | None = None, remote_signer: bool = False,
                 checkpoint_every: int = 1000,
                 checkpoint_interval: float | None = None,
                 connect_options: Mapping[str, Any] | None = None) -> None:
        """``opener``: 区司法局's X25519 keys.  The ledger refuses what it could not replay: a clear
        envelope, or one not sealed to 区司法局 (decision 23).  ``connect_options`` go to
        ``nats.connect``: the ``ledger`` user's seed and inbox (none: anonymous)."""
        self.ledger = ledger
        self.opener = opener
        self.ring = ring
        self.clock = clock
        self.nats_url = nats_url
        self.connect_options = dict(connect_options or {})
        self.batch = batch
        self.simulated_arrival = simulated_arrival
        self.on_append = on_append
        #: 区司法局's signature over a checkpoint, every ``checkpoint_every`` entries, every
        #: ``checkpoint_interval`` seconds while entries arrive, and at stop.
        self.sign_checkpoint = sign_checkpoint
        #: Checkpoints are signed by ``xiezhu checkpoint-signer`` on another host, asked over NATS (decision 49).
        self.remote_signer = remote_signer
        self._remote: RemoteSigner | None = None
        self.checkpoint_every = checkpoint_every
        self.checkpoint_interval = CHECKPOINT_INTERVAL_S if checkpoint_interval is None else checkpoint_interval
        self._since_checkpoint = 0
        #: The last position whose head is on ``xzwit.heads`` (read from the stream at start).
        self.published = 0
        self._checkpoint_lock = asyncio.Lock()
        self._timer: asyncio.Task[None] | None = None
        self.appended = 0
        self.nc: Client | None = None
        self.js: JetStreamContext | None = None
        self.stats = IntakeStats()
        self.pull: PullLoop | None = None
        #: The batch being checked, appended and acked while the next is fetched (one at a time, in order).
        self._recording: asyncio.Task[None] | None = None
        self._stopping = False
        self.guard: ConsumerGuard | None = None
        #: Seconds between checks of the ``ledger`` consumer's configuration.
        self.guard_interval = CONSUMER_CHECK_S
        #: Why the service stopped pulling on its own (its consumer was re-configured), if it did.
        self.refused: ConsumerChanged | None = None
        #: Events delivered :data:`MAX_DELIVER` times or more and not recorded yet: XZ sequence → deliveries.
        #: The consumer redelivers them without end (decision 62); ``/metrics`` shows the most.
        self.redelivered: dict[int, int] = {}
        #: The XZ sequence the next batch must begin with.  ``XZ`` holds the sending streams' copies and
        #: nothing else, and the ledger's filter takes all of it, so its sequences come without a gap; a
        #: gap is a delivery lost on its way (a fetch that failed as a node died) that JetStream hands
        #: out again only when its ack wait is over.  ``None``: not known (at start, after a refusal).
        self._next_seq: int | None = None
        #: Gaps waited out in a row (the next one past :data:`GAP_WAITS` is recorded with an error line).
        self._gap_waits = 0

    async def start(self) -> None:
        """Connect and start pulling in the background."""
        self.nc = await nats.connect(servers=server_list(self.nats_url), max_reconnect_attempts=-1,
                                    connect_timeout=START_TIMEOUT_S,
                                    **self.connect_options)
        js = self.js = self.nc.jetstream()
        # Refuse to record through a consumer someone re-configured (decision 34), now and every 30 s:
        # a narrowed filter would silently leave events out of the record.
        self.guard = ConsumerGuard(js, consumer_config(LEDGER_CONSUMER, EVENTS_SUBJECTS), self._refuse,
                                   interval=self.guard_interval)
        try:  # a check lost with a cluster node is asked again soon (decision 67)
            await patiently("ledger: checking its consumer", self.guard.check)
        except (ConsumerChanged, *PASSING):
            await self.nc.close()
            raise
        # The ledger takes every bureau's messages, whoever they are addressed to.
        self.intake = Intake("ledger", self.ring, js, opener=self.opener, addressed_only=False,
                             arrival_clock=self.clock if self.simulated_arrival else None, stats=self.stats)
        await await_previous_deliveries("ledger", self.guard.info, ACK_WAIT_S)  # in order, after a kill
        floor = (self.guard.info.get("ack_floor") or {}).get("stream_seq")
        self._next_seq = floor + 1 if isinstance(floor, int) and floor > 0 else None
        # Bound to the consumer just checked, without asking NATS again (the ledger could not create it anyway).
        self._sub = await js.pull_subscribe_bind(durable=LEDGER_CONSUMER, stream=EVENTS_STREAM)
        self.pull = PullLoop("ledger", self._sub, self._process, batch=self.batch)
        self.pull.start()
        self.guard.start()
        if self.remote_signer:
            self._remote = RemoteSigner(self.nc)
        if self.signs:
            self._timer = asyncio.create_task(self._checkpoint_timer(), name="ledger-checkpoints")

    @property
    def _task(self) -> asyncio.Task[None] | None:
        return self.pull.task if self.pull is not None else None

    def _refuse(self, e: ConsumerChanged) -> None:
        self.refused = e
        self._stopping = True
        if self.pull is not None:
            self.pull.halt()  # the loop ends after the fetch under way

    async def _process(self, msgs: list) -> None:  # type: ignore[type-arg]
        """Read a batch's push times, then hand it to be checked, appended and acked behind the batch before.

        The next fetch and its push-time reads go on meanwhile (issue 14): the batches are still checked,
        appended and acked one after the other, in the order fetched, as when each waited for the one before.
        """
        msgs = sorted(msgs, key=lambda m: m.metadata.sequence.stream)  # redeliveries may come with newer ones
        deliveries = [delivery_of(m) for m in msgs]
        for d in deliveries:
            if d.num_delivered >= MAX_DELIVER:
                self._alarm(d)
        if not self.simulated_arrival:
            pushed = await self._pushed(msgs, deliveries)
            if pushed is None:
                return
            deliveries = pushed
        await self._recorded()  # one batch in hand at a time: the one before is acked (or given up) first
        if await self._gap_before(deliveries[0].stream_seq):
            return  # left unacked: it comes again after the lost deliveries, in order
        # never back: a batch of redeliveries already recorded (their acks lost) is no gap after it
        self._next_seq = max(self._next_seq or 0, deliveries[-1].stream_seq + 1)
        self._recording = asyncio.create_task(self._check_and_record(msgs, deliveries), name="ledger-record")

    async def _gap_before(self, first: int) -> bool:
        """Whether the batch beginning at XZ sequence ``first`` must wait for deliveries lost before it.

        Recording it would put newer events before older ones (a reply before its receipt, which the
        views, folding in the ledger's order, then drop; found by the kill -9 campaign).  Its ack wait
        runs out after the lost ones', so leaving it unacked and waiting one ack wait lets JetStream
        hand out the lost ones first, then it.  A gap still there after :data:`GAP_WAITS` waits is not a
        lost delivery (messages removed from ``XZ`` by hand): recorded from there, with an error line.
        """
        want = self._next_seq
        if want is None or first <= want:
            self._gap_waits = 0
            return False
        if self._gap_waits >= GAP_WAITS:
            log.error("ledger: XZ sequences %d-%d never came; recording from %d", want, first - 1, first)
            self._gap_waits = 0
            return False
        self._gap_waits += 1
        log.warning("ledger: XZ sequences %d-%d were delivered and lost; waiting %.0f s for them before %d",
                    want, first - 1, ACK_WAIT_S, first)
        await asyncio.sleep(ACK_WAIT_S + 0.5)
        return True

    async def _recorded(self) -> None:
        """Wait until the batch being recorded is done (acked, or left to come again)."""
        task, self._recording = self._recording, None
        if task is not None:
            await task

    async def _check_and_record(self, msgs: list, deliveries: list[Delivery]) -> None:  # type: ignore[type-arg]
        try:
            good, first = await self._checked(deliveries)
            appended: list[int | None] | Exception | None = first
            while True:
                try:
                    await self._record(msgs, good, appended)
                    return
                except Exception as e:  # transient (the ledger file busy, NATS away): try the same batch again,
                    if self._stopping:  # in order; appending an entry twice is a no-op.  Stopping: it comes again.
                        return
                    log.warning("ledger: will retry a batch of %d: %s", len(msgs), e)
                    appended = None
                    for m in msgs:  # still ours while we retry
                        with contextlib.suppress(Exception):
                            await m.in_progress()
                    await asyncio.sleep(RETRY_DELAY_S)
        except Exception:  # as the pull loop says of a batch it could not handle: unacked, it comes again
            log.exception("ledger: recording a batch of %d failed; it will be redelivered", len(msgs))
            # and nothing after it is recorded before it
            self._next_seq = deliveries[0].stream_seq  # its hand-off set the next one past it: this is back

    def _alarm(self, d: Delivery) -> None:
        """An event that came :data:`MAX_DELIVER` times or more: the ledger never skips it, and says so loudly.

        An agent parks such a message as ``handler-failed``; the ledger is the record, so its
        consumer delivers it again without end, and the service logs one line when it first takes it
        so often and at every 10th delivery after, until it is recorded.
        """
        first = d.stream_seq not in self.redelivered
        self.redelivered[d.stream_seq] = d.num_delivered
        if first or d.num_delivered % MAX_DELIVER == 0:
            log.error("ledger: XZ sequence %d (%s) was delivered %d times and is not recorded yet; the ledger takes "
                      "it again without end and never skips an event (decision 62): find in this log what stops "
                      "it", d.stream_seq, d.subject, d.num_delivered)

    async def _pushed(self, msgs: list, deliveries: list[Delivery]) -> list[Delivery] | None:  # type: ignore[type-arg]
        """The deliveries with the time each push ended, the legal arrival (decision 57), read from the
        sending streams in one pipelined round; asked again, in order, while NATS does not answer.
        ``None``: the service is stopping (the batch comes again)."""
        assert self.js is not None
        while True:
            try:
                return await with_push_times(self.js, deliveries)
            except Exception as e:
                if self._stopping:
                    return None
                log.warning("ledger: the sending streams' times of a batch of %d could not be read (will retry): "
                            "%s", len(deliveries), e or type(e).__name__)
                for m in msgs:  # still ours while we retry
                    with contextlib.suppress(Exception):
                        await m.in_progress()
                await asyncio.sleep(RETRY_DELAY_S)

    def _check_and_append(self, deliveries: list[Delivery]) -> tuple[list[Received | Exception],
                                                                     list[int | None] | Exception]:
        """In a worker thread: every check, then the append of what passed (or why it failed)."""
        checked = self.intake.receive_all(deliveries)
        good = [_item(got) for got in checked if isinstance(got, Received)]
        if not good:
            return checked, []
        try:
            return checked, self.ledger.append(good)
        except Exception as e:  # the ledger file busy: _record appends again, after the pause of a retry
            return checked, e

    async def _checked(self, deliveries: list[Delivery]) -> tuple[list[Item], list[int | None] | Exception]:
        """What passes intake's checks, in order, and its positions in the ledger (or why they could not be
        appended); the rest is dead-lettered, before the batch is acked."""
        good: list[Item] = []
        # The whole batch's signatures and openings, and its append, in one worker thread: PyNaCl
        # releases the GIL in libsodium, so the agents on this event loop carry on meanwhile, and a
        # batch costs one thread hop (issue 14).  The append may come before the dead letters: the
        # batch is acked only after both, and a redelivered batch appends nothing twice.
        checked, appended = await in_thread(self._check_and_append, deliveries)
        for d, got in zip(deliveries, checked, strict=True):
            if isinstance(got, Exception):
                e = got
                if reason_for(e) is None:  # a check that broke on hostile bytes must not stop the record
                    log.error("ledger: checking %s failed", d.subject, exc_info=e)
                    e = HandlerFailed(f"the ledger could not check it: {e}")
                await self.intake.refuse(d, e, flush=False)
                continue
            good.append(_item(got))
        await self.intake.flush()  # the dead-letter summaries, before the batch is acked (decision 50)
        return good, appended

    async def _record(self, msgs: list, good: list[Item],  # type: ignore[type-arg]
                      appended: list[int | None] | Exception | None = None) -> None:
        """Append what passed in one transaction (unless ``appended`` says where it went), sign a checkpoint
        when one is due, then ack the batch."""
        if isinstance(appended, Exception):
            raise appended
        if good:
            positions = appended if appended is not None else await in_thread(self.ledger.append, good)
            added = sum(1 for p in positions if p is not None)
            if log.isEnabledFor(logging.INFO):
                for (_, env, _, _), p in zip(good, positions, strict=True):
                    log.info("recorded %s from %s at %s", env.type, env.sender, p if p is not None else "(known)",
                             extra={"bureau": env.sender, "number": env.number, "case": env.case,
                                    "event_id": env.id, "event_type": env.type})
            self.appended += added
            self._since_checkpoint += added
            if self.signs and self._since_checkpoint >= self.checkpoint_every:
                await self._checkpoint()
        for m in msgs:
            with contextlib.suppress(MsgAlreadyAckdError):  # acked before a retry
                await m.ack()
            if self.redelivered.pop(m.metadata.sequence.stream, None) is not None:
                log.warning("ledger: XZ sequence %d is done after all (recorded, or dead-lettered with its reason)",
                            m.metadata.sequence.stream)
        if good and self.on_append:
            self.on_append()

    @property
    def signs(self) -> bool:
        """Whether this service has checkpoints signed (with the key here, or by the signer elsewhere)."""
        return self.sign_checkpoint is not None or self.remote_signer

    async def _checkpoint_timer(self) -> None:
        loop = asyncio.get_running_loop()
        last = loop.time()
        while True:  # in short steps, so that a changed interval applies at once
            await asyncio.sleep(min(self.checkpoint_interval, 1.0))
            if loop.time() - last < self.checkpoint_interval:
                continue
            last = loop.time()
            if self._since_checkpoint or self.published < self.ledger.head[0]:
                await self._checkpoint()

    async def checkpoint_now(self) -> None:
        """Sign the head now (if it has no checkpoint yet) and publish what is not published."""
        if self.signs:
            await self._checkpoint()

    async def _checkpoint(self) -> None:
        """Sign the head (where it has none yet) and publish every head not yet on ``xzwit.heads``."""
        async with self._checkpoint_lock:
            self._since_checkpoint = 0
            try:
                if self._remote is not None:
                    await self._remote.checkpoint(self.ledger)
                elif self.sign_checkpoint is not None:
                    await in_thread(self.ledger.checkpoint, self.sign_checkpoint, self.clock.now())
            except SignerRefused as e:  # the signer is away, or says the ledger does not extend what it signed
                log.error("no checkpoint signed at the ledger head: %s", e)
            except XiezhuError as e:  # 区司法局's key is revoked and not yet replaced: the next checkpoint covers this
                log.warning("no checkpoint signed at the ledger head: %s", e)
            if self.nc is None:
                return
            try:
                self.published = await publish_heads(self.nc.jetstream(), self.ledger, self.published)
            except Exception as e:  # NATS away: the next checkpoint publishes what is left
                log.warning("checkpoint heads not published yet: %s", e)

    async def stop(self) -> None:
        """Finish the current batch and disconnect."""
        self._stopping = True
        if self.guard is not None:
            await self.guard.stop()
        if self._timer is not None:
            self._timer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._timer
        if self.pull is not None:
            await self.pull.stop()  # a fetch under way is cut short; a batch being recorded is finished
        await self._recorded()
        if self.signs:
            await self._checkpoint()
        if self.nc:
            await self.nc.close()  # everything fetched was acked: nothing left to drain
