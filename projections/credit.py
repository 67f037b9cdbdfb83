"""The credit view (诚信档案, 四(二)): per applicant, what they committed to, what proved false,
every credit step with its time, and whether they may use the commitment route at any time.

Standing, as this view answers it from the ledger alone:

- An applicant is barred (``unrepaired-false-commitment``) from the moment a bureau found
  one of their commitments false (``commitment.found-false``): 四(二) bars "曾作出虚假承诺"
  until credit repair, whether or not the credit record was pushed yet.
- The bar of that case ends when its credit record is repaired (from the approval's time,
  never before) or removed on an objection (from the review's time, never before).
- An objection does not suspend the record while it is reviewed; a confirmation or a
  correction leaves the applicant barred (a correction changes only the record's text).
- Times are the signing bureau's event times (the legal acts), not ledger arrival.
- ``serious-bad-credit`` (有较严重不良信用记录) comes from the public credit platform, not
  from commitment cases, so this view answers only ``good`` or
  ``unrepaired-false-commitment``; a caller that knows more combines the two.

The 信用中国 outbox is filled in the same transaction as the rest: one row per record to
push (``recorded``, ``corrected``, ``removed``, ``repaired``), keyed by the ledger event id
that caused it, so that a re-push after a crash is recognisable by the receiver.  The outbox
keeps its delivery state across a rebuild: a rebuild re-inserts the same ids and leaves
rows already there (and their delivery state) as they are.

Personal data is not kept in clear (decision 26, :mod:`projections.encrypted_columns`): the
``applicant`` columns hold a keyed pseudonym of the ID number, which every look-up computes
from its argument; the folded case (``state``), the record texts, the steps' details and the
信用中国 records are encrypted with the view key and decrypted only when read.  Names are kept
masked (an organisation's name is shown as it is).  Without a view key the view refuses to
apply commitment events or to look an applicant up.
"""
from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any

import msgspec

from aggregates import commitment
from aggregates.commitment import CommitmentState
from aggregates.database import Location, db_errors, describe
from aggregates.errors import RuleError
from projections.base import POSITIONS, KeyedProjection
from projections.encrypted_columns import EncryptedColumns, key_recorded, record_key, required, scrubbed
from schemas.commitment import (
    CreditObjectionRaised,
    CreditObjectionReviewed,
    CreditRecorded,
    CreditRepairApplied,
    CreditRepairApproved,
    CreditRepairRejected,
    FalseCommitmentFound,
    RectificationOrdered,
    Rectified,
    Standing,
)
from schemas.envelope import Envelope
from schemas.errors import XiezhuError
from schemas.privacy import mask_id, mask_name

CASES = "credit_cases"
STEPS = "credit_steps"
SEEN = "credit_seen"
OUTBOX = "credit_outbox"
#: Ledger events that belong in an applicant's credit history.
HISTORY_STEPS = frozenset({
    "commitment.found-false", "commitment.rectification-ordered", "commitment.rectified",
    "commitment.credit-recorded", "commitment.credit-objection", "commitment.credit-objection-reviewed",
    "commitment.credit-repair-applied", "commitment.credit-repair-approved", "commitment.credit-repair-rejected",
})
BARRED: Standing = "unrepaired-false-commitment"
#: Columns encrypted with the view key, per table, and each table's primary key (bound into the ciphertext).
ENCRYPTED = {CASES: ("state", "record"), STEPS: ("detail",), OUTBOX: ("record",)}
PRIMARY_KEYS = {CASES: "case_id", STEPS: "event_id", OUTBOX: "record_id"}
_APPLICANT = re.compile(r"^[0-9A-Z]{15,18}$")
_state = msgspec.json.Decoder(CommitmentState)


class CreditViewError(XiezhuError):
    """A question the credit view cannot answer as asked (a malformed ID, a time without a zone)."""

    code = "credit-view"


def applicant_key(applicant: str) -> str:
    """The view's key: an ID number or a USCC, upper-case; raises CreditViewError otherwise."""
    key = applicant.strip().upper()
    if not _APPLICANT.match(key):
        raise CreditViewError(f"{mask_id(key)!r} is not an ID number or a USCC (15–18 digits and capitals)",
                              zh=f"{mask_id(key)!r} 不是身份证号码或统一社会信用代码（15–18 位数字和大写字母）")
    return key


def iso(t: datetime) -> str:
    """One fixed UTC form, so that stored times compare correctly as text."""
    if t.tzinfo is None:
        raise CreditViewError(f"time {t.isoformat()} has no time zone", zh=f"时间 {t.isoformat()} 没有时区")
    return t.astimezone(UTC).isoformat(timespec="microseconds")


class CreditView(KeyedProjection):
    """Per applicant: commitments, false ones, credit steps and standing over time; plus the 信用中国 outbox."""

    name = "credit"
    #: The outbox is not dropped on rebuild: its delivery state is not in the ledger.
    tables = (CASES, STEPS, SEEN)

    def __init__(self, path: Location, *, view_key: bytes | None = None) -> None:
        """``view_key``: 区司法局's store key, which encrypts the applicants' data (decision 26).

        Without it the view still lists the outbox's delivery state, but refuses to apply
        commitment events or to look an applicant up.  A view written with another key raises
        :class:`~projections.encrypted_columns.ViewKeyMismatch` and is left as it was.
        """
        super().__init__(path, view_key=view_key)

    def create_tables(self) -> None:
        db = self.db
        cols = self._columns
        first = cols is not None and not key_recorded(db, self.name, cols, self._where)
        if cols is not None and first:
            self._encrypt_what_was_clear(cols)
        if not db.table(CASES).exists():
            db.table(CASES).create({
                "case_id": str, "applicant": str, "applicant_masked": str, "kind": str, "name": str,
                "number": str, "bureau": str, "matter": str, "applied_on": str, "signed_at": str, "closed_at": str,
                "found_false_at": str, "record_status": str, "record": bytes, "record_id": str, "recorded_at": str,
                "removed_at": str, "repaired_at": str, "barred_from": str, "barred_until": str,
                "updated_at": str, "state": bytes,
            }, pk="case_id", not_null={"applicant", "number", "bureau", "record_status"})
            db.table(CASES).create_index(["applicant", "barred_from"])
        if not db.table(STEPS).exists():
            db.table(STEPS).create({
                "event_id": str, "case_id": str, "applicant": str, "number": str, "bureau": str, "step": str,
                "at": str, "detail": bytes, "record_status": str,
            }, pk="event_id", not_null={"case_id", "applicant", "step", "at"})
            db.table(STEPS).create_index(["applicant", "at"])
        if not db.table(SEEN).exists():
            db.table(SEEN).create({"event_id": str}, pk="event_id")
        if not db.table(OUTBOX).exists():
            db.table(OUTBOX).create({
                "record_id": str, "kind": str, "case_id": str, "number": str, "bureau": str, "applicant": str,
                "applicant_masked": str, "created_at": str, "record": bytes, "status": str, "attempts": int,
                "last_error": str, "attempted_at": str, "delivered_at": str, "receipt": str,
            }, pk="record_id", not_null={"kind", "status", "record"}, defaults={"status": "pending", "attempts": 0})
            db.table(OUTBOX).create_index(["status"])
        if cols is not None and first:
            record_key(db, self.name, cols, self._where)

    def _encrypt_what_was_clear(self, cols: EncryptedColumns) -> None:
        """A file without this key's check: a new view, or one written before its personal data was encrypted.

        The folds are dropped (the next follow refolds them from the ledger, encrypted); the outbox,
        whose delivery state is not in the ledger, is pseudonymised and encrypted in place.  Both steps
        can be repeated: after a crash in between, the next open finishes the job.
        """
        db = self.db

        def work() -> None:
            for t in self.tables:
                db.execute(f"DROP TABLE IF EXISTS {t}")
            db.execute(f"DELETE FROM {POSITIONS} WHERE name = ?", [self.name])
            if db.table(OUTBOX).exists():
                clear = db.execute(f"SELECT record_id, applicant, record FROM {OUTBOX} "
                                   "WHERE typeof(record) = 'text'").fetchall()
                for rid, applicant, record in clear:
                    db.execute(f"UPDATE {OUTBOX} SET applicant = ?, record = ? WHERE record_id = ?",
                               [cols.pseudonym(applicant_key(applicant)) if applicant else None,
                                cols.encrypt(OUTBOX, "record", rid, str(record).encode()), rid])

        scrubbed(db, work)

    # -- following the ledger ----------------------------------------------------------

    def wants(self, event_type: str) -> bool:
        return event_type.startswith("commitment.")

    def apply(self, env: Envelope, arrived_at: str) -> None:
        if not env.type.startswith("commitment."):
            return
        cols = required(self._columns, "credit")
        # Idempotent per event id: a CLI and a running node may follow the same file at once.
        if self.db.execute(f"SELECT 1 FROM {SEEN} WHERE event_id = ?", [env.id]).fetchone():
            return
        self.db.table(SEEN).insert({"event_id": env.id})
        row = self._case_row(env.case)
        try:
            st = commitment.apply(_state.decode(cols.decrypt(CASES, "state", env.case, row["state"])) if row else None,
                                  env)
        except RuleError:
            return  # the ledger keeps it; the fold (as the bureau's own store) would not have recorded it
        row = self._next_row(cols, row or {}, st, env)
        self.db.table(CASES).upsert(row, pk="case_id")
        if env.type in HISTORY_STEPS:
            self.db.table(STEPS).insert({
                "event_id": env.id, "case_id": st.case, "applicant": self._pseudonym_of(cols, st), "number": st.number,
                "bureau": st.bureau, "step": env.type.removeprefix("commitment."), "at": iso(env.time),
                "detail": cols.encrypt(STEPS, "detail", env.id, _detail(env).encode()), "record_status": st.credit,
            }, pk="event_id", replace=True)
        kind = _push_kind(env)
        if kind:
            self._enqueue(cols, kind, st, env, row["record_id"])

    def _case_row(self, case_id: str) -> dict[str, Any] | None:
        cur = self.db.execute(f"SELECT * FROM {CASES} WHERE case_id = ?", [case_id])
        found = cur.fetchone()
        return dict(zip([c[0] for c in cur.description], found, strict=True)) if found else None

    @staticmethod
    def _pseudonym_of(cols: EncryptedColumns, st: CommitmentState) -> str:
        return cols.pseudonym(applicant_key(st.applicant.id_number))

    def _next_row(self, cols: EncryptedColumns, row: dict[str, Any], st: CommitmentState,
                  env: Envelope) -> dict[str, Any]:
        def t(v: datetime | None) -> str | None:
            return iso(v) if v else None

        person = st.applicant.kind == "person"
        row = {**row, "case_id": st.case, "applicant": self._pseudonym_of(cols, st),
               "applicant_masked": mask_id(st.applicant.id_number), "kind": st.applicant.kind,
               "name": mask_name(st.applicant.name) if person else st.applicant.name, "number": st.number,
               "bureau": st.bureau, "matter": st.matter_name, "applied_on": st.applied_on.isoformat(),
               "found_false_at": t(st.found_false_at), "record_status": st.credit,
               "record": cols.encrypt(CASES, "record", st.case, st.credit_record.encode()),
               "recorded_at": t(st.credit_recorded_at), "removed_at": t(st.removed_at),
               "repaired_at": t(st.repaired_at), "barred_from": t(st.found_false_at),
               "barred_until": t(st.removed_at or st.repaired_at), "updated_at": iso(env.time),
               "state": cols.encrypt(CASES, "state", st.case, msgspec.json.encode(st))}
        row.setdefault("signed_at", None)
        row.setdefault("closed_at", None)
        row.setdefault("record_id", None)
        if env.type == "commitment.signed":
            row["signed_at"] = iso(env.time)
        elif env.type == "commitment.closed":
            row["closed_at"] = iso(env.time)
        elif env.type == "commitment.credit-recorded":
            row["record_id"] = env.id
        return row

    def _enqueue(self, cols: EncryptedColumns, kind: str, st: CommitmentState, env: Envelope, refers_to: str) -> None:
        """One record for 信用中国, with the applicant's full ID (the one place it is needed unmasked), encrypted."""
        ev = env.payload
        basis = ev.legal_reason if isinstance(ev, CreditRecorded) else getattr(ev, "reasons", "")
        record = {
            "record_id": env.id, "kind": kind, "refers_to": refers_to, "bureau": st.bureau,
            "case_number": st.number, "case_id": st.case,
            "applicant": {"kind": st.applicant.kind, "name": st.applicant.name, "id_number": st.applicant.id_number},
            "matter": {"code": st.matter_code, "name": st.matter_name}, "false_items": list(st.false_items),
            "record": st.credit_record, "basis": basis, "found_false_at": iso(st.found_false_at or env.time),
            "recorded_at": iso(st.credit_recorded_at or env.time), "effective_at": iso(env.time),
        }
        self.db.table(OUTBOX).insert({
            "record_id": env.id, "kind": kind, "case_id": st.case, "number": st.number, "bureau": st.bureau,
            "applicant": self._pseudonym_of(cols, st), "applicant_masked": mask_id(st.applicant.id_number),
            "created_at": iso(env.time), "record": cols.encrypt(OUTBOX, "record", env.id, msgspec.json.encode(record)),
            "status": "pending", "attempts": 0,
        }, pk="record_id", ignore=True)  # a rebuild keeps the row already there, delivered or not

    # -- standing ------------------------------------------------------------------------

    def standing(self, applicant: str, at: datetime | None = None) -> Standing:
        """``good`` or ``unrepaired-false-commitment`` at ``at`` (default: after everything recorded)."""
        key = self.pseudonym(applicant)
        if at is None:
            sql = f"SELECT 1 FROM {CASES} WHERE applicant = ? AND barred_from IS NOT NULL AND barred_until IS NULL"
            args = [key]
        else:
            t = iso(at)
            sql = (f"SELECT 1 FROM {CASES} WHERE applicant = ? AND barred_from IS NOT NULL AND barred_from <= ? "
                   "AND (barred_until IS NULL OR barred_until > ?)")
            args = [key, t, t]
        with self._lock:
            barred = self.db.execute(sql + " LIMIT 1", args).fetchone() is not None
        return BARRED if barred else "good"

    def may_use_commitment_route(self, applicant: str, at: datetime | None = None) -> bool:
        """四(二): whether the commitment route is open to the applicant at ``at`` (as far as this view knows)."""
        return self.standing(applicant, at) == "good"

    def pseudonym(self, applicant: str) -> str:
        """What the view's ``applicant`` columns hold for an ID number or USCC (CreditViewError if malformed)."""
        key = applicant_key(applicant)
        return required(self._columns, "credit").pseudonym(key)

    # -- what an operator reads (applicant masked) ------------------------------------------

    def cases(self, applicant: str) -> list[dict[str, Any]]:
        """The applicant's commitment cases, oldest first, without the folded state."""
        key = self.pseudonym(applicant)
        with self._lock:
            rows = list(self.db.table(CASES).rows_where("applicant = ?", [key], order_by="applied_on, number, bureau"))
        return [{k: v for k, v in self._opened(CASES, r).items() if k not in ("state", "applicant")} for r in rows]

    def history(self, applicant: str) -> list[dict[str, Any]]:
        """Every credit step of the applicant, in time order."""
        key = self.pseudonym(applicant)
        with self._lock:
            rows = list(self.db.table(STEPS).rows_where("applicant = ?", [key], order_by="at, rowid"))
        return [{k: v for k, v in self._opened(STEPS, r).items() if k != "applicant"} for r in rows]

    def _opened(self, table: str, row: dict[str, Any]) -> dict[str, Any]:
        """The row with its encrypted columns decrypted (texts decoded; the folded state stays JSON bytes)."""
        cols = required(self._columns, "credit")
        out = dict(row)
        for c in ENCRYPTED.get(table, ()):
            plain = cols.decrypt(table, c, row[PRIMARY_KEYS[table]], row[c])
            out[c] = plain if c == "state" else plain.decode()
        return out

    def plain_rows(self, table: str) -> list[dict[str, Any]]:
        """Every row of one of the view's tables, in the order written, encrypted columns decrypted.

        Encrypting draws a fresh nonce each time, so two views of the same ledger differ in their bytes;
        these rows are what must be equal (a rebuilt view against a live one).
        """
        with self._lock:
            rows = list(self.db.table(table).rows_where(order_by="rowid"))
        return [self._opened(table, r) for r in rows]

    def summary(self, applicant: str, at: datetime | None = None) -> dict[str, Any]:
        """Standing, the route, counts, cases and history of one applicant (masked), for a clerk or a CLI."""
        key = applicant_key(applicant)
        with self._lock:  # one consistent reading, not one half before a follow and half after
            cases, history, standing = self.cases(key), self.history(key), self.standing(key, at)
        first = cases[0] if cases else {}
        return {
            "applicant": mask_id(key), "kind": first.get("kind", ""), "name": first.get("name", ""),
            "at": iso(at) if at else None, "standing": standing, "may_use_commitment_route": standing == "good",
            "counts": {
                "cases": len(cases),
                "signed": sum(1 for c in cases if c["signed_at"]),
                "fulfilled": sum(1 for c in cases if c["closed_at"]),
                "found_false": sum(1 for c in cases if c["found_false_at"]),
                "unrepaired": sum(1 for c in cases if c["barred_from"] and not c["barred_until"]),
                "repaired": sum(1 for c in cases if c["record_status"] == "repaired"),
                "removed": sum(1 for c in cases if c["record_status"] == "removed"),
            },
            "cases": [{k: c[k] for k in ("number", "bureau", "matter", "applied_on", "signed_at", "closed_at",
                                         "found_false_at", "record_status", "record", "barred_from", "barred_until")}
                      for c in cases],
            "history": history,
        }

    # -- the 信用中国 outbox ------------------------------------------------------------------

    def outbox(self, status: str | None = None) -> list[dict[str, Any]]:
        """Outbox rows in the order they were made, applicant masked, without the record body."""
        where, args = ("status = ?", [status]) if status else (None, [])
        with self._lock:
            rows = self.db.table(OUTBOX).rows_where(where, args, order_by="rowid")
            return [{k: v for k, v in r.items() if k not in ("record", "applicant")} for r in rows]

    def pending(self, limit: int | None = None) -> list[dict[str, Any]]:
        """Records still to push, oldest first: ``record_id``, ``case_id``, ``attempts`` and the full ``record``."""
        with self._lock:
            rows = list(self.db.table(OUTBOX).rows_where("status = 'pending'", order_by="rowid", limit=limit))
        # Opened here, as they are delivered: the one place the full record is needed in clear.
        return [{"record_id": r["record_id"], "case_id": r["case_id"], "kind": r["kind"], "attempts": r["attempts"],
                 "record": msgspec.json.decode(self._opened(OUTBOX, r)["record"])} for r in rows]

    def mark_delivered(self, record_id: str, receipt: str, at: datetime) -> None:
        """信用中国 acknowledged the record."""
        self._mark(record_id, "status = 'delivered', receipt = ?, delivered_at = ?, attempted_at = ?, "
                              "attempts = attempts + 1", [receipt, iso(at), iso(at)])

    def mark_failed(self, record_id: str, error: str, at: datetime) -> None:
        """A push failed: the record stays pending, with one more attempt and the error."""
        self._mark(record_id, "attempts = attempts + 1, last_error = ?, attempted_at = ?", [error[:500], iso(at)])

    def _mark(self, record_id: str, assignments: str, args: list[Any]) -> None:
        with self._lock, self.db.conn:
            cur = self.db.execute(f"UPDATE {OUTBOX} SET {assignments} WHERE record_id = ? AND status = 'pending'",
                                  [*args, record_id])
        if cur.rowcount != 1:
            raise CreditViewError(f"no pending outbox record {record_id}", zh=f"没有待报送的发件箱记录 {record_id}")

    def counts(self) -> dict[str, int]:
        """Outbox rows by delivery status."""
        with self._lock:
            q = f"SELECT status, COUNT(*) AS n FROM {OUTBOX} GROUP BY status ORDER BY status"
            return {r[0]: r[1] for r in self.db.execute(q).fetchall()}


def _push_kind(env: Envelope) -> str:
    match env.payload:
        case CreditRecorded():
            return "recorded"
        case CreditObjectionReviewed(outcome="correct"):
            return "corrected"
        case CreditObjectionReviewed(outcome="remove"):
            return "removed"
        case CreditRepairApproved():
            return "repaired"
    return ""


def _detail(env: Envelope) -> str:
    match env.payload:
        case FalseCommitmentFound() as ev:
            return f"items {', '.join(map(str, ev.items))} false: {ev.legal_reason}"
        case RectificationOrdered() as ev:
            return f"rectify by {ev.deadline.isoformat()}: {ev.legal_reason}"
        case Rectified() as ev:
            return ev.evidence
        case CreditRecorded() as ev:
            return f"{ev.record} ({ev.legal_reason})"
        case CreditObjectionRaised() as ev:
            return ev.grounds
        case CreditObjectionReviewed() as ev:
            return f"{ev.outcome}: {ev.reasons}" + (f" → {ev.record}" if ev.record else "")
        case CreditRepairApplied() as ev:
            return ev.evidence
        case CreditRepairApproved() | CreditRepairRejected() as ev:
            return ev.reasons
    return ""


def open_view(path: Location, *, view_key: bytes | None = None) -> CreditView:
    """The credit view at ``path`` (created if missing), encrypted with ``view_key``."""
    try:
        return CreditView(path, view_key=view_key)
    except db_errors() as e:
        raise CreditViewError(f"cannot open the credit view at {describe(path)}: {e}",
                              zh=f"无法打开 {describe(path)} 处的信用视图：{e}") from e
