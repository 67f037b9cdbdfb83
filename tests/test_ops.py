"""/healthz, /readyz and /metrics of the long-running processes, against a real nats-server."""
from __future__ import annotations

import asyncio
import json
import logging
from pathlib import Path

import httpx
from prometheus_client.parser import text_string_to_metric_families

from aggregates.clock import SimulatedClock
from aggregates.registry import Registry
from broker.server import EmbeddedNats
from schemas.envelope import Signed
from tests.conftest import START
from tests.test_exchange import _envelope, _publish, _sealed, request
from xiezhu.http.app import FrontDoor, create_app
from xiezhu.logs import JsonFormatter, event_fields
from xiezhu.node import Node
from xiezhu.ops import NodeOps, OpsServer, ops_app
from xiezhu.settings import Settings


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of a Prometheus text exposition, by name and sorted labels."""
    out = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


async def test_a_node_reports_health_readiness_and_its_metrics_on_its_ops_port(node: Node) -> None:
    request(node)
    env = _envelope(node)
    unsigned = Signed(body=_sealed(node, env).body, kid="", sig=b"")
    await _publish(node, "xz.shenpi.gongan.assistance.requested", unsigned)
    await node.settle()

    server = OpsServer(NodeOps(node), "127.0.0.1", 0)  # a port the system chooses as it binds: none to lose
    await server.start()
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{server.port}") as client:
            assert (await client.get("/healthz")).json() == {"status": "ok"}
            r = await client.get("/readyz")
            assert r.status_code == 200, r.text
            checks = {c["name"]: c["ok"] for c in r.json()["checks"]}
            assert {"nats:gongan", "consumer:gongan", "store:gongan", "nats:ledger", "consumer:ledger"} <= set(checks)
            assert all(checks.values())
            r = await client.get("/metrics")
    finally:
        await server.stop()
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/plain")
    got = samples(r.text)
    assert got[("xiezhu_messages_applied_total", (("receiver", "gongan"),))] == 1  # the request
    assert got[("xiezhu_messages_received_total", (("receiver", "gongan"),))] == 2  # and the unsigned one
    assert got[("xiezhu_dead_letters_total", (("reason", "unsigned"), ("receiver", "gongan")))] == 1
    assert got[("xiezhu_messages_applied_total", (("receiver", "ledger"),))] == 3  # requested, received, replied
    assert got[("xiezhu_ledger_position", ())] == 3
    assert got[("xiezhu_ledger_event_deliveries_max", ())] == 0  # no event came 10 times (decision 62)
    assert got[("xiezhu_outbox_size", (("bureau", "shenpi"),))] == 0
    assert got[("xiezhu_relay_lag_seconds", (("bureau", "shenpi"),))] == 0
    assert got[("xiezhu_consumer_pending", (("consumer", "ledger"),))] == 0
    assert got[("xiezhu_open_requests", (("bureau", "gongan"), ("state", "overdue")))] == 0
    assert got[("xiezhu_request_reply_seconds_count", (("bureau", "gongan"),))] == 1
    assert got[("xiezhu_request_reply_seconds_bucket", (("bureau", "gongan"), ("le", "3600.0")))] == 1


async def test_readyz_says_503_while_nats_is_away_and_200_once_it_is_back(node: Node,
                                                                          nats_server: EmbeddedNats) -> None:
    app = ops_app(NodeOps(node))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app), base_url="http://ops") as client:
        assert (await client.get("/readyz")).status_code == 200
        nats_server.stop()
        try:
            r = await client.get("/readyz")
            assert r.status_code == 503
            failed = {c["name"] for c in r.json()["checks"] if not c["ok"]}
            assert {"nats:gongan", "nats:ledger"} <= failed
            assert (await client.get("/healthz")).status_code == 200  # alive, only not ready
        finally:
            nats_server.start()
        ready: list[int] = []

        async def poll() -> None:
            ready.append((await client.get("/readyz")).status_code)

        async def until_ready() -> None:
            while not ready or ready[-1] != 200:
                await poll()
                await asyncio.sleep(0.2)

        await asyncio.wait_for(until_ready(), timeout=30)


def test_a_log_line_about_an_event_names_its_bureau_case_and_id_and_masks_the_applicant() -> None:
    record = logging.LogRecord("agencies.agent", logging.WARNING, __file__, 1,
                               "cannot apply: applicant 张三 370405199001011234", None, None)
    for k, v in event_fields("gongan", number="20260001", case="c-1", event_id="e-1").items():
        setattr(record, k, v)
    line = json.loads(JsonFormatter().format(record))
    assert line["level"] == "warning" and line["bureau"] == "gongan" and line["number"] == "20260001"
    assert line["case"] == "c-1" and line["event_id"] == "e-1" and line["time"].endswith("Z")
    assert "370405199001011234" not in line["message"]


async def test_serve_has_the_same_endpoints_and_counts_what_its_webhooks_owe(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path / "data")
    door = FrontDoor(settings, Registry.load(), ["gongan"], SimulatedClock(START))
    try:
        door.feeds["gongan"].register("http://127.0.0.1:9/hook", since=0)
        app = create_app(door, background=False)
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app), base_url="http://xiezhu") as client:
            assert (await client.get("/healthz")).status_code == 200
            r = await client.get("/readyz")
            assert r.status_code == 200, r.text
            got = samples((await client.get("/metrics")).text)
    finally:
        door.close()
    assert got[("xiezhu_webhook_pending", (("bureau", "gongan"),))] == 0
    assert got[("xiezhu_feed_notices_total", (("bureau", "gongan"),))] == 0
