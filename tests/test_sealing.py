"""Sealed payloads: only the readers open them, the signature covers the sealed bytes, routing stays clear."""
from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

import msgspec
import nacl.public
import pytest

from agencies.trust.keys import KeyStore, KeyStoreError
from aggregates.registry import JUSTICE
from broker.ledger.store import Ledger
from broker.sealing import Opener, SealingError, routing, seal
from broker.signing import CannotOpen, KeyRing, Malformed, NotSealed
from schemas.envelope import (
    MAX_MESSAGE_BYTES,
    SealedEnvelope,
    Signed,
    decode_sealed,
    encode_envelope,
    encode_sealed,
    new_id,
)
from schemas.sla import DeadlineReminder
from tests.test_signing import T0, request_env

NAME, ID, TEXT = "张三", "370405199001011234", "本人无犯罪记录"


def box() -> tuple[bytes, nacl.public.PrivateKey]:
    key = nacl.public.PrivateKey.generate()
    return bytes(key.public_key), key


def test_only_the_readers_open_a_sealed_payload_and_the_bytes_hide_it() -> None:
    (pa, ka), (pb, kb), (_pc, kc) = box(), box(), box()
    env = request_env()
    body = seal(env, [("gongan-k1", pa), ("sifa-k1", pb)])
    for secret in (NAME, ID, TEXT):
        assert secret.encode() not in body and secret.encode("unicode_escape") not in body
    head = routing(body)  # routing in the clear
    assert (head.id, head.sender, head.recipient, head.case, head.number, head.type) == \
        (env.id, "shenpi", "gongan", env.case, "20260001", "assistance.requested")
    assert Opener("gongan", {"gongan-k1": bytes(ka)}).open(body) == env
    assert Opener("sifa", {"sifa-k1": bytes(kb)}).open(body) == env
    with pytest.raises(CannotOpen, match="holds none of them"):
        Opener("shichang", {"shichang-k1": bytes(kc)}).open(body)
    # A reader's key id with another private key behind it does not open it either.
    with pytest.raises(CannotOpen):
        Opener("gongan", {"gongan-k1": bytes(kc)}).open(body)


def test_a_payload_moved_into_another_envelope_does_not_open() -> None:
    pa, ka = box()
    one, other = request_env(), request_env()
    sealed_one = decode_sealed(seal(one, [("gongan-k1", pa)]))
    moved = msgspec.structs.replace(decode_sealed(seal(other, [("gongan-k1", pa)])), sealed=sealed_one.sealed)
    with pytest.raises(CannotOpen, match="does not decrypt"):
        Opener("gongan", {"gongan-k1": bytes(ka)}).open(encode_sealed(moved))
    # Relabelling the type of a sealed payload is caught as well.
    relabelled = msgspec.structs.replace(sealed_one, type="assistance.replied")
    with pytest.raises(CannotOpen):
        Opener("gongan", {"gongan-k1": bytes(ka)}).open(encode_sealed(relabelled))


def test_a_flipped_ciphertext_byte_is_refused() -> None:
    pa, ka = box()
    head = decode_sealed(seal(request_env(), [("gongan-k1", pa)]))
    data = bytearray(head.sealed.data)
    data[5] ^= 1
    broken = msgspec.structs.replace(head, sealed=msgspec.structs.replace(head.sealed, data=bytes(data)))
    with pytest.raises(CannotOpen):
        Opener("gongan", {"gongan-k1": bytes(ka)}).open(encode_sealed(broken))


def test_a_clear_envelope_is_not_sealed_and_junk_is_malformed() -> None:
    with pytest.raises(NotSealed):
        routing(encode_envelope(request_env()))
    with pytest.raises(Malformed):
        routing(b'{"v":2,"id":"x"}')
    with pytest.raises(SealingError, match="nobody"):
        seal(request_env(), [])
    with pytest.raises(SealingError, match="X25519"):
        seal(request_env(), [("gongan-k1", b"short")])


def test_a_payload_too_big_to_send_sealed_is_refused_before_sending() -> None:
    pa, _ = box()
    env = request_env()
    big = msgspec.structs.replace(env.payload, items=[  # type: ignore[type-var]
        msgspec.structs.replace(env.payload.items[0], no=n, text="承" * 500) for n in range(1, 51)])  # type: ignore[union-attr]
    with pytest.raises(SealingError, match=str(MAX_MESSAGE_BYTES - 512)):
        seal(msgspec.structs.replace(env, payload=big), [("gongan-k1", pa)])


@pytest.fixture
def keys(tmp_path: Path) -> KeyStore:
    ks = KeyStore(tmp_path / "keys")
    ks.ensure(["shenpi", "gongan", "shichang", JUSTICE], valid_from=T0 - timedelta(days=1))
    return ks


def test_a_bureau_seals_to_itself_the_recipient_and_justice_and_signs_the_sealed_bytes(keys: KeyStore) -> None:
    ring = keys.ring()
    assert all(len(e.box_key) == 32 for e in ring.entries())
    for path in (keys.dir / "box").iterdir():
        assert path.stat().st_mode & 0o777 == 0o600
    env = request_env()
    signed = keys.bureau_signer("shenpi", ring).sign(env)
    head = ring.check(signed)  # the signature holds over the sealed bytes, with no reader's key
    assert isinstance(head, SealedEnvelope)
    assert {k.kid.split("-")[0] for k in head.sealed.keys} == {"shenpi", "gongan", JUSTICE}
    for reader in ("shenpi", "gongan", JUSTICE):
        assert ring.verify(signed, opener=keys.opener(reader)) == env
    with pytest.raises(CannotOpen):
        ring.verify(signed, opener=keys.opener("shichang"))
    with pytest.raises(CannotOpen, match="no reader's key"):
        ring.verify(signed)
    # A clear envelope, however well signed, is refused by a receiver.
    clear = keys.signer("shenpi").sign(env)
    with pytest.raises(NotSealed):
        ring.verify(clear, opener=keys.opener("gongan"))


def test_an_envelope_to_the_ledger_opens_for_justice(keys: KeyStore) -> None:
    env = msgspec.structs.replace(request_env(), recipient="ledger", payload=DeadlineReminder(
        request_id=new_id(), requester="shenpi", assistor="gongan", kind="reply", due_at=T0))
    signed = keys.bureau_signer("shenpi", keys.ring()).sign(env)
    assert {k.kid.split("-")[0] for k in routing(signed.body).sealed.keys} == {"shenpi", JUSTICE}
    assert keys.opener(JUSTICE).open(signed.body) == env


def test_a_rotation_gives_a_new_box_key_and_keeps_the_old_one_to_open_history(keys: KeyStore) -> None:
    ring = keys.ring()
    before = keys.bureau_signer("shenpi", ring).sign(request_env(recipient="gongan"))
    old = keys.opener("gongan").kids
    keys.rotate("gongan", now=T0 + timedelta(hours=1))
    ring = keys.ring()
    new = [e for e in ring.entries() if e.bureau == "gongan" and e.kid not in old]
    assert len(new) == 1 and len(new[0].box_key) == 32
    assert set(keys.opener("gongan").kids) == {*old, new[0].kid}
    # In the overlap a message is sealed to both generations; the history sealed before opens still.
    during = keys.bureau_signer("shenpi", ring).sign(request_env(when=T0 + timedelta(hours=2)))
    assert {k.kid for k in routing(during.body).sealed.keys} >= {*old, new[0].kid}
    assert keys.opener("gongan").open(before.body).id == routing(before.body).id
    assert keys.opener("gongan").open(during.body).id == routing(during.body).id


def test_keys_listed_before_box_keys_get_one_from_keys_init(tmp_path: Path) -> None:
    ks = KeyStore(tmp_path / "keys")
    ks.ensure(["shenpi", JUSTICE], valid_from=T0)
    held = ks.signed_trust()
    assert held is not None
    # A list from before box keys: the same keys, no box_key (re-signed by the root as it was then).
    import shutil

    from agencies.trust.trust_list import next_version, sign_list

    shutil.rmtree(ks.dir / "box")
    legacy = [msgspec.structs.replace(e, box_key=b"") for e in held.entries]
    ks._write_trust(sign_list(msgspec.structs.replace(next_version(None, legacy, T0), version=held.version),
                              ks.root_signer()))
    assert all(not e.box_key for e in ks.trust_list().entries)
    with pytest.raises(SealingError, match="no box key"):
        ks.bureau_signer("shenpi", ks.ring()).sign(request_env(recipient=JUSTICE))
    ks.ensure(["shenpi", JUSTICE], valid_from=T0)
    assert all(len(e.box_key) == 32 for e in ks.trust_list().entries)
    assert ks.trust_list().version == held.version + 1
    signed = ks.bureau_signer("shenpi", ks.ring()).sign(request_env(recipient=JUSTICE))
    assert ks.opener(JUSTICE).open(signed.body).sender == "shenpi"


def test_a_ring_without_keys_refuses_to_open(keys: KeyStore) -> None:
    signed = keys.bureau_signer("shenpi", keys.ring()).sign(request_env())
    ring = KeyRing(keys.ring().entries())
    with pytest.raises(CannotOpen):
        ring.verify(Signed(body=signed.body, kid=signed.kid, sig=signed.sig))


def test_a_machine_gets_only_its_own_keys(keys: KeyStore, tmp_path: Path) -> None:
    from broker.auth import generate_identities
    from tests.helpers import invoke
    from xiezhu.cli.keys import app as keys_app
    from xiezhu.settings import Settings

    source = Settings(data_dir=keys.dir.parent)
    assert source.keys_dir == keys.dir
    generate_identities(["gongan", "shenpi"], source.nats_keys_dir)
    out = tmp_path / "gongan-machine"
    result = invoke(keys_app, ["export", "gongan", "--out", str(out), "--nats-user", "gongan"],
                                env={"XIEZHU_DATA_DIR": str(source.data_dir), "XIEZHU_NATS_URL": ""})
    assert result.exit_code == 0, result.output
    theirs = KeyStore(out / "keys")
    files = {p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file()}
    assert "keys/root.ed25519" not in files and not any("shenpi" in f or "sifa" in f for f in files)
    assert {"keys/gongan.ed25519", "keys/gongan.store-key", "keys/root.pub", "keys/trust.json",
            "nats-keys/gongan.nk"} <= files
    assert all((out / f).stat().st_mode & 0o077 == 0 for f in files if not f.endswith((".pub", ".json")))
    assert theirs.signed_trust() == keys.signed_trust()  # checked against the exported anchor
    assert theirs.store_key("gongan") == keys.store_key("gongan")
    to_gongan = keys.bureau_signer("shenpi", keys.ring()).sign(request_env())
    to_shichang = keys.bureau_signer("shenpi", keys.ring()).sign(request_env(recipient="shichang"))
    assert theirs.opener("gongan").open(to_gongan.body).recipient == "gongan"
    with pytest.raises(CannotOpen):
        theirs.opener("gongan").open(to_shichang.body)
    with pytest.raises(KeyStoreError):
        theirs.opener("shenpi")
    # 区司法局's checkpoint signer: its signing keys and the trust list, nothing that opens a letter or a store.
    signer = tmp_path / "signer-machine"
    result = invoke(keys_app, ["export", "gongan", "--signing-only", "--out", str(signer)],
                    env={"XIEZHU_DATA_DIR": str(source.data_dir), "XIEZHU_NATS_URL": ""})
    assert result.exit_code == 0, result.output
    files = {p.relative_to(signer).as_posix() for p in signer.rglob("*") if p.is_file()}
    assert files == {"keys/gongan.ed25519", "keys/root.pub", "keys/trust.json"}, files
    signing = KeyStore(signer / "keys")
    assert signing.bureau_signer("gongan", signing.ring()).sign(request_env(sender="gongan")).kid
    with pytest.raises(KeyStoreError):
        signing.opener("gongan")
    refused = invoke(keys_app, ["export", "nosuch", "--out", str(tmp_path / "x")],
                                 env={"XIEZHU_DATA_DIR": str(source.data_dir), "XIEZHU_NATS_URL": ""})
    assert refused.exit_code != 0 and not (tmp_path / "x").exists()


async def test_a_bureau_runs_from_its_exported_keys_alone_and_reads_only_its_own_mail(
        settings: Any, registry: Any, clock: Any, tmp_path: Path) -> None:
    """shenpi and the ledger on one machine, gongan on another that holds only what `keys export` gave it."""
    import sqlite_utils

    from tests.conftest import RESIDENT, eventually, make_node
    from tests.test_exchange import request
    from xiezhu.node import Node
    from xiezhu.settings import Settings

    main = make_node(settings, registry, clock, agents=("shenpi",))
    machine = Settings(data_dir=tmp_path / "gongan-machine", nats_url=settings.nats_url)
    main.keys.export(["gongan"], machine.keys_dir)
    machine.nats_keys_dir.mkdir(mode=0o700)
    (machine.nats_keys_dir / "gongan.nk").write_bytes((settings.nats_keys_dir / "gongan.nk").read_bytes())
    (machine.nats_keys_dir / "gongan.nk").chmod(0o600)
    machine.bureau_dir("gongan").mkdir(parents=True)
    sqlite_utils.Database(machine.bureau_data_path("gongan"))["residents"].insert(RESIDENT, pk="id_number")
    assert sorted(p.name for p in (machine.keys_dir / "box").iterdir()) == \
        sorted(f"{kid}.x25519" for kid in main.keys.opener("gongan").kids)
    gongan = Node(machine, registry, clock, agents=["gongan"], simulated=True)
    await main.start()
    await gongan.start()
    try:
        case = request(main)
        await eventually(lambda: main.store("shenpi").assistance.case(case).state.status == "replied", timeout=20)
        sealed_to = {k.kid for k in routing(main.store("shenpi").assistance.case(case).envelopes[0].body).sealed.keys}
        assert set(gongan.keys.opener("gongan").kids) <= sealed_to
        with pytest.raises(KeyStoreError):
            gongan.keys.opener("shenpi")  # shenpi's own copy of the request does not open there
    finally:
        await gongan.stop()
        await main.stop()


def test_a_disclosure_record_sent_to_a_bureau_is_refused_as_a_rule_break(tmp_path: Path) -> None:
    from datetime import UTC, datetime

    from aggregates.clock import SimulatedClock
    from aggregates.errors import RuleError
    from aggregates.store import BureauStore
    from schemas.access import DisclosureRecorded

    clock = SimulatedClock(datetime(2026, 9, 21, 1, tzinfo=UTC))
    store = BureauStore("gongan", tmp_path / "gongan.db", lambda env: None, clock)  # type: ignore[arg-type,return-value]
    env = msgspec.structs.replace(request_env(), payload=DisclosureRecorded(
        at=clock.now(), operator="某人", host="h", command="inbox", reason="看一看吧", entitled_by="shenpi store key"))
    with pytest.raises(RuleError, match="ledger only"):
        store.accept(Signed(body=b"{}", kid="k", sig=b"s"), env, stream_seq=1, arrived_at=clock.now())
    assert not store.seen(env.id)


class CountingOpener(Opener):
    """An opener that counts what it opens."""

    opened = 0

    def open_routed(self, sealed: SealedEnvelope) -> Any:
        self.opened += 1
        return super().open_routed(sealed)


def test_the_ledger_gives_the_views_what_it_appended_without_opening_it_again(tmp_path: Path) -> None:
    pub, key = box()
    env = request_env()
    body = seal(env, [("sifa-k1", pub)])
    opener = CountingOpener("sifa", {"sifa-k1": bytes(key)})
    ledger = Ledger(tmp_path / "ledger.db", opener=opener)
    ledger.append([(Signed(body=body, kid="shenpi-k1", sig=b"s" * 64), env, 1, T0)])
    (entry,) = ledger.entries()
    assert ledger.envelope(entry) == env and opener.opened == 0  # the service opened it before appending
    # Another process (a rebuild) opens what it reads.
    cold = Ledger(tmp_path / "ledger.db", opener=opener)
    assert cold.envelope(entry) == env and opener.opened == 1
    cold.close()
    ledger.close()
