"""compose.yaml: its shape, and every xiezhu command in it parsed by the real CLI.

Commands are parsed by Click exactly as ``xiezhu`` would parse them, but never run:
an unknown command, an unknown option or a bad option value fails here, not on the
deployment's first start.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import pytest
import typer
import yaml
from typer.core import TyperGroup

import xiezhu.cli

# Recent Typer (0.29 here) vendors Click as typer._click: the `click` package is not what it raises.
try:
    from typer._click import Context
    from typer._click import exceptions as cli_errors
except ImportError:  # older Typer runs on the `click` package
    from click import Context
    from click import exceptions as cli_errors

COMPOSE = Path(__file__).resolve().parent.parent / "compose.yaml"


def _compose() -> dict[str, Any]:
    data = yaml.safe_load(COMPOSE.read_text(encoding="utf-8"))
    assert isinstance(data, dict)
    return data


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
    cmd = typer.main.get_command(xiezhu.cli.app)
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
        assert {"keys", "provision"} <= set(deps), name
        for dep in ("keys", "provision"):
            assert deps[dep]["condition"] == "service_completed_successfully", (name, dep)

    for name, svc in services.items():
        for dep in _depends_on(svc):
            assert dep in services, f"service {name} depends on {dep!r}, which is not a service"


def test_xiezhu_services_share_one_image_data_dir_and_keys_volume() -> None:
    declared = set(_compose().get("volumes") or {})
    for name, svc in _xiezhu_services().items():
        assert svc.get("build") == ".", name
        assert svc["environment"]["XIEZHU_DATA_DIR"] == "/data", name
        mounts = {str(v).split(":")[1]: str(v).split(":")[0] for v in svc.get("volumes", [])}
        assert mounts.get("/data/keys") == "keys", f"service {name}: keys volume not at /data/keys"
        for volume in mounts.values():
            assert volume in declared, f"service {name} mounts undeclared volume {volume!r}"


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
