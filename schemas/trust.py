"""The trust list: which public key belongs to which bureau, when it is valid, who vouches for it.

The root authority (区大数据局) signs each version of the list.  Its own public key, the
:class:`TrustAnchor`, is pinned on every machine; it is never in the list.  A version is
signed over its exact msgspec-JSON bytes (never a re-encoding), and travels as those
bytes with the root's key id and signature: in NATS headers on the wire, and in
:class:`SignedTrustList` on disk.
"""
from __future__ import annotations

from datetime import datetime

import msgspec


class TrustEntry(msgspec.Struct, frozen=True, kw_only=True):
    """One bureau signing key: id, owner, Ed25519 public key, validity and revocation."""

    kid: str
    bureau: str
    public_key: bytes
    valid_from: datetime
    #: The bureau's X25519 public key of the same generation: what is sent to it is sealed to this.
    box_key: bytes = b""
    #: The key's validity ends here (exclusive); a rotation sets it to the end of the overlap.
    valid_to: datetime | None = None
    revoked_at: datetime | None = None
    revoked_reason: str = ""


class TrustList(msgspec.Struct, frozen=True, kw_only=True):
    """One version of the list of bureau keys, as the root authority signs it."""

    version: int = 1
    issued_at: datetime
    entries: list[TrustEntry] = []
    #: Hex SHA-256 of the previous version's signed bytes ("" for the first signed version).
    previous: str = ""
    #: A root handover (decision 25): the root key that signs every version after this one.
    #: Only the current root can name it, by signing this version; ``None`` in every other.
    next_root: TrustAnchor | None = None


class SignedTrustList(TrustList, frozen=True, kw_only=True):
    """``keys/trust.json``: the list in readable form, and the exact bytes the root signed.

    The readable fields let a tool that only needs the entries decode the file as a plain
    :class:`TrustList`; whoever trusts the file checks ``root_sig`` over ``body`` and that
    the readable fields say the same as ``body``.
    """

    #: The exact msgspec-JSON bytes of the :class:`TrustList` that the root signed.
    body: bytes = b""
    root_kid: str = ""
    root_sig: bytes = b""


class TrustAnchor(msgspec.Struct, frozen=True, kw_only=True):
    """``keys/root.pub``: the root authority's public key, pinned by every machine.

    A root handover replaces it with the successor the old root named (decision 25).
    """

    authority: str
    kid: str
    public_key: bytes
