"""What `XZ`'s sourcing of the sending streams costs a message (decision 50): latency and nats-server CPU.

Run from the project root::

    .venv/bin/python -m bench.sourcing --json

Two layouts on one embedded nats-server (no authorization, every write fsynced, as xiezhu's), each
measured in turn, alternating, ``--rounds`` times: **direct**, a consumer on the sending stream
itself and no other stream; **sourced**, the sending stream and a second stream that sources it
(made for the round, from the round's first message), with the consumer on that copy (xiezhu's
layout: the receivers and the ledger read ``XZ``).  Each round publishes
``--messages`` messages of ``--size`` bytes one at a time, each acked by JetStream, then fetched
and acked by the consumer, and reports the p50 of publish-to-fetched and nats-server's CPU per
message.  Nothing here is asserted on time.
"""
from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import nats
from nats.js import JetStreamContext
from nats.js.api import AckPolicy, ConsumerConfig, StreamConfig, StreamSource

from bench.exchange import proc_cpu_s
from broker.server import EmbeddedNats

SENDING, COPY, SUBJECT = "FROM_A", "ALL", "xz.a.b.assistance.requested"


async def _round(js: JetStreamContext, stream: str, durable: str, n: int, body: bytes,
                 server_pid: int) -> dict[str, float]:
    await js.add_consumer(stream, ConsumerConfig(durable_name=durable, ack_policy=AckPolicy.EXPLICIT))
    sub = await js.pull_subscribe_bind(durable=durable, stream=stream)
    while True:  # what earlier rounds left on the stream is not this round's
        try:
            for m in await sub.fetch(256, timeout=0.2):
                await m.ack()
        except (TimeoutError, nats.errors.TimeoutError):
            break
    latencies = []
    cpu0 = proc_cpu_s(server_pid) or 0.0
    for _ in range(n):
        t0 = time.perf_counter()
        await js.publish(SUBJECT, body, stream=SENDING)
        for m in await sub.fetch(1, timeout=10):
            await m.ack()
        latencies.append((time.perf_counter() - t0) * 1000)
    await asyncio.sleep(0.2)  # the last acks reach the server
    cpu = (proc_cpu_s(server_pid) or 0.0) - cpu0
    await js.delete_consumer(stream, durable)
    return {"p50_ms": round(statistics.median(latencies), 3), "server_cpu_ms_per_message": round(cpu / n * 1000, 3)}


async def measure(messages: int, size: int, rounds: int) -> dict[str, Any]:
    """Both layouts, alternating, ``rounds`` times each."""
    body = os.urandom(size)
    out: dict[str, list[dict[str, float]]] = {"direct": [], "sourced": []}
    with tempfile.TemporaryDirectory(prefix="xiezhu-sourcing-") as tmp, EmbeddedNats(Path(tmp) / "nats") as server:
        assert server._proc is not None
        nc = await nats.connect(server.url)
        try:
            js = nc.jetstream()
            await js.add_stream(StreamConfig(name=SENDING, subjects=["xz.a.>"]))
            for i in range(rounds):
                out["direct"].append(await _round(js, SENDING, f"d{i}", messages, body, server._proc.pid))
                # The copy exists only in its own rounds, and sources only what they publish.
                after = (await js.stream_info(SENDING)).state.last_seq
                await js.add_stream(StreamConfig(name=COPY, sources=[StreamSource(name=SENDING,
                                                                                  opt_start_seq=after + 1)]))
                out["sourced"].append(await _round(js, COPY, f"s{i}", messages, body, server._proc.pid))
                await js.delete_stream(COPY)
        finally:
            await nc.close()
    return {"messages": messages, "size": size, "rounds": out,
            "p50_ms": {k: round(statistics.median(r["p50_ms"] for r in v), 3) for k, v in out.items()},
            "server_cpu_ms_per_message": {k: round(statistics.median(r["server_cpu_ms_per_message"] for r in v), 3)
                                          for k, v in out.items()},
            "loadavg_1m": round(os.getloadavg()[0], 2)}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description="Benchmark: what XZ's sourcing of the sending streams costs a message.")
    p.add_argument("--messages", type=int, default=500, help="messages a round")
    p.add_argument("--size", type=int, default=1547, help="bytes a message (a sealed request's)")
    p.add_argument("--rounds", type=int, default=3, help="rounds of each layout, alternating")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    a = p.parse_args(argv)
    if a.messages < 1 or a.size < 1 or a.rounds < 1:
        print("error: --messages, --size and --rounds must be positive", file=sys.stderr)
        return 2
    result = asyncio.run(measure(a.messages, a.size, a.rounds))
    if a.json:
        print(json.dumps(result, ensure_ascii=False, indent=2))
    else:
        for k in ("direct", "sourced"):
            print(f"{k:<8} publish→fetched p50 {result['p50_ms'][k]:.3f} ms, "
                  f"nats-server {result['server_cpu_ms_per_message'][k]:.3f} ms CPU a message")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
