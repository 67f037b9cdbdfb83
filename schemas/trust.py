"""Trust-list entries: which public key belongs to which bureau, and when it is valid."""
from __future__ import annotations

from datetime import datetime

import msgspec


class TrustEntry(msgspec.Struct, frozen=True, kw_only=True):
    """One bureau signing key: id, owner, Ed25519 public key, validity and revocation."""

    kid: str
    bureau: str
    public_key: bytes
    valid_from: datetime
    valid_to: datetime | None = None
    revoked_at: datetime | None = None
    revoked_reason: str = ""


class TrustList(msgspec.Struct, frozen=True, kw_only=True):
    """All known bureau keys; the root authority's signature over it comes with key rotation."""

    version: int = 1
    issued_at: datetime
    entries: list[TrustEntry] = []
