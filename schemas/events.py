"""Event payloads carried inside the signed envelope, one tagged union for the wire.

Schema evolution: new fields get defaults; an existing field's type never changes; a
breaking change is a new tag.
"""
from __future__ import annotations

from schemas.access import AccessEvent
from schemas.assistance import AssistanceEvent
from schemas.catalogue import ListPublished
from schemas.commitment import CommitmentEvent, CommitmentNotice
from schemas.dispute import DisputeEvent
from schemas.sla import SlaEvent

#: Every payload type that may appear on the wire.
Payload = (AssistanceEvent | CommitmentEvent | SlaEvent | DisputeEvent | AccessEvent | CommitmentNotice
           | ListPublished)

__all__ = ["Payload"]
