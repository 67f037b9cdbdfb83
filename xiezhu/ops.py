"""What the people who run xiezhu watch: ``/healthz``, ``/readyz`` and Prometheus ``/metrics``.

Every long-running process has them: ``xiezhu agent`` and ``xiezhu ledger`` on their
``--ops-port``, ``xiezhu serve`` on its own port.  The metrics are read at scrape time
from the counters the services keep anyway (the intake's stats, the relay, the ledger
head and its checkpoints, the SLA view, the feeds' webhook cursors) by one custom
collector, so no service carries metric code of its own.  What needs NATS (a consumer's
pending count) is fetched by the ``/metrics`` handler just before the collector runs.

- ``/healthz``: the process's event loop answers (200).
- ``/readyz``: 200 when every check passes, else 503; each check in the JSON body:
  connected to NATS, its durable consumer present with the configuration it expects
  (:class:`broker.streams.ConsumerGuard`), the consumer not given up, its store writable.
"""
from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import sqlite3
from collections.abc import Awaitable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from prometheus_client.core import (
    CollectorRegistry,
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector

from broker.intake import IntakeStats
from broker.signing import decode_checked
from broker.streams import EVENTS_STREAM, LEDGER_CONSUMER, agent_consumer

if TYPE_CHECKING:
    from fastapi import FastAPI

    from xiezhu.node import Node

log = logging.getLogger(__name__)

#: ``xiezhu serve``'s :class:`xiezhu.http.app.FrontDoor` (which mounts these endpoints: no import back).
FrontDoor = Any

#: Seconds a readiness check may take before it counts as failed.
CHECK_TIMEOUT_S = 3.0
#: At most this many unsent envelopes are counted in a scrape (the gauge then says "at least").
OUTBOX_COUNT_LIMIT = 10_000
#: Request→reply latency buckets, seconds: an hour, a day, … a month.
LATENCY_BUCKETS = (3600.0, 4 * 3600.0, 86400.0, 2 * 86400.0, 3 * 86400.0, 5 * 86400.0, 7 * 86400.0,
                   10 * 86400.0, 14 * 86400.0, 21 * 86400.0, 30 * 86400.0)


@dataclass(frozen=True)
class Check:
    """One readiness check's outcome."""

    name: str
    ok: bool
    detail: str = ""


def sqlite_writable(path: Path) -> Check:
    """A SQLite file (and its directory, for the WAL) can take a write lock now."""
    name = f"writable:{path.name}"
    if not path.exists():
        return Check(name, False, f"{path} does not exist")
    if not os.access(path, os.W_OK) or not os.access(path.parent, os.W_OK):
        return Check(name, False, f"{path} is read-only")
    try:
        conn = sqlite3.connect(path, timeout=CHECK_TIMEOUT_S, isolation_level=None)
        try:
            conn.execute("BEGIN IMMEDIATE")
            conn.execute("ROLLBACK")
        finally:
            conn.close()
    except sqlite3.Error as e:
        return Check(name, False, f"{path}: {e}")
    return Check(name, True)


async def _bounded(name: str, check: Awaitable[object]) -> Check:
    try:
        await asyncio.wait_for(check, timeout=CHECK_TIMEOUT_S)
    except Exception as e:
        return Check(name, False, str(e) or type(e).__name__)
    return Check(name, True)


@dataclass
class Consumers:
    """Pending counts of durable consumers, as last fetched from NATS (by the ``/metrics`` handler)."""

    pending: dict[str, tuple[int, int]] = field(default_factory=dict)


# -- a node: agents, the ledger, the SLA view -------------------------------------------------------


class NodeOps:
    """Readiness and metrics of a :class:`xiezhu.node.Node` (``xiezhu agent``, ``xiezhu ledger``)."""

    def __init__(self, node: Node) -> None:
        self.node = node
        self.consumers = Consumers()

    async def readiness(self) -> list[Check]:
        """Every check of :data:`/readyz`."""
        node = self.node
        checks: list[Check] = []
        for code, agent in node.agents.items():
            conn = agent.nc  # the agent's nats-py client (None before start)
            checks.append(Check(f"nats:{code}", bool(conn is not None and conn.is_connected),
                                "" if conn is not None and conn.is_connected else "not connected to NATS"))
            if agent.refused is not None:
                checks.append(Check(f"consumer:{code}", False, str(agent.refused)))
            elif agent.guard is not None:
                checks.append(await _bounded(f"consumer:{code}", agent.guard.check()))
            else:
                checks.append(Check(f"consumer:{code}", False, "not started"))
            checks.append(await asyncio.to_thread(self._store_writable, code))
        svc = node.ledger_service
        if svc is not None:
            connected = svc.nc is not None and svc.nc.is_connected
            checks.append(Check("nats:ledger", connected, "" if connected else "not connected to NATS"))
            if svc.refused is not None:
                checks.append(Check("consumer:ledger", False, str(svc.refused)))
            elif svc.guard is not None:
                checks.append(await _bounded("consumer:ledger", svc.guard.check()))
            checks.append(await asyncio.to_thread(self._ledger_writable))
        if not checks:
            checks.append(Check("services", False, "this process runs no agent and no ledger"))
        return checks

    def _ledger_writable(self) -> Check:
        led = self.node.ledger
        if led is not None and led.location != self.node.settings.ledger_path:  # PostgreSQL: the ledger answers
            try:
                led.contains("")
            except Exception as e:
                return Check("ledger", False, str(e))
            return Check("ledger", True)
        return sqlite_writable(self.node.settings.ledger_path)

    def _store_writable(self, code: str) -> Check:
        if self.node.settings.database_url:  # PostgreSQL: the store answers a query
            try:
                self.node.store(code).recorder.max_notification_id()
            except Exception as e:
                return Check(f"store:{code}", False, str(e))
            return Check(f"store:{code}", True)
        c = sqlite_writable(self.node.settings.store_path(code))
        return Check(f"store:{code}", c.ok, c.detail)

    async def refresh(self) -> None:
        """Fetch what only NATS knows (each consumer's pending counts) for the next collection."""
        node = self.node
        names: list[tuple[str, Any]] = []
        for code, agent in node.agents.items():
            conn = agent.nc
            if conn is not None and conn.is_connected:
                names.append((agent_consumer(code), conn.jetstream()))
        svc = node.ledger_service
        if svc is not None and svc.nc is not None and svc.nc.is_connected:
            names.append((LEDGER_CONSUMER, svc.nc.jetstream()))
        for name, js in names:
            try:
                info = await asyncio.wait_for(js.consumer_info(EVENTS_STREAM, name), timeout=CHECK_TIMEOUT_S)
            except Exception as e:  # NATS away: the gauge drops out rather than lie
                log.debug("consumer %s: %s", name, e)
                self.consumers.pending.pop(name, None)
                continue
            self.consumers.pending[name] = (int(info.num_pending or 0), int(info.num_ack_pending or 0))

    def collector(self) -> Collector:
        return NodeCollector(self.node, self.consumers)


class NodeCollector(Collector):
    """The node's metrics, read from its services' own counters at scrape time."""

    def __init__(self, node: Node, consumers: Consumers) -> None:
        self.node = node
        self.consumers = consumers

    def collect(self) -> Iterator[Metric]:
        node = self.node
        intakes: list[tuple[str, IntakeStats, int | None]] = []
        for code, agent in node.agents.items():
            if agent.intake is not None:
                intakes.append((code, agent.intake.stats, None))
        if node.ledger_service is not None:
            intakes.append(("ledger", node.ledger_service.stats, node.ledger_service.appended))
        yield from intake_metrics(intakes)
        yield from self._relays()
        yield from consumer_metrics(self.consumers)
        yield from self._ledger()
        if node.sla is not None:
            yield from sla_metrics(node.sla.rows(now=node.clock.now()), now=node.clock.now())

    def _relays(self) -> Iterator[Metric]:
        published = CounterMetricFamily("xiezhu_relay_published", "Envelopes the relay published to JetStream.",
                                        labels=["bureau"])
        outbox = GaugeMetricFamily("xiezhu_outbox_size", "Envelopes committed to a bureau store, not yet acked "
                                   "by JetStream.", labels=["bureau"])
        lag = GaugeMetricFamily("xiezhu_relay_lag_seconds", "Age of the oldest envelope waiting in the outbox "
                                "(0 when empty).", labels=["bureau"])
        now = self.node.clock.now()
        for code, agent in self.node.agents.items():
            if agent.relay is None:
                continue
            published.add_metric([code], agent.relay.published)
            try:
                rows = agent.store.outgoing_since(agent.positions.get(code), OUTBOX_COUNT_LIMIT)
            except Exception as e:  # the store is busy: this scrape goes without it
                log.debug("outbox %s: %s", code, e)
                continue
            outbox.add_metric([code], len(rows))
            age = 0.0
            if rows:
                age = max(0.0, (now - decode_checked(rows[0][1].body).time).total_seconds())
            lag.add_metric([code], age)
        yield from (published, outbox, lag)

    def _ledger(self) -> Iterator[Metric]:
        led = self.node.ledger
        if led is None or self.node.ledger_service is None:
            return
        pos = GaugeMetricFamily("xiezhu_ledger_position", "Position of the ledger's last entry.")
        pos.add_metric([], led.head[0])
        yield pos
        stuck = GaugeMetricFamily("xiezhu_ledger_event_deliveries_max",
                                  "The most times an event not yet recorded was delivered to the ledger (0: none "
                                  "came 10 times; 10 or more: it keeps failing on one, and never skips it).")
        stuck.add_metric([], max(self.node.ledger_service.redelivered.values(), default=0))
        yield stuck
        checkpoints = led.checkpoints()
        last = GaugeMetricFamily("xiezhu_ledger_checkpoint_position", "Position of the last signed checkpoint.")
        last.add_metric([], checkpoints[-1].pos if checkpoints else 0)
        yield last
        if checkpoints:
            since = GaugeMetricFamily("xiezhu_ledger_seconds_since_checkpoint",
                                      "Seconds since 区司法局 signed the last checkpoint.")
            signed = datetime.fromisoformat(checkpoints[-1].signed_at)
            since.add_metric([], max(0.0, (self.node.clock.now() - signed).total_seconds()))
            yield since


def intake_metrics(intakes: Iterable[tuple[str, IntakeStats, int | None]]) -> Iterator[Metric]:
    """Messages received, applied, duplicate and dead-lettered by reason, per receiver."""
    received = CounterMetricFamily("xiezhu_messages_received", "Messages taken off the receiver's consumer.",
                                   labels=["receiver"])
    applied = CounterMetricFamily("xiezhu_messages_applied", "Messages applied to the store (the ledger: "
                                  "appended).", labels=["receiver"])
    duplicates = CounterMetricFamily("xiezhu_messages_duplicate", "Redeliveries of messages already applied.",
                                     labels=["receiver"])
    dead = CounterMetricFamily("xiezhu_dead_letters", "Messages dead-lettered, by reason.",
                               labels=["receiver", "reason"])
    for name, stats, appended in intakes:
        done = stats.applied if appended is None else appended
        received.add_metric([name], stats.received)
        applied.add_metric([name], done)
        duplicates.add_metric([name], stats.duplicates)
        for reason, n in sorted(stats.rejected_by_code.items()):
            dead.add_metric([name, reason], n)
    yield from (received, applied, duplicates, dead)


def consumer_metrics(consumers: Consumers) -> Iterator[Metric]:
    pending = GaugeMetricFamily("xiezhu_consumer_pending", "Messages on the stream the consumer has not "
                                "delivered yet.", labels=["consumer"])
    ack_pending = GaugeMetricFamily("xiezhu_consumer_ack_pending", "Messages delivered, not yet acked.",
                                    labels=["consumer"])
    for name, (p, a) in sorted(consumers.pending.items()):
        pending.add_metric([name], p)
        ack_pending.add_metric([name], a)
    yield from (pending, ack_pending)


def sla_metrics(rows: list[dict[str, Any]], *, now: datetime) -> Iterator[Metric]:
    """Open requests by bureau and SLA state, and the request→reply latency histogram, from SLA view rows."""
    from projections.sla import OPEN_STATES

    opened = GaugeMetricFamily("xiezhu_open_requests", "Open assistance requests, by assisting bureau and "
                               "SLA state.", labels=["bureau", "state"])
    counts: dict[tuple[str, str], int] = {}
    per: dict[str, list[float]] = {}
    for r in rows:
        if r["state"] in OPEN_STATES:
            key = (r["assistor"], r["state"])
            counts[key] = counts.get(key, 0) + 1
        elif r["status"] in ("replied", "declined") and r.get("arrived_at") and r.get("answered_at"):
            span = datetime.fromisoformat(r["answered_at"]) - datetime.fromisoformat(r["arrived_at"])
            per.setdefault(r["assistor"], []).append(max(0.0, span.total_seconds()))
    for code in sorted({r["assistor"] for r in rows}):
        for state in OPEN_STATES:
            opened.add_metric([code, state], counts.get((code, state), 0))
    yield opened
    latency = HistogramMetricFamily("xiezhu_request_reply_seconds", "From a request's arrival to its reply or "
                                    "decline.", labels=["bureau"])
    for code, took in sorted(per.items()):
        buckets = [(_bound(b), sum(1 for t in took if t <= b)) for b in LATENCY_BUCKETS]
        buckets.append(("+Inf", len(took)))
        latency.add_metric([code], buckets, sum(took))
    yield latency


def _bound(seconds: float) -> str:
    return f"{seconds:.1f}"


# -- serve: the front door ---------------------------------------------------------------------------


class DoorOps:
    """Readiness and metrics of ``xiezhu serve``: its bureaus' stores and feeds, the webhooks' backlog."""

    def __init__(self, door: FrontDoor) -> None:
        self.door = door

    async def readiness(self) -> list[Check]:
        checks: list[Check] = []
        for code in self.door.bureaus:
            settings = self.door.settings
            if settings.database_url:
                checks.append(Check(f"store:{code}", True, "PostgreSQL (the agent's concern)"))
            elif settings.store_exists(code):
                c = await asyncio.to_thread(sqlite_writable, settings.store_path(code))
                checks.append(Check(f"store:{code}", c.ok, c.detail))
            else:
                checks.append(Check(f"store:{code}", True, "no store yet: made by the first action"))
            c = await asyncio.to_thread(sqlite_writable, settings.feed_path(code))
            checks.append(Check(f"feed:{code}", c.ok, c.detail))
        tasks = [t for t in self.door._tasks if t.done()]
        checks.append(Check("background", not tasks, "" if not tasks else
                            f"{len(tasks)} feed/webhook task(s) ended"))
        return checks

    async def refresh(self) -> None:
        return None

    def collector(self) -> Collector:
        return DoorCollector(self.door)


class DoorCollector(Collector):
    def __init__(self, door: FrontDoor) -> None:
        self.door = door
        self._view: Any = None

    def _sla(self) -> Iterator[Metric]:
        """On 区司法局's machine (the SLA view beside serve): open requests by state and the latency histogram."""
        path = self.door.settings.sla_location
        if not self.door.settings.view_exists(path):
            return
        if self._view is None:
            from aggregates.calendar_store import CalendarStore
            from projections.sla import SlaView

            self._view = SlaView(path, CalendarStore(self.door.settings.calendar_dir))
        now = self.door.clock.now()
        yield from sla_metrics(self._view.rows(now=now), now=now)

    def collect(self) -> Iterator[Metric]:
        pending = GaugeMetricFamily("xiezhu_webhook_pending", "Notices the bureau's webhook has not acknowledged.",
                                    labels=["bureau"])
        failed = GaugeMetricFamily("xiezhu_webhook_failed_attempts", "Failed tries of the webhook's next delivery.",
                                   labels=["bureau"])
        head = CounterMetricFamily("xiezhu_feed_notices", "Notices that arrived for the bureau (its feed).",
                                   labels=["bureau"])
        for code, feed in self.door.feeds.items():
            hook = feed.webhook()
            pending.add_metric([code], feed.pending())
            failed.add_metric([code], hook.attempts if hook else 0)
            head.add_metric([code], feed.head)
        mailed = CounterMetricFamily("xiezhu_alert_mails", "Deadline alerts mailed to the bureau's people.",
                                     labels=["bureau"])
        for code, alerts in getattr(self.door, "alerts", {}).items():
            mailed.add_metric([code], len(alerts.mailed()))
        yield from (pending, failed, head, mailed)
        yield from self._sla()
        extra = getattr(self.door, "ops_metrics", None)
        if extra is not None:
            yield from extra()


# -- the endpoints ------------------------------------------------------------------------------------


def mount(app: FastAPI, ops: NodeOps | DoorOps) -> None:
    """Add ``/healthz``, ``/readyz`` and ``/metrics`` to ``app``."""
    from fastapi.responses import JSONResponse, Response

    registry = CollectorRegistry(auto_describe=False)
    registry.register(ops.collector())

    @app.get("/healthz", include_in_schema=False)
    async def healthz() -> JSONResponse:
        return JSONResponse({"status": "ok"})

    @app.get("/readyz", include_in_schema=False)
    async def readyz() -> JSONResponse:
        checks = await ops.readiness()
        ok = all(c.ok for c in checks)
        body = {"status": "ready" if ok else "not-ready",
                "checks": [{"name": c.name, "ok": c.ok, "detail": c.detail} for c in checks]}
        return JSONResponse(body, status_code=200 if ok else 503)

    @app.get("/metrics", include_in_schema=False)
    async def metrics() -> Response:
        await ops.refresh()
        body = await asyncio.to_thread(generate_latest, registry)
        return Response(body, media_type=CONTENT_TYPE_LATEST)


def ops_app(ops: NodeOps | DoorOps) -> FastAPI:
    """A small app with only the three endpoints (agent, ledger)."""
    from fastapi import FastAPI

    app = FastAPI(title="xiezhu ops", docs_url=None, redoc_url=None, openapi_url=None)
    mount(app, ops)
    return app


class OpsServer:
    """The ops endpoints served on ``host:port`` inside a running event loop (``--ops-port``)."""

    def __init__(self, ops: NodeOps | DoorOps, host: str, port: int) -> None:
        import uvicorn

        config = uvicorn.Config(ops_app(ops), host=host, port=port, log_level="warning", lifespan="off",
                                access_log=False)
        self.server = uvicorn.Server(config)
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self._task = asyncio.create_task(self._serve(), name="ops")
        while not self.server.started:
            if self._task.done():
                await self._task
                raise OSError("the ops endpoints did not start")
            await asyncio.sleep(0.02)

    @property
    def port(self) -> int:
        """The port it listens on, once started (the one the system chose, where it was given 0)."""
        return int(self.server.servers[0].sockets[0].getsockname()[1])

    async def _serve(self) -> None:
        with _no_signal_capture(self.server):
            await self.server.serve()

    async def stop(self) -> None:
        self.server.should_exit = True
        if self._task is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await self._task


@contextlib.contextmanager
def _no_signal_capture(server: Any) -> Iterator[None]:
    """uvicorn ≥ 0.29 captures SIGINT/SIGTERM while serving; the command handles them itself."""
    original = getattr(server, "capture_signals", None)
    if original is not None:
        server.capture_signals = contextlib.nullcontext
    try:
        yield
    finally:
        if original is not None:
            server.capture_signals = original
