"""``xiezhu alerts``: who at a bureau is mailed its deadline reminders and breach notices.

``xiezhu serve`` mails them when an SMTP server is configured (``XIEZHU_SMTP_HOST``,
``XIEZHU_SMTP_PORT``, ``XIEZHU_SMTP_FROM``, ``XIEZHU_SMTP_USER``/``XIEZHU_SMTP_PASSWORD``,
``XIEZHU_SMTP_STARTTLS=1``), each notice once (:mod:`xiezhu.http.alerts`).
"""
from __future__ import annotations

from typing import Annotated

import typer

from aggregates.registry import Registry, zh_name
from xiezhu.cli.common import err, in_lang, print_json
from xiezhu.cli.common import settings_of as _settings

app = typer.Typer(no_args_is_help=True, rich_markup_mode="rich",
                  help="Deadline alert mail: who at a bureau is mailed its deadline reminders and breach notices.")
BureauOpt = Annotated[str, typer.Option(
    "--bureau", help="The bureau: its code, name or a unique part (gongan, 区公安分局, 公安).")]


@app.command("add")
def add(ctx: typer.Context, bureau: BureauOpt,
        address: Annotated[str, typer.Argument(help="An e-mail address.")]) -> None:
    """Mail the bureau's deadline alerts to ADDRESS too (from the next notice on).

    Example: [bold]xiezhu alerts add --bureau gongan duty@gongan.example.gov.cn[/]
    """
    from xiezhu.http.alerts import Alerts, alerts_path

    code = Registry.load().resolve(bureau)
    alerts = Alerts(code, alerts_path(_settings(ctx), code))
    try:
        added = alerts.add(address)
    finally:
        alerts.close()
    err.print(in_lang(f"{address.strip()} " + (f"已加入{zh_name(code)}的告警名单" if added
                                               else f"已在{zh_name(code)}的告警名单上"),
                      f"{address.strip()} {'added to' if added else 'was already on'} {code}'s alert list"))


@app.command("remove")
def remove(ctx: typer.Context, bureau: BureauOpt,
           address: Annotated[str, typer.Argument(help="An e-mail address on the list.")]) -> None:
    """Stop mailing the bureau's alerts to ADDRESS.

    Example: [bold]xiezhu alerts remove --bureau gongan duty@gongan.example.gov.cn[/]
    """
    from schemas.errors import XiezhuError
    from xiezhu.http.alerts import Alerts, alerts_path

    code = Registry.load().resolve(bureau)
    alerts = Alerts(code, alerts_path(_settings(ctx), code))
    try:
        if not alerts.remove(address):
            raise XiezhuError(f"{address.strip()} is not on {code}'s alert list",
                              zh=f"{address.strip()} 不在{zh_name(code)}的告警名单上")
    finally:
        alerts.close()
    err.print(in_lang(f"{address.strip()} 已从{zh_name(code)}的告警名单中删除",
                      f"{address.strip()} removed from {code}'s alert list"))


@app.command("list")
def list_(ctx: typer.Context, bureau: BureauOpt,
          as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False) -> None:
    """The bureau's alert addresses and the alerts mailed so far.

    Example: [bold]xiezhu alerts list --bureau gongan[/]
    """
    from xiezhu.http.alerts import Alerts, alerts_path

    code = Registry.load().resolve(bureau)
    alerts = Alerts(code, alerts_path(_settings(ctx), code))
    try:
        recipients, mailed = alerts.recipients(), alerts.mailed()
    finally:
        alerts.close()
    if as_json:
        print_json({"bureau": code, "recipients": recipients, "mailed": mailed})
        return
    from xiezhu.cli.screens import MAILED_COLUMNS, Words, mailed_rows
    from xiezhu.cli.tables import lang, show

    language = lang()
    w = Words(Registry.load(), language)
    if language == "zh":
        print(f"{w.bureau(code)}：{len(recipients)} 个收件地址，已发送 {len(mailed)} 封提醒")
    else:
        print(f"{code}: {len(recipients)} addresses, {len(mailed)} alerts mailed")
    for a in recipients:
        print(f"  {a}")
    if mailed:
        show("已发送的提醒" if language == "zh" else "alerts mailed", MAILED_COLUMNS, mailed_rows(mailed, w),
             language=language)
