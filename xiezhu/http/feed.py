"""What a bureau's own systems are told: a durable feed of what arrived, and its webhook.

The feed follows the bureau's store: every envelope another party sent it (a request
for its inbox, a reply or decline to its request, a deadline reminder or breach notice
…) becomes one row, keyed by the event id, in ``<bureau dir>/feed.db``; the position in
the store's notification log commits with the rows, so a restart neither loses nor
repeats one.  The same rows are read as a list (``/notices``), as Server-Sent Events
(``/events``) and pushed to the webhook the bureau registered.

Webhook deliveries go in feed order, one at a time.  Each POST carries the event id in
``X-Xiezhu-Delivery`` and an HMAC-SHA256 of ``<timestamp>.<body>`` under the bureau's
secret in ``X-Xiezhu-Signature``; a 2xx answer moves the webhook's cursor past it and
records the id as delivered, anything else is retried with exponential backoff
(``backoff_base`` doubling up to ``backoff_cap``), forever, across restarts.  A receiver
that answered 2xx but whose answer was lost gets the same id again: it must keep the ids
it has seen (exactly once by id).
"""
from __future__ import annotations

import hashlib
import hmac
import json
import logging
import secrets
import time
from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Protocol

import httpx
import msgspec

from broker.threads import in_thread
from schemas.envelope import Envelope, decode_envelope
from schemas.privacy import mask_json
from xiezhu.http.shared_db import SharedConnection

log = logging.getLogger(__name__)

HDR_DELIVERY = "X-Xiezhu-Delivery"
HDR_EVENT = "X-Xiezhu-Event"
HDR_TIMESTAMP = "X-Xiezhu-Timestamp"
HDR_SIGNATURE = "X-Xiezhu-Signature"
HDR_BUREAU = "X-Xiezhu-Bureau"


class StoreLog(Protocol):
    """The part of a bureau store the feed reads: its notification log and how to decode it."""

    bureau: str
    recorder: Any
    mapper: Any


@dataclass(frozen=True)
class Webhook:
    """A bureau's registered webhook and how its deliveries stand."""

    url: str
    secret: str
    created_at: str
    cursor: int
    attempts: int
    next_attempt_at: str | None
    last_error: str | None

    def public(self) -> dict[str, Any]:
        """Everything but the secret."""
        return {"url": self.url, "created_at": self.created_at, "delivered_up_to": self.cursor,
                "failed_attempts": self.attempts, "next_attempt_at": self.next_attempt_at,
                "last_error": self.last_error}


def sign(secret: str, timestamp: str, body: bytes) -> str:
    """The ``X-Xiezhu-Signature`` value of a delivery: ``sha256=<hex>``."""
    mac = hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256)
    return "sha256=" + mac.hexdigest()


def verify(secret: str, headers: dict[str, str], body: bytes) -> bool:
    """What a receiver does: recompute the signature and compare in constant time."""
    lower = {k.lower(): v for k, v in headers.items()}
    expected = sign(secret, lower.get(HDR_TIMESTAMP.lower(), ""), body)
    return hmac.compare_digest(expected, lower.get(HDR_SIGNATURE.lower(), ""))


def item_of(env: Envelope, received_at: datetime | None) -> dict[str, Any]:
    """A feed row's JSON: routing, the event type, and the payload with personal data masked."""
    return {"id": env.id, "type": env.type, "case": env.case, "number": env.number, "from": env.sender,
            "to": env.recipient, "time": env.time.isoformat(),
            "received_at": received_at.isoformat() if received_at else None,
            "data": mask_json(msgspec.to_builtins(env.payload))}


class Feed:
    """One bureau's feed, webhook and delivery record (``<bureau dir>/feed.db``)."""

    def __init__(self, bureau: str, path: Path) -> None:
        self.bureau = bureau
        path.parent.mkdir(parents=True, exist_ok=True)
        fresh = not path.exists()
        self._db = SharedConnection(path)
        if fresh:
            path.chmod(0o600)  # it holds the webhook secret
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA busy_timeout=10000")
        self._db.executescript("""
            CREATE TABLE IF NOT EXISTS position (name TEXT PRIMARY KEY, value INTEGER NOT NULL);
            CREATE TABLE IF NOT EXISTS feed (seq INTEGER PRIMARY KEY AUTOINCREMENT, id TEXT NOT NULL UNIQUE,
                type TEXT NOT NULL, body TEXT NOT NULL);
            CREATE TABLE IF NOT EXISTS webhook (one INTEGER PRIMARY KEY CHECK (one = 1), url TEXT NOT NULL,
                secret TEXT NOT NULL, created_at TEXT NOT NULL, cursor INTEGER NOT NULL,
                attempts INTEGER NOT NULL DEFAULT 0, next_attempt_at TEXT, last_error TEXT);
            CREATE TABLE IF NOT EXISTS delivered (id TEXT PRIMARY KEY, seq INTEGER NOT NULL, url TEXT NOT NULL,
                at TEXT NOT NULL, status INTEGER NOT NULL);
        """)

    def _tx(self) -> AbstractContextManager[SharedConnection]:
        return self._db.transaction()

    # -- following the store ----------------------------------------------------------

    @property
    def position(self) -> int:
        row = self._db.execute("SELECT value FROM position WHERE name = 'store'").fetchone()
        return int(row[0]) if row else 0

    def follow(self, store: StoreLog, *, batch: int = 500) -> int:
        """Add what arrived in ``store`` since the last call; returns how many rows were added."""
        added = 0
        while True:
            after = self.position
            notifications = store.recorder.select_notifications(start=after + 1, limit=batch)
            if not notifications:
                return added
            rows = []
            for n in notifications:
                ev = store.mapper.to_domain_event(n)
                # What another party sent: it came off the stream (incoming events carry stream_seq).
                if not hasattr(ev, "stream_seq") or not hasattr(ev, "clear"):
                    continue
                env = decode_envelope(ev.clear)
                if env.recipient != self.bureau:
                    continue
                rows.append((env.id, env.type, json.dumps(item_of(env, getattr(ev, "timestamp", None)),
                                                          ensure_ascii=False)))
            with self._tx() as db:
                for row in rows:
                    added += db.execute("INSERT OR IGNORE INTO feed (id, type, body) VALUES (?, ?, ?)", row).rowcount
                db.execute("INSERT INTO position (name, value) VALUES ('store', ?) "
                           "ON CONFLICT(name) DO UPDATE SET value = excluded.value", (notifications[-1].id,))

    def items(self, after: int = 0, limit: int = 100) -> list[tuple[int, dict[str, Any]]]:
        """Feed rows after sequence ``after``, oldest first, with their sequence numbers."""
        rows = self._db.execute("SELECT seq, body FROM feed WHERE seq > ? ORDER BY seq LIMIT ?", (after, limit))
        return [(int(seq), json.loads(body)) for seq, body in rows]

    @property
    def head(self) -> int:
        row = self._db.execute("SELECT max(seq) FROM feed").fetchone()
        return int(row[0] or 0)

    # -- the webhook -------------------------------------------------------------------

    def webhook(self) -> Webhook | None:
        row = self._db.execute("SELECT url, secret, created_at, cursor, attempts, next_attempt_at, last_error "
                               "FROM webhook").fetchone()
        return Webhook(*row) if row else None

    def register(self, url: str, secret: str | None = None, *, since: int | None = None) -> Webhook:
        """Register (or replace) the webhook; deliveries start after feed row ``since`` (default: now)."""
        secret = secret or secrets.token_urlsafe(32)
        cursor = self.head if since is None else since
        with self._tx() as db:
            db.execute("DELETE FROM webhook")
            db.execute("INSERT INTO webhook (one, url, secret, created_at, cursor) VALUES (1, ?, ?, ?, ?)",
                       (url, secret, datetime.now(UTC).isoformat(timespec="seconds"), cursor))
        hook = self.webhook()
        assert hook is not None
        return hook

    def unregister(self) -> bool:
        """Remove the webhook; False if there was none."""
        with self._tx() as db:
            return bool(db.execute("DELETE FROM webhook").rowcount)

    def delivered_ids(self) -> list[str]:
        """Event ids delivered to a webhook, in delivery order."""
        return [r[0] for r in self._db.execute("SELECT id FROM delivered ORDER BY seq")]

    def pending(self) -> int:
        """Feed rows the webhook has not acknowledged yet (0 without a webhook)."""
        hook = self.webhook()
        if hook is None:
            return 0
        row = self._db.execute("SELECT count(*) FROM feed WHERE seq > ?", (hook.cursor,)).fetchone()
        return int(row[0])

    def _next(self) -> tuple[Webhook, int, dict[str, Any]] | None:
        hook = self.webhook()
        if hook is None:
            return None
        rows = self.items(hook.cursor, 1)
        if not rows:
            return None
        return hook, rows[0][0], rows[0][1]

    def _succeeded(self, hook: Webhook, seq: int, event_id: str, status: int) -> None:
        with self._tx() as db:
            # the cursor moves only if the webhook is still the one delivered to
            moved = db.execute("UPDATE webhook SET cursor = ?, attempts = 0, next_attempt_at = NULL, last_error = NULL "
                               "WHERE cursor = ? AND url = ?", (seq, hook.cursor, hook.url))
            if moved.rowcount:
                db.execute("INSERT OR IGNORE INTO delivered (id, seq, url, at, status) VALUES (?, ?, ?, ?, ?)",
                           (event_id, seq, hook.url, datetime.now(UTC).isoformat(), status))

    def _failed(self, hook: Webhook, error: str, delay: float) -> None:
        at = (datetime.now(UTC) + timedelta(seconds=delay)).isoformat()
        with self._tx() as db:
            db.execute("UPDATE webhook SET attempts = attempts + 1, next_attempt_at = ?, last_error = ? "
                       "WHERE url = ? AND cursor = ?", (at, error[:500], hook.url, hook.cursor))

    async def deliver_once(self, client: httpx.AsyncClient, *, backoff_base: float = 1.0,
                           backoff_cap: float = 600.0) -> float | None:
        """Try the next delivery if it is due.

        Returns None when nothing waits, 0 after a success, else the seconds until the next try.
        """
        nxt = await in_thread(self._next)
        if nxt is None:
            return None
        hook, seq, item = nxt
        if hook.next_attempt_at:
            wait = (datetime.fromisoformat(hook.next_attempt_at) - datetime.now(UTC)).total_seconds()
            if wait > 0:
                return wait
        body = json.dumps(item, ensure_ascii=False).encode()
        timestamp = str(int(time.time()))
        headers = {"Content-Type": "application/json", HDR_DELIVERY: item["id"], HDR_EVENT: item["type"],
                   HDR_BUREAU: self.bureau, HDR_TIMESTAMP: timestamp,
                   HDR_SIGNATURE: sign(hook.secret, timestamp, body)}
        try:
            response = await client.post(hook.url, content=body, headers=headers)
            error = None if 200 <= response.status_code < 300 else f"HTTP {response.status_code}"
            status = response.status_code
        except httpx.HTTPError as e:
            error, status = f"{type(e).__name__}: {e}", 0
        if error is None:
            await in_thread(self._succeeded, hook, seq, item["id"], status)
            return 0.0
        delay = float(min(backoff_cap, backoff_base * 2 ** min(hook.attempts, 30)))
        log.info("%s webhook: delivery %s failed (%s); next try in %.1fs", self.bureau, item["id"], error, delay)
        await in_thread(self._failed, hook, error, delay)
        return delay

    def close(self) -> None:
        self._db.close()
