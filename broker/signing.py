"""Ed25519 signing over the exact envelope bytes, and verification against a key ring.

Verification answers one question — is this body signed, by a key we know, that belonged
to the claimed sender at the claimed time? — and raises a typed rejection otherwise.
"""
from __future__ import annotations

import base64
import importlib
import threading
from collections.abc import Iterable
from datetime import datetime
from typing import Any, Protocol

import nacl.exceptions
import nacl.signing

from aggregates.registry import zh_name
from schemas.envelope import (
    Envelope,
    SealedEnvelope,
    Signed,
    decode_envelope,
    decode_sealed,
    encode_envelope,
    is_sealed,
)
from schemas.errors import XiezhuError
from schemas.trust import TrustEntry

#: libsodium through PyNaCl's own bindings (as :mod:`broker.sealing` uses it), for :func:`_verifies`.
_sodium: Any = importlib.import_module("nacl._sodium")


class Rejected(XiezhuError):
    """A message that must not be applied; ``code`` is the dead-letter reason."""

    code = "rejected"


class Unsigned(Rejected):
    """The message carries no key id or signature."""

    code = "unsigned"


class UnknownKey(Rejected):
    """The key id is not in the trust list."""

    code = "unknown-key"


class BadSignature(Rejected):
    """The signature does not verify over the bytes received."""

    code = "bad-signature"


class KeyNotValid(Rejected):
    """The key was revoked or outside its validity period at the message's time."""

    code = "key-not-valid"


class WrongSender(Rejected):
    """The envelope's sender is not the bureau that owns the signing key."""

    code = "wrong-sender"


class WrongRecipient(Rejected):
    """The message is addressed to another bureau."""

    code = "wrong-recipient"


class Malformed(Rejected):
    """The body is not a valid envelope, or disagrees with the subject it came on."""

    code = "malformed"


class Oversized(Rejected):
    """The message is larger than the receiver accepts."""

    code = "oversized"


class NotSealed(Rejected):
    """A clear envelope on the wire: personal data must never travel readable (decision 23)."""

    code = "not-sealed"


class CannotOpen(Rejected):
    """The payload is not sealed to any key this reader holds, or does not decrypt."""

    code = "cannot-open"


class Opens(Protocol):
    """What opens a sealed payload: one reader's X25519 keys (:class:`broker.sealing.Opener`)."""

    reader: str

    def open_routed(self, sealed: SealedEnvelope) -> Envelope: ...


class Signer:
    """Holds one bureau's signing key and signs envelopes with it."""

    def __init__(self, bureau: str, kid: str, key: nacl.signing.SigningKey) -> None:
        self.bureau = bureau
        self.kid = kid
        self._key = key

    def sign_bytes(self, body: bytes) -> bytes:
        """Detached Ed25519 signature of ``body``."""
        return self._key.sign(body).signature

    def sign(self, env: Envelope) -> Signed:
        """Encode once and sign those exact bytes."""
        if env.sender != self.bureau:
            raise WrongSender(f"{self.bureau} cannot sign an envelope sent by {env.sender}",
                              zh=f"{zh_name(self.bureau)}不能签署由{zh_name(env.sender)}发出的信封")
        body = encode_envelope(env)
        return Signed(body=body, kid=self.kid, sig=self.sign_bytes(body))

    @property
    def public_key(self) -> bytes:
        """The raw 32-byte verify key."""
        return bytes(self._key.verify_key)


def _verifies(public: bytes, body: bytes, sig: bytes) -> bool:
    """Whether ``sig`` is ``public``'s Ed25519 signature of ``body``: what ``VerifyKey.verify`` checks (libsodium's
    ``crypto_sign_open`` of ``sig ‖ body``), without its output buffers and the copy of the body into them
    (an audit verifies a million signatures; issue 14)."""
    blobs = (bytes, bytearray, memoryview)
    if not isinstance(sig, blobs) or not isinstance(body, blobs) or len(sig) != 64 or len(public) != 32:
        return False
    signed = bytes(sig) + bytes(body)
    return _sodium.lib.crypto_sign_open(_sodium.ffi.NULL, _sodium.ffi.NULL, signed, len(signed), public) == 0  # type: ignore[no-any-return]


class KeyRing:
    """Public keys by id, with their owners and validity, for verification.

    One ring is shared by every holder in a process (intake, the ledger); a new trust
    list version is applied with :meth:`replace`, so all of them see it at once.
    """

    def __init__(self, entries: Iterable[TrustEntry] = ()) -> None:
        self._entries: dict[str, TrustEntry] = {}
        #: The raw 32-byte public keys (each checked by ``nacl.signing.VerifyKey`` when added).
        self._keys: dict[str, bytes] = {}
        self._lock = threading.Lock()
        for entry in entries:
            self.add(entry)

    def add(self, entry: TrustEntry) -> None:
        """Add or replace one entry (a rotation adds, a revocation replaces)."""
        key = bytes(nacl.signing.VerifyKey(entry.public_key))
        with self._lock:
            self._entries[entry.kid] = entry
            self._keys[entry.kid] = key

    def replace(self, entries: Iterable[TrustEntry]) -> None:
        """Hold exactly ``entries`` from now on (a new trust list version), atomically for every reader."""
        new_entries = {e.kid: e for e in entries}
        new_keys = {kid: bytes(nacl.signing.VerifyKey(e.public_key)) for kid, e in new_entries.items()}
        with self._lock:
            self._entries, self._keys = new_entries, new_keys

    def entries(self) -> list[TrustEntry]:
        """Every entry, in the order they were added."""
        with self._lock:
            return list(self._entries.values())

    def entry(self, kid: str) -> TrustEntry | None:
        """The trust entry of ``kid``, if known."""
        return self._entries.get(kid)

    def __len__(self) -> int:
        return len(self._entries)

    def readers(self, bureau: str, when: datetime) -> list[tuple[str, bytes]]:
        """The X25519 keys to seal to for ``bureau`` at ``when``: every valid key of it with a box key.

        During a rotation's overlap both generations are listed, so the payload opens with
        whichever the bureau holds.  If none is valid at ``when`` (a clock ahead of the list),
        the newest unrevoked one is used; the receiver judges the signature as usual.
        """
        with self._lock:
            own = [e for e in self._entries.values() if e.bureau == bureau and e.box_key]
        valid = [(e.kid, e.box_key) for e in own if _invalid_because(e, when) is None]
        if valid:
            return valid
        live = sorted((e for e in own if e.revoked_at is None), key=lambda e: e.valid_from, reverse=True)
        return [(e.kid, e.box_key) for e in live[:1]]

    def valid_at(self, kid: str, when: datetime) -> bool:
        """Whether ``kid`` is known, within its validity period and not revoked at ``when``."""
        entry = self.entry(kid)
        return entry is not None and _invalid_because(entry, when) is None

    def check_received(self, kid: str, received_at: datetime) -> None:
        """Reject a message whose key was revoked or had expired when it was received.

        :meth:`verify` judges the key at the time the envelope claims.  A stolen key can
        claim any time, so a receiver also judges it at the (broker-stamped) time it
        received the message.  Only the end of validity counts here: a message may come
        in a little before its envelope time when the sender's clock runs ahead.
        """
        entry = self.entry(kid)
        if entry is None:
            raise UnknownKey(f"key {kid!r} is not in the trust list", zh=f"信任列表中没有密钥 {kid!r}", kid=kid)
        if entry.revoked_at is not None and received_at >= entry.revoked_at:
            raise KeyNotValid(
                f"key {kid} was revoked at {entry.revoked_at.isoformat()} ({entry.revoked_reason}), "
                f"before this message was received at {received_at.isoformat()}",
                zh=f"密钥 {kid} 已于 {entry.revoked_at.isoformat()} 吊销（{entry.revoked_reason}），"
                   f"早于本消息的接收时间 {received_at.isoformat()}", kid=kid)
        if entry.valid_to is not None and received_at >= entry.valid_to:
            raise KeyNotValid(f"key {kid} expired at {entry.valid_to.isoformat()}, before this message "
                              f"was received at {received_at.isoformat()}",
                              zh=f"密钥 {kid} 已于 {entry.valid_to.isoformat()} 过期，"
                                 f"早于本消息的接收时间 {received_at.isoformat()}", kid=kid)

    def verify(self, signed: Signed, *, at: datetime | None = None, opener: Opens | None = None) -> Envelope:
        """Check the signature, the key's validity at the envelope's time and the sender, then open it.

        With an ``opener`` (every receiver) only a sealed envelope is accepted and its payload
        is opened with the reader's keys; without one, only a clear envelope can be returned
        (tests and tools that build them).  Raises a :class:`Rejected` subclass otherwise.
        """
        return open_checked(self.check(signed, at=at), opener)

    def check(self, signed: Signed, *, at: datetime | None = None) -> Envelope | SealedEnvelope:
        """Check the signature, the key's validity at the envelope's time and the sender, opening nothing.

        Anyone with the trust list can do this for a sealed envelope: it needs no reader's key.
        """
        if not signed.kid or not signed.sig:
            raise Unsigned("message has no key id or no signature", zh="消息没有密钥编号或签名")
        with self._lock:  # one consistent view, should a new trust list replace the ring meanwhile
            entry, key = self._entries.get(signed.kid), self._keys.get(signed.kid)
        if entry is None or key is None:
            raise UnknownKey(f"key {signed.kid!r} is not in the trust list",
                             zh=f"信任列表中没有密钥 {signed.kid!r}", kid=signed.kid)
        if not _verifies(key, signed.body, signed.sig):
            raise BadSignature(f"signature by key {signed.kid} does not verify",
                               zh=f"密钥 {signed.kid} 的签名核验未通过", kid=signed.kid)
        env = decode_checked(signed.body)
        when = at or env.time
        if when < entry.valid_from or (entry.valid_to is not None and when >= entry.valid_to):
            raise KeyNotValid(f"key {signed.kid} is not valid at {when.isoformat()}",
                              zh=f"密钥 {signed.kid} 在 {when.isoformat()} 无效", kid=signed.kid)
        if entry.revoked_at is not None and when >= entry.revoked_at:
            raise KeyNotValid(
                f"key {signed.kid} was revoked at {entry.revoked_at.isoformat()}: {entry.revoked_reason}",
                zh=f"密钥 {signed.kid} 已于 {entry.revoked_at.isoformat()} 吊销：{entry.revoked_reason}",
                kid=signed.kid,
            )
        if env.sender != entry.bureau:
            raise WrongSender(
                f"envelope claims sender {env.sender} but key {signed.kid} belongs to {entry.bureau}",
                zh=f"信封声称发件方为{zh_name(env.sender)}，但密钥 {signed.kid} 属于{zh_name(entry.bureau)}",
                kid=signed.kid,
            )
        return env


def open_checked(head: Envelope | SealedEnvelope, opener: Opens | None) -> Envelope:
    """The clear envelope of a checked one: a sealed one opened by ``opener``, a clear one only without.

    A receiver passes its opener and so refuses a clear envelope (:class:`NotSealed`); tools and
    tests that build clear envelopes pass none, and cannot read a sealed one (:class:`CannotOpen`).
    """
    if isinstance(head, Envelope):
        if opener is not None:
            raise NotSealed("the envelope is not sealed: payloads travel encrypted to their readers",
                            zh="信封未加密：载荷须加密发送给其读者")
        return head
    if opener is None:
        raise CannotOpen(f"{head.type} {head.id} is sealed and no reader's key was given to open it",
                         zh=f"{head.type} {head.id} 已加密，但未给出可打开它的读者密钥")
    return opener.open_routed(head)


def _invalid_because(entry: TrustEntry, when: datetime) -> str | None:
    """Why ``entry`` is not valid at ``when`` (``None`` if it is)."""
    if when < entry.valid_from:
        return f"not valid before {entry.valid_from.isoformat()}"
    if entry.valid_to is not None and when >= entry.valid_to:
        return f"expired at {entry.valid_to.isoformat()}"
    if entry.revoked_at is not None and when >= entry.revoked_at:
        return f"revoked at {entry.revoked_at.isoformat()}: {entry.revoked_reason}"
    return None


def decode_checked(body: bytes) -> Envelope | SealedEnvelope:
    """Decode envelope bytes (sealed or clear), turning any decoding problem into :class:`Malformed`.

    Any: bytes that cannot be decoded never get better, so nothing raised here may pass for a
    transient failure to be retried (a body nested thousands deep raises RecursionError).
    """
    try:
        env: Envelope | SealedEnvelope = decode_sealed(body) if is_sealed(body) else decode_envelope(body)
    except Exception as e:  # noqa: BLE001 - every decoding failure is the sender's: malformed
        raise Malformed(f"not a valid envelope: {type(e).__name__}: {e}",
                        zh=f"不是有效的信封：{type(e).__name__}：{e}") from e
    if env.time.tzinfo is None:
        raise Malformed("envelope time has no timezone", zh="信封时间没有时区")
    return env


def b64(data: bytes) -> str:
    """Standard base64 text, for headers and JSON."""
    return base64.b64encode(data).decode("ascii")


def unb64(text: str) -> bytes:
    """Inverse of :func:`b64`; raises :class:`Malformed` on bad input."""
    try:
        return base64.b64decode(text, validate=True)
    except (ValueError, TypeError) as e:
        raise Malformed("signature header is not base64", zh="签名头不是 base64") from e
