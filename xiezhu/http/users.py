"""The console's accounts and sessions (``<data>/users.db``).

A bureau's operators log in to the console with accounts made by ``xiezhu users create
--bureau CODE``; 区司法局's (``sifa``) accounts see every bureau the server serves and act for
none.  Passwords are kept as scrypt hashes (n=2**14, r=8, p=1, a 16-byte salt), compared in
constant time.  A session is a random id in an HttpOnly, SameSite=Strict cookie, kept here
hashed, with its own CSRF token that every form posts back; sessions end after
:data:`SESSION_HOURS` or at logout.
"""
from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import sqlite3
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from schemas.errors import XiezhuError
from xiezhu.http.shared_db import SharedConnection

SESSION_HOURS = 12
SCRYPT_N, SCRYPT_R, SCRYPT_P = 2**14, 8, 1
MIN_PASSWORD = 10
_LOGIN = re.compile(r"^[a-z0-9][a-z0-9._-]{1,31}$")


class UserError(XiezhuError):
    """An account cannot be made or changed as asked."""

    code = "users"


def hash_password(password: str, salt: bytes | None = None) -> str:
    """``scrypt$n$r$p$salt$hash`` (hex)."""
    salt = salt or secrets.token_bytes(16)
    digest = hashlib.scrypt(password.encode(), salt=salt, n=SCRYPT_N, r=SCRYPT_R, p=SCRYPT_P, dklen=32)
    return f"scrypt${SCRYPT_N}${SCRYPT_R}${SCRYPT_P}${salt.hex()}${digest.hex()}"


def password_matches(password: str, stored: str) -> bool:
    try:
        kind, n, r, p, salt, digest = stored.split("$")
    except ValueError:
        return False
    if kind != "scrypt":
        return False
    got = hashlib.scrypt(password.encode(), salt=bytes.fromhex(salt), n=int(n), r=int(r), p=int(p),
                         dklen=len(digest) // 2)
    return hmac.compare_digest(got.hex(), digest)


@dataclass(frozen=True)
class User:
    login: str
    bureau: str
    name: str


@dataclass(frozen=True)
class Session:
    user: User
    csrf: str


def _h(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


class UserStore:
    """Accounts and sessions in one SQLite file (0600)."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        fresh = not path.exists()
        self._db = SharedConnection(path)
        if fresh:
            path.chmod(0o600)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA busy_timeout=10000")
        self._db.executescript("""
            CREATE TABLE IF NOT EXISTS users (login TEXT PRIMARY KEY, bureau TEXT NOT NULL, name TEXT NOT NULL,
                password TEXT NOT NULL, created_at TEXT NOT NULL, disabled INTEGER NOT NULL DEFAULT 0);
            CREATE TABLE IF NOT EXISTS sessions (id TEXT PRIMARY KEY, login TEXT NOT NULL, csrf TEXT NOT NULL,
                expires_at TEXT NOT NULL);
        """)

    def create(self, login: str, bureau: str, password: str, name: str = "") -> User:
        if not _LOGIN.match(login):
            raise UserError(f"login {login!r}: 2–32 of a-z, 0-9, '.', '_', '-', starting with a letter or digit",
                            zh=f"登录名 {login!r}：2–32 个 a-z、0-9、“.”、“_”、“-”，以字母或数字开头")
        if len(password) < MIN_PASSWORD:
            raise UserError(f"the password needs at least {MIN_PASSWORD} characters",
                            zh=f"密码至少 {MIN_PASSWORD} 个字符")
        try:
            self._db.execute("INSERT INTO users (login, bureau, name, password, created_at) VALUES (?, ?, ?, ?, ?)",
                             (login, bureau, name or login, hash_password(password),
                              datetime.now(UTC).isoformat(timespec="seconds")))
        except sqlite3.IntegrityError:
            raise UserError(f"there is an account {login!r} already", zh=f"账户 {login!r} 已存在") from None
        return User(login, bureau, name or login)

    def list(self) -> list[dict[str, object]]:
        rows = self._db.execute("SELECT login, bureau, name, created_at, disabled FROM users ORDER BY bureau, login")
        return [{"login": a, "bureau": b, "name": n, "created_at": c, "disabled": bool(d)} for a, b, n, c, d in rows]

    def disable(self, login: str) -> bool:
        with self._db.transaction():
            self._db.execute("DELETE FROM sessions WHERE login = ?", (login,))
            return bool(self._db.execute("UPDATE users SET disabled = 1 WHERE login = ?", (login,)).rowcount)

    def login(self, login: str, password: str) -> tuple[str, Session] | None:
        """A new session for the right password (its cookie value and the session), else None."""
        row = self._db.execute("SELECT bureau, name, password, disabled FROM users WHERE login = ?",
                               (login,)).fetchone()
        if row is None:
            hash_password(password)  # as slow as a wrong password: no telling which logins exist
            return None
        bureau, name, stored, disabled = row
        if disabled or not password_matches(password, stored):
            return None
        sid, csrf = secrets.token_urlsafe(32), secrets.token_urlsafe(24)
        expires = datetime.now(UTC) + timedelta(hours=SESSION_HOURS)
        self._db.execute("INSERT INTO sessions (id, login, csrf, expires_at) VALUES (?, ?, ?, ?)",
                         (_h(sid), login, csrf, expires.isoformat()))
        return sid, Session(User(login, bureau, name), csrf)

    def session(self, sid: str | None) -> Session | None:
        if not sid:
            return None
        row = self._db.execute(
            "SELECT s.login, u.bureau, u.name, s.csrf, s.expires_at FROM sessions s JOIN users u USING (login) "
            "WHERE s.id = ? AND u.disabled = 0", (_h(sid),)).fetchone()
        if row is None or datetime.fromisoformat(row[4]) < datetime.now(UTC):
            return None
        return Session(User(row[0], row[1], row[2]), row[3])

    def logout(self, sid: str) -> None:
        self._db.execute("DELETE FROM sessions WHERE id = ?", (_h(sid),))

    def close(self) -> None:
        self._db.close()
