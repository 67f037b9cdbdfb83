"""The outbox relay: follows a bureau store's notification log and publishes to JetStream.

Each outgoing envelope is published with ``Nats-Msg-Id`` = its event id, so a relay that
dies after publishing and before saving its position re-publishes on restart and
JetStream drops the copy (the receiver's intake dedup covers anything older than the
duplicate window).  The position is saved only after every publish in a batch is acked.

A batch is published without waiting for each ack, so a connection lost mid-batch can lose
an earlier message while a later one, still in nats-py's buffer, reaches the server after the
reconnect: the stream would then hold a case's decline before its receipt (the kill -9
campaign found one such case in 10,000).  So each message after a batch's first carries
``Nats-Expected-Last-Msg-Id`` = its predecessor's event id, and the sending stream (written by
this bureau alone, decision 50) refuses it unless that predecessor is stored right before it.
JetStream checks ``Nats-Msg-Id`` duplicates first, so publishing a batch again is still
answered "duplicate".  A refused link is found by publishing the batch again one message at a
time without the links (in order, each acked before the next), as any other refusal is.
"""
from __future__ import annotations

import asyncio
import logging
import sqlite3
from collections.abc import Callable
from pathlib import Path
from typing import Protocol

from nats.js import JetStreamContext
from nats.js.errors import APIError

from broker.signing import b64, decode_checked
from broker.streams import full_stream_error, sending_stream
from broker.threads import in_thread
from schemas.envelope import HDR_KEY, HDR_MSG_ID, HDR_SIG, Signed, subject_for
from schemas.errors import XiezhuError

log = logging.getLogger(__name__)

#: JetStream refuses a message with this header unless the stream's last message has that ``Nats-Msg-Id``.
HDR_EXPECTED_LAST_MSG_ID = "Nats-Expected-Last-Msg-Id"


class RelayError(XiezhuError):
    """A batch could not be published; it stays in the outbox and is tried again."""

    code = "relay"


class OutboxSource(Protocol):
    """A store whose signed outgoing envelopes can be read in commit order."""

    def outgoing_since(self, after: int, limit: int) -> list[tuple[int, Signed]]: ...


class Positions:
    """Relay positions in a small SQLite file: notification id published up to, per store.

    Not fsynced on every save (``synchronous=NORMAL``): a position lost to a power cut only
    makes the relay publish again what JetStream acked, which its ``Nats-Msg-Id`` window and the
    receivers' intake markers drop (decision 53).
    """

    def __init__(self, path: Path) -> None:
        self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.execute("CREATE TABLE IF NOT EXISTS relay_position (name TEXT PRIMARY KEY, position INTEGER NOT NULL)")

    def get(self, name: str) -> int:
        """Last published notification id (0 if none)."""
        row = self._db.execute("SELECT position FROM relay_position WHERE name = ?", (name,)).fetchone()
        return int(row[0]) if row else 0

    def set(self, name: str, position: int) -> None:
        """Record that everything up to ``position`` was acked by JetStream."""
        self._db.execute(
            "INSERT INTO relay_position(name, position) VALUES (?, ?) "
            "ON CONFLICT(name) DO UPDATE SET position = excluded.position WHERE excluded.position > position",
            (name, position),
        )

    def close(self) -> None:
        """Close the file."""
        self._db.close()


def headers_for(signed: Signed, event_id: str) -> dict[str, str]:
    """The NATS headers that frame a signed envelope."""
    return {HDR_MSG_ID: event_id, HDR_KEY: signed.kid, HDR_SIG: b64(signed.sig)}


class Relay:
    """Publishes one store's outgoing envelopes to JetStream, in order, at least once."""

    def __init__(self, name: str, source: OutboxSource, positions: Positions, js: JetStreamContext,
                 *, batch: int = 256, poll_interval: float = 0.05, ack_timeout: float = 10.0) -> None:
        self.name = name
        self.source = source
        self.positions = positions
        self.js = js
        self.batch = batch
        self.poll_interval = poll_interval
        self.ack_timeout = ack_timeout
        self.published = 0
        self.duplicates = 0
        self._wake = asyncio.Event()
        self._lock = asyncio.Lock()  # one pump at a time: the run loop and settle() both pump
        #: The saved position, read once: this relay is its only writer.
        self._position: int | None = None
        self._stopping = False

    def wake(self) -> None:
        """Something was committed: look now instead of at the next poll."""
        self._wake.set()

    async def pump(self) -> int:
        """Publish everything committed since the saved position; returns how many."""
        async with self._lock:
            return await self._pump()

    def _next_rows(self) -> list[tuple[int, Signed]]:
        if self._position is None:
            self._position = self.positions.get(self.name)
        return self.source.outgoing_since(self._position, self.batch)

    def _saved_then_next(self, position: int) -> list[tuple[int, Signed]]:
        """Save the position everything up to which JetStream acked, then read what follows it."""
        self.positions.set(self.name, position)
        self._position = position
        return self._next_rows()

    def _first_rows(self) -> list[tuple[int, Signed]] | None:
        """What follows the position, if the store's memory holds it (no thread hop); ``None``: ask the store."""
        recent: Callable[[int, int], list[tuple[int, Signed]] | None] | None = getattr(
            self.source, "outgoing_recent", None)
        if recent is None or self._position is None:
            return None
        return recent(self._position, self.batch)

    async def _pump(self) -> int:
        total = 0
        # A wake with nothing new (most of them: every commit of the agent wakes it) costs no thread
        # hop, and each published batch one: the position's save and the next read (issue 14).
        rows = self._first_rows()
        if rows is None:
            rows = await in_thread(self._next_rows)
        while True:
            if not rows:
                return total
            futures = []
            last: dict[str, str] = {}  # sending stream → the event id published to it before, in this batch
            for _, signed in rows:
                env = decode_checked(signed.body)  # routing only: the payload stays sealed
                stream = sending_stream(env.sender)
                headers = headers_for(signed, env.id)
                if stream in last:
                    headers[HDR_EXPECTED_LAST_MSG_ID] = last[stream]
                last[stream] = env.id
                futures.append(await self.js.publish_async(subject_for(env), signed.body, headers=headers,
                                                           stream=stream))
            try:
                # A publish the server refuses (no permission) or whose ack is lost is never
                # answered: bound the wait, keep the position, and let run() try again.
                acks = await asyncio.wait_for(asyncio.gather(*futures), timeout=self.ack_timeout)
            except (TimeoutError, APIError) as e:
                for f in futures:
                    f.cancel()
                # nats-py loses the error of a refused publish_async (the future is never answered):
                # ask again, synchronously, in order (the same Nats-Msg-Id: never stored twice).
                why = e if isinstance(e, APIError) else await self._why_refused([signed for _, signed in rows])
                full = full_stream_error(why) if why is not None else None
                if full is not None:
                    raise RelayError(f"relay {self.name}: {full}; the outbox keeps the rest",
                                     zh=f"转发程序 {self.name}：{full}；发件箱保留其余消息") from None
                if why is not None:
                    raise why from None
                raise RelayError(f"relay {self.name}: JetStream did not ack {len(futures)} publishes "
                                 f"within {self.ack_timeout:.0f}s (refused, or the server is away)",
                                 zh=f"转发程序 {self.name}："
                                    f"JetStream 在 {self.ack_timeout:.0f} 秒内未确认 {len(futures)} 条发布"
                                    "（被拒绝或服务器不可用）") from None
            self.duplicates += sum(1 for a in acks if a.duplicate)
            self.published += len(acks)
            total += len(rows)
            rows = await in_thread(self._saved_then_next, rows[-1][0])

    async def _why_refused(self, batch: list[Signed]) -> APIError | None:
        """The server's refusal of the first of ``batch`` it refuses, published once more; None if none is."""
        for signed in batch:
            env = decode_checked(signed.body)
            try:
                await self.js.publish(subject_for(env), signed.body, headers=headers_for(signed, env.id),
                                      stream=sending_stream(env.sender), timeout=min(self.ack_timeout, 2.0))
            except APIError as e:
                return e
            except Exception:  # away or slow: the caller says so
                return None
        return None

    async def run(self) -> None:
        """Pump until stopped; a failed batch is retried after a pause, never skipped."""
        backoff = self.poll_interval
        while not self._stopping:
            self._wake.clear()
            try:
                await self.pump()
                backoff = self.poll_interval
            except asyncio.CancelledError:
                raise
            except Exception as e:  # NATS timeouts, disconnects: keep the position, retry later
                log.warning("relay %s: publish failed, will retry: %s", self.name, e)
                backoff = min(backoff * 2, 5.0)
            try:
                await asyncio.wait_for(self._wake.wait(), timeout=backoff)
            except TimeoutError:
                pass

    def stop(self) -> None:
        """Ask :meth:`run` to return after the current batch."""
        self._stopping = True
        self._wake.set()
