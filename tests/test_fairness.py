"""One bureau's flood does not bury another's request (decisions 50 and 57), on a real node.

ziran floods gongan with messages that fail the signature check.  gongan's agent and the
ledger reject each (nothing changes) but write at most their budget of full dead letters per
sender; the rest are summarised, a write per fetched batch, each naming the XZ sequences it
stands for.  A dead letter costs the server an fsync, so it was the flood's dead letters, one
each, that held another bureau's request (bench/fairness.py measures it).  Past its budget,
ziran's messages wait in gongan's slow lane, and shenpi's request behind them in the stream
is handled first; per sender and per case, nothing is reordered, lost or doubled.
"""
from __future__ import annotations

import asyncio
import json
import random
from pathlib import Path

import nats
import pytest
from nats.aio.msg import Msg

from broker.auth import ADMIN
from broker.intake import DLQ_BURST, HDR_SUMMARY_COUNT, HDR_SUMMARY_SEQS, read_dead_letters
from broker.lanes import HELD_OVERHEAD_BYTES, Lanes, Trace
from broker.pull import PullLoop
from broker.server import EmbeddedNats
from broker.signing import b64
from broker.streams import consumer_config, sending_stream
from schemas.envelope import HDR_KEY, HDR_MSG_ID, HDR_SIG
from tests.conftest import eventually, jetstream
from tests.test_exchange import request, snapshot
from xiezhu.node import Node

FLOOD = 250


async def flood(node: Node, n: int, rng: random.Random, *, prefix: str = "flood") -> list[int]:
    """ziran publishes ``n`` messages to gongan whose signature fails; their sequences in ziran's stream."""
    kid = node.keys.signer("ziran").kid
    nc = await nats.connect(node.nats_url, **node.credentials("ziran"))
    js = nc.jetstream()
    acks = [await js.publish_async("xz.ziran.gongan.assistance.requested", rng.randbytes(800),
                                   stream=sending_stream("ziran"),
                                   headers={HDR_MSG_ID: f"{prefix}-{i}", HDR_KEY: kid, HDR_SIG: b64(rng.randbytes(64))})
            for i in range(n)]
    seqs = sorted([(await a).seq for a in acks])  # in ziran's stream; XZ numbers them anew
    await nc.close()
    return seqs


def _seqs(text: str) -> list[int]:
    out: list[int] = []
    for part in text.split(","):
        a, _, b = part.partition("-")
        out.extend(range(int(a), int(b or a) + 1))
    return out


async def test_a_flood_costs_a_bounded_number_of_dead_letters_and_loses_none(node: Node) -> None:
    request(node)
    await node.settle()
    s0 = snapshot(node)
    request(node)
    await node.settle()
    s1 = snapshot(node)
    flood_seqs = await flood(node, FLOOD, random.Random(7))
    assert len(flood_seqs) == FLOOD
    case = request(node)  # shenpi's legitimate request, queued behind the flood
    await node.settle(timeout=60)
    assert node.store("shenpi").assistance.case(case).state.status == "replied"

    admin = await nats.connect(node.nats_url, **node.credentials(ADMIN))
    letters = await read_dead_letters(admin.jetstream(), limit=10_000)
    await admin.close()
    for receiver in ("gongan", "ledger"):
        mine = [d for d in letters if d.rejected_by == receiver and d.original_subject.startswith("xz.ziran.")]
        full = [d for d in mine if HDR_SUMMARY_COUNT not in d.headers]
        summaries = [d for d in mine if HDR_SUMMARY_COUNT in d.headers]
        counted = sum(int(d.headers[HDR_SUMMARY_COUNT]) for d in summaries)
        # Every rejection is there, in full or counted, each once; the writes are bounded by the budget.
        assert len(full) + counted == FLOOD, (receiver, len(full), counted)
        assert DLQ_BURST <= len(full) < DLQ_BURST + 30, (receiver, len(full))  # + 1/s refill meanwhile
        assert 0 < len(summaries) < FLOOD / 10, (receiver, len(summaries))
        listed = [s for d in summaries for s in _seqs(d.headers[HDR_SUMMARY_SEQS])]
        assert len(listed) == len(set(listed)) == counted
        assert {d.code for d in mine} == {"bad-signature"}
        assert all("more messages from ziran rejected as bad-signature" in d.reason for d in summaries)
    # Nothing of the flood was applied anywhere: the second exchange changed what the first did.
    s2 = snapshot(node)
    assert {k: s2[k] - s1[k] for k in ("shenpi", "gongan", "ledger")} == {
        k: s1[k] - s0[k] for k in ("shenpi", "gongan", "ledger")}
    assert s2["ziran"] == s1["ziran"]
    assert node.agents["gongan"].intake is not None
    assert node.agents["gongan"].intake.stats.rejected >= FLOOD


BACKLOG = 1000


async def _pending(node: Node, consumer: str, want: int) -> None:
    admin = await nats.connect(node.nats_url, **node.credentials(ADMIN))
    js = jetstream(admin)
    try:
        for _ in range(1500):
            if (await js.consumer_info("XZ", consumer)).num_pending >= want:
                return
            await asyncio.sleep(0.02)
        raise AssertionError(f"{consumer} never had {want} messages pending")
    finally:
        await admin.close()


def _handled(trace: Trace, sender: str | None = None) -> list[int]:
    return [seq for _lane, batch in trace for seq, who in batch if sender is None or who == sender]


async def test_a_request_behind_a_flood_is_handled_before_it_and_a_restart_mid_flood_loses_and_doubles_nothing(
        node: Node) -> None:
    await node.agents["gongan"].stop()  # gongan's mail piles up: ziran's flood, then shenpi's requests
    await flood(node, BACKLOG, random.Random(11))
    await _pending(node, "agent-gongan", BACKLOG)  # all of it in XZ before the requests
    cases = [request(node) for _ in range(3)]
    await _pending(node, "agent-gongan", BACKLOG + 3)

    first = node.agent("gongan")
    first.lane_trace = trace = []
    await first.start()
    node.agents["gongan"] = first
    await eventually(lambda: any(who == "shenpi" for _lane, batch in trace for _seq, who in batch), 60)
    held = first.lanes.held if first.lanes is not None else 0
    await first.stop()  # mid-flood: what the slow lane holds is nak'd

    # shenpi's requests went by the fast lane, ahead of flood messages that were before them in XZ.
    at = next(i for i, (_lane, batch) in enumerate(trace) if any(who == "shenpi" for _seq, who in batch))
    lane, batch = trace[at]
    assert lane == "fast" and {who for _seq, who in batch} == {"shenpi"}
    first_request = min(seq for seq, _who in batch)
    assert len(_handled(trace[:at], "ziran")) < BACKLOG  # the flood was not through when the requests were
    assert {lane for lane, _batch in trace[:at]} <= {"slow"}  # a full batch of ziran's went slow at once
    # One sender's messages never overtake each other.
    ziran = _handled(trace, "ziran")
    assert ziran == sorted(ziran)
    assert held > 0

    second = node.agent("gongan")
    second.lane_trace = trace2 = []
    await second.start()
    node.agents["gongan"] = second
    await node.settle(timeout=90)

    # Nothing lost, nothing doubled: every flood message handled once by one of the two agents,
    # each rejection counted once in gongan's dead letters, each request applied and answered once.
    both = _handled(trace, "ziran") + _handled(trace2, "ziran")
    assert len(both) == len(set(both)) == BACKLOG
    assert max(both) < first_request  # all of the flood was ahead of the requests in XZ
    assert first.intake is not None and second.intake is not None
    assert first.intake.stats.rejected + second.intake.stats.rejected == BACKLOG
    assert first.intake.stats.applied + second.intake.stats.applied == 3
    admin = await nats.connect(node.nats_url, **node.credentials(ADMIN))
    letters = await read_dead_letters(admin.jetstream(), limit=10_000)
    await admin.close()
    mine = [d for d in letters if d.rejected_by == "gongan"]
    assert sum(int(d.headers.get(HDR_SUMMARY_COUNT, "1")) for d in mine) == BACKLOG
    for case in cases:
        assert node.store("shenpi").assistance.case(case).state.status == "replied"
        assert node.store("gongan").assistance.case(case).state.status == "replied"


def _body(case: str | None) -> bytes:
    return b"\xff not an envelope" if case is None else json.dumps({"id": "x", "case": case}).encode()


@pytest.mark.parametrize("nats_auth", [False])
async def test_the_lanes_keep_each_senders_order_and_each_cases_order(nats_server: EmbeddedNats) -> None:
    """a is over its budget; b and c each have a message of a case a's held message has first."""
    plan = [("a", "c1"), ("b", "c2"), ("b", "c1"), ("c", "c4"), ("b", "c3"), ("a", "c6"), ("c", "c1"),
            ("d", "c7"), ("d", None)]
    nc = await nats.connect(nats_server.url)
    js = jetstream(nc)
    await js.add_stream(name="LANES", subjects=["xz.>"])
    for sender, case in plan:
        await js.publish(f"xz.{sender}.me.assistance.requested", _body(case), stream="LANES")
    handled: list[tuple[int, str, str | None]] = []

    async def handle(msgs: list[Msg]) -> None:
        for m in msgs:
            sender, case = plan[m.metadata.sequence.stream - 1]
            handled.append((m.metadata.sequence.stream, sender, case))
            await m.ack()

    lanes = Lanes("me", handle, batch=64, over_budget=lambda sender: sender == "a")
    lanes.trace = []
    sub = await js.pull_subscribe("xz.>", durable="me", stream="LANES", config=consumer_config("me", "xz.>"))
    loop = PullLoop("me", sub, lanes.take, batch=64)
    lanes.start()
    loop.start()
    try:
        await eventually(lambda: len(handled) == len(plan))
    finally:
        lanes.halt()
        await loop.stop()
        await lanes.stop()
    info = await js.consumer_info("LANES", "me")
    await nc.close()

    assert lanes.trace[0] == ("fast", [(2, "b"), (4, "c"), (8, "d"), (9, "d")])
    assert {lane for lane, _batch in lanes.trace[1:]} == {"slow"}
    order = [seq for seq, _sender, _case in handled]
    assert sorted(order) == list(range(1, len(plan) + 1))  # each once
    for key in (1, 2):  # per sender, per case: in stream order
        for value in {step[key] for step in handled if step[key] is not None}:
            seqs = [step[0] for step in handled if step[key] == value]
            assert seqs == sorted(seqs), (key, value, handled)
    assert (info.num_pending, info.num_ack_pending) == (0, 0)


@pytest.mark.parametrize("nats_auth", [False])
@pytest.mark.parametrize("bound", ["count", "bytes"])
async def test_held_messages_are_kept_in_progress_and_the_lane_is_bounded(nats_server: EmbeddedNats,
                                                                          tmp_path: Path, bound: str) -> None:
    """A consumer whose ack_wait is 1 s: messages held 2.5 s are not delivered again; about 8 at most are held,
    by their count or by their memory (each body and its overhead)."""
    nc = await nats.connect(nats_server.url)
    js = nc.jetstream()
    await js.add_stream(name="LANES", subjects=["xz.>"])
    for i in range(40):
        await js.publish("xz.a.me.assistance.requested", _body(f"a{i}"), stream="LANES")
    await js.publish("xz.b.me.assistance.requested", _body("b"), stream="LANES")
    handled: list[tuple[int, int]] = []
    most_held = 0
    slow_started = asyncio.Event()

    async def handle(msgs: list[Msg]) -> None:
        nonlocal most_held
        most_held = max(most_held, lanes.held)
        if any(m.subject.startswith("xz.a.") for m in msgs) and not slow_started.is_set():
            slow_started.set()
            for _ in range(10):  # a slow chunk (its own messages kept in progress): the others wait, held
                await asyncio.sleep(0.25)
                for m in msgs:
                    await m.in_progress()
        for m in msgs:
            handled.append((m.metadata.sequence.stream, m.metadata.num_delivered))
            await m.ack()

    footprint = len(_body("a10")) + HELD_OVERHEAD_BYTES
    limit = {"max_held": 8} if bound == "count" else {"max_held_bytes": 7 * footprint + 1}  # full at the 8th
    lanes = Lanes("me", handle, batch=4, over_budget=lambda sender: sender == "a", ack_wait=1.0, **limit)
    config = consumer_config("me", "xz.>")
    config.ack_wait = 1.0
    sub = await js.pull_subscribe("xz.>", durable="me", stream="LANES", config=config)
    loop = PullLoop("me", sub, lanes.take, batch=4)
    lanes.start()
    loop.start()
    try:
        await eventually(lambda: len(handled) >= 41, 30)
        await asyncio.sleep(1.5)  # anything delivered again would show now
    finally:
        lanes.halt()
        await loop.stop()
        await lanes.stop()
    await nc.close()
    assert sorted(seq for seq, _n in handled) == list(range(1, 42))  # each once
    assert {n for _seq, n in handled} == {1}  # none delivered a second time
    assert most_held < 8 + 4  # max_held, and at most a batch fetched while below it


async def test_dead_letters_are_sent_together_and_a_batch_that_comes_again_does_not_store_them_twice(
        node: Node) -> None:
    from datetime import UTC, datetime

    from broker.intake import DeadLetters, Delivery, IntakeStats

    nc = await nats.connect(node.nats_url, **node.credentials("gongan"))
    letters = DeadLetters(nc.jetstream(), "gongan", IntakeStats())
    batch = [Delivery(subject="xz.ziran.gongan.assistance.requested", data=b"x" * 100, headers={},
                      stream_seq=900_000 + i, num_delivered=1, timestamp=datetime.now(UTC)) for i in range(20)]
    try:
        for d in batch:
            await letters.put(d, "bad-signature", "signature does not verify")
        assert letters.written == 0  # sent, not yet acked: flush waits for all of them
        await letters.flush()
        assert letters.written == 20
        for d in batch[:5]:  # the batch failed after its dead letters were stored, and comes again
            await letters.put(d, "bad-signature", "signature does not verify")
        await letters.flush()
    finally:
        await nc.close()
    admin = await nats.connect(node.nats_url, **node.credentials(ADMIN))
    stored = [d for d in await read_dead_letters(admin.jetstream(), limit=10_000) if d.rejected_by == "gongan"]
    await admin.close()
    assert sorted(d.headers["Nats-Msg-Id"] for d in stored) == sorted(f"gongan.{d.stream_seq}" for d in batch)
