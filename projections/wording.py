"""One line of 中文 for one signed event, as a person reads a case's history (issue 16, point 4).

:func:`projections.history.summarize` keeps the English line that JSON, the replay report and
the evidence bundle carry; this module says the same in 中文 for the tables people read:
bureaus by the names ``name`` gives (the registry's), states and outcomes by
:mod:`schemas.labels`, times in Asia/Shanghai. Every event type the English summary words has
its 中文 wording here (a test checks both on the same events); an event type neither knows is
its tag and its fields.
"""
from __future__ import annotations

import re
from collections.abc import Callable
from datetime import datetime

import msgspec

from aggregates.store import SHANGHAI
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
from schemas.privacy import mask_name
from schemas.sla import BureauCriticised, DeadlineBreached, DeadlineReminder

Name = Callable[[str], str]

_DEADLINE = {"reply": "答复", "decline": "告知不能协助"}
_ROUTE = {"commitment": "承诺", "certificate": "提交证明"}
_REFUSAL = {"credit": "信用情况不符（四(二)）", "disclosure-refused": "不同意公开承诺内容（二(四)）"}
_SOURCE = {"online": "在线核查", "on-site": "现场核查", "supervision": "事中事后监管"}


def oneline(text: str) -> str:
    """A text of several lines on one line, its line breaks as " / "."""
    return re.sub(r"\s*[\r\n]+\s*", " / ", text.strip())


_oneline = oneline


def _local(t: datetime) -> str:
    return t.astimezone(SHANGHAI).strftime("%Y-%m-%d %H:%M")


def items_zh(numbers: list[int]) -> str:
    """Item numbers as a 中文 sentence names them: ``第1、2项``."""
    return "第" + "、".join(str(n) for n in numbers) + "项"


_items = items_zh


_RULE_BREAK = re.compile(r"^(rule(?:\.[\w.-]+)?): ")
_MALFORMED = re.compile(r"^malformed: entry (\d+) ")
_AT = re.compile(r"^pos (\d+) (\S+): ")


def finding(text: str) -> str:
    """A history finding in 中文: a rule break as its rule (``labels.RULE``) and code, an entry that
    no longer decodes as such, ``pos N type:`` as 第 N 条; anything else (already 中文) as it is."""
    at = _AT.match(text)
    if at is not None:
        return f"第 {at.group(1)} 条（{at.group(2)}）：" + finding(text[at.end():])
    malformed = _MALFORMED.match(text)
    if malformed is not None:
        return f"第 {malformed.group(1)} 条记录已无法解码或解密（malformed）"
    rule = _RULE_BREAK.match(text)
    if rule is not None and rule.group(1) in labels.RULE:
        return f"{labels.RULE[rule.group(1)]}（{rule.group(1)}）"
    return text


def describe(env: Envelope, name: Name, case_number: Callable[[str], str] = lambda c: c) -> str:
    """The event in one 中文 line; ``name`` gives a bureau's name from its code."""
    for wording in (_assistance, _commitment, _outcome, _dispute, _notice):
        text = wording(env, name, case_number)
        if text is not None:
            return text
    fields = [f"{k}={_oneline(str(v))}" for k, v in msgspec.structs.asdict(env.payload).items()
              if v not in ("", None, [], {})]
    return env.type + ("：" + "，".join(fields) if fields else "")


def _assistance(env: Envelope, name: Name, case_number: Callable[[str], str]) -> str | None:
    match env.payload:
        case AssistanceRequested() as ev:
            text = (f"{name(env.sender)} → {name(env.recipient)} 行政协助函 {env.number}：请求核查"
                    f"{_items([i.no for i in ev.items])}，{labels.CHANNEL[ev.channel]}")
            if ev.staff:
                text += f"，工作人员 {'、'.join(ev.staff)}"
            if ev.catalogue_item:
                text += f"，清单事项 {ev.catalogue_item}（第 {ev.catalogue_version} 版）"
            if ev.commitment_case:
                text += f"，用于告知承诺案件 {case_number(ev.commitment_case)}"
            return text
        case AssistanceReceived() as ev:
            return f"{name(env.sender)} 登记送达：{_local(ev.arrived_at)}"
        case AssistanceReplied() as ev:
            answers = "，".join(f"第{r.no}项{labels.VERDICT[r.verdict]}"
                               + (f"（{_oneline(r.reason)}）" if r.reason else "") for r in ev.results)
            text = f"{name(env.sender)} 回复：{answers}"
            if ev.on_behalf_of:
                text += f"；代 {ev.on_behalf_of} 答复"
            return text + f"；经办人 {ev.answered_by}"
        case AssistanceDeclined() as ev:
            return f"{name(env.sender)} 书面告知不能协助：{_oneline(ev.reasons)}"
        case AssistanceForwarded() as ev:
            return f"转 {ev.institution} 核查" + (f"：{_oneline(ev.note)}" if ev.note else "")
        case AssistanceWithdrawn() as ev:
            return f"{name(env.sender)} 撤回请求：{_oneline(ev.reason)}"
    return None


def _commitment(env: Envelope, name: Name, case_number: Callable[[str], str]) -> str | None:
    match env.payload:
        case ApplicationReceived() as ev:
            who = mask_name(ev.applicant.name) if ev.applicant.kind == "person" else ev.applicant.name
            return (f"受理申请 {env.number}：{who} {ev.matter_name}（{ev.mode}），以承诺替代 {ev.issuing_unit} 出具的"
                    f"{ev.certificate_name}；承诺{_items([i.no for i in ev.items])}，{labels.STANDING[ev.standing]}")
        case RouteRefused() as ev:
            return f"不适用告知承诺，{_REFUSAL.get(ev.cause, ev.cause)}：{_oneline(ev.legal_reason)}"
        case NoticeIssued() as ev:
            return "出具承诺告知书" + ("（已告知承诺内容将予公开）" if ev.told_disclosure else "")
        case RouteChosen() as ev:
            return f"申请人选择{_ROUTE.get(ev.route, ev.route)}"
        case CommitmentSigned() as ev:
            return f"申请人签署承诺书（{ev.signed_on.isoformat()}）"
        case Approved() as ev:
            return f"依承诺作出审批决定 {ev.decision_no}"
        case Withdrawn() as ev:
            return f"申请人退出承诺方式：{_oneline(ev.reason)}"
        case VerificationPlanned() as ev:
            return "核查计划：" + "，".join(
                f"第{p.no}项免于核查" if p.exempt else
                f"第{p.no}项{labels.METHOD[p.method]}" + (f"（{p.due_on.isoformat()}前）" if p.due_on else "")
                for p in ev.items)
        case ItemVerified() as ev:
            kind, _, detail = ev.source.partition(":")
            if kind == "assistance":
                requester, _, number = detail.partition("/")
                via = f"依 {name(requester)} 行政协助函 {number} 的回复"
            else:
                via = f"经{_SOURCE.get(kind, kind)}" + (f"（{detail}）" if detail else "")
            text = f"第{ev.no}项核查为{labels.VERDICT[ev.verdict]}，{via}"
            return text + (f"：{_oneline(ev.reason)}" if ev.reason else "")
        case Closed() as ev:
            return "办结" + (f"：{_oneline(ev.summary)}" if ev.summary else "")
        case FalseCommitmentFound() as ev:
            return f"认定虚假承诺，{_items(sorted(ev.items))}：{_oneline(ev.legal_reason)}"
    return None


def _outcome(env: Envelope, name: Name, case_number: Callable[[str], str]) -> str | None:
    match env.payload:
        case ProcessingTerminated() as ev:
            return f"终止办理：{_oneline(ev.legal_reason)}"
        case RectificationOrdered() as ev:
            return f"责令于 {ev.deadline.isoformat()} 前整改：{_oneline(ev.legal_reason)}"
        case DecisionRevoked() as ev:
            due = ev.licence_return_due
            back = "" if due is None else f"，许可证件应于 {_local(due)} 前交回"
            return f"撤销行政决定{back}：{_oneline(ev.legal_reason)}"
        case PenaltyImposed() as ev:
            return f"行政处罚 {_oneline(ev.penalty)}：{_oneline(ev.legal_reason)}"
        case CreditRecorded() as ev:
            return f"计入信用记录 {_oneline(ev.record)}：{_oneline(ev.legal_reason)}"
        case ReferredToJudiciary() as ev:
            return f"移送 {ev.to}：{_oneline(ev.legal_reason)}"
        case SupervisorNotified() as ev:
            told = "本机关即监管部门" if ev.department == env.sender else f"已告知 {name(ev.department)}"
            return f"推送监管部门予以惩处：{told}：{_oneline(ev.legal_reason)}"
        case LicenceReturned() as ev:
            return f"许可证件原件已交回（{_local(ev.returned_at)}）" + (f"：{_oneline(ev.note)}" if ev.note else "")
    return None


def _dispute(env: Envelope, name: Name, case_number: Callable[[str], str]) -> str | None:
    def names(codes: list[str]) -> str:
        return "、".join(name(c) for c in codes)

    match env.payload:
        case DisputeRaised() as ev:
            text = (f"争议 {env.number}：{name(ev.raised_by)} 与 {name(ev.other_party)} 就行政协助函 "
                    f"{ev.assistance_number}（{name(ev.requester)} → {name(ev.assistor)}）发生争议："
                    f"{_oneline(ev.claim)}")
            return text + (f"；证据：{'；'.join(_oneline(x) for x in ev.evidence)}" if ev.evidence else "")
        case NegotiationRecorded() as ev:
            return f"协商（{name(ev.party)}，{labels.NEGOTIATION[ev.outcome]}）：{_oneline(ev.note)}"
        case DisputeSettled() as ev:
            return f"协商解决，{names(ev.agreed_by)}一致同意：{_oneline(ev.agreement)}"
        case DisputeReferred() as ev:
            return f"协商不成，{name(env.sender)}受理：{_oneline(ev.reasons)}"
        case DisputeRuled() as ev:
            text = f"{names(ev.co_deciders)}研究确定：{_oneline(ev.ruling)}"
            return text + (f"；清单依调整 {ev.adjustment} 修改" if ev.adjustment else "")
        case DisputeEscalated() as ev:
            return f"{names(ev.petitioners)}提请区政府决定：{_oneline(ev.reasons)}"
        case DistrictDecided() as ev:
            return ("区政府决定" + (f" {ev.decision_no}" if ev.decision_no else "") + f"，{name(env.sender)}签署："
                    + _oneline(ev.decision))
        case DecisionCatalogued() as ev:
            return f"{name(env.sender)}依调整 {ev.adjustment} 将区政府决定纳入行政协助目录"
    return None


def breach(ev: DeadlineBreached) -> str:
    """A missed deadline: when it ended, and when it was answered or that it still is not."""
    text = f"{_DEADLINE[ev.kind]}期限 {_local(ev.due_at)} 已过"
    if ev.answered_at is not None:
        text += f"，{_local(ev.answered_at)} 答复，逾期 {ev.working_days_late} 个工作日"
    else:
        text += f"，至 {_local(ev.detected_at)} 仍未答复"
    return text + ("（暂定日历）" if ev.provisional else "")


def _notice(env: Envelope, name: Name, case_number: Callable[[str], str]) -> str | None:
    match env.payload:
        case DeadlineReminder() as ev:
            text = f"提醒 {name(env.recipient)}：{_DEADLINE[ev.kind]}期限 {_local(ev.due_at)}"
            return text + ("（暂定日历）" if ev.provisional else "")
        case DeadlineBreached() as ev:
            return f"逾期通知 {name(env.recipient)}：{breach(ev)}"
        case DisclosureRecorded() as ev:
            return (f"{_local(ev.at)} 在 {ev.host} 向 {ev.operator} 完整显示（{ev.command}，"
                    f"凭 {ev.entitled_by} 的密钥）：{_oneline(ev.reason)}")
        case ListPublished() as ev:
            return (f"一(三)：区政府公布{labels.CATALOGUE_KIND[ev.kind]}第{ev.version}版（{ev.rows} 行，"
                    f"摘要 {ev.digest[:12]}…），{name(env.sender)}签署")
        case BureauCriticised() as ev:
            measure = "通报批评" if ev.measure == "criticism" else "予以教育"
            return (f"第十二条：区政府对{name(ev.bureau)}{measure}，责令其于{ev.correct_by.isoformat()}前改正"
                    f"（涉及 {len(ev.about)} 件请求）：{_oneline(ev.reasons)}")
        case PunishmentReferral() as ev:
            return (f"推送监管部门予以惩处：{name(env.sender)} 告知 {name(env.recipient)} "
                    f"{mask_name(ev.applicant.name)}的虚假事项{_items(ev.false_items)}：{_oneline(ev.legal_reason)}")
    return None
