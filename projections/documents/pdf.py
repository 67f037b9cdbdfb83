"""A letter as PDF, with its CJK font embedded, in the same GB/T 9704 layout as the DOCX.

The font comes from a registry package, never from the network at run time: the
``noto-cjk-sans-otc`` wheel (Noto Sans CJK, SIL Open Font License 1.1) that pyproject.toml
depends on; failing that, Debian's ``fonts-noto-cjk``. Only the glyphs a letter uses are
embedded (a subset), so a one-page letter is tens of kilobytes. The PDF cannot name the
office fonts the DOCX names (方正小标宋简体, 仿宋): they are not free to embed, so the title
and body are set in the one embedded face at the sizes GB/T 9704 gives.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from fpdf import FPDF
from fpdf.enums import Align, XPos, YPos

from projections.documents.paper import Page, Paper
from schemas.errors import XiezhuError

#: Noto Sans CJK collections hold JP, KR, SC, TC, HK in this order: 2 is 简体中文.
SC_INDEX = 2
DEBIAN_FONTS = (
    Path("/usr/share/fonts/opentype/noto/NotoSansCJK-Regular.ttc"),
    Path("/usr/share/fonts/opentype/noto/NotoSerifCJK-Regular.ttc"),
)
FAMILY = "NotoSansCJKSC"
TITLE_PT, BODY_PT, NOTE_PT = 22, 16, 10.5
PT_MM = 25.4 / 72
#: 22 lines in the 225 mm type area (GB/T 9704 5.2.2).
LINE_MM = 225 / 22
LEFT, TOP, RIGHT, BOTTOM = 28.0, 37.0, 26.0, 35.0
PAGE_W, PAGE_H = 210.0, 297.0
STAMP_MM = 42.0
NAMES_W = 72.0


class FontMissing(XiezhuError):
    """No CJK font to embed in a PDF."""

    code = "documents.font-missing"


@dataclass(frozen=True)
class Font:
    path: Path
    index: int


def cjk_font() -> Font:
    """The CJK font a PDF embeds: the PyPI package's, else Debian's; FontMissing when neither is there."""
    try:
        import noto_cjk_sans_otc

        path = Path(str(noto_cjk_sans_otc.FONT_PATH))
        if path.is_file():
            return Font(path, SC_INDEX)
    except ImportError:
        pass
    for path in DEBIAN_FONTS:
        if path.is_file():
            return Font(path, SC_INDEX)
    raise FontMissing("a PDF needs a CJK font to embed and none is installed: `pip install noto-cjk-sans-otc` "
                      "(a dependency of xiezhu) or `apt-get install fonts-noto-cjk`; DOCX and text need none",
                      zh="生成 PDF 须嵌入中日韩字体，但未安装：请 `pip install noto-cjk-sans-otc`"
                         "（xiezhu 的依赖）或 `apt-get install fonts-noto-cjk`；DOCX 和文本无需字体")


class _Letter(FPDF):
    def footer(self) -> None:
        """GB/T 9704 7.5: "— 1 —" centred at the foot of each page."""
        self.set_y(-BOTTOM + 7)
        self.set_font(FAMILY, size=14)
        self.cell(0, 7, f"— {self.page_no()} —", align=Align.C)


def _new_pdf(font: Font) -> _Letter:
    pdf = _Letter(orientation="portrait", unit="mm", format="A4")
    pdf.add_font(FAMILY, fname=str(font.path), collection_font_number=font.index)
    pdf.set_margins(LEFT, TOP, RIGHT)
    pdf.set_auto_page_break(True, margin=BOTTOM)
    pdf.c_margin = 0
    return pdf


#: Chinese line breaking (避头尾): these never begin a line (they hang in the margin instead) …
NO_START = set("，。、；：？！）》」』】〕〉”’…—·%,.;:?!)]")
#: … and these never end one (they move down with what they open).
NO_END = set("（《「『【〔〈“‘([")


def wrap(pdf: FPDF, text: str, width: float) -> list[str]:
    """``text`` broken into lines of at most ``width`` (mm) at the current font, by character,
    keeping closing punctuation off the start of a line and opening brackets off its end."""
    lines: list[str] = []
    line = ""
    for ch in text:
        if line and pdf.get_string_width(line + ch) > width and ch not in NO_START:
            carry = ""
            while line and line[-1] in NO_END:
                carry, line = line[-1] + carry, line[:-1]
            lines.append(line)
            line = carry
        line += ch
    lines.append(line)
    return lines


def _line(pdf: FPDF, text: str, *, size: float = BODY_PT, align: Align = Align.L, indent: bool = False,
          height: float = LINE_MM) -> None:
    pdf.set_font(FAMILY, size=size)
    width = PAGE_W - LEFT - RIGHT
    # Two ideographic spaces are the two-character indent of a Chinese paragraph.
    for line in wrap(pdf, ("\u3000\u3000" if indent else "") + text, width):
        if pdf.get_y() + height > PAGE_H - BOTTOM:
            pdf.add_page()
        pdf.set_x(LEFT)
        pdf.cell(width, height, line, align=align, new_x=XPos.LMARGIN, new_y=YPos.NEXT)


def _signature(pdf: FPDF, page: Page) -> None:
    lines = [t for t in ((page.signature or page.issuer), page.dated) if t]
    needed = max(STAMP_MM, LINE_MM * len(lines)) + LINE_MM
    if pdf.get_y() + needed > PAGE_H - BOTTOM:
        pdf.add_page()
    names_x = PAGE_W - RIGHT - 4 * BODY_PT * PT_MM - NAMES_W / 2 + 8
    top = pdf.get_y()
    if page.stamp:
        stamp_x = names_x - STAMP_MM - 4
        pdf.set_draw_color(150, 150, 150)
        pdf.set_dash_pattern(dash=2, gap=1.5)
        pdf.rect(stamp_x, top, STAMP_MM, STAMP_MM)
        pdf.set_dash_pattern()
        pdf.set_draw_color(0, 0, 0)
        pdf.set_text_color(150, 150, 150)
        pdf.set_font(FAMILY, size=NOTE_PT)
        pdf.set_xy(stamp_x, top + STAMP_MM / 2 - 3)
        pdf.cell(STAMP_MM, 6, "盖章处", align=Align.C)
        pdf.set_text_color(0, 0, 0)
    y = top + (STAMP_MM - LINE_MM * len(lines)) / 2 if page.stamp else top
    pdf.set_font(FAMILY, size=BODY_PT)
    for text in lines:
        pdf.set_xy(names_x, y)
        pdf.cell(NAMES_W, LINE_MM, text, align=Align.C)
        y += LINE_MM
    pdf.set_xy(LEFT, max(y, top + (STAMP_MM if page.stamp else 0)) + 2)


def pdf_bytes(paper: Paper, font: Font | None = None) -> bytes:
    """The letter as PDF bytes, one page or more per :class:`Page`."""
    pdf = _new_pdf(font or cjk_font())
    pdf.set_title(paper.pages[0].title)
    pdf.set_subject(paper.filename)
    pdf.set_creator("xiezhu")
    for page in paper.pages:
        pdf.add_page()
        _line(pdf, page.title, size=TITLE_PT, align=Align.C, height=TITLE_PT * PT_MM * 1.6)
        if page.number_line:
            _line(pdf, page.number_line, align=Align.C)
        pdf.ln(LINE_MM)
        if page.addressee:
            _line(pdf, page.addressee)
        for text in page.body:
            _line(pdf, text, indent=True)
        pdf.ln(LINE_MM)
        _signature(pdf, page)
        if page.copies:
            _line(pdf, page.copies, indent=True)
    return bytes(pdf.output())


def write_pdf(paper: Paper, out_dir: Path, font: Font | None = None) -> Path:
    """Write ``<out_dir>/<number>-<kind>.pdf`` and return its path."""
    path = out_dir / f"{paper.filename}.pdf"
    path.write_bytes(pdf_bytes(paper, font))
    return path
