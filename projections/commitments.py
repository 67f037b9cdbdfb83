"""The commitment-case view: every case of every handling bureau, its step and its outcome, from the ledger."""
from __future__ import annotations

from typing import Any

import msgspec

from aggregates import commitment
from aggregates.commitment import CommitmentState
from aggregates.errors import RuleError
from projections.base import LedgerProjection
from schemas.envelope import decode_envelope
from schemas.privacy import mask_id

TABLE = "commitment_cases"
_state = msgspec.json.Decoder(CommitmentState)


class CommitmentView(LedgerProjection):
    """One row per commitment case, with the folded state kept for the next event."""

    name = "commitments"
    tables = (TABLE,)

    def create_tables(self) -> None:
        if not self.db.table(TABLE).exists():
            self.db.table(TABLE).create({
                "case_id": str, "number": str, "bureau": str, "matter": str, "applicant": str,
                "applied_on": str, "status": str, "outcome": str, "route": str, "false_items": int,
                "updated_at": str, "state": bytes,
            }, pk="case_id", not_null={"number", "bureau", "status"})
            self.db.table(TABLE).create_index(["bureau", "status"])

    def apply(self, body: bytes, arrived_at: str) -> None:
        env = decode_envelope(body)
        if not env.type.startswith("commitment."):
            return
        t = self.db.table(TABLE)
        previous = None
        try:
            previous = _state.decode(t.get(env.case)["state"])
        except Exception:  # sqlite_utils NotFoundError: the application itself
            previous = None
        try:
            st = commitment.apply(previous, env)
        except RuleError:
            return  # the ledger keeps it; the bureau's own store refused nothing it signed
        t.upsert({
            "case_id": st.case, "number": st.number, "bureau": st.bureau, "matter": st.matter_name,
            "applicant": mask_id(st.applicant.id_number), "applied_on": st.applied_on.isoformat(),
            "status": st.status, "outcome": st.outcome, "route": st.route, "false_items": len(st.false_items),
            "updated_at": env.time.isoformat(), "state": msgspec.json.encode(st),
        }, pk="case_id")

    def rows(self, *, bureau: str | None = None) -> list[dict[str, Any]]:
        """Cases without their folded state, oldest first."""
        with self._lock:
            where, args = ("bureau = ?", [bureau]) if bureau else (None, [])
            return [{k: v for k, v in r.items() if k != "state"}
                    for r in self.db.table(TABLE).rows_where(where, args, order_by="applied_on, number")]

    def outcomes(self) -> dict[str, int]:
        """Cases by outcome (or by step, for cases still under way)."""
        with self._lock:
            q = f"SELECT outcome, COUNT(*) AS n FROM {TABLE} GROUP BY outcome ORDER BY outcome"
            return {r["outcome"]: r["n"] for r in self.db.query(q)}
