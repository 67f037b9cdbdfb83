"""Deadline notices of the SLA monitor (区司法局): reminders before, breaches after (三(二), 附件2 第五条)."""
from __future__ import annotations

from datetime import date, datetime
from typing import Annotated, Literal

import msgspec

from schemas.assistance import Code, Uuid
from schemas.catalogue import DISTRICT_GOVERNMENT as _DISTRICT_GOVERNMENT

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


#: 区政府 acts through 区政府办公室 (附件1), the only body that may educate or criticise under 第十二条.
DISTRICT_GOVERNMENT = _DISTRICT_GOVERNMENT


class BureauCriticised(msgspec.Struct, frozen=True, kw_only=True, tag="notice.criticism"):
    """附件2 第十二条: 由区政府予以教育或通报批评，责令其限期改正 — a signed notice from 区政府 to a bureau."""

    bureau: Code
    #: 教育 (education) or 通报批评 (criticism).
    measure: Literal["education", "criticism"]
    #: The assistance requests whose breaches it is about (at least one).
    about: Annotated[list[Uuid], msgspec.Meta(min_length=1, max_length=100)]
    reasons: Annotated[str, msgspec.Meta(min_length=2, max_length=2000)]
    #: 责令其限期改正: the date by which the bureau must have put it right.
    correct_by: date


SlaEvent = DeadlineReminder | DeadlineBreached | BureauCriticised
