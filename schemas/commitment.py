"""Commitment-case events of the handling bureau (告知承诺: 一、二、三、四 of the plan).

A commitment case lives in the bureau that handles the applicant's matter.  Its events are
signed like every other and addressed to the 司法局 ledger (recipient ``ledger``), so
that a replay years later shows what the applicant was told, what they committed to, how
each commitment was verified and what followed a false one.
"""
from __future__ import annotations

from datetime import date, datetime
from typing import Annotated, Literal

import msgspec

from schemas.assistance import Applicant, Code, CommitmentItem, Text, Uuid, Verdict

#: 实施方式 of 附件8.
Mode = Literal["必须实行", "可选择"]
#: 四(二): who may not use the commitment route until their credit is repaired.
Standing = Literal["good", "serious-bad-credit", "unrepaired-false-commitment"]
#: 三(一): how one item is verified.
Method = Literal["online", "assistance", "on-site"]
Reason = Annotated[str, msgspec.Meta(min_length=2, max_length=2000)]
#: 四(一): where an applicant's credit record of one case stands (信用修复 / 异议处理).
CreditStatus = Literal["none", "recorded", "under-objection", "corrected", "removed", "repaired"]
#: 异议处理: the record is confirmed as it is, corrected (new text), or removed.
ReviewOutcome = Literal["confirm", "correct", "remove"]



class ApplicationReceived(msgspec.Struct, frozen=True, kw_only=True, tag="commitment.applied"):
    """The applicant came to handle a matter that needs a certificate on the matter list (附件8)."""

    applicant: Applicant
    matter_code: Annotated[str, msgspec.Meta(min_length=1, max_length=64)]
    matter_name: Text
    #: The 政务服务事项's own 编码 (370405-XK-0101: XK a 行政许可, JF a 行政给付); empty in cases opened
    #: before it was recorded.
    service_matter_code: Annotated[str, msgspec.Meta(max_length=64)] = ""
    certificate_name: Text
    issuing_unit: Text
    mode: Mode
    #: 二(四): the catalogue says commitments for this matter are disclosed to the public.
    disclose: bool = False
    catalogue_version: int = 0
    items: Annotated[list[CommitmentItem], msgspec.Meta(min_length=1, max_length=50)]
    applied_on: date
    #: The applicant's standing in the credit view when they applied.
    standing: Standing = "good"


class RouteRefused(msgspec.Struct, frozen=True, kw_only=True, tag="commitment.route-refused"):
    """四(二) or 二(四): the commitment route is closed to this applicant; the certificate is required."""

    cause: Literal["credit", "disclosure-refused"]
    legal_reason: Reason


class NoticeIssued(msgspec.Struct, frozen=True, kw_only=True, tag="commitment.notice-issued"):
    """承诺告知书 (附件6): the obligations, the items to commit to, the consequences of a false commitment."""

    told_disclosure: bool = False


class RouteChosen(msgspec.Struct, frozen=True, kw_only=True, tag="commitment.route-chosen"):
    """For a 可选择 matter the applicant commits, or provides the certificate."""

    route: Literal["commitment", "certificate"]


class CommitmentSigned(msgspec.Struct, frozen=True, kw_only=True, tag="commitment.signed"):
    """申请人承诺书 (附件7) signed, over exactly the items of the notice."""

    signed_on: date


class Approved(msgspec.Struct, frozen=True, kw_only=True, tag="commitment.approved"):
    """The matter is approved on the commitment (行政许可 granted without the certificate)."""

    decision_no: Annotated[str, msgspec.Meta(min_length=1, max_length=64)]


class Withdrawn(msgspec.Struct, frozen=True, kw_only=True, tag="commitment.withdrawn"):
    """二(三): the applicant leaves the commitment route before the decision; the certificate follows."""

    reason: Reason


class PlannedItem(msgspec.Struct, frozen=True, kw_only=True):
    """三(一): how, by when, and whether one committed item is verified."""

    no: Annotated[int, msgspec.Meta(ge=1, le=50)]
    method: Method
    due_on: date | None = None
    exempt: bool = False
    #: For ``assistance``: the catalogue item used; for ``on-site``: the officers.
    detail: Annotated[str, msgspec.Meta(max_length=200)] = ""


class VerificationPlanned(msgspec.Struct, frozen=True, kw_only=True, tag="commitment.verification-planned"):
    """The verification plan of the case, one entry per committed item."""

    items: Annotated[list[PlannedItem], msgspec.Meta(min_length=1, max_length=50)]


#: 三(三) 事中事后监管: the ways a bureau supervises matters handled on commitment, after the decision.
#: A finding under one of them is an ``ItemVerified`` whose source is ``supervision:<way>``.
SUPERVISION_PREFIX = "supervision:"
SUPERVISION_WAYS = ("双随机、一公开", "重点监管", "互联网＋监管", "智慧监管")


class ItemVerified(msgspec.Struct, frozen=True, kw_only=True, tag="commitment.item-verified"):
    """One committed item was checked: online, through an assistance request, on site, or by supervision
    after the decision (三(三) 事中事后监管, also of items exempt from verification and of closed cases)."""

    no: Annotated[int, msgspec.Meta(ge=1, le=50)]
    verdict: Verdict
    reason: Annotated[str, msgspec.Meta(max_length=500)] = ""
    #: ``online:<platform>``, ``assistance:<requester>/<number>``, ``on-site:<officers>``,
    #: ``supervision:<way>`` (one of SUPERVISION_WAYS).
    source: Annotated[str, msgspec.Meta(min_length=1, max_length=200)]


class Closed(msgspec.Struct, frozen=True, kw_only=True, tag="commitment.closed"):
    """Every item is true or exempt: the case is done."""

    summary: Annotated[str, msgspec.Meta(max_length=500)] = ""


class FalseCommitmentFound(msgspec.Struct, frozen=True, kw_only=True, tag="commitment.found-false"):
    """三(三): verification found the commitment untrue."""

    items: Annotated[list[int], msgspec.Meta(min_length=1)]
    legal_reason: Reason


class ProcessingTerminated(msgspec.Struct, frozen=True, kw_only=True, tag="commitment.terminated"):
    """依法终止办理: the matter is not decided (only before approval)."""

    legal_reason: Reason


class RectificationOrdered(msgspec.Struct, frozen=True, kw_only=True, tag="commitment.rectification-ordered"):
    """责令限期整改: the applicant must put things right by the deadline."""

    deadline: date
    legal_reason: Reason


class DecisionRevoked(msgspec.Struct, frozen=True, kw_only=True, tag="commitment.revoked"):
    """撤销行政决定: the approval is revoked; a licence's original is due back within 2 days (附件6).

    ``licence_return_due`` is ``None`` where the decision is no licence (a 行政给付, say): no 证件 to hand back.
    """

    licence_return_due: datetime | None = None
    legal_reason: Reason


class PenaltyImposed(msgspec.Struct, frozen=True, kw_only=True, tag="commitment.penalty"):
    """予以行政处罚."""

    penalty: Reason
    legal_reason: Reason


class SupervisorNotified(msgspec.Struct, frozen=True, kw_only=True, tag="commitment.supervisor-notified"):
    """附件6/7: 将你的信息推送监管部门予以惩处 — the case records that the supervising department was told
    (the notice itself, a :class:`PunishmentReferral`, goes to that department in the same transaction)."""

    department: Code
    legal_reason: Reason


class LicenceReturned(msgspec.Struct, frozen=True, kw_only=True, tag="commitment.licence-returned"):
    """附件6: the original licence came back after the revocation (due 撤销之日起2日内)."""

    returned_at: datetime
    note: Annotated[str, msgspec.Meta(max_length=500)] = ""


class PunishmentReferral(msgspec.Struct, frozen=True, kw_only=True, tag="notice.punishment"):
    """The notice to the supervising department (推送监管部门予以惩处): who, which case, what proved false."""

    commitment_case: Uuid
    bureau: Code
    applicant: Applicant
    matter_name: Text
    false_items: Annotated[list[int], msgspec.Meta(min_length=1)]
    legal_reason: Reason


class CreditRecorded(msgspec.Struct, frozen=True, kw_only=True, tag="commitment.credit-recorded"):
    """The false commitment goes to the applicant's credit record (推送至信用中国)."""

    record: Reason
    legal_reason: Reason


class ReferredToJudiciary(msgspec.Struct, frozen=True, kw_only=True, tag="commitment.referred"):
    """涉嫌犯罪的，依法移送司法机关."""

    to: Text
    legal_reason: Reason


# -- 四(一): 信用修复 and 异议处理 of a credit record, recorded by the bureau that made it --------------


class Rectified(msgspec.Struct, frozen=True, kw_only=True, tag="commitment.rectified"):
    """The bureau that ordered the rectification confirms it was done (a repair needs this first)."""

    evidence: Reason


class CreditObjectionRaised(msgspec.Struct, frozen=True, kw_only=True, tag="commitment.credit-objection"):
    """异议: the applicant disputes the credit record; it is marked as under objection while reviewed."""

    grounds: Reason


class CreditObjectionReviewed(msgspec.Struct, frozen=True, kw_only=True,
                              tag="commitment.credit-objection-reviewed"):
    """The objection decided: the record confirmed, corrected (with its new text) or removed."""

    outcome: ReviewOutcome
    reasons: Reason
    #: The corrected record text; required for ``correct``, empty otherwise.
    record: Annotated[str, msgspec.Meta(max_length=2000)] = ""


class CreditRepairApplied(msgspec.Struct, frozen=True, kw_only=True, tag="commitment.credit-repair-applied"):
    """信用修复 applied for, with the evidence that the consequences were put right."""

    evidence: Reason


class CreditRepairApproved(msgspec.Struct, frozen=True, kw_only=True, tag="commitment.credit-repair-approved"):
    """The bureau that made the record approves the repair: the record no longer bars the applicant."""

    reasons: Reason


class CreditRepairRejected(msgspec.Struct, frozen=True, kw_only=True, tag="commitment.credit-repair-rejected"):
    """The repair is refused, with reasons; the applicant may apply again."""

    reasons: Reason


CreditStep = (Rectified | CreditObjectionRaised | CreditObjectionReviewed | CreditRepairApplied
              | CreditRepairApproved | CreditRepairRejected)

CommitmentEvent = (
    ApplicationReceived | RouteRefused | NoticeIssued | RouteChosen | CommitmentSigned | Approved | Withdrawn
    | VerificationPlanned | ItemVerified | Closed | FalseCommitmentFound | ProcessingTerminated
    | RectificationOrdered | DecisionRevoked | PenaltyImposed | CreditRecorded | ReferredToJudiciary
    | Rectified | CreditObjectionRaised | CreditObjectionReviewed | CreditRepairApplied | CreditRepairApproved
    | CreditRepairRejected | SupervisorNotified | LicenceReturned
)
#: The outcomes 三(三) allows once a commitment is found false.
OUTCOMES = (ProcessingTerminated, RectificationOrdered, DecisionRevoked, PenaltyImposed, CreditRecorded,
            ReferredToJudiciary, SupervisorNotified)
#: Notices about a commitment case to another bureau (not steps of the case).
CommitmentNotice = PunishmentReferral
