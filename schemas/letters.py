"""The letters a clerk prints: 附件4-1/4-2 (行政协助函), 附件5 (回复函), the written decline, 附件6, 附件7
and the notices of the consequences of a false commitment (三（三）).

Each Struct holds exactly what its letter shows, already in the words printed (bureau names in
Chinese, commitment texts in order), so that a letter can be built from any case state and
rendered by ``projections.documents.letters`` without looking anything up. A letter that could not be
printed as the template requires cannot be built: every rule is checked in ``__post_init__``
(which msgspec also runs when decoding) and broken ones raise :class:`LetterError`.
"""
from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import date
from typing import Annotated, Any, Literal

import msgspec

from schemas import labels
from schemas.assistance import REPLY_DAYS, Verdict
from schemas.errors import XiezhuError

#: A name or a commitment as printed on one line: a bureau, a person, a matter, an item.
Line = Annotated[str, msgspec.Meta(min_length=1, max_length=500)]
#: Free text that may run over several lines (the reasons of a decline).
Text = Annotated[str, msgspec.Meta(min_length=1, max_length=2000)]
#: 附件4 编号, e.g. ``20260001``: the year and a four-digit serial of the requesting bureau.
Number = Annotated[str, msgspec.Meta(pattern=r"^\d{8}$")]
Items = Annotated[list[Line], msgspec.Meta(min_length=1, max_length=50)]

MAX_ITEMS = 50
_NUMBER = re.compile(r"^\d{8}$")


class LetterError(XiezhuError):
    """A letter lacks something its template needs, or says something inconsistent."""

    code = "letter.invalid"


def _fail(letter: str, field: str, problem: str, **details: Any) -> LetterError:
    return LetterError(f"{letter}: {field} {problem}", letter=letter, field=field, **details)


def _line(letter: str, field: str, value: str, *, limit: int = 500) -> None:
    if not value.strip():
        raise _fail(letter, field, "is empty")
    if "\n" in value or "\r" in value:
        raise _fail(letter, field, "must fit on one line (it contains a line break)")
    if len(value) > limit:
        raise _fail(letter, field, f"is longer than {limit} characters", length=len(value))


def _number(letter: str, value: str) -> None:
    if not _NUMBER.match(value):
        raise _fail(letter, "number", f"must be eight digits like 20260001, not {value!r}", number=value)


def _items(letter: str, items: Sequence[str]) -> None:
    if not items:
        raise _fail(letter, "items", "is empty: a letter lists at least one commitment")
    if len(items) > MAX_ITEMS:
        raise _fail(letter, "items", f"has {len(items)} commitments, more than {MAX_ITEMS}", count=len(items))
    for no, text in enumerate(items, 1):
        _line(letter, f"item {no}", text)


def _not_before(letter: str, field: str, later: date, earlier_field: str, earlier: date) -> None:
    if later < earlier:
        raise _fail(letter, field, f"{later.isoformat()} is before {earlier_field} {earlier.isoformat()}")


class AssistanceLetter(msgspec.Struct, frozen=True, kw_only=True, tag="letter.assistance"):
    """附件4-1 行政协助函（一）, or 附件4-2 （二） when two staff carry it."""

    number: Number
    requester_name: Line
    assistor_name: Line
    applicant_name: Line
    applied_on: date
    matter_name: Line
    #: The applicant's commitments to verify, in the order of the applicant's 承诺书.
    items: Items
    #: Empty: letter (一). Exactly two names: letter (二), the staff sent to the assistor (第五条).
    staff: Annotated[list[Line], msgspec.Meta(max_length=2)] = []
    #: Working days the assistor has to reply (第五条: 3; a shorter time an item agreed, never longer).
    reply_within: Annotated[int, msgspec.Meta(ge=1, le=REPLY_DAYS)] = REPLY_DAYS
    dated: date

    def __post_init__(self) -> None:
        name = "assistance letter"
        _number(name, self.number)
        for field in ("requester_name", "assistor_name", "applicant_name", "matter_name"):
            _line(name, field, getattr(self, field))
        if self.requester_name == self.assistor_name:
            raise _fail(name, "assistor_name", f"is the requester itself ({self.requester_name})")
        _items(name, self.items)
        if len(self.staff) not in (0, 2):
            raise _fail(name, "staff", f"names {len(self.staff)} people: letter (二) needs exactly two "
                        "(none for letter (一))", count=len(self.staff))
        for i, person in enumerate(self.staff, 1):
            _line(name, f"staff {i}", person, limit=50)
        if len(self.staff) == 2 and self.staff[0] == self.staff[1]:
            raise _fail(name, "staff", f"names {self.staff[0]} twice: letter (二) needs two different people")
        if not 1 <= self.reply_within <= REPLY_DAYS:
            raise _fail(name, "reply_within", f"must be 1 to {REPLY_DAYS} working days (第五条), "
                        f"not {self.reply_within}")
        _not_before(name, "dated", self.dated, "applied_on", self.applied_on)

    @property
    def variant(self) -> Literal["一", "二"]:
        """Which template: （一） sent as a letter, （二） carried by two staff."""
        return "二" if self.staff else "一"


class ReplyItem(msgspec.Struct, frozen=True, kw_only=True):
    """One answered commitment: its text as asked, the verdict and, if it cannot be verified, why."""

    text: Line
    verdict: Verdict
    #: Required for ``unverifiable`` (附件5 备注), printed on the attached sheet; empty otherwise.
    reason: Annotated[str, msgspec.Meta(max_length=500)] = ""


class ReplyLetter(msgspec.Struct, frozen=True, kw_only=True, tag="letter.reply"):
    """附件5 行政协助回复函: the verdict per item, with a stamped sheet of reasons for any unverifiable one."""

    #: The number of the request letter it answers (附件5 repeats it).
    number: Number
    replier_name: Line
    requester_name: Line
    #: The date of the request letter.
    requested_on: date
    items: Annotated[list[ReplyItem], msgspec.Meta(min_length=1, max_length=50)]
    dated: date
    #: 第五条: the public institution holding pre-reform archives that the replier checked with.
    on_behalf_of: Annotated[str, msgspec.Meta(max_length=100)] = ""
    #: The bureau whose stamp (公章) is on the sheet of reasons (附件5 备注: 本机关公章).
    stamped_by: Line
    #: 附件5 （编号：…）: the reply's own number; "" (an older reply) prints the request's.
    reply_number: Annotated[str, msgspec.Meta(max_length=16)] = ""

    @property
    def own_number(self) -> str:
        """The number printed at the top of the reply (its own, or the request's for an older one)."""
        return self.reply_number or self.number

    def __post_init__(self) -> None:
        name = "reply letter"
        _number(name, self.number)
        if self.reply_number:
            _number(name, self.reply_number)
        for field in ("replier_name", "requester_name", "stamped_by"):
            _line(name, field, getattr(self, field))
        if self.replier_name == self.requester_name:
            raise _fail(name, "replier_name", f"is the requester itself ({self.requester_name})")
        if self.on_behalf_of:
            _line(name, "on_behalf_of", self.on_behalf_of, limit=100)
        _items(name, [item.text for item in self.items])
        for no, item in enumerate(self.items, 1):
            if item.verdict not in labels.VERDICT:
                raise _fail(name, f"item {no}", f"has verdict {item.verdict!r}, not one of "
                            + ", ".join(labels.VERDICT), verdict=item.verdict)
            if item.verdict == "unverifiable":
                if not item.reason.strip():
                    raise _fail(name, f"item {no}", "cannot be verified but gives no reason "
                                "(附件5 备注: 另附纸说明原因)", item=no)
                _line(name, f"item {no} reason", item.reason)
            elif item.reason:
                # The template has room for reasons only on the sheet of the unverifiable items;
                # refusing here keeps anything the bureau wrote from silently going unprinted.
                raise _fail(name, f"item {no}", f"is {item.verdict} but gives a reason; only an "
                            "unverifiable item has one", item=no)
        _not_before(name, "dated", self.dated, "requested_on", self.requested_on)


class DeclineLetter(msgspec.Struct, frozen=True, kw_only=True, tag="letter.decline"):
    """书面告知 (三（二）): the assistor cannot assist and says why, within 2 working days."""

    #: The number of the request letter it answers.
    number: Number
    decliner_name: Line
    requester_name: Line
    requested_on: date
    #: Why the assistor cannot assist; may run over several lines.
    reasons: Text
    dated: date

    def __post_init__(self) -> None:
        name = "decline letter"
        _number(name, self.number)
        for field in ("decliner_name", "requester_name"):
            _line(name, field, getattr(self, field))
        if self.decliner_name == self.requester_name:
            raise _fail(name, "decliner_name", f"is the requester itself ({self.requester_name})")
        if not self.reasons.strip():
            raise _fail(name, "reasons", "is empty: a decline must say why (三（二）: 说明理由)")
        if len(self.reasons) > 2000:
            raise _fail(name, "reasons", "is longer than 2000 characters", length=len(self.reasons))
        _not_before(name, "dated", self.dated, "requested_on", self.requested_on)


class CommitmentNotice(msgspec.Struct, frozen=True, kw_only=True, tag="letter.notice"):
    """附件6 承诺告知书: the bureau tells the applicant which proof it may replace by which commitments."""

    applicant_name: Line
    applied_on: date
    bureau_name: Line
    matter_name: Line
    #: 开具单位: who would otherwise issue the proof.
    issuing_unit: Line
    #: The proof not provided, e.g. ``无犯罪记录证明``; "证明" is added when the name lacks it.
    certificate_name: Line
    items: Items
    dated: date
    #: 二(四): the matter is on the list of those whose 告知承诺书 is disclosed; the notice says so.
    disclosed: bool = False

    def __post_init__(self) -> None:
        name = "commitment notice"
        for field in ("applicant_name", "bureau_name", "matter_name", "issuing_unit", "certificate_name"):
            _line(name, field, getattr(self, field))
        _items(name, self.items)
        _not_before(name, "dated", self.dated, "applied_on", self.applied_on)


class ApplicantCommitment(msgspec.Struct, frozen=True, kw_only=True, tag="letter.commitment"):
    """附件7 申请人承诺书: the applicant's signed commitments."""

    bureau_name: Line
    applicant_name: Line
    applied_on: date
    matter_name: Line
    items: Items
    #: None prints a blank date for the applicant to fill in by hand when signing.
    signed_on: date | None = None

    def __post_init__(self) -> None:
        name = "applicant commitment"
        for field in ("bureau_name", "applicant_name", "matter_name"):
            _line(name, field, getattr(self, field))
        _items(name, self.items)
        if self.signed_on is not None:
            _not_before(name, "signed_on", self.signed_on, "applied_on", self.applied_on)


#: 三（三）: the consequences of a false commitment that the applicant is told of in writing.
Consequence = Literal["terminated", "rectification", "revoked", "licence-return"]
_LICENCE_TYPE = re.compile(r"(?:^|[^A-Z])XK(?:[^A-Z]|$)")


def is_licence(service_matter_code: str) -> bool:
    """Whether a 政务服务事项 is a 行政许可: its 编码 carries the type XK (370405-XK-0101), where a
    行政给付 carries JF, a 行政确认 QR and a 公共服务 GG. Only a licence is revoked as 行政许可 and has a
    证件（行政许可证） to hand back (附件6)."""
    return bool(_LICENCE_TYPE.search(service_matter_code))


#: The title of each consequence notice (no template in the seed; the usual names of such notices).
CONSEQUENCE_TITLE: dict[str, str] = {
    "terminated": "终止办理通知书",
    "rectification": "责令限期整改通知书",
    "revoked": "撤销行政许可决定书",
    "licence-return": "交回行政许可证件通知书",
}
_CASE_NUMBER = re.compile(r"^C\d{8}$")


class ConsequenceNotice(msgspec.Struct, frozen=True, kw_only=True, tag="letter.consequence"):
    """三（三）: the bureau tells the applicant what follows the false commitment found in their case.

    One of: 终止办理 (before approval), 责令限期整改 (with its deadline), 撤销 of the approval
    (naming the decision), and the notice to hand the licence back within 2 days of the
    revocation (附件6: 限你在撤销之日起2日内将取得证件（行政许可证）原件交回我单位).
    """

    consequence: Consequence
    #: The commitment case, e.g. ``C20260001``: the notice's 编号.
    number: Annotated[str, msgspec.Meta(pattern=r"^C\d{8}$")]
    bureau_name: Line
    applicant_name: Line
    applied_on: date
    matter_name: Line
    #: The commitments found false, as the applicant made them.
    items: Items
    #: Why, in law (the event's ``legal_reason``).
    legal_reason: Text
    #: 责令限期整改: the day by which to put things right.
    deadline: date | None = None
    #: 撤销 and 交回: the decision (licence) number, e.g. 台审批许〔2026〕0001号.
    decision_no: Annotated[str, msgspec.Meta(max_length=64)] = ""
    #: 交回: the last day to hand the licence back (2 days after the revocation).
    return_by: date | None = None
    dated: date
    #: The approval is a 行政许可 (see :func:`is_licence`): revoked as such, with a 证件 to hand back.
    #: Otherwise (最低生活保障, a 行政给付) the decision is revoked and there is no 证件.
    licence: bool = True

    def __post_init__(self) -> None:
        name = f"{self.consequence} notice"
        if self.consequence not in CONSEQUENCE_TITLE:
            raise _fail(name, "consequence", "is not one of " + ", ".join(CONSEQUENCE_TITLE))
        if not _CASE_NUMBER.match(self.number):
            raise _fail(name, "number", f"must be a commitment case like C20260001, not {self.number!r}")
        for field in ("bureau_name", "applicant_name", "matter_name"):
            _line(name, field, getattr(self, field))
        _items(name, self.items)
        if not self.legal_reason.strip():
            raise _fail(name, "legal_reason", "is empty: a consequence must cite its ground in law")
        if self.consequence == "rectification":
            if self.deadline is None:
                raise _fail(name, "deadline", "is missing: 责令限期整改 needs a deadline")
            _not_before(name, "deadline", self.deadline, "dated", self.dated)
        if self.consequence in ("revoked", "licence-return") and not self.decision_no.strip():
            raise _fail(name, "decision_no", "is missing: a revocation names the decision it revokes")
        if self.consequence == "licence-return":
            if not self.licence:
                raise _fail(name, "licence", "is false: only a licence (行政许可) has a 证件 to hand back")
            if self.return_by is None:
                raise _fail(name, "return_by", "is missing: the licence is due back by a date")
            _not_before(name, "return_by", self.return_by, "dated", self.dated)
        _not_before(name, "dated", self.dated, "applied_on", self.applied_on)

    @property
    def title(self) -> str:
        if self.consequence == "revoked" and not self.licence:
            return "撤销决定书"
        return CONSEQUENCE_TITLE[self.consequence]


Letter = AssistanceLetter | ReplyLetter | DeclineLetter | CommitmentNotice | ApplicantCommitment | ConsequenceNotice

_decoder: msgspec.json.Decoder[Letter] = msgspec.json.Decoder(Letter)


def decode_letter(data: bytes | str) -> Letter:
    """Decode one letter from JSON (tagged by ``type``), raising :class:`LetterError` if it is not one."""
    try:
        return _decoder.decode(data)
    except msgspec.DecodeError as e:  # ValidationError included
        raise LetterError(f"not a letter: {e}", zh=f"不是协助函：{e}", problem=str(e)) from e
