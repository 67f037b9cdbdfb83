"""The ``xiezhu`` command line: thin commands over the library, one clear line on error."""
from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sqlite3
import sys
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any, TypeVar

import msgspec
import nats.errors
import typer
from rich.console import Console
from rich.table import Table

from agencies.trust.keys import KeyStore
from aggregates.calendar_store import CalendarStore
from aggregates.clock import SystemClock
from aggregates.registry import JUSTICE, Registry
from aggregates.store import SHANGHAI
from projections.commitments import CommitmentView
from projections.credit import CreditView
from projections.sla import SlaView
from schemas.assistance import VERDICT_ZH, ItemResult
from schemas.errors import XiezhuError
from schemas.privacy import mask_id, mask_name
from xiezhu.bootstrap import existing_catalogue
from xiezhu.cli_alerts import app as alerts_app
from xiezhu.cli_catalogue import app as catalogue_app
from xiezhu.cli_clerk import case_app, forward, onsite, request, said, withdraw
from xiezhu.cli_common import (
    Operator,
    Reason,
    Reveal,
    bureau_code,
    ledger_at,
    operator_name,
    resolve_bureau,
    system_of,
    view_key,
)
from xiezhu.cli_common import print_json as _print_json
from xiezhu.cli_common import settings_of as _settings
from xiezhu.cli_credit import app as credit_app
from xiezhu.cli_deadletters import app as dead_letters_app
from xiezhu.cli_dispute import app as dispute_app
from xiezhu.cli_front import docs_app, outbox, records_app, serve, tokens_app
from xiezhu.cli_keys import app as keys_app
from xiezhu.cli_ledger import ledger_app
from xiezhu.cli_report import report as report_cmd
from xiezhu.cli_sla import calendar_app, sla_app, sla_table, stats_table
from xiezhu.cli_users import app as users_app
from xiezhu.deadlines import late_warnings
from xiezhu.settings import ENV_DATA_DIR, ENV_DATABASE_URL, ENV_NATS_URL, Settings

app = typer.Typer(no_args_is_help=True, add_completion=False, rich_markup_mode="rich",
                  help="xiezhu — signed, event-sourced 行政协助 between bureaus, with a 司法局 ledger.")
projections_app = typer.Typer(no_args_is_help=True, help="Read models built from the ledger.")
app.add_typer(projections_app, name="projections")
app.add_typer(catalogue_app, name="catalogue")
app.add_typer(keys_app, name="keys")
app.add_typer(sla_app, name="sla")
app.add_typer(calendar_app, name="calendar")
app.add_typer(credit_app, name="credit")
app.add_typer(ledger_app)  # replay, verify-bundle, checkpoint at the top level
app.add_typer(dispute_app, name="dispute")
app.add_typer(dead_letters_app, name="dead-letters")
app.add_typer(tokens_app, name="tokens")
app.add_typer(alerts_app, name="alerts")
app.add_typer(users_app, name="users")
app.add_typer(records_app, name="records")
app.add_typer(docs_app, name="docs")
app.command("serve")(serve)
app.command("outbox")(outbox)
app.command("report")(report_cmd)
app.add_typer(case_app, name="case")
app.command("request")(request)
app.command("withdraw")(withdraw)
app.command("forward")(forward)
app.command("onsite")(onsite)

out = Console()
err = Console(stderr=True)
T = TypeVar("T")

DataDir = Annotated[Path | None, typer.Option("--data-dir", envvar=ENV_DATA_DIR, show_envvar=True,
                                              help="The one data directory every command works on.")]
NatsUrl = Annotated[str | None, typer.Option("--nats-url", envvar=ENV_NATS_URL, show_envvar=True,
                                             help="Use this NATS server instead of starting the embedded one.")]
DatabaseUrl = Annotated[str | None, typer.Option(
    "--database-url", envvar=ENV_DATABASE_URL, show_envvar=True,
    help="postgresql://…: keep the bureau stores there, each in its own schema, instead of SQLite files.")]
AsJson = Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")]


class State:
    """What the global options resolved to."""

    settings: Settings


Lang = Annotated[str | None, typer.Option("--lang", envvar="XIEZHU_LANG", show_envvar=True,
                                         help="zh (default) or en: the language of tables for people.")]


LogJson = Annotated[bool, typer.Option("--log-json", envvar="XIEZHU_LOG_JSON", show_envvar=True,
                                       help="Long-running services log one JSON object per line.")]


@app.callback()
def main_options(ctx: typer.Context, data_dir: DataDir = None, nats_url: NatsUrl = None, lang: Lang = None,
                 database_url: DatabaseUrl = None, log_json: LogJson = False) -> None:
    """xiezhu — signed, event-sourced 行政协助 between bureaus, with a 司法局 ledger."""
    from xiezhu.logs import ENV_LOG_JSON
    from xiezhu.tables import ENV_LANG
    from xiezhu.tables import lang as resolve_lang

    if log_json:
        os.environ[ENV_LOG_JSON] = "1"  # the services of `xiezhu run` inherit it

    os.environ[ENV_LANG] = resolve_lang(lang)  # every table of this process speaks it
    state = State()
    state.settings = Settings.resolve(data_dir, nats_url, database_url=database_url)
    ctx.obj = state


def _run_forever(start: Callable[[], Any], stop: Callable[[], Any], what: str) -> None:
    """Run async services until SIGINT/SIGTERM, then stop them cleanly."""
    from xiezhu.cli_common import OneLine
    from xiezhu.logs import configure

    # One line per record, the same failure (nats-py's on every reconnect attempt) said once until it changes.
    configure().addFilter(OneLine())

    async def body() -> None:
        done = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, done.set)
        # A signal while starting (NATS not reachable yet: connecting retries) stops at once.
        starting, signalled = asyncio.create_task(start()), asyncio.create_task(done.wait())
        await asyncio.wait({starting, signalled}, return_when=asyncio.FIRST_COMPLETED)
        if not starting.done():
            starting.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await starting
            with contextlib.suppress(Exception):
                await stop()
            err.print(f"{what} stopped before it had started")
            return
        signalled.cancel()
        starting.result()  # a start that failed says why
        err.print(f"[green]{what} running[/]; Ctrl-C to stop")
        await done.wait()
        await stop()

    asyncio.run(body())


# -- the demo -------------------------------------------------------------------------


@app.command()
def demo(
    ctx: typer.Context,
    requests: Annotated[int, typer.Option("--requests", "-n", min=1, max=20000, help="How many requests.")] = 300,
    seed: Annotated[int, typer.Option(help="Random seed of the workload.")] = 2026,
    as_json: AsJson = False,
) -> None:
    """Run every bureau agent, the ledger and the SLA view on an embedded NATS with a mixed workload.

    Example: [bold]xiezhu demo --requests 300 --json[/]
    """
    from xiezhu import demo as demo_mod

    settings = _settings(ctx)
    if settings.nats_url:
        settings = Settings(data_dir=settings.data_dir)  # the demo always runs its own NATS
    if not as_json:
        err.print(f"xiezhu demo: {requests} requests, data in {settings.data_dir} …")
    summary = demo_mod.run(settings, Registry.load(), requests=requests, seed=seed)
    if as_json:
        _print_json(summary)
        return
    _print_summary(summary)
    sla_table(settings, limit=15)
    stats_table(settings)
    out.print(f"\nThe demo's data stays in {settings.data_dir}: try [bold]xiezhu sla --state received[/] "
              "or [bold]xiezhu inbox --bureau ziran[/].")


def _print_summary(s: dict[str, Any]) -> None:
    t = Table(title="xiezhu demo", show_header=False, title_justify="left")
    labels = {
        "requests": "行政协助函 sent", "replied": "回复函 (replied)", "declined": "书面告知 (declined)",
        "pending": "still open", "auto_answered": "answered by a verifier",
        "operator_answered": "answered by an operator",
        "false_commitments": "with a false commitment (虚假)", "unverifiable": "cannot verify (无法证实)",
        "letters": "by letter, two staff (协助函二)", "bureau_pairs": "bureau pairs",
        "ledger_events": "ledger events", "signatures_verified": "signatures verified",
        "hostile_messages_sent": "hostile messages sent", "rejected_messages": "dead-lettered",
        "duplicates_ignored": "duplicates ignored", "simulated_from": "simulated from", "simulated_to": "simulated to",
        "wall_seconds": "wall seconds",
    }
    for key, label in labels.items():
        t.add_row(label, str(s[key]))
    t.add_row("dead letters by reason", ", ".join(f"{k} {v}" for k, v in s["rejections_by_reason"].items()))
    out.print(t)


# -- read commands --------------------------------------------------------------------


def _t(iso: str | None) -> str:
    if not iso:
        return ""
    return datetime.fromisoformat(iso).astimezone(SHANGHAI).strftime("%m-%d %H:%M")


@app.command()
def cases(
    ctx: typer.Context,
    bureau: Annotated[str | None, typer.Option(
        help="Only this handling bureau's cases: its code, name or a unique part (shenpi, 审批).")] = None,
    as_json: AsJson = False,
) -> None:
    """告知承诺案件及其所处环节或结果（取自账本）。

    Commitment cases (告知承诺) of the handling bureaus, with their step or outcome, from the ledger.

    Example: [bold]xiezhu cases --bureau 审批[/]
    """
    settings = _settings(ctx)
    bureau = bureau_code(bureau)
    if not settings.ledger_path.exists():
        raise XiezhuError(f"no ledger in {settings.data_dir}; run `xiezhu demo` or start `xiezhu ledger` first")
    ledger_ = ledger_at(settings)
    try:
        view = CommitmentView(settings.commitments_path, view_key=view_key(settings))
        view.follow(ledger_)
        rows = view.rows(bureau=bureau)
    finally:
        ledger_.close()
    if as_json:
        _print_json({f"{r['bureau']}/{r['number']}": r for r in rows})
        return
    from xiezhu.screens import CASES_COLUMNS, Words, cases_rows
    from xiezhu.tables import lang, show

    language = lang()
    show(f"告知承诺案件 {len(rows)} 件" if language == "zh" else f"{len(rows)} commitment cases", CASES_COLUMNS,
         cases_rows(rows, Words(Registry.load(), language)), language=language)


def _history_lines(h: Any) -> list[dict[str, Any]]:
    """A case history's lines for JSON (without the envelopes they were read from)."""
    return [{k: v for k, v in msgspec.structs.asdict(line).items() if k != "envelope"} for line in h.lines]


def _print_history(h: Any, title: str) -> None:
    """A case history as a table of its signed events, then its findings."""
    from xiezhu.screens import HISTORY_COLUMNS, Words, history_rows
    from xiezhu.tables import lang, show

    language = lang()
    show(f"{title} — " + (f"{len(h.lines)} 条签名事件" if language == "zh" else f"{len(h.lines)} signed events"),
         HISTORY_COLUMNS, history_rows(h.lines, Words(Registry.load(), language)), language=language)
    for finding in h.findings:
        out.print(f"• {finding}")


def _case_history(settings: Settings, number: str, sender: str | None,
                  disclose: Callable[[Any, str], Any] | None = None) -> Any:
    from projections.history import find_cases, history

    if not settings.ledger_path.exists():
        raise XiezhuError(f"no ledger in {settings.data_dir}; run `xiezhu demo` or start `xiezhu ledger` first")
    ledger_ = ledger_at(settings)
    try:
        found = find_cases(ledger_, number, sender)
        if not found:
            raise XiezhuError(f"no case numbered {number}" + (f" from {sender}" if sender else "") + " in the ledger")
        if len(found) > 1:
            raise XiezhuError(f"{len(found)} cases are numbered {number}; add --from REQUESTER")
        h = history(ledger_, found[0])
        return h, (disclose(ledger_, found[0]) if disclose else None)
    finally:
        ledger_.close()


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
    """案件经过：请求、答复、各环节及发现的问题。

    A case's history from the ledger alone: who asked whom for what, each answer, each step, and flags.

    Example: [bold]xiezhu history 20260007 --from shenpi[/]
    """
    from agencies.disclosure import render_disclosure

    settings = _settings(ctx)

    def disclose(ledger_: Any, case_id: str) -> Any:
        return system_of(ctx).justice().reveal_case(ledger_, case_id, command="history", reason=reason,
                                                    operator=operator_name(operator))

    h, shown = _case_history(settings, number, sender, disclose if reveal else None)
    if as_json:
        _print_json({"kind": h.kind, "case": h.case, "number": h.number, "findings": h.findings,
                     "linked": h.linked, "lines": _history_lines(h)} | ({"revealed": shown[0]} if shown else {}))
        return
    from xiezhu.tables import lang

    kind_zh = {"assistance": "行政协助", "commitment": "告知承诺案件", "dispute": "争议"}.get(h.kind, h.kind)
    _print_history(h, f"{kind_zh} {h.number}" if lang() == "zh" else f"{h.kind} case {h.number}")
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
    """案件函件（附件4–7 等）：文本、DOCX 或 PDF。

    The letters of a case (附件4–7, the decline, the consequence notices) as text, DOCX or PDF.

    Files are named as a clerk files them: 20260007-行政协助函（一）.docx, C20260001-承诺告知书.pdf.

    Example: [bold]xiezhu letter 20260007 --from shenpi --format docx --out letters/[/]
    """
    from projections.documents.case_letters import letters_for
    from projections.documents.files import FORMATS, write_letters
    from projections.documents.letters import render

    if fmt not in FORMATS:
        raise XiezhuError(f"--format must be one of {', '.join(FORMATS)}, not {fmt!r}")
    h, _ = _case_history(_settings(ctx), number, sender)
    reg = Registry.load()
    letters = letters_for(h, reg.name)
    if not letters:
        raise XiezhuError(f"case {number} has no letter yet")
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
        err.print(f"wrote {w.path}")


@app.command()
def bureaus(as_json: AsJson = False) -> None:
    """参与部门（附件1）及其代码、简称。

    The bureaus of the registry (附件1) with their codes.

    Example: [bold]xiezhu bureaus --json[/]
    """
    reg = Registry.load()
    if as_json:
        _print_json([msgspec.structs.asdict(b) for b in reg])
        return
    from xiezhu.tables import Col, lang, show

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
    """待经办人答复的行政协助请求。

    Requests addressed to a bureau that wait for a person to answer.

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
    from xiezhu.screens import INBOX_COLUMNS, Words, inbox_rows
    from xiezhu.tables import lang, show

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
    t = Table(title=f"{len(entries)} disclosures of personal data")
    for col in ("at", "operator", "host", "command", "subject", "reason", "entitled by"):
        t.add_column(col)
    for e in entries:
        t.add_row(_t(e.at.isoformat()), e.operator, e.host, e.command, e.subject, e.reason, e.entitled_by)
    out.print(t)


def _as_is(text: str) -> str:
    return text


def _parse_item(text: str) -> ItemResult:
    no, _, rest = text.partition("=")
    verdict, _, reason = rest.partition(":")
    aliases = {v: k for k, v in VERDICT_ZH.items()}
    verdict = aliases.get(verdict, verdict)
    try:
        return msgspec.convert({"no": int(no), "verdict": verdict, "reason": reason}, ItemResult)
    except (ValueError, msgspec.ValidationError) as e:
        raise XiezhuError(f"--item {text!r}: expected N=true|false|unverifiable[:reason] ({e})") from e


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
    late = late_warnings(CalendarStore(system.settings.calendar_dir), desk.request(case), system.clock.now(), "reply")
    st = desk.answer(case, results, operator_name(operator))
    for line in late:
        err.print(f"[yellow]warning:[/] {line}")
    said(system.settings, bureau, f"replied to {st.requester}'s {st.number}")


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
                         "decline")
    try:
        st = desk.decline(case, reason, operator_name(operator))
    except msgspec.ValidationError as e:
        raise XiezhuError(f"cannot decline: {e}") from e
    for line in late:
        err.print(f"[yellow]warning:[/] {line}")
    said(system.settings, bureau, f"declined {st.requester}'s {st.number}")


# -- services -------------------------------------------------------------------------


@app.command("nats-server")
def nats_server(
    ctx: typer.Context,
    port: Annotated[int, typer.Option(help="Client port.")] = 4222,
    host: Annotated[str, typer.Option(help="Listen address.")] = "127.0.0.1",
    monitor_port: Annotated[int | None, typer.Option(
        "--monitor-port", min=1, max=65535,
        help="Also serve NATS's monitoring endpoints (/varz, /jsz, /healthz) on this port.")] = None,
) -> None:
    """Run the embedded nats-server (JetStream) on the data directory, in the foreground.

    It runs with the generated authorization (one NKey user per bureau, seeds in
    <data>/nats-keys), like the server the demo and the agents start themselves.

    Example: [bold]xiezhu nats-server --port 4222 --monitor-port 8222[/]
    """
    from xiezhu.node import embedded_server, provision_embedded

    settings, registry = _settings(ctx), Registry.load()
    server = embedded_server(settings, registry, port=port, host=host)
    server.http_port = monitor_port

    async def start() -> None:
        server.start()
        await provision_embedded(server, settings, registry.codes())  # with a provisioner only it ever held
        err.print(f"nats-server at {server.url}, store in {server.store_dir}"
                  + (f", monitoring at http://{host}:{monitor_port}/varz" if monitor_port else ""))

    async def stop() -> None:
        server.stop()

    _run_forever(start, stop, "nats-server")


@app.command("nats-config")
def nats_config(
    ctx: typer.Context,
    out_file: Annotated[Path | None, typer.Option("--out", help="Write the config here (default: stdout).")] = None,
    cluster: Annotated[bool, typer.Option(help="Only the authorization block, for a cluster's config.")] = False,
    provisioner: Annotated[bool, typer.Option(
        help="Also a one-shot provisioner user, for `xiezhu provision`, which deletes its seed.")] = False,
) -> None:
    """Generate one NKey user per bureau (plus the ledger and the provisioner) and the nats-server authorization.

    Each bureau may publish only as itself and read only its own durable consumer and inbox;
    no bureau may create consumers, read streams, delete or purge. Seeds go to
    <data>/nats-keys/<name>.nk with mode 0600; the config holds public keys only.
    Only the provisioner (--provisioner) may create streams and consumers; `xiezhu provision`
    deletes its seed, and the configuration generated after that leaves it out: reload the
    servers with it and nobody can change a consumer any more.

    Example: [bold]xiezhu nats-config --out /etc/nats/xiezhu-auth.conf --cluster[/]
    """
    from broker.auth import authorization_config, generate_identities, server_config

    settings = _settings(ctx)
    identities = generate_identities(Registry.load().codes(), settings.data_dir / "nats-keys", provisioner=provisioner)
    text = authorization_config(identities) if cluster else server_config(identities, jetstream_store_dir=None)
    if out_file is None:
        sys.stdout.write(text)
        return
    out_file.write_text(text, encoding="utf-8")
    err.print(f"wrote {out_file} for {len(identities)} users; seeds in {settings.data_dir / 'nats-keys'}")


@app.command()
def provision(
    ctx: typer.Context,
    replicas: Annotated[int, typer.Option(min=1, max=5, help="Stream replicas: 3 on a 3-node cluster.")] = 1,
) -> None:
    """Create the streams and every bureau's durable consumer on the NATS given by --nats-url.

    What exists is checked, never changed: a stream or consumer with other settings (e.g.
    replicas) is an error for the NATS operator to resolve. Creating needs the one-shot
    provisioner's seed (`xiezhu nats-config --provisioner`), deleted once it has run; without
    it `provision` only checks, as admin.

    Example: [bold]xiezhu --nats-url nats://nats-1:4222 provision --replicas 3[/]
    """
    from broker.auth import ADMIN, PROVISIONER, seed_path
    from xiezhu.node import nats_credentials, provision_once
    from xiezhu.node import provision as do_provision

    settings = _settings(ctx)
    if not settings.nats_url:
        raise XiezhuError("provision needs --nats-url (the embedded server provisions itself)")
    codes = Registry.load().codes()
    if seed_path(settings.nats_keys_dir, PROVISIONER).exists():
        if asyncio.run(provision_once(settings.nats_url, codes, settings.nats_keys_dir, replicas=replicas)):
            err.print("the provisioner's seed is deleted: regenerate the configuration (`xiezhu nats-config`) "
                      "and reload the servers to revoke it")
        else:
            err.print(f"[yellow]the provisioner's seed could not be deleted from {settings.nats_keys_dir}: "
                      "delete it, regenerate the configuration and reload the servers[/]")
    else:
        asyncio.run(do_provision(settings.nats_url, codes, replicas=replicas,
                                 credentials=nats_credentials(settings, ADMIN), create=False))
    err.print("[green]streams and consumers ready[/]")


OpsPort = Annotated[int | None, typer.Option("--ops-port", "--metrics-port", min=1, max=65535,
                                             help="Serve /healthz, /readyz and /metrics on this port.")]
OpsHost = Annotated[str, typer.Option("--ops-host", help="Listen address of the ops endpoints.")]


@app.command()
def agent(
    ctx: typer.Context,
    bureau: Annotated[list[str], typer.Option(help="Run the agent of this bureau (repeatable).")],
    ops_port: OpsPort = None,
    ops_host: OpsHost = "127.0.0.1",
) -> None:
    """Run bureau agents: consume their mail, answer what they can, relay what they emit.

    With --ops-port it serves /healthz, /readyz and Prometheus /metrics on that port.

    Example: [bold]xiezhu --nats-url nats://nats:4222 agent --bureau gongan --ops-port 9101[/]
    """
    from xiezhu.node import Node

    reg = Registry.load()
    for code in bureau:
        reg[code]
    node = Node(_settings(ctx), reg, SystemClock(), agents=bureau)
    _run_node(node, ops_host, ops_port, f"agents {', '.join(bureau)}")


def _run_node(node: Any, ops_host: str, ops_port: int | None, what: str) -> None:
    """Run ``node`` until a signal, with its ops endpoints when a port is given."""
    from xiezhu.ops import NodeOps, OpsServer

    server = OpsServer(NodeOps(node), ops_host, ops_port) if ops_port else None

    async def start() -> None:
        await node.start()
        if server is not None:
            await server.start()
            err.print(f"ops endpoints at http://{ops_host}:{ops_port}/metrics, /healthz, /readyz")

    async def stop() -> None:
        if server is not None:
            await server.stop()
        await node.stop()

    _run_forever(start, stop, what)


@app.command()
def ledger(
    ctx: typer.Context,
    projection: Annotated[bool, typer.Option(help="Also keep the SLA view up to date.")] = True,
    ops_port: OpsPort = None,
    ops_host: OpsHost = "127.0.0.1",
) -> None:
    """Run the 司法局 ledger: record every signed event, verified, in one hash-chained order.

    With --ops-port it serves /healthz, /readyz and Prometheus /metrics on that port.

    Example: [bold]xiezhu --nats-url nats://nats:4222 ledger --ops-port 9100[/]
    """
    from xiezhu.node import Node

    # 区司法局's machine: the ledger, the read models, the SLA monitor and the sifa agent
    # that relays the monitor's notices.
    node = Node(_settings(ctx), Registry.load(), SystemClock(), agents=[JUSTICE] if projection else [],
                ledger=True, projection=projection)
    _run_node(node, ops_host, ops_port, "ledger")


@app.command("run")
def run_services(
    ctx: typer.Context,
    bureau: Annotated[list[str] | None, typer.Option(help="Run the agent of this bureau, in its own process "
                                                          "(repeatable).")] = None,
    with_ledger: Annotated[bool, typer.Option(
        "--ledger", help="Run 区司法局's ledger with its views, the SLA monitor and sifa's agent, in its own process.",
    )] = False,
) -> None:
    """Run one host's services, each in its own process, restarted if it dies (one-host deployments).

    Without --nats-url the embedded nats-server starts first. Ctrl-C stops every service.

    Example: [bold]xiezhu run --bureau shenpi --bureau gongan --ledger[/]
    """
    from xiezhu.node import embedded_server, provision_embedded
    from xiezhu.supervisor import Supervisor, child_env, plan, run_forever

    settings = _settings(ctx)
    reg = Registry.load()
    codes = [reg[code].code for code in bureau or []]
    if not codes and not with_ledger:
        raise XiezhuError("nothing to run: name a --bureau, or --ledger")
    server = None
    nats_url = settings.nats_url
    if not nats_url:
        server = embedded_server(settings, reg).start()
        nats_url = server.url
        err.print(f"nats-server at {nats_url}")
    try:
        if server is not None:  # as a node does on its embedded server, once, before the services connect
            asyncio.run(provision_embedded(server, settings, reg.codes()))
        supervisor = Supervisor(plan(settings.data_dir, nats_url, codes, with_ledger, settings.database_url),
                                env=child_env(),
                                say=lambda line: err.print(line, highlight=False))
        run_forever(supervisor)
    finally:
        if server is not None:
            server.stop()


@app.command()
def audit(
    ctx: typer.Context,
    workers: Annotated[int | None, typer.Option(help="Processes verifying signatures (default: every core).")] = None,
    as_json: AsJson = False,
) -> None:
    """Walk the whole ledger: every signature, the hash chain and the signed checkpoints; name the first problem.

    Example: [bold]xiezhu audit --json[/]
    """
    from rich.progress import Progress

    from broker.ledger.audit import audit as run_audit
    from broker.ledger.audit import count_entries, render

    settings = _settings(ctx)
    if not settings.ledger_path.exists():
        raise XiezhuError(f"no ledger in {settings.data_dir}")
    keys = KeyStore(settings.keys_dir)
    if keys.signed_trust() is None:  # every signature would fail: say what is missing, not "tampered"
        raise XiezhuError(f"no trust list in {settings.keys_dir} (trust.json): the audit checks every signature "
                          f"against it; copy the keys directory (or at least trust.json and root.pub) first")
    ring = keys.ring()
    with Progress(console=err, transient=as_json) as progress:
        task = progress.add_task("auditing the ledger", total=count_entries(settings.ledger_path))
        report = run_audit(settings.ledger_path, ring, workers=workers or os.cpu_count() or 1,
                           progress=lambda k: progress.advance(task, k))
    if as_json:
        _print_json(report)
    else:
        out.print(render(report), highlight=False)
    if not report.ok:
        raise typer.Exit(1)


def _fresh_if_damaged(path: Path, open_view: Callable[[], Any]) -> Any:
    """The view at ``path``; a file SQLite cannot read is moved aside (``.damaged``) and the view made anew,
    since a rebuild replaces everything in it anyway."""
    try:
        return open_view()
    except sqlite3.DatabaseError as e:
        if "readonly" in str(e):
            raise
        aside = path.with_name(path.name + ".damaged")
        path.replace(aside)
        for extra in ("-wal", "-shm"):
            path.with_name(path.name + extra).unlink(missing_ok=True)
        err.print(f"{path} could not be read ({e}); moved to {aside.name}, building it anew")
        return open_view()


@projections_app.command("rebuild")
def projections_rebuild(ctx: typer.Context) -> None:
    """Drop the read models (SLA view, commitment cases) and build them again from the ledger.

    Example: [bold]xiezhu projections rebuild[/]
    """
    from rich.progress import Progress

    settings = _settings(ctx)
    if not settings.ledger_path.exists():
        raise XiezhuError(f"no ledger in {settings.data_dir}")
    ledger_ = ledger_at(settings)
    views: list[tuple[str, Any]] = [
        ("SLA view", _fresh_if_damaged(settings.sla_path, lambda: SlaView(
            settings.sla_path, CalendarStore(settings.calendar_dir), catalogue=existing_catalogue(settings)))),
        ("commitment cases", _fresh_if_damaged(settings.commitments_path, lambda: CommitmentView(
            settings.commitments_path, view_key=view_key(settings)))),
        ("credit view", _fresh_if_damaged(settings.credit_path, lambda: CreditView(
            settings.credit_path, view_key=view_key(settings)))),
    ]
    for label, view in views:
        if view.in_memory:  # it could only be rebuilt in memory and lost: say so rather than pretend
            raise XiezhuError(f"the {label} cannot be rebuilt: {settings.sla_path.parent} is read-only here")
    with Progress(console=err) as progress:
        for label, view in views:
            task = progress.add_task(f"rebuilding {label}", total=len(ledger_))
            n = view.rebuild(ledger_, progress=lambda k, task=task: progress.advance(task, k))
    err.print(f"[green]rebuilt[/] {len(views)} views from {n} ledger entries")


def main() -> None:
    """Console entry point: a mistake becomes one clear line and a non-zero exit, never a traceback."""
    try:
        app(standalone_mode=True)  # Click prints usage errors itself (exit code 2)
    except XiezhuError as e:
        err.print(f"[red]error:[/] {e}", highlight=False, markup=True)
        sys.exit(1)
    except (OSError, nats.errors.Error) as e:
        err.print(f"[red]error:[/] cannot reach NATS or a file: {e}", highlight=False)
        sys.exit(1)
    except sqlite3.DatabaseError as e:
        if "readonly" in str(e):
            # A command that writes (a store, a view's catch-up) on a read-only copy of a data directory.
            err.print(f"[red]error:[/] this command writes to the data directory, which is read-only here: {e}",
                      highlight=False)
        elif isinstance(e, sqlite3.OperationalError) and "malformed" not in str(e):
            raise
        else:  # "file is not a database", "database disk image is malformed"
            err.print(f"[red]error:[/] a data file is damaged: {e}; `xiezhu audit` checks the ledger, "
                      "`xiezhu projections rebuild` rebuilds the views", highlight=False)
        sys.exit(1)
