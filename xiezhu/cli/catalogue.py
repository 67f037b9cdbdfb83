"""``xiezhu catalogue …``: the lists of 附件8 and 附件9 and their 动态调整, for bureaus and 区司法局."""
from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import msgspec
import typer

from aggregates.registry import Registry
from aggregates.store.catalogue import CatalogueRegistry
from projections.documents import catalogue_io
from schemas import labels
from schemas.catalogue import DISTRICT_GOVERNMENT
from schemas.errors import XiezhuError
from xiezhu.cli.common import AsJson, catalogue_kind, in_lang, out, print_json, resolve_bureau, system_of

app = typer.Typer(no_args_is_help=True, help="The catalogues of 附件8 (matters) and 附件9 (assistance items).")

Kind = Annotated[str, typer.Option("--kind", help="matters (附件8) or assistance (附件9).")]


def _registry(ctx: typer.Context) -> CatalogueRegistry:
    """区司法局's catalogue, to read (changes go through the desks and 区司法局's services)."""
    return system_of(ctx).catalogue


def _out() -> Any:
    return out, print_json


@app.command("show")
def show(ctx: typer.Context, kind: Kind = "assistance",
         version: Annotated[int | None, typer.Option(help="An earlier version (default: the latest).")] = None,
         as_json: AsJson = False) -> None:
    """The published rows of a catalogue, latest or any earlier version.

    Example: [bold]xiezhu catalogue show --kind assistance --version 1[/]
    """
    cat, k = _registry(ctx), catalogue_kind(kind)
    rows = list(cat.version(k, version).rows) if version else cat.current(k)
    out, print_json = _out()
    if as_json:
        print_json([msgspec.to_builtins(r) for r in rows])
        return
    from schemas.catalogue import AssistanceItem
    from xiezhu.cli.screens import Words, catalogue_columns, catalogue_rows
    from xiezhu.cli.tables import lang, show

    versions = cat.versions(k)
    shown = version or (versions[-1].number if versions else 0)
    language = lang()
    title = "附件8 证明事项清单" if k == "matters" else "附件9 行政协助事项清单"
    title += f" — 第 {shown} 版，{len(rows)} 行" if language == "zh" else f" — version {shown}, {len(rows)} rows"
    header = list(catalogue_io.COLUMNS[k])  # the attachment's own columns, 备注 included
    reg = Registry.load()
    codes = [{"承办机构": r.handling_body, **({"协助机构": r.assisting_body} if isinstance(r, AssistanceItem) else {})}
             for r in rows]
    show(title, catalogue_columns(header),
         catalogue_rows(header, catalogue_io.to_table(k, rows, reg)[1:], codes, Words(reg, language)),
         language=language)


@app.command("versions")
def versions(ctx: typer.Context, kind: Kind = "assistance", as_json: AsJson = False) -> None:
    """Every published version: when, by whom, which adjustments, and its filing with 市司法局.

    Example: [bold]xiezhu catalogue versions --kind matters[/]
    """
    cat, k = _registry(ctx), catalogue_kind(kind)
    out, print_json = _out()
    vs = cat.versions(k)
    if as_json:
        print_json([{"version": v.number, "rows": len(v.rows), "adjustments": v.adjustments, "digest": v.digest,
                     "published_by": v.published_by, "published_at": v.published_at, "filed_with": v.filed_with,
                     "filed_at": v.filed_at} for v in vs])
        return
    from schemas import labels
    from xiezhu.cli.screens import when
    from xiezhu.cli.tables import Col, lang, show

    language = lang()
    kind_zh = labels.CATALOGUE_KIND[k] if language == "zh" else k
    show(f"{kind_zh}：{len(vs)} 个版本" if language == "zh" else f"{k}: {len(vs)} versions",
         [Col("version", "版本", "version", ident=True, justify="right"), Col("rows", "行数", "rows", keep=True),
          Col("adjustments", "调整", "adjustments", drop=1), Col("by", "公布机关", "published by", keep=True, drop=3),
          Col("published", "发布时间", "published", keep=True),
          Col("filed", "报市司法局备案", "filed with 市司法局", keep=True, drop=2)],
         [{"version": str(v.number), "rows": str(len(v.rows)), "adjustments": "、".join(v.adjustments),
           "by": ("区政府" if v.published_by == DISTRICT_GOVERNMENT else Registry.load().name(v.published_by))
           if language == "zh" else v.published_by, "published": when(v.published_at),
           "filed": when(v.filed_at) if v.filed_at else ("未备案" if language == "zh" else "not yet")} for v in vs],
         language=language)


@app.command("adjustments")
def adjustments(ctx: typer.Context, as_json: AsJson = False) -> None:
    """Adjustments waiting for review or for publication.

    Example: [bold]xiezhu catalogue adjustments[/]
    """
    pending = _registry(ctx).pending_adjustments()
    out, print_json = _out()
    if as_json:
        print_json([msgspec.to_builtins(a) for a in pending])
        return
    from xiezhu.cli.screens import Words
    from xiezhu.cli.tables import Col, lang, show

    language = lang()
    w = Words(Registry.load(), language)
    status_zh = {"pending": "待审核", "approved": "已批准待发布", "rejected": "已驳回", "published": "已发布"}
    show(f"办理中的调整 {len(pending)} 项" if language == "zh" else f"{len(pending)} adjustments under way",
         [Col("id", "编号", "id", ident=True), Col("by", "申请部门", "by", ident=True, short="by_short"),
          Col("basis", "依据", "basis", drop=1), Col("adds", "新增", "adds", keep=True, drop=2),
          Col("replaces", "修改", "replaces", keep=True, drop=3), Col("removes", "删除", "removes", keep=True, drop=4),
          Col("status", "状态", "status", keep=True)],
         [{"id": a.id, "by": w.bureau(a.applicant), "by_short": w.short(a.applicant), "basis": a.basis,
           "adds": str(len(a.adds)), "replaces": str(len(a.replaces)), "removes": str(len(a.removes)),
           "status": status_zh.get(a.status, a.status) if language == "zh" else a.status} for a in pending],
         language=language)


@app.command("export")
def export(ctx: typer.Context, file: Annotated[Path, typer.Argument(help="A .csv or .xlsx file to write.")],
           kind: Kind = "assistance",
           bureau: Annotated[str | None, typer.Option(
               callback=resolve_bureau, help="Only this bureau's rows (its own sheet): code or name.")] = None,
           filler: Annotated[str, typer.Option(help="填报人 on the XLSX's 部门名称 line.")] = "",
           phone: Annotated[str, typer.Option(help="联系电话 on the XLSX's 部门名称 line.")] = "") -> None:
    """Write a catalogue as 附件8 / 附件9: XLSX in the attachment's own layout (title, 部门名称（公章）,
    填报人, 联系电话, two-row header with 必须实行 / 可选择 tick columns, guidance row), or CSV.

    Example: [bold]xiezhu catalogue export --kind matters --bureau shenpi shenpi-附件8.xlsx[/]
    """
    from aggregates.catalogue import owner_of

    cat, k, reg = _registry(ctx), catalogue_kind(kind), Registry.load()
    rows = [r for r in cat.current(k) if bureau is None or owner_of(r) == bureau]
    catalogue_io.export_rows(k, rows, file, reg, department=reg.name(bureau) if bureau else "区司法局",
                             filler=filler, phone=phone)
    typer.echo(in_lang(f"已将 {len(rows)} 行写入 {file}", f"wrote {len(rows)} rows to {file}"), err=True)


@app.command("apply")
def apply(ctx: typer.Context, file: Annotated[Path, typer.Argument(help="The bureau's filled-in .csv or .xlsx.")],
          bureau: Annotated[str, typer.Option(callback=resolve_bureau,
                                              help="The bureau applying (its rows only): code or name.")],
          basis: Annotated[str, typer.Option(help="The 依据 of the adjustment (一(四)).")],
          kind: Kind = "assistance") -> None:
    """Apply for 动态调整 from a spreadsheet: the differences to the bureau's published rows.

    Example: [bold]xiezhu catalogue apply --kind assistance --bureau shenpi --basis "…" shenpi-附件9.xlsx[/]
    """
    k, reg = catalogue_kind(kind), Registry.load()
    reg[bureau]
    wanted = catalogue_io.import_rows(k, file, reg)
    adj, added, changed, removed = system_of(ctx).desk(bureau).apply_sheet(k, basis, wanted)
    typer.echo(in_lang(f"{adj}：新增 {added} 项、修改 {changed} 项、删除 {removed} 项；待区司法局审核",
                       f"{adj}: {added} added, {changed} changed, {removed} removed; waits for 区司法局"), err=True)


@app.command("review")
def review(ctx: typer.Context, adjustment: Annotated[str, typer.Argument(help="The adjustment id.")],
           approve: Annotated[bool, typer.Option("--approve/--reject", help="The decision.")],
           reasons: Annotated[str, typer.Option(help="Required when rejecting.")] = "") -> None:
    """区司法局 approves or rejects (with reasons) an adjustment.

    Example: [bold]xiezhu catalogue review assistance-0003 --reject --reasons "设定依据不明确"[/]
    """
    a = system_of(ctx).justice().review(adjustment, approve, reasons)
    typer.echo(in_lang(f"{a.id}：{ {'approved': '已批准', 'rejected': '已驳回'}.get(a.status, a.status)}",
                       f"{a.id}: {a.status}"), err=True)


@app.command("publish")
def publish(ctx: typer.Context, kind: Kind = "assistance",
            file_with_city: Annotated[bool, typer.Option("--file/--no-file",
                                                         help="Also record the filing with 市司法局.")] = True) -> None:
    """区司法局 publishes every approved adjustment as the next version (a 证明事项清单's, filed with 市司法局).

    The 证明事项清单's first version is 区政府's to publish (一(三)): xiezhu government publish.

    Example: [bold]xiezhu catalogue publish --kind assistance[/]
    """
    k = catalogue_kind(kind)
    version = system_of(ctx).justice().publish(k, file_with_city=file_with_city)
    filed = file_with_city and k == "matters"
    typer.echo(in_lang(f"{labels.CATALOGUE_KIND[k]}第 {version} 版已公布" + ("并报市司法局备案" if filed else ""),
                       f"{k} version {version} published" + (" and filed with 市司法局" if filed else "")), err=True)


@app.command("memorandum")
def memorandum(ctx: typer.Context,
               item: Annotated[str, typer.Option(help="The on-site assistance item's code.")],
               parties: Annotated[tuple[str, str], typer.Option(help="The requesting and the assisting bureau.")],
               text: Annotated[str, typer.Option(help="What the two bureaus agreed.")],
               signed_on: Annotated[str, typer.Option(help="Date signed, e.g. 2026-09-01.")],
               form: Annotated[str, typer.Option(help="备忘录 or 协议.")] = "备忘录") -> None:
    """第六条: file the memorandum (or 第十一条 agreement) two bureaus signed for on-site assistance.

    Example: [bold]xiezhu catalogue memorandum --item XZ-0010 --parties zhujian yingji
    --text "…" --signed-on 2026-09-01[/]
    """
    from datetime import date

    from schemas.catalogue import Memorandum

    reg = Registry.load()
    for code in parties:
        reg[code]
    try:
        memo = msgspec.convert({"id": f"MOU-{item}-{parties[0]}-{parties[1]}", "parties": list(parties),
                                "item_code": item, "signed_on": date.fromisoformat(signed_on), "text": text,
                                "filed_with": ["sifa", "bianban"], "form": form}, Memorandum)
    except (ValueError, msgspec.ValidationError) as e:
        raise XiezhuError(f"memorandum: {e}", zh=f"备忘录：{e}") from e
    system_of(ctx).justice().file_memorandum(memo)
    typer.echo(in_lang(f"{memo.id} 已报区司法局和区委编办备案", f"{memo.id} filed with 区司法局 and 区委编办"),
               err=True)
