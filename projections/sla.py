"""The SLA view: one row per assistance request with its times and status, built from the ledger only.

The view keeps the ledger position it has applied in the same transaction as the rows, so
following the ledger after a crash neither skips nor double-applies an entry, and
``rebuild`` from position 0 gives the same table as following it live.
"""
from __future__ import annotations

import sqlite3
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import sqlite_utils

from projections.ledger import Ledger
from schemas.assistance import AssistanceDeclined, AssistanceReceived, AssistanceReplied, AssistanceRequested
from schemas.envelope import decode_envelope

TABLE = "assistance_requests"
POSITIONS = "_positions"
NAME = "sla"


class SlaView:
    """The requests table in its own SQLite file."""

    def __init__(self, path: Path) -> None:
        # Used from worker threads (one at a time), so not bound to the creating thread.
        self.db = sqlite_utils.Database(sqlite3.connect(path, check_same_thread=False))
        # The connection is shared by the follower thread and readers: one at a time, so
        # that no reader sees a half-applied batch.
        self._lock = threading.RLock()
        self.db.enable_wal()
        self._ensure()

    def _ensure(self) -> None:
        if not self.db.table(TABLE).exists():
            self.db.table(TABLE).create({
                "case_id": str, "number": str, "requester": str, "assistor": str, "matter": str,
                "channel": str, "items": int, "applicant_kind": str, "sent_at": str, "arrived_at": str,
                "answered_at": str, "status": str, "outcome": str, "false_items": int, "answered_by": str,
            }, pk="case_id", not_null={"number", "requester", "assistor", "status"})
            self.db.table(TABLE).create_index(["requester", "number"])
            self.db.table(TABLE).create_index(["assistor", "status"])
        if not self.db.table(POSITIONS).exists():
            self.db.table(POSITIONS).create({"name": str, "position": int}, pk="name")

    @property
    def position(self) -> int:
        """The last ledger position applied."""
        with self._lock:
            try:
                return int(self.db.table(POSITIONS).get(NAME)["position"])
            except sqlite_utils.db.NotFoundError:
                return 0

    def follow(self, ledger: Ledger, *, batch: int = 1000,
               progress: Callable[[int], None] | None = None) -> int:
        """Apply every ledger entry after the saved position; returns how many."""
        done = 0
        while True:
            entries = list(ledger.entries(self.position, batch))
            if not entries:
                return done
            with self._lock, self.db.conn:
                for e in entries:
                    self._apply(e.signed.body, e.arrived_at)
                self.db.table(POSITIONS).upsert({"name": NAME, "position": entries[-1].pos}, pk="name")
            done += len(entries)
            if progress:
                progress(len(entries))

    def rebuild(self, ledger: Ledger, progress: Callable[[int], None] | None = None) -> int:
        """Drop the view and build it again from the first ledger entry."""
        with self._lock, self.db.conn:
            self.db.table(TABLE).drop(ignore=True)
            self.db.table(POSITIONS).drop(ignore=True)
        self._ensure()
        return self.follow(ledger, progress=progress)

    def _apply(self, body: bytes, arrived_at: str) -> None:
        env = decode_envelope(body)
        t = self.db.table(TABLE)
        match env.payload:
            case AssistanceRequested() as r:
                t.insert({
                    "case_id": env.case, "number": env.number, "requester": r.requester,
                    "assistor": r.assistor, "matter": r.matter.name, "channel": r.channel,
                    "items": len(r.items), "applicant_kind": r.applicant.kind,
                    "sent_at": env.time.isoformat(), "arrived_at": None, "answered_at": None,
                    "status": "requested", "outcome": None, "false_items": 0, "answered_by": None,
                }, ignore=True)
            case AssistanceReceived() as r:
                t.update(env.case, {"arrived_at": r.arrived_at.isoformat(), "status": "received"})
            case AssistanceReplied() as r:
                false = sum(1 for x in r.results if x.verdict == "false")
                unver = sum(1 for x in r.results if x.verdict == "unverifiable")
                outcome = "false" if false else ("unverifiable" if unver else "true")
                t.update(env.case, {"answered_at": env.time.isoformat(), "status": "replied",
                                    "outcome": outcome, "false_items": false, "answered_by": r.answered_by})
            case AssistanceDeclined() as r:
                t.update(env.case, {"answered_at": env.time.isoformat(), "status": "declined",
                                    "outcome": "declined", "answered_by": r.answered_by})

    def rows(self, *, bureau: str | None = None, status: str | None = None) -> list[dict[str, Any]]:
        """Rows, oldest request first, filtered by bureau (either side) and status."""
        where, args = [], []
        if bureau:
            where.append("(requester = ? OR assistor = ?)")
            args += [bureau, bureau]
        if status:
            where.append("status = ?")
            args.append(status)
        with self._lock:
            return list(self.db.table(TABLE).rows_where(" AND ".join(where) or None, args, order_by="sent_at, number"))

    def counts(self) -> dict[str, int]:
        """Requests per status."""
        with self._lock:
            rows = self.db.query(f"SELECT status, COUNT(*) AS n FROM {TABLE} GROUP BY status")
            return {r["status"]: r["n"] for r in rows}
