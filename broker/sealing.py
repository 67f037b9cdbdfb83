"""End-to-end sealing of payloads: only the parties of a case and the 司法局 ledger can read it.

A sealed envelope (:class:`~schemas.envelope.SealedEnvelope`) keeps the routing metadata in
the clear (id, sender, recipient, case, number, time, type) and carries the payload
encrypted with XChaCha20-Poly1305 under a fresh 32-byte key.  That key is sealed
(libsodium ``crypto_box_seal``: X25519 + XSalsa20-Poly1305 with an ephemeral sender key)
to the X25519 key of each reader: the sender itself (so it can read its own outbox), the
recipient bureau, and 区司法局, whose ledger must be able to replay every case.  The
associated data binds the ciphertext to the routing fields, so a payload cannot be moved
into another envelope.  The sender then signs the sealed bytes: the signature covers
exactly what was sent, and anyone holding the trust list can check it without reading
the payload.
"""
from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import msgspec
import nacl.bindings
import nacl.exceptions
import nacl.public

from broker.signing import CannotOpen, Malformed, NotSealed, decode_checked
from schemas.envelope import (
    ENVELOPE_VERSION,
    MAX_MESSAGE_BYTES,
    SEALED_VERSION,
    Envelope,
    Sealed,
    SealedEnvelope,
    SealedKey,
    encode_sealed,
)
from schemas.errors import XiezhuError
from schemas.events import Payload

_AAD_CONTEXT = b"xiezhu-sealed-payload/2\n"
_payload_encoder = msgspec.json.Encoder()
_payload_decoder = msgspec.json.Decoder(Payload)


class SealingError(XiezhuError):
    """The sender cannot seal: a reader has no encryption key in the trust list, or it is too big."""

    code = "sealing"


def _aad(env: Envelope | SealedEnvelope) -> bytes:
    parts = (env.id, env.sender, env.recipient, env.case, env.number, env.type)
    return _AAD_CONTEXT + "\n".join(parts).encode()


def seal(env: Envelope, readers: Iterable[tuple[str, bytes]]) -> bytes:
    """The sealed envelope bytes of ``env``, readable by each ``(kid, X25519 public key)`` of ``readers``."""
    readers = list(dict(readers).items())  # one copy of the key per reader key id
    if not readers:
        raise SealingError(f"{env.type} {env.number}: nobody to seal it to")
    key = os.urandom(nacl.bindings.crypto_aead_xchacha20poly1305_ietf_KEYBYTES)
    nonce = os.urandom(nacl.bindings.crypto_aead_xchacha20poly1305_ietf_NPUBBYTES)
    data = nacl.bindings.crypto_aead_xchacha20poly1305_ietf_encrypt(
        _payload_encoder.encode(env.payload), _aad(env), nonce, key)
    keys = []
    for kid, public in readers:
        try:
            box = nacl.public.SealedBox(nacl.public.PublicKey(public)).encrypt(key)
        except (ValueError, TypeError, nacl.exceptions.CryptoError) as e:
            raise SealingError(f"reader key {kid} is not a 32-byte X25519 public key") from e
        keys.append(SealedKey(kid=kid, box=bytes(box)))
    body = encode_sealed(SealedEnvelope(
        v=SEALED_VERSION, id=env.id, sender=env.sender, recipient=env.recipient, case=env.case,
        number=env.number, time=env.time, type=env.type, sealed=Sealed(nonce=nonce, data=data, keys=keys)))
    if len(body) > MAX_MESSAGE_BYTES - 512:  # leave room for the headers
        raise SealingError(f"{env.type} {env.number} is {len(body)} bytes sealed; receivers accept at most "
                           f"{MAX_MESSAGE_BYTES - 512}: shorten the texts or split the items")
    return body


def routing(body: bytes) -> SealedEnvelope:
    """The routing metadata of sealed bytes; :class:`NotSealed` or :class:`Malformed` otherwise."""
    head = decode_checked(body)
    if not isinstance(head, SealedEnvelope):
        raise NotSealed("the envelope is not sealed: payloads travel encrypted to their readers")
    return head


class Opener:
    """One reader's X25519 private keys (every generation, by key id), which open what was sealed to it."""

    def __init__(self, reader: str, keys: Mapping[str, bytes],
                 reload: Callable[[], Mapping[str, bytes]] | None = None) -> None:
        """``reload`` reads the keys again (from disk) when a payload is sealed to none held: after a
        rotation, the new key opens without a restart."""
        self.reader = reader
        self._reload = reload
        self._keys = self._boxes(keys)

    @staticmethod
    def _boxes(keys: Mapping[str, bytes]) -> dict[str, nacl.public.SealedBox[nacl.public.PrivateKey]]:
        return {kid: nacl.public.SealedBox(nacl.public.PrivateKey(k)) for kid, k in keys.items()}

    @property
    def kids(self) -> list[str]:
        """The key ids this opener holds."""
        return list(self._keys)

    def can_open(self, sealed: SealedEnvelope) -> bool:
        """Whether one of the payload's keys is sealed to a key held here."""
        return any(k.kid in self._keys for k in sealed.sealed.keys)

    def open(self, body: bytes) -> Envelope:
        """The clear envelope of sealed bytes; raises :class:`Rejected` subclasses."""
        return self.open_routed(routing(body))

    def open_routed(self, sealed: SealedEnvelope) -> Envelope:
        """The clear envelope of an already decoded sealed envelope."""
        key = self._payload_key(sealed)
        try:
            data = nacl.bindings.crypto_aead_xchacha20poly1305_ietf_decrypt(
                sealed.sealed.data, _aad(sealed), sealed.sealed.nonce, key)
        except (nacl.exceptions.CryptoError, ValueError, TypeError) as e:
            raise CannotOpen(f"the payload of {sealed.id} does not decrypt: altered, or not sealed "
                             f"with these routing fields") from e
        try:
            payload: Any = _payload_decoder.decode(data)
        except Exception as e:  # noqa: BLE001 - any decoding failure (RecursionError too) is malformed, never retried
            raise Malformed(f"the sealed payload of {sealed.id} is not a valid {sealed.type}: {e}") from e
        env = Envelope(v=ENVELOPE_VERSION, id=sealed.id, sender=sealed.sender, recipient=sealed.recipient,
                       case=sealed.case, number=sealed.number, time=sealed.time, payload=payload)
        if env.type != sealed.type:
            raise Malformed(f"the sealed payload is a {env.type}, the envelope says {sealed.type}")
        return env

    def _payload_key(self, sealed: SealedEnvelope) -> bytes:
        if self._reload is not None and not self.can_open(sealed):
            self._keys = self._boxes(self._reload())
        for k in sealed.sealed.keys:
            box = self._keys.get(k.kid)
            if box is None:
                continue
            try:
                return bytes(box.decrypt(k.box))
            except (nacl.exceptions.CryptoError, ValueError, TypeError) as e:
                raise CannotOpen(f"the payload key sealed to {k.kid} does not open with {self.reader}'s key") from e
        readers = ", ".join(k.kid for k in sealed.sealed.keys)
        raise CannotOpen(f"{sealed.type} {sealed.id} is sealed to {readers}; {self.reader} holds none of them")
