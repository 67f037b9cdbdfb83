"""The signed envelope: signatures over the exact bytes, checked against the trust list."""
from __future__ import annotations

from datetime import UTC, datetime, timedelta

import nacl.signing
import pytest

from broker.signing import BadSignature, KeyNotValid, KeyRing, Malformed, Signer, UnknownKey, Unsigned, WrongSender
from schemas.assistance import Applicant, AssistanceRequested, CommitmentItem, Matter
from schemas.envelope import Envelope, Signed, decode_envelope, encode_envelope, new_id
from schemas.trust import TrustEntry

T0 = datetime(2026, 3, 2, 1, tzinfo=UTC)


def request_env(sender: str = "shenpi", recipient: str = "gongan", when: datetime = T0) -> Envelope:
    return Envelope(
        id=new_id(), sender=sender, recipient=recipient, case=new_id(), number="20260001", time=when,
        payload=AssistanceRequested(
            requester=sender, assistor=recipient,
            applicant=Applicant(kind="person", name="张三", id_number="370405199001011234"),
            matter=Matter(code="X1", name="食品经营许可"), applied_on=when.date(),
            items=[CommitmentItem(no=1, text="本人无犯罪记录", check="police.no-criminal-record")],
            channel="platform"),
    )


def make_signer(code: str) -> Signer:
    return Signer(code, f"{code}-k1", nacl.signing.SigningKey.generate())


def entry(s: Signer, **kw: object) -> TrustEntry:
    fields: dict[str, object] = {"valid_from": T0 - timedelta(days=1), **kw}
    return TrustEntry(kid=s.kid, bureau=s.bureau, public_key=s.public_key, **fields)  # type: ignore[arg-type]


@pytest.fixture
def shenpi() -> Signer:
    return make_signer("shenpi")


def test_signature_covers_the_exact_bytes_and_round_trips(shenpi: Signer) -> None:
    env = request_env()
    signed = shenpi.sign(env)
    assert signed.body == encode_envelope(env)
    assert KeyRing([entry(shenpi)]).verify(signed) == env
    assert decode_envelope(signed.body) == env


def test_one_flipped_byte_breaks_the_signature(shenpi: Signer) -> None:
    signed = shenpi.sign(request_env())
    body = bytearray(signed.body)
    i = body.index(b"20260001")
    body[i + 7] = ord("2")  # 20260001 -> 20260002: still a valid envelope, different bytes
    with pytest.raises(BadSignature):
        KeyRing([entry(shenpi)]).verify(Signed(body=bytes(body), kid=signed.kid, sig=signed.sig))


def test_unknown_key_is_rejected(shenpi: Signer) -> None:
    with pytest.raises(UnknownKey):
        KeyRing([]).verify(shenpi.sign(request_env()))


def test_missing_signature_is_rejected(shenpi: Signer) -> None:
    signed = shenpi.sign(request_env())
    with pytest.raises(Unsigned):
        KeyRing([entry(shenpi)]).verify(Signed(body=signed.body, kid=signed.kid, sig=b""))


def test_a_bureau_cannot_speak_as_another_with_its_own_key(shenpi: Signer) -> None:
    gongan = make_signer("gongan")
    env = request_env(sender="shenpi")
    body = encode_envelope(env)
    impersonation = Signed(body=body, kid=gongan.kid, sig=gongan.sign_bytes(body))
    with pytest.raises(WrongSender):
        KeyRing([entry(shenpi), entry(gongan)]).verify(impersonation)


def test_signer_refuses_to_sign_for_another_bureau(shenpi: Signer) -> None:
    with pytest.raises(WrongSender):
        shenpi.sign(request_env(sender="gongan", recipient="shenpi"))


def test_revoked_key_fails_after_revocation_and_passes_before(shenpi: Signer) -> None:
    revoked = entry(shenpi, revoked_at=T0 + timedelta(hours=1), revoked_reason="key leaked")
    ring = KeyRing([revoked])
    assert ring.verify(shenpi.sign(request_env(when=T0)))
    with pytest.raises(KeyNotValid, match="revoked"):
        ring.verify(shenpi.sign(request_env(when=T0 + timedelta(hours=2))))


def test_expired_and_not_yet_valid_keys_are_rejected(shenpi: Signer) -> None:
    ring = KeyRing([entry(shenpi, valid_to=T0 + timedelta(days=1))])
    with pytest.raises(KeyNotValid):
        ring.verify(shenpi.sign(request_env(when=T0 + timedelta(days=2))))
    with pytest.raises(KeyNotValid):
        ring.verify(shenpi.sign(request_env(when=T0 - timedelta(days=5))))


@pytest.mark.parametrize("body", [b"", b"not json", b'{"v":1}', b'{"v":1,"id":"x","payload":{"type":"nope"}}'])
def test_a_signed_but_malformed_body_is_rejected(shenpi: Signer, body: bytes) -> None:
    with pytest.raises(Malformed):
        KeyRing([entry(shenpi)]).verify(Signed(body=body, kid=shenpi.kid, sig=shenpi.sign_bytes(body)))


def test_naive_timestamps_are_malformed(shenpi: Signer) -> None:
    body = encode_envelope(request_env()).replace(b'Z"', b'"', 1)
    with pytest.raises(Malformed, match="timezone"):
        KeyRing([entry(shenpi)]).verify(Signed(body=body, kid=shenpi.kid, sig=shenpi.sign_bytes(body)))
