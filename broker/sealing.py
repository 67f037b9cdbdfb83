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

import hashlib
import importlib
import os
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import msgspec
import nacl.bindings
import nacl.encoding
import nacl.exceptions
import nacl.hash
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
#: What a ledger opening (:meth:`Opener.opening`) is bound to, besides the event id.
_OPENING_CONTEXT = b"xiezhu-ledger-opening/1\n"
_OPENING_PERSON = b"xiezhu-opening"
_payload_encoder = msgspec.json.Encoder()
_payload_decoder = msgspec.json.Decoder(Payload)
#: libsodium through PyNaCl's own bindings, for the one call a rebuild makes millions of times.
_sodium: Any = importlib.import_module("nacl._sodium")
_ABYTES = nacl.bindings.crypto_aead_xchacha20poly1305_ietf_ABYTES


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
        raise SealingError(f"{env.type} {env.number}: nobody to seal it to",
                           zh=f"{env.type} {env.number}：没有可加密发送的对象")
    key = os.urandom(nacl.bindings.crypto_aead_xchacha20poly1305_ietf_KEYBYTES)
    nonce = os.urandom(nacl.bindings.crypto_aead_xchacha20poly1305_ietf_NPUBBYTES)
    data = nacl.bindings.crypto_aead_xchacha20poly1305_ietf_encrypt(
        _payload_encoder.encode(env.payload), _aad(env), nonce, key)
    keys = []
    for kid, public in readers:
        try:
            box = nacl.public.SealedBox(nacl.public.PublicKey(public)).encrypt(key)
        except (ValueError, TypeError, nacl.exceptions.CryptoError) as e:
            raise SealingError(f"reader key {kid} is not a 32-byte X25519 public key",
                               zh=f"读者密钥 {kid} 不是 32 字节的 X25519 公钥") from e
        keys.append(SealedKey(kid=kid, box=bytes(box)))
    body = encode_sealed(SealedEnvelope(
        v=SEALED_VERSION, id=env.id, sender=env.sender, recipient=env.recipient, case=env.case,
        number=env.number, time=env.time, type=env.type, sealed=Sealed(nonce=nonce, data=data, keys=keys)))
    if len(body) > MAX_MESSAGE_BYTES - 512:  # leave room for the headers
        raise SealingError(f"{env.type} {env.number} is {len(body)} bytes sealed; receivers accept at most "
                           f"{MAX_MESSAGE_BYTES - 512}: shorten the texts or split the items",
                           zh=f"{env.type} {env.number} 加密后为 {len(body)} 字节；"
                              f"接收方最多接受 {MAX_MESSAGE_BYTES - 512} 字节：请缩短文字或拆分事项")
    return body


def routing(body: bytes) -> SealedEnvelope:
    """The routing metadata of sealed bytes; :class:`NotSealed` or :class:`Malformed` otherwise."""
    head = decode_checked(body)
    if not isinstance(head, SealedEnvelope):
        raise NotSealed("the envelope is not sealed: payloads travel encrypted to their readers",
                        zh="信封未加密：载荷须加密发送给其读者")
    return head


class Opener:
    """One reader's X25519 private keys (every generation, by key id), which open what was sealed to it.

    Openings (issue 14): opening a sealed payload costs one X25519 operation (about 50 µs here),
    which for a rebuild of the views from a million ledger entries is most of the work.  An
    opener made with ``remember`` keeps the payload keys of the last ``remember`` envelopes it
    opened, and :meth:`opening` hands one out wrapped under a key derived from the very box key
    that opened it (keyed BLAKE2b); the ledger stores it beside the entry, and
    :meth:`open_with_opening` later opens the payload with two XChaCha20-Poly1305 decryptions
    instead of a sealed box.  Whoever can unwrap an opening holds the box key and could open the
    sealed box itself, so an opening reveals nothing more; a damaged or foreign one does not
    open, and the reader falls back to the sealed box.
    """

    def __init__(self, reader: str, keys: Mapping[str, bytes],
                 reload: Callable[[], Mapping[str, bytes]] | None = None, *, remember: int = 0) -> None:
        """``reload`` reads the keys again (from disk) when a payload is sealed to none held: after a
        rotation, the new key opens without a restart.  ``remember``: how many recently opened
        payload keys to keep for :meth:`opening` (0: none)."""
        self.reader = reader
        self._reload = reload
        self._seeds = dict(keys)
        self._keys = self._boxes(keys)
        self._wrapping: dict[str, bytes] = {}
        self.remember = remember
        self._recent: dict[str, tuple[str, bytes]] = {}

    @staticmethod
    def _boxes(keys: Mapping[str, bytes]) -> dict[str, nacl.public.SealedBox[nacl.public.PrivateKey]]:
        return {kid: nacl.public.SealedBox(nacl.public.PrivateKey(k)) for kid, k in keys.items()}

    @property
    def kids(self) -> list[str]:
        """The key ids this opener holds."""
        return list(self._keys)

    def portable(self) -> tuple[str, dict[str, bytes]]:
        """The reader and its keys, to make the same opener in a worker process (``Opener(*portable)``)."""
        return self.reader, dict(self._seeds)

    def can_open(self, sealed: SealedEnvelope) -> bool:
        """Whether one of the payload's keys is sealed to a key held here."""
        return any(k.kid in self._keys for k in sealed.sealed.keys)

    def open(self, body: bytes) -> Envelope:
        """The clear envelope of sealed bytes; raises :class:`Rejected` subclasses."""
        return self.open_routed(routing(body))

    def open_routed(self, sealed: SealedEnvelope) -> Envelope:
        """The clear envelope of an already decoded sealed envelope."""
        kid, key = self._payload_key(sealed)
        env = _opened(sealed, key)
        if self.remember:
            self._recent[sealed.id] = (kid, key)
            while len(self._recent) > self.remember:
                self._recent.pop(next(iter(self._recent)), None)
        return env

    # -- openings: the payload key kept wrapped beside a ledger entry ------------------------------

    def opening(self, event_id: str, body: bytes) -> tuple[str, bytes] | None:
        """The payload key of ``event_id`` (opened here lately), wrapped for the ledger: ``(kid, wrapped)``.

        ``None`` if it was not opened here among the last ``remember``.  The nonce is derived from
        the event id and its signed bytes: the same entry always gets the same opening, and two
        different plaintexts never share a nonce under one key.
        """
        found = self._recent.get(event_id)  # kept: an append retried stores it too
        if found is None:
            return None
        kid, key = found
        aad = _OPENING_CONTEXT + event_id.encode()
        nonce = hashlib.blake2b(aad + body, digest_size=24, person=_OPENING_PERSON).digest()
        return kid, nonce + nacl.bindings.crypto_aead_xchacha20poly1305_ietf_encrypt(
            key, aad, nonce, self._wrapping_key(kid))

    def open_with_opening(self, sealed: SealedEnvelope, kid: str, wrapped: bytes) -> Envelope:
        """The clear envelope, its payload key taken from a ledger opening; :class:`CannotOpen` if it does not
        open here (another key, damaged): the caller then opens the sealed box (:meth:`open_routed`)."""
        if kid not in self._seeds:
            raise CannotOpen(f"the opening of {sealed.id} is for key {kid}, which {self.reader} does not hold",
                             zh=f"{sealed.id} 的开启信息对应密钥 {kid}，{self.reader} 不持有该密钥")
        key = _decrypt(wrapped[24:], _OPENING_CONTEXT + sealed.id.encode(), wrapped[:24], self._wrapping_key(kid))
        if key is None:
            raise CannotOpen(f"the opening of {sealed.id} does not open with {self.reader}'s key {kid}",
                             zh=f"{sealed.id} 的开启信息无法用{self.reader}的密钥 {kid} 打开")
        return _opened(sealed, key)

    def _wrapping_key(self, kid: str) -> bytes:
        found = self._wrapping.get(kid)
        if found is None:
            found = self._wrapping[kid] = nacl.hash.blake2b(
                b"ledger opening", digest_size=32, key=self._seeds[kid], person=_OPENING_PERSON,
                encoder=nacl.encoding.RawEncoder)
        return found

    def _payload_key(self, sealed: SealedEnvelope) -> tuple[str, bytes]:
        if self._reload is not None and not self.can_open(sealed):
            self._seeds = dict(self._reload())
            self._keys = self._boxes(self._seeds)
        for k in sealed.sealed.keys:
            box = self._keys.get(k.kid)
            if box is None:
                continue
            try:
                return k.kid, bytes(box.decrypt(k.box))
            except (nacl.exceptions.CryptoError, ValueError, TypeError) as e:
                raise CannotOpen(f"the payload key sealed to {k.kid} does not open with {self.reader}'s key",
                                 zh=f"加密发给 {k.kid} 的载荷密钥无法用{self.reader}的密钥打开") from e
        readers = ", ".join(k.kid for k in sealed.sealed.keys)
        raise CannotOpen(f"{sealed.type} {sealed.id} is sealed to {readers}; {self.reader} holds none of them",
                         zh=f"{sealed.type} {sealed.id} 加密发给 {readers}；{self.reader} 不持有其中任何一个")


class OpeningReader:
    """Opens payload after payload with the ledger's openings, in one thread (a rebuild's worker, issue 14).

    The same two decryptions as :meth:`Opener.open_with_opening`, with the wrapping keys derived once
    and one output buffer for every decryption instead of a fresh one each; it takes the routing
    fields as they were read, and gives the payload alone.  Not for sharing between threads.
    """

    def __init__(self, opener: Opener) -> None:
        self._wrapping = {kid: opener._wrapping_key(kid) for kid in opener._seeds}
        self._out = _sodium.ffi.new("unsigned char[]", MAX_MESSAGE_BYTES)
        self._decrypt = _sodium.lib.crypto_aead_xchacha20poly1305_ietf_decrypt
        self._null = _sodium.ffi.NULL
        self._buffer = _sodium.ffi.buffer

    def payload(self, event_id: str, sender: str, recipient: str, case: str, number: str, type_: str,
                nonce: bytes, data: bytes, kid: str, wrapped: bytes) -> Payload | None:
        """The payload, its key taken from the opening ``(kid, wrapped)``; ``None`` where the opening does not
        open it (another key, damaged): the caller opens the sealed box.  Raises :class:`Malformed` for a
        payload that decrypts but is no valid ``type_``."""
        wrapping = self._wrapping.get(kid)
        size = len(data) - _ABYTES
        if (wrapping is None or len(wrapped) != 24 + 32 + _ABYTES or len(nonce) != 24
                or not 0 <= size <= MAX_MESSAGE_BYTES):
            return None
        out, null = self._out, self._null
        ad = _OPENING_CONTEXT + event_id.encode()
        if self._decrypt(out, null, null, wrapped[24:], 32 + _ABYTES, ad, len(ad), wrapped[:24], wrapping) != 0:
            return None
        key = self._buffer(out, 32)[:]
        ad = _AAD_CONTEXT + "\n".join((event_id, sender, recipient, case, number, type_)).encode()
        if self._decrypt(out, null, null, data, len(data), ad, len(ad), nonce, key) != 0:
            return None
        try:
            payload: Payload = _payload_decoder.decode(self._buffer(out, size))
        except Exception as e:  # noqa: BLE001 - as _opened: any decoding failure is malformed
            raise Malformed(f"the sealed payload of {event_id} is not a valid {type_}: {e}",
                            zh=f"{event_id} 的加密载荷不是有效的 {type_}：{e}") from e
        if type(payload).__struct_config__.tag != type_:
            raise Malformed(f"the sealed payload is a {type(payload).__struct_config__.tag}, the envelope says {type_}",
                            zh=f"加密载荷是 {type(payload).__struct_config__.tag}，信封写的是 {type_}")
        return payload


def _decrypt(data: bytes, aad: bytes, nonce: bytes, key: bytes) -> bytes | None:
    """XChaCha20-Poly1305 decryption, ``None`` if it does not authenticate.

    libsodium's own function, called as PyNaCl's wrapper calls it but without the wrapper's argument
    checks, which format four error messages on every call: a third of the cost of opening an entry
    with its opening (issue 14).  The lengths are checked here instead.
    """
    if len(nonce) != 24 or len(key) != 32 or len(data) < _ABYTES:
        return None
    ffi, size = _sodium.ffi, len(data) - _ABYTES
    out = ffi.new("unsigned char[]", max(1, size))
    if _sodium.lib.crypto_aead_xchacha20poly1305_ietf_decrypt(out, ffi.NULL, ffi.NULL, data, len(data), aad,
                                                              len(aad), nonce, key) != 0:
        return None
    return ffi.buffer(out, size)[:]  # type: ignore[no-any-return]


def _opened(sealed: SealedEnvelope, key: bytes) -> Envelope:
    """The clear envelope of ``sealed``, its payload decrypted with ``key``."""
    data = _decrypt(sealed.sealed.data, _aad(sealed), sealed.sealed.nonce, key)
    if data is None:
        raise CannotOpen(f"the payload of {sealed.id} does not decrypt: altered, or not sealed "
                         f"with these routing fields",
                         zh=f"{sealed.id} 的载荷无法解密：已被改动，或不是以这些路由字段加密的")
    try:
        payload: Any = _payload_decoder.decode(data)
    except Exception as e:  # noqa: BLE001 - any decoding failure (RecursionError too) is malformed, never retried
        raise Malformed(f"the sealed payload of {sealed.id} is not a valid {sealed.type}: {e}",
                        zh=f"{sealed.id} 的加密载荷不是有效的 {sealed.type}：{e}") from e
    env = Envelope(v=ENVELOPE_VERSION, id=sealed.id, sender=sealed.sender, recipient=sealed.recipient,
                   case=sealed.case, number=sealed.number, time=sealed.time, payload=payload)
    if env.type != sealed.type:
        raise Malformed(f"the sealed payload is a {env.type}, the envelope says {sealed.type}",
                        zh=f"加密载荷是 {env.type}，信封写的是 {sealed.type}")
    return env
