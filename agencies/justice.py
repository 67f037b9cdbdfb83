"""区司法局's actions: the catalogues, the memoranda, disputes, the ledger's checkpoints, case reveals.

The service layer for the district's justice bureau, beside :mod:`agencies.desk` for the
other bureaus (decision 28).  区司法局 reviews the catalogues of 附件8 and 附件9,
publishes them (but for the 证明事项清单's first version, which 区政府 publishes: decision 51) and files
the 证明事项清单 with 市司法局, files the memoranda of 第六条, takes up a dispute whose negotiation
failed and rules on it with 区委编办 (or asks 区政府 to decide, and takes its decision into the
catalogue), signs checkpoints of the ledger, and is the one entitled to show a case of the ledger in
full, on the record.
"""
from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from datetime import datetime
from typing import Any, Protocol

from agencies.desk import Desk, DeskError
from agencies.disclosure import AccessLog, Disclosure, ReadsLedger, Revealed, case_disclosure
from aggregates.catalogue import Adjustment
from aggregates.dispute import DisputeState
from aggregates.registry import zh_name
from aggregates.store import BureauStore
from schemas.catalogue import JUSTICE, STAFFING_OFFICE, Kind, Memorandum, Row
from schemas.errors import XiezhuError

#: Signs a checkpoint message: the key id and the signature.
SignCheckpoint = Callable[[bytes], tuple[str, bytes]]


class JusticeError(XiezhuError):
    """区司法局 cannot act as asked."""

    code = "justice"


class Checkpoints(Protocol):
    """A ledger that 区司法局 checkpoints (:class:`Ledger`)."""

    def checkpoint(self, sign: SignCheckpoint, at: datetime) -> Any: ...


class Justice:
    """What 区司法局 does; its own bureau store is behind :attr:`desk`."""

    def __init__(self, desk: Desk, *, sign_checkpoint: Callable[[], SignCheckpoint] | None = None,
                 access_log: AccessLog | None = None) -> None:
        """``sign_checkpoint`` gives 区司法局's checkpoint signer where its key is on this machine."""
        if desk.bureau != JUSTICE:
            raise JusticeError(f"区司法局's services run on {JUSTICE}'s store, not {desk.bureau}'s",
                               zh=f"区司法局的服务在{zh_name(JUSTICE)}的存储上运行，而不是{zh_name(desk.bureau)}的")
        self.desk = desk
        self.catalogue = desk.catalogue
        self._sign_checkpoint = sign_checkpoint
        self.access_log = access_log

    @property
    def _store(self) -> BureauStore:
        return self.desk._store  # the service layer holds the store calls

    # -- the catalogues of 附件8 / 附件9 --------------------------------------------------------

    def review(self, adjustment: str, approve: bool, reasons: str = "") -> Adjustment:
        """Approve, or reject with reasons, a bureau's adjustment."""
        return self.catalogue.review(adjustment, approve, reasons)

    def publish(self, kind: Kind, *, file_with_city: bool = True) -> int:
        """Publish every approved adjustment as the next version; a version of the 证明事项清单 is (by default)
        filed with 市司法局 (一(四)).  The 证明事项清单's first version is 区政府's to publish (一(三))."""
        version = self.catalogue.publish(kind)
        if file_with_city and kind == "matters":
            self.catalogue.file_with_city(kind, version)
        return version

    def file_with_city(self, kind: Kind, version: int) -> None:
        """Record a version's filing with 市司法局."""
        self.catalogue.file_with_city(kind, version)

    def file_memorandum(self, memo: Memorandum) -> None:
        """第六条: file the memorandum (or 第十一条 agreement) of two bureaus for on-site assistance."""
        self.catalogue.file_memorandum(memo)

    # -- disputes (第八条) -----------------------------------------------------------------------

    def disputes(self) -> Iterator[DisputeState]:
        """Every dispute in 区司法局's file."""
        return self.desk.disputes()

    def dispute(self, number: str, raiser: str | None = None) -> str:
        """The id of dispute ``number`` in 区司法局's file."""
        found = self.desk.find_dispute(number, raiser)
        if found is None:
            raise DeskError(f"no dispute numbered {number} in {JUSTICE}'s store" +
                            (f" from {raiser}" if raiser else "") + "; has the sifa agent received it?",
                            zh=f"{zh_name(JUSTICE)}的存储中没有" + (f"{zh_name(raiser)}提出的" if raiser else "")
                               + f"编号为 {number} 的争议；区司法局的代理程序收到了吗？")
        return found

    def take_up(self, dispute: str, reasons: str) -> DisputeState:
        """Take up a dispute whose negotiation failed, to determine it with 区委编办."""
        return self._store.disputes.refer(dispute, reasons)

    def amend(self, dispute: str, kind: Kind, basis: str, *, adds: Sequence[Row] = (),
              replaces: Sequence[Row] = (), removes: Sequence[str] = ()) -> str:
        """Apply the catalogue adjustment a ruling or decision needs, under the dispute's number."""
        return str(self._store.disputes.amend_catalogue(dispute, kind, basis, adds=adds, replaces=replaces,
                                                        removes=removes))

    def amend_sheet(self, dispute: str, kind: Kind, basis: str, wanted: Sequence[Row],
                    removes: Sequence[str] = ()) -> tuple[str, int, int]:
        """:meth:`amend` from a sheet: rows whose code is published replace it, the others are added.

        The adjustment's id and how many rows it adds and changes.
        """
        published = {r.code: r for r in self.catalogue.current(kind)}
        adds = [r for r in wanted if r.code not in published]
        replaces = [r for r in wanted if r.code in published and published[r.code] != r]
        return self.amend(dispute, kind, basis, adds=adds, replaces=replaces, removes=removes), \
            len(adds), len(replaces)

    def rule(self, dispute: str, ruling: str, co_deciders: Sequence[str] = (), adjustment: str = "") -> DisputeState:
        """区司法局会同区委编办研究确定: the ruling closes the dispute."""
        units = list(dict.fromkeys([JUSTICE, STAFFING_OFFICE, *co_deciders]))
        return self._store.disputes.rule(dispute, ruling, units, adjustment=adjustment)

    def escalate(self, dispute: str, reasons: str) -> DisputeState:
        """必要时: ask 区政府 to decide a dispute taken up and not yet ruled."""
        return self._store.disputes.escalate(dispute, reasons)

    def take_in(self, dispute: str, adjustment: str) -> DisputeState:
        """决定作出后纳入行政协助目录: name the adjustment that takes 区政府's decision in; closes the dispute."""
        return self._store.disputes.take_in(dispute, adjustment)

    # -- the ledger ------------------------------------------------------------------------------

    def checkpoint_signer(self) -> SignCheckpoint:
        """区司法局's checkpoint signer on this machine (an error where its key is not here)."""
        if self._sign_checkpoint is None:
            raise JusticeError(f"this machine does not hold {JUSTICE}'s signing key: it cannot sign a checkpoint",
                               zh=f"本机没有{zh_name(JUSTICE)}的签名密钥：无法签署检查点")
        return self._sign_checkpoint()

    def checkpoint(self, ledger: Checkpoints, at: datetime) -> Any:
        """Sign the ledger's head as a checkpoint (None if it is empty or already checkpointed there)."""
        return ledger.checkpoint(self.checkpoint_signer(), at)

    def reveal_case(self, ledger: ReadsLedger, case: str, *, command: str, reason: str | None,
                    operator: str) -> tuple[Revealed, Disclosure] | None:
        """A ledger case's applicant and commitments in full (replay, history), once on the record.

        The showing goes to the access log first and then, as a notice about the case, through
        区司法局's store to the ledger.  ``None`` for a case without an applicant (a dispute).
        """
        if self.access_log is None:
            raise JusticeError("no access log on this machine; nothing is shown", zh="本机没有查阅记录；不予显示")
        return case_disclosure(ledger, case, log=self.access_log, command=command, reason=reason,
                               operator=operator, store=self._store.notices)
