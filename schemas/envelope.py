"""The signed envelope: what every bureau puts on the wire, and how it is framed.

A message on the wire is the exact envelope bytes (``body``) plus a key id and an
Ed25519 signature over those bytes, carried in NATS headers.  The body is never
re-encoded after signing; every store keeps the same bytes it received.
"""
from __future__ import annotations

import hashlib
import uuid
from datetime import datetime
from typing import Annotated

import msgspec

from schemas.events import Payload

#: Recipient of records kept only by the 司法局 ledger (commitment cases, 区司法局's dispute steps).
LEDGER = "ledger"
#: A bureau code as used in subjects: lower-case ASCII, digits and hyphens.
BureauCode = Annotated[str, msgspec.Meta(pattern=r"^[a-z][a-z0-9-]{1,31}$")]
#: 行政协助函 number (20260001), commitment-case number (C20260001), dispute number (D20260001), or the
#: number of a published version of a list (L + year + version, L20260001: 区政府's publication, 一(三)).
CaseNumber = Annotated[str, msgspec.Meta(pattern=r"^[CDL]?\d{8}$")]
#: A canonical UUID string.
EventId = Annotated[str, msgspec.Meta(pattern=r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")]

#: A clear envelope (what a bureau signs and folds in memory); never accepted on the wire.
ENVELOPE_VERSION = 1
#: A sealed envelope: routing in the clear, the payload encrypted to its readers (decision 23).
SEALED_VERSION = 2
#: Largest message a receiver accepts (body and headers); bigger ones are rejected unread.
MAX_MESSAGE_BYTES = 64 * 1024

HDR_KEY = "Xz-Kid"
HDR_SIG = "Xz-Sig"
HDR_MSG_ID = "Nats-Msg-Id"
HDR_REJECT_CODE = "Xz-Reject-Code"
HDR_REJECT_REASON = "Xz-Reject-Reason"
HDR_REJECT_BY = "Xz-Rejected-By"
HDR_ORIGINAL_SUBJECT = "Xz-Original-Subject"


class Envelope(msgspec.Struct, frozen=True, kw_only=True):
    """One event as signed by the bureau that emits it."""

    v: int = ENVELOPE_VERSION
    id: EventId
    sender: BureauCode
    recipient: BureauCode
    case: EventId
    number: CaseNumber
    time: datetime
    payload: Payload

    @property
    def type(self) -> str:
        """The payload's tag, e.g. ``assistance.requested``; also the last subject token."""
        return type(self.payload).__struct_config__.tag  # type: ignore[return-value]


#: A payload tag as it appears in the subject, e.g. ``assistance.requested``.
EventType = Annotated[str, msgspec.Meta(pattern=r"^[a-z]+\.[a-z-]+$", max_length=64)]


class SealedKey(msgspec.Struct, frozen=True, kw_only=True):
    """The payload key, sealed to one reader's X25519 key (the trust entry ``kid``)."""

    kid: Annotated[str, msgspec.Meta(max_length=80)]
    box: Annotated[bytes, msgspec.Meta(max_length=128)]


class Sealed(msgspec.Struct, frozen=True, kw_only=True):
    """The payload, encrypted with XChaCha20-Poly1305 under a fresh key sealed to each reader."""

    nonce: Annotated[bytes, msgspec.Meta(min_length=24, max_length=24)]
    data: bytes
    keys: Annotated[list[SealedKey], msgspec.Meta(min_length=1, max_length=16)]


class SealedEnvelope(msgspec.Struct, frozen=True, kw_only=True):
    """An envelope as it travels and as every store keeps it: routing metadata and a sealed payload.

    This is what gets signed.  NATS operators, the dead-letter stream and any bureau that is
    not a reader see only these fields; the payload opens with a reader's X25519 key.
    """

    v: int = SEALED_VERSION
    id: EventId
    sender: BureauCode
    recipient: BureauCode
    case: EventId
    number: CaseNumber
    time: datetime
    type: EventType
    sealed: Sealed


class Signed(msgspec.Struct, frozen=True, kw_only=True):
    """The exact signed bytes of one envelope, with the key id and signature over them."""

    body: bytes
    kid: str
    sig: bytes

    @property
    def digest(self) -> str:
        """SHA-256 of the signed body, hex; a reply carries its request's digest."""
        return body_digest(self.body)


def body_digest(body: bytes) -> str:
    """Hex SHA-256 of envelope bytes."""
    return hashlib.sha256(body).hexdigest()


def new_id() -> str:
    """A fresh event or case id."""
    return str(uuid.uuid4())


_encoder = msgspec.json.Encoder()
_decoder = msgspec.json.Decoder(Envelope)
_sealed_decoder = msgspec.json.Decoder(SealedEnvelope)


class _Version(msgspec.Struct):
    v: int = ENVELOPE_VERSION


class _Id(msgspec.Struct):
    id: str


_version_decoder = msgspec.json.Decoder(_Version)
_id_decoder = msgspec.json.Decoder(_Id)


def envelope_id(body: bytes) -> str:
    """The event id of envelope bytes, sealed or clear (for bytes already checked on intake)."""
    return _id_decoder.decode(body).id


def encode_envelope(env: Envelope) -> bytes:
    """The bytes that get signed and sent."""
    return _encoder.encode(env)


def decode_envelope(body: bytes) -> Envelope:
    """Decode and validate clear envelope bytes; raises msgspec.ValidationError/DecodeError.

    For the bytes on the wire (sealed) use an opener (:mod:`broker.sealing`); a store keeps
    the clear bytes of each envelope beside the sealed ones, encrypted at rest.
    """
    return _decoder.decode(body)


def is_sealed(body: bytes) -> bool:
    """Whether ``body`` is a sealed envelope (raises msgspec errors if it is no JSON object)."""
    return _version_decoder.decode(body).v == SEALED_VERSION


def decode_sealed(body: bytes) -> SealedEnvelope:
    """Decode and validate sealed envelope bytes (routing only: the payload stays sealed)."""
    return _sealed_decoder.decode(body)


def encode_sealed(env: SealedEnvelope) -> bytes:
    """The bytes of a sealed envelope, which get signed and sent."""
    return _encoder.encode(env)


def subject_for(env: Envelope | SealedEnvelope) -> str:
    """``xz.<sender>.<recipient>.<type>``: routing that NATS permissions can enforce."""
    return f"xz.{env.sender}.{env.recipient}.{env.type}"
