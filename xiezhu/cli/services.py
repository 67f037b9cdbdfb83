"""Running xiezhu: ``demo``, ``nats-server``, ``nats-config``, ``provision``, ``agent``, ``ledger``, ``run``,
``audit`` and ``projections rebuild`` (commands at the top level)."""
from __future__ import annotations

import asyncio
import os
import sqlite3
import sys
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from agencies.trust.keys import KeyStore
from aggregates.calendar_store import CalendarStore
from aggregates.clock import SystemClock
from aggregates.database import Location
from aggregates.registry import JUSTICE, Registry
from projections.commitments import CommitmentView
from projections.credit import CreditView
from projections.sla import SlaView
from schemas.errors import XiezhuError
from xiezhu.bootstrap import existing_catalogue
from xiezhu.cli.common import (
    AsJson,
    err,
    in_lang,
    ledger_at,
    out,
    run_forever,
    view_key,
)
from xiezhu.cli.common import print_json as _print_json
from xiezhu.cli.common import settings_of as _settings
from xiezhu.cli.sla import sla_table, stats_table
from xiezhu.cli.tables import lang
from xiezhu.settings import Settings

app = typer.Typer()
projections_app = typer.Typer(no_args_is_help=True, help="Read models built from the ledger.")


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
        settings = Settings(data_dir=settings.data_dir, database_url=settings.database_url)  # its own NATS
    if not as_json:
        err.print(in_lang(f"xiezhu demo：{requests} 件请求，数据在 {settings.data_dir} …",
                          f"xiezhu demo: {requests} requests, data in {settings.data_dir} …"))
    summary = demo_mod.run(settings, Registry.load(), requests=requests, seed=seed)
    if as_json:
        _print_json(summary)
        return
    _print_summary(summary)
    sla_table(settings, limit=15)
    stats_table(settings)
    out.print(in_lang(f"\n演示数据保留在 {settings.data_dir}：可试 [bold]xiezhu sla --state received[/] "
                      "或 [bold]xiezhu inbox --bureau ziran[/]。",
                      f"\nThe demo's data stays in {settings.data_dir}: try [bold]xiezhu sla --state received[/] "
                      "or [bold]xiezhu inbox --bureau ziran[/]."))


#: The demo's summary for a person in 中文 (the English labels are in :func:`_print_summary`).
DEMO_LABELS_ZH = {
    "requests": "发出的行政协助函", "replied": "回复函", "declined": "书面告知不能协助",
    "pending": "尚未办结", "auto_answered": "由核查系统答复", "operator_answered": "由工作人员答复",
    "false_commitments": "含虚假承诺", "unverifiable": "无法证实", "letters": "工作人员持函（协助函二）",
    "bureau_pairs": "单位组合", "ledger_events": "账本事件", "signatures_verified": "已核验签名",
    "hostile_messages_sent": "发出的恶意消息", "rejected_messages": "拒收消息", "duplicates_ignored": "忽略的重复消息",
    "simulated_from": "模拟起始", "simulated_to": "模拟截止", "wall_seconds": "实际用时（秒）",
}


def _print_summary(s: dict[str, Any]) -> None:
    t = Table(title="xiezhu demo", show_header=False, title_justify="left")
    labels = DEMO_LABELS_ZH if lang() == "zh" else {
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
    t.add_row(in_lang("拒收消息（按原因）", "dead letters by reason"),
              ", ".join(f"{k} {v}" for k, v in s["rejections_by_reason"].items()))
    out.print(t)


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
        err.print(in_lang(f"nats-server 地址 {server.url}，存储在 {server.store_dir}"
                          + (f"，监控 http://{host}:{monitor_port}/varz" if monitor_port else ""),
                          f"nats-server at {server.url}, store in {server.store_dir}"
                          + (f", monitoring at http://{host}:{monitor_port}/varz" if monitor_port else "")))

    async def stop() -> None:
        server.stop()

    run_forever(start, stop, "nats-server")


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
    err.print(in_lang(f"已写入 {out_file}，共 {len(identities)} 个用户；种子在 {settings.data_dir / 'nats-keys'}",
                      f"wrote {out_file} for {len(identities)} users; seeds in {settings.data_dir / 'nats-keys'}"))


@app.command()
def provision(
    ctx: typer.Context,
    replicas: Annotated[int, typer.Option(min=1, max=5, help="Stream replicas: 3 on a 3-node cluster.")] = 1,
    bureau_max_bytes: Annotated[int | None, typer.Option(
        min=1, help="Bytes each bureau may have in its sending stream (default 128 MiB).")] = None,
    bureau_max_msgs: Annotated[int | None, typer.Option(
        min=1, help="Messages each bureau may have in its sending stream (default 1,000,000).")] = None,
    witness_max_bytes: Annotated[int | None, typer.Option(
        min=1, help="Bytes each bureau may have in its witness stream (default 64 MiB).")] = None,
    witness_max_msgs: Annotated[int | None, typer.Option(
        min=1, help="Countersignatures each bureau may have in its witness stream (default 100,000).")] = None,
) -> None:
    """Create the streams and every bureau's durable consumer on the NATS given by --nats-url.

    Each bureau publishes into its own sending stream, which the server holds to the bureau's
    limits (message size, bytes, messages; full, it refuses new messages) and from which
    nothing can be purged; XZ sources them all (decision 50). Each bureau's countersignatures of
    the ledger's checkpoints go to its own witness stream, under limits of their own, which
    XZ_WITNESS sources (decision 59). What exists is checked, never
    changed: a stream or consumer with other settings (e.g. replicas, limits) is an error for
    the NATS operator to resolve. Creating needs the one-shot
    provisioner's seed (`xiezhu nats-config --provisioner`), deleted once it has run; without
    it `provision` only checks, as admin.

    Example: [bold]xiezhu --nats-url nats://nats-1:4222 provision --replicas 3[/]
    """
    from broker.auth import ADMIN, PROVISIONER, seed_path
    from broker.streams import BureauLimits, usage_line, witness_stream
    from xiezhu.node import nats_credentials, provision_once, sending_usage
    from xiezhu.node import provision as do_provision

    settings = _settings(ctx)
    if not settings.nats_url:
        raise XiezhuError("provision needs --nats-url (the embedded server provisions itself)",
                          zh="provision 需要 --nats-url（内置服务器会自行配置）")
    codes = Registry.load().codes()
    limits = BureauLimits(max_bytes=bureau_max_bytes, max_msgs=bureau_max_msgs, witness_max_bytes=witness_max_bytes,
                          witness_max_msgs=witness_max_msgs)
    if seed_path(settings.nats_keys_dir, PROVISIONER).exists():
        if asyncio.run(provision_once(settings.nats_url, codes, settings.nats_keys_dir, replicas=replicas,
                                      limits=limits)):
            err.print(in_lang("配置程序的种子已删除：请重新生成配置（`xiezhu nats-config`）并重新加载服务器以吊销它",
                              "the provisioner's seed is deleted: regenerate the configuration (`xiezhu nats-config`) "
                              "and reload the servers to revoke it"))
        else:
            err.print(in_lang(f"[yellow]未能从 {settings.nats_keys_dir} 删除配置程序的种子：请手动删除，"
                              "重新生成配置并重新加载服务器[/]",
                              f"[yellow]the provisioner's seed could not be deleted from {settings.nats_keys_dir}: "
                              "delete it, regenerate the configuration and reload the servers[/]"))
    else:
        asyncio.run(do_provision(settings.nats_url, codes, replicas=replicas, limits=limits,
                                 credentials=nats_credentials(settings, ADMIN), create=False))
    err.print(in_lang("[green]流和消费者已就绪[/]", "[green]streams and consumers ready[/]"))
    admin = nats_credentials(settings, ADMIN)
    err.print(usage_line(asyncio.run(sending_usage(settings.nats_url, codes, credentials=admin)), language=lang()))
    err.print(usage_line(asyncio.run(sending_usage(settings.nats_url, codes, credentials=admin,
                                                   stream=witness_stream)), "witness", lang()))


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
    _run_node(node, ops_host, ops_port, f"agents {', '.join(bureau)}",
              "、".join(Registry.load().name(b) for b in bureau) + "的代理程序")


def _run_node(node: Any, ops_host: str, ops_port: int | None, what: str, what_zh: str) -> None:
    """Run ``node`` until a signal, with its ops endpoints when a port is given."""
    from xiezhu.ops import NodeOps, OpsServer

    server = OpsServer(NodeOps(node), ops_host, ops_port) if ops_port else None

    async def start() -> None:
        await node.start()
        if server is not None:
            await server.start()
            err.print(in_lang(f"运维接口：http://{ops_host}:{ops_port}/metrics、/healthz、/readyz",
                              f"ops endpoints at http://{ops_host}:{ops_port}/metrics, /healthz, /readyz"))

    async def stop() -> None:
        if server is not None:
            await server.stop()
        await node.stop()

    run_forever(start, stop, what, what_zh)


@app.command()
def ledger(
    ctx: typer.Context,
    projection: Annotated[bool, typer.Option(help="Also keep the SLA view up to date.")] = True,
    remote_signer: Annotated[bool, typer.Option(
        "--remote-signer", help="Have checkpoints signed by `xiezhu checkpoint-signer` on another host, which "
                                "holds 区司法局's checkpoint key (decision 49), not with a key here.")] = False,
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
                ledger=True, projection=projection, remote_signer=remote_signer)
    _run_node(node, ops_host, ops_port, "ledger", "账本服务")


@app.command("checkpoint-signer")
def checkpoint_signer_cmd(ctx: typer.Context) -> None:
    """Hold 区司法局's checkpoint key off the ledger's host and sign the heads the ledger asks for (decision 49).

    It signs a head only if the ledger's entries since the last head it signed lead to it, so a ledger
    rolled back or rewritten gets no new signature, and it publishes each head for the bureaus to witness.
    Run it where 区司法局's keys directory and the NATS seed `signer` are, and the ledger with --remote-signer.

    Example: [bold]xiezhu --nats-url nats://nats:4222 checkpoint-signer[/]
    """
    import nats

    from broker.auth import SIGNER, credentials_in
    from broker.ledger.signer import SignerService
    from broker.server import server_list
    from xiezhu.node import checkpoint_signer

    settings = _settings(ctx)
    if not settings.nats_url:
        raise XiezhuError("give --nats-url: the signer answers the ledger over NATS, from its own machine",
                          zh="请给出 --nats-url：签名程序在自己的机器上通过 NATS 为账本签名")
    service = SignerService(checkpoint_signer(settings, SystemClock()))
    conn: list[Any] = []

    async def start() -> None:
        nc = await nats.connect(servers=server_list(settings.nats_url or ""), max_reconnect_attempts=-1,
                                **credentials_in(settings.nats_keys_dir, SIGNER))
        conn.append(nc)
        await service.start(nc)
        last = service.signer.last
        err.print(in_lang(f"检查点签名程序已就绪；最后签署的链头：{'无' if last is None else last.pos}",
                          f"checkpoint signer ready; last head signed: {'none' if last is None else last.pos}"),
                  highlight=False)

    async def stop() -> None:
        await service.stop()
        for nc in conn:
            await nc.close()

    run_forever(start, stop, "checkpoint signer", "检查点签名程序")


@app.command("run")
def run_services(
    ctx: typer.Context,
    bureau: Annotated[list[str] | None, typer.Option(help="Run the agent of this bureau, in its own process "
                                                          "(repeatable).")] = None,
    with_ledger: Annotated[bool, typer.Option(
        "--ledger", help="Run 区司法局's ledger with its views, the SLA monitor and sifa's agent, in its own process.",
    )] = False,
    ops_port_base: Annotated[int | None, typer.Option(
        "--ops-port-base", min=1, max=65000,
        help="Give each service /healthz, /readyz and /metrics on its own port, from this one up, in the order "
             "the services are listed at start.")] = None,
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
        raise XiezhuError("nothing to run: name a --bureau, or --ledger",
                          zh="没有可运行的服务：请指定 --bureau 或 --ledger")
    server = None
    nats_url = settings.nats_url
    if not nats_url:
        server = embedded_server(settings, reg).start()
        nats_url = server.url
        err.print(in_lang(f"nats-server 地址 {nats_url}", f"nats-server at {nats_url}"))
    try:
        if server is not None:  # as a node does on its embedded server, once, before the services connect
            asyncio.run(provision_embedded(server, settings, reg.codes()))
        services = plan(settings.data_dir, nats_url, codes, with_ledger, settings.database_url, ops_port_base)
        if ops_port_base is not None:
            for i, s in enumerate(services):
                err.print(f"{s.name}: http://127.0.0.1:{ops_port_base + i}/metrics", highlight=False)
        supervisor = Supervisor(services,
                                env=child_env(),
                                say=lambda line: err.print(line, highlight=False), language=lang())
        run_forever(supervisor)
    finally:
        if server is not None:
            server.stop()


@app.command()
def audit(
    ctx: typer.Context,
    workers: Annotated[int | None, typer.Option(help="Processes verifying signatures (default: every core).")] = None,
    witnesses: Annotated[list[str] | None, typer.Option(
        "--witnesses", help="Heads kept by a witness: a bureau's code (its witness file in this data directory), "
                            "a witness.db or an export of `xiezhu witnesses CODE --export`; repeatable.")] = None,
    witness_stream: Annotated[bool, typer.Option(
        "--witness-stream", help="Also every head and countersignature on NATS (XZ_WITNESS), from --nats-url or "
                                 "this data directory's own NATS store.")] = False,
    platform: Annotated[bool, typer.Option(
        "--platform", help="Compare every entry after the last witnessed head with the platform's record, the XZ "
                           "stream (its sequence, bytes and stored time), as the ledger's NATS user, and name the "
                           "events its consumer acknowledged after its last entry that it lacks (a cut end). For a "
                           "ledger on wall-clock arrival (not a simulated demo).")] = False,
    as_json: AsJson = False,
) -> None:
    """Walk the whole ledger: every signature, the hash chain and the signed checkpoints; name the first problem.

    With witnesses it also finds what the file alone cannot show (decision 49): a rollback, a fork, or a
    history rewritten and re-signed with 区司法局's key.

    Example: [bold]xiezhu audit --witness-stream --witnesses gongan --json[/]
    """
    from rich.progress import Progress

    from broker.ledger.audit import audit as run_audit
    from broker.ledger.audit import count_entries, render

    settings = _settings(ctx)
    if not settings.ledger_exists():
        raise XiezhuError(f"no ledger in {settings.data_dir}", zh=f"{settings.data_dir} 中没有账本")
    keys = KeyStore(settings.keys_dir)
    if keys.signed_trust() is None:  # every signature would fail: say what is missing, not "tampered"
        raise XiezhuError(f"no trust list in {settings.keys_dir} (trust.json): the audit checks every signature "
                          f"against it; copy the keys directory (or at least trust.json and root.pub) first",
                          zh=f"{settings.keys_dir} 中没有信任列表（trust.json）：审计要据此核验每个签名；"
                             "请先复制密钥目录（至少 trust.json 和 root.pub）")
    records = _witness_records(settings, witnesses or [], witness_stream)
    ring = keys.ring()
    with Progress(console=err, transient=as_json) as progress:
        task = progress.add_task(in_lang("正在审计账本", "auditing the ledger"),
                                 total=count_entries(settings.ledger_location))
        report = run_audit(settings.ledger_location, ring, workers=workers or os.cpu_count() or 1,
                           progress=lambda k: progress.advance(task, k),
                           witnesses=records if (witnesses or witness_stream) else None,
                           platform=_platform_reader(settings) if platform else None,
                           taken=_taken_reader(settings) if platform else None)
    if as_json:
        _print_json(report)
    else:
        from xiezhu.cli.screens import Words
        from xiezhu.cli.tables import lang

        language = lang()
        out.print(render(report, language, Words(Registry.load(), language).bureau), highlight=False)
    if not report.ok:
        raise typer.Exit(1)


def _platform_reader(settings: Settings) -> Callable[[list[int]], Any]:
    """The XZ messages at the sequences asked for, read as the ledger's NATS user (decision 49)."""
    from broker.auth import LEDGER
    from broker.streams import EVENTS_STREAM
    from broker.witness import read_stored
    from xiezhu.cli.deadletters import on_stream

    def read(sequences: list[int]) -> Any:
        return on_stream(settings, EVENTS_STREAM, lambda js: read_stored(js, sequences), user=LEDGER, check=False)

    return read


def _taken_reader(settings: Settings) -> Callable[[int], Any]:
    """The XZ messages past a sequence that the ledger's consumer acknowledged, read as the ledger's NATS user."""
    from broker.auth import LEDGER
    from broker.streams import EVENTS_STREAM
    from broker.witness import read_taken
    from xiezhu.cli.deadletters import on_stream

    def read(after: int) -> Any:
        return on_stream(settings, EVENTS_STREAM, lambda js: read_taken(js, after), user=LEDGER, check=False)

    return read


def _witness_records(settings: Settings, sources: list[str], stream: bool) -> list[Any]:
    """The witness records of ``--witnesses`` (files, or bureaus' files here) and ``--witness-stream``."""
    from broker.streams import WITNESS_STREAM
    from broker.witness import read_file, read_stream
    from xiezhu.cli.deadletters import on_stream

    records: list[Any] = []
    for source in sources:
        path = Path(source)
        if not path.exists() and source in Registry.load():
            path = settings.witness_path(source)
        if not path.is_file():
            raise XiezhuError(f"no witness file {source}: give a path, or the code of a bureau whose agent ran on "
                              f"{settings.data_dir}",
                              zh=f"没有见证文件 {source}：请给出路径，"
                                 f"或在 {settings.data_dir} 上运行过代理程序的单位代码")
        records += read_file(path)
    if stream:
        got, bad = on_stream(settings, WITNESS_STREAM, read_stream)
        if bad:
            err.print(in_lang(f"{WITNESS_STREAM} 上有 {bad} 条消息不是见证记录（已略去）",
                              f"{bad} messages on {WITNESS_STREAM} are not witness records (left out)"),
                      highlight=False)
        records += got
    return records


def _fresh_if_damaged(path: Path | str, open_view: Callable[[], Any]) -> Any:
    """The view at ``path``; a file SQLite cannot read is moved aside (``.damaged``) and the view made anew,
    since a rebuild replaces everything in it anyway (a view in PostgreSQL is opened as it is)."""
    if not isinstance(path, Path):
        return open_view()
    try:
        return open_view()
    except sqlite3.DatabaseError as e:
        if "readonly" in str(e):
            raise
        aside = path.with_name(path.name + ".damaged")
        path.replace(aside)
        for extra in ("-wal", "-shm"):
            path.with_name(path.name + extra).unlink(missing_ok=True)
        err.print(in_lang(f"无法读取 {path}（{e}）；已移至 {aside.name}，重新建立",
                          f"{path} could not be read ({e}); moved to {aside.name}, building it anew"))
        return open_view()


#: The views `projections rebuild` rebuilds, as a person calls them.
VIEW_ZH = {"SLA view": "时限视图", "commitment cases": "告知承诺案件视图", "credit view": "信用视图"}


@projections_app.command("rebuild")
def projections_rebuild(ctx: typer.Context) -> None:
    """Drop the read models (SLA view, commitment cases) and build them again from the ledger.

    Each view is built in a new file, on every core, and replaces the old one only once complete:
    stop a node that has the views open first.

    Example: [bold]xiezhu projections rebuild[/]
    """
    from rich.progress import Progress

    from projections.rebuild import rebuild

    settings = _settings(ctx)
    if not settings.ledger_exists():
        raise XiezhuError(f"no ledger in {settings.data_dir}", zh=f"{settings.data_dir} 中没有账本")
    ledger_ = ledger_at(settings)
    key = view_key(settings)
    calendar, catalogue = CalendarStore(settings.calendar_dir), existing_catalogue(settings)

    def sla(path: Location) -> SlaView:
        return SlaView(path, calendar, catalogue=catalogue)

    def cases(path: Location) -> CommitmentView:
        return CommitmentView(path, view_key=key)

    def credit(path: Location) -> CreditView:
        return CreditView(path, view_key=key)

    views: list[tuple[str, Location, Callable[[Location], Any]]] = [  # labels in VIEW_ZH
        ("SLA view", settings.sla_location, sla), ("commitment cases", settings.commitments_location, cases),
        ("credit view", settings.credit_location, credit)]
    opened = []
    for label, where, make in views:
        # Opened once as they are: a damaged file is moved aside, a key mismatch or a read-only copy says so.
        view = _fresh_if_damaged(where, partial(make, where))
        opened.append((label, view))
        if view.in_memory:  # it could only be rebuilt in memory and lost: say so rather than pretend
            raise XiezhuError(f"the {label} cannot be rebuilt: {settings.sla_path.parent} is read-only here",
                              zh=f"无法重建{VIEW_ZH[label]}：{settings.sla_path.parent} 在此处是只读的")
    if settings.database_url:  # PostgreSQL (decision 52): each view follows the ledger again from the first entry
        with Progress(console=err) as progress:
            for label, view in opened:
                task = progress.add_task(in_lang(f"正在重建{VIEW_ZH[label]}", f"rebuilding {label}"),
                                         total=len(ledger_))
                n = view.rebuild(ledger_, progress=lambda k, task=task: progress.advance(task, k))
        err.print(in_lang(f"[green]已重建[/] {len(views)} 个视图，读取账本条目 {n} 条",
                          f"[green]rebuilt[/] {len(views)} views from {n} ledger entries"))
        return
    for _, view in opened:
        view.db.conn.close()
    with Progress(console=err) as progress:
        task = progress.add_task(in_lang("正在重建视图", "rebuilding the views"), total=len(ledger_))
        done = rebuild(ledger_, (settings.sla_path, sla),
                       [("commitments", settings.commitments_path, cases), ("credit", settings.credit_path, credit)],
                       progress=lambda k: progress.advance(task, k))
    err.print(in_lang(f"[green]已重建[/] {len(views)} 个视图，读取账本条目 {done.entries} 条，"
                      f"用时 {done.seconds:.1f} 秒（每秒 {done.rate_per_s:,.0f} 条）",
                      f"[green]rebuilt[/] {len(views)} views from {done.entries} ledger entries "
                      f"in {done.seconds:.1f} s ({done.rate_per_s:,.0f} entries/s)"))
