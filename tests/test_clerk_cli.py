"""A clerk's actions from the command line, against real agents on a real nats-server and real SQLite."""
from __future__ import annotations

import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from rich.text import Text

from agencies.trust.keys import KeyStore
from aggregates.clock import SystemClock
from aggregates.registry import Registry
from schemas.catalogue import AssistanceItem, MatterRow
from schemas.commitment import SUPERVISION_WAYS
from schemas.errors import XiezhuError
from tests.conftest import ITEMS, RESIDENT, START, publish_catalogue
from tests.helpers import invoke
from tests.helpers import xiezhu_here as run
from xiezhu.bootstrap import open_catalogue
from xiezhu.cli import app
from xiezhu.node import Node
from xiezhu.settings import Settings

BASIS = "《国务院办公厅关于全面推行证明事项告知承诺制的指导意见》"
MATTER = "ZM-shenpi-0001"
ON_SITE = "XZ-0009"
ZHANG = ["--applicant-name", RESIDENT["name"], "--applicant-id", RESIDENT["id_number"]]
TRUE_ITEMS = ["--item", "本人户籍所在地为运河街道|hukou.residence|address=运河街道",
              "--item", "本人无犯罪记录|police.no-criminal-record"]


def person(name: str, id_number: str) -> list[str]:
    return ["--applicant-name", name, "--applicant-id", id_number]


@dataclass
class Result:
    code: int
    out: str
    err: str


def xz(settings: Settings, *args: str, env: dict[str, str] | None = None) -> Result:
    """A command in this process, as ``xiezhu.cli.main`` runs it: an XiezhuError is one error line and exit 1."""
    result = invoke(app, list(args), env={"XIEZHU_DATA_DIR": str(settings.data_dir), "COLUMNS": "200",
                                                      "XIEZHU_OPERATOR": "", **(env or {})})
    if isinstance(result.exception, XiezhuError):
        return Result(1, result.stdout, result.stderr + f"error: {result.exception}\n")
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise result.exception
    return Result(result.exit_code, result.stdout, result.stderr)


def ok(settings: Settings, *args: str, env: dict[str, str] | None = None) -> Result:
    r = xz(settings, *args, env=env)
    assert r.code == 0, (args, r.err)
    return r


def refused(settings: Settings, *args: str) -> Result:
    r = xz(settings, *args)
    assert r.code == 1 and r.err.count("error:") == 1, (args, r.code, r.err)
    return r


def publish_matters(catalogue: Any) -> None:
    """区审批服务局's 附件8 row, and an on-site item without a filed memorandum."""
    row = MatterRow(code=MATTER, seq=1, service_matter_name="食品经营许可", service_matter_code="370405-XK-0101",
                    certificate_name="户籍证明及无犯罪记录证明", legal_basis=BASIS, handling_body="shenpi",
                    issuing_unit="区公安分局", mode="必须实行", verification_methods=["部门间行政协助"], owner="shenpi")
    catalogue.review(catalogue.apply_adjustment("matters", "shenpi", BASIS, adds=[row]), True)
    catalogue.publish("matters", publisher="zhengfuban")  # 一(三): 区政府 publishes the list's first version
    site = AssistanceItem(code=ON_SITE, seq=9, service_matter_name="食品经营许可", service_matter_code="370405-XK-0101",
                          item_name="经营场所现场核查", legal_basis=BASIS, handling_body="shenpi",
                          assisting_body="ziran", verification_method="现场检查", on_site=True)
    catalogue.review(catalogue.apply_adjustment("assistance", "shenpi", BASIS, adds=[site]), True)
    catalogue.publish("assistance")


@pytest.fixture
async def office(settings: Settings, registry: Registry) -> AsyncIterator[Node]:
    """shenpi, gongan and ziran agents and the ledger on the real clock, as the command line runs."""
    node = Node(settings, registry, SystemClock(), agents=("shenpi", "gongan", "ziran"), ledger=True, projection=True,
                generate_keys=True, key_valid_from=START - timedelta(days=1))
    publish_catalogue(node)
    publish_matters(node.catalogue)
    await node.start()
    yield node
    await node.stop()


def state(settings: Settings) -> dict[str, Any]:
    """What a refused command must leave as it was: every store's log, and the catalogue file."""
    from xiezhu.bootstrap import System

    system = System(settings, Registry.load(), SystemClock())
    return {code: system.store(code).recorder.max_notification_id() for code in ("shenpi", "gongan", "ziran")}


def open_committed(settings: Settings, *items: str, applicant: list[str] = ZHANG) -> str:
    number = ok(settings, "case", "open", "--bureau", "shenpi", "--matter", MATTER, *applicant, *items).out.strip()
    ok(settings, "case", "notice", number, "--bureau", "shenpi")
    ok(settings, "case", "commit", number, "--bureau", "shenpi")
    return number


async def test_a_commitment_case_runs_end_to_end_from_the_command_line(office: Node, settings: Settings) -> None:
    number = open_committed(settings, *TRUE_ITEMS)
    assert number == "C20260001"
    ok(settings, "case", "plan", number, "--bureau", "shenpi", "--item", f"1=assistance:{ITEMS['gongan']}",
       "--item", f"2=assistance:{ITEMS['gongan']}")
    sent = ok(settings, "request", "--bureau", "shenpi", "--to", "gongan", "--catalogue-item", ITEMS["gongan"],
              "--case", number)
    assert sent.out.strip() == "20260001" and "由区审批服务局的代理程序发送" in sent.err
    await office.settle()
    ok(settings, "case", "approve", number, "--bureau", "shenpi", "--decision-no", "台审批许〔2026〕1号")
    assert "已办结" in ok(settings, "case", "conclude", number, "--bureau", "shenpi").err
    shown = json.loads(ok(settings, "case", "show", number, "--bureau", "shenpi", "--json").out)
    assert shown["status"] == "closed" and shown["requests"] == [
        {"number": "20260001", "assistor": "gongan", "status": "replied"}]
    assert "*" in shown["applicant"]["id_number"]  # masked
    table = ok(settings, "case", "show", number, "--bureau", "shenpi", env={"COLUMNS": "80", "XIEZHU_LANG": ""}).out
    assert max(Text(line).cell_len for line in table.splitlines()) <= 80 and "…" not in table
    for words in ("区审批服务局", "已办结", "20260001 → 区公安分局（已答复）", shown["applicant"]["id_number"]):
        assert words in table, words
    assert "shenpi" not in table.replace(MATTER, "") and "closed" not in table  # the matter code is an identifier


async def test_a_refused_request_or_step_changes_nothing(office: Node, settings: Settings) -> None:
    base = ["request", "--bureau", "shenpi", *ZHANG, "--matter-code", "370405-XK-0101", "--matter-name", "食品经营许可"]
    before = state(settings)
    for args in (
        [*base, "--to", "gongan", "--catalogue-item", "XZ-9999", *TRUE_ITEMS],  # not catalogued (第七条)
        [*base, "--to", "gongan", "--catalogue-item", ITEMS["ziran"], *TRUE_ITEMS],  # catalogued for another pair
        [*base, "--to", "ziran", "--catalogue-item", ON_SITE, *TRUE_ITEMS],  # on site without a memorandum (第六条)
        [*base, "--to", "gongan", "--catalogue-item", ITEMS["gongan"], *TRUE_ITEMS, "--channel", "letter",
         "--staff", "李明"],  # 协助函（二） names two staff
        [*base, "--to", "gongan", "--catalogue-item", ITEMS["gongan"]],  # no commitment to verify
        [*base, "--to", "gongan", "--catalogue-item", ITEMS["gongan"], "--item", "a|b|c|d"],
        ["request", "--bureau", "shenpi", "--to", "nosuch", "--catalogue-item", ITEMS["gongan"], *ZHANG],
        ["case", "open", "--bureau", "shenpi", "--matter", "ZM-nosuch", *ZHANG, *TRUE_ITEMS],  # not in 附件8
        ["case", "open", "--bureau", "shenpi", "--matter", MATTER, "--applicant-name", "张三", "--applicant-id",
         "12", *TRUE_ITEMS],
        ["case", "notice", "C20269999", "--bureau", "shenpi"],
        ["withdraw", "20269999", "--bureau", "shenpi", "--reason", "不再需要"],
        ["onsite", "C20269999", "--bureau", "shenpi", "--item", "1", "--verdict", "true", "--officer", "王伟"],
    ):
        refused(settings, *args)
    assert state(settings) == before
    # and no number was taken: the first request that is sent gets the first number
    sent = ok(settings, *base, "--to", "gongan", "--catalogue-item", ITEMS["gongan"], *TRUE_ITEMS)
    assert sent.out.strip() == "20260001"


async def test_a_false_commitment_and_each_consequence(office: Node, settings: Settings) -> None:
    # approved before verification, then found false by gongan: revoke, penalty, credit, referral
    first = open_committed(settings, "--item", "本人户籍所在地为泥沟镇|hukou.residence|address=泥沟镇")
    ok(settings, "case", "approve", first, "--bureau", "shenpi", "--decision-no", "台审批许〔2026〕2号")
    ok(settings, "case", "plan", first, "--bureau", "shenpi", "--item", f"1=assistance:{ITEMS['gongan']}")
    ok(settings, "request", "--bureau", "shenpi", "--to", "gongan", "--catalogue-item", ITEMS["gongan"],
       "--case", first)
    await office.settle()  # the agent records the false commitment when the reply comes
    shown = json.loads(ok(settings, "case", "show", first, "--bureau", "shenpi", "--json").out)
    assert shown["status"] == "false-commitment", shown["status"]
    refused(settings, "case", "terminate", first, "--bureau", "shenpi", "--legal-reason", "已批准的事项应撤销")
    ok(settings, "case", "revoke", first, "--bureau", "shenpi", "--legal-reason", "三(三)：承诺不实，撤销行政许可")
    ok(settings, "case", "penalise", first, "--bureau", "shenpi", "--penalty", "罚款2000元",
       "--legal-reason", "《行政许可法》第七十九条")
    ok(settings, "case", "notify", first, "--bureau", "shenpi", "--department", "shichang",
       "--legal-reason", "附件6：推送监管部门予以惩处")
    ok(settings, "case", "licence-returned", first, "--bureau", "shenpi", "--note", "原件已交回")
    ok(settings, "case", "refer", first, "--bureau", "shenpi", "--to", "区公安分局", "--legal-reason", "涉嫌伪造证明")
    shown = json.loads(ok(settings, "case", "show", first, "--bureau", "shenpi", "--json").out)
    assert set(shown["outcomes"]) == {"revoked", "penalty", "credit-recorded", "supervisor-notified", "referred"}
    assert shown["licence_returned_at"]

    # found false online before a decision: terminate, order rectification, confirm it
    # (张三 now has a false commitment on record: 四(二) closes the commitment route to him, so others apply)
    refused_route = ok(settings, "case", "open", "--bureau", "shenpi", "--matter", MATTER, *ZHANG, *TRUE_ITEMS)
    assert "须提交证明" in refused_route.err
    second = open_committed(settings, *TRUE_ITEMS, applicant=person("李四", "370405198805052345"))
    ok(settings, "case", "plan", second, "--bureau", "shenpi", "--item", "1=online:电子证照库", "--item", "2=online")
    refused(settings, "case", "verify", second, "--bureau", "shenpi", "--item", "1", "--verdict", "false",
            "--online", "电子证照库")  # a false verdict needs its reason
    ok(settings, "case", "verify", second, "--bureau", "shenpi", "--item", "1", "--verdict", "虚假",
       "--online", "电子证照库", "--reason", "户籍地址不符")
    ok(settings, "case", "verify", second, "--bureau", "shenpi", "--item", "2", "--verdict", "true",
       "--online", "信息共享平台")
    assert "虚假承诺" in ok(settings, "case", "conclude", second, "--bureau", "shenpi").err
    ok(settings, "case", "terminate", second, "--bureau", "shenpi", "--legal-reason", "三(三)：承诺不实，终止办理")
    refused(settings, "case", "rectify", second, "--bureau", "shenpi", "--by", "2020-01-01",
            "--legal-reason", "过期")
    ok(settings, "case", "rectify", second, "--bureau", "shenpi", "--by", "2099-10-30",
       "--legal-reason", "责令限期整改")
    ok(settings, "case", "rectified", second, "--bureau", "shenpi", "--evidence", "已补交户籍证明")

    # withdrawn midway (二(三)), and an on-site check by two officers
    third = open_committed(settings, *TRUE_ITEMS, applicant=person("王五", "370405197712123456"))
    ok(settings, "case", "plan", third, "--bureau", "shenpi", "--item", "1=on-site", "--item", "2=exempt")
    ok(settings, "onsite", third, "--bureau", "shenpi", "--item", "1", "--verdict", "true",
       "--officer", "王伟", "--officer", "李娜")
    fourth = open_committed(settings, *TRUE_ITEMS, applicant=person("赵六", "370405199203034567"))
    assert "须提交证明" in ok(settings, "case", "withdraw", fourth, "--bureau", "shenpi",
                                        "--reason", "申请人决定自行提交证明").err


async def test_forward_answer_decline_and_withdraw_with_the_operator_on_the_record(
        office: Node, settings: Settings) -> None:
    base = ["request", "--bureau", "shenpi", "--to", "ziran", "--catalogue-item", ITEMS["ziran"], *ZHANG,
            "--matter-code", "370405-XK-0101", "--matter-name", "食品经营许可", "--item", "1998年宅基地档案属实"]
    first = ok(settings, *base).out.strip()
    second = ok(settings, *base, "--channel", "letter", "--staff", "李明", "--staff", "王刚").out.strip()
    third = ok(settings, *base).out.strip()
    await office.settle()
    ok(settings, "forward", first, "--bureau", "ziran", "--institution", "区档案馆", "--note", "1998年土地档案")
    ok(settings, "answer", first, "--bureau", "ziran", "--item", "1=true", env={"XIEZHU_OPERATOR": "赵敏"})
    ok(settings, "decline", second, "--bureau", "ziran", "--reason", "不属于本机关职权范围", "--operator", "钱亮")
    ok(settings, "withdraw", third, "--bureau", "shenpi", "--reason", "申请人撤回申请")
    refused(settings, "withdraw", third, "--bureau", "shenpi", "--reason", "再撤一次")
    await office.settle()
    shenpi = office.store("shenpi")
    by_number = {s.number: s for s in shenpi.assistance.cases()}
    assert by_number[first].answered_by == "operator:赵敏" and by_number[first].forwarded_to == ("区档案馆",)
    assert by_number[second].status == "declined" and by_number[second].answered_by == "operator:钱亮"
    assert by_number[second].request.staff == ["李明", "王刚"]
    assert by_number[third].status == "withdrawn"


def test_without_a_running_agent_the_command_says_queued(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path / "data")
    KeyStore(settings.keys_dir).ensure(Registry.load().codes(), valid_from=START - timedelta(days=1))
    publish_catalogue(SimpleNamespace(catalogue=open_catalogue(settings, SystemClock())))  # type: ignore[arg-type]
    # a bureau's first request, refused (第七条), leaves no store behind: nothing was made for it
    refused(settings, "request", "--bureau", "shenpi", "--to", "gongan", "--catalogue-item", "XZ-9999", *ZHANG,
            "--matter-code", "370405-XK-0101", "--matter-name", "食品经营许可", *TRUE_ITEMS)
    assert not settings.store_exists("shenpi") and not settings.bureau_dir("shenpi").exists()
    sent = ok(settings, "request", "--bureau", "shenpi", "--to", "gongan", "--catalogue-item", ITEMS["gongan"],
              *ZHANG, "--matter-code", "370405-XK-0101", "--matter-name", "食品经营许可", *TRUE_ITEMS)
    assert "已排队，代理程序启动后发送" in sent.err
    waiting = json.loads(ok(settings, "outbox", "--json").out)["waiting"]
    assert [w["number"] for w in waiting] == [sent.out.strip()]
    # the real entry point: one error line, exit 1
    proc = run("request", "--bureau", "shenpi", "--to", "gongan", "--catalogue-item", "XZ-9999", *ZHANG,
               "--matter-code", "x", "--matter-name", "y", *TRUE_ITEMS, data_dir=settings.data_dir, check=False)
    assert proc.returncode == 1 and proc.stderr.count("错误：") == 1 and "Traceback" not in proc.stderr


def test_every_clerk_command_shows_an_example() -> None:
    commands = [["request"], ["withdraw"], ["forward"], ["onsite"], ["answer"], ["decline"]] + [
        ["case", c] for c in ("open", "notice", "refuse-disclosure", "choose", "commit", "approve", "withdraw", "plan",
                              "verify", "conclude", "terminate", "rectify", "rectified", "revoke", "penalise",
                              "notify", "licence-returned", "supervise", "refer", "show")]
    for command in commands:
        result = invoke(app, [*command, "--help"], env={"COLUMNS": "200"})
        assert result.exit_code == 0 and "示例：xiezhu " + " ".join(command) in " ".join(result.stdout.split()), \
            command




async def test_supervision_after_an_all_exempt_case_closed_is_recorded_from_the_command_line(
        office: Node, settings: Settings) -> None:
    """三(三) 事中事后监管, 尤其是免于信息核查办理的: closed at once, found false later by one of the plan's
    ways (the ones the help names), and the consequences follow."""
    number = open_committed(settings, *TRUE_ITEMS)
    ok(settings, "case", "approve", number, "--bureau", "shenpi", "--decision-no", "台审批许〔2026〕3号")
    ok(settings, "case", "plan", number, "--bureau", "shenpi", "--item", "1=exempt", "--item", "2=exempt")
    assert "已办结" in ok(settings, "case", "conclude", number, "--bureau", "shenpi").err
    supervise = ["case", "supervise", number, "--bureau", "shenpi", "--item", "2", "--verdict", "false",
                 "--reason", "抽查发现申请人有犯罪记录"]
    assert "双随机、一公开" in refused(settings, *supervise, "--way", "随机看看").err  # the error names the ways
    for lang in ("zh", "en"):  # the help names the ways the rule accepts, and its example uses one
        shown_help = "".join(invoke(app, ["case", "supervise", "--help"],
                                    env={"COLUMNS": "200", "XIEZHU_LANG": lang}).stdout.split())
        assert all(w in shown_help for w in SUPERVISION_WAYS) and "--way双随机、一公开" in shown_help, lang
    ok(settings, *supervise, "--way", "双随机、一公开")
    ok(settings, "case", "revoke", number, "--bureau", "shenpi", "--legal-reason", "监管发现承诺不实，撤销行政许可")
    shown = json.loads(ok(settings, "case", "show", number, "--bureau", "shenpi", "--json").out)
    assert shown["status"] == "revoked" and {"credit-recorded", "revoked"} <= set(shown["outcomes"])
