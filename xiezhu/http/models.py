"""The HTTP API's request and response bodies (pydantic: FastAPI builds the OpenAPI from them).

They mirror the msgspec wire types of :mod:`schemas` with the same limits, so that a body
the API accepts is one the store accepts; the store's own checks still run after.
"""
from __future__ import annotations

from datetime import date
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

Code = Annotated[str, Field(pattern=r"^[a-z][a-z0-9-]{1,31}$", examples=["gongan"])]
Number = Annotated[str, Field(pattern=r"^\d{8}$", examples=["20260001"])]
Text = Annotated[str, Field(min_length=1, max_length=500)]
Operator = Annotated[str, Field(min_length=1, max_length=60, pattern=r"^[^\x00-\x1f]+$",
                                description="Who acts (the signed record carries it); default: the token's label.")]


class _In(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ApplicantIn(_In):
    kind: Literal["person", "organisation"]
    name: Text
    id_number: Annotated[str, Field(pattern=r"^[0-9A-Z]{15,18}$", examples=["370405199001011234"])]


class MatterIn(_In):
    code: Annotated[str, Field(min_length=1, max_length=64)]
    name: Text


class ItemIn(_In):
    no: Annotated[int, Field(ge=1, le=50)]
    text: Text
    check: Annotated[str, Field(max_length=64, description="A verifier key, e.g. hukou.residence")] = ""
    facts: dict[Annotated[str, Field(max_length=64)], Annotated[str, Field(max_length=200)]] = {}


class RequestIn(_In):
    """A 行政协助函 (附件4): the catalogued item, the applicant, the matter and the commitments to verify."""

    assistor: Code
    catalogue_item: Annotated[str, Field(min_length=1, max_length=64, examples=["XZ-0001"],
                                         description="The item of the published 附件9 catalogue (第七条).")]
    applicant: ApplicantIn
    matter: MatterIn
    applied_on: date
    items: Annotated[list[ItemIn], Field(min_length=1, max_length=50)]
    channel: Literal["platform", "letter"] = "platform"
    staff: Annotated[list[Text], Field(max_length=2, description="协助函（二）: the two staff sent.")] = []
    commitment_case: Annotated[str, Field(pattern=r"^(C\d{8})?$",
                                          description="The commitment case (C2026…) the items come from.")] = ""
    operator: Operator | None = None


class ItemResultIn(_In):
    no: Annotated[int, Field(ge=1, le=50)]
    verdict: Literal["true", "false", "unverifiable"]
    reason: Annotated[str, Field(max_length=500)] = ""


class AnswerIn(_In):
    """A 回复函 (附件5): a verdict for every item asked."""

    items: Annotated[list[ItemResultIn], Field(min_length=1, max_length=50)]
    operator: Operator | None = None


class DeclineIn(_In):
    """书面告知: the reasons a request cannot be assisted."""

    reasons: Annotated[str, Field(min_length=4, max_length=2000)]
    operator: Operator | None = None


class ForwardIn(_In):
    """第五条: the institution holding pre-reform archives that is asked."""

    institution: Text
    note: Annotated[str, Field(max_length=500)] = ""


class WithdrawIn(_In):
    reason: Annotated[str, Field(min_length=2, max_length=2000)]


class WebhookIn(_In):
    url: Annotated[str, Field(pattern=r"^https?://[^\s]+$", max_length=2000,
                              examples=["http://127.0.0.1:9000/xiezhu"])]
    secret: Annotated[str, Field(min_length=16, max_length=200,
                                 description="The HMAC key; one is generated when left out.")] | None = None
    since: Annotated[int, Field(ge=0, description="Deliver feed rows after this sequence (default: from now).")] \
        | None = None


class Problem(BaseModel):
    """Why a call was refused; nothing was changed."""

    error: str
    message: str
    message_zh: str | None = Field(None, description="The message in 中文, for a person (absent where there is none).")


class WhoAmI(BaseModel):
    bureau: str
    token: str
    read_only: bool
    serves: list[str]


class Acted(BaseModel):
    """The result of a clerk's action: the request as it now stands, and whether it went out yet."""

    number: str
    case: str
    requester: str
    assistor: str
    status: str
    queued: bool = Field(description="No agent of the bureau runs now: the agent will send it when it starts.")
    warnings: list[str] = []


class CaseOut(BaseModel):
    number: str
    case: str
    requester: str
    assistor: str
    status: str
    matter: str
    applicant: str
    id_number: str
    channel: str
    catalogue_item: str
    sent_at: str
    arrived_at: str | None
    answered_at: str | None
    answered_by: str
    results: list[dict[str, Any]]
    reasons: str
    forwarded_to: list[str]
    items: list[dict[str, Any]]


class HistoryLine(BaseModel):
    pos: int
    id: str
    type: str
    sender: str
    recipient: str
    time: str


class CaseDetail(BaseModel):
    case: CaseOut
    history: list[HistoryLine]


class FeedItem(BaseModel):
    seq: int
    id: str
    type: str
    case: str
    number: str
    sender: str = Field(alias="from")
    to: str
    time: str
    received_at: str | None
    data: dict[str, Any]

    model_config = ConfigDict(populate_by_name=True)


class WebhookOut(BaseModel):
    url: str
    created_at: str
    delivered_up_to: int
    failed_attempts: int
    next_attempt_at: str | None
    last_error: str | None
    pending: int
    secret: str | None = Field(None, description="Only in the answer to PUT: keep it to check signatures.")


# -- commitment cases (告知承诺) ------------------------------------------------------------------

CaseNumber = Annotated[str, Field(pattern=r"^C\d{8}$", examples=["C20260001"])]
LegalReason = Annotated[str, Field(min_length=2, max_length=2000, description="The legal reason, in full.")]


class CaseOpenIn(_In):
    """An application for a matter of the published 附件8 list; the credit view decides the route (四(二))."""

    matter: Annotated[str, Field(min_length=1, max_length=64, examples=["ZM-shenpi-0001"],
                                 description="The matter's code in the published 附件8 list.")]
    applicant: ApplicantIn
    items: Annotated[list[ItemIn], Field(min_length=1, max_length=50)]
    applied_on: date | None = None


class RouteIn(_In):
    route: Literal["commitment", "certificate"]


class CommitIn(_In):
    signed_on: date | None = None


class ApproveIn(_In):
    decision_no: Annotated[str, Field(min_length=1, max_length=64, examples=["台审批许〔2026〕1号"])]


class ReasonIn(_In):
    reason: Annotated[str, Field(min_length=2, max_length=2000)]


class PlannedIn(_In):
    no: Annotated[int, Field(ge=1, le=50)]
    method: Literal["online", "assistance", "on-site"]
    due_on: date | None = None
    exempt: bool = False
    detail: Annotated[str, Field(max_length=200)] = ""


class PlanIn(_In):
    """How and by when each committed item is verified (三(一))."""

    items: Annotated[list[PlannedIn], Field(min_length=1, max_length=50)]


class VerifyIn(_In):
    """One committed item's verification: online, by an assistance reply, or on site by two officers."""

    no: Annotated[int, Field(ge=1, le=50)]
    verdict: Literal["true", "false", "unverifiable"]
    way: Literal["online", "assistance", "on-site"]
    detail: Annotated[str, Field(max_length=100, description="online: the system; assistance: the 协助函 "
                                                             "number")] = ""
    officers: Annotated[list[Text], Field(max_length=5, description="on-site: the officers (two or more)")] = []
    reason: Annotated[str, Field(max_length=500)] = ""


class ConsequenceIn(_In):
    """What follows a false commitment (三(三), 附件6), one at a time."""

    kind: Literal["terminate", "rectify", "rectified", "revoke", "penalise", "notify", "refer"]
    legal_reason: LegalReason | None = None
    deadline: date | None = Field(None, description="rectify: by when")
    penalty: Annotated[str, Field(max_length=2000)] = ""
    department: Code | None = Field(None, description="notify: the supervising department's bureau code")
    to: Annotated[str, Field(max_length=500, description="refer: to whom")] = ""
    evidence: Annotated[str, Field(max_length=2000, description="rectified: what shows it")] = ""


class CommitmentOut(BaseModel):
    """A commitment case as the bureau's store holds it (the applicant masked)."""

    number: str
    case: str
    status: str
    outcomes: list[str]
    state: dict[str, Any]
    requests: list[dict[str, Any]]
