"""The history of one case from the 司法局 ledger alone: who said what, when, under which key, what it broke.

A 司法局 reviewer asks the questions of 第九条 and 第十条: which bureau asked for what (the
requester answers for the request), and whether a verification went beyond the request (the
assistor answers for that). Both are read from the signed payloads in the ledger, not from any
bureau's database.

The ledger keeps what was signed, including events a bureau's store would have refused, so the
fold here is lenient: an event that breaks a rule leaves the state as it was and its line shows
the rule's code and message. A history never stops at a rule break.
"""
from __future__ import annotations

import re
from collections.abc import Callable
from contextlib import AbstractContextManager
from datetime import UTC, datetime
from typing import Literal, Protocol

import msgspec

from aggregates import assistance, commitment, dispute
from aggregates.assistance import CaseState
from aggregates.commitment import CommitmentState
from aggregates.database import Sql
from aggregates.dispute import DisputeState
from aggregates.errors import RuleError
from aggregates.store import SHANGHAI
from broker.ledger.store import Entry, Ledger
from projections.wording import breach, items_zh
from projections.wording import finding as finding_zh
from projections.wording import oneline as _oneline
from schemas import labels
from schemas.access import DisclosureRecorded
from schemas.assistance import (
    AssistanceDeclined,
    AssistanceForwarded,
    AssistanceReceived,
    AssistanceReplied,
    AssistanceRequested,
    AssistanceWithdrawn,
)
from schemas.catalogue import ListPublished
from schemas.commitment import (
    ApplicationReceived,
    Approved,
    Closed,
    CommitmentSigned,
    CreditRecorded,
    DecisionRevoked,
    FalseCommitmentFound,
    ItemVerified,
    LicenceReturned,
    NoticeIssued,
    PenaltyImposed,
    ProcessingTerminated,
    PunishmentReferral,
    RectificationOrdered,
    ReferredToJudiciary,
    RouteChosen,
    RouteRefused,
    SupervisorNotified,
    VerificationPlanned,
    Withdrawn,
)
from schemas.dispute import (
    DecisionCatalogued,
    DisputeEscalated,
    DisputeRaised,
    DisputeReferred,
    DisputeRuled,
    DisputeSettled,
    DistrictDecided,
    NegotiationRecorded,
)
from schemas.envelope import Envelope
from schemas.errors import XiezhuError
from schemas.privacy import mask_name
from schemas.sla import BureauCriticised, DeadlineBreached, DeadlineReminder

#: ``list``: 区政府's publications of a version of a list (一(三)), numbered L20260001 (decision 51).
Kind = Literal["assistance", "commitment", "dispute", "list"]
State = CaseState | CommitmentState | DisputeState

#: 第十条: the assistor answered items the requester did not ask about.
BEYOND = "超出请求范围（第十条）"
#: 第十条 too: asked items left without an answer.
UNANSWERED = "未答复请求事项（第十条）"
#: 第九条: the requester asked about items the applicant never committed to.
BEYOND_COMMITMENT = "请求超出承诺事项（第九条）"
#: 第九条: a bureau asked for assistance on another bureau's commitment case.
NOT_ITS_CASE = "请求机关与承诺案件不符（第九条）"
#: A commitment item recorded as verified through assistance that no reply in the ledger supports.
UNSUPPORTED = "核查结果无回复依据"
#: 第五条 / 三(二): a reply or decline deadline was missed (from the monitor's signed breach notice).
BREACHED = "逾期（第五条）"
#: 第八条: a dispute names an assistance case the ledger does not have, or has with other parties.
NOT_THE_DISPUTED_CASE = "争议与协助案件不符（第八条）"
#: 第五条: a time a party claimed contradicts the platform's record (see aggregates.assistance).
TIME_CLAIM = assistance.TIME_CLAIM
#: 三(二): a request allowing more than 3 / 2 working days (judged by the plan's limits).
LONGER_LIMIT = assistance.LONGER_LIMIT
#: 第七条, 第六条: the request cites an item it could not be asked under (checked against the catalogue).
NOT_CATALOGUED = "未纳入行政协助目录（第七条）"
#: 三(三), 附件6: what a false commitment requires that the case does not show (commitment.outstanding).
CONSEQUENCE_OUTSTANDING = "后果未落实（三(三)、附件6）"
_FLAGS = (BEYOND, UNANSWERED, BEYOND_COMMITMENT, NOT_ITS_CASE, UNSUPPORTED, BREACHED, NOT_THE_DISPUTED_CASE,
          TIME_CLAIM, LONGER_LIMIT, CONSEQUENCE_OUTSTANDING, NOT_CATALOGUED)
#: Signed notices about a case (deadline reminders, breaches) that are not steps of it.
#: Notices about a case: deadline reminders and breaches, and disclosures of its personal data.
NOTICE_TYPES = ("sla.", "access.", "notice.")

Name = Callable[[str], str]


class Said:
    """Statements in English (JSON, reports, bundles) and in 中文 (tables), one for one."""

    def __init__(self) -> None:
        self.en: list[str] = []
        self.zh: list[str] = []

    def add(self, en: str, zh: str) -> None:
        self.en.append(en)
        self.zh.append(zh)

    def both(self, text: str) -> None:
        """A statement that reads the same in both (a rule's code and message)."""
        self.add(text, text)

    def extend(self, other: Said) -> None:
        self.en += other.en
        self.zh += other.zh


def registry_names() -> Name:
    """A bureau's registry name from its code; any other party (the ledger, an institution) as it is."""
    from aggregates.registry import Registry

    reg = Registry.load()
    return lambda code: reg.name(code) if code in reg else ("账本" if code == "ledger" else code)


class CitedCheck(Protocol):
    """第七条, 第六条: raises a RuleError if a request cites an item it could not be asked under."""

    def check_cited(self, request: AssistanceRequested) -> object: ...


class HistoryError(XiezhuError):
    """A case history that cannot be built."""

    code = "history"


class UnknownCase(HistoryError):
    """No ledger entry has that case id."""

    code = "history.unknown-case"


class HistoryLine(msgspec.Struct, frozen=True, kw_only=True):
    """One ledger entry of a case, as a reviewer reads it."""

    pos: int
    #: The envelope's own time (the sender's clock, as signed).
    time: datetime
    #: When the ledger received it.
    arrived_at: datetime
    sender: str
    recipient: str
    type: str
    kid: str
    #: SHA-256 of the signed bytes: the hash an answer quotes for its request.
    digest: str
    summary: str
    #: Rules this event broke (``<code>: <message>``) and scope flags (第九条/第十条).
    findings: list[str] = []
    #: The envelope as signed, personal data included (letters are built from it); None if it no longer decodes.
    envelope: Envelope | None = None


class CaseHistory(msgspec.Struct, frozen=True, kw_only=True):
    """Every ledger entry of one case, the leniently folded state, and who answers for what."""

    kind: Kind
    case: str
    number: str
    lines: list[HistoryLine]
    #: The state after every event that kept the rules; None if even the first one broke one.
    state: CaseState | CommitmentState | DisputeState | None
    #: Responsibility statements (第九条/第十条) with their flags, then every rule break by position.
    findings: list[str]
    #: An assistance case: its commitment case and the disputes about it. A commitment case: the
    #: assistance cases asked for it. A dispute: the assistance case it is about.
    linked: list[str] = []
    #: The numbers of the cases the lines name by id (a request's commitment case), to word them again.
    numbers: dict[str, str] = {}
    #: ``findings`` in 中文, one for one, bureaus by name (a rule break by its ``labels.RULE`` and code).
    findings_zh: list[str] = []

    @property
    def flags(self) -> list[str]:
        """Findings that need a reviewer's attention: scope flags and rule breaks."""
        return [f for f in self.findings if is_flag(f)]


def is_flag(finding: str) -> bool:
    """A rule break (``pos N …``, also when quoted from a linked case) or a 第九条/第十条 flag."""
    return re.match(r"^(\S+: )?pos \d+ ", finding) is not None or any(flag in finding for flag in _FLAGS)


# -- folding -------------------------------------------------------------------------------------------------


def is_notice(env: Envelope) -> bool:
    """A notice about the case (e.g. a deadline breach), shown in its history but not folded."""
    return env.type.startswith(NOTICE_TYPES)


def fold_step(state: State | None, kind: Kind, env: Envelope, digest: str, *,
              recorded_at: datetime | None = None) -> tuple[State | None, RuleError | None]:
    """Fold one envelope leniently: the new state, or the old one and the rule it broke.

    ``recorded_at``: when the platform stored the envelope (its ledger arrival), which decides an
    assistance case's legal times (第五条).  A notice leaves the state as it is and breaks no rule.
    """
    if is_notice(env) or kind == "list":
        return state, None
    try:
        if kind == "assistance":
            return assistance.apply(state if isinstance(state, CaseState) else None, env, digest,
                                    recorded_at=recorded_at), None
        if kind == "dispute":
            return dispute.apply(state if isinstance(state, DisputeState) else None, env), None
        return commitment.apply(state if isinstance(state, CommitmentState) else None, env), None
    except RuleError as e:
        return state, e


def kind_of(entries: list[Entry]) -> Kind:
    """A case is a commitment case or a dispute if its first entry is a commitment or a dispute event."""
    if entries and entries[0].type.startswith("commitment."):
        return "commitment"
    if entries and entries[0].type.startswith("dispute."):
        return "dispute"
    if entries and entries[0].type == "notice.list-published":
        return "list"
    return "assistance"


def history(ledger: Ledger, case_id: str, *, disputes: bool = True, now: datetime | None = None,
            catalogue: CitedCheck | None = None, name: Name | None = None) -> CaseHistory:
    """The history of one case, folded leniently, with the findings a 司法局 reviewer needs.

    Given 区司法局's ``catalogue``, a request that could not be asked under the item it cites (第七条,
    第六条) is flagged ``未纳入行政协助目录（第七条）``.

    An assistance case also lists the disputes raised about it (第八条) unless ``disputes`` is
    false: that look-up scans the ledger's dispute raises.  A commitment case found false lists
    what its consequences still lack at ``now`` (default: the system clock).  ``name`` names bureaus
    in the 中文 findings (default: the registry's names).
    """
    name = name or registry_names()
    entries = ledger.case(case_id)
    if not entries:
        raise UnknownCase(f"no ledger entry has case {case_id}", zh=f"没有账本条目属于案件 {case_id}", case=case_id)
    kind = kind_of(entries)
    state: State | None = None
    asked: dict[int, str] | None = None
    lines: list[HistoryLine] = []
    breaks: list[str] = []
    claims: list[str] = []
    for e in entries:
        env = _decode(ledger, e.signed.body)
        findings: list[str] = []
        if env is None:
            findings.append(f"malformed: entry {e.pos} no longer decodes or opens as an envelope")
        else:
            flagged = len(state.time_flags) if isinstance(state, CaseState) else 0
            state, err = fold_step(state, kind, env, e.signed.digest, recorded_at=_arrival(e))
            if err is not None:
                findings.append(f"{err.code}: {err.message}")
            if isinstance(state, CaseState) and len(state.time_flags) > flagged:
                findings += state.time_flags[flagged:]
                claims += [f"{f} (pos {e.pos})" for f in state.time_flags[flagged:]]
            if isinstance(env.payload, AssistanceRequested) and asked is None:
                asked = {i.no: i.text for i in env.payload.items}
            if isinstance(env.payload, AssistanceReplied) and asked is not None:
                findings += _scope_flags(sorted(asked), [r.no for r in env.payload.results])
        breaks += [f"pos {e.pos} {e.type}: {f}" for f in findings if not f.startswith(_FLAGS)]
        lines.append(_line(e, env, findings, lambda c: _case_number(ledger, c)))
    if kind == "assistance":
        statements, linked = _assistance_findings(ledger, lines, name)
        first = lines[0].envelope
        if catalogue is not None and first is not None and isinstance(first.payload, AssistanceRequested):
            try:
                catalogue.check_cited(first.payload)
            except RuleError as e:
                statements.both(f"{NOT_CATALOGUED}: {e.code}: {e}")
        if disputes:
            about = find_disputes_about(ledger, case_id)
            statements.extend(_disputes_about(ledger, about, name))
            linked += about
    elif kind == "dispute":
        statements, linked = _dispute_findings(ledger, lines, name)
    elif kind == "list":
        statements, linked = Said(), []
    else:
        statements, linked = _commitment_findings(ledger, case_id, lines, name)
        if isinstance(state, CommitmentState):
            for o in commitment.outstanding(state, now or datetime.now(UTC)):
                statements.both(f"{CONSEQUENCE_OUTSTANDING}: {o}")
    numbers = {ev.commitment_case: _case_number(ledger, ev.commitment_case) for line in lines
               if line.envelope is not None and isinstance(ev := line.envelope.payload, AssistanceRequested)
               and ev.commitment_case}
    return CaseHistory(kind=kind, case=case_id, number=entries[0].number, lines=lines, state=state,
                       findings=statements.en + claims + breaks, linked=linked, numbers=numbers,
                       findings_zh=statements.zh + claims + [finding_zh(b) for b in breaks])


def _decode(ledger: Ledger, body: bytes) -> Envelope | None:
    """What ledger bytes say, or ``None`` if they no longer decode or open (a finding, not an error)."""
    return ledger.read(body)[0]


def _line(e: Entry, env: Envelope | None, findings: list[str], case_number: Callable[[str], str]) -> HistoryLine:
    return HistoryLine(
        pos=e.pos, time=env.time if env else datetime.fromisoformat(e.event_time),
        arrived_at=datetime.fromisoformat(e.arrived_at), sender=e.sender, recipient=e.recipient, type=e.type,
        kid=e.signed.kid, digest=e.signed.digest,
        summary=summarize(env, case_number) if env else f"undecodable {e.type}",
        findings=findings, envelope=env,
    )


# -- lookups -------------------------------------------------------------------------------------------------


def _read_only(ledger: Ledger) -> AbstractContextManager[Sql]:
    """A separate read-only connection to the ledger (the Ledger has no query for these look-ups)."""
    return ledger.reader()  # from a read-only directory (an archive) too


def find_cases(ledger: Ledger, number: str, sender: str | None = None) -> list[str]:
    """Case ids with letter number ``number`` (from ``sender``, if given), in ledger order.

    ``20260001`` is an assistance request number: :meth:`Ledger.find` finds it, and only by the
    ``assistance.requested`` entry. ``C20260001`` is a commitment-case number, ``D20260001`` a
    dispute number (附件2 第八条, from the raising bureau) and ``L20260001`` 区政府's publication of a
    version of the 证明事项清单 (一(三)), which ``Ledger.find`` does not look for; they are found by their
    ``commitment.applied`` / ``dispute.raised`` / ``notice.list-published`` entry (the indexed number column).
    """
    first = {"C": "commitment.applied", "D": "dispute.raised", "L": "notice.list-published"}.get(number[:1])
    if first is None:
        return ledger.find(number, sender)
    sql = f"SELECT case_id FROM entries WHERE number = ? AND type = '{first}'"
    args: tuple[str, ...] = (number,)
    if sender:
        sql += " AND sender = ?"
        args = (number, sender)
    with _read_only(ledger) as conn:
        rows = conn.execute(sql + " ORDER BY pos", args).fetchall()
    return list(dict.fromkeys(str(r[0]) for r in rows))


def find_assistance_for(ledger: Ledger, commitment_case: str) -> list[str]:
    """Assistance case ids whose request names ``commitment_case`` (its case id), in ledger order.

    A linear scan: every ``assistance.requested`` entry of the ledger is decoded, because the
    ``commitment_case`` field lives only in the signed payload and has no index column. Fine for
    one reviewer's look-up; an index kept by a projection will replace it for bulk use.
    """
    return _cases_naming(ledger, "assistance.requested", "commitment_case", commitment_case)


def find_disputes_about(ledger: Ledger, assistance_case: str) -> list[str]:
    """Dispute case ids raised about ``assistance_case`` (its case id), in ledger order.

    A scan of the ``dispute.raised`` entries, as :func:`find_assistance_for` scans requests:
    disputes are few, and the case they name lives only in the signed payload.
    """
    return _cases_naming(ledger, "dispute.raised", "assistance_case", assistance_case)


def _cases_naming(ledger: Ledger, event_type: str, field: str, target: str) -> list[str]:
    """Case ids, in ledger order, whose ``event_type`` entry names ``target`` in its payload's ``field``."""
    found: list[str] = []
    with _read_only(ledger) as conn:
        rows = conn.execute("SELECT case_id, body FROM entries WHERE type = ? ORDER BY pos", (event_type,))
        for case_id, body in rows:
            env = _decode(ledger, bytes(body))
            if (env is not None and env.type == event_type and getattr(env.payload, field, None) == target
                    and case_id not in found):
                found.append(str(case_id))
    return found


def _case_number(ledger: Ledger, case_id: str) -> str:
    entries = ledger.case(case_id)
    return entries[0].number if entries else case_id


# -- summaries -----------------------------------------------------------------------------------------------


def nos(numbers: list[int]) -> str:
    """Item numbers as printed in summaries: ``[1,2]``."""
    return "[" + ",".join(str(n) for n in numbers) + "]"


def _local(t: datetime) -> str:
    return t.astimezone(SHANGHAI).strftime("%Y-%m-%d %H:%M") + " Asia/Shanghai"


def summarize(env: Envelope, case_number: Callable[[str], str] = lambda c: c) -> str:
    """One line for one event; ``case_number`` names a linked commitment case by its number."""
    if is_notice(env):
        return _notice_summary(env)
    if env.type.startswith("commitment."):
        return _commitment_summary(env)
    if env.type.startswith("dispute."):
        return _dispute_summary(env)
    return _assistance_summary(env, case_number)


def _assistance_summary(env: Envelope, case_number: Callable[[str], str]) -> str:
    match env.payload:
        case AssistanceRequested() as ev:
            text = (f"{env.sender} → {env.recipient} 行政协助函 {env.number}: {len(ev.items)} items "
                    f"{nos([i.no for i in ev.items])}, {ev.channel}")
            if ev.staff:
                text += f", staff {'、'.join(ev.staff)}"
            if ev.catalogue_item:
                text += f", catalogue {ev.catalogue_item} v{ev.catalogue_version}"
            if ev.commitment_case:
                text += f", for commitment case {case_number(ev.commitment_case)}"
            return text
        case AssistanceReceived() as ev:
            return f"{env.sender} recorded arrival at {_local(ev.arrived_at)}"
        case AssistanceReplied() as ev:
            answers = ", ".join(f"{r.no} {labels.VERDICT[r.verdict]}" + (f" ({_oneline(r.reason)})" if r.reason else "")
                                for r in ev.results)
            text = f"{env.sender} 回复: {answers}"
            if ev.on_behalf_of:
                text += f"; on behalf of {ev.on_behalf_of}"
            return text + f"; answered by {ev.answered_by}"
        case AssistanceDeclined() as ev:
            return f"declined: {_oneline(ev.reasons)}"
        case AssistanceForwarded() as ev:
            return f"forwarded to {ev.institution}" + (f": {_oneline(ev.note)}" if ev.note else "")
        case AssistanceWithdrawn() as ev:
            return f"withdrawn: {_oneline(ev.reason)}"
    return _generic_summary(env)


def _commitment_summary(env: Envelope) -> str:
    match env.payload:
        case ApplicationReceived() as ev:
            who = mask_name(ev.applicant.name) if ev.applicant.kind == "person" else ev.applicant.name
            return (f"申请 {env.number}: {who} {ev.matter_name} ({ev.mode}), in place of {ev.certificate_name} "
                    f"from {ev.issuing_unit}; items {nos([i.no for i in ev.items])}, standing {ev.standing}")
        case RouteRefused() as ev:
            return f"route refused ({ev.cause}): {_oneline(ev.legal_reason)}"
        case NoticeIssued() as ev:
            return "承诺告知书" + (" (disclosure told)" if ev.told_disclosure else "")
        case RouteChosen() as ev:
            return f"route chosen: {ev.route}"
        case CommitmentSigned() as ev:
            return f"申请人承诺书 signed {ev.signed_on.isoformat()}"
        case Approved() as ev:
            return f"approved {ev.decision_no}"
        case Withdrawn() as ev:
            return f"withdrawn: {_oneline(ev.reason)}"
        case VerificationPlanned() as ev:
            return "verification planned: " + ", ".join(
                f"{p.no} exempt" if p.exempt else
                f"{p.no} {labels.METHOD[p.method]}" + (f" by {p.due_on.isoformat()}" if p.due_on else "")
                for p in ev.items)
        case ItemVerified() as ev:
            text = f"item {ev.no} verified {labels.VERDICT[ev.verdict]} via {ev.source}"
            return text + (f" ({_oneline(ev.reason)})" if ev.reason else "")
        case Closed() as ev:
            return "closed" + (f": {_oneline(ev.summary)}" if ev.summary else "")
        case FalseCommitmentFound() as ev:
            return f"false commitment, items {nos(sorted(ev.items))}: {_oneline(ev.legal_reason)}"
    return _outcome_summary(env)


def _outcome_summary(env: Envelope) -> str:
    match env.payload:
        case ProcessingTerminated() as ev:
            return f"terminated: {_oneline(ev.legal_reason)}"
        case RectificationOrdered() as ev:
            return f"rectification by {ev.deadline.isoformat()}: {_oneline(ev.legal_reason)}"
        case DecisionRevoked() as ev:
            due = ev.licence_return_due
            back = "" if due is None else f", licence due back by {_local(due)}"
            return f"revoked{back}: {_oneline(ev.legal_reason)}"
        case PenaltyImposed() as ev:
            return f"penalty {_oneline(ev.penalty)}: {_oneline(ev.legal_reason)}"
        case CreditRecorded() as ev:
            return f"credit recorded {_oneline(ev.record)}: {_oneline(ev.legal_reason)}"
        case ReferredToJudiciary() as ev:
            return f"referred to {ev.to}: {_oneline(ev.legal_reason)}"
        case SupervisorNotified() as ev:
            return f"推送监管部门予以惩处: {ev.department} told: {_oneline(ev.legal_reason)}"
        case LicenceReturned() as ev:
            return f"licence original returned {_local(ev.returned_at)}" + (f": {_oneline(ev.note)}" if ev.note else "")
    return _generic_summary(env)


def _dispute_summary(env: Envelope) -> str:
    match env.payload:
        case DisputeRaised() as ev:
            text = (f"争议 {env.number}: {ev.raised_by} disputes with {ev.other_party} about 行政协助函 "
                    f"{ev.assistance_number} ({ev.requester} → {ev.assistor}): {_oneline(ev.claim)}")
            return text + (f"; evidence: {'；'.join(_oneline(x) for x in ev.evidence)}" if ev.evidence else "")
        case NegotiationRecorded() as ev:
            return f"协商 ({ev.party}, {labels.NEGOTIATION[ev.outcome]}): {_oneline(ev.note)}"
        case DisputeSettled() as ev:
            return f"协商解决, agreed by {'、'.join(ev.agreed_by)}: {_oneline(ev.agreement)}"
        case DisputeReferred() as ev:
            return f"协商不成, taken up by {env.sender}: {_oneline(ev.reasons)}"
        case DisputeRuled() as ev:
            text = f"研究确定 by {'、'.join(ev.co_deciders)}: {_oneline(ev.ruling)}"
            return text + (f"; catalogue amended by adjustment {ev.adjustment}" if ev.adjustment else "")
        case DisputeEscalated() as ev:
            return f"提请区政府决定 by {'、'.join(ev.petitioners)}: {_oneline(ev.reasons)}"
        case DistrictDecided() as ev:
            text = "区政府决定" + (f" {ev.decision_no}" if ev.decision_no else "") + f", by {env.sender}"
            return text + f": {_oneline(ev.decision)}"
        case DecisionCatalogued() as ev:
            return f"区政府决定纳入行政协助目录 by {env.sender}: adjustment {ev.adjustment}"
    return _generic_summary(env)


def _notice_summary(env: Envelope) -> str:
    match env.payload:
        case DeadlineReminder() as ev:
            text = f"reminder to {env.recipient}: {ev.kind} due {_local(ev.due_at)}"
            return text + (" (provisional calendar)" if ev.provisional else "")
        case DeadlineBreached() as ev:
            return f"breach notice to {env.recipient}: {_breach(ev)}"
        case DisclosureRecorded() as ev:
            return (f"shown in full to {ev.operator} on {ev.host} at {_local(ev.at)} ({ev.command}, "
                    f"entitled by {ev.entitled_by}): {_oneline(ev.reason)}")
        case ListPublished() as ev:
            return (f"一(三): 区政府公布{labels.CATALOGUE_KIND[ev.kind]}第{ev.version}版 ({ev.rows} rows, "
                    f"digest {ev.digest[:12]}…), signed by {env.sender}")
        case BureauCriticised() as ev:
            measure = "通报批评" if ev.measure == "criticism" else "予以教育"
            return (f"第十二条: 区政府对{ev.bureau}{measure}，责令其于{ev.correct_by.isoformat()}前改正 "
                    f"({len(ev.about)} request(s)): {_oneline(ev.reasons)}")
        case PunishmentReferral() as ev:
            return (f"推送监管部门予以惩处: {env.sender} told {env.recipient} of {mask_name(ev.applicant.name)}'s "
                    f"false items {nos(ev.false_items)}: {_oneline(ev.legal_reason)}")
    return _generic_summary(env)


def _breach(ev: DeadlineBreached) -> str:
    text = f"{ev.kind} due {_local(ev.due_at)} missed"
    if ev.answered_at is not None:
        text += f", answered {_local(ev.answered_at)}, {ev.working_days_late} working day(s) late"
    else:
        text += f", still unanswered at {_local(ev.detected_at)}"
    return text + (" (provisional calendar)" if ev.provisional else "")


def _generic_summary(env: Envelope) -> str:
    """An event type this module has no wording for yet: its tag and its non-empty fields."""
    fields = [f"{k}={_oneline(str(v))}" for k, v in msgspec.structs.asdict(env.payload).items()
              if v not in ("", None, [], {})]
    return env.type + (": " + ", ".join(fields) if fields else "")


# -- responsibility ------------------------------------------------------------------------------------------


def _scope_flags(asked: list[int], answered: list[int]) -> list[str]:
    """What a reply did beyond or short of the request (第十条), from the payloads alone."""
    flags = []
    beyond = sorted({n for n in answered if n not in asked})
    missing = [n for n in asked if n not in answered]
    twice = sorted({n for n in answered if answered.count(n) > 1})
    if beyond:
        flags.append(f"{BEYOND}: items {nos(beyond)}")
    if missing:
        flags.append(f"{UNANSWERED}: items {nos(missing)}")
    if twice:
        flags.append(f"{UNANSWERED}: items {nos(twice)} answered more than once")
    return flags


def _assistance_findings(ledger: Ledger, lines: list[HistoryLine], name: Name) -> tuple[Said, list[str]]:
    """第九条: who asked for which items; 第十条: whether each answer kept to them."""
    out = Said()
    linked: list[str] = []
    asked: list[int] | None = None
    breaches: set[tuple[str, datetime]] = set()
    for line in lines:
        env = line.envelope
        if env is None:
            continue
        match env.payload:
            case DeadlineBreached() as ev if (ev.kind, ev.due_at) not in breaches:
                breaches.add((ev.kind, ev.due_at))  # one notice, one copy per recipient: state it once
                out.add(f"{BREACHED}: {ev.assistor} {_breach(ev)} (pos {line.pos}, notice by {line.sender})",
                        f"{BREACHED}：{name(ev.assistor)} {breach(ev)}（第 {line.pos} 条，{name(line.sender)}通知）")
            case AssistanceRequested() as ev if asked is None:
                asked = [i.no for i in ev.items]
                texts = "；".join(f"{i.no} {i.text}" for i in ev.items)
                out.add(f"第九条: {ev.requester} asked {ev.assistor} to verify items {nos(asked)}: {texts}",
                        f"第九条：{name(ev.requester)}请求{name(ev.assistor)}核查{items_zh(asked)}：{texts}")
                if ev.commitment_case:
                    out.extend(_request_within_commitment(ledger, env, ev, name))
                    linked.append(ev.commitment_case)
            case AssistanceReplied() as ev:
                flags = _scope_flags(asked or [], [r.no for r in ev.results])
                on_behalf = f" on behalf of {ev.on_behalf_of}" if ev.on_behalf_of else ""
                verdict = "; ".join(flags) if flags else f"answered exactly the items asked {nos(asked or [])}"
                verdict_zh = "；".join(flags) if flags else f"恰好答复了所请求的{items_zh(asked or [])}"
                out.add(f"第十条: {line.sender}'s reply (pos {line.pos}){on_behalf} {verdict}",
                        f"第十条：{name(line.sender)}的回复（第 {line.pos} 条）"
                        + (f"代 {ev.on_behalf_of} " if ev.on_behalf_of else "") + verdict_zh)
            case AssistanceDeclined():
                out.add(f"{line.sender} declined (pos {line.pos}) and verified no item",
                        f"{name(line.sender)}告知不能协助（第 {line.pos} 条），未核查任何事项")
            case AssistanceForwarded() as ev:
                out.add(f"{line.sender} forwarded the request to {ev.institution} (pos {line.pos}); "
                        f"its answer remains {line.sender}'s (第五条)",
                        f"{name(line.sender)}将请求转{ev.institution}（第 {line.pos} 条）；答复仍由"
                        f"{name(line.sender)}负责（第五条）")
            case AssistanceWithdrawn():
                out.add(f"{line.sender} withdrew the request (pos {line.pos})",
                        f"{name(line.sender)}撤回了请求（第 {line.pos} 条）")
    return out, linked


def _request_within_commitment(ledger: Ledger, env: Envelope, ev: AssistanceRequested, name: Name) -> Said:
    """第九条: a request made for a commitment case asks only about what that applicant committed to."""
    out = Said()
    entries = ledger.case(ev.commitment_case)
    first = _decode(ledger, entries[0].signed.body) if entries else None
    if first is None or not isinstance(first.payload, ApplicationReceived):
        out.add(f"{NOT_ITS_CASE}: the request names commitment case {ev.commitment_case}, "
                "which has no application in the ledger",
                f"{NOT_ITS_CASE}：请求所称告知承诺案件 {ev.commitment_case} 在账本中没有申请")
        return out
    if first.sender != env.sender:
        out.add(f"{NOT_ITS_CASE}: commitment case {first.number} is {first.sender}'s, not {env.sender}'s",
                f"{NOT_ITS_CASE}：告知承诺案件 {first.number} 属于{name(first.sender)}，不属于{name(env.sender)}")
    committed = {i.no: i.text for i in first.payload.items}
    outside = [i.no for i in ev.items if committed.get(i.no) != i.text]
    if outside:
        out.add(f"{BEYOND_COMMITMENT}: items {nos(outside)} are not among the items of {first.number} as committed",
                f"{BEYOND_COMMITMENT}：{items_zh(outside)}不在 {first.number} 的承诺事项之内")
    else:
        out.add(f"the request is for commitment case {first.number} and asks only about its committed items",
                f"请求用于告知承诺案件 {first.number}，只涉及其承诺事项")
    return out


def _commitment_findings(ledger: Ledger, case_id: str, lines: list[HistoryLine], name: Name
                         ) -> tuple[Said, list[str]]:
    """The assistance asked for this case, and which bureau each verification result rests on."""
    out = Said()
    first = lines[0].envelope
    if first is not None and isinstance(first.payload, ApplicationReceived):
        numbers = [i.no for i in first.payload.items]
        out.add(f"{first.sender} recorded commitment case {first.number}; the applicant committed items "
                f"{nos(numbers)}",
                f"{name(first.sender)}受理告知承诺案件 {first.number}；申请人承诺{items_zh(numbers)}")
    linked = find_assistance_for(ledger, case_id)
    requests = [history(ledger, a, disputes=False, name=name) for a in linked]
    for h in requests:
        out.add(*_request_statement(h, name))
        for f in h.flags:
            out.both(f"{h.number}: {f}")
    for line in lines:
        if line.envelope is not None and isinstance(line.envelope.payload, ItemVerified):
            out.extend(_verification_source(line.envelope.payload, requests, name))
    return out, linked


def _request_statement(h: CaseHistory, name: Name) -> tuple[str, str]:
    st = h.state
    if not isinstance(st, CaseState):
        return (f"assistance request {h.number} (case {h.case}) did not open a valid case",
                f"行政协助请求 {h.number} 未能形成有效案件")
    numbers = [i.no for i in st.request.items]
    return (f"assistance request {h.number} {st.requester} → {st.assistor} (case {h.case}) asked items "
            f"{nos(numbers)}: {st.status}",
            f"行政协助请求 {h.number} {name(st.requester)} → {name(st.assistor)} 请求核查{items_zh(numbers)}："
            f"{labels.REQUEST_STATUS[st.status]}")


def _verification_source(ev: ItemVerified, requests: list[CaseHistory], name: Name) -> Said:
    """An item verified ``assistance:<requester>/<number>`` rests on that request's reply."""
    out = Said()
    if not ev.source.startswith("assistance:"):
        return out
    requester, _, number = ev.source.removeprefix("assistance:").partition("/")
    said = labels.VERDICT[ev.verdict]
    for h in requests:
        st = h.state
        if isinstance(st, CaseState) and st.number == number and st.requester == requester:
            answer = {r.no: r.verdict for r in st.results}.get(ev.no)
            if answer is None:
                out.add(f"{UNSUPPORTED}: item {ev.no} recorded {said} via {ev.source}, but that reply has no "
                        "answer for it", f"{UNSUPPORTED}：第 {ev.no} 项记为{said}，依据行政协助函 {number}，"
                        "但该回复没有答复此项")
            elif answer != ev.verdict:
                out.add(f"{UNSUPPORTED}: item {ev.no} recorded {said}, but {st.assistor}'s reply to {number} "
                        f"said {labels.VERDICT[answer]}", f"{UNSUPPORTED}：第 {ev.no} 项记为{said}，但"
                        f"{name(st.assistor)}对 {number} 的回复为{labels.VERDICT[answer]}")
            else:
                out.add(f"第十条: item {ev.no} {said} rests on {st.assistor}'s reply to {number}",
                        f"第十条：第 {ev.no} 项{said}，依据{name(st.assistor)}对 {number} 的回复")
            return out
    out.add(f"{UNSUPPORTED}: item {ev.no} verified via {ev.source}, but no assistance request {number} "
            "names this case", f"{UNSUPPORTED}：第 {ev.no} 项依行政协助函 {number} 核查，但没有该编号的请求"
            "指向本案件")
    return out


def _fold_quietly(ledger: Ledger, case_id: str) -> State | None:
    """A case's state from the ledger, folded leniently, without findings or linked cases."""
    entries = ledger.case(case_id)
    kind = kind_of(entries)
    state: State | None = None
    for e in entries:
        env = _decode(ledger, e.signed.body)
        if env is not None:
            state, _ = fold_step(state, kind, env, e.signed.digest, recorded_at=_arrival(e))
    return state


def _arrival(e: Entry) -> datetime:
    """When the platform stored entry ``e`` (the ledger writes aware times)."""
    return datetime.fromisoformat(e.arrived_at)


def _disputes_about(ledger: Ledger, disputes: list[str], name: Name) -> Said:
    """第八条: the disputes raised about an assistance case, with where each stands."""
    out = Said()
    for d in disputes:
        st = _fold_quietly(ledger, d)
        if isinstance(st, DisputeState):
            out.add(f"第八条: {st.raised_by} raised dispute {st.number} about this request (case {d}): "
                    f"{labels.DISPUTE_STEP[st.step]}",
                    f"第八条：{name(st.raised_by)}就本请求提出争议 {st.number}：{labels.DISPUTE_STEP[st.step]}")
    return out


def _dispute_findings(ledger: Ledger, lines: list[HistoryLine], name: Name) -> tuple[Said, list[str]]:
    """第八条: who disputes what with whom, whether it matches the case in the ledger, and how it ended."""
    out = Said()
    linked: list[str] = []

    def names(codes: list[str]) -> str:
        return "、".join(name(c) for c in codes)

    for line in lines:
        env = line.envelope
        if env is None:
            continue
        match env.payload:
            case DisputeRaised() as ev if not linked:
                linked.append(ev.assistance_case)
                out.add(f"第八条: {ev.raised_by} disputes with {ev.other_party} about 行政协助函 "
                        f"{ev.assistance_number} (case {ev.assistance_case})",
                        f"第八条：{name(ev.raised_by)}与{name(ev.other_party)}就行政协助函 {ev.assistance_number} "
                        "发生争议")
                out.extend(_dispute_matches_case(ledger, env, ev, name))
            case NegotiationRecorded(outcome="failed") as ev:
                out.add(f"协商不成: recorded by {ev.party} (pos {line.pos})",
                        f"协商不成：{name(ev.party)}记录（第 {line.pos} 条）")
            case DisputeSettled() as ev:
                out.add(f"协商解决 (pos {line.pos}) by {'、'.join(ev.agreed_by)}",
                        f"协商解决（第 {line.pos} 条）：{names(ev.agreed_by)}")
            case DisputeRuled() as ev:
                out.add(f"研究确定 by {'、'.join(ev.co_deciders)} (pos {line.pos})"
                        + (f"; the catalogue is amended by adjustment {ev.adjustment} (区司法局's catalogue "
                           "store, not the ledger, holds it)" if ev.adjustment else "; no catalogue amendment"),
                        f"{names(ev.co_deciders)}研究确定（第 {line.pos} 条）"
                        + (f"；清单依调整 {ev.adjustment} 修改（调整存于区司法局的清单库，不在账本中）"
                           if ev.adjustment else "；清单未作修改"))
            case DistrictDecided():
                out.add(f"区政府决定 (pos {line.pos}), signed by {env.sender}",
                        f"区政府决定（第 {line.pos} 条），{name(env.sender)}签署")
            case DecisionCatalogued() as ev:
                out.add(f"纳入行政协助目录 (pos {line.pos}) by adjustment {ev.adjustment} (区司法局's catalogue "
                        "store, not the ledger, holds it)",
                        f"依调整 {ev.adjustment} 纳入行政协助目录（第 {line.pos} 条；"
                        "调整存于区司法局的清单库，不在账本中）")
    return out, linked


def _dispute_matches_case(ledger: Ledger, env: Envelope, ev: DisputeRaised, name: Name) -> Said:
    """The raise names its assistance case as the ledger has it (the same fold rule the raiser's store applies)."""
    out = Said()
    case = _fold_quietly(ledger, ev.assistance_case)
    if not isinstance(case, CaseState):
        out.add(f"{NOT_THE_DISPUTED_CASE}: dispute {env.number} names case {ev.assistance_case}, "
                "which has no valid request in the ledger",
                f"{NOT_THE_DISPUTED_CASE}：争议 {env.number} 所称案件在账本中没有有效的请求")
        return out
    try:
        dispute.check_case(env, ev, case)
    except RuleError as e:
        out.both(f"{NOT_THE_DISPUTED_CASE}: {e.message}")
        return out
    out.add(f"the dispute names request {case.number} {case.requester} → {case.assistor} as the ledger has it "
            f"({case.status})",
            f"争议所称请求 {case.number}（{name(case.requester)} → {name(case.assistor)}）与账本一致"
            f"（{labels.REQUEST_STATUS[case.status]}）")
    return out
