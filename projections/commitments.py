"""The commitment-case view: every case of every handling bureau, its step and its outcome, from the ledger.

The folded case (``state``: the applicant, the commitment texts …) is encrypted with the view key
(decision 26, :mod:`projections.encrypted_columns`); the other columns hold no personal data in
clear (the applicant's ID number is masked).  Without a view key the view refuses to apply
commitment events.
"""
from __future__ import annotations

from typing import Any

import msgspec

from aggregates import commitment
from aggregates.commitment import CommitmentState
from aggregates.database import Location
from aggregates.errors import RuleError
from projections.base import POSITIONS, KeyedProjection
from projections.encrypted_columns import key_recorded, record_key, required, scrubbed
from schemas.envelope import Envelope
from schemas.privacy import mask_id, mask_name

TABLE = "commitment_cases"
_state = msgspec.json.Decoder(CommitmentState)


class CommitmentView(KeyedProjection):
    """One row per commitment case, with the folded state kept for the next event."""

    name = "commitments"
    tables = (TABLE,)

    def __init__(self, path: Location, *, view_key: bytes | None = None) -> None:
        """``view_key``: 区司法局's store key, which encrypts each folded case (decision 26).

        A view written with another key raises :class:`~projections.encrypted_columns.ViewKeyMismatch`
        and is left as it was.
        """
        super().__init__(path, view_key=view_key)

    def create_tables(self) -> None:
        cols = self._columns
        if cols is not None and not key_recorded(self.db, self.name, cols, self._where):
            # New, or written before the folded cases were encrypted: refold it from the ledger.
            def work() -> None:
                self.db.execute(f"DROP TABLE IF EXISTS {TABLE}")
                self.db.execute(f"DELETE FROM {POSITIONS} WHERE name = ?", [self.name])

            scrubbed(self.db, work)
            record_key(self.db, self.name, cols, self._where)
        if not self.db.table(TABLE).exists():
            self.db.table(TABLE).create({
                "case_id": str, "number": str, "bureau": str, "matter": str, "applicant": str,
                "applied_on": str, "status": str, "outcome": str, "route": str, "false_items": int,
                "updated_at": str, "state": bytes,
            }, pk="case_id", not_null={"number", "bureau", "status"})
            self.db.table(TABLE).create_index(["bureau", "status"])

    def wants(self, event_type: str) -> bool:
        return event_type.startswith("commitment.")

    def apply(self, env: Envelope, arrived_at: str) -> None:
        if not env.type.startswith("commitment."):
            return
        cols = required(self._columns, "commitment-case")
        t = self.db.table(TABLE)
        found = self.db.execute(f"SELECT state FROM {TABLE} WHERE case_id = ?", [env.case]).fetchone()
        # None: the application itself
        previous = _state.decode(cols.decrypt(TABLE, "state", env.case, found[0])) if found else None
        try:
            st = commitment.apply(previous, env)
        except RuleError:
            return  # the ledger keeps it; the bureau's own store refused nothing it signed
        t.upsert({
            "case_id": st.case, "number": st.number, "bureau": st.bureau, "matter": st.matter_name,
            "applicant": mask_id(st.applicant.id_number), "applied_on": st.applied_on.isoformat(),
            "status": st.status, "outcome": st.outcome, "route": st.route, "false_items": len(st.false_items),
            "updated_at": env.time.isoformat(), "state": cols.encrypt(TABLE, "state", st.case, msgspec.json.encode(st)),
        }, pk="case_id")

    def rows(self, *, bureau: str | None = None) -> list[dict[str, Any]]:
        """Cases without their folded state, oldest first."""
        with self._lock:
            where, args = ("bureau = ?", [bureau]) if bureau else (None, [])
            return [{k: v for k, v in r.items() if k != "state"}
                    for r in self.db.table(TABLE).rows_where(where, args, order_by="applied_on, number")]

    def plain_rows(self) -> list[dict[str, Any]]:
        """Every row in the order written, the folded state decrypted (encrypting draws fresh nonces: compare these)."""
        cols = required(self._columns, "commitment-case")
        with self._lock:
            rows = [dict(r) for r in self.db.table(TABLE).rows_where(order_by="rowid")]
        return [r | {"state": cols.decrypt(TABLE, "state", r["case_id"], r["state"])} for r in rows]

    def to_disclose(self, *, bureau: str | None = None) -> list[dict[str, Any]]:
        """二(四): the signed commitments of matters whose 告知承诺书 is disclosed, for publication, oldest first.

        Each gives the case number, the bureau, the matter, the applicant's masked name and ID number,
        the signing date and the commitments as signed.  A case whose applicant refused disclosure
        (and so brought the certificate) or withdrew before signing is not listed.
        """
        cols = required(self._columns, "commitment-case")
        with self._lock:
            where, args = ("bureau = ?", [bureau]) if bureau else (None, [])
            rows = list(self.db.table(TABLE).rows_where(where, args, order_by="applied_on, number"))
        out = []
        for r in rows:
            st = _state.decode(cols.decrypt(TABLE, "state", r["case_id"], r["state"]))
            if not st.disclose or not st.told_disclosure or st.signed_on is None:
                continue
            out.append({"number": st.number, "bureau": st.bureau, "matter": st.matter_name,
                        "applicant": mask_name(st.applicant.name), "id_number": mask_id(st.applicant.id_number),
                        "signed_on": st.signed_on.isoformat(), "commitments": [i.text for i in st.items]})
        return out

    def outcomes(self) -> dict[str, int]:
        """Cases by outcome (or by step, for cases still under way)."""
        with self._lock:
            q = f"SELECT outcome, COUNT(*) AS n FROM {TABLE} GROUP BY outcome ORDER BY outcome"
            return {r["outcome"]: r["n"] for r in self.db.query(q)}
