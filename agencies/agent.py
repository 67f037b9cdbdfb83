"""The agent runtime: one FastStream NATS app per bureau.

An agent consumes what is addressed to its bureau through the bureau's durable consumer,
verifies and applies it exactly once to the bureau's own store, answers requests its
verifiers can decide, leaves the rest in the operator inbox, and relays what the store
emits.  A poisoned message is dead-lettered with a reason; it never stops the agent.
"""
from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from typing import Any

from faststream import AckPolicy
from faststream.nats import JStream, NatsBroker, NatsMessage, PullSub
from nats.aio.msg import Msg

from agencies.verifiers import Verifier, answer_all
from aggregates.assistance import CaseState
from aggregates.clock import Clock
from aggregates.errors import RuleError
from aggregates.store import BureauStore, ConcurrentChange, UnknownCase
from broker.auth import Identity, broker_options
from broker.intake import Handled, HandlerFailed, Intake, Received, delivery_of
from broker.relay import Positions, Relay
from broker.server import server_list
from broker.signing import KeyRing, Opens
from broker.streams import (
    CONSUMER_CHECK_S,
    EVENTS_STREAM,
    MAX_DELIVER,
    PULL_TIMEOUT_S,
    ConsumerChanged,
    ConsumerGuard,
    agent_consumer,
    consumer_config,
    inbox_filter,
)
from schemas.assistance import AssistanceReplied, AssistanceRequested
from schemas.privacy import mask_text

log = logging.getLogger(__name__)

#: Seconds before a message that failed for a passing reason is delivered again.
RETRY_DELAY_S = 1.0
#: At most this many messages a fetch (decision 6: more costs latency through FastStream's pull).
FETCH_BATCH = 1


async def _raw_body(msg: Any) -> Any:
    """A FastStream decoder that leaves bodies as the bytes that came (a batch: a list of them)."""
    return msg.body


class BureauAgent:
    """A bureau's agent: intake, automatic verification and the outbox relay."""

    def __init__(self, code: str, store: BureauStore, ring: KeyRing, positions: Positions,
                 verifiers: Sequence[Verifier], clock: Clock, nats_url: str,
                 *, opener: Opens | None, simulated_arrival: bool = False,
                 batch_size: int | None = None,
                 identity: Identity | None = None) -> None:
        """``opener``: the bureau's X25519 keys, which open what is sealed to it (``None`` accepts only
        clear envelopes, for tests of the checks before opening); ``identity``: the bureau's NATS
        user (None: connect anonymously, to a server without users)."""
        self.code = code
        self.opener = opener
        self.store = store
        self.ring = ring
        self.verifiers = list(verifiers)
        self.clock = clock
        self.positions = positions
        self.simulated_arrival = simulated_arrival
        self.auto_answered = 0
        self.broker = NatsBroker(server_list(nats_url), logger=None, max_reconnect_attempts=-1,
                                 **(broker_options(identity) if identity else {}))
        # FastStream's pull subscriber ignores the connection's inbox prefix; the server allows only ours.
        inbox: dict[str, Any] = {"inbox_prefix": identity.subscriber_inbox_prefix} if identity else {}
        self.broker.subscriber(
            inbox_filter(code),
            stream=JStream(EVENTS_STREAM, declare=False),
            durable=agent_consumer(code),
            config=consumer_config(agent_consumer(code), inbox_filter(code)),
            # A batch is handled in order by one task: FastStream would run the messages of
            # a non-batch pull concurrently, and the events of one case must apply in order.
            # The default batch of one keeps latency low: through FastStream a fetch of N
            # can sit out its whole timeout before returning what came (decision 6).
            pull_sub=PullSub(batch_size=batch_size or FETCH_BATCH, timeout=PULL_TIMEOUT_S, batch=True),
            # Acks are ours: each message is acked once applied or dead-lettered; a
            # transient failure naks it and the rest of the batch, to come back in order.
            ack_policy=AckPolicy.MANUAL,
            # The body is checked by our intake, byte for byte: FastStream must not parse it
            # (its JSON decoding fails on some hostile bodies before our handler could reject them).
            decoder=_raw_body,
            **inbox,
        )(self._on_batch)
        self.intake: Intake | None = None
        self.relay: Relay | None = None
        self._relay_task: asyncio.Task[None] | None = None
        self.guard: ConsumerGuard | None = None
        #: Seconds between checks of the agent's consumer's configuration.
        self.guard_interval = CONSUMER_CHECK_S
        #: Why the agent stopped consuming on its own (its consumer was re-configured), if it did.
        self.refused: ConsumerChanged | None = None
        self._halt_task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        """Connect, start the relay, answer what the inbox can answer, then consume."""
        await self.broker.connect()
        js = self.broker.connection.jetstream()
        # Refuse to run on a consumer someone re-configured (decision 34), now and every 30 s.
        self.guard = ConsumerGuard(js, consumer_config(agent_consumer(self.code), inbox_filter(self.code)),
                                   self._refuse, interval=self.guard_interval)
        try:
            await self.guard.check()
        except ConsumerChanged:
            await self.broker.stop()
            raise
        self.intake = Intake(self.code, self.ring, js, opener=self.opener,
                             arrival_clock=self.clock if self.simulated_arrival else None)
        self.relay = Relay(self.code, self.store, self.positions, js)
        self._relay_task = asyncio.create_task(self.relay.run(), name=f"relay-{self.code}")
        await asyncio.to_thread(self._sweep_inbox)
        self.relay.wake()
        await self.broker.start()
        self.guard.start()

    def _refuse(self, e: ConsumerChanged) -> None:
        self.refused = e
        self._halt_task = asyncio.create_task(self.broker.stop(), name=f"halt-{self.code}")

    async def stop(self) -> None:
        """Stop consuming, flush the relay once more, disconnect."""
        if self.guard is not None:
            await self.guard.stop()
        if self._halt_task is not None:
            await self._halt_task
        await self.broker.stop()
        if self.relay and self._relay_task:
            self.relay.stop()
            await self._relay_task

    async def _on_batch(self, msg: NatsMessage) -> None:
        raws: list[Msg] = list(msg.raw_message)  # type: ignore[call-overload]  # a batch message holds a list
        for i, raw in enumerate(raws):
            try:
                await self._on_message(raw)
            except Exception as e:  # transient: the store is busy, NATS is away, an event came early
                log.warning("%s: will retry %s: %s", self.code, raw.subject, mask_text(str(e)),
                            extra={"bureau": self.code, "event_id": (raw.headers or {}).get("Nats-Msg-Id", "")})
                for later in raws[i:]:
                    await later.nak(delay=RETRY_DELAY_S)
                return
            await raw.ack()

    async def _on_message(self, raw: Msg) -> None:
        d = delivery_of(raw)
        assert self.intake is not None
        if d.num_delivered >= MAX_DELIVER:
            # It failed on every try: park it for an operator rather than lose or loop it.
            await self.intake.refuse(d, HandlerFailed(f"failed {d.num_delivered} times; parked"))
            return
        await self.intake.handle(d, self._accept, self._then)

    async def _accept(self, got: Received) -> object:
        """Apply once to the bureau's store; intake turns what it raises into a dead letter or a retry."""
        return await asyncio.to_thread(self.store.accept, got.signed, got.envelope,
                                       stream_seq=got.delivery.stream_seq, arrived_at=got.arrived)

    async def _then(self, done: Handled) -> None:
        """What an applied or duplicate event asks of the agent: an automatic answer, a conclusion, the relay."""
        assert done.received is not None
        env, state = done.received.envelope, done.result
        log.info("%s %s from %s", done.status, env.type, env.sender,
                 extra={"bureau": self.code, "number": env.number, "case": env.case, "event_id": env.id,
                        "event_type": env.type})
        if done.status == "duplicate":
            if isinstance(env.payload, AssistanceRequested):
                # Applied before, maybe without its answer (a crash in between): answer now.
                await asyncio.to_thread(self._try_answer, env.case)
                self._wake_relay()
            return
        if not isinstance(state, CaseState):  # a notice or a dispute event: kept as it came
            return
        if isinstance(env.payload, AssistanceRequested):
            await asyncio.to_thread(self._try_answer, state.case)
        elif isinstance(env.payload, AssistanceReplied) and state.request.commitment_case:
            # The reply verified items of our commitment case: close it, or record the false commitment.
            await asyncio.to_thread(self._conclude, state.request.commitment_case)
        self._wake_relay()

    def _conclude(self, commitment_case: str) -> None:
        try:
            self.store.commitments.conclude(commitment_case)
        except (RuleError, ConcurrentChange) as e:  # the case moved on, or kept changing; a clerk will see it
            log.info("%s: commitment case %s not concluded: %s", self.code, commitment_case, e)

    def _wake_relay(self) -> None:
        if self.relay is not None:
            self.relay.wake()

    def _try_answer(self, case_id: str) -> bool:
        """Answer a pending request if every item has a verifier that can decide it."""
        try:
            st = self.store.assistance.case(case_id).state
        except UnknownCase:
            return False  # a known event id under a case we never had: nothing to answer
        if st.assistor != self.code or st.status != "received":
            return False
        answer = answer_all(self.verifiers, st.request.applicant, st.request.items)
        if answer is None:
            return False
        results, used = answer
        self.store.assistance.reply(case_id, results, answered_by="auto:" + "+".join(used))
        self.auto_answered += 1
        return True

    def _sweep_inbox(self) -> int:
        # A crash between intake and the automatic answer leaves a request in the inbox.
        return sum(self._try_answer(st.case) for st in self.store.assistance.inbox()) if self.verifiers else 0

