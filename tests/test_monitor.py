"""The 司法局 SLA monitor: reminders and breaches reach both bureaus, each exactly once."""
from __future__ import annotations

import sqlite3
from datetime import datetime
from typing import Any

import msgspec
import pytest

from agencies.monitor import SlaMonitor
from aggregates.clock import SimulatedClock
from aggregates.registry import Registry
from aggregates.store import SHANGHAI
from tests.conftest import eventually, make_node
from tests.test_exchange import request
from xiezhu.node import Node
from xiezhu.settings import Settings


def sla_types(node: Node, code: str) -> list[str]:
    return [env.type + ":" + env.payload.kind for env in node.store(code).notices.received()]  # type: ignore[union-attr]


def ledger_count(node: Node, event_type: str) -> int:
    assert node.ledger is not None
    return sum(1 for e in node.ledger.entries() if e.type == event_type)


async def started(settings: Settings, registry: Registry, clock: SimulatedClock) -> Node:
    node = make_node(settings, registry, clock, agents=("shenpi", "ziran", "sifa"))
    return await node.start()


async def test_a_missed_deadline_is_reported_once_to_both_bureaus_also_after_a_restart(
        settings: Settings, registry: Registry, clock: SimulatedClock) -> None:
    node = await started(settings, registry, clock)
    try:
        request(node, assistor="ziran", check="")  # waits for a person, who does not answer
        await node.settle()
        assert node.monitor is not None
        clock.set(datetime(2026, 9, 28, 9, 0, tzinfo=SHANGHAI))  # due 09-24 24:00: overdue
        for _ in range(2):
            node.monitor.tick()
        SlaMonitor(node.store("sifa"), node.monitor.view, clock).tick()  # a restarted monitor
        node.wake_relays()
        await node.settle()
        assert sla_types(node, "shenpi") == ["sla.breached:reply"]
        assert sla_types(node, "ziran") == ["sla.breached:reply"]
        assert ledger_count(node, "sla.breached") == 2  # one signed copy to each bureau
        breach = node.store("ziran").notices.received()[0]
        assert breach.sender == "sifa" and breach.payload.working_days_late == 1  # type: ignore[union-attr]
    finally:
        await node.stop()


async def test_a_pass_of_the_views_that_failed_is_tried_again_and_the_breach_still_goes_out(
        settings: Settings, registry: Registry, clock: SimulatedClock) -> None:
    """A passing failure of one pass (here the SLA view's file busy past its timeout) is logged and the
    next pass goes on: the views and the monitor are not left stopped, with settle() waiting for them."""
    node = await started(settings, registry, clock)
    try:
        assert node.sla is not None
        follow, failed = node.sla.follow, []

        def busy_once(*args: Any, **kwargs: Any) -> int:
            if not failed:
                failed.append(True)
                raise sqlite3.OperationalError("database is locked")
            return follow(*args, **kwargs)

        node.sla.follow = busy_once  # type: ignore[method-assign]
        request(node, assistor="ziran", check="")
        node.wake_projections()
        await node.settle(timeout=30)
        assert failed and node.sla.rows()  # it failed once, and followed the ledger after
        clock.set(datetime(2026, 9, 28, 9, 0, tzinfo=SHANGHAI))
        node.wake_projections()  # the monitor looks at the clock in the same pass
        await eventually(lambda: sla_types(node, "ziran") == ["sla.breached:reply"], timeout=30)
    finally:
        await node.stop()


async def test_a_wait_for_the_system_that_times_out_says_what_it_waited_for(
        settings: Settings, registry: Registry, clock: SimulatedClock) -> None:
    node = await started(settings, registry, clock)
    try:
        assert node.sla is not None

        def busy(*args: Any, **kwargs: Any) -> int:
            raise sqlite3.OperationalError("database is locked")

        node.sla.follow = busy  # type: ignore[method-assign]
        request(node, assistor="ziran", check="")
        with pytest.raises(TimeoutError, match=r"did not settle in 3 s: views behind the ledger's [1-9]\d*: sla at 0"):
            await node.settle(timeout=3)
    finally:
        await node.stop()


async def test_a_reminder_comes_at_the_start_of_the_last_working_day(
        settings: Settings, registry: Registry, clock: SimulatedClock) -> None:
    node = await started(settings, registry, clock)
    try:
        request(node, assistor="ziran", check="")  # arrives Monday 09-21: due 09-24 24:00
        await node.settle()
        assert node.monitor is not None
        clock.set(datetime(2026, 9, 23, 20, 0, tzinfo=SHANGHAI))
        assert node.monitor.tick() == (0, 0)
        clock.set(datetime(2026, 9, 24, 8, 0, tzinfo=SHANGHAI))
        node.monitor.tick()
        node.wake_relays()
        await node.settle()
        assert sla_types(node, "ziran") == ["sla.reminder:reply"]
        assert node.monitor.tick() == (0, 0)
    finally:
        await node.stop()


async def test_a_late_decline_breaks_the_decline_deadline(
        settings: Settings, registry: Registry, clock: SimulatedClock) -> None:
    node = await started(settings, registry, clock)
    try:
        case = request(node, assistor="ziran", check="")
        await node.settle()
        clock.set(datetime(2026, 9, 24, 10, 0, tzinfo=SHANGHAI))  # decline was due 09-23 24:00
        node.store("ziran").assistance.decline(case, "不属于本机关职权范围", "operator:王伟")
        node.wake_relays()
        await node.settle()
        assert node.monitor is not None
        node.monitor.tick()
        node.wake_relays()
        await node.settle()
        assert sla_types(node, "shenpi") == ["sla.breached:decline"]
    finally:
        await node.stop()


async def test_the_monitor_reads_the_open_requests_and_the_late_answers_only(
        settings: Settings, registry: Registry, clock: SimulatedClock) -> None:
    node = await started(settings, registry, clock)
    try:
        open_case, in_time, late = (request(node, assistor="ziran", check="") for _ in range(3))
        await node.settle()
        node.store("ziran").assistance.decline(in_time, "不属于本机关职权范围", "operator:王伟")
        node.wake_relays()
        await node.settle()  # recorded before the clock moves on
        clock.set(datetime(2026, 9, 24, 10, 0, tzinfo=SHANGHAI))  # decline was due 09-23 24:00
        node.store("ziran").assistance.decline(late, "不属于本机关职权范围", "operator:王伟")
        node.wake_relays()
        await node.settle()
        assert node.sla is not None and node.monitor is not None
        states = {r["case_id"]: r["state"] for r in node.sla.rows()}
        assert states[in_time] == "declined-on-time" and states[late] == "declined-late"
        assert {r["case_id"] for r in node.sla.notice_rows()} == {open_case, late}
        node.monitor.tick()
        node.wake_relays()
        await node.settle()
        # The open request is in its last working day; the one declined in time calls for nothing.
        assert sorted(sla_types(node, "shenpi")) == ["sla.breached:decline", "sla.reminder:reply"]
    finally:
        await node.stop()


async def test_the_reminder_lead_time_is_configurable(
        settings: Settings, registry: Registry, clock: SimulatedClock) -> None:
    from dataclasses import replace
    from datetime import timedelta

    node = await started(replace(settings, remind_before_hours=2), registry, clock)
    try:
        request(node, assistor="ziran", check="")  # due 09-24 24:00
        await node.settle()
        assert node.monitor is not None and node.monitor.remind_before == timedelta(hours=2)
        clock.set(datetime(2026, 9, 24, 8, 0, tzinfo=SHANGHAI))
        node.monitor.tick()
        assert node.monitor.stats.reminders == 0
        clock.set(datetime(2026, 9, 24, 22, 30, tzinfo=SHANGHAI))
        node.monitor.tick()  # the node's own loop may have ticked first: count, not return value
        assert node.monitor.stats.reminders == 1
    finally:
        await node.stop()


def test_a_bad_reminder_setting_is_a_clear_error(tmp_path) -> None:  # type: ignore[no-untyped-def]
    import pytest

    from xiezhu.settings import SettingsError

    with pytest.raises(SettingsError, match="XIEZHU_REMIND_BEFORE_HOURS"):
        Settings.resolve(tmp_path, None, {"XIEZHU_REMIND_BEFORE_HOURS": "soon"})


async def test_a_request_whose_assisting_agent_never_runs_goes_overdue_and_the_breach_goes_out_on_time(
        settings: Settings, registry: Registry, clock: SimulatedClock) -> None:
    """第五条: the deadline runs from the platform's record of the push; ziran's agent never starts."""
    node = await make_node(settings, registry, clock, agents=("shenpi", "sifa")).start()
    try:
        case = request(node, assistor="ziran", check="")  # stored Monday 09-21: due 09-24 24:00
        await node.settle()
        assert node.ledger is not None and node.sla is not None and node.monitor is not None
        assert [e.type for e in node.ledger.case(case)] == ["assistance.requested"]  # no acknowledgment, ever
        [row] = node.sla.rows(now=clock.now())
        assert (row["status"], row["state"], row["acknowledged_at"]) == ("requested", "on-time", None)
        assert row["due_at"] == "2026-09-25T00:00:00+08:00"
        clock.set(datetime(2026, 9, 24, 8, 0, tzinfo=SHANGHAI))
        node.monitor.tick()
        clock.set(datetime(2026, 9, 24, 23, 59, tzinfo=SHANGHAI))
        node.monitor.tick()
        assert node.monitor.stats.breaches == 0  # not before 24:00 of the last working day
        clock.set(datetime(2026, 9, 25, 0, 0, 1, tzinfo=SHANGHAI))
        node.monitor.tick()
        node.wake_relays()
        await node.settle()
        assert sla_types(node, "shenpi") == ["sla.reminder:reply", "sla.breached:reply"]
        [breach] = [n for n in node.store("shenpi").notices.received() if n.type == "sla.breached"]
        assert breach.payload.due_at == datetime(2026, 9, 25, 0, 0, tzinfo=SHANGHAI)  # type: ignore[union-attr]
        assert breach.payload.detected_at < datetime(2026, 9, 25, 0, 1, tzinfo=SHANGHAI)  # type: ignore[union-attr]
        # The assisting bureau's copies are on the record although its agent never ran.
        to_ziran = [e.type for e in node.ledger.entries() if e.recipient == "ziran" and e.type.startswith("sla.")]
        assert to_ziran == ["sla.reminder", "sla.breached"]
    finally:
        await node.stop()


def test_the_district_government_criticises_a_bureau_for_its_breaches_and_orders_a_correction(store_location) -> None:  # type: ignore[no-untyped-def]
    """附件2 第十二条: 由区政府予以教育或通报批评，责令其限期改正 — only 区政府 may, and the ledger shows it."""
    from datetime import date

    import pytest

    from aggregates.errors import RuleError
    from aggregates.store import BureauStore
    from broker.ledger.store import Ledger
    from projections.history import history
    from schemas.envelope import decode_envelope
    from tests.test_signing import make_signer

    clock = SimulatedClock(datetime(2026, 10, 12, 9, tzinfo=SHANGHAI))
    district = BureauStore("zhengfuban", store_location("z"), make_signer("zhengfuban").sign, clock)
    ziran = BureauStore("ziran", store_location("r"), make_signer("ziran").sign, clock)
    shenpi = BureauStore("shenpi", store_location("s"), make_signer("shenpi").sign, clock)
    about = [("8b5ed1a1-3f3e-4e59-9a4e-2f1e2d3c4b5a", "20260001")]
    with pytest.raises(RuleError, match="第十二条"):
        shenpi.notices.criticise("ziran", "criticism", about, "逾期未答复", date(2026, 10, 20))
    with pytest.raises(RuleError, match="past"):
        district.notices.criticise("ziran", "criticism", about, "逾期未答复", date(2026, 10, 1))
    district.notices.criticise("ziran", "criticism", about, "两次逾期未答复行政协助请求", date(2026, 10, 20))
    [(_, sent)] = district.outgoing_since(0, 10)
    env = decode_envelope(sent.body)
    assert (env.type, env.recipient, env.payload.correct_by) == (  # type: ignore[union-attr]
        "notice.criticism", "ziran", date(2026, 10, 20))
    ziran.accept(sent, env, stream_seq=1, arrived_at=clock.now())
    assert [n.type for n in ziran.notices.received()] == ["notice.criticism"]
    forged = shenpi.sign(msgspec.structs.replace(env, sender="shenpi", id="0b5ed1a1-3f3e-4e59-9a4e-2f1e2d3c4b5a"))
    with pytest.raises(RuleError, match="区政府"):
        ziran.accept(forged, decode_envelope(forged.body), stream_seq=2, arrived_at=clock.now())
    ledger = Ledger(store_location("ledger"))
    ledger.append([(sent, env, 1, clock.now())])
    [line] = history(ledger, about[0][0]).lines
    assert line.summary.startswith("第十二条: 区政府对ziran通报批评，责令其于2026-10-20前改正")
    ledger.close()
