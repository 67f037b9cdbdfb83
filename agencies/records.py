"""A bureau's own records, loaded from a CSV or XLSX file into the tables its verifiers read.

One layout per verifier kind (the columns :mod:`agencies.verifiers` reads), with a header
row in English identifiers or in the Chinese labels a clerk's export carries:

======== ====================== ==========================================================
kind      table                  columns (English / 中文; * required)
======== ====================== ==========================================================
户籍      ``residents`` (gongan)  id_number/公民身份号码*, name/姓名*, residence/户籍地址*,
                                  criminal_record/有无犯罪记录 (0/1, 无/有; default 0)
营业执照  ``businesses`` (shichang) id_number/统一社会信用代码*, name/名称*, status/登记状态*
                                  (存续, 吊销, 注销 …), scope/经营范围*, licence_no/营业执照编号
社保      ``insured`` (renshe)    id_number/公民身份号码*, months/累计缴费月数*, employer/参保单位,
                                  name/姓名
======== ====================== ==========================================================

Every row is checked before anything is written; a file with one bad row changes
nothing.  Rows replace earlier rows with the same number (a newer export wins).
"""
from __future__ import annotations

import csv
import io
import re
import sqlite3
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import sqlite_utils

from agencies.verifiers import VERIFIERS
from aggregates.registry import zh_name
from schemas.errors import XiezhuError

ID_NUMBER = re.compile(r"^[0-9A-Z]{15,18}$")
#: At most this many rows in one file: a district's register, not a province's.
MAX_ROWS = 2_000_000


class RecordsError(XiezhuError):
    """A records file cannot be loaded as it is; nothing was written."""

    code = "records"


@dataclass(frozen=True)
class Column:
    """One column of a layout."""

    key: str
    label: str
    required: bool = True
    kind: str = "text"  # text | flag | count
    max_length: int = 200


@dataclass(frozen=True)
class Layout:
    """The columns of one verifier kind's table."""

    kind: str
    table: str
    columns: tuple[Column, ...]

    def headers(self) -> list[str]:
        """The header row a template file carries (English identifiers)."""
        return [c.key for c in self.columns]


LAYOUTS: dict[str, Layout] = {
    "residents": Layout("户籍", "residents", (
        Column("id_number", "公民身份号码"),
        Column("name", "姓名", max_length=50),
        Column("residence", "户籍地址"),
        Column("criminal_record", "有无犯罪记录", required=False, kind="flag"),
    )),
    "businesses": Layout("营业执照", "businesses", (
        Column("id_number", "统一社会信用代码"),
        Column("name", "名称", max_length=100),
        Column("status", "登记状态", max_length=20),
        Column("scope", "经营范围", max_length=2000),
        Column("licence_no", "营业执照编号", required=False, max_length=64),
    )),
    "insured": Layout("社保", "insured", (
        Column("id_number", "公民身份号码"),
        Column("months", "累计缴费月数", kind="count"),
        Column("employer", "参保单位", required=False),
        Column("name", "姓名", required=False, max_length=50),
    )),
}

_FLAGS = {"": 0, "0": 0, "1": 1, "无": 0, "有": 1, "否": 0, "是": 1, "false": 0, "true": 1, "no": 0, "yes": 1}


def layouts_of(bureau: str) -> list[Layout]:
    """The layouts of the tables bureau ``bureau``'s verifiers read (none: it answers by hand)."""
    return [LAYOUTS[v.table] for v in VERIFIERS.get(bureau, [])]


def layout_for(bureau: str, kind: str | None = None) -> Layout:
    """The one layout a file for ``bureau`` is read in (``kind``: a table name or 户籍/营业执照/社保)."""
    layouts = layouts_of(bureau)
    if not layouts:
        raise RecordsError(f"{bureau} runs no verifier, so it has no records to load "
                           f"(verifying bureaus: {', '.join(sorted(VERIFIERS))})",
                           zh=f"{zh_name(bureau)}不承担核查，没有可导入的记录（承担核查的单位："
                              f"{'、'.join(zh_name(v) for v in sorted(VERIFIERS))}）", bureau=bureau)
    if kind is None:
        if len(layouts) > 1:
            raise RecordsError(f"{bureau} has several record kinds; name one with --kind",
                               zh=f"{zh_name(bureau)}有多类记录；请用 --kind 指定一类", bureau=bureau)
        return layouts[0]
    for layout in layouts:
        if kind in (layout.table, layout.kind):
            return layout
    raise RecordsError(f"{bureau} has no {kind!r} records; it has {', '.join(x.table for x in layouts)}",
                       zh=f"{zh_name(bureau)}没有 {kind!r} 类记录；现有：{', '.join(x.table for x in layouts)}",
                       bureau=bureau)


def read_rows(path: Path) -> tuple[list[str], list[list[str]]]:
    """The header and the rows of a CSV (UTF-8, a BOM tolerated) or XLSX (first sheet) file, as text."""
    suffix = path.suffix.lower()
    if not path.is_file():
        raise RecordsError(f"no file {path}", zh=f"没有文件 {path}")
    if suffix == ".csv":
        try:
            text = path.read_text(encoding="utf-8-sig")
        except UnicodeDecodeError as e:
            raise RecordsError(f"{path.name} is not UTF-8 text (save it as CSV UTF-8): {e}",
                               zh=f"{path.name} 不是 UTF-8 文本（请另存为 CSV UTF-8）：{e}") from None
        rows = [row for row in csv.reader(io.StringIO(text)) if any(cell.strip() for cell in row)]
    elif suffix == ".xlsx":
        rows = list(_xlsx_rows(path))
    else:
        raise RecordsError(f"{path.name}: expected a .csv or .xlsx file", zh=f"{path.name}：应为 .csv 或 .xlsx 文件")
    if not rows:
        raise RecordsError(f"{path.name} is empty: the first row must name the columns",
                           zh=f"{path.name} 是空文件：第一行须写明各列名称")
    if len(rows) - 1 > MAX_ROWS:
        raise RecordsError(f"{path.name} has {len(rows) - 1} rows; at most {MAX_ROWS} in one file",
                           zh=f"{path.name} 有 {len(rows) - 1} 行；一个文件最多 {MAX_ROWS} 行")
    return [h.strip() for h in rows[0]], rows[1:]


def _xlsx_rows(path: Path) -> Iterator[list[str]]:
    from openpyxl import load_workbook

    try:
        wb = load_workbook(path, read_only=True, data_only=True)
    except Exception as e:  # openpyxl raises many kinds for a file that is not a workbook
        raise RecordsError(f"{path.name} is not an XLSX workbook: {e}",
                           zh=f"{path.name} 不是 XLSX 工作簿：{e}") from None
    try:
        for n, values in enumerate(wb.worksheets[0].iter_rows(values_only=True), start=1):
            row = ["" if v is None else _cell_text(v, f"{path.name} row {n}") for v in values]
            if any(cell.strip() for cell in row):
                yield row
    finally:
        wb.close()


def _where_zh(where: str) -> str:
    """``bad.csv row 3`` as a person reads it: ``bad.csv 第 3 行``."""
    return re.sub(r" row (\d+)$", r" 第 \1 行", where)


def _cell_text(value: Any, where: str) -> str:
    if isinstance(value, int | float) and not isinstance(value, bool) and abs(value) >= 10**15:
        # A spreadsheet keeps 15 significant digits: an ID number typed as a number has lost its last ones.
        raise RecordsError(f"{where}: {value!r} is a number of 16 or more digits, which the spreadsheet has "
                           f"already rounded; format the ID number column as text and enter the numbers again",
                           zh=f"{_where_zh(where)}：{value!r} 是 16 位以上的数字，电子表格已将其舍入；"
                              "请把身份证号码列设为文本格式后重新录入")
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def parse(layout: Layout, header: list[str], rows: Iterable[list[str]], *,
          source: str = "file") -> list[dict[str, Any]]:
    """Check every row against ``layout``; the rows as the table stores them, or the first problem."""
    index: dict[str, int] = {}
    by_name = {c.key: c for c in layout.columns} | {c.label: c for c in layout.columns}
    for i, name in enumerate(header):
        column = by_name.get(name)
        if column is None:
            raise RecordsError(f"{source}: column {name!r} is not in the {layout.kind} layout "
                               f"({', '.join(f'{c.key}/{c.label}' for c in layout.columns)})",
                               zh=f"{source}：列 {name!r} 不属于 {layout.kind} 格式"
                                  f"（{'、'.join(f'{c.key}/{c.label}' for c in layout.columns)}）")
        if column.key in index:
            raise RecordsError(f"{source}: column {column.key}/{column.label} appears twice",
                               zh=f"{source}：列 {column.key}/{column.label} 出现了两次")
        index[column.key] = i
    missing = [f"{c.key}/{c.label}" for c in layout.columns if c.required and c.key not in index]
    if missing:
        raise RecordsError(f"{source}: the {layout.kind} layout needs the column(s) {', '.join(missing)}",
                           zh=f"{source}：{layout.kind} 格式需要以下列：{'、'.join(missing)}")
    out: dict[str, dict[str, Any]] = {}
    for n, row in enumerate(rows, start=2):
        record: dict[str, Any] = {}
        for column in layout.columns:
            raw = row[index[column.key]].strip() if column.key in index and index[column.key] < len(row) else ""
            record[column.key] = _value(column, raw, f"{source} row {n}")
        if not ID_NUMBER.match(record["id_number"]):
            raise RecordsError(f"{source} row {n}: {record['id_number']!r} is not an 18-character ID number or "
                               f"credit code (digits and capital letters)",
                               zh=f"{source} 第 {n} 行："
                                  f"{record['id_number']!r} 不是 18 位身份证号码或统一社会信用代码（数字和大写字母）")
        out[record["id_number"]] = record  # a later row for the same number wins, as on load
    return list(out.values())


def _value(column: Column, raw: str, where: str) -> Any:
    if column.required and not raw:
        raise RecordsError(f"{where}: {column.key}/{column.label} is empty",
                           zh=f"{_where_zh(where)}：{column.key}/{column.label} 为空")
    if column.kind == "flag":
        if raw.lower() not in _FLAGS:
            raise RecordsError(f"{where}: {column.key}/{column.label} must be 0/1 or 无/有, not {raw!r}",
                               zh=f"{_where_zh(where)}：{column.key}/{column.label} 应为 0/1 或 无/有，而不是 {raw!r}")
        return _FLAGS[raw.lower()]
    if column.kind == "count":
        if not raw.isdigit() or int(raw) > 1200:
            raise RecordsError(f"{where}: {column.key}/{column.label} must be a whole number of months, not {raw!r}",
                               zh=f"{_where_zh(where)}：{column.key}/{column.label} 应为整月数，而不是 {raw!r}")
        return int(raw)
    if len(raw) > column.max_length:
        raise RecordsError(f"{where}: {column.key}/{column.label} is longer than {column.max_length} characters",
                           zh=f"{_where_zh(where)}：{column.key}/{column.label} 超过 {column.max_length} 个字")
    return raw


def load(data_file: Path, layout: Layout, records: list[dict[str, Any]], *, replace_all: bool = False) -> int:
    """Write checked records into the bureau's data file in one transaction; returns how many."""
    data_file.parent.mkdir(parents=True, exist_ok=True)
    conn = sqlite3.connect(data_file)
    try:
        db = sqlite_utils.Database(conn)
        types = {c.key: int if c.kind in ("flag", "count") else str for c in layout.columns}
        with conn:
            table = db.table(layout.table)
            if replace_all and table.exists():
                conn.execute(f"DELETE FROM [{layout.table}]")
            if not table.exists():
                table.create(types, pk="id_number")
            else:
                for key, typ in types.items():
                    if key not in table.columns_dict:
                        table.add_column(key, typ)
            # the demo's tables may lack optional columns; every record names every column of the layout
            table.upsert_all(records, pk="id_number")
        return len(records)
    finally:
        conn.close()


def show(data_file: Path, layout: Layout, *, id_number: str | None = None,
         limit: int = 20) -> tuple[int, list[dict[str, Any]]]:
    """How many records the table holds, and the first ``limit`` (or the one with ``id_number``)."""
    if not data_file.exists():
        return 0, []
    db = sqlite_utils.Database(data_file)
    table = db.table(layout.table)
    if not table.exists():
        return 0, []
    count = table.count
    if id_number is not None:
        rows = list(table.rows_where("id_number = ?", [id_number]))
    else:
        rows = list(table.rows_where(order_by="id_number", limit=limit))
    return count, rows
