"""The two catalogues 区司法局 keeps, their rows and the events that change them.

- 证明事项清单 (附件8): the certification matters under the commitment system, listed by the
  区直部门 that handles them (一(三)).
- 行政协助事项清单 / 目录 (附件9, 附件2 第七条): the only items one bureau may ask another to verify.

Both change only through 动态调整 (一(四)): the listing bureau applies with its 依据, 区司法局
reviews, publishes a new version and files it with 市司法局.  Version 1 comes about the same way.

Schema evolution: new fields get defaults; an existing field's type never changes; a breaking
change is a new tag.
"""
from __future__ import annotations

from datetime import date, datetime
from typing import Annotated, Literal

import msgspec

from schemas.assistance import DECLINE_DAYS, REPLY_DAYS

#: A bureau code (aggregates/data/bureaus.toml), e.g. ``gongan``.
BureauCode = Annotated[str, msgspec.Meta(pattern=r"^[a-z][a-z0-9-]{1,31}$")]
#: The stable id of a catalogue row, e.g. ``XZ-0001`` or ``ZM-gongan-0001``.
RowCode = Annotated[str, msgspec.Meta(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")]
#: An adjustment id: the catalogue's kind and a serial, e.g. ``assistance-0003``.
AdjustmentId = Annotated[str, msgspec.Meta(pattern=r"^(matters|assistance)-\d{4,}$")]
Line = Annotated[str, msgspec.Meta(min_length=1, max_length=500)]
Text = Annotated[str, msgspec.Meta(min_length=1, max_length=4000)]
Note = Annotated[str, msgspec.Meta(max_length=2000)]
Seq = Annotated[int, msgspec.Meta(ge=1, le=99999)]
#: 三(二) and 第五条: 3个工作日 to reply, 2个工作日 to decline in writing.  An item may agree a shorter
#: time (第十一条: 协议 within the 办法's principles), never a longer one.
ReplyDays = Annotated[int, msgspec.Meta(ge=1, le=REPLY_DAYS)]
DeclineDays = Annotated[int, msgspec.Meta(ge=1, le=DECLINE_DAYS)]
#: A verifier key such as ``hukou.residence`` (agencies/verifiers.py).
CheckKey = Annotated[str, msgspec.Meta(pattern=r"^[a-z][a-z0-9_.-]{0,63}$")]
Domain = Annotated[str, msgspec.Meta(min_length=1, max_length=32)]

Kind = Literal["matters", "assistance"]
#: 附件8 实施方式: 行政机关规定必须采取告知承诺制 / 申请人可以选择.
Mode = Literal["必须实行", "可选择"]
#: 附件8 核查方式.
Method = Literal["内部核查", "信息共享平台查询", "部门间行政协助", "现场检查"]

MODES: tuple[Mode, ...] = ("必须实行", "可选择")
METHODS: tuple[Method, ...] = ("内部核查", "信息共享平台查询", "部门间行政协助", "现场检查")
#: 一(二): matters that directly touch these domains are not under the commitment system.
EXCLUDED_DOMAINS: tuple[str, ...] = (
    "国家安全", "国家秘密", "公共安全", "金融业审慎监管", "生态环境保护", "人身健康", "生命财产安全", "重要涉外",
)
#: The bureau that reviews, publishes and keeps the catalogues, and where they are filed.
JUSTICE = "sifa"
CITY_JUSTICE = "shi-sifa"
#: 区委编办 (机构编制委员会办公室): the staffing office, co-decider of disputes and where memoranda are filed.
STAFFING_OFFICE = "bianban"
#: 区政府 acts through 区政府办公室 (附件1): it publishes the 证明事项清单 (一(三)), criticises (第十二条) and
#: decides escalated disputes (第八条); decisions 43 and 51.
DISTRICT_GOVERNMENT = "zhengfuban"


# Rows omit default values when encoded, so that a field added later (with a default, as schema
# evolution requires) leaves the bytes, and so the digest, of every published version unchanged.


class MatterRow(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True, tag="matter"):
    """One row of 附件8 (全面推行告知承诺制的证明事项清单)."""

    #: xiezhu's stable id of the row (附件8 has none; requests and adjustments need one).
    code: RowCode
    seq: Seq
    service_matter_name: Line
    service_matter_code: Annotated[str, msgspec.Meta(min_length=1, max_length=64)]
    certificate_name: Line
    legal_basis: Text
    #: 承办机构, as a bureau code.
    handling_body: BureauCode
    #: 开具单位: who would otherwise issue the certificate; often not a bureau, so free text.
    issuing_unit: Line
    mode: Mode
    verification_methods: Annotated[list[Method], msgspec.Meta(min_length=1, max_length=4)]
    notes: Note = ""
    #: 二(四): the commitment is disclosed to the public.
    disclose_commitment: bool = False
    #: The 区直部门 that lists the matter and alone may apply to change it.
    owner: BureauCode
    #: Risk domains the matter touches; the primary input to the 一(二) exclusion rule.
    domains: Annotated[list[Domain], msgspec.Meta(max_length=20)] = []


class AssistanceItem(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True, tag="assistance-item"):
    """One row of 附件9 (全面推行告知承诺制的行政协助事项清单)."""

    code: RowCode
    seq: Seq
    service_matter_name: Line
    service_matter_code: Annotated[str, msgspec.Meta(min_length=1, max_length=64)]
    item_name: Line
    legal_basis: Text
    #: 承办机构: the requesting bureau, which lists the item and alone may change it.
    handling_body: BureauCode
    #: 协助机构: the bureau asked to assist.
    assisting_body: BureauCode
    verification_method: Line
    notes: Note = ""
    #: 第六条: the assistor checks on site; needs a filed memorandum between the two bureaus.
    on_site: bool = False
    reply_within: ReplyDays = REPLY_DAYS
    decline_within: DeclineDays = DECLINE_DAYS
    #: Machine verifier keys this item covers; informational.
    checks: Annotated[list[CheckKey], msgspec.Meta(max_length=20)] = []


Row = MatterRow | AssistanceItem


class Memorandum(msgspec.Struct, frozen=True, kw_only=True):
    """第六条 协议或者备忘录 (or a 第十一条 协议) between a requester and an assistor for one item."""

    id: RowCode
    #: The two bureaus that signed it.
    parties: Annotated[list[BureauCode], msgspec.Meta(min_length=2, max_length=2)]
    item_code: RowCode
    signed_on: date
    text: Text
    #: 第六条: 报区司法局、区委编办备案.
    filed_with: Annotated[list[BureauCode], msgspec.Meta(min_length=1, max_length=5)]
    form: Literal["备忘录", "协议"] = "备忘录"


class AdjustmentApplied(msgspec.Struct, frozen=True, kw_only=True, tag="catalogue.adjustment-applied"):
    """一(四): a bureau applies to add, replace or remove its own rows, with the 依据 (区司法局: see ``dispute``)."""

    id: AdjustmentId
    kind: Kind
    applicant: BureauCode
    basis: Text
    #: New rows; their codes must not be in the published catalogue.
    adds: Annotated[list[Row], msgspec.Meta(max_length=2000)] = []
    #: Published rows in their new form, matched by code.
    replaces: Annotated[list[Row], msgspec.Meta(max_length=2000)] = []
    #: Codes of published rows to take out.
    removes: Annotated[list[RowCode], msgspec.Meta(max_length=2000)] = []
    applied_at: datetime
    #: 附件2 第八条: the dispute (its number, ``D20260001``) whose ruling or decision this adjustment
    #: carries out.  With it, 区司法局 may apply to change rows another bureau lists.
    dispute: Annotated[str, msgspec.Meta(pattern=r"^(D\d{8})?$")] = ""


class AdjustmentReviewed(msgspec.Struct, frozen=True, kw_only=True, tag="catalogue.adjustment-reviewed"):
    """区司法局 approves or rejects an adjustment, once; a rejection says why."""

    adjustment_id: AdjustmentId
    kind: Kind
    approved: bool
    reviewer: BureauCode
    reasons: Note = ""
    reviewed_at: datetime


class CataloguePublished(msgspec.Struct, frozen=True, kw_only=True, tag="catalogue.published"):
    """A new version made of every approved, unpublished adjustment is published: by 区政府 for the
    证明事项清单's first version (一(三)), by 区司法局 otherwise (一(四), 第七条); decision 51."""

    kind: Kind
    version: Annotated[int, msgspec.Meta(ge=1)]
    #: In the order they were approved, which is the order they are applied.
    adjustments: Annotated[list[AdjustmentId], msgspec.Meta(min_length=1)]
    #: SHA-256 of the version's rows (see ``aggregates.catalogue.rows_digest``), so that an
    #: auditor can check a replay gives exactly the rows that were published.
    digest: Annotated[str, msgspec.Meta(pattern=r"^[0-9a-f]{64}$")]
    rows: Annotated[int, msgspec.Meta(ge=0)]
    published_by: BureauCode
    published_at: datetime


class CatalogueFiled(msgspec.Struct, frozen=True, kw_only=True, tag="catalogue.filed"):
    """一(四): a published version of the 证明事项清单 is filed (备案) with 市司法局."""

    kind: Kind
    version: Annotated[int, msgspec.Meta(ge=1)]
    filed_with: BureauCode = CITY_JUSTICE
    filed_by: BureauCode
    filed_at: datetime


class MemorandumFiled(msgspec.Struct, frozen=True, kw_only=True, tag="catalogue.memorandum-filed"):
    """第六条: a memorandum for on-site assistance is filed and joins the assistance catalogue."""

    memorandum: Memorandum
    filed_by: BureauCode
    filed_at: datetime


class ListPublished(msgspec.Struct, frozen=True, kw_only=True, tag="notice.list-published"):
    """一(三) 报请由区政府公布实施: 区政府's own act of publishing a version of the 证明事项清单, signed by
    区政府办公室 and sent to 区司法局, naming exactly the rows published (their digest)."""

    kind: Kind
    version: Annotated[int, msgspec.Meta(ge=1)]
    digest: Annotated[str, msgspec.Meta(pattern=r"^[0-9a-f]{64}$")]
    rows: Annotated[int, msgspec.Meta(ge=0)]
    published_at: datetime


CatalogueEvent = AdjustmentApplied | AdjustmentReviewed | CataloguePublished | CatalogueFiled | MemorandumFiled

_encoder = msgspec.json.Encoder()
_decoder: msgspec.json.Decoder[CatalogueEvent] = msgspec.json.Decoder(CatalogueEvent)


def encode_event(event: CatalogueEvent) -> bytes:
    """The event's JSON bytes, as stored."""
    return _encoder.encode(event)


def decode_event(data: bytes) -> CatalogueEvent:
    """Decode and validate stored bytes; raises ``msgspec.ValidationError`` with the field path."""
    return _decoder.decode(data)
