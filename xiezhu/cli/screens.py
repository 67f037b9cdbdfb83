"""What the read commands show a person: their columns and rows, in 中文 (or English), for :mod:`xiezhu.cli.tables`.

Each ``*_columns`` / ``*_rows`` pair takes what the command already has (view rows, folded
states, history lines) and gives plain strings: bureaus by their registry names (and 简称 as
the narrow form), states and outcomes by :mod:`schemas.labels`, times in Asia/Shanghai.
With ``language="en"`` the headers are English and bureaus and states stay identifiers.
JSON output does not come through here.
"""
from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import date, datetime
from typing import Any

from aggregates.registry import Registry
from aggregates.workdays import SHANGHAI
from schemas import labels
from xiezhu.cli.tables import Col, Lang

Row = dict[str, str]


def when(value: str | datetime | None) -> str:
    """``09-21 09:00`` in Asia/Shanghai."""
    if not value:
        return ""
    t = datetime.fromisoformat(value) if isinstance(value, str) else value
    return t.astimezone(SHANGHAI).strftime("%m-%d %H:%M")


class Words:
    """Bureau names and labels in the interface language."""

    def __init__(self, registry: Registry, language: Lang) -> None:
        self.reg = registry
        self.language = language

    def bureau(self, code: str) -> str:
        if self.language == "en" or code not in self.reg:
            return code
        return self.reg.name(code)

    def short(self, code: str) -> str:
        if self.language == "en" or code not in self.reg:
            return code
        return self.reg.short(code)

    def label(self, table: Mapping[str, str], value: str) -> str:
        return value if self.language == "en" else table.get(value, value)

    def pair(self, a: str, b: str, *, short: bool = False) -> str:
        name = self.short if short else self.bureau
        return f"{name(a)} → {name(b)}"

    def consequences(self, outcome: str) -> str:
        return "、".join(self.label(labels.CONSEQUENCE, o) for o in outcome.split("+") if o)


# -- xiezhu sla ------------------------------------------------------------------------------

SLA_COLUMNS = (
    Col("number", "文号", "number", ident=True),
    Col("parties", "请求 → 协助", "from → to", ident=True, short="parties_short"),
    Col("matter", "事项", "matter", drop=3),
    Col("arrived", "送达", "arrived", drop=4, keep=True),
    Col("due", "期限", "due", drop=2, keep=True),
    Col("answered", "答复", "answered", drop=5, keep=True),
    Col("days", "用时", "days", drop=6, justify="right", keep=True),
    Col("status", "办理状态", "status", drop=1),
    Col("state", "时限状态", "state", keep=True),
)


def last_day(due_at: str | None) -> str:
    """The last working day of a deadline (its exclusive end minus one day), ``09-24``."""
    if not due_at:
        return ""
    ends = datetime.fromisoformat(due_at).astimezone(SHANGHAI)
    return date.fromordinal(ends.date().toordinal() - 1).strftime("%m-%d")


def sla_rows(rows: Iterable[Mapping[str, Any]], w: Words) -> list[Row]:
    out = []
    for r in rows:
        status = w.label(labels.REQUEST_STATUS, r["status"])
        if r.get("outcome") and r["outcome"] != r["status"]:
            status += " · " + w.label(labels.VERDICT, r["outcome"])
        letter = " ✉" if r.get("channel") == "letter" else ""
        out.append({
            "number": r["number"], "parties": w.pair(r["requester"], r["assistor"]) + letter,
            "parties_short": w.pair(r["requester"], r["assistor"], short=True) + letter, "matter": r["matter"],
            "arrived": when(r.get("arrived_at")),
            "due": last_day(r.get("due_at")) + ("*" if r.get("provisional") else ""),
            "answered": when(r.get("answered_at")),
            "days": "" if r.get("working_days_taken") is None else str(r["working_days_taken"]),
            "status": status, "state": w.label(labels.SLA_STATE, r["state"]),
        })
    return out


STATS_COLUMNS = (
    Col("bureau", "部门", "bureau", ident=True, short="bureau_short"),
    Col("sent", "发出", "sent", justify="right", keep=True),
    Col("received", "收到", "received", justify="right", keep=True),
    Col("answered", "答复", "answered", keep=True, justify="right", drop=5),
    Col("on_time", "按期率", "on time", justify="right", keep=True),
    Col("median", "中位数", "median days", keep=True, justify="right", drop=3),
    Col("p90", "P90", "p90 days", keep=True, justify="right", drop=2),
    Col("declined", "不能协助", "declined", keep=True, justify="right", drop=4),
    Col("open", "办理中", "open", keep=True, justify="right", drop=6),
    Col("breaches", "逾期", "breaches", justify="right", keep=True),
)


def _pct(x: float | None) -> str:
    return "" if x is None else f"{100 * x:.0f}%"


def stats_rows(rows: Iterable[Mapping[str, Any]], w: Words) -> list[Row]:
    return [{
        "bureau": w.bureau(r["bureau"]), "bureau_short": w.short(r["bureau"]), "sent": str(r["sent"]),
        "received": str(r["received"]), "answered": str(r["answered"]), "on_time": _pct(r["on_time_rate"]),
        "median": "" if r["median_working_days"] is None else f"{r['median_working_days']:g}",
        "p90": "" if r["p90_working_days"] is None else str(r["p90_working_days"]),
        "declined": _pct(r["decline_rate"]), "open": str(r["open"]), "breaches": str(r["breaches"]),
    } for r in rows]


# -- xiezhu inbox ----------------------------------------------------------------------------

INBOX_COLUMNS = (
    Col("number", "文号", "number", ident=True),
    Col("requester", "请求部门", "from", ident=True, short="requester_short"),
    Col("matter", "事项", "matter", drop=2),
    Col("applicant", "申请人", "applicant", drop=3),
    Col("arrived", "送达", "arrived", drop=4, keep=True),
    Col("items", "承诺事项", "items", drop=1),
)


def inbox_rows(states: Iterable[Any], w: Words, name: Callable[[str], str],
               id_number: Callable[[str], str]) -> list[Row]:
    return [{
        "number": s.number, "requester": w.bureau(s.requester), "requester_short": w.short(s.requester),
        "matter": s.request.matter.name,
        "applicant": f"{name(s.request.applicant.name)} {id_number(s.request.applicant.id_number)}",
        "arrived": when(s.arrived_at), "items": "\n".join(f"{i.no}. {i.text}" for i in s.request.items),
    } for s in states]


# -- xiezhu cases ----------------------------------------------------------------------------

CASES_COLUMNS = (
    Col("number", "编号", "number", ident=True),
    Col("bureau", "部门", "bureau", ident=True, short="bureau_short"),
    Col("matter", "事项", "matter", drop=3),
    Col("applicant", "申请人", "applicant", drop=4),
    Col("applied", "受理日期", "applied", drop=2, keep=True),
    Col("status", "状态", "status", keep=True),
    Col("outcome", "后果", "outcome", drop=1),
)


def cases_rows(rows: Iterable[Mapping[str, Any]], w: Words) -> list[Row]:
    return [{
        "number": r["number"], "bureau": w.bureau(r["bureau"]), "bureau_short": w.short(r["bureau"]),
        "matter": r["matter"], "applicant": r["applicant"], "applied": r["applied_on"],
        "status": w.label(labels.CASE_STATUS, r["status"]),
        "outcome": w.consequences(r["outcome"]) if r["outcome"] != r["status"] else "",
    } for r in rows]


_CASE_FIELDS = {"number": "编号", "bureau": "部门", "matter": "事项", "applicant": "申请人", "applied_on": "受理日期",
                "mode": "实施方式", "status": "状态", "outcome": "后果", "decision_no": "批准文号",
                "items": "承诺事项", "requests": "行政协助请求", "credit": "信用记录"}


def case_fields(shown: Mapping[str, Any], w: Words) -> list[Row]:
    """One commitment case (``case show``: the state as JSON, applicant masked) as field/value rows."""
    false = set(shown.get("false_items") or ())
    mark = "（虚假）" if w.language == "zh" else " (false)"
    applicant = shown["applicant"]
    values = {
        "number": shown["number"], "bureau": w.bureau(shown["bureau"]),
        "matter": f"{shown['matter_name']}（{shown['matter_code']}）",
        "applicant": f"{applicant['name']} {applicant['id_number']}", "applied_on": shown["applied_on"],
        "mode": shown["mode"], "status": w.label(labels.CASE_STATUS, shown["status"]),
        "outcome": "、".join(w.label(labels.CONSEQUENCE, o) for o in shown.get("outcomes") or ()),
        "decision_no": shown.get("decision_no") or "",
        "items": "\n".join(f"{i['no']}. {i['text']}" + (mark if i["no"] in false else "") for i in shown["items"]),
        "requests": "\n".join(
            f"{r['number']} → {w.bureau(r['assistor'])}（{w.label(labels.REQUEST_STATUS, r['status'])}）"
            for r in shown.get("requests") or ()),
        "credit": w.label(labels.CREDIT_STATUS, shown.get("credit") or "none"),
    }
    return [{"field": _CASE_FIELDS[k] if w.language == "zh" else k, "value": str(v)} for k, v in values.items()]


# -- history (xiezhu history, dispute show) --------------------------------------------------

HISTORY_COLUMNS = (
    Col("pos", "#", "#", ident=True, justify="right", keep=True),
    Col("time", "时间", "time", drop=2, keep=True),
    Col("parties", "发送 → 接收", "from → to", ident=True, short="parties_short"),
    Col("event", "事件", "event"),
    Col("findings", "发现", "findings", drop=1),
)


def history_rows(lines: Iterable[Any], w: Words, case_number: Callable[[str], str] = lambda c: c) -> list[Row]:
    """History lines; in 中文 each event is worded again from its envelope (``case_number``: a linked case's)."""
    from projections.wording import describe, finding

    def party(code: str, short: bool) -> str:
        if code == "ledger":
            return "账本" if w.language == "zh" else code
        return w.short(code) if short else w.bureau(code)

    def event(line: Any) -> str:
        if w.language == "en":
            return str(line.summary)
        if line.envelope is None:
            return f"无法解码的 {line.type}"
        return describe(line.envelope, w.bureau, case_number)

    return [{
        "pos": str(line.pos), "time": when(line.time), "event": event(line),
        "findings": "\n".join(line.findings if w.language == "en" else [finding(f) for f in line.findings]),
        "parties": f"{party(line.sender, False)} → {party(line.recipient, False)}",
        "parties_short": f"{party(line.sender, True)} → {party(line.recipient, True)}",
    } for line in lines]


# -- xiezhu dead-letters ---------------------------------------------------------------------

DEAD_LETTER_COLUMNS = (
    Col("seq", "序号", "seq", ident=True, justify="right", keep=True),
    Col("time", "时间", "time", drop=3, keep=True),
    Col("receiver", "拒收方", "receiver", ident=True, short="receiver_short"),
    Col("code", "原因", "reason", ident=True),
    Col("why", "说明", "why", drop=1),
    Col("subject", "原主题", "subject", drop=4),
    Col("bytes", "字节", "bytes", drop=5, justify="right", keep=True),
    Col("kid", "密钥", "kid", drop=2),
)


def dead_letter_rows(rows: Iterable[Mapping[str, Any]], w: Words) -> list[Row]:
    def receiver(code: str, short: bool) -> str:
        if code == "ledger":
            return "账本" if w.language == "zh" else code
        return w.short(code) if short else w.bureau(code)

    return [{
        "seq": str(r["seq"]), "time": when(r["time"]), "receiver": receiver(r["receiver"], False),
        "receiver_short": receiver(r["receiver"], True), "code": r["code"], "why": r["reason"],
        "subject": r["original_subject"], "bytes": str(r["size"]), "kid": r["kid"],
    } for r in rows]


# -- xiezhu catalogue show -------------------------------------------------------------------

def catalogue_columns(header: Sequence[str]) -> list[Col]:
    """The attachment's columns (备注 included): 序号 and the owning bureau identify a row."""
    drops = {"设定依据": 6, "开具单位": 5, "协助机构": 0, "核查方式": 3, "备注": 2, "政务服务事项名称及编码": 4,
             "实施方式": 1}
    cols = []
    for name in header:
        ident = name in ("序号", "承办机构")
        cols.append(Col(name, name, name, ident=ident, drop=0 if ident else drops.get(name, 0),
                        short=f"{name}:short" if name in ("承办机构", "协助机构") else ""))
    return cols


def catalogue_rows(header: Sequence[str], table: Iterable[Sequence[Any]], codes: Iterable[Mapping[str, str]],
                   w: Words) -> list[Row]:
    """``table``: the catalogue's export rows (names already Chinese); ``codes``: each row's bureau codes."""
    out = []
    for cells, code in zip(table, codes, strict=True):
        row = {name: str(v) for name, v in zip(header, cells, strict=False)}
        for name, c in code.items():
            row[name] = w.bureau(c)
            row[f"{name}:short"] = w.short(c)
        out.append(row)
    return out


# -- xiezhu credit show / credit outbox ------------------------------------------------------

def local_minute(value: str | None) -> str:
    """``2026-09-21 09:00`` in Asia/Shanghai (the year too: credit records outlive a year)."""
    if not value:
        return ""
    return datetime.fromisoformat(value).astimezone(SHANGHAI).strftime("%Y-%m-%d %H:%M")


CREDIT_CASES_COLUMNS = (
    Col("number", "编号", "number", ident=True),
    Col("bureau", "承办部门", "bureau", ident=True, short="bureau_short"),
    Col("matter", "事项", "matter", drop=3),
    Col("applied", "受理日期", "applied", keep=True, drop=4),
    Col("signed", "承诺时间", "signed", keep=True, drop=5),
    Col("closed", "办结时间", "closed", keep=True, drop=6),
    Col("found_false", "认定虚假", "found false", keep=True, drop=2),
    Col("record", "信用记录", "record", drop=1),
)


def credit_case_rows(cases: Iterable[Mapping[str, Any]], w: Words) -> list[Row]:
    return [{
        "number": c["number"], "bureau": w.bureau(c["bureau"]), "bureau_short": w.short(c["bureau"]),
        "matter": c["matter"], "applied": c["applied_on"], "signed": local_minute(c["signed_at"]),
        "closed": local_minute(c["closed_at"]), "found_false": local_minute(c["found_false_at"]),
        "record": "" if c["record_status"] == "none" else w.label(labels.CREDIT_STATUS, c["record_status"]),
    } for c in cases]


CREDIT_HISTORY_COLUMNS = (
    Col("time", "时间", "time", ident=True),
    Col("case", "编号", "case", ident=True),
    Col("bureau", "部门", "bureau", short="bureau_short", drop=3),
    Col("step", "环节", "step", ident=True),
    Col("detail", "说明", "detail", drop=1),
    Col("record", "信用记录", "record", drop=2),
)


def credit_history_rows(history: Iterable[Mapping[str, Any]], w: Words) -> list[Row]:
    return [{
        "time": local_minute(h["at"]), "case": h["number"], "bureau": w.bureau(h["bureau"]),
        "bureau_short": w.short(h["bureau"]), "step": w.label(labels.CREDIT_STEP, h["step"]), "detail": h["detail"],
        "record": w.label(labels.CREDIT_STATUS, h["record_status"]),
    } for h in history]


def credit_lines(s: Mapping[str, Any], language: Lang) -> tuple[str, str]:
    """The two lines above an applicant's tables: who, standing and route; the counts."""
    c = s["counts"]
    if language == "zh":
        route = ("[green]可以适用告知承诺[/]" if s["may_use_commitment_route"] else
                 "[red]信用修复前不得适用告知承诺（四(二)）[/]")
        when = f"（{local_minute(s['at'])}）" if s["at"] else "（当前）"
        return (f"{s['applicant']} {s['name']}：{labels.STANDING[s['standing']]}{when}；{route}",
                f"案件 {c['cases']} 件，签署承诺 {c['signed']} 件，已办结 {c['fulfilled']} 件，认定虚假 "
                f"{c['found_false']} 件（未修复 {c['unrepaired']}，已修复 {c['repaired']}，异议后删除 {c['removed']}）")
    route = ("[green]may use the commitment route[/]" if s["may_use_commitment_route"] else
             "[red]may not use the commitment route before credit repair (四(二))[/]")
    when = f" at {local_minute(s['at'])}" if s["at"] else " now"
    return (f"{s['applicant']} {s['name']}: {s['standing']}{when}; {route}",
            f"{c['cases']} cases, {c['signed']} commitments signed, {c['fulfilled']} fulfilled, "
            f"{c['found_false']} found false ({c['unrepaired']} unrepaired, {c['repaired']} repaired, "
            f"{c['removed']} removed on objection)")


OUTBOX_COLUMNS = (
    Col("record", "记录", "record", ident=True),
    Col("kind", "类别", "kind", drop=5),
    Col("case", "编号", "case", ident=True),
    Col("bureau", "部门", "bureau", short="bureau_short", drop=3),
    Col("applicant", "申请人", "applicant", keep=True, drop=4),
    Col("made", "生成时间", "made", keep=True, drop=6),
    Col("status", "报送状态", "status"),
    Col("attempts", "次数", "attempts", justify="right", keep=True, drop=7),
    Col("error", "最近错误", "last error", drop=2),
)


def outbox_rows(rows: Iterable[Mapping[str, Any]], w: Words) -> list[Row]:
    return [{
        "record": r["record_id"][:8], "kind": w.label(labels.CREDIT_PUSH, r["kind"]), "case": r["number"],
        "bureau": w.bureau(r["bureau"]), "bureau_short": w.short(r["bureau"]), "applicant": r["applicant_masked"],
        "made": local_minute(r["created_at"]),
        "status": w.label(labels.PUSH_STATUS, r["status"]) + (f" {local_minute(r['delivered_at'])}"
                                                               if r["delivered_at"] else ""),
        "attempts": str(r["attempts"]), "error": r["last_error"] or "",
    } for r in rows]


# -- xiezhu keys list ------------------------------------------------------------------------

KEYS_COLUMNS = (
    Col("kid", "密钥编号", "kid", ident=True),
    Col("bureau", "部门", "bureau", ident=True, short="bureau_short"),
    Col("valid_from", "生效", "valid from", keep=True, drop=2),
    Col("valid_to", "失效", "valid to", keep=True, drop=3),
    Col("state", "状态", "state"),
)


def key_rows(entries: Iterable[Any], state_of: Callable[[Any], str], w: Words) -> list[Row]:
    """Trust-list entries; ``state_of`` tells each one's state now."""
    rows = []
    for e in entries:
        state = state_of(e)
        shown = w.label(labels.KEY_STATE, state)
        if state == "revoked":
            shown += f" {local_minute(e.revoked_at.isoformat())}" + ("：" if w.language == "zh" else ": ") + \
                e.revoked_reason
        rows.append({"kid": e.kid, "bureau": w.bureau(e.bureau), "bureau_short": w.short(e.bureau),
                     "valid_from": local_minute(e.valid_from.isoformat()),
                     "valid_to": local_minute(e.valid_to.isoformat()) if e.valid_to else "", "state": shown})
    return rows


# -- xiezhu dead-letters show ----------------------------------------------------------------

FIELD_COLUMNS = (
    Col("field", "项目", "field", ident=True),
    Col("value", "内容", "value"),
)

_DEAD_LETTER_FIELDS = {"time": "时间", "receiver": "拒收方", "code": "原因", "reason": "说明",
                       "original_subject": "原主题", "sender": "自称发送方", "kid": "签名密钥",
                       "stream_subject": "死信主题"}


def dead_letter_fields(shown: Mapping[str, Any], time: str, w: Words) -> list[Row]:
    """One dead letter as field/value rows: its summary, its headers, its envelope's fields."""
    def party(code: str) -> str:
        if code == "ledger":
            return "账本" if w.language == "zh" else code
        return w.bureau(code) if code else ""

    values = {"time": time, "receiver": party(str(shown["receiver"])),
              "code": w.label(labels.DEAD_LETTER_REASON, shown["code"]) + (
                  f"（{shown['code']}）" if w.language == "zh" else ""),
              "sender": party(str(shown["sender"] or ""))}
    rows = [{"field": _DEAD_LETTER_FIELDS[k] if w.language == "zh" else k,
             "value": values.get(k, str(shown[k] if shown[k] is not None else ""))} for k in _DEAD_LETTER_FIELDS]
    header, envelope = ("消息头", "信封") if w.language == "zh" else ("header", "envelope")
    rows += [{"field": f"{header} {k}", "value": v} for k, v in shown["headers"].items()]
    rows += [{"field": f"{envelope} {k}", "value": v.isoformat() if isinstance(v, datetime) else str(v)}
             for k, v in (shown["envelope"] or {}).items()]
    return rows


# -- xiezhu outbox, tokens list --------------------------------------------------------------

WAITING_COLUMNS = (
    Col("bureau", "部门", "bureau", ident=True, short="bureau_short"),
    Col("position", "#", "#", ident=True, justify="right", keep=True),
    Col("to", "发往", "to", short="to_short", drop=2),
    Col("number", "文号", "number", ident=True),
    Col("type", "事件", "type", drop=3),
    Col("time", "时间", "time", keep=True, drop=1),
)


def waiting_rows(rows: Iterable[Mapping[str, Any]], w: Words) -> list[Row]:
    """What a bureau committed that JetStream has not acknowledged yet (the event type stays its identifier)."""
    return [{
        "bureau": w.bureau(r["bureau"]), "bureau_short": w.short(r["bureau"]), "position": str(r["position"]),
        "to": w.bureau(r["to"]) if r["to"] != "ledger" else ("账本" if w.language == "zh" else "ledger"),
        "to_short": w.short(r["to"]) if r["to"] != "ledger" else ("账本" if w.language == "zh" else "ledger"),
        "number": r["number"], "type": r["type"], "time": when(r["time"]) if r["time"] else "",
    } for r in rows]


TOKENS_COLUMNS = (
    Col("id", "编号", "id", ident=True),
    Col("bureau", "部门", "bureau", ident=True, short="bureau_short"),
    Col("label", "用途", "label", drop=1),
    Col("created", "生成时间", "created", keep=True, drop=2),
    Col("used", "最近使用", "last used", keep=True, drop=3),
    Col("revoked", "吊销时间", "revoked", keep=True),
)


def token_rows(tokens: Iterable[Any], w: Words) -> list[Row]:
    return [{
        "id": t.id, "bureau": w.bureau(t.bureau), "bureau_short": w.short(t.bureau), "label": t.label,
        "created": local_minute(t.created_at), "used": local_minute(t.last_used_at),
        "revoked": local_minute(t.revoked_at),
    } for t in tokens]


# -- xiezhu users list, alerts list -----------------------------------------------------------

USERS_COLUMNS = (
    Col("login", "登录名", "login", ident=True),
    Col("bureau", "部门", "bureau", ident=True, short="bureau_short"),
    Col("name", "姓名", "name", drop=2),
    Col("created", "开通时间", "created", keep=True, drop=1),
    Col("state", "状态", "state", keep=True),
)


def user_rows(rows: Iterable[Mapping[str, Any]], w: Words) -> list[Row]:
    zh = w.language == "zh"
    return [{
        "login": str(r["login"]), "bureau": w.bureau(str(r["bureau"])), "bureau_short": w.short(str(r["bureau"])),
        "name": str(r["name"]), "created": local_minute(str(r["created_at"]) if r["created_at"] else None),
        "state": ("已停用" if zh else "disabled") if r["disabled"] else ("在用" if zh else "active"),
    } for r in rows]


MAILED_COLUMNS = (
    Col("seq", "序号", "seq", ident=True, justify="right", keep=True),
    Col("type", "通知", "notice", ident=True),
    Col("to", "收件人", "to"),
    Col("at", "发送时间", "mailed at", keep=True, drop=1),
)

#: The notices ``xiezhu serve`` mails (``xiezhu.http.alerts``), as a person names them.
_NOTICE = {"sla.reminder": "期限提醒", "sla.breached": "逾期通知"}


def mailed_rows(rows: Iterable[Mapping[str, Any]], w: Words) -> list[Row]:
    return [{
        "seq": str(r["seq"]), "type": w.label(_NOTICE, str(r["type"])), "to": "\n".join(r["recipients"]),
        "at": local_minute(str(r["at"])),
    } for r in rows]
