"""区司法局's report: what it counts per bureau and matter, and its XLSX (with charts) and PDF."""
from __future__ import annotations

import io
import shutil
import subprocess
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import msgspec
import openpyxl
import pytest

from aggregates.commitment import CommitmentState
from projections.documents.report import build_report, to_pdf, to_xlsx
from schemas.assistance import Applicant, CommitmentItem
from schemas.commitment import PlannedItem

NAMES = {"shenpi": "区审批服务局", "gongan": "区公安分局", "minzheng": "区民政局"}
JUDGED = datetime(2026, 10, 12, 1, tzinfo=UTC)


def case(number: str, applied_on: date, **changes: Any) -> CommitmentState:
    st = CommitmentState(
        case=number, number=number, bureau="shenpi", applicant=Applicant(kind="person", name="张三",
                                                                         id_number="370405199001011234"),
        matter_code="370405-XK-0101", matter_name="食品经营许可", certificate_name="无犯罪记录证明",
        issuing_unit="区公安分局", mode="可选择", disclose=False, catalogue_version=1,
        items=(CommitmentItem(no=1, text="无犯罪记录"), CommitmentItem(no=2, text="户籍在本区")),
        applied_on=applied_on, standing="good")
    return msgspec.structs.replace(st, **changes) if changes else st


CASES = [
    case("C20260001", date(2026, 9, 1), approved=True, status="closed", route="commitment",
         plan=(PlannedItem(no=1, method="assistance"), PlannedItem(no=2, method="online", exempt=True))),
    case("C20260002", date(2026, 9, 2), approved=True, status="revoked", false_items=(1,),
         outcomes=("revoked", "credit-recorded"), credit="recorded", decision_no="台审批许〔2026〕0002号",
         licence_return_due=datetime(2026, 9, 20, 2, tzinfo=UTC)),
    case("C20260003", date(2026, 9, 3), status="terminated", false_items=(2,), outcomes=("terminated",)),
    case("C20260004", date(2026, 9, 4), route="certificate", status="certificate-required"),
    case("C20260005", date(2026, 9, 5), withdrawn=True, route="certificate", status="certificate-required"),
    case("C20260006", date(2026, 9, 6), status="certificate-required", refused_cause="credit"),
    case("C20260008", date(2026, 9, 8), approved=True, status="revoked", false_items=(1,), outcomes=("revoked",),
         decision_no="台审批许〔2026〕0008号", licence_return_due=datetime(2026, 9, 20, 2, tzinfo=UTC),
         licence_returned_at=datetime(2026, 9, 19, 2, tzinfo=UTC)),  # handed back in time
    case("C20260099", date(2026, 10, 6), approved=True),  # after the period
    case("C20260007", date(2026, 9, 7), matter_name="不动产登记", approved=True),
    case("C20260010", date(2026, 9, 10), bureau="minzheng", matter_name="最低生活保障审核", approved=True,
         status="false-commitment", false_items=(2,), credit="recorded", supervisor="shichang",
         outcomes=("rectification-ordered", "penalty", "referred", "supervisor-notified", "credit-recorded")),
]


def sla_row(number: str, status: str, state: str, arrived: str, **extra: Any) -> dict[str, Any]:
    return {"case_id": f"a-{number}", "number": number, "requester": "shenpi", "assistor": "gongan",
            "matter": "食品经营许可", "status": status, "state": state, "sent_at": arrived, "arrived_at": arrived,
            "due_at": "2026-09-10T16:00:00+00:00", "decline_due_at": "2026-09-09T16:00:00+00:00",
            "answered_at": None, "working_days_taken": None, **extra}


ROWS = [
    sla_row("20260001", "replied", "answered-on-time", "2026-09-07T01:00:00+00:00", working_days_taken=1),
    sla_row("20260002", "replied", "answered-late", "2026-09-07T01:00:00+00:00",
            answered_at="2026-09-12T01:00:00+00:00", working_days_taken=5),
    sla_row("20260003", "declined", "declined-on-time", "2026-09-08T01:00:00+00:00", working_days_taken=2),
    sla_row("20260004", "received", "overdue", "2026-09-21T01:00:00+00:00", due_at="2026-09-24T16:00:00+00:00"),
    sla_row("20260005", "received", "overdue", "2026-10-08T01:00:00+00:00"),  # arrived after the period
]
STATS = [{"bureau": "gongan", "sent": 0, "received": 4, "answered": 3, "on_time": 2, "on_time_rate": 2 / 3,
          "decline_rate": 1 / 3, "median_working_days": 2, "p90_working_days": 4, "declined": 1, "withdrawn": 0,
          "open": 1, "breaches": 2},
         {"bureau": "shenpi", "sent": 4, "received": 0, "answered": 0, "on_time": 0, "on_time_rate": None,
          "decline_rate": None, "median_working_days": None, "p90_working_days": None, "declined": 0,
          "withdrawn": 0, "open": 0, "breaches": 0}]


@pytest.fixture(scope="module")
def report() -> Any:
    return build_report(start=date(2026, 9, 1), end=date(2026, 9, 30), judged_at=JUDGED, sla_rows=ROWS,
                        sla_stats=STATS, cases=CASES, names=NAMES.__getitem__,
                        decline_reasons={"a-20260003": "户籍档案已迁出本区"})


def test_commitment_cases_are_counted_per_bureau_and_matter_by_application_day(report: Any) -> None:
    welfare, estate, food = report.commitments  # sorted by bureau, then matter
    assert (food["bureau_name"], food["matter"], estate["matter"]) == ("区审批服务局", "食品经营许可", "不动产登记")
    assert estate["applications"] == 1 and estate["approved_on_commitment"] == 1
    assert {k: food[k] for k in ("applications", "approved_on_commitment", "certificate_chosen", "route_refused",
                                 "withdrawn", "exempt_items", "false_findings", "terminated", "revoked",
                                 "credit_records", "licences_not_returned")} == {
        "applications": 7, "approved_on_commitment": 3, "certificate_chosen": 1, "route_refused": 1,
        "withdrawn": 1, "exempt_items": 1, "false_findings": 3, "terminated": 1, "revoked": 2,
        "credit_records": 1, "licences_not_returned": 1}
    assert {k: welfare[k] for k in ("false_findings", "terminated", "rectification_ordered", "revoked", "penalty",
                                    "referred", "supervisor_notified", "credit_records")} == {
        "false_findings": 1, "terminated": 0, "rectification_ordered": 1, "revoked": 0, "penalty": 1, "referred": 1,
        "supervisor_notified": 1, "credit_records": 1}
    welfare_total, total = report.commitment_totals
    assert welfare_total["bureau"] == "minzheng" and welfare_total["applications"] == 1
    assert total["applications"] == 8 and total["approved_on_commitment"] == 4
    [licence] = report.licences_not_returned
    assert licence["number"] == "C20260002" and licence["decision_no"] == "台审批许〔2026〕0002号"


def test_assistance_breaches_and_declines_with_their_reasons(report: Any) -> None:
    assert [a["bureau_name"] for a in report.assistance] == ["区公安分局", "区审批服务局"]
    assert report.assistance[0]["on_time_rate"] == pytest.approx(2 / 3)
    [decline] = report.declines
    assert decline["reasons"] == "户籍档案已迁出本区" and decline["on_time"]
    assert [(b["number"], b["state_zh"], b["last_day"]) for b in report.breaches] == [
        ("20260002", "逾期答复", "2026-09-10"), ("20260004", "逾期未答复", "2026-09-24")]
    weeks = {w["monday"]: w["breaches"] for w in report.breaches_per_week}
    [matter] = [m for m in report.assistance_by_matter if m["bureau"] == "gongan"]
    assert {k: matter[k] for k in ("matter", "received", "answered", "on_time", "declined", "open", "breaches",
                                   "median_working_days", "p90_working_days")} == {
        "matter": "食品经营许可", "received": 4, "answered": 3, "on_time": 2, "declined": 1, "open": 1, "breaches": 2,
        "median_working_days": 2, "p90_working_days": 5}
    assert matter["on_time_rate"] == pytest.approx(2 / 3)
    assert [(m["bureau"], m["sent"]) for m in report.assistance_by_matter] == [("gongan", 0), ("shenpi", 4)]
    assert weeks == {"2026-08-31": 0, "2026-09-07": 1, "2026-09-14": 0, "2026-09-21": 1, "2026-09-28": 0}


def test_the_json_form_keeps_english_keys_and_codes(report: Any) -> None:
    j = report.as_json()
    assert j["from"] == "2026-09-01" and j["commitments"][0]["bureau"] == "minzheng"
    assert j["assistance_by_matter"][0]["matter"] == "食品经营许可"
    assert msgspec.json.decode(msgspec.json.encode(j)) == j


def test_the_workbook_has_a_sheet_per_table_and_the_two_charts(report: Any) -> None:
    wb = openpyxl.load_workbook(io.BytesIO(to_xlsx(report)))
    assert wb.sheetnames == ["告知承诺", "行政协助", "行政协助（按事项）", "逾期", "书面告知不能协助", "证件未交回"]
    assert [c.value for c in wb["行政协助（按事项）"][4]][:5] == ["区公安分局", "gongan", "食品经营许可", 0, 4]
    ws = wb["告知承诺"]
    assert ws["A1"].value.startswith("台儿庄区证明事项告知承诺制工作情况统计（2026年9月1日至2026年9月30日）")
    assert [c.value for c in ws[3]][:4] == ["部门", "部门代码", "政务服务事项", "申请件数"]
    assert ws["C6"].value == "食品经营许可" and ws["D6"].value == 7
    assert wb["书面告知不能协助"]["F4"].value == "户籍档案已迁出本区"
    # openpyxl reads charts back only as drawings: look for them in the file itself.
    import zipfile

    with zipfile.ZipFile(io.BytesIO(to_xlsx(report))) as z:
        charts = [n for n in z.namelist() if n.startswith("xl/charts/chart")]
        assert len(charts) == 2
        text = "".join(z.read(n).decode() for n in charts)
    assert "按期答复率" in text and "每周逾期件数" in text


def test_the_pdf_embeds_its_font_and_shows_the_tables(report: Any, tmp_path: Path) -> None:
    path = tmp_path / "report.pdf"
    path.write_bytes(to_pdf(report))
    if shutil.which("pdftotext") is None:
        pytest.skip("pdftotext is not installed: `apt-get install poppler-utils` to check the PDF (CI installs it)")
    fonts = subprocess.run(["pdffonts", str(path)], capture_output=True, text=True, check=True).stdout
    assert "CJK" in fonts and " yes yes yes " in fonts
    text = "".join(subprocess.run(["pdftotext", str(path), "-"], capture_output=True, text=True,
                                  check=True).stdout.split())
    for words in ("告知承诺办理情况", "区审批服务局", "按期答复率", "每周逾期件数", "户籍档案已迁出本区", "C20260002"):
        assert words in text, words


def test_a_period_that_ends_before_it_starts_is_refused() -> None:
    with pytest.raises(ValueError, match="after it ends"):
        build_report(start=date(2026, 9, 30), end=date(2026, 9, 1), judged_at=JUDGED, sla_rows=[], sla_stats=[],
                     cases=[], names=str)
