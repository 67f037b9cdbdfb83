"""附件8 and 附件9 as CSV and XLSX: the attachments' layout, round trips, and errors that name row and column."""
from __future__ import annotations

import csv
import io
from datetime import UTC, datetime
from pathlib import Path

import msgspec
import openpyxl
import pytest

from aggregates import catalogue as cat
from aggregates.clock import SimulatedClock
from aggregates.registry import Registry
from aggregates.store.catalogue import CatalogueRegistry
from projections.documents import catalogue_io as cio
from projections.documents.catalogue_io import CatalogueImportError, CatalogueIOError
from schemas.catalogue import AssistanceItem, Kind, MatterRow, Row

MATTERS: list[Row] = [
    MatterRow(code="ZM-gongan-0001", seq=1, service_matter_name="户口迁移登记（市内）",
              service_matter_code="370405-QR-0001",
              certificate_name="亲属关系证明", legal_basis="《户口登记条例》第十条\n《山东省户籍管理规定》",
              handling_body="gongan", issuing_unit="村（居）民委员会", mode="可选择",
              verification_methods=["信息共享平台查询", "部门间行政协助"], notes="", disclose_commitment=True,
              owner="gongan", domains=["户籍管理"]),
    MatterRow(code="ZM-yunhe-0002", seq=2, service_matter_name="最低生活保障审核", service_matter_code="370405-QR-0102",
              certificate_name="家庭收入证明", legal_basis="《社会救助暂行办法》", handling_body="yunhe",
              issuing_unit="申请人所在单位", mode="必须实行", verification_methods=["内部核查"], notes="由街道承办",
              owner="minzheng"),
]
ITEMS: list[Row] = [
    AssistanceItem(code="XZ-0001", seq=1, service_matter_name="食品经营许可", service_matter_code="370405-XK-0001",
                   item_name="申请人户籍核查", legal_basis="《食品安全法》第三十五条", handling_body="shichang",
                   assisting_body="gongan", verification_method="部门间行政协助", checks=["hukou.residence"]),
    AssistanceItem(code="XZ-0002", seq=2, service_matter_name="医疗机构执业登记", service_matter_code="370405-XK-0002",
                   item_name="场所现场核验", legal_basis="《医疗机构管理条例》", handling_body="shichang",
                   assisting_body="weijian", verification_method="现场检查", notes="=需备忘录（不是公式）",
                   on_site=True, reply_within=2, decline_within=1, checks=["site.visit", "license.medical"]),
]
ROWS: dict[Kind, list[Row]] = {"matters": MATTERS, "assistance": ITEMS}


@pytest.fixture(scope="module")
def registry() -> Registry:
    return Registry.load()


def write_csv(path: Path, lines: list[list[str]], encoding: str = "utf-8-sig") -> Path:
    buf = io.StringIO()
    csv.writer(buf).writerows(lines)
    path.write_bytes(buf.getvalue().encode(encoding))
    return path


def write_xlsx(path: Path, lines: list[list[str | int]]) -> Path:
    wb = openpyxl.Workbook()
    for line in lines:
        wb.active.append(line)
    wb.save(path)
    return path


def matter_line(**cells: str) -> list[str]:
    base = {"序号": "1", "政务服务事项名称及编码": "户口迁移登记（370405-QR-0001）", "证明事项名称": "亲属关系证明",
            "设定依据": "《户口登记条例》", "承办机构": "区公安分局", "开具单位": "村民委员会", "实施方式": "可选择",
            "核查方式": "部门间行政协助", "备注": ""}
    base.update(cells)
    return [base[c] for c in cio.MATTER_COLUMNS]


def item_line(seq: str, name: str, handling: str, assisting: str) -> list[str]:
    return [seq, "食品经营许可（370405-XK-0001）", name, "《食品安全法》", handling, assisting, "部门间行政协助", ""]


# -- round trips --------------------------------------------------------------------


@pytest.mark.parametrize("suffix", [".csv", ".xlsx"])
@pytest.mark.parametrize("kind", ["matters", "assistance"])
def test_export_then_import_gives_the_same_rows(tmp_path: Path, registry: Registry, kind: Kind, suffix: str) -> None:
    path = tmp_path / f"{kind}{suffix}"
    cio.export_rows(kind, ROWS[kind], path, registry, department="区市场监管局", filler="王五", phone="0632-6611111")
    assert cio.import_rows(kind, path, registry) == ROWS[kind]


def test_typed_import_helpers_return_their_row_types(tmp_path: Path, registry: Registry) -> None:
    cio.export_rows("matters", MATTERS, tmp_path / "m.csv", registry)
    cio.export_rows("assistance", ITEMS, tmp_path / "a.xlsx", registry)
    assert cio.import_matters(tmp_path / "m.csv", registry) == MATTERS
    assert cio.import_assistance(tmp_path / "a.xlsx", registry) == ITEMS


# -- layout ------------------------------------------------------------------------


def test_csv_header_is_the_attachments_columns_then_xiezhus(registry: Registry) -> None:
    text = cio.to_csv("matters", MATTERS, registry).decode("utf-8-sig")
    header = next(csv.reader(io.StringIO(text)))
    assert header == ["序号", "政务服务事项名称及编码", "证明事项名称", "设定依据", "承办机构", "开具单位", "实施方式",
                      "核查方式", "备注", "是否公开承诺书", "所属部门", "风险领域", "证明事项编码"]
    text = cio.to_csv("assistance", ITEMS, registry).decode("utf-8-sig")
    header = next(csv.reader(io.StringIO(text)))
    assert header == ["序号", "政务服务事项名称及编码", "行政协助事项名称", "设定依据", "承办机构", "协助机构",
                      "核查方式", "备注", "事项编码", "现场协助", "回复时限（工作日）", "告知时限（工作日）", "核查键"]


def test_cells_follow_the_documented_conventions(registry: Registry) -> None:
    table = cio.to_table("matters", MATTERS, registry)
    first = dict(zip(table[0], table[1], strict=True))
    assert first["政务服务事项名称及编码"] == "户口迁移登记（市内）（370405-QR-0001）"
    assert first["承办机构"] == "区公安分局" and first["实施方式"] == "可选择"
    assert first["核查方式"] == "信息共享平台查询、部门间行政协助" and first["是否公开承诺书"] == "是"


@pytest.mark.parametrize(("kind", "title"), [("matters", "全面推行告知承诺制的证明事项清单"),
                                             ("assistance", "全面推行告知承诺制的行政协助事项清单")])
def test_xlsx_is_laid_out_as_the_attachment(tmp_path: Path, registry: Registry, kind: Kind, title: str) -> None:
    path = tmp_path / "list.xlsx"
    cio.export_rows(kind, ROWS[kind], path, registry, department="区市场监管局", filler="王五", phone="6611111")
    ws = openpyxl.load_workbook(path).active
    assert ws["A1"].value == title
    line2 = [c.value for c in ws[2] if c.value]
    assert line2 == ["部门名称：区市场监管局（公章）", "填报人：王五", "联系电话：6611111"]
    top = [(c.value or "").replace("\n", "") for c in ws[3]]
    matters = kind == "matters"
    template = ["序号", "政务服务事项名称及编码", "证明事项名称" if matters else "行政协助事项名称", "设定依据",
                "承办机构", "开具单位" if matters else "协助机构"]
    assert top[:6] == template
    merged = {str(m) for m in ws.merged_cells.ranges}
    assert "A3:A4" in merged and "B3:B4" in merged  # one header cell over both header rows
    if kind == "matters":
        assert top[6:10] == ["实施方式", "", "核查方式", "备注"] and "G3:H3" in merged
        assert [ws["G4"].value, ws["H4"].value] == ["必须实行", "可选择"]
        assert ws["G5"].value == "行政机关规定必须采取告知承诺制"
        assert ws["H5"].value == "申请人可以选择采取书面承诺方式或者提供有关证明"
        assert ws["I5"].value.startswith("行政机关拟采取的内部核查")
        # 户口迁移登记 is 可选择, 最低生活保障审核 必须实行: one tick each, in its own column
        assert [(ws[f"G{r}"].value, ws[f"H{r}"].value) for r in (6, 7)] == [(None, "√"), ("√", None)]
        assert ws["J7"].value == "由街道承办"  # 备注
    else:
        assert top[6:8] == ["核查方式", "备注"] and ws["G5"].value.startswith("行政机关拟采取的内部核查")
    assert ws["B5"].value == "按照省政务服务网或权力事项动态管理系统的规范要求填写事项名称和编码"
    assert ws["D5"].value == "法律法规依据及具体实施依据（规章、规范性文件）"
    assert ws["A6"].value == 1 and ws.max_row == cio.XLSX_HEAD_ROWS + len(ROWS[kind])


def test_a_sheet_filled_in_by_hand_comes_back_as_an_adjustment(tmp_path: Path, registry: Registry) -> None:
    published = CatalogueRegistry(None, SimulatedClock(datetime(2026, 3, 2, 1, tzinfo=UTC)))
    first = published.apply_adjustment("matters", "gongan", "依据", adds=[MATTERS[0]])
    published.review(first, True)
    published.publish("matters", publisher="zhengfuban")  # 一(三): 区政府 publishes the list's first version
    path = tmp_path / "gongan-附件8.xlsx"
    cio.export_rows("matters", published.current("matters"), path, registry, department="区公安分局")
    wb = openpyxl.load_workbook(path)
    ws = wb.active
    ws["G6"], ws["H6"] = "√", None  # the clerk moves the tick from 可选择 to 必须实行
    ws["J6"] = "2026年起必须实行"  # and writes a 备注
    ws.append([2, "居住登记（370405-QR-0002）", "居住证明", "《居住证暂行条例》", "区公安分局", "社区居委会", "", "✓",
               "部门间行政协助", "", "否", "区公安分局"])  # a new row, ticked by hand with another mark
    ws["D2"] = "填报人：张警官"
    wb.save(path)
    wanted = cio.import_matters(path, registry)
    assert [(r.seq, r.mode, r.notes) for r in wanted] == [(1, "必须实行", "2026年起必须实行"), (2, "可选择", "")]
    adds, replaces, removes = cat.diff_rows(published.current("matters"), wanted, "gongan")
    assert [r.code for r in adds] == ["ZM-gongan-0002"] and [r.code for r in replaces] == ["ZM-gongan-0001"]
    assert removes == []
    adj = published.apply_adjustment("matters", "gongan", "依据：台政办发〔2021〕2号", adds=adds, replaces=replaces)
    published.review(adj, True)
    published.publish("matters")
    assert [(r.code, r.mode) for r in published.current("matters")] == [
        ("ZM-gongan-0001", "必须实行"), ("ZM-gongan-0002", "可选择")]


@pytest.mark.parametrize(("ticks", "problem"), [(("√", "√"), "exactly one"), (("", ""), "exactly one"),
                                                (("x", ""), "tick with √")])
def test_the_mode_must_be_ticked_once_with_a_tick(tmp_path: Path, registry: Registry, ticks: tuple[str, str],
                                                  problem: str) -> None:
    path = tmp_path / "m.xlsx"
    cio.export_rows("matters", MATTERS[:1], path, registry)
    wb = openpyxl.load_workbook(path)
    wb.active["G6"], wb.active["H6"] = ticks
    wb.save(path)
    with pytest.raises(CatalogueImportError) as e:
        cio.import_rows("matters", path, registry)
    [p] = e.value.problems
    assert (p.row, p.column) == (6, "实施方式") and problem in p.message


# -- what import accepts ------------------------------------------------------------


def test_import_finds_the_header_below_title_lines_in_csv(tmp_path: Path, registry: Registry) -> None:
    lines = [["全面推行告知承诺制的证明事项清单"], ["部门名称：区公安分局（公章）", "", "填报人：", "联系电话："],
             list(cio.MATTER_COLUMNS), matter_line()]
    [row] = cio.import_rows("matters", write_csv(tmp_path / "m.csv", lines), registry)
    assert (row.handling_body, row.service_matter_name, row.service_matter_code) == (
        "gongan", "户口迁移登记", "370405-QR-0001")


def test_import_reads_xlsx_without_title_lines(tmp_path: Path, registry: Registry) -> None:
    lines: list[list[str | int]] = [list(cio.MATTER_COLUMNS), [2, *matter_line()[1:]]]
    [row] = cio.import_rows("matters", write_xlsx(tmp_path / "m.xlsx", lines), registry)
    assert row.seq == 2


def test_import_accepts_the_templates_wrapped_header_and_guidance_row(tmp_path: Path, registry: Registry) -> None:
    header = ["序号", "政务服务事项\n名称及编码", "证明事项名称", "设定依据", "承办\n机构", "开具\n单位", "实施方式",
              "核查方式", "备注"]
    guidance = ["", "按照省政务服务网或权力事项动态管理系统的规范要求填写事项名称和编码", "",
                "法律法规依据及具体实施依据（规章、规范性文件）", "", "", "", "", ""]
    path = write_xlsx(tmp_path / "m.xlsx", [header, guidance, matter_line()])  # type: ignore[list-item]
    assert len(cio.import_rows("matters", path, registry)) == 1


def test_bureaus_may_be_given_by_name_or_by_code(tmp_path: Path, registry: Registry) -> None:
    lines = [list(cio.ASSISTANCE_COLUMNS), item_line("1", "户籍核查", "区市场监管局", "gongan"),
             item_line("2", "婚姻核查", "shichang", "区民政局")]
    rows = cio.import_assistance(write_csv(tmp_path / "a.csv", lines), registry)
    assert [(r.handling_body, r.assisting_body) for r in rows] == [("shichang", "gongan"), ("shichang", "minzheng")]


def test_missing_xiezhu_columns_take_their_defaults(tmp_path: Path, registry: Registry) -> None:
    matters = cio.import_matters(write_csv(tmp_path / "m.csv", [list(cio.MATTER_COLUMNS), matter_line(序号="7")]),
                                 registry)
    assert (matters[0].code, matters[0].owner, matters[0].disclose_commitment, matters[0].domains) == (
        "ZM-gongan-0007", "gongan", False, [])
    lines = [list(cio.ASSISTANCE_COLUMNS), item_line("3", "户籍核查", "区市场监管局", "区公安分局")]
    [it] = cio.import_assistance(write_csv(tmp_path / "a.csv", lines), registry)
    assert (it.code, it.on_site, it.reply_within, it.decline_within, it.checks) == ("XZ-shichang-0003", False, 3, 2, [])


def test_csv_saved_by_excel_in_gb18030_is_read(tmp_path: Path, registry: Registry) -> None:
    path = write_csv(tmp_path / "m.csv", [list(cio.MATTER_COLUMNS), matter_line()], encoding="gb18030")
    assert cio.import_matters(path, registry)[0].certificate_name == "亲属关系证明"


# -- errors ------------------------------------------------------------------------


def test_a_bad_file_reports_every_bad_row_and_column_at_once(tmp_path: Path, registry: Registry) -> None:
    lines = [["全面推行告知承诺制的证明事项清单"], list(cio.MATTER_COLUMNS),
             matter_line(设定依据=""),                                  # row 3
             matter_line(序号="2"),                                    # row 4: fine
             matter_line(序号="3", 实施方式="自愿", 核查方式="电话核查"),  # row 5
             matter_line(序号="4", 承办机构="区不存在局", 政务服务事项名称及编码="户口迁移登记")]  # row 6
    with pytest.raises(CatalogueImportError) as e:
        cio.import_rows("matters", write_csv(tmp_path / "bad.csv", lines), registry)
    found = {(p.row, p.column) for p in e.value.problems}
    assert found == {(3, "设定依据"), (5, "实施方式"), (5, "核查方式"), (6, "承办机构"), (6, "政务服务事项名称及编码")}
    message = str(e.value)
    assert "bad.csv" in message and "nothing imported" in message
    assert "row 5, 核查方式: 电话核查 not one of" in message
    assert "row 6, 承办机构: unknown bureau '区不存在局'" in message
    assert e.value.code == "catalogue.import"
    # The clerk who filled in the sheet reads each problem in 中文 (the command line's default).
    zh = e.value.text("zh")
    assert "bad.csv" in zh and "有 5 处问题，未导入任何内容" in zh
    assert "第 5 行，核查方式：电话核查不在可选项" in zh
    assert "第 6 行，承办机构：没有名为 '区不存在局' 的单位" in zh
    assert "第 3 行，设定依据：必须填写" in zh
    assert all(p.message_zh for p in e.value.problems)


def test_a_bad_xlsx_row_is_reported_by_its_spreadsheet_row(tmp_path: Path, registry: Registry) -> None:
    path = tmp_path / "a.xlsx"
    bad = msgspec.structs.replace(ITEMS[0], code="XZ-0009", seq=9)
    cio.export_rows("assistance", [*ITEMS, bad], path, registry)
    wb = openpyxl.load_workbook(path)
    # Rows 1–5 are the head. 回复时限 of the third data row: longer than 三(二) allows.
    wb.active.cell(row=8, column=11, value=4)
    wb.active.cell(row=7, column=10, value="可能")  # 现场协助 of the second
    wb.save(path)
    with pytest.raises(CatalogueImportError) as e:
        cio.import_rows("assistance", path, registry)
    assert {(p.row, p.column) for p in e.value.problems} == {(8, "回复时限（工作日）"), (7, "现场协助")}


def test_duplicate_codes_and_seqs_in_a_file_are_reported(tmp_path: Path, registry: Registry) -> None:
    lines = [[*cio.MATTER_COLUMNS, "证明事项编码"], [*matter_line(), "ZM-1"], [*matter_line(序号="2"), "ZM-1"],
             [*matter_line(), "ZM-3"]]
    with pytest.raises(CatalogueImportError) as e:
        cio.import_rows("matters", write_csv(tmp_path / "m.csv", lines), registry)
    assert {(p.row, p.column) for p in e.value.problems} == {(3, "证明事项编码"), (4, "序号")}


def test_a_field_too_long_for_its_schema_is_reported_with_its_column(tmp_path: Path, registry: Registry) -> None:
    lines = [list(cio.MATTER_COLUMNS), matter_line(证明事项名称="证" * 501)]
    with pytest.raises(CatalogueImportError) as e:
        cio.import_rows("matters", write_csv(tmp_path / "m.csv", lines), registry)
    assert [(p.row, p.column) for p in e.value.problems] == [(2, "证明事项名称")]


def test_a_file_of_the_other_list_is_refused_naming_the_missing_columns(tmp_path: Path, registry: Registry) -> None:
    path = tmp_path / "a.csv"
    cio.export_rows("assistance", ITEMS, path, registry)
    with pytest.raises(CatalogueImportError, match="missing 证明事项名称"):
        cio.import_rows("matters", path, registry)


def test_an_unknown_column_is_refused(tmp_path: Path, registry: Registry) -> None:
    lines = [[*cio.MATTER_COLUMNS, "是否公开承诺"], [*matter_line(), "是"]]
    with pytest.raises(CatalogueImportError, match="是否公开承诺: unknown column"):
        cio.import_rows("matters", write_csv(tmp_path / "m.csv", lines), registry)


def test_a_file_without_a_header_is_refused(tmp_path: Path, registry: Registry) -> None:
    with pytest.raises(CatalogueImportError, match="no header row"):
        cio.import_rows("matters", write_csv(tmp_path / "m.csv", [["a", "b"], ["1", "2"]]), registry)


def test_a_file_that_is_not_a_workbook_is_refused(tmp_path: Path, registry: Registry) -> None:
    path = tmp_path / "m.xlsx"
    path.write_bytes(b"not a zip")
    with pytest.raises(CatalogueImportError, match="not an XLSX workbook"):
        cio.import_rows("matters", path, registry)
    with pytest.raises(CatalogueIOError, match=".ods"):
        cio.import_rows("matters", tmp_path / "m.ods", registry)


# -- import feeds the procedure, never the catalogue directly -------------------------------


def test_imported_rows_enter_the_catalogue_only_through_an_adjustment(tmp_path: Path, registry: Registry) -> None:
    reg = CatalogueRegistry(None, SimulatedClock(datetime(2026, 3, 2, 1, tzinfo=UTC)))
    path = tmp_path / "a.xlsx"
    cio.export_rows("assistance", ITEMS, path, registry)
    rows = cio.import_assistance(path, registry)
    assert reg.current("assistance") == []
    adj = reg.apply_adjustment("assistance", "shichang", "依据：台政办发〔2021〕2号", adds=rows)
    reg.review(adj, True)
    reg.publish("assistance")
    assert reg.current("assistance") == ITEMS


def test_an_imported_excluded_matter_is_still_refused_by_the_procedure(tmp_path: Path, registry: Registry) -> None:
    lines = [[*cio.MATTER_COLUMNS, "风险领域"], [*matter_line(), "公共安全"]]
    rows = cio.import_matters(write_csv(tmp_path / "m.csv", lines), registry)
    reg = CatalogueRegistry(None, SimulatedClock(datetime(2026, 3, 2, 1, tzinfo=UTC)))
    with pytest.raises(cat.Excluded):
        reg.apply_adjustment("matters", "gongan", "依据", adds=rows)
