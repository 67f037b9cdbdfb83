"""Legal time on the production path (附件2 第五条, decisions 28 and 57): the push's end, on the system clock.

The other tests drive a simulated clock, where the ledger and the agents stamp arrivals from
the clock.  Here nothing is simulated: a bureau's push ends when its sending stream
``XZ_FROM_<code>`` stores the message; ``XZ`` sources a copy after that.  The test holds the
sourcing back (it takes shenpi's stream out of ``XZ``'s sources, then puts it back), so that
``XZ``'s copies come 300 ms after the pushes ended: the ledger records the sending stream's
time, the deadline runs from it (ziran's own receipt keeps the copy's time, decision 57), and
``xiezhu audit --platform`` finds an arrival moved to ``XZ``'s later time, while a ledger from
before decision 57 (every arrival ``XZ``'s time) passes.
"""
from __future__ import annotations

import asyncio
import shutil
import sqlite3
from contextlib import closing
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import nats
import pytest
from nats.js import JetStreamContext

from aggregates.clock import SystemClock
from aggregates.registry import Registry
from aggregates.workdays import WorkingCalendar
from broker.ledger.audit import audit, render
from broker.pushed import source_of
from broker.server import server_list
from broker.streams import EVENTS_STREAM, sending_stream
from broker.witness import Stored, read_stored
from schemas.assistance import CommitmentItem, Matter
from tests.conftest import ITEMS, eventually, jetstream, publish_catalogue
from tests.helpers import cli, rechain
from tests.test_exchange import ZHANG
from xiezhu.cli.main import app
from xiezhu.node import Node
from xiezhu.settings import ENV_NATS_URL, Settings

#: How long the test holds ``XZ``'s sourcing of shenpi's sending stream back.
HELD_S = 0.3


@pytest.fixture
def nats_auth() -> bool:
    """A server without users: the test changes ``XZ``'s sources and reads the streams' own records directly."""
    return False


async def _source_shenpi(js: JetStreamContext, *, on: bool) -> None:
    """Take shenpi's sending stream out of ``XZ``'s sources, or put it back (sourcing resumes where it stopped)."""
    config = (await js.stream_info(EVENTS_STREAM)).config
    others = [s for s in config.sources or [] if s.name != sending_stream("shenpi")]
    if on:
        others.append(type(others[0])(name=sending_stream("shenpi")))
    await js.update_stream(config.evolve(sources=others))


async def test_the_deadline_runs_from_the_push_s_end_not_from_xz_s_later_copy_and_the_audit_holds_to_it(
        settings: Settings, registry: Registry, tmp_path: Path) -> None:
    before = datetime.now(UTC)
    node = Node(settings, registry, SystemClock(), agents=("shenpi", "ziran"), ledger=True, projection=True,
                simulated=False, generate_keys=True, key_valid_from=before - timedelta(days=1))
    publish_catalogue(node)
    await node.start()
    nc = await nats.connect(servers=server_list(node.nats_url))
    js = jetstream(nc)
    try:
        await _source_shenpi(js, on=False)
        cases = [node.store("shenpi").assistance.request(
            assistor="ziran", applicant=ZHANG, matter=Matter(code="370405-XK-0101", name="食品经营许可"),
            applied_on=date(2026, 9, 20), items=[CommitmentItem(no=1, text=f"本人户籍所在地为运河街道（{n}）")],
            catalogue_item=ITEMS["ziran"]).case for n in (1, 2)]
        node.wake_relays()
        for _ in range(200):  # the pushes end: shenpi's stream has stored both
            if (await js.stream_info(sending_stream("shenpi"))).state.messages == 2:
                break
            await asyncio.sleep(0.02)
        await asyncio.sleep(HELD_S)
        assert (await js.stream_info(EVENTS_STREAM)).state.messages == 0  # XZ has no copy yet
        await _source_shenpi(js, on=True)
        await node.settle()
        assert node.ledger is not None and node.sla is not None
        await eventually(lambda: all(r["acknowledged_at"] for r in node.sla.rows()), timeout=30)
        entries = [e for case in cases for e in node.ledger.case(case) if e.type == "assistance.requested"]
        assert len(entries) == 2
        sources = {}
        for entry in entries:
            copy = await js.get_msg(EVENTS_STREAM, entry.stream_seq)
            source = source_of(copy.subject or "", copy.headers or {})
            assert source is not None and source.stream == "XZ_FROM_shenpi"
            sources[entry.pos] = source.seq
            pushed = (await js.get_msg(source.stream, source.seq)).time
            assert pushed is not None and copy.time is not None and copy.data == entry.signed.body
            recorded = datetime.fromisoformat(entry.arrived_at)
            assert abs(recorded - pushed) < timedelta(milliseconds=1)  # the sending stream's time …
            assert copy.time - recorded >= timedelta(seconds=HELD_S)  # … not XZ's, which came later
            assert before <= recorded <= datetime.now(UTC)
            [row] = [r for r in node.sla.rows() if r["case_id"] == entry.case_id]
            assert row["arrived_at"] == entry.arrived_at
            assert row["due_at"] == WorkingCalendar().add_working_days(recorded, 3).ends_at.isoformat()
            # ziran's own signed receipt takes XZ's copy (an agent reads no sending stream): later, not flagged
            assert abs(datetime.fromisoformat(row["acknowledged_at"]) - copy.time) < timedelta(milliseconds=1)
            assert not row["time_flags"]
        stored = await read_stored(js, [e.stream_seq for e in node.ledger.entries()])  # receipts too
    finally:
        await nc.close()
        await node.stop()

    def platform(asked: list[int]) -> dict[int, Stored]:
        return {seq: stored[seq] for seq in asked if seq in stored}

    clean = audit(settings.ledger_path, node.ring, workers=1, platform=platform)
    assert clean.ok and clean.platform_checked == len(node.ledger) and clean.platform_legacy == 0, clean.problems
    first, second = sorted(entries, key=lambda e: e.pos)
    copied_at = {e.pos: stored[e.stream_seq].time.isoformat() for e in entries}

    def insider(name: str, arrivals: dict[int, str]) -> str:
        path = tmp_path / f"{name}.db"
        with closing(sqlite3.connect(settings.ledger_path)) as src, closing(sqlite3.connect(path)) as dst:
            src.backup(dst)  # the file and what its write-ahead log holds
        with closing(sqlite3.connect(path)) as db, db:
            for pos, arrived in arrivals.items():
                db.execute("UPDATE entries SET arrived_at = ? WHERE pos = ?", (arrived, pos))
            db.execute("DELETE FROM checkpoints")  # signed at stop; nobody witnessed it (no signing key needed)
        rechain(path)
        return str(path)

    # An arrival moved to XZ's later copy, after an entry on the push's time: found, and the stream named.
    moved = audit(insider("moved", {second.pos: copied_at[second.pos]}), node.ring, workers=1, platform=platform)
    assert [(p.position, p.kind) for p in moved.problems] == [(second.pos, "platform")], moved.problems
    reason = moved.problems[0].reason
    assert f"but the push ended when XZ_FROM_shenpi stored it (sequence {sources[second.pos]}) at " in reason
    assert f"XZ's copy came at {copied_at[second.pos]}" in reason and f"from position {first.pos}" in reason
    # A ledger from before decision 57, every arrival XZ's time of its copy: it passes, counted as such.
    old = audit(insider("old", copied_at), node.ring, workers=1, platform=platform)
    assert old.ok and old.platform_legacy == 2, old.problems
    assert "2 recorded at XZ's time of its copy, as before decision 57" in render(old)
    # Backdated in an old ledger: neither time.
    backdated = insider("backdated", {**copied_at, first.pos: (datetime.fromisoformat(entries[0].arrived_at)
                                                                - timedelta(hours=1)).isoformat()})
    assert [p.kind for p in audit(backdated, node.ring, workers=1, platform=platform).problems] == ["platform"]

    # The command line reads the platform itself, as the ledger's NATS user (anonymous here).
    data = tmp_path / "insider"
    shutil.copytree(settings.keys_dir, data / settings.keys_dir.relative_to(settings.data_dir))
    target = data / settings.ledger_path.relative_to(settings.data_dir)
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(insider("cli", {second.pos: copied_at[second.pos]}), target)
    assert settings.nats_url is not None
    done = await asyncio.to_thread(cli, app, "audit", "--workers", "1", "--platform", data_dir=data,
                                   env={ENV_NATS_URL: settings.nats_url, "COLUMNS": "400"})
    assert done.exit_code == 1, done.output
    assert "已与 XZ 流及各发送流比对" in done.stdout and "XZ_FROM_shenpi stored it" in done.stdout


async def test_on_the_system_clock_a_request_whose_assistor_never_runs_is_due_from_its_push_and_breached(
        settings: Settings, registry: Registry) -> None:
    """第五条 on the production path: ziran's agent never starts, so nothing but the platform records the
    arrival; the deadline runs from the push's end as JetStream stored it, and 区司法局's monitor sends the
    breach to both bureaus once it has passed (the monitor is told the time: three working days are not waited)."""
    before = datetime.now(UTC)
    node = Node(settings, registry, SystemClock(), agents=("shenpi", "sifa"), ledger=True, projection=True,
                simulated=False, generate_keys=True, key_valid_from=before - timedelta(days=1))
    publish_catalogue(node)
    await node.start()
    nc = await nats.connect(servers=server_list(node.nats_url))
    js = nc.jetstream()
    try:
        case = node.store("shenpi").assistance.request(
            assistor="ziran", applicant=ZHANG, matter=Matter(code="370405-XK-0101", name="食品经营许可"),
            applied_on=date(2026, 9, 20), items=[CommitmentItem(no=1, text="本人户籍所在地为运河街道")],
            catalogue_item=ITEMS["ziran"]).case
        node.wake_relays()
        assert node.ledger is not None and node.sla is not None and node.monitor is not None
        await eventually(lambda: len(node.sla.rows()) == 1, timeout=30)
        [entry] = node.ledger.case(case)  # the request, and never an acknowledgment
        recorded = datetime.fromisoformat(entry.arrived_at)
        copy = await js.get_msg(EVENTS_STREAM, entry.stream_seq)
        source = source_of(copy.subject or "", copy.headers or {})
        assert source is not None and source.stream == sending_stream("shenpi")
        pushed = (await js.get_msg(source.stream, source.seq)).time
        assert pushed is not None and abs(recorded - pushed) < timedelta(milliseconds=1)  # JetStream's stored time
        assert before <= recorded <= datetime.now(UTC)
        [row] = node.sla.rows()
        assert (row["status"], row["acknowledged_at"], row["arrived_at"]) == ("requested", None, entry.arrived_at)
        due = WorkingCalendar().add_working_days(recorded, 3).ends_at
        assert row["due_at"] == due.isoformat()
        assert node.monitor.tick(due - timedelta(seconds=1))[0] == 0  # not before 24:00 of the last working day
        assert node.monitor.tick(due + timedelta(seconds=1))[0] == 1
        node.wake_relays()
        ledger = node.ledger
        await eventually(lambda: sorted(e.recipient for e in ledger.entries() if e.type == "sla.breached")
                         == ["shenpi", "ziran"], timeout=30)  # the copy to ziran is on the record all the same
        assert node.monitor.tick(due + timedelta(days=1)) == (0, 0)  # once
    finally:
        await nc.close()
        await node.stop()


async def test_the_push_times_are_read_in_rounds_by_sequence_and_a_sequence_not_held_is_left_out(
        nats_server) -> None:  # type: ignore[no-untyped-def]
    """read_sent (decision 57) asks every read of a round on one reply subscription (issue 14): each original comes
    back with its bytes and the time its sending stream stored it, more than one round's worth too, and a sequence
    the stream does not hold (or a stream that does not exist) is left out, not an error."""
    from broker.pushed import PIPELINE, Source, read_sent
    from broker.streams import ensure_streams

    nc = await nats.connect(nats_server.url)
    try:
        js = nc.jetstream()
        await ensure_streams(js, ["shenpi", "gongan"])
        acks = [await js.publish(f"xz.shenpi.gongan.t{i}", b"body %d" % i, stream=sending_stream("shenpi"))
                for i in range(PIPELINE + 6)]
        wanted = [Source(sending_stream("shenpi"), a.seq) for a in acks]
        missing = [Source(sending_stream("shenpi"), acks[-1].seq + 7), Source(sending_stream("nobody"), 1)]
        got = await read_sent(js, [missing[0], *wanted, wanted[0], missing[1]])
        assert list(got) == wanted
        for i, src in enumerate(wanted):
            stored = await js.get_msg(sending_stream("shenpi"), src.seq)
            assert (got[src].data, got[src].time) == (b"body %d" % i, stored.time)
        assert await read_sent(js, []) == {}
    finally:
        await nc.close()
