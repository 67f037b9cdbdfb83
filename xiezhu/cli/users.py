"""``xiezhu users``: the console's accounts (``xiezhu serve`` at ``/``), one bureau each."""
from __future__ import annotations

import sys
from typing import Annotated

import typer

from aggregates.registry import Registry, zh_name
from xiezhu.cli.common import err, in_lang, print_json
from xiezhu.cli.common import settings_of as _settings

app = typer.Typer(no_args_is_help=True, rich_markup_mode="rich",
                  help="Accounts of the web console of `xiezhu serve`, one bureau each.")


@app.command("create")
def create(
    ctx: typer.Context,
    bureau: Annotated[str, typer.Option("--bureau", help="The bureau the account works for; sifa sees every bureau.")],
    login: Annotated[str, typer.Argument(help="The login name, e.g. wang.li")],
    name: Annotated[str, typer.Option(help="The person's name, as the console shows it.")] = "",
    password_stdin: Annotated[bool, typer.Option(
        "--password-stdin", help="Read the password from standard input instead of asking.")] = False,
) -> None:
    """Make a console account; the password (at least 10 characters) is kept as a scrypt hash.

    Example: [bold]xiezhu users create --bureau gongan wang.li --name 王丽[/]
    """
    from xiezhu.http.users import UserStore

    code = Registry.load()[bureau].code
    if password_stdin:
        password = sys.stdin.readline().rstrip("\n")
    else:
        password = typer.prompt("password", hide_input=True, confirmation_prompt=True)
    users = UserStore(_settings(ctx).data_dir / "users.db")
    try:
        user = users.create(login, code, password, name)
    finally:
        users.close()
    err.print(in_lang(f"已为{zh_name(code)}创建账户 {user.login}；请在 `xiezhu serve` 的控制台登录",
                      f"account {user.login} for {code} made; log in at the console of `xiezhu serve`"))


@app.command("list")
def list_(ctx: typer.Context, as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False) -> None:
    """The console's accounts (never their passwords).

    Example: [bold]xiezhu users list[/]
    """
    from xiezhu.http.users import UserStore

    users = UserStore(_settings(ctx).data_dir / "users.db")
    try:
        rows = users.list()
    finally:
        users.close()
    if as_json:
        print_json(rows)
        return
    from xiezhu.cli.screens import USERS_COLUMNS, Words, user_rows
    from xiezhu.cli.tables import lang, show

    language = lang()
    show(f"控制台账户 {len(rows)} 个" if language == "zh" else f"{len(rows)} console accounts", USERS_COLUMNS,
         user_rows(rows, Words(Registry.load(), language)), language=language)


@app.command("disable")
def disable(ctx: typer.Context, login: Annotated[str, typer.Argument(help="The login name.")]) -> None:
    """Lock an account out and end its sessions.

    Example: [bold]xiezhu users disable wang.li[/]
    """
    from schemas.errors import XiezhuError
    from xiezhu.http.users import UserStore

    users = UserStore(_settings(ctx).data_dir / "users.db")
    try:
        if not users.disable(login):
            raise XiezhuError(f"no account {login!r}", zh=f"没有账户 {login!r}")
    finally:
        users.close()
    err.print(in_lang(f"账户 {login} 已停用", f"account {login} disabled"))
