"""The warning a clerk gets when an answer comes after its deadline (it is still sent, and recorded late)."""
from __future__ import annotations

from datetime import datetime
from typing import Literal

from aggregates.assistance import CaseState, legal_arrival, time_limits
from aggregates.calendar_store import CalendarSource
from aggregates.store import SHANGHAI


def late_warnings(calendar: CalendarSource, st: CaseState, now: datetime,
                  what: Literal["reply", "decline"]) -> list[str]:
    """One line if the reply (or decline) deadline of ``st`` had ended by ``now``, else none."""
    arrived = legal_arrival(st)
    if arrived is None:
        return []
    reply_within, decline_within = time_limits(st.request)
    within = reply_within if what == "reply" else decline_within
    due = calendar.calendar().add_working_days(arrived, within)
    if now < due.ends_at:
        return []
    return [f"the {what} deadline of {st.requester}/{st.number} ended at "
            f"{due.ends_at.astimezone(SHANGHAI):%Y-%m-%d %H:%M} ({within} working days from arrival): "
            f"it is recorded as late"]
