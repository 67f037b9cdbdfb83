"""A letter laid out as paper: the parts of a government letter (GB/T 9704) that DOCX and PDF both print.

``paper(letter)`` turns any :data:`schemas.letters.Letter` into a :class:`Paper`: one or more
:class:`Page` s, each with its 标题, 发文字号 (the template's "（编号：…）" line), 主送机关,
body paragraphs, and the 落款 — the issuing unit and date, with the 盖章处 where the 公章
goes — or, for 附件7, the applicant's signature line; then the 一式两份 note. The wording is
that of :mod:`projections.documents.letters` (the plain-text rendering), built from the same sentences;
a test checks that every paragraph here is in the text too.

``Paper.filename`` is the Chinese file name a clerk files it under, e.g.
``20260007-行政协助函（一）``; the DOCX and PDF writers add the suffix.
"""
from __future__ import annotations

from dataclasses import dataclass

from projections.documents.letters import (
    ASK,
    BASIS,
    BLANK_DATE,
    COMMITMENT_CONSENT,
    COPIES_NOTICE,
    COPIES_REPLY,
    COPIES_REQUEST,
    DECLINE_RULE,
    DISCLOSURE,
    NOTICE_CONSEQUENCES,
    REPLY_ASKED,
    SHEET_TITLE,
    SIGNATURE,
    STAFF,
    certificate,
    consequence_body,
    reply_conclusion,
    zh_date,
)
from schemas.letters import (
    ApplicantCommitment,
    AssistanceLetter,
    CommitmentNotice,
    ConsequenceNotice,
    DeclineLetter,
    Letter,
    ReplyLetter,
)


@dataclass(frozen=True, kw_only=True)
class Page:
    """One sheet of a letter, top to bottom."""

    #: 标题 (二号小标宋, centred).
    title: str
    #: 发文字号 line under the title, e.g. ``（编号：20260007）``; empty for none.
    number_line: str = ""
    #: 主送机关 with its colon, e.g. ``区公安分局：``; empty for none.
    addressee: str = ""
    #: 正文 paragraphs (三号仿宋, first line indented two characters); numbered items are paragraphs too.
    body: tuple[str, ...] = ()
    #: 落款: the issuing unit; empty when the applicant signs instead.
    issuer: str = ""
    #: 成文日期 under the issuer (or under the signature line).
    dated: str = ""
    #: The 公章 goes over the issuer and date: print the 盖章处 there.
    stamp: bool = True
    #: For 附件7: the applicant's ``申请人（签字、捺印）：`` line instead of an issuer.
    signature: str = ""
    #: The 一式两份 note under the date; empty for none.
    copies: str = ""


@dataclass(frozen=True, kw_only=True)
class Paper:
    """A whole letter: its kind (for the file name), the number it is filed under, and its pages."""

    #: What the letter is, as its file name says it: ``行政协助函（一）``, ``承诺告知书``, …
    kind: str
    #: The letter or case number it is filed under: ``20260007`` or ``C20260001``.
    number: str
    pages: tuple[Page, ...]

    @property
    def filename(self) -> str:
        """``20260007-行政协助函（一）``: number and kind, without a suffix."""
        return f"{self.number}-{self.kind}" if self.number else self.kind

    def text(self) -> str:
        """Every printed word in order, for search and tests (not the layout)."""
        parts: list[str] = []
        for page in self.pages:
            parts += [page.title, page.number_line, page.addressee, *page.body, page.issuer, page.signature,
                      page.dated, page.copies]
        return "\n".join(p for p in parts if p) + "\n"


def _numbered(items: list[str] | tuple[str, ...]) -> list[str]:
    return [f"{no}、{text}" for no, text in enumerate(items, 1)]


def _number_line(number: str) -> str:
    return f"（编号：{number}）"


def assistance_paper(letter: AssistanceLetter) -> Paper:
    ask = ASK.format(days=letter.reply_within)
    if letter.variant == "二":
        ask = STAFF.format(first=letter.staff[0], second=letter.staff[1]) + ask
    page = Page(
        title=f"{letter.requester_name}行政协助函（{letter.variant}）", number_line=_number_line(letter.number),
        addressee=f"{letter.assistor_name}：",
        body=(f"{zh_date(letter.applied_on)}，{letter.applicant_name}到我单位办理{letter.matter_name}事项，"
              f"{BASIS}，{letter.applicant_name}已作出书面承诺，承诺内容为：", *_numbered(letter.items), ask),
        issuer=letter.requester_name, dated=zh_date(letter.dated), copies=COPIES_REQUEST,
    )
    return Paper(kind=f"行政协助函（{letter.variant}）", number=letter.number, pages=(page,))


def reply_paper(letter: ReplyLetter) -> Paper:
    checked = f"经我单位向{letter.on_behalf_of}核实" if letter.on_behalf_of else "经我单位核实"
    pages = [Page(
        title=f"{letter.replier_name}行政协助回复函", number_line=_number_line(letter.own_number),
        addressee=f"{letter.requester_name}：",
        body=(f"{zh_date(letter.requested_on)}，{REPLY_ASKED}",
              *_numbered([item.text for item in letter.items]),
              f"根据贵单位行政协助函（{letter.number}）内容，{checked}，{reply_conclusion(letter.items)}"),
        issuer=letter.replier_name, dated=zh_date(letter.dated), copies=COPIES_REPLY,
    )]
    unverifiable = [(no, item) for no, item in enumerate(letter.items, 1) if item.verdict == "unverifiable"]
    if unverifiable:
        body: list[str] = []
        for no, item in unverifiable:
            body += [f"{no}、{item.text}", f"原因：{item.reason}"]
        pages.append(Page(title=SHEET_TITLE, number_line=f"（行政协助回复函编号：{letter.own_number}）",
                          body=tuple(body), issuer=letter.stamped_by, dated=zh_date(letter.dated)))
    return Paper(kind="行政协助回复函", number=letter.own_number, pages=tuple(pages))


def decline_paper(letter: DeclineLetter) -> Paper:
    page = Page(
        title=f"{letter.decliner_name}不能提供行政协助告知书", number_line=_number_line(letter.number),
        addressee=f"{letter.requester_name}：",
        body=(f"{zh_date(letter.requested_on)}，贵单位以行政协助函（{letter.number}）请我单位协助核实申请人承诺事项。"
              f"根据台儿庄区人民政府《台儿庄区全面推行证明事项告知承诺制工作实施方案》关于“{DECLINE_RULE}”的规定，"
              "现书面告知贵单位：我单位不能提供该项协助，理由如下：",
              *letter.reasons.strip().splitlines()),
        issuer=letter.decliner_name, dated=zh_date(letter.dated), copies=COPIES_REPLY,
    )
    return Paper(kind="不能提供行政协助告知书", number=letter.number, pages=(page,))


def notice_paper(notice: CommitmentNotice, number: str) -> Paper:
    page = Page(
        title="承诺告知书", addressee=f"{notice.applicant_name}：",
        body=(f"{zh_date(notice.applied_on)}，{notice.applicant_name}到我单位办理{notice.matter_name}事项，"
              f"应当提供{notice.issuing_unit}出具的{certificate(notice.certificate_name)}（法律、法规规定的要件），"
              f"你没有提供，{BASIS}，你可以作出以下承诺，我单位给予受理（办理）：",
              *_numbered(notice.items), *([DISCLOSURE] if notice.disclosed else []), NOTICE_CONSEQUENCES),
        issuer=notice.bureau_name, dated=zh_date(notice.dated),
    )
    return Paper(kind="承诺告知书", number=number, pages=(page,))


def commitment_paper(commitment: ApplicantCommitment, number: str) -> Paper:
    page = Page(
        title="申请人承诺书", addressee=f"{commitment.bureau_name}：",
        body=(f"{zh_date(commitment.applied_on)}，{commitment.applicant_name}到贵单位办理{commitment.matter_name}事项，"
              "对《承诺告知书》已知悉，现做出以下承诺：", *_numbered(commitment.items), COMMITMENT_CONSENT),
        signature=SIGNATURE, stamp=False,
        dated=zh_date(commitment.signed_on) if commitment.signed_on else BLANK_DATE,
    )
    return Paper(kind="申请人承诺书", number=number, pages=(page,))


def consequence_paper(notice: ConsequenceNotice) -> Paper:
    page = Page(
        title=notice.title, number_line=_number_line(notice.number), addressee=f"{notice.applicant_name}：",
        body=tuple(consequence_body(notice)), issuer=notice.bureau_name, dated=zh_date(notice.dated),
        copies=COPIES_NOTICE,
    )
    return Paper(kind=notice.title, number=notice.number, pages=(page,))


def paper(letter: Letter, number: str = "") -> Paper:
    """The paper form of any letter. ``number`` files 附件6/7 (which print none) under their case number."""
    match letter:
        case AssistanceLetter():
            return assistance_paper(letter)
        case ReplyLetter():
            return reply_paper(letter)
        case DeclineLetter():
            return decline_paper(letter)
        case CommitmentNotice():
            return notice_paper(letter, number)
        case ApplicantCommitment():
            return commitment_paper(letter, number)
        case ConsequenceNotice():
            return consequence_paper(letter)
