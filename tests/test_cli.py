"""The command line as a person uses it: the demo, then read commands on the same data directory."""
from __future__ import annotations

import json
import os
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from schemas.letters import is_licence
from tests.conftest import DEMO_TIMEOUT, StoreLocations, copy_of_demo
from tests.helpers import clean_env
from tests.helpers import xiezhu as process
from tests.helpers import xiezhu_here as run
from xiezhu.demo_data import FLOWS

XIEZHU = [sys.executable, "-m", "xiezhu"]


@pytest.fixture(scope="module")
def demo_dir(demo_run: tuple[Path, dict[str, object]], tmp_path_factory: pytest.TempPathFactory
             ) -> tuple[Path, dict[str, object]]:
    """The session's demo, copied: these tests answer, adjust the catalogue and checkpoint."""
    return copy_of_demo(demo_run, tmp_path_factory.mktemp("demo-cli"))  # type: ignore[arg-type]


def test_demo_json_summary_has_the_promised_figures(demo_dir) -> None:  # type: ignore[no-untyped-def]
    _, s = demo_dir
    for key in ("requests", "replied", "declined", "pending", "rejected_messages", "ledger_events",
                "signatures_verified"):
        assert isinstance(s[key], int), key
    assert s["applications"] == 40 == sum(s["cases_by_outcome"].values())
    assert 0 < s["requests"] <= 40  # an applicant refused the commitment route needs no verification
    assert s["replied"] + s["declined"] + s["withdrawn"] + s["pending"] == s["requests"]
    # every request has an arrival record, the commitment cases add their own steps
    assert s["ledger_events"] > 2 * s["requests"] + s["replied"] + s["declined"]
    assert s["rejected_messages"] >= s["hostile_messages_sent"] - 1  # every hostile message was dead-lettered
    assert s["signatures_verified"] >= s["ledger_events"]
    # version 2 comes from the midway adjustment, version 3 from a dispute ruling (when a decline was disputed)
    assert s["catalogue_versions"] == {"matters": 1, "assistance": 3 if s["dispute"] else 2}
    assert s["dispute"] is None or s["dispute"]["status"] == "ruled"
    assert s["requests_refused_not_catalogued"] == 1 and s["catalogue_refused_excluded"] == 1


def test_read_commands_show_the_demo_data(demo_dir) -> None:  # type: ignore[no-untyped-def]
    data, s = demo_dir
    rows = json.loads(run("sla", "--json", data_dir=data).stdout)
    assert len(rows) == s["requests"]
    key, row = next(iter(rows.items()))
    assert key == f"{row['requester']}/{row['number']}"
    assert sum(r["status"] == "declined" for r in rows.values()) == s["declined"]
    # --data-dir overrides the environment
    again = json.loads(run("--data-dir", str(data), "sla", "--json", "--state", "replied").stdout)
    assert len(again) == s["replied"]


def test_an_operator_answers_from_the_inbox(demo_dir) -> None:  # type: ignore[no-untyped-def]
    data, _ = demo_dir
    waiting = []
    for code in ("ziran", "minzheng", "gongan", "shichang", "renshe", "wenlv"):
        waiting += [(code, w) for w in json.loads(run("inbox", "--bureau", code, "--json", data_dir=data).stdout)]
    assert waiting, "the demo left no request open for an operator: pick another seed above"
    code, first = waiting[0]
    assert "*" in first["id_number"] and "*" in first["applicant"]  # personal data is masked
    items = [f"{i['no']}=true" for i in first["items"]]
    args = ["answer", first["number"], "--bureau", code, "--from", first["requester"], "--operator", "王伟"]
    for item in items:
        args += ["--item", item]
    run(*args, data_dir=data)
    left = json.loads(run("inbox", "--bureau", code, "--json", data_dir=data).stdout)
    assert first["number"] not in [w["number"] for w in left if w["requester"] == first["requester"]]


@pytest.mark.parametrize("args", [
    ["inbox", "--bureau", "nope"],
    ["answer", "20269999", "--bureau", "ziran", "--item", "1=true"],
    ["sla", "--bureau", "nope"],
    # A PostgreSQL that cannot be reached (nothing listens on port 1): the ledger, or a bureau's store.
    ["--database-url", "postgresql://xiezhu@127.0.0.1:1/none", "sla"],
    ["--database-url", "postgresql://xiezhu@127.0.0.1:1/none", "inbox", "--bureau", "gongan"],
])
def test_a_mistake_is_one_clear_line_and_exit_1(demo_dir, args: list[str]) -> None:  # type: ignore[no-untyped-def]
    data, _ = demo_dir
    proc = run(*args, data_dir=data, check=False)
    assert proc.returncode == 1
    assert "Traceback" not in proc.stderr and proc.stderr.startswith("错误：")
    assert len(proc.stderr.strip().splitlines()) <= 2


def test_a_bad_item_answer_changes_nothing(demo_dir) -> None:  # type: ignore[no-untyped-def]
    data, _ = demo_dir
    before = (data / "bureaus" / "ziran" / "events.db").stat().st_mtime_ns
    proc = run("answer", "20260001", "--bureau", "ziran", "--item", "1=maybe", data_dir=data, check=False)
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    assert "1=maybe" in proc.stderr
    assert (data / "bureaus" / "ziran" / "events.db").stat().st_mtime_ns == before


def test_unknown_options_get_usage_help_not_a_traceback() -> None:
    proc = process("agent", "--bureua", "gongan", check=False)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr and "--bureau" in proc.stderr


def test_the_demo_never_wipes_a_directory_it_did_not_make(tmp_path: Path) -> None:
    precious = tmp_path / "ledger.db"
    precious.write_text("a bureau's real data")
    proc = run("demo", "--json", "--requests", "5", data_dir=tmp_path, check=False)
    assert proc.returncode == 1 and "不属于演示的数据" in proc.stderr
    assert precious.read_text() == "a bureau's real data"


def test_json_is_a_list_of_objects_or_the_shape_the_readme_names(demo_dir, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """Issue 16, point 5: one shape per kind of command, and the README says which is which."""
    import re

    data, _ = demo_dir
    sla = json.loads(_in_process(data, "sla", "--json")[0])
    first = next(iter(sla.values()))
    case = next(iter(json.loads(_in_process(data, "cases", "--json")[0]).values()))
    listing = [("bureaus",), ("catalogue", "show"), ("catalogue", "versions"), ("catalogue", "adjustments"),
               ("sla", "stats"), ("credit", "outbox"), ("disclosed",), ("inbox", "--bureau", first["assistor"]),
               ("access-log",), ("tokens", "list"), ("users", "list"),
               ("letter", first["number"], "--from", first["requester"], "--out", str(tmp_path / "letters"))]
    keyed = [("sla",), ("cases",), ("dispute", "list")]
    one = [("history", first["number"], "--from", first["requester"]),
           ("replay", first["number"], "--from", first["requester"]), ("case", "show", case["number"], "--bureau",
                                                                        case["bureau"]),
           ("report", "--from", "2026-09-01", "--to", "2026-09-30"), ("calendar", "due", "--from", "2026-09-30T10:00",
                                                                     "--working-days", "3"),
           ("keys", "list"), ("alerts", "list", "--bureau", "gongan"), ("outbox",),
           ("credit", "show", "370405199001011234"), ("records", "show", "--bureau", "gongan", "--kind", "residents")]
    for args in listing:
        rows = json.loads(_in_process(data, *args, "--json")[0])
        assert isinstance(rows, list) and all(isinstance(r, dict) for r in rows), args
    for args in keyed:
        rows = json.loads(_in_process(data, *args, "--json")[0])
        assert isinstance(rows, dict) and all(re.fullmatch(r"[a-z]+/C?\d{8}", k) and isinstance(v, dict)
                                              for k, v in rows.items()), args
    for args in one:
        assert isinstance(json.loads(_in_process(data, *args, "--json")[0]), dict), args
    readme = (Path(__file__).parents[1] / "README.md").read_text(encoding="utf-8")
    said = readme[readme.index("`--json` prints a list of objects"):]
    said = said[:said.index("| command |")]
    for args in keyed + one:
        name = " ".join(a for a in args[:2] if not re.search(r"\d|^-", a))
        assert f"`{name}`" in said, name


def test_catalogue_show_has_the_notes_and_export_fills_in_the_department_line(  # type: ignore[no-untyped-def]
        demo_dir, tmp_path: Path) -> None:
    import openpyxl

    data, _ = demo_dir
    shown = run("catalogue", "show", "--kind", "matters", data_dir=data).stdout
    assert "备注" in shown and "实施方式" in shown
    sheet = tmp_path / "shenpi-附件8.xlsx"
    run("catalogue", "export", "--kind", "matters", "--bureau", "shenpi", "--filler", "王五", "--phone", "6611111",
        str(sheet), data_dir=data)
    ws = openpyxl.load_workbook(sheet).active
    line2 = [c.value for c in ws[2] if c.value]
    assert line2 == ["部门名称：区审批服务局（公章）", "填报人：王五", "联系电话：6611111"]
    assert [ws["G4"].value, ws["H4"].value] == ["必须实行", "可选择"]


def test_a_bureau_adjusts_its_catalogue_rows_from_its_spreadsheet(demo_dir, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """Export its 附件9 sheet, shorten a time limit (第十一条), apply; 区司法局 reviews and publishes a new version."""
    data, _ = demo_dir
    sheet = tmp_path / "shenpi-附件9.csv"
    run("catalogue", "export", "--kind", "assistance", "--bureau", "shenpi", str(sheet), data_dir=data)
    lines = sheet.read_text(encoding="utf-8-sig").splitlines()
    header, first = lines[0].split(","), lines[1].split(",")
    first[header.index("回复时限（工作日）")] = "2"
    sheet.write_text("\n".join([lines[0], ",".join(first), *lines[2:]]) + "\n", encoding="utf-8")
    applied = run("catalogue", "apply", "--kind", "assistance", "--bureau", "shenpi", "--basis",
                  "根据核查工作量调整回复时限", str(sheet), data_dir=data)
    assert "修改 1 项" in applied.stderr
    pending = json.loads(run("catalogue", "adjustments", "--json", data_dir=data).stdout)
    [adj] = [a for a in pending if a["status"] == "pending"]
    run("catalogue", "review", adj["id"], "--approve", data_dir=data)
    run("catalogue", "publish", "--kind", "assistance", data_dir=data)
    versions = json.loads(run("catalogue", "versions", "--kind", "assistance", "--json", data_dir=data).stdout)
    assert (versions[-1]["version"], versions[-1]["published_by"]) == (3, "sifa")
    assert versions[-1]["filed_with"] == ""  # 一(四)'s 报市司法局备案 is the 证明事项清单's (decision 51)
    latest = json.loads(run("catalogue", "show", "--kind", "assistance", "--json", data_dir=data).stdout)
    first_code = first[header.index("事项编码")]
    assert next(r for r in latest if r["code"] == first_code)["reply_within"] == 2
    earlier = json.loads(run("catalogue", "show", "--kind", "assistance", "--version", "1", "--json",
                             data_dir=data).stdout)
    assert next(r for r in earlier if r["code"] == first_code).get("reply_within", 3) == 3


def test_a_rejection_without_reasons_is_refused(demo_dir, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    data, _ = demo_dir
    sheet = tmp_path / "jiaoti.csv"
    run("catalogue", "export", "--kind", "assistance", "--bureau", "jiaoti", str(sheet), data_dir=data)
    sheet.write_text(sheet.read_text(encoding="utf-8-sig").replace("无犯罪记录核查", "无犯罪记录及奖惩情况核查"),
                     encoding="utf-8")
    run("catalogue", "apply", "--kind", "assistance", "--bureau", "jiaoti", "--basis", "增加核查内容", str(sheet),
        data_dir=data)
    [adj] = [a for a in json.loads(run("catalogue", "adjustments", "--json", data_dir=data).stdout)
             if a["applicant"] == "jiaoti" and a["status"] == "pending"]
    proc = run("catalogue", "review", adj["id"], "--reject", data_dir=data, check=False)
    assert proc.returncode == 1 and proc.stderr.startswith("错误：") and "Traceback" not in proc.stderr
    run("catalogue", "review", adj["id"], "--reject", "--reasons", "核查内容超出证明事项范围", data_dir=data)


def test_commitment_cases_are_listed_by_outcome(demo_dir) -> None:  # type: ignore[no-untyped-def]
    data, s = demo_dir
    rows = json.loads(run("cases", "--json", data_dir=data).stdout)
    assert len(rows) == s["applications"]
    from collections import Counter

    assert Counter(r["outcome"] for r in rows.values()) == Counter(s["cases_by_outcome"])


def test_a_case_history_and_its_letters_come_from_the_ledger(demo_dir, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    data, _ = demo_dir
    rows = json.loads(run("sla", "--json", data_dir=data).stdout)
    replied = next(r for r in rows.values() if r["status"] == "replied")
    h = json.loads(run("history", replied["number"], "--from", replied["requester"], "--json", data_dir=data).stdout)
    assert h["kind"] == "assistance" and [line["type"] for line in h["lines"]][:2] == [
        "assistance.requested", "assistance.received"]
    assert any("第十条" in f for f in h["findings"])
    text = run("letter", replied["number"], "--from", replied["requester"], data_dir=data).stdout
    assert f"（编号：{replied['number']}）" in text and "行政协助函" in text and "行政协助回复函" in text
    cases = json.loads(run("cases", "--json", data_dir=data).stdout)
    signed = next(c for c in cases.values() if c["status"] in ("closed", "approved", "revoked"))
    run("letter", signed["number"], "--from", signed["bureau"], "--out", str(tmp_path / "letters"), data_dir=data)
    written = sorted(p.name for p in (tmp_path / "letters").iterdir())
    assert f"{signed['number']}-承诺告知书.txt" in written and f"{signed['number']}-申请人承诺书.txt" in written
    assert "承诺告知书" in (tmp_path / "letters" / f"{signed['number']}-承诺告知书.txt").read_text(encoding="utf-8")


def test_letters_as_docx_and_pdf_with_chinese_names_including_the_consequence_notices(  # type: ignore[no-untyped-def]
        demo_dir, tmp_path: Path) -> None:
    data, _ = demo_dir
    cases = json.loads(run("cases", "--json", data_dir=data).stdout)
    # A licence's revocation has two notices; another decision's (a 行政给付's) one, with no 证件 to hand back.
    licences = {f.matter_name for f in FLOWS if is_licence(f.matter_code)}
    revoked = next(c for c in cases.values() if c["status"] == "revoked" and c["matter"] in licences)
    other = next((c for c in cases.values() if c["status"] == "revoked" and c["matter"] not in licences), None)
    if other is not None:
        files = json.loads(run("letter", other["number"], "--from", other["bureau"], "--format", "txt", "--out",
                               str(tmp_path / "other"), "--json", data_dir=data).stdout)
        kinds = [f["kind"] for f in files]
        assert "撤销决定书" in kinds and "交回行政许可证件通知书" not in kinds, kinds
    out = tmp_path / "docx"
    files = json.loads(run("letter", revoked["number"], "--from", revoked["bureau"], "--format", "docx", "--out",
                           str(out), "--json", data_dir=data).stdout)
    names = [Path(f["file"]).name for f in files]
    n = revoked["number"]
    assert names[:2] == [f"{n}-承诺告知书.docx", f"{n}-申请人承诺书.docx"]
    assert f"{n}-撤销行政许可决定书.docx" in names and f"{n}-交回行政许可证件通知书.docx" in names
    assert {f["type"] for f in files} >= {"letter.notice", "letter.commitment", "letter.consequence"}
    assert sorted(p.name for p in out.iterdir()) == sorted(names)
    rows = json.loads(run("sla", "--json", data_dir=data).stdout)
    replied = next(r for r in rows.values() if r["status"] == "replied")
    pdfs = json.loads(run("letter", replied["number"], "--from", replied["requester"], "--format", "pdf", "--out",
                          str(tmp_path / "pdf"), "--json", data_dir=data).stdout)
    assert Path(pdfs[0]["file"]).name == f"{replied['number']}-行政协助函（一）.pdf"
    assert all(Path(f["file"]).read_bytes().startswith(b"%PDF-") for f in pdfs)
    bad = run("letter", replied["number"], "--from", replied["requester"], "--format", "odt", data_dir=data,
              check=False)
    assert bad.returncode == 1 and "--format 应为 txt、docx、pdf 之一" in bad.stderr


def test_every_kind_of_letter_the_demo_made_is_written_as_text_and_docx(demo_dir, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """`xiezhu letter NUMBER --format txt|docx --out DIR` for one case of each kind (PDF: the test above)."""
    data, _ = demo_dir
    rows = json.loads(_in_process(data, "sla", "--json")[0]).values()
    cases = json.loads(_in_process(data, "cases", "--json")[0]).values()
    picked = {(r["status"], r["channel"]): (r["number"], r["requester"]) for r in rows}
    picked |= {c["outcome"]: (c["number"], c["bureau"]) for c in cases}
    kinds: set[str] = set()
    for fmt in ("txt", "docx"):
        for number, bureau in picked.values():
            out = tmp_path / fmt / number
            files = json.loads(_in_process(data, "letter", number, "--from", bureau, "--format", fmt, "--out",
                                           str(out), "--json")[0])
            assert sorted(p.name for p in out.iterdir()) == sorted(Path(f["file"]).name for f in files)
            for f in files:
                assert Path(f["file"]).name == f"{f['number'] or number}-{f['kind']}.{fmt}"
                kinds.add(f["kind"])
    # (the written decline and 责令限期整改, which this demo has none of: test_front_door, test_documents)
    assert kinds >= {"行政协助函（一）", "行政协助函（二）", "行政协助回复函", "承诺告知书", "申请人承诺书",
                     "终止办理通知书", "撤销行政许可决定书", "交回行政许可证件通知书"}


def test_a_bureau_handles_credit_repair_from_the_command_line(demo_dir) -> None:  # type: ignore[no-untyped-def]
    data, _ = demo_dir
    cases = json.loads(run("cases", "--json", data_dir=data).stdout)
    recorded = next(c for c in cases.values() if "credit-recorded" in c["outcome"] and
                    "rectification-ordered" not in c["outcome"])
    bureau, number = recorded["bureau"], recorded["number"]
    early = run("credit", "approve-repair", number, "--bureau", bureau, "--reasons", "整改到位", data_dir=data,
                check=False)
    assert early.returncode == 1 and early.stderr.startswith("错误：")  # nothing applied for yet
    run("credit", "repair", number, "--bureau", bureau, "--evidence", "已补交相关证明材料", data_dir=data)
    done = run("credit", "approve-repair", number, "--bureau", bureau, "--reasons", "整改到位", data_dir=data)
    assert "已信用修复" in done.stderr


def test_the_audit_walks_the_demo_ledger_and_finds_a_flipped_byte(demo_dir, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    import shutil
    import sqlite3

    data, _ = demo_dir
    report = json.loads(run("audit", "--json", data_dir=data).stdout)
    assert report["ok"] and report["entries"] == report["signatures_verified"] > 0
    copy = tmp_path / "copy"
    shutil.copytree(data, copy)
    db = sqlite3.connect(copy / "ledger" / "ledger.db")
    body = bytearray(db.execute("SELECT body FROM entries WHERE pos = 10").fetchone()[0])
    body[-3] ^= 1
    db.execute("UPDATE entries SET body = ? WHERE pos = 10", (bytes(body),))
    db.commit()
    db.close()
    bad = run("audit", "--json", data_dir=copy, check=False)
    assert bad.returncode == 1
    assert json.loads(bad.stdout)["first_problem"]["position"] == 10


async def test_the_demo_runs_its_embedded_server_with_one_nkey_user_per_bureau(  # type: ignore[no-untyped-def]
        demo_dir, tmp_path: Path) -> None:
    """Seeds per bureau (plus ledger, admin and the checkpoint signer) with mode 0600;
    a server config that refuses strangers."""
    import nats
    import nats.errors

    from aggregates.registry import Registry
    from broker.auth import ADMIN, LEDGER, SIGNER, credentials_in
    from broker.server import EmbeddedNats
    from xiezhu.settings import Settings

    settings = Settings(data_dir=demo_dir[0])
    seeds = {p.stem: p.stat().st_mode & 0o777 for p in settings.nats_keys_dir.glob("*.nk")}
    assert seeds == {name: 0o600 for name in [*Registry.load().codes(), LEDGER, ADMIN, SIGNER]}
    assert settings.nats_keys_dir.stat().st_mode & 0o077 == 0
    conf = settings.nats_auth_config.read_text()
    assert "authorization {" in conf and "sync_interval" in conf
    assert not any(p.read_text().strip() in conf for p in settings.nats_keys_dir.glob("*.nk"))  # public keys only
    with EmbeddedNats(tmp_path / "nats", config_file=settings.nats_auth_config) as server:
        with pytest.raises(nats.errors.Error, match="(?i)authorization violation"):
            await nats.connect(server.url, allow_reconnect=False)
        nc = await nats.connect(server.url, allow_reconnect=False, **credentials_in(settings.nats_keys_dir, ADMIN))
        await nc.close()


def test_a_bundle_verifies_against_the_root_signed_trust_list_and_an_edited_list_is_refused(  # type: ignore[no-untyped-def]
        demo_dir, tmp_path: Path) -> None:
    data, _ = demo_dir
    rows = json.loads(run("sla", "--json", data_dir=data).stdout)
    replied = next(r for r in rows.values() if r["status"] == "replied")
    run("seal", data_dir=data)
    bundle = tmp_path / "case.zip"
    run("replay", replied["number"], "--from", replied["requester"], "--bundle", str(bundle), data_dir=data)
    keys = data / "keys"
    ok = run("verify-bundle", str(bundle), "--trust", str(keys / "trust.json"), "--anchor", str(keys / "root.pub"),
             data_dir=data)
    assert "核验通过" in ok.stdout
    edited = json.loads((keys / "trust.json").read_text())
    edited["entries"][0]["revoked_reason"] = "edited afterwards"
    (tmp_path / "trust.json").write_text(json.dumps(edited))
    bad = run("verify-bundle", str(bundle), "--trust", str(tmp_path / "trust.json"), "--anchor",
              str(keys / "root.pub"), data_dir=data, check=False)
    assert bad.returncode == 1 and "文件被改动过" in bad.stderr


def test_report_and_sla_exports_for_a_person_with_a_spreadsheet(demo_dir, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    import openpyxl

    data, _ = demo_dir
    rep = json.loads(run("report", "--from", "2026-09-01", "--to", "2026-09-30", data_dir=data).stdout)
    stats = json.loads(run("sla", "stats", "--from", "2026-09-01", "--to", "2026-09-30", "--json",
                           data_dir=data).stdout)
    assert [(a["bureau"], a["received"], a["breaches"]) for a in rep["assistance"]] == [
        (s["bureau"], s["received"], s["breaches"]) for s in stats]
    cases = json.loads(run("cases", "--json", data_dir=data).stdout)
    assert sum(c["applications"] for c in rep["commitment_totals"]) == sum(
        1 for c in cases.values() if "2026-09-01" <= c["applied_on"] <= "2026-09-30")
    assert all(a["bureau_name"].startswith(("区", "运河", "涧头", "邳庄", "张山子", "泥沟", "马兰屯"))
               for a in rep["assistance"])
    xlsx = tmp_path / "report.xlsx"
    run("report", "--from", "2026-09-01", "--to", "2026-09-30", "--format", "xlsx", "--out", str(xlsx), data_dir=data)
    assert openpyxl.load_workbook(xlsx).sheetnames[:4] == ["告知承诺", "行政协助", "行政协助（按事项）", "逾期"]
    pdf = tmp_path / "report.pdf"
    run("report", "--from", "2026-09-01", "--to", "2026-09-30", "--format", "pdf", "--out", str(pdf), data_dir=data)
    assert pdf.read_bytes().startswith(b"%PDF-")
    bad = run("report", "--from", "2026-09-30", "--to", "2026-09-01", data_dir=data, check=False)
    assert bad.returncode == 1 and "晚于结束日" in bad.stderr
    text = run("sla", "--csv", "-", data_dir=data).stdout
    header = text.lstrip("\ufeff").splitlines()[0].split(",")
    assert header[:3] == ["文号", "请求部门", "协助部门"] and "时限状态" in header
    rows = json.loads(run("sla", "--json", data_dir=data).stdout)
    assert len(text.strip().splitlines()) == 1 + len(rows)
    sheet = tmp_path / "stats.xlsx"
    run("sla", "stats", "--xlsx", str(sheet), data_dir=data)
    ws = openpyxl.load_workbook(sheet).active
    assert ws["A2"].value == "部门" and ws["A3"].value.startswith("区")
    # The other two: every request as a sheet, the statistics as CSV (the bureau's code last, for machines).
    sheet = tmp_path / "sla.xlsx"
    run("sla", "--xlsx", str(sheet), data_dir=data)
    ws = openpyxl.load_workbook(sheet).active
    assert ws["A1"].value.startswith("行政协助时限情况")
    assert [c.value for c in ws[2]][:3] == ["文号", "请求部门", "协助部门"]
    assert ws.max_row == 2 + len(rows) and {ws.cell(r, 1).value for r in range(3, ws.max_row + 1)} == {
        r["number"] for r in rows.values()}
    text = run("sla", "stats", "--from", "2026-09-01", "--to", "2026-09-30", "--csv", "-", data_dir=data).stdout
    lines = text.lstrip("\ufeff").splitlines()
    assert lines[0].startswith("部门,发出,收到") and len(lines) == 1 + len(stats)
    assert [line.split(",")[-1] for line in lines[1:]] == [s["bureau"] for s in stats]


def _rows_of(text: str) -> list[list[str]]:
    """The cells of a rich table's body lines (continuation lines included)."""
    return [[c.strip() for c in line.split("│")[1:-1]] for line in text.splitlines() if line.startswith("│")]


def test_tables_read_at_80_columns_and_whole_when_redirected(demo_dir) -> None:  # type: ignore[no-untyped-def]
    from rich.text import Text

    data, _ = demo_dir
    rows = json.loads(run("sla", "--json", data_dir=data).stdout)
    inbox_bureau = next(r["assistor"] for r in rows.values() if r["status"] == "received")
    waiting = json.loads(run("inbox", "--bureau", inbox_bureau, "--json", data_dir=data).stdout)
    for args in (["sla"], ["sla", "stats"], ["inbox", "--bureau", inbox_bureau], ["catalogue", "show"],
                 ["catalogue", "show", "--kind", "matters"], ["cases"]):
        text = run(*args, env=clean_env(data, COLUMNS="80")).stdout
        assert max(Text(line).cell_len for line in text.splitlines()) <= 80, args
        assert "…" not in text, args
    sla80 = _rows_of(run("sla", env=clean_env(data, COLUMNS="80")).stdout)
    numbers = [cells[0] for cells in sla80 if cells[0]]
    assert sorted(numbers) == sorted(r["number"] for r in rows.values())  # every number whole, once a row
    pairs = [(cells[0], cells[1]) for cells in sla80 if cells[0]]
    assert len(set(pairs)) == len(pairs)  # number and parties tell every row apart
    inbox80 = _rows_of(run("inbox", "--bureau", inbox_bureau, env=clean_env(data, COLUMNS="80")).stdout)
    assert sorted(c[0] for c in inbox80 if c[0]) == sorted(w["number"] for w in waiting)
    from aggregates.registry import Registry

    reg = Registry.load()
    for kind in ("assistance", "matters"):  # 序号 and 承办机构 (its 简称 at 80 columns) whole on each row
        listed = json.loads(run("catalogue", "show", "--kind", kind, "--json", data_dir=data).stdout)
        shown = _rows_of(run("catalogue", "show", "--kind", kind, env=clean_env(data, COLUMNS="80")).stdout)
        assert sorted((c[0], c[3]) for c in shown if c[0]) == sorted(
            (str(r["seq"]), reg.short(r["handling_body"])) for r in listed), kind
    # Redirected, with no COLUMNS: full width, every cell whole.
    text = process("sla", env={k: v for k, v in clean_env(data).items() if k != "COLUMNS"}).stdout
    longest = max((r["matter"] for r in rows.values()), key=len)
    assert longest in text and "区审批服务局 → " in text and "…" not in text


def test_people_read_chinese_and_name_bureaus_as_they_know_them(demo_dir) -> None:  # type: ignore[no-untyped-def]
    data, _ = demo_dir
    table = run("sla", "--bureau", "公安", data_dir=data).stdout
    assert "区公安分局" in table and "已按期答复" in table and "gongan" not in table
    assert json.loads(run("sla", "--bureau", "区公安分局", "--json", data_dir=data).stdout) == json.loads(
        run("sla", "--bureau", "gongan", "--json", data_dir=data).stdout)
    english = run("--lang", "en", "sla", "--bureau", "gongan", data_dir=data).stdout
    assert "answered-on-time" in english and "gongan" in english
    ambiguous = run("cases", "--bureau", "镇人民政府", data_dir=data, check=False)
    assert ambiguous.returncode == 1 and ambiguous.stderr.startswith("错误：") and "zhangshanzi" in ambiguous.stderr
    cases = json.loads(run("cases", "--json", data_dir=data).stdout)
    approved = next(c for c in cases.values() if c["bureau"] == "shenpi" and c["status"] in ("closed", "revoked"))
    h = json.loads(run("history", approved["number"], "--from", "shenpi", "--json", data_dir=data).stdout)
    assert any(f"台审批许〔2026〕{approved['number'][-4:]}号" in line["summary"] for line in h["lines"])


def test_the_front_doors_help_examples_run_on_the_demos_data(demo_dir) -> None:  # type: ignore[no-untyped-def]
    """The --help example of the clerk's and the front door's commands works on the demo's data as printed."""
    import re
    import shlex

    from xiezhu.cli import clerk as cli_clerk
    from xiezhu.cli import front as cli_front

    data, _ = demo_dir
    for command in (cli_clerk.case_open, cli_clerk.request, cli_front.records_show, cli_front.outbox,
                    cli_front.tokens_list):
        found = re.search(r"Example: \[bold\](.*?)\[/\]", " ".join((command.__doc__ or "").split()))
        assert found, command.__name__
        args = shlex.split(found.group(1))
        assert args[0] == "xiezhu"
        proc = run(*args[1:], data_dir=data, check=False)
        assert proc.returncode == 0, (found.group(1), proc.stderr)


# -- a read-only copy of a data directory (issue 15, point 7) -----------------------------------


@pytest.mark.skipif(shutil.which("setpriv") is None, reason="setpriv (util-linux) is needed to drop write access")
def test_read_commands_work_on_a_read_only_copy_of_a_data_directory(  # type: ignore[no-untyped-def]
        demo_dir, tmp_path: Path) -> None:
    """As root, files without write bits are still writable; without CAP_DAC_OVERRIDE they are not."""
    archive = tmp_path / "archive"
    shutil.copytree(demo_dir[0], archive, ignore=shutil.ignore_patterns("*.lock", "nats"))
    for path in [archive, *archive.rglob("*")]:
        path.chmod(path.stat().st_mode & ~0o222)
    env = {k: v for k, v in os.environ.items() if not k.startswith("XIEZHU_")}
    env |= {"XIEZHU_DATA_DIR": str(archive), "COLUMNS": "200"}

    def read(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(["setpriv", "--bounding-set=-dac_override,-fowner", *XIEZHU, *args],
                              capture_output=True, text=True, env=env, timeout=240)

    try:
        probe = read("bureaus")
        assert probe.returncode == 0, probe.stderr
        before = {p: p.stat().st_mtime_ns for p in archive.rglob("*")}
        for args in (["audit", "--json"], ["sla"], ["cases"], ["credit", "outbox"], ["inbox", "--bureau", "ziran"]):
            result = read(*args)
            assert result.returncode == 0, f"xiezhu {' '.join(args)}: {result.stderr}"
            assert "Traceback" not in result.stderr
        assert {p: p.stat().st_mtime_ns for p in archive.rglob("*")} == before  # nothing written
    finally:
        for path in [archive, *archive.rglob("*")]:
            path.chmod(path.stat().st_mode | 0o200)


def test_a_command_that_must_write_on_a_read_only_copy_says_so_in_one_line(  # type: ignore[no-untyped-def]
        demo_dir, tmp_path: Path) -> None:
    if shutil.which("setpriv") is None:
        pytest.skip("setpriv (util-linux) is needed to drop write access")
    archive = tmp_path / "archive"
    shutil.copytree(demo_dir[0], archive, ignore=shutil.ignore_patterns("*.lock", "nats"))
    for path in [archive, *archive.rglob("*")]:
        path.chmod(path.stat().st_mode & ~0o222)
    env = {k: v for k, v in os.environ.items() if not k.startswith("XIEZHU_")}
    env |= {"XIEZHU_DATA_DIR": str(archive)}
    try:
        result = subprocess.run(["setpriv", "--bounding-set=-dac_override,-fowner", *XIEZHU, "projections",
                                 "rebuild"], capture_output=True, text=True, env=env, timeout=240)
        assert result.returncode == 1 and "Traceback" not in result.stderr
        assert result.stderr.startswith("错误：") and len(result.stderr.strip().splitlines()) <= 2, result.stderr
    finally:
        for path in [archive, *archive.rglob("*")]:
            path.chmod(path.stat().st_mode | 0o200)


# -- damaged files (issue 15, point 9) ---------------------------------------------------------------


def test_a_damaged_view_is_rebuilt_by_projections_rebuild(demo_dir, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    copy = tmp_path / "copy"
    shutil.copytree(demo_dir[0], copy, ignore=shutil.ignore_patterns("*.lock"))
    sla = copy / "projections" / "sla.db"
    with open(sla, "r+b") as f:  # the header page overwritten: SQLite no longer knows the file
        f.write(b"\x5a" * 4096)
    broken = run("sla", data_dir=copy, check=False)
    assert broken.returncode == 1 and broken.stderr.startswith("错误：数据文件已损坏"), broken.stderr
    rebuilt = run("projections", "rebuild", data_dir=copy, check=False)
    assert rebuilt.returncode == 0, rebuilt.stderr
    assert "已移至 sla.db.damaged" in rebuilt.stderr
    assert run("sla", "--json", data_dir=copy).stdout == run("sla", "--json", data_dir=demo_dir[0]).stdout


def test_a_ledger_damaged_mid_file_makes_replay_and_sla_fail_clearly(demo_dir, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    copy = tmp_path / "copy"
    shutil.copytree(demo_dir[0], copy, ignore=shutil.ignore_patterns("*.lock"))
    db = sqlite3.connect(copy / "ledger" / "ledger.db")
    pos, number, sender = db.execute("SELECT pos, number, sender FROM entries WHERE type = 'assistance.requested' "
                                      "ORDER BY pos LIMIT 1 OFFSET 3").fetchone()
    body = bytearray(db.execute("SELECT body FROM entries WHERE pos = ?", (pos,)).fetchone()[0])
    body[len(body) // 2] ^= 1
    db.execute("UPDATE entries SET body = ? WHERE pos = ?", (bytes(body), pos))
    db.commit()
    db.close()
    replay = run("replay", number, "--from", sender, data_dir=copy, check=False)
    assert replay.returncode == 1, replay.stdout
    assert replay.stderr.startswith(f"错误：账本在位置 {pos} 处已损坏"), replay.stderr
    for view in (copy / "projections").glob("sla.db*"):  # a view built from the ledger now reads it all
        view.unlink()
    sla = run("sla", data_dir=copy, check=False)
    assert sla.returncode == 1 and f"账本在位置 {pos} 处已损坏" in sla.stderr, sla.stderr



def _in_process(data: Path, *args: str, columns: str = "200") -> tuple[str, str, str]:
    """``xiezhu ARGS`` in this process (faster than a process each): stdout, stderr, and the error if any."""
    from tests.helpers import cli
    from xiezhu.cli import app

    r = cli(app, *args, data_dir=data, env={"COLUMNS": columns, "XIEZHU_OPERATOR": "王伟"})
    if r.exception is not None and not isinstance(r.exception, SystemExit):
        return r.stdout, r.stderr, str(r.exception)
    assert r.exit_code == 0, r.output
    return r.stdout, r.stderr, ""


def test_the_district_government_criticises_a_late_bureau_from_the_command_line(demo_dir) -> None:  # type: ignore[no-untyped-def]
    """附件2 第十二条: 区政府办公室 signs the criticism of a bureau for a request it answered late or not at all."""
    data, _ = demo_dir
    rows = json.loads(_in_process(data, "sla", "--json")[0])
    key, late = next((k, r) for k, r in rows.items() if r["state"] in ("overdue", "answered-late", "declined-late"))
    other = next(k for k, r in rows.items() if late["assistor"] not in (r["requester"], r["assistor"]))
    criticise = ("government", "criticise", late["assistor"], "--reasons", "逾期未答复行政协助请求")
    assert "neither the requester nor the assistor" in _in_process(
        data, *criticise, "--request", other, "--correct-by", "2099-01-10")[2]
    assert "already past" in _in_process(data, *criticise, "--request", key, "--correct-by", "2020-01-10")[2]
    _, said, error = _in_process(data, *criticise, "--request", key, "--correct-by", "2099-01-10")
    assert not error and "第十二条：区政府对" in said and "已排队" in said
    [waiting] = json.loads(_in_process(data, "outbox", "--bureau", "zhengfuban", "--json")[0])["waiting"]
    assert (waiting["type"], waiting["to"], waiting["number"]) == ("notice.criticism", late["assistor"],
                                                                   late["number"])


def test_disclosed_commitments_are_listed_for_publication_masked(demo_dir, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """二(四): the signed commitments of disclosed matters, as a table, JSON, CSV and XLSX, names masked."""
    from openpyxl import load_workbook
    from rich.text import Text

    data, _ = demo_dir
    listed = json.loads(_in_process(data, "disclosed", "--json")[0])
    assert listed and all(r["applicant"].endswith("*") and "*" in r["id_number"] and r["commitments"]
                          for r in listed)
    csv_text = _in_process(data, "disclosed", "--csv", "-")[0]
    assert csv_text.splitlines()[0].lstrip("\ufeff").startswith("序号,承办部门,政务服务事项,案件编号,申请人")
    assert len(csv_text.splitlines()) == len(listed) + 1 and listed[0]["id_number"] in csv_text
    _in_process(data, "disclosed", "--xlsx", str(tmp_path / "公开目录.xlsx"))
    sheet = load_workbook(tmp_path / "公开目录.xlsx").active
    assert sheet is not None and sheet.max_row == len(listed) + 2  # title, header, one row a commitment
    text = _in_process(data, "disclosed", columns="80")[0]
    assert max(Text(line).cell_len for line in text.splitlines()) <= 80 and "…" not in text
    assert all(r["number"] in text for r in listed)



def test_dispute_decide_is_the_district_governments_and_reads_the_ledger(demo_dir) -> None:  # type: ignore[no-untyped-def]
    """第八条: `dispute decide` acts as 区政府办公室 on a dispute the ledger holds (the whole path: test_government)."""
    data, _ = demo_dir
    _, _, error = _in_process(data, "dispute", "decide", "D20269999", "--from", "shenpi", "--decision", "由原机构核查")
    assert error == "no disputes numbered D20269999 in the ledger"


def test_the_demo_list_of_certification_matters_was_published_by_the_district_government(demo_dir) -> None:  # type: ignore[no-untyped-def]
    """一(三): the demo's 证明事项清单 is 区政府's publication, signed by 区政府办公室; the ledger shows it as L…."""
    data, _ = demo_dir
    [v1] = json.loads(_in_process(data, "catalogue", "versions", "--kind", "matters", "--json")[0])
    assert (v1["version"], v1["published_by"], v1["filed_at"]) == (1, "zhengfuban", None)
    assert {v["published_by"] for v in json.loads(
        _in_process(data, "catalogue", "versions", "--kind", "assistance", "--json")[0])} == {"sifa"}
    shown = json.loads(_in_process(data, "history", "L20260001", "--from", "zhengfuban", "--json")[0])
    [line] = shown["lines"]
    assert (line["type"], line["sender"], line["recipient"]) == ("notice.list-published", "zhengfuban", "sifa")
    assert "区政府 published version 1 of the 证明事项清单 already" in _in_process(data, "government", "publish")[2]


def test_the_sla_commands_close_the_view_they_opened(demo_dir) -> None:  # type: ignore[no-untyped-def]
    # Run in one process (the console, a test), an open view kept `projections rebuild` from running
    # ("open in another process") until the garbage collector happened to close it.
    import sqlite3

    from xiezhu.cli.sla import open_sla
    from xiezhu.settings import Settings

    with open_sla(Settings(data_dir=demo_dir[0])) as (view, _):
        assert view.db.execute("SELECT COUNT(*) FROM assistance_requests").fetchone()[0] > 0
    with pytest.raises(sqlite3.ProgrammingError, match="closed"):
        view.db.execute("SELECT 1")


#: What stays a file of the data directory when the records are in PostgreSQL (decision 52): each belongs to one
#: machine — a relay's position, the bureau's own register its verifiers read, the heads it countersigned.
LOCAL_FILES = {"relay.db", "data.db", "witness.db", "feed.db", "alerts.db", "users.db", "tokens.db"}


@pytest.mark.postgres
@pytest.mark.timeout(DEMO_TIMEOUT)
def test_the_demo_runs_on_postgresql_and_the_read_commands_read_it_there(store_location: StoreLocations) -> None:
    """XIEZHU_DATABASE_URL: the demo's bureau stores, catalogue, ledger and views are schemas of one database
    (no SQLite file of them in the data directory), and the commands that read them read them there."""
    if store_location.database_url is None:
        pytest.skip("the demo on SQLite is the session's demo (demo_run), read by every test above")
    from aggregates.database import schemas_with_prefix

    prefix = f"t{store_location.tag}"
    store_location.schemas.append(prefix)  # dropped afterwards with every schema under the prefix
    data = store_location.tmp_path / "xiezhu"
    env = clean_env(data, XIEZHU_DATABASE_URL=f"{store_location.database_url}?schema={prefix}")
    s = json.loads(process("demo", "--json", "--requests", "3", "--seed", "1", env=env, timeout=DEMO_TIMEOUT).stdout)
    assert s["applications"] == 3 and s["ledger_events"] > 0 and s["replied"] + s["declined"] + s["withdrawn"] + \
        s["pending"] == s["requests"] > 0
    schemas = set(schemas_with_prefix(store_location.database_url, prefix))
    assert {f"{prefix}__{r}" for r in ("ledger", "catalogue", "sla", "commitments", "credit", "demo")} <= schemas
    assert {f"{prefix}_{code}" for code in ("shenpi", "gongan", "sifa", "zhengfuban")} <= schemas
    files = [p for p in data.rglob("*.db") if (data / "nats") not in p.parents]  # not JetStream's own
    assert {p.name for p in files} <= LOCAL_FILES, sorted(str(p) for p in files)

    rows = json.loads(run("sla", "--json", env=env).stdout)
    assert len(rows) == s["requests"]
    assert sum(r["status"] == "replied" for r in rows.values()) == s["replied"]
    cases = json.loads(run("cases", "--json", env=env).stdout)
    assert len(cases) == s["applications"]
    assert json.loads(run("outbox", "--json", env=env).stdout)["waiting"] == []
    audit = run("audit", "--json", env=env)
    assert json.loads(audit.stdout)["ok"] is True, audit.stdout
    requester, number = next(k for k, r in rows.items() if r["status"] == "replied").split("/")
    history = json.loads(run("history", number, "--from", requester, "--json", env=env).stdout)
    assert "assistance.replied" in json.dumps(history)


@pytest.mark.parametrize("args", [["agent"], ["--data-dir", "d", "--lang", "en", "ledger", "--batch", "3"],
                                  ["--log-json", "--nats-url=x", "checkpoint-signer"]])
def test_a_service_runs_with_the_service_commands_alone_and_the_same_words(args: list[str]) -> None:
    # A service's start (and each restart by `xiezhu run`) skips the other groups' modules and commands.
    from typer.main import get_command

    from xiezhu.cli.main import app
    from xiezhu.cli.root import SERVICE_COMMANDS, command_of
    from xiezhu.cli.services import app as services_app

    assert command_of(args) in SERVICE_COMMANDS
    assert command_of(["--lang", "en"]) is None and command_of(["--data-dir", "agent", "cases"]) == "cases"
    services = get_command(services_app).commands  # type: ignore[attr-defined]
    assert SERVICE_COMMANDS <= set(services)
    whole = get_command(app).commands  # type: ignore[attr-defined]
    for name in SERVICE_COMMANDS:
        assert (whole[name].help, [p.name for p in whole[name].params]) == (
            services[name].help, [p.name for p in services[name].params])
    code = ("import sys; sys.argv = ['xiezhu', 'agent', '--help']\n"
            "from xiezhu.cli import main\ntry:\n    main()\nexcept SystemExit:\n    pass\n"
            "print('xiezhu.cli.cases' in sys.modules, 'xiezhu.cli.main' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.splitlines()[-1] == "False False"
