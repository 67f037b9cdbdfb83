"""The SLA monitor of 区司法局: a reminder before a reply deadline, a breach once it is missed.

It reads the SLA view (built from the ledger alone) and sends signed notices from 区司法局
to the requesting and the assisting bureau.  Each notice is sent once: the sifa store keeps
it under a key made of what it is about, so neither a second tick nor a restart repeats it.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Protocol

from aggregates.clock import Clock
from aggregates.store import BureauStore
from aggregates.workdays import WorkingCalendar
from schemas.sla import DeadlineBreached, DeadlineReminder

log = logging.getLogger(__name__)
OPEN = ("requested", "received")


class DeadlineRows(Protocol):
    """What the monitor reads: one row per request that may call for a notice, with its status and deadlines
    (every open request, and every one answered late; one answered in time, or withdrawn, may be left out).

    :class:`projections.sla.SlaView` is one; ``xiezhu`` wires it in (agencies never import projections).
    """

    def notice_rows(self) -> list[dict[str, Any]]: ...


@dataclass
class MonitorStats:
    """What the monitor has sent since it started."""

    breaches: int = 0
    reminders: int = 0


class SlaMonitor:
    """Sends deadline reminders and breach notices, each exactly once."""

    def __init__(self, store: BureauStore, view: DeadlineRows, clock: Clock, calendar: WorkingCalendar | None = None,
                 *, remind_before: timedelta = timedelta(days=1)) -> None:
        self.store = store
        self.view = view
        self.clock = clock
        self.calendar = calendar or WorkingCalendar()
        #: How long before a reply deadline ends the reminder goes out.  A deadline ends at
        #: 24:00 of its last working day, so the default (one day) is the start of that day;
        #: zero sends no reminders.
        self.remind_before = remind_before
        self.stats = MonitorStats()
        self._done: set[str] = set()  # keys known to be sent: saves a store lookup per tick

    def tick(self, now: datetime | None = None) -> tuple[int, int]:
        """Look once at every request that may call for a notice; returns (breaches, reminders) sent by this tick."""
        now = now or self.clock.now()
        sent = [0, 0]
        for row in self.view.notice_rows():
            for key, payload in self._due_notices(row, now):
                if key in self._done:
                    continue
                if self.store.notices.send(key, row["case_id"], row["number"],
                                           [(row["requester"], payload), (row["assistor"], payload)]):
                    sent[isinstance(payload, DeadlineReminder)] += 1
                self._done.add(key)
        self.stats.breaches += sent[0]
        self.stats.reminders += sent[1]
        return sent[0], sent[1]

    def _due_notices(self, row: dict[str, Any], now: datetime) -> list[tuple[str, Any]]:
        due, decline_due = _at(row.get("due_at")), _at(row.get("decline_due_at"))
        answered, case = _at(row.get("answered_at")), row["case_id"]
        common = {"request_id": row.get("request_id") or case, "requester": row["requester"],
                  "assistor": row["assistor"], "provisional": bool(row.get("provisional"))}
        out: list[tuple[str, Any]] = []
        if due is None:
            return out  # a letter not delivered yet: no deadline runs
        if row.get("catalogue_flag"):
            return out  # 第七条: a request that could not be asked under its item binds nobody to answer
        if row["status"] in OPEN:
            if now >= due:
                out.append((f"breach:{case}:reply", DeadlineBreached(
                    kind="reply", due_at=due, detected_at=now, working_days_late=self._late(due, now), **common)))
            elif self.remind_before and now >= due - self.remind_before:
                out.append((f"reminder:{case}:reply", DeadlineReminder(kind="reply", due_at=due, **common)))
        elif row["status"] == "replied" and answered is not None and answered >= due:
            out.append((f"breach:{case}:reply", DeadlineBreached(
                kind="reply", due_at=due, detected_at=now, answered_at=answered,
                working_days_late=self._late(due, answered), **common)))
        elif row["status"] == "declined" and answered is not None and decline_due is not None \
                and answered >= decline_due:
            out.append((f"breach:{case}:decline", DeadlineBreached(
                kind="decline", due_at=decline_due, detected_at=now, answered_at=answered,
                working_days_late=self._late(decline_due, answered), **common)))
        return out

    def _late(self, due: datetime, when: datetime) -> int:
        days, _ = self.calendar.working_days_between(due - timedelta(microseconds=1), when)
        return days


def _at(value: Any) -> datetime | None:
    if value is None or value == "":
        return None
    return value if isinstance(value, datetime) else datetime.fromisoformat(value)
