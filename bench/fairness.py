"""One bureau's flood and another's request: ``python -m bench.fairness [--json] [--flood 5000] [--valid 1000]``.

A real node (embedded nats-server with the generated authorization, shenpi's and gongan's
agents, the ledger, one process).  gongan's agent is down while ziran, with its own NATS
credentials, floods gongan and then shenpi files a legitimate request to gongan; once both
are in ``XZ`` (the flood ahead) and the ledger has recorded them, gongan's agent starts
again.  The request's latency is from that start to gongan's automatic reply committed at
shenpi.  Measured in one run:

- ``quiet``: a request with gongan's agent running and no flood (commit → reply), several times;
- ``after_restart_alone``: the request alone, queued while the agent was down (the baseline);
- ``bad_flood``: behind messages that fail the signature check (dead letters summarised past
  each sender's budget, decision 50), with gongan's lanes (decision 58) and without them
  (every batch handled whole, in stream order, as before);
- ``valid_flood``: behind validly signed, sealed requests from ziran's own store (real work:
  gongan opens, records and answers each), with and without the lanes;

each with how much of the flood gongan had handled when the reply came, how long it took to
drain the rest and what went through which lane.
"""
from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import nats

from bench.exchange import (
    ASSISTOR,
    MATTER,
    REQUESTER,
    ReplyWatcher,
    machine,
    make_residents,
    request_for,
    running_node,
    seed_residents,
    stall_guard,
    wait_until,
)
from broker.auth import ADMIN
from broker.relay import Positions, Relay
from broker.signing import b64
from broker.streams import EVENTS_STREAM, LEDGER_CONSUMER, sending_stream
from schemas.catalogue import AssistanceItem
from schemas.envelope import HDR_KEY, HDR_MSG_ID, HDR_SIG
from xiezhu.node import Node
from xiezhu.settings import Settings

FLOODER = "ziran"
#: 第七条: ziran's requests to gongan cite an item catalogued for ziran→gongan.
FLOOD_ITEM = "XZ-0002"
FLOOD_SUBJECT = f"xz.{FLOODER}.{ASSISTOR}.assistance.requested"


async def flood(node: Node, n: int, rng: random.Random) -> float:
    """Publish ``n`` messages as ziran that gongan must reject (a forged signature); returns the seconds it took."""
    kid = node.keys.signer(FLOODER).kid
    nc = await nats.connect(node.nats_url, **node.credentials(FLOODER))
    t0 = time.perf_counter()
    try:
        js = nc.jetstream()
        for start in range(0, n, 250):
            acks = [await js.publish_async(FLOOD_SUBJECT, rng.randbytes(1500), stream=sending_stream(FLOODER),
                                           headers={HDR_MSG_ID: f"flood-{start + i}-{rng.random()}",
                                                    HDR_KEY: kid, HDR_SIG: b64(rng.randbytes(64))})
                    for i in range(min(250, n - start))]
            await asyncio.gather(*acks)
    finally:
        await nc.close()
    return time.perf_counter() - t0


def publish_flood_item(node: Node) -> None:
    """List the item ziran's valid flood cites (as ``bench.exchange.publish_item`` lists shenpi's)."""
    basis = "《国务院办公厅关于全面推行证明事项告知承诺制的指导意见》"
    row = AssistanceItem(code=FLOOD_ITEM, seq=2, service_matter_name=MATTER.name, service_matter_code=MATTER.code,
                         item_name="户籍及无犯罪记录核查", legal_basis=basis, handling_body=FLOODER,
                         assisting_body=ASSISTOR, verification_method="部门间行政协助")
    node.catalogue.review(node.catalogue.apply_adjustment("assistance", FLOODER, basis, adds=[row]), True)
    node.catalogue.publish("assistance")


async def valid_flood(node: Node, n: int, residents: list[dict[str, Any]], rng: random.Random) -> float:
    """ziran files ``n`` requests to gongan in its store, and a relay of its own publishes them (seconds taken)."""
    store = node.store(FLOODER)
    for _ in range(n):
        store.assistance.request(**(request_for(rng.choice(residents)) | {"catalogue_item": FLOOD_ITEM}))
    nc = await nats.connect(node.nats_url, **node.credentials(FLOODER))
    try:
        relay = Relay(FLOODER, store, Positions(node.settings.relay_path(FLOODER)), nc.jetstream())
        t0 = time.perf_counter()
        while await relay.pump():
            pass
        return time.perf_counter() - t0
    finally:
        await nc.close()


async def in_xz(node: Node, count: int) -> None:
    """Wait until ``XZ`` holds ``count`` messages (sourcing from the sending streams has caught up)."""
    nc = await nats.connect(node.nats_url, **node.credentials(ADMIN))
    try:
        js = nc.jetstream()
        while (await js.stream_info(EVENTS_STREAM)).state.messages < count:
            await asyncio.sleep(0.01)
    finally:
        await nc.close()


async def xz_messages(node: Node) -> int:
    nc = await nats.connect(node.nats_url, **node.credentials(ADMIN))
    try:
        return int((await nc.jetstream().stream_info(EVENTS_STREAM)).state.messages)
    finally:
        await nc.close()


async def one_request(node: Node, watcher: ReplyWatcher, resident: dict[str, Any]) -> float:
    """One request from shenpi to gongan; seconds until its reply is committed at shenpi."""
    t0 = time.perf_counter()
    state = node.store(REQUESTER).assistance.request(**request_for(resident))
    node.wake_relays()
    done: float = await stall_guard("waiting for a reply", watcher.expect(state.case))
    return done - t0


async def ledger_caught_up(node: Node) -> None:
    """Wait until the ledger has recorded everything in ``XZ`` (so that it does not share the CPU meanwhile)."""
    nc = await nats.connect(node.nats_url, **node.credentials(ADMIN))
    try:
        js = nc.jetstream()
        while True:
            info = await js.consumer_info(EVENTS_STREAM, LEDGER_CONSUMER)
            if not info.num_pending and not info.num_ack_pending:
                return
            await asyncio.sleep(0.02)
    finally:
        await nc.close()


async def behind(node: Node, watcher: ReplyWatcher, residents: list[dict[str, Any]], n: int, rng: random.Random,
                 *, lanes: bool, valid: bool) -> dict[str, Any]:
    """gongan's agent is down while ziran's flood of ``n`` and then shenpi's request reach ``XZ``; it starts again.

    The request's latency is from that start to its reply committed at shenpi; with ``n == 0``
    it is the baseline (the request alone).  Returns it with what the flood cost gongan.
    """
    await node.agents[ASSISTOR].stop()
    before = await xz_messages(node)
    publish_s = 0.0
    if n:
        publish_s = await (valid_flood(node, n, residents, rng) if valid else flood(node, n, rng))
    state = node.store(REQUESTER).assistance.request(**request_for(rng.choice(residents)))
    node.wake_relays()
    await in_xz(node, before + n + 1)  # the flood and the request, in that order
    await ledger_caught_up(node)
    reply = watcher.expect(state.case)
    agent = node.agent(ASSISTOR)
    agent.lanes_enabled = lanes
    t0 = time.perf_counter()
    await agent.start()
    node.agents[ASSISTOR] = agent
    latency = await stall_guard("waiting for a reply", reply) - t0
    assert agent.intake is not None and agent.lanes is not None
    stats, lane = agent.intake.stats, agent.lanes
    t1 = time.perf_counter()
    if valid:
        drained = lambda: stats.applied >= n + 1  # noqa: E731
    else:
        drained = lambda: stats.rejected >= n  # noqa: E731
    handled_at_reply = stats.rejected + stats.applied - 1
    await stall_guard("waiting for gongan to drain the flood", wait_until(drained, 0.01))
    drained_after_reply_s = time.perf_counter() - t1
    await node.settle()  # the last summaries, dead letters and answers written
    return {"flood": n, "publish_s": round(publish_s, 2), "request_latency_ms": round(latency * 1000, 1),
            "flood_handled_before_reply": handled_at_reply,
            "still_draining_after_reply_s": round(drained_after_reply_s, 2),
            "gongan_rejected": stats.rejected, "gongan_applied": stats.applied,
            "gongan_dead_letter_writes": agent.intake.dead_letters.written,
            "fast_lane_messages": lane.fast_messages, "slow_lane_messages": lane.slow_messages}


async def run(n: int, valid: int, quiet_samples: int, seed: int) -> dict[str, Any]:
    rng = random.Random(seed)
    load = os.getloadavg()[0]
    with tempfile.TemporaryDirectory(prefix="xiezhu-fairness-") as tmp:
        data_dir = Path(tmp) / "data"
        residents = make_residents(200, rng)
        seed_residents(Settings(data_dir=data_dir), residents)
        async with running_node(data_dir) as node:
            publish_flood_item(node)
            watcher = ReplyWatcher(node.settings.store_path(REQUESTER), 0.002)
            watcher.start()
            try:
                await one_request(node, watcher, residents[0])  # warm-up
                quiet = [await one_request(node, watcher, rng.choice(residents)) for _ in range(quiet_samples)]
                alone = [await behind(node, watcher, residents, 0, rng, lanes=True, valid=False)
                         for _ in range(min(3, quiet_samples))]
                bad = {lanes: await behind(node, watcher, residents, n, rng, lanes=lanes, valid=False)
                       for lanes in (True, False)}
                good = {lanes: await behind(node, watcher, residents, valid, rng, lanes=lanes, valid=True)
                        for lanes in (True, False)} if valid else {}
            finally:
                await watcher.stop()
    quiet_ms = sorted(q * 1000 for q in quiet)
    alone_ms = sorted(a["request_latency_ms"] for a in alone)
    return {
        "bench": "fairness",
        "quiet": {"samples": len(quiet_ms), "request_latency_ms_p50": round(statistics.median(quiet_ms), 1),
                  "request_latency_ms_max": round(quiet_ms[-1], 1)},
        "after_restart_alone": {"samples": len(alone_ms), "request_latency_ms": alone_ms},
        "bad_flood": {"with_lanes": bad[True], "without_lanes": bad[False]},
        "valid_flood": {"with_lanes": good[True], "without_lanes": good[False]} if good else None,
        "machine": machine(load),
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.fairness", description=__doc__.splitlines()[0])
    p.add_argument("--flood", type=int, default=5000, help="bad messages in each bad flood (default 5000)")
    p.add_argument("--valid", type=int, default=1000,
                   help="validly signed requests in each valid flood (default 1000; 0: none)")
    p.add_argument("--quiet", type=int, default=10, help="requests measured without a flood (default 10)")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--json", action="store_true", help="print one JSON object")
    args = p.parse_args(argv)
    result = asyncio.run(run(args.flood, args.valid, args.quiet, args.seed))
    if args.json:
        print(json.dumps(result, ensure_ascii=False))
    else:
        print(json.dumps(result, ensure_ascii=False, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
