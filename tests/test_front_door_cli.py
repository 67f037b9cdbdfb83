"""The front door's commands as a person runs them: tokens, records, outbox, docs asyncapi."""
from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path
from types import SimpleNamespace

import pytest
import sqlite_utils
from openpyxl import Workbook
from rich.cells import cell_len

from agencies.trust.keys import KeyStore
from agencies.verifiers import PublicSecurityVerifier
from aggregates.clock import SimulatedClock
from aggregates.registry import Registry
from schemas.assistance import Applicant, CommitmentItem, Matter
from tests.conftest import ITEMS, RESIDENT, START, publish_catalogue
from tests.helpers import invoke
from tests.helpers import xiezhu_here as run
from xiezhu.bootstrap import open_catalogue, open_store
from xiezhu.cli import app
from xiezhu.cli.front import outbox_rows
from xiezhu.node import Node
from xiezhu.running import agent_lock, agent_running
from xiezhu.settings import Settings

EXAMPLE = Path(__file__).parent.parent / "examples" / "gongan-residents.csv"


def xz(*args: str, data_dir: Path | None = None) -> str:
    """A command that must succeed, run in this process (faster than a subprocess): its standard output."""
    from tests.helpers import invoke
    from xiezhu.cli import app

    env = {"XIEZHU_DATA_DIR": str(data_dir)} if data_dir else {}
    result = invoke(app, list(args), env=env, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result.stdout


def test_tokens_are_shown_once_stored_hashed_listed_and_revoked(tmp_path: Path) -> None:
    data = tmp_path / "data"
    token = run("tokens", "create", "--bureau", "shenpi", "--label", "审批系统", data_dir=data).stdout.strip()
    assert token.startswith("xzt_")
    db = (data / "api" / "tokens.db").read_bytes()
    assert token.split("_", 2)[2].encode() not in db  # only its hash is kept
    assert oct((data / "api" / "tokens.db").stat().st_mode & 0o777) == "0o600"
    [listed] = json.loads(xz("tokens", "list", "--json", data_dir=data))
    assert listed["bureau"] == "shenpi" and listed["label"] == "审批系统" and listed["revoked_at"] is None
    wrong = run("tokens", "revoke", listed["id"], "--bureau", "gongan", data_dir=data, check=False)
    assert wrong.returncode == 1 and wrong.stderr.count("错误：") == 1
    assert json.loads(xz("tokens", "list", "--json", data_dir=data))[0]["revoked_at"] is None
    xz("tokens", "revoke", listed["id"], "--bureau", "shenpi", data_dir=data)
    assert json.loads(xz("tokens", "list", "--json", data_dir=data))[0]["revoked_at"]
    from tests.helpers import invoke
    from xiezhu.cli import app

    table = invoke(app, ["tokens", "list"], env={"XIEZHU_DATA_DIR": str(data), "COLUMNS": "80"}).stdout
    # 中文, the bureau by name; the id whole at 80 columns
    assert "API 令牌 1 个" in table and "审批" in table and " shenpi " not in table and listed["id"] in table
    assert "…" not in table
    unknown = run("tokens", "create", "--bureau", "nosuch", data_dir=data, check=False)
    assert unknown.returncode == 1 and "错误：" in unknown.stderr


def test_records_load_from_csv_and_xlsx_and_the_verifier_answers_from_them(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("XIEZHU_LANG", raising=False)  # the default
    data = tmp_path / "data"
    run("records", "load", "--bureau", "gongan", str(EXAMPLE), data_dir=data)
    shown = json.loads(xz("records", "show", "--bureau", "gongan", "--json", data_dir=data))
    assert shown["count"] == 3 and shown["kind"] == "户籍"
    assert all("*" in r["id_number"] and "*" in r["name"] for r in shown["rows"])
    env = {"XIEZHU_DATA_DIR": str(data), "COLUMNS": "80"}
    table = invoke(app, ["records", "show", "--bureau", "gongan"], env=env).stdout
    assert "区公安分局 户籍" in table and "3 条记录" in table and "records" not in table
    assert "…" not in table and all(r["id_number"] in table for r in shown["rows"])
    english = invoke(app, ["records", "show", "--bureau", "gongan"], env=env | {"XIEZHU_LANG": "en"}).stdout
    assert "gongan 户籍" in english and "3 records" in english
    settings = Settings(data_dir=data)
    verifier = PublicSecurityVerifier(settings.bureau_data_path("gongan"))
    zhang = Applicant(kind="person", name=RESIDENT["name"], id_number=RESIDENT["id_number"])
    item = CommitmentItem(no=1, text="户籍", check="hukou.residence", facts={"address": "运河街道"})
    assert verifier.verify(zhang, item).verdict == "true"  # type: ignore[union-attr]
    wang = Applicant(kind="person", name="王五", id_number="370405197712123456")
    assert verifier.verify(wang, CommitmentItem(no=1, text="无犯罪记录", check="police.no-criminal-record")
                           ).verdict == "false"  # type: ignore[union-attr]

    # 营业执照 from an XLSX export with English headers
    wb = Workbook()
    ws = wb.active
    assert ws is not None
    ws.append(["id_number", "name", "status", "scope"])
    ws.append(["91370405MA3C000001", "台儿庄区运河商贸有限公司", "存续", "预包装食品销售、日用百货"])
    wb.save(tmp_path / "licences.xlsx")
    xz("records", "load", "--bureau", "shichang", str(tmp_path / "licences.xlsx"), data_dir=data)
    assert json.loads(xz("records", "show", "--bureau", "shichang", "--json", data_dir=data))["count"] == 1


def test_users_list_and_alerts_list_read_in_chinese_with_bureaus_by_name_at_80_columns(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("XIEZHU_LANG", raising=False)  # the default
    from xiezhu.http.alerts import Alerts, alerts_path
    from xiezhu.http.users import UserStore

    data = tmp_path / "data"
    settings = Settings(data_dir=data)
    data.mkdir()
    users = UserStore(data / "users.db")
    try:
        users.create("wang.li.household.registry.01", "gongan", "a long enough password", "王丽")
        users.create("zhao.min", "shenpi", "a long enough password", "赵敏")
        users.disable("zhao.min")
    finally:
        users.close()
    alerts = Alerts("gongan", alerts_path(settings, "gongan"))
    try:
        alerts.add("duty@gongan.example.gov.cn")
        alerts.cursor(0)
        alerts.advance(1, ("evt-1", "sla.breached", ["duty@gongan.example.gov.cn"]))
    finally:
        alerts.close()
    env = {"XIEZHU_DATA_DIR": str(data), "COLUMNS": "80"}
    listed = invoke(app, ["users", "list"], env=env).stdout
    assert "控制台账户 2 个" in listed and "wang.li.household.registry.01" in listed and "已停用" in listed
    assert "公安" in listed and "gongan" not in listed and "…" not in listed
    assert max(cell_len(line) for line in listed.splitlines()) <= 80
    english = invoke(app, ["users", "list"], env=env | {"XIEZHU_LANG": "en"}).stdout
    assert "2 console accounts" in english and "disabled" in english
    mailed = invoke(app, ["alerts", "list", "--bureau", "区公安分局"], env=env).stdout
    assert mailed.startswith("区公安分局：1 个收件地址，已发送 1 封提醒") and "逾期通知" in mailed
    assert "duty@gongan.example.gov.cn" in mailed and "…" not in mailed and "sla.breached" not in mailed
    english = invoke(app, ["alerts", "list", "--bureau", "gongan"], env=env | {"XIEZHU_LANG": "en"}).stdout
    assert english.startswith("gongan: 1 addresses, 1 alerts mailed") and "sla.breached" in english
    assert json.loads(xz("alerts", "list", "--bureau", "gongan", "--json", data_dir=data))["mailed"][0]["type"] == \
        "sla.breached"


def test_social_insurance_records_and_a_rounded_id_number(tmp_path: Path) -> None:
    from agencies.verifiers import SocialInsuranceVerifier

    data = tmp_path / "data"
    csv_file = tmp_path / "shebao.csv"
    csv_file.write_text("公民身份号码,累计缴费月数,参保单位\n370405199001011234,36,台儿庄区某单位\n", encoding="utf-8")
    xz("records", "load", "--bureau", "renshe", str(csv_file), data_dir=data)
    verifier = SocialInsuranceVerifier(Settings(data_dir=data).bureau_data_path("renshe"))
    zhang = Applicant(kind="person", name=RESIDENT["name"], id_number=RESIDENT["id_number"])
    item = CommitmentItem(no=1, text="已缴纳社保24个月", check="shebao.months", facts={"months": "24"})
    assert verifier.verify(zhang, item).verdict == "true"  # type: ignore[union-attr]
    # an ID number entered as a number in Excel has lost its last digits: refused, nothing loaded
    wb = Workbook()
    ws = wb.active
    assert ws is not None
    ws.append(["公民身份号码", "姓名", "户籍地址"])
    ws.append([370405199001011234, "张三", "运河街道"])
    wb.save(tmp_path / "rounded.xlsx")
    proc = run("records", "load", "--bureau", "gongan", str(tmp_path / "rounded.xlsx"), data_dir=data, check=False)
    assert proc.returncode == 1 and "设为文本格式" in proc.stderr
    assert not (data / "bureaus" / "gongan" / "data.db").exists()


def test_a_bad_records_file_changes_nothing(tmp_path: Path) -> None:
    data = tmp_path / "data"
    xz("records", "load", "--bureau", "gongan", str(EXAMPLE), data_dir=data)
    before = (data / "bureaus" / "gongan" / "data.db").read_bytes()
    bad = tmp_path / "bad.csv"
    for text in ("公民身份号码,姓名,户籍地址\n370405199001011234,张三改,新地址\nnot-a-number,李,某地\n",
                 "公民身份号码,姓名\n370405199001011234,张三\n",  # the address column is missing
                 "id_number,name,residence,criminal_record\n370405199001011234,张三,某地,maybe\n"):
        bad.write_text(text, encoding="utf-8")
        proc = run("records", "load", "--bureau", "gongan", str(bad), data_dir=data, check=False)
        assert proc.returncode == 1 and proc.stderr.count("错误：") == 1, proc.stderr
    for args in (["--bureau", "ziran", str(EXAMPLE)], ["--bureau", "gongan", str(tmp_path / "none.csv")]):
        proc = run("records", "load", *args, data_dir=data, check=False)
        assert proc.returncode == 1 and "错误：" in proc.stderr
    assert (data / "bureaus" / "gongan" / "data.db").read_bytes() == before
    rows = list(sqlite_utils.Database(data / "bureaus" / "gongan" / "data.db")["residents"].rows)
    assert {r["name"] for r in rows} == {"张三", "李四", "王五"}


def _offline_request(data: Path) -> Settings:
    settings = Settings(data_dir=data)
    clock = SimulatedClock(START)
    KeyStore(settings.keys_dir).ensure(Registry.load().codes(), valid_from=START - timedelta(days=1))
    catalogue = open_catalogue(settings, clock)
    publish_catalogue(SimpleNamespace(catalogue=catalogue))  # type: ignore[arg-type]
    store = open_store(settings, KeyStore(settings.keys_dir), "shenpi", clock, catalogue)
    store.assistance.request(assistor="ziran",
                             applicant=Applicant(kind="person", name="张三", id_number=RESIDENT["id_number"]),
                  matter=Matter(code="370405-XK-0101", name="食品经营许可"), applied_on=START.date(),
                  items=[CommitmentItem(no=1, text="本人户籍所在地为运河街道")], catalogue_item=ITEMS["ziran"])
    store.close()
    return settings


def test_outbox_shows_what_no_agent_has_sent_yet(tmp_path: Path) -> None:
    settings = _offline_request(tmp_path / "data")
    shown = json.loads(xz("outbox", "--json", data_dir=settings.data_dir))
    [waiting] = shown["waiting"]
    assert (waiting["bureau"], waiting["to"], waiting["number"], waiting["type"]) == (
        "shenpi", "ziran", "20260001", "assistance.requested")
    assert shown["agents_running"] == {"shenpi": False}
    table = run("outbox", "--bureau", "shenpi", data_dir=settings.data_dir)
    assert "20260001" in table.stdout and "本机没有运行其代理程序" in table.stderr
    assert "待 JetStream 确认 1 条" in table.stdout
    assert "区审批服务局" in table.stdout and "区自然资源局" in table.stdout  # bureaus by name
    # an agent holding the bureau's lock is seen as running
    lock = agent_lock(settings.bureau_dir("shenpi"))
    assert lock.acquire() and agent_running(settings.bureau_dir("shenpi"))
    assert not agent_lock(settings.bureau_dir("shenpi")).acquire()
    lock.release()
    assert not agent_running(settings.bureau_dir("shenpi"))


async def test_the_outbox_empties_once_the_agent_relays(node: Node, settings: Settings) -> None:
    from tests.test_exchange import request

    request(node, assistor="ziran", check="")
    assert agent_running(settings.bureau_dir("shenpi"))
    await node.settle()
    assert outbox_rows(settings, "shenpi") == [] and outbox_rows(settings, "ziran") == []


def test_docs_asyncapi_describes_every_subject_and_event_type(tmp_path: Path) -> None:
    from schemas.events import Payload
    from xiezhu.asyncapi import payload_types

    out = tmp_path / "asyncapi.json"
    xz("docs", "asyncapi", "--out", str(out))
    doc = json.loads(out.read_text(encoding="utf-8"))
    assert doc["asyncapi"].startswith("3.")
    tags = {t.__struct_config__.tag for t in payload_types()}
    assert len(tags) == len(Payload.__args__)  # type: ignore[attr-defined]
    for tag in tags:
        channel = doc["channels"][tag]
        assert channel["address"] == f"xz.{{sender}}.{{recipient}}.{tag}"
    assert {"agent inbox", "ledger", "dead letter", "trust list"} <= set(doc["channels"])
    schemas = doc["components"]["schemas"]
    assert {"SealedEnvelope", "Envelope", "AssistanceRequested", "DeadlineBreached"} <= set(schemas)
    message = doc["components"]["messages"]["assistance.requested:Message"]
    assert message["payload"] == {"$ref": "#/components/schemas/SealedEnvelope"}
    assert message["x-xiezhu-opened-payload"] == {"$ref": "#/components/schemas/AssistanceRequested"}
    assert set(message["headers"]["required"]) == {"Nats-Msg-Id", "Xz-Kid", "Xz-Sig"}
