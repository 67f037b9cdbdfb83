"""The bureau registry as people name bureaus: by code, Chinese name, 简称 or a unique part; licence numbers."""
from __future__ import annotations

import pytest

from aggregates.registry import Registry, RegistryError


@pytest.fixture(scope="module")
def reg() -> Registry:
    return Registry.load()


@pytest.mark.parametrize("text", ["gongan", "区公安分局", "公安", "公安分局", " 区公安分局 "])
def test_a_bureau_is_found_by_code_name_short_name_or_a_unique_part(reg: Registry, text: str) -> None:
    assert reg.resolve(text) == "gongan"


def test_an_ambiguous_part_names_the_candidates(reg: Registry) -> None:
    with pytest.raises(RegistryError, match="fits 5 bureaus.*张山子镇人民政府（zhangshanzi）"):
        reg.resolve("镇人民政府")


def test_an_unknown_name_says_where_to_look(reg: Registry) -> None:
    with pytest.raises(RegistryError, match="xiezhu bureaus"):
        reg.resolve("区不存在局")


def test_every_bureau_has_a_unique_short_name(reg: Registry) -> None:
    shorts = [reg.short(b.code) for b in reg]
    assert all(shorts) and len(set(shorts)) == len(shorts)


def test_licence_numbers_carry_the_chinese_short_name_not_the_code(reg: Registry) -> None:
    assert reg.licence_number("shenpi", 2026, 1) == "台审批许〔2026〕0001号"
    assert reg.licence_number("weijian", 2026, 17) == "台卫健许〔2026〕0017号"
    # An approval that is no licence (a 行政给付) is numbered as a decision.
    assert reg.decision_number("minzheng", 2026, 4, licence=False) == "台民政决〔2026〕0004号"
    assert reg.decision_number("shenpi", 2026, 1, licence=True) == "台审批许〔2026〕0001号"
