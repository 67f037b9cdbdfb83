"""``xiezhu sla …`` and ``xiezhu calendar …``: working-day deadlines, SLA states and statistics.

Which "now" open requests are judged at: ``--now`` if given, else the system clock —
except in a directory made by ``xiezhu demo``.  The demo runs on a simulated clock
(September 2026), so there the default is the time of the last ledger entry, the end of
the demo's clock; judged by the system clock every open request of a demo would simply be
overdue.  The table's title says which instant was used.
"""
from __future__ import annotations

import contextlib
from collections.abc import Iterator
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Annotated, Any

import typer

from aggregates.calendar_store import CalendarStore
from aggregates.registry import Registry
from aggregates.workdays import SHANGHAI, CalendarError, WorkingCalendar
from broker.ledger.store import Ledger
from projections.sla import STATES, STATUSES, SlaError, SlaView
from schemas.errors import XiezhuError
from xiezhu.bootstrap import existing_catalogue
from xiezhu.cli.common import AsJson, bureau_code, err, in_lang, ledger_at, out, parse_instant
from xiezhu.cli.common import print_json as _print_json
from xiezhu.cli.common import settings_of as _settings
from xiezhu.settings import Settings

__all__ = ["calendar_app", "open_sla", "print_table", "resolve_now", "sla_app", "sla_table"]

# Its help is the callback's docstring (a Typer-level help= would hide the example).
sla_app = typer.Typer(invoke_without_command=True, rich_markup_mode="rich")
calendar_app = typer.Typer(no_args_is_help=True, rich_markup_mode="rich",
                           help="The working-day calendar: load a State Council schedule, compute a deadline.")


Now = Annotated[str | None, typer.Option(
    "--now", help="Judge open requests at this ISO time (naive: Asia/Shanghai). "
                  "Default: the system clock; for a demo's data, the demo's last ledger time.")]


CsvFile = Annotated[Path | None, typer.Option(
    "--csv", help="Write the table as CSV (UTF-8 with BOM, for Excel) to this file; - for stdout.")]
XlsxFile = Annotated[Path | None, typer.Option("--xlsx", help="Write the table as an XLSX workbook to this file.")]


def _names() -> Any:
    reg = Registry.load()
    return lambda code: reg.name(code) if code in reg else code


def _export(csv_file: Path | None, xlsx_file: Path | None, title: str, columns: Any, records: list[Any],
            sheet: str) -> None:
    """Write the table to the files asked for (``--csv -``: to stdout)."""
    import sys

    from projections.documents import sheets

    if csv_file is not None:
        data = sheets.to_csv(columns, records)
        if str(csv_file) == "-":
            sys.stdout.buffer.write(data)
            sys.stdout.flush()
        else:
            csv_file.write_bytes(data)
            err.print(in_lang(f"已将 {len(records)} 行写入 {csv_file}", f"wrote {len(records)} rows to {csv_file}"))
    if xlsx_file is not None:
        xlsx_file.write_bytes(sheets.to_xlsx(title, columns, records, sheet=sheet))
        err.print(in_lang(f"已将 {len(records)} 行写入 {xlsx_file}", f"wrote {len(records)} rows to {xlsx_file}"))


def _day(text: str | None, option: str) -> date | None:
    if text is None:
        return None
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise SlaError(f"{option} {text!r} is not an ISO date, e.g. 2026-09-01",
                       zh=f"{option} {text!r} 不是 ISO 日期，例如 2026-09-01", value=text) from None


@contextlib.contextmanager
def open_sla(settings: Settings) -> Iterator[tuple[SlaView, Ledger]]:
    """The SLA view, caught up with the ledger, using the loaded calendar schedules."""
    if not settings.ledger_exists():
        raise XiezhuError(f"no ledger in {settings.data_dir}; run `xiezhu demo` or start `xiezhu ledger` first",
                          zh=f"{settings.data_dir} 中没有账本；请先运行 `xiezhu demo` 或启动 `xiezhu ledger`")
    ledger = ledger_at(settings)
    try:
        view = SlaView(settings.sla_location, CalendarStore(settings.calendar_dir),
                       catalogue=existing_catalogue(settings))
        try:
            if view.layout_reset:
                err.print(in_lang("时限视图的表结构已变更：正在从账本重建",
                                  "the SLA view's table layout changed: rebuilding it from the ledger"))
            view.follow(ledger)
            yield view, ledger
        finally:
            view.close()
    finally:
        ledger.close()


def resolve_now(settings: Settings, ledger: Ledger, now: str | None) -> tuple[datetime, str]:
    """The instant to judge at, and how it was chosen (see the module docstring)."""
    if now is not None:
        return _instant(now, "--now"), "--now"
    if settings.demo_marker.exists() and ledger.head[0]:
        last = next(ledger.entries(ledger.head[0] - 1, 1))
        return max(datetime.fromisoformat(last.event_time), datetime.fromisoformat(last.arrived_at)), \
            "the demo's simulated clock"
    return datetime.now(UTC), "the system clock"


def _t(iso: str | None) -> str:
    if not iso:
        return ""
    return datetime.fromisoformat(iso).astimezone(SHANGHAI).strftime("%m-%d %H:%M")


# -- xiezhu sla ------------------------------------------------------------------------


@sla_app.callback()
def sla(
    ctx: typer.Context,
    bureau: Annotated[str | None, typer.Option(help="Only requests this bureau sent or received.")] = None,
    state: Annotated[str | None, typer.Option(
        help="Only this SLA state: " + ", ".join(STATES) + ". A status (requested, received, replied, "
             "declined) is accepted too, as before.")] = None,
    status: Annotated[str | None, typer.Option(help="Only this status: " + ", ".join(STATUSES) + ".")] = None,
    now: Now = None,
    as_json: AsJson = False,
    csv_file: CsvFile = None,
    xlsx_file: XlsxFile = None,
) -> None:
    """Every assistance request with its arrival, working-day deadline, answer and SLA state.

    States: open requests are in-transit, on-time, due-soon (due at 24:00 of the next working day),
    due-today or overdue at --now; closed ones are answered-on-time, answered-late, declined-on-time,
    declined-late (after the 2-working-day limit) or withdrawn. A deadline marked * is provisional
    (its year's holidays are not known yet: see [bold]xiezhu calendar load[/]).

    Example: [bold]xiezhu sla --bureau gongan --state overdue --now 2026-09-29T17:00+08:00[/]
    """
    if ctx.invoked_subcommand is not None:
        return
    settings = _settings(ctx)
    bureau = bureau_code(bureau)
    if state in STATUSES and state not in STATES:  # the earlier --state meant the status
        if status not in (None, state):
            raise SlaError(f"--state {state} and --status {status} contradict each other",
                           zh=f"--state {state} 与 --status {status} 相互矛盾")
        state, status = None, state
    with open_sla(settings) as (view, ledger):
        at, how = resolve_now(settings, ledger, now)
        rows = view.rows(bureau=bureau, status=status, state=state, now=at)
    if as_json:
        _print_json({f"{r['requester']}/{r['number']}": r for r in rows})
        return
    if csv_file or xlsx_file:
        from projections.documents import sheets

        title = f"行政协助时限情况（截至{at.astimezone(SHANGHAI):%Y-%m-%d %H:%M}）"
        _export(csv_file, xlsx_file, title, sheets.SLA_COLUMNS, sheets.sla_records(rows, _names()),
                "行政协助时限")
        return
    print_table(rows, at, how)


def print_table(rows: list[dict[str, Any]], at: datetime, how: str, limit: int | None = None) -> None:
    """The SLA table (the demo prints its first rows)."""
    from xiezhu.cli.screens import SLA_COLUMNS, Words, sla_rows
    from xiezhu.cli.tables import lang, show

    language = lang()
    when = at.astimezone(SHANGHAI).strftime("%Y-%m-%d %H:%M")
    if language == "zh":
        shown = f"（前 {limit} 件）" if limit and len(rows) > limit else ""
        how_zh = {"--now": "--now", "the system clock": "系统时钟"}.get(how, "演示的模拟时钟")
        title = f"行政协助时限 — {len(rows)} 件{shown}，截至 {when}（{how_zh}）"
        note = "* 暂定：该年节假日安排尚未载入，按周一至周五计算（[bold]xiezhu calendar load FILE[/]）"
    else:
        shown = f" (first {limit})" if limit and len(rows) > limit else ""
        title = f"SLA view — {len(rows)} requests{shown}, as of {when} ({how})"
        note = ("* provisional: counted Monday–Friday until that year's schedule is loaded "
                "([bold]xiezhu calendar load FILE[/])")
    show(title, SLA_COLUMNS, sla_rows(rows[:limit], Words(Registry.load(), language)), language=language,
         footer=note if any(r["provisional"] for r in rows[:limit]) else "")


def sla_table(settings: Settings, limit: int | None = None) -> None:
    """Print the SLA table of a data directory, judged at the default now (for ``xiezhu demo``)."""
    with open_sla(settings) as (view, ledger):
        at, how = resolve_now(settings, ledger, None)
        rows = view.rows(now=at)
    print_table(rows, at, how, limit)


@sla_app.command("stats")
def stats(
    ctx: typer.Context,
    start: Annotated[str | None, typer.Option("--from", help="First day of the period (ISO date).")] = None,
    end: Annotated[str | None, typer.Option("--to", help="Last day of the period (ISO date, included).")] = None,
    now: Now = None,
    as_json: AsJson = False,
    csv_file: CsvFile = None,
    xlsx_file: XlsxFile = None,
) -> None:
    """Per bureau over a period: requests sent and received, on-time rate, working days to answer, breaches.

    A request belongs to the period by its arrival day (Asia/Shanghai). on-time rate and decline rate are
    shares of the answered requests; p90 is the nearest-rank 90th percentile; breaches are requests
    answered late, declined late, or still open and overdue at --now.

    Example: [bold]xiezhu sla stats --from 2026-09-01 --to 2026-09-30 --json[/]
    """
    stats_table(_settings(ctx), _day(start, "--from"), _day(end, "--to"), now, as_json=as_json,
                csv_file=csv_file, xlsx_file=xlsx_file)


def stats_table(settings: Settings, first: date | None = None, last: date | None = None, now: str | None = None,
                *, as_json: bool = False, csv_file: Path | None = None, xlsx_file: Path | None = None) -> None:
    """Print the per-bureau statistics of a data directory (also for ``xiezhu demo``)."""
    with open_sla(settings) as (view, ledger):
        at, how = resolve_now(settings, ledger, now)
        rows = view.stats(start=first, end=last, now=at)
    if as_json:
        _print_json(rows)
        return
    if csv_file or xlsx_file:
        from projections.documents import sheets

        title = f"行政协助时限统计（{first or '…'}至{last or '…'}，截至{at.astimezone(SHANGHAI):%Y-%m-%d %H:%M}）"
        _export(csv_file, xlsx_file, title, sheets.STATS_COLUMNS, sheets.stats_records(rows, _names()),
                "按部门统计")
        return
    from xiezhu.cli.screens import STATS_COLUMNS, Words, stats_rows
    from xiezhu.cli.tables import lang, show

    language = lang()
    period = f"{first or '…'} – {last or '…'}"
    when = at.astimezone(SHANGHAI).strftime("%Y-%m-%d %H:%M")
    period_zh = f"{first}至{last or '今'}" if first else (f"截至{last}" if last else "全部")
    title = (f"行政协助按部门统计（送达：{period_zh}），截至 {when}" if language == "zh"
             else f"SLA by bureau, arrivals {period}, as of {when} ({how})")
    show(title, STATS_COLUMNS, stats_rows(rows, Words(Registry.load(), language)), language=language)


# -- xiezhu calendar -------------------------------------------------------------------


@calendar_app.command("load")
def calendar_load(
    ctx: typer.Context,
    file: Annotated[Path, typer.Argument(help="A TOML file: year, holidays, workdays (make-up days), source.")],
) -> None:
    """Load a year's State Council holiday schedule; deadlines in that year stop being provisional.

    The file is checked first (a bad file changes nothing), then kept as calendar/<year>.toml in the data
    directory; loading the same year again replaces it. The SLA view recomputes its deadlines at its next read.

    Example: [bold]xiezhu calendar load 2027.toml[/], with 2027.toml like
    year = 2027 / holidays = [2027-01-01, …] / workdays = [2027-02-20, …] / source = "国办发明电〔2026〕…号"
    """
    store = CalendarStore(_settings(ctx).calendar_dir)
    before = {s.year for s in store.schedules()}
    schedule = store.load_file(file)
    verb = "replaced" if schedule.year in before else "loaded"
    out.print(in_lang(f"已{'替换' if schedule.year in before else '载入'} {schedule.year} 年："
                      f"节假日 {len(schedule.holidays)} 天，调休工作日 {len(schedule.workdays)} 天"
                      + (f"（{schedule.source}）" if schedule.source else "") + f" → {store.path(schedule.year)}",
                      f"{verb} {schedule.year}: {len(schedule.holidays)} holidays, "
                      f"{len(schedule.workdays)} make-up working days"
                      + (f" ({schedule.source})" if schedule.source else "")
                      + f" → {store.path(schedule.year)}"), highlight=False)
    if WorkingCalendar().covered(schedule.year):
        out.print(in_lang(f"它取代随程序附带的 {schedule.year} 年日历",
                          f"it overrides the packaged calendar of {schedule.year}"),
                  highlight=False)


#: ``calendar due``'s lines, one table per language.
_DUE_WORDS = {
    "zh": {"head": "自 {arrival}（北京时间）起 {n} 个工作日", "last": "  最后一个工作日  {last}（星期{weekday}）",
           "ends": "  期限届满        {ends}（{last} 24 时）", "provisional": "  暂定            {provisional}",
           "yes": "是：按周一至周五计算，请载入该年的节假日安排", "no": "否", "weekdays": "一 二 三 四 五 六 日"},
    "en": {"head": "{n} working days from {arrival} (Asia/Shanghai)", "last": "  last working day  {last} ({weekday})",
           "ends": "  deadline ends     {ends}  (24:00 of {last})", "provisional": "  provisional       {provisional}",
           "yes": "yes: counted Monday–Friday, load that year's schedule", "no": "no",
           "weekdays": "Monday Tuesday Wednesday Thursday Friday Saturday Sunday"},
}


@calendar_app.command("due")
def calendar_due(
    ctx: typer.Context,
    start: Annotated[str, typer.Option("--from", help="The arrival, ISO date-time (naive: Asia/Shanghai).")],
    working_days: Annotated[int, typer.Option("--working-days", help="How many working days.")],
    as_json: AsJson = False,
) -> None:
    """When a deadline of N working days from an arrival ends: 24:00 of its last working day.

    The arrival day is not counted. Uses the packaged calendar and every loaded schedule; a result in a year
    neither covers is counted Monday–Friday and marked provisional.

    Example: [bold]xiezhu calendar due --from 2026-09-30T10:00+08:00 --working-days 3[/]
    """
    try:
        arrival = datetime.fromisoformat(start)
    except ValueError:
        raise CalendarError(f"--from {start!r} is not an ISO date-time, e.g. 2026-09-30T10:00+08:00",
                            zh=f"--from {start!r} 不是 ISO 日期时间，例如 2026-09-30T10:00+08:00",
                            value=start) from None
    if arrival.utcoffset() is None:
        arrival = arrival.replace(tzinfo=SHANGHAI)
    deadline = CalendarStore(_settings(ctx).calendar_dir).calendar().add_working_days(arrival, working_days)
    ends = deadline.ends_at.astimezone(SHANGHAI)
    if as_json:
        _print_json({"from": arrival.isoformat(), "working_days": working_days,
                     "last_working_day": deadline.last_day.isoformat(), "ends_at": ends.isoformat(),
                     "provisional": deadline.provisional})
        return
    from xiezhu.cli.tables import lang

    w = _DUE_WORDS[lang()]
    last = deadline.last_day
    for line in ("head", "last", "ends", "provisional"):
        out.print(w[line].format(arrival=f"{arrival.astimezone(SHANGHAI):%Y-%m-%d %H:%M}", n=working_days,
                                 last=last.isoformat(), ends=ends.isoformat(),
                                 weekday=w["weekdays"].split()[last.weekday()],
                                 provisional=w["yes" if deadline.provisional else "no"]), highlight=False)


def _instant(text: str, option: str) -> datetime:
    """An ISO date or date-time; a naive one is read in Asia/Shanghai."""
    return parse_instant(text, option, SlaError)
