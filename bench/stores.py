"""Benchmark: a bureau store's commands on SQLite and on PostgreSQL, side by side in one run.

Run from the project root::

    .venv/bin/python -m bench.stores --json                                   # SQLite only
    .venv/bin/python -m bench.stores --json --database-url postgresql://root@127.0.0.1:5432/test

The exchange benchmark runs the whole system (``--database-url`` runs it on PostgreSQL too);
this one measures what changes with the backend alone: each record's own transactions.
For each backend, as the stores are deployed (signing and sealing keys from a
:class:`~agencies.trust.keys.KeyStore`, every event encrypted at rest):

``request``
    shenpi's ``assistance.request``: number, sign, seal, encrypt and commit a request.
``accept``
    gongan's ``accept`` of each request (verified and opened first, off the clock): the
    arrival record and the intake marker committed in one transaction.
``reply``
    gongan's ``assistance.reply`` to each: load the case, sign, seal, commit.
``ledger_append``
    the ledger service's part: every event of both stores (verified and opened off the clock)
    appended to 区司法局's ledger in batches of :data:`LEDGER_BATCH`, hash-chained, per event.
``sla_follow``
    the SLA view following that ledger from position 0, per event (``projections rebuild``'s work).

On PostgreSQL each bureau's store, the ledger and the view are each in their own schema
(decision 52) under a fresh prefix, dropped afterwards.  The numbers are for comparison within one run only.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

from agencies.trust.keys import KeyStore
from aggregates.clock import SimulatedClock
from aggregates.database import drop_schemas
from aggregates.store import BureauStore, bureau_location
from broker.ledger.store import Ledger
from projections.sla import SlaView
from schemas.assistance import Applicant, CommitmentItem, ItemResult, Matter
from schemas.envelope import Signed

REQUESTER, ASSISTOR, LEDGER_READER = "shenpi", "gongan", "sifa"
#: Events the ledger service appends in one transaction (as it appends what one fetch brought).
LEDGER_BATCH = 100
MATTER = Matter(code="370405-XK-0101", name="食品经营许可")
ITEMS = [CommitmentItem(no=1, text="本人无犯罪记录", check="police.no-criminal-record")]


def rate(n: int, seconds: float) -> float:
    return round(n / seconds, 1) if seconds else 0.0


def measure(locate: Callable[[str], Path | str], keys: KeyStore, n: int) -> dict[str, Any]:
    """``n`` requests, accepts and replies through two stores at ``locate(code)``."""
    clock = SimulatedClock(datetime(2026, 9, 21, 1, tzinfo=UTC))
    ring = keys.ring()
    shenpi = BureauStore(REQUESTER, locate(REQUESTER), keys.bureau_signer(REQUESTER, ring).sign, clock,
                         store_key=keys.store_key(REQUESTER))
    gongan = BureauStore(ASSISTOR, locate(ASSISTOR), keys.bureau_signer(ASSISTOR, ring).sign, clock,
                         store_key=keys.store_key(ASSISTOR))
    opener = keys.opener(ASSISTOR)
    try:
        start = time.perf_counter()
        cases = [shenpi.assistance.request(
            assistor=ASSISTOR, applicant=Applicant(kind="person", name="张三", id_number=f"37040519900101{i:04d}"),
            matter=MATTER, applied_on=date(2026, 9, 20), items=ITEMS).case for i in range(n)]
        requested = time.perf_counter() - start
        sent = shenpi.outgoing_since(0, n)
        received = [(signed, ring.verify(signed, opener=opener)) for _, signed in sent]
        start = time.perf_counter()
        for seq, (signed, env) in enumerate(received, start=1):
            gongan.accept(signed, env, stream_seq=seq, arrived_at=clock.now())
        accepted = time.perf_counter() - start
        start = time.perf_counter()
        for case in cases:
            gongan.assistance.reply(case, [ItemResult(no=1, verdict="true")], answered_by="auto:police")
        replied = time.perf_counter() - start
        events = [signed for store in (shenpi, gongan) for _, signed in store.outgoing_since(0, 3 * n)]
    finally:
        shenpi.close()
        gongan.close()
    return {"request_per_s": rate(n, requested), "accept_per_s": rate(n, accepted), "reply_per_s": rate(n, replied),
            **ledger_and_view(locate, keys, events), "commands": n}


def ledger_and_view(locate: Callable[[str], Path | str], keys: KeyStore, events: list[Signed]) -> dict[str, Any]:
    """Append ``events`` to a fresh ledger, then follow it with a fresh SLA view: events/s of each."""
    ring, opener = keys.ring(), keys.opener(LEDGER_READER)
    now = datetime(2026, 9, 21, 2, tzinfo=UTC)
    items = [(signed, ring.verify(signed, opener=opener), seq, now) for seq, signed in enumerate(events, start=1)]
    ledger = Ledger(locate("_ledger"), opener=keys.ledger_opener())
    try:
        start = time.perf_counter()
        for i in range(0, len(items), LEDGER_BATCH):
            ledger.append(items[i:i + LEDGER_BATCH])
        appended = time.perf_counter() - start
        view = SlaView(locate("_sla"))
        try:
            start = time.perf_counter()
            followed = view.follow(ledger)
            following = time.perf_counter() - start
        finally:
            view.db.close()
    finally:
        ledger.close()
    return {"ledger_append_per_s": rate(len(items), appended), "sla_follow_per_s": rate(followed, following),
            "ledger_events": len(items)}


def run(n: int, database_url: str | None) -> dict[str, Any]:
    """Both backends (PostgreSQL only with a URL), SQLite first."""
    load = os.getloadavg()[0]
    out: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="xiezhu-bench-stores-") as tmp:
        keys = KeyStore(Path(tmp) / "keys")
        keys.ensure([REQUESTER, ASSISTOR, LEDGER_READER], valid_from=datetime(2026, 1, 1, tzinfo=UTC) - timedelta(1))
        out["sqlite"] = measure(lambda code: Path(tmp) / f"{code}.db", keys, n)
        if database_url:
            prefix = f"bench{uuid.uuid4().hex[:8]}"
            try:
                out["postgresql"] = measure(lambda code: bureau_location(f"{database_url}?schema={prefix}", code),
                                            keys, n)
            finally:
                drop_schemas(database_url, prefix)
    out["loadavg_1m"] = {"start": round(load, 2), "end": round(os.getloadavg()[0], 2)}
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.stores", description=(__doc__ or "").split("\n\n")[0])
    p.add_argument("--commands", type=int, default=300, help="requests (and accepts and replies) per backend")
    p.add_argument("--database-url", default=os.environ.get("XIEZHU_DATABASE_URL"),
                   help="postgresql://… to measure beside SQLite (default: $XIEZHU_DATABASE_URL)")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    a = p.parse_args(argv)
    if a.commands < 1:
        p.error("--commands must be positive")
    result = run(a.commands, a.database_url)
    if a.json:
        print(json.dumps(result, ensure_ascii=False, indent=2))
    else:
        for backend in ("sqlite", "postgresql"):
            if backend in result:
                r = result[backend]
                print(f"{backend:<11} request {r['request_per_s']:>8}/s  accept {r['accept_per_s']:>8}/s  "
                      f"reply {r['reply_per_s']:>8}/s")
                print(f"{'':<11} ledger append {r['ledger_append_per_s']:>8} events/s  "
                      f"SLA view follow {r['sla_follow_per_s']:>8} events/s")
        print(f"load average {result['loadavg_1m']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
