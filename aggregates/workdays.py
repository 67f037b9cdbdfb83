"""Working-day (工作日) calendar of mainland China for statutory deadlines.

Holidays and make-up working days (调休) come from the ``chinese_calendar``
package.  A year the package does not cover never fails: it is counted
Monday–Friday and every result touching it is flagged provisional, until an
operator loads that year's State Council schedule from a TOML file.
"""
from __future__ import annotations

import hashlib
import tomllib
from bisect import bisect_right
from collections.abc import Iterable
from datetime import MAXYEAR, MINYEAR, date, datetime, time, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import chinese_calendar
import msgspec

from schemas.errors import XiezhuError

__all__ = [
    "SHANGHAI",
    "CalendarError",
    "Deadline",
    "ScheduleFileError",
    "WorkingCalendar",
    "YearSchedule",
    "read_schedule",
]

SHANGHAI = ZoneInfo("Asia/Shanghai")
_ONE_DAY = timedelta(days=1)


class CalendarError(XiezhuError):
    """A working-day computation was asked something it cannot answer."""

    code = "calendar.error"


class ScheduleFileError(CalendarError):
    """A year schedule (file or struct) is malformed or inconsistent."""

    code = "calendar.bad_schedule"


class YearSchedule(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """One year's published holidays and make-up working days."""

    year: int
    holidays: frozenset[date] = frozenset()
    workdays: frozenset[date] = frozenset()
    source: str = ""

    def __post_init__(self) -> None:
        # Checked here, not only in read_schedule, so schedules built in code
        # are held to the same rules as those read from a file.
        problem = _schedule_problem(self)
        if problem:
            raise ScheduleFileError(problem[0], zh=problem[1], year=self.year)


def _schedule_problem(s: YearSchedule) -> tuple[str, str] | None:
    """Describe the first inconsistency in a schedule (in English and 中文), or None if it is sound."""
    if type(s.year) is not int or not MINYEAR <= s.year <= MAXYEAR:
        return (f"year must be an int between {MINYEAR} and {MAXYEAR}, got {s.year!r}",
                f"year 须为 {MINYEAR} 到 {MAXYEAR} 之间的整数，实为 {s.year!r}")
    for field in ("holidays", "workdays"):
        for d in getattr(s, field):
            if type(d) is not date:
                return f"{field} entry {d!r} is not a date", f"{field} 中的 {d!r} 不是日期"
            if d.year != s.year:
                return (f"{field} entry {d.isoformat()} is not in year {s.year}",
                        f"{field} 中的 {d.isoformat()} 不在 {s.year} 年内")
    both = sorted(set(s.holidays) & set(s.workdays))
    if both:
        return (f"{both[0].isoformat()} is both a holiday and a workday",
                f"{both[0].isoformat()} 既是节假日又是调休工作日")
    return None


class Deadline(msgspec.Struct, frozen=True, kw_only=True):
    """A deadline counted in working days from an arrival instant."""

    start: datetime
    working_days: int
    last_day: date
    ends_at: datetime
    provisional: bool


class _YearTable(msgspec.Struct, frozen=True):
    """Precomputed working days of one year, for bisection and membership."""

    ordinals: tuple[int, ...]  # sorted ordinals of the year's working days
    members: frozenset[int]
    provisional: bool


class WorkingCalendar:
    """Counts mainland-China working days, with per-year caches."""

    def __init__(self, schedules: Iterable[YearSchedule] = ()) -> None:
        self._schedules: dict[int, YearSchedule] = {}
        self._tables: dict[int, _YearTable] = {}
        self._fingerprints: dict[int, str] = {}
        for schedule in schedules:
            self.load(schedule)

    def load(self, schedule: YearSchedule) -> None:
        """Use ``schedule`` for its year, overriding the package (allows corrections)."""
        self._schedules[schedule.year] = schedule
        self._tables.pop(schedule.year, None)
        self._fingerprints.pop(schedule.year, None)

    def fingerprint(self, year: int) -> str:
        """A digest of one year: whether it is covered, and which of its days work (kept until ``load``)."""
        digest = self._fingerprints.get(year)
        if digest is None:
            table = self._table(year)
            bits = bytearray(b"P" if table.provisional else b"C")
            first, last = date(year, 1, 1).toordinal(), date(year, 12, 31).toordinal()
            bits += bytes(49 if o in table.members else 48 for o in range(first, last + 1))
            digest = self._fingerprints[year] = hashlib.sha256(bits).hexdigest()[:32]
        return digest

    def covered(self, year: int) -> bool:
        """Whether a loaded schedule or the package knows this year's holidays."""
        return not self._table(year).provisional

    def is_working_day(self, d: date) -> tuple[bool, bool]:
        """Return (is_working, provisional) for one calendar day."""
        table = self._table(d.year)
        return d.toordinal() in table.members, table.provisional

    def add_working_days(self, start: datetime, n: int) -> Deadline:
        """Deadline ending at 24:00 Shanghai of the n-th working day after start's day."""
        if type(n) is not int or n < 1:
            raise CalendarError(f"working days must be an int >= 1, got {n!r}",
                                zh=f"工作日数须为不小于 1 的整数，实为 {n!r}", working_days=n)
        last_ordinal, provisional = self._nth_working_day(_shanghai_day(start), n)
        if last_ordinal == date.max.toordinal():  # its exclusive end would not be representable
            raise CalendarError("deadline ends beyond the last representable day",
                                zh="期限超出可表示的最后一天", working_days=n)
        last_day = date.fromordinal(last_ordinal)
        ends_at = datetime.combine(last_day + _ONE_DAY, time(0), tzinfo=SHANGHAI)
        return Deadline(start=start, working_days=n, last_day=last_day,
                        ends_at=ends_at, provisional=provisional)

    def working_days_between(self, start: datetime, end: datetime) -> tuple[int, bool]:
        """Working days after start's Shanghai day up to and including end's; (count, provisional).

        An end on or before start's day is an empty range: (0, False).
        """
        lo = _shanghai_day(start).toordinal()  # exclusive
        hi = _shanghai_day(end).toordinal()  # inclusive
        count, provisional = 0, False
        if hi <= lo:
            return count, provisional
        for year in range(date.fromordinal(lo).year, date.fromordinal(hi).year + 1):
            table = self._table(year)
            first = max(lo, date(year, 1, 1).toordinal() - 1)
            last = min(hi, date(year, 12, 31).toordinal())
            count += bisect_right(table.ordinals, last) - bisect_right(table.ordinals, first)
            provisional |= table.provisional
        return count, provisional

    def _nth_working_day(self, day: date, n: int) -> tuple[int, bool]:
        """Ordinal of the n-th working day strictly after ``day``, and whether it is provisional."""
        after, year, provisional = day.toordinal(), day.year, False
        while True:
            table = self._table(year)
            # A year only taints the result if the counted range enters it.
            if after < date(year, 12, 31).toordinal():
                provisional |= table.provisional
            i = bisect_right(table.ordinals, after)
            if len(table.ordinals) - i >= n:
                return table.ordinals[i + n - 1], provisional
            n -= len(table.ordinals) - i
            after, year = date(year, 12, 31).toordinal(), year + 1

    def _table(self, year: int) -> _YearTable:
        """The cached working-day table of ``year``, built on first use."""
        table = self._tables.get(year)
        if table is None:
            table = self._tables[year] = self._build(year)
        return table

    def _build(self, year: int) -> _YearTable:
        """Build a year's table from a loaded schedule, the package, or Monday–Friday."""
        if not MINYEAR <= year <= MAXYEAR:
            raise CalendarError(f"year {year} is outside the representable calendar",
                                zh=f"{year} 年超出可表示的日历范围", year=year)
        days = _days_of(year)
        schedule = self._schedules.get(year)
        if schedule is not None:
            working = [d for d in days if d in schedule.workdays
                       or (d.weekday() < 5 and d not in schedule.holidays)]
            return _table_of(working, provisional=False)
        try:
            working = [d for d in days if chinese_calendar.is_workday(d)]
        except NotImplementedError:  # the package does not know this year yet
            return _table_of([d for d in days if d.weekday() < 5], provisional=True)
        return _table_of(working, provisional=False)


def _days_of(year: int) -> list[date]:
    """Every calendar day of ``year`` in order."""
    first, last = date(year, 1, 1).toordinal(), date(year, 12, 31).toordinal()
    return [date.fromordinal(o) for o in range(first, last + 1)]


def _table_of(working: list[date], *, provisional: bool) -> _YearTable:
    """Freeze a year's working days into a lookup table."""
    ordinals = tuple(d.toordinal() for d in working)
    return _YearTable(ordinals, frozenset(ordinals), provisional)


def _shanghai_day(instant: datetime) -> date:
    """The Asia/Shanghai calendar day of an aware instant; naive ones are refused."""
    if not isinstance(instant, datetime) or instant.utcoffset() is None:
        raise CalendarError(f"instant must be a timezone-aware datetime, got {instant!r}",
                            zh=f"时刻须带时区，实为 {instant!r}")
    return instant.astimezone(SHANGHAI).date()


def read_schedule(path: Path) -> YearSchedule:
    """Read and strictly validate a year schedule TOML file."""
    path = Path(path)
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
        return msgspec.convert(raw, YearSchedule, strict=True)
    except OSError as exc:
        problem, zh = f"cannot be read: {exc.strerror or exc}", f"无法读取：{exc.strerror or exc}"
    except UnicodeDecodeError:
        problem, zh = "is not UTF-8 text", "不是 UTF-8 文本"
    except tomllib.TOMLDecodeError as exc:
        problem, zh = f"is not valid TOML: {exc}", f"不是有效的 TOML：{exc}"
    except msgspec.ValidationError as exc:
        problem, zh = f"does not match the schedule format: {exc}", f"不符合节假日安排的格式：{exc}"
    except ScheduleFileError as exc:
        problem, zh = exc.message, exc.text("zh")
    raise ScheduleFileError(f"schedule file {path}: {problem}", zh=f"节假日安排文件 {path}：{zh}", path=str(path))
