"""``xiezhu dispute …``: disputes between a requester and an assistor (附件2 第八条).

The parties raise a dispute, note the negotiation and settle it in their own stores; 区司法局
takes a failed negotiation up, rules with 区委编办 (amending the catalogue if need be), or asks
区政府 to decide; 区政府办公室 signs 区政府's decision, and 区司法局 takes it into the catalogue.  A
running agent's relay sends what these commands record.
"""
from __future__ import annotations

from pathlib import Path
from typing import Annotated

import msgspec
import typer

from agencies.desk import Desk
from agencies.justice import Justice
from aggregates.dispute import DisputeState
from aggregates.registry import zh_name
from schemas import labels
from schemas.catalogue import JUSTICE
from schemas.errors import XiezhuError
from xiezhu.cli.common import (
    AsJson,
    case_history,
    catalogue_kind,
    history_lines,
    in_lang,
    print_history,
    print_json,
    settings_of,
    system_of,
)

app = typer.Typer(no_args_is_help=True, help="Disputes between a requester and an assistor (附件2 第八条).")

Number = Annotated[str, typer.Argument(help="The dispute's number, e.g. D20260001.")]
Raiser = Annotated[str | None, typer.Option("--from", help="The bureau that raised it, if numbers clash.")]
Bureau = Annotated[str, typer.Option(help="The party acting (you): the requester or the assistor.")]


def _desk(ctx: typer.Context, code: str) -> Desk:
    return system_of(ctx).desk(code, existing=True)


def _justice(ctx: typer.Context) -> Justice:
    system_of(ctx).existing(JUSTICE)
    return system_of(ctx).justice()


def _dispute(ctx: typer.Context, desk: Desk, number: str, raiser: str | None) -> str:
    """The dispute's id at ``desk``'s bureau; the other party takes it up from the ledger first."""
    found = desk.find_dispute(number, raiser)
    if found is not None:
        return found
    if desk.bureau != JUSTICE:
        return _join_from_ledger(ctx, desk, number, raiser)
    return system_of(ctx).justice().dispute(number, raiser)


def _join_from_ledger(ctx: typer.Context, desk: Desk, number: str, raiser: str | None) -> str:
    """The raise travels only to 区司法局: the other party takes it from the ledger, signature checked."""
    from projections.history import find_cases
    from xiezhu.cli.common import ledger_at

    settings = settings_of(ctx)
    if not settings.ledger_exists():
        raise XiezhuError(f"no dispute numbered {number} in {desk.bureau}'s store, and no ledger to take it from",
                          zh=f"{zh_name(desk.bureau)}的存储中没有编号为 {number} 的争议，也没有可供查取的账本")
    ledger = ledger_at(settings)
    try:
        found = find_cases(ledger, number, raiser)
        if len(found) != 1:
            raise XiezhuError(f"{len(found) or 'no'} disputes numbered {number} in the ledger"
                              + ("; add --from RAISER" if found else ""),
                              zh=f"账本中编号为 {number} 的争议有 {len(found)} 件"
                                 + ("；请加 --from 提出争议的单位" if found else ""))
        signed = ledger.case(found[0])[0].signed
    finally:
        ledger.close()
    st = desk.take_up_dispute(signed)
    typer.echo(in_lang(f"{zh_name(desk.bureau)}已受理{zh_name(st.raised_by)}提出的争议 {st.number}",
                       f"{desk.bureau} took up dispute {st.number} raised by {st.raised_by}"), err=True)
    return st.case


def _done(st: DisputeState, what: str, zh: str) -> None:
    typer.echo(in_lang(f"争议 {st.number}（{zh_name(st.raised_by)}与{zh_name(st.other_party)}）{zh}："
                       f"{labels.DISPUTE_STEP[st.step]}",
                       f"{what} dispute {st.number} ({st.raised_by} with {st.other_party}): "
                       f"{labels.DISPUTE_STEP[st.step]}"), err=True)


# -- the parties ----------------------------------------------------------------------------------


@app.command("raise")
def raise_(ctx: typer.Context,
           number: Annotated[str, typer.Argument(help="The 行政协助函 number the dispute is about.")],
           bureau: Bureau,
           claim: Annotated[str, typer.Option(help="What is disputed, and what the raising bureau asks for.")],
           evidence: Annotated[list[str] | None, typer.Option(help="One piece of evidence; repeat.")] = None,
           requester: Annotated[str | None, typer.Option("--requester", help="The request's requester, "
                                                          "if numbers clash.")] = None) -> None:
    """Raise a dispute about an assistance request with 区司法局 (第八条); it takes a D number.

    Example: [bold]xiezhu dispute raise 20260009 --bureau nongye --claim "拒绝理由与清单不符" --evidence XZ-0009[/]
    """
    desk = _desk(ctx, bureau)
    st = desk.raise_dispute(desk.find_request(number, requester), claim, evidence or [])
    typer.echo(in_lang(f"已向{zh_name(JUSTICE)}提出争议 {st.number}："
                       f"{zh_name(st.raised_by)}与{zh_name(st.other_party)}，涉及 {number}",
                       f"raised dispute {st.number} with {JUSTICE}: {st.raised_by} with {st.other_party} "
                       f"about {number}"),
               err=True)


@app.command("negotiate")
def negotiate(ctx: typer.Context, number: Number, bureau: Bureau,
              note: Annotated[str, typer.Option(help="The party's note of the negotiation.")],
              failed: Annotated[bool, typer.Option("--failed", help="协商不成: the negotiation failed.")] = False,
              raiser: Raiser = None) -> None:
    """Note the negotiation between the parties; --failed records 协商不成, so 区司法局 may take it up.

    Example: [bold]xiezhu dispute negotiate D20260001 --from nongye --bureau wenlv --note "…" --failed[/]
    """
    desk = _desk(ctx, bureau)
    st = desk.negotiate(_dispute(ctx, desk, number, raiser), note, "failed" if failed else "continuing")
    _done(st, "noted", "已记录协商情况")


@app.command("settle")
def settle(ctx: typer.Context, number: Number, bureau: Bureau,
           agreement: Annotated[str, typer.Option(help="What the two parties agreed (协商解决).")],
           raiser: Raiser = None) -> None:
    """协商解决: record the parties' agreement; it closes the dispute.

    Example: [bold]xiezhu dispute settle D20260001 --bureau nongye --agreement "文旅局于3个工作日内回复"[/]
    """
    desk = _desk(ctx, bureau)
    _done(desk.settle(_dispute(ctx, desk, number, raiser), agreement), "settled", "已协商解决")


# -- 区司法局 ----------------------------------------------------------------------------------------


@app.command("refer")
def refer(ctx: typer.Context, number: Number,
          reasons: Annotated[str, typer.Option(help="Why 区司法局 takes it up.")], raiser: Raiser = None) -> None:
    """区司法局 takes up a dispute whose negotiation failed, to determine it with 区委编办.

    Example: [bold]xiezhu dispute refer D20260001 --from nongye --reasons "双方协商不成"[/]
    """
    justice = _justice(ctx)
    _done(justice.take_up(_dispute(ctx, justice.desk, number, raiser), reasons), "took up", "已受理")


@app.command("amend")
def amend(ctx: typer.Context, number: Number,
          file: Annotated[Path | None, typer.Argument(help="A .csv or .xlsx of the rows to add or change.")] = None,
          basis: Annotated[str, typer.Option(help="The 依据: the ruling or decision it carries out.")] = "",
          kind: Annotated[str, typer.Option(help="matters (附件8) or assistance (附件9).")] = "assistance",
          remove: Annotated[list[str] | None, typer.Option(help="A row code to take out; repeat.")] = None,
          raiser: Raiser = None) -> None:
    """区司法局 applies the catalogue adjustment a ruling or decision needs, under the dispute's number.

    Rows in FILE whose code is published replace it; the others are added.  Any bureau's rows
    may change.  Review and publish it as usual (xiezhu catalogue review / publish).

    Example: [bold]xiezhu dispute amend D20260001 --from nongye 附件9-XZ-0009.xlsx --basis "第八条研究确定意见"[/]
    """
    from aggregates.registry import Registry
    from projections.documents import catalogue_io

    k = catalogue_kind(kind)
    if not basis.strip():
        raise XiezhuError("--basis is required: the ruling or decision the adjustment carries out",
                          zh="--basis 必填：该调整所执行的裁决或决定")
    justice = _justice(ctx)
    wanted = catalogue_io.import_rows(k, file, Registry.load()) if file is not None else []
    adj, added, changed = justice.amend_sheet(_dispute(ctx, justice.desk, number, raiser), k, basis, wanted,
                                              removes=remove or [])
    typer.echo(in_lang(f"{adj}：依争议 {number} 新增 {added} 项、修改 {changed} 项、删除 {len(remove or [])} 项；"
                       "请审核并公布，再在研究确定意见或决定中写明",
                       f"{adj}: {added} added, {changed} changed, {len(remove or [])} removed under dispute "
                       f"{number}; review and publish it, then name it in the ruling or decision"), err=True)


@app.command("rule")
def rule(ctx: typer.Context, number: Number,
         ruling: Annotated[str, typer.Option(help="The ruling (研究确定意见).")],
         co_decider: Annotated[list[str] | None, typer.Option(
             help="Another unit deciding with 区司法局 and 区委编办 (等有关部门); repeat.")] = None,
         adjustment: Annotated[str, typer.Option(help="The adjustment the ruling led to, if it amends "
                                                 "the catalogue.")] = "",
         raiser: Raiser = None) -> None:
    """区司法局会同区委编办研究确定: record the ruling; it closes the dispute.

    Example: [bold]xiezhu dispute rule D20260001 --from nongye --ruling "由文旅局核查" --adjustment assistance-0013[/]
    """
    justice = _justice(ctx)
    _done(justice.rule(_dispute(ctx, justice.desk, number, raiser), ruling, co_decider or [], adjustment),
          "ruled", "已研究确定")


@app.command("escalate")
def escalate(ctx: typer.Context, number: Number,
             reasons: Annotated[str, typer.Option(help="Why 区政府 should decide.")], raiser: Raiser = None) -> None:
    """必要时: 区司法局 and 区委编办 ask 区政府 to decide a dispute taken up and not yet ruled.

    Example: [bold]xiezhu dispute escalate D20260001 --from nongye --reasons "涉及部门职责划分"[/]
    """
    justice = _justice(ctx)
    _done(justice.escalate(_dispute(ctx, justice.desk, number, raiser), reasons), "escalated", "已提请区政府决定")


@app.command("decide")
def decide(ctx: typer.Context, number: Number,
           decision: Annotated[str, typer.Option(help="区政府's decision.")],
           decision_no: Annotated[str, typer.Option(help="The government's document number.")] = "",
           raiser: Raiser = None) -> None:
    """区政府's decision on a dispute escalated to it, signed by 区政府办公室 and sent to 区司法局.

    区司法局 then takes it into the 行政协助目录 (dispute amend, catalogue review and publish,
    dispute take-in).

    Example: [bold]xiezhu dispute decide D20260001 --from nongye --decision "…" --decision-no "台政字〔2026〕5号"[/]
    """
    from schemas.sla import DISTRICT_GOVERNMENT
    from xiezhu.cli.common import ledger_at, said

    settings = settings_of(ctx)
    if not settings.ledger_exists():
        raise XiezhuError(f"no ledger in {settings.data_dir}: 区政府 decides a dispute the ledger shows escalated",
                          zh=f"{settings.data_dir} 中没有账本：区政府只对账本显示已报请的争议作出决定")
    from projections.history import find_cases

    ledger = ledger_at(settings)
    try:
        found = find_cases(ledger, number, raiser)
        if len(found) != 1:
            raise XiezhuError(f"{len(found) or 'no'} disputes numbered {number} in the ledger"
                              + ("; add --from RAISER" if found else ""),
                              zh=f"账本中编号为 {number} 的争议有 {len(found)} 件"
                                 + ("；请加 --from 提出争议的单位" if found else ""))
        system_of(ctx).government().decide(ledger, found[0], number, decision, decision_no)
    finally:
        ledger.close()
    said(settings, DISTRICT_GOVERNMENT, f"区政府 decided dispute {number}", f"区政府已就争议 {number} 作出决定")


@app.command("take-in")
def take_in(ctx: typer.Context, number: Number,
            adjustment: Annotated[str, typer.Option(help="The assistance-catalogue adjustment that takes 区政府's "
                                                    "decision in.")],
            raiser: Raiser = None) -> None:
    """决定作出后纳入行政协助目录: 区司法局 names the adjustment that takes 区政府's decision in; it closes the dispute.

    Example: [bold]xiezhu dispute take-in D20260001 --from nongye --adjustment assistance-0014[/]
    """
    justice = _justice(ctx)
    _done(justice.take_in(_dispute(ctx, justice.desk, number, raiser), adjustment), "took in", "已纳入目录")


# -- reading ----------------------------------------------------------------------------------------


@app.command("list")
def list_(ctx: typer.Context, as_json: AsJson = False) -> None:
    """Every dispute in 区司法局's file, with where it stands.

    Example: [bold]xiezhu dispute list --json[/]
    """
    from aggregates.registry import Registry
    from xiezhu.cli.screens import Words, when
    from xiezhu.cli.tables import Col, lang, show

    rows = list(_justice(ctx).disputes())
    if as_json:
        print_json({f"{d.raised_by}/{d.number}": {**msgspec.structs.asdict(d), "step": d.step} for d in rows})
        return
    language = lang()
    w = Words(Registry.load(), language)
    show(f"争议 {len(rows)} 件（附件2 第八条）" if language == "zh" else f"{len(rows)} disputes (附件2 第八条)",
         [Col("number", "编号", "number", ident=True), Col("raised_by", "提出方", "raised by", ident=True,
                                                          short="raised_by_short"),
          Col("other", "对方", "with", short="other_short", drop=3), Col("about", "所涉协助函", "about", drop=2),
          Col("raised", "提出时间", "raised", keep=True, drop=4), Col("stage", "阶段", "stage", keep=True),
          Col("adjustment", "清单调整", "adjustment", drop=1)],
         [{"number": d.number, "raised_by": w.bureau(d.raised_by), "raised_by_short": w.short(d.raised_by),
           "other": w.bureau(d.other_party), "other_short": w.short(d.other_party), "about": d.assistance_number,
           "raised": when(d.raised_at), "stage": labels.DISPUTE_STEP[d.step] if language == "zh" else d.step,
           "adjustment": d.adjustment} for d in rows], language=language)


@app.command("show")
def show(ctx: typer.Context, number: Number, raiser: Raiser = None, as_json: AsJson = False) -> None:
    """A dispute's signed history from the ledger alone: the raise, each note, 区司法局's steps, findings.

    Example: [bold]xiezhu dispute show D20260001 --from nongye[/]
    """

    h, _ = case_history(settings_of(ctx), number, raiser)
    if h.kind != "dispute":
        raise XiezhuError(f"{number} is not a dispute number (D20260001)", zh=f"{number} 不是争议编号（如 D20260001）")
    st = h.state
    if as_json:
        print_json({"case": h.case, "number": h.number, "stage": st.step if isinstance(st, DisputeState) else None,
                     "state": st, "findings": h.findings, "linked": h.linked, "lines": history_lines(h)})
        return
    stage = labels.DISPUTE_STEP[st.step] if isinstance(st, DisputeState) else "no valid raise"
    from xiezhu.cli.tables import lang

    print_history(h, f"争议 {h.number} — {stage}" if lang() == "zh" else f"dispute {h.number} — {stage}")
