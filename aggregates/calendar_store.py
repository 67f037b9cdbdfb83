"""State Council year schedules an operator loaded, kept in the data directory.

The ``chinese_calendar`` package only knows the years announced before it was released.
``xiezhu calendar load FILE`` validates a year's schedule and keeps a copy as
``<directory>/<year>.toml``; every working-day computation then uses the package data
plus every stored schedule (a stored year overrides the package, so a correction can be
loaded too).  Loading a year again replaces it.  A file that does not validate changes
nothing.
"""
from __future__ import annotations

import os
import re
import tempfile
from pathlib import Path
from typing import Protocol

from aggregates.workdays import ScheduleFileError, WorkingCalendar, YearSchedule, read_schedule

__all__ = ["CalendarSource", "CalendarStore"]

_STORED = re.compile(r"^(\d{4})\.toml$")


class CalendarSource(Protocol):
    """Anything that can tell the working calendar in force now (it may change while running)."""

    def calendar(self) -> WorkingCalendar: ...


class CalendarStore:
    """The loaded year schedules in one directory, one ``<year>.toml`` each."""

    def __init__(self, directory: Path) -> None:
        self.directory = Path(directory)
        self._signature: tuple[tuple[str, int, int], ...] | None = None
        self._calendar: WorkingCalendar | None = None

    def path(self, year: int) -> Path:
        """Where the schedule of ``year`` is kept."""
        return self.directory / f"{year:04d}.toml"

    def load_file(self, path: Path) -> YearSchedule:
        """Validate a schedule file, then store it for its year (atomically, replacing an earlier one)."""
        path = Path(path)
        schedule = read_schedule(path)  # raises ScheduleFileError with the reason; nothing is written
        try:
            data = path.read_bytes()
        except OSError as exc:
            raise ScheduleFileError(f"schedule file {path}: cannot be read: {exc.strerror or exc}",
                                    zh=f"节假日安排文件 {path}：无法读取：{exc.strerror or exc}",
                                    path=str(path)) from exc
        self.directory.mkdir(parents=True, exist_ok=True)
        fd, tmp_name = tempfile.mkstemp(dir=self.directory, prefix=".load-", suffix=".tmp")
        tmp = Path(tmp_name)
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
            # The bytes stored are the bytes validated, even if the source changed meanwhile.
            if read_schedule(tmp) != schedule:
                raise ScheduleFileError(f"schedule file {path}: changed while it was being loaded",
                                        zh=f"节假日安排文件 {path}：读取过程中被修改", path=str(path))
            os.replace(tmp, self.path(schedule.year))
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        _fsync_dir(self.directory)
        return schedule

    def schedules(self) -> list[YearSchedule]:
        """Every stored schedule, by year."""
        found: list[YearSchedule] = []
        for file, year in self._files():
            schedule = read_schedule(file)
            if schedule.year != year:
                raise ScheduleFileError(f"schedule file {file}: is for {schedule.year}, not {year}; "
                                        f"load it again with `xiezhu calendar load`",
                                        zh=f"节假日安排文件 {file}：是 {schedule.year} 年的，不是 {year} 年的；"
                                           "请用 `xiezhu calendar load` 重新导入", path=str(file))
            found.append(schedule)
        return found

    def calendar(self) -> WorkingCalendar:
        """The package calendar with every stored schedule loaded (re-read only when the files change)."""
        signature = self._signature_now()
        if self._calendar is None or signature != self._signature:
            self._calendar = WorkingCalendar(self.schedules())
            self._signature = signature
        return self._calendar

    def _files(self) -> list[tuple[Path, int]]:
        if not self.directory.is_dir():
            return []
        files = [(p, int(m.group(1))) for p in self.directory.iterdir() if (m := _STORED.match(p.name))]
        return sorted(files, key=lambda f: f[1])

    def _signature_now(self) -> tuple[tuple[str, int, int], ...]:
        stats = []
        for file, _ in self._files():
            st = file.stat()
            stats.append((file.name, st.st_mtime_ns, st.st_size))
        return tuple(stats)


def _fsync_dir(directory: Path) -> None:
    """Make a rename in ``directory`` durable (a no-op where directories cannot be opened)."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
