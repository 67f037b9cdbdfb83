"""Deadline notices of the SLA monitor (区司法局): reminders before, breaches after (三(二), 附件2 第五条)."""
from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

import msgspec

from schemas.assistance import Code, Uuid

#: Which time limit: the reply (3 working days) or the written decline (2 working days).
DeadlineKind = Literal["reply", "decline"]


class DeadlineReminder(msgspec.Struct, frozen=True, kw_only=True, tag="sla.reminder"):
    """The last working day of a reply deadline has begun and the request is still open."""

    request_id: Uuid
    requester: Code
    assistor: Code
    kind: DeadlineKind
    due_at: datetime
    provisional: bool = False


class DeadlineBreached(msgspec.Struct, frozen=True, kw_only=True, tag="sla.breached"):
    """A time limit was missed: no answer by the reply deadline, or a decline after its deadline."""

    request_id: Uuid
    requester: Code
    assistor: Code
    kind: DeadlineKind
    due_at: datetime
    detected_at: datetime
    #: When the answer came, if it came late; empty while still unanswered.
    answered_at: datetime | None = None
    provisional: bool = False
    working_days_late: Annotated[int, msgspec.Meta(ge=0)] = 0


SlaEvent = DeadlineReminder | DeadlineBreached
