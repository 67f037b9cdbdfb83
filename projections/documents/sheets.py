"""Tables for a spreadsheet: the SLA view and its statistics as CSV (UTF-8 with BOM, for Excel) or XLSX.

Each table is a list of ``(key, 中文列名)`` columns and one dict per row. The header is the
Chinese name; the bureau codes and states stay beside the Chinese names in columns of their
own, so a sheet can be sorted by either and matched back to ``--json``.
"""
from __future__ import annotations

import csv
import io
from collections.abc import Callable, Mapping, Sequence
from datetime import date, datetime
from typing import Any

from aggregates.workdays import SHANGHAI
from projections.documents.report import SLA_STATE_ZH
from schemas import labels

Columns = Sequence[tuple[str, str]]
Names = Callable[[str], str]

STATUS_ZH = labels.REQUEST_STATUS
SLA_COLUMNS: Columns = (
    ("number", "文号"), ("requester_name", "请求部门"), ("assistor_name", "协助部门"), ("matter", "事项"),
    ("channel", "方式"), ("arrived_at", "送达时间"), ("last_day", "答复期限（最后一日）"),
    ("answered_at", "答复时间"), ("working_days_taken", "用时（工作日）"), ("status_zh", "办理状态"),
    ("state_zh", "时限状态"), ("requester", "请求部门代码"), ("assistor", "协助部门代码"), ("state", "state"),
)
STATS_COLUMNS: Columns = (
    ("bureau_name", "部门"), ("sent", "发出"), ("received", "收到"), ("answered", "已答复"), ("on_time", "按期答复"),
    ("on_time_rate", "按期答复率"), ("median_working_days", "用时中位数（工作日）"),
    ("p90_working_days", "用时90%分位（工作日）"), ("declined", "不能协助"), ("decline_rate", "不能协助占比"),
    ("withdrawn", "撤回"), ("open", "办理中"), ("breaches", "逾期"), ("bureau", "部门代码"),
)
_RATES = ("on_time_rate", "decline_rate")


def _local(iso: str | None) -> str:
    return datetime.fromisoformat(iso).astimezone(SHANGHAI).strftime("%Y-%m-%d %H:%M") if iso else ""


def _last_day(due_at: str | None) -> str:
    if not due_at:
        return ""
    return date.fromordinal(datetime.fromisoformat(due_at).astimezone(SHANGHAI).date().toordinal() - 1).isoformat()


def sla_records(rows: Sequence[Mapping[str, Any]], names: Names) -> list[dict[str, Any]]:
    """The SLA view's rows as the sheet shows them: Chinese names and states, local times."""
    return [{
        "number": r["number"], "requester": r["requester"], "requester_name": names(r["requester"]),
        "assistor": r["assistor"], "assistor_name": names(r["assistor"]), "matter": r["matter"],
        "channel": "纸质函件" if r.get("channel") == "letter" else "平台",
        "arrived_at": _local(r.get("arrived_at")),
        "last_day": _last_day(r.get("due_at")) + ("（暂定）" if r.get("provisional") else ""),
        "answered_at": _local(r.get("answered_at")), "working_days_taken": r.get("working_days_taken"),
        "status_zh": STATUS_ZH.get(r["status"], r["status"]), "state": r["state"],
        "state_zh": SLA_STATE_ZH.get(r["state"], r["state"]),
    } for r in rows]


#: 二(四): the 告知承诺书 a 区 office publishes (事项目录向社会公开), applicants masked as the view masks them.
DISCLOSURE_COLUMNS: Columns = (
    ("seq", "序号"), ("bureau_name", "承办部门"), ("matter", "政务服务事项"), ("number", "案件编号"),
    ("applicant", "申请人"), ("id_number", "身份证件号码"), ("signed_on", "承诺日期"), ("commitments", "承诺内容"),
    ("bureau", "承办部门代码"),
)


def disclosure_records(rows: Sequence[Mapping[str, Any]], names: Names) -> list[dict[str, Any]]:
    """:meth:`CommitmentView.to_disclose` as the published sheet shows it: numbered, the commitments on one cell."""
    return [{**r, "seq": n, "bureau_name": names(r["bureau"]),
             "commitments": "；".join(f"{i}、{text}" for i, text in enumerate(r["commitments"], 1))}
            for n, r in enumerate(rows, 1)]


def stats_records(stats: Sequence[Mapping[str, Any]], names: Names) -> list[dict[str, Any]]:
    return [{**s, "bureau_name": names(s["bureau"])} for s in stats]


def _value(key: str, value: Any, *, text: bool) -> Any:
    if value is None:
        return ""
    if key in _RATES and text:
        return f"{value:.1%}"
    return value


def to_csv(columns: Columns, records: Sequence[Mapping[str, Any]]) -> bytes:
    """CSV bytes, UTF-8 with a BOM so that Excel shows the Chinese."""
    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow([zh for _, zh in columns])
    for r in records:
        w.writerow([_value(k, r.get(k), text=True) for k, _ in columns])
    return buf.getvalue().encode("utf-8-sig")


def to_xlsx(title: str, columns: Columns, records: Sequence[Mapping[str, Any]], *, sheet: str = "Sheet1") -> bytes:
    """XLSX bytes: the title, the header, the rows (rates as percentages), frozen under the header."""
    from openpyxl import Workbook
    from openpyxl.styles import Alignment, Font
    from openpyxl.utils import get_column_letter

    wb = Workbook()
    ws = wb.active
    ws.title = sheet
    ws.append([title])
    ws["A1"].font = Font(bold=True, size=14)
    ws.append([zh for _, zh in columns])
    for cell in ws[2]:
        cell.font = Font(bold=True)
        cell.alignment = Alignment(wrap_text=True, horizontal="center", vertical="center")
    for r in records:
        ws.append([_value(k, r.get(k), text=False) for k, _ in columns])
    for j, (key, zh) in enumerate(columns, start=1):
        ws.column_dimensions[get_column_letter(j)].width = max(10, min(28, 2 * len(zh) + 2))
        if key in _RATES:
            for (cell,) in ws.iter_rows(min_row=3, min_col=j, max_col=j):
                cell.number_format = "0.0%"
    ws.freeze_panes = "A3"
    buf = io.BytesIO()
    wb.save(buf)
    return buf.getvalue()
