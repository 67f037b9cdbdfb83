"""Tables at 80 columns and redirected: wrap instead of cut, drop by priority, identifying columns whole."""
from __future__ import annotations

import io

import pytest
from rich.console import Console
from rich.text import Text

from schemas.errors import XiezhuError
from xiezhu.cli.tables import Col, fit, lang, show

COLS = [Col("number", "文号", "number", ident=True), Col("parties", "请求 → 协助", "from → to", ident=True,
                                                      short="short"),
        Col("matter", "事项", "matter", drop=3), Col("due", "期限", "due", drop=2), Col("days", "用时", "days", drop=5),
        Col("state", "时限状态", "state")]
ROWS = [{"number": "20260001", "parties": "区住房城乡建设局 → 区市场监管局", "short": "住建 → 市场监管",
         "matter": "建筑业企业资质（一级）" * 3, "due": "09-24", "days": "2", "state": "逾期未答复"},
        {"number": "20260001", "parties": "区审批服务局 → 区公安分局", "short": "审批 → 公安",
         "matter": "食品经营许可", "due": "09-25", "days": "0", "state": "已按期答复"}]


def render(monkeypatch: pytest.MonkeyPatch, columns: str | None, language: str = "zh") -> str:
    if columns is None:
        monkeypatch.delenv("COLUMNS", raising=False)
    else:
        monkeypatch.setenv("COLUMNS", columns)
    buf = io.StringIO()
    show("行政协助", COLS, ROWS, language=lang(language), console=Console(file=buf, highlight=False))
    return buf.getvalue()


def test_at_80_columns_nothing_is_cut_and_the_rows_stay_apart(monkeypatch: pytest.MonkeyPatch) -> None:
    text = render(monkeypatch, "80")
    assert "…" not in text
    assert max(Text(line).cell_len for line in text.splitlines()) <= 80
    assert text.count("20260001") == 2 and "住建 → 市场监管" in text and "审批 → 公安" in text


def test_at_50_columns_low_priority_columns_go_and_a_note_says_which(monkeypatch: pytest.MonkeyPatch) -> None:
    text = render(monkeypatch, "50")
    assert "…" not in text and "窄屏省略：用时" in text
    assert text.count("20260001") == 2 and "住建 → 市场监管" in text


def test_redirected_without_columns_every_cell_is_whole(monkeypatch: pytest.MonkeyPatch) -> None:
    text = render(monkeypatch, None)
    assert "建筑业企业资质（一级）" * 3 in text and "区住房城乡建设局 → 区市场监管局" in text
    assert "…" not in text and "窄屏省略" not in text


def test_columns_are_dropped_largest_drop_first() -> None:
    shown, dropped = fit(COLS, ROWS, 60)
    assert [c.key for c in dropped][:1] == ["days"]
    assert {"number", "short", "state"} <= {c.key for c in shown}


def test_english_headers_on_request(monkeypatch: pytest.MonkeyPatch) -> None:
    text = render(monkeypatch, "200", "en")
    assert "from → to" in text and "时限状态" not in text


def test_the_language_comes_from_the_option_or_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("XIEZHU_LANG", raising=False)
    assert lang() == "zh" and lang("en") == "en"
    monkeypatch.setenv("XIEZHU_LANG", "en_US.UTF-8")
    assert lang() == "en" and lang("zh") == "zh"
    with pytest.raises(XiezhuError, match="zh or en"):
        lang("fr")


def test_a_dropped_column_comes_back_when_rows_would_read_the_same() -> None:
    cols = [Col("number", "文号", "number", ident=True), Col("state", "状态", "state"),
            Col("matter", "事项", "matter", drop=1)]
    rows = [{"number": "20260001", "state": "逾期", "matter": "甲" * 40},
            {"number": "20260001", "state": "逾期", "matter": "乙" * 40}]
    shown, dropped = fit(cols, rows, 30)
    assert [c.key for c in shown] == ["number", "state", "matter"] and dropped == []
