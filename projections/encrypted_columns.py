"""Personal data in the read models, at rest: keyed pseudonyms to look up, encrypted columns to read back.

The views on 区司法局's machine (the credit view, the commitment cases) are folds of the ledger,
whose payloads are sealed.  What they keep of an applicant is protected by the view key
(区司法局's store key, :meth:`agencies.trust.keys.KeyStore.store_key`), never written in clear
(decision 26):

- **Look-ups** by an applicant's ID number or USCC use a keyed pseudonym,
  ``HMAC-SHA256(pseudonym subkey, normalized id)`` in hex: equal ids give equal values, so an
  index finds them, and without the key the value says nothing about the id.  The masked id
  (``370405********1234``) stays in clear for display.
- **What is read back in clear** (a folded case with the applicant and the commitment texts,
  a 信用中国 record, free texts about the applicant) is encrypted with XChaCha20-Poly1305: a
  random 24-byte nonce, then the ciphertext and tag.  The associated data names the table, the
  column and the row's primary key, so an encrypted value moved to another row or column does not
  open.
- **One key, three subkeys**, derived with keyed BLAKE2b (``person=b"xiezhu-view"``): the
  pseudonym key, the encryption key and a key check.  The view key also encrypts 区司法局's own
  store (decision 24), so none of these uses the key itself.
- **The key check** is recorded in the view's file (``_view_key``) when it is first written
  with a key; opening it with another key raises :class:`ViewKeyMismatch` before anything is
  changed.
"""
from __future__ import annotations

import hashlib
import hmac
import os
import sqlite3
from collections.abc import Callable

import nacl.bindings
import nacl.encoding
import nacl.exceptions
import nacl.hash
import sqlite_utils

from schemas.errors import XiezhuError

KEY_SIZE = 32
NONCE_SIZE = nacl.bindings.crypto_aead_xchacha20poly1305_ietf_NPUBBYTES
#: The table holding each view's key check (never dropped on rebuild).
KEY_CHECKS = "_view_key"
_PERSON = b"xiezhu-view"
_FORMAT = b"xiezhu-view/1"


class ViewKeyError(XiezhuError):
    """A read model that keeps personal data was given no key, or an unusable one."""

    code = "view.key"


class ViewKeyMissing(ViewKeyError):
    """Personal data would be written or looked up in a view that has no key: it is refused, never kept in clear."""

    code = "view.key-missing"


class ViewKeyMismatch(ViewKeyError):
    """The view was written with another key, or an encrypted value is damaged or was moved."""

    code = "view.key-mismatch"


def _subkey(view_key: bytes, label: bytes) -> bytes:
    return nacl.hash.blake2b(label, digest_size=KEY_SIZE, key=view_key, person=_PERSON,
                             encoder=nacl.encoding.RawEncoder)


def _aad(table: str, column: str, pk: str) -> bytes:
    return b"\0".join((_FORMAT, table.encode(), column.encode(), pk.encode()))


class EncryptedColumns:
    """The view key's uses: pseudonyms of applicants, encrypting and decrypting columns, the key check."""

    def __init__(self, view_key: bytes) -> None:
        if not isinstance(view_key, bytes) or len(view_key) != KEY_SIZE:
            raise ViewKeyError(f"a view key is {KEY_SIZE} bytes (区司法局's store key), "
                               f"not {len(view_key) if isinstance(view_key, bytes) else type(view_key).__name__}",
                               zh=f"视图密钥为 {KEY_SIZE} 字节（区司法局的存储密钥），"
                                  f"而不是 {len(view_key) if isinstance(view_key, bytes) else type(view_key).__name__}")
        self._pseudonym_key = _subkey(view_key, b"pseudonym")
        # The label is part of the derivation: every view written so far was encrypted under it.
        self._encryption_key = _subkey(view_key, b"seal")
        #: Recorded in the view's file; says nothing about the key.
        self.check = _subkey(view_key, b"check").hex()

    def pseudonym(self, normalized_id: str) -> str:
        """The keyed pseudonym of an already normalized ID number or USCC (64 hex digits)."""
        return hmac.new(self._pseudonym_key, normalized_id.encode(), hashlib.sha256).hexdigest()

    def encrypt(self, table: str, column: str, pk: str, plaintext: bytes) -> bytes:
        """``nonce ‖ ciphertext ‖ tag``, bound to its table, column and primary key."""
        nonce = os.urandom(NONCE_SIZE)
        return nonce + nacl.bindings.crypto_aead_xchacha20poly1305_ietf_encrypt(
            plaintext, _aad(table, column, pk), nonce, self._encryption_key)

    def decrypt(self, table: str, column: str, pk: str, encrypted: bytes | str | None) -> bytes:
        """The plaintext of an encrypted value; :class:`ViewKeyMismatch` if it does not open here."""
        if not isinstance(encrypted, bytes) or len(encrypted) < NONCE_SIZE:
            raise ViewKeyMismatch(f"{table}.{column} of {pk} is not encrypted (written in clear, or damaged)",
                                  zh=f"{pk} 的 {table}.{column} 未加密（以明文写入，或已损坏）")
        try:
            return nacl.bindings.crypto_aead_xchacha20poly1305_ietf_decrypt(
                encrypted[NONCE_SIZE:], _aad(table, column, pk), encrypted[:NONCE_SIZE], self._encryption_key)
        except (nacl.exceptions.CryptoError, nacl.exceptions.ValueError, nacl.exceptions.TypeError):
            raise ViewKeyMismatch(f"{table}.{column} of {pk} does not open with this view key: another key, "
                                  "a damaged value, or one moved from another row",
                                  zh=f"{pk} 的 {table}.{column} 无法用此视图密钥打开：密钥不同、值已损坏，"
                                     "或值是从另一行移来的") from None


def columns_for(view_key: bytes | None) -> EncryptedColumns | None:
    """The encrypted columns of a view key, or None for a view opened without one."""
    return None if view_key is None else EncryptedColumns(view_key)


def required(columns: EncryptedColumns | None, view: str) -> EncryptedColumns:
    """The view's key, or :class:`ViewKeyMissing`: personal data is never written or looked up in clear."""
    if columns is None:
        raise ViewKeyMissing(f"the {view} view keeps applicants' personal data encrypted and was opened without "
                             "a view key (区司法局's store key, keys/sifa.store-key): nothing is written in clear",
                             zh=f"{view} 视图加密保存申请人的个人信息，但打开时未提供视图密钥"
                                "（区司法局的存储密钥 keys/sifa.store-key）：不以明文写入任何内容")
    return columns


def key_recorded(db: sqlite_utils.Database, view: str, columns: EncryptedColumns, where: str) -> bool:
    """Whether the view's file records this key's check; :class:`ViewKeyMismatch` if it records another.

    ``False`` means no key was recorded yet: a new view, or one written before its personal data
    was encrypted (the caller encrypts or drops what it holds, then :func:`record_key`).
    """
    if not db.table(KEY_CHECKS).exists():
        return False
    row = db.execute(f"SELECT check_value FROM {KEY_CHECKS} WHERE view = ?", [view]).fetchone()
    if row is None:
        return False
    if not hmac.compare_digest(str(row[0]), columns.check):
        raise ViewKeyMismatch(
            f"{where} was written with another view key than this machine's 区司法局 store key "
            "(keys/sifa.store-key): the key file was replaced, or the view comes from another machine. "
            "Nothing was changed. Restore the key; or delete the view's file and rebuild it from the ledger "
            "(`xiezhu projections rebuild`), which loses the 信用中国 outbox's delivery state",
            zh=f"{where} 是用另一把视图密钥写入的，不是本机区司法局的存储密钥（keys/sifa.store-key）：密钥文件被替换，"
               "或视图来自另一台机器。未作任何改动。请恢复密钥；或删除该视图文件，从账本重建"
               "（`xiezhu projections rebuild`），但会丢失信用中国发件箱的报送状态")
    return True


def record_key(db: sqlite_utils.Database, view: str, columns: EncryptedColumns, where: str) -> None:
    """Record the key check of a view written with ``columns``; another process's other key raises."""
    db.execute(f"CREATE TABLE IF NOT EXISTS {KEY_CHECKS} (view TEXT PRIMARY KEY, check_value TEXT NOT NULL)")
    db.execute(f"INSERT OR IGNORE INTO {KEY_CHECKS} (view, check_value) VALUES (?, ?)", [view, columns.check])
    key_recorded(db, view, columns, where)


def scrubbed(db: sqlite_utils.Database, work: Callable[[], None]) -> None:
    """Run ``work`` (one transaction) with deleted content overwritten, then empty the WAL.

    For a view that held personal data in clear: the rows it drops or rewrites must not linger in
    free pages or old WAL frames.  The WAL is emptied as far as no other reader holds it.
    On PostgreSQL ``work`` is one transaction and nothing more: a view there was never written in
    clear (it is newer than the encryption of views), so there is nothing to scrub.
    """
    if not isinstance(db.conn, sqlite3.Connection):
        with db.conn:
            work()
        return
    before = db.execute("PRAGMA secure_delete").fetchone()[0]
    db.execute("PRAGMA secure_delete = ON")
    try:
        with db.conn:
            work()
        db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    finally:
        db.execute(f"PRAGMA secure_delete = {int(before)}")
