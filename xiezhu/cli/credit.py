"""``xiezhu credit …``: an applicant's credit standing (四(二)) and the 信用中国 outbox, from the ledger."""
from __future__ import annotations

import contextlib
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any, cast

import typer
from typer.core import TyperGroup

from agencies.credit_china import CreditChina, DirectoryCreditChina, HttpCreditChina, deliver_pending
from agencies.desk import Desk, DeskError
from aggregates.store import SHANGHAI
from projections.credit import CreditView, open_view
from schemas import labels
from schemas.commitment import ReviewOutcome
from schemas.errors import XiezhuError, zh_of
from xiezhu.cli.common import AsJson, err, in_lang, ledger_at, out, system_of, view_key
from xiezhu.cli.common import print_json as _print_json
from xiezhu.cli.common import settings_of as _settings
from xiezhu.settings import Settings


class CreditCliError(XiezhuError):
    """A ``xiezhu credit`` command cannot run as given."""

    code = "cli.credit"


class _ApplicantOrCommand(TyperGroup):
    """``xiezhu credit APPLICANT`` is short for ``xiezhu credit show APPLICANT``."""

    def parse_args(self, ctx: Any, args: list[str]) -> list[str]:  # Any: typer vendors its click
        if args and not args[0].startswith("-") and args[0] not in self.commands:
            args = ["show", *args]
        return super().parse_args(ctx, args)


app = typer.Typer(cls=_ApplicantOrCommand, no_args_is_help=True, rich_markup_mode="rich",
                  help="Credit standing of applicants (四(二)) and the 信用中国 outbox.\n\n"
                       "Example: [bold]xiezhu credit 370405199001011234[/]")



def credit_path(settings: Settings) -> Path | str:
    """Where the credit view lives: its file in the data directory, or its PostgreSQL schema."""
    return settings.credit_location


def credit_china_dir(settings: Settings) -> Path:
    """Default 信用中国 endpoint of a demo or an offline site: one JSON file per record."""
    return settings.data_dir / "credit-china"


@contextlib.contextmanager
def fresh_view(settings: Settings) -> Iterator[CreditView]:
    """The credit view, caught up with the ledger."""
    if not settings.ledger_exists():
        raise CreditCliError(f"no ledger in {settings.data_dir}; run `xiezhu demo` or start `xiezhu ledger` first",
                             zh=f"{settings.data_dir} 中没有账本；请先运行 `xiezhu demo` 或启动 `xiezhu ledger`")
    ledger = ledger_at(settings)
    try:
        view = open_view(credit_path(settings), view_key=view_key(settings))
        view.follow(ledger)
        yield view
    finally:
        ledger.close()






def _at(text: str | None) -> datetime | None:
    if text is None:
        return None
    try:
        t = datetime.fromisoformat(text)
    except ValueError as e:
        raise CreditCliError(f"--at {text!r}: expected an ISO time such as 2026-10-01T09:00+08:00",
                             zh=f"--at {text!r}：应为 ISO 时间，例如 2026-10-01T09:00+08:00") from e
    return t if t.tzinfo else t.replace(tzinfo=SHANGHAI)



@app.command("show")
def show(
    ctx: typer.Context,
    applicant: Annotated[str, typer.Argument(help="The applicant's ID number or USCC (统一社会信用代码).")],
    at: Annotated[str | None, typer.Option(help="Standing at this time (ISO; Asia/Shanghai if no zone).")] = None,
    as_json: AsJson = False,
) -> None:
    """An applicant's standing, whether they may use the commitment route, their cases and credit history.

    Example: [bold]xiezhu credit 370405199001011234 --at 2026-10-01T09:00[/]
    """
    with fresh_view(_settings(ctx)) as view:
        s = view.summary(applicant, _at(at))
    if as_json:
        _print_json(s)
        return
    from aggregates.registry import Registry
    from xiezhu.cli.screens import (
        CREDIT_CASES_COLUMNS,
        CREDIT_HISTORY_COLUMNS,
        Words,
        credit_case_rows,
        credit_history_rows,
        credit_lines,
    )
    from xiezhu.cli.tables import lang
    from xiezhu.cli.tables import show as show_table

    language = lang()
    words = Words(Registry.load(), language)
    for line in credit_lines(s, language):
        out.print(line, highlight=False)
    if s["cases"]:
        show_table("告知承诺案件" if language == "zh" else "commitment cases", CREDIT_CASES_COLUMNS,
                   credit_case_rows(s["cases"], words), language=language)
    steps = len(s["history"])
    show_table(f"信用记录经过 —— {steps} 步" if language == "zh" else f"credit history — {steps} steps",
               CREDIT_HISTORY_COLUMNS, credit_history_rows(s["history"], words), language=language)


@app.command("outbox")
def outbox(
    ctx: typer.Context,
    status: Annotated[str | None, typer.Option(help="Only pending or delivered records.")] = None,
    as_json: AsJson = False,
) -> None:
    """Credit records for 信用中国 and their delivery state (applicants masked).

    Example: [bold]xiezhu credit outbox --status pending --json[/]
    """
    if status not in (None, "pending", "delivered"):
        raise CreditCliError(f"--status must be pending or delivered, not {status!r}",
                             zh=f"--status 应为 pending（待报送）或 delivered（已报送），而不是 {status!r}")
    with fresh_view(_settings(ctx)) as view:
        rows = view.outbox(status)
    if as_json:
        _print_json(rows)
        return
    from aggregates.registry import Registry
    from xiezhu.cli.screens import OUTBOX_COLUMNS, Words, outbox_rows
    from xiezhu.cli.tables import lang
    from xiezhu.cli.tables import show as show_table

    language = lang()
    show_table(f"报送信用中国的记录 {len(rows)} 条" if language == "zh" else f"信用中国 outbox — {len(rows)} records",
               OUTBOX_COLUMNS, outbox_rows(rows, Words(Registry.load(), language)), language=language)


@app.command("push")
def push(
    ctx: typer.Context,
    url: Annotated[str | None, typer.Option(help="POST each record as JSON to this 信用中国 endpoint.")] = None,
    directory: Annotated[Path | None, typer.Option("--dir", help="Write each record as a JSON file here "
                                                                  "(default: DATA_DIR/credit-china).")] = None,
    timeout: Annotated[float, typer.Option(min=0.1, help="Seconds per HTTP request.")] = 10.0,
    limit: Annotated[int, typer.Option(min=1, help="At most this many records in one run.")] = 1000,
) -> None:
    """Deliver pending records to 信用中国; a failed one stays pending with its error, for the next run.

    Example: [bold]xiezhu credit push --url https://credit.example.gov.cn/api/records[/]
    """
    if url and directory:
        raise CreditCliError("give --url or --dir, not both", zh="--url 和 --dir 只能给出其一")
    settings = _settings(ctx)
    adapter: CreditChina = HttpCreditChina(url, timeout) if url else \
        DirectoryCreditChina(directory or credit_china_dir(settings))
    with fresh_view(settings) as view:
        delivered, failed = deliver_pending(view, adapter, limit=limit, now=datetime.now(UTC))
        left = view.counts().get("pending", 0)
    err.print(in_lang(f"已报送 {delivered} 条，失败 {failed} 条，仍有 {left} 条待报送",
                      f"delivered {delivered}, failed {failed}, {left} still pending"))
    if failed:
        raise CreditCliError(f"{failed} records could not be delivered; they stay pending "
                             "(see `xiezhu credit outbox --status pending`)",
                             zh=f"{failed} 条记录未能报送，仍为待报送（见 `xiezhu credit outbox --status pending`）")


# -- the bureau that made the record: objection (异议) and repair (信用修复) -----------------
# These write to the bureau's own store; its running agent's relay sends them to the ledger,
# and the standing shown by `xiezhu credit APPLICANT` changes once the ledger has them.

Number = Annotated[str, typer.Argument(help="The commitment case number, e.g. C20260012.")]
Bureau = Annotated[str, typer.Option(help="The bureau that made the record (your bureau).")]


def _case(ctx: typer.Context, bureau: str, number: str) -> tuple[Desk, str]:
    """The bureau's desk and the id of its commitment case ``number``."""
    desk = system_of(ctx).desk(bureau, existing=True)
    try:
        return desk, desk.find_commitment(number)
    except DeskError as e:
        raise CreditCliError(str(e), zh=zh_of(e)) from None


def _done(what: str, st: Any, zh: str) -> None:
    typer.echo(in_lang(f"{st.number}：{zh}；信用记录现为{labels.CREDIT_STATUS.get(st.credit, st.credit)}",
                       f"{st.number}: {what}; the record is now {st.credit}"), err=True)


@app.command("object")
def object_(ctx: typer.Context, number: Number, bureau: Bureau,
            grounds: Annotated[str, typer.Option(help="The applicant's grounds (异议理由).")]) -> None:
    """Record the applicant's objection (异议) to a credit record; it is reviewed by the bureau.

    Example: [bold]xiezhu credit object C20260012 --bureau shenpi --grounds "承诺书非本人签署"[/]
    """
    desk, case = _case(ctx, bureau, number)
    _done("objection recorded", desk.raise_objection(case, grounds), "已记录异议")


@app.command("review")
def review(ctx: typer.Context, number: Number, bureau: Bureau,
           outcome: Annotated[str, typer.Option(help="confirm, correct or remove.")],
           reasons: Annotated[str, typer.Option(help="The reasons of the review.")],
           record: Annotated[str, typer.Option(help="The corrected record text (for correct).")] = "") -> None:
    """Review an objection: confirm, correct or remove the record.

    Example: [bold]xiezhu credit review C20260012 --bureau shenpi --outcome remove --reasons "经核实系误录"[/]
    """
    if outcome not in ("confirm", "correct", "remove"):
        raise CreditCliError(f"--outcome must be confirm, correct or remove, not {outcome!r}",
                             zh=f"--outcome 应为 confirm（维持）、correct（更正）或 remove（删除），而不是 {outcome!r}")
    desk, case = _case(ctx, bureau, number)
    _done(f"objection reviewed ({outcome})",
          desk.review_objection(case, cast(ReviewOutcome, outcome), reasons, record=record),
          "已审核异议（" + {"confirm": "维持", "correct": "更正", "remove": "删除"}[outcome] + "）")


@app.command("repair")
def repair(ctx: typer.Context, number: Number, bureau: Bureau,
           evidence: Annotated[str, typer.Option(help="What the applicant put right (整改证明).")]) -> None:
    """Record the applicant's application for credit repair (信用修复), after any ordered rectification.

    Example: [bold]xiezhu credit repair C20260012 --bureau shenpi --evidence "已补交无犯罪记录证明"[/]
    """
    desk, case = _case(ctx, bureau, number)
    _done("repair applied for", desk.apply_repair(case, evidence), "已申请信用修复")


@app.command("approve-repair")
def approve_repair(ctx: typer.Context, number: Number, bureau: Bureau,
                   reasons: Annotated[str, typer.Option(help="Why the repair is approved.")]) -> None:
    """Approve a repair: the applicant's standing is restored from now on.

    Example: [bold]xiezhu credit approve-repair C20260012 --bureau shenpi --reasons "整改到位"[/]
    """
    desk, case = _case(ctx, bureau, number)
    _done("repair approved", desk.approve_repair(case, reasons), "准予信用修复")


@app.command("reject-repair")
def reject_repair(ctx: typer.Context, number: Number, bureau: Bureau,
                  reasons: Annotated[str, typer.Option(help="Why the repair is refused.")]) -> None:
    """Refuse a repair, with reasons.

    Example: [bold]xiezhu credit reject-repair C20260012 --bureau shenpi --reasons "整改材料不全"[/]
    """
    desk, case = _case(ctx, bureau, number)
    _done("repair refused", desk.reject_repair(case, reasons), "不予信用修复")
