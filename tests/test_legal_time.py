"""Legal time on the production path (附件2 第五条, decision 28): JetStream's stored time, on the system clock.

The other tests drive a simulated clock, where the ledger and the agents stamp arrivals from
the clock.  Here nothing is simulated: the ledger service takes each message's stored time
from JetStream's delivery metadata, and the deadline runs from it.
"""
from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import nats
import pytest

from aggregates.clock import SystemClock
from aggregates.registry import Registry
from aggregates.workdays import WorkingCalendar
from broker.server import server_list
from broker.streams import EVENTS_STREAM
from schemas.assistance import CommitmentItem, Matter
from tests.conftest import ITEMS, publish_catalogue
from tests.test_exchange import ZHANG
from xiezhu.node import Node
from xiezhu.settings import Settings


@pytest.fixture
def nats_auth() -> bool:
    """A server without users: the test reads the stream's own record of the message directly."""
    return False


async def test_the_deadline_runs_from_the_time_jetstream_stored_the_request_on_the_system_clock(
        settings: Settings, registry: Registry) -> None:
    before = datetime.now(UTC)
    node = Node(settings, registry, SystemClock(), agents=("shenpi",), ledger=True, projection=True,
                simulated=False, generate_keys=True, key_valid_from=before - timedelta(days=1))
    publish_catalogue(node)
    await node.start()
    try:
        st = node.store("shenpi").assistance.request(  # to ziran, whose agent does not run here
            assistor="ziran", applicant=ZHANG, matter=Matter(code="370405-XK-0101", name="食品经营许可"),
            applied_on=date(2026, 9, 20), items=[CommitmentItem(no=1, text="本人户籍所在地为运河街道")],
            catalogue_item=ITEMS["ziran"])
        node.wake_relays()
        await node.settle()
        assert node.ledger is not None and node.sla is not None
        [entry] = node.ledger.case(st.case)
        nc = await nats.connect(servers=server_list(node.nats_url), **node.credentials("ledger"))
        try:
            stored = (await nc.jetstream().get_msg(EVENTS_STREAM, entry.stream_seq)).time
        finally:
            await nc.close()
        assert stored is not None
        recorded = datetime.fromisoformat(entry.arrived_at)
        assert abs(recorded - stored) < timedelta(milliseconds=1)  # JetStream's time, not the ledger's own clock
        assert before <= recorded <= datetime.now(UTC)
        [row] = node.sla.rows()
        assert row["arrived_at"] == entry.arrived_at and row["acknowledged_at"] is None
        assert row["due_at"] == WorkingCalendar().add_working_days(recorded, 3).ends_at.isoformat()
        assert row["state"] in ("on-time", "due-soon", "due-today")
    finally:
        await node.stop()
