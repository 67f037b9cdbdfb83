"""The SLA view: one row per assistance request with its times and status, built from the ledger only."""
from __future__ import annotations

from typing import Any

from projections.base import LedgerProjection
from schemas.assistance import (
    AssistanceDeclined,
    AssistanceReceived,
    AssistanceReplied,
    AssistanceRequested,
    AssistanceWithdrawn,
)
from schemas.envelope import decode_envelope

TABLE = "assistance_requests"
NAME = "sla"


class SlaView(LedgerProjection):
    """The requests table: one row per assistance request."""

    name = NAME
    tables = (TABLE,)

    def create_tables(self) -> None:
        if not self.db.table(TABLE).exists():
            self.db.table(TABLE).create({
                "case_id": str, "number": str, "requester": str, "assistor": str, "matter": str,
                "channel": str, "items": int, "applicant_kind": str, "sent_at": str, "arrived_at": str,
                "answered_at": str, "status": str, "outcome": str, "false_items": int, "answered_by": str,
            }, pk="case_id", not_null={"number", "requester", "assistor", "status"})
            self.db.table(TABLE).create_index(["requester", "number"])
            self.db.table(TABLE).create_index(["assistor", "status"])

    def apply(self, body: bytes, arrived_at: str) -> None:
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
                status = t.get(env.case)["status"]  # a withdrawal may have come first
                t.update(env.case, {"arrived_at": r.arrived_at.isoformat(),
                                    "status": "received" if status == "requested" else status})
            case AssistanceReplied() as r:
                false = sum(1 for x in r.results if x.verdict == "false")
                unver = sum(1 for x in r.results if x.verdict == "unverifiable")
                outcome = "false" if false else ("unverifiable" if unver else "true")
                t.update(env.case, {"answered_at": env.time.isoformat(), "status": self._answered(env.case, "replied"),
                                    "outcome": outcome, "false_items": false, "answered_by": r.answered_by})
            case AssistanceDeclined() as r:
                t.update(env.case, {"answered_at": env.time.isoformat(), "status": self._answered(env.case, "declined"),
                                    "outcome": "declined", "answered_by": r.answered_by})
            case AssistanceWithdrawn():
                if t.get(env.case)["status"] in ("requested", "received"):  # else it crossed the answer
                    t.update(env.case, {"answered_at": env.time.isoformat(), "status": "withdrawn",
                                        "outcome": "withdrawn"})

    def _answered(self, case_id: str, status: str) -> str:
        # An answer that crossed a withdrawal in transit leaves the request withdrawn.
        return "withdrawn" if self.db.table(TABLE).get(case_id)["status"] == "withdrawn" else status

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
