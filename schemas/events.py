"""Event payloads carried inside the signed envelope, one tagged union for the wire.

Schema evolution: new fields get defaults; an existing field's type never changes; a
breaking change is a new tag.
"""
from __future__ import annotations

from schemas.assistance import AssistanceEvent

#: Every payload type that may appear on the wire.
Payload = AssistanceEvent

__all__ = ["Payload"]
