"""A 第八条 dispute for the demo: a requester disputes a decline, negotiation fails, 区司法局 rules.

The requester raises the dispute with 区司法局 (its agent receives it over NATS); the assistor
takes it up from the signed raise and both parties note the negotiation, which fails (协商不成).
区司法局 takes the dispute up and, with 区委编办, determines it (研究确定): the ruling amends the
assistance catalogue through an adjustment 区司法局 applies under the dispute's number, which it
reviews, publishes as a new version and files with 市司法局.
"""
from __future__ import annotations

import asyncio
from typing import Any

import msgspec

from aggregates.assistance import CaseState
from aggregates.dispute import DisputeState
from schemas.catalogue import AssistanceItem
from xiezhu.node import Node

CLAIM = ("本机关依《行政协助事项清单》所列事项提出协助请求，被请求机关以“不属于本机关职权范围”为由拒绝，"
         "与清单所列协助机构不符，请区司法局协调。")


async def dispute_a_decline(node: Node, requester: str | None = None) -> dict[str, Any] | None:
    """Raise, negotiate (failed), refer and rule with a catalogue amendment; its summary, or None.

    ``None`` when no request of ``requester`` (or of any running agent) was declined.  Needs
    the ``sifa`` agent among the node's agents, with its catalogue.
    """
    found = await asyncio.to_thread(_declined, node, requester)
    if found is None:
        return None
    raised = await asyncio.to_thread(_raise, node, found)
    await _deliver(node)
    await asyncio.to_thread(_answer, node, raised)
    await _deliver(node)
    await asyncio.to_thread(_fail, node, raised)
    await _deliver(node)
    summary = await asyncio.to_thread(_rule, node, raised, found)
    await _deliver(node)
    return summary


async def _deliver(node: Node) -> None:
    node.wake_relays()
    await node.settle()


def _declined(node: Node, requester: str | None) -> CaseState | None:
    """The first declined request made for a catalogue item, at ``requester`` or any running agent."""
    for code in [requester] if requester else node.agent_codes:
        for st in node.desk(code).requests():
            if st.requester == code and st.status == "declined" and st.request.catalogue_item:
                return st
    return None


def _raise(node: Node, case: CaseState) -> DisputeState:
    evidence = [f"行政协助函 {case.number}", f"行政协助事项清单 {case.request.catalogue_item} "
                f"（第 {case.request.catalogue_version} 版）", f"书面告知：{case.reasons}"[:500]]
    return node.desk(case.requester).raise_dispute(case.case, CLAIM, evidence)


def _answer(node: Node, raised: DisputeState) -> None:
    """The assistor takes the dispute up from the signed raise and states its view."""
    signed = node.desk(raised.raised_by).signed_dispute(raised.case)[0]
    other = node.desk(raised.other_party)
    other.take_up_dispute(signed)
    other.negotiate(raised.case, "本机关未掌握该事项的登记信息，认为应由其他部门核查。")


def _fail(node: Node, raised: DisputeState) -> None:
    """The requester records that the negotiation failed (协商不成)."""
    node.desk(raised.raised_by).negotiate(raised.case, "双方对协助机构的认定不能达成一致，协商不成。", "failed")


def _rule(node: Node, raised: DisputeState, case: CaseState) -> dict[str, Any]:
    """区司法局 takes it up, amends the item's row under the dispute, publishes, files and rules."""
    justice, cat = node.justice(), node.catalogue
    justice.take_up(raised.case, "双方协商不成，由区司法局会同区委编办研究确定。")
    row = cat.item(case.request.catalogue_item)
    ruling = (f"经区司法局会同区委编办研究确定：“{row.item_name}”由{node.registry.name(case.assistor)}"
              f"依其登记信息协助核查，应当在时限内回复。")
    amended: AssistanceItem = msgspec.structs.replace(
        row, notes=f"附件2第八条争议 {raised.number}：{ruling}"[:2000])
    adjustment = justice.amend(raised.case, "assistance", f"附件2第八条，争议 {raised.number} 研究确定意见",
                               replaces=[amended])
    justice.review(adjustment, approve=True)
    version = justice.publish("assistance")
    ruled = justice.rule(raised.case, ruling, adjustment=adjustment)
    return {"number": ruled.number, "raised_by": ruled.raised_by, "other_party": ruled.other_party,
            "about": ruled.assistance_number, "status": ruled.status, "adjustment": adjustment,
            "catalogue_version": version}
