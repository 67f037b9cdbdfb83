"""``xiezhu report``: 区司法局's report to 区政府 for a period, as JSON, XLSX (with charts) or PDF."""
from __future__ import annotations

from datetime import date
from pathlib import Path
from typing import Annotated, Any

import msgspec
import typer

from aggregates.commitment import CommitmentState
from aggregates.registry import Registry
from schemas.errors import XiezhuError
from xiezhu.cli.common import in_lang, ledger_at, view_key
from xiezhu.cli.common import print_json as _print_json
from xiezhu.cli.common import settings_of as _settings

FORMATS = ("json", "xlsx", "pdf")


def _day(text: str, option: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise XiezhuError(f"{option} {text!r} is not an ISO date, e.g. 2026-09-01",
                          zh=f"{option} {text!r} 不是 ISO 日期，例如 2026-09-01") from None


def _decline_reasons(ledger: Any, case_ids: list[str]) -> dict[str, str]:
    """The reasons of each declined request, from its signed decline in the ledger."""
    from projections.history import history
    from schemas.assistance import AssistanceDeclined

    reasons: dict[str, str] = {}
    for case_id in case_ids:
        for line in history(ledger, case_id, disputes=False).lines:
            if line.envelope is not None and isinstance(line.envelope.payload, AssistanceDeclined):
                reasons[case_id] = line.envelope.payload.reasons
    return reasons


def report(
    ctx: typer.Context,
    start: Annotated[str, typer.Option("--from", help="First day of the period (ISO date).")],
    end: Annotated[str, typer.Option("--to", help="Last day of the period (ISO date, included).")],
    fmt: Annotated[str, typer.Option("--format", help="json (to stdout), xlsx or pdf.")] = "json",
    out_file: Annotated[Path | None, typer.Option(
        "--out", help="The file to write (default: 告知承诺制工作情况统计-FROM-TO.xlsx|pdf here).")] = None,
    now: Annotated[str | None, typer.Option("--now", help="Judge open requests at this ISO time.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Same as --format json.")] = False,
) -> None:
    """区司法局's report for a period: commitment cases per bureau and matter, assistance per bureau,
    breaches per week, declines with their reasons, licences not returned; XLSX and PDF with charts.

    Example: [bold]xiezhu report --from 2026-09-01 --to 2026-09-30 --format xlsx[/]
    """
    from projections.commitments import CommitmentView
    from projections.documents.report import build_report, to_pdf, to_xlsx
    from xiezhu.cli.sla import open_sla, resolve_now

    fmt = "json" if as_json else fmt
    if fmt not in FORMATS:
        raise XiezhuError(f"--format must be one of {', '.join(FORMATS)}, not {fmt!r}",
                          zh=f"--format 应为 {'、'.join(FORMATS)} 之一，而不是 {fmt!r}")
    first, last = _day(start, "--from"), _day(end, "--to")
    if first > last:
        raise XiezhuError(f"the period starts {first} after it ends {last}",
                          zh=f"统计期间的开始日 {first} 晚于结束日 {last}")
    settings = _settings(ctx)
    reg = Registry.load()
    with open_sla(settings) as (view, ledger):
        at, _how = resolve_now(settings, ledger, now)
        rows = view.rows(now=at)
        stats = view.stats(start=first, end=last, now=at)
        reasons = _decline_reasons(ledger, [r["case_id"] for r in rows if r["status"] == "declined"])
    ledger = ledger_at(settings)
    try:
        cview = CommitmentView(settings.commitments_location, view_key=view_key(settings))
        cview.follow(ledger)
        cases = [msgspec.json.decode(r["state"], type=CommitmentState) for r in cview.plain_rows()]
    finally:
        ledger.close()
    rep = build_report(start=first, end=last, judged_at=at, sla_rows=rows, sla_stats=stats, cases=cases,
                       names=lambda code: reg.name(code) if code in reg else code, decline_reasons=reasons)
    if fmt == "json":
        _print_json(rep.as_json())
        return
    path = out_file or Path(f"告知承诺制工作情况统计-{first.isoformat()}-{last.isoformat()}.{fmt}")
    path.write_bytes(to_xlsx(rep) if fmt == "xlsx" else to_pdf(rep))
    typer.echo(in_lang(f"已写入 {path}", f"wrote {path}"), err=True)
