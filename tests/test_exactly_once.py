"""No loss and no double effects: relay crashes, redeliveries and a nats-server restart."""
from __future__ import annotations

import asyncio
from pathlib import Path

import nats
import pytest

from aggregates.clock import SimulatedClock
from aggregates.registry import Registry
from broker.auth import ADMIN, PROVISIONER
from broker.intake import read_dead_letters
from broker.relay import Positions, Relay
from broker.server import EmbeddedNats
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


async def test_a_message_delivered_twice_is_applied_once(node: Node, monkeypatch: pytest.MonkeyPatch) -> None:
    """gongan commits the request, then fails before acking: JetStream redelivers it."""
    agent = node.agents["gongan"]
    real = agent._try_answer
    calls = {"n": 0}

    def crash_once(case_id: str) -> bool:
        calls["n"] += 1
        if calls["n"] == 1:
            raise RuntimeError("simulated crash after commit, before ack")
        return real(case_id)

    monkeypatch.setattr(agent, "_try_answer", crash_once)
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
