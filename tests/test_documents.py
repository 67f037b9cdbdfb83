"""Letters on paper: DOCX a clerk can edit and PDF with its CJK font embedded, in the GB/T 9704 layout."""
from __future__ import annotations

import shutil
import subprocess
from collections.abc import Callable
from datetime import date, datetime
from pathlib import Path

import docx
import msgspec
import pytest
from docx.shared import Pt

from aggregates.commitment import CommitmentState
from projections.documents.case_letters import consequence_notice
from projections.documents.files import write_letters
from projections.documents.letters import render
from projections.documents.paper import paper
from projections.documents.pdf import pdf_bytes
from projections.documents.word import BODY_FONT, STAMP_LABEL, TITLE_FONT, document
from schemas.assistance import Applicant, CommitmentItem
from schemas.letters import ConsequenceNotice, Letter, LetterError, is_licence
from tests.test_letters import ITEMS, commitment, decline, notice, reply, request

replace = msgspec.structs.replace


def consequence(kind: str, **changes: object) -> ConsequenceNotice:
    extra: dict[str, object] = {
        "rectification": {"deadline": date(2026, 10, 20)},
        "revoked": {"decision_no": "台审批许〔2026〕0001号"},
        "licence-return": {"decision_no": "台审批许〔2026〕0001号", "return_by": date(2026, 10, 12)},
    }.get(kind, {})
    n = ConsequenceNotice(
        consequence=kind, number="C20260001", bureau_name="区审批服务局", applicant_name="张三",  # type: ignore[arg-type]
        applied_on=date(2026, 9, 21), matter_name="个体工商户设立登记", items=ITEMS[1:2],
        legal_reason="经区公安分局协助核实，申请人有犯罪记录", dated=date(2026, 10, 10), **extra,  # type: ignore[arg-type]
    )
    return replace(n, **changes) if changes else n


LETTERS: dict[str, Callable[[], Letter]] = {
    "行政协助函（一）": request,
    "行政协助函（二）": lambda: request(staff=["李四", "王五"]),
    "行政协助回复函": lambda: reply(("true", ""), ("unverifiable", "档案已迁出"), ("false", "")),
    "不能提供行政协助告知书": decline,
    "承诺告知书": notice,
    "申请人承诺书": commitment,
    "终止办理通知书": lambda: consequence("terminated"),
    "责令限期整改通知书": lambda: consequence("rectification"),
    "撤销行政许可决定书": lambda: consequence("revoked"),
    "交回行政许可证件通知书": lambda: consequence("licence-return"),
}


@pytest.mark.parametrize("kind", LETTERS)
def test_each_letter_is_filed_under_its_number_and_chinese_kind(kind: str) -> None:
    p = paper(LETTERS[kind](), "C20260001")
    assert p.kind == kind
    assert p.filename == ("C20260001" if p.number.startswith("C") else "20260001") + "-" + kind


@pytest.mark.parametrize("kind", LETTERS)
def test_the_paper_says_what_the_text_says(kind: str) -> None:
    letter = LETTERS[kind]()
    text = render(letter)
    for line in paper(letter, "C20260001").text().splitlines():
        assert line in text, line


def test_consequence_notices_name_the_false_items_the_ground_and_what_follows() -> None:
    terminated = render(consequence("terminated"))
    assert "终止办理通知书" in terminated and "1、本人无犯罪记录" in terminated
    assert "事实和理由：经区公安分局协助核实，申请人有犯罪记录。" in terminated
    assert "我单位决定终止办理你申请的个体工商户设立登记事项" in terminated
    assert "于2026年10月20日前完成整改" in render(consequence("rectification"))
    assert "撤销台审批许〔2026〕0001号行政许可决定" in render(consequence("revoked"))
    # 撤销之日起2日内: the whole second day, which "于……日前" alone would leave in doubt
    assert "请你于2026年10月12日24时前将取得证件（行政许可证）原件交回我单位" in render(consequence("licence-return"))


@pytest.mark.parametrize(("kind", "changes", "problem"), [
    ("rectification", {"deadline": None}, "deadline"),
    ("revoked", {"decision_no": ""}, "decision_no"),
    ("licence-return", {"return_by": None}, "return_by"),
    ("terminated", {"number": "20260001"}, "number"),
    ("licence-return", {"return_by": date(2026, 10, 1)}, "return_by"),
])
def test_a_consequence_notice_lacking_what_it_must_say_cannot_be_built(kind: str, changes: dict[str, object],
                                                                      problem: str) -> None:
    with pytest.raises(LetterError, match=problem):
        consequence(kind, **changes)


def test_a_consequence_notice_of_a_case_names_only_the_items_found_false() -> None:
    state = CommitmentState(
        case="c1", number="C20260003", bureau="shenpi", applicant=Applicant(kind="person", name="张三",
                                                                            id_number="370405199001011234"),
        matter_code="370405-XK-0101", matter_name="食品经营许可", certificate_name="无犯罪记录证明",
        issuing_unit="区公安分局", mode="可选择", disclose=False, catalogue_version=1,
        items=(CommitmentItem(no=1, text="户籍在本区"), CommitmentItem(no=2, text="无犯罪记录")),
        applied_on=date(2026, 9, 1), standing="good", status="revoked", decision_no="台审批许〔2026〕0003号",
        false_items=(2,), licence_return_due=datetime(2026, 9, 12, 9),
    )
    n = consequence_notice(state, {"shenpi": "区行政审批服务局"}.__getitem__, "licence-return", "有犯罪记录",
                           date(2026, 9, 10), return_by=date(2026, 9, 12))
    assert n.items == ["无犯罪记录"] and n.bureau_name == "区行政审批服务局" and n.number == "C20260003"


def test_a_decision_that_is_no_licence_is_revoked_as_a_decision_with_no_licence_to_hand_back() -> None:
    # 最低生活保障 is a 行政给付 (JF in its 编码): no 行政许可 to revoke, no 证件（行政许可证） to hand back.
    assert is_licence("370405-XK-0101") and not is_licence("370405-JF-0701") and not is_licence("370405-QR-0203")
    revoked = consequence("revoked", matter_name="最低生活保障", decision_no="台民政决〔2026〕0001号", licence=False)
    text = render(revoked)
    assert revoked.title == "撤销决定书" and paper(revoked, "C20260001").kind == "撤销决定书"
    assert "我单位决定撤销台民政决〔2026〕0001号决定。" in text
    assert "行政许可" not in text.replace("附件", "") and "证件" not in text
    with pytest.raises(LetterError, match="licence"):
        consequence("licence-return", licence=False)
    state = CommitmentState(
        case="c2", number="C20260004", bureau="minzheng", applicant=Applicant(kind="person", name="张三",
                                                                              id_number="370405199001011234"),
        matter_code="ZM-minzheng-0001", service_matter_code="370405-JF-0701", matter_name="最低生活保障",
        certificate_name="社会保险缴费证明",
        issuing_unit="区人力资源社会保障局", mode="必须实行", disclose=False, catalogue_version=1,
        items=(CommitmentItem(no=1, text="未缴纳社会保险"),), applied_on=date(2026, 9, 1), standing="good",
        status="revoked", decision_no="台民政决〔2026〕0004号", false_items=(1,),
    )
    assert not consequence_notice(state, {"minzheng": "区民政局"}.__getitem__, "revoked", "有缴费记录",
                                  date(2026, 9, 10)).licence


# --- DOCX -----------------------------------------------------------------------------------

def _fonts(p: docx.text.paragraph.Paragraph) -> set[tuple[str | None, float | None]]:
    from docx.oxml.ns import qn

    out = set()
    for run in p.runs:
        rfonts = run._element.rPr.rFonts if run._element.rPr is not None else None
        east = rfonts.get(qn("w:eastAsia")) if rfonts is not None else None
        out.add((east, run.font.size.pt if run.font.size else None))
    return out


def test_the_docx_has_the_gbt_9704_page_title_body_and_stamp_area(tmp_path: Path) -> None:
    [w] = write_letters([request()], "20260001", "docx", tmp_path)
    assert w.path.name == "20260001-行政协助函（一）.docx"
    d = docx.Document(str(w.path))
    s = d.sections[0]
    def mm(*lengths: object) -> list[float]:
        return [round(length.mm, 1) for length in lengths]  # type: ignore[attr-defined]

    assert mm(s.page_width, s.page_height) == [210, 297]  # A4, as Word stores it (in twips)
    assert mm(s.top_margin, s.bottom_margin, s.left_margin, s.right_margin) == [37, 35, 28, 26]
    paras = [p for p in d.paragraphs if p.text]
    assert paras[0].text == "区审批服务局行政协助函（一）"
    assert _fonts(paras[0]) == {(TITLE_FONT, 22.0)}
    assert paras[1].text == "（编号：20260001）" and paras[2].text == "区公安分局："
    body = next(p for p in paras if p.text.startswith("2026年9月21日"))
    assert _fonts(body) == {(BODY_FONT, 16.0)} and body.paragraph_format.first_line_indent == Pt(32)
    [table] = d.tables
    stamp, names = table.rows[0].cells
    assert stamp.text.strip() == STAMP_LABEL
    assert [p.text for p in names.paragraphs] == ["区审批服务局", "2026年9月21日"]
    assert paras[-1].text == "（一式两份，部门一份，行政协助部门一份）"


@pytest.mark.parametrize("kind", LETTERS)
def test_every_letter_is_written_as_text_and_as_a_gbt_9704_docx(kind: str, tmp_path: Path) -> None:
    """Each of the ten letters: its Chinese file name, and the layout's parts in the DOCX (title, 发文字号,
    主送机关, body, 落款 with the 盖章处 or the applicant's signature, 一式两份), set in their fonts."""
    letter = LETTERS[kind]()
    p = paper(letter, "C20260001")
    [txt] = write_letters([letter], "C20260001", "txt", tmp_path)
    assert txt.path.name == f"{p.filename}.txt" and txt.path.read_text(encoding="utf-8") == render(letter)
    [w] = write_letters([letter], "C20260001", "docx", tmp_path)
    assert w.path.name == f"{p.filename}.docx" and kind in w.path.name
    d = docx.Document(str(w.path))
    s = d.sections[0]
    assert [round(x.mm) for x in (s.page_width, s.page_height, s.top_margin, s.bottom_margin, s.left_margin,
                                  s.right_margin)] == [210, 297, 37, 35, 28, 26]
    texts = [q for q in d.paragraphs if q.text]
    for page in p.pages:
        [title] = [q for q in texts if q.text == page.title]
        assert _fonts(title) == {(TITLE_FONT, 22.0)}
        for line in (page.number_line, page.addressee, *page.body, page.copies, page.signature):
            if line:
                [para] = [q for q in texts if q.text == line][:1]
                assert _fonts(para) == {(BODY_FONT, 16.0)}, line
    stamped = [page for page in p.pages if page.stamp]
    assert len(d.tables) == len(stamped)  # a 盖章处 beside each issuer and date
    for table, page in zip(d.tables, stamped, strict=True):
        stamp, names = table.rows[0].cells
        assert stamp.text.strip() == STAMP_LABEL and [q.text for q in names.paragraphs] == [page.issuer, page.dated]
    if kind != "承诺告知书" and kind != "申请人承诺书":  # 附件6/7 print no 一式两份 note
        assert p.pages[0].copies.startswith("（一式两份")


def test_the_docx_can_be_edited_and_saved_again(tmp_path: Path) -> None:
    d = document(paper(decline()))
    d.paragraphs[0].runs[0].text = "区公安分局不能提供行政协助告知书（修改）"
    d.save(str(tmp_path / "edited.docx"))
    assert docx.Document(str(tmp_path / "edited.docx")).paragraphs[0].text.endswith("（修改）")


def test_the_applicant_signs_the_commitment_instead_of_a_stamp() -> None:
    d = document(paper(commitment(signed_on=None), "C20260001"))
    assert not d.tables
    texts = [p.text for p in d.paragraphs]
    assert "申请人（签字、捺印）：" in texts and "\u3000\u3000\u3000\u3000年\u3000\u3000月\u3000\u3000日" in texts


def test_a_reply_with_an_unverifiable_item_has_the_stamped_sheet_on_its_own_page() -> None:
    d = document(paper(reply(("true", ""), ("unverifiable", "档案已迁出"))))
    assert len(d.tables) == 2  # a stamp area on the letter and on the sheet
    assert "附：无法证实的说明" in [p.text for p in d.paragraphs]


# --- PDF ------------------------------------------------------------------------------------

def _poppler(tool: str) -> str:
    path = shutil.which(tool)
    if path is None:
        pytest.skip(f"{tool} is not installed: `apt-get install poppler-utils` to check the PDFs (CI installs it)")
    return path


@pytest.fixture(scope="module")
def letter_pdf(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("pdf")
    [w] = write_letters([consequence("revoked")], "C20260001", "pdf", out)
    return w.path


def test_the_pdf_is_named_in_chinese_and_embeds_a_cjk_font(letter_pdf: Path) -> None:
    assert letter_pdf.name == "C20260001-撤销行政许可决定书.pdf"
    fonts = subprocess.run([_poppler("pdffonts"), str(letter_pdf)], capture_output=True, text=True,
                           check=True).stdout.splitlines()[2:]
    assert fonts, "no font in the PDF"
    for line in fonts:
        assert "CJK" in line and " yes yes yes " in line, line  # embedded, subset, with a Unicode map


def test_a_page_of_the_pdf_rendered_to_png_shows_the_letter(letter_pdf: Path, tmp_path: Path) -> None:
    from PIL import Image

    subprocess.run([_poppler("pdftoppm"), "-r", "40", "-gray", "-png", "-f", "1", "-l", "1", str(letter_pdf),
                    str(tmp_path / "page")], check=True)
    [png] = tmp_path.glob("page*.png")
    with Image.open(png) as img:
        width, height = img.size
        assert abs(width / height - 210 / 297) < 0.01  # A4
        dark = sum(img.convert("L").histogram()[:128])
    assert dark > 0.005 * width * height, "the page is blank"


def test_the_pdf_text_is_the_letters_text(letter_pdf: Path) -> None:
    text = subprocess.run([_poppler("pdftotext"), str(letter_pdf), "-"], capture_output=True, text=True,
                          check=True).stdout
    flat = "".join(text.split())
    for line in ("撤销行政许可决定书", "（编号：C20260001）", "张三：", "区审批服务局", "2026年10月10日", "盖章处"):
        assert line in flat, line


@pytest.mark.parametrize("kind", ["行政协助回复函", "申请人承诺书"])  # two pages; a signature, no stamp
def test_pdf_bytes_are_a_pdf_of_other_letters_too(kind: str) -> None:  # (each PDF takes ~2 s: keep these few)
    assert pdf_bytes(paper(LETTERS[kind](), "C20260001")).startswith(b"%PDF-")


def test_pdf_lines_keep_closing_punctuation_off_their_start_and_opening_brackets_off_their_end() -> None:
    from projections.documents.pdf import NO_END, NO_START, _new_pdf, cjk_font, wrap

    pdf = _new_pdf(cjk_font())
    pdf.set_font("NotoSansCJKSC", size=16)
    text = ("根据你签署的《申请人承诺书》和我单位《承诺告知书》，"
            "请你于2026年10月12日前将取得证件（行政许可证）原件交回。") * 4
    for width in (60.0, 97.0, 120.0, 156.0):
        lines = wrap(pdf, text, width)
        assert "".join(lines) == text
        assert not any(line[0] in NO_START for line in lines[1:]), lines
        assert not any(line[-1] in NO_END for line in lines[:-1]), lines
