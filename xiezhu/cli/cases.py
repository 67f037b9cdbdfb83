"""Cases and letters from the ledger, the operator inbox and its answers: ``cases``, ``history``, ``letter``,
``bureaus``, ``inbox``, ``access-log``, ``answer``, ``decline`` (commands at the top level)."""
from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any

import msgspec
import typer

from aggregates.calendar_store import CalendarStore
from aggregates.registry import Registry, zh_name
from projections.commitments import CommitmentView
from schemas import labels
from schemas.assistance import ItemResult
from schemas.errors import XiezhuError
from schemas.privacy import mask_id, mask_name
from xiezhu.cli.common import (
    AsJson,
    Operator,
    Reason,
    Reveal,
    bureau_code,
    case_history,
    err,
    history_lines,
    in_lang,
    ledger_at,
    operator_name,
    print_history,
    resolve_bureau,
    said,
    system_of,
    view_key,
)
from xiezhu.cli.common import print_json as _print_json
from xiezhu.cli.common import settings_of as _settings
from xiezhu.cli.tables import lang
from xiezhu.deadlines import late_warnings

app = typer.Typer()


def _caught_up(ctx: typer.Context) -> CommitmentView:
    """The commitment view of the data directory, caught up with the ledger."""
    settings = _settings(ctx)
    if not settings.ledger_exists():
        raise XiezhuError(f"no ledger in {settings.data_dir}; run `xiezhu demo` or start `xiezhu ledger` first",
                          zh=f"{settings.data_dir} 中没有账本；请先运行 `xiezhu demo` 或启动 `xiezhu ledger`")
    ledger_ = ledger_at(settings)
    try:
        view = CommitmentView(settings.commitments_location, view_key=view_key(settings))
        view.follow(ledger_)
        return view
    finally:
        ledger_.close()


@app.command()
def cases(
    ctx: typer.Context,
    bureau: Annotated[str | None, typer.Option(
        help="Only this handling bureau's cases: its code, name or a unique part (shenpi, 审批).")] = None,
    as_json: AsJson = False,
) -> None:
    """Commitment cases (告知承诺) of the handling bureaus, with their step or outcome, from the ledger.

    Example: [bold]xiezhu cases --bureau 审批[/]
    """
    rows = _caught_up(ctx).rows(bureau=bureau_code(bureau))
    if as_json:
        _print_json({f"{r['bureau']}/{r['number']}": r for r in rows})
        return
    from xiezhu.cli.screens import CASES_COLUMNS, Words, cases_rows
    from xiezhu.cli.tables import lang, show

    language = lang()
    show(f"告知承诺案件 {len(rows)} 件" if language == "zh" else f"{len(rows)} commitment cases", CASES_COLUMNS,
         cases_rows(rows, Words(Registry.load(), language)), language=language)


@app.command("disclosed")
def disclosed(
    ctx: typer.Context,
    bureau: Annotated[str | None, typer.Option(
        help="Only this handling bureau's commitments: its code, name or a unique part (shenpi, 审批).")] = None,
    as_json: AsJson = False,
    csv_file: Annotated[Path | None, typer.Option(
        "--csv", help="Write the list as CSV (UTF-8 with BOM, for Excel) to this file; - for stdout.")] = None,
    xlsx_file: Annotated[Path | None, typer.Option("--xlsx", help="Write the list as an XLSX workbook.")] = None,
) -> None:
    """二(四): the signed commitments of matters whose 告知承诺书 is disclosed (附件8 是否公开), for a 区 office to
    publish: the case, the bureau, the matter, the applicant's masked name and ID number, the date and
    the commitments.  A refused disclosure (the certificate brought instead) is not listed.

    Example: [bold]xiezhu disclosed --bureau 审批 --xlsx 承诺书公开目录.xlsx[/]
    """
    from projections.documents import sheets
    from xiezhu.cli.sla import _export

    rows = _caught_up(ctx).to_disclose(bureau=bureau_code(bureau))
    reg = Registry.load()
    records = sheets.disclosure_records(rows, lambda c: reg.name(c) if c in reg else c)
    title = "告知承诺书公开目录（二（四））"
    if csv_file or xlsx_file:
        _export(csv_file, xlsx_file, title, sheets.DISCLOSURE_COLUMNS, records, sheet="公开目录")
        if str(csv_file) == "-":
            return
    if as_json:
        _print_json(rows)
        return
    if csv_file or xlsx_file:
        return
    from xiezhu.cli.tables import Col, lang, show

    language = lang()
    show(f"公开的告知承诺书 {len(rows)} 份" if language == "zh" else f"{len(rows)} disclosed commitments",
         [Col("number", "案件编号", "case", ident=True), Col("bureau", "承办部门", "bureau", short="bureau_short"),
          Col("matter", "事项", "matter", drop=2), Col("applicant", "申请人", "applicant", keep=True),
          Col("id_number", "证件号码", "ID number", keep=True, drop=3),
          Col("signed_on", "承诺日期", "signed", keep=True, drop=1),
          Col("commitments", "承诺内容", "commitments")],
         [{"number": r["number"], "bureau": reg.name(r["bureau"]) if language == "zh" else r["bureau"],
           "bureau_short": reg[r["bureau"]].short if r["bureau"] in reg else r["bureau"], "matter": r["matter"],
           "applicant": r["applicant"], "id_number": r["id_number"], "signed_on": r["signed_on"],
           "commitments": "\n".join(f"{i}、{t}" for i, t in enumerate(r["commitments"], 1))} for r in rows],
         language=language)


@app.command("history")
def history_cmd(
    ctx: typer.Context,
    number: Annotated[str, typer.Argument(help="A letter number (20260001) or a commitment case (C20260001).")],
    sender: Annotated[str | None, typer.Option("--from", help="The requesting / handling bureau.")] = None,
    as_json: AsJson = False,
    reveal: Reveal = False,
    reason: Reason = None,
    operator: Operator = None,
) -> None:
    """A case's history from the ledger alone: who asked whom for what, each answer, each step, and flags.

    Example: [bold]xiezhu history 20260007 --from shenpi[/]
    """
    from agencies.disclosure import render_disclosure

    settings = _settings(ctx)

    def disclose(ledger_: Any, case_id: str) -> Any:
        return system_of(ctx).justice().reveal_case(ledger_, case_id, command="history", reason=reason,
                                                    operator=operator_name(operator))

    h, shown = case_history(settings, number, sender, disclose if reveal else None)
    if as_json:
        _print_json({"kind": h.kind, "case": h.case, "number": h.number, "findings": h.findings,
                     "linked": h.linked, "lines": history_lines(h)} | ({"revealed": shown[0]} if shown else {}))
        return
    from xiezhu.cli.tables import lang

    kind_zh = {"assistance": "行政协助", "commitment": "告知承诺案件", "dispute": "争议",
               "list": "清单公布"}.get(h.kind, h.kind)
    print_history(h, f"{kind_zh} {h.number}" if lang() == "zh" else f"{h.kind} case {h.number}")
    if shown:
        sys.stdout.write(render_disclosure(*shown))
    elif reveal:
        sys.stderr.write("nothing to reveal: this case holds no applicant (a dispute); nothing was recorded\n")


@app.command()
def letter(
    ctx: typer.Context,
    number: Annotated[str, typer.Argument(help="A letter number (20260001) or a commitment case (C20260001).")],
    sender: Annotated[str | None, typer.Option("--from", help="The requesting / handling bureau.")] = None,
    fmt: Annotated[str, typer.Option("--format", help="txt, docx (editable in WPS/Word) or pdf.")] = "txt",
    out_dir: Annotated[Path | None, typer.Option(
        "--out", help="Write one file per letter here (default for docx/pdf: the current folder).")] = None,
    as_json: AsJson = False,
) -> None:
    """The letters of a case (附件4–7, the decline, the consequence notices) as text, DOCX or PDF.

    Files are named as a clerk files them: 20260007-行政协助函（一）.docx, C20260001-承诺告知书.pdf.

    Example: [bold]xiezhu letter 20260007 --from shenpi --format docx --out letters/[/]
    """
    from projections.documents.case_letters import letters_for
    from projections.documents.files import FORMATS, write_letters
    from projections.documents.letters import render

    if fmt not in FORMATS:
        raise XiezhuError(f"--format must be one of {', '.join(FORMATS)}, not {fmt!r}",
                          zh=f"--format 应为 {'、'.join(FORMATS)} 之一，而不是 {fmt!r}")
    h, _ = case_history(_settings(ctx), number, sender)
    reg = Registry.load()
    letters = letters_for(h, reg.name)
    if not letters:
        raise XiezhuError(f"case {number} has no letter yet", zh=f"案件 {number} 尚无协助函")
    if out_dir is None and fmt == "txt":
        if as_json:
            _print_json([{"type": type(x).__struct_config__.tag, "number": h.number, "text": render(x),
                          "letter": msgspec.to_builtins(x)} for x in letters])
            return
        sys.stdout.write(("\n" + "─" * 40 + "\n\n").join(render(x) for x in letters))
        return
    written = write_letters(letters, h.number, fmt, out_dir or Path("."))
    if as_json:
        _print_json([w.as_json() for w in written])
        return
    for w in written:
        err.print(in_lang(f"已写入 {w.path}", f"wrote {w.path}"))


@app.command()
def bureaus(as_json: AsJson = False) -> None:
    """The bureaus of the registry (附件1) with their codes.

    Example: [bold]xiezhu bureaus --json[/]
    """
    reg = Registry.load()
    if as_json:
        _print_json([msgspec.structs.asdict(b) for b in reg])
        return
    from xiezhu.cli.tables import Col, lang, show

    language = lang()
    kinds = {"department": "区直部门", "town": "镇", "street": "街道", "city": "市级机关"}
    show(f"部门 {len(reg)} 个" if language == "zh" else f"{len(reg)} bureaus",
         [Col("code", "代码", "code", ident=True), Col("name", "名称", "name", ident=True),
          Col("short", "简称", "short", drop=1), Col("kind", "类别", "kind", drop=2)],
         [{"code": b.code, "name": b.name, "short": reg.short(b.code),
           "kind": kinds.get(b.kind, b.kind) if language == "zh" else b.kind} for b in reg], language=language)


@app.command()
def inbox(
    ctx: typer.Context,
    bureau: Annotated[str, typer.Option(
        help="The bureau whose operator inbox to show: its code, name or a unique part (ziran, 自然资源).")],
    as_json: AsJson = False,
    reveal: Reveal = False,
    reason: Reason = None,
    operator: Operator = None,
) -> None:
    """Requests addressed to a bureau that wait for a person to answer.

    Applicants are masked; the operator who must look one up shows them in full with
    --reveal --reason (the bureau's store key entitles its own machine; the access log records it).

    Example: [bold]xiezhu inbox --bureau ziran --reveal --reason "核查 20260007 户籍"[/]
    """
    bureau = bureau_code(bureau) or bureau
    desk = system_of(ctx).desk(bureau, existing=True)
    name: Callable[[str], str] = mask_name
    id_number: Callable[[str], str] = mask_id
    if reveal:
        waiting, _ = desk.reveal_inbox(reason, operator_name(operator))
        name = id_number = _as_is
    else:
        waiting = desk.inbox()
    if as_json:
        _print_json([{"number": s.number, "case": s.case, "requester": s.requester, "matter": s.request.matter.name,
                      "applicant": name(s.request.applicant.name),
                      "id_number": id_number(s.request.applicant.id_number),
                      "channel": s.request.channel, "arrived_at": s.arrived_at,
                      "items": [{"no": i.no, "text": i.text} for i in s.request.items]} for s in waiting])
        return
    from xiezhu.cli.screens import INBOX_COLUMNS, Words, inbox_rows
    from xiezhu.cli.tables import lang, show

    language = lang()
    words = Words(Registry.load(), language)
    show(f"{words.bureau(bureau)} 待答复 {len(waiting)} 件" if language == "zh"
         else f"{bureau} inbox — {len(waiting)} waiting", INBOX_COLUMNS, inbox_rows(waiting, words, name, id_number),
         language=language)


@app.command("access-log")
def access_log(ctx: typer.Context, as_json: AsJson = False) -> None:
    """Every showing of personal data in full (--reveal) on this machine: who, when, what and why.

    Example: [bold]xiezhu access-log[/]
    """
    from agencies.disclosure import AccessLog

    entries = list(AccessLog(_settings(ctx).data_dir).entries())
    if as_json:
        _print_json(entries)
        return
    from xiezhu.cli.screens import when
    from xiezhu.cli.tables import Col, lang, show

    language = lang()
    title = f"个人信息完整显示记录 {len(entries)} 条" if language == "zh" else f"{len(entries)} disclosures"
    show(title,
         [Col("at", "时间", "at", ident=True), Col("operator", "经办人", "operator", ident=True),
          Col("host", "主机", "host", drop=3), Col("command", "命令", "command", keep=True, drop=2),
          Col("subject", "案件", "subject", ident=True), Col("reason", "事由", "reason"),
          Col("entitled_by", "凭据", "entitled by", drop=1)],
         [{"at": when(e.at), "operator": e.operator, "host": e.host, "command": e.command, "subject": e.subject,
           "reason": e.reason, "entitled_by": e.entitled_by} for e in entries], language=language)


def _as_is(text: str) -> str:
    return text


def _parse_item(text: str) -> ItemResult:
    no, _, rest = text.partition("=")
    verdict, _, reason = rest.partition(":")
    aliases = {v: k for k, v in labels.VERDICT.items()}
    verdict = aliases.get(verdict, verdict)
    try:
        return msgspec.convert({"no": int(no), "verdict": verdict, "reason": reason}, ItemResult)
    except (ValueError, msgspec.ValidationError) as e:
        raise XiezhuError(f"--item {text!r}: expected N=true|false|unverifiable[:reason] ({e})",
                          zh=f"--item {text!r}：格式应为 N=true|false|unverifiable[:理由]（{e}）") from e


@app.command()
def answer(
    ctx: typer.Context,
    number: Annotated[str, typer.Argument(help="The request's number, e.g. 20260001.")],
    bureau: Annotated[str, typer.Option(callback=resolve_bureau, help="The assisting bureau (you): code or name.")],
    item: Annotated[list[str], typer.Option(help="N=true|false|unverifiable[:reason]; once per item.")],
    operator: Operator = None,
    requester: Annotated[str | None, typer.Option("--from", help="The requesting bureau, if numbers clash.")] = None,
) -> None:
    """Reply to a request from the inbox (回复函); the running agent's relay sends it.

    Example: [bold]xiezhu answer 20260007 --bureau ziran --item 1=true --item "2=unverifiable:档案未移交"[/]
    """
    results = [_parse_item(i) for i in item]  # check the input before touching the store
    system = system_of(ctx)
    desk = system.desk(bureau, existing=True)
    case = desk.find_request(number, requester)
    late = late_warnings(CalendarStore(system.settings.calendar_dir), desk.request(case), system.clock.now(), "reply",
                       lang())
    st = desk.answer(case, results, operator_name(operator))
    for line in late:
        err.print(in_lang(f"[yellow]警告：[/]{line}", f"[yellow]warning:[/] {line}"))
    said(system.settings, bureau, f"replied to {st.requester}'s {st.number}",
         f"已答复{zh_name(st.requester)}的 {st.number}")


@app.command()
def decline(
    ctx: typer.Context,
    number: Annotated[str, typer.Argument(help="The request's number.")],
    bureau: Annotated[str, typer.Option(callback=resolve_bureau, help="The assisting bureau (you): code or name.")],
    reason: Annotated[str, typer.Option(help="The written reasons (书面告知并说明理由).")],
    operator: Operator = None,
    requester: Annotated[str | None, typer.Option("--from", help="The requesting bureau, if numbers clash.")] = None,
) -> None:
    """Decline a request in writing, with the reasons.

    Example: [bold]xiezhu decline 20260009 --bureau wenlv --reason "不属于本机关职权范围"[/]
    """
    system = system_of(ctx)
    desk = system.desk(bureau, existing=True)
    case = desk.find_request(number, requester)
    late = late_warnings(CalendarStore(system.settings.calendar_dir), desk.request(case), system.clock.now(),
                         "decline", lang())
    try:
        st = desk.decline(case, reason, operator_name(operator))
    except msgspec.ValidationError as e:
        raise XiezhuError(f"cannot decline: {e}", zh=f"无法拒绝协助：{e}") from e
    for line in late:
        err.print(in_lang(f"[yellow]警告：[/]{line}", f"[yellow]warning:[/] {line}"))
    said(system.settings, bureau, f"declined {st.requester}'s {st.number}",
         f"已书面告知{zh_name(st.requester)}不能协助 {st.number}")


