"""Where one exchange's CPU goes, without NATS: every step of it in one thread, timed by part (issue 14).

Run from the project root::

    .venv/bin/python -m bench.path --json

It builds the stores, keys, catalogue, ledger and views of :mod:`bench.exchange`'s node, but
starts no nats-server and no event loop.  One exchange is made by hand, as the services
make it: shenpi's ``request()``; shenpi's relay reading its outbox; gongan's checks of the
delivery (signature, sealing) and its batch with the automatic answer (``_apply_batch``);
the ledger's checks and append; each of the three views following; then the same back
from gongan to shenpi.  Each step is its own batch, as in the sequential phase.  It prints
the process CPU time of one exchange, and of each part, in milliseconds.  Single-threaded
CPU time is steadier than rates on a shared machine, so this compares two commits' trees
well (run each tree with ``PYTHONPATH`` set to it); it leaves out what NATS, the event
loop and the thread hops cost, which ``bench.exchange`` measures.  Nothing here is
asserted on time.
"""
from __future__ import annotations

import argparse
import json
import os
import random
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from agencies.trust.keys import KeyStore
from aggregates.calendar_store import CalendarStore
from aggregates.clock import SystemClock
from aggregates.registry import JUSTICE, Registry
from bench import exchange as bx
from broker.intake import Delivery, Intake
from broker.ledger.store import Ledger
from broker.relay import headers_for
from broker.signing import decode_checked
from projections.base import LedgerProjection
from projections.commitments import CommitmentView
from projections.credit import CreditView
from projections.sla import SlaView
from schemas.envelope import subject_for
from xiezhu.node import Node
from xiezhu.settings import Settings


class BenchError(RuntimeError):
    """A step of an exchange did not go as it must."""


def measure(exchanges: int, warmup: int, seed: int) -> dict[str, Any]:
    """CPU milliseconds of one exchange, in all and by part, over ``exchanges`` after ``warmup``."""
    rng = random.Random(seed)
    parts: Counter[str] = Counter()

    def timed(label: str, f: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        start = time.process_time()
        try:
            return f(*args, **kwargs)
        finally:
            parts[label] += time.process_time() - start

    with tempfile.TemporaryDirectory(prefix="xiezhu-path-") as tmp:
        data_dir = Path(tmp) / "data"
        residents = bx.make_residents(2000, rng)
        bx.seed_residents(Settings(data_dir=data_dir), residents)
        clock, registry, settings = SystemClock(), Registry.load(), Settings(data_dir=data_dir)
        valid_from = clock.now() - timedelta(days=1)
        KeyStore(settings.keys_dir).ensure(registry.codes(), valid_from=valid_from)
        node = Node(settings, registry, clock, agents=[bx.REQUESTER, bx.ASSISTOR], simulated=False,
                    key_valid_from=valid_from)
        bx.publish_item(node)
        agents = {code: node.agent(code) for code in (bx.REQUESTER, bx.ASSISTOR)}
        for code, agent in agents.items():
            agent.intake = Intake(code, agent.ring, None, opener=agent.opener)  # type: ignore[arg-type]
        ledger = Ledger(settings.ledger_location, opener=node.keys.ledger_opener())
        ledger_intake = Intake("ledger", node.ring, None, opener=ledger.opener or node.keys.opener(JUSTICE),  # type: ignore[arg-type]
                               addressed_only=False)
        view_key = node.keys.store_key(JUSTICE, create=True)
        views: list[LedgerProjection] = [
            SlaView(settings.sla_location, CalendarStore(settings.calendar_dir), catalogue=node.catalogue),
            CommitmentView(settings.commitments_location, view_key=view_key),
            CreditView(settings.credit_location, view_key=view_key)]
        for view in views:
            view.lazy_position = True  # as the node's views follow the running ledger
        positions = dict.fromkeys(agents, 0)
        seq = 0

        def ship(sender: str, receiver: str) -> None:
            nonlocal seq
            rows = timed("relay reads the outbox", agents[sender].store.outgoing_since, positions[sender], 256)
            if not rows:
                raise BenchError(f"{sender} had nothing to relay")
            positions[sender] = rows[-1][0]
            deliveries = []
            for _, signed in rows:
                env = decode_checked(signed.body)
                seq += 1
                deliveries.append(Delivery(subject=subject_for(env), data=signed.body,
                                           headers=headers_for(signed, env.id), stream_seq=seq, num_delivered=1,
                                           timestamp=datetime.now(UTC)))
            agent = agents[receiver]
            assert agent.intake is not None
            got = timed(f"{receiver}'s checks", agent.intake.receive_all, deliveries)
            if any(isinstance(g, Exception) for g in got):
                raise BenchError(f"{receiver} refused: {got}")
            applied = timed(f"{receiver}'s batch (apply, answer, commit)", agent._apply_batch, got)
            if any(isinstance(a, Exception) for a in applied):
                raise BenchError(f"{receiver} could not apply: {applied}")
            checked = timed("the ledger's checks", ledger_intake.receive_all, deliveries)
            timed("the ledger's append", ledger.append,
                  [(g.signed, g.envelope, g.delivery.stream_seq, g.arrived) for g in checked])
            for view in views:
                timed(f"view {view.name} follows", view.follow, ledger)

        store = agents[bx.REQUESTER].store

        def one() -> None:
            timed("shenpi's request()", store.assistance.request, **bx.request_for(rng.choice(residents)))
            ship(bx.REQUESTER, bx.ASSISTOR)
            ship(bx.ASSISTOR, bx.REQUESTER)

        try:
            for _ in range(warmup):
                one()
            parts.clear()
            start = time.process_time()
            for _ in range(exchanges):
                one()
            total = time.process_time() - start
        finally:
            for view in views:
                view.db.close()
            ledger.close()
            for agent in agents.values():
                agent.store.close()
    return {"exchanges": exchanges,
            "cpu_ms_per_exchange": round(total / exchanges * 1000, 3),
            "parts_ms": {k: round(v / exchanges * 1000, 3) for k, v in parts.most_common()},
            "loadavg_1m": round(os.getloadavg()[0], 2)}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description="Benchmark: one exchange's CPU by part, without NATS.")
    p.add_argument("--exchanges", type=int, default=150, help="exchanges timed")
    p.add_argument("--warmup", type=int, default=20, help="untimed exchanges first")
    p.add_argument("--seed", type=int, default=20260921)
    p.add_argument("--json", action="store_true", help="print one JSON object")
    a = p.parse_args(argv)
    if a.exchanges < 1 or a.warmup < 0:
        print("error: --exchanges must be at least 1, --warmup not negative", file=sys.stderr)
        return 2
    try:
        result = measure(a.exchanges, a.warmup, a.seed)
    except BenchError as e:
        print(f"bench.path: {e}", file=sys.stderr)
        return 1
    if a.json:
        print(json.dumps(result, ensure_ascii=False, indent=2))
    else:
        print(f"{result['cpu_ms_per_exchange']:.2f} ms CPU an exchange ({a.exchanges}), load {result['loadavg_1m']}")
        for part, ms in result["parts_ms"].items():
            print(f"{ms:9.3f} ms  {part}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
