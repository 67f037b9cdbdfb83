"""Working-day calendar: statutory holidays, 调休, uncovered years and schedule files."""
from __future__ import annotations

from datetime import UTC, date, datetime, timedelta, timezone
from pathlib import Path

import chinese_calendar
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from aggregates.workdays import (
    SHANGHAI,
    CalendarError,
    Deadline,
    ScheduleFileError,
    WorkingCalendar,
    YearSchedule,
    read_schedule,
)
from schemas.errors import XiezhuError

UTC = UTC


def sh(*args: int) -> datetime:
    return datetime(*args, tzinfo=SHANGHAI)


def write(tmp_path: Path, text: str, name: str = "schedule.toml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


@pytest.fixture
def cal() -> WorkingCalendar:
    return WorkingCalendar()


def test_package_facts_this_suite_relies_on() -> None:
    """Guards the fixtures below: what chinese_calendar says about autumn 2026 and 2027."""
    assert not chinese_calendar.is_workday(date(2026, 9, 25))  # Mid-Autumn, a Friday
    assert all(not chinese_calendar.is_workday(date(2026, 10, d)) for d in range(1, 8))
    assert chinese_calendar.is_workday(date(2026, 10, 8))
    assert chinese_calendar.is_workday(date(2026, 10, 10))  # Saturday make-up day
    assert date(2026, 10, 10).weekday() == 5
    with pytest.raises(NotImplementedError):
        chinese_calendar.is_workday(date(2027, 1, 4))


# --- 2026: Mid-Autumn and National Day -------------------------------------------------


def test_national_day_holiday_is_skipped_and_saturday_makeup_day_counts(cal: WorkingCalendar) -> None:
    deadline = cal.add_working_days(sh(2026, 9, 30, 10), 3)
    assert deadline == Deadline(
        start=sh(2026, 9, 30, 10),
        working_days=3,
        last_day=date(2026, 10, 10),
        ends_at=sh(2026, 10, 11),
        provisional=False,
    )


def test_saturday_makeup_day_is_a_working_day_and_a_plain_saturday_is_not(cal: WorkingCalendar) -> None:
    assert cal.is_working_day(date(2026, 10, 10)) == (True, False)
    assert cal.is_working_day(date(2026, 10, 17)) == (False, False)
    assert cal.is_working_day(date(2026, 10, 1)) == (False, False)


def test_arrival_on_makeup_saturday_is_not_counted(cal: WorkingCalendar) -> None:
    deadline = cal.add_working_days(sh(2026, 10, 10, 9), 1)
    assert deadline.last_day == date(2026, 10, 12)


def test_arrival_day_is_not_counted_even_when_it_is_a_working_day(cal: WorkingCalendar) -> None:
    assert cal.add_working_days(sh(2026, 9, 28, 0, 0, 1), 1).last_day == date(2026, 9, 29)


def test_mid_autumn_friday_and_weekend_are_skipped(cal: WorkingCalendar) -> None:
    deadline = cal.add_working_days(sh(2026, 9, 24, 16), 1)
    assert deadline.last_day == date(2026, 9, 28)
    assert deadline.ends_at == sh(2026, 9, 29)


def test_friday_arrival_three_days_ends_wednesday_midnight(cal: WorkingCalendar) -> None:
    deadline = cal.add_working_days(sh(2026, 3, 6, 15), 3)  # an ordinary Friday
    assert deadline.last_day == date(2026, 3, 11)
    assert deadline.ends_at == sh(2026, 3, 12)
    assert deadline.ends_at.utcoffset() == timedelta(hours=8)


def test_saturday_arrival_starts_counting_on_monday(cal: WorkingCalendar) -> None:
    assert cal.add_working_days(sh(2026, 3, 7, 11), 1).last_day == date(2026, 3, 9)


def test_utc_start_is_converted_to_shanghai_day_before_counting(cal: WorkingCalendar) -> None:
    start = datetime(2026, 9, 29, 17, tzinfo=UTC)  # 2026-09-30 01:00 in Shanghai
    deadline = cal.add_working_days(start, 1)
    assert deadline.last_day == date(2026, 10, 8)  # 09-30 is the uncounted arrival day
    assert deadline.start == start
    assert deadline.ends_at.tzinfo is SHANGHAI


def test_naive_start_is_refused(cal: WorkingCalendar) -> None:
    with pytest.raises(CalendarError, match="aware"):
        cal.add_working_days(datetime(2026, 9, 30, 10), 1)


@pytest.mark.parametrize("n", [0, -1])
def test_non_positive_working_days_are_refused(cal: WorkingCalendar, n: int) -> None:
    with pytest.raises(CalendarError) as info:
        cal.add_working_days(sh(2026, 9, 30), n)
    assert info.value.code == "calendar.error"
    assert isinstance(info.value, XiezhuError)


# --- working_days_between --------------------------------------------------------------


@pytest.mark.parametrize(
    ("start", "end", "expected"),
    [
        (sh(2026, 9, 30, 10), sh(2026, 9, 30, 23, 59), 0),  # same day
        (sh(2026, 9, 30, 10), sh(2026, 10, 7, 12), 0),  # only holidays after the arrival day
        (sh(2026, 9, 30, 10), sh(2026, 10, 8), 1),
        (sh(2026, 9, 30, 10), sh(2026, 10, 11, 12), 3),  # includes the Saturday make-up day
        (sh(2026, 9, 24, 10), sh(2026, 10, 12, 9), 7),  # across Mid-Autumn and National Day
        (sh(2026, 3, 9), sh(2026, 3, 6), 0),  # end before start is an empty range
    ],
)
def test_working_days_between_counts_after_start_day_through_end_day(
    cal: WorkingCalendar, start: datetime, end: datetime, expected: int
) -> None:
    assert cal.working_days_between(start, end) == (expected, False)


def test_working_days_between_uses_shanghai_days_of_utc_instants(cal: WorkingCalendar) -> None:
    start = datetime(2026, 9, 29, 15, 59, tzinfo=UTC)  # 09-29 23:59 Shanghai
    end = datetime(2026, 9, 29, 16, 0, tzinfo=UTC)  # 09-30 00:00 Shanghai
    assert cal.working_days_between(start, end) == (1, False)


def test_working_days_between_refuses_naive_end(cal: WorkingCalendar) -> None:
    with pytest.raises(CalendarError):
        cal.working_days_between(sh(2026, 9, 30), datetime(2026, 10, 9))


# --- years the package does not cover ---------------------------------------------------


def test_uncovered_year_counts_monday_to_friday_provisionally(cal: WorkingCalendar) -> None:
    assert not cal.covered(2027)
    assert cal.covered(2026)
    assert cal.is_working_day(date(2027, 1, 1)) == (True, True)  # a Friday, no schedule yet
    assert cal.is_working_day(date(2027, 1, 2)) == (False, True)
    deadline = cal.add_working_days(sh(2027, 1, 1, 9), 3)  # Friday
    assert deadline.last_day == date(2027, 1, 6)
    assert deadline.provisional is True
    assert cal.working_days_between(sh(2027, 1, 1), sh(2027, 1, 8)) == (5, True)


def test_loading_a_schedule_moves_the_deadline_and_clears_provisional(
    cal: WorkingCalendar, tmp_path: Path
) -> None:
    before = cal.add_working_days(sh(2026, 12, 31, 9), 1)
    assert (before.last_day, before.provisional) == (date(2027, 1, 1), True)
    path = write(
        tmp_path,
        'year = 2027\nsource = "国务院办公厅关于2027年部分节假日安排的通知"\n'
        'holidays = ["2027-01-01"]\nworkdays = []\n',
    )
    cal.load(read_schedule(path))
    after = cal.add_working_days(sh(2026, 12, 31, 9), 1)
    assert (after.last_day, after.provisional) == (date(2027, 1, 4), False)
    assert cal.covered(2027)
    assert cal.is_working_day(date(2027, 1, 1)) == (False, False)


def test_schedule_makeup_workday_on_weekend_counts(tmp_path: Path) -> None:
    path = write(tmp_path, "year = 2027\nholidays = [2027-02-08]\nworkdays = [2027-02-20]\n")
    cal = WorkingCalendar([read_schedule(path)])
    assert cal.is_working_day(date(2027, 2, 20)) == (True, False)  # a Saturday
    assert cal.add_working_days(sh(2027, 2, 19, 9), 1).last_day == date(2027, 2, 20)


def test_loaded_schedule_overrides_package_for_covered_year(cal: WorkingCalendar) -> None:
    assert cal.is_working_day(date(2026, 10, 12)) == (True, False)
    cal.load(YearSchedule(year=2026, holidays=frozenset({date(2026, 10, 12)})))
    assert cal.is_working_day(date(2026, 10, 12)) == (False, False)
    assert cal.is_working_day(date(2026, 10, 10)) == (False, False)  # package's 调休 replaced too


def test_a_years_fingerprint_follows_its_working_days_and_a_loaded_schedule(cal: WorkingCalendar) -> None:
    """The SLA view compares these on every follow, so they are kept; a loaded schedule replaces its year's."""
    def by_day(c: WorkingCalendar, year: int) -> str:
        import hashlib
        days = [date(year, 1, 1) + timedelta(days=i) for i in range((date(year + 1, 1, 1) - date(year, 1, 1)).days)]
        bits = (b"C" if c.covered(year) else b"P") + bytes(49 if c.is_working_day(d)[0] else 48 for d in days)
        return hashlib.sha256(bits).hexdigest()[:32]

    before = {y: cal.fingerprint(y) for y in (2026, 2027)}
    assert before == {y: by_day(cal, y) for y in (2026, 2027)} and before[2026] != before[2027]
    cal.load(YearSchedule(year=2026, holidays=frozenset({date(2026, 10, 12)})))
    assert cal.fingerprint(2026) != before[2026] and cal.fingerprint(2026) == by_day(cal, 2026)
    assert cal.fingerprint(2027) == before[2027]


def test_deadline_from_2026_into_2027_is_provisional_only_when_it_reaches_2027(
    cal: WorkingCalendar,
) -> None:
    inside = cal.add_working_days(sh(2026, 12, 28, 9), 3)  # Mon → Thursday 12-31
    assert (inside.last_day, inside.provisional) == (date(2026, 12, 31), False)
    across = cal.add_working_days(sh(2026, 12, 28, 9), 4)
    assert (across.last_day, across.provisional) == (date(2027, 1, 1), True)


def test_uncounted_arrival_day_in_uncovered_year_does_not_make_deadline_provisional(
    cal: WorkingCalendar,
) -> None:
    cal.load(YearSchedule(year=2028, holidays=frozenset({date(2028, 1, 3)})))
    deadline = cal.add_working_days(sh(2027, 12, 31, 9), 1)  # 2027 uncovered, 2028 loaded
    assert (deadline.last_day, deadline.provisional) == (date(2028, 1, 4), False)


def test_between_is_provisional_only_if_range_touches_uncovered_days(cal: WorkingCalendar) -> None:
    assert cal.working_days_between(sh(2026, 12, 30), sh(2026, 12, 31, 23)) == (1, False)
    assert cal.working_days_between(sh(2026, 12, 30), sh(2027, 1, 1)) == (2, True)
    assert cal.working_days_between(sh(2026, 12, 31), sh(2026, 12, 31, 23)) == (0, False)


def test_far_future_year_does_not_crash(cal: WorkingCalendar) -> None:
    deadline = cal.add_working_days(sh(2099, 6, 5, 12), 10)  # a Friday
    assert (deadline.last_day, deadline.provisional) == (date(2099, 6, 19), True)


# --- schedule file validation -----------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ('year = 2027\nholidays = ["2028-01-01"]\n', "2028-01-01 is not in year 2027"),
        ('year = 2027\nworkdays = ["2026-12-26"]\n', "2026-12-26 is not in year 2027"),
        (
            'year = 2027\nholidays = ["2027-02-20"]\nworkdays = ["2027-02-20"]\n',
            "2027-02-20 is both a holiday and a workday",
        ),
        ('year = 2027\nholidays = ["2027-01-01"', "not valid TOML"),
        ('holidays = ["2027-01-01"]\n', "missing required field `year`"),
        ('year = "2027"\n', "Expected `int`, got `str`"),
        ("year = 2027.0\n", "Expected `int`, got `float`"),
        ('year = 2027\nholidays = ["2027-02-30"]\n', "Invalid RFC3339 encoded date"),
        ("year = 2027\nholidays = [2027-01-01T00:00:00]\n", "Expected `date`, got `datetime`"),
        ('year = 2027\nholiday = ["2027-01-01"]\n', "unknown field `holiday`"),
    ],
)
def test_bad_schedule_file_raises_naming_file_and_problem(tmp_path: Path, text: str, problem: str) -> None:
    path = write(tmp_path, text)
    with pytest.raises(ScheduleFileError) as info:
        read_schedule(path)
    assert problem in str(info.value)
    assert str(path) in str(info.value)
    assert info.value.code == "calendar.bad_schedule"
    assert isinstance(info.value, CalendarError)


def test_missing_schedule_file_raises_schedule_file_error(tmp_path: Path) -> None:
    with pytest.raises(ScheduleFileError, match="cannot be read"):
        read_schedule(tmp_path / "absent.toml")


def test_good_schedule_file_reads_quoted_and_literal_dates(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        'year = 2027\nsource = "通知"\nholidays = ["2027-01-01", 2027-02-08]\nworkdays = ["2027-02-20"]\n',
    )
    assert read_schedule(path) == YearSchedule(
        year=2027,
        source="通知",
        holidays=frozenset({date(2027, 1, 1), date(2027, 2, 8)}),
        workdays=frozenset({date(2027, 2, 20)}),
    )


def test_schedule_built_in_code_is_validated_too() -> None:
    with pytest.raises(ScheduleFileError, match="not in year 2027"):
        YearSchedule(year=2027, holidays=frozenset({date(2026, 1, 1)}))


# --- property ---------------------------------------------------------------------------


@settings(max_examples=300, deadline=None, database=None)
@given(
    start=st.datetimes(
        min_value=datetime(2025, 1, 1), max_value=datetime(2026, 12, 31, 23, 59, 59),
        timezones=st.sampled_from([SHANGHAI, UTC, timezone(timedelta(hours=-10)), timezone(timedelta(hours=14))]),
    ),
    n=st.integers(min_value=1, max_value=10),
)
def test_deadline_spans_exactly_n_working_days_and_ends_on_one(start: datetime, n: int) -> None:
    cal = WorkingCalendar()
    deadline = cal.add_working_days(start, n)
    count, _ = cal.working_days_between(start, deadline.ends_at - timedelta(microseconds=1))
    assert count == n
    assert cal.is_working_day(deadline.last_day)[0]
    assert deadline.ends_at == datetime.combine(deadline.last_day + timedelta(days=1), datetime.min.time(), SHANGHAI)
