"""Disclosures: a bureau records in the ledger that personal data of a case was shown in full (decision 27).

The record is a notice about the case, addressed to the 司法局 ledger and sealed like every
payload: a replay of the case shows who saw its applicant in full, when, on which machine
and why.  It changes nothing in the case.
"""
from __future__ import annotations

from datetime import datetime
from typing import Annotated

import msgspec

Short = Annotated[str, msgspec.Meta(min_length=1, max_length=200)]


class DisclosureRecorded(msgspec.Struct, frozen=True, kw_only=True, tag="access.disclosed"):
    """Personal data of the case was shown in full (``--reveal``), as the machine's access log has it."""

    at: datetime
    operator: Short
    host: Short
    #: ``inbox``, ``replay`` or ``history``.
    command: Annotated[str, msgspec.Meta(min_length=1, max_length=40)]
    reason: Annotated[str, msgspec.Meta(min_length=4, max_length=500)]
    #: The key that entitled the machine to read it (a store key, or 区司法局's box key).
    entitled_by: Short


AccessEvent = DisclosureRecorded
