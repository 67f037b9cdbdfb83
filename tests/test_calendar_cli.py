"""``xiezhu calendar …`` and ``xiezhu sla …`` as an operator runs them, on a small hand-made ledger."""
from __future__ import annotations

import json
import subprocess
from datetime import datetime
from pathlib import Path

import pytest

from aggregates.workdays import SHANGHAI
from broker.ledger.store import Ledger
from tests.helpers import xiezhu_here as run
from tests.test_sla import Book
from xiezhu.settings import Settings

SCHEDULE = ('year = 2027\nholidays = [2027-02-08, 2027-02-09, 2027-02-10, 2027-02-11, 2027-02-12]\n'
            'workdays = [2027-02-20]\nsource = "test schedule, not the State Council\'s"\n')


def xiezhu(*args: str, data_dir: Path, check: bool = True) -> subprocess.CompletedProcess[str]:
    return run(*args, data_dir=data_dir, check=check, timeout=120)


def one_error_line(proc: subprocess.CompletedProcess[str]) -> str:
    assert proc.returncode == 1, proc.stderr
    assert "Traceback" not in proc.stderr and proc.stderr.startswith("错误："), proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1, proc.stderr
    return proc.stderr


def sh(*args: int) -> datetime:
    return datetime(*args, tzinfo=SHANGHAI)


@pytest.fixture
def data(tmp_path: Path) -> Path:
    """A data directory whose ledger holds four requests around National Day 2026 and one in 2027."""
    d = tmp_path / "xiezhu"
    ledger = Ledger(Settings(data_dir=d).ledger_path)
    book = Book(ledger)
    book.arrived(sh(2026, 9, 30, 10))  # due 24:00 10-10: overdue at 10-12
    book.reply(book.arrived(sh(2026, 9, 29, 10)), sh(2026, 10, 12, 9))  # due 24:00 10-09: answered late
    book.decline(book.arrived(sh(2026, 9, 30, 11), assistor="ziran"), sh(2026, 10, 8, 9))  # declined on time
    book.arrived(sh(2026, 10, 9, 10), assistor="ziran")  # due 24:00 10-13: due soon at 10-12
    book.arrived(sh(2027, 2, 4, 10))  # provisional until 2027 is loaded
    ledger.close()
    return d


def schedule_file(tmp_path: Path, text: str = SCHEDULE, name: str = "2027.toml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


# --- xiezhu calendar due ----------------------------------------------------------------------------------


def test_calendar_due_prints_24_00_of_the_last_working_day(tmp_path: Path) -> None:
    proc = xiezhu("calendar", "due", "--from", "2026-09-30T10:00+08:00", "--working-days", "3", data_dir=tmp_path)
    assert "最后一个工作日  2026-10-10（星期六）" in proc.stdout
    assert "期限届满        2026-10-11T00:00:00+08:00（2026-10-10 24 时）" in proc.stdout
    assert "暂定            否" in proc.stdout
    proc = xiezhu("--lang", "en", "calendar", "due", "--from", "2026-09-30T10:00+08:00", "--working-days", "3",
                  data_dir=tmp_path)
    assert "last working day  2026-10-10 (Saturday)" in proc.stdout
    assert "deadline ends     2026-10-11T00:00:00+08:00  (24:00 of 2026-10-10)" in proc.stdout
    assert "provisional       no" in proc.stdout


def test_calendar_due_json_reads_a_naive_time_in_shanghai(tmp_path: Path) -> None:
    proc = xiezhu("calendar", "due", "--from", "2026-09-30T10:00", "--working-days", "3", "--json", data_dir=tmp_path)
    assert json.loads(proc.stdout) == {"from": "2026-09-30T10:00:00+08:00", "working_days": 3,
                                       "last_working_day": "2026-10-10", "ends_at": "2026-10-11T00:00:00+08:00",
                                       "provisional": False}
    utc = xiezhu("calendar", "due", "--from", "2026-10-09T17:00Z", "--working-days", "1", "--json",
                 data_dir=tmp_path)
    assert json.loads(utc.stdout)["last_working_day"] == "2026-10-12"  # it arrived 01:00 10-10 in Shanghai


def test_a_2027_deadline_is_provisional_until_its_schedule_is_loaded(tmp_path: Path) -> None:
    args = ("calendar", "due", "--from", "2027-02-04T10:00+08:00", "--working-days", "3", "--json")
    before = json.loads(xiezhu(*args, data_dir=tmp_path).stdout)
    assert (before["last_working_day"], before["provisional"]) == ("2027-02-09", True)
    loaded = xiezhu("calendar", "load", str(schedule_file(tmp_path)), data_dir=tmp_path)
    assert loaded.stdout.startswith("已载入 2027 年：节假日 5 天，调休工作日 1 天")
    assert str(tmp_path / "calendar" / "2027.toml") in loaded.stdout
    after = json.loads(xiezhu(*args, data_dir=tmp_path).stdout)
    assert (after["last_working_day"], after["provisional"]) == ("2027-02-16", False)


@pytest.mark.parametrize("args", [
    ["--from", "30/09/2026", "--working-days", "3"],
    ["--from", "2026-09-30T10:00+08:00", "--working-days", "0"],
])
def test_calendar_due_with_a_bad_argument_is_one_error_line(tmp_path: Path, args: list[str]) -> None:
    one_error_line(xiezhu("calendar", "due", *args, data_dir=tmp_path, check=False))


# --- xiezhu calendar load ---------------------------------------------------------------------------------


@pytest.mark.parametrize(("text", "reason"), [
    ("year = 2027\nholidays = [2027-02-30]\n", "不是有效的 TOML"),
    ("year = 2027\nholidays = [2026-12-31]\n", "不在 2027 年内"),
    ("year = 2027\nholidays = [2027-02-08]\nworkdays = [2027-02-08]\n", "既是节假日又是调休工作日"),
    ("year = 2027\nholiday = [2027-02-08]\n", "不符合节假日安排的格式"),
])
def test_a_bad_schedule_file_is_one_error_line_and_changes_nothing(tmp_path: Path, data: Path, text: str,
                                                                  reason: str) -> None:
    xiezhu("calendar", "load", str(schedule_file(tmp_path)), data_dir=data)
    stored = (data / "calendar" / "2027.toml").read_bytes()
    proc = xiezhu("calendar", "load", str(schedule_file(tmp_path, text, "bad.toml")), data_dir=data, check=False)
    assert reason in one_error_line(proc)
    assert (data / "calendar" / "2027.toml").read_bytes() == stored
    assert sorted(p.name for p in (data / "calendar").iterdir()) == ["2027.toml"]  # no temporary file left


def test_a_bad_schedule_file_creates_no_calendar_directory(tmp_path: Path) -> None:
    one_error_line(xiezhu("calendar", "load", str(tmp_path / "missing.toml"), data_dir=tmp_path / "d", check=False))
    assert not (tmp_path / "d" / "calendar").exists()


def test_loading_a_year_again_replaces_it(tmp_path: Path) -> None:
    xiezhu("calendar", "load", str(schedule_file(tmp_path)), data_dir=tmp_path)
    fewer = SCHEDULE.replace("2027-02-12]", "2027-02-11]")
    proc = xiezhu("calendar", "load", str(schedule_file(tmp_path, fewer, "fix.toml")), data_dir=tmp_path)
    assert proc.stdout.startswith("已替换 2027 年：节假日 4 天")
    assert (tmp_path / "calendar" / "2027.toml").read_text(encoding="utf-8") == fewer


# --- xiezhu sla -------------------------------------------------------------------------------------------


def test_sla_json_shows_each_request_s_deadline_and_state_at_now(data: Path) -> None:
    rows = json.loads(xiezhu("sla", "--json", "--now", "2026-10-12T10:00+08:00", data_dir=data).stdout)
    assert {k: r["state"] for k, r in rows.items()} == {
        "shenpi/20260001": "overdue", "shenpi/20260002": "answered-late", "shenpi/20260003": "declined-on-time",
        "shenpi/20260004": "due-soon", "shenpi/20270001": "on-time"}
    assert rows["shenpi/20260001"]["due_at"] == "2026-10-11T00:00:00+08:00"
    assert rows["shenpi/20260002"]["working_days_taken"] == 5  # 09-30, 10-08, 10-09, 10-10 (make-up), 10-12
    assert rows["shenpi/20270001"]["provisional"] is True


def test_sla_filters_by_state_and_still_accepts_a_status_for_state(data: Path) -> None:
    now = ("--now", "2026-10-12T10:00")
    overdue = json.loads(xiezhu("sla", "--json", "--state", "overdue", *now, data_dir=data).stdout)
    assert list(overdue) == ["shenpi/20260001"]
    ziran = json.loads(xiezhu("sla", "--json", "--bureau", "ziran", *now, data_dir=data).stdout)
    assert list(ziran) == ["shenpi/20260003", "shenpi/20260004"]
    replied = json.loads(xiezhu("sla", "--json", "--state", "replied", data_dir=data).stdout)
    assert [r["status"] for r in replied.values()] == ["replied"]
    table = xiezhu("sla", "--state", "overdue", *now, data_dir=data).stdout
    assert "20260001" in table and "逾期未答复" in table and "20260002" not in table


def test_sla_marks_2027_provisional_until_calendar_load_and_recomputes_after(tmp_path: Path, data: Path) -> None:
    key = "shenpi/20270001"
    before = json.loads(xiezhu("sla", "--json", data_dir=data).stdout)[key]
    assert (before["provisional"], before["due_at"]) == (True, "2027-02-10T00:00:00+08:00")
    assert "暂定" in xiezhu("sla", "--now", "2027-02-05T09:00", data_dir=data).stdout
    xiezhu("calendar", "load", str(schedule_file(tmp_path)), data_dir=data)
    after = json.loads(xiezhu("sla", "--json", data_dir=data).stdout)[key]
    assert (after["provisional"], after["due_at"]) == (False, "2027-02-17T00:00:00+08:00")
    # `xiezhu projections rebuild` gives the same rows as the view that recomputed itself
    xiezhu("projections", "rebuild", data_dir=data)
    assert json.loads(xiezhu("sla", "--json", data_dir=data).stdout)[key] == after


def test_a_demo_s_data_is_judged_at_the_demo_s_last_ledger_time(data: Path) -> None:
    """The system clock is far beyond a demo's simulated September, so there the default now is the ledger's."""
    assert "（系统时钟）" in xiezhu("sla", data_dir=data).stdout
    (data / ".xiezhu-demo").write_text("made by `xiezhu demo`\n")
    rows = json.loads(xiezhu("sla", "--json", data_dir=data).stdout)
    last = json.loads(xiezhu("sla", "--json", "--now", "2027-02-04T10:00+08:00", data_dir=data).stdout)
    assert rows == last  # the last ledger entry: the 2027 request's arrival
    assert "截至 2027-02-04 10:00（演示的模拟时钟）" in xiezhu("sla", data_dir=data).stdout


def test_sla_stats_json_per_bureau(data: Path) -> None:
    stats = json.loads(xiezhu("sla", "stats", "--from", "2026-09-01", "--to", "2026-10-31", "--now",
                              "2026-10-12T10:00+08:00", "--json", data_dir=data).stdout)
    by = {s["bureau"]: s for s in stats}
    assert (by["gongan"]["received"], by["gongan"]["answered"], by["gongan"]["breaches"]) == (2, 1, 2)
    assert (by["ziran"]["received"], by["ziran"]["decline_rate"], by["ziran"]["on_time_rate"]) == (2, 1.0, 1.0)
    assert by["shenpi"]["sent"] == 4
    table = xiezhu("sla", "stats", "--now", "2026-10-12T10:00", data_dir=data).stdout
    assert "区公安分局" in table and "逾期" in table


@pytest.mark.parametrize("args", [
    ["sla", "--bureau", "nope"],
    ["sla", "--state", "late"],
    ["sla", "--now", "yesterday"],
    ["sla", "stats", "--from", "2026-10-31", "--to", "2026-10-01"],
    ["sla", "stats", "--from", "October"],
])
def test_an_sla_mistake_is_one_error_line(data: Path, args: list[str]) -> None:
    one_error_line(xiezhu(*args, data_dir=data, check=False))


def test_sla_without_a_ledger_says_so(tmp_path: Path) -> None:
    assert "中没有账本" in one_error_line(xiezhu("sla", data_dir=tmp_path, check=False))


def test_help_shows_an_example(tmp_path: Path) -> None:
    for args in (["sla"], ["sla", "stats"], ["calendar", "load"], ["calendar", "due"]):
        assert "示例：xiezhu" in xiezhu(*args, "--help", data_dir=tmp_path).stdout

