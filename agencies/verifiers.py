"""Verifiers: a bureau's agent answers a commitment by itself when its own data can tell.

Each verifier owns a few check keys (``CommitmentItem.check``) and reads the bureau's own
SQLite data.  It returns ``None`` when it cannot decide (no record of the applicant, say):
then the request waits in the operator inbox, because a person may know more (archives
from before the reform, 第五条) than the database.
"""
from __future__ import annotations

import sqlite3
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any, Protocol

import sqlite_utils

from schemas.assistance import Applicant, CommitmentItem, ItemResult


class Verifier(Protocol):
    """Answers the items whose ``check`` is in ``checks``."""

    name: str
    checks: frozenset[str]

    def verify(self, applicant: Applicant, item: CommitmentItem) -> ItemResult | None: ...


def answer_all(verifiers: Sequence[Verifier], applicant: Applicant,
               items: Iterable[CommitmentItem]) -> tuple[list[ItemResult], list[str]] | None:
    """Results for every item and the verifiers used, or ``None`` if any item needs a person."""
    by_check = {c: v for v in verifiers for c in v.checks}
    results, used = [], []
    for item in items:
        v = by_check.get(item.check)
        result = v.verify(applicant, item) if v else None
        if v is None or result is None:
            return None
        results.append(result)
        if v.name not in used:
            used.append(v.name)
    return results, used


def _result(item: CommitmentItem, ok: bool, why_false: str = "") -> ItemResult:
    return ItemResult(no=item.no, verdict="true" if ok else "false", reason="" if ok else why_false)


class _TableVerifier:
    """Shared plumbing: one SQLite file, one table keyed by the applicant's number."""

    name = ""
    checks: frozenset[str] = frozenset()
    table = ""

    def __init__(self, path: Path) -> None:
        self.db = sqlite_utils.Database(sqlite3.connect(path, check_same_thread=False))

    def _row(self, applicant: Applicant) -> dict[str, Any] | None:
        if not self.db[self.table].exists():
            return None
        try:
            return dict(self.db[self.table].get(applicant.id_number))  # type: ignore[union-attr]
        except sqlite_utils.db.NotFoundError:
            return None


class PublicSecurityVerifier(_TableVerifier):
    """区公安分局: 户籍 (residence, identity) and 无犯罪记录 claims, from the household register."""

    name = "hukou"
    checks = frozenset({"hukou.identity", "hukou.residence", "police.no-criminal-record"})
    table = "residents"

    def verify(self, applicant: Applicant, item: CommitmentItem) -> ItemResult | None:
        row = self._row(applicant)
        if row is None:
            return None
        match item.check:
            case "hukou.identity":
                return _result(item, row["name"] == applicant.name, "户籍登记姓名与申请人不符")
            case "hukou.residence":
                claimed = item.facts.get("address", "")
                return _result(item, bool(claimed) and claimed in row["residence"], "户籍所在地与承诺不符")
            case "police.no-criminal-record":
                return _result(item, not row["criminal_record"], "申请人有犯罪记录")
        return None


class MarketRegulationVerifier(_TableVerifier):
    """区市场监管局: 营业执照 claims (existence, name, status, business scope), from the register."""

    name = "licence"
    checks = frozenset({"licence.valid", "licence.name", "licence.scope"})
    table = "businesses"

    def verify(self, applicant: Applicant, item: CommitmentItem) -> ItemResult | None:
        row = self._row(applicant)
        if row is None:
            return None
        match item.check:
            case "licence.valid":
                return _result(item, row["status"] == "存续", f"营业执照状态为{row['status']}")
            case "licence.name":
                return _result(item, row["name"] == applicant.name, "登记名称与申请人不符")
            case "licence.scope":
                scope = item.facts.get("scope", "")
                return _result(item, bool(scope) and scope in row["scope"], "经营范围不含所承诺事项")
        return None


class SocialInsuranceVerifier(_TableVerifier):
    """区人力资源社会保障局: 社保缴纳 claims (months paid, current employer)."""

    name = "shebao"
    checks = frozenset({"shebao.months"})
    table = "insured"

    def verify(self, applicant: Applicant, item: CommitmentItem) -> ItemResult | None:
        row = self._row(applicant)
        if row is None:
            return None
        try:
            needed = int(item.facts.get("months", "0"))
        except ValueError:
            return ItemResult(no=item.no, verdict="unverifiable", reason="承诺的缴费月数不是数字")
        return _result(item, row["months"] >= needed, f"实际缴费{row['months']}个月")


#: Which bureau runs which verifiers over which data file (``<bureau dir>/data.db``).
VERIFIERS: dict[str, list[type[_TableVerifier]]] = {
    "gongan": [PublicSecurityVerifier],
    "shichang": [MarketRegulationVerifier],
    "renshe": [SocialInsuranceVerifier],
}


def verifiers_for(code: str, data_file: Path) -> list[Verifier]:
    """The verifiers of bureau ``code`` over its own data file."""
    return [cls(data_file) for cls in VERIFIERS.get(code, [])]  # type: ignore[misc]
