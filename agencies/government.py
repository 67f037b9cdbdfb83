"""区政府's own acts, through 区政府办公室 (``zhengfuban``), the office through which 区政府 acts.

The service layer for the district government, beside :mod:`agencies.justice` for 区司法局
(decision 36).  The seed gives 区政府 three acts in xiezhu's reach, each signed with
区政府办公室's key, so that the record shows 区政府 took them and not 区司法局:

- 附件2 第十二条: 由区政府予以教育或通报批评，责令其限期改正 — a signed notice to the bureau
  (decision 43).
- 一(三): 区司法局审核后按程序报请由区政府公布实施 — 区政府 publishes the 证明事项清单 区司法局 reviewed
  (its first version; later adjustments are 区司法局's to publish, 一(四)), and sends 区司法局 its
  signed act naming exactly the rows published.
- 附件2 第八条: 提请区政府作出决定 — 区政府's decision on a dispute 区司法局 and 区委编办 escalated,
  sent to 区司法局, which takes it into the 行政协助目录 (decision 51).
"""
from __future__ import annotations

from collections.abc import Sequence
from datetime import date
from typing import Any, Protocol

from agencies.desk import Desk
from aggregates.registry import zh_name
from aggregates.store import BureauStore
from schemas.catalogue import DISTRICT_GOVERNMENT
from schemas.errors import XiezhuError

#: 第十二条's two measures, as the command line may name them.
MEASURES = {"criticism": "criticism", "通报批评": "criticism", "education": "education", "教育": "education"}


class GovernmentError(XiezhuError):
    """区政府 cannot act as asked."""

    code = "government"


class LedgerCases(Protocol):
    """The ledger, as 区政府办公室 reads a dispute's routing there (:class:`broker.ledger.store.Ledger`)."""

    def case(self, case_id: str) -> list[Any]: ...


class Government:
    """What 区政府 does in xiezhu; 区政府办公室's own store is behind :attr:`desk`."""

    def __init__(self, desk: Desk) -> None:
        if desk.bureau != DISTRICT_GOVERNMENT:
            raise GovernmentError(f"区政府 acts through 区政府办公室 ({DISTRICT_GOVERNMENT}), not {desk.bureau}",
                                  zh=f"区政府通过区政府办公室（{DISTRICT_GOVERNMENT}）办理，而不是{zh_name(desk.bureau)}")
        self.desk = desk

    @property
    def _store(self) -> BureauStore:
        return self.desk._store  # the service layer holds the store calls

    def publish_list(self) -> tuple[int, bool]:
        """一(三): publish the 证明事项清单 as 区司法局 reviewed it, and send 区司法局 the signed act.

        The version's number, and whether the signed act went out now (``False``: it had gone before).
        The catalogue says whether this version is 区政府's to publish; a version 区政府 published
        whose act was not sent (a crash between the two) is sent on the next call.
        """
        store = self._store  # 区政府办公室 can sign the act (its key opens its store) before anything is published
        catalogue = self.desk.catalogue
        if catalogue.state("matters").queue():
            catalogue.publish("matters", publisher=DISTRICT_GOVERNMENT)
        latest = catalogue.state("matters").latest
        if latest is None or latest.published_by != DISTRICT_GOVERNMENT:
            raise GovernmentError("一(三): no 证明事项清单 reviewed by 区司法局 waits for 区政府 to publish it"
                                  + ("" if latest is None else f" (version {latest.number} is 区司法局's)"),
                                  zh="一(三)：没有经区司法局审核、待区政府公布的证明事项清单"
                                     + ("" if latest is None else f"（第 {latest.number} 版为区司法局的版本）"))
        sent = store.notices.publish_list("matters", latest.number, latest.digest, len(latest.rows),
                                          latest.published_at)
        return latest.number, sent

    def criticise(self, bureau: str, measure: str, about: Sequence[tuple[str, str]], reasons: str,
                  correct_by: date) -> None:
        """附件2 第十二条: educate or criticise ``bureau`` (通报批评) for the requests ``about`` ((case id,
        number) pairs) and order it to correct by ``correct_by``; a signed notice to the bureau."""
        if measure not in MEASURES:
            raise GovernmentError(f"第十二条: the measure is 教育 (education) or 通报批评 (criticism), not {measure!r}",
                                  zh=f"第十二条：处理措施为 教育 或 通报批评，而不是 {measure!r}")
        if bureau == DISTRICT_GOVERNMENT:
            raise GovernmentError("第十二条: 区政府 does not criticise its own office",
                                  zh="第十二条：区政府不对其自身的办公室通报批评")
        self._store.notices.criticise(bureau, MEASURES[measure], about, reasons, correct_by)

    def decide(self, ledger: LedgerCases, dispute_case: str, number: str, decision: str,
               decision_no: str = "") -> None:
        """第八条: 区政府's decision on dispute ``number`` (the ledger's case ``dispute_case``), which 区司法局 and
        区委编办 escalated; signed by 区政府办公室 and sent to 区司法局.

        The ledger says whether the dispute was escalated and not yet decided (the steps' types are in
        the clear); 区司法局's file checks the decision again where it arrives.
        """
        steps = [e.type for e in ledger.case(dispute_case)]
        if not steps or steps[0] != "dispute.raised":
            raise GovernmentError(f"the ledger holds no dispute {number} as case {dispute_case}",
                                  zh=f"账本中没有案件号为 {dispute_case} 的争议 {number}")
        if "dispute.escalated" not in steps:
            raise GovernmentError(f"第八条: dispute {number} was not escalated to 区政府 "
                                  f"(提请区政府作出决定 comes from 区司法局 and 区委编办)",
                                  zh=f"第八条：争议 {number} 未报请区政府"
                                     "（提请区政府作出决定须由区司法局会同区委编办提出）")
        if "dispute.decided" in steps or not self._store.disputes.decide(dispute_case, number, decision,
                                                                         decision_no):
            raise GovernmentError(f"区政府 has already decided dispute {number}",
                                  zh=f"区政府已就争议 {number} 作出决定")
