"""The catalogues as spreadsheets: import and export of 附件8 and 附件9 as CSV and XLSX.

Layout.  The columns are the attachment's, in its order and with its header text; xiezhu's own
columns come after them, so a bureau's existing sheet still lines up:

- 附件8: 序号 | 政务服务事项名称及编码 | 证明事项名称 | 设定依据 | 承办机构 | 开具单位 | 实施方式 | 核查方式 | 备注
  then 是否公开承诺书 | 所属部门 | 风险领域 | 证明事项编码.
- 附件9: 序号 | 政务服务事项名称及编码 | 行政协助事项名称 | 设定依据 | 承办机构 | 协助机构 | 核查方式 | 备注
  then 事项编码 | 现场协助 | 回复时限（工作日） | 告知时限（工作日） | 核查键.

Cells.
- 政务服务事项名称及编码 is one cell, ``名称（编码）``: the code in full-width (or ASCII) brackets at
  the end, e.g. ``食品经营许可（370405-XK-0001）``.  A name may itself contain brackets; the
  last bracketed group is the code, so a code cannot contain brackets.
- 实施方式 holds 必须实行 or 可选择 in CSV; the XLSX has the template's two tick columns under it
  (√ in one of 必须实行 / 可选择), and import reads either form.
- 核查方式 (附件8), 风险领域 and 核查键 list their values joined by ``、``.
- 承办机构 / 协助机构 / 所属部门 take a bureau's name (区公安分局) or code (gongan); export writes names.
- 是否公开承诺书 / 现场协助 are 是 or 否; blank is 否.  Blank time limits are 3 and 2 working days.
- A blank 证明事项编码 / 事项编码 becomes ``ZM-<所属部门>-<序号>`` / ``XZ-<承办机构>-<序号>`` (序号 as
  four digits); fill codes in to keep them stable when rows are renumbered.  A blank 所属部门 is
  the 承办机构.

The XLSX is the attachment's own sheet (see :func:`to_xlsx`): title, 部门名称（公章）/ 填报人 /
联系电话, the two-row header, the guidance row, then the rows.

Import finds the header row (so the XLSX title and 部门名称 lines are optional), checks every row
and either returns all rows or raises one :class:`CatalogueImportError` listing every problem
by spreadsheet row number (the CSV record number) and column.  It returns rows only: they enter
a catalogue through ``CatalogueRegistry.apply_adjustment`` like any other change.
"""
from __future__ import annotations

import csv
import io
import re
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, cast

import msgspec

from aggregates.registry import Registry
from schemas.assistance import DECLINE_DAYS, REPLY_DAYS
from schemas.catalogue import METHODS, MODES, AssistanceItem, Kind, MatterRow, Row
from schemas.errors import XiezhuError

MATTER_COLUMNS = ("序号", "政务服务事项名称及编码", "证明事项名称", "设定依据", "承办机构", "开具单位", "实施方式",
                  "核查方式", "备注")
MATTER_EXTRAS = ("是否公开承诺书", "所属部门", "风险领域", "证明事项编码")
ASSISTANCE_COLUMNS = ("序号", "政务服务事项名称及编码", "行政协助事项名称", "设定依据", "承办机构", "协助机构",
                      "核查方式", "备注")
ASSISTANCE_EXTRAS = ("事项编码", "现场协助", "回复时限（工作日）", "告知时限（工作日）", "核查键")
COLUMNS: dict[Kind, tuple[str, ...]] = {"matters": MATTER_COLUMNS, "assistance": ASSISTANCE_COLUMNS}
EXTRAS: dict[Kind, tuple[str, ...]] = {"matters": MATTER_EXTRAS, "assistance": ASSISTANCE_EXTRAS}
TITLES: dict[Kind, str] = {"matters": "全面推行告知承诺制的证明事项清单",
                           "assistance": "全面推行告知承诺制的行政协助事项清单"}
SHEETS: dict[Kind, str] = {"matters": "证明事项清单", "assistance": "行政协助事项清单"}
#: How far down a sheet the header row may be.
HEADER_SEARCH_ROWS = 10
#: Separators accepted between the values of a list cell; export uses the first.
LIST_SEPARATORS = "、，,；;\n"
YES, NO = "是", "否"

_NAME_CODE = re.compile(r"^(?P<name>.+?)\s*[（(]\s*(?P<code>[^（）()]+?)\s*[）)]\s*$", re.S)
_SPACE = re.compile(r"\s+")
#: The template's own guidance row under the header (附件8/9), which a copied template keeps.
_GUIDANCE = ("按照省政务服务网", "法律法规依据及具体实施依据")


class CatalogueIOError(XiezhuError):
    """A catalogue file cannot be read or written."""

    code = "catalogue.io"


class RowProblem(msgspec.Struct, frozen=True, kw_only=True):
    """One thing wrong with an imported sheet: its row (1-based, as the spreadsheet shows it) and column."""

    row: int
    column: str
    message: str
    #: The same in 中文, for the clerk who fills in the sheet.
    message_zh: str

    def __str__(self) -> str:
        return self.text("en")

    def text(self, language: str) -> str:
        """The problem with its row and column, in ``language`` (the English where there is no 中文)."""
        if language == "zh" and self.message_zh:
            where = f"第 {self.row} 行" if self.row else "文件"
            return f"{where}，{self.column}：{self.message_zh}" if self.column else f"{where}：{self.message_zh}"
        where = f"row {self.row}" if self.row else "file"
        return f"{where}, {self.column}: {self.message}" if self.column else f"{where}: {self.message}"


class CatalogueImportError(CatalogueIOError):
    """The sheet has problems; nothing was imported.  ``problems`` lists every one."""

    code = "catalogue.import"

    def __init__(self, source: str, problems: Sequence[RowProblem]) -> None:
        lines = "\n".join(f"  {p}" for p in problems)
        lines_zh = "\n".join(f"  {p.text('zh')}" for p in problems)
        super().__init__(f"{source}: {len(problems)} problem(s), nothing imported:\n{lines}",
                         zh=f"{source}：有 {len(problems)} 处问题，未导入任何内容：\n{lines_zh}",
                         source=source, problems=list(problems))
        self.problems = list(problems)


# -- export --------------------------------------------------------------------------


def header(kind: Kind) -> list[str]:
    """The header row: the attachment's columns, then xiezhu's."""
    return [*COLUMNS[kind], *EXTRAS[kind]]


def to_table(kind: Kind, rows: Sequence[Row], registry: Registry) -> list[list[str | int]]:
    """The header row and one list of cells per row."""
    name = _namer(registry)
    out: list[list[str | int]] = [list(header(kind))]
    for r in rows:
        if kind == "matters":
            if not isinstance(r, MatterRow):
                raise CatalogueIOError(f"{r.code} is not a 证明事项 row", zh=f"{r.code} 不是证明事项行")
            out.append([r.seq, _name_code(r.service_matter_name, r.service_matter_code), r.certificate_name,
                        r.legal_basis, name(r.handling_body), r.issuing_unit, r.mode, "、".join(r.verification_methods),
                        r.notes, _yes(r.disclose_commitment), name(r.owner), "、".join(r.domains), r.code])
        else:
            if not isinstance(r, AssistanceItem):
                raise CatalogueIOError(f"{r.code} is not a 行政协助事项 row", zh=f"{r.code} 不是行政协助事项行")
            out.append([r.seq, _name_code(r.service_matter_name, r.service_matter_code), r.item_name,
                        r.legal_basis, name(r.handling_body), name(r.assisting_body), r.verification_method,
                        r.notes, r.code, _yes(r.on_site), r.reply_within, r.decline_within, "、".join(r.checks)])
    return out


def to_csv(kind: Kind, rows: Sequence[Row], registry: Registry) -> bytes:
    """CSV bytes: UTF-8 with a BOM (so that Excel shows the Chinese), header row first."""
    buf = io.StringIO()
    csv.writer(buf).writerows(to_table(kind, rows, registry))
    return buf.getvalue().encode("utf-8-sig")


#: The template's header text where it wraps a name over two lines (附件8/9).
WRAPPED = {"政务服务事项名称及编码": "政务服务事项\n名称及编码", "承办机构": "承办\n机构", "开具单位": "开具\n单位",
           "协助机构": "协助\n机构"}
#: 附件8's 实施方式 is two tick columns under one header.
MODE_COLUMN = "实施方式"
TICK = "√"
#: What a hand-filled tick column may hold for "ticked" (and bool True, which reads as 是).
TICKED = ("√", "✓", "✔", "☑", "是", "1", "Y", "y")
#: The template's guidance row under the header: what to write in each column.
GUIDANCE: dict[Kind, dict[str, str]] = {
    "matters": {"政务服务事项名称及编码": "按照省政务服务网或权力事项动态管理系统的规范要求填写事项名称和编码",
                "设定依据": "法律法规依据及具体实施依据（规章、规范性文件）",
                "必须实行": "行政机关规定必须采取告知承诺制",
                "可选择": "申请人可以选择采取书面承诺方式或者提供有关证明",
                "核查方式": "行政机关拟采取的内部核查、信息共享平台查询、部门间行政协助、现场检查等具体方式"},
    "assistance": {"政务服务事项名称及编码": "按照省政务服务网或权力事项动态管理系统的规范要求填写事项名称和编码",
                   "设定依据": "法律法规依据及具体实施依据（规章、规范性文件）",
                   "核查方式": "行政机关拟采取的内部核查、信息共享平台查询、部门间行政协助、现场检查等具体方式"},
}
#: Rows above the data in an exported XLSX: title, 部门名称 line, two header rows, guidance.
XLSX_HEAD_ROWS = 5
_WIDTHS = {"序号": 6, "政务服务事项名称及编码": 22, "证明事项名称": 16, "行政协助事项名称": 16, "设定依据": 24,
           "承办机构": 10, "开具单位": 10, "协助机构": 10, "必须实行": 8, "可选择": 8, "核查方式": 22, "备注": 14}


def sheet_columns(kind: Kind) -> list[str]:
    """The XLSX's physical columns: 实施方式 split into its 必须实行 / 可选择 tick columns."""
    cols: list[str] = []
    for c in header(kind):
        cols += list(MODES) if c == MODE_COLUMN else [c]
    return cols


def to_xlsx(kind: Kind, rows: Sequence[Row], registry: Registry, *, department: str = "", filler: str = "",
            phone: str = "") -> bytes:
    """XLSX bytes in the attachment's own layout.

    Row 1 the title; row 2 部门名称：…（公章）, 填报人 and 联系电话; rows 3–4 the two-row header,
    with 附件8's 实施方式 over its 必须实行 / 可选择 tick columns (every other header cell spans both
    rows); row 5 the template's guidance row; then one row per catalogue row, 实施方式 ticked
    with √. xiezhu's own columns follow 备注, shaded, so the template's columns line up.
    """
    # openpyxl is imported on first use: it is slow to import and only file commands need it.
    from openpyxl import Workbook
    from openpyxl.styles import Alignment, Border, Font, PatternFill, Side
    from openpyxl.utils import get_column_letter

    table = to_table(kind, rows, registry)
    names = header(kind)
    cols = sheet_columns(kind)
    width, template_width = len(cols), len(cols) - len(EXTRAS[kind])
    wb = Workbook()
    ws = wb.active
    ws.title = SHEETS[kind]
    ws.cell(1, 1, TITLES[kind])
    ws.merge_cells(start_row=1, start_column=1, end_row=1, end_column=width)
    ws["A1"].font = Font(name="方正小标宋简体", size=18)
    ws["A1"].alignment = Alignment(horizontal="center", vertical="center")
    ws.row_dimensions[1].height = 36
    third = template_width // 3
    for start, end, text in ((1, third, f"部门名称：{department}（公章）"), (third + 1, 2 * third, f"填报人：{filler}"),
                             (2 * third + 1, width, f"联系电话：{phone}")):
        ws.cell(2, start, text).alignment = Alignment(vertical="center")
        ws.merge_cells(start_row=2, start_column=start, end_row=2, end_column=end)
    thin = Side(style="thin")
    box = Border(left=thin, right=thin, top=thin, bottom=thin)
    extra = PatternFill("solid", fgColor="EEEEEE")
    j = 1
    for name in names:
        if name == MODE_COLUMN:
            ws.cell(3, j, name)
            ws.merge_cells(start_row=3, start_column=j, end_row=3, end_column=j + 1)
            ws.cell(4, j, MODES[0])
            ws.cell(4, j + 1, MODES[1])
            j += 2
        else:
            ws.cell(3, j, WRAPPED.get(name, name))
            ws.merge_cells(start_row=3, start_column=j, end_row=4, end_column=j)
            j += 1
    guidance = GUIDANCE[kind]
    for j, name in enumerate(cols, start=1):
        ws.cell(5, j, guidance.get(name, ""))
    mode_at = names.index(MODE_COLUMN) if MODE_COLUMN in names else -1
    for r in table[1:]:
        cells: list[str | int] = []
        for i, value in enumerate(r):
            cells += [TICK if value == m else "" for m in MODES] if i == mode_at else [value]
        ws.append(cells)
        for cell in ws[ws.max_row]:
            # openpyxl would store text starting with "=" as a formula: keep every cell text.
            if isinstance(cell.value, str) and cell.value.startswith("="):
                cell.data_type = "s"
    for row in ws.iter_rows(min_row=3, max_row=ws.max_row, max_col=width):
        for cell in row:
            centred = cell.row <= 4 or cols[cell.column - 1] in ("序号", *MODES)
            cell.alignment = Alignment(wrap_text=True, vertical="center",
                                       horizontal="center" if centred else None)
            cell.border = box
            if cell.column > template_width:
                cell.fill = extra
            if cell.row <= 4:
                cell.font = Font(bold=True)
            elif cell.row == 5:
                cell.font = Font(size=9, italic=True, color="666666")
    for j, name in enumerate(cols, start=1):
        ws.column_dimensions[get_column_letter(j)].width = _WIDTHS.get(name, 14)
    ws.freeze_panes = ws.cell(XLSX_HEAD_ROWS + 1, 1)
    ws.print_title_rows = "3:4"
    ws.page_setup.orientation = "landscape"
    ws.page_setup.paperSize = ws.PAPERSIZE_A4
    buf = io.BytesIO()
    wb.save(buf)
    return buf.getvalue()


def export_rows(kind: Kind, rows: Sequence[Row], path: Path, registry: Registry, *, department: str = "",
                filler: str = "", phone: str = "") -> None:
    """Write a catalogue file; ``.csv`` or ``.xlsx`` by the path's suffix."""
    fmt = _format(path)
    data = (to_csv(kind, rows, registry) if fmt == "csv"
            else to_xlsx(kind, rows, registry, department=department, filler=filler, phone=phone))
    try:
        path.write_bytes(data)
    except OSError as e:
        raise CatalogueIOError(f"cannot write {path}: {e}", zh=f"无法写入 {path}：{e}") from e


# -- import --------------------------------------------------------------------------


def from_csv(kind: Kind, data: bytes, registry: Registry, *, source: str = "CSV") -> list[Row]:
    """Rows from CSV bytes (UTF-8, with or without BOM; or GB18030 as Excel saves it in China)."""
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        try:
            text = data.decode("gb18030")
        except UnicodeDecodeError as e:
            raise _unreadable(source, f"not UTF-8 or GB18030 text: {e}",
                              f"不是 UTF-8 或 GB18030 编码的文本（{e}）") from e
    try:
        cells: list[list[Any]] = list(csv.reader(io.StringIO(text, newline="")))
    except csv.Error as e:
        raise _unreadable(source, f"not a CSV file: {e}", f"不是 CSV 文件（{e}）") from e
    return from_table(kind, cells, registry, source=source)


def from_xlsx(kind: Kind, data: bytes, registry: Registry, *, source: str = "XLSX") -> list[Row]:
    """Rows from the first (active) sheet of XLSX bytes."""
    from openpyxl import load_workbook

    try:
        with warnings.catch_warnings():
            # Features openpyxl drops on reading (data validation, conditional formats …) do
            # not matter to the cell values we read.
            warnings.simplefilter("ignore", UserWarning)
            wb = load_workbook(io.BytesIO(data), read_only=True, data_only=True)
        try:
            cells = [list(r) for r in wb.active.iter_rows(values_only=True)]
        finally:
            wb.close()
    except Exception as e:  # openpyxl raises zipfile, KeyError, InvalidFileException … for a bad file
        raise _unreadable(source, f"not an XLSX workbook: {e}", f"不是 XLSX 工作簿（{e}）") from e
    return from_table(kind, cells, registry, source=source)


def import_rows(kind: Kind, path: Path, registry: Registry) -> list[Row]:
    """Read a catalogue file; ``.csv`` or ``.xlsx`` by the path's suffix."""
    fmt = _format(path)
    try:
        data = path.read_bytes()
    except OSError as e:
        raise CatalogueIOError(f"cannot read {path}: {e}", zh=f"无法读取 {path}：{e}") from e
    read = from_csv if fmt == "csv" else from_xlsx
    return read(kind, data, registry, source=str(path))


def import_matters(path: Path, registry: Registry) -> list[MatterRow]:
    """附件8 rows from a file."""
    return cast("list[MatterRow]", import_rows("matters", path, registry))


def import_assistance(path: Path, registry: Registry) -> list[AssistanceItem]:
    """附件9 rows from a file."""
    return cast("list[AssistanceItem]", import_rows("assistance", path, registry))


def from_table(kind: Kind, cells: Sequence[Sequence[Any]], registry: Registry, *, source: str = "sheet") -> list[Row]:
    """Rows from a grid of cell values; raises :class:`CatalogueImportError` listing every problem."""
    grid = [[_cell(v) for v in r] for r in cells]
    at, columns, problems = _find_header(kind, grid)
    if at is None:
        raise CatalogueImportError(source, problems)
    parse = _matter if kind == "matters" else _item
    resolve = _resolver(registry)
    rows: list[tuple[int, Row]] = []
    first = at + 1
    if first < len(grid):
        # The template's second header row: 必须实行 / 可选择 under 实施方式 (empty under the others).
        under = {_SPACE.sub("", v): j for j, v in enumerate(grid[first]) if v}
        if under and set(under) <= {*MODES, *columns}:
            if any(m in under for m in MODES):
                columns.pop(MODE_COLUMN, None)  # its merged cell sits over the 必须实行 column
                columns |= {m: under[m] for m in MODES if m in under}
            first += 1
    for number, raw in enumerate(grid[first:], start=first + 1):
        record = {name: (raw[i] if i < len(raw) else "") for name, i in columns.items()}
        if _skip(record, raw):
            continue
        row, found = parse(number, record, resolve)
        problems += found
        if row is not None:
            rows.append((number, row))
    problems += _cross_row(kind, rows)
    if problems:
        raise CatalogueImportError(source, problems)
    return [r for _, r in rows]


def _find_header(kind: Kind, grid: list[list[str]]) -> tuple[int | None, dict[str, int], list[RowProblem]]:
    required, known = COLUMNS[kind], set(header(kind))
    best: tuple[int, list[str]] | None = None
    for i, raw in enumerate(grid[:HEADER_SEARCH_ROWS]):
        names = [_SPACE.sub("", v) for v in raw]
        if "序号" not in names:
            continue
        missing = [c for c in required if c not in names]
        if missing:
            best = best or (i, missing)
            continue
        problems: list[RowProblem] = []
        columns: dict[str, int] = {}
        for j, name in enumerate(names):
            if not name:
                continue
            if name not in known:
                problems.append(RowProblem(row=i + 1, column=name, message="unknown column; expected "
                                           + "、".join(header(kind)),
                                           message_zh="不是本表的列；应为" + "、".join(header(kind))))
            elif name in columns:
                problems.append(RowProblem(row=i + 1, column=name, message="column appears twice",
                                           message_zh="该列出现了两次"))
            else:
                columns[name] = j
        return (None if problems else i), columns, problems
    if best is not None:
        return None, {}, [RowProblem(row=best[0] + 1, column="", message=f"not a {TITLES[kind]} header: missing "
                                     + "、".join(best[1]),
                                     message_zh=f"不是《{TITLES[kind]}》的表头：缺少" + "、".join(best[1]))]
    return None, {}, [RowProblem(row=0, column="", message=f"no header row (序号, {'、'.join(required[1:])}) "
                                 f"in the first {HEADER_SEARCH_ROWS} rows",
                                 message_zh=f"前 {HEADER_SEARCH_ROWS} 行中没有表头行"
                                 f"（序号、{'、'.join(required[1:])}）")]


def _skip(record: dict[str, str], raw: list[str]) -> bool:
    if not any(raw):
        return True
    # A copied template keeps its guidance row under the header; it has no 序号.
    return not record.get("序号") and any(g in v for v in raw for g in _GUIDANCE)


Resolve = Callable[[str], str | None]


class _Row:
    """Collects one sheet row's fields and problems."""

    def __init__(self, number: int, record: dict[str, str], resolve: Resolve) -> None:
        self.number = number
        self.record = record
        self.resolve = resolve
        self.fields: dict[str, Any] = {}
        self.problems: list[RowProblem] = []

    def fail(self, column: str, message: str, zh: str) -> None:
        self.problems.append(RowProblem(row=self.number, column=column, message=message, message_zh=zh))

    def get(self, column: str) -> str:
        return self.record.get(column, "")

    def text(self, column: str, field: str, *, required: bool = True) -> None:
        value = self.get(column)
        if required and not value:
            self.fail(column, "is required", "必须填写")
            return
        self.fields[field] = value

    def seq(self) -> None:
        value = self.get("序号")
        if not re.fullmatch(r"\d+", value) or int(value) < 1:
            self.fail("序号", f"must be a whole number from 1, not {value!r}" if value else "is required",
                      f"应为从 1 起的整数，而不是 {value!r}" if value else "必须填写")
            return
        self.fields["seq"] = int(value)

    def name_code(self) -> None:
        column = "政务服务事项名称及编码"
        value = self.get(column)
        m = _NAME_CODE.match(value)
        if not m:
            self.fail(column, f"write it as 名称（编码）, e.g. 食品经营许可（370405-XK-0001); got {value!r}"
                      if value else "is required",
                      f"应写作“名称（编码）”，如 食品经营许可（370405-XK-0001），而不是 {value!r}"
                      if value else "必须填写")
            return
        self.fields["service_matter_name"] = m["name"].strip()
        self.fields["service_matter_code"] = m["code"]

    def mode(self) -> None:
        """实施方式: one cell holding 必须实行 or 可选择, or the template's two tick columns."""
        value = self.get(MODE_COLUMN)
        ticks = {m: self.get(m) for m in MODES if m in self.record}
        if value in MODES or (not value and not ticks):
            if value:
                self.fields["mode"] = value
            else:
                self.fail(MODE_COLUMN, "is required: tick 必须实行 or 可选择", "必须填写：在“必须实行”或“可选择”下打勾")
            return
        if value:
            self.fail(MODE_COLUMN, f"must be {' or '.join(MODES)}, not {value!r}",
                      f"应为{'或'.join(MODES)}，而不是 {value!r}")
            return
        wrong = [f"{m} {v!r}" for m, v in ticks.items() if v and v not in TICKED]
        if wrong:
            self.fail(MODE_COLUMN, f"tick with {TICK} (or leave empty), not {'、'.join(wrong)}",
                      f"请用 {TICK} 打勾（或留空），而不是 {'、'.join(wrong)}")
            return
        ticked = [m for m, v in ticks.items() if v]
        if len(ticked) != 1:
            self.fail(MODE_COLUMN, "tick exactly one of 必须实行 / 可选择" + (", not both" if ticked else ""),
                      "“必须实行”与“可选择”只能勾选其一" + ("，不能两项都勾" if ticked else ""))
            return
        self.fields["mode"] = ticked[0]

    def bureau(self, column: str, field: str, *, default: str | None = None) -> None:
        value = self.get(column)
        if not value and default is not None:
            if default:
                self.fields[field] = default
            return
        code = self.resolve(value) if value else None
        if code is None:
            self.fail(column, f"unknown bureau {value!r}; give its name (区公安分局) or code (gongan)"
                      if value else "is required",
                      f"没有名为 {value!r} 的单位；请填写单位名称（如 区公安分局）或代码（如 gongan）"
                      if value else "必须填写")
            return
        self.fields[field] = code

    def flag(self, column: str, field: str) -> None:
        value = self.get(column)
        if value not in (YES, NO, ""):
            self.fail(column, f"must be {YES} or {NO}, not {value!r}", f"应为“{YES}”或“{NO}”，而不是 {value!r}")
            return
        self.fields[field] = value == YES

    def days(self, column: str, field: str, most: int) -> None:
        value = self.get(column)
        if not value:
            return
        if not re.fullmatch(r"\d+", value) or not 1 <= int(value) <= most:
            self.fail(column, f"must be 1 to {most} working days (三(二): never longer than {most}), not {value!r}",
                      f"应为 1 至 {most} 个工作日（三(二)：不得超过 {most} 个工作日），而不是 {value!r}")
            return
        self.fields[field] = int(value)

    def listed(self, column: str, field: str, allowed: Sequence[str] | None = None, *,
               required: bool = False) -> None:
        values = _split(self.get(column))
        if required and not values:
            self.fail(column, f"is required: one or more of {'、'.join(allowed or ())}",
                      f"必须填写：{'、'.join(allowed or ())}中的一项或几项")
            return
        wrong = [v for v in values if allowed is not None and v not in allowed]
        if wrong:
            self.fail(column, f"{'、'.join(wrong)} not one of {'、'.join(allowed or ())}",
                      f"{'、'.join(wrong)}不在可选项（{'、'.join(allowed or ())}）之中")
            return
        if len(set(values)) != len(values):
            self.fail(column, "lists a value twice", "同一项填写了两次")
            return
        self.fields[field] = values

    def code(self, column: str, prefix: str, owner_field: str) -> None:
        value = self.get(column)
        if value:
            self.fields["code"] = value
        elif owner_field in self.fields and "seq" in self.fields:
            self.fields["code"] = f"{prefix}-{self.fields[owner_field]}-{self.fields['seq']:04d}"

    def build(self, cls: type[MatterRow] | type[AssistanceItem], columns: dict[str, str]) -> Row | None:
        # Each field against its own schema, so that every problem of the row is reported.
        for f in msgspec.structs.fields(cls):
            if f.name in self.fields:
                try:
                    msgspec.convert(self.fields[f.name], f.type)
                except msgspec.ValidationError as e:
                    self.fail(columns.get(f.name, f.name), str(e), f"不符合格式要求（{e}）")
        if self.problems:
            return None
        try:
            return msgspec.convert(self.fields, cls)
        except msgspec.ValidationError as e:
            self.fail("", str(e), f"不符合格式要求（{e}）")
            return None


_MATTER_FIELDS = {"code": "证明事项编码", "seq": "序号", "service_matter_name": "政务服务事项名称及编码",
                  "service_matter_code": "政务服务事项名称及编码", "certificate_name": "证明事项名称",
                  "legal_basis": "设定依据", "handling_body": "承办机构", "issuing_unit": "开具单位",
                  "mode": "实施方式", "verification_methods": "核查方式", "notes": "备注",
                  "disclose_commitment": "是否公开承诺书", "owner": "所属部门", "domains": "风险领域"}
_ITEM_FIELDS = {"code": "事项编码", "seq": "序号", "service_matter_name": "政务服务事项名称及编码",
                "service_matter_code": "政务服务事项名称及编码", "item_name": "行政协助事项名称",
                "legal_basis": "设定依据", "handling_body": "承办机构", "assisting_body": "协助机构",
                "verification_method": "核查方式", "notes": "备注", "on_site": "现场协助",
                "reply_within": "回复时限（工作日）", "decline_within": "告知时限（工作日）", "checks": "核查键"}


def _matter(number: int, record: dict[str, str], resolve: Resolve) -> tuple[Row | None, list[RowProblem]]:
    r = _Row(number, record, resolve)
    r.seq()
    r.name_code()
    r.text("证明事项名称", "certificate_name")
    r.text("设定依据", "legal_basis")
    r.bureau("承办机构", "handling_body")
    r.text("开具单位", "issuing_unit")
    r.mode()
    r.listed("核查方式", "verification_methods", METHODS, required=True)
    r.text("备注", "notes", required=False)
    r.flag("是否公开承诺书", "disclose_commitment")
    r.bureau("所属部门", "owner", default=r.fields.get("handling_body", ""))
    r.listed("风险领域", "domains")
    r.code("证明事项编码", "ZM", "owner")
    return r.build(MatterRow, _MATTER_FIELDS), r.problems


def _item(number: int, record: dict[str, str], resolve: Resolve) -> tuple[Row | None, list[RowProblem]]:
    r = _Row(number, record, resolve)
    r.seq()
    r.name_code()
    r.text("行政协助事项名称", "item_name")
    r.text("设定依据", "legal_basis")
    r.bureau("承办机构", "handling_body")
    r.bureau("协助机构", "assisting_body")
    r.text("核查方式", "verification_method")
    r.text("备注", "notes", required=False)
    r.flag("现场协助", "on_site")
    r.days("回复时限（工作日）", "reply_within", REPLY_DAYS)
    r.days("告知时限（工作日）", "decline_within", DECLINE_DAYS)
    r.listed("核查键", "checks")
    r.code("事项编码", "XZ", "handling_body")
    return r.build(AssistanceItem, _ITEM_FIELDS), r.problems


def _cross_row(kind: Kind, rows: list[tuple[int, Row]]) -> list[RowProblem]:
    code_column = "证明事项编码" if kind == "matters" else "事项编码"
    codes: dict[str, int] = {}
    seqs: dict[tuple[str, int], int] = {}
    problems = []
    for number, r in rows:
        owner = r.owner if isinstance(r, MatterRow) else r.handling_body
        if r.code in codes:
            problems.append(RowProblem(row=number, column=code_column,
                                       message=f"{r.code} is already used on row {codes[r.code]}",
                                       message_zh=f"{r.code} 已在第 {codes[r.code]} 行使用"))
        codes.setdefault(r.code, number)
        if (owner, r.seq) in seqs:
            problems.append(RowProblem(row=number, column="序号",
                                       message=f"{owner} already lists 序号 {r.seq} on row {seqs[owner, r.seq]}",
                                       message_zh=f"{owner} 的序号 {r.seq} 已在第 {seqs[owner, r.seq]} 行使用"))
        seqs.setdefault((owner, r.seq), number)
    return problems


# -- cells ---------------------------------------------------------------------------


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return YES if value else NO
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value).replace("\r\n", "\n").strip()


def _split(value: str) -> list[str]:
    return [p.strip() for p in re.split(f"[{re.escape(LIST_SEPARATORS)}]", value) if p.strip()]


def _name_code(name: str, code: str) -> str:
    return f"{name}（{code}）"


def _yes(flag: bool) -> str:
    return YES if flag else NO


def _namer(registry: Registry) -> Callable[[str], str]:
    def name(code: str) -> str:
        return registry[code].name if code in registry else code
    return name


def _resolver(registry: Registry) -> Resolve:
    by_name = {_SPACE.sub("", b.name): b.code for b in registry}

    def resolve(value: str) -> str | None:
        value = _SPACE.sub("", value)
        if value in registry:
            return value
        return by_name.get(value)
    return resolve


def _unreadable(source: str, message: str, zh: str) -> CatalogueImportError:
    return CatalogueImportError(source, [RowProblem(row=0, column="", message=message, message_zh=zh)])


def _format(path: Path) -> str:
    fmt = path.suffix.lower().lstrip(".")
    if fmt not in ("csv", "xlsx"):
        raise CatalogueIOError(f"{path}: a catalogue file is .csv or .xlsx, not {path.suffix or 'without suffix'}",
                               zh=f"{path}：清单文件应为 .csv 或 .xlsx，而不是 {path.suffix or '无后缀'}")
    return fmt
