"""The warning a clerk gets when an answer comes after its deadline (it is still sent, and recorded late)."""
from __future__ import annotations

from datetime import datetime
from typing import Literal

from aggregates.assistance import CaseState, legal_arrival, time_limits
from aggregates.calendar_store import CalendarSource
from aggregates.store import SHANGHAI


def late_warnings(calendar: CalendarSource, st: CaseState, now: datetime,
                  what: Literal["reply", "decline"], language: str = "en") -> list[str]:
    """One line if the reply (or decline) deadline of ``st`` had ended by ``now``, else none (in 中文 for "zh")."""
    arrived = legal_arrival(st)
    if arrived is None:
        return []
    reply_within, decline_within = time_limits(st.request)
    within = reply_within if what == "reply" else decline_within
    due = calendar.calendar().add_working_days(arrived, within)
    if now < due.ends_at:
        return []
    if language == "zh":
        return [f"{st.requester}/{st.number} 的{'答复' if what == 'reply' else '告知不能协助'}期限已于 "
                f"{due.ends_at.astimezone(SHANGHAI):%Y-%m-%d %H:%M} 届满（收到后 {within} 个工作日）：将记为逾期"]
    return [f"the {what} deadline of {st.requester}/{st.number} ended at "
            f"{due.ends_at.astimezone(SHANGHAI):%Y-%m-%d %H:%M} ({within} working days from arrival): "
            f"it is recorded as late"]
