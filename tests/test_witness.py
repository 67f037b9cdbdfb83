"""Witnessed checkpoints (decision 49): what the ledger's own file cannot show, the witnesses do.

One node for the module (a real nats-server with the generated users, the shenpi, gongan and
ziran agents and the ledger, on wall-clock time so that arrivals are JetStream's): two requests
sealed by two checkpoints, which each agent keeps and countersigns, then a third request left in
the unsealed tail.  Each attack is made on a copy of the ledger file, as an insider on 区司法局's
machine would make it, holding 区司法局's signing key where the attack needs it.
"""
from __future__ import annotations

import asyncio
import shutil
import sqlite3
from collections.abc import AsyncIterator, Iterator
from contextlib import closing
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import nats
import pytest
import sqlite_utils
from nats.js.errors import APIError

from aggregates.clock import SystemClock
from aggregates.registry import JUSTICE, Registry
from broker.auth import (
    ADMIN,
    LEDGER,
    PROVISIONER,
    SIGNER,
    connect_options,
    generate_identities,
    load_identity,
    server_config,
)
from broker.ledger.audit import AuditReport, audit, render
from broker.ledger.signer import RemoteSigner, SignerRefused, SignerService, SignRequest, request_for
from broker.ledger.store import Checkpoint, Ledger, checkpoint_message
from broker.pushed import PushNotRead, Source, read_sent
from broker.server import EmbeddedNats
from broker.signing import KeyRing
from broker.streams import (
    HEADS_SUBJECT,
    MAX_WITNESS_BYTES,
    SIGN_SUBJECT,
    WITNESS_STREAM,
    BureauLimits,
    cosign_subject,
    full_stream_error,
    witness_stream,
)
from broker.witness import (
    Cosigned,
    Head,
    Record,
    Stored,
    Taken,
    WitnessStore,
    encode,
    read_file,
    read_stored,
    read_stream,
    read_taken,
    record_problem,
)
from schemas.errors import XiezhuError
from tests.conftest import RESIDENT, START, eventually, jetstream, publish_catalogue
from tests.helpers import cli, rechain
from tests.test_exchange import request
from xiezhu.cli.main import app
from xiezhu.node import Node, checkpoint_signer, provision
from xiezhu.settings import Settings

BUREAUS = ("shenpi", "gongan", "ziran")
#: Each bureau's witness stream here: room for the module's few dozen countersignatures, and a flood's end in sight.
WITNESS_LIMITS = BureauLimits(witness_max_bytes=64 * 1024, witness_max_msgs=200)


@dataclass
class World:
    node: Node
    settings: Settings
    ring: KeyRing
    #: A copy of the ledger as it was: two checkpoints, then an unsealed tail.
    pristine: Path
    checkpoints: list[Checkpoint]
    #: What XZ_WITNESS held then.
    records: list[Record]


@pytest.fixture(scope="module")
def module_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("witness")


@pytest.fixture(scope="module")
def server(module_dir: Path) -> Iterator[EmbeddedNats]:
    keys = Settings(data_dir=module_dir / "data").nats_keys_dir
    config = module_dir / "nats-auth.conf"
    config.write_text(server_config(generate_identities(Registry.load().codes(), keys, provisioner=True),
                                    jetstream_store_dir=None))
    s = EmbeddedNats(module_dir / "nats", config_file=config).start()
    yield s
    s.stop()


@pytest.fixture(scope="module")
async def world(server: EmbeddedNats, module_dir: Path) -> AsyncIterator[World]:
    settings = Settings(data_dir=module_dir / "data", nats_url=server.url)
    settings.bureau_dir("gongan").mkdir(parents=True, exist_ok=True)
    sqlite_utils.Database(settings.bureau_data_path("gongan"))["residents"].insert(RESIDENT, pk="id_number")
    # The layout first, with small witness limits (`xiezhu provision --witness-max-bytes`); the node accepts it.
    await provision(server.url, Registry.load().codes(), limits=WITNESS_LIMITS,
                    credentials=connect_options(load_identity(settings.nats_keys_dir, PROVISIONER)))
    node = Node(settings, Registry.load(), SystemClock(), agents=BUREAUS, ledger=True, generate_keys=True,
                key_valid_from=START - timedelta(days=1))
    publish_catalogue(node)
    await node.start()
    service = node.ledger_service
    assert service is not None and node.ledger is not None
    service.checkpoint_interval = 3600.0  # the test decides when heads are signed
    try:
        for _ in range(2):
            request(node)
            await node.settle()
            await service.checkpoint_now()
        request(node)
        await node.settle()  # three entries in the unsealed tail
        checkpoints = node.ledger.checkpoints()
        assert len(checkpoints) == 2 and node.ledger.head[0] == checkpoints[-1].pos + 3

        def witnessed() -> bool:
            return all(len(WitnessStore(settings.witness_path(c), read_only=True)) == 2 for c in BUREAUS)

        await eventually(witnessed, timeout=60)  # at once on a quiet machine; the suite's load can slow it
        records = await _stream(node)
        for _ in range(600):  # each agent publishes its countersignatures just after keeping the heads
            if len(records) == 2 + 2 * len(BUREAUS):
                break
            await asyncio.sleep(0.05)
            records = await _stream(node)
        pristine = module_dir / "pristine.db"
        with closing(sqlite3.connect(settings.ledger_path)) as src, closing(sqlite3.connect(pristine)) as dst:
            src.backup(dst)
        yield World(node, settings, node.ring, pristine, checkpoints, records)
    finally:
        await node.stop()


async def _stream(node: Node) -> list[Record]:
    nc = await nats.connect(node.nats_url, **node.credentials(ADMIN))
    try:
        records, bad = await read_stream(nc.jetstream())
    finally:
        await nc.close()
    assert bad == 0
    return records


def copy(world: World, tmp_path: Path) -> Path:
    path = tmp_path / "ledger.db"
    shutil.copyfile(world.pristine, path)
    return path


def kinds(report: AuditReport) -> list[str]:
    return [p.kind for p in report.problems]


def sign_as_justice(world: World, message: bytes) -> tuple[str, bytes]:
    """What an insider holding 区司法局's signing key can do."""
    signer = world.node.keys.bureau_signer(JUSTICE, world.ring).current(SystemClock().now())
    return signer.kid, signer.sign_bytes(message)


def reseal(world: World, path: Path) -> None:
    """Replace every checkpoint with one signed by 区司法局's key over the chain as it now is."""
    with closing(sqlite3.connect(path)) as db, db:
        positions = [p for (p,) in db.execute("SELECT pos FROM checkpoints")]
        db.execute("DELETE FROM checkpoints")
        for pos in positions:
            head = bytes(db.execute("SELECT hash FROM entries WHERE pos = ?", (pos,)).fetchone()[0])
            at = SystemClock().now().isoformat()
            kid, sig = sign_as_justice(world, checkpoint_message(pos, head, at))
            db.execute("INSERT INTO checkpoints VALUES (?,?,?,?,?)", (pos, head, at, kid, sig))


def test_every_head_is_published_and_each_bureau_keeps_and_countersigns_it(world: World) -> None:
    heads = [r for r in world.records if isinstance(r, Head)]
    cosigns = [r for r in world.records if isinstance(r, Cosigned)]
    assert [h.pos for h in heads] == [cp.pos for cp in world.checkpoints]
    assert sorted((c.witness, c.head.pos) for c in cosigns) == sorted(
        (code, cp.pos) for code in BUREAUS for cp in world.checkpoints)
    assert all(record_problem(world.ring, r) is None for r in world.records)
    for code in BUREAUS:
        kept = read_file(world.settings.witness_path(code))
        assert [(r.witness, r.head) for r in kept] == [(code, h) for h in heads]
    report = audit(world.pristine, world.ring, workers=1, witnesses=world.records)
    assert report.ok, report.problems
    assert report.witnesses == len(world.records) and report.witnessed_to == world.checkpoints[-1].pos
    assert report.witness_parties == sorted([*BUREAUS, WITNESS_STREAM])
    assert "3 entries after it not witnessed yet" in render(report)


def test_a_countersignature_that_was_changed_proves_nothing(world: World) -> None:
    cosign = next(r for r in world.records if isinstance(r, Cosigned))
    forged = Cosigned(witness="shenpi" if cosign.witness != "shenpi" else "gongan", head=cosign.head,
                      seen_at=cosign.seen_at, kid=cosign.kid, sig=cosign.sig)
    assert "is not its key" in (record_problem(world.ring, forged) or "")
    report = audit(world.pristine, world.ring, workers=1, witnesses=[forged])
    assert report.ok and report.witnesses == 0 and report.witnesses_ignored == 1


def test_a_rollback_to_an_earlier_checkpoint_is_found_only_against_the_witnesses(
        world: World, tmp_path: Path) -> None:
    path = copy(world, tmp_path)
    first = world.checkpoints[0].pos
    with closing(sqlite3.connect(path)) as db, db:  # cut the tail together with the last checkpoint
        db.execute("DELETE FROM entries WHERE pos > ?", (first,))
        db.execute("DELETE FROM checkpoints WHERE pos > ?", (first,))
    assert audit(path, world.ring, workers=1).ok  # the file alone cannot show it
    report = audit(path, world.ring, workers=1, witnesses=read_file(world.settings.witness_path("gongan")))
    assert kinds(report) == ["rollback"], report.problems
    line = report.problems[0].reason
    assert line.startswith(f"rollback: 区司法局 signed position {world.checkpoints[1].pos} at ")
    assert f"gongan kept it, but the ledger ends at position {first}" in line and "\n" not in line


def test_a_history_rewritten_and_resealed_with_the_signing_key_is_a_fork_and_a_rewrite(
        world: World, tmp_path: Path) -> None:
    path = copy(world, tmp_path)
    with closing(sqlite3.connect(path)) as db, db:  # backdate an arrival: the deadline would move with it
        db.execute("UPDATE entries SET arrived_at = '2026-09-20T01:00:00+00:00' WHERE pos = 2")
    rechain(path)
    reseal(world, path)
    assert audit(path, world.ring, workers=1).ok  # whole and signed, as far as the file goes
    report = audit(path, world.ring, workers=1, witnesses=world.records)
    assert kinds(report) == ["fork", "rewritten", "fork"], report.problems
    first = world.checkpoints[0].pos
    fork, rewritten = report.problems[0].reason, report.problems[1].reason
    assert fork.startswith(f"fork: 区司法局 signed 2 different heads for position {first}: ")
    assert "(the ledger's checkpoint)" in fork and "XZ_WITNESS, gongan, shenpi, ziran)" in fork
    assert rewritten.startswith("rewritten history: the ledger's entries no longer hash to the head ")
    assert f"an entry at or before position {first} was changed" in rewritten


async def test_a_backdated_arrival_or_a_changed_sequence_in_the_unwitnessed_tail_is_not_the_platforms_record(
        world: World, tmp_path: Path) -> None:
    nc = await nats.connect(world.node.nats_url, **world.node.credentials(LEDGER))  # the ledger reads XZ by sequence
    try:
        with closing(sqlite3.connect(world.pristine)) as db:
            sequences = [seq for (seq,) in db.execute("SELECT stream_seq FROM entries")]
        stored = await read_stored(nc.jetstream(), [*sequences, 10_000])
    finally:
        await nc.close()
    assert sorted(stored) == sorted(sequences)
    # and the originals in the senders' own streams, which only the ledger's NATS user may read (decision 57)
    assert all(m.source is not None and m.sent is not None and m.sent.data == m.data
               and m.source.stream.startswith("XZ_FROM_") and m.sent.time <= m.time for m in stored.values())

    def platform(asked: list[int]) -> dict[int, Stored]:
        return {seq: stored[seq] for seq in asked if seq in stored}

    clean = audit(world.pristine, world.ring, workers=1, witnesses=world.records, platform=platform)
    assert clean.ok and clean.platform_checked == 3 and "3 entries after position" in render(clean)
    last = world.checkpoints[-1].pos
    path = copy(world, tmp_path)
    with closing(sqlite3.connect(path)) as db, db:  # in the tail: no witnessed head covers it
        db.execute("UPDATE entries SET arrived_at = '2026-09-20T01:00:00+00:00' WHERE pos = ?", (last + 2,))
        db.execute("UPDATE entries SET stream_seq = stream_seq + 1000 WHERE pos = ?", (last + 3,))
    rechain(path, after=last)
    assert audit(path, world.ring, workers=1, witnesses=world.records).ok  # the witnesses cannot see the tail
    report = audit(path, world.ring, workers=1, witnesses=world.records, platform=platform)
    assert [(p.position, p.kind) for p in report.problems] == [(last + 2, "platform"), (last + 3, "platform")]
    with closing(sqlite3.connect(path)) as db:
        sender = db.execute("SELECT sender FROM entries WHERE pos = ?", (last + 2,)).fetchone()[0]
    assert report.problems[0].reason.startswith(f"position {last + 2}: arrival recorded as 2026-09-20T01:00:00+00:00 "
                                                f"but the push ended when XZ_FROM_{sender} stored it (sequence ")
    assert "XZ holds no message" in report.problems[1].reason


def test_a_rewrite_without_resealing_is_named_at_the_first_witnessed_head_it_breaks(
        world: World, tmp_path: Path) -> None:
    path = copy(world, tmp_path)
    last = world.checkpoints[-1].pos
    with closing(sqlite3.connect(path)) as db, db:  # change the stream sequence of an entry, re-chain the rest
        db.execute("UPDATE entries SET stream_seq = stream_seq + 1000 WHERE pos = ?", (last,))
        db.execute("DELETE FROM checkpoints WHERE pos = ?", (last,))
    rechain(path, after=last - 1)
    assert audit(path, world.ring, workers=1).ok
    report = audit(path, world.ring, workers=1, witnesses=read_file(world.settings.witness_path("ziran")))
    assert kinds(report) == ["rewritten"] and report.problems[0].position == last


async def test_a_bureau_can_neither_delete_nor_purge_the_witnesses_nor_publish_a_head(world: World) -> None:
    errors: list[str] = []

    async def on_error(e: Exception) -> None:
        errors.append(str(e).lower())

    nc = await nats.connect(world.node.nats_url, error_cb=on_error, **world.node.credentials("gongan"))
    try:
        for api in ("PURGE", "MSG.DELETE", "DELETE", "UPDATE"):  # what nats-py's purge_stream, delete_msg … send
            await nc.publish(f"$JS.API.STREAM.{api}.{WITNESS_STREAM}", b'{"seq": 1}')
        head = next(r for r in world.records if isinstance(r, Head))
        await nc.publish(HEADS_SUBJECT, encode(head))
        await nc.publish(cosign_subject("shenpi"), b"{}")
        await nc.publish(SIGN_SUBJECT, b"{}")  # nor ask the checkpoint signer
        await nc.flush()
        await eventually(lambda: sum("permissions violation" in e for e in errors) >= 7, timeout=30)
    finally:
        await nc.close()
    for subject in ("$js.api.stream.purge.xz_witness", "$js.api.stream.msg.delete.xz_witness",
                    "$js.api.stream.delete.xz_witness", "$js.api.stream.update.xz_witness", HEADS_SUBJECT,
                    cosign_subject("shenpi"), SIGN_SUBJECT):
        assert any(f'publish to "{subject}"' in e for e in errors), (subject, errors)
    # Nor can any user the configuration makes: the stream itself refuses deletes and purges.
    admin = await nats.connect(world.node.nats_url, **world.node.credentials(ADMIN))
    try:
        info = await jetstream(admin).stream_info(WITNESS_STREAM)
    finally:
        await admin.close()
    assert info.config.deny_delete and info.config.deny_purge
    assert len(await _stream(world.node)) >= len(world.records)


def test_the_audit_command_names_a_rollback_from_a_bureaus_witness_file(world: World, tmp_path: Path) -> None:
    data = tmp_path / "data"
    shutil.copytree(world.settings.keys_dir, data / "keys")
    (data / "ledger").mkdir(parents=True)
    path = data / "ledger" / "ledger.db"
    shutil.copyfile(world.pristine, path)
    with closing(sqlite3.connect(path)) as db, db:
        db.execute("DELETE FROM entries WHERE pos > ?", (world.checkpoints[0].pos,))
        db.execute("DELETE FROM checkpoints WHERE pos > ?", (world.checkpoints[0].pos,))
    ok = cli(app, "audit", "--workers", "1", data_dir=data, env={"COLUMNS": "80"})
    assert ok.exit_code == 0 and ok.stdout.startswith("账本审计通过：") and "见证          未比对" in ok.stdout
    assert "…" not in ok.stdout and "ledger audit" not in ok.stdout
    exported = tmp_path / "gongan-witness.jsonl"
    done = cli(app, "witnesses", "gongan", "--export", str(exported), data_dir=world.settings.data_dir)
    assert done.exit_code == 0, done.output
    listed = cli(app, "witnesses", "gongan", data_dir=world.settings.data_dir, env={"COLUMNS": "80"})
    assert listed.exit_code == 0 and "gongan 见证的账本链头" in listed.stdout
    assert all(f"{cp.head.hex()[:16]}…" in listed.stdout for cp in world.checkpoints)
    assert max(len(line) for line in listed.stdout.splitlines()) <= 80
    bad = cli(app, "audit", "--workers", "1", "--witnesses", str(exported), data_dir=data)
    assert bad.exit_code == 1, bad.output
    assert "首个问题：rollback: 区司法局 signed position" in bad.stdout and "由 区公安分局 保存" in bad.stdout
    english = cli(app, "--lang", "en", "audit", "--workers", "1", "--witnesses", str(exported), data_dir=data)
    assert english.exit_code == 1 and english.stdout.startswith("ledger audit FAILED: ")
    assert "first problem: rollback: 区司法局 signed position" in english.stdout and "kept by gongan" in english.stdout
    wrong = cli(app, "audit", "--witnesses", str(tmp_path / "nothing.jsonl"), data_dir=data)
    assert isinstance(wrong.exception, XiezhuError) and "no witness file" in str(wrong.exception)  # one line


async def test_checkpoints_are_signed_on_a_timer_and_witnessed(world: World) -> None:
    service, ledger = world.node.ledger_service, world.node.ledger
    assert service is not None and ledger is not None
    request(world.node)
    await world.node.settle()
    service.checkpoint_interval = 0.05
    try:
        await eventually(lambda: ledger.checkpoints()[-1].pos == ledger.head[0], timeout=30)
    finally:
        service.checkpoint_interval = 3600.0
    pos = ledger.head[0]
    shenpi = world.settings.witness_path("shenpi")
    await eventually(lambda: any(r.head.pos == pos for r in read_file(shenpi)), timeout=30)


async def test_a_second_head_for_a_witnessed_position_or_a_lower_one_raises_each_bureaus_alarm(
        world: World) -> None:
    first = world.checkpoints[0]
    assert world.node.ledger is not None
    highest = world.node.ledger.checkpoints()[-1].pos  # kept by every witness by now
    nc = await nats.connect(world.node.nats_url, **world.node.credentials(LEDGER))  # the insider's NATS seed too
    try:
        for pos in (first.pos, first.pos - 1):  # a second head for a witnessed position; a lower one, signed later
            at = SystemClock().now().isoformat()
            kid, sig = sign_as_justice(world, checkpoint_message(pos, bytes(32), at))
            await nc.jetstream().publish(HEADS_SUBJECT, encode(Head(pos=pos, head=bytes(32).hex(), signed_at=at,
                                                                    kid=kid, sig=sig)))
    finally:
        await nc.close()
    for code in BUREAUS:
        agent = world.node.agents[code]
        assert agent.witness is not None
        # The second head for a position is also signed after later ones: a fork, and a rollback to it.
        await eventually(lambda w=agent.witness: len(w.alarms) >= 3, timeout=30)
        fork, back, lower = agent.witness.alarms
        assert fork.startswith(f"fork: 区司法局 signed two heads for position {first.pos}: ")
        assert back.startswith(f"rollback: 区司法局 signed position {first.pos} at ")
        assert lower.startswith(f"rollback: 区司法局 signed position {first.pos - 1} at ")
        assert f"after it had signed position {highest} at " in lower
    report = audit(world.node.settings.ledger_path, world.ring, workers=1, witnesses=await _stream(world.node))
    assert "fork" in kinds(report) and "rewritten" in kinds(report)


async def test_a_witness_keeps_what_it_saw_across_a_restart_and_catches_up(world: World) -> None:
    node, service = world.node, world.node.ledger_service
    assert service is not None and node.ledger is not None
    before = read_file(node.settings.witness_path("ziran"))
    await node.agents["ziran"].stop()
    request(node)  # shenpi to gongan: ziran's agent is not needed
    await node.settle()
    await service.checkpoint_now()
    pos = node.ledger.head[0]
    agent = node.agent("ziran")
    await agent.start()
    node.agents["ziran"] = agent
    ziran = node.settings.witness_path("ziran")
    await eventually(lambda: any(r.head.pos == pos for r in read_file(ziran)), timeout=30)
    after = read_file(node.settings.witness_path("ziran"))
    assert after[:len(before)] == before
    records = await _stream(node)
    assert any(isinstance(r, Cosigned) and r.witness == "ziran" and r.head.pos == pos for r in records)


async def test_a_signer_off_the_ledger_host_signs_only_what_extends_the_head_it_signed_last(
        world: World, tmp_path: Path) -> None:
    node, service = world.node, world.node.ledger_service
    assert service is not None and node.ledger is not None and service.nc is not None
    # The signer's machine: 区司法局's keys and the `signer` seed (here the node's own, with its state elsewhere).
    signer_settings = Settings(data_dir=tmp_path / "signer-host", nats_url=node.nats_url)
    shutil.copytree(node.settings.keys_dir, signer_settings.keys_dir)
    signer = SignerService(checkpoint_signer(signer_settings, SystemClock()))
    snc = await nats.connect(node.nats_url, **node.credentials(SIGNER))
    await signer.start(snc)
    service._remote = RemoteSigner(service.nc)  # what `xiezhu ledger --remote-signer` runs with
    try:
        request(node)
        await node.settle()
        await service.checkpoint_now()
        head = node.ledger.head
        cp = node.ledger.checkpoints()[-1]
        assert (cp.pos, cp.head) == head and signer.signed == 1 and signer.refused == []
        assert signer.signer.last is not None and signer.signer.last.pos == head[0]
        # The signer published it before it answered: every bureau witnesses it.
        await eventually(lambda: all(any(r.head.pos == head[0] for r in read_file(node.settings.witness_path(c)))
                                     for c in BUREAUS), timeout=30)
        # A copy rolled back to the first checkpoint, with one entry after it, asks for a signature: refused.
        rolled = copy(world, tmp_path)
        with closing(sqlite3.connect(rolled)) as db, db:
            db.execute("DELETE FROM entries WHERE pos > ?", (world.checkpoints[0].pos + 1,))
            db.execute("DELETE FROM checkpoints WHERE pos > ?", (world.checkpoints[0].pos,))
        with pytest.raises(SignerRefused, match=f"not past position {head[0]}, .*: the ledger was rolled back"):
            await RemoteSigner(service.nc).checkpoint(Ledger(rolled, read_only=True))
        request(node)
        await node.settle()
        live = tmp_path / "live.db"
        with closing(sqlite3.connect(node.settings.ledger_path)) as src, closing(sqlite3.connect(live)) as dst:
            src.backup(dst)
        # Rolled back to the first checkpoint, an arrival backdated, re-chained and grown past the signer's last
        # head: the leaves no longer pass through it.
        rewritten = tmp_path / "rewritten.db"
        shutil.copyfile(live, rewritten)
        first = world.checkpoints[0].pos
        with closing(sqlite3.connect(rewritten)) as db, db:
            db.execute("DELETE FROM checkpoints WHERE pos > ?", (first,))
            db.execute("UPDATE entries SET arrived_at = '2026-09-20T01:00:00+00:00' WHERE pos = ?", (first + 1,))
        rechain(rewritten, after=first)
        forged = request_for(Ledger(rewritten, read_only=True))
        assert forged is not None and forged.pos > head[0]
        with pytest.raises(SignerRefused, match="no longer hash to the head this signer signed"):
            signer.signer.sign(forged)
        # Leaves that do not lead to the head asked for: refused too, and nothing is signed.
        honest = request_for(node.ledger)
        assert honest is not None
        lying = SignRequest(pos=honest.pos, head="00" * 32, since=honest.since, leaves=honest.leaves)
        with pytest.raises(SignerRefused, match="do not lead to the head"):
            signer.signer.sign(lying)
        assert signer.signer.last is not None and signer.signer.last.pos == head[0]
        # A ledger that lost the checkpoint it was answered with (killed before it kept it) asks from the one
        # before: its leaves pass through the signer's last head, so it is signed.
        with closing(sqlite3.connect(live)) as db, db:
            db.execute("DELETE FROM checkpoints WHERE pos = ?", (head[0],))
        resumed = request_for(Ledger(live, read_only=True))
        assert resumed is not None and resumed.since is not None and resumed.since.pos < head[0] < resumed.pos
        assert signer.signer.sign(resumed).pos == resumed.pos
    finally:
        service._remote = None
        await signer.stop()
        await snc.close()


async def test_the_end_of_the_unwitnessed_tail_cut_away_is_named_against_what_the_ledger_took_from_xz(
        world: World, tmp_path: Path) -> None:
    node, service = world.node, world.node.ledger_service
    assert service is not None and node.ledger is not None
    await service.checkpoint_now()
    witnessed = node.ledger.head[0]
    request(node)  # a new unwitnessed tail: three entries
    await node.settle()
    shenpi = await nats.connect(node.nats_url, **node.credentials("shenpi"))
    try:  # and junk after it, which the ledger dead-letters (acknowledged, never an entry)
        await shenpi.jetstream().publish("xz.shenpi.gongan.assistance.requested", b"not an event")
    finally:
        await shenpi.close()
    await node.settle()
    assert node.ledger.head[0] == witnessed + 3
    live = tmp_path / "live.db"
    with closing(sqlite3.connect(node.settings.ledger_path)) as src, closing(sqlite3.connect(live)) as dst:
        src.backup(dst)
    # What the witnesses hold, but for the forged heads an earlier test published (all zeros).
    records = [r for r in await _stream_all(node)
               if (r.head if isinstance(r, Cosigned) else r).head != bytes(32).hex()]
    nc = await nats.connect(node.nats_url, **node.credentials(LEDGER))  # `xiezhu audit --platform` reads as the ledger
    try:
        js = nc.jetstream()
        with closing(sqlite3.connect(live)) as db:
            last_seq = db.execute("SELECT MAX(stream_seq) FROM entries").fetchone()[0]
            cut_after = db.execute("SELECT stream_seq FROM entries WHERE pos = ?", (witnessed,)).fetchone()[0]
        for _ in range(600):  # the ledger acknowledges each message just after its commit
            if (await read_taken(js, last_seq)).acked > last_seq:
                break
            await asyncio.sleep(0.05)
        taken = {after: await read_taken(js, after) for after in (last_seq, cut_after)}
    finally:
        await nc.close()
    assert taken[last_seq].acked > last_seq and len(taken[last_seq].messages) >= 1  # the junk

    def reader(after: int) -> Taken:
        return taken[after]

    clean = audit(live, world.ring, workers=1, witnesses=records, taken=reader)
    assert clean.ok, clean.problems
    assert clean.platform_last_seq == last_seq and clean.platform_acked == taken[last_seq].acked
    assert f"the ledger's last XZ sequence {last_seq:,}; XZ acknowledged by the ledger up to " in render(clean)
    with closing(sqlite3.connect(live)) as db, db:  # cut the whole unwitnessed tail (no checkpoint covers it)
        db.execute("DELETE FROM entries WHERE pos > ?", (witnessed,))
        db.execute("DELETE FROM checkpoints WHERE pos > ?", (witnessed,))
    assert audit(live, world.ring, workers=1, witnesses=records).ok  # the witnesses cannot see it
    report = audit(live, world.ring, workers=1, witnesses=records, taken=reader)
    assert [(p.position, p.kind) for p in report.problems] == [(witnessed + 1, "unrecorded")], report.problems
    line = report.problems[0].reason
    assert line.startswith(f"unrecorded: the ledger ends at position {witnessed:,} (XZ sequence {cut_after:,}), but "
                           f"its consumer acknowledged XZ up to sequence {taken[cut_after].acked:,}, and 3 validly "
                           f"signed events after it are not in the ledger, the first at XZ sequence "), line
    assert report.bad == 3 and "\n" not in line
    # The command reads the same as the ledger's NATS user, on the live ledger: nothing unrecorded.
    done = await asyncio.to_thread(cli, app, "--lang", "en", "audit", "--workers", "1", "--platform",
                                   data_dir=node.settings.data_dir, env={"XIEZHU_NATS_URL": node.nats_url})
    assert done.exit_code == 0, done.output
    assert "platform end          the ledger's last XZ sequence " in done.stdout

async def test_a_bureau_flooding_its_witness_stream_stops_at_its_limit_and_the_others_still_countersign(
        world: World, caplog: pytest.LogCaptureFixture) -> None:
    """Last in the module: ziran's witness stream stays full.  Nothing can be purged from it (decision 59)."""
    node, service = world.node, world.node.ledger_service
    assert service is not None and node.ledger is not None
    nc = await nats.connect(node.nats_url, **node.credentials("ziran"))
    try:
        js, sent, refused = nc.jetstream(), 0, None
        for _ in range(WITNESS_LIMITS.witness_max_msgs or 0):  # junk on its own subject, as big as allowed
            try:
                await js.publish(cosign_subject("ziran"), b"j" * (MAX_WITNESS_BYTES - 200))
                sent += 1
            except APIError as e:
                refused = e
                break
        assert refused is not None and 10 <= sent < 20, sent
        assert "the witness stream is full (maximum bytes exceeded)" in (
            full_stream_error(refused, "witness", MAX_WITNESS_BYTES) or "")
        with pytest.raises(APIError, match="message size exceeds maximum"):  # nor one over 4 KiB, anywhere
            await js.publish(cosign_subject("ziran"), b"j" * 5000)
        while True:  # to the brim
            try:
                await js.publish(cosign_subject("ziran"), b"j")
            except APIError:
                break
    finally:
        await nc.close()
    caplog.set_level("WARNING", logger="broker.witness")
    request(node)
    await node.settle()
    await service.checkpoint_now()
    pos = node.ledger.head[0]

    async def countersigned() -> set[str]:
        return {r.witness for r in await _stream_all(node) if isinstance(r, Cosigned) and r.head.pos == pos}

    for _ in range(600):  # the others' countersignatures land in their own streams, sourced into XZ_WITNESS
        if await countersigned() == {"shenpi", "gongan"}:
            break
        await asyncio.sleep(0.05)
    assert await countersigned() == {"shenpi", "gongan"}
    # ziran kept and checked the head all the same; the server refused only its countersignature, and said so once.
    ziran = node.settings.witness_path("ziran")
    await eventually(lambda: any(r.head.pos == pos for r in read_file(ziran)), timeout=30)
    witness = node.agents["ziran"].witness
    assert witness is not None
    await eventually(lambda: witness.refused is not None, timeout=30)
    await witness.catch_up()  # the next walk: still refused, not logged again, no exception
    lines = [r.getMessage() for r in caplog.records if "refuses its countersignatures" in r.getMessage()]
    assert lines == [f"witness ziran: {witness_stream('ziran')} refuses its countersignatures: the witness stream "
                     "is full (maximum bytes exceeded); it refuses every new message until the NATS operator raises "
                     "its limits (`xiezhu provision` shows them); witness.db keeps the 1 not published, which go out "
                     "once it takes them"], lines
    # No walk failed over the refusal; a slow JetStream's timeout (under load) is walked again, by design.
    assert not [m for r in caplog.records if "heads not walked" in (m := r.getMessage()) and "nats: timeout" not in m]
    report = audit(node.settings.ledger_path, world.ring, workers=1, witnesses=await _stream_all(node))
    assert report.witnessed_to == pos


async def _stream_all(node: Node) -> list[Record]:
    """XZ_WITNESS as the audit reads it, junk left out."""
    nc = await nats.connect(node.nats_url, **node.credentials(ADMIN))
    try:
        return (await read_stream(nc.jetstream()))[0]
    finally:
        await nc.close()


async def test_a_bureau_may_not_read_the_push_times_of_another_s_sending_stream(world: World) -> None:
    """Only the ledger reads the originals in the sending streams (decision 57); the refusal says why, in one line."""
    nc = await nats.connect(world.node.nats_url, **world.node.credentials("gongan"))
    try:
        with pytest.raises(PushNotRead, match="only `ledger` may"):
            await read_sent(nc.jetstream(timeout=1), [Source("XZ_FROM_shenpi", 1)])
    finally:
        await nc.close()
