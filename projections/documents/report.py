"""区司法局's report to 区政府 for a period: commitment cases and assistance requests per bureau and matter.

:func:`build_report` takes what the read models already hold (the SLA view's rows, judged at
one instant, and the folded commitment cases) and returns a :class:`Report`: plain numbers
with stable English keys and bureau codes, the bureaus' Chinese names beside them. Three
writers print it: :func:`to_json`, :func:`to_xlsx` (one sheet per table, with charts of the
on-time rate per bureau and of the breaches per week) and :func:`to_pdf` (the same tables on
A4, with the two charts drawn).

What falls in the period:
- a commitment case by its application day (``applied_on``); its counts are what the case
  holds now (an approval or a consequence after the period's end still counts for it);
- an assistance request by the Asia/Shanghai day it legally arrived (or was sent, while in
  transit), as ``SlaView.stats`` counts it; a breach by the week its deadline ended.

"Licences not returned": revoked cases whose 2-day return deadline (附件6) had passed at the
instant judged with no ``licence-returned`` recorded by then.
"""
from __future__ import annotations

import io
from collections import Counter, defaultdict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any

from aggregates.commitment import CommitmentState
from aggregates.workdays import SHANGHAI
from projections.sla import stats_of
from schemas import labels

Names = Callable[[str], str]

#: Per bureau and matter: the commitment counts, in the order the tables print them.
COMMITMENT_COUNTS = {
    "applications": "申请件数",
    "approved_on_commitment": "承诺即批准",
    "certificate_chosen": "选择提供证明",
    "route_refused": "不适用告知承诺",
    "withdrawn": "中途撤回承诺",
    "exempt_items": "免于核查事项数",
    "false_findings": "发现虚假承诺",
    "terminated": "终止办理",
    "rectification_ordered": "责令限期整改",
    "revoked": "撤销行政决定",
    "penalty": "行政处罚",
    "referred": "移送司法机关",
    "supervisor_notified": "推送监管部门",
    "credit_records": "计入信用记录",
    "licences_not_returned": "证件逾期未交回",
}
#: Per bureau: the assistance figures (SlaView.stats), in print order.
ASSISTANCE_COUNTS = {
    "sent": "发出协助请求",
    "received": "收到协助请求",
    "answered": "已答复",
    "on_time": "按期答复",
    "on_time_rate": "按期答复率",
    "median_working_days": "用时中位数（工作日）",
    "p90_working_days": "用时90%分位（工作日）",
    "declined": "书面告知不能协助",
    "withdrawn": "撤回",
    "open": "办理中",
    "breaches": "逾期",
}
#: The consequence tags of a case (``CommitmentState.outcomes``) and the count each feeds.
_OUTCOME_COUNT = {"terminated": "terminated", "rectification-ordered": "rectification_ordered",
                  "revoked": "revoked", "penalty": "penalty", "referred": "referred",
                  "supervisor-notified": "supervisor_notified"}
SLA_STATE_ZH = labels.SLA_STATE


@dataclass(frozen=True)
class Report:
    """Everything the report prints, as plain values (the JSON form is :meth:`as_json`)."""

    start: date
    end: date
    judged_at: datetime
    commitments: list[dict[str, Any]]
    commitment_totals: list[dict[str, Any]]
    assistance: list[dict[str, Any]]
    declines: list[dict[str, Any]]
    breaches: list[dict[str, Any]]
    breaches_per_week: list[dict[str, Any]]
    licences_not_returned: list[dict[str, Any]] = field(default_factory=list)
    #: The assistance figures per bureau and matter (``assistance`` is per bureau).
    assistance_by_matter: list[dict[str, Any]] = field(default_factory=list)

    @property
    def title(self) -> str:
        return f"台儿庄区证明事项告知承诺制工作情况统计（{_zh(self.start)}至{_zh(self.end)}）"

    def as_json(self) -> dict[str, Any]:
        return {"from": self.start.isoformat(), "to": self.end.isoformat(),
                "judged_at": self.judged_at.isoformat(), "commitments": self.commitments,
                "commitment_totals": self.commitment_totals, "assistance": self.assistance,
                "assistance_by_matter": self.assistance_by_matter,
                "declines": self.declines, "breaches": self.breaches, "breaches_per_week": self.breaches_per_week,
                "licences_not_returned": self.licences_not_returned}


def _zh(d: date) -> str:
    return f"{d.year}年{d.month}月{d.day}日"


def _day(iso: str | None) -> date | None:
    return datetime.fromisoformat(iso).astimezone(SHANGHAI).date() if iso else None


def _monday(d: date) -> date:
    return d - timedelta(days=d.weekday())


def build_report(*, start: date, end: date, judged_at: datetime, sla_rows: Sequence[Mapping[str, Any]],
                 sla_stats: Sequence[Mapping[str, Any]], cases: Sequence[CommitmentState], names: Names,
                 decline_reasons: Mapping[str, str] | None = None) -> Report:
    """The report of ``start``..``end`` (both included), judged at ``judged_at``.

    ``sla_rows`` are ``SlaView.rows(now=judged_at)``, ``sla_stats`` ``SlaView.stats(start, end,
    now=judged_at)``; ``decline_reasons`` maps a declined request's case id to its reasons
    (read from the ledger by the caller; the view keeps none).
    """
    if start > end:
        raise ValueError(f"the period starts {start} after it ends {end}")
    reasons = decline_reasons or {}
    per: dict[tuple[str, str], Counter[str]] = defaultdict(Counter)
    overdue_licences: list[dict[str, Any]] = []
    for st in cases:
        if not start <= st.applied_on <= end:
            continue
        c = per[st.bureau, st.matter_name]
        c["applications"] += 1
        c["approved_on_commitment"] += st.approved
        c["certificate_chosen"] += st.route == "certificate" and not st.withdrawn
        c["route_refused"] += st.status == "certificate-required" and bool(st.refused_cause)
        c["withdrawn"] += st.withdrawn
        c["exempt_items"] += sum(1 for p in st.plan if p.exempt)
        c["false_findings"] += bool(st.false_items)
        for tag in st.outcomes:
            if tag in _OUTCOME_COUNT:
                c[_OUTCOME_COUNT[tag]] += 1
        c["credit_records"] += st.credit != "none"
        returned = st.licence_returned_at is not None and st.licence_returned_at <= judged_at
        if st.licence_return_due is not None and st.licence_return_due <= judged_at and not returned:
            c["licences_not_returned"] += 1
            overdue_licences.append({"number": st.number, "bureau": st.bureau, "bureau_name": names(st.bureau),
                                     "matter": st.matter_name, "decision_no": st.decision_no,
                                     "due_at": st.licence_return_due.isoformat()})
    commitments: list[dict[str, Any]] = [
        {"bureau": b, "bureau_name": names(b), "matter": m, **{k: per[b, m][k] for k in COMMITMENT_COUNTS}}
        for b, m in sorted(per)]
    totals: dict[str, Counter[str]] = defaultdict(Counter)
    for (b, _m), counts in per.items():
        totals[b].update(counts)
    commitment_totals = [{"bureau": b, "bureau_name": names(b), **{k: totals[b][k] for k in COMMITMENT_COUNTS}}
                         for b in sorted(totals)]
    assistance = [{"bureau": s["bureau"], "bureau_name": names(s["bureau"]),
                   **{k: s.get(k) for k in ASSISTANCE_COUNTS}} for s in sla_stats]
    by_matter = [{"bureau": s["bureau"], "bureau_name": names(s["bureau"]), "matter": s["matter"],
                  **{k: s[k] for k in ASSISTANCE_COUNTS}}
                 for s in stats_of(sla_rows, start=start, end=end, by_matter=True)]
    declines, breaches = [], []
    weeks: Counter[date] = Counter()
    for r in sla_rows:
        arrived = _day(r.get("arrived_at") or r.get("sent_at"))
        in_period = arrived is not None and start <= arrived <= end
        if in_period and r.get("status") == "declined":
            declines.append({"number": r["number"], "requester": r["requester"],
                             "requester_name": names(r["requester"]), "assistor": r["assistor"],
                             "assistor_name": names(r["assistor"]), "matter": r["matter"],
                             "answered_at": r.get("answered_at"), "state": r["state"],
                             "on_time": r["state"] == "declined-on-time", "reasons": reasons.get(r["case_id"], "")})
        if r["state"] in ("answered-late", "declined-late", "overdue"):
            due = r["decline_due_at"] if r["state"] == "declined-late" else r["due_at"]
            # due_at is the exclusive end (00:00 after the last working day): the deadline's day is the day before.
            last_day = (_day(due) or end) - timedelta(days=1)
            if in_period:
                breaches.append({"number": r["number"], "requester": r["requester"],
                                 "requester_name": names(r["requester"]), "assistor": r["assistor"],
                                 "assistor_name": names(r["assistor"]), "matter": r["matter"], "state": r["state"],
                                 "state_zh": SLA_STATE_ZH[r["state"]], "last_day": last_day.isoformat(),
                                 "answered_at": r.get("answered_at")})
                weeks[_monday(last_day)] += 1
    monday, per_week = _monday(start), []
    while monday <= end or monday in weeks:
        iso = monday.isocalendar()
        per_week.append({"week": f"{iso.year}-W{iso.week:02d}", "monday": monday.isoformat(),
                         "breaches": weeks.get(monday, 0)})
        monday += timedelta(days=7)
        if monday > end and not any(m >= monday for m in weeks):
            break
    return Report(start=start, end=end, judged_at=judged_at, commitments=commitments,
                  commitment_totals=commitment_totals, assistance=assistance, declines=declines, breaches=breaches,
                  breaches_per_week=per_week, licences_not_returned=overdue_licences,
                  assistance_by_matter=by_matter)


# -- XLSX ------------------------------------------------------------------------------------

def _pct(x: float | None) -> str:
    return "" if x is None else f"{x:.0%}"


def _cell(key: str, value: Any) -> Any:
    if value is None:
        return ""
    return value


def to_xlsx(report: Report) -> bytes:
    """One workbook: 告知承诺 (per bureau and matter), 行政协助 (per bureau, with the on-time chart),
    行政协助（按事项） (per bureau and matter), 逾期 (each breach, with the per-week chart),
    书面告知不能协助 (each decline and its reasons), 证件未交回."""
    from openpyxl import Workbook
    from openpyxl.chart import BarChart, Reference
    from openpyxl.styles import Alignment, Font
    from openpyxl.utils import get_column_letter

    wb = Workbook()

    def sheet(title: str, heading: str, header: list[str], rows: list[list[Any]], widths: dict[int, int]) -> Any:
        ws = wb.create_sheet(title)
        ws.append([heading])
        ws["A1"].font = Font(bold=True, size=14)
        judged = report.judged_at.astimezone(SHANGHAI)
        ws.append([f"统计时段：{_zh(report.start)}至{_zh(report.end)}；判定时点：{judged:%Y-%m-%d %H:%M}"])
        ws.append(header)
        for cell in ws[3]:
            cell.font = Font(bold=True)
            cell.alignment = Alignment(wrap_text=True, vertical="center", horizontal="center")
        for r in rows:
            ws.append(r)
        for j in range(1, len(header) + 1):
            ws.column_dimensions[get_column_letter(j)].width = widths.get(j, 12)
        ws.freeze_panes = "A4"
        return ws

    wb.remove(wb.active)
    sheet("告知承诺", report.title, ["部门", "部门代码", "政务服务事项", *COMMITMENT_COUNTS.values()],
          [[r["bureau_name"], r["bureau"], r["matter"], *(r[k] for k in COMMITMENT_COUNTS)]
           for r in report.commitments]
          + [["合计：" + r["bureau_name"], r["bureau"], "", *(r[k] for k in COMMITMENT_COUNTS)]
             for r in report.commitment_totals], {1: 18, 3: 24})
    ws = sheet("行政协助", "行政协助办理情况（按部门）", ["部门", "部门代码", *ASSISTANCE_COUNTS.values()],
               [[r["bureau_name"], r["bureau"], *(_cell(k, r[k]) for k in ASSISTANCE_COUNTS)]
                for r in report.assistance], {1: 18})
    rate_col = 3 + list(ASSISTANCE_COUNTS).index("on_time_rate")
    for row in ws.iter_rows(min_row=4, min_col=rate_col, max_col=rate_col):
        for cell in row:
            cell.number_format = "0%"
    if report.assistance:
        chart = BarChart()
        chart.type = "bar"
        chart.title = "按期答复率（按部门）"
        chart.y_axis.number_format = "0%"
        chart.y_axis.scaling.min, chart.y_axis.scaling.max = 0, 1
        chart.add_data(Reference(ws, min_col=rate_col, min_row=3, max_row=3 + len(report.assistance)),
                       titles_from_data=True)
        chart.set_categories(Reference(ws, min_col=1, min_row=4, max_row=3 + len(report.assistance)))
        chart.legend = None
        chart.height, chart.width = 3 + 0.6 * len(report.assistance), 16
        ws.add_chart(chart, f"A{len(report.assistance) + 6}")
    ws_matters = sheet("行政协助（按事项）", "行政协助办理情况（按部门、事项）",
                       ["部门", "部门代码", "事项", *ASSISTANCE_COUNTS.values()],
                       [[r["bureau_name"], r["bureau"], r["matter"], *(_cell(k, r[k]) for k in ASSISTANCE_COUNTS)]
                        for r in report.assistance_by_matter], {1: 18, 3: 24})
    for row in ws_matters.iter_rows(min_row=4, min_col=rate_col + 1, max_col=rate_col + 1):
        for cell in row:
            cell.number_format = "0%"
    ws = sheet("逾期", "逾期情况", ["文号", "请求部门", "协助部门", "事项", "状态", "期限届满日", "答复时间"],
               [[b["number"], b["requester_name"], b["assistor_name"], b["matter"], b["state_zh"], b["last_day"],
                 b["answered_at"] or ""] for b in report.breaches], {2: 16, 3: 16, 4: 24, 5: 16, 6: 12, 7: 22})
    col = 9
    ws.cell(3, col, "周")
    ws.cell(3, col + 1, "逾期件数")
    for i, w in enumerate(report.breaches_per_week, start=4):
        ws.cell(i, col, f"{w['week']}（{w['monday']}起）")
        ws.cell(i, col + 1, w["breaches"])
    ws.column_dimensions[get_column_letter(col)].width = 24
    if report.breaches_per_week:
        chart = BarChart()
        chart.title = "每周逾期件数"
        chart.add_data(Reference(ws, min_col=col + 1, min_row=3, max_row=3 + len(report.breaches_per_week)),
                       titles_from_data=True)
        chart.set_categories(Reference(ws, min_col=col, min_row=4, max_row=3 + len(report.breaches_per_week)))
        chart.legend = None
        ws.add_chart(chart, f"I{len(report.breaches_per_week) + 6}")
    sheet("书面告知不能协助", "书面告知不能协助情况", ["文号", "请求部门", "协助部门", "事项", "是否按期", "理由"],
          [[d["number"], d["requester_name"], d["assistor_name"], d["matter"], "是" if d["on_time"] else "否",
            d["reasons"]] for d in report.declines], {2: 16, 3: 16, 4: 24, 6: 60})
    sheet("证件未交回", "撤销后逾期未交回证件", ["案件编号", "部门", "事项", "许可文号", "应交回时间"],
          [[x["number"], x["bureau_name"], x["matter"], x["decision_no"], x["due_at"]]
           for x in report.licences_not_returned], {2: 16, 3: 24, 4: 24, 5: 26})
    buf = io.BytesIO()
    wb.save(buf)
    return buf.getvalue()


# -- PDF -------------------------------------------------------------------------------------

def to_pdf(report: Report) -> bytes:
    """The report on A4 landscape: the tables, and bar charts of the on-time rate and of breaches per week."""
    from fpdf import FPDF
    from fpdf.enums import Align, XPos, YPos
    from fpdf.fonts import FontFace

    from projections.documents.pdf import FAMILY, cjk_font

    font = cjk_font()
    pdf = FPDF(orientation="landscape", unit="mm", format="A4")
    pdf.add_font(FAMILY, fname=str(font.path), collection_font_number=font.index)
    pdf.set_margins(15, 15, 15)
    pdf.set_auto_page_break(True, margin=15)
    pdf.set_title(report.title)
    pdf.set_creator("xiezhu")
    pdf.add_page()
    pdf.set_font(FAMILY, size=16)
    pdf.multi_cell(0, 10, report.title, align=Align.C, new_x=XPos.LMARGIN, new_y=YPos.NEXT)
    pdf.set_font(FAMILY, size=9)
    pdf.cell(0, 6, f"判定时点：{report.judged_at.astimezone(SHANGHAI):%Y-%m-%d %H:%M}（北京时间）",
             new_x=XPos.LMARGIN, new_y=YPos.NEXT, align=Align.C)

    def heading(text: str) -> None:
        pdf.ln(3)
        pdf.set_font(FAMILY, size=12)
        pdf.cell(0, 8, text, new_x=XPos.LMARGIN, new_y=YPos.NEXT)

    def table(header: list[str], rows: list[list[Any]], widths: list[float] | None = None) -> None:
        pdf.set_font(FAMILY, size=7)
        if not rows:
            pdf.cell(0, 6, "（无）", new_x=XPos.LMARGIN, new_y=YPos.NEXT)
            return
        with pdf.table(col_widths=widths, text_align="CENTER", line_height=4.5, first_row_as_headings=True,
                       headings_style=FontFace(emphasis="", fill_color=(225, 225, 225))) as t:
            for line in [header, *rows]:
                row = t.row()
                for value in line:
                    row.cell("" if value is None else str(value))

    heading("一、告知承诺办理情况（按部门、事项）")
    short = ["部门", "事项", "申请", "承诺即批准", "选择证明", "不适用", "撤回", "免核查项", "虚假承诺", "终止办理",
             "限期整改", "撤销", "处罚", "移送", "推送监管", "信用记录", "证件未交回"]
    table(short, [[r["bureau_name"], r["matter"], *(r[k] for k in COMMITMENT_COUNTS)] for r in report.commitments]
          + [["合计", r["bureau_name"], *(r[k] for k in COMMITMENT_COUNTS)] for r in report.commitment_totals],
          [28, 40] + [13.5] * len(COMMITMENT_COUNTS))
    heading("二、行政协助办理情况（按部门）")
    table(["部门", "发出", "收到", "已答复", "按期", "按期率", "用时中位数", "用时P90", "不能协助", "撤回", "办理中",
           "逾期"],
          [[r["bureau_name"], *(_pct(r[k]) if k == "on_time_rate" else ("" if r[k] is None else r[k])
                                for k in ASSISTANCE_COUNTS)] for r in report.assistance])
    heading("三、行政协助办理情况（按部门、事项）")
    table(["部门", "事项", "发出", "收到", "已答复", "按期", "按期率", "用时中位数", "用时P90", "不能协助", "撤回",
           "办理中", "逾期"],
          [[r["bureau_name"], r["matter"], *(_pct(r[k]) if k == "on_time_rate" else ("" if r[k] is None else r[k])
                                             for k in ASSISTANCE_COUNTS)] for r in report.assistance_by_matter],
          [30, 45] + [17.0] * len(ASSISTANCE_COUNTS))
    _bars(pdf, "按期答复率（按部门）", [(r["bureau_name"], r["on_time_rate"] or 0.0) for r in report.assistance
                                       if r["answered"]], as_rate=True)
    _bars(pdf, "每周逾期件数", [(w["monday"][5:] + "起", float(w["breaches"])) for w in report.breaches_per_week])
    heading("四、逾期情况")
    table(["文号", "请求部门", "协助部门", "事项", "状态", "期限届满日"],
          [[b["number"], b["requester_name"], b["assistor_name"], b["matter"], b["state_zh"], b["last_day"]]
           for b in report.breaches])
    heading("五、书面告知不能协助情况")
    table(["文号", "请求部门", "协助部门", "事项", "按期", "理由"],
          [[d["number"], d["requester_name"], d["assistor_name"], d["matter"], "是" if d["on_time"] else "否",
            d["reasons"]] for d in report.declines], [22, 30, 30, 45, 12, 128])
    heading("六、撤销后逾期未交回证件")
    table(["案件编号", "部门", "事项", "许可文号", "应交回时间"],
          [[x["number"], x["bureau_name"], x["matter"], x["decision_no"], x["due_at"][:16].replace("T", " ")]
           for x in report.licences_not_returned])
    return bytes(pdf.output())


def _bars(pdf: Any, title: str, values: list[tuple[str, float]], *, as_rate: bool = False) -> None:
    """A horizontal bar chart drawn with rectangles: one bar per label, scaled to the largest value."""
    from fpdf.enums import XPos, YPos

    from projections.documents.pdf import FAMILY

    if not values:
        return
    bar_h, label_w, chart_w = 5.0, 40.0, 150.0
    needed = 12 + bar_h * len(values)
    if pdf.get_y() + needed > pdf.h - 15:
        pdf.add_page()
    pdf.ln(3)
    pdf.set_font(FAMILY, size=11)
    pdf.cell(0, 7, title, new_x=XPos.LMARGIN, new_y=YPos.NEXT)
    top = max(v for _, v in values) or 1.0
    scale = 1.0 if as_rate else top
    pdf.set_font(FAMILY, size=8)
    for label, v in values:
        y = pdf.get_y()
        pdf.set_xy(pdf.l_margin, y)
        pdf.cell(label_w, bar_h, label)
        pdf.set_fill_color(70, 110, 170)
        width = chart_w * (v / scale if scale else 0)
        if width > 0:
            pdf.rect(pdf.l_margin + label_w, y + 0.8, width, bar_h - 1.6, style="F")
        pdf.set_xy(pdf.l_margin + label_w + width + 2, y)
        pdf.cell(20, bar_h, f"{v:.0%}" if as_rate else f"{v:g}")
        pdf.set_xy(pdf.l_margin, y + bar_h)
    pdf.set_fill_color(255, 255, 255)
