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
drain the rest and what went through which lane;

- ``live_flood``: gongan's agent keeps running while ziran floods at full speed from a process
  of its own (``--live 1000,5000,20000``); one request of shenpi's is filed when half the flood
  is published and one just after its last publish, each timed from its commit to its reply,
  with and without the lanes, with gongan's backlog (its consumer's pending messages) when the
  flood's last publish was acknowledged.

All floods of one run go into ziran's sending stream, whose default limit (128 MiB, decision 50)
takes about 70,000 of them: ``--flood 20000`` (twice) and ``--live 1000,5000,20000`` (each twice)
need two runs.
"""
from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import math
import os
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import nats
from nats.aio.msg import Msg

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
from broker.lanes import claimed_case
from broker.relay import Positions, Relay
from broker.signing import b64
from broker.streams import EVENTS_STREAM, LEDGER_CONSUMER, agent_consumer, sending_stream
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


def flood_process(url: str, keys_dir: str, kid: str, n: int, seed: int) -> None:
    """The flood of :func:`flood` from a process of its own, as a flooding bureau's would be: prints ``half``
    once half of it is published and ``done <seconds>`` at the end."""
    from broker.auth import credentials_in

    async def go() -> float:
        rng = random.Random(seed)
        nc = await nats.connect(url, allow_reconnect=False, **credentials_in(Path(keys_dir), FLOODER))
        t0 = time.perf_counter()
        try:
            js = nc.jetstream()
            cuts = sorted({*range(0, n, 250), n // 2, n})
            for start, end in itertools.pairwise(cuts):
                if start == n // 2:
                    print("half", flush=True)
                acks = [await js.publish_async(FLOOD_SUBJECT, rng.randbytes(1500), stream=sending_stream(FLOODER),
                                               headers={HDR_MSG_ID: f"live-{seed}-{i}", HDR_KEY: kid,
                                                        HDR_SIG: b64(rng.randbytes(64))})
                        for i in range(start, end)]
                # A refused publish (ziran's sending stream full: a run floods it with about 128 MiB at most)
                # leaves its ack waiting for ever in nats-py: give up instead.
                await asyncio.wait_for(asyncio.gather(*acks), 60)
        finally:
            await nc.close()
        return time.perf_counter() - t0

    print(f"done {asyncio.run(go())}", flush=True)


async def consumer_pending(node: Node, consumer: str) -> int:
    """Messages of ``XZ`` that ``consumer`` has not acked yet: not yet delivered, and delivered but unacked."""
    nc = await nats.connect(node.nats_url, **node.credentials(ADMIN))
    try:
        info = await nc.jetstream().consumer_info(EVENTS_STREAM, consumer)
        return int(info.num_pending or 0) + int(info.num_ack_pending or 0)
    finally:
        await nc.close()


async def live(node: Node, watcher: ReplyWatcher, residents: list[dict[str, Any]], n: int, rng: random.Random,
               *, lanes: bool) -> dict[str, Any]:
    """gongan's agent runs while ziran floods it with ``n`` bad messages from another process; shenpi files a
    request when half the flood is published and another just after its last publish.

    Each request is timed from its commit at shenpi to ``XZ``'s copy of it (the sourcing from
    shenpi's sending stream, which the flood's copies share), to gongan's handler taking it, and
    to its reply committed at shenpi.
    """
    await node.agents[ASSISTOR].stop()
    agent = node.agent(ASSISTOR)
    agent.lanes_enabled = lanes
    await agent.start()
    node.agents[ASSISTOR] = agent
    await one_request(node, watcher, rng.choice(residents))  # the new agent is warm
    assert agent.intake is not None and agent.lanes is not None
    stats, lane = agent.intake.stats, agent.lanes
    rejected0, fast0, slow0 = stats.rejected, lane.fast_messages, lane.slow_messages
    taken: dict[str, tuple[float, float]] = {}  # case -> (XZ's stored time, handed to gongan's handler), epoch s
    handle = lane.handle

    async def spy(msgs: list[Msg]) -> None:
        now = time.time()
        for m in msgs:
            if m.subject.startswith(f"xz.{REQUESTER}."):
                taken.setdefault(claimed_case(m.data), (m.metadata.timestamp.timestamp(), now))
        await handle(msgs)

    lane.handle = spy

    async def request() -> dict[str, float]:
        t0, w0 = time.perf_counter(), time.time()
        state = node.store(REQUESTER).assistance.request(**request_for(rng.choice(residents)))
        node.wake_relays()
        done: float = await stall_guard("waiting for a reply", watcher.expect(state.case))
        in_xz, handed = taken.get(state.case, (math.nan, math.nan))
        return {"in_xz_ms": round((in_xz - w0) * 1000, 1), "taken_by_gongan_ms": round((handed - w0) * 1000, 1),
                "replied_ms": round((done - t0) * 1000, 1)}

    xz0 = await xz_messages(node, FLOOD_SUBJECT)
    code = ("import sys; from bench.fairness import flood_process; "
            "flood_process(sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]), int(sys.argv[5]))")
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-c", code, node.nats_url, str(node.settings.nats_keys_dir), node.keys.signer(FLOODER).kid,
        str(n), str(rng.randrange(1 << 30)), stdout=asyncio.subprocess.PIPE)
    assert proc.stdout is not None
    publish_s = 0.0
    mid: asyncio.Task[dict[str, float]] | None = None
    while line := (await stall_guard("waiting for the flooding process", proc.stdout.readline())).decode():
        if line.startswith("half"):
            mid = asyncio.create_task(request())
        elif line.startswith("done"):
            publish_s = float(line.split()[1])
            break
    after = asyncio.create_task(request())
    t_end = time.perf_counter()
    xz_behind = n - (await xz_messages(node, FLOOD_SUBJECT) - xz0)  # the flood's copies not yet in XZ
    backlog = await consumer_pending(node, agent_consumer(ASSISTOR))
    if await proc.wait():
        raise RuntimeError(f"the flooding process failed ({proc.returncode})")
    mid_r = await mid if mid is not None else None
    after_r = await after
    await stall_guard("waiting for gongan to drain the flood",
                      wait_until(lambda: stats.rejected - rejected0 >= n, 0.01))
    drained_s = time.perf_counter() - t_end
    await node.settle()
    return {"flood": n, "publish_s": round(publish_s, 2),
            "flood_rate_per_s": round(n / publish_s) if publish_s else None,
            "mid_flood_request": mid_r, "after_flood_request": after_r,
            "xz_copies_behind_at_flood_end": xz_behind,
            "gongan_unacked_at_flood_end": backlog,
            "drained_after_flood_end_s": round(drained_s, 2),
            "fast_lane_messages": lane.fast_messages - fast0, "slow_lane_messages": lane.slow_messages - slow0,
            "load": round(os.getloadavg()[0], 2)}


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


async def xz_messages(node: Node, subject: str | None = None) -> int:
    """How many messages ``XZ`` holds (on ``subject`` alone, if given)."""
    nc = await nats.connect(node.nats_url, **node.credentials(ADMIN))
    try:
        state = (await nc.jetstream().stream_info(EVENTS_STREAM, subjects_filter=subject)).state
        return int(state.messages) if subject is None else int((state.subjects or {}).get(subject, 0))
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


async def run(n: int, valid: int, quiet_samples: int, seed: int, live_sizes: list[int] | None = None
              ) -> dict[str, Any]:
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
                lived = {size: {lanes: await live(node, watcher, residents, size, rng, lanes=lanes)
                                for lanes in (True, False)} for size in live_sizes or []}
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
        "live_flood": [{"with_lanes": by[True], "without_lanes": by[False]} for by in lived.values()],
        "machine": machine(load),
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.fairness", description=__doc__.splitlines()[0])
    p.add_argument("--flood", type=int, default=5000, help="bad messages in each bad flood (default 5000)")
    p.add_argument("--valid", type=int, default=1000,
                   help="validly signed requests in each valid flood (default 1000; 0: none)")
    p.add_argument("--quiet", type=int, default=10, help="requests measured without a flood (default 10)")
    p.add_argument("--live", default="1000,5000,20000",
                   help="bad messages in each live flood, comma-separated (default 1000,5000,20000; '': none)")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--json", action="store_true", help="print one JSON object")
    args = p.parse_args(argv)
    try:
        live_sizes = [int(x) for x in args.live.split(",") if x.strip()]
    except ValueError:
        print(f"error: --live takes flood sizes separated by commas, not {args.live!r}", file=sys.stderr)
        return 2
    result = asyncio.run(run(args.flood, args.valid, args.quiet, args.seed, live_sizes))
    if args.json:
        print(json.dumps(result, ensure_ascii=False))
    else:
        print(json.dumps(result, ensure_ascii=False, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
