"""The printed letters of 附件4–7 and the written decline: golden texts, template wording, validation."""
# The golden texts are the letters as printed; their lines are as long as the template's paragraphs.
# ruff: noqa: E501
from __future__ import annotations

from collections.abc import Callable
from datetime import date

import msgspec
import pytest

from projections.documents.letters import (
    render,
    render_applicant_commitment,
    render_assistance_letter,
    render_commitment_notice,
    render_decline_letter,
    render_reply_letter,
)
from schemas.errors import XiezhuError
from schemas.letters import (
    ApplicantCommitment,
    AssistanceLetter,
    CommitmentNotice,
    DeclineLetter,
    Letter,
    LetterError,
    ReplyItem,
    ReplyLetter,
    decode_letter,
)

replace = msgspec.structs.replace

ITEMS = [
    "本人户籍所在地为山东省枣庄市台儿庄区运河街道",
    "本人无犯罪记录",
    "本人未被列入失信被执行人名单",
]


def request(**changes: object) -> AssistanceLetter:
    letter = AssistanceLetter(
        number="20260001", requester_name="区审批服务局", assistor_name="区公安分局", applicant_name="张三",
        applied_on=date(2026, 9, 21), matter_name="个体工商户设立登记", items=list(ITEMS), dated=date(2026, 9, 21),
    )
    return replace(letter, **changes) if changes else letter


def reply(*verdicts: tuple[str, str], **changes: object) -> ReplyLetter:
    """A reply to ``request()``; each verdict is (verdict, reason) for the item of ITEMS at that place."""
    letter = ReplyLetter(
        number="20260001", replier_name="区公安分局", requester_name="区审批服务局", requested_on=date(2026, 9, 21),
        items=[ReplyItem(text=text, verdict=v, reason=why)  # type: ignore[arg-type]
               for text, (v, why) in zip(ITEMS, verdicts, strict=False)],
        dated=date(2026, 9, 23), stamped_by="区公安分局",
    )
    return replace(letter, **changes) if changes else letter


def decline(**changes: object) -> DeclineLetter:
    letter = DeclineLetter(
        number="20260001", decliner_name="区公安分局", requester_name="区审批服务局", requested_on=date(2026, 9, 21),
        reasons="申请人户籍档案于2019年迁出本区，我单位已无该申请人的户籍资料。\n建议向迁入地公安机关请求协助。",
        dated=date(2026, 9, 22),
    )
    return replace(letter, **changes) if changes else letter


def notice(**changes: object) -> CommitmentNotice:
    letter = CommitmentNotice(
        applicant_name="张三", applied_on=date(2026, 9, 21), bureau_name="区审批服务局", matter_name="个体工商户设立登记",
        issuing_unit="区公安分局", certificate_name="无犯罪记录证明", items=ITEMS[1:2], dated=date(2026, 9, 21),
    )
    return replace(letter, **changes) if changes else letter


def commitment(**changes: object) -> ApplicantCommitment:
    letter = ApplicantCommitment(
        bureau_name="区审批服务局", applicant_name="张三", applied_on=date(2026, 9, 21),
        matter_name="个体工商户设立登记", items=list(ITEMS), signed_on=date(2026, 9, 21),
    )
    return replace(letter, **changes) if changes else letter


# --- golden texts -----------------------------------------------------------------------------

def test_assistance_letter_one_fills_the_blanks_of_template_4_1() -> None:
    assert render_assistance_letter(request()) == """\
区审批服务局行政协助函（一）
（编号：20260001）

区公安分局：
2026年9月21日，张三到我单位办理个体工商户设立登记事项，根据台儿庄区人民政府《台儿庄区全面推行证明事项告知承诺制实施方案》要求，张三已作出书面承诺，承诺内容为：
1、本人户籍所在地为山东省枣庄市台儿庄区运河街道
2、本人无犯罪记录
3、本人未被列入失信被执行人名单
请贵单位对申请人承诺的真实性予以核查，并在3个工作日内给予书面回复。

区审批服务局
2026年9月21日
（一式两份，部门一份，行政协助部门一份）
"""


def test_assistance_letter_with_two_staff_is_letter_two_and_names_them() -> None:
    letter = request(staff=["王伟", "李娜"], items=ITEMS[:1], number="20260017", dated=date(2026, 9, 22))
    assert letter.variant == "二"
    assert render_assistance_letter(letter) == """\
区审批服务局行政协助函（二）
（编号：20260017）

区公安分局：
2026年9月21日，张三到我单位办理个体工商户设立登记事项，根据台儿庄区人民政府《台儿庄区全面推行证明事项告知承诺制实施方案》要求，张三已作出书面承诺，承诺内容为：
1、本人户籍所在地为山东省枣庄市台儿庄区运河街道
我单位指派王伟、李娜两名同志前往贵单位调查核实，请贵单位对申请人承诺的真实性予以核查，并在3个工作日内给予书面回复。

区审批服务局
2026年9月22日
（一式两份，部门一份，行政协助部门一份）
"""


def test_assistance_letter_asks_for_a_reply_within_the_letters_own_number_of_days() -> None:
    """A shorter time the catalogue item agreed (第十一条) is printed; never more than the plan's 3."""
    text = render_assistance_letter(request(reply_within=2))
    assert "请贵单位对申请人承诺的真实性予以核查，并在2个工作日内给予书面回复。" in text
    assert "3个工作日" not in text


def test_reply_with_every_item_true_concludes_with_the_templates_sentence() -> None:
    assert render_reply_letter(reply(("true", ""), ("true", ""), ("true", ""))) == """\
区公安分局行政协助回复函
（编号：20260001）

区审批服务局：
2026年9月21日，贵单位请我单位协助核实申请人承诺事项：
1、本人户籍所在地为山东省枣庄市台儿庄区运河街道
2、本人无犯罪记录
3、本人未被列入失信被执行人名单
根据贵单位行政协助函（20260001）内容，经我单位核实，申请人承诺事项为真实。

区公安分局
2026年9月23日
（一式两份，部门一份，请求行政协助部门一份）
"""


def test_reply_with_mixed_verdicts_names_each_group_and_attaches_the_stamped_sheet_of_reasons() -> None:
    letter = reply(("true", ""), ("false", ""), ("unverifiable", "2019年以前的刑事档案尚未电子化，需调阅纸质档案"))
    assert render_reply_letter(letter) == """\
区公安分局行政协助回复函
（编号：20260001）

区审批服务局：
2026年9月21日，贵单位请我单位协助核实申请人承诺事项：
1、本人户籍所在地为山东省枣庄市台儿庄区运河街道
2、本人无犯罪记录
3、本人未被列入失信被执行人名单
根据贵单位行政协助函（20260001）内容，经我单位核实，申请人承诺事项第1项为真实，第2项为虚假，第3项无法证实其真实性（原因另附纸说明）。

区公安分局
2026年9月23日
（一式两份，部门一份，请求行政协助部门一份）


附：无法证实的说明
（行政协助回复函编号：20260001）

3、本人未被列入失信被执行人名单
原因：2019年以前的刑事档案尚未电子化，需调阅纸质档案

区公安分局
2026年9月23日
（加盖区公安分局公章）
"""


@pytest.mark.parametrize(("verdicts", "conclusion"), [
    ((("false", ""),), "经我单位核实，申请人承诺事项为虚假。"),
    ((("false", ""), ("false", "")), "经我单位核实，申请人承诺事项为虚假。"),
    ((("true", ""), ("false", ""), ("true", "")), "经我单位核实，申请人承诺事项第1、3项为真实，第2项为虚假。"),
    ((("unverifiable", "无档案"),), "经我单位核实，无法证实申请人承诺事项的真实性，原因另附纸说明。"),
    ((("false", ""), ("unverifiable", "无档案"), ("false", "")),
     "经我单位核实，申请人承诺事项第1、3项为虚假，第2项无法证实其真实性（原因另附纸说明）。"),
])
def test_reply_conclusion_states_exactly_which_items_are_false_or_unverifiable(
        verdicts: tuple[tuple[str, str], ...], conclusion: str) -> None:
    text = render_reply_letter(reply(*verdicts))
    assert f"根据贵单位行政协助函（20260001）内容，{conclusion}\n" in text
    assert ("附：无法证实的说明" in text) == any(v == "unverifiable" for v, _ in verdicts)


def test_reply_checked_with_the_holder_of_pre_reform_archives_says_whom_it_asked() -> None:
    letter = reply(("true", ""), on_behalf_of="区档案馆")
    assert "根据贵单位行政协助函（20260001）内容，经我单位向区档案馆核实，申请人承诺事项为真实。\n" in render(letter)


def test_reply_sheet_carries_the_stamp_of_the_named_bureau() -> None:
    letter = reply(("unverifiable", "无档案"), stamped_by="区公安分局运河派出所")
    assert render(letter).endswith("（加盖区公安分局运河派出所公章）\n")


def test_decline_letter_cites_the_two_day_rule_and_gives_the_reasons_line_by_line() -> None:
    assert render_decline_letter(decline()) == """\
区公安分局不能提供行政协助告知书
（编号：20260001）

区审批服务局：
2026年9月21日，贵单位以行政协助函（20260001）请我单位协助核实申请人承诺事项。根据台儿庄区人民政府《台儿庄区全面推行证明事项告知承诺制工作实施方案》关于“确有原因不能提供协助的，应当于2个工作日内书面告知请求协助的行政机关并说明理由”的规定，现书面告知贵单位：我单位不能提供该项协助，理由如下：
申请人户籍档案于2019年迁出本区，我单位已无该申请人的户籍资料。
建议向迁入地公安机关请求协助。

区公安分局
2026年9月22日
（一式两份，部门一份，请求行政协助部门一份）
"""


def test_commitment_notice_fills_the_blanks_of_template_6() -> None:
    assert render_commitment_notice(notice()) == """\
承诺告知书

张三：
2026年9月21日，张三到我单位办理个体工商户设立登记事项，应当提供区公安分局出具的无犯罪记录证明（法律、法规规定的要件），你没有提供，根据台儿庄区人民政府《台儿庄区全面推行证明事项告知承诺制实施方案》要求，你可以作出以下承诺，我单位给予受理（办理）：
1、本人无犯罪记录
如果你作出的承诺经我单位核实后为虚假承诺，我单位将撤销已批准事项（行政许可），限你在撤销之日起2日内将取得证件（行政许可证）原件交回我单位，并将你的信息推送监管部门予以惩处，相关数据推送至信用中国计入个人诚信档案等。

区审批服务局
2026年9月21日
"""


def test_commitment_notice_adds_the_word_zhengming_only_when_the_name_lacks_it() -> None:
    assert "出具的居住证明（法律、法规规定的要件）" in render(notice(certificate_name="居住"))
    assert "出具的居住证明（法律、法规规定的要件）" in render(notice(certificate_name="居住证明"))


def test_applicant_commitment_fills_the_blanks_of_template_7_and_leaves_the_signature_blank() -> None:
    assert render_applicant_commitment(commitment()) == """\
申请人承诺书

区审批服务局：
2026年9月21日，张三到贵单位办理个体工商户设立登记事项，对《承诺告知书》已知悉，现做出以下承诺：
1、本人户籍所在地为山东省枣庄市台儿庄区运河街道
2、本人无犯罪记录
3、本人未被列入失信被执行人名单
贵单位可以对我承诺事项到有关机关、部门、单位进行核查或者请有关机关、部门、单位进行协查，或者进行现场检查，或者通过公开信息等其他方式进行核查。如果经核实我作出虚假承诺，我自愿承担以下不利后果：撤销已批准事项（行政许可），在撤销之日起2日内将我已取得的证件（行政许可证）原件交回贵单位，并将我的信息推送至监管部门予以惩处，相关数据推送至信用中国计入个人诚信档案等。


申请人（签字、捺印）：
2026年9月21日
"""


def test_unsigned_applicant_commitment_leaves_the_date_for_the_applicant_to_write() -> None:
    text = render_applicant_commitment(commitment(signed_on=None))
    assert text.endswith("申请人（签字、捺印）：\n\u3000\u3000\u3000\u3000年\u3000\u3000月\u3000\u3000日\n")


# --- the template's fixed wording --------------------------------------------------------------

# Copied by hand from the seed (附件4-1 … 附件7), not from the module, so that a change of
# wording in either place fails here. Each fragment is the text between two blanks.
FIXED: list[tuple[str, Callable[[], Letter], list[str]]] = [
    ("附件4-1", request, [
        "行政协助函（一）", "（编号：",
        "到我单位办理", "事项，根据台儿庄区人民政府《台儿庄区全面推行证明事项告知承诺制实施方案》要求，",
        "已作出书面承诺，承诺内容为：",
        "请贵单位对申请人承诺的真实性予以核查，并在3个工作日内给予书面回复。",
        "（一式两份，部门一份，行政协助部门一份）",
    ]),
    ("附件4-2", lambda: request(staff=["王伟", "李娜"]), [
        "行政协助函（二）", "（编号：",
        "到我单位办理", "事项，根据台儿庄区人民政府《台儿庄区全面推行证明事项告知承诺制实施方案》要求，",
        "已作出书面承诺，承诺内容为：",
        "两名同志前往贵单位调查核实，请贵单位对申请人承诺的真实性予以核查，并在3个工作日内给予书面回复。",
        "（一式两份，部门一份，行政协助部门一份）",
    ]),
    ("附件5", lambda: reply(("true", "")), [
        "行政协助回复函", "（编号：",
        "，贵单位请我单位协助核实申请人承诺事项：",
        "根据贵单位行政协助函（", "）内容，经我单位核实，申请人承诺事项为真实",
        "（一式两份，部门一份，请求行政协助部门一份）",
    ]),
    ("附件5 false", lambda: reply(("false", "")), [
        "）内容，经我单位核实，申请人承诺事项为", "虚假",
    ]),
    ("附件6", notice, [
        "承诺告知书",
        "到我单位办理", "事项，应当提供", "出具的", "证明（法律、法规规定的要件），你没有提供，根据台儿庄区人民政府《台儿庄区全面推行证明事项告知承诺制实施方案》要求，你可以作出以下承诺，我单位给予受理（办理）：",
        "如果你作出的承诺经我单位核实后为虚假承诺，我单位将撤销已批准事项（行政许可），限你在撤销之日起2日内将取得证件（行政许可证）原件交回我单位，并将你的信息推送监管部门予以惩处，相关数据推送至信用中国计入个人诚信档案等。",
    ]),
    ("附件7", commitment, [
        "申请人承诺书",
        "到贵单位办理", "事项，对《承诺告知书》已知悉，现做出以下承诺：",
        "贵单位可以对我承诺事项到有关机关、部门、单位进行核查或者请有关机关、部门、单位进行协查，或者进行现场检查，或者通过公开信息等其他方式进行核查。如果经核实我作出虚假承诺，我自愿承担以下不利后果：撤销已批准事项（行政许可），在撤销之日起2日内将我已取得的证件（行政许可证）原件交回贵单位，并将我的信息推送至监管部门予以惩处，相关数据推送至信用中国计入个人诚信档案等。",
        "申请人（签字、捺印）：",
    ]),
]


@pytest.mark.parametrize(("template", "build", "fixed"), FIXED, ids=[f[0] for f in FIXED])
def test_every_fixed_sentence_of_the_template_appears_verbatim(
        template: str, build: Callable[[], Letter], fixed: list[str]) -> None:
    text = render(build())
    missing = [sentence for sentence in fixed if sentence not in text]
    assert not missing, f"{template} lost its wording: {missing}"


@pytest.mark.parametrize("build", [request, lambda: reply(("true", "")), decline, notice, commitment])
def test_template_notes_for_the_clerk_are_not_printed(build: Callable[[], Letter]) -> None:
    text = render(build())
    assert "供参考" not in text
    assert "备注" not in text
    assert "XXX" not in text and "---" not in text


@pytest.mark.parametrize(("build", "renderer"), [
    (request, render_assistance_letter),
    (lambda: reply(("unverifiable", "无档案")), render_reply_letter),
    (decline, render_decline_letter),
    (notice, render_commitment_notice),
    (commitment, render_applicant_commitment),
])
def test_render_dispatches_each_letter_to_its_own_template(
        build: Callable[[], Letter], renderer: Callable[[Letter], str]) -> None:
    letter = build()
    assert render(letter) == renderer(letter)


# --- validation --------------------------------------------------------------------------------

INVALID: list[tuple[str, Callable[[], object], str]] = [
    ("one staff", lambda: request(staff=["王伟"]), "staff names 1 people: letter (二) needs exactly two"),
    ("three staff", lambda: request(staff=["王伟", "李娜", "赵强"]), "staff names 3 people"),
    ("same staff twice", lambda: request(staff=["王伟", "王伟"]), "names 王伟 twice"),
    ("blank staff", lambda: request(staff=["王伟", " "]), "staff 2 is empty"),
    ("unverifiable without reason", lambda: reply(("true", ""), ("unverifiable", "")),
     "item 2 cannot be verified but gives no reason"),
    ("unverifiable with blank reason", lambda: reply(("unverifiable", "  ")), "item 1 cannot be verified"),
    ("reason on a true item", lambda: reply(("true", "查有此人")), "item 1 is true but gives a reason"),
    ("unknown verdict", lambda: reply(("maybe", "")), "item 1 has verdict 'maybe'"),
    ("bad number", lambda: request(number="2026-001"), "number must be eight digits"),
    ("no items", lambda: request(items=[]), "items is empty"),
    ("blank item", lambda: request(items=["本人无犯罪记录", ""]), "item 2 is empty"),
    ("item on two lines", lambda: notice(items=["本人无\n犯罪记录"]), "item 1 must fit on one line"),
    ("empty applicant", lambda: commitment(applicant_name=""), "applicant_name is empty"),
    ("letter to itself", lambda: request(assistor_name="区审批服务局"), "assistor_name is the requester itself"),
    ("no days to reply", lambda: request(reply_within=0), "reply_within must be 1 to 3"),
    ("more than the plan's 3 days", lambda: request(reply_within=30), "reply_within must be 1 to 3"),
    ("request before application", lambda: request(dated=date(2026, 9, 20)),
     "dated 2026-09-20 is before applied_on 2026-09-21"),
    ("reply before request", lambda: reply(("true", ""), dated=date(2026, 9, 1)), "dated 2026-09-01 is before requested_on"),
    ("unstamped reply", lambda: reply(("true", ""), stamped_by=""), "stamped_by is empty"),
    ("decline without reasons", lambda: decline(reasons=" \n "), "reasons is empty"),
    ("signed before application", lambda: commitment(signed_on=date(2026, 9, 1)), "signed_on 2026-09-01 is before"),
    ("notice before application", lambda: notice(dated=date(2026, 9, 1)), "dated 2026-09-01 is before"),
]


@pytest.mark.parametrize(("case", "build", "problem"), INVALID, ids=[i[0] for i in INVALID])
def test_a_letter_that_breaks_its_template_cannot_be_built(case: str, build: Callable[[], object], problem: str) -> None:
    with pytest.raises(LetterError) as info:
        build()
    assert isinstance(info.value, XiezhuError)
    assert info.value.code == "letter.invalid"
    assert problem in str(info.value), case
    assert info.value.details["field"] in str(info.value)


@pytest.mark.parametrize("build", [request, lambda: request(staff=["王伟", "李娜"]), lambda: reply(("unverifiable", "无档案")),
                                   decline, notice, commitment, lambda: commitment(signed_on=None)])
def test_a_letter_decodes_from_its_tagged_json_unchanged(build: Callable[[], Letter]) -> None:
    letter = build()
    assert decode_letter(msgspec.json.encode(letter)) == letter


def test_decoding_checks_the_same_rules_as_building() -> None:
    data = msgspec.json.encode(request(staff=["王伟", "李娜"])).replace("李娜".encode(), "王伟".encode())
    with pytest.raises(LetterError, match="names 王伟 twice"):
        decode_letter(data)


def test_decoding_something_that_is_not_a_letter_raises_a_letter_error() -> None:
    with pytest.raises(LetterError, match="not a letter") as info:
        decode_letter(b'{"type": "letter.unknown"}')
    assert info.value.code == "letter.invalid"


def test_the_notice_of_a_disclosed_matter_tells_the_applicant_the_commitment_will_be_public() -> None:
    """二(四): 决定向社会公开告知承诺书的……并在当事人申请时告知 — on paper, not only in the record."""
    from projections.documents.paper import paper

    said = "本事项属于向社会公开告知承诺书的事项，你作出的承诺将向社会公开；你拒绝公开的，应当提交法律法规或者国务院决定要求的证明。"
    assert said in render(notice(disclosed=True))
    assert said in paper(notice(disclosed=True), "C20260001").text()
    assert "向社会公开" not in render(notice())
