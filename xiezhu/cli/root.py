"""The root command and its global options, and how a command line names its command.

A long-running service (``xiezhu agent``, ``xiezhu ledger``, ``xiezhu checkpoint-signer``) gets a
root command with the service commands alone: the other command groups' modules are not imported and
Typer does not build their hundred commands, which was two thirds of a service's start-up (each
restart by ``xiezhu run``'s supervisor pays it again).  Every other run gets the whole tree
(``xiezhu.cli.entry.main`` chooses).
"""
from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Annotated

import typer

from xiezhu.cli.common import DatabaseUrl, DataDir, NatsUrl, State
from xiezhu.cli.helptext import LocalGroup
from xiezhu.settings import Settings

#: Commands of ``xiezhu.cli.services`` run with the service commands alone (``tests/test_cli.py`` checks
#: that each is one of them).
SERVICE_COMMANDS = frozenset({"agent", "ledger", "checkpoint-signer"})
#: The root's options that take a value (the command is the first word that is neither one nor its value).
_VALUED = frozenset({"--data-dir", "--nats-url", "--lang", "--database-url"})

Lang = Annotated[str | None, typer.Option(
    "--lang", envvar="XIEZHU_LANG", show_envvar=True,
    help="zh (default) or en: the language of help, tables and states for people.")]


LogJson = Annotated[bool, typer.Option("--log-json", envvar="XIEZHU_LOG_JSON", show_envvar=True,
                                       help="Long-running services log one JSON object per line.")]


def main_options(ctx: typer.Context, data_dir: DataDir = None, nats_url: NatsUrl = None, lang: Lang = None,
                 database_url: DatabaseUrl = None, log_json: LogJson = False) -> None:
    """xiezhu — signed, event-sourced 行政协助 between bureaus, with a 司法局 ledger."""
    from xiezhu.cli.tables import ENV_LANG
    from xiezhu.cli.tables import lang as resolve_lang
    from xiezhu.logs import ENV_LOG_JSON

    if log_json:
        os.environ[ENV_LOG_JSON] = "1"  # the services of `xiezhu run` inherit it

    os.environ[ENV_LANG] = resolve_lang(lang)  # every table of this process speaks it
    state = State()
    state.settings = Settings.resolve(data_dir, nats_url, database_url=database_url)
    ctx.obj = state


def root_app() -> typer.Typer:
    """The root command with its global options and no command yet."""
    app = typer.Typer(cls=LocalGroup, no_args_is_help=True, add_completion=False, rich_markup_mode="rich",
                      help="xiezhu — signed, event-sourced 行政协助 between bureaus, with a 司法局 ledger.")
    app.callback()(main_options)
    return app


def command_of(args: Sequence[str]) -> str | None:
    """The command a command line names: its first word past the root's options, if any."""
    skip = False
    for arg in args:
        if skip:
            skip = False
        elif arg.startswith("-"):
            skip = arg in _VALUED
        else:
            return arg
    return None
