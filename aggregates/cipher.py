"""Encryption at rest of a bureau's own store, with PyNaCl's XChaCha20-Poly1305 AEAD.

eventsourcing encrypts a stored event's state when its environment names a cipher
(``CIPHER_TOPIC``) and its key (``CIPHER_KEY``): :func:`aggregates.store.store_env` sets both
to :class:`AeadCipher` and the bureau's store key (``<keys>/<code>.store-key``, see
:meth:`agencies.trust.keys.KeyStore.store_key`).

What is encrypted: the whole stored state of every event and snapshot, that is the signed
envelopes (applicants' names and ID numbers, commitment texts, replies) and everything else
an aggregate records.  What stays readable, as eventsourcing leaves it: the topic (the
event's class), the aggregate id, the version and the notification id.  These carry no
personal data and are what the relay and ``bench/exchange.py`` select rows by.

Why not eventsourcing's own ``AESCipher``: it needs pycryptodome, one more cryptographic
dependency, when PyNaCl (libsodium), which already signs every message, has an AEAD.  Each
state is ``nonce (24 random bytes) ‖ ciphertext ‖ tag``; the 192-bit random nonce makes a
nonce collision negligible however many events a store holds.  The cipher interface sees
only the bytes, so a ciphertext is not bound to its row: whoever can write the store file
could swap two rows' states, as they could delete rows; they still cannot read or forge one.
"""
from __future__ import annotations

import base64
import binascii

import nacl.exceptions
import nacl.secret
from eventsourcing.persistence import Cipher
from eventsourcing.utils import Environment

from schemas.errors import XiezhuError

#: Bound into every ciphertext as associated data, so a future format cannot be mistaken for this one.
_AAD = b"xiezhu store v1"


class StoreKeyError(XiezhuError):
    """A store key is missing or malformed."""

    code = "store.key"


class StoreUndecryptable(StoreKeyError):
    """The store cannot be decrypted with the key given: another bureau's key, a new key, or damaged data."""

    code = "store.undecryptable"


class AeadCipher(Cipher):
    """eventsourcing's :class:`~eventsourcing.persistence.Cipher` over :class:`nacl.secret.Aead`."""

    CIPHER_KEY = "CIPHER_KEY"
    KEY_SIZE = nacl.secret.Aead.KEY_SIZE

    def __init__(self, environment: Environment) -> None:
        encoded = environment.get(self.CIPHER_KEY)
        if not encoded:
            raise StoreKeyError(f"no store key: {self.CIPHER_KEY} is not set for the encrypted store",
                                zh=f"没有存储密钥：加密存储未设置 {self.CIPHER_KEY}")
        try:
            key = base64.b64decode(encoded, validate=True)
        except (binascii.Error, ValueError):
            raise StoreKeyError(f"the store key ({self.CIPHER_KEY}) is not base64",
                                zh=f"存储密钥（{self.CIPHER_KEY}）不是 base64") from None
        if len(key) != self.KEY_SIZE:
            raise StoreKeyError(f"the store key is {len(key)} bytes; it must be {self.KEY_SIZE}",
                                zh=f"存储密钥为 {len(key)} 字节；应为 {self.KEY_SIZE} 字节")
        self._aead = nacl.secret.Aead(key)

    @staticmethod
    def encode_key(key: bytes) -> str:
        """The ``CIPHER_KEY`` value for a raw key."""
        return base64.b64encode(key).decode("ascii")

    def encrypt(self, plaintext: bytes) -> bytes:
        """``nonce ‖ ciphertext ‖ tag``, with a fresh random nonce."""
        return bytes(self._aead.encrypt(plaintext, _AAD))

    def decrypt(self, ciphertext: bytes) -> bytes:
        """The plaintext; :class:`StoreUndecryptable` if the key is not the one it was written with."""
        try:
            return self._aead.decrypt(ciphertext, _AAD)
        except (nacl.exceptions.CryptoError, nacl.exceptions.ValueError, nacl.exceptions.TypeError):
            raise StoreUndecryptable(
                "the store cannot be decrypted with this bureau's store key: the key file is not the one the "
                "store was written with (replaced, or another bureau's), the store was written before stores "
                "were encrypted, or the data is damaged",
                zh="无法用本单位的存储密钥解密存储：密钥文件不是写入存储时所用的（已被替换，或是其他单位的），或存储写于启用加密之前，或数据已损坏"
            ) from None
