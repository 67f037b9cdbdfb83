"""End to end on a real nats-server: the exchange, the ledger, the SLA view, and hostile input."""
from __future__ import annotations

import dataclasses
import json
import sqlite3
from contextlib import closing
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import msgspec
import nacl.signing
import nats
import pytest
from nats.js.errors import APIError

from agencies.monitor import SlaMonitor
from aggregates.clock import SimulatedClock
from aggregates.registry import Registry
from broker.auth import ADMIN
from broker.intake import read_dead_letters
from broker.relay import headers_for
from broker.sealing import seal
from broker.signing import Signer, decode_checked
from schemas.assistance import Applicant, CommitmentItem, Matter
from schemas.envelope import Envelope, Signed, new_id, subject_for
from tests.conftest import ITEMS, RESIDENT, StoreLocations, eventually, make_node
from tests.helpers import cli
from xiezhu.cli import app as xiezhu_app
from xiezhu.cli.front import outbox_rows
from xiezhu.node import Node
from xiezhu.settings import Settings

ZHANG = Applicant(kind="person", name=RESIDENT["name"], id_number=RESIDENT["id_number"])


def request(node: Node, assistor: str = "gongan", check: str = "hukou.residence", address: str = "运河街道") -> str:
    st = node.store("shenpi").assistance.request(
        assistor=assistor, applicant=ZHANG, matter=Matter(code="370405-XK-0101", name="食品经营许可"),
        applied_on=date(2026, 9, 20),
        items=[CommitmentItem(no=1, text=f"本人户籍所在地为{address}", check=check, facts={"address": address}),
               CommitmentItem(no=2, text="本人无犯罪记录", check="police.no-criminal-record")],
        catalogue_item=ITEMS[assistor])
    node.wake_relays()
    return st.case


def snapshot(node: Node) -> dict[str, Any]:
    """Everything a rejected message must leave unchanged."""
    assert node.ledger and node.sla
    return {code: node.store(code).recorder.max_notification_id() for code in ("shenpi", "gongan", "ziran")} | {
        "ledger": len(node.ledger), "sla": node.sla.rows()}


async def test_a_full_exchange_lands_in_both_stores_the_ledger_and_the_sla_view(node: Node) -> None:
    case = request(node)
    await node.settle()
    mine, theirs = node.store("shenpi").assistance.case(case).state, node.store("gongan").assistance.case(case).state
    assert mine.status == theirs.status == "replied"
    assert [r.verdict for r in mine.results] == ["true", "true"]
    assert mine.answered_by == "auto:hukou"
    assert node.ledger is not None and node.sla is not None
    entries = node.ledger.case(case)
    assert [e.type for e in entries] == ["assistance.requested", "assistance.received", "assistance.replied"]
    # The ledger keeps exactly the bytes each bureau signed.
    assert [e.signed for e in entries] == node.store("shenpi").assistance.case(case).envelopes
    [row] = node.sla.rows()
    assert (row["number"], row["status"], row["outcome"]) == ("20260001", "replied", "true")
    assert row["sent_at"] and row["arrived_at"] and row["answered_at"]


@pytest.mark.postgres
async def test_a_full_exchange_with_the_bureau_stores_in_postgresql(
        settings: Settings, registry: Registry, clock: SimulatedClock, store_location: StoreLocations) -> None:
    """XIEZHU_DATABASE_URL: every bureau's store, the ledger and the views each in its own schema of one
    database, the exchange unchanged."""
    if store_location.database_url is None:
        pytest.skip("the SQLite side is every other test of this file")
    prefix = f"t{store_location.tag}"
    store_location.schemas += [f"{prefix}_{code}" for code in ("shenpi", "gongan", "ziran", "sifa")]
    store_location.schemas += [f"{prefix}__{record}"
                               for record in ("ledger", "catalogue", "sla", "commitments", "credit")]
    pg = dataclasses.replace(settings, database_url=f"{store_location.database_url}?schema={prefix}")
    node = make_node(pg, registry, clock)
    await node.start()
    try:
        case = request(node)
        await node.settle()
        assert node.store("shenpi").assistance.case(case).state.status == "replied"
        assert node.store("gongan").assistance.case(case).state.status == "replied"
        assert not pg.store_path("shenpi").exists() and not pg.ledger_path.exists()  # no SQLite file beside them
        assert not pg.sla_path.exists() and pg.view_exists(pg.sla_location)
        # What the commands and serve ask before opening a store or the catalogue (not for a file):
        assert pg.store_exists("shenpi") and not pg.store_exists("minzheng") and pg.catalogue_exists()
        assert not pg.catalogue_path.exists() and outbox_rows(pg, "shenpi") == []
        assert node.sla is not None and [r["status"] for r in node.sla.rows()] == ["replied"]
        assert [e.type for e in node.ledger.case(case)] == [  # type: ignore[union-attr]
            "assistance.requested", "assistance.received", "assistance.replied"]
    finally:
        await node.stop()
        for store in node.stores.values():
            store.close()
    # The commands that read the ledger and the views, on the same database: audit, sla, rebuild.
    env = {"XIEZHU_DATA_DIR": str(pg.data_dir), "XIEZHU_DATABASE_URL": str(pg.database_url), "COLUMNS": "200"}
    before = cli(xiezhu_app, "sla", "--json", env=env)
    assert before.exit_code == 0 and list(json.loads(before.stdout)) == ["shenpi/20260001"], before.output
    assert cli(xiezhu_app, "audit", env=env).exit_code == 0
    rebuilt = cli(xiezhu_app, "projections", "rebuild", env=env)
    assert rebuilt.exit_code == 0, rebuilt.output
    assert cli(xiezhu_app, "sla", "--json", env=env).stdout == before.stdout


async def test_a_false_commitment_is_answered_false(node: Node) -> None:
    case = request(node, address="泥沟镇")
    await node.settle()
    assert [r.verdict for r in node.store("shenpi").assistance.case(case).state.results] == ["false", "true"]


async def test_a_request_no_verifier_can_decide_waits_in_the_operator_inbox(node: Node) -> None:
    case = request(node, assistor="ziran", check="")
    await node.settle()
    [waiting] = node.store("ziran").assistance.inbox()
    assert waiting.case == case and waiting.status == "received"
    node.store("ziran").assistance.decline(case, "不属于本机关职权范围，请向区公安分局核实。", "operator:王伟")
    await node.settle()
    assert node.store("shenpi").assistance.case(case).state.status == "declined"
    assert node.sla is not None and node.sla.rows()[0]["status"] == "declined"


async def _publish(node: Node, subject: str, signed: Signed, msg_id: str | None = None) -> None:
    # As the bureau whose outbox the subject is (xz.<sender>.…): the server allows nothing else.
    nc = await nats.connect(node.nats_url, **node.credentials(subject.split(".")[1]))
    js = nc.jetstream()
    await js.publish(subject, signed.body, headers=headers_for(signed, msg_id or new_id()))
    await nc.close()


async def _dead_letters(node: Node) -> list[Any]:
    nc = await nats.connect(node.nats_url, **node.credentials(ADMIN))
    try:
        return await read_dead_letters(nc.jetstream())
    finally:
        await nc.close()


def _envelope(node: Node, sender: str = "shenpi", recipient: str = "gongan") -> Envelope:
    case = next(iter(node.store("shenpi").assistance.cases()))
    return Envelope(id=new_id(), sender=sender, recipient=recipient, case=new_id(), number="20260099",
                    time=node.clock.now(), payload=case.request)


def _sealed(node: Node, env: Envelope) -> Signed:
    """As shenpi's store signs: sealed to shenpi, the recipient and 区司法局."""
    return node.keys.bureau_signer("shenpi", node.ring).sign(env)


def _forged(node: Node) -> tuple[str, Signed]:
    kid = node.keys.signer("shenpi").kid
    body = _sealed(node, _envelope(node)).body
    forged = Signed(body=body, kid=kid, sig=nacl.signing.SigningKey.generate().sign(body).signature)
    return subject_for(decode_checked(forged.body)), forged


def _not_sealed(node: Node) -> tuple[str, Signed]:
    """Well signed by shenpi, to gongan, but in the clear: personal data must not travel readable."""
    return "xz.shenpi.gongan.assistance.requested", node.keys.signer("shenpi").sign(_envelope(node))


def _not_for_the_recipient(node: Node) -> tuple[str, Signed]:
    """Addressed to gongan but sealed only to shenpi: neither gongan nor the ledger could ever read it."""
    env = _envelope(node)
    readers = node.ring.readers("shenpi", env.time)
    body = seal(env, readers)
    shenpi = node.keys.signer("shenpi")
    return "xz.shenpi.gongan.assistance.requested", Signed(body=body, kid=shenpi.kid, sig=shenpi.sign_bytes(body))


def _wrong_sender(node: Node) -> tuple[str, Signed]:
    gongan = node.keys.signer("gongan")
    body = _sealed(node, _envelope(node)).body  # claims shenpi, signed with gongan's key
    return "xz.shenpi.gongan.assistance.requested", Signed(body=body, kid=gongan.kid, sig=gongan.sign_bytes(body))


def _wrong_recipient(node: Node) -> tuple[str, Signed]:
    signed = _sealed(node, _envelope(node, recipient="shichang"))
    return "xz.shenpi.gongan.assistance.requested", signed


def _malformed(node: Node) -> tuple[str, Signed]:
    shenpi = node.keys.signer("shenpi")
    body = b'{"v":1,"id":"7","sender":"shenpi","payload":{"type":"assistance.requested","items":"all"}}'
    return "xz.shenpi.gongan.assistance.requested", Signed(body=body, kid=shenpi.kid, sig=shenpi.sign_bytes(body))


def _oversized(node: Node) -> tuple[str, Signed]:
    shenpi = node.keys.signer("shenpi")
    body = b"{" + b" " * 70_000 + b"}"
    return "xz.shenpi.gongan.assistance.requested", Signed(body=body, kid=shenpi.kid, sig=shenpi.sign_bytes(body))


def _unknown_key(node: Node) -> tuple[str, Signed]:
    stranger = Signer("shenpi", "shenpi-not-in-the-trust-list", nacl.signing.SigningKey.generate())
    body = _sealed(node, _envelope(node)).body
    return "xz.shenpi.gongan.assistance.requested", Signed(body=body, kid=stranger.kid, sig=stranger.sign_bytes(body))


def _unsigned(node: Node) -> tuple[str, Signed]:
    signed = _sealed(node, _envelope(node))
    return "xz.shenpi.gongan.assistance.requested", Signed(body=signed.body, kid="", sig=b"")


@pytest.mark.parametrize(("make", "code"), [
    (_forged, "bad-signature"), (_wrong_sender, "wrong-sender"), (_wrong_recipient, "wrong-recipient"),
    (_malformed, "malformed"), (_unsigned, "unsigned"), (_unknown_key, "unknown-key"),
    (_not_sealed, "not-sealed"), (_not_for_the_recipient, "cannot-open"),
])
async def test_a_bad_message_is_dead_lettered_with_its_reason_and_changes_nothing(node: Node, make, code) -> None:  # type: ignore[no-untyped-def]
    request(node)
    await node.settle()
    before = snapshot(node)
    subject, signed = make(node)
    await _publish(node, subject, signed)
    await node.settle()
    letters = [d for d in await _dead_letters(node) if d.rejected_by == "gongan"]
    assert [d.code for d in letters] == [code]
    assert letters[0].reason and letters[0].original_subject == subject
    assert letters[0].data == signed.body[:len(letters[0].data)]
    if code in ("not-sealed", "cannot-open"):  # the ledger never records what it could not replay
        assert [d.code for d in await _dead_letters(node) if d.rejected_by == "ledger"] == [code]
    assert snapshot(node) == before
    # The agent is still alive and answering.
    case = request(node)
    await node.settle()
    assert node.store("shenpi").assistance.case(case).state.status == "replied"


async def test_an_oversized_message_is_refused_by_the_server_itself(node: Node) -> None:
    """The sending stream's max_msg_size is the envelope's limit (decision 50): intake's own check
    (``oversized``, in test_intake) is the layer behind it."""
    subject, signed = _oversized(node)
    with pytest.raises(APIError, match="message size exceeds maximum allowed"):
        await _publish(node, subject, signed)
    assert await _dead_letters(node) == []


async def test_a_replayed_copy_of_a_valid_event_changes_nothing(node: Node) -> None:
    case = request(node)
    await node.settle()
    before = snapshot(node)
    original = node.store("shenpi").assistance.case(case).envelopes[0]
    # A new Nats-Msg-Id gets it past JetStream's dedup: the copy reaches gongan and the ledger.
    await _publish(node, subject_for(decode_checked(original.body)), original)
    await node.settle()
    assert snapshot(node) == before
    assert await _dead_letters(node) == []  # a harmless copy is counted, not reported
    assert node.agents["gongan"].intake and node.agents["gongan"].intake.stats.duplicates == 1


async def test_a_different_body_under_a_known_event_id_is_dead_lettered(node: Node) -> None:
    case = request(node)
    await node.settle()
    before = snapshot(node)
    original = node.keys.opener("shenpi").open(node.store("shenpi").assistance.case(case).envelopes[0].body)
    items = [msgspec.structs.replace(i, text=i.text + "（改）") for i in original.payload.items]  # type: ignore[union-attr]
    altered = msgspec.structs.replace(original, payload=msgspec.structs.replace(original.payload, items=items))
    await _publish(node, subject_for(altered), _sealed(node, altered))
    await node.settle()
    assert snapshot(node) == before
    assert [(d.rejected_by, d.code) for d in await _dead_letters(node)] == [("gongan", "duplicate")]


async def test_the_ledger_rejects_what_no_bureau_signed(node: Node) -> None:
    request(node)
    await node.settle()
    subject, signed = _forged(node)
    await _publish(node, subject, signed)
    await node.settle()
    await eventually(lambda: node.ledger_service is not None and node.ledger_service.stats.rejected == 1)
    assert node.ledger is not None and len(node.ledger) == 3


async def test_the_sla_view_rebuilt_from_the_ledger_equals_the_live_one(node: Node) -> None:
    for address in ("运河街道", "泥沟镇"):
        request(node, address=address)
    request(node, assistor="ziran", check="")
    await node.settle()
    assert node.sla is not None and node.ledger is not None
    live = node.sla.rows()
    assert len(live) == 3
    assert node.sla.rebuild(node.ledger) == 3 * 2 + 2  # two answered exchanges of 3 events, one open of 2
    assert node.sla.rows() == live
    # The ledger service checked each entry with the ledger's own opener, which left its opening (issue 14.3).
    with closing(sqlite3.connect(node.settings.ledger_path)) as db:
        assert db.execute("SELECT count(*) FROM openings").fetchone() == (len(node.ledger),)


def test_a_request_for_an_item_not_in_the_catalogue_is_refused_before_it_is_sent(node: Node) -> None:
    from aggregates.catalogue import NotCatalogued

    before = node.store("shenpi").recorder.max_notification_id()
    with pytest.raises(NotCatalogued, match="第七条"):
        node.store("shenpi").assistance.request(assistor="shichang", applicant=ZHANG, matter=Matter(code="X", name="x"),
                                                applied_on=date(2026, 9, 20), items=[CommitmentItem(no=1, text="t")],
                                                catalogue_item="XZ-0001")
    assert node.store("shenpi").recorder.max_notification_id() == before


async def test_a_request_records_the_catalogue_version_it_relied_on(node: Node) -> None:
    case = request(node)
    await node.settle()
    req = node.store("gongan").assistance.case(case).state.request
    assert (req.catalogue_item, req.catalogue_version) == ("XZ-0001", 1)


def _files_holding(root: Path, secrets: list[bytes]) -> dict[str, list[bytes]]:
    """Every file under ``root`` whose raw bytes contain one of ``secrets``."""
    found: dict[str, list[bytes]] = {}
    for path in root.rglob("*"):
        if path.is_file():
            data = path.read_bytes()
            hits = [s for s in secrets if s in data]
            if hits:
                found[str(path.relative_to(root))] = hits
    return found


async def test_nats_and_the_ledger_see_only_routing_metadata(node: Node, tmp_path: Path) -> None:
    case = request(node)
    await node.settle()
    assert node.store("shenpi").assistance.case(case).state.status == "replied"
    secrets = [ZHANG.name.encode(), ZHANG.id_number.encode(), "本人无犯罪记录".encode()]
    # The scan finds them where they are in clear (gongan's own residents register): it can fail.
    assert _files_holding(tmp_path / "data", secrets)
    # Nothing the NATS server stored (the events, the ledger's and agents' consumers) holds them.
    assert _files_holding(tmp_path / "nats", secrets) == {}
    # Nor the ledger's file, which keeps the sealed bytes as received.
    assert node.ledger is not None
    ledger_files = [p for p in node.ledger.path.parent.iterdir() if p.name.startswith(node.ledger.path.name)]
    assert ledger_files
    assert [p.name for p in ledger_files if any(s in p.read_bytes() for s in secrets)] == []
    # The routing is readable by anyone; the contents only with 区司法局's key.
    [first, *_] = node.ledger.case(case)
    assert (first.sender, first.recipient, first.number, first.type) == \
        ("shenpi", "gongan", "20260001", "assistance.requested")
    opened = node.ledger.envelope(first)
    assert opened.payload.applicant == ZHANG  # type: ignore[union-attr]


async def test_a_disclosure_reaches_the_ledger_and_shows_in_the_cases_history(node: Node, tmp_path: Path) -> None:
    from agencies.disclosure import AccessLog, to_ledger
    from projections.history import history

    case = request(node, assistor="ziran", check="")
    await node.settle()
    [waiting] = node.store("ziran").assistance.inbox()
    entry = AccessLog(tmp_path).record(command="inbox", subject=f"ziran/inbox:shenpi/{waiting.number}",
                                       reason="核对不动产登记", operator="李核查", entitled_by="ziran store key")
    to_ledger(node.store("ziran").notices, waiting.case, waiting.number, entry)
    node.wake_relays()
    await node.settle()
    assert node.ledger is not None
    [disclosed] = [e for e in node.ledger.case(case) if e.type == "access.disclosed"]
    assert (disclosed.sender, disclosed.recipient) == ("ziran", "ledger")
    lines = history(node.ledger, case).lines
    assert any("shown in full to 李核查" in line.summary and "核对不动产登记" in line.summary for line in lines)
    assert history(node.ledger, case).state.status == "received"  # type: ignore[union-attr]  # a notice: no step
    assert node.sla is not None and node.sla.rows()[0]["status"] == "received"



@pytest.mark.parametrize(("item", "matter", "code"), [
    ("XZ-0007", Matter(code="370405-XK-0101", name="食品经营许可"), "rule.catalogue.not-catalogued"),  # ziran's item
    ("XZ-0001", Matter(code="370405-XK-0999", name="建筑工程施工许可"), "rule.catalogue.wrong-matter"),
    ("XZ-0031", Matter(code="370405-XK-0101", name="食品经营许可"), "rule.catalogue.no-memorandum"),  # 第六条
])
async def test_the_assistor_and_the_deadline_view_check_the_item_a_request_cites(
        node: Node, clock: Any, item: str, matter: Matter, code: str) -> None:
    """第七条: 未纳入行政协助目录的事项不得请求行政协助, and 第六条: on-site assistance only under a filed
    memorandum — checked where the request arrives, not only by its sender."""
    from schemas.catalogue import AssistanceItem

    version = 1
    if item == "XZ-0031":  # an on-site item is catalogued, but no memorandum was ever filed
        site = AssistanceItem(code=item, seq=31, service_matter_name="食品经营许可", service_matter_code=matter.code,
                              item_name="经营场所现场核查", legal_basis="《食品经营许可管理办法》第十二条",
                              handling_body="shenpi", assisting_body="gongan", verification_method="现场检查",
                              on_site=True)
        node.catalogue.review(node.catalogue.apply_adjustment("assistance", "shenpi", "现场核查", adds=[site]), True)
        version = node.catalogue.publish("assistance")
    sender = node.store("shenpi")
    sender.catalogue = None  # a sender that skips its own check (an old build, a hostile one)
    case = sender.assistance.request(
        assistor="gongan", applicant=ZHANG, matter=matter, applied_on=date(2026, 9, 20),
        items=[CommitmentItem(no=1, text="本人无犯罪记录", check="police.no-criminal-record")],
        catalogue_item=item, catalogue_version=version).case
    node.wake_relays()
    await node.settle()
    [letter] = [d for d in await _dead_letters(node) if d.rejected_by == "gongan"]
    assert letter.code == "rule-violation" and code in letter.reason
    assert node.ledger is not None and [e.type for e in node.ledger.case(case)] == ["assistance.requested"]
    assert node.sla is not None
    [row] = node.sla.rows()
    assert row["catalogue_flag"].startswith(code)
    # Due or not, the monitor sends no reminder or breach about a request that could not be asked.
    assert SlaMonitor(node.store("sifa"), node.sla, clock).tick(datetime(2026, 12, 1, tzinfo=UTC)) == (0, 0)
