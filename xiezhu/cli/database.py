"""``xiezhu database …``: the PostgreSQL database of a deployment that outgrew SQLite (decision 52)."""
from __future__ import annotations

from typing import Annotated

import typer

from aggregates.database import DEFAULT_PREFIX, apply_roles, roles_sql
from aggregates.registry import JUSTICE, Registry
from schemas.errors import XiezhuError
from xiezhu.cli.common import in_lang, resolve_bureau, settings_of

app = typer.Typer(no_args_is_help=True, rich_markup_mode="rich",
                  help="The PostgreSQL database of XIEZHU_DATABASE_URL: a role per bureau.")


@app.command("roles")
def roles(ctx: typer.Context,
          bureau: Annotated[list[str] | None, typer.Option(
              "--bureau", help="A bureau to give a role (code, name or 简称); repeat. Default: every bureau.")] = None,
          prefix: Annotated[str, typer.Option(help="The schemas' prefix (?schema= of the URL).")] = DEFAULT_PREFIX,
          apply: Annotated[bool, typer.Option("--apply", help="Run the SQL on XIEZHU_DATABASE_URL, as its owner, "
                                                               "instead of printing it.")] = False) -> None:
    """Give each bureau a role of its own, with rights on its own schema only (and 区司法局's on its records).

    Prints the SQL (to read, or to run with psql); --apply runs it. Set each role's password after,
    and give each machine a URL with its bureau's role.

    Example: [bold]xiezhu database roles --bureau shenpi --bureau gongan[/]
    """
    codes = [resolve_bureau(b) or b for b in bureau] if bureau else [b.code for b in Registry.load()]
    sql_text = roles_sql([c for c in codes if c != JUSTICE], prefix=prefix, justice=JUSTICE)
    if not apply:
        typer.echo(sql_text, nl=False)
        return
    settings = settings_of(ctx)
    if not settings.database_url:
        raise XiezhuError("--apply needs XIEZHU_DATABASE_URL (or --database-url): the database to make the roles in",
                          zh="--apply 需要 XIEZHU_DATABASE_URL（或 --database-url）：在该数据库中创建角色")
    apply_roles(settings.database_url, sql_text)
    typer.echo(in_lang(f"已为 {', '.join(dict.fromkeys([*codes, JUSTICE]))} 创建角色；请设置其密码"
                       "（ALTER ROLE … PASSWORD），并为每台机器提供使用其自身角色的 URL",
                       f"roles made for {', '.join(dict.fromkeys([*codes, JUSTICE]))}; set their passwords "
                       "(ALTER ROLE … PASSWORD) and give each machine a URL with its own role"))
