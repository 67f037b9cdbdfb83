"""Benchmark: what a xiezhu assistance exchange costs over bare JetStream request/reply.

Run from the project root::

    .venv/bin/python -m bench.exchange --json

One run measures two systems on the same kind of embedded nats-server (one each, on a
temporary directory), one after the other, with the same two phases each:

``xiezhu``
    A :class:`~xiezhu.node.Node` with the ``shenpi`` (requester) and ``gongan`` (verifier)
    agents, the 司法局 ledger and the SLA projection, on the system clock.  gongan's
    household register is seeded with a few thousand residents so that requests ask about
    different people.  One exchange is: ``store("shenpi").assistance.request(...)`` signs and commits
    the request, shenpi's relay publishes it, gongan verifies the signature, commits the
    request and its signed receipt, answers from its register, commits the signed reply,
    its relay publishes receipt and reply, and shenpi verifies and commits both.  An
    exchange is done when shenpi's store holds the reply (the case is ``replied``).  The
    ledger records all three events of every exchange.

``raw``
    The floor under that: plain nats-py on the same stream and consumer configuration
    (:func:`broker.streams.ensure_streams`, :func:`broker.streams.consumer_config`, the
    ``xz.shenpi.gongan.*`` / ``xz.gongan.shenpi.*`` subjects, each side with its own
    connection and a durable pull consumer fetched in batches of the agents' size, as the agents
    do).  A requester ``js.publish``-es a request, a responder task fetches it, publishes a
    reply and acks, the requester fetches the reply.  Bodies and headers have the sizes
    of xiezhu's real signed request and reply (taken from the xiezhu run), but nothing is
    signed, verified or stored, there is no receipt and no ledger consumer.

``crypto_floor``
    The cryptography of one exchange alone (:mod:`bench.floor`): its three events, taken
    from the xiezhu run, sealed to three readers, signed, verified twice and opened once,
    one worker process per core, no storage, network or event loop.  It is measured twice
    (before and after the raw run) and the higher sample is kept; ``ratio_floor`` is
    ``xiezhu.rate_per_s / crypto_floor.rate_per_s``, issue 14's measure.

Phases, for both systems, after a few unmeasured warm-up exchanges:

* sequential latency: one exchange at a time; latency is from just before the request
  is made to the moment its reply is seen by the requester;
* throughput: ``--requests`` exchanges submitted as fast as the requester can, with all
  of them in flight at once; the rate is exchanges / (first submit → last reply, and for
  xiezhu also → the ledger holding every event).  The per-exchange latencies under that
  load are reported too.  For xiezhu, ``node.settle()`` (which also waits for the SLA
  projection and adds its own quiet-period polling) follows, and is reported separately.

How completion is observed for xiezhu: a watcher reads shenpi's SQLite store through its
own read-only connection (eventsourcing's ``stored_events`` table, whose rowid is the
notification id) and looks for each case's third event (request, receipt, reply), polling
every ``--poll-ms``.  That costs one indexed query per poll and never touches the store's
own connection pool or the event loop's other work; the quantisation adds on average half
a poll interval to each xiezhu latency.  Every case is afterwards loaded through
``store.assistance.case()`` (off the clock) to confirm it really is ``replied``, and
``len(node.ledger)`` is checked against three events per exchange.

The numbers are for comparison on one machine, not targets: nothing here is asserted on
time.  The process exits with status 1 if an exchange did not complete correctly, and
2 if one never completed (a lost message: nothing happened for two minutes).
"""
from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import platform
import random
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from importlib import metadata
from pathlib import Path
from typing import Any

import nats
import sqlite_utils
from eventsourcing.utils import get_topic
from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.js import JetStreamContext

from agencies import agent
from agencies.trust.keys import KeyStore
from aggregates.calendar_store import CalendarStore
from aggregates.clock import SystemClock
from aggregates.database import Sql, db_errors, drop_schemas, is_postgres, schema_location
from aggregates.registry import JUSTICE, Registry
from aggregates.store import AssistanceCase
from bench import floor
from broker.auth import ADMIN
from broker.ledger.store import Ledger
from broker.server import EmbeddedNats, ServerError, find_binary
from broker.signing import b64
from broker.streams import (
    EVENTS_STREAM,
    LEDGER_CONSUMER,
    agent_consumer,
    consumer_config,
    ensure_streams,
    inbox_filter,
    sending_stream,
)
from projections.base import LedgerProjection
from projections.commitments import CommitmentView
from projections.credit import CreditView
from projections.sla import SlaView
from schemas.assistance import Applicant, CommitmentItem, Matter
from schemas.catalogue import AssistanceItem
from schemas.envelope import HDR_KEY, HDR_MSG_ID, HDR_SIG, Envelope, new_id
from xiezhu.node import Node
from xiezhu.running import agent_running
from xiezhu.settings import Settings
from xiezhu.supervisor import Supervisor, child_env, plan

REQUESTER = "shenpi"
ASSISTOR = "gongan"
ITEM_CODE = "XZ-0001"
#: Request, receipt, reply: what one xiezhu exchange puts on the stream and in the ledger.
XIEZHU_EVENTS_PER_EXCHANGE = 3
#: Request and reply.
RAW_MESSAGES_PER_EXCHANGE = 2
#: A letter number is ``<year><4 digits>``: a requester has 9999 a year.
MAX_LETTERS_PER_YEAR = 9999
#: Guards against a hang (a lost message), not a performance threshold.
STALL_TIMEOUT_S = 120.0
#: How long one raw pull request waits; it only matters while nothing arrives (a fetch of
#: one returns at the first message), as for the agents' pulls.
FETCH_TIMEOUT_S = 1.0

MATTER = Matter(code="370405-XK-0101", name="食品经营许可")
TOWNS = ["运河街道", "张山子镇", "涧头集镇", "邳庄镇", "马兰屯镇", "泥沟镇"]
SURNAMES = "王李张刘陈杨赵黄周吴徐孙胡朱高林何郭马罗"
GIVEN = "伟芳娜敏静磊洋勇艳杰军涛明霞平刚"


class BenchError(RuntimeError):
    """The benchmark could not run as asked."""


# -- options and results ---------------------------------------------------------------


@dataclass(frozen=True)
class Options:
    """What to run."""

    requests: int = 1000
    latency_samples: int = 200
    warmup: int = 10
    residents: int = 5000
    poll_ms: float = 1.0
    throughput_poll_ms: float = 5.0
    seed: int = 20260921
    floor_seconds: float = 3.0
    #: Messages an agent takes a fetch (``agencies.agent.FETCH_BATCH``; 1 is how agents ran before issue 14).
    agent_batch: int = 0
    #: gongan's agent and the ledger in processes of their own (``xiezhu run``), not in the bench's.
    processes: bool = False
    #: The paced phase: ``paced`` exchanges offered at ``rate`` a second, whatever the replies do.
    paced: int = 500
    rate: float = 100.0
    #: Requests made at once in the paced and throughput phases: each a clerk of shenpi's, in a thread
    #: of its own.  One was the only way before; several commit together (decision 68).
    clerks: int = 8
    lag_interval_s: float = 0.25
    #: ``postgresql://…``: run xiezhu's phases again with the stores, ledger and views there (decision 52).
    database_url: str | None = None

    @property
    def total_requests(self) -> int:
        """Every exchange one system runs, warm-up included."""
        return self.warmup + self.latency_samples + self.paced + self.requests


@dataclass(frozen=True)
class WireShape:
    """Sizes of xiezhu's signed request and reply on the wire, to mirror in the raw run."""

    request_bytes: int
    reply_bytes: int
    kid: str
    sig_b64: str

    def headers(self, msg_id: str) -> dict[str, str]:
        """Headers of xiezhu's size and shape (copied strings: nothing is signed)."""
        return {HDR_MSG_ID: msg_id, HDR_KEY: self.kid, HDR_SIG: self.sig_b64}


@dataclass
class Measured:
    """Raw measurements of one system."""

    latencies_s: list[float]
    throughput_exchanges: int
    throughput_elapsed_s: float
    loaded_latencies_s: list[float]
    paced_latencies_s: list[float]
    paced_elapsed_s: float
    extra: dict[str, Any] = field(default_factory=dict)
    #: One exchange's events in the clear (xiezhu only): what the crypto floor seals, signs and opens.
    envelopes: list[Envelope] = field(default_factory=list)


def percentile_ms(samples: list[float], pct: int) -> float:
    """The ``pct``-th percentile of samples in seconds, in milliseconds."""
    if len(samples) == 1:
        return samples[0] * 1000
    return statistics.quantiles(samples, n=100, method="inclusive")[pct - 1] * 1000


def summarize(m: Measured, shape: WireShape) -> dict[str, Any]:
    """The JSON section of one system."""
    return {
        "exchanges": m.throughput_exchanges,
        "rate_per_s": round(m.throughput_exchanges / m.throughput_elapsed_s, 1),
        "elapsed_s": round(m.throughput_elapsed_s, 3),
        "p50_ms": round(percentile_ms(m.latencies_s, 50), 3),
        "p99_ms": round(percentile_ms(m.latencies_s, 99), 3),
        "mean_ms": round(statistics.fmean(m.latencies_s) * 1000, 3),
        "max_ms": round(max(m.latencies_s) * 1000, 3),
        "latency_samples": len(m.latencies_s),
        "loaded_p50_ms": round(percentile_ms(m.loaded_latencies_s, 50), 3),
        "loaded_p99_ms": round(percentile_ms(m.loaded_latencies_s, 99), 3),
        "paced": {
            "exchanges": len(m.paced_latencies_s),
            "offered_per_s": round(len(m.paced_latencies_s) / m.paced_elapsed_s, 1),
            "p50_ms": round(percentile_ms(m.paced_latencies_s, 50), 3),
            "p99_ms": round(percentile_ms(m.paced_latencies_s, 99), 3),
            "max_ms": round(max(m.paced_latencies_s) * 1000, 3),
        } if m.paced_latencies_s else {},
        "request_bytes": shape.request_bytes,
        "reply_bytes": shape.reply_bytes,
    } | m.extra


# -- the xiezhu workload -----------------------------------------------------------------


def make_residents(n: int, rng: random.Random) -> list[dict[str, Any]]:
    """gongan's household register: ``n`` distinct people, about 6% with a record."""
    first_birthday = date(1960, 1, 1)  # one person born a day: distinct ID numbers
    return [{
        "id_number": f"370405{first_birthday + timedelta(days=i):%Y%m%d}{i % 1000:03d}"
                     + rng.choice("0123456789X"),
        "name": rng.choice(SURNAMES) + "".join(rng.choices(GIVEN, k=rng.choice((1, 2)))),
        "residence": "山东省枣庄市台儿庄区" + rng.choice(TOWNS),
        "criminal_record": int(rng.random() < 0.06),
    } for i in range(n)]


def seed_residents(settings: Settings, residents: list[dict[str, Any]]) -> None:
    """Write the register where gongan's verifier reads it, as tests/conftest.py does."""
    settings.bureau_dir(ASSISTOR).mkdir(parents=True, exist_ok=True)
    db = sqlite_utils.Database(settings.bureau_data_path(ASSISTOR))
    db.table("residents").insert_all(residents, pk="id_number")
    db.close()


def request_for(resident: dict[str, Any]) -> dict[str, Any]:
    """The keyword arguments of ``store.assistance.request`` for one resident's application."""
    town = resident["residence"].removeprefix("山东省枣庄市台儿庄区")
    applicant = Applicant(kind="person", name=resident["name"], id_number=resident["id_number"])
    return {
        "assistor": ASSISTOR,
        "applicant": applicant,
        "matter": MATTER,
        "applied_on": date.today(),
        "items": [
            CommitmentItem(no=1, text=f"本人户籍所在地为{town}", check="hukou.residence",
                           facts={"address": town}),
            CommitmentItem(no=2, text="本人无犯罪记录", check="police.no-criminal-record"),
        ],
        "catalogue_item": ITEM_CODE,
    }


class ReplyWatcher:
    """Notices each case's reply landing in the requester's store, at the cost of one query.

    It reads eventsourcing's ``stored_events`` table through its own read-only connection,
    walking forward by rowid (the notification id), and reports a case as answered when
    the case's third event (request, receipt, answer) is committed.
    """

    ANSWER_VERSION = XIEZHU_EVENTS_PER_EXCHANGE
    GOT = get_topic(AssistanceCase.Got)

    def __init__(self, store: Path | str, interval_s: float) -> None:
        self.interval_s = interval_s
        if is_postgres(store):  # eventsourcing's table in the bureau's schema, by notification id
            self._db = Sql(store, read_only=True)
            self._sql = ("SELECT notification_id, originator_id, originator_version, topic FROM bureaustore_events "
                         "WHERE notification_id > ? ORDER BY notification_id")
        else:
            self._db = Sql.wrap(sqlite3.connect(f"file:{store}?mode=ro", uri=True, isolation_level=None), store)
            self._sql = ("SELECT rowid, originator_id, originator_version, topic FROM stored_events "
                         "WHERE rowid > ? ORDER BY rowid")
        self._after = 0
        self._seen: dict[str, float] = {}  # answered before anyone asked
        self._waiting: dict[str, asyncio.Future[float]] = {}
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        """Start polling in the background."""
        self._task = asyncio.create_task(self._run(), name="reply-watcher")

    async def stop(self) -> None:
        """Stop polling and close the connection."""
        if self._task:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        self._db.close()

    def expect(self, case_id: str) -> asyncio.Future[float]:
        """A future resolved with the ``perf_counter`` time the case was seen answered."""
        key = uuid.UUID(case_id).hex
        fut: asyncio.Future[float] = asyncio.get_running_loop().create_future()
        if key in self._seen:
            fut.set_result(self._seen.pop(key))
        else:
            self._waiting[key] = fut
        return fut

    async def _run(self) -> None:
        while True:
            self._poll()
            await asyncio.sleep(self.interval_s)

    def _poll(self) -> None:
        rows = self._db.execute(self._sql, (self._after,)).fetchall()
        if not rows:
            return
        now = time.perf_counter()
        self._after = rows[-1][0]
        for _, originator, version, topic in rows:
            originator = originator.hex if isinstance(originator, uuid.UUID) else originator
            if version == self.ANSWER_VERSION and topic == self.GOT:
                fut = self._waiting.pop(originator, None)
                if fut is None:
                    self._seen[originator] = now
                elif not fut.done():
                    fut.set_result(now)


async def stall_guard(what: str, aw: Awaitable[Any]) -> Any:
    """Await ``aw``; fail loudly instead of hanging if a message was lost."""
    try:
        return await asyncio.wait_for(aw, STALL_TIMEOUT_S)
    except TimeoutError as e:
        raise BenchError(f"{what}: nothing happened for {STALL_TIMEOUT_S:.0f}s") from e


Submit = Callable[[], Awaitable[tuple[float, asyncio.Future[float]]]]


async def paced(submit: Submit, n: int, rate: float, clerks: int = 1) -> tuple[float, list[float]]:
    """``n`` exchanges offered at ``rate`` a second (open loop: the next one does not wait for a reply).

    With one clerk, the next offer waits for the request before it to be made (as before
    ``--clerks``), so a slow request lowers the rate offered.  With several, each offer is made
    at its time and waits only for a free clerk, and its latency counts from its offer, so a
    slow system shows as latency, not as a lower rate offered.  Returns the time from the
    first offer to the last, and each exchange's latency.
    """
    start = time.perf_counter()
    made: list[tuple[float, asyncio.Future[float]]] = []
    offers: list[asyncio.Future[tuple[float, asyncio.Future[float]]]] = []
    free = asyncio.Semaphore(clerks)

    async def offer(at: float) -> tuple[float, asyncio.Future[float]]:
        async with free:
            return at, (await submit())[1]

    for i in range(n):
        at = start + i / rate
        delay = at - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        if clerks > 1:
            offers.append(asyncio.ensure_future(offer(at)))
        else:
            made.append(await submit())
    made += await asyncio.gather(*offers)
    offered = time.perf_counter() - start
    done = await stall_guard("waiting for paced replies", asyncio.gather(*(f for _, f in made)))
    return offered, [d - t0 for (t0, _), d in zip(made, done, strict=True)]


async def all_in_flight(submit: Submit, n: int, clerks: int) -> list[tuple[float, asyncio.Future[float]]]:
    """``n`` submissions, at most ``clerks`` at once (one: each after the one before it), in order."""
    free = asyncio.Semaphore(clerks)

    async def one() -> tuple[float, asyncio.Future[float]]:
        async with free:
            return await submit()
    return list(await asyncio.gather(*(one() for _ in range(n))))


#: The stages of one exchange, as the ledger's times and the bench's own split it (``stage_split``).
SPLIT_STAGES = ("request_signed", "request_stored", "reply_signed", "reply_stored", "reply_seen")


def stage_split(times: dict[str, dict[str, tuple[str, str]]], cases: Sequence[str], started: dict[str, float],
                seen: dict[str, asyncio.Future[float]], wall_minus_perf: float) -> dict[str, dict[str, float]]:
    """Where each of ``cases`` spent its time, by stage, p50 and p90 in ms: from the request call to the request
    signed (the clerk's checks and number); to its sending stream storing it (the commit, the relay, JetStream);
    to gongan signing the reply (XZ's copy, gongan's fetch, checks and answer); to the reply stored; and
    to shenpi's store holding it (XZ's copy, shenpi's fetch and commit, the bench's poll).  Times are the
    host's one clock: the senders' signing times and JetStream's storing times, as the ledger holds them."""
    stages: dict[str, list[float]] = {k: [] for k in SPLIT_STAGES}
    for case in cases:
        kinds = times.get(case, {})
        request, reply, done = kinds.get("assistance.requested"), kinds.get("assistance.replied"), seen.get(case)
        if request is None or reply is None or done is None or not done.done() or case not in started:
            continue
        marks = [started[case] + wall_minus_perf, *(datetime.fromisoformat(t).timestamp() for t in (*request, *reply)),
                 done.result() + wall_minus_perf]
        for name, a, b in zip(SPLIT_STAGES, marks, marks[1:], strict=False):
            stages[name].append((b - a) * 1000)
    return {name: {"p50_ms": round(statistics.median(v), 2),
                   "p90_ms": round(statistics.quantiles(v, n=10, method="inclusive")[8] if len(v) > 1 else v[0], 2)}
            for name, v in stages.items() if v}


def lag_summary(samples: list[int]) -> dict[str, Any]:
    """How far behind a follower was: the largest lag, the last, and the means of the two halves
    (a second half no higher than the first: it keeps up)."""
    if not samples:
        return {}
    half = max(1, len(samples) // 2)
    return {"max": max(samples), "last": samples[-1],
            "first_half_mean": round(statistics.fmean(samples[:half]), 1),
            "second_half_mean": round(statistics.fmean(samples[half:] or samples[-1:]), 1)}


class Record:
    """区司法局's side as the bench sees it: the ledger's head and the SLA view's position.

    In one process they are the node's objects; with ``--processes`` the ledger runs in a
    process of its own and they are read from its files, through read-only connections.
    """

    def __init__(self, node: Node, *, in_process: bool) -> None:
        self.node = node
        self.in_process = in_process

    @staticmethod
    def _reader(location: Path | str) -> Sql:
        """A read-only connection to a file or schema the services write."""
        return (Sql(location, read_only=True) if is_postgres(location)
                else Sql.wrap(sqlite3.connect(f"file:{location}?mode=ro", uri=True), location))

    def _query(self, location: Path | str, sql: str) -> int:
        if not is_postgres(location) and not Path(location).exists():
            return 0
        try:
            db = self._reader(location)
        except db_errors():  # not created yet
            return 0
        try:
            row = db.execute(sql).fetchone()
        except db_errors():  # not created yet
            return 0
        finally:
            db.close()
        return int(row[0] or 0) if row else 0

    def head(self) -> int:
        """The ledger's last position."""
        if self.in_process:
            assert self.node.ledger is not None
            return self.node.ledger.head[0]
        return self._query(self.node.settings.ledger_location, "SELECT MAX(pos) FROM entries")

    def sla_position(self) -> int:
        """The last ledger position the SLA view applied."""
        if self.in_process:
            assert self.node.sla is not None
            return self.node.sla.position
        return self._query(self.node.settings.sla_location, "SELECT position FROM _positions WHERE name = 'sla'")

    def case_times(self, cases: Sequence[str]) -> dict[str, dict[str, tuple[str, str]]]:
        """Each case's entries by type: the time its sender signed it, and the time its sending stream
        stored it (the legal arrival, decision 57), as the ledger holds them."""
        db = self._reader(self.node.settings.ledger_location)
        out: dict[str, dict[str, tuple[str, str]]] = {}
        try:
            for i in range(0, len(cases), 500):
                part = list(cases[i:i + 500])
                rows = db.execute("SELECT case_id, type, event_time, arrived_at FROM entries WHERE case_id IN "
                                  f"({', '.join('?' * len(part))})", part).fetchall()
                for case, kind, signed_at, stored_at in rows:
                    out.setdefault(case, {})[kind] = (signed_at, stored_at)
        finally:
            db.close()
        return out

    def events(self) -> int:
        """How many entries the ledger holds."""
        if self.in_process:
            assert self.node.ledger is not None
            return len(self.node.ledger)
        return self._query(self.node.settings.ledger_location, "SELECT COUNT(*) FROM entries")

    async def settle(self, interval_s: float = 0.05) -> None:
        """Wait until every event is relayed, consumed, recorded and projected."""
        if self.in_process:
            await self.node.settle()
            return
        await self.node.settle()  # the agents in this process
        nc = await nats.connect(self.node.nats_url, **self.node.credentials(ADMIN))
        try:
            js = nc.jetstream()
            while True:
                names = [agent_consumer(ASSISTOR), LEDGER_CONSUMER]
                infos = [await js.consumer_info(EVENTS_STREAM, n) for n in names]
                head = await asyncio.to_thread(self.head)
                if (not any(i.num_pending or i.num_ack_pending for i in infos)
                        and await asyncio.to_thread(self.sla_position) == head):
                    return
                await asyncio.sleep(interval_s)
        finally:
            await nc.close()


class LagSampler:
    """Samples how far the ledger is behind the stream and the SLA view behind the ledger, in events."""

    def __init__(self, node: Node, record: Record, interval_s: float) -> None:
        self.node = node
        self.record = record
        self.interval_s = interval_s
        self.ledger: list[int] = []
        self.sla: list[int] = []
        self._task: asyncio.Task[None] | None = None
        self._nc: Client | None = None

    async def start(self) -> None:
        """Connect (as the node's admin) and sample in the background."""
        self._nc = await nats.connect(self.node.nats_url, **self.node.credentials(ADMIN))
        self._task = asyncio.create_task(self._run(), name="lag-sampler")

    async def stop(self) -> dict[str, Any]:
        """Stop sampling; the summary of each lag."""
        if self._task:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        if self._nc:
            await self._nc.close()
        return {"ledger_events": lag_summary(self.ledger), "sla_events": lag_summary(self.sla),
                "samples": len(self.ledger), "interval_s": self.interval_s}

    async def _run(self) -> None:
        assert self._nc is not None
        js = self._nc.jetstream()
        while True:
            info = await js.consumer_info(EVENTS_STREAM, LEDGER_CONSUMER)
            self.ledger.append(info.num_pending + info.num_ack_pending)
            head = await asyncio.to_thread(self.record.head)
            self.sla.append(head - await asyncio.to_thread(self.record.sla_position))
            await asyncio.sleep(self.interval_s)


async def wait_until(predicate: Callable[[], bool], interval_s: float) -> float:
    """Poll ``predicate`` and return the ``perf_counter`` time it was first seen true."""
    while not predicate():
        await asyncio.sleep(interval_s)
    return time.perf_counter()


class XiezhuExchanges:
    """Drives assistance requests from shenpi to gongan through a running node."""

    def __init__(self, node: Node, record: Record, residents: list[dict[str, Any]], rng: random.Random,
                 watcher: ReplyWatcher, clerks: int = 1) -> None:
        self.node = node
        self.record = record
        self.store = node.store(REQUESTER)
        self.residents = residents
        self.rng = rng
        self.watcher = watcher
        self.cases: list[str] = []
        #: How long each ``request()`` call itself took (signing, numbering, the commit).
        self.calls_s: list[float] = []
        #: shenpi's clerks: the threads the paced and throughput phases make their requests in.
        self.clerks = clerks
        self._clerks = ThreadPoolExecutor(max_workers=clerks, thread_name_prefix="clerk")
        #: Each case's request call start and the future of its reply seen (``perf_counter`` times).
        self.started: dict[str, float] = {}
        self.seen: dict[str, asyncio.Future[float]] = {}

    def close(self) -> None:
        """Let the clerks' threads go."""
        self._clerks.shutdown()

    def _next(self) -> dict[str, Any]:
        return request_for(self.rng.choice(self.residents))

    async def one(self) -> float:
        """One exchange on its own; returns its latency."""
        kwargs = self._next()
        t0 = time.perf_counter()
        state = self.store.assistance.request(**kwargs)
        self.calls_s.append(time.perf_counter() - t0)
        self.node.wake_relays()
        self.started[state.case] = t0
        self.seen[state.case] = self.watcher.expect(state.case)
        done = await stall_guard("waiting for a reply", self.seen[state.case])
        self.cases.append(state.case)
        return float(done - t0)

    async def sequential(self, n: int) -> list[float]:
        """``n`` exchanges one after the other; their latencies."""
        return [await self.one() for _ in range(n)]

    def _request(self, kwargs: dict[str, Any]) -> tuple[float, Any]:
        t0 = time.perf_counter()
        state = self.store.assistance.request(**kwargs)
        self.calls_s.append(time.perf_counter() - t0)
        return t0, state

    async def submit(self) -> tuple[float, asyncio.Future[float]]:
        """Make one request in a clerk's thread (the agents keep running meanwhile)."""
        t0, state = await asyncio.get_running_loop().run_in_executor(self._clerks, self._request, self._next())
        self.node.wake_relays()
        self.cases.append(state.case)
        self.started[state.case] = t0
        self.seen[state.case] = self.watcher.expect(state.case)
        return t0, self.seen[state.case]

    async def throughput(self, n: int, expected_ledger: int) -> tuple[float, list[float]]:
        """``n`` exchanges all in flight; elapsed until every reply and ledger entry, latencies."""
        start = time.perf_counter()
        sent = await all_in_flight(self.submit, n, self.clerks)
        done = await stall_guard("waiting for replies", asyncio.gather(*(f for _, f in sent)))
        recorded = await stall_guard("waiting for the ledger", wait_until(
            lambda: self.record.head() >= expected_ledger, self.watcher.interval_s))
        latencies = [d - t0 for (t0, _), d in zip(sent, done, strict=True)]
        return max(*done, recorded) - start, latencies

    def clear_envelopes(self, case: str) -> list[Envelope]:
        """The three events of one exchange in the clear, opened with the requester's key (for the floor)."""
        opener = self.node.keys.opener(REQUESTER)
        return [opener.open(signed.body) for signed in self.store.assistance.case(case).envelopes]

    def statuses(self) -> dict[str, int]:
        """How many of the cases sent are in each status (loaded through the store)."""
        counts: dict[str, int] = {}
        for case in self.cases:
            status = self.store.assistance.case(case).state.status
            counts[status] = counts.get(status, 0) + 1
        return counts

    def wire_shape(self, sample: list[str]) -> WireShape:
        """Median sizes of the signed request and reply bodies of ``sample`` cases."""
        requests, replies = [], []
        for case in sample:
            request, _receipt, reply = self.store.assistance.case(case).envelopes
            requests.append(len(request.body))
            replies.append(len(reply.body))
        return WireShape(request_bytes=int(statistics.median(requests)),
                         reply_bytes=int(statistics.median(replies)),
                         kid=request.kid, sig_b64=b64(request.sig))


def publish_item(node: Node) -> None:
    """第七条: only catalogued items can be requested; list the one the bench uses."""
    basis = "《国务院办公厅关于全面推行证明事项告知承诺制的指导意见》"
    row = AssistanceItem(code=ITEM_CODE, seq=1, service_matter_name=MATTER.name, service_matter_code=MATTER.code,
                         item_name="户籍及无犯罪记录核查", legal_basis=basis, handling_body=REQUESTER,
                         assisting_body=ASSISTOR, verification_method="部门间行政协助")
    node.catalogue.review(node.catalogue.apply_adjustment("assistance", REQUESTER, basis, adds=[row]), True)
    node.catalogue.publish("assistance")


@contextlib.asynccontextmanager
async def running_node(data_dir: Path, *, processes: bool = False, ledger_apart: bool = False,
                       database_url: str | None = None) -> AsyncIterator[Node]:
    """shenpi and gongan agents, ledger and SLA projection on their own embedded server.

    With ``processes``, this process runs only shenpi's agent (and the requests); gongan's
    agent and the ledger with its views run as ``xiezhu run --bureau gongan --ledger`` does,
    each in its own process.  With ``ledger_apart`` only the ledger with its views does: both
    agents stay here (:mod:`bench.hops` times their hops without the ledger's share of this
    process's GIL).
    """
    apart = processes or ledger_apart
    clock, registry, settings = SystemClock(), Registry.load(), Settings(data_dir=data_dir, database_url=database_url)
    # What `xiezhu keys init` does, valid from before the first message is signed.
    valid_from = clock.now() - timedelta(days=1)
    KeyStore(settings.keys_dir).ensure(registry.codes(), valid_from=valid_from)
    node = Node(settings, registry, clock, agents=[REQUESTER] if processes else [REQUESTER, ASSISTOR],
                ledger=not apart, projection=not apart, simulated=False, key_valid_from=valid_from)
    publish_item(node)
    supervisor: Supervisor | None = None
    thread: threading.Thread | None = None
    try:
        await node.start()
        if apart:
            supervisor = Supervisor(plan(data_dir, node.nats_url, [ASSISTOR] if processes else [], ledger=True,
                                         database_url=database_url),
                                    env=child_env(), say=lambda line: print(line, file=sys.stderr))
            thread = threading.Thread(target=supervisor.run, name="supervisor", daemon=True)
            thread.start()
            await stall_guard("waiting for the services' processes", wait_until(
                lambda: all(agent_running(settings.bureau_dir(c)) for c in (ASSISTOR, JUSTICE)), 0.1))
        yield node
    finally:
        if supervisor is not None and thread is not None:
            supervisor.stop()
            await asyncio.to_thread(thread.join)
        await node.stop()


async def bench_xiezhu(opts: Options, database_url: str | None = None) -> tuple[Measured, WireShape]:
    """Both phases through a full node; also returns the real message sizes.

    ``database_url``: the stores, the ledger and the views in fresh schemas of that PostgreSQL
    database (``xbench<random>_…``), dropped afterwards."""
    rng = random.Random(opts.seed)
    prefix = f"xbench{uuid.uuid4().hex[:8]}"
    url = f"{database_url.split('?')[0]}?schema={prefix}" if database_url else None
    try:
        return await _bench_xiezhu(opts, rng, url)
    finally:
        if database_url:
            drop_schemas(database_url, prefix)


async def _bench_xiezhu(opts: Options, rng: random.Random, url: str | None) -> tuple[Measured, WireShape]:
    with tempfile.TemporaryDirectory(prefix="xiezhu-bench-") as tmp:
        data_dir = Path(tmp) / "data"
        residents = make_residents(opts.residents, rng)
        seed_residents(Settings(data_dir=data_dir), residents)
        async with running_node(data_dir, processes=opts.processes, database_url=url) as node:
            watcher = ReplyWatcher(node.settings.store_location(REQUESTER), opts.poll_ms / 1000)
            watcher.start()
            try:
                record = Record(node, in_process=not opts.processes)
                exchanges = XiezhuExchanges(node, record, residents, rng, watcher, opts.clerks)
                try:
                    return await _xiezhu_phases(node, exchanges, opts)
                finally:
                    exchanges.close()
            finally:
                await watcher.stop()


def _proc_stat(pid: int | str) -> list[str] | None:
    """The fields of ``/proc/<pid>/stat`` after the command's name (state, ppid, …); None if it cannot be read."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None


def _cpu_s(stat: list[str]) -> float:
    return (int(stat[11]) + int(stat[12])) / os.sysconf("SC_CLK_TCK")


def proc_cpu_s(pid: int) -> float | None:
    """CPU seconds (user and system) process ``pid`` has used so far; None if it cannot be read."""
    stat = _proc_stat(pid)
    return _cpu_s(stat) if stat else None


def _server_pid(node: Node) -> int | None:
    return node.server._proc.pid if node.server is not None and node.server._proc is not None else None


def server_cpu_s(node: Node) -> float:
    """CPU seconds the node's embedded nats-server has used so far (0 where it cannot be read)."""
    pid = _server_pid(node)
    return (proc_cpu_s(pid) or 0.0) if pid is not None else 0.0


def services_cpu_s(node: Node) -> dict[str, float]:
    """CPU seconds used so far by each service this process started besides the nats-server (``--processes``:
    gongan's agent and the ledger), by the command it runs; empty where /proc cannot be read."""
    server = _server_pid(node)
    out: dict[str, float] = {}
    for d in Path("/proc").glob("[0-9]*"):
        stat = _proc_stat(d.name)
        if not stat or stat[1] != str(os.getpid()) or int(d.name) == server:
            continue
        try:
            words = [a.decode(errors="replace") for a in d.joinpath("cmdline").read_bytes().split(b"\0")]
        except OSError:
            continue
        name = ("agent " + words[words.index("--bureau") + 1] if "--bureau" in words
                else "ledger" if "ledger" in words else d.name)
        out[name] = _cpu_s(stat)
    return out


def views_follow_rate(node: Node) -> dict[str, float]:
    """Events/s of each read model following the run's whole ledger from 0, into fresh files.

    The ledger is opened afresh, as ``xiezhu projections rebuild`` opens it: every payload
    is opened with 区司法局's key again (the live views get what the ledger service opened).
    """
    ledger = Ledger(node.settings.ledger_location, opener=node.keys.ledger_opener())
    url = node.settings.database_url
    view_key = node.keys.store_key(JUSTICE)
    makers: dict[str, Callable[[Path | str], LedgerProjection]] = {
        "sla": lambda p: SlaView(p, CalendarStore(node.settings.calendar_dir)),
        "commitments": lambda p: CommitmentView(p, view_key=view_key),
        "credit": lambda p: CreditView(p, view_key=view_key),
    }
    rates = {}
    try:
        for name, make in makers.items():
            view = make(schema_location(url, f"_bench_{name}") if url
                        else node.settings.data_dir / "bench-views" / f"{name}.db")
            start = time.perf_counter()
            n = view.follow(ledger)
            rates[name] = round(n / (time.perf_counter() - start), 1)
            view.db.close()
    finally:
        ledger.close()
    return rates


def request_call_ms(calls_s: list[float], opts: Options) -> dict[str, float]:
    """What ``store.assistance.request()`` alone cost, per phase, and at the start and end of the run."""
    seq = calls_s[opts.warmup:opts.warmup + opts.latency_samples]
    thr = calls_s[opts.warmup + opts.latency_samples + opts.paced:]
    tail = max(1, min(100, len(thr)))
    return {"sequential_p50": round(percentile_ms(seq, 50), 3),
            "throughput_p50": round(percentile_ms(thr, 50), 3),
            "throughput_first_mean": round(statistics.fmean(thr[:tail]) * 1000, 3),
            "throughput_last_mean": round(statistics.fmean(thr[-tail:]) * 1000, 3)}


async def _xiezhu_phases(node: Node, ex: XiezhuExchanges,
                         opts: Options) -> tuple[Measured, WireShape]:
    wall_minus_perf = time.time() - time.perf_counter()
    await ex.sequential(opts.warmup)
    latencies = await ex.sequential(opts.latency_samples)
    sequential_cases = ex.cases[-opts.latency_samples:]
    shape = await asyncio.to_thread(ex.wire_shape, sequential_cases)
    sample = await asyncio.to_thread(ex.clear_envelopes, ex.cases[-1])

    lags = LagSampler(node, ex.record, opts.lag_interval_s)
    await lags.start()
    paced_elapsed, paced_latencies = await paced(ex.submit, opts.paced, opts.rate, opts.clerks)
    paced_lag = await lags.stop()
    await stall_guard("settling", ex.record.settle())
    paced_cases = ex.cases[-opts.paced:] if opts.paced else []
    times = await asyncio.to_thread(ex.record.case_times, sequential_cases + paced_cases)
    split = {"sequential": stage_split(times, sequential_cases, ex.started, ex.seen, wall_minus_perf),
             "paced": stage_split(times, paced_cases, ex.started, ex.seen, wall_minus_perf)}

    ex.watcher.interval_s = opts.throughput_poll_ms / 1000
    expected = XIEZHU_EVENTS_PER_EXCHANGE * opts.total_requests
    lags = LagSampler(node, ex.record, opts.lag_interval_s)
    await lags.start()
    cpu_start, server_cpu_start, services_start = time.process_time(), server_cpu_s(node), services_cpu_s(node)
    elapsed, loaded = await ex.throughput(opts.requests, expected)
    cpu_s, server_cpu = time.process_time() - cpu_start, server_cpu_s(node) - server_cpu_start
    services = {k: v - services_start[k] for k, v in services_cpu_s(node).items() if k in services_start}
    throughput_lag = await lags.stop()
    settle_start = time.perf_counter()
    await stall_guard("settling", ex.record.settle())
    settle_s = time.perf_counter() - settle_start

    statuses = await asyncio.to_thread(ex.statuses)
    views = await asyncio.to_thread(views_follow_rate, node)
    ledger_events = await asyncio.to_thread(ex.record.events)
    intake = {code: agent.intake.stats for code, agent in node.agents.items() if agent.intake}
    extra = {
        "ledger_events": ledger_events,
        "ledger_expected": expected,
        "replied": statuses.get("replied", 0),
        "statuses": statuses,
        "settle_s": round(settle_s, 3),
        "rate_per_s_settled": round(opts.requests / (elapsed + settle_s), 1),
        "dead_letters": sum(s.rejected for s in intake.values()),
        "duplicates": sum(s.duplicates for s in intake.values()),
        # In this process only (with --processes, gongan's agent counts its own elsewhere).
        "auto_answered": node.agents[ASSISTOR].auto_answered if ASSISTOR in node.agents else None,
        "processes": opts.processes,
        "request_call_ms": request_call_ms(ex.calls_s, opts),
        # CPU time per exchange in the throughput phase: the bench's process (with every service
        # unless --processes) and the nats-server.  Less sensitive to the others' load than rates.
        # With --processes, also each service's process (counted from the start of the throughput phase
        # until every reply came and the ledger held every event; what they do after is not counted).
        "cpu_ms_per_exchange": {"process": round(cpu_s / opts.requests * 1000, 2),
                                "nats_server": round(server_cpu / opts.requests * 1000, 2),
                                **({"services": {k: round(v / opts.requests * 1000, 2)
                                                 for k, v in sorted(services.items())}} if services else {})},
        "lag": {"paced": paced_lag, "throughput": throughput_lag},
        "split": split,
        "views_follow_events_per_s": views,
        "ok": ledger_events == expected and statuses == {"replied": opts.total_requests},
    }
    return Measured(latencies, opts.requests, elapsed, loaded, paced_latencies, paced_elapsed, extra, sample), shape


# -- the raw baseline --------------------------------------------------------------------

RAW_REQUEST_SUBJECT = f"xz.{REQUESTER}.{ASSISTOR}.assistance.requested"
RAW_REPLY_SUBJECT = f"xz.{ASSISTOR}.{REQUESTER}.assistance.replied"
CORRELATION_BYTES = 36  # a request's id, at the start of its reply's body


def raw_body(correlation: str, size: int) -> bytes:
    """``size`` bytes that start with the correlation id."""
    head = correlation.encode()
    return head + b"." * max(0, size - len(head))


async def pull(js: JetStreamContext, code: str) -> JetStreamContext.PullSubscription:
    """The durable pull consumer of ``code``, configured exactly as xiezhu's agents'."""
    durable = agent_consumer(code)
    return await js.pull_subscribe(inbox_filter(code), durable=durable, stream=EVENTS_STREAM,
                                   config=consumer_config(durable, inbox_filter(code)))


async def fetched(sub: JetStreamContext.PullSubscription) -> AsyncIterator[Msg]:
    """Messages of a pull consumer, fetched as the agents fetch (up to ``FETCH_BATCH`` at once), forever."""
    while True:
        try:
            msgs = await sub.fetch(agent.FETCH_BATCH, timeout=FETCH_TIMEOUT_S)
        except (nats.errors.TimeoutError, TimeoutError):
            continue
        for m in msgs:
            yield m


async def respond(sub: JetStreamContext.PullSubscription, js: JetStreamContext,
                  shape: WireShape) -> None:
    """The responder: answer every request with a reply of xiezhu's reply size."""
    async for m in fetched(sub):
        correlation = m.data[:CORRELATION_BYTES].decode()
        await js.publish(RAW_REPLY_SUBJECT, raw_body(correlation, shape.reply_bytes),
                         headers=shape.headers(new_id()), stream=sending_stream(ASSISTOR))
        await m.ack()


class RawRequester:
    """Publishes requests and matches the replies it fetches to them."""

    def __init__(self, js: JetStreamContext, replies: JetStreamContext.PullSubscription,
                 shape: WireShape) -> None:
        self.js = js
        self.replies = replies
        self.shape = shape
        self._waiting: dict[str, asyncio.Future[float]] = {}

    async def collect(self) -> None:
        """Resolve each request's future with the time its reply arrived."""
        async for m in fetched(self.replies):
            now = time.perf_counter()
            await m.ack()
            fut = self._waiting.pop(m.data[:CORRELATION_BYTES].decode(), None)
            if fut is not None:
                fut.set_result(now)

    async def submit(self) -> tuple[float, asyncio.Future[float]]:
        """Publish one request (waiting for JetStream's ack, like the relay)."""
        msg_id = new_id()
        fut: asyncio.Future[float] = asyncio.get_running_loop().create_future()
        self._waiting[msg_id] = fut
        t0 = time.perf_counter()
        await self.js.publish(RAW_REQUEST_SUBJECT, raw_body(msg_id, self.shape.request_bytes),
                              headers=self.shape.headers(msg_id), stream=sending_stream(REQUESTER))
        return t0, fut

    async def one(self) -> float:
        """One exchange on its own; returns its latency."""
        t0, fut = await self.submit()
        done: float = await stall_guard("waiting for a raw reply", fut)
        return done - t0

    async def sequential(self, n: int) -> list[float]:
        """``n`` exchanges one after the other; their latencies."""
        return [await self.one() for _ in range(n)]

    async def throughput(self, n: int, clerks: int) -> tuple[float, list[float]]:
        """``n`` exchanges all in flight; elapsed until the last reply, and latencies."""
        start = time.perf_counter()
        sent = await all_in_flight(self.submit, n, clerks)
        done = await stall_guard("waiting for raw replies", asyncio.gather(*(f for _, f in sent)))
        return max(done) - start, [d - t0 for (t0, _), d in zip(sent, done, strict=True)]


@contextlib.asynccontextmanager
async def connected(url: str) -> AsyncIterator[Client]:
    """A NATS connection, closed on exit."""
    nc = await nats.connect(url)
    try:
        yield nc
    finally:
        await nc.close()


@contextlib.asynccontextmanager
async def background(*coros: Awaitable[None]) -> AsyncIterator[None]:
    """Run coroutines as tasks for the duration of the block, then cancel them."""
    tasks = [asyncio.ensure_future(c) for c in coros]
    try:
        yield
    finally:
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


async def bench_raw(opts: Options, shape: WireShape) -> Measured:
    """Both phases over bare JetStream with xiezhu's message sizes.

    Its server has no NATS users (the baseline measures JetStream alone); the xiezhu side's
    embedded server runs with the generated authorization, as every node's does.
    """
    with tempfile.TemporaryDirectory(prefix="xiezhu-bench-raw-") as tmp, \
            EmbeddedNats(Path(tmp) / "nats") as server:
        async with connected(server.url) as requester_nc, connected(server.url) as responder_nc:
            requester_js, responder_js = requester_nc.jetstream(), responder_nc.jetstream()
            await ensure_streams(requester_js)
            requests = await pull(responder_js, ASSISTOR)
            requester = RawRequester(requester_js, await pull(requester_js, REQUESTER), shape)
            async with background(respond(requests, responder_js, shape), requester.collect()):
                await requester.sequential(opts.warmup)
                latencies = await requester.sequential(opts.latency_samples)
                paced_elapsed, paced_latencies = await paced(requester.submit, opts.paced, opts.rate, opts.clerks)
                elapsed, loaded = await requester.throughput(opts.requests, opts.clerks)
            stream = await requester_js.stream_info(EVENTS_STREAM)
    expected = RAW_MESSAGES_PER_EXCHANGE * opts.total_requests
    extra = {"stream_messages": stream.state.messages, "stream_expected": expected,
             "ok": stream.state.messages == expected}
    return Measured(latencies, opts.requests, elapsed, loaded, paced_latencies, paced_elapsed, extra)


# -- report ------------------------------------------------------------------------------


def machine(load_at_start: float) -> dict[str, Any]:
    """What the numbers were measured on (and how busy it was: others share the CPUs)."""
    return {
        "cpus": os.cpu_count(),
        "loadavg_1m": {"start": round(load_at_start, 2), "end": round(os.getloadavg()[0], 2)},
        "python": platform.python_version(),
        "implementation": platform.python_implementation(),
        "platform": platform.platform(),
        "nats_py": _version("nats-py"),
        "nats_server": _nats_server_version(),
        "eventsourcing": _version("eventsourcing"),
    }


def _version(dist: str) -> str:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return "unknown"


def _nats_server_version() -> str:
    try:
        out = subprocess.run([str(find_binary()), "--version"],
                             check=False, capture_output=True, text=True, timeout=10)
        return out.stdout.strip() or out.stderr.strip()
    except (OSError, subprocess.SubprocessError, ServerError):  # only a label in the report
        return "unknown"


def header_bytes(headers: dict[str, str]) -> int:
    """Names and values, as intake counts them against the size limit."""
    return sum(len(k) + len(v) for k, v in headers.items())


def cpu_spent_ms(x: dict[str, Any]) -> float:
    """xiezhu's CPU ms an exchange in the throughput phase: the bench's process, nats-server and the services'."""
    cpu = x.get("cpu_ms_per_exchange") or {}
    return float(cpu.get("process", 0) + cpu.get("nats_server", 0) + sum((cpu.get("services") or {}).values()))


def cpu_ratio(crypto: dict[str, Any], x: dict[str, Any]) -> float | None:
    """Floor CPU ms per exchange / xiezhu's (its processes' and nats-server's)."""
    spent = cpu_spent_ms(x)
    if not crypto.get("cpu_ms_per_exchange") or not spent:
        return None
    return round(float(crypto["cpu_ms_per_exchange"]) / spent, 3)


#: Issue 14's required ratio to the floor (its goal is 0.5).
REQUIRED_RATIO = 0.3


def budget(crypto: dict[str, Any], x: dict[str, Any], cpus: int) -> dict[str, Any] | None:
    """What the required ratio leaves one exchange, in CPU ms on all the machine's cores: in all, and once
    nats-server's CPU and the floor's cryptography are taken off; beside it, what xiezhu spends on the rest."""
    nats = float((x.get("cpu_ms_per_exchange") or {}).get("nats_server", 0))
    spent = cpu_spent_ms(x)
    if not crypto.get("rate_per_s") or not spent:
        return None
    allowed = cpus * 1000 / (REQUIRED_RATIO * float(crypto["rate_per_s"]))
    floor_ms = float(crypto["cpu_ms_per_exchange"])
    return {"ratio": REQUIRED_RATIO, "allowed_ms": round(allowed, 2), "nats_server_ms": round(nats, 2),
            "crypto_ms": round(floor_ms, 2), "left_for_the_rest_ms": round(allowed - nats - floor_ms, 2),
            "xiezhu_rest_ms": round(spent - nats - floor_ms, 2)}


def report(opts: Options, raw: Measured, xiezhu: Measured, shape: WireShape, crypto: dict[str, Any],
           wall_s: float, load_at_start: float, postgresql: Measured | None = None) -> dict[str, Any]:
    """The one JSON object the benchmark prints (``xiezhu_postgresql``: the same phases on PostgreSQL)."""
    r, x = summarize(raw, shape), summarize(xiezhu, shape)
    pg = summarize(postgresql, shape) if postgresql is not None else None
    return {
        "raw": r,
        "xiezhu": x,
        **({"xiezhu_postgresql": pg, "ratio_floor_postgresql": round(pg["rate_per_s"] / crypto["rate_per_s"], 3)
            if crypto["rate_per_s"] else None} if pg is not None else {}),
        "crypto_floor": crypto,
        # Issue 14's measure: how close full exchanges come to their cryptography alone.
        "ratio_floor": round(x["rate_per_s"] / crypto["rate_per_s"], 3) if crypto["rate_per_s"] else None,
        # The same measure in CPU time (the floor's workers are busy all the time): what the ratio would
        # be on two cores of our own if xiezhu's CPU were the only limit.
        "ratio_floor_cpu": cpu_ratio(crypto, x),
        # The required ratio as a CPU budget for one exchange (counted only where every process is: one
        # process, or --processes with /proc readable).
        "budget_cpu_ms": budget(crypto, x, int(crypto.get("workers") or os.cpu_count() or 1)),
        "ratio_rate": round(r["rate_per_s"] / x["rate_per_s"], 2),
        "ratio_p50": round(x["p50_ms"] / r["p50_ms"], 2),
        "ratio_p99": round(x["p99_ms"] / r["p99_ms"], 2),
        "ok": bool(r["ok"] and x["ok"] and (pg is None or pg["ok"])),
        "machine": machine(load_at_start),
        "params": {
            "requests": opts.requests,
            "latency_samples": opts.latency_samples,
            "warmup": opts.warmup,
            "residents": opts.residents,
            "poll_ms": opts.poll_ms,
            "throughput_poll_ms": opts.throughput_poll_ms,
            "floor_seconds": opts.floor_seconds,
            "paced": opts.paced,
            "agent_batch": agent.FETCH_BATCH,
            "processes": opts.processes,
            "backends": ["sqlite", "postgresql"] if pg is not None else ["sqlite"],
            "rate": opts.rate,
            "clerks": opts.clerks,
            "seed": opts.seed,
            "messages_per_exchange": {"raw": RAW_MESSAGES_PER_EXCHANGE,
                                      "xiezhu": XIEZHU_EVENTS_PER_EXCHANGE},
            "request_header_bytes": header_bytes(shape.headers(new_id())),
            "xiezhu_agents": [REQUESTER, ASSISTOR],
            "wall_s": round(wall_s, 1),
        },
    }


def table(result: dict[str, Any]) -> Iterator[str]:
    """A short readable summary."""
    rows = [("exchanges", "exchanges", "{}"), ("rate_per_s", "rate /s", "{:.1f}"),
            ("p50_ms", "p50 ms", "{:.2f}"), ("p99_ms", "p99 ms", "{:.2f}"),
            ("loaded_p50_ms", "p50 ms under load", "{:.1f}"),
            ("loaded_p99_ms", "p99 ms under load", "{:.1f}"),
            ("request_bytes", "request bytes", "{}"), ("reply_bytes", "reply bytes", "{}")]
    raw, x, pg = result["raw"], result["xiezhu"], result.get("xiezhu_postgresql")
    yield f"{'':<20}{'raw':>12}{'xiezhu':>12}" + (f"{'postgresql':>12}" if pg else "")
    for key, label, fmt in rows:
        yield (f"{label:<20}{fmt.format(raw[key]):>12}{fmt.format(x[key]):>12}"
               + (f"{fmt.format(pg[key]):>12}" if pg else ""))
    if x["paced"]:
        yield f"paced at {result['params']['rate']:g}/s offered:"
        for key, label in (("offered_per_s", "  offered /s"), ("p50_ms", "  p50 ms"), ("p99_ms", "  p99 ms")):
            yield f"{label:<20}{raw['paced'][key]:>12.1f}{x['paced'][key]:>12.1f}"
        lag = x["lag"]["paced"]
        yield (f"  lag, max / last (events): ledger {lag['ledger_events']['max']} / "
               f"{lag['ledger_events']['last']}, SLA view {lag['sla_events']['max']} / {lag['sla_events']['last']}")
    yield (f"ledger events: {x['ledger_events']} of {x['ledger_expected']}; "
           f"settle took {x['settle_s']} s")
    yield f"raw/xiezhu rate: {result['ratio_rate']}x   xiezhu/raw p50: {result['ratio_p50']}x"
    c = result["crypto_floor"]
    yield (f"crypto floor: {c['rate_per_s']:.1f} exchanges/s on {c['workers']} workers; "
           f"xiezhu / floor: {result['ratio_floor']}")
    b = result.get("budget_cpu_ms")
    if b:
        yield (f"CPU ms an exchange at {b['ratio']} of the floor: {b['allowed_ms']} in all, "
               f"{b['left_for_the_rest_ms']} after nats-server's and the crypto's; "
               f"xiezhu's rest: {b['xiezhu_rest_ms']}")
    m = result["machine"]
    yield f"{m['cpus']} CPUs, Python {m['python']}, {m['nats_server']}; all correct: {result['ok']}"


# -- command line ------------------------------------------------------------------------


def parse(argv: list[str] | None) -> tuple[Options, bool]:
    """Options from the command line, and whether to print JSON."""
    summary = (__doc__ or "").split("\n\n")[0]
    p = argparse.ArgumentParser(prog="python -m bench.exchange", description=summary)
    p.add_argument("--requests", type=int, default=Options.requests, help="throughput phase size")
    p.add_argument("--latency-samples", type=int, default=Options.latency_samples,
                   help="sequential exchanges timed one by one")
    p.add_argument("--warmup", type=int, default=Options.warmup, help="untimed exchanges first")
    p.add_argument("--residents", type=int, default=Options.residents,
                   help="people in gongan's register")
    p.add_argument("--poll-ms", type=float, default=Options.poll_ms,
                   help="how often the sequential phase looks for xiezhu's reply")
    p.add_argument("--seed", type=int, default=Options.seed)
    p.add_argument("--paced", type=int, default=Options.paced,
                   help="exchanges offered at --rate a second, open loop (0: no paced phase)")
    p.add_argument("--rate", type=float, default=Options.rate, help="offered exchanges a second when paced")
    p.add_argument("--clerks", type=int, default=Options.clerks,
                   help="requests made at once in the paced and throughput phases (1: one after the other)")
    p.add_argument("--processes", action="store_true",
                   help="run gongan's agent and the ledger in their own processes, as `xiezhu run` does")
    p.add_argument("--agent-batch", type=int, default=0,
                   help="messages an agent in this process fetches at once (default: the agents' own setting)")
    p.add_argument("--floor-seconds", type=float, default=Options.floor_seconds,
                   help="how long each crypto-floor worker runs")
    p.add_argument("--database-url", default=None,
                   help="postgresql://…: run xiezhu's phases again with the stores, ledger and views there")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    a = p.parse_args(argv)
    opts = Options(requests=a.requests, latency_samples=a.latency_samples, warmup=a.warmup,
                   residents=a.residents, poll_ms=a.poll_ms, seed=a.seed, floor_seconds=a.floor_seconds,
                   paced=a.paced, rate=a.rate, clerks=a.clerks, agent_batch=a.agent_batch,
                   processes=a.processes, database_url=a.database_url)
    if (opts.requests < 1 or opts.latency_samples < 1 or opts.warmup < 0 or opts.residents < 1
            or opts.floor_seconds <= 0 or opts.paced < 0 or opts.rate <= 0 or opts.agent_batch < 0 or opts.clerks < 1):
        p.error("--requests, --latency-samples, --residents, --rate, --clerks and --floor-seconds must be positive, "
                "--warmup and --paced not negative")
    if opts.total_requests > MAX_LETTERS_PER_YEAR:
        p.error(f"shenpi can number at most {MAX_LETTERS_PER_YEAR} letters a year; "
                f"warm-up + latency samples + paced + requests = {opts.total_requests}")
    return opts, a.json


async def run(opts: Options) -> dict[str, Any]:
    """The whole benchmark: xiezhu first (it supplies the message sizes and envelopes), raw, the floor."""
    load, start = os.getloadavg()[0], time.perf_counter()
    if opts.agent_batch:
        agent.FETCH_BATCH = opts.agent_batch
    xiezhu, shape = await bench_xiezhu(opts)
    postgresql = (await bench_xiezhu(opts, opts.database_url))[0] if opts.database_url else None
    # The floor twice, around the raw run: on a shared machine one sample can land in a busy
    # moment, and the higher one is the fairer (stricter) measure to compare against.
    floors = [await asyncio.to_thread(floor.measure, xiezhu.envelopes, seconds=opts.floor_seconds)]
    raw = await bench_raw(opts, shape)
    floors.append(await asyncio.to_thread(floor.measure, xiezhu.envelopes, seconds=opts.floor_seconds))
    crypto = max(floors, key=lambda f: float(f["rate_per_s"])) | {
        "samples_rate_per_s": [f["rate_per_s"] for f in floors]}
    return report(opts, raw, xiezhu, shape, crypto, time.perf_counter() - start, load, postgresql)


def main(argv: list[str] | None = None) -> int:
    """Run once, print the result; status 1 if an exchange went wrong, 2 if it stalled."""
    opts, as_json = parse(argv)
    try:
        result = asyncio.run(run(opts))
    except BenchError as e:
        print(f"bench.exchange: {e}", file=sys.stderr)
        return 2
    print(json.dumps(result, ensure_ascii=False, indent=2) if as_json else "\n".join(table(result)))
    return 0 if result["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
