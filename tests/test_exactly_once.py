"""No loss and no double effects: relay crashes, redeliveries and a nats-server restart."""
from __future__ import annotations

import asyncio
import contextlib
from pathlib import Path
from typing import Any

import nats
import nats.js.errors
import pytest
from eventsourcing.persistence import IntegrityError

import agencies.agent as agent_module
from aggregates.clock import SimulatedClock
from aggregates.errors import NotYet, WrongOrder
from aggregates.registry import Registry
from aggregates.store import AssistanceCase
from aggregates.store.base import topic
from broker.auth import ADMIN, LEDGER, PROVISIONER
from broker.intake import Handled, read_dead_letters
from broker.relay import HDR_EXPECTED_LAST_MSG_ID, Positions, Relay, headers_for
from broker.server import EmbeddedNats
from broker.signing import decode_checked
from broker.streams import EVENTS_STREAM, sending_stream
from schemas.envelope import HDR_MSG_ID, Envelope, Signed, subject_for
from tests import conftest
from tests.test_exchange import request
from xiezhu.node import Node, provision
from xiezhu.settings import Settings


def make_node(settings: Settings, registry: Registry, clock: SimulatedClock) -> Node:
    return conftest.make_node(settings, registry, clock, agents=("shenpi", "gongan"))


async def test_a_relay_killed_after_commit_and_before_publish_publishes_on_restart(
        settings: Settings, registry: Registry, clock: SimulatedClock) -> None:
    node = make_node(settings, registry, clock)
    case = request(node)  # committed to shenpi's store while no relay runs: as if it died right after
    await node.start()
    try:
        await node.settle()
        assert node.store("gongan").assistance.case(case).state.status == "replied"
        assert node.ledger is not None and [e.type for e in node.ledger.case(case)] == [
            "assistance.requested", "assistance.received", "assistance.replied"]
        assert len(list(node.store("gongan").assistance.cases())) == 1
    finally:
        await node.stop()


async def test_a_relay_that_published_but_lost_its_position_republishes_once_and_jetstream_drops_it(
        settings: Settings, registry: Registry, clock: SimulatedClock, tmp_path: Path) -> None:
    node = make_node(settings, registry, clock)
    case = request(node)
    await provision(node.nats_url, registry.codes(), credentials=node.credentials(PROVISIONER))
    # A relay publishes everything, then "dies" before its position reaches the real file.
    nc = await nats.connect(node.nats_url, **node.credentials("shenpi"))
    lost = Relay("shenpi", node.store("shenpi"), Positions(tmp_path / "lost.db"), nc.jetstream())
    assert await lost.pump() == 1
    await nc.close()
    await node.start()
    try:
        await node.settle()
        relay = node.agents["shenpi"].relay
        assert relay is not None and relay.published >= 1 and relay.duplicates == 1
        assert node.ledger is not None and len(node.ledger) == 3
        assert len(list(node.store("gongan").assistance.cases())) == 1
        assert node.store("shenpi").assistance.case(case).state.status == "replied"
        assert node.agents["gongan"].intake is not None and node.agents["gongan"].intake.stats.applied == 1
    finally:
        await node.stop()


async def test_a_batch_is_chained_so_that_a_later_message_is_never_stored_before_a_lost_earlier_one(
        settings: Settings, registry: Registry, clock: SimulatedClock, tmp_path: Path) -> None:
    # The 10,000-exchange campaign: a connection lost mid-batch lost a receipt while the decline behind it
    # reached the server after the reconnect, and the stream (and so the ledger and the SLA view) held the
    # decline first.  Each message of a batch names its predecessor, which the sending stream enforces.
    node = make_node(settings, registry, clock)
    for _ in range(3):
        request(node)
    await provision(node.nats_url, registry.codes(), credentials=node.credentials(PROVISIONER))
    nc = await nats.connect(node.nats_url, **node.credentials("shenpi"))
    try:
        js = nc.jetstream()
        rows = node.store("shenpi").outgoing_since(0, 10)
        ids = [decode_envelope_id(s) for _, s in rows]
        assert len(ids) == 3
        # The second of the batch arrives while the first is lost: refused, nothing stored.
        _, second = rows[1]
        env = decode_checked(second.body)
        headers = headers_for(second, env.id) | {HDR_EXPECTED_LAST_MSG_ID: ids[0]}
        with pytest.raises(nats.js.errors.BadRequestError):
            await js.publish(subject_for(env), second.body, headers=headers, stream=sending_stream("shenpi"))
        relay = Relay("shenpi", node.store("shenpi"), Positions(tmp_path / "p.db"), js)
        assert await relay.pump() == 3
        reader = await nats.connect(node.nats_url, **node.credentials(LEDGER))  # who may read a sending stream
        try:
            stored = [await reader.jetstream().get_msg(sending_stream("shenpi"), seq) for seq in (1, 2, 3)]
        finally:
            await reader.close()
        assert [m.headers[HDR_MSG_ID] for m in stored if m.headers] == ids  # in the outbox's order
        assert [(m.headers or {}).get(HDR_EXPECTED_LAST_MSG_ID) for m in stored] == [None, ids[0], ids[1]]
        # Published again (a relay that lost its position): JetStream answers duplicate, links and all.
        again = Relay("shenpi", node.store("shenpi"), Positions(tmp_path / "again.db"), js)
        assert await again.pump() == 3 and again.duplicates == 3
    finally:
        await nc.close()


async def stream_messages(nc: Any, stream: str) -> int:
    return int((await conftest.jetstream(nc).stream_info(stream)).state.messages)


def decode_envelope_id(signed: Signed) -> str:
    return decode_checked(signed.body).id


async def test_a_message_delivered_twice_is_applied_once(node: Node, monkeypatch: pytest.MonkeyPatch) -> None:
    """gongan commits the request (and its answer, in the same batch), then fails before acking: JetStream
    redelivers it."""
    agent = node.agents["gongan"]
    real = agent._then
    calls = {"n": 0}

    async def crash_once(done: Handled) -> None:
        calls["n"] += 1
        if calls["n"] == 1:
            raise RuntimeError("simulated crash after commit, before ack")
        await real(done)

    monkeypatch.setattr(agent, "_then", crash_once)
    case = request(node)
    await node.settle(timeout=30)
    assert calls["n"] >= 2
    assert agent.intake is not None
    assert agent.intake.stats.applied == 0 and agent.intake.stats.duplicates == 1
    assert len(list(node.store("gongan").assistance.cases())) == 1
    assert node.store("gongan").assistance.case(case).state.events == 3  # requested, received, replied: once each
    assert node.store("shenpi").assistance.case(case).state.status == "replied"
    nc = await nats.connect(node.nats_url, **node.credentials(ADMIN))
    assert await read_dead_letters(nc.jetstream()) == []  # our own redelivery is not a dead letter
    await nc.close()


async def test_agents_and_ledger_carry_on_after_the_nats_server_is_killed_and_restarted(
        node: Node, nats_server: EmbeddedNats) -> None:
    first = request(node)
    await node.settle()
    nats_server.kill()
    await asyncio.sleep(0.3)
    nats_server.start()
    second = request(node)
    await node.settle(timeout=60)
    for case in (first, second):
        assert node.store("shenpi").assistance.case(case).state.status == "replied"
    assert node.ledger is not None and len(node.ledger) == 6
    assert node.sla is not None and [r["status"] for r in node.sla.rows()] == ["replied", "replied"]


@pytest.mark.parametrize("commit", ["batch", "fails: one by one"])
async def test_a_batch_applies_around_a_poisoned_and_a_transient_event_in_stream_order(
        settings: Settings, registry: Registry, clock: SimulatedClock, monkeypatch: pytest.MonkeyPatch,
        commit: str) -> None:
    """Four requests in one fetch (decision 53): the poisoned one is dead-lettered, the one that came "too early"
    is retried with everything after it, the others are applied once, each acked only after its commit."""
    node = make_node(settings, registry, clock)
    cases = [request(node) for _ in range(4)]
    await provision(node.nats_url, registry.codes(), credentials=node.credentials(PROVISIONER))
    nc = await nats.connect(node.nats_url, **node.credentials("shenpi"))
    relay = Relay("shenpi", node.store("shenpi"), Positions(settings.relay_path("shenpi")), nc.jetstream())
    assert await relay.pump() == 4  # all four wait in gongan's consumer before its agent starts
    await nc.close()
    # XZ sources shenpi's sending stream (decision 50): an agent started before the copies are there could
    # fetch three, and the fourth, fetched alone, would be applied before the retried third.
    admin = await nats.connect(node.nats_url, **node.credentials(ADMIN))
    try:
        for _ in range(500):
            if await stream_messages(admin, EVENTS_STREAM) == 4:
                break
            await asyncio.sleep(0.02)
        assert await stream_messages(admin, EVENTS_STREAM) == 4
    finally:
        await admin.close()
    store, real = node.store("gongan"), node.store("gongan").accept
    early = {"n": 0}

    def accept(signed: Signed, env: Envelope, **kw: Any) -> object:
        if env.case == cases[1]:
            raise WrongOrder("poisoned")
        if env.case == cases[2] and early["n"] == 0:
            early["n"] += 1
            raise NotYet("its predecessor has not arrived")
        return real(signed, env, **kw)

    monkeypatch.setattr(store, "accept", accept)
    monkeypatch.setattr(agent_module, "RETRY_DELAY_S", 0.05)
    if commit != "batch":
        def fail(*_: object) -> object:
            raise IntegrityError("another writer committed first")
        monkeypatch.setattr(type(store), "batch", contextlib.contextmanager(lambda self: (yield fail(self))))
    await node.start()
    try:
        await node.settle(timeout=30)
        agent = node.agents["gongan"]
        assert agent.pull is not None and agent.pull.batches >= 2 and agent.intake is not None
        assert (agent.intake.stats.applied, agent.intake.stats.rejected, agent.intake.stats.duplicates) == (3, 1, 0)
        arrived = [n.originator_id for n in store.notifications([topic(AssistanceCase.Arrived)])]
        assert [str(c) for c in arrived] == [cases[0], cases[2], cases[3]]  # stream order kept around the retry
        assert [node.store("shenpi").assistance.case(c).state.status for c in cases] == [
            "replied", "requested", "replied", "replied"]
        admin = await nats.connect(node.nats_url, **node.credentials(ADMIN))
        [dead] = await read_dead_letters(admin.jetstream())
        await admin.close()
        assert (dead.code, dead.rejected_by) == ("rule-violation", "gongan")
    finally:
        await node.stop()
