"""A letter as an editable Word document (.docx), laid out as GB/T 9704 lays out a government letter.

A4 with margins of 37 mm (top), 35 mm (bottom), 28 mm (left) and 26 mm (right); the 标题 in
二号 (22 pt) 方正小标宋简体, centred; everything else in 三号 (16 pt) 仿宋 at a fixed line
pitch of 22 lines to the page; paragraphs indented two characters; the 落款 right of centre
with the 盖章处 (a dashed box where the 公章 goes) beside the issuing unit and date; the
一式两份 note under it; the page number "— 1 —" in the footer. The fonts are named, not
embedded: an office's Word or WPS has them, and a missing one falls back to a font of the same
kind. The paragraphs are plain paragraphs and one small table, so the clerk can edit anything.
"""
from __future__ import annotations

import io
from pathlib import Path

from docx import Document
from docx.document import Document as DocxDocument
from docx.enum.section import WD_SECTION_START
from docx.enum.table import WD_CELL_VERTICAL_ALIGNMENT, WD_TABLE_ALIGNMENT
from docx.enum.text import WD_ALIGN_PARAGRAPH, WD_BREAK, WD_LINE_SPACING
from docx.oxml import OxmlElement
from docx.oxml.ns import qn
from docx.shared import Mm, Pt, RGBColor
from docx.table import _Cell
from docx.text.paragraph import Paragraph
from docx.text.run import Run

from projections.documents.paper import Page, Paper

TITLE_FONT = "方正小标宋简体"
BODY_FONT = "仿宋"
PAGE_NO_FONT = "宋体"
TITLE_PT = 22  # 二号
BODY_PT = 16  # 三号
#: 22 lines in the 225 mm type area.
LINE_PITCH = Pt(28.95)
STAMP_LABEL = "盖章处"
#: The 公章 of a 区 bureau is a 42 mm circle; the box leaves room for it.
STAMP_MM = 42


def _font(run: Run, name: str, size: float, *, grey: bool = False) -> None:
    run.font.size = Pt(size)
    run.font.name = name
    rpr = run._element.get_or_add_rPr()
    rpr.get_or_add_rFonts().set(qn("w:eastAsia"), name)
    if grey:
        run.font.color.rgb = RGBColor(0x99, 0x99, 0x99)


def _para(container: DocxDocument | _Cell, text: str, *, font: str = BODY_FONT, size: float = BODY_PT,
          align: WD_ALIGN_PARAGRAPH | None = None, indent: bool = False, grey: bool = False) -> Paragraph:
    p = container.add_paragraph()
    fmt = p.paragraph_format
    fmt.line_spacing_rule = WD_LINE_SPACING.EXACTLY
    fmt.line_spacing = LINE_PITCH
    fmt.space_before = fmt.space_after = Pt(0)
    if align is not None:
        p.alignment = align
    if indent:
        fmt.first_line_indent = Pt(2 * size)
    if text:
        _font(p.add_run(text), font, size, grey=grey)
    return p


def _dashed_borders(cell: _Cell) -> None:
    tc_pr = cell._tc.get_or_add_tcPr()
    borders = OxmlElement("w:tcBorders")
    for edge in ("top", "left", "bottom", "right"):
        b = OxmlElement(f"w:{edge}")
        b.set(qn("w:val"), "dashed")
        b.set(qn("w:sz"), "4")
        b.set(qn("w:color"), "999999")
        borders.append(b)
    tc_pr.append(borders)


def _no_borders(table_el: object) -> None:
    tbl_pr = table_el.tblPr  # type: ignore[attr-defined]
    borders = OxmlElement("w:tblBorders")
    for edge in ("top", "left", "bottom", "right", "insideH", "insideV"):
        b = OxmlElement(f"w:{edge}")
        b.set(qn("w:val"), "nil")
        borders.append(b)
    tbl_pr.append(borders)


def _signature_block(doc: DocxDocument, page: Page) -> None:
    """The issuer and date, centred in a column at the right, with the 盖章处 beside them."""
    if not page.stamp:
        for text in (page.signature or page.issuer, page.dated):
            p = _para(doc, text, align=WD_ALIGN_PARAGRAPH.RIGHT)
            p.paragraph_format.right_indent = Pt(4 * BODY_PT)
        return
    table = doc.add_table(rows=1, cols=2)
    table.alignment = WD_TABLE_ALIGNMENT.RIGHT
    table.autofit = False
    _no_borders(table._tbl)
    stamp, names = table.rows[0].cells
    stamp.width, names.width = Mm(STAMP_MM), Mm(70)
    # Word and WPS lay a table out by its grid: give the grid the same widths as the cells.
    table.columns[0].width, table.columns[1].width = Mm(STAMP_MM), Mm(70)
    table.rows[0].height = Mm(STAMP_MM)
    _dashed_borders(stamp)
    stamp.vertical_alignment = WD_CELL_VERTICAL_ALIGNMENT.CENTER
    stamp.paragraphs[0]._element.getparent().remove(stamp.paragraphs[0]._element)
    _para(stamp, STAMP_LABEL, size=10.5, align=WD_ALIGN_PARAGRAPH.CENTER, grey=True)
    names.vertical_alignment = WD_CELL_VERTICAL_ALIGNMENT.CENTER
    names.paragraphs[0]._element.getparent().remove(names.paragraphs[0]._element)
    for text in (page.issuer, page.dated):
        _para(names, text, align=WD_ALIGN_PARAGRAPH.CENTER)


def _page_number_footer(doc: DocxDocument) -> None:
    """GB/T 9704 7.5: "— 1 —" at the foot of each page, 四号 半角 arabic numerals."""
    p = doc.sections[0].footer.paragraphs[0]
    p.alignment = WD_ALIGN_PARAGRAPH.CENTER
    _font(p.add_run("— "), PAGE_NO_FONT, 14)
    run = p.add_run()
    _font(run, PAGE_NO_FONT, 14)
    for kind, text in (("begin", ""), ("", " PAGE "), ("end", "")):
        if kind:
            fld = OxmlElement("w:fldChar")
            fld.set(qn("w:fldCharType"), kind)
            run._element.append(fld)
        else:
            instr = OxmlElement("w:instrText")
            instr.set(qn("xml:space"), "preserve")
            instr.text = text
            run._element.append(instr)
    _font(p.add_run(" —"), PAGE_NO_FONT, 14)


def document(paper: Paper) -> DocxDocument:
    """The letter as a python-docx Document (not yet saved)."""
    doc = Document()
    section = doc.sections[0]
    section.start_type = WD_SECTION_START.NEW_PAGE
    section.page_width, section.page_height = Mm(210), Mm(297)
    section.top_margin, section.bottom_margin = Mm(37), Mm(35)
    section.left_margin, section.right_margin = Mm(28), Mm(26)
    normal = doc.styles["Normal"]
    normal.font.name = BODY_FONT
    normal.font.size = Pt(BODY_PT)
    normal.element.get_or_add_rPr().get_or_add_rFonts().set(qn("w:eastAsia"), BODY_FONT)
    doc.core_properties.title = paper.pages[0].title
    doc.core_properties.subject = paper.filename
    # The body of a new Document starts with no paragraph; every part below adds its own.
    for i, page in enumerate(paper.pages):
        if i:
            _para(doc, "").add_run().add_break(WD_BREAK.PAGE)
        _para(doc, page.title, font=TITLE_FONT, size=TITLE_PT, align=WD_ALIGN_PARAGRAPH.CENTER)
        if page.number_line:
            _para(doc, page.number_line, align=WD_ALIGN_PARAGRAPH.CENTER)
        _para(doc, "")
        if page.addressee:
            _para(doc, page.addressee)
        for text in page.body:
            _para(doc, text, indent=True)
        _para(doc, "")
        _signature_block(doc, page)
        if page.copies:
            _para(doc, page.copies, indent=True)
    _page_number_footer(doc)
    return doc


def docx_bytes(paper: Paper) -> bytes:
    buf = io.BytesIO()
    document(paper).save(buf)
    return buf.getvalue()


def write_docx(paper: Paper, out_dir: Path) -> Path:
    """Write ``<out_dir>/<number>-<kind>.docx`` and return its path."""
    path = out_dir / f"{paper.filename}.docx"
    path.write_bytes(docx_bytes(paper))
    return path
