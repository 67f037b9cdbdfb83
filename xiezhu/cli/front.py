"""The front door's commands: ``serve``, ``tokens``, ``records``, ``outbox`` and ``docs asyncapi``.

``serve`` runs the HTTP API for the bureaus' own systems (:mod:`xiezhu.http.app`);
``tokens`` makes and revokes its per-bureau tokens; ``records`` loads the bureau's own
records its verifiers answer from; ``outbox`` shows what a store committed that JetStream
has not acknowledged yet.
"""
from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from aggregates.registry import Registry, zh_name
from schemas.errors import XiezhuError
from schemas.privacy import mask_id, mask_name
from xiezhu.cli.common import AsJson, err, in_lang, out, print_json
from xiezhu.cli.common import settings_of as _settings
from xiezhu.settings import Settings

__all__ = ["docs_app", "outbox", "records_app", "serve", "tokens_app"]

BureauOpt = Annotated[str, typer.Option("--bureau", help="The bureau's code, e.g. gongan.")]

tokens_app = typer.Typer(no_args_is_help=True, rich_markup_mode="rich",
                         help="API tokens for `xiezhu serve`, one or more per bureau, stored hashed.")
records_app = typer.Typer(no_args_is_help=True, rich_markup_mode="rich",
                          help="A bureau's own records (户籍, 营业执照, 社保) that its verifiers answer from.")
docs_app = typer.Typer(no_args_is_help=True, rich_markup_mode="rich", help="Generated documentation.")


class FrontError(XiezhuError):
    """A front-door command cannot run as given."""

    code = "cli.front"


def _bureau(code: str) -> str:
    return Registry.load()[code].code


# -- tokens ---------------------------------------------------------------------------------


@tokens_app.command("create")
def tokens_create(
    ctx: typer.Context,
    bureau: BureauOpt,
    label: Annotated[str, typer.Option(help="What the token is for; also the default operator of its actions.")]
    = "",
) -> None:
    """Make a token for a bureau's system; it is printed once, keep it secret.

    A token acts only as its bureau; 区司法局's (sifa) reads every bureau and changes nothing.

    Example: [bold]xiezhu tokens create --bureau shenpi --label 审批系统[/]
    """
    from xiezhu.http.tokens import TokenStore

    code = _bureau(bureau)
    store = TokenStore(_settings(ctx).tokens_path)
    try:
        token, text = store.create(code, label)
    finally:
        store.close()
    err.print(in_lang(f"{zh_name(code)}的令牌 {token.id}" + (f"（{label}）" if label else "")
                      + "——仅显示这一次：以 `Authorization: Bearer …` 发送",
                      f"token {token.id} for {code}" + (f" ({label})" if label else "")
                      + " — shown once: send it as `Authorization: Bearer …`"))
    print(text)


@tokens_app.command("list")
def tokens_list(
    ctx: typer.Context,
    bureau: Annotated[str | None, typer.Option("--bureau", help="Only this bureau's tokens.")] = None,
    as_json: AsJson = False,
) -> None:
    """The tokens (never their secrets): bureau, label, when made, last used, revoked.

    Example: [bold]xiezhu tokens list --bureau shenpi[/]
    """
    from xiezhu.http.tokens import TokenStore

    code = _bureau(bureau) if bureau else None
    store = TokenStore(_settings(ctx).tokens_path)
    try:
        tokens = store.list(code)
    finally:
        store.close()
    if as_json:
        print_json([{"id": t.id, "bureau": t.bureau, "label": t.label, "created_at": t.created_at,
                     "last_used_at": t.last_used_at, "revoked_at": t.revoked_at} for t in tokens])
        return
    from xiezhu.cli.screens import TOKENS_COLUMNS, Words, token_rows
    from xiezhu.cli.tables import lang, show

    language = lang()
    show(f"API 令牌 {len(tokens)} 个" if language == "zh" else f"{len(tokens)} API tokens", TOKENS_COLUMNS,
         token_rows(tokens, Words(Registry.load(), language)), language=language)


@tokens_app.command("revoke")
def tokens_revoke(
    ctx: typer.Context,
    token_id: Annotated[str, typer.Argument(help="The token's id (from `xiezhu tokens list`).")],
    bureau: BureauOpt,
) -> None:
    """Revoke a bureau's token: it stops working at once.

    Example: [bold]xiezhu tokens revoke 3f2a9c01b7d4 --bureau shenpi[/]
    """
    from xiezhu.http.tokens import TokenStore

    code = _bureau(bureau)
    store = TokenStore(_settings(ctx).tokens_path)
    try:
        store.revoke(token_id, code)
    finally:
        store.close()
    err.print(in_lang(f"[green]已吊销[/]{zh_name(code)}的令牌 {token_id}",
                      f"[green]revoked[/] token {token_id} of {code}"))


# -- records ----------------------------------------------------------------------------------


@records_app.command("load")
def records_load(
    ctx: typer.Context,
    file: Annotated[Path, typer.Argument(help="A .csv (UTF-8) or .xlsx file with a header row.")],
    bureau: BureauOpt,
    kind: Annotated[str | None, typer.Option(help="The record kind, where a bureau has several.")] = None,
    replace: Annotated[bool, typer.Option("--replace", help="Drop the records not in this file.")] = False,
) -> None:
    """Load a bureau's records into the table its verifiers read; every row is checked first.

    Layouts (English or Chinese headers; * required):
    户籍 (gongan): id_number/公民身份号码*, name/姓名*, residence/户籍地址*, criminal_record/有无犯罪记录 (0/1, 无/有).
    营业执照 (shichang): id_number/统一社会信用代码*, name/名称*, status/登记状态*, scope/经营范围*, licence_no.
    社保 (renshe): id_number/公民身份号码*, months/累计缴费月数*, employer/参保单位, name/姓名.

    Example: [bold]xiezhu records load --bureau gongan examples/gongan-residents.csv[/]
    """
    from agencies import records

    code = _bureau(bureau)
    settings = _settings(ctx)
    layout = records.layout_for(code, kind)
    header, rows = records.read_rows(file)
    parsed = records.parse(layout, header, rows, source=file.name)
    n = records.load(settings.bureau_data_path(code), layout, parsed, replace_all=replace)
    err.print(in_lang(f"[green]已导入[/] {n} 条{layout.kind}记录到{zh_name(code)}的 {layout.table}",
                      f"[green]loaded[/] {n} {layout.kind} records into {code}'s {layout.table}"))


@records_app.command("show")
def records_show(
    ctx: typer.Context,
    bureau: BureauOpt,
    kind: Annotated[str | None, typer.Option(help="The record kind, where a bureau has several.")] = None,
    id_number: Annotated[str | None, typer.Option("--id", help="Only the record of this number.")] = None,
    limit: Annotated[int, typer.Option(min=1, max=10000, help="At most this many rows.")] = 20,
    as_json: AsJson = False,
) -> None:
    """How many records a bureau's verifiers can answer from, and the first rows (names and numbers masked).

    Example: [bold]xiezhu records show --bureau gongan[/]
    """
    from agencies import records

    code = _bureau(bureau)
    layout = records.layout_for(code, kind)
    count, rows = records.show(_settings(ctx).bureau_data_path(code), layout, id_number=id_number, limit=limit)
    masked = [_masked(r) for r in rows]
    if as_json:
        print_json({"bureau": code, "kind": layout.kind, "table": layout.table, "count": count, "rows": masked})
        return
    from xiezhu.cli.tables import lang

    if lang() == "zh":
        t = Table(title=f"{Registry.load()[code].name} {layout.kind}（{layout.table}）：{count} 条记录")
        for c in layout.columns:
            t.add_column(c.label, overflow="fold")
    else:
        t = Table(title=f"{code} {layout.kind} ({layout.table}): {count} records")
        for c in layout.columns:
            t.add_column(f"{c.key}\n{c.label}", overflow="fold")
    for r in masked:
        t.add_row(*(str(r.get(c.key, "")) for c in layout.columns))
    out.print(t)


def _masked(row: dict[str, Any]) -> dict[str, Any]:
    shown = dict(row)
    shown["id_number"] = mask_id(str(row.get("id_number", "")))
    if row.get("name") and len(str(row["id_number"])) == 18 and str(row["id_number"])[:17].isdigit():
        shown["name"] = mask_name(str(row["name"]))  # a person; an organisation's name is public
    return shown


# -- outbox ---------------------------------------------------------------------------------------


def outbox_rows(settings: Settings, code: str) -> list[dict[str, Any]]:
    """What ``code``'s store committed to send that JetStream has not acknowledged (the relay's position)."""
    from aggregates.clock import SystemClock
    from broker.relay import Positions
    from broker.signing import decode_checked
    from xiezhu.bootstrap import System

    if not settings.store_exists(code):
        return []
    position = 0
    if settings.relay_path(code).exists():
        positions = Positions(settings.relay_path(code))
        try:
            position = positions.get(code)
        finally:
            positions.close()
    desk = System(settings, Registry.load(), SystemClock()).desk(code)
    try:
        rows = []
        for nid, signed in desk.unsent(position):
            env = decode_checked(signed.body)
            rows.append({"bureau": code, "position": nid, "id": env.id, "to": env.recipient,
                         "number": env.number, "type": getattr(env, "type", ""), "time": env.time.isoformat()})
        return rows
    finally:
        desk.close()


def outbox(
    ctx: typer.Context,
    bureau: Annotated[str | None, typer.Option("--bureau", help="Only this bureau (default: every bureau here).")]
    = None,
    as_json: AsJson = False,
) -> None:
    """What is committed but not yet acknowledged by JetStream: it goes out when the bureau's agent runs.

    Also the notices a bureau's webhook has not acknowledged yet (`xiezhu serve` retries them).

    Example: [bold]xiezhu outbox --bureau ziran[/]
    """
    from xiezhu.running import agent_running

    settings = _settings(ctx)
    reg = Registry.load()
    codes = [_bureau(bureau)] if bureau else [b.code for b in reg if settings.store_exists(b.code)]
    rows = [r for code in codes for r in outbox_rows(settings, code)]
    running = {code: agent_running(settings.bureau_dir(code)) for code in codes}
    hooks = {code: hook for code in codes if (hook := webhook_state(settings, code)) is not None}
    if as_json:
        print_json({"waiting": rows, "agents_running": running, "webhooks": hooks})
        return
    from xiezhu.cli.screens import WAITING_COLUMNS, Words, waiting_rows
    from xiezhu.cli.tables import lang, show

    language = lang()
    show(f"已提交、待 JetStream 确认 {len(rows)} 条" if language == "zh" else
         f"{len(rows)} committed, not yet acknowledged by JetStream", WAITING_COLUMNS,
         waiting_rows(rows, Words(reg, language)), language=language)
    for code in codes:
        if any(r["bureau"] == code for r in rows) and not running[code]:
            err.print(in_lang(f"{zh_name(code)}：本机没有运行其代理程序；请用 `xiezhu agent --bureau {code}` 启动",
                              f"{code}: no agent runs here; start it with `xiezhu agent --bureau {code}`"))
    for code, hook in hooks.items():
        if hook["pending"]:
            err.print(in_lang(f"{zh_name(code)}：有 {hook['pending']} 条通知尚未送达其 webhook {hook['url']}"
                              + (f"（上次错误：{hook['last_error']}；下次重试 {hook['next_attempt_at']}）"
                                 if hook["last_error"] else ""),
                              f"{code}: {hook['pending']} notice(s) not yet delivered to its webhook {hook['url']}"
                              + (f" (last error: {hook['last_error']}; next try {hook['next_attempt_at']})"
                                 if hook["last_error"] else "")))


def webhook_state(settings: Settings, code: str) -> dict[str, Any] | None:
    """The bureau's webhook and how many notices it has not acknowledged yet (None: no webhook)."""
    from xiezhu.http.feed import Feed

    if not settings.feed_path(code).exists():
        return None
    feed = Feed(code, settings.feed_path(code))
    try:
        hook = feed.webhook()
        return None if hook is None else hook.public() | {"pending": feed.pending()}
    finally:
        feed.close()


# -- serve ---------------------------------------------------------------------------------------


def serve(
    ctx: typer.Context,
    bureau: Annotated[list[str], typer.Option("--bureau", help="Serve this bureau (repeatable).")],
    host: Annotated[str, typer.Option(help="Listen address (loopback unless you mean it).")] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=1, max=65535, help="Listen port.")] = 8080,
) -> None:
    """Run the HTTP API for the bureaus' own systems: requests, inbox, answers, notices by webhook and SSE.

    Every call needs a token (`xiezhu tokens create --bureau CODE`); the API is described at
    /openapi.json and shown at /docs.  /healthz, /readyz and Prometheus /metrics need none.

    Example: [bold]xiezhu serve --bureau shenpi --bureau gongan --port 8080[/]
    """
    import uvicorn

    from aggregates.clock import SystemClock
    from xiezhu.http.app import FrontDoor, create_app
    from xiezhu.logs import configure

    configure()

    settings = _settings(ctx)
    reg = Registry.load()
    codes = [reg[b].code for b in bureau]
    door = FrontDoor(settings, reg, codes, SystemClock())
    err.print(in_lang(f"xiezhu serve：{'、'.join(reg.name(c) for c in codes)}，"
                      f"地址 http://{host}:{port}（文档见 /docs）",
                      f"xiezhu serve: {', '.join(codes)} at http://{host}:{port} (docs at /docs)"))
    if host not in ("127.0.0.1", "localhost", "::1"):
        err.print(in_lang(f"[yellow]警告：[/]监听 {host} 而非本机回环地址：前面没有 TLS 代理时令牌以明文传输",
                          f"[yellow]warning:[/] listening on {host}, not loopback: tokens travel in the clear unless a "
                          f"TLS proxy stands in front"))
    try:
        uvicorn.run(create_app(door), host=host, port=port, log_level="warning", timeout_graceful_shutdown=3)
    finally:
        door.close()


# -- docs -----------------------------------------------------------------------------------------


@docs_app.command("asyncapi")
def docs_asyncapi(
    out_file: Annotated[Path | None, typer.Option("--out", help="Write here (default: stdout).")] = None,
    yaml_format: Annotated[bool, typer.Option("--yaml", help="YAML instead of JSON.")] = False,
) -> None:
    """The AsyncAPI document of the NATS side (subjects, the envelope, every event type), from the code.

    Example: [bold]xiezhu docs asyncapi --out docs/asyncapi.json[/]
    """
    from xiezhu.asyncapi import asyncapi_document

    text = asyncapi_document(Registry.load(), yaml_format=yaml_format)
    if out_file is None:
        print(text)
        return
    out_file.parent.mkdir(parents=True, exist_ok=True)
    out_file.write_text(text + "\n", encoding="utf-8")
    err.print(in_lang(f"已写入 {out_file}", f"wrote {out_file}"))
