"""Clocks: all domain code takes time from one of these, never from the system directly."""
from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta
from typing import Protocol


class Clock(Protocol):
    """Something that tells the current time as an aware datetime."""

    def now(self) -> datetime: ...


class SystemClock:
    """Wall-clock time in UTC."""

    def now(self) -> datetime:
        return datetime.now(UTC)


class SimulatedClock:
    """A clock that only moves when told to, so demos and tests run weeks in seconds.

    Each reading advances it by ``tick`` so that events stamped in a row stay ordered.
    """

    def __init__(self, start: datetime, *, tick: timedelta = timedelta(microseconds=1)) -> None:
        if start.tzinfo is None:
            raise ValueError("SimulatedClock needs an aware start time")
        self._now = start
        self._tick = tick
        self._lock = threading.Lock()

    def now(self) -> datetime:
        with self._lock:
            self._now += self._tick
            return self._now

    def advance(self, delta: timedelta) -> datetime:
        """Move the clock forward by ``delta`` and return the new time."""
        with self._lock:
            self._now += delta
            return self._now

    def set(self, when: datetime) -> None:
        """Jump forward to ``when`` (never backwards)."""
        with self._lock:
            if when > self._now:
                self._now = when
