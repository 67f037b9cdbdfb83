"""A bureau clerk's actions: the service layer the CLI, the demo and the HTTP API call (decision 28).

One :class:`Desk` per bureau, over that bureau's own store.  Each method is one thing a clerk
or an operator does, takes plain values (case ids, numbers, texts, dates) and returns the
case as it now stands; the rules stay in the folds, which raise one error per legal rule.
Nothing here reads settings or the environment: :mod:`xiezhu.bootstrap` builds the desks and
wires in what they need from elsewhere (the credit view, through :class:`CreditStanding`).

The store calls are all here (and in :mod:`agencies.justice`), so a change of the store's
shape touches these two modules only.
"""
from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from datetime import date, datetime
from typing import Protocol

from agencies.disclosure import AccessLog, Disclosure, to_ledger
from aggregates.assistance import CaseState
from aggregates.catalogue import diff_rows
from aggregates.commitment import CommitmentState
from aggregates.dispute import DisputeState
from aggregates.registry import zh_name
from aggregates.store import SHANGHAI, BureauStore
from aggregates.store.catalogue import CatalogueRegistry
from schemas import labels
from schemas.assistance import Applicant, Channel, CommitmentItem, ItemResult, Matter, Verdict
from schemas.catalogue import Kind, Row
from schemas.commitment import PlannedItem, ReviewOutcome, Standing
from schemas.dispute import Outcome
from schemas.envelope import Envelope, Signed
from schemas.errors import XiezhuError

#: 四(二): why the commitment route is closed to an applicant of poor credit.
CREDIT_REFUSAL = "四(二)：申请人{standing}，在信用修复前不适用告知承诺制，请提交证明。"
#: 二(四): the applicant does not consent to the commitment being made public.
DISCLOSURE_REFUSAL = "二(四)：申请人不同意公开承诺书，应当提交法律法规要求的证明。"


class DeskError(XiezhuError):
    """A clerk's action names something this bureau does not hold."""

    code = "desk"


class CreditStanding(Protocol):
    """四(二): an applicant's credit standing at a time (the credit view, wired in by the bootstrap)."""

    def standing(self, applicant: str, at: datetime | None = None) -> Standing: ...


class Desk:
    """What one bureau's clerks and operators do, each action one method."""

    def __init__(self, bureau: str, store: BureauStore | Callable[[], BureauStore], catalogue: CatalogueRegistry, *,
                 verify: Callable[[Signed], Envelope] | None = None, credit: CreditStanding | None = None,
                 access_log: AccessLog | None = None) -> None:
        """``store`` is the bureau's store, or what opens it when first needed (the catalogue's
        actions need none).  ``verify`` checks (and opens) a dispute's signed raise taken up here;
        ``credit`` is the credit gate of :meth:`open_case`; ``access_log`` records what
        :meth:`reveal_inbox` shows."""
        self.bureau = bureau
        self._opened: BureauStore | None = store if isinstance(store, BureauStore) else None
        self._open = store if not isinstance(store, BureauStore) else None
        self.catalogue = catalogue
        self.verify = verify
        self.credit = credit
        self.access_log = access_log

    @property
    def _store(self) -> BureauStore:
        """The bureau's store: every store call of a clerk's action is in this module."""
        if self._opened is None:
            assert self._open is not None
            self._opened = self._open()
        return self._opened

    def _today(self) -> date:
        return self._store.clock.now().astimezone(SHANGHAI).date()

    # -- reading what this bureau holds ---------------------------------------------------

    def requests(self) -> Iterator[CaseState]:
        """Every assistance case of this bureau, sent or received."""
        return self._store.assistance.cases()

    def request(self, case: str) -> CaseState:
        """One assistance case as it stands."""
        return self._store.assistance.case(case).state

    def signed_events(self, case: str) -> list[Signed]:
        """The signed events of an assistance case, in order, as they were sent or received."""
        return list(self._store.assistance.case(case).envelopes)

    def inbox(self) -> list[CaseState]:
        """Requests addressed to this bureau that wait for a person."""
        return self._store.assistance.inbox()

    def commitments(self) -> Iterator[CommitmentState]:
        """Every commitment case this bureau handles."""
        return self._store.commitments.cases()

    def commitment(self, case: str) -> CommitmentState:
        """One commitment case as it stands."""
        return self._store.commitments.case(case).state

    def requests_for(self, commitment_case: str) -> list[CaseState]:
        """The assistance requests sent to verify a commitment case."""
        return self._store.assistance.for_commitment(commitment_case)

    def disputes(self) -> Iterator[DisputeState]:
        """Every dispute this bureau is a party to (区司法局: every dispute in its file)."""
        return self._store.disputes.cases()

    def signed_dispute(self, dispute: str) -> list[Signed]:
        """The signed events of a dispute, in order (its first is the signed raise the other party takes up)."""
        return list(self._store.disputes.case(dispute).envelopes)

    def unsent(self, after: int) -> list[tuple[int, Signed]]:
        """What this bureau committed to send after its relay's position ``after`` (not yet acknowledged)."""
        found: list[tuple[int, Signed]] = []
        while batch := self._store.outgoing_since(after, 1000):
            found += batch
            after = batch[-1][0]
        return found

    def close(self) -> None:
        """Close the store, if this desk opened it."""
        if self._opened is not None:
            self._opened.close()
            self._opened = None

    def find_request(self, number: str, requester: str | None = None) -> str:
        """The case id of the request numbered ``number`` (``requester`` where numbers clash)."""
        matches = [s for s in self._store.assistance.cases()
                   if s.number == number and (requester is None or s.requester == requester)]
        if not matches:
            raise DeskError(f"no request numbered {number} in {self.bureau}'s store",
                            zh=f"{zh_name(self.bureau)}的存储中没有编号为 {number} 的请求")
        if len(matches) > 1:
            raise DeskError(f"{len(matches)} requests are numbered {number}; add --from REQUESTER",
                            zh=f"编号为 {number} 的请求有 {len(matches)} 件；请加 --from 提出方")
        return str(matches[0].case)

    def find_commitment(self, number: str) -> str:
        """The case id of the commitment case numbered ``number`` (C20260001)."""
        found = [c.case for c in self._store.commitments.cases() if c.number == number]
        if not found:
            raise DeskError(f"no commitment case {number} in {self.bureau}'s store",
                            zh=f"{zh_name(self.bureau)}的存储中没有编号为 {number} 的告知承诺案件")
        return found[0]

    def find_dispute(self, number: str, raiser: str | None = None) -> str | None:
        """The id of the dispute numbered ``number`` here (``raiser`` where numbers clash), or None."""
        matches = [d for d in self._store.disputes.cases()
                   if d.number == number and (raiser is None or d.raised_by == raiser)]
        if len(matches) > 1:
            raise DeskError(f"{len(matches)} disputes are numbered {number}; add --from RAISER",
                            zh=f"编号为 {number} 的争议有 {len(matches)} 件；请加 --from 提出争议的单位")
        return matches[0].case if matches else None

    # -- a commitment case (告知承诺), at the handling bureau -----------------------------------

    def open_case(self, applicant: Applicant, matter_code: str, items: Sequence[CommitmentItem],
                  applied_on: date | None = None) -> CommitmentState:
        """An application for a matter of the published 附件8 list; the credit gate decides the route.

        四(二): an applicant whose standing (from the credit view) is not good cannot use the
        commitment route; the case is opened and its route refused at once, with the reason.
        """
        cat = self.catalogue
        matter = cat.matter(matter_code)
        standing: Standing = "good" if self.credit is None else \
            self.credit.standing(applicant.id_number, self._store.clock.now())
        st = self._store.commitments.open(
            applicant=applicant, matter_code=matter.code, matter_name=matter.service_matter_name,
            service_matter_code=matter.service_matter_code, certificate_name=matter.certificate_name,
            issuing_unit=matter.issuing_unit, mode=matter.mode,
            items=items, applied_on=applied_on or self._today(), disclose=matter.disclose_commitment,
            catalogue_version=len(cat.versions("matters")), standing=standing)
        if standing != "good":
            return self._store.commitments.refuse_route(st.case, "credit",
                                                        CREDIT_REFUSAL.format(standing=labels.STANDING[standing]))
        return st

    def issue_notice(self, case: str) -> CommitmentState:
        """Give the applicant the 告知书 (附件6)."""
        return self._store.commitments.issue_notice(case)

    def refuse_disclosure(self, case: str) -> CommitmentState:
        """二(四): the applicant does not consent to making the commitment public; certificates are needed."""
        return self._store.commitments.refuse_route(case, "disclosure-refused", DISCLOSURE_REFUSAL)

    def choose_route(self, case: str, route: str) -> CommitmentState:
        """可选择 matters: the applicant commits (``commitment``) or brings the certificate (``certificate``)."""
        return self._store.commitments.choose_route(case, route)

    def commit(self, case: str, signed_on: date | None = None) -> CommitmentState:
        """The applicant signs the 承诺书 (附件7)."""
        return self._store.commitments.sign(case, signed_on or self._today())

    def approve(self, case: str, decision_no: str) -> CommitmentState:
        """Approve the licence on the commitment (before or after verification)."""
        return self._store.commitments.approve(case, decision_no)

    def withdraw_case(self, case: str, reason: str) -> CommitmentState:
        """二(三): the applicant withdraws from the commitment route midway."""
        return self._store.commitments.withdraw(case, reason)

    def plan_verification(self, case: str, items: Sequence[PlannedItem]) -> CommitmentState:
        """How and by when each committed item is verified (online, by assistance, on site)."""
        return self._store.commitments.plan_verification(case, items)

    def verify_item(self, case: str, no: int, verdict: Verdict, source: str, reason: str = "") -> CommitmentState:
        """Record one item's verification, with where the verdict came from."""
        return self._store.commitments.verify_item(case, no, verdict, source, reason)

    def verify_on_site(self, case: str, no: int, verdict: Verdict, officers: Sequence[str],
                       reason: str = "") -> CommitmentState:
        """Record an on-site check of one item by (at least two) officers."""
        return self._store.commitments.verify_item(case, no, verdict, "on-site:" + "、".join(officers), reason)

    def conclude(self, case: str) -> CommitmentState | None:
        """Close the verification once every item has its verdict (None if it cannot be closed yet)."""
        return self._store.commitments.conclude(case)

    # 三(三): what follows a false commitment, each with its legal reason.

    def terminate(self, case: str, legal_reason: str) -> CommitmentState:
        return self._store.commitments.terminate(case, legal_reason)

    def order_rectification(self, case: str, deadline: date, legal_reason: str) -> CommitmentState:
        return self._store.commitments.order_rectification(case, deadline, legal_reason)

    def confirm_rectification(self, case: str, evidence: str) -> CommitmentState:
        return self._store.commitments.confirm_rectification(case, evidence)

    def revoke(self, case: str, legal_reason: str) -> CommitmentState:
        return self._store.commitments.revoke(case, legal_reason)

    def penalise(self, case: str, penalty: str, legal_reason: str) -> CommitmentState:
        return self._store.commitments.penalise(case, penalty, legal_reason)

    def record_credit(self, case: str, record: str, legal_reason: str) -> CommitmentState:
        """A second credit record: the first is made with the finding (decision 39), so this is refused."""
        return self._store.commitments.record_credit(case, record, legal_reason)

    def notify_supervisor(self, case: str, department: str, legal_reason: str) -> CommitmentState:
        """附件6: 推送监管部门予以惩处 — a signed notice to the supervising department, on the case's record."""
        return self._store.commitments.notify_supervisor(case, department, legal_reason)

    def return_licence(self, case: str, returned_at: datetime, note: str = "") -> CommitmentState:
        """附件6: the licence original came back (due 撤销之日起2日内)."""
        return self._store.commitments.return_licence(case, returned_at, note)

    def supervise(self, case: str, no: int, verdict: Verdict, way: str, reason: str = "") -> CommitmentState:
        """三(三) 事中事后监管: what supervision found of one committed item, after the decision (decision 32)."""
        return self._store.commitments.supervise(case, no, verdict, way, reason)

    def refer(self, case: str, to: str, legal_reason: str) -> CommitmentState:
        return self._store.commitments.refer(case, to, legal_reason)

    # The credit record's objection (异议) and repair (信用修复), at the bureau that made it.

    def raise_objection(self, case: str, grounds: str) -> CommitmentState:
        return self._store.commitments.raise_objection(case, grounds)

    def review_objection(self, case: str, outcome: ReviewOutcome, reasons: str, record: str = "") -> CommitmentState:
        return self._store.commitments.review_objection(case, outcome, reasons, record=record)

    def apply_repair(self, case: str, evidence: str) -> CommitmentState:
        return self._store.commitments.apply_repair(case, evidence)

    def approve_repair(self, case: str, reasons: str) -> CommitmentState:
        return self._store.commitments.approve_repair(case, reasons)

    def reject_repair(self, case: str, reasons: str) -> CommitmentState:
        return self._store.commitments.reject_repair(case, reasons)

    # -- assistance (行政协助): the requester ----------------------------------------------------

    def send_request(self, *, assistor: str, applicant: Applicant, matter: Matter, items: Sequence[CommitmentItem],
                     catalogue_item: str, applied_on: date | None = None, channel: Channel = "platform",
                     staff: Sequence[str] = (), commitment_case: str = "") -> CaseState:
        """Send a 行政协助函 for a catalogued item (第七条; 第六条 on-site items need a memorandum).

        Refused before anything is stored if the item is not catalogued for this pair: checked here before
        the store is opened, so a bureau's first request, refused, leaves no store behind.
        """
        self.catalogue.check_request(self.bureau, assistor, catalogue_item)
        return self._store.assistance.request(assistor=assistor, applicant=applicant, matter=matter,
                                              applied_on=applied_on or self._today(), items=items, channel=channel,
                                              staff=staff, catalogue_item=catalogue_item,
                                              commitment_case=commitment_case)

    def withdraw_request(self, case: str, reason: str) -> CaseState:
        """Withdraw a request this bureau no longer needs (while it is open)."""
        return self._store.assistance.withdraw(case, reason)

    # -- assistance: the assistor -------------------------------------------------------------

    def answer(self, case: str, results: Sequence[ItemResult], operator: str, on_behalf_of: str = "") -> CaseState:
        """The 回复函: a verdict for every item asked, by ``operator`` (for an archive, if forwarded)."""
        return self._store.assistance.reply(case, results, f"operator:{operator}", on_behalf_of=on_behalf_of)

    def decline(self, case: str, reasons: str, operator: str) -> CaseState:
        """Decline in writing, with the reasons (书面告知并说明理由)."""
        return self._store.assistance.decline(case, reasons, f"operator:{operator}")

    def forward(self, case: str, institution: str, note: str = "") -> CaseState:
        """第五条: ask the institution holding pre-reform archives."""
        return self._store.assistance.forward(case, institution, note)

    # -- disputes (第八条), between the parties -------------------------------------------------

    def raise_dispute(self, request_case: str, claim: str, evidence: Sequence[str] = ()) -> DisputeState:
        """Raise a dispute about one of this bureau's requests with 区司法局; it takes a D number."""
        return self._store.disputes.raise_dispute(request_case, claim, evidence)

    def take_up_dispute(self, raised: Signed) -> DisputeState:
        """Take up a dispute raised against this bureau, from the raise's signed bytes (checked here)."""
        if self.verify is None:
            raise DeskError(f"{self.bureau}'s desk has no trust list to check the dispute's signature with",
                            zh=f"{zh_name(self.bureau)}没有用于核验争议签名的信任列表")
        return self._store.disputes.join(raised, self.verify(raised))

    def negotiate(self, dispute: str, note: str, outcome: Outcome = "continuing") -> DisputeState:
        """Note the negotiation (协商); ``failed`` records 协商不成, so 区司法局 may take it up."""
        return self._store.disputes.negotiate(dispute, note, outcome)

    def settle(self, dispute: str, agreement: str) -> DisputeState:
        """协商解决: the parties' agreement closes the dispute."""
        return self._store.disputes.settle(dispute, agreement)

    # -- the catalogue: this bureau's 动态调整 -------------------------------------------------

    def apply_adjustment(self, kind: Kind, basis: str, *, adds: Sequence[Row] = (), replaces: Sequence[Row] = (),
                         removes: Sequence[str] = ()) -> str:
        """Apply to 区司法局 for an adjustment of this bureau's rows; its id (reviewed by 区司法局)."""
        return self.catalogue.apply_adjustment(kind, self.bureau, basis, adds=adds, replaces=replaces,
                                               removes=removes)

    def apply_sheet(self, kind: Kind, basis: str, wanted: Sequence[Row]) -> tuple[str, int, int, int]:
        """Apply for the differences between this bureau's published rows and ``wanted`` (its sheet).

        The adjustment's id and how many rows it adds, changes and removes.
        """
        adds, replaces, removes = diff_rows(self.catalogue.current(kind), wanted, self.bureau)
        return self.apply_adjustment(kind, basis, adds=adds, replaces=replaces, removes=removes), \
            len(adds), len(replaces), len(removes)

    # -- personal data in full, on the record (decision 27) -------------------------------------

    def reveal_inbox(self, reason: str | None, operator: str, command: str = "inbox"
                     ) -> tuple[list[CaseState], Disclosure]:
        """The inbox with its applicants in full, once the showing is in the access log and on its way
        to the ledger (one notice per case); nothing is shown if it cannot be recorded."""
        if self.access_log is None:
            raise DeskError(f"{self.bureau}'s desk keeps no access log; nothing is shown",
                            zh=f"{zh_name(self.bureau)}未保存查阅记录；不予显示")
        waiting = self._store.assistance.inbox()
        entry = self.access_log.record(
            command=command, subject=f"{self.bureau}/inbox:" + ",".join(f"{s.requester}/{s.number}" for s in waiting),
            reason=reason, operator=operator, entitled_by=f"{self.bureau} store key")
        for s in waiting:  # and on the district's record: a notice about each case, to the ledger
            to_ledger(self._store.notices, s.case, s.number, entry)
        return waiting, entry
