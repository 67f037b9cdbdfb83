"""The trust list signed by the root authority: rotation, revocation, and their distribution to live agents."""
from __future__ import annotations

import asyncio
import json
import shutil
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import msgspec
import nacl.public
import nacl.signing
import nats
import pytest

from agencies.trust.keys import KeyStore, KeyStoreError, NoValidKey
from agencies.trust.trust_list import (
    TrustFollower,
    TrustListError,
    digest,
    fetch_latest,
    follows,
    next_version,
    publish_trust_list,
    publish_versions,
    readable,
    sign_list,
)
from broker.auth import ADMIN, PROVISIONER, credentials_in
from broker.intake import DeadLetter, read_dead_letters
from broker.ledger.audit import audit
from broker.relay import headers_for
from broker.sealing import SealingError, routing, seal
from broker.server import EmbeddedNats
from broker.signing import KeyNotValid, KeyRing, Signer, b64
from broker.streams import TRUST_STREAM, TRUST_SUBJECT, ensure_streams
from projections.replay import VALID, check_signature
from schemas.envelope import HDR_KEY, HDR_SIG, Signed, new_id, subject_for
from schemas.trust import SignedTrustList, TrustAnchor, TrustEntry, TrustList
from tests.conftest import eventually, jetstream
from tests.helpers import invoke
from tests.test_exchange import request
from tests.test_signing import request_env
from xiezhu.cli.keys import app as keys_app
from xiezhu.node import Node
from xiezhu.settings import Settings

T0 = datetime(2026, 9, 1, 1, 0, tzinfo=UTC)
CODES = ["shenpi", "gongan", "sifa"]


@pytest.fixture
def keys(tmp_path: Path) -> KeyStore:
    ks = KeyStore(tmp_path / "keys")
    ks.ensure(CODES, valid_from=T0)
    return ks


def held(ks: KeyStore) -> SignedTrustList:
    signed = ks.signed_trust()
    assert signed is not None
    return signed


def edit_trust(ks: KeyStore, **changes: Any) -> None:
    """Rewrite trust.json with some fields changed, as someone with write access to the file could."""
    doc = json.loads(ks.trust_file.read_text())
    doc.update(changes)
    ks.trust_file.write_text(json.dumps(doc))


# -- the signed document ---------------------------------------------------------------------------------------


def test_keys_init_makes_a_root_key_and_signs_the_trust_list_with_it(keys: KeyStore) -> None:
    assert oct(keys.root_key_file.stat().st_mode & 0o777) == "0o600"
    anchor = keys.anchor()
    assert anchor.authority == "dashuju" and anchor.kid.startswith("dashuju-root-")
    signed = held(keys)
    assert signed.root_kid == anchor.kid and signed.version == 1 and signed.previous == ""
    nacl.signing.VerifyKey(anchor.public_key).verify(signed.body, signed.root_sig)  # the exact bytes on disk
    assert [e.bureau for e in signed.entries] == CODES
    assert anchor.kid not in {e.kid for e in signed.entries}  # the root key signs lists, never envelopes


def test_a_trust_list_whose_readable_part_was_edited_is_refused(keys: KeyStore) -> None:
    stranger = nacl.signing.SigningKey.generate()
    doc = json.loads(keys.trust_file.read_text())
    doc["entries"][1]["public_key"] = msgspec.json.encode(bytes(stranger.verify_key)).decode().strip('"')
    keys.trust_file.write_text(json.dumps(doc))
    with pytest.raises(KeyStoreError, match="the file was edited"):
        keys.ring()


def test_a_trust_list_whose_signed_bytes_were_changed_is_refused(keys: KeyStore) -> None:
    signed = held(keys)
    body = signed.body.replace(b'"gongan"', b'"shenpi"')
    edit_trust(keys, body=msgspec.json.encode(body).decode().strip('"'))
    with pytest.raises(KeyStoreError, match="does not verify"):
        keys.trust_list()


def test_a_trust_list_signed_by_any_key_but_the_pinned_root_is_refused(keys: KeyStore) -> None:
    impostor = Signer("dashuju", keys.anchor().kid, nacl.signing.SigningKey.generate())  # claims the root's id
    forged = sign_list(readable(held(keys)), impostor)
    keys.trust_file.write_bytes(msgspec.json.encode(forged))
    with pytest.raises(KeyStoreError, match="does not verify"):
        keys.ring()
    other_root = Signer("dashuju", "dashuju-root-000000000000", nacl.signing.SigningKey.generate())
    keys.trust_file.write_bytes(msgspec.json.encode(sign_list(readable(forged), other_root)))
    with pytest.raises(KeyStoreError, match="not by the pinned root key"):
        keys.ring()


def test_an_unsigned_trust_list_is_refused_until_keys_init_signs_it(tmp_path: Path) -> None:
    ks = KeyStore(tmp_path / "keys")
    ks.dir.mkdir()
    old = nacl.signing.SigningKey.generate()
    legacy = {"version": 2, "issued_at": T0.isoformat(), "entries": [
        {"kid": "gongan-old", "bureau": "gongan", "public_key": msgspec.json.encode(bytes(old.verify_key)).decode()
         .strip('"'), "valid_from": T0.isoformat()}]}
    ks.trust_file.write_text(json.dumps(legacy))
    ks.ensure([], valid_from=T0)  # the first keys init adopts it …
    signed = held(ks)
    assert signed.version == 3 and [e.kid for e in signed.entries] == ["gongan-old"]
    ks.trust_file.write_text(json.dumps(legacy))  # … and an unsigned list is refused from then on
    with pytest.raises(KeyStoreError, match="not signed by the root authority"):
        ks.ring()


def test_only_the_machine_with_the_root_key_can_change_the_trust_list(keys: KeyStore, tmp_path: Path) -> None:
    agent_keys = KeyStore(tmp_path / "agent-keys")
    shutil.copytree(keys.dir, agent_keys.dir)
    agent_keys.root_key_file.unlink()
    assert len(agent_keys.ring()) == 3  # it reads and checks the list with the anchor alone …
    with pytest.raises(KeyStoreError, match="not on this machine"):
        agent_keys.rotate("gongan", now=T0 + timedelta(days=1))
    with pytest.raises(KeyStoreError, match="not on this machine"):
        agent_keys.ensure([*CODES, "ziran"], valid_from=T0)
    (agent_keys.anchor_file).unlink()
    with pytest.raises(KeyStoreError, match="no trust anchor"):
        agent_keys.ring()


# -- versions --------------------------------------------------------------------------------------------------


def test_a_trust_list_version_never_goes_backwards(keys: KeyStore, tmp_path: Path) -> None:
    v1 = held(keys)
    v2 = keys.rotate("gongan", now=T0 + timedelta(days=1))
    assert (v2.version, v2.previous) == (2, digest(v1.body))
    with pytest.raises(TrustListError, match="version 1 is older than version 2"):
        keys.install(v1)
    assert keys.install(v2) is False  # the same version again changes nothing
    fork = sign_list(next_version(v1, v1.entries, T0 + timedelta(days=2)), keys.root_signer())
    with pytest.raises(TrustListError, match="two different trust lists claim version 2"):
        keys.install(fork)
    assert held(keys) == v2


def test_a_new_version_may_not_rewrite_history(keys: KeyStore) -> None:
    v1 = keys.revoke(held(keys).entries[1].kid, "私钥泄露", now=T0 + timedelta(days=1))
    root = keys.root_signer()
    gongan = v1.entries[1]

    def v2(entries: list[TrustEntry], previous: str | None = None) -> SignedTrustList:
        nxt = next_version(v1, entries, T0 + timedelta(days=2))
        if previous is not None:
            nxt = msgspec.structs.replace(nxt, previous=previous)
        return sign_list(nxt, root)

    others = [e for e in v1.entries if e.kid != gongan.kid]
    cases = {
        "drops key": v2(others),
        "lifts or moves the revocation": v2([*others, msgspec.structs.replace(gongan, revoked_at=None)]),
        "changes the owner, public key or start": v2([*others, msgspec.structs.replace(gongan, bureau="shenpi")]),
        "does not follow version 2": v2(v1.entries, previous="0" * 64),
    }
    expiring = keys.rotate("shenpi", now=T0 + timedelta(days=2))
    longer = [msgspec.structs.replace(e, valid_to=e.valid_to + timedelta(days=1)) if e.valid_to else e
              for e in expiring.entries]
    with pytest.raises(TrustListError, match="extends the validity"):
        follows(expiring, next_version(expiring, longer, T0 + timedelta(days=3)), b"x")
    for why, bad in cases.items():
        with pytest.raises(TrustListError, match=why):
            follows(v1, readable(bad), bad.body)


# -- rotation and revocation -----------------------------------------------------------------------------------


def test_rotation_keeps_the_old_key_valid_for_the_overlap_and_the_new_key_valid_from_now(keys: KeyStore) -> None:
    old = keys.signer("gongan")
    t1 = T0 + timedelta(days=30)
    signed = keys.rotate("gongan", now=t1, overlap=timedelta(days=2))
    new = keys.signer("gongan")
    assert new.kid != old.kid and signed.entries[-1].kid == new.kid
    ring = keys.ring()
    assert ring.verify(old.sign(request_env("gongan", "shenpi", when=t1 + timedelta(days=1))))
    with pytest.raises(KeyNotValid, match="not valid"):
        ring.verify(old.sign(request_env("gongan", "shenpi", when=t1 + timedelta(days=2))))
    assert ring.verify(new.sign(request_env("gongan", "shenpi", when=t1)))
    with pytest.raises(KeyNotValid):
        ring.verify(new.sign(request_env("gongan", "shenpi", when=t1 - timedelta(seconds=1))))
    assert ring.verify(old.sign(request_env("gongan", "shenpi", when=t1 - timedelta(days=20))))  # history stays
    retired = keys.retired_dir / f"{old.kid}.ed25519"
    assert oct(retired.stat().st_mode & 0o777) == "0o600"
    keys.rotate("gongan", now=t1 + timedelta(days=3))  # the old key has expired: its seed is forgotten
    assert not retired.exists()


def test_a_rotation_can_list_a_key_made_on_the_bureaus_own_machine(keys: KeyStore) -> None:
    before = keys.signer("gongan")
    theirs = nacl.signing.SigningKey.generate()
    their_box = bytes(nacl.public.PrivateKey.generate().public_key)
    with pytest.raises(KeyStoreError, match="box key"):
        keys.rotate("gongan", now=T0 + timedelta(days=1), public_key=bytes(theirs.verify_key))
    signed = keys.rotate("gongan", now=T0 + timedelta(days=1), public_key=bytes(theirs.verify_key),
                         box_key=their_box)
    assert (signed.entries[-1].public_key, signed.entries[-1].box_key) == (bytes(theirs.verify_key), their_box)
    assert keys.signer("gongan").kid == before.kid  # no private key was made or replaced here
    with pytest.raises(KeyStoreError, match="32-byte"):
        keys.rotate("gongan", now=T0 + timedelta(days=2), public_key=b"short", box_key=their_box)


def test_a_bureau_signs_with_its_old_key_until_the_new_one_has_reached_its_ring(keys: KeyStore) -> None:
    ring = keys.ring()
    signer = keys.bureau_signer("gongan", ring)
    old_kid = keys.signer("gongan").kid
    t1 = T0 + timedelta(days=1)
    signed = keys.rotate("gongan", now=t1)
    env = request_env("gongan", "shenpi", when=t1 + timedelta(minutes=1))
    assert signer.sign(env).kid == old_kid  # the ring here does not know the new key yet
    ring.replace(signed.entries)
    assert signer.sign(env).kid == signed.entries[-1].kid


def test_a_bureau_whose_only_key_is_revoked_signs_nothing(keys: KeyStore) -> None:
    kid = keys.signer("gongan").kid
    t1 = T0 + timedelta(days=1)
    keys.revoke(kid, "私钥泄露", now=t1)
    signer = keys.bureau_signer("gongan")
    assert signer.sign(request_env("gongan", "shenpi", when=t1 - timedelta(hours=1))).kid == kid
    with pytest.raises(NoValidKey, match="keys rotate gongan"):
        signer.sign(request_env("gongan", "shenpi", when=t1 + timedelta(hours=1)))


def test_a_revoked_key_fails_after_the_revocation_even_when_the_envelope_is_backdated(keys: KeyStore) -> None:
    gongan = keys.signer("gongan")
    t1 = T0 + timedelta(days=10)
    before = gongan.sign(request_env("gongan", "shenpi", when=t1 - timedelta(hours=1)))
    keys.revoke(gongan.kid, "私钥泄露", now=t1)
    ring = keys.ring()
    assert ring.verify(before)  # signed before the revocation: still valid at its time
    assert check_signature(ring, before, t1 - timedelta(minutes=30)).status == VALID
    with pytest.raises(KeyNotValid, match="revoked"):
        ring.verify(gongan.sign(request_env("gongan", "shenpi", when=t1 + timedelta(seconds=1))))
    ring.check_received(gongan.kid, t1 - timedelta(seconds=1))  # received before: fine
    with pytest.raises(KeyNotValid, match="before this message was received"):
        ring.check_received(gongan.kid, t1 + timedelta(seconds=1))  # a stolen key's backdated message
    assert not ring.valid_at(gongan.kid, t1) and ring.valid_at(gongan.kid, t1 - timedelta(seconds=1))


def test_replacing_a_ring_is_seen_by_every_holder(keys: KeyStore) -> None:
    ring = keys.ring()
    holders = [ring, ring]  # intake and the ledger hold the same object
    signed = keys.rotate("shenpi", now=T0 + timedelta(days=1))
    ring.replace(signed.entries)
    assert all(h.entry(signed.entries[-1].kid) is not None for h in holders)
    assert [e.kid for e in ring.entries()] == [e.kid for e in signed.entries]


# -- distribution to live agents -------------------------------------------------------------------------------


async def publish(node: Node, signed: SignedTrustList) -> bool:
    """What `xiezhu --nats-url URL keys rotate|revoke` does after signing."""
    nc = await nats.connect(node.nats_url, **node.credentials(ADMIN))
    try:
        return await publish_trust_list(nc.jetstream(), signed, node.keys.anchor())
    finally:
        await nc.close()


async def dead_letters(node: Node, code: str) -> list[DeadLetter]:
    nc = await nats.connect(node.nats_url, **node.credentials(ADMIN))
    try:
        return [d for d in await read_dead_letters(nc.jetstream()) if d.code == code]
    finally:
        await nc.close()


async def send_as(node: Node, signer: Signer, when: datetime) -> str:
    """Publish a well-formed envelope from ``signer``'s bureau to shenpi, dated ``when``; returns its subject.

    It is sealed as a store would seal it (to shenpi and 区司法局), so only the key's validity is in question.
    """
    env = request_env(signer.bureau, "shenpi", when=when)
    body = seal(env, node.ring.readers("shenpi", when) + node.ring.readers("sifa", when))
    signed = Signed(body=body, kid=signer.kid, sig=signer.sign_bytes(body))
    nc = await nats.connect(node.nats_url, **node.credentials(signer.bureau))
    try:
        subject = subject_for(request_env(signer.bureau, "shenpi", when=when))
        await nc.jetstream().publish(subject, signed.body, headers=headers_for(signed, new_id()))
    finally:
        await nc.close()
    return subject


async def test_a_node_publishes_its_trust_list_at_start_and_a_stale_copy_never_replaces_a_newer_one(
        node: Node) -> None:
    nc = await nats.connect(node.nats_url, **node.credentials(ADMIN))
    try:
        js = nc.jetstream()
        last = await fetch_latest(js)
        v1 = held(node.keys)
        assert last is not None and last.body == v1.body and node.trust and node.trust.version == 1
        v2 = node.keys.rotate("ziran", now=node.clock.now())
        assert await publish_trust_list(js, v2, node.keys.anchor()) is True
        assert await publish_trust_list(js, v2, node.keys.anchor()) is False  # already there
        with pytest.raises(TrustListError, match="this data directory is behind"):
            await publish_trust_list(js, v1, node.keys.anchor())
    finally:
        await nc.close()


async def test_running_agents_pick_up_a_new_version_and_refuse_forged_or_older_ones(node: Node) -> None:
    assert node.trust is not None
    other_ring = KeyRing()
    elsewhere = TrustFollower(node.keys.anchor(), other_ring, None, node.nats_url,  # another machine's agent
                              connect_options=node.credentials("ziran"))
    await elsewhere.start()
    try:
        assert elsewhere.version == 1 and len(other_ring) == len(node.ring)
        v1 = held(node.keys)
        v2 = node.keys.rotate("gongan", now=node.clock.now())
        await publish(node, v2)
        new_kid = v2.entries[-1].kid
        await eventually(lambda: node.ring.entry(new_kid) is not None and other_ring.entry(new_kid) is not None)
        assert node.trust.version == elsewhere.version == 2

        forged = sign_list(next_version(v2, v2.entries[:1], node.clock.now()),
                           Signer("dashuju", node.keys.anchor().kid, nacl.signing.SigningKey.generate()))
        nc = await nats.connect(node.nats_url, **node.credentials(ADMIN))  # only admin may publish on the subject
        try:
            for bad in (forged, v1):  # a list not signed by the root, and a replayed older version
                await nc.publish(TRUST_SUBJECT, bad.body, headers={HDR_KEY: bad.root_kid, HDR_SIG: b64(bad.root_sig)})
            await nc.flush()
        finally:
            await nc.close()
        await eventually(lambda: elsewhere.refused >= 2 and node.trust is not None and node.trust.refused >= 2)
        assert node.trust.version == elsewhere.version == 2 and other_ring.entry(new_kid) is not None
        assert held(node.keys) == v2
    finally:
        await elsewhere.stop()


async def test_a_message_signed_with_a_revoked_key_is_dead_lettered_by_the_agent_and_the_ledger(
        node: Node) -> None:
    gongan = node.keys.signer("gongan")
    revoked_at = node.clock.now()
    # ASCII: read_dead_letters cannot read back a non-ASCII reason header yet.
    await publish(node, node.keys.revoke(gongan.kid, "key leaked", now=revoked_at))
    await eventually(lambda: (e := node.ring.entry(gongan.kid)) is not None and e.revoked_at is not None)
    node.clock.advance(timedelta(minutes=5))

    await send_as(node, gongan, node.clock.now())  # signed after the revocation
    await send_as(node, gongan, revoked_at - timedelta(hours=1))  # a stolen key, backdated
    await node.settle()
    rejected = await dead_letters(node, "key-not-valid")
    assert sorted(d.rejected_by for d in rejected) == ["ledger", "ledger", "shenpi", "shenpi"]
    assert sum("before this message was received" in d.reason for d in rejected) == 2
    assert node.ledger is not None and all(e.signed.kid != gongan.kid for e in node.ledger.entries())


async def test_a_rotated_bureau_answers_again_and_what_came_while_its_key_was_revoked_waits_for_the_new_key(
        node: Node) -> None:
    old = node.keys.signer("gongan")
    await publish(node, node.keys.revoke(old.kid, "私钥泄露", now=node.clock.now()))
    await eventually(lambda: not node.ring.valid_at(old.kid, node.clock.now()))

    to_ziran = request(node, assistor="ziran", check="")  # shenpi's own key is untouched
    # Nothing can be sealed to gongan while it has no valid key: a request is refused before anything
    # is stored or sent (its leaked box key would expose the applicant), not sent to wait.
    before = node.store("shenpi").recorder.max_notification_id()
    with pytest.raises(SealingError, match="gongan has no valid key"):
        request(node)
    assert node.store("shenpi").recorder.max_notification_id() == before
    await eventually(lambda: node.store("ziran").assistance.inbox() != [])
    assert node.store("ziran").assistance.inbox()[0].case == to_ziran

    v = node.keys.rotate("gongan", now=node.clock.now())
    new_kid = v.entries[-1].kid
    await publish(node, v)
    await eventually(lambda: node.ring.entry(new_kid) is not None)
    again = request(node)
    await node.settle()
    st = node.store("shenpi").assistance.case(again)
    assert st.state.status == "replied"
    assert [s.kid for s in st.envelopes[1:]] == [new_kid, new_kid]  # arrival and reply, both by the new key
    assert {k.kid for k in routing(st.envelopes[0].body).sealed.keys} & {old.kid, new_kid} == {new_kid}
    assert await dead_letters(node, "key-not-valid") == []


async def test_history_signed_before_a_revocation_still_verifies_on_replay(node: Node) -> None:
    case = request(node)
    await node.settle()
    kid = node.keys.signer("gongan").kid
    node.clock.advance(timedelta(days=1))
    await publish(node, node.keys.revoke(kid, "私钥泄露", now=node.clock.now()))
    await eventually(lambda: not node.ring.valid_at(kid, node.clock.now()))
    assert node.ledger is not None
    entries = node.ledger.case(case)
    assert [e.signed.kid for e in entries][1:] == [kid, kid]
    for e in entries:
        assert check_signature(node.ring, e.signed, datetime.fromisoformat(e.arrived_at)).status == VALID
    report = audit(node.settings.ledger_path, KeyStore(node.settings.keys_dir).ring(), workers=1)
    assert report.ok  # the whole ledger, against the list on disk that the node saved


async def test_a_revoked_justice_key_stops_checkpoints_and_notices_but_not_the_ledger(node: Node) -> None:
    assert node.ledger is not None and node.ledger_service is not None
    node.ledger_service.checkpoint_every = 1  # try to sign a checkpoint after every batch
    request(node)
    await node.settle()
    signed = len(node.ledger.checkpoints())
    assert signed >= 1
    sifa = node.keys.signer("sifa").kid
    await publish(node, node.keys.revoke(sifa, "私钥泄露", now=node.clock.now()))
    await eventually(lambda: not node.ring.valid_at(sifa, node.clock.now()))
    before = len(node.ledger)
    # Every payload is sealed to 区司法局 for the ledger: with its key revoked, nothing can be sent …
    with pytest.raises(SealingError, match="sifa has no valid key"):
        request(node)
    # … until its new key is listed; the ledger records again, opens with the new box key, and
    # signs its checkpoints with the new key, never with the revoked one.
    v = node.keys.rotate("sifa", now=node.clock.now())
    new_kid = v.entries[-1].kid
    await publish(node, v)
    await eventually(lambda: node.ring.entry(new_kid) is not None)
    request(node)
    await node.settle()
    assert len(node.ledger) == before + 3
    checkpoints = node.ledger.checkpoints()
    assert len(checkpoints) > signed and all(cp.kid == new_kid for cp in checkpoints[signed:])
    assert [e.type for e in node.ledger.entries(before)] == [
        "assistance.requested", "assistance.received", "assistance.replied"]
    assert all(node.ledger.envelope(e) for e in node.ledger.entries(before))


# -- the command line ------------------------------------------------------------------------------------------


def test_the_keys_commands_init_list_rotate_and_revoke_a_data_directory(tmp_path: Path) -> None:
    env = {"XIEZHU_DATA_DIR": str(tmp_path / "xiezhu"), "XIEZHU_NATS_URL": "", "COLUMNS": "200"}
    init = invoke(keys_app, ["init"], env=env)
    assert init.exit_code == 0, init.output
    assert "第 1 版，由 dashuju-root-" in init.stderr
    listed = json.loads(invoke(keys_app, ["list", "--bureau", "gongan", "--json"], env=env).stdout)
    assert listed["version"] == 1 and [k["state"] for k in listed["keys"]] == ["valid"]
    kid = listed["keys"][0]["kid"]

    rotated = invoke(keys_app, ["rotate", "gongan", "--overlap-days", "2"], env=env)
    assert rotated.exit_code == 0, rotated.output
    assert "未发布（没有 --nats-url）" in rotated.stderr
    revoked = invoke(keys_app, ["revoke", kid, "--reason", "私钥泄露"], env=env)
    assert revoked.exit_code == 0, revoked.output
    listed = json.loads(invoke(keys_app, ["list", "--bureau", "gongan", "--json"], env=env).stdout)
    assert listed["version"] == 3
    assert [(k["kid"] == kid, k["state"]) for k in listed["keys"]] == [(True, "revoked"), (False, "valid")]
    table = invoke(keys_app, ["list"], env=env)
    assert "信任列表第 3 版" in table.stdout and "已吊销" in table.stdout and "私钥泄露" in table.stdout
    assert "区公安分局" in table.stdout and "gongan " not in table.stdout
    narrow = invoke(keys_app, ["list"], env=env | {"COLUMNS": "80"}).stdout
    assert "…" not in narrow and max(len(line) for line in narrow.splitlines()) <= 80
    assert all(k["kid"] in narrow for k in listed["keys"])  # every key id whole at 80 columns
    english = invoke(keys_app, ["list"], env=env | {"XIEZHU_LANG": "en"}).stdout
    assert "trust list version 3" in english and "revoked" in english and "gongan" in english

    again = invoke(keys_app, ["revoke", kid, "--reason", "again"], env=env)
    assert again.exit_code == 1 and "already revoked" in str(again.exception)
    unknown = invoke(keys_app, ["revoke", "nope-123", "--reason", "x"], env=env)
    assert "no key 'nope-123'" in str(unknown.exception)
    for command in ("init", "list", "rotate", "revoke", "publish"):
        assert "Example: xiezhu" in invoke(keys_app, [command, "--help"], env=env).stdout


async def test_keys_rotate_with_a_nats_url_publishes_the_new_version(tmp_path: Path,
                                                                     nats_server: EmbeddedNats) -> None:
    data = tmp_path / "data"  # holds the server's nats-keys: the command publishes as admin
    await _provision_streams(nats_server.url, data)  # `xiezhu provision`
    nc = await nats.connect(nats_server.url, **credentials_in(data / "nats-keys", ADMIN))
    try:
        env = {"XIEZHU_DATA_DIR": str(data), "XIEZHU_NATS_URL": nats_server.url}
        assert invoke(keys_app, ["init"], env=env).exit_code == 0
        result = await _in_thread(["rotate", "shenpi"], env)
        assert result.exit_code == 0, result.output
        assert "第 2 版信任列表已发布到" in result.stderr
        last = await fetch_latest(nc.jetstream())
        assert last is not None and last.body == held(KeyStore(data / "keys")).body
    finally:
        await nc.close()


async def _provision_streams(url: str, data: Path) -> None:
    """The streams, created by the one-shot provisioner (the consumers are not needed here)."""
    nc = await nats.connect(url, **credentials_in(data / "nats-keys", PROVISIONER))
    try:
        await ensure_streams(nc.jetstream())
    finally:
        await nc.close()


async def _in_thread(args: list[str], env: dict[str, str]) -> Any:
    """Run a command that calls asyncio.run() itself, off this test's event loop."""
    return await asyncio.to_thread(invoke, keys_app, args, env=env)


# -- the root key's handover (decision 25) ---------------------------------------------------------------------


def agent_copy(keys: KeyStore, path: Path) -> KeyStore:
    """Another machine's keys directory: the anchor and the list, no root key."""
    shutil.copytree(keys.dir, path)
    (path / "root.ed25519").unlink()
    return KeyStore(path)


def retired_root(keys: KeyStore, kid: str) -> Signer:
    """The old root's signer from its retired seed, as whoever stole or kept it could sign."""
    seed = (keys.retired_root_dir / f"{kid}.ed25519").read_bytes()
    return Signer("dashuju", kid, nacl.signing.SigningKey(seed))


def test_the_root_key_rotates_by_a_handover_signed_with_the_old_key(keys: KeyStore, tmp_path: Path) -> None:
    agent = agent_copy(keys, tmp_path / "agent-keys")
    old = keys.anchor()
    held_before = held(keys)
    handover, first = keys.rotate_root(now=T0 + timedelta(days=1))
    new = keys.anchor()
    assert new.kid != old.kid and new.authority == old.authority
    assert (handover.version, handover.root_kid, handover.next_root) == (held_before.version + 1, old.kid, new)
    assert handover.previous == digest(held_before.body) and handover.entries == held_before.entries
    assert (first.version, first.root_kid, first.next_root, first.previous) == (
        handover.version + 1, new.kid, None, digest(handover.body))
    nacl.signing.VerifyKey(old.public_key).verify(handover.body, handover.root_sig)
    nacl.signing.VerifyKey(new.public_key).verify(first.body, first.root_sig)
    # The root's machine: the new key signs from now; the old seed is kept aside, mode 0600, never used.
    assert held(keys) == first and keys.root_signer().kid == new.kid
    retired_seed = keys.retired_root_dir / f"{old.kid}.ed25519"
    assert oct(retired_seed.stat().st_mode & 0o777) == "0o600"
    assert retired_root(keys, old.kid).public_key == old.public_key
    assert keys.handovers() == [handover] and list(keys.anchors()) == [new.kid, old.kid]
    v_next = keys.rotate("gongan", now=T0 + timedelta(days=2))
    assert v_next.root_kid == new.kid

    # Another machine takes the handover: it pins the new key (root.pub replaced) and checks the
    # handover it holds against the old anchor it retired.
    assert agent.install(handover) is True
    assert agent.anchor() == new and agent.signed_trust() == handover
    assert agent.anchors()[old.kid] == old and not (agent.retired_root_dir / f"{old.kid}.ed25519").exists()
    assert not list(agent.dir.glob("*.tmp"))  # root.pub was replaced by a rename
    assert agent.install(handover) is False  # the same version again changes nothing
    assert agent.install(first) is True and agent.install(v_next) is True
    assert held(agent) == v_next and len(agent.ring()) == len(v_next.entries)


def test_a_machine_that_missed_the_new_keys_first_version_jumps_to_a_later_one(
        keys: KeyStore, tmp_path: Path) -> None:
    agent = agent_copy(keys, tmp_path / "agent-keys")
    handover, _ = keys.rotate_root(now=T0 + timedelta(days=1))
    later = keys.rotate("shenpi", now=T0 + timedelta(days=2))
    with pytest.raises(TrustListError, match="not by the pinned root key"):
        agent.install(later)  # signed by a key it does not pin yet: the handover must come first
    assert agent.install(handover) and agent.install(later)
    assert agent.anchor() == keys.anchor()


def test_after_the_handover_a_version_signed_by_the_old_root_is_refused(keys: KeyStore, tmp_path: Path) -> None:
    agent = agent_copy(keys, tmp_path / "agent-keys")
    old = keys.anchor()
    handover, first = keys.rotate_root(now=T0 + timedelta(days=1))
    thief = retired_root(keys, old.kid)  # the old seed, as someone who took it could use it
    assert agent.install(handover)
    for base in (handover, first):  # right after the handover, and after the new key's first version
        stale = sign_list(next_version(base, base.entries[1:], T0 + timedelta(days=2)), thief)
        for ks in (agent, keys):
            with pytest.raises(TrustListError, match=f"signed by '{old.kid}', not by the pinned root key"):
                ks.install(stale)
        follower = TrustFollower(old, KeyRing(), base if base is handover else None, "nats://unused")
        if base is first:
            assert follower.offer(handover.body, handover.root_kid, handover.root_sig)
        with pytest.raises(TrustListError, match="not by the pinned root key"):
            follower.offer(stale.body, stale.root_kid, stale.root_sig)
        agent.install(first)
    assert held(agent) == first and agent.anchor() == keys.anchor() != old


def test_a_forged_handover_not_signed_by_the_current_root_is_refused(keys: KeyStore, tmp_path: Path) -> None:
    agent = agent_copy(keys, tmp_path / "agent-keys")
    root = keys.anchor()
    v1 = held(keys)
    mallory = nacl.signing.SigningKey.generate()
    theirs = TrustAnchor(authority="dashuju", kid="dashuju-root-0123456789ab", public_key=bytes(mallory.verify_key))
    claim = msgspec.structs.replace(next_version(v1, v1.entries, T0 + timedelta(days=1)), next_root=theirs)
    forgeries = {
        "not by the pinned root key": sign_list(claim, Signer("dashuju", "dashuju-root-ffffffffffff", mallory)),
        "does not verify": sign_list(claim, Signer("dashuju", root.kid, mallory)),  # claims the root's key id
    }
    follower = TrustFollower(root, KeyRing(), v1, "nats://unused")
    for why, forged in forgeries.items():
        for ks in (agent, keys):
            with pytest.raises(TrustListError, match=why):
                ks.install(forged)
        with pytest.raises(TrustListError, match=why):
            follower.offer(forged.body, forged.root_kid, forged.root_sig)
    # A genuine version with its next_root edited in the readable copy on disk.
    handover, _ = keys.rotate_root(now=T0 + timedelta(days=1))
    agent.install(handover)
    doc = json.loads(agent.trust_file.read_text())
    doc["next_root"]["public_key"] = msgspec.json.encode(bytes(mallory.verify_key)).decode().strip('"')
    agent.trust_file.write_text(json.dumps(doc))
    with pytest.raises(KeyStoreError, match="refused"):
        agent.ring()
    # Nothing handed the root to mallory: every pin is the root's own successor.
    assert follower.anchor == root and agent.anchor() == keys.anchor() != theirs
    assert theirs.kid not in keys.anchors() and theirs.kid not in agent.anchors()


def test_a_handover_whose_anchor_was_not_replaced_yet_is_finished_by_the_next_version(
        keys: KeyStore, tmp_path: Path) -> None:
    """A stop between writing the handover and replacing root.pub leaves a directory that still works."""
    agent = agent_copy(keys, tmp_path / "agent-keys")
    old_pub = agent.anchor_file.read_bytes()
    handover, first = keys.rotate_root(now=T0 + timedelta(days=1))
    agent.install(handover)
    agent.anchor_file.write_bytes(old_pub)  # as if it had stopped before the rename
    assert agent.signed_trust() == handover  # signed by the key root.pub still names
    follower = TrustFollower(agent.anchor(), KeyRing(), agent.signed_trust(), "nats://unused")
    assert follower.anchor == keys.anchor()  # it takes the successor from the handover it holds
    assert agent.install(first) and agent.anchor() == keys.anchor()
    # The same on the root's machine: root_signer() finishes it.
    keys.anchor_file.write_bytes(old_pub)
    keys.trust_file.write_bytes(msgspec.json.format(msgspec.json.encode(handover)))
    assert keys.root_signer().kid == first.root_kid and keys.anchor().kid == first.root_kid


async def test_running_agents_follow_a_root_rotation_without_restart(node: Node, tmp_path: Path) -> None:
    """The root's node and another machine's follower, on NATS; the exchange carries on under the new root."""
    assert node.trust is not None
    elsewhere_keys = agent_copy(node.keys, tmp_path / "elsewhere-keys")
    other_ring = KeyRing()
    elsewhere = TrustFollower(elsewhere_keys.anchor(), other_ring, elsewhere_keys.signed_trust(), node.nats_url,
                              persist=elsewhere_keys.install, connect_options=node.credentials("ziran"))
    await elsewhere.start()
    try:
        old = node.keys.anchor()
        handover, first = node.keys.rotate_root(now=node.clock.now())  # what `xiezhu keys rotate-root` does
        new = node.keys.anchor()
        assert await publish_chain(node, [handover, first]) == 2
        await eventually(lambda: elsewhere.version == node.trust.version == first.version)
        assert elsewhere.anchor == node.trust.anchor == new and elsewhere.refused == node.trust.refused == 0
        await eventually(lambda: elsewhere_keys.anchor() == new)  # persisted: root.pub replaced there too
        assert elsewhere_keys.anchors()[old.kid] == old

        v = node.keys.rotate("gongan", now=node.clock.now())  # the new root signs the next change
        await publish(node, v)
        new_kid = v.entries[-1].kid
        await eventually(lambda: node.ring.entry(new_kid) is not None and other_ring.entry(new_kid) is not None)
        case = request(node)
        await node.settle()
        assert node.store("shenpi").assistance.case(case).state.status == "replied"
        assert held(elsewhere_keys) == v
    finally:
        await elsewhere.stop()


async def test_over_nats_an_old_root_version_after_the_handover_and_a_forged_handover_are_refused(
        node: Node, tmp_path: Path) -> None:
    assert node.trust is not None
    elsewhere_keys = agent_copy(node.keys, tmp_path / "elsewhere-keys")
    elsewhere = TrustFollower(elsewhere_keys.anchor(), KeyRing(), elsewhere_keys.signed_trust(), node.nats_url,
                              persist=elsewhere_keys.install, connect_options=node.credentials("ziran"))
    await elsewhere.start()
    try:
        v1 = held(node.keys)
        mallory = nacl.signing.SigningKey.generate()
        theirs = TrustAnchor(authority="dashuju", kid="dashuju-root-0123456789ab",
                             public_key=bytes(mallory.verify_key))
        forged = sign_list(msgspec.structs.replace(next_version(v1, v1.entries, node.clock.now()), next_root=theirs),
                           Signer("dashuju", "dashuju-root-ffffffffffff", mallory))
        await push_raw(node, forged)
        await eventually(lambda: elsewhere.refused >= 1 and node.trust is not None and node.trust.refused >= 1)
        assert elsewhere.anchor == node.trust.anchor == node.keys.anchor() and elsewhere.version == 1

        old = node.keys.anchor()
        handover, first = node.keys.rotate_root(now=node.clock.now())
        await publish_chain(node, [handover, first])
        await eventually(lambda: elsewhere.version == first.version)
        refused = elsewhere.refused
        stale = sign_list(next_version(first, first.entries[1:], node.clock.now()), retired_root(node.keys, old.kid))
        await push_raw(node, stale)  # signed by the old root after the handover: it drops gongan's key
        await eventually(lambda: elsewhere.refused > refused)
        assert elsewhere.version == node.trust.version == first.version
        assert elsewhere.anchor == node.trust.anchor == node.keys.anchor() != old
        assert len(elsewhere.ring) == len(first.entries) and held(elsewhere_keys) == first
    finally:
        await elsewhere.stop()


async def test_a_follower_that_missed_the_handover_walks_the_stream_to_the_new_root(node: Node,
                                                                                    tmp_path: Path) -> None:
    """Started later, pinning the old root (its keys volume read-only, say): the last version alone cannot verify."""
    stale_keys = agent_copy(node.keys, tmp_path / "stale-keys")
    handover, first = node.keys.rotate_root(now=node.clock.now())
    await publish_chain(node, [handover, first])
    later = node.keys.rotate("ziran", now=node.clock.now())
    await publish(node, later)
    ring = KeyRing()
    late = TrustFollower(stale_keys.anchor(), ring, stale_keys.signed_trust(), node.nats_url,
                         connect_options=node.credentials("gongan"))  # a bureau's permissions suffice
    await late.start()
    try:
        assert late.version == later.version and late.anchor == node.keys.anchor() and late.refused == 0
        assert ring.entry(later.entries[-1].kid) is not None
    finally:
        await late.stop()


async def publish_chain(node: Node, versions: list[SignedTrustList]) -> int:
    nc = await nats.connect(node.nats_url, **node.credentials(ADMIN))
    try:
        return await publish_versions(nc.jetstream(), versions, node.keys.anchors())
    finally:
        await nc.close()


async def push_raw(node: Node, signed: SignedTrustList) -> None:
    """Put a version on the subject unchecked, as whoever holds the provisioner's credentials could."""
    nc = await nats.connect(node.nats_url, **node.credentials(ADMIN))
    try:
        await nc.jetstream().publish(TRUST_SUBJECT, signed.body, stream=TRUST_STREAM,
                                     headers={HDR_KEY: signed.root_kid, HDR_SIG: b64(signed.root_sig)})
    finally:
        await nc.close()


def test_keys_rotate_root_hands_the_root_over_in_a_data_directory(tmp_path: Path) -> None:
    env = {"XIEZHU_DATA_DIR": str(tmp_path / "xiezhu"), "XIEZHU_NATS_URL": "", "COLUMNS": "200"}
    assert invoke(keys_app, ["init"], env=env).exit_code == 0
    keys = KeyStore(tmp_path / "xiezhu" / "keys")
    old = keys.anchor().kid
    result = invoke(keys_app, ["rotate-root"], env=env)
    assert result.exit_code == 0, result.output
    new = keys.anchor().kid
    assert f"第 2 版信任列表由 {old} 移交给 {new}" in result.stderr
    assert "未发布（没有 --nats-url）" in result.stderr
    listed = json.loads(invoke(keys_app, ["list", "--json"], env=env).stdout)
    assert (listed["version"], listed["root_kid"], listed["next_root"]) == (3, new, None)
    assert "Example: xiezhu" in invoke(keys_app, ["rotate-root", "--help"], env=env).stdout
    agent = KeyStore(tmp_path / "agent")  # a machine without the root key cannot hand it over
    shutil.copytree(keys.dir, agent.dir)
    agent.root_key_file.unlink()
    with pytest.raises(KeyStoreError, match="not on this machine"):
        agent.rotate_root(now=T0)


async def test_keys_publish_sends_the_handover_before_the_new_roots_version(tmp_path: Path,
                                                                           nats_server: EmbeddedNats) -> None:
    data = tmp_path / "data"
    await _provision_streams(nats_server.url, data)
    nc = await nats.connect(nats_server.url, **credentials_in(data / "nats-keys", ADMIN))
    try:
        js = jetstream(nc)
        offline = {"XIEZHU_DATA_DIR": str(data), "XIEZHU_NATS_URL": ""}
        online = {"XIEZHU_DATA_DIR": str(data), "XIEZHU_NATS_URL": nats_server.url}
        assert invoke(keys_app, ["init"], env=online).exit_code == 0
        assert (await _in_thread(["publish"], online)).exit_code == 0
        assert invoke(keys_app, ["rotate-root"], env=offline).exit_code == 0  # published later
        result = await _in_thread(["publish"], online)
        assert result.exit_code == 0, result.output
        keys = KeyStore(data / "keys")
        bodies = [(await js.get_msg(TRUST_STREAM, seq, direct=True)).data for seq in (1, 2, 3)]
        assert [msgspec.json.decode(b or b"", type=TrustList).version for b in bodies] == [1, 2, 3]
        assert bodies[1] == keys.handovers()[0].body and bodies[2] == held(keys).body
        again = await _in_thread(["rotate", "shenpi"], online)  # the handover is not sent twice
        assert again.exit_code == 0, again.output
        assert (await js.stream_info(TRUST_STREAM)).state.messages == 4
    finally:
        await nc.close()


async def test_a_bureau_machine_with_only_its_own_seed_runs_and_follows_a_root_rotation(
        node: Node, tmp_path: Path) -> None:
    """Its own NATS seed and the anchor, no root key and no `admin` seed: provisioning is not its business."""
    data = tmp_path / "shichang-machine"
    machine_keys = agent_copy(node.keys, data / "keys")
    (data / "nats-keys").mkdir(mode=0o700)
    shutil.copy2(node.settings.nats_keys_dir / "shichang.nk", data / "nats-keys" / "shichang.nk")
    machine = Node(Settings(data_dir=data, nats_url=node.nats_url), node.registry, node.clock, agents=["shichang"])
    await machine.start()
    try:
        assert machine.trust is not None and machine.trust.anchor == node.keys.anchor()
        handover, first = node.keys.rotate_root(now=node.clock.now())
        await publish_chain(node, [handover, first])
        await eventually(lambda: machine.trust is not None and machine.trust.version == first.version)
        assert machine.trust.anchor == node.keys.anchor() == machine_keys.anchor()
    finally:
        await machine.stop()
