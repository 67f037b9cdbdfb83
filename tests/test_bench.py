"""The benchmark still runs end to end (a tiny run; the figures themselves are not checked)."""
from __future__ import annotations

import json
import os
import subprocess
import sys


def test_the_exchange_benchmark_completes_and_reports_both_systems() -> None:
    proc = subprocess.run([sys.executable, "-m", "bench.exchange", "--json", "--requests", "20",
                           "--latency-samples", "5", "--paced", "10", "--floor-seconds", "0.5"],
                          capture_output=True, text=True, timeout=240)
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout)
    assert report["ok"] is True
    assert report["xiezhu"]["ledger_events"] == report["xiezhu"]["ledger_expected"]
    assert report["raw"]["rate_per_s"] > 0 and report["xiezhu"]["rate_per_s"] > 0
    floor = report["crypto_floor"]
    assert floor["workers"] >= 1 and floor["events_per_exchange"] == 3  # a busy machine may finish none
    assert set(floor["per_event_us"]) == {"seal", "sign", "verify_open", "verify_ledger"}
    assert "ratio_floor" in report
    assert report["xiezhu"]["paced"]["exchanges"] == 10
    assert set(report["xiezhu"]["lag"]["paced"]) >= {"ledger_events", "sla_events"}


def test_the_store_benchmark_reports_sqlite_and_postgresql_where_one_is_given() -> None:
    url = os.environ.get("XIEZHU_TEST_DATABASE_URL")
    proc = subprocess.run([sys.executable, "-m", "bench.stores", "--json", "--commands", "5",
                           *(["--database-url", url] if url else [])],
                          capture_output=True, text=True, timeout=240, env=os.environ | {"XIEZHU_DATABASE_URL": ""})
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout)
    backends = {"sqlite", "postgresql"} if url else {"sqlite"}
    assert backends <= set(report) and all(report[b]["commands"] == 5 for b in backends)
