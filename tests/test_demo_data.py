"""The demo's world reads like a district's (issue 11, point 10): real names, claims, parties and legal bases."""
from __future__ import annotations

import random
import re
from pathlib import Path

from aggregates.registry import Registry
from xiezhu.demo import DECLINE_REASONS
from xiezhu.demo_data import FLOWS, make_items, seed_bureau_data
from xiezhu.settings import Settings

GENERIC_BASIS = "国办发〔2020〕42号"


def test_each_flow_has_its_own_parties_supervisor_and_legal_basis() -> None:
    registry = Registry.load()
    for flow in FLOWS:
        assert flow.requester != flow.assistor, flow  # no bureau asks itself
        for code in (flow.requester, flow.assistor, flow.supervisor):
            assert registry.name(code) != code, (flow.matter_name, code)  # registered, with a Chinese name
        # 附件8 设定依据: the matter's own law, not the policy document every matter shares
        assert "《" in flow.basis and GENERIC_BASIS not in flow.basis, flow.matter_name
        assert registry.name(flow.assistor) == flow.issuing_unit or flow.on_site, flow.matter_name
        if "" in flow.checks:
            assert flow.claim, flow.matter_name  # a commitment a person checks has its words
        if flow.kind == "organisation":
            assert flow.trades, flow.matter_name


def test_a_decline_never_sends_the_requester_back_to_itself() -> None:
    registry = Registry.load()
    declining = {f.requester for f in FLOWS if f.assistor == "wenlv"}  # the demo's declining bureau
    assert declining
    for code in declining:
        assert registry.name(code) not in DECLINE_REASONS


def test_applicants_have_real_names_and_apply_for_matters_of_their_trade(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path)
    rng = random.Random(1)
    population = seed_bureau_data(settings, rng)
    names = [o.name for o in population.organisations]
    assert len(set(names)) == len(names)
    assert not [n for n in names if re.search(r"\d", n)]  # no "有限公司86"
    for flow in FLOWS:
        if flow.kind != "organisation":
            continue
        fitting = population.in_trade(flow.trades)
        assert fitting and fitting != population.organisations, flow.matter_name
        assert all(any(f"{t}有限公司" in o.name for t in flow.trades) for o in fitting)
        for item in make_items(flow, fitting[0], settings, rng):
            assert item.text.strip() and "{" not in item.text
    for flow in FLOWS:
        if flow.kind == "person":
            for item in make_items(flow, population.persons[0], settings, rng):
                assert item.text.strip() and "{" not in item.text
