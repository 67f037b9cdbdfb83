"""One bureau's flood and another's request: ``python -m bench.fairness [--json] [--flood 5000]``.

A real node (embedded nats-server with the generated authorization, shenpi's and gongan's
agents, the ledger).  ziran, with its own NATS credentials, floods gongan with messages that
fail the signature check; right after the flood is stored, shenpi files a legitimate request
to gongan.  Measured in one run (decision 50):

- ``quiet``: the request's latency (commit at shenpi → gongan's automatic reply committed at
  shenpi) with no flood, several times;
- ``flood``: with the flood queued ahead of it, dead letters summarised past each sender's
  budget (what the agents do);
- ``flood_every_dead_letter_written``: the same flood with the budget lifted, so that every
  rejection is written to ``XZ_DLQ`` on its own, as before (the baseline);

each with the flood's dead-letter writes at gongan and how long gongan took to drain it.
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
from broker.intake import DLQ_BURST
from broker.signing import b64
from broker.streams import sending_stream
from schemas.envelope import HDR_KEY, HDR_MSG_ID, HDR_SIG
from xiezhu.node import Node
from xiezhu.settings import Settings

FLOODER = "ziran"
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


async def one_request(node: Node, watcher: ReplyWatcher, resident: dict[str, Any]) -> float:
    """One request from shenpi to gongan; seconds until its reply is committed at shenpi."""
    t0 = time.perf_counter()
    state = node.store(REQUESTER).assistance.request(**request_for(resident))
    node.wake_relays()
    done: float = await stall_guard("waiting for a reply", watcher.expect(state.case))
    return done - t0


async def flooded(node: Node, watcher: ReplyWatcher, resident: dict[str, Any], n: int, rng: random.Random,
                  *, burst: int) -> dict[str, Any]:
    """The flood, then one request; the request's latency, and what the flood cost gongan."""
    agent = node.agents[ASSISTOR]
    assert agent.intake is not None and node.ledger_service is not None and node.ledger_service.intake is not None
    for dl in (agent.intake.dead_letters, node.ledger_service.intake.dead_letters):
        dl.burst = burst
        dl._tokens.clear()  # a fresh budget for each phase
    rejected0, written0 = agent.intake.stats.rejected, agent.intake.dead_letters.written
    publish_s = await flood(node, n, rng)
    latency = await one_request(node, watcher, resident)
    t0 = time.perf_counter()
    await stall_guard("waiting for gongan to drain the flood",
                      wait_until(lambda: agent.intake is not None and agent.intake.stats.rejected - rejected0 >= n,
                                 0.01))
    drained_after_reply_s = time.perf_counter() - t0
    await node.settle()  # the last summaries and dead letters written
    return {"flood": n, "publish_s": round(publish_s, 2), "request_latency_ms": round(latency * 1000, 1),
            "gongan_dead_letter_writes": agent.intake.dead_letters.written - written0,
            "gongan_rejected": agent.intake.stats.rejected - rejected0,
            "still_draining_after_reply_s": round(drained_after_reply_s, 2)}


async def run(n: int, quiet_samples: int, seed: int) -> dict[str, Any]:
    rng = random.Random(seed)
    load = os.getloadavg()[0]
    with tempfile.TemporaryDirectory(prefix="xiezhu-fairness-") as tmp:
        data_dir = Path(tmp) / "data"
        residents = make_residents(200, rng)
        seed_residents(Settings(data_dir=data_dir), residents)
        async with running_node(data_dir) as node:
            watcher = ReplyWatcher(node.settings.store_path(REQUESTER), 0.002)
            watcher.start()
            try:
                await one_request(node, watcher, residents[0])  # warm-up
                quiet = [await one_request(node, watcher, rng.choice(residents)) for _ in range(quiet_samples)]
                summarised = await flooded(node, watcher, rng.choice(residents), n, rng, burst=DLQ_BURST)
                every = await flooded(node, watcher, rng.choice(residents), n, rng, burst=10**9)
            finally:
                await watcher.stop()
    quiet_ms = sorted(q * 1000 for q in quiet)
    return {
        "bench": "fairness",
        "quiet": {"samples": len(quiet_ms), "request_latency_ms_p50": round(statistics.median(quiet_ms), 1),
                  "request_latency_ms_max": round(quiet_ms[-1], 1)},
        "flood": summarised | {"dead_letter_budget": DLQ_BURST},
        "flood_every_dead_letter_written": every,
        "machine": machine(load),
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.fairness", description=__doc__.splitlines()[0])
    p.add_argument("--flood", type=int, default=5000, help="messages in each flood (default 5000)")
    p.add_argument("--quiet", type=int, default=10, help="requests measured without a flood (default 10)")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--json", action="store_true", help="print one JSON object")
    args = p.parse_args(argv)
    result = asyncio.run(run(args.flood, args.quiet, args.seed))
    if args.json:
        print(json.dumps(result, ensure_ascii=False))
    else:
        print(json.dumps(result, ensure_ascii=False, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
