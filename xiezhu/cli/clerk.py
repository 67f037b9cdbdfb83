"""A clerk's actions from the command line: ``request``, ``case …``, ``forward``, ``withdraw``, ``onsite``.

Each command calls the bureau's :class:`~agencies.desk.Desk` and nothing else; each checks its
input before the desk is touched, so a refusal prints one ``error:`` line, exits 1 and changes
nothing.  What a command commits goes out through the bureau's agent: with no agent running
here, it says "queued: the agent will send it".
"""
from __future__ import annotations

from datetime import date, timedelta
from typing import Annotated, Any, cast

import msgspec
import typer

from aggregates.commitment import CommitmentState
from aggregates.registry import zh_name
from aggregates.store import SHANGHAI
from schemas import labels
from schemas.assistance import Applicant, CommitmentItem, Matter, Verdict
from schemas.commitment import PlannedItem
from schemas.errors import XiezhuError
from xiezhu.cli.common import AsJson, err, in_lang, print_json, resolve_bureau, said, system_of

__all__ = ["case_app", "forward", "onsite", "request", "said", "withdraw"]

Bureau = Annotated[str, typer.Option("--bureau", callback=resolve_bureau,
                                      help="Your bureau: its code, name or a unique part (shenpi, 审批).")]
CaseNo = Annotated[str, typer.Argument(help="The commitment case's number, e.g. C20260001.")]
LegalReason = Annotated[str, typer.Option("--legal-reason", help="The legal reason (法律依据), in full.")]

case_app = typer.Typer(no_args_is_help=True, rich_markup_mode="rich",
                       help="A commitment case (告知承诺) at the handling bureau, step by step.")


class ClerkInputError(XiezhuError):
    """A clerk's command was given something it cannot use; nothing was changed."""

    code = "cli.clerk"


# -- parsing ----------------------------------------------------------------------------------------


def parse_item(no: int, text: str) -> CommitmentItem:
    """``TEXT[|CHECK[|key=value;key=value]]`` as commitment item ``no``."""
    parts = text.split("|")
    if len(parts) > 3 or not parts[0].strip():
        raise ClerkInputError(f"--item {text!r}: expected TEXT[|CHECK[|key=value;…]]",
                              zh=f"--item {text!r}：格式应为 内容[|核查方式[|键=值;…]]")
    facts: dict[str, str] = {}
    if len(parts) == 3 and parts[2].strip():
        for pair in parts[2].split(";"):
            key, sep, value = pair.partition("=")
            if not sep or not key.strip():
                raise ClerkInputError(f"--item {text!r}: facts are key=value, separated by ';'",
                                      zh=f"--item {text!r}：事实应写作 键=值，以“;”分隔")
            facts[key.strip()] = value.strip()
    try:
        return msgspec.convert({"no": no, "text": parts[0].strip(), "check": parts[1].strip() if len(parts) > 1 else "",
                                "facts": facts}, CommitmentItem)
    except msgspec.ValidationError as e:
        raise ClerkInputError(f"--item {text!r}: {e}", zh=f"--item {text!r}：{e}") from None


def parse_applicant(name: str | None, id_number: str | None, organisation: bool) -> Applicant:
    if not name or not id_number:
        raise ClerkInputError("name the applicant: --applicant-name and --applicant-id (or take them from --case)",
                              zh="请写明申请人：--applicant-name 和 --applicant-id（或用 --case 从案件中取）")
    try:
        return msgspec.convert({"kind": "organisation" if organisation else "person", "name": name,
                                "id_number": id_number.strip().upper()}, Applicant)
    except msgspec.ValidationError as e:
        raise ClerkInputError(f"the applicant: {e} (an ID number or credit code: 15–18 digits or capitals)",
                              zh=f"申请人：{e}（身份证号码或统一社会信用代码：15–18 位数字或大写字母）") from None


def parse_date(text: str | None, option: str) -> date | None:
    if text is None:
        return None
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise ClerkInputError(f"{option} {text!r} is not a date like 2026-09-30",
                              zh=f"{option} {text!r} 不是日期，例如 2026-09-30") from None


def _numbers(text: str | None, option: str) -> list[int] | None:
    if text is None:
        return None
    try:
        return sorted({int(x) for x in text.replace("，", ",").split(",") if x.strip()})
    except ValueError:
        raise ClerkInputError(f"{option} {text!r}: item numbers separated by commas, e.g. 1,2",
                              zh=f"{option} {text!r}：应为以逗号分隔的事项序号，例如 1,2") from None


def _sent(ctx: typer.Context, bureau: str, what: str, what_zh: str) -> None:
    said(system_of(ctx).settings, bureau, what, what_zh)


def _case_json(st: CommitmentState) -> dict[str, Any]:
    shown: dict[str, Any] = {"number": st.number, "case": st.case, "bureau": st.bureau, "status": st.status}
    for key in ("route", "outcomes", "matter_code", "decision_no"):
        if hasattr(st, key):
            shown[key] = msgspec.to_builtins(getattr(st, key))
    return shown


def _done(st: CommitmentState, what: str, as_json: bool, zh: str) -> None:
    if as_json:
        print_json(_case_json(st))
    err.print(in_lang(f"[green]{zh}[/]：{st.number} 现为“{labels.CASE_STATUS.get(st.status, st.status)}”",
                      f"[green]{what}[/]: {st.number} is now {st.status}"))


# -- xiezhu request ------------------------------------------------------------------------------------


def request(
    ctx: typer.Context,
    bureau: Bureau,
    to: Annotated[str, typer.Option("--to", callback=resolve_bureau,
                                    help="The bureau asked to assist (协助机构): code or name.")],
    catalogue_item: Annotated[str, typer.Option("--catalogue-item", help="The item of the published 附件9 "
                                                "catalogue (第七条): nothing else can be requested.")],
    case: Annotated[str | None, typer.Option("--case", help="Take applicant, matter and items from this "
                                             "commitment case (C20260001).")] = None,
    items_of_case: Annotated[str | None, typer.Option("--items", help="With --case: only these items, e.g. 1,2.")]
    = None,
    applicant_name: Annotated[str | None, typer.Option(help="The applicant (without --case).")] = None,
    applicant_id: Annotated[str | None, typer.Option(help="Their ID number or credit code.")] = None,
    organisation: Annotated[bool, typer.Option("--organisation", help="The applicant is an organisation.")] = False,
    matter_code: Annotated[str | None, typer.Option(help="The service matter's code (without --case).")] = None,
    matter_name: Annotated[str | None, typer.Option(help="The service matter's name (without --case).")] = None,
    item: Annotated[list[str] | None, typer.Option("--item", help="A commitment to verify: "
                                                   "TEXT[|CHECK[|key=value;…]], once per item (without --case).")]
    = None,
    applied_on: Annotated[str | None, typer.Option(help="When the applicant came (default: today).")] = None,
    channel: Annotated[str, typer.Option(help="platform (协助函（一）) or letter (协助函（二）, with two --staff).")]
    = "platform",
    staff: Annotated[list[str] | None, typer.Option("--staff", help="协助函（二）: each of the two staff sent.")]
    = None,
    as_json: AsJson = False,
) -> None:
    """Send a 行政协助函 (附件4) for a catalogued item; refused before anything is stored otherwise.

    Example: [bold]xiezhu request --bureau shenpi --to gongan --catalogue-item XZ-0001 --applicant-name 张三
    --applicant-id 370405199001011234 --matter-code 370405-XK-0101 --matter-name 食品经营许可
    --item "本人户籍所在地为运河街道|hukou.residence|address=运河街道"[/]
    """
    if channel not in ("platform", "letter"):
        raise ClerkInputError(f"--channel {channel!r}: platform or letter",
                              zh=f"--channel {channel!r}：应为 platform（平台）或 letter（协助函）")
    staff = [s.strip() for s in staff or [] if s.strip()]
    if channel == "letter" and len(staff) != 2:
        raise ClerkInputError("协助函（二） (--channel letter) names the two staff sent: --staff A --staff B",
                              zh="协助函（二）（--channel letter）须写明派出的两名工作人员：--staff 甲 --staff 乙")
    if channel == "platform" and staff:
        raise ClerkInputError("--staff goes with --channel letter (协助函（二）) only",
                              zh="--staff 只用于 --channel letter（协助函（二））")
    day = parse_date(applied_on, "--applied-on")
    system = system_of(ctx)
    system.registry[to]
    desk = system.desk(bureau)
    link = ""
    late: list[PlannedItem] = []
    if case is not None:
        if item or applicant_name or applicant_id or matter_code:
            raise ClerkInputError("--case takes applicant, matter and items from the case; leave them out",
                                  zh="--case 从案件中取申请人、事项和承诺内容；请勿另行填写")
        st = desk.commitment(desk.find_commitment(case))
        wanted = _numbers(items_of_case, "--items")
        items = [i for i in st.items if wanted is None or i.no in wanted]
        if wanted is not None and len(items) != len(wanted):
            raise ClerkInputError(f"--items {items_of_case}: case {case} has items "
                                  f"{', '.join(str(i.no) for i in st.items)}",
                                  zh=f"--items {items_of_case}："
                                     f"案件 {case} 的事项序号为 {', '.join(str(i.no) for i in st.items)}")
        applicant, matter = st.applicant, Matter(code=st.matter_code, name=st.matter_name)
        day = day or st.applied_on
        link = st.case
        today = system.clock.now().astimezone(SHANGHAI).date()
        late = [p for p in st.plan if p.due_on is not None and p.due_on < today and any(i.no == p.no for i in items)]
    else:
        if not item:
            raise ClerkInputError("name the commitments to verify: --item TEXT (or take them from --case)",
                                  zh="请写明需核查的承诺：--item 内容（或用 --case 从案件中取）")
        items = [parse_item(n, text) for n, text in enumerate(item, start=1)]
        applicant = parse_applicant(applicant_name, applicant_id, organisation)
        if not matter_code or not matter_name:
            raise ClerkInputError("name the service matter: --matter-code and --matter-name (or use --case)",
                                  zh="请写明服务事项：--matter-code 和 --matter-name（或用 --case）")
        try:
            matter = msgspec.convert({"code": matter_code, "name": matter_name}, Matter)
        except msgspec.ValidationError as e:
            raise ClerkInputError(f"the matter: {e}", zh=f"服务事项：{e}") from None
    sent = desk.send_request(assistor=to, applicant=applicant, matter=matter, items=items,
                             catalogue_item=catalogue_item, applied_on=day, channel=channel,  # type: ignore[arg-type]
                             staff=staff, commitment_case=link)
    for p in late:
        err.print(in_lang(f"[yellow]警告：[/]{case} 第 {p.no} 项应于 {p.due_on} 前核查（三(一)）；已经逾期",
                          f"[yellow]warning:[/] item {p.no} of {case} was to be verified by {p.due_on} (三(一)); "
                          f"it is late already"))
    if as_json:
        print_json({"number": sent.number, "case": sent.case, "requester": sent.requester, "assistor": sent.assistor,
                    "status": sent.status})
    else:
        print(sent.number)
    _sent(ctx, bureau, f"行政协助函 {sent.number} to {to}", f"行政协助函 {sent.number} 发往{zh_name(to)}")


# -- xiezhu withdraw / forward / onsite ------------------------------------------------------------------


def withdraw(
    ctx: typer.Context,
    number: Annotated[str, typer.Argument(help="Your request's number, e.g. 20260001.")],
    bureau: Bureau,
    reason: Annotated[str, typer.Option(help="Why the answer is no longer needed.")],
) -> None:
    """Withdraw a request your bureau sent, while it is still open.

    Example: [bold]xiezhu withdraw 20260001 --bureau shenpi --reason "申请人撤回申请"[/]
    """
    if len(reason.strip()) < 2:
        raise ClerkInputError("--reason: say why (at least two characters)", zh="--reason：请写明理由（至少两个字）")
    desk = system_of(ctx).desk(bureau, existing=True)
    st = desk.withdraw_request(desk.find_request(number, bureau), reason.strip())
    _sent(ctx, bureau, f"withdrew {st.number}", f"已撤回 {st.number}")


def forward(
    ctx: typer.Context,
    number: Annotated[str, typer.Argument(help="The request's number.")],
    bureau: Bureau,
    institution: Annotated[str, typer.Option(help="The institution holding the pre-reform archives (第五条).")],
    note: Annotated[str, typer.Option(help="What was asked of it.")] = "",
    requester: Annotated[str | None, typer.Option("--from", help="The requesting bureau, if numbers clash.")] = None,
) -> None:
    """第五条: ask the institution that holds archives from before the reform; answer later on its behalf.

    Example: [bold]xiezhu forward 20260003 --bureau ziran --institution 区档案馆 --note "1998年土地档案"[/]
    """
    if not institution.strip():
        raise ClerkInputError("--institution: name the institution", zh="--institution：请写明机构名称")
    desk = system_of(ctx).desk(bureau, existing=True)
    st = desk.forward(desk.find_request(number, requester), institution.strip(), note.strip())
    _sent(ctx, bureau, f"forwarded {st.requester}'s {st.number} to {institution.strip()}",
          f"已将{zh_name(st.requester)}的 {st.number} 转交{institution.strip()}")


def onsite(
    ctx: typer.Context,
    number: CaseNo,
    bureau: Bureau,
    item_no: Annotated[int, typer.Option("--item", min=1, max=50, help="The committed item checked.")],
    verdict: Annotated[str, typer.Option(help="true (真实), false (虚假) or unverifiable (无法证实).")],
    officer: Annotated[list[str], typer.Option("--officer", help="Each officer on site (at least two).")],
    reason: Annotated[str, typer.Option(help="What was found (required unless true).")] = "",
    as_json: AsJson = False,
) -> None:
    """第六条: record an on-site check of a committed item by two or more officers.

    Example: [bold]xiezhu onsite C20260001 --bureau shenpi --item 1 --verdict true --officer 王伟 --officer 李娜[/]
    """
    officers = [o.strip() for o in officer if o.strip()]
    if len(officers) < 2:
        raise ClerkInputError("an on-site check is made by at least two officers: --officer A --officer B",
                              zh="现场核查须由至少两名工作人员进行：--officer 甲 --officer 乙")
    v = _verdict(verdict, reason)
    desk = system_of(ctx).desk(bureau, existing=True)
    st = desk.verify_on_site(desk.find_commitment(number), item_no, v, officers, reason.strip())
    _done(st, f"item {item_no} checked on site: {v}", as_json, f"第 {item_no} 项现场核查：{labels.VERDICT[v]}")


def _verdict(verdict: str, reason: str) -> Verdict:
    aliases = {"真实": "true", "虚假": "false", "无法证实": "unverifiable"}
    v = aliases.get(verdict, verdict)
    if v not in ("true", "false", "unverifiable"):
        raise ClerkInputError(f"--verdict {verdict!r}: true, false or unverifiable (真实 / 虚假 / 无法证实)",
                              zh=f"--verdict {verdict!r}：应为 true、false 或 unverifiable（真实 / 虚假 / 无法证实）")
    if v != "true" and not reason.strip():
        raise ClerkInputError(f"--reason: a verdict of {v} needs the reason", zh=f"--reason：结论为{v}时须写明理由")
    return cast(Verdict, v)


# -- xiezhu case … ------------------------------------------------------------------------------------------


def _desk_case(ctx: typer.Context, bureau: str, number: str) -> tuple[Any, str]:
    desk = system_of(ctx).desk(bureau, existing=True)
    return desk, desk.find_commitment(number)


@case_app.command("open")
def case_open(
    ctx: typer.Context,
    bureau: Bureau,
    matter: Annotated[str, typer.Option(help="The matter's code in the published 附件8 list, e.g. ZM-shenpi-0001.")],
    applicant_name: Annotated[str, typer.Option(help="The applicant.")],
    applicant_id: Annotated[str, typer.Option(help="Their ID number or credit code.")],
    item: Annotated[list[str], typer.Option("--item", help="A commitment: TEXT[|CHECK[|key=value;…]], once each.")],
    organisation: Annotated[bool, typer.Option("--organisation", help="The applicant is an organisation.")] = False,
    applied_on: Annotated[str | None, typer.Option(help="When the applicant came (default: today).")] = None,
    as_json: AsJson = False,
) -> None:
    """Open a commitment case for a matter of the published 附件8 list; the credit view decides the route (四(二)).

    Example: [bold]xiezhu case open --bureau shenpi --matter 370405-XK-0101 --applicant-name 张三
    --applicant-id 370405199001011234 --item "本人户籍所在地为运河街道|hukou.residence|address=运河街道"[/]
    """
    items = [parse_item(n, text) for n, text in enumerate(item, start=1)]
    applicant = parse_applicant(applicant_name, applicant_id, organisation)
    day = parse_date(applied_on, "--applied-on")
    st = system_of(ctx).desk(bureau).open_case(applicant, matter, items, day)
    if not as_json:
        print(st.number)
    _done(st, "opened", as_json, "已受理")


@case_app.command("notice")
def case_notice(ctx: typer.Context, number: CaseNo, bureau: Bureau, as_json: AsJson = False) -> None:
    """Give the applicant the 承诺告知书 (附件6).

    Example: [bold]xiezhu case notice C20260001 --bureau shenpi[/]
    """
    desk, case = _desk_case(ctx, bureau, number)
    _done(desk.issue_notice(case), "告知书 issued", as_json, "已出具告知书")


@case_app.command("refuse-disclosure")
def case_refuse_disclosure(ctx: typer.Context, number: CaseNo, bureau: Bureau, as_json: AsJson = False) -> None:
    """二(四): the applicant does not consent to making the commitment public; the certificate is needed.

    Example: [bold]xiezhu case refuse-disclosure C20260001 --bureau shenpi[/]
    """
    desk, case = _desk_case(ctx, bureau, number)
    _done(desk.refuse_disclosure(case), "disclosure refused", as_json, "已拒绝公示")


@case_app.command("choose")
def case_choose(ctx: typer.Context, number: CaseNo, bureau: Bureau,
                route: Annotated[str, typer.Option(help="commitment (承诺) or certificate (提交证明).")],
                as_json: AsJson = False) -> None:
    """For a 可选择 matter: the applicant commits, or brings the certificate instead.

    Example: [bold]xiezhu case choose C20260001 --bureau shenpi --route certificate[/]
    """
    if route not in ("commitment", "certificate"):
        raise ClerkInputError(f"--route {route!r}: commitment or certificate",
                              zh=f"--route {route!r}：应为 commitment（告知承诺）或 certificate（提交证明）")
    desk, case = _desk_case(ctx, bureau, number)
    _done(desk.choose_route(case, route), f"route {route}", as_json,
          "选择告知承诺" if route == "commitment" else "选择提交证明")


@case_app.command("commit")
def case_commit(ctx: typer.Context, number: CaseNo, bureau: Bureau,
                signed_on: Annotated[str | None, typer.Option(help="When it was signed (default: today).")] = None,
                as_json: AsJson = False) -> None:
    """The applicant signs the 申请人承诺书 (附件7); for a 可选择 matter, after `case choose --route commitment`.

    Example: [bold]xiezhu case commit C20260001 --bureau shenpi[/]
    """
    day = parse_date(signed_on, "--signed-on")
    desk, case = _desk_case(ctx, bureau, number)
    _done(desk.commit(case, day), "承诺书 signed", as_json, "已签署承诺书")


@case_app.command("approve")
def case_approve(ctx: typer.Context, number: CaseNo, bureau: Bureau,
                 decision_no: Annotated[str, typer.Option(help="The decision's number, e.g. 台审批许〔2026〕1号.")],
                 as_json: AsJson = False) -> None:
    """Approve on the commitment (before or after the verification).

    Example: [bold]xiezhu case approve C20260001 --bureau shenpi --decision-no "台审批许〔2026〕1号"[/]
    """
    if not decision_no.strip():
        raise ClerkInputError("--decision-no: the decision's number", zh="--decision-no：请写明决定文号")
    desk, case = _desk_case(ctx, bureau, number)
    _done(desk.approve(case, decision_no.strip()), "approved", as_json, "已批准")


@case_app.command("withdraw")
def case_withdraw(ctx: typer.Context, number: CaseNo, bureau: Bureau,
                  reason: Annotated[str, typer.Option(help="Why the applicant leaves the commitment route.")],
                  as_json: AsJson = False) -> None:
    """二(三): the applicant withdraws from the commitment route midway (before the decision).

    Example: [bold]xiezhu case withdraw C20260001 --bureau shenpi --reason "申请人决定自行提交证明"[/]
    """
    desk, case = _desk_case(ctx, bureau, number)
    _done(desk.withdraw_case(case, reason.strip()), "withdrawn from the commitment route", as_json,
          "已撤回告知承诺")


def _planned(text: str, default_due: date) -> PlannedItem:
    """``N=online|assistance|on-site[:DETAIL][@YYYY-MM-DD]`` or ``N=exempt``."""
    no, sep, rest = text.partition("=")
    if not sep or not no.strip().isdigit():
        raise ClerkInputError(f"--item {text!r}: expected N=online|assistance|on-site[:detail][@date] or N=exempt",
                              zh=f"--item {text!r}：格式应为 N=online|assistance|on-site[:说明][@日期] 或 N=exempt")
    if rest.strip() == "exempt":
        return PlannedItem(no=int(no), method="online", exempt=True)
    rest, _, due = rest.partition("@")
    method, _, detail = rest.partition(":")
    try:
        return msgspec.convert({"no": int(no), "method": method.strip(), "detail": detail.strip(),
                                "due_on": (parse_date(due.strip() or None, "the due date") or default_due).isoformat()},
                               PlannedItem)
    except msgspec.ValidationError as e:
        raise ClerkInputError(f"--item {text!r}: {e}", zh=f"--item {text!r}：{e}") from None


@case_app.command("plan")
def case_plan(ctx: typer.Context, number: CaseNo, bureau: Bureau,
              item: Annotated[list[str], typer.Option("--item", help="N=online|assistance|on-site[:detail][@date], "
                                                      "or N=exempt; once per committed item.")],
              as_json: AsJson = False) -> None:
    """The verification plan: how and by when each committed item is verified (三(一)).

    Without a date, an item is due in 10 days.

    Example: [bold]xiezhu case plan C20260001 --bureau shenpi --item 1=assistance:XZ-0001 --item 2=online:电子证照库[/]
    """
    system = system_of(ctx)
    due = system.clock.now().astimezone(SHANGHAI).date() + timedelta(days=10)
    planned = [_planned(t, due) for t in item]
    desk, case = _desk_case(ctx, bureau, number)
    _done(desk.plan_verification(case, planned), "verification planned", as_json, "已制定核查计划")


@case_app.command("verify")
def case_verify(ctx: typer.Context, number: CaseNo, bureau: Bureau,
                item_no: Annotated[int, typer.Option("--item", min=1, max=50, help="The committed item.")],
                verdict: Annotated[str, typer.Option(help="true, false or unverifiable (真实 / 虚假 / 无法证实).")],
                online: Annotated[str | None, typer.Option(help="Verified online, in this system (电子证照库 …).")]
                = None,
                assistance: Annotated[str | None, typer.Option(help="By the reply to this 协助函 number.")] = None,
                reason: Annotated[str, typer.Option(help="Required unless true.")] = "",
                as_json: AsJson = False) -> None:
    """Record one item's verification online or by an assistance reply (on site: `xiezhu onsite`).

    Example: [bold]xiezhu case verify C20260001 --bureau shenpi --item 2 --verdict true --online 电子证照库[/]
    """
    if (online is None) == (assistance is None):
        raise ClerkInputError("say where the verdict comes from: --online SYSTEM or --assistance NUMBER",
                              zh="请写明核查结论的来源：--online 系统名称 或 --assistance 协助函编号")
    v = _verdict(verdict, reason)
    source = f"online:{online.strip()}" if online is not None else f"assistance:{bureau}/{assistance}"
    desk, case = _desk_case(ctx, bureau, number)
    _done(desk.verify_item(case, item_no, v, source, reason.strip()), f"item {item_no}: {v}", as_json,
          f"第 {item_no} 项：{labels.VERDICT[v]}")


@case_app.command("conclude")
def case_conclude(ctx: typer.Context, number: CaseNo, bureau: Bureau, as_json: AsJson = False) -> None:
    """Close the verification once every item has its verdict; a false item records the false commitment (三(三)).

    Example: [bold]xiezhu case conclude C20260001 --bureau shenpi[/]
    """
    desk, case = _desk_case(ctx, bureau, number)
    st = desk.conclude(case)
    if st is None:
        raise ClerkInputError(f"{number} cannot be concluded yet: an item still waits for its verdict",
                              zh=f"{number} 尚不能办结：还有事项在等待核查结论")
    _done(st, "concluded", as_json, "已办结")


@case_app.command("terminate")
def case_terminate(ctx: typer.Context, number: CaseNo, bureau: Bureau, legal_reason: LegalReason,
                   as_json: AsJson = False) -> None:
    """三(三) before a decision: terminate the processing of a false commitment.

    Example: [bold]xiezhu case terminate C20260001 --bureau shenpi --legal-reason "三(三)：承诺不实，终止办理"[/]
    """
    desk, case = _desk_case(ctx, bureau, number)
    _done(desk.terminate(case, legal_reason), "terminated", as_json, "已终止办理")


@case_app.command("rectify")
def case_rectify(ctx: typer.Context, number: CaseNo, bureau: Bureau,
                 by: Annotated[str, typer.Option("--by", help="The rectification deadline, e.g. 2026-10-30.")],
                 legal_reason: LegalReason, as_json: AsJson = False) -> None:
    """Order rectification (责令限期整改) by a date.

    Example: [bold]xiezhu case rectify C20260001 --bureau shenpi --by 2026-10-30 --legal-reason "责令限期整改"[/]
    """
    deadline = parse_date(by, "--by")
    assert deadline is not None
    desk, case = _desk_case(ctx, bureau, number)
    _done(desk.order_rectification(case, deadline, legal_reason), "rectification ordered", as_json, "已责令限期整改")


@case_app.command("rectified")
def case_rectified(ctx: typer.Context, number: CaseNo, bureau: Bureau,
                   evidence: Annotated[str, typer.Option(help="What shows it was rectified.")],
                   as_json: AsJson = False) -> None:
    """Confirm the rectification, with the evidence.

    Example: [bold]xiezhu case rectified C20260001 --bureau shenpi --evidence "已补交户籍证明"[/]
    """
    desk, case = _desk_case(ctx, bureau, number)
    _done(desk.confirm_rectification(case, evidence), "rectified", as_json, "已整改")


@case_app.command("revoke")
def case_revoke(ctx: typer.Context, number: CaseNo, bureau: Bureau, legal_reason: LegalReason,
                as_json: AsJson = False) -> None:
    """三(三) after approval: revoke the decision; the licence is due back within 2 days (附件6).

    Example: [bold]xiezhu case revoke C20260001 --bureau shenpi --legal-reason "三(三)：承诺不实，撤销行政许可"[/]
    """
    desk, case = _desk_case(ctx, bureau, number)
    _done(desk.revoke(case, legal_reason), "revoked", as_json, "已撤销")


@case_app.command("penalise")
def case_penalise(ctx: typer.Context, number: CaseNo, bureau: Bureau,
                  penalty: Annotated[str, typer.Option(help="The penalty imposed.")], legal_reason: LegalReason,
                  as_json: AsJson = False) -> None:
    """Record the penalty imposed for a false commitment.

    Example: [bold]xiezhu case penalise C20260001 --bureau shenpi --penalty "罚款2000元"
    --legal-reason "《行政许可法》第七十九条"[/]
    """
    desk, case = _desk_case(ctx, bureau, number)
    _done(desk.penalise(case, penalty, legal_reason), "penalty recorded", as_json, "已记录行政处罚")


@case_app.command("notify")
def case_notify(ctx: typer.Context, number: CaseNo, bureau: Bureau,
                department: Annotated[str, typer.Option(help="The supervising department's code (监管部门), "
                                                        "e.g. shichang.")],
                legal_reason: LegalReason, as_json: AsJson = False) -> None:
    """附件6: push the false commitment to the supervising department for punishment (推送监管部门予以惩处).

    The 信用中国 record is made with the finding itself (三(三)); this tells the department, signed.

    Example: [bold]xiezhu case notify C20260001 --bureau shenpi --department shichang
    --legal-reason "附件6：推送监管部门予以惩处"[/]
    """
    code = system_of(ctx).registry[department.strip()].code
    desk, case = _desk_case(ctx, bureau, number)
    _done(desk.notify_supervisor(case, code, legal_reason), f"{code} told", as_json, f"已告知{zh_name(code)}")


@case_app.command("licence-returned")
def case_licence_returned(ctx: typer.Context, number: CaseNo, bureau: Bureau,
                          at: Annotated[str | None, typer.Option(help="When it came back (default: now), "
                                                                 "e.g. 2026-09-30T10:00.")] = None,
                          note: Annotated[str, typer.Option(help="Anything to note.")] = "",
                          as_json: AsJson = False) -> None:
    """附件6: the licence original came back after the revocation (due 撤销之日起2日内).

    Example: [bold]xiezhu case licence-returned C20260001 --bureau shenpi --note "原件已交回"[/]
    """
    from xiezhu.cli.common import parse_instant

    system = system_of(ctx)
    when = parse_instant(at, "--at", ClerkInputError) if at else system.clock.now()
    desk, case = _desk_case(ctx, bureau, number)
    _done(desk.return_licence(case, when, note.strip()), "licence returned", as_json, "许可证件已交回")


@case_app.command("supervise")
def case_supervise(ctx: typer.Context, number: CaseNo, bureau: Bureau,
                   item_no: Annotated[int, typer.Option("--item", min=1, max=50, help="The committed item.")],
                   verdict: Annotated[str, typer.Option(help="true, false or unverifiable (真实 / 虚假 / 无法证实).")],
                   way: Annotated[str, typer.Option(
                       help="How it was found: 双随机、一公开, 重点监管, 互联网＋监管 or 智慧监管.")],
                   reason: Annotated[str, typer.Option(help="Required unless true.")] = "",
                   as_json: AsJson = False) -> None:
    """三(三) 事中事后监管: what supervision after the decision found of a committed item.

    Example: [bold]xiezhu case supervise C20260001 --bureau shenpi --item 1 --verdict false --way 双随机、一公开
    --reason "经营场所与承诺不符"[/]
    """
    v = _verdict(verdict, reason)
    desk, case = _desk_case(ctx, bureau, number)
    _done(desk.supervise(case, item_no, v, way.strip(), reason.strip()), f"supervision of item {item_no}: {v}",
          as_json, f"第 {item_no} 项监管检查：{labels.VERDICT[v]}")


@case_app.command("refer")
def case_refer(ctx: typer.Context, number: CaseNo, bureau: Bureau,
               to: Annotated[str, typer.Option("--to", help="Who it is referred to (监管部门, 公安机关 …).")],
               legal_reason: LegalReason, as_json: AsJson = False) -> None:
    """Refer the false commitment to the supervising or judicial body.

    Example: [bold]xiezhu case refer C20260001 --bureau shenpi --to 区公安分局
    --legal-reason "涉嫌伪造证明，依法移送"[/]
    """
    desk, case = _desk_case(ctx, bureau, number)
    _done(desk.refer(case, to, legal_reason), f"referred to {to}", as_json, f"已移送{zh_name(to)}")


@case_app.command("show")
def case_show(ctx: typer.Context, number: CaseNo, bureau: Bureau, as_json: AsJson = False) -> None:
    """A commitment case as your bureau's store holds it (the applicant masked): its step, items,
    consequences and assistance requests; --json gives the whole folded state.

    Example: [bold]xiezhu case show C20260001 --bureau shenpi[/]
    """
    from schemas.privacy import mask_json

    desk, case = _desk_case(ctx, bureau, number)
    st = desk.commitment(case)
    shown = mask_json(msgspec.to_builtins(st))
    shown["requests"] = [{"number": r.number, "assistor": r.assistor, "status": r.status}
                         for r in desk.requests_for(case)]
    if as_json:
        print_json(shown)
        return
    from aggregates.registry import Registry
    from xiezhu.cli.screens import FIELD_COLUMNS, Words, case_fields
    from xiezhu.cli.tables import lang, show

    language = lang()
    show(f"告知承诺案件 {st.number}" if language == "zh" else f"commitment case {st.number}", FIELD_COLUMNS,
         case_fields(shown, Words(Registry.load(), language)), language=language)
