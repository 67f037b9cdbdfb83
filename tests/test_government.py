"""区政府's own steps over NATS: its publication of the 证明事项清单 (一(三)), its decision on an escalated
dispute (第八条) and its criticism (第十二条), signed by 区政府办公室, travel to the bureau concerned and
to the ledger.

One node with four agents walks a whole dispute to 区政府 and back (about 4 s): the decision must be
applied by 区司法局's agent from the wire, which no store-level test shows.
"""
from __future__ import annotations

from datetime import date
from pathlib import Path

import msgspec
import pytest

from aggregates.catalogue import NotPublisher
from aggregates.clock import SimulatedClock
from aggregates.dispute import DisputeState
from aggregates.registry import Registry
from aggregates.workdays import WorkingCalendar
from projections.history import find_cases, history
from projections.replay import replay
from schemas.assistance import CommitmentItem, Matter
from schemas.catalogue import MatterRow
from schemas.envelope import LEDGER
from tests.conftest import ITEMS, START, StoreLocations, make_node
from tests.test_store import APPLICANT
from xiezhu.demo_dispute import _answer, _deliver, _fail, _raise
from xiezhu.settings import Settings

COMMITMENTS = [CommitmentItem(no=1, text="本人无犯罪记录", check="police.no-criminal-record")]
BASIS = "《国务院办公厅关于全面推行证明事项告知承诺制的指导意见》"
MATTER = MatterRow(code="ZM-shenpi-0001", seq=1, service_matter_name="食品经营许可",
                   service_matter_code="370405-XK-0101", certificate_name="无犯罪记录证明", legal_basis=BASIS,
                   handling_body="shenpi", issuing_unit="区公安分局", mode="可选择",
                   verification_methods=["部门间行政协助"], owner="shenpi")


async def test_over_nats_the_district_government_publishes_the_list_decides_a_dispute_and_criticises(
        settings: Settings, registry: Registry, clock: SimulatedClock) -> None:
    node = make_node(settings, registry, clock, agents=("shenpi", "ziran", "sifa", "zhengfuban"))
    await node.start()
    try:
        # 一(三): shenpi lists its matter, 区司法局 reviews, 区政府 publishes and signs the act to 区司法局.
        justice, government = node.justice(), node.system.government()
        justice.review(node.desk("shenpi").apply_adjustment("matters", BASIS, adds=[MATTER]), approve=True)
        with pytest.raises(NotPublisher):
            justice.publish("matters")
        assert government.publish_list() == (1, True)
        assert government.publish_list() == (1, False)  # once
        await _deliver(node)
        [published] = [n for n in node.store("sifa").notices.received() if n.type == "notice.list-published"]
        assert (published.sender, published.number) == ("zhengfuban", "L20260001")
        assert node.ledger is not None
        [lines] = [history(node.ledger, c).lines for c in find_cases(node.ledger, "L20260001", "zhengfuban")]
        [line] = lines
        assert line.summary.startswith("一(三): 区政府公布证明事项清单第1版 (1 rows, digest ")
        replayed = replay(node.ledger, find_cases(node.ledger, "L20260001")[0], node.ring,
                          WorkingCalendar())
        assert (replayed.kind, replayed.status, [e.signature.valid for e in replayed.events]) == (
            "list", "published", [True])
        request = node.store("shenpi").assistance.request(
            assistor="ziran", applicant=APPLICANT, matter=Matter(code="370405-XK-0101", name="食品经营许可"),
            applied_on=date(2026, 9, 21), items=COMMITMENTS, catalogue_item=ITEMS["ziran"])
        await _deliver(node)
        node.store("ziran").assistance.decline(request.case, "不属于本机关职权范围。", "operator:王伟")
        await _deliver(node)
        case = node.desk("shenpi").request(request.case)
        raised = _raise(node, case)
        await _deliver(node)
        _answer(node, raised)
        await _deliver(node)
        _fail(node, raised)
        await _deliver(node)
        justice.take_up(raised.case, "双方协商不成，由区司法局会同区委编办研究确定。")
        justice.escalate(raised.case, "涉及部门职责划分，提请区政府作出决定。")
        await _deliver(node)
        government.decide(node.ledger, raised.case, raised.number, "区政府决定：由区公安分局协助核查。",
                          "台政字〔2026〕5号")
        government.criticise("ziran", "通报批评", [(request.case, request.number)], "推诿行政协助请求",
                             date(2026, 10, 30))
        await _deliver(node)
        at_sifa = node.store("sifa").disputes.case(raised.case).state
        assert (at_sifa.status, at_sifa.decided_by) == ("decided", "zhengfuban")
        row = node.catalogue.item(ITEMS["ziran"])
        adj = justice.amend(raised.case, "assistance", f"区政府关于争议 {raised.number} 的决定",
                            replaces=[msgspec.structs.replace(row, notes="区政府决定：由区公安分局协助核查")])
        justice.review(adj, approve=True)
        justice.publish("assistance")
        assert justice.take_in(raised.case, adj).status == "catalogued"
        await _deliver(node)
        [dispute_case] = find_cases(node.ledger, raised.number, "shenpi")
        h = history(node.ledger, dispute_case)
        assert [(line.type, line.sender, line.recipient) for line in h.lines][-3:] == [
            ("dispute.escalated", "sifa", LEDGER), ("dispute.decided", "zhengfuban", "sifa"),
            ("dispute.catalogued", "sifa", LEDGER)]
        assert isinstance(h.state, DisputeState) and h.state.status == "catalogued" and not h.flags
        assert [n.type for n in node.store("ziran").notices.received()] == ["notice.criticism"]
        assert any(line.summary.startswith("第十二条: 区政府对ziran通报批评")
                   for line in history(node.ledger, request.case).lines)
        for code in ("sifa", "ziran"):
            intake = node.agents[code].intake
            assert intake is not None and intake.stats.rejected == 0
    finally:
        await node.stop()


def test_sifa_keeps_only_the_district_governments_publication_of_the_rows_it_published(
        store_location: StoreLocations) -> None:
    """一(三): 区司法局's store refuses a publication signed by anyone but 区政府办公室, or naming other rows."""
    from aggregates.errors import RuleError
    from aggregates.store import BureauStore
    from aggregates.store.catalogue import CatalogueRegistry
    from schemas.envelope import decode_envelope
    from tests.test_signing import make_signer

    clock = SimulatedClock(START)
    catalogue = CatalogueRegistry(None, clock)
    catalogue.review(catalogue.apply_adjustment("matters", "shenpi", BASIS, adds=[MATTER]), True)
    version = catalogue.publish("matters", publisher="zhengfuban")
    v1 = catalogue.version("matters", version)
    stores = {c: BureauStore(c, store_location(c), make_signer(c).sign, clock, catalogue)
              for c in ("zhengfuban", "sifa", "shenpi")}
    with pytest.raises(RuleError, match="区政府"):
        stores["shenpi"].notices.publish_list("matters", 1, v1.digest, 1, v1.published_at)
    other = BureauStore("zhengfuban", store_location("other"), make_signer("zhengfuban").sign, clock, catalogue)
    assert other.notices.publish_list("matters", 1, "0" * 64, 1, v1.published_at)
    assert other.notices.publish_list("matters", 2, v1.digest, 1, v1.published_at)
    assert stores["zhengfuban"].notices.publish_list("matters", 1, v1.digest, 1, v1.published_at)
    assert not stores["zhengfuban"].notices.publish_list("matters", 1, v1.digest, 1, v1.published_at)  # once
    wrong_rows, wrong_version = [s for _, s in other.outgoing_since(0, 10)]
    [right] = [s for _, s in stores["zhengfuban"].outgoing_since(0, 10)]
    for signed in (wrong_rows, wrong_version):
        with pytest.raises(RuleError, match="does not hold as published"):
            stores["sifa"].accept(signed, decode_envelope(signed.body), stream_seq=1, arrived_at=clock.now())
    forged = stores["shenpi"].sign(msgspec.structs.replace(decode_envelope(right.body), sender="shenpi"))
    with pytest.raises(RuleError, match="published by 区政府"):
        stores["sifa"].accept(forged, decode_envelope(forged.body), stream_seq=2, arrived_at=clock.now())
    stores["sifa"].accept(right, decode_envelope(right.body), stream_seq=3, arrived_at=clock.now())
    assert [(n.type, n.number) for n in stores["sifa"].notices.received()] == [("notice.list-published", "L20260001")]


def test_the_district_government_publishes_the_list_from_the_command_line_and_a_failure_changes_nothing(
        tmp_path: Path) -> None:
    """一(三) from the command line: 区司法局 reviews, ``xiezhu government publish`` publishes version 1 as
    区政府's act; without 区政府办公室's key it is one error line and the list stays unpublished."""
    import json

    from tests.helpers import xiezhu_here

    def versions() -> list[dict[str, object]]:
        return json.loads(xiezhu_here("catalogue", "versions", "--kind", "matters", "--json", data_dir=tmp_path).stdout)

    sheet = Path(__file__).resolve().parent.parent / "examples" / "shenpi-matters.csv"
    xiezhu_here("catalogue", "apply", "--kind", "matters", "--bureau", "shenpi", "--basis", "梳理本系统证明事项",
                str(sheet), data_dir=tmp_path)
    xiezhu_here("catalogue", "review", "matters-0001", "--approve", data_dir=tmp_path)
    refused = xiezhu_here("catalogue", "publish", "--kind", "matters", data_dir=tmp_path, check=False)
    assert refused.returncode == 1 and "由区政府办公室公布" in refused.stderr and versions() == []
    nokey = xiezhu_here("government", "publish", data_dir=tmp_path, check=False)
    assert nokey.returncode == 1 and nokey.stderr.startswith("错误：") and "Traceback" not in nokey.stderr
    assert versions() == []  # nothing published without the act 区政府办公室 signs
    xiezhu_here("keys", "init", data_dir=tmp_path)
    done = xiezhu_here("government", "publish", data_dir=tmp_path)
    assert "一(三)：区政府公布证明事项清单第1版" in done.stdout + done.stderr
    [v1] = versions()
    assert (v1["version"], v1["published_by"]) == (1, "zhengfuban")
    again = xiezhu_here("government", "publish", data_dir=tmp_path, check=False)
    assert again.returncode == 1 and "已公布" in again.stderr
