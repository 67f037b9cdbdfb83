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
#: A canonical UUID string.
EventId = Annotated[str, msgspec.Meta(pattern=r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")]

ENVELOPE_VERSION = 1
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
    #: 行政协助函 number (20260001), commitment-case number (C20260001) or dispute number (D20260001).
    number: Annotated[str, msgspec.Meta(pattern=r"^[CD]?\d{8}$")]
    time: datetime
    payload: Payload

    @property
    def type(self) -> str:
        """The payload's tag, e.g. ``assistance.requested``; also the last subject token."""
        return type(self.payload).__struct_config__.tag  # type: ignore[return-value]


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


def encode_envelope(env: Envelope) -> bytes:
    """The bytes that get signed and sent."""
    return _encoder.encode(env)


def decode_envelope(body: bytes) -> Envelope:
    """Decode and validate envelope bytes; raises msgspec.ValidationError/DecodeError."""
    return _decoder.decode(body)


def subject_for(env: Envelope) -> str:
    """``xz.<sender>.<recipient>.<type>``: routing that NATS permissions can enforce."""
    return f"xz.{env.sender}.{env.recipient}.{env.type}"
