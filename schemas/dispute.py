"""Disputes about an assistance case (附件2 第八条), and the events of 区司法局's dispute file.

第八条: 请求机关与被请求机关之间就协助事项发生争议的，可以由双方协商解决；协商不成的，由区司法局会同
区委编办等有关部门研究确定，必要时，区司法局、区委编办可以提请区政府作出决定，决定作出后纳入行政协助目录.

A dispute is 区司法局's file.  A party of the assistance case raises it and records its
negotiation notes, signed by that party and addressed to ``sifa``; 区司法局's own steps (taking
it up, the ruling, the escalation and taking 区政府's decision into the catalogue) are signed by
``sifa`` and addressed to the ledger, like commitment cases.  区政府's decision is signed by
区政府办公室 (``zhengfuban``), the office through which 区政府 acts, and sent to ``sifa``.
Dispute numbers are ``D`` + year + serial (``D20260001``), a series of the raising bureau.

Schema evolution: new fields get defaults; an existing field's type never changes; a breaking
change is a new tag.
"""
from __future__ import annotations

from typing import Annotated, Literal

import msgspec

from schemas.assistance import Code, Uuid

#: A statement of the parties or of 区司法局: the claim, a note, an agreement, a ruling.
Statement = Annotated[str, msgspec.Meta(min_length=2, max_length=4000)]
#: One piece of evidence: a document, a letter number, a record, as text.
Evidence = Annotated[str, msgspec.Meta(min_length=1, max_length=500)]
#: 行政协助函 number of the assistance case the dispute is about.
LetterNumber = Annotated[str, msgspec.Meta(pattern=r"^\d{8}$")]
#: A catalogue adjustment id (``assistance-0003``), or empty when there is none.
AdjustmentRef = Annotated[str, msgspec.Meta(pattern=r"^((matters|assistance)-\d{4,})?$")]
#: How a party's negotiation note leaves the negotiation: still talking, or 协商不成.
Outcome = Literal["continuing", "failed"]



class DisputeRaised(msgspec.Struct, frozen=True, kw_only=True, tag="dispute.raised"):
    """A party of an assistance case raises a dispute about it with 区司法局 (第八条)."""

    #: The raising bureau: the request's requester or its assistor.
    raised_by: Code
    #: The other party of the assistance case.
    other_party: Code
    #: The assistance case's parties as the request names them.
    requester: Code
    assistor: Code
    #: The assistance case (its case id) and its letter number.
    assistance_case: Uuid
    assistance_number: LetterNumber
    claim: Statement
    evidence: Annotated[list[Evidence], msgspec.Meta(max_length=20)] = []


class NegotiationRecorded(msgspec.Struct, frozen=True, kw_only=True, tag="dispute.negotiation-recorded"):
    """A party's note of the negotiation between the two parties (协商); ``failed`` means 协商不成."""

    party: Code
    note: Statement
    outcome: Outcome = "continuing"


class DisputeSettled(msgspec.Struct, frozen=True, kw_only=True, tag="dispute.settled"):
    """协商解决: the two parties agreed; the agreement closes the dispute."""

    agreed_by: Annotated[list[Code], msgspec.Meta(min_length=2, max_length=2)]
    agreement: Statement


class DisputeReferred(msgspec.Struct, frozen=True, kw_only=True, tag="dispute.referred"):
    """协商不成: 区司法局 takes the dispute up, to determine it with 区委编办 and other units."""

    reasons: Statement


class DisputeRuled(msgspec.Struct, frozen=True, kw_only=True, tag="dispute.ruled"):
    """区司法局会同区委编办等有关部门研究确定: the ruling, its co-deciding units and any catalogue amendment."""

    ruling: Statement
    #: Every unit that decided; 区司法局 (``sifa``) and 区委编办 (``bianban``) always among them.
    co_deciders: Annotated[list[Code], msgspec.Meta(min_length=2, max_length=10)]
    #: The ruling changes the catalogue; it then names the adjustment it led to.
    amends_catalogue: bool = False
    adjustment: AdjustmentRef = ""


class DisputeEscalated(msgspec.Struct, frozen=True, kw_only=True, tag="dispute.escalated"):
    """必要时: 区司法局 and 区委编办 ask the district government (区政府) to decide."""

    #: Who asks: 区司法局 and 区委编办.
    petitioners: Annotated[list[Code], msgspec.Meta(min_length=2, max_length=10)]
    reasons: Statement


class DistrictDecided(msgspec.Struct, frozen=True, kw_only=True, tag="dispute.decided"):
    """区政府's decision on an escalated dispute, signed by 区政府办公室 and sent to 区司法局 (decision 51)."""

    decision: Statement
    #: Empty: 区政府 decides, 区司法局 then takes the decision into the catalogue (``dispute.catalogued``).
    #: Kept for the schema; a decision recorded by 区司法局 before decision 51 named its adjustment here.
    adjustment: AdjustmentRef = ""
    #: The government's document number, if it has one.
    decision_no: Annotated[str, msgspec.Meta(max_length=64)] = ""


class DecisionCatalogued(msgspec.Struct, frozen=True, kw_only=True, tag="dispute.catalogued"):
    """决定作出后纳入行政协助目录: 区司法局 names the assistance-catalogue adjustment taking 区政府's decision in."""

    adjustment: AdjustmentRef


DisputeEvent = (DisputeRaised | NegotiationRecorded | DisputeSettled | DisputeReferred | DisputeRuled
                | DisputeEscalated | DistrictDecided | DecisionCatalogued)
#: For ``isinstance``: every dispute payload type.
DISPUTE_EVENTS = (DisputeRaised, NegotiationRecorded, DisputeSettled, DisputeReferred, DisputeRuled,
                  DisputeEscalated, DistrictDecided, DecisionCatalogued)
