"""信用修复 and 异议处理 (四(一)(二)): the credit steps of a commitment case, the credit view's
standing at any time, the credit gate it feeds, and delivery of the 信用中国 outbox."""
from __future__ import annotations

import json
import os
import stat
import threading
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from typing import Any, cast

import pytest
from rich.text import Text

from agencies.credit_china import CreditChinaError, DirectoryCreditChina, HttpCreditChina, deliver_pending
from aggregates import errors
from aggregates.clock import SimulatedClock
from aggregates.store import BureauStore
from broker.ledger.store import Ledger
from projections.credit import CASES, OUTBOX, STEPS, CreditView, CreditViewError
from schemas.assistance import Applicant, CommitmentItem
from schemas.commitment import PlannedItem
from schemas.envelope import decode_envelope
from tests.conftest import StoreLocations, beside, bound_socket
from tests.helpers import invoke
from tests.test_signing import make_signer
from tests.test_store import APPLICANT
from xiezhu.cli.credit import app as credit_app
from xiezhu.cli.credit import credit_path
from xiezhu.settings import Settings

T0 = datetime(2026, 9, 21, 1, tzinfo=UTC)
ITEMS = [CommitmentItem(no=1, text="本人户籍所在地为运河街道", check="hukou.residence", facts={"address": "运河街道"}),
         CommitmentItem(no=2, text="本人无犯罪记录", check="police.no-criminal-record")]
COMPANY = Applicant(kind="organisation", name="台儿庄区运河食品有限公司", id_number="91370405MA3C8XYZ12")
WHY = "三(三)：经核查申请人承诺不实"
#: 区司法局's store key, which encrypts the view's personal data (decision 26).
VIEW_KEY = bytes(range(32))


class World:
    """One handling bureau's store, the 司法局 ledger it is relayed to, and the credit view."""

    def __init__(self, tmp_path: Path, where: StoreLocations | None = None) -> None:
        """``where``: the ledger and the view on that backend (SQLite files in ``tmp_path`` by default)."""
        self.clock = SimulatedClock(T0)
        self.store = BureauStore("shenpi", tmp_path / "s.db", make_signer("shenpi").sign, self.clock)
        self.ledger = Ledger(where("ledger") if where else tmp_path / "ledger.db")
        self.view = CreditView(self.beside(tmp_path / "credit.db"), view_key=VIEW_KEY)

    def beside(self, path: Path) -> Path | str:
        """Where a view next to the ledger lives (the file ``path``, or a schema in the ledger's database)."""
        return beside(self.ledger.location, path)

    def relay(self) -> CreditView:
        """Append every signed event of the store to the ledger (known ones are skipped), then follow."""
        self.ledger.append([(s, decode_envelope(s.body), n, self.clock.now())
                            for n, s in self.store.outgoing_since(0, 1000)])
        self.view.follow(self.ledger)
        return self.view

    def later(self, **delta: float) -> datetime:
        return self.clock.advance(timedelta(**delta))

    def apply(self, applicant: Applicant = APPLICANT, standing: str = "good") -> str:
        return self.store.commitments.open(applicant=applicant, matter_code="370405-XK-0101",
                                           matter_name="食品经营许可",
                                    certificate_name="无犯罪记录证明", issuing_unit="区公安分局", mode="可选择",
                                    items=ITEMS, applied_on=self.clock.now().date(),
                                    standing=standing).case  # type: ignore[arg-type]

    def committed(self, applicant: Applicant = APPLICANT, *, approve: bool = True) -> str:
        case = self.apply(applicant)
        self.store.commitments.issue_notice(case)
        self.store.commitments.choose_route(case, "commitment")
        self.store.commitments.sign(case, self.clock.now().date())
        if approve:
            self.store.commitments.approve(case, "台审批许〔2026〕1号")
        self.store.commitments.plan_verification(case, [PlannedItem(no=1, method="online", due_on=date(2026, 12, 1)),
                                                        PlannedItem(no=2, method="online", due_on=date(2026, 12, 1))])
        return case

    def fulfilled(self, applicant: Applicant = APPLICANT) -> str:
        case = self.committed(applicant)
        self.store.commitments.verify_item(case, 1, "true", "online:电子证照库")
        self.store.commitments.verify_item(case, 2, "true", "online:信息共享平台")
        assert self.store.commitments.conclude(case).status == "closed"  # type: ignore[union-attr]
        return case

    def found_false(self, applicant: Applicant = APPLICANT, *, approve: bool = True) -> tuple[str, datetime]:
        """A case whose commitment proved false; returns it and the time of the finding."""
        case = self.committed(applicant, approve=approve)
        self.store.commitments.verify_item(case, 1, "false", "online:电子证照库")
        self.store.commitments.verify_item(case, 2, "true", "online:信息共享平台")
        st = self.store.commitments.conclude(case)
        assert st is not None and st.found_false_at is not None
        return case, st.found_false_at

    def recorded(self, applicant: Applicant = APPLICANT) -> tuple[str, datetime]:
        case, found = self.found_false(applicant)
        self.store.commitments.revoke(case, WHY + "，撤销行政许可")  # the credit record came with the finding
        return case, found


@pytest.fixture
def world(tmp_path: Path, store_location: StoreLocations) -> Iterator[World]:
    """The ledger and the views on SQLite, and (marked ``postgres``) on PostgreSQL."""
    w = World(tmp_path, store_location)
    yield w
    w.ledger.close()


US = timedelta(microseconds=1)


def test_repair_restores_standing_from_the_approval_not_before(world: World) -> None:
    before = world.clock.now()
    with pytest.raises(errors.NoCreditRecord):
        world.store.commitments.apply_repair(world.fulfilled(COMPANY), "已整改")  # nothing recorded: nothing to repair
    case, found = world.found_false()
    world.store.commitments.revoke(case, WHY + "，撤销行政许可")
    world.later(days=30)
    applied = world.store.commitments.apply_repair(case, "已交回许可证原件并参加信用修复培训").repair_applied_at
    with pytest.raises(errors.RepairOrder):
        world.store.commitments.apply_repair(case, "重复申请")
    world.later(days=3)
    world.store.commitments.reject_repair(case, "证明材料不全，请补充培训证书")
    with pytest.raises(errors.RepairOrder):
        world.store.commitments.approve_repair(case, "没有待决的修复申请")
    world.later(days=5)
    world.store.commitments.apply_repair(case, "已补充培训证书")
    world.later(days=2)
    st = world.store.commitments.approve_repair(case, "整改到位，同意信用修复")
    assert st.credit == "repaired" and st.repaired_at is not None and not st.repair_pending
    with pytest.raises(errors.NoCreditRecord):
        world.store.commitments.raise_objection(case, "修复后的记录不再处于有效状态")

    view, key = world.relay(), APPLICANT.id_number
    assert view.standing(key, before) == "good"
    assert view.standing(key, found - US) == "good"
    assert view.standing(key, found) == "unrepaired-false-commitment"  # barred from the finding on
    assert applied is not None and not view.may_use_commitment_route(key, applied + timedelta(days=1))
    assert view.standing(key, st.repaired_at - US) == "unrepaired-false-commitment"
    assert view.standing(key, st.repaired_at) == "good"
    assert view.standing(key) == "good" and view.may_use_commitment_route(key)
    steps = [h["step"] for h in view.history(key)]
    assert steps == ["found-false", "credit-recorded", "credit-repair-applied", "credit-repair-rejected",
                     "credit-repair-applied", "credit-repair-approved"]
    assert [r["kind"] for r in view.outbox()] == ["recorded", "repaired"]


def test_an_ordered_rectification_must_be_confirmed_before_a_repair(world: World) -> None:
    case, _ = world.found_false(approve=False)
    world.store.commitments.terminate(case, WHY + "，终止办理")
    world.store.commitments.order_rectification(case, date(2026, 10, 30), WHY + "，责令限期整改")
    world.clock.set(datetime(2026, 11, 2, 1, tzinfo=UTC))  # the deadline passed: that alone proves nothing
    with pytest.raises(errors.RepairOrder):
        world.store.commitments.apply_repair(case, "整改期限已过")
    world.store.commitments.confirm_rectification(case, "现场核查确认已按要求整改（王伟、李娜）")
    with pytest.raises(errors.RepairOrder):
        world.store.commitments.confirm_rectification(case, "再次确认")
    world.store.commitments.apply_repair(case, "整改完成的现场核查记录")
    assert world.store.commitments.approve_repair(case, "同意信用修复").credit == "repaired"
    assert world.relay().standing(APPLICANT.id_number) == "good"
    with pytest.raises(errors.RepairOrder):
        world.store.commitments.confirm_rectification(world.recorded()[0], "没有整改令")


def test_an_objection_does_not_suspend_the_record_and_removal_counts_from_the_review(world: World) -> None:
    case, _ = world.recorded()
    world.later(days=1)
    objected = world.store.commitments.raise_objection(case, "核查所用户籍信息有误，本人户籍确在运河街道").objected_at
    with pytest.raises(errors.ObjectionOrder):
        world.store.commitments.raise_objection(case, "第二个异议")
    with pytest.raises(errors.RepairOrder):
        world.store.commitments.apply_repair(case, "异议审查期间申请修复")
    world.later(days=10)
    st = world.store.commitments.review_objection(case, "remove", "经复核户籍信息，原核查结论有误，删除该信用记录")
    assert st.credit == "removed" and st.removed_at is not None and st.objection == ""
    with pytest.raises(errors.NoCreditRecord):
        world.store.commitments.raise_objection(case, "已删除的记录")
    with pytest.raises(errors.NoCreditRecord):
        world.store.commitments.apply_repair(case, "已删除的记录")

    view, key = world.relay(), APPLICANT.id_number
    assert objected is not None and view.standing(key, objected + timedelta(days=1)) == "unrepaired-false-commitment"
    assert view.standing(key, st.removed_at - US) == "unrepaired-false-commitment"
    assert view.standing(key, st.removed_at) == "good" and view.standing(key) == "good"
    assert [(r["kind"], r["status"]) for r in view.outbox()] == [("recorded", "pending"), ("removed", "pending")]
    assert view.summary(key)["counts"] == {"cases": 1, "signed": 1, "fulfilled": 0, "found_false": 1,
                                              "unrepaired": 0, "repaired": 0, "removed": 1}


def test_a_confirmed_objection_leaves_the_record_and_a_correction_changes_only_its_text(world: World) -> None:
    case, _ = world.recorded()
    with pytest.raises(errors.ObjectionOrder):
        world.store.commitments.review_objection(case, "confirm", "没有异议可审查")
    world.store.commitments.raise_objection(case, "本人未作出该承诺")
    with pytest.raises(errors.ObjectionOrder):
        world.store.commitments.review_objection(case, "correct", "更正需要新的记录文本")
    with pytest.raises(errors.ObjectionOrder):
        world.store.commitments.review_objection(case, "confirm", "维持", record="维持时不应有新文本")
    with pytest.raises(errors.CreditRule):
        world.store.commitments.review_objection(case, "confirm",
                                                 "")  # reasons are required, as a receiver decodes them
    assert world.store.commitments.review_objection(case, "confirm",
                                                    "承诺书系本人签署，维持原记录").credit == "recorded"
    world.store.commitments.raise_objection(case, "记录所载事项名称有误")
    st = world.store.commitments.review_objection(case, "correct", "事项名称更正",
                                      record="食品经营许可（仅销售预包装食品）：作出虚假承诺")
    assert st.credit == "corrected" and st.credit_record.startswith("食品经营许可（仅销售")
    world.store.commitments.raise_objection(case, "再次异议")
    assert world.store.commitments.review_objection(case, "confirm", "维持更正后的记录").credit == "corrected"

    view, key = world.relay(), APPLICANT.id_number
    assert view.standing(key) == "unrepaired-false-commitment"
    assert view.cases(key)[0]["record"] == st.credit_record
    assert [r["kind"] for r in view.outbox()] == ["recorded", "corrected"]
    corrected = view.pending()[1]["record"]
    assert corrected["record"] == st.credit_record and corrected["refers_to"] == view.pending()[0]["record_id"]
    assert [(h["step"], h["record_status"]) for h in view.history(key)] == [
        ("found-false", "none"), ("credit-recorded", "recorded"),
        ("credit-objection", "under-objection"), ("credit-objection-reviewed", "recorded"),
        ("credit-objection", "under-objection"), ("credit-objection-reviewed", "corrected"),
        ("credit-objection", "under-objection"), ("credit-objection-reviewed", "corrected")]


def test_the_views_standing_feeds_the_credit_gate_at_application(world: World) -> None:
    """四(二): a barred applicant cannot be given the commitment notice; after repair they can."""
    case, _ = world.recorded()
    world.fulfilled(COMPANY)
    view = world.relay()
    standing = view.standing(APPLICANT.id_number, world.clock.now())
    assert standing == "unrepaired-false-commitment"
    barred = world.apply(standing=standing)
    with pytest.raises(errors.CreditGate):
        world.store.commitments.issue_notice(barred)
    assert world.store.commitments.refuse_route(barred, "credit", "四(二)：曾作出虚假承诺且未完成信用修复，请提交证明。"
                                                ).status == "certificate-required"
    # another applicant is not affected
    company = world.apply(COMPANY, view.standing(COMPANY.id_number))
    assert world.store.commitments.issue_notice(company).status == "noticed"

    world.store.commitments.apply_repair(case, "已交回许可证原件")
    world.store.commitments.approve_repair(case, "同意信用修复")
    view = world.relay()
    again = world.apply(standing=view.standing(APPLICANT.id_number, world.clock.now()))
    assert world.store.commitments.issue_notice(again).status == "noticed"

    s = view.summary(APPLICANT.id_number.lower())  # the key is case-insensitive
    assert s["applicant"] == "370405********1234" and s["standing"] == "good" and s["may_use_commitment_route"]
    assert s["counts"]["found_false"] == 1 and s["counts"]["repaired"] == 1
    assert APPLICANT.id_number not in json.dumps(s, ensure_ascii=False)  # masked everywhere in a summary
    company = view.summary(COMPANY.id_number)["counts"]
    assert (company["signed"], company["fulfilled"], company["found_false"]) == (1, 1, 0)
    with pytest.raises(CreditViewError):
        view.standing("not-an-id")
    with pytest.raises(CreditViewError):
        view.standing(APPLICANT.id_number, datetime(2026, 10, 1))  # a time without a zone is ambiguous


def test_outbox_delivery_to_a_directory_is_idempotent(world: World, tmp_path: Path) -> None:
    case, _ = world.recorded()
    world.store.commitments.apply_repair(case, "已交回许可证原件")
    world.store.commitments.approve_repair(case, "同意信用修复")
    view = world.relay()
    pending = view.pending()
    china = DirectoryCreditChina(tmp_path / "credit-china")
    now = world.clock.now()
    assert deliver_pending(view, china, limit=10, now=now) == (2, 0)
    assert deliver_pending(view, china, limit=10, now=now) == (0, 0)
    rows = view.outbox()
    assert [(r["status"], r["attempts"]) for r in rows] == [("delivered", 1), ("delivered", 1)]
    assert all(r["receipt"] == f"file:{r['record_id']}.json" and r["delivered_at"] for r in rows)
    files = sorted((tmp_path / "credit-china").glob("*.json"))
    assert len(files) == 2 and all(stat.S_IMODE(f.stat().st_mode) == 0o600 for f in files)
    pushed = json.loads((tmp_path / "credit-china" / f"{pending[0]['record_id']}.json").read_text())
    assert pushed["applicant"]["id_number"] == APPLICANT.id_number  # 信用中国 gets the full ID
    # a re-push after a crash (before the row was marked) is the same record, recognised
    assert china.push(pending[0]["record"]) == f"file:{pending[0]['record_id']}.json"
    with pytest.raises(CreditChinaError):
        china.push({**pending[0]["record"], "record": "别的内容"})


class _Endpoint(BaseHTTPRequestHandler):
    server: _Server

    def do_POST(self) -> None:  # noqa: N802 (http.server's name)
        body = self.rfile.read(int(self.headers["Content-Length"]))
        self.server.received.append((self.headers["Idempotency-Key"], json.loads(body)))
        if self.server.fail_next:
            self.server.fail_next -= 1
            status, answer = 500, b"upstream unavailable"
        else:
            status, answer = 201, json.dumps({"receipt": f"XYZG-{len(self.server.received)}"}).encode()
        self.send_response(status)
        self.send_header("Content-Length", str(len(answer)))
        self.end_headers()
        self.wfile.write(answer)

    def log_message(self, *args: Any) -> None:
        pass


class _Server(HTTPServer):
    received: list[tuple[str, dict[str, Any]]]
    fail_next: int


@pytest.fixture
def endpoint() -> Iterator[_Server]:
    server = _Server(("127.0.0.1", 0), _Endpoint)
    server.received, server.fail_next = [], 0
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()
    thread.join(5)


def test_http_delivery_keeps_a_failed_record_pending_then_delivers_it(world: World, endpoint: _Server) -> None:
    case, _ = world.recorded()
    world.store.commitments.apply_repair(case, "已交回许可证原件")
    world.store.commitments.approve_repair(case, "同意信用修复")
    view = world.relay()
    china = HttpCreditChina(f"http://127.0.0.1:{endpoint.server_address[1]}/records", timeout=5)
    endpoint.fail_next = 1
    assert deliver_pending(view, china, limit=10, now=world.clock.now()) == (0, 1)
    first, second = view.outbox()
    assert (first["status"], first["attempts"]) == ("pending", 1) and "500" in first["last_error"]
    assert "upstream unavailable" in first["last_error"]
    assert (second["status"], second["attempts"]) == ("pending", 0)  # the repair waits for its record
    assert len(endpoint.received) == 1

    assert deliver_pending(view, china, limit=10, now=world.clock.now()) == (2, 0)
    first, second = view.outbox()
    assert (first["status"], first["attempts"], first["receipt"]) == ("delivered", 2, "XYZG-2")
    assert first["last_error"] and second["receipt"] == "XYZG-3"  # the last failure stays on record
    keys = [k for k, _ in endpoint.received]
    assert keys == [first["record_id"], first["record_id"], second["record_id"]]  # a retry is recognisable
    assert [r["kind"] for _, r in endpoint.received] == ["recorded", "recorded", "repaired"]

    with bound_socket() as s, pytest.raises(CreditChinaError, match="cannot reach"):  # a port held, not listening:
        closed = s.getsockname()[1]  # a network failure, typed (nobody else can start listening there meanwhile)
        HttpCreditChina(f"http://127.0.0.1:{closed}/", timeout=2).push({"record_id": first["record_id"]})
    with pytest.raises(CreditChinaError):
        HttpCreditChina("file:///etc/passwd")


def _tables(view: CreditView) -> dict[str, list[dict[str, Any]]]:
    """The view's tables as they read: encrypted columns decrypted (each has a fresh nonce)."""
    return {t: view.plain_rows(t) for t in (CASES, STEPS, OUTBOX)}


def test_rebuilt_view_equals_live_and_keeps_outbox_delivery(world: World, tmp_path: Path) -> None:
    a, _ = world.recorded()
    world.relay()
    world.fulfilled(COMPANY)
    b, _ = world.recorded()
    world.relay()
    deliver_pending(world.view, DirectoryCreditChina(tmp_path / "cc"), limit=1, now=world.clock.now())
    world.store.commitments.raise_objection(b, "本人未签署该承诺书")
    world.relay()
    world.store.commitments.review_objection(b, "correct", "更正", record="食品经营许可：作出虚假承诺（已更正）")
    world.store.commitments.apply_repair(a, "已整改")
    world.relay()
    world.store.commitments.approve_repair(a, "同意")
    live = world.relay()
    times = [datetime.fromisoformat(h["at"]) for h in live.history(APPLICANT.id_number)]
    answers = [live.standing(APPLICANT.id_number, t + d) for t in times for d in (-US, US)]
    before = _tables(live)

    fresh = CreditView(world.beside(tmp_path / "fresh.db"), view_key=VIEW_KEY)
    fresh.follow(world.ledger, batch=3)
    scratch = _tables(fresh)
    assert scratch[CASES] == before[CASES] and scratch[STEPS] == before[STEPS]
    delivery = ("status", "attempts", "last_error", "attempted_at", "delivered_at", "receipt")
    assert [{k: v for k, v in r.items() if k not in delivery} for r in scratch[OUTBOX]] == \
        [{k: v for k, v in r.items() if k not in delivery} for r in before[OUTBOX]]

    live.rebuild(world.ledger)
    assert _tables(live) == before  # the delivered record stays delivered
    assert live.counts() == {"delivered": 1, "pending": 3}
    assert [live.standing(APPLICANT.id_number, t + d) for t in times for d in (-US, US)] == answers
    # applying every entry a second time (two processes following one file) changes nothing
    with live.db.conn:
        for e in world.ledger.entries():
            live.apply(world.ledger.envelope(e), e.arrived_at)
    assert _tables(live) == before


def test_the_credit_cli_shows_standing_outbox_and_pushes(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path / "data")
    world = World(tmp_path)
    world.ledger.close()
    world.ledger = Ledger(settings.ledger_path)
    world.recorded()
    world.ledger.append([(s, decode_envelope(s.body), n, world.clock.now())
                         for n, s in world.store.outgoing_since(0, 1000)])

    class Obj:
        pass

    obj = Obj()
    obj.settings = settings  # type: ignore[attr-defined]

    def run(*args: str) -> Any:
        return invoke(credit_app, list(args), obj=obj)

    res = run(APPLICANT.id_number, "--json")
    assert res.exit_code == 0, res.output
    s = json.loads(res.stdout)
    assert (s["applicant"], s["standing"], s["may_use_commitment_route"]) == (
        "370405********1234", "unrepaired-false-commitment", False)
    assert APPLICANT.id_number not in res.stdout
    assert run("show", APPLICANT.id_number, "--at", "2026-09-01T09:00").exit_code == 0
    table = run(APPLICANT.id_number)
    assert "信用修复前不得适用告知承诺" in table.stdout and APPLICANT.id_number not in table.stdout
    assert "认定虚假承诺" in table.stdout and "已计入信用记录" in table.stdout and "区审批服务局" in table.stdout
    assert "found-false" not in table.stdout and "shenpi" not in table.stdout
    english = " ".join(invoke(credit_app, [APPLICANT.id_number], obj=obj, env={"XIEZHU_LANG": "en"}).stdout.split())
    assert "may not use the commitment route" in english and "found-false" in english
    for args in ([APPLICANT.id_number], ["outbox"]):  # 80 columns: folded, the case numbers whole
        narrow = invoke(credit_app, args, obj=obj, env={"COLUMNS": "80"}).stdout
        assert "…" not in narrow and max(Text(line).cell_len for line in narrow.splitlines()) <= 80, args
        assert "C2026" in narrow and ("待报送" in narrow or args != ["outbox"]), args
    assert credit_path(settings).exists()

    rows = json.loads(run("outbox", "--json").stdout)
    assert [(r["kind"], r["status"], r["applicant_masked"]) for r in rows] == [
        ("recorded", "pending", "370405********1234")]
    assert run("push", "--dir", str(tmp_path / "cc")).exit_code == 0
    assert [r["status"] for r in json.loads(run("outbox", "--json").stdout)] == ["delivered"]
    assert len(os.listdir(tmp_path / "cc")) == 1

    both = run("push", "--url", "http://127.0.0.1:9/", "--dir", str(tmp_path / "cc"))
    assert both.exit_code == 1 and "not both" in str(both.exception)
    bad = run("not-an-id")
    assert bad.exit_code == 1 and isinstance(bad.exception, CreditViewError)
    assert "Example" in run("push", "--help").stdout and "Example" in run("show", "--help").stdout
    world.ledger.close()


def test_supervision_after_an_all_exempt_case_closed_finds_it_false_and_the_applicant_is_barred(
        world: World) -> None:
    """三(三) 加强事中事后监管, 尤其是免于信息核查办理的: a false commitment found after closing still has
    its consequences and its credit record, and 四(二) bars the applicant from the commitment route."""
    case = world.apply()
    world.store.commitments.issue_notice(case)
    world.store.commitments.choose_route(case, "commitment")
    world.store.commitments.sign(case, world.clock.now().date())
    world.store.commitments.approve(case, "台审批许〔2026〕9号")
    world.store.commitments.plan_verification(case, [PlannedItem(no=1, method="online", exempt=True),
                                                     PlannedItem(no=2, method="online", exempt=True)])
    assert world.store.commitments.conclude(case).status == "closed"  # type: ignore[union-attr]  # closed at once
    assert world.relay().standing(APPLICANT.id_number, world.clock.now()) == "good"
    found = world.later(days=40)
    st = world.store.commitments.supervise(case, 2, "false", "双随机、一公开", "抽查发现申请人有犯罪记录")
    assert (st.status, st.false_items) == ("false-commitment", (2,))
    assert st.found_false_at is not None and st.found_false_at >= found
    st = world.store.commitments.revoke(case, WHY + "，撤销行政许可")
    assert st.status == "revoked" and st.licence_return_due is not None
    view = world.relay()
    assert view.standing(APPLICANT.id_number, world.clock.now()) == "unrepaired-false-commitment"
    assert view.standing(APPLICANT.id_number, found - US) == "good"  # barred from the finding, not before
    assert [r["kind"] for r in view.outbox()] == ["recorded"]
    with pytest.raises(errors.CreditGate):
        world.store.commitments.issue_notice(
            world.apply(standing=view.standing(APPLICANT.id_number, world.clock.now())))


def test_the_history_flags_a_false_commitment_whose_consequences_are_outstanding(world: World) -> None:
    """附件6: 推送监管部门予以惩处 and the licence back 撤销之日起2日内, as 区司法局 reads them from the ledger."""
    from projections.history import CONSEQUENCE_OUTSTANDING, history

    case, _ = world.recorded()  # revoked on Monday 09-21: the licence is due by 24:00 of 09-23
    world.relay()
    late = datetime(2026, 9, 25, 1, tzinfo=UTC)
    flags = [f for f in history(world.ledger, case, now=late).flags if f.startswith(CONSEQUENCE_OUTSTANDING)]
    assert [f.split(": ", 1)[1][:9] for f in flags] == ["尚未推送监管部门予", "证件原件逾期未交回"]
    world.store.commitments.notify_supervisor(case, "shichang", WHY + "，推送监管部门予以惩处")
    world.clock.set(datetime(2026, 9, 22, 1, tzinfo=UTC))
    world.store.commitments.return_licence(case, world.clock.now(), "交回许可证原件")
    world.relay()
    h = history(world.ledger, case, now=late)
    assert not [f for f in h.flags if f.startswith(CONSEQUENCE_OUTSTANDING)]
    assert any(line.type == "notice.punishment" and line.recipient == "shichang" for line in h.lines)


def test_the_commitment_route_reads_its_list_row_and_the_credit_view_not_the_caller(world: World,
                                                                                    tmp_path: Path) -> None:
    """一(三), 二(四), 四(二): 实施方式, the disclosure flag and the credit gate are not the caller's to say."""
    from aggregates.catalogue import NotListed
    from aggregates.store.catalogue import CatalogueRegistry
    from tests.test_catalogue import matter, through

    world.recorded()  # APPLICANT made a false commitment earlier
    view = world.relay()
    reg = CatalogueRegistry(tmp_path / "catalogue", world.clock)
    row = matter("ZM-shenpi-0001", owner="shenpi", service_matter_name="食品经营许可", mode="必须实行",
                 disclose_commitment=True)
    assert through(reg, "matters", "shenpi", adds=[row]) == 1
    world.store.catalogue = reg
    world.store.credit = view

    def apply(code: str, applicant: Applicant) -> str:  # the caller claims an optional, undisclosed, good case
        return world.store.commitments.open(applicant=applicant, matter_code=code, matter_name="别的事项",
                                            certificate_name="别的证明", issuing_unit="别的单位", mode="可选择",
                                            items=ITEMS, applied_on=world.clock.now().date(), disclose=False,
                                            standing="good").case

    with pytest.raises(NotListed):
        apply("370405-XK-9999", COMPANY)  # not on the published 附件8 list
    st = world.store.commitments.case(apply("ZM-shenpi-0001", COMPANY)).state
    assert (st.mode, st.disclose, st.matter_name, st.catalogue_version, st.standing) == (
        "必须实行", True, "食品经营许可", 1, "good")
    assert world.store.commitments.issue_notice(st.case).told_disclosure  # 二(四): the notice must say so
    barred = world.store.commitments.case(apply("ZM-shenpi-0001", APPLICANT)).state
    assert barred.standing == "unrepaired-false-commitment"  # from the credit view, whatever the caller said
    with pytest.raises(errors.CreditGate):
        world.store.commitments.issue_notice(barred.case)
    reg.close()


def test_the_signed_commitments_of_disclosed_matters_are_listed_for_publication(world: World, tmp_path: Path) -> None:
    """二(四): 对……决定向社会公开告知承诺书的，应当……向社会公开 — a list 区司法局's view can give, names masked."""
    from projections.commitments import CommitmentView

    def case(disclose: bool, *, refuse: bool = False) -> str:
        c = world.store.commitments.open(
            applicant=APPLICANT, matter_code="370405-XK-0101", matter_name="食品经营许可",
            certificate_name="无犯罪记录证明", issuing_unit="区公安分局", mode="可选择", items=ITEMS,
            applied_on=world.clock.now().date(), disclose=disclose).case
        if refuse:
            world.store.commitments.refuse_route(c, "disclosure-refused", "二(四)：当事人拒绝公开，应当提交证明。")
            return c
        world.store.commitments.issue_notice(c)
        world.store.commitments.choose_route(c, "commitment")
        world.store.commitments.sign(c, world.clock.now().date())
        return c

    public, _, _ = case(True), case(False), case(True, refuse=True)
    world.relay()
    view = CommitmentView(world.beside(tmp_path / "commitments.db"), view_key=VIEW_KEY)
    view.follow(world.ledger)
    [listed] = view.to_disclose()
    assert (listed["number"], listed["matter"], listed["applicant"]) == (
        world.store.commitments.case(public).state.number, "食品经营许可", "张*")
    assert listed["commitments"] == [i.text for i in ITEMS] and listed["id_number"] == "370405********1234"


class _StaleRead:
    """The ledger as a follower read it before another process caught the same view up: from the start."""

    def __init__(self, ledger: Ledger) -> None:
        self.ledger = ledger
        self.first = True

    def entries(self, after: int = 0, limit: int | None = None) -> Iterator[Any]:
        after, self.first = (0 if self.first else after), False
        return self.ledger.entries(after, limit)

    def envelope(self, entry: Any) -> Any:
        return self.ledger.envelope(entry)


def test_a_second_process_following_the_same_view_applies_nothing_twice(world: World, tmp_path: Path,
                                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    # The chaos campaign's clerk opened a case (the credit gate follows the view) while the ledger's
    # process followed it too: UNIQUE constraint failed: credit_seen.event_id, and the command died.
    world.recorded()
    before = _tables(world.relay())
    # its own connection, as another process's
    clerk = CreditView(world.beside(tmp_path / "credit.db"), view_key=VIEW_KEY)
    applied: list[int] = []
    apply_entry = clerk.apply_entry

    def counted(entry: Any, env: Any) -> None:
        applied.append(entry.pos)
        apply_entry(entry, env)
    monkeypatch.setattr(clerk, "apply_entry", counted)
    assert clerk.follow(cast(Ledger, _StaleRead(world.ledger))) == 0
    assert applied == [] and _tables(clerk) == before


def test_two_processes_opening_a_new_view_at_once_create_its_tables_once(tmp_path: Path) -> None:
    # The kill -9 campaign's driver opened the credit view for the gate while the ledger's process
    # created it: both saw no table, the second CREATE failed ("table credit_cases already exists").
    import sqlite3

    path = tmp_path / "credit.db"
    other = sqlite3.connect(path, isolation_level=None)  # the other process, half-way through creating it
    other.execute("PRAGMA journal_mode=WAL")
    other.execute("BEGIN IMMEDIATE")
    other.execute(f"CREATE TABLE {CASES} (x)")
    opened: list[object] = []
    t = threading.Thread(target=lambda: opened.append(_open_or_error(path)))
    t.start()
    t.join(0.5)  # it waits for the other's write lock before it looks
    assert t.is_alive() and not opened
    other.execute("ROLLBACK")  # the other gave up: this one creates everything
    t.join(10)
    assert isinstance(opened[0], CreditView), opened
    cast(CreditView, opened[0]).db.conn.close()
    other.close()


def _open_or_error(path: Path) -> object:
    try:
        return CreditView(path, view_key=VIEW_KEY)
    except Exception as e:  # noqa: BLE001 - the test reports it
        return e
