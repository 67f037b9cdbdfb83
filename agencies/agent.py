"""The agent runtime: one receiver per bureau.

An agent consumes what is addressed to its bureau through the bureau's durable consumer,
verifies and applies it exactly once to the bureau's own store, answers requests its
verifiers can decide, leaves the rest in the operator inbox, and relays what the store
emits.  A poisoned message is dead-lettered with a reason; it never stops the agent.

It fetches up to :data:`FETCH_BATCH` messages at once (:class:`broker.pull.PullLoop`) and
applies a batch in one store transaction, the intake markers and the automatic answers with
it (group commit); it acks each message after the commit (decision 53).  Between the two,
:class:`broker.lanes.Lanes` holds a flooding sender's messages in a slow lane, so that the
other senders' mail is not held back behind them (decision 58).
"""
from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from typing import Any

import nats
from nats.aio.client import Client
from nats.aio.msg import Msg

from agencies.verifiers import Verifier, answer_all
from aggregates.assistance import CaseState
from aggregates.clock import Clock
from aggregates.commitment import pending_items
from aggregates.errors import RuleError
from aggregates.store import BureauStore, ConcurrentChange, UnknownCase
from broker.auth import Identity, connect_options
from broker.intake import Handled, HandlerFailed, Intake, Received, delivery_of, reason_for
from broker.lanes import Lanes, Trace
from broker.patience import PASSING, patiently
from broker.pull import PullLoop
from broker.relay import Positions, Relay
from broker.server import START_TIMEOUT_S, server_list
from broker.signing import KeyRing, Opens
from broker.streams import (
    ACK_WAIT_S,
    CONSUMER_CHECK_S,
    EVENTS_STREAM,
    MAX_DELIVER,
    ConsumerChanged,
    ConsumerGuard,
    agent_consumer,
    await_previous_deliveries,
    consumer_config,
    inbox_filter,
)
from broker.threads import in_thread
from broker.witness import Witness
from schemas.assistance import AssistanceReplied, AssistanceRequested
from schemas.privacy import mask_text

log = logging.getLogger(__name__)

#: Seconds before a message that failed for a passing reason is delivered again.
RETRY_DELAY_S = 1.0
#: At most this many messages a fetch, applied in one store transaction (decision 53).
FETCH_BATCH = 64


class BureauAgent:
    """A bureau's agent: intake, automatic verification and the outbox relay."""

    def __init__(self, code: str, store: BureauStore, ring: KeyRing, positions: Positions,
                 verifiers: Sequence[Verifier], clock: Clock, nats_url: str,
                 *, opener: Opens | None, simulated_arrival: bool = False,
                 batch_size: int | None = None,
                 identity: Identity | None = None, witness: Witness | None = None) -> None:
        """``opener``: the bureau's X25519 keys, which open what is sealed to it (``None`` accepts only
        clear envelopes, for tests of the checks before opening); ``identity``: the bureau's NATS
        user (None: connect anonymously, to a server without users); ``witness``: keeps and
        countersigns 区司法局's checkpoint heads (decision 49)."""
        self.witness = witness
        self.code = code
        self.opener = opener
        self.store = store
        self.ring = ring
        self.verifiers = list(verifiers)
        self.clock = clock
        self.positions = positions
        self.simulated_arrival = simulated_arrival
        self.auto_answered = 0
        self.nats_url = nats_url
        self.batch_size = batch_size or FETCH_BATCH
        #: ``nats.connect`` options: the bureau's seed and inbox (none: anonymous).
        self.connect_options: dict[str, Any] = connect_options(identity) if identity else {}
        self.nc: Client | None = None
        self.pull: PullLoop | None = None
        #: The fast and the slow lane between the pull loop and :meth:`_on_batch` (decision 58).
        self.lanes: Lanes | None = None
        #: Given before :meth:`start`: ``False`` hands every batch on whole, in stream order (the bench's baseline).
        self.lanes_enabled = True
        #: Given before :meth:`start`: the lanes record each handled batch here (see ``Lanes.trace``).
        self.lane_trace: Trace | None = None
        self.intake: Intake | None = None
        self.relay: Relay | None = None
        self._relay_task: asyncio.Task[None] | None = None
        self.guard: ConsumerGuard | None = None
        #: Seconds between checks of the agent's consumer's configuration.
        self.guard_interval = CONSUMER_CHECK_S
        #: Why the agent stopped consuming on its own (its consumer was re-configured), if it did.
        self.refused: ConsumerChanged | None = None

    async def start(self) -> None:
        """Connect, start the relay, answer what the inbox can answer, then consume."""
        self.nc = await nats.connect(servers=server_list(self.nats_url), max_reconnect_attempts=-1,
                                    connect_timeout=START_TIMEOUT_S,
                                     **self.connect_options)
        js = self.nc.jetstream()
        want = consumer_config(agent_consumer(self.code), inbox_filter(self.code))
        # Refuse to run on a consumer someone re-configured (decision 34), now and every 30 s.
        self.guard = ConsumerGuard(js, want, self._refuse, interval=self.guard_interval)
        try:  # a check lost with a cluster node is asked again soon (decision 67)
            await patiently(f"{self.code}: checking its consumer", self.guard.check)
        except (ConsumerChanged, *PASSING):
            await self.nc.close()
            raise
        self.intake = Intake(self.code, self.ring, js, opener=self.opener,
                             arrival_clock=self.clock if self.simulated_arrival else None)
        self.relay = Relay(self.code, self.store, self.positions, js)
        self._relay_task = asyncio.create_task(self.relay.run(), name=f"relay-{self.code}")
        await in_thread(self._sweep_inbox)
        await in_thread(self._sweep_conclusions)
        self.relay.wake()
        # What a killed run of this agent held comes again first: a case's events in their order (decision 67).
        await await_previous_deliveries(self.code, self.guard.info, ACK_WAIT_S)
        # Bound to the consumer just checked, without asking NATS again (the agent could not create it anyway).
        sub = await js.pull_subscribe_bind(durable=agent_consumer(self.code), stream=EVENTS_STREAM)
        intake = self.intake
        self.lanes = Lanes(self.code, self._on_batch, batch=self.batch_size,
                           over_budget=lambda sender: intake.dead_letters.over_budget(sender))
        self.lanes.trace = self.lane_trace
        self.lanes.enabled = self.lanes_enabled
        self.lanes.start()
        self.pull = PullLoop(self.code, sub, self.lanes.take, batch=self.lanes.fetch_size, idle=self.lanes.idle)
        self.pull.start()
        self.guard.start()
        if self.witness is not None:
            await self.witness.start(self.nc)

    def _refuse(self, e: ConsumerChanged) -> None:
        self.refused = e
        if self.lanes is not None:
            self.lanes.halt()  # no new slow chunk; what is held is not acked
        if self.pull is not None:
            self.pull.halt()  # the loop ends after the fetch under way

    async def stop(self) -> None:
        """Stop consuming, flush the relay once more, disconnect."""
        if self.lanes is not None:
            self.lanes.halt()  # no new slow chunk; a pull loop waiting for room in the slow lane goes on to stop
        if self.guard is not None:
            await self.guard.stop()
        if self.pull is not None:
            await self.pull.stop()
        if self.lanes is not None:
            await self.lanes.stop()  # what it held is nak'd: it comes again at once
        if self.witness is not None:
            await self.witness.stop()
        if self.relay and self._relay_task:
            self.relay.stop()
            await self._relay_task
        if self.nc is not None:
            await self.nc.close()

    async def _on_batch(self, raws: list[Msg]) -> None:
        """Apply a fetched batch in one transaction, then ack each message; nak from the first transient one on."""
        assert self.intake is not None
        fresh: list[Msg] = []
        for raw in raws:
            d = delivery_of(raw)
            if d.num_delivered >= MAX_DELIVER:
                # It failed on every try: park it for an operator rather than lose or loop it.
                await self.intake.refuse(d, HandlerFailed(f"failed {d.num_delivered} times; parked"))
                await raw.ack()
            else:
                fresh.append(raw)
        if not fresh:
            return
        handled = await self.intake.handle_batch([delivery_of(r) for r in fresh], self._apply_batch,
                                                 self._accept, self._then)
        for i, (raw, done) in enumerate(zip(fresh, handled, strict=True)):
            if done is None:
                log.warning("%s: will retry %s and the %d after it", self.code, raw.subject,
                            sum(1 for later in handled[i + 1:] if later is None),
                            extra={"bureau": self.code, "event_id": (raw.headers or {}).get("Nats-Msg-Id", "")})
                break
        for raw, done in zip(fresh, handled, strict=True):
            if done is None:
                await raw.nak(delay=RETRY_DELAY_S)
            else:
                await raw.ack()

    def _apply_batch(self, batch: list[Received]) -> list[object]:
        """Apply a batch to the store in one transaction, with the answers its requests can be given.

        Each event is applied as on its own (a rule it breaks leaves nothing of it staged),
        up to the first transient error; then everything staged commits at once.
        """
        out: list[object] = []
        answered = 0
        with self.store.batch():
            for got in batch:
                try:
                    state: object = self.store.accept(got.signed, got.envelope, stream_seq=got.delivery.stream_seq,
                                                      arrived_at=got.arrived)
                except Exception as e:
                    out.append(e)
                    if reason_for(e) is None:
                        break  # transient: it and what follows come again, in order
                    continue
                if isinstance(got.envelope.payload, AssistanceRequested) and isinstance(state, CaseState):
                    state = self._answer_staged(state)
                    answered += state.status != "received"
                out.append(state)
        self.auto_answered += answered  # committed
        return out

    def _answer_staged(self, state: CaseState) -> CaseState:
        """The automatic answer, staged in the batch; on failure the request waits for ``_then`` to try again."""
        try:
            return self._try_answer(state.case) or state
        except Exception as e:  # nothing of the answer was staged; the arrival stays
            log.info("%s: no automatic answer to %s in the batch: %s", self.code, state.number, mask_text(str(e)))
        return state

    async def _accept(self, got: Received) -> object:
        """Apply once to the bureau's store; intake turns what it raises into a dead letter or a retry."""
        return await in_thread(self.store.accept, got.signed, got.envelope,
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
                await in_thread(self._answer, env.case)
                self._wake_relay()
            elif isinstance(env.payload, AssistanceReplied):
                # Applied before, maybe without concluding our commitment case (a crash in between).
                await in_thread(self._conclude_for, env.case)
                self._wake_relay()
            return
        if not isinstance(state, CaseState):  # a notice or a dispute event: kept as it came
            return
        if isinstance(env.payload, AssistanceRequested):
            if state.status == "received":  # not answered in its batch (or applied on its own)
                await in_thread(self._answer, state.case)
        elif isinstance(env.payload, AssistanceReplied) and state.request.commitment_case:
            # The reply verified items of our commitment case: close it, or record the false commitment.
            await in_thread(self._conclude, state.request.commitment_case)
        self._wake_relay()

    def _conclude_for(self, case_id: str) -> None:
        try:
            st = self.store.assistance.case(case_id).state
        except UnknownCase:
            return
        if st.requester == self.code and st.request.commitment_case:
            self._conclude(st.request.commitment_case)

    def _sweep_conclusions(self) -> int:
        """Conclude the commitment cases whose verification is complete but not concluded.

        The conclusion is its own transaction after the reply's: an agent killed in between left
        the case with every item verified and no finding, and the reply is not delivered again
        once acked (found by the kill -9 campaign, issue 15).
        """
        done = 0
        for st in list(self.store.commitments.cases()):
            if st.status in ("signed", "approved") and st.plan and not pending_items(st):
                self._conclude(st.case)
                done += 1
        return done

    def _conclude(self, commitment_case: str) -> None:
        try:
            self.store.commitments.conclude(commitment_case)
        except (RuleError, ConcurrentChange) as e:  # the case moved on, or kept changing; a clerk will see it
            log.info("%s: commitment case %s not concluded: %s", self.code, commitment_case, e)

    def _wake_relay(self) -> None:
        if self.relay is not None:
            self.relay.wake()

    def _try_answer(self, case_id: str) -> CaseState | None:
        """Answer a pending request if every item has a verifier that can decide it; the case as answered."""
        try:
            st = self.store.assistance.case(case_id).state
        except UnknownCase:
            return None  # a known event id under a case we never had: nothing to answer
        if st.assistor != self.code or st.status != "received":
            return None
        answer = answer_all(self.verifiers, st.request.applicant, st.request.items)
        if answer is None:
            return None
        results, used = answer
        return self.store.assistance.reply(case_id, results, answered_by="auto:" + "+".join(used))

    def _answer(self, case_id: str) -> bool:
        """:meth:`_try_answer` on its own transaction, counted."""
        answered = self._try_answer(case_id) is not None
        self.auto_answered += answered
        return answered

    def _sweep_inbox(self) -> int:
        # A crash between intake and the automatic answer leaves a request in the inbox.
        return sum(self._answer(st.case) for st in self.store.assistance.inbox()) if self.verifiers else 0

