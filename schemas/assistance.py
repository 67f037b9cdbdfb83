"""行政协助 (administrative assistance) events: request, arrival, reply, decline.

The letters of 附件4 (行政协助函（一）/（二）) and 附件5 (回复函) map onto these fields.
"""
from __future__ import annotations

from datetime import date, datetime
from typing import Annotated, Literal

import msgspec

Code = Annotated[str, msgspec.Meta(pattern=r"^[a-z][a-z0-9-]{1,31}$")]
Text = Annotated[str, msgspec.Meta(min_length=1, max_length=500)]
Hash = Annotated[str, msgspec.Meta(pattern=r"^[0-9a-f]{64}$")]
Uuid = Annotated[str, msgspec.Meta(pattern=r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")]

#: 三(二) and 附件2 第五条: the assisting bureau answers within 3 working days, or declines in writing
#: within 2. The plan fixes them; a catalogue item may agree a shorter time (第十一条 协议), never a longer.
REPLY_DAYS = 3
DECLINE_DAYS = 2

#: 第五条: through the shared exchange platform, or by a letter carried by staff.
Channel = Literal["platform", "letter"]
#: 附件5: per item 真实 / 虚假, or cannot verify (with reasons and the bureau's stamp, 公章).
Verdict = Literal["true", "false", "unverifiable"]



class Applicant(msgspec.Struct, frozen=True, kw_only=True):
    """The applicant who made the commitment: a person (ID number) or an organisation (USCC)."""

    kind: Literal["person", "organisation"]
    name: Text
    id_number: Annotated[str, msgspec.Meta(pattern=r"^[0-9A-Z]{15,18}$")]


class Matter(msgspec.Struct, frozen=True, kw_only=True):
    """The service matter (政务服务事项) the applicant came to handle."""

    code: Annotated[str, msgspec.Meta(min_length=1, max_length=64)]
    name: Text


class CommitmentItem(msgspec.Struct, frozen=True, kw_only=True):
    """One commitment to verify: the text as in the letter, and what a machine can check."""

    no: Annotated[int, msgspec.Meta(ge=1, le=50)]
    text: Text
    #: A verifier key, e.g. ``hukou.residence``; empty when only a person can check it.
    check: Annotated[str, msgspec.Meta(max_length=64)] = ""
    #: The claimed facts the check compares, e.g. ``{"address": "运河街道"}``.
    facts: dict[Annotated[str, msgspec.Meta(max_length=64)], Annotated[str, msgspec.Meta(max_length=200)]] = {}


class ItemResult(msgspec.Struct, frozen=True, kw_only=True):
    """The answer for one requested item."""

    no: Annotated[int, msgspec.Meta(ge=1, le=50)]
    verdict: Verdict
    #: Required when the verdict is ``unverifiable`` (附件5 备注: 另附纸说明原因).
    reason: Annotated[str, msgspec.Meta(max_length=500)] = ""


class AssistanceRequested(msgspec.Struct, frozen=True, kw_only=True, tag="assistance.requested"):
    """行政协助函: the requester asks the assistor to verify an applicant's commitments."""

    requester: Code
    assistor: Code
    applicant: Applicant
    matter: Matter
    applied_on: date
    items: Annotated[list[CommitmentItem], msgspec.Meta(min_length=1, max_length=50)]
    channel: Channel
    #: 协助函（二）: the two staff members sent with the letter.
    staff: Annotated[list[Text], msgspec.Meta(max_length=2)] = []
    catalogue_item: Annotated[str, msgspec.Meta(max_length=64)] = ""
    catalogue_version: int = 0
    #: The item's time limits (at most REPLY_DAYS / DECLINE_DAYS; the wire accepts up to 30 so that
    #: an older or a wrong request still decodes, and is judged by the plan's limits and flagged).
    reply_within: Annotated[int, msgspec.Meta(ge=1, le=30)] = REPLY_DAYS
    decline_within: Annotated[int, msgspec.Meta(ge=1, le=30)] = DECLINE_DAYS
    #: The requester's commitment case these items come from (its case id), if any.
    commitment_case: Annotated[str, msgspec.Meta(max_length=36)] = ""


class AssistanceReceived(msgspec.Struct, frozen=True, kw_only=True, tag="assistance.received"):
    """The assistor records the system arrival time of a request (第五条: 以系统记录的到达时间为准)."""

    request_id: Uuid
    request_hash: Hash
    arrived_at: datetime


class AssistanceReplied(msgspec.Struct, frozen=True, kw_only=True, tag="assistance.replied"):
    """行政协助回复函: per item 真实 / 虚假, or cannot verify with the reasons."""

    request_id: Uuid
    request_hash: Hash
    channel: Channel
    results: Annotated[list[ItemResult], msgspec.Meta(min_length=1, max_length=50)]
    #: ``auto:<verifier>`` or ``operator:<name>``.
    answered_by: Annotated[str, msgspec.Meta(min_length=1, max_length=100)]
    #: 第五条: the institution holding pre-reform archives this answer comes from, if forwarded.
    on_behalf_of: Annotated[str, msgspec.Meta(max_length=100)] = ""
    #: 附件5 （编号：…）: the reply letter's own number, from the assistor's series ("" in older replies).
    number: Annotated[str, msgspec.Meta(max_length=16)] = ""


class AssistanceForwarded(msgspec.Struct, frozen=True, kw_only=True, tag="assistance.forwarded"):
    """第五条: the assistor asks the institution that holds pre-reform archives, and will answer for it."""

    request_id: Uuid
    request_hash: Hash
    institution: Text
    note: Annotated[str, msgspec.Meta(max_length=500)] = ""


class AssistanceWithdrawn(msgspec.Struct, frozen=True, kw_only=True, tag="assistance.withdrawn"):
    """The requester no longer needs the answer (e.g. the applicant left the commitment route)."""

    request_id: Uuid
    reason: Annotated[str, msgspec.Meta(min_length=2, max_length=2000)]


class AssistanceDeclined(msgspec.Struct, frozen=True, kw_only=True, tag="assistance.declined"):
    """书面告知: the assistor cannot assist and says why (within 2 working days)."""

    request_id: Uuid
    request_hash: Hash
    channel: Channel
    reasons: Annotated[str, msgspec.Meta(min_length=4, max_length=2000)]
    answered_by: Annotated[str, msgspec.Meta(min_length=1, max_length=100)]


AssistanceEvent = (
    AssistanceRequested | AssistanceReceived | AssistanceReplied | AssistanceDeclined | AssistanceForwarded
    | AssistanceWithdrawn
)
