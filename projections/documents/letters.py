"""Render the letters of 附件4–7 (and the written decline of 三（二）) as plain text for printing.

The fixed wording is the template's, character for character: the constants below are copied
from the seed. Only the blanks are filled. Two template notes are instructions to the clerk,
not letter text, and are not printed: "（供参考）" after each title, and 附件5's 备注 (which is
carried out instead: unverifiable items get the stamped "附：无法证实的说明" sheet).

Every function is pure: the same letter gives the same text, ending with one newline.
"""
from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import date

from schemas.letters import (
    ApplicantCommitment,
    AssistanceLetter,
    CommitmentNotice,
    ConsequenceNotice,
    DeclineLetter,
    Letter,
    ReplyItem,
    ReplyLetter,
)

#: 附件4/6: the basis every letter to or about an applicant cites (sic: the template omits "工作").
BASIS = "根据台儿庄区人民政府《台儿庄区全面推行证明事项告知承诺制实施方案》要求"
#: 附件4-1/4-2, after the items; ``{days}`` is the reply deadline (第五条: 3).
#: 二(四): 决定向社会公开告知承诺书的……并在当事人申请时告知。当事人拒绝公开的，应当提交……证明.
DISCLOSURE = ("本事项属于向社会公开告知承诺书的事项，你作出的承诺将向社会公开；"
              "你拒绝公开的，应当提交法律法规或者国务院决定要求的证明。")
#: The templates (附件4, 附件6) print 给与; the letters use the standard 给予 (issue 11), the only change to
#: their fixed wording.
ASK = "请贵单位对申请人承诺的真实性予以核查，并在{days}个工作日内给予书面回复。"
#: 附件4-2, before ``ASK``.
STAFF = "我单位指派{first}、{second}两名同志前往贵单位调查核实，"
COPIES_REQUEST = "（一式两份，部门一份，行政协助部门一份）"
COPIES_REPLY = "（一式两份，部门一份，请求行政协助部门一份）"
#: A consequence notice (no template): one for the applicant, one kept with the case.
COPIES_NOTICE = "（一式两份，申请人一份，部门存档一份）"
#: 附件5, before the items.
REPLY_ASKED = "贵单位请我单位协助核实申请人承诺事项："
#: 附件6, after the items.
NOTICE_CONSEQUENCES = (
    "如果你作出的承诺经我单位核实后为虚假承诺，我单位将撤销已批准事项（行政许可），"
    "限你在撤销之日起2日内将取得证件（行政许可证）原件交回我单位，并将你的信息推送监管部门予以惩处，"
    "相关数据推送至信用中国计入个人诚信档案等。"
)
#: 附件7, after the items.
COMMITMENT_CONSENT = (
    "贵单位可以对我承诺事项到有关机关、部门、单位进行核查或者请有关机关、部门、单位进行协查，"
    "或者进行现场检查，或者通过公开信息等其他方式进行核查。如果经核实我作出虚假承诺，我自愿承担以下不利后果："
    "撤销已批准事项（行政许可），在撤销之日起2日内将我已取得的证件（行政许可证）原件交回贵单位，"
    "并将我的信息推送至监管部门予以惩处，相关数据推送至信用中国计入个人诚信档案等。"
)
SIGNATURE = "申请人（签字、捺印）："
#: A date left for the applicant to write in by hand (full-width spaces leave room for the pen).
BLANK_DATE = "\u3000\u3000\u3000\u3000年\u3000\u3000月\u3000\u3000日"
SHEET_TITLE = "附：无法证实的说明"
#: 附件5's 备注 (如无法证实……请另附纸说明原因), as the reply says where the reasons are.
UNVERIFIABLE_SHEET = "原因另附纸说明"
#: 三（二）, quoted by the written decline (which has no template; it cites the scheme's real title).
DECLINE_RULE = "确有原因不能提供协助的，应当于2个工作日内书面告知请求协助的行政机关并说明理由"


def zh_date(d: date) -> str:
    """2026年9月21日: the date as official letters write it."""
    return f"{d.year}年{d.month}月{d.day}日"


def _numbered(items: Iterable[str]) -> list[str]:
    return [f"{no}、{text}" for no, text in enumerate(items, 1)]


def _nos(nos: Sequence[int]) -> str:
    return "第" + "、".join(str(n) for n in nos) + "项"


def render_assistance_letter(letter: AssistanceLetter) -> str:
    """附件4-1 行政协助函（一）, or 附件4-2 （二） naming the two staff who carry it."""
    ask = ASK.format(days=letter.reply_within)
    if letter.variant == "二":
        ask = STAFF.format(first=letter.staff[0], second=letter.staff[1]) + ask
    return _page([
        f"{letter.requester_name}行政协助函（{letter.variant}）",
        f"（编号：{letter.number}）",
        "",
        f"{letter.assistor_name}：",
        f"{zh_date(letter.applied_on)}，{letter.applicant_name}到我单位办理{letter.matter_name}事项，"
        f"{BASIS}，{letter.applicant_name}已作出书面承诺，承诺内容为：",
        *_numbered(letter.items),
        ask,
        "",
        letter.requester_name,
        zh_date(letter.dated),
        COPIES_REQUEST,
    ])


def reply_conclusion(items: Sequence[ReplyItem]) -> str:
    """附件5's "申请人承诺事项为真实（或虚假）", with each item's verdict where they differ.

    One verdict for all: the template's sentence (and, for items that cannot be verified, its 备注's
    "无法证实申请人承诺事项的真实性", the reasons on the stamped sheet).  Mixed: each verdict in the
    template's words with its item numbers, in the template's order (真实, 虚假, then 无法证实).
    """
    groups: dict[str, list[int]] = {"true": [], "false": [], "unverifiable": []}
    for no, item in enumerate(items, 1):
        groups[item.verdict].append(no)
    present = [v for v, nos in groups.items() if nos]
    if present == ["unverifiable"]:
        return f"无法证实申请人承诺事项的真实性，{UNVERIFIABLE_SHEET}。"
    phrases = {"false": "为虚假", "unverifiable": f"无法证实其真实性（{UNVERIFIABLE_SHEET}）", "true": "为真实"}
    if len(present) == 1:
        return f"申请人承诺事项{phrases[present[0]]}。"
    return "申请人承诺事项" + "，".join(_nos(groups[v]) + phrases[v] for v in present) + "。"


def render_reply_letter(letter: ReplyLetter) -> str:
    """附件5 行政协助回复函, with the stamped sheet of reasons when an item cannot be verified."""
    checked = f"经我单位向{letter.on_behalf_of}核实" if letter.on_behalf_of else "经我单位核实"
    lines = [
        f"{letter.replier_name}行政协助回复函",
        f"（编号：{letter.own_number}）",
        "",
        f"{letter.requester_name}：",
        f"{zh_date(letter.requested_on)}，{REPLY_ASKED}",
        *_numbered(item.text for item in letter.items),
        f"根据贵单位行政协助函（{letter.number}）内容，{checked}，{reply_conclusion(letter.items)}",
        "",
        letter.replier_name,
        zh_date(letter.dated),
        COPIES_REPLY,
    ]
    unverifiable = [(no, item) for no, item in enumerate(letter.items, 1) if item.verdict == "unverifiable"]
    if unverifiable:
        lines += ["", "", SHEET_TITLE, f"（行政协助回复函编号：{letter.own_number}）", ""]
        for no, item in unverifiable:
            lines += [f"{no}、{item.text}", f"原因：{item.reason}"]
        lines += ["", letter.replier_name, zh_date(letter.dated), f"（加盖{letter.stamped_by}公章）"]
    return _page(lines)


def render_decline_letter(letter: DeclineLetter) -> str:
    """书面告知: the assistor cannot assist, with its reasons (三（二）; no template in the seed)."""
    return _page([
        f"{letter.decliner_name}不能提供行政协助告知书",
        f"（编号：{letter.number}）",
        "",
        f"{letter.requester_name}：",
        f"{zh_date(letter.requested_on)}，贵单位以行政协助函（{letter.number}）请我单位协助核实申请人承诺事项。"
        f"根据台儿庄区人民政府《台儿庄区全面推行证明事项告知承诺制工作实施方案》关于“{DECLINE_RULE}”的规定，"
        "现书面告知贵单位：我单位不能提供该项协助，理由如下：",
        *letter.reasons.strip().splitlines(),
        "",
        letter.decliner_name,
        zh_date(letter.dated),
        COPIES_REPLY,
    ])


def certificate(name: str) -> str:
    """附件6 prints "<name>证明"; a name that already ends in 证明 is not doubled."""
    return name if name.endswith("证明") else f"{name}证明"


def render_commitment_notice(notice: CommitmentNotice) -> str:
    """附件6 承诺告知书."""
    return _page([
        "承诺告知书",
        "",
        f"{notice.applicant_name}：",
        f"{zh_date(notice.applied_on)}，{notice.applicant_name}到我单位办理{notice.matter_name}事项，"
        f"应当提供{notice.issuing_unit}出具的{certificate(notice.certificate_name)}（法律、法规规定的要件），"
        f"你没有提供，{BASIS}，你可以作出以下承诺，我单位给予受理（办理）：",
        *_numbered(notice.items),
        *([DISCLOSURE] if notice.disclosed else []),
        NOTICE_CONSEQUENCES,
        "",
        notice.bureau_name,
        zh_date(notice.dated),
    ])


def render_applicant_commitment(commitment: ApplicantCommitment) -> str:
    """附件7 申请人承诺书, with the signature left blank (and the date too, if not yet signed)."""
    return _page([
        "申请人承诺书",
        "",
        f"{commitment.bureau_name}：",
        f"{zh_date(commitment.applied_on)}，{commitment.applicant_name}到贵单位办理{commitment.matter_name}事项，"
        "对《承诺告知书》已知悉，现做出以下承诺：",
        *_numbered(commitment.items),
        COMMITMENT_CONSENT,
        "",
        "",
        SIGNATURE,
        zh_date(commitment.signed_on) if commitment.signed_on else BLANK_DATE,
    ])


#: 三（三）, quoted by every consequence notice.
CONSEQUENCE_RULE = ("在信息核查和事中事后监管中发现承诺不实的，"
                    "要依法终止办理、责令限期整改、撤销行政决定或者予以行政处罚，并将数据推送至信用中国计入个人诚信档案等")
SCHEME = "台儿庄区人民政府《台儿庄区全面推行证明事项告知承诺制工作实施方案》"


def consequence_body(notice: ConsequenceNotice) -> list[str]:
    """The paragraphs of a consequence notice between its addressee and its signature."""
    found = (f"{zh_date(notice.applied_on)}，你到我单位办理{notice.matter_name}事项，以书面承诺代替证明材料。"
             "经我单位核查，你作出的下列承诺与实际情况不符，属于虚假承诺：")
    reason = "事实和理由：" + notice.legal_reason.strip().rstrip("。") + "。"
    ground = f"根据{SCHEME}关于“{CONSEQUENCE_RULE}”的规定，"
    match notice.consequence:
        case "terminated":
            decision = ground + f"我单位决定终止办理你申请的{notice.matter_name}事项。"
        case "rectification":
            assert notice.deadline is not None
            decision = (ground + f"我单位责令你于{zh_date(notice.deadline)}前完成整改，"
                        "并将整改情况书面报告我单位。逾期未整改的，我单位将依法撤销已批准事项。")
        case "revoked" if notice.licence:
            decision = (ground + f"我单位决定撤销{notice.decision_no}行政许可决定。"
                        "请你在撤销之日起2日内将取得证件（行政许可证）原件交回我单位。")
        case "revoked":  # not a licence (a 行政给付, a 行政确认): the decision goes, and there is no 证件
            decision = ground + f"我单位决定撤销{notice.decision_no}决定。"
        case "licence-return":
            assert notice.return_by is not None
            found = (f"你在我单位办理{notice.matter_name}事项取得的{notice.decision_no}行政许可，"
                     "因你作出的下列承诺与实际情况不符，已被依法撤销：")
            # 撤销之日起2日内, counted by date: through the whole of the second day (decision 39), said so
            decision = (f"根据你签署的《申请人承诺书》和我单位《承诺告知书》，请你于{zh_date(notice.return_by)}24时前"
                        "将取得证件（行政许可证）原件交回我单位。逾期不交回的，我单位将依法处理。")
    return [found, *_numbered(notice.items), reason, decision]


def render_consequence_notice(notice: ConsequenceNotice) -> str:
    """三（三）: 终止办理, 责令限期整改, 撤销, or the notice to hand back the licence."""
    return _page([
        notice.title,
        f"（编号：{notice.number}）",
        "",
        f"{notice.applicant_name}：",
        *consequence_body(notice),
        "",
        notice.bureau_name,
        zh_date(notice.dated),
        COPIES_NOTICE,
    ])


def render(letter: Letter) -> str:
    """The printable text of any letter."""
    match letter:
        case AssistanceLetter():
            return render_assistance_letter(letter)
        case ReplyLetter():
            return render_reply_letter(letter)
        case DeclineLetter():
            return render_decline_letter(letter)
        case CommitmentNotice():
            return render_commitment_notice(letter)
        case ApplicantCommitment():
            return render_applicant_commitment(letter)
        case ConsequenceNotice():
            return render_consequence_notice(letter)


def _page(lines: list[str]) -> str:
    return "\n".join(lines) + "\n"
