"""Per-bureau API tokens for ``xiezhu serve``, stored hashed.

A token reads ``xzt_<id>_<secret>``: the id finds the row, the secret is checked against
its SHA-256.  The secret is 32 random bytes, so a plain hash is enough (a slow KDF guards
guessable passwords; nobody guesses 256 bits); the token itself is shown once, at
creation, and never stored.  A token acts as its bureau only; 区司法局's token reads
every bureau's data and changes nothing.
"""
from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from aggregates.registry import zh_name
from schemas.errors import XiezhuError
from xiezhu.http.shared_db import SharedConnection

PREFIX = "xzt"


class TokenError(XiezhuError):
    """A token operation cannot be done."""

    code = "tokens"


@dataclass(frozen=True)
class Token:
    """A token as stored (no secret)."""

    id: str
    bureau: str
    label: str
    created_at: str
    revoked_at: str | None
    last_used_at: str | None

    @property
    def active(self) -> bool:
        return self.revoked_at is None


def _digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


class TokenStore:
    """The tokens of one data directory (``<data>/api/tokens.db``, mode 0600)."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        fresh = not path.exists()
        self._db = SharedConnection(path)
        if fresh:
            path.chmod(0o600)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA busy_timeout=10000")
        self._db.execute(
            "CREATE TABLE IF NOT EXISTS token (id TEXT PRIMARY KEY, bureau TEXT NOT NULL, label TEXT NOT NULL, "
            "digest TEXT NOT NULL, created_at TEXT NOT NULL, revoked_at TEXT, last_used_at TEXT)")

    def create(self, bureau: str, label: str = "") -> tuple[Token, str]:
        """A new token for ``bureau``: the record and the token text (shown once)."""
        token_id = secrets.token_hex(6)
        secret = secrets.token_urlsafe(32)
        now = _now()
        self._db.execute("INSERT INTO token (id, bureau, label, digest, created_at) VALUES (?, ?, ?, ?, ?)",
                         (token_id, bureau, label, _digest(secret), now))
        return Token(token_id, bureau, label, now, None, None), f"{PREFIX}_{token_id}_{secret}"

    def list(self, bureau: str | None = None) -> list[Token]:
        """Every token (of ``bureau``), oldest first."""
        sql = "SELECT id, bureau, label, created_at, revoked_at, last_used_at FROM token"
        rows = (self._db.execute(sql + " WHERE bureau = ? ORDER BY created_at, id", (bureau,)) if bureau
                else self._db.execute(sql + " ORDER BY created_at, id"))
        return [Token(*r) for r in rows]

    def revoke(self, token_id: str, bureau: str) -> Token:
        """Revoke one of ``bureau``'s tokens; it stops working at once."""
        row = self._db.execute("SELECT bureau, revoked_at FROM token WHERE id = ?", (token_id,)).fetchone()
        if row is None or row[0] != bureau:
            raise TokenError(f"{bureau} has no token {token_id!r} (see `xiezhu tokens list --bureau {bureau}`)",
                             zh=f"{zh_name(bureau)}没有令牌 {token_id!r}（见 `xiezhu tokens list --bureau {bureau}`）")
        if row[1] is not None:
            raise TokenError(f"token {token_id} was revoked already, at {row[1]}",
                             zh=f"令牌 {token_id} 已于 {row[1]} 吊销")
        self._db.execute("UPDATE token SET revoked_at = ? WHERE id = ?", (_now(), token_id))
        return next(t for t in self.list(bureau) if t.id == token_id)

    def check(self, text: str) -> Token | None:
        """The active token ``text`` is, or None (unknown, malformed, wrong secret or revoked)."""
        prefix, _, rest = text.partition("_")
        token_id, _, secret = rest.partition("_")
        if prefix != PREFIX or not token_id or not secret:
            return None
        row = self._db.execute("SELECT digest, revoked_at FROM token WHERE id = ?", (token_id,)).fetchone()
        if row is None or row[1] is not None or not hmac.compare_digest(row[0], _digest(secret)):
            return None
        self._db.execute("UPDATE token SET last_used_at = ? WHERE id = ?", (_now(), token_id))
        return next(t for t in self.list() if t.id == token_id)

    def close(self) -> None:
        self._db.close()
