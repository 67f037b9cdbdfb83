"""Shared fixtures: a real nats-server per test, real SQLite files in a temp directory."""
from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import sqlite_utils

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


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--run-slow", action="store_true", help="also run long fuzz and soak tests")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if config.getoption("--run-slow"):
        return
    skip = pytest.mark.skip(reason="long-running; pass --run-slow to run it")
    for item in items:
        if "slow" in item.keywords:
            item.add_marker(skip)


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
        identities = generate_identities(Registry.load().codes(), Settings(data_dir=tmp_path / "data").nats_keys_dir,
                                         provisioner=True)
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


async def eventually(predicate, timeout: float = 10.0) -> None:  # type: ignore[no-untyped-def]
    """Wait until ``predicate()`` is true (for things that happen in the background)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not predicate():
        if loop.time() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.02)
