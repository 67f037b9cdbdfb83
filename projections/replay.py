"""Dispute replay: one case as the 司法局 ledger shows it, at any moment, from the ledger alone.

A replay answers the questions of a dispute under 附件2 第八条 for one assistance request or one
commitment case, across every bureau involved:

- each signed event, with its envelope time (the sender's clock, as signed) and its ledger
  arrival, its sender and signing key, and whether that signature holds *at the event's time*:
  a key revoked later does not taint what it signed before, and a signature made after the
  revocation fails with the rejection code and reason;
- what each event changed: the case's status before → after, and its one-line summary;
- each time limit of an assistance request (reply within ``reply_within`` working days of the
  recorded arrival, a written decline within ``decline_within``) and whether it was met, counted
  in working days of :class:`~aggregates.workdays.WorkingCalendar`, flagged provisional when a
  year's holidays are not known;
- the linked cases: a request's commitment case, a commitment case's assistance requests.

Decisions:

- **``as_of`` cuts by ledger arrival.**  The case "as it stood" at ``as_of`` is every entry whose
  *ledger arrival* is at or before it: that is what 区司法局 could know then.  The envelope time
  is the sender's claim and could be back-dated; it is still shown on every line.  Open time
  limits are judged at ``as_of`` (or at ``now`` when no ``as_of`` is given).
- **A signature that does not verify changes nothing.**  Its event is listed, with the reason,
  but not folded — every receiver refuses such an event, and a replay is evidence of what each
  bureau signed.  A signature that verifies by the envelope time although the ledger received
  it after the key's revocation passes, with a note saying so.
- **Time limits follow the SLA view** (:mod:`projections.sla`, decision 28): they run from the
  legal arrival — on the platform channel the ledger's arrival of the request, whether or not
  the assistor acknowledged it; on the letter channel the visit the assistor recorded — and an
  answer counts as given at its ledger arrival, not its envelope time.  An answer at or after
  the exclusive end (24:00 Asia/Shanghai of the last working day) is late.  A claimed time that
  contradicts the platform's record is listed among the event's findings (时间与平台记录不符).
- **Indexed look-ups only.**  The case comes from :meth:`Ledger.case` (the ``(case_id, pos)``
  index).  A commitment case's requests are found through its verification results, whose
  source ``assistance:<requester>/<number>`` is looked up with :meth:`Ledger.find` (the
  ``(number, sender)`` index).  A request not yet answered is cited by no verification; only
  ``scan_links=True`` finds it, by :func:`projections.history.find_assistance_for`, which scans
  every request of the ledger.
"""
from __future__ import annotations

from collections.abc import Callable, Iterable
from datetime import UTC, date, datetime, timedelta
from typing import Literal

import msgspec

from aggregates.assistance import CaseState, legal_answer, legal_arrival, time_limits
from aggregates.errors import RuleError
from aggregates.workdays import SHANGHAI, Deadline, WorkingCalendar
from broker.ledger.store import Entry, Ledger, NoLedgerKey
from broker.signing import CannotOpen, KeyRing, Rejected
from projections.history import (
    NOT_CATALOGUED,
    CitedCheck,
    Kind,
    State,
    UnknownCase,
    find_assistance_for,
    fold_step,
    kind_of,
    registry_names,
    summarize,
)
from projections.wording import describe, finding
from schemas import labels
from schemas.assistance import AssistanceRequested
from schemas.commitment import ItemVerified
from schemas.envelope import LEDGER, Envelope, Signed

__all__ = [
    "VALID", "DeadlineCheck", "LinkedCase", "NotYetRecorded", "Replay", "ReplayEvent", "SignatureCheck",
    "check_signature", "render_text", "replay",
]

#: The signature status of an event whose signature holds at its time.
VALID = "valid"
#: What ``as_of`` is compared with.
CUTOFF = "ledger arrival"

DeadlineState = Literal["met", "missed", "open", "elapsed", "not-applicable", "withdrawn"]
_JUST_BEFORE = timedelta(microseconds=1)


class NotYetRecorded(UnknownCase):
    """The case exists, but no entry of it had reached the ledger at the moment asked."""

    code = "replay.not-yet"


class SignatureCheck(msgspec.Struct, frozen=True, kw_only=True):
    """A signature checked against the trust list at the event's own time."""

    #: ``valid``, or the rejection code (``key-not-valid``, ``bad-signature``, ``unknown-key`` …).
    status: str
    #: Why it was rejected ("" when valid).
    reason: str = ""
    #: Something a reviewer should know although the signature holds (e.g. revoked before arrival).
    note: str = ""

    @property
    def valid(self) -> bool:
        return self.status == VALID


class ReplayEvent(msgspec.Struct, frozen=True, kw_only=True):
    """One ledger entry of the case and what it changed."""

    pos: int
    event_id: str
    type: str
    sender: str
    recipient: str
    #: The envelope's time, as signed by the sender.
    time: datetime
    #: When the 司法局 ledger received it.
    arrived_at: datetime
    kid: str
    signature: SignatureCheck
    #: The case's status before and after this event (``None`` before the first valid one).
    before: str | None
    after: str | None
    summary: str
    #: Why the event changed nothing although it is a step: a rule it broke, a failed signature.
    findings: list[str] = []
    #: SHA-256 of the signed bytes (a reply quotes its request's).
    digest: str = ""
    #: ``summary`` in 中文, bureaus by their registry names ("" if the entry no longer opens).
    summary_zh: str = ""

    @property
    def changed(self) -> bool:
        return self.before != self.after


class DeadlineCheck(msgspec.Struct, frozen=True, kw_only=True):
    """One time limit of an assistance request, judged from the ledger (第五条, 三(二))."""

    kind: Literal["reply", "decline"]
    working_days: int
    #: The legal arrival (第五条: the platform's record; a letter's recorded visit): the limit runs from the day after.
    starts: datetime
    last_day: date
    #: Exclusive end: 00:00 Asia/Shanghai after the last working day.
    ends_at: datetime
    #: met / missed; open (still running); elapsed (the decline window closed, a reply is still due);
    #: not-applicable (the request was answered the other way); withdrawn (not judged).
    state: DeadlineState
    answered_at: datetime | None = None
    answered_pos: int | None = None
    #: Working days after the arrival day up to the answer's day (or the judging day while open).
    working_days_used: int = 0
    #: Working days past the last day (missed only), as the monitor's breach notices count them.
    working_days_late: int = 0
    #: Counted Monday–Friday for a year whose holidays are not loaded.
    provisional: bool = False


class LinkedCase(msgspec.Struct, frozen=True, kw_only=True):
    """A case linked to the one replayed, with its status at the same moment."""

    case: str
    number: str
    kind: Kind
    #: The requesting / handling bureau, and the assistor (``ledger`` for a commitment case).
    sender: str
    recipient: str
    #: How it was found: named by the request, cited by a verification, or by a scan.
    via: str
    #: Its status at the moment replayed (``None``: none of its entries had reached the ledger).
    status: str | None
    events: int = 0
    deadlines: list[DeadlineCheck] = []
    findings: list[str] = []


class Replay(msgspec.Struct, frozen=True, kw_only=True):
    """A case as it stood at ``as_of`` (or as it stands), from the ledger alone."""

    kind: Kind
    case: str
    number: str
    #: The moment asked (``None``: everything the ledger holds).
    as_of: datetime | None
    #: What ``as_of`` is compared with (always ``ledger arrival``).
    cutoff: str
    #: The instant open time limits were judged at.
    judged_at: datetime
    #: Every bureau that signed or received an event of this case or a linked one.
    bureaus: list[str]
    events: list[ReplayEvent]
    status: str | None
    deadlines: list[DeadlineCheck] = []
    linked: list[LinkedCase] = []
    #: Entries of this case the ledger received after ``as_of`` (not shown).
    later_entries: int = 0
    notes: list[str] = []


# -- signatures ------------------------------------------------------------------------------------------------


def check_signature(ring: KeyRing, signed: Signed, arrived_at: datetime | None = None) -> SignatureCheck:
    """Verify a signature with the key as it was at the envelope's time; note a revocation before arrival."""
    try:
        env = ring.check(signed)  # the signature is over the sealed bytes: no key needed to check it
    except Rejected as e:
        return SignatureCheck(status=e.code, reason=e.message)
    entry = ring.entry(signed.kid)
    if entry is not None and entry.revoked_at is not None and arrived_at is not None \
            and arrived_at >= entry.revoked_at:
        return SignatureCheck(status=VALID, note=(
            f"key {signed.kid} was revoked at {_local(entry.revoked_at)} ({entry.revoked_reason or 'no reason'}), "
            f"before the ledger received this at {_local(arrived_at)}; it holds only by the envelope's time "
            f"{_local(env.time)}"))
    return SignatureCheck(status=VALID)


# -- the replay ------------------------------------------------------------------------------------------------


def replay(ledger: Ledger, case_id: str, ring: KeyRing, calendar: WorkingCalendar, *,
           as_of: datetime | None = None, now: datetime | None = None, scan_links: bool = False,
           catalogue: CitedCheck | None = None) -> Replay:
    """Replay one case from the ledger as it stood at ``as_of`` (by ledger arrival).

    Open time limits are judged at ``as_of``, else at ``now``, else at the system clock.
    Raises :class:`UnknownCase` if no entry has ``case_id`` and :class:`NotYetRecorded` if none
    had arrived by ``as_of``.  ``scan_links`` also finds a commitment case's unanswered requests
    by scanning every request in the ledger (see the module docstring).  Given 区司法局's ``catalogue``,
    a request citing an item it could not be asked under (第七条, 第六条) is flagged on its event.
    """
    as_of = _aware(as_of) if as_of is not None else None
    judged_at = as_of or (_aware(now) if now is not None else datetime.now(UTC))
    entries = ledger.case(case_id)
    if not entries:
        raise UnknownCase(f"no ledger entry has case {case_id}", zh=f"没有账本条目属于案件 {case_id}", case=case_id)
    if ledger.opener is None:
        raise NoLedgerKey("a replay reads what the entries say: it needs 区司法局's box key (keys/box/), "
                          "which opens every case on the ledger; `xiezhu audit` checks them without it",
                          zh="重放要读取条目内容：需要区司法局的解密密钥（keys/box/），它能打开账本上的每个案件；"
                             "`xiezhu audit` 无需该密钥即可检查")
    shown = _known_at(entries, as_of)
    if not shown:
        first = _arrival(entries[0])
        raise NotYetRecorded(
            f"case {entries[0].number} ({case_id}) was not in the ledger yet at {_local(as_of or judged_at)}: "
            f"its first entry arrived at {_local(first)}",
            zh=f"案件 {entries[0].number}（{case_id}）在 {_local(as_of or judged_at)} 时尚未记入账本："
               f"其第一个条目于 {_local(first)} 到达", case=case_id)
    kind = kind_of(entries)
    numbers: dict[str, str] = {}
    fold = _Fold(kind, ring, lambda c: _number_of(ledger, c, numbers), ledger, catalogue)
    events = [fold.step(e) for e in shown]
    deadlines = _deadlines(fold, calendar, judged_at)
    notes: list[str] = []
    if kind == "assistance" and isinstance(fold.state, CaseState) and legal_arrival(fold.state) is None:
        notes.append("the letter's arrival is not recorded yet: no time limit runs yet (第五条)")
    if kind == "commitment":
        linked = _requests_of(ledger, case_id, fold, ring, calendar, as_of, judged_at, scan_links)
        if not scan_links:
            notes.append("assistance requests are found through the verification results that cite them; "
                         "one not answered yet is listed only with a full scan (--all-links)")
    else:  # a request names its commitment case; any other kind (a dispute) names its assistance case
        field = "commitment_case" if kind == "assistance" else "assistance_case"
        linked = _named(ledger, fold, field, ring, calendar, as_of, judged_at)
    bureaus = {b for e in events for b in (e.sender, e.recipient)} | {
        b for link in linked for b in (link.sender, link.recipient)}
    return Replay(kind=kind, case=case_id, number=entries[0].number, as_of=as_of, cutoff=CUTOFF,
                  judged_at=judged_at, bureaus=sorted(bureaus - {LEDGER}), events=events,
                  status=_status(fold.state) if kind != "list" else "published", deadlines=deadlines, linked=linked,
                  later_entries=len(entries) - len(shown), notes=notes)


class _Fold:
    """The lenient fold of one case, entry by entry, keeping what a replay line needs."""

    def __init__(self, kind: Kind, ring: KeyRing, case_number: Callable[[str], str], ledger: Ledger,
                 catalogue: CitedCheck | None = None) -> None:
        self.kind = kind
        self.ledger = ledger
        self.catalogue = catalogue
        self.ring = ring
        self.case_number = case_number
        self.state: State | None = None
        #: Position of the event that answered the request (reply or decline), if any.
        self.answer_pos: int | None = None
        #: Envelopes whose signature holds, folded or not (the linked-case look-ups read them).
        self.signed: list[Envelope] = []
        #: The first envelope whose signature holds, even if it did not open a valid case.
        self.first: Envelope | None = None

    def step(self, e: Entry) -> ReplayEvent:
        arrived = _arrival(e)
        sig = check_signature(self.ring, e.signed, arrived)
        env, why = _open(self.ledger, e)
        before = _status(self.state)
        findings: list[str] = []
        if env is None:
            findings.append(why)
        elif not sig.valid:
            findings.append(f"not applied: the signature does not hold ({sig.status})")
        else:
            self.first = self.first or env
            self.signed.append(env)
            flagged = len(self.state.time_flags) if isinstance(self.state, CaseState) else 0
            state, err = fold_step(self.state, self.kind, env, e.signed.digest, recorded_at=arrived)
            if err is not None:
                findings.append(f"{err.code}: {err.message}")
            else:
                if isinstance(state, CaseState):
                    findings += state.time_flags[flagged:]  # a claimed time the platform's record contradicts
                if self.catalogue is not None and isinstance(env.payload, AssistanceRequested):
                    try:  # 第七条, 第六条: could it be asked under the item and version it cites?
                        self.catalogue.check_cited(env.payload)
                    except RuleError as rule:
                        findings.append(f"{NOT_CATALOGUED}: {rule.code}: {rule}")
                if isinstance(state, CaseState) and state.status != before and state.status in ("replied", "declined"):
                    self.answer_pos = e.pos
                self.state = state
        return ReplayEvent(
            pos=e.pos, event_id=e.event_id, type=e.type, sender=e.sender, recipient=e.recipient,
            time=env.time if env else _parse(e.event_time), arrived_at=arrived, kid=e.signed.kid, signature=sig,
            before=before, after=_status(self.state),
            summary=summarize(env, self.case_number) if env else f"undecodable {e.type}",
            summary_zh=describe(env, registry_names(), self.case_number) if env else "",
            findings=findings, digest=e.signed.digest)


# -- time limits -----------------------------------------------------------------------------------------------


def _deadlines(fold: _Fold, cal: WorkingCalendar, judged_at: datetime) -> list[DeadlineCheck]:
    st = fold.state
    arrival = legal_arrival(st) if isinstance(st, CaseState) else None
    if not isinstance(st, CaseState) or arrival is None:
        return []
    reply_days, decline_days = time_limits(st.request)
    reply = cal.add_working_days(arrival, reply_days)
    decline = cal.add_working_days(arrival, decline_days)
    return [_judge("reply", reply, st, arrival, fold.answer_pos, cal, judged_at),
            _judge("decline", decline, st, arrival, fold.answer_pos, cal, judged_at)]


def _judge(kind: Literal["reply", "decline"], dl: Deadline, st: CaseState, arrival: datetime,
           answer_pos: int | None, cal: WorkingCalendar, judged_at: datetime) -> DeadlineCheck:
    """One time limit: met or missed by the answer of its kind, else open / missed / elapsed at ``judged_at``."""
    base = DeadlineCheck(kind=kind, working_days=dl.working_days, starts=arrival, last_day=dl.last_day,
                         ends_at=dl.ends_at, state="open", provisional=dl.provisional)
    answered = legal_answer(st)
    if st.status == "withdrawn":
        return msgspec.structs.replace(base, state="withdrawn")
    if st.status in ("replied", "declined") and answered is not None:
        if st.status != {"reply": "replied", "decline": "declined"}[kind]:
            # A reply is not judged by the decline limit, nor a decline by the reply limit.
            return msgspec.structs.replace(base, state="not-applicable", answered_at=answered,
                                           answered_pos=answer_pos)
        state: DeadlineState = "met" if answered < dl.ends_at else "missed"
        return _counted(base, cal, answered, answer_pos, state)
    if judged_at < dl.ends_at:
        return _counted(base, cal, judged_at, None, "open")
    return _counted(base, cal, judged_at, None, "missed" if kind == "reply" else "elapsed")


def _counted(base: DeadlineCheck, cal: WorkingCalendar, end: datetime, answer_pos: int | None,
             state: DeadlineState) -> DeadlineCheck:
    """``base`` judged ``state`` at ``end`` (the answer's time, or the judging time while unanswered)."""
    used, p1 = cal.working_days_between(base.starts, end)
    late, p2 = cal.working_days_between(base.ends_at - _JUST_BEFORE, end) if state == "missed" else (0, False)
    return msgspec.structs.replace(base, state=state, answered_at=end if answer_pos is not None else None,
                                   answered_pos=answer_pos, working_days_used=used, working_days_late=late,
                                   provisional=base.provisional or p1 or p2)


# -- linked cases ----------------------------------------------------------------------------------------------


def _named(ledger: Ledger, fold: _Fold, field: str, ring: KeyRing, cal: WorkingCalendar, as_of: datetime | None,
           judged_at: datetime) -> list[LinkedCase]:
    """The case the first event names in ``field`` (a request's ``commitment_case``)."""
    first = fold.first
    target = getattr(first.payload, field, "") if first is not None else ""
    if not isinstance(target, str) or not target:
        return []
    return [_linked(ledger, target, f"named by the {first.type if first else 'first event'} ({field})", ring, cal,
                    as_of, judged_at)]


def _requests_of(ledger: Ledger, case_id: str, fold: _Fold, ring: KeyRing, cal: WorkingCalendar,
                 as_of: datetime | None, judged_at: datetime, scan: bool) -> list[LinkedCase]:
    """A commitment case's requests: those its verification results cite (indexed), and by a scan if asked."""
    found: dict[str, str] = {}
    for env in fold.signed:
        ev = env.payload
        if not isinstance(ev, ItemVerified) or not ev.source.startswith("assistance:"):
            continue
        requester, _, number = ev.source.removeprefix("assistance:").partition("/")
        for c in ledger.find(number, requester):
            found.setdefault(c, f"cited by item {ev.no}'s verification ({ev.source})")
    if scan:
        for c in find_assistance_for(ledger, case_id):
            found.setdefault(c, "found by a scan of every request")
    return [_linked(ledger, c, via, ring, cal, as_of, judged_at, names=case_id) for c, via in found.items()]


def _linked(ledger: Ledger, case_id: str, via: str, ring: KeyRing, cal: WorkingCalendar, as_of: datetime | None,
            judged_at: datetime, *, names: str = "") -> LinkedCase:
    """A linked case at the same moment; ``names``: the commitment case a linked request should name."""
    entries = ledger.case(case_id)
    if not entries:
        return LinkedCase(case=case_id, number="", kind="commitment", sender="", recipient="", via=via, status=None,
                          findings=["no ledger entry has this case"])
    kind = kind_of(entries)
    fold = _Fold(kind, ring, lambda c: c, ledger)
    shown = _known_at(entries, as_of)
    lines = [fold.step(e) for e in shown]
    findings = [f"pos {x.pos} {x.type}: {f}" for x in lines for f in x.findings]
    named = getattr(fold.first.payload, "commitment_case", "") if fold.first is not None else ""
    if names and kind == "assistance" and named != names:
        findings.append(f"the request names commitment case {named or '(none)'}, not {names}")
    return LinkedCase(case=case_id, number=entries[0].number, kind=kind, sender=entries[0].sender,
                      recipient=entries[0].recipient, via=via, status=_status(fold.state), events=len(shown),
                      deadlines=_deadlines(fold, cal, judged_at), findings=findings)


# -- helpers ---------------------------------------------------------------------------------------------------


def _number_of(ledger: Ledger, case_id: str, cache: dict[str, str]) -> str:
    if case_id not in cache:
        entries = ledger.case(case_id)
        cache[case_id] = entries[0].number if entries else case_id
    return cache[case_id]


def _known_at(entries: Iterable[Entry], as_of: datetime | None) -> list[Entry]:
    return [e for e in entries if as_of is None or _arrival(e) <= as_of]


def _status(state: State | None) -> str | None:
    status = getattr(state, "status", None)  # every case state has one
    return None if status is None else str(status)


def _open(ledger: Ledger, e: Entry) -> tuple[Envelope | None, str]:
    """What entry ``e`` says, or why it cannot be read."""
    env, err = ledger.read(e.signed.body)
    if err is None:
        return env, ""
    if isinstance(err, CannotOpen):
        return None, f"cannot open: {err}"
    return None, f"malformed: entry {e.pos} no longer decodes as an envelope ({err})"


def _parse(iso: str) -> datetime:
    return _aware(datetime.fromisoformat(iso))


def _arrival(e: Entry) -> datetime:
    return _parse(e.arrived_at)


def _aware(t: datetime) -> datetime:
    """An aware instant (a naive one is read as UTC, as the ledger writes aware times only)."""
    return t if t.utcoffset() is not None else t.replace(tzinfo=UTC)


def _local(t: datetime) -> str:
    return t.astimezone(SHANGHAI).strftime("%Y-%m-%d %H:%M:%S")


# -- text ------------------------------------------------------------------------------------------------------


#: The replay's words, one table per language; :func:`render_text` lays out either.
_WORDS: dict[str, dict[str, str]] = {
    "en": {
        "title": "{kind} case {number} ({case}), bureaus {bureaus}", "and": " / ",
        "as_of": "as it stood at {at} Asia/Shanghai (by {cutoff}{later})", "later": "; {n} later entries not shown",
        "every": "every ledger entry; open time limits judged at {at} Asia/Shanghai",
        "status": "status: {status}", "no_case": "no valid case", "none": "—",
        "changed": "{before} → {after}", "unchanged": "{after} (unchanged)",
        "event": "#{pos} {time}  {sender} → {recipient}  {type}", "summary": "    {change}: {summary}",
        "valid": "valid", "invalid": "{status}: {reason}", "key": "    key {kid}: {sig}; ledger arrival {arrived}",
        "limits": "time limits (working days, Asia/Shanghai):",
        "linked": "linked cases (listed for reference; replay each to see it in full):",
        "link": "  {kind} {number} {sender} → {recipient}: {status} ({via})", "not_yet": "not in the ledger yet",
        "note": "note: {note}",
        # a time limit
        "reply": "reply  ", "decline": "decline",
        "limit": "{what} {days} working days from {starts}, last day {last}", "limit_tail": "{head}: {tail}",
        "answered": "{state}: answered {at} (#{pos}), {used} working day(s) taken{late}",
        "late": ", {n} working day(s) late", "met": "met", "missed": "missed",
        "unanswered": "missed: unanswered, {n} working day(s) past it", "open": "open: {used} working day(s) used",
        "elapsed": "elapsed: a written decline is now late, the reply is still due",
        "not-applicable": "not applicable: answered the other way", "withdrawn": "withdrawn: not judged",
        "provisional": " (provisional calendar)",
    },
    "zh": {
        "title": "{kind}案件 {number}（{case}），机关：{bureaus}", "and": "、",
        "as_of": "截至北京时间 {at} 的状态（按{cutoff}{later}）", "later": "；其后 {n} 条未列出",
        "every": "账本全部条目；未届满的时限按北京时间 {at} 判断",
        "status": "状态：{status}", "no_case": "无有效案件", "none": "无",
        "changed": "{before} → {after}", "unchanged": "{after}（未变）",
        "event": "#{pos} {time}  {sender} → {recipient}  {type}", "summary": "    {change}：{summary}",
        "valid": "签名有效", "invalid": "{status}（{reason}）", "key": "    密钥 {kid}：{sig}；账本收到 {arrived}",
        "limits": "时限（工作日，北京时间）：",
        "linked": "关联案件（仅供参考；逐一重放可见全貌）：",
        "link": "  {kind} {number} {sender} → {recipient}：{status}（{via}）", "not_yet": "账本中尚无",
        "note": "注：{note}",
        "reply": "答复", "decline": "告知不能协助",
        "limit": "{what} {days} 个工作日，自 {starts} 起，最后一日 {last}", "limit_tail": "{head}；{tail}",
        "answered": "{state}，{at} 答复（#{pos}），用时 {used} 个工作日{late}",
        "late": "，逾期 {n} 个工作日", "met": "按期", "missed": "逾期",
        "unanswered": "逾期，未答复，已过 {n} 个工作日", "open": "办理中，已用 {used} 个工作日",
        "elapsed": "告知期已过，书面告知不能协助已逾期，答复仍须作出",
        "not-applicable": "不适用，已以另一方式答复", "withdrawn": "已撤回，不判断",
        "provisional": "（暂定日历）",
    },
}
#: What the 中文 text shows for an identifier the English text prints as it is.
_ZH_CUTOFF = {CUTOFF: "账本收到时间"}


def render_text(r: Replay, language: str = "en", name: Callable[[str], str] = lambda code: code) -> str:
    """The replay as a reviewer reads it: events, time limits, linked cases (times in Asia/Shanghai);
    in 中文 with ``language="zh"`` (states, kinds and findings in their 中文 words), bureaus as ``name``
    gives them."""
    zh = language == "zh"
    w = _WORDS["zh" if zh else "en"]
    if not zh:
        name = str

    def status(value: str | None) -> str:
        if not value:
            return w["none"]
        return _status_zh(value) if zh else value

    def kind(value: str) -> str:
        return labels.CASE_KIND.get(value, value) if zh else value

    def said(text: str) -> str:
        return finding(text) if zh else text

    out = [w["title"].format(kind=kind(r.kind), number=r.number, case=r.case,
                             bureaus=w["and"].join(name(b) for b in r.bureaus))]
    if r.as_of is not None:
        later = w["later"].format(n=r.later_entries) if r.later_entries else ""
        cutoff = _ZH_CUTOFF.get(r.cutoff, r.cutoff) if zh else r.cutoff
        out.append(w["as_of"].format(at=_local(r.as_of), cutoff=cutoff, later=later))
    else:
        out.append(w["every"].format(at=_local(r.judged_at)))
    out.append(w["status"].format(status=status(r.status) if r.status else w["no_case"]))
    out.append("")
    for e in r.events:
        change = (w["changed"].format(before=status(e.before), after=status(e.after)) if e.changed
                  else w["unchanged"].format(after=status(e.after)))
        sig = w["valid"] if e.signature.valid else w["invalid"].format(
            status=labels.DEAD_LETTER_REASON.get(e.signature.status, e.signature.status) if zh else e.signature.status,
            reason=e.signature.reason)
        out.append(w["event"].format(pos=e.pos, time=_local(e.time), sender=name(e.sender),
                                     recipient=name(e.recipient), type=e.type))
        out.append(w["summary"].format(change=change, summary=(e.summary_zh or e.summary) if zh else e.summary))
        out.append(w["key"].format(kid=e.kid, sig=sig, arrived=_local(e.arrived_at)))
        out += [f"    ! {said(n)}" for n in ([e.signature.note] if e.signature.note else []) + e.findings]
    if r.deadlines:
        out += ["", w["limits"]]
        out += [f"  {_deadline_text(d, w)}" for d in r.deadlines]
    if r.linked:
        out += ["", w["linked"]]
        for link in r.linked:
            out.append(w["link"].format(kind=kind(link.kind), number=link.number or link.case,
                                        sender=name(link.sender), recipient=name(link.recipient),
                                        status=status(link.status) if link.status else w["not_yet"], via=link.via))
            out += [f"    {_deadline_text(d, w)}" for d in link.deadlines]
            out += [f"    ! {said(f)}" for f in link.findings]
    if r.notes:
        out += [""] + [w["note"].format(note=n) for n in r.notes]
    return "\n".join(out) + "\n"


def _status_zh(status: str | None) -> str:
    if status is None:
        return "无"
    return labels.REQUEST_STATUS.get(status) or labels.CASE_STATUS.get(status) or status


def _deadline_text(d: DeadlineCheck, w: dict[str, str]) -> str:
    """One time limit and how it was kept, in the words of ``w`` (a :data:`_WORDS` table)."""
    head = w["limit"].format(what=w[d.kind], days=d.working_days, starts=_local(d.starts),
                             last=d.last_day.isoformat())
    match d.state:
        case "met" | "missed" if d.answered_at is not None:
            late = w["late"].format(n=d.working_days_late) if d.state == "missed" else ""
            tail = w["answered"].format(state=w[d.state], at=_local(d.answered_at), pos=d.answered_pos,
                                        used=d.working_days_used, late=late)
        case "missed":
            tail = w["unanswered"].format(n=d.working_days_late)
        case "open":
            tail = w["open"].format(used=d.working_days_used)
        case "elapsed" | "not-applicable":
            tail = w[d.state]
        case _:
            tail = w["withdrawn"]
    return w["limit_tail"].format(head=head, tail=tail) + (w["provisional"] if d.provisional else "")
