"""Shared fixtures: a real nats-server per test, real SQLite files in a temp directory."""
from __future__ import annotations

import asyncio
import atexit
import fcntl
import functools
import gc
import json
import os
import re
import shutil
import socket
import sys
import tempfile
import threading
import uuid
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlite_utils
from nats.aio.client import Client as NatsClient
from nats.js import JetStreamContext

from agencies.trust.keys import KeyStore
from aggregates.clock import SimulatedClock
from aggregates.registry import Registry
from broker.auth import generate_identities, server_config
from broker.server import EmbeddedNats
from schemas.catalogue import AssistanceItem
from xiezhu.node import Node
from xiezhu.settings import Settings

START = datetime(2026, 9, 21, 1, 0, tzinfo=UTC)  # Monday 09:00 in Shanghai

RESIDENT = {"id_number": "370405199001011234", "name": "张三", "residence": "山东省枣庄市台儿庄区运河街道",
            "criminal_record": 0}


# A terminal's size is each test's to choose (COLUMNS in the environment it runs a command with): none
# comes from outside.  pytest loads readline, which puts COLUMNS=80 and LINES=24 into the process's C
# environment, and pytest-xdist's workers are started with it; rich's Console keeps the COLUMNS it finds
# when it is made (xiezhu.cli.common's, at import: this runs before any test module imports it).
for _name in ("COLUMNS", "LINES"):
    os.environ.pop(_name, None)


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--run-slow", action="store_true", help="also run long fuzz and soak tests")


#: A test that uses the session's demo may be the one whose setup runs it (about a minute, more on a busy machine).
DEMO_TIMEOUT = 600


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        if "demo_run" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.timeout(DEMO_TIMEOUT))
    if config.getoption("--run-slow"):
        return
    skip = pytest.mark.skip(reason="long-running; pass --run-slow to run it")
    for item in items:
        if "slow" in item.keywords:
            item.add_marker(skip)


#: Seconds before a test's timeout at which the stacks of the event loops' tasks go to its captured stderr.
TASKS_DUMP_LEAD_S = 10.0


def _timeout_of(item: pytest.Item) -> float:
    """The test's pytest-timeout (its marker's, else the configured one); 0 for none."""
    marker = item.get_closest_marker("timeout")
    value = (marker.args[0] if marker.args else marker.kwargs.get("timeout")) if marker else \
        item.config.getini("timeout")
    try:
        return float(value or 0)
    except (TypeError, ValueError):
        return 0.0


def _dump_tasks(nodeid: str) -> None:
    """Where each task of every running event loop waits.

    pytest-timeout shows the threads' stacks: of an async test that waits for ever, only its loop's
    select().  This shows which await each task is in (read from another thread while the loop runs: a
    diagnosis, which must never fail the test itself)."""
    try:
        loops = [o for o in gc.get_objects() if isinstance(o, asyncio.AbstractEventLoop) and o.is_running()]
        print(f"\n=== {nodeid} is {TASKS_DUMP_LEAD_S:g} s from its timeout; where its event loops' tasks wait ===",
              file=sys.stderr)
        for loop in loops:
            for task in list(asyncio.all_tasks(loop)):
                print(f"{task.get_name()}:", *_awaits(task.get_coro()), sep="\n  ", file=sys.stderr)
    except Exception as e:  # noqa: BLE001
        print(f"(the tasks could not be shown: {e!r})", file=sys.stderr)


def _awaits(coro: Any) -> list[str]:
    """The chain of awaits a suspended coroutine is in, outermost first (a task's own stack has only the first)."""
    lines = []
    while coro is not None:
        frame = getattr(coro, "cr_frame", None) or getattr(coro, "gi_frame", None) or getattr(coro, "ag_frame", None)
        if frame is None:
            lines.append(f"awaiting {coro!r}"[:300])
            break
        lines.append(f"{frame.f_code.co_filename}:{frame.f_lineno} in {frame.f_code.co_name}")
        coro = getattr(coro, "cr_await", None) or getattr(coro, "gi_yieldfrom", None) or getattr(coro, "ag_await", None)
    return lines


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_protocol(item: pytest.Item, nextitem: pytest.Item | None) -> Iterator[None]:
    timeout = _timeout_of(item)
    timer = None
    if timeout > TASKS_DUMP_LEAD_S:
        timer = threading.Timer(timeout - TASKS_DUMP_LEAD_S, _dump_tasks, args=(item.nodeid,))
        timer.daemon = True
        timer.start()
    try:
        yield
    finally:
        if timer is not None:
            timer.cancel()


# `xiezhu` run in-process writes the language and the log format into os.environ for the services it
# starts; without this, one test's `--lang en` would change what every later test reads.
_PROCESS_WIDE = ("XIEZHU_LANG", "XIEZHU_LOG_JSON")


@pytest.fixture(autouse=True)
def _each_test_keeps_its_own_language() -> Iterator[None]:
    before = {name: os.environ.get(name) for name in _PROCESS_WIDE}
    yield
    for name, value in before.items():
        if value is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = value

# -- made once a session, copied into each test: keys and NATS seeds -------------------------------------
#
# Making a bureau's keys writes and fsyncs a file per key: for the registry's 37 bureaus about half a
# second of each test that starts a node.  Each test gets a copy of its own; the code under test then
# finds them existing, as a deployment's node does after `xiezhu keys init` and `xiezhu nats-config`
# (making them is tested where it is the subject: test_trust, test_registry_keys, test_nats_auth).


@functools.cache
def _made_once() -> Path:
    root = Path(tempfile.mkdtemp(prefix="xiezhu-tests-made-once-"))
    atexit.register(shutil.rmtree, root, ignore_errors=True)
    return root


@functools.cache
def _template(kind: str, codes: tuple[str, ...], valid_from: datetime | None = None) -> Path:
    where = _made_once() / f"{kind}-{len(list(_made_once().iterdir()))}"
    if kind == "keys":
        assert valid_from is not None
        KeyStore(where).ensure(list(codes), valid_from=valid_from)
    else:
        generate_identities(codes, where, provisioner=True)
    return where


def copy_made_once(kind: str, to: Path, codes: list[str], valid_from: datetime | None = None) -> None:
    """The session's ``kind`` ("keys": a KeyStore's signed list and keys, valid from ``valid_from``;
    "nats-keys": the NKey seeds with a one-shot provisioner's) for ``codes``, copied to ``to`` if absent."""
    if not to.exists():
        shutil.copytree(_template(kind, tuple(codes), valid_from), to)


@pytest.fixture
def nats_auth() -> bool:
    """Whether the test's server has the generated NKey users (a module may override this with False)."""
    return True


@pytest.fixture
def nats_server(tmp_path: Path, nats_auth: bool) -> Iterator[EmbeddedNats]:
    """A real nats-server with JetStream on a free port, its own store, for one test.

    One server per test keeps tests hermetic: the stream and consumer names are the
    deployment's own, so tests must not share them.  It runs the authorization generated
    from the registry, as a deployment's does; the seeds are in the test data directory's
    ``nats-keys``, where the node (and ``node.credentials(name)``) finds them.
    """
    config: Path | None = None
    if nats_auth:
        # With a one-shot provisioner, as `xiezhu nats-config --provisioner` makes it: the first node
        # (or `provision`) to start creates the streams and consumers with it and deletes its seed.
        codes, seeds = Registry.load().codes(), Settings(data_dir=tmp_path / "data").nats_keys_dir
        copy_made_once("nats-keys", seeds, codes)
        identities = generate_identities(codes, seeds, provisioner=True)
        config = tmp_path / "nats-auth.conf"
        config.write_text(server_config(identities, jetstream_store_dir=None))
    server = EmbeddedNats(tmp_path / "nats", config_file=config).start()
    yield server
    server.stop()


@pytest.fixture
def registry() -> Registry:
    return Registry.load()


@pytest.fixture
def clock() -> SimulatedClock:
    return SimulatedClock(START)


@pytest.fixture
def settings(tmp_path: Path, nats_server: EmbeddedNats) -> Settings:
    s = Settings(data_dir=tmp_path / "data", nats_url=nats_server.url)
    s.bureau_dir("gongan").mkdir(parents=True, exist_ok=True)
    sqlite_utils.Database(s.bureau_data_path("gongan"))["residents"].insert(RESIDENT, pk="id_number")
    return s


#: The assistance items the tests request under (第七条: nothing else can be requested).
ITEMS = {"gongan": "XZ-0001", "ziran": "XZ-0007"}


def publish_catalogue(node: Node) -> None:
    """区审批服务局 lists its two assistance items; 区司法局 approves and publishes them."""
    basis = "《国务院办公厅关于全面推行证明事项告知承诺制的指导意见》"
    for seq, (assistor, code) in enumerate(ITEMS.items(), start=1):
        row = AssistanceItem(code=code, seq=seq, service_matter_name="食品经营许可",
                             service_matter_code="370405-XK-0101", item_name="户籍及无犯罪记录核查",
                             legal_basis=basis, handling_body="shenpi", assisting_body=assistor,
                             verification_method="部门间行政协助")
        node.catalogue.review(node.catalogue.apply_adjustment("assistance", "shenpi", basis, adds=[row]), True)
    node.catalogue.publish("assistance")


def make_node(settings: Settings, registry: Registry, clock: SimulatedClock,
              agents: tuple[str, ...] = ("shenpi", "gongan", "ziran")) -> Node:
    """A node with a published catalogue, not yet started."""
    copy_made_once("keys", settings.keys_dir, registry.codes(), START - timedelta(days=1))
    n = Node(settings, registry, clock, agents=agents, ledger=True, projection=True,
             simulated=True, generate_keys=True, key_valid_from=START - timedelta(days=1))
    publish_catalogue(n)
    return n


@pytest.fixture
async def node(settings: Settings, registry: Registry, clock: SimulatedClock) -> AsyncIterator[Node]:
    """shenpi (requester), gongan (verifier) and ziran (operator inbox) agents, ledger and SLA view."""
    n = make_node(settings, registry, clock)
    await n.start()
    yield n
    await n.stop()


@pytest.fixture(scope="session")
def demo_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Any]]:
    """One ``xiezhu demo`` for the whole run: its data directory and JSON summary. Read-only:
    a test that changes the data works on a copy (:func:`copy_of_demo`).

    In pytest-xdist's workers (``make test``) it is the run's, not each worker's: the first worker
    to need it runs it in the directory the workers' own temporary directories are in, holding a
    lock; the others wait for the lock and read the same directory and summary."""
    from tests.helpers import xiezhu

    shared = tmp_path_factory.getbasetemp()
    if os.environ.get("PYTEST_XDIST_WORKER"):
        shared = shared.parent
    data, made = shared / "demo" / "xiezhu", shared / "demo" / "summary.json"
    made.parent.mkdir(exist_ok=True)
    with open(shared / "demo.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file is closed
        if not made.exists():
            # Seed 1 leaves requests open in operator inboxes at the end (test_cli checks it, not assumes it).
            made.write_text(xiezhu("demo", "--json", "--requests", "40", "--seed", "1", data_dir=data,
                                   timeout=DEMO_TIMEOUT).stdout)
    return data, json.loads(made.read_text())


def copy_of_demo(demo: tuple[Path, dict[str, Any]], to: Path) -> tuple[Path, dict[str, Any]]:
    """A copy of the session's demo data directory, for tests that answer, adjust or checkpoint."""
    data, summary = demo
    copy = to / "xiezhu"
    shutil.copytree(data, copy)
    return copy, summary


def bound_socket(host: str = "127.0.0.1") -> socket.socket:
    """A TCP socket bound to a free port of ``host`` (``getsockname()[1]``), not yet listening, for a test
    server to serve on (uvicorn's ``serve(sockets=…)``, asyncio's ``create_server(sock=…)``).

    A port number found free, let go and handed to a server can be bound by another xdist worker in
    between, and the server then fails to start; a socket kept bound cannot lose its port.  Until the
    server listens on it, a connection to the port is refused, as to a server that is down."""
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.bind((host, 0))
    return s


#: How long a test's JetStream API call (a stream's or a consumer's info, a publish …) waits for its answer:
#: nats-py's default of 5 s is short for a 2-core machine running three xdist workers (load 12 and more).
JS_TIMEOUT = 30.0


def jetstream(nc: NatsClient) -> JetStreamContext:
    """``nc``'s JetStream context whose API calls wait :data:`JS_TIMEOUT` (a test that expects a refusal to
    time out makes its own short one)."""
    return nc.jetstream(timeout=JS_TIMEOUT)


async def eventually(predicate, timeout: float = 10.0) -> None:  # type: ignore[no-untyped-def]
    """Wait until ``predicate()`` is true (for things that happen in the background)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not predicate():
        if loop.time() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.02)


# -- the storage backends: every store test runs on SQLite, and on PostgreSQL where one is given --------

ENV_TEST_DATABASE_URL = "XIEZHU_TEST_DATABASE_URL"


class StoreLocations:
    """Where a test's bureau stores live: SQLite files in its temp directory, or fresh PostgreSQL schemas."""

    def __init__(self, tmp_path: Path, database_url: str | None) -> None:
        self.tmp_path = tmp_path
        self.database_url = database_url
        self.tag = uuid.uuid4().hex[:10]
        self.schemas: list[str] = []

    def __call__(self, name: str) -> Path | str:
        """The location of store ``name`` (the same name gives the same store again)."""
        if self.database_url is None:
            return self.tmp_path / f"{name}.db"
        from aggregates.store import bureau_location

        self.schemas.append(f"t{self.tag}_{name}")
        return bureau_location(f"{self.database_url}?schema=t{self.tag}", name)

    def drop(self) -> None:
        """Drop the test's schemas (PostgreSQL), so the shared database does not fill up."""
        if self.database_url is None or not self.schemas:
            return
        from aggregates.database import drop_schemas

        drop_schemas(self.database_url, f"t{self.tag}")  # with those made beside them (see beside())


def beside(location: Path | str, path: Path) -> Path | str:
    """A record next to the one at ``location``: the file ``path`` on SQLite; on PostgreSQL a schema of the
    same test (``…_<dir>_<stem>`` of ``path``), dropped with the test's other schemas."""
    from aggregates.database import is_postgres

    if not is_postgres(location):
        return path
    name = re.sub(r"[^a-z0-9_]", "_", f"{path.parent.name}_{path.stem}".lower())
    return re.sub(r"schema=(t[0-9a-f]+)_[a-z0-9_]+", rf"schema=\1_{name}", str(location))


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def store_location(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[StoreLocations]:
    """A contract: the store tests that take this run on both backends (PostgreSQL from
    ``XIEZHU_TEST_DATABASE_URL``, each test in fresh schemas; skipped, saying so, without it)."""
    url = None
    if request.param == "postgres":
        url = os.environ.get(ENV_TEST_DATABASE_URL)
        if not url:
            pytest.skip(f"{ENV_TEST_DATABASE_URL} is not set: no PostgreSQL to run the store contract on")
    locations = StoreLocations(tmp_path, url)
    yield locations
    locations.drop()
