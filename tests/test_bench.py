"""The benchmark still runs end to end (a tiny run; the figures themselves are not checked)."""
from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest


@pytest.mark.timeout(360)  # the benchmark's own process is given 240–300 s
def test_the_exchange_benchmark_completes_and_reports_both_systems() -> None:
    """… and xiezhu's phases again on PostgreSQL, in the same run, where one is given (issue 14)."""
    url = os.environ.get("XIEZHU_TEST_DATABASE_URL")
    proc = subprocess.run([sys.executable, "-m", "bench.exchange", "--json", "--requests", "20",
                           "--latency-samples", "5", "--paced", "10", "--floor-seconds", "0.5",
                           *(["--database-url", url] if url else [])],
                          capture_output=True, text=True, timeout=240, env=os.environ | {"XIEZHU_DATABASE_URL": ""})
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout)
    assert report["ok"] is True
    assert report["xiezhu"]["ledger_events"] == report["xiezhu"]["ledger_expected"]
    if url:
        on_postgres = report["xiezhu_postgresql"]
        assert on_postgres["ledger_events"] == on_postgres["ledger_expected"] and on_postgres["rate_per_s"] > 0
        assert "ratio_floor_postgresql" in report and report["params"]["backends"] == ["sqlite", "postgresql"]
    assert report["raw"]["rate_per_s"] > 0 and report["xiezhu"]["rate_per_s"] > 0
    floor = report["crypto_floor"]
    assert floor["workers"] >= 1 and floor["events_per_exchange"] == 3  # a busy machine may finish none
    assert set(floor["per_event_us"]) == {"seal", "sign", "verify_open", "verify_ledger"}
    assert "ratio_floor" in report
    assert report["xiezhu"]["paced"]["exchanges"] == 10
    assert set(report["xiezhu"]["lag"]["paced"]) >= {"ledger_events", "sla_events"}
    assert set(report["xiezhu"]["cpu_ms_per_exchange"]) == {"process", "nats_server"}
    assert "ratio_floor_cpu" in report
    for phase in ("sequential", "paced"):
        split = report["xiezhu"]["split"][phase]
        assert set(split) == {"request_signed", "request_stored", "reply_signed", "reply_stored", "reply_seen"}
        assert all(stage["p90_ms"] >= stage["p50_ms"] for stage in split.values())
    b = report["budget_cpu_ms"]  # None when the busy machine let the floor finish nothing
    assert b is None or (b["ratio"] == 0.3 and b["allowed_ms"] > b["left_for_the_rest_ms"] and b["xiezhu_rest_ms"] > 0)


def test_the_budget_takes_nats_servers_cpu_and_the_floors_crypto_off_what_the_required_ratio_allows() -> None:
    """At 0.3 of a 2,000/s floor on 2 cores an exchange may cost 3.33 ms of CPU in all."""
    from bench.exchange import budget

    x = {"cpu_ms_per_exchange": {"process": 2.0, "nats_server": 1.5, "services": {"agent gongan": 1.0, "ledger": 1.0}}}
    assert budget({"rate_per_s": 2000.0, "cpu_ms_per_exchange": 1.0}, x, 2) == {
        "ratio": 0.3, "allowed_ms": 3.33, "nats_server_ms": 1.5, "crypto_ms": 1.0, "left_for_the_rest_ms": 0.83,
        "xiezhu_rest_ms": 3.0}
    assert budget({"rate_per_s": 0.0, "cpu_ms_per_exchange": 1.0}, x, 2) is None


@pytest.mark.timeout(360)  # the benchmark's own process is given 240–300 s
def test_the_fairness_benchmark_runs_small_floods_with_and_without_lanes() -> None:
    """The short version of `python -m bench.fairness` (a node, gongan's agent restarted for each of 8 phases)."""
    proc = subprocess.run([sys.executable, "-m", "bench.fairness", "--json", "--flood", "120", "--valid", "20",
                           "--quiet", "2", "--live", "120"], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout)
    bad, good = report["bad_flood"], report["valid_flood"]
    for phase in (bad["with_lanes"], bad["without_lanes"]):
        assert phase["gongan_rejected"] == 120 and phase["gongan_applied"] == 1
        assert phase["gongan_dead_letter_writes"] < 120  # the budget of 50, then a summary per batch
    for phase in (good["with_lanes"], good["without_lanes"]):
        assert phase["gongan_applied"] == 21 and phase["gongan_rejected"] == 0
    # Queued behind the flood, the request went by the fast lane; without lanes everything did.
    assert bad["with_lanes"]["slow_lane_messages"] > 0 and bad["without_lanes"]["slow_lane_messages"] == 0
    assert bad["without_lanes"]["flood_handled_before_reply"] == 120
    assert report["quiet"]["samples"] == 2 and report["after_restart_alone"]["samples"] == 2
    # The live flood: gongan's agent running, ziran flooding from its own process, two requests timed.
    [live] = report["live_flood"]
    for phase in (live["with_lanes"], live["without_lanes"]):
        assert phase["flood"] == 120 and 0 <= phase["xz_copies_behind_at_flood_end"] <= 120
        for request in (phase["mid_flood_request"], phase["after_flood_request"]):
            assert 0 < request["in_xz_ms"] <= request["taken_by_gongan_ms"] <= request["replied_ms"]
    assert live["without_lanes"]["slow_lane_messages"] == 0


def test_the_hops_benchmark_orders_hops_by_their_median_and_numbers_repeats() -> None:
    """Light: the table of bench.hops from made-up marks (a real run starts a node: `python -m bench.hops`)."""
    from bench.hops import hop_table, main

    runs = [[(0.0, "request start"), (0.001, "relay start"), (0.004, "relay end"), (0.005, "relay start"),
             (0.006, "relay end"), (0.010, "reply seen")],
            [(1.0, "request start"), (1.002, "relay start"), (1.003, "relay end"), (1.020, "reply seen")]]
    table = hop_table(runs)
    assert [r["hop"] for r in table] == ["request start", "relay start", "relay end", "relay start#2",
                                         "relay end#2", "reply seen"]
    assert table[-1] == {"hop": "reply seen", "p50_ms": 15.0, "p90_ms": 19.0, "seen": 2}
    assert main(["--exchanges", "0"]) == 2


@pytest.mark.timeout(360)  # the benchmark's own process is given 240–300 s
def test_the_store_benchmark_reports_sqlite_and_postgresql_where_one_is_given() -> None:
    url = os.environ.get("XIEZHU_TEST_DATABASE_URL")
    proc = subprocess.run([sys.executable, "-m", "bench.stores", "--json", "--commands", "5",
                           *(["--database-url", url] if url else [])],
                          capture_output=True, text=True, timeout=240, env=os.environ | {"XIEZHU_DATABASE_URL": ""})
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout)
    backends = {"sqlite", "postgresql"} if url else {"sqlite"}
    assert backends <= set(report) and all(report[b]["commands"] == 5 for b in backends)


def test_the_path_benchmark_times_every_part_of_an_exchange_without_nats() -> None:
    """Light: three exchanges in-process; each part of the path is reported (`python -m bench.path`)."""
    from bench.path import measure

    report = measure(3, 1, 7)
    assert report["exchanges"] == 3 and report["cpu_ms_per_exchange"] > 0
    parts = set(report["parts_ms"])
    assert {"shenpi's request()", "gongan's batch (apply, answer, commit)", "shenpi's batch (apply, answer, commit)",
            "the ledger's append", "view sla follows", "relay reads the outbox"} <= parts


def test_the_split_puts_each_exchanges_time_into_its_stages_by_the_ledgers_times() -> None:
    """Signed at +1 ms, stored at +3, the reply signed at +10 and stored at +12, seen at +20."""
    import asyncio
    from datetime import UTC, datetime, timedelta

    from bench.exchange import stage_split

    t = datetime(2026, 12, 3, 12, tzinfo=UTC)

    def at(ms: float) -> str:
        return (t + timedelta(milliseconds=ms)).isoformat()

    loop = asyncio.new_event_loop()
    try:
        done, unanswered = loop.create_future(), loop.create_future()
        done.set_result(100.020)
        split = stage_split({"c": {"assistance.requested": (at(1), at(3)), "assistance.replied": (at(10), at(12))},
                             "open": {"assistance.requested": (at(1), at(3))}}, ["c", "open", "elsewhere"],
                            {"c": 100.0, "open": 100.0}, {"c": done, "open": unanswered}, t.timestamp() - 100.0)
    finally:
        loop.close()
    assert {k: round(v["p50_ms"], 1) for k, v in split.items()} == {
        "request_signed": 1.0, "request_stored": 2.0, "reply_signed": 7.0, "reply_stored": 2.0, "reply_seen": 8.0}


def test_the_sourcing_benchmark_measures_both_layouts() -> None:
    """The short version of `python -m bench.sourcing` (decision 50's cost of XZ's copy, on one nats-server)."""
    proc = subprocess.run([sys.executable, "-m", "bench.sourcing", "--json", "--messages", "5", "--rounds", "1"],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout)
    assert set(report["p50_ms"]) == set(report["server_cpu_ms_per_message"]) == {"direct", "sourced"}
    assert all(len(rounds) == 1 and rounds[0]["p50_ms"] > 0 for rounds in report["rounds"].values())
