"""compose.yaml: its shape, and every xiezhu command in it parsed by the real CLI.

Commands are parsed by Click exactly as ``xiezhu`` would parse them, but never run:
an unknown command, an unknown option or a bad option value fails here, not on the
deployment's first start.
"""
from __future__ import annotations

import asyncio
import copy
import functools
import json
import subprocess
import time
import urllib.request
from pathlib import Path, PurePosixPath
from typing import Any
from urllib.parse import urlparse

import nats
import nats.errors
import pytest
import yaml
from typer.core import TyperGroup

import xiezhu.cli
from aggregates.registry import JUSTICE, Registry
from broker.auth import ADMIN, LEDGER, PROVISIONER, SIGNER, credentials_in
from broker.server import find_binary, free_port
from broker.streams import EVENTS_STREAM, sending_stream
from tests.conftest import jetstream
from tests.helpers import command_of, invoke
from xiezhu.node import provision

# Recent Typer (0.29 here) vendors Click as typer._click: the `click` package is not what it raises.
try:
    from typer._click import Context
    from typer._click import exceptions as cli_errors
except ImportError:  # older Typer runs on the `click` package
    from click import Context
    from click import exceptions as cli_errors

COMPOSE = Path(__file__).resolve().parent.parent / "compose.yaml"


@functools.cache
def _parsed() -> dict[str, Any]:
    data = yaml.safe_load(COMPOSE.read_text(encoding="utf-8"))
    assert isinstance(data, dict)
    return data


def _compose() -> dict[str, Any]:
    """compose.yaml, parsed once; each caller gets a copy of its own."""
    return copy.deepcopy(_parsed())


def _services() -> dict[str, dict[str, Any]]:
    services = _compose()["services"]
    assert isinstance(services, dict) and services
    return services


def _xiezhu_services() -> dict[str, dict[str, Any]]:
    return {name: svc for name, svc in _services().items()
            if isinstance(svc.get("command"), list) and svc["command"][:1] == ["xiezhu"]}


def _remaining(ctx: Context) -> list[str]:
    """What a group left for its subcommand (TyperGroup.invoke's ``[*_protected_args, *args]``).

    Click 8.2 deprecated the public ``protected_args`` (with a warning, an error under
    this project's pytest settings) for the private ``_protected_args``; Typer's vendored
    Click has only the private one.
    """
    protected = ctx._protected_args if hasattr(ctx, "_protected_args") else ctx.protected_args
    return [*protected, *ctx.args]


def parse_xiezhu(argv: list[str]) -> list[Context]:
    """Parse ``argv`` (starting with "xiezhu") as the CLI would, without invoking anything.

    Walks the groups the way ``TyperGroup.invoke`` (Click's ``Group.invoke``, non-chain
    mode) does: make the group's context, resolve the subcommand from what is left, make
    its context with the rest, repeat. Callbacks never run. Returns the contexts,
    outermost first; raises Click's UsageError (NoSuchOption, MissingParameter,
    BadParameter, "No such command" …) on a bad command.
    """
    assert argv[:1] == ["xiezhu"], argv
    cmd = command_of(xiezhu.cli.app)  # built once: parsing does not change it
    ctx = cmd.make_context("xiezhu", list(argv[1:]), resilient_parsing=False)
    contexts = [ctx]
    while isinstance(cmd, TyperGroup):
        args = _remaining(ctx)
        if not args:
            if cmd.invoke_without_command:
                break
            raise cli_errors.UsageError("Missing command.", ctx=ctx)
        name, sub, rest = cmd.resolve_command(ctx, args)
        assert name is not None and sub is not None
        ctx = sub.make_context(name, rest, parent=ctx)
        contexts.append(ctx)
        cmd = sub
    if ctx.args:  # a leaf command that got more arguments than it takes
        raise cli_errors.UsageError(f"unexpected extra arguments: {ctx.args}", ctx=ctx)
    return contexts


def _depends_on(svc: dict[str, Any]) -> list[str]:
    deps = svc.get("depends_on") or []
    return list(deps.keys()) if isinstance(deps, dict) else list(deps)


def _after(name: str) -> set[str]:
    """Every service ``name`` waits for, directly or through others."""
    services, seen, todo = _services(), set(), [name]
    while todo:
        for dep in _depends_on(services[todo.pop()]):
            if dep not in seen:
                seen.add(dep)
                todo.append(dep)
    return seen


def _nats_services() -> dict[str, dict[str, Any]]:
    return {name: svc for name, svc in _services().items()
            if str(svc.get("image", "")).startswith("nats:")}


# -- the tests --------------------------------------------------------------------------


def test_every_xiezhu_command_in_compose_parses_with_the_real_cli() -> None:
    services = _xiezhu_services()
    assert len(services) >= 5, sorted(services)
    for name, svc in services.items():
        try:
            contexts = parse_xiezhu(svc["command"])
        except cli_errors.ClickException as e:
            pytest.fail(f"service {name}: {svc['command']} does not parse: {e.format_message()}")
        assert len(contexts) >= 2, f"service {name}: {svc['command']} names no subcommand"


def test_command_checker_rejects_unknown_options_commands_and_missing_values() -> None:
    with pytest.raises(cli_errors.NoSuchOption):
        parse_xiezhu(["xiezhu", "agent", "--bureua", "gongan"])
    with pytest.raises(cli_errors.UsageError, match="no-such-command"):
        parse_xiezhu(["xiezhu", "no-such-command"])
    with pytest.raises(cli_errors.UsageError):  # a global option after the subcommand
        parse_xiezhu(["xiezhu", "agent", "--bureau", "gongan", "--nats-url", "nats://nats-1:4222"])
    with pytest.raises(cli_errors.UsageError):  # a subcommand of a nested group that does not exist
        parse_xiezhu(["xiezhu", "keys", "rotate-all"])
    with pytest.raises(cli_errors.MissingParameter):
        parse_xiezhu(["xiezhu", "agent"])
    with pytest.raises(cli_errors.BadParameter):
        parse_xiezhu(["xiezhu", "demo", "--requests", "lots"])
    with pytest.raises(cli_errors.UsageError):
        parse_xiezhu(["xiezhu", "ledger", "extra"])
    # and what is right passes, including a nested group and a negative flag
    parse_xiezhu(["xiezhu", "--data-dir", "/data", "keys", "init"])
    parse_xiezhu(["xiezhu", "ledger", "--no-projection"])


def test_compose_has_a_three_node_jetstream_cluster_with_routes_to_every_peer() -> None:
    nats = _nats_services()
    assert len(nats) >= 3, sorted(nats)
    for name, svc in nats.items():
        cmd = [str(a) for a in svc["command"]]
        assert "-js" in cmd or "--jetstream" in cmd, name
        assert cmd[cmd.index("--server_name") + 1] == name
        assert cmd[cmd.index("--cluster_name") + 1] == "xiezhu"
        assert cmd[cmd.index("--cluster") + 1] == "nats://0.0.0.0:6222"
        assert "-sd" in cmd and any(v.startswith(f"{name}:") for v in svc.get("volumes", [])), name
        routes = {urlparse(r).hostname for r in cmd[cmd.index("--routes") + 1].split(",")}
        assert routes == set(nats) - {name}, (name, routes)
    names = [svc["command"][svc["command"].index("--server_name") + 1] for svc in nats.values()]
    assert len(set(names)) == len(names)


def test_compose_has_postgres_ledger_and_agents_and_dependencies_exist() -> None:
    services = _services()
    postgres = [s for s in services.values() if str(s.get("image", "")).startswith("postgres:")]
    assert len(postgres) == 1 and "healthcheck" in postgres[0] and postgres[0].get("volumes")

    leaves = {name: parse_xiezhu(svc["command"])[-1].command_path
              for name, svc in _xiezhu_services().items()}
    assert "xiezhu ledger" in leaves.values()
    assert "xiezhu keys init" in leaves.values()
    assert "xiezhu provision" in leaves.values()
    agents = [name for name, path in leaves.items() if path == "xiezhu agent"]
    assert len(agents) >= 2, agents
    for name in agents:
        assert services[name].get("restart") == "unless-stopped", name
        deps = services[name]["depends_on"]
        assert {f"keys-{name.removeprefix('agent-')}", "provision"} <= set(deps), name
        for dep in deps:
            assert deps[dep]["condition"] == ("service_healthy" if dep == "postgres" else
                                              "service_completed_successfully"), (name, dep)
        # The PostgreSQL service is used: every agent keeps its store there (issue 14).
        assert deps["postgres"]["condition"] == "service_healthy", name
        url = services[name]["environment"]["XIEZHU_DATABASE_URL"]
        assert url.startswith("postgresql://xiezhu:") and url.endswith("@postgres:5432/xiezhu"), name

    # … and the ledger and the operator's tools keep and read the ledger and the views there (decision 52).
    for name in ("ledger", "ops"):
        assert services[name]["depends_on"]["postgres"]["condition"] == "service_healthy", name
        assert services[name]["environment"]["XIEZHU_DATABASE_URL"] == \
            services["agent-shenpi"]["environment"]["XIEZHU_DATABASE_URL"], name
    db = next(s for s in services.values() if str(s.get("image", "")).startswith("postgres:"))["environment"]
    assert f"{db['POSTGRES_USER']}:${{POSTGRES_PASSWORD:?" in services["ledger"]["environment"]["XIEZHU_DATABASE_URL"]
    assert db["POSTGRES_PASSWORD"].startswith("${POSTGRES_PASSWORD:?")  # one password, required, never a default

    for name, svc in services.items():
        for dep in _depends_on(svc):
            assert dep in services, f"service {name} depends on {dep!r}, which is not a service"


#: The services that run for good: each is one machine, with only its own keys.
RUNNING = ("xiezhu agent", "xiezhu ledger", "xiezhu checkpoint-signer")


def _export_of(name: str) -> Context:
    """The `xiezhu keys export` that fills the machine of running service ``name``."""
    services = _xiezhu_services()
    deps = [d for d in _depends_on(services[name]) if d in services
            and parse_xiezhu(services[d]["command"])[-1].command_path == "xiezhu keys export"]
    assert len(deps) == 1, f"service {name} has no keys export to depend on: {deps}"
    assert services[name]["depends_on"][deps[0]]["condition"] == "service_completed_successfully"
    own = _mounts(services[name])[str(DATA)][0]
    leaf = parse_xiezhu(services[deps[0]]["command"])[-1]
    target = _mounts(services[deps[0]]).get(str(leaf.params["out"]))
    assert target == (own, False), f"{deps[0]} does not write into {name}'s volume {own}"
    return leaf


def test_xiezhu_services_share_one_image_and_data_dir_and_each_machine_holds_only_its_keys() -> None:
    declared = set(_compose().get("volumes") or {})
    for name, svc in _xiezhu_services().items():
        assert svc.get("build") == ".", name
        assert svc["environment"]["XIEZHU_DATA_DIR"] == "/data", name
        mounts = _mounts(svc)
        for volume, _ in mounts.values():
            assert volume in declared, f"service {name} mounts undeclared volume {volume!r}"
        leaf = parse_xiezhu(svc["command"])[-1]
        if leaf.command_path in RUNNING:
            # No shared keys or seeds: another bureau's box key would open its mail.
            assert set(mounts) == {str(DATA)}, f"running service {name} mounts more than its own /data: {mounts}"
            bureaus = set(leaf.params["bureau"]) if leaf.command_path == "xiezhu agent" else {JUSTICE}
            assert set(_export_of(name).params["codes"]) == bureaus, name
            # The checkpoint signer opens nothing: no box or store key on its machine.
            assert _export_of(name).params["signing_only"] == (leaf.command_path == "xiezhu checkpoint-signer"), name
        else:
            assert mounts.get(str(DATA / "keys"), ("", False))[0] == "keys", f"set-up service {name}: no keys"


def test_every_service_can_reach_every_cluster_node_and_streams_are_replicated() -> None:
    nats = _nats_services()
    for name, svc in _xiezhu_services().items():
        url = parse_xiezhu(svc["command"])[0].params["nats_url"]
        if url is None:
            continue
        hosts = {urlparse(u).hostname for u in url.split(",")}
        assert hosts == set(nats), f"service {name} does not list every NATS node: {url!r}"
    provision = parse_xiezhu(_xiezhu_services()["provision"]["command"])[-1]
    assert provision.params["replicas"] == 3


# -- the generated NATS authorization (decision 22) ---------------------------------------------------------

DATA = PurePosixPath("/data")


def _mounts(svc: dict[str, Any]) -> dict[str, tuple[str, bool]]:
    """Each mount of a service: target path → (volume, read-only)."""
    out: dict[str, tuple[str, bool]] = {}
    for v in svc.get("volumes", []):
        source, target, *mode = str(v).split(":")
        out[target] = (source, bool(mode) and "ro" in mode[0].split(","))
    return out


def _nats_config() -> tuple[str, dict[str, Any], Context]:
    """The one-shot service that runs `xiezhu nats-config`, and its parsed leaf command."""
    found = [(name, svc, parse_xiezhu(svc["command"])[-1]) for name, svc in _xiezhu_services().items()]
    found = [f for f in found if f[2].command_path == "xiezhu nats-config"]
    assert len(found) == 1, [f[0] for f in found]
    return found[0]


def _server_config(cmd: list[str]) -> PurePosixPath:
    flag = "--config" if "--config" in cmd else "-c"
    assert flag in cmd, f"no --config in {cmd}"
    return PurePosixPath(cmd[cmd.index(flag) + 1])


def _users_of(contexts: list[Context]) -> set[str]:
    """The NATS users a xiezhu service connects as (see xiezhu.node.Node)."""
    leaf = contexts[-1]
    users: set[str] = set()
    if leaf.command_path == "xiezhu agent":
        users |= set(leaf.params["bureau"])
    elif leaf.command_path == "xiezhu ledger":
        users |= {LEDGER, JUSTICE} if leaf.params.get("projection", True) else {LEDGER}
        users.add(ADMIN)  # the layout check and the watch of XZ's sources (decision 69), where it holds the seed
    elif leaf.command_path == "xiezhu checkpoint-signer":
        users.add(SIGNER)
    if leaf.command_path == "xiezhu provision":
        users.add(PROVISIONER)
    return users


def test_the_checkpoint_key_lives_off_the_ledgers_host_and_the_ledger_asks_the_signer() -> None:
    """Decision 49: `xiezhu checkpoint-signer` on a machine of its own; the ledger runs with --remote-signer."""
    services = _xiezhu_services()
    signers = [name for name, svc in services.items()
               if parse_xiezhu(svc["command"])[-1].command_path == "xiezhu checkpoint-signer"]
    assert len(signers) == 1, signers
    signer, svc = signers[0], services[signers[0]]
    ledger = parse_xiezhu(services["ledger"]["command"])[-1]
    assert ledger.params["remote_signer"] is True
    assert services["ledger"]["depends_on"][signer]["condition"] == "service_started"
    assert svc.get("restart") == "unless-stopped"
    assert {"provision"} <= set(svc["depends_on"]) and svc["depends_on"]["provision"]["condition"] == \
        "service_completed_successfully"
    export = _export_of(signer)
    assert export.params["signing_only"] and list(export.params["nats_user"]) == [SIGNER]
    assert SIGNER not in (_export_of("ledger").params["nats_user"] or [])
    # Two machines: the signer's volume is its own, not the ledger's.
    assert _mounts(svc)[str(DATA)][0] != _mounts(services["ledger"])[str(DATA)][0]


def test_nats_config_runs_first_and_writes_the_seeds_and_the_servers_authorization() -> None:
    name, svc, leaf = _nats_config()
    # The node's whole configuration: JetStream's fsync of every write (decision 54) and the
    # authorization; the cluster settings are the node's flags.
    assert not leaf.params["cluster"]
    out = PurePosixPath(str(leaf.params["out_file"]))
    mounts = _mounts(svc)
    assert svc["environment"]["XIEZHU_DATA_DIR"] == str(DATA)
    assert str(out.parent) in mounts and mounts[str(out.parent)][1] is False, mounts
    seeds = mounts.get(str(DATA / "nats-keys"))
    assert seeds is not None and seeds[1] is False, "nats-config must write the seeds into a volume"
    assert seeds[0] != mounts[str(out.parent)][0], "the servers' volume must not hold the seeds"
    assert not set(_depends_on(svc)) & set(_nats_services()), "nats-config runs before any NATS node"
    assert svc.get("restart") == "no"


def test_every_nats_server_starts_on_the_generated_authorization_after_nats_config() -> None:
    name, svc, leaf = _nats_config()
    out = PurePosixPath(str(leaf.params["out_file"]))
    auth_volume = _mounts(svc)[str(out.parent)][0]
    seeds_volume = _mounts(svc)[str(DATA / "nats-keys")][0]
    for server, nsvc in _nats_services().items():
        conf = _server_config([str(a) for a in nsvc["command"]])
        mounts = _mounts(nsvc)
        assert conf.name == out.name, (server, conf)
        assert mounts.get(str(conf.parent)) == (auth_volume, True), f"{server} does not mount {auth_volume} read-only"
        assert seeds_volume not in {v for v, _ in mounts.values()}, f"{server} must see public keys only"
        assert nsvc["depends_on"][name]["condition"] == "service_completed_successfully", server


def test_every_xiezhu_service_on_nats_has_the_seed_of_each_user_it_connects_as() -> None:
    _, config_svc, _ = _nats_config()
    seeds_volume = _mounts(config_svc)[str(DATA / "nats-keys")][0]
    generated = {*Registry.load().codes(), LEDGER, ADMIN, PROVISIONER, SIGNER}  # what `xiezhu nats-config` makes
    checked = 0
    for name, svc in _xiezhu_services().items():
        contexts = parse_xiezhu(svc["command"])
        users = _users_of(contexts)
        if contexts[0].params["nats_url"] is None and not users:
            continue
        checked += 1
        assert users <= generated, (name, users - generated)
        assert svc["environment"]["XIEZHU_DATA_DIR"] == str(DATA), name
        if contexts[-1].command_path in RUNNING:  # its own seeds only, exported into its /data
            assert set(_export_of(name).params["nats_user"] or []) == users, name
        else:  # Settings.nats_keys_dir of /data; read-only (only nats-config writes seeds), but for
            # provision, which deletes the one-shot provisioner's seed once it has run.
            read_only = PROVISIONER not in users
            assert _mounts(svc).get(str(DATA / "nats-keys")) == (seeds_volume, read_only), \
                f"service {name} connects as {sorted(users)} but has no {seeds_volume} at /data/nats-keys " \
                f"(read-only: {read_only})"
        deps = _after(name)
        assert "nats-config" in deps or deps & set(_nats_services()), name
    assert checked >= 5


def test_the_compose_cluster_forms_on_the_generated_authorization_and_enforces_it(tmp_path: Path) -> None:
    """The three nodes' own flags from compose.yaml, on the file `xiezhu nats-config` writes, on loopback."""
    name, config_svc, _ = _nats_config()
    data, auth_dir = tmp_path / "data", tmp_path / "nats-auth"
    auth_dir.mkdir()
    argv = [str(a) for a in config_svc["command"]]
    out = PurePosixPath(argv[argv.index("--out") + 1])
    argv[argv.index("--out") + 1] = str(auth_dir / out.name)  # where the nats-auth volume is mounted
    result = invoke(xiezhu.cli.app, argv[1:],
                                env={"XIEZHU_DATA_DIR": str(data), "XIEZHU_NATS_URL": ""})
    assert result.exit_code == 0, result.output

    servers = _nats_services()
    ports = {n: {"client": free_port(), "route": free_port(), "http": free_port()} for n in servers}
    procs: list[subprocess.Popen[bytes]] = []
    try:
        for n, svc in servers.items():
            procs.append(subprocess.Popen(_on_loopback(svc, n, ports, tmp_path / n, auth_dir),
                                          stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        url = ",".join(f"nats://127.0.0.1:{p['client']}" for p in ports.values())
        _wait_healthy([p["http"] for p in ports.values()], procs)
        for p in ports.values():  # decision 54: the cluster fsyncs every write, as the embedded server does
            with urllib.request.urlopen(f"http://127.0.0.1:{p['http']}/varz", timeout=5) as r:
                assert json.load(r)["jetstream"]["config"]["sync_always"] is True
        replicas = parse_xiezhu(_xiezhu_services()["provision"]["command"])[-1].params["replicas"]
        # The consumers of the bureaus compose runs (each R3 consumer takes a while to create).
        bureaus = {b for svc in _xiezhu_services().values()
                   for b in parse_xiezhu(svc["command"])[-1].params.get("bureau") or []}
        asyncio.run(_exercise_cluster(url, data / "nats-keys", replicas, sorted(bureaus)))
    finally:
        for p in procs:
            p.terminate()
        for p in procs:
            try:
                p.wait(timeout=10)
            except subprocess.TimeoutExpired:
                p.kill()


def _on_loopback(svc: dict[str, Any], name: str, ports: dict[str, dict[str, int]], store: Path,
                 auth_dir: Path) -> list[str]:
    """A compose node's nats-server flags with hosts, ports and paths mapped onto this machine."""
    cmd = [str(a) for a in svc["command"]]
    out = [str(find_binary())]
    i = 0
    while i < len(cmd):
        flag, value = cmd[i], cmd[i + 1] if i + 1 < len(cmd) else ""
        if flag in ("--config", "-c"):
            out += [flag, str(auth_dir / PurePosixPath(value).name)]
        elif flag == "-sd":
            out += [flag, str(store)]
        elif flag == "-m":
            out += [flag, str(ports[name]["http"])]
        elif flag == "--client_advertise":
            out += [flag, f"127.0.0.1:{ports[name]['client']}"]
        elif flag == "--cluster":
            assert urlparse(value).port == 6222
            out += [flag, f"nats://127.0.0.1:{ports[name]['route']}"]
        elif flag == "--routes":
            out += [flag, ",".join(f"nats://127.0.0.1:{ports[str(urlparse(r).hostname)]['route']}"
                                   for r in value.split(","))]
        else:
            out.append(flag)
            i += 1
            continue
        i += 2
    return [*out, "-a", "127.0.0.1", "-p", str(ports[name]["client"])]


def _wait_healthy(http_ports: list[int], procs: list[subprocess.Popen[bytes]], timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    pending = set(http_ports)
    while pending:
        assert all(p.poll() is None for p in procs), "a nats-server exited: compose flags it does not take?"
        assert time.monotonic() < deadline, f"cluster not healthy: {sorted(pending)}"
        for port in list(pending):
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=1) as r:
                    if r.status == 200:
                        pending.discard(port)
            except OSError:
                pass
        time.sleep(0.05)


async def _exercise_cluster(url: str, seeds: Path, replicas: int, bureaus: list[str]) -> None:
    servers = url.split(",")
    with pytest.raises(nats.errors.Error, match="(?i)authorization violation"):
        await nats.connect(servers=servers[:1], allow_reconnect=False)  # no seed: refused
    assert "shenpi" in bureaus
    await provision(url, bureaus, replicas=replicas, credentials=credentials_in(seeds, PROVISIONER))
    errors: list[Exception] = []

    async def on_error(e: Exception) -> None:
        errors.append(e)

    admin = await nats.connect(servers=servers, error_cb=on_error, **credentials_in(seeds, ADMIN))
    shenpi = await nats.connect(servers=servers[1:], error_cb=on_error, **credentials_in(seeds, "shenpi"))
    try:
        info = await jetstream(admin).stream_info(EVENTS_STREAM)
        assert info.config.num_replicas == replicas and info.cluster is not None
        assert len(info.cluster.replicas or []) == replicas - 1
        await shenpi.jetstream().publish("xz.shenpi.gongan.assistance.requested", b"x", stream=sending_stream("shenpi"))
        with pytest.raises(nats.errors.TimeoutError):  # as another bureau: refused
            await shenpi.jetstream(timeout=0.5).publish("xz.gongan.shenpi.assistance.received", b"x")
        with pytest.raises(nats.errors.TimeoutError):  # and the provisioner deletes nothing
            await admin.jetstream(timeout=0.5).delete_stream(EVENTS_STREAM)
        await admin.flush()
        await asyncio.sleep(0.05)
        assert (await jetstream(admin).stream_info(EVENTS_STREAM)).state.messages == 1
        assert sum("permissions violation" in str(e) for e in errors) == 2
    finally:
        await shenpi.close()
        await admin.close()
