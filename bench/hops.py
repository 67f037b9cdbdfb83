"""Where one exchange's time goes: the time of each hop of sequential exchanges (issue 14).

Run from the project root::

    .venv/bin/python -m bench.hops --json

It starts the same node as :mod:`bench.exchange` (shenpi and gongan agents, the ledger and
its views, NKey auth, sealed and signed events, fsynced stores), makes ``--exchanges``
requests one at a time, and times each hop of each exchange by wrapping the agents' and the
relays' methods on their instances: the request's commit, shenpi's relay (reading the outbox,
JetStream's acks), gongan's fetched batch (checks, accept with the automatic answer, the
commit), gongan's relay, shenpi's batch, and the moment the reply is seen committed.  It
prints the median and the 90th percentile of each hop's start and end, in milliseconds from
the start of the request, in the order they happen.  Nothing here is asserted on time.
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
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from bench import exchange as bx
from xiezhu.settings import Settings

Marks = list[tuple[float, str]]


def _timed_async(marks: Marks, obj: object, name: str, label: str) -> None:
    real: Callable[..., Awaitable[Any]] = getattr(obj, name)

    async def timed(*args: Any, **kwargs: Any) -> Any:
        marks.append((time.perf_counter(), f"{label} start"))
        try:
            return await real(*args, **kwargs)
        finally:
            marks.append((time.perf_counter(), f"{label} end"))
    setattr(obj, name, timed)


def _timed(marks: Marks, obj: object, name: str, label: str) -> None:
    real: Callable[..., Any] = getattr(obj, name)

    def timed(*args: Any, **kwargs: Any) -> Any:
        marks.append((time.perf_counter(), f"{label} start"))
        try:
            return real(*args, **kwargs)
        finally:
            marks.append((time.perf_counter(), f"{label} end"))
    setattr(obj, name, timed)


def hop_table(runs: list[Marks]) -> list[dict[str, Any]]:
    """Each label's median and p90 offset from its run's first mark, in the order of the medians.

    A label seen twice in one run (a relay that pumps again) is numbered: ``… end#2``.
    """
    offsets: dict[str, list[float]] = {}
    for marks in runs:
        t0 = marks[0][0]
        seen: dict[str, int] = {}
        for t, label in marks:
            seen[label] = seen.get(label, 0) + 1
            key = label if seen[label] == 1 else f"{label}#{seen[label]}"
            offsets.setdefault(key, []).append((t - t0) * 1000)
    rows = [{"hop": k, "p50_ms": round(statistics.median(v), 2),
             "p90_ms": round(statistics.quantiles(v, n=10, method="inclusive")[8] if len(v) > 1 else v[0], 2),
             "seen": len(v)} for k, v in offsets.items()]
    return sorted(rows, key=lambda r: float(r["p50_ms"]))


async def measure(exchanges: int, warmup: int, poll_ms: float, seed: int,
                  ledger_apart: bool = False, processes: bool = False, gap_ms: float = 20.0) -> dict[str, Any]:
    """Time each hop of ``exchanges`` sequential exchanges."""
    rng = random.Random(seed)
    marks: Marks = []
    runs: list[Marks] = []
    with tempfile.TemporaryDirectory(prefix="xiezhu-hops-") as tmp:
        data_dir = Path(tmp) / "data"
        residents = bx.make_residents(2000, rng)
        bx.seed_residents(Settings(data_dir=data_dir), residents)
        async with bx.running_node(data_dir, ledger_apart=ledger_apart, processes=processes) as node:
            watcher = bx.ReplyWatcher(node.settings.store_path(bx.REQUESTER), poll_ms / 1000)
            watcher.start()
            try:
                record = bx.Record(node, in_process=not (ledger_apart or processes))
                ex = bx.XiezhuExchanges(node, record, residents, rng, watcher)
                await ex.sequential(warmup)
                for code, agent in node.agents.items():
                    assert agent.relay is not None and agent.intake is not None
                    _timed_async(marks, agent.relay, "pump", f"{code} relay")
                    _timed(marks, agent.store, "outgoing_since", f"{code} relay reads the outbox")
                    assert agent.pull is not None
                    _timed_async(marks, agent.pull, "handle", f"{code} batch")
                    _timed(marks, agent.intake, "receive_all", f"{code} checks")
                    _timed(marks, agent, "_apply_batch", f"{code} applies and commits")
                latencies = []
                for _ in range(exchanges):
                    marks.clear()
                    marks.append((time.perf_counter(), "request start"))
                    latencies.append(await ex.one())
                    marks.append((time.perf_counter(), "reply seen"))
                    runs.append(sorted(marks))
                    await asyncio.sleep(gap_ms / 1000)  # by default, let the relays' last pumps end first
            finally:
                await watcher.stop()
    return {
        "exchanges": exchanges,
        "p50_ms": round(statistics.median(latencies) * 1000, 2),
        "request_call_p50_ms": round(statistics.median(ex.calls_s[warmup:]) * 1000, 2),
        "hops": hop_table(runs),
        "poll_ms": poll_ms,
        "loadavg_1m": round(os.getloadavg()[0], 2),
        "ledger_apart": ledger_apart,
        "processes": processes,
        "gap_ms": gap_ms,
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description="Benchmark: where one sequential xiezhu exchange's time goes.")
    p.add_argument("--exchanges", type=int, default=60, help="sequential exchanges timed")
    p.add_argument("--warmup", type=int, default=10, help="untimed exchanges first")
    p.add_argument("--poll-ms", type=float, default=1.0, help="how often the reply is looked for")
    p.add_argument("--seed", type=int, default=20260921)
    p.add_argument("--ledger-apart", action="store_true",
                   help="the ledger and its views in a process of their own, as `xiezhu run` starts them")
    p.add_argument("--gap-ms", type=float, default=20.0,
                   help="pause between exchanges (0: back to back, as bench.exchange's sequential phase)")
    p.add_argument("--processes", action="store_true",
                   help="gongan's agent too in a process of its own (only shenpi's hops are timed)")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    a = p.parse_args(argv)
    if a.exchanges < 1 or a.warmup < 0 or a.poll_ms <= 0 or a.gap_ms < 0:
        print("error: --exchanges must be at least 1, --warmup not negative, --poll-ms positive, "
              "--gap-ms not negative", file=sys.stderr)
        return 2
    load = os.getloadavg()[0]
    result = asyncio.run(measure(a.exchanges, a.warmup, a.poll_ms, a.seed, a.ledger_apart, a.processes, a.gap_ms))
    result |= {"loadavg_1m_start": round(load, 2)}
    if a.json:
        print(json.dumps(result, ensure_ascii=False, indent=2))
    else:
        print(f"{a.exchanges} exchanges, p50 {result['p50_ms']} ms, load {load:.1f}")
        for row in result["hops"]:
            print(f"{row['p50_ms']:9.2f} {row['p90_ms']:9.2f}  {row['hop']}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
