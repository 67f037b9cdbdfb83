"""区政府's own steps over NATS: its decision on an escalated dispute (第八条) and its criticism (第十二条),
signed by 区政府办公室, travel to the bureau concerned and to the ledger.

One node with four agents walks a whole dispute to 区政府 and back (about 4 s): the decision must be
applied by 区司法局's agent from the wire, which no store-level test shows.
"""
from __future__ import annotations

from datetime import date

import msgspec

from aggregates.clock import SimulatedClock
from aggregates.dispute import DisputeState
from aggregates.registry import Registry
from projections.history import find_cases, history
from schemas.assistance import CommitmentItem, Matter
from schemas.envelope import LEDGER
from tests.conftest import ITEMS, make_node
from tests.test_store import APPLICANT
from xiezhu.demo_dispute import _answer, _deliver, _fail, _raise
from xiezhu.settings import Settings

COMMITMENTS = [CommitmentItem(no=1, text="本人无犯罪记录", check="police.no-criminal-record")]


async def test_over_nats_the_district_government_decides_an_escalated_dispute_and_criticises_a_bureau(
        settings: Settings, registry: Registry, clock: SimulatedClock) -> None:
    node = make_node(settings, registry, clock, agents=("shenpi", "ziran", "sifa", "zhengfuban"))
    await node.start()
    try:
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
        justice, government = node.justice(), node.system.government()
        justice.take_up(raised.case, "双方协商不成，由区司法局会同区委编办研究确定。")
        justice.escalate(raised.case, "涉及部门职责划分，提请区政府作出决定。")
        await _deliver(node)
        assert node.ledger is not None
        government.decide(node.ledger, raised.number, "shenpi", "区政府决定：由区公安分局协助核查。",
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
