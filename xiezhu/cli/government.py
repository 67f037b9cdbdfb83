"""``xiezhu government …``: 区政府's own acts, signed by 区政府办公室 (``zhengfuban``).

区政府 acts through its office (decision 43).  What these commands sign goes out with
区政府办公室's agent (``xiezhu agent --bureau zhengfuban``) and the ledger records it.
"""
from __future__ import annotations

from datetime import date
from typing import Annotated

import typer

from agencies.government import MEASURES, Government
from aggregates.registry import zh_name
from schemas.errors import XiezhuError
from schemas.sla import DISTRICT_GOVERNMENT
from xiezhu.cli.common import CliInputError, ledger_at, resolve_bureau, said, settings_of, system_of

app = typer.Typer(no_args_is_help=True, rich_markup_mode="rich",
                  help="区政府's own acts, signed by 区政府办公室: the 证明事项清单's publication, 第十二条 criticism.")


def _government(ctx: typer.Context) -> Government:
    return system_of(ctx).government()


def requests_about(ctx: typer.Context, bureau: str, given: list[str]) -> list[tuple[str, str]]:
    """``REQUESTER/NUMBER`` (or a number the ledger holds once) as (case id, number) of a request of ``bureau``."""
    from projections.history import find_cases

    settings = settings_of(ctx)
    if not settings.ledger_exists():
        raise XiezhuError(f"no ledger in {settings.data_dir}: 区政府 names requests the ledger recorded",
                          zh=f"{settings.data_dir} 中没有账本：区政府只能就账本记录的协助请求作出处理")
    ledger = ledger_at(settings)
    try:
        about: list[tuple[str, str]] = []
        for text in given:
            requester, _, number = text.rpartition("/")
            found = find_cases(ledger, number, resolve_bureau(requester) if requester else None)
            if len(found) != 1:
                raise CliInputError(f"--request {text}: {len(found) or 'no'} requests numbered {number} in the "
                                    "ledger" + ("; write REQUESTER/NUMBER" if found else ""),
                                    zh=f"--request {text}：账本中编号为 {number} 的请求有 {len(found)} 件"
                                       + ("；请写作 提出方/编号" if found else ""))
            first = ledger.case(found[0])[0]
            if bureau not in (first.sender, first.recipient):
                raise CliInputError(f"--request {text}: {bureau} is neither the requester nor the assistor "
                                    f"({first.sender} → {first.recipient})",
                                    zh=f"--request {text}：{zh_name(bureau)}既不是提出方也不是协助方"
                                       f"（{zh_name(first.sender)} → {zh_name(first.recipient)}）")
            about.append((found[0], number))
        return about
    finally:
        ledger.close()


@app.command("criticise")
def criticise(ctx: typer.Context,
              bureau: Annotated[str, typer.Argument(help="The bureau criticised (code, name or 简称).",
                                                    callback=resolve_bureau)],
              request: Annotated[list[str], typer.Option(
                  "--request", help="A request the breach is about, as REQUESTER/NUMBER; repeat.")],
              reasons: Annotated[str, typer.Option(help="What the bureau did against the 办法.")],
              correct_by: Annotated[str, typer.Option("--correct-by", help="责令其限期改正: the date, YYYY-MM-DD.")],
              measure: Annotated[str, typer.Option(help="通报批评 (criticism) or 教育 (education).")] = "通报批评",
              ) -> None:
    """附件2 第十二条: 区政府 educates or criticises a bureau (通报批评) and orders it to correct by a date.

    A notice signed by 区政府办公室 goes to the bureau; the ledger records it with the first request
    named, whose history and replay show it.

    Example: [bold]xiezhu government criticise ziran --request shenpi/20260007 --reasons 逾期 --correct-by 2026-10-20[/]
    """
    if measure not in MEASURES:
        raise CliInputError(f"--measure: 通报批评 or 教育, not {measure!r}",
                            zh=f"--measure：应为 通报批评 或 教育，而不是 {measure!r}")
    try:
        by = date.fromisoformat(correct_by)
    except ValueError:
        raise CliInputError(f"--correct-by: a date YYYY-MM-DD, not {correct_by!r}",
                            zh=f"--correct-by：应为 YYYY-MM-DD 格式的日期，而不是 {correct_by!r}") from None
    if len(reasons.strip()) < 2:
        raise CliInputError("--reasons: say what the bureau did (at least two characters)",
                            zh="--reasons：请写明该单位的行为（至少两个字）")
    _government(ctx).criticise(bureau, measure, requests_about(ctx, bureau, request), reasons.strip(), by)
    from aggregates.registry import Registry

    what = "通报批评" if MEASURES[measure] == "criticism" else "予以教育"
    said(settings_of(ctx), DISTRICT_GOVERNMENT,
         f"第十二条: 区政府对{Registry.load().name(bureau)}{what}，责令其于{by.isoformat()}前改正",
         f"第十二条：区政府对{Registry.load().name(bureau)}{what}，责令其于{by.isoformat()}前改正")


@app.command("publish")
def publish(ctx: typer.Context) -> None:
    """一(三): 区政府 publishes the 证明事项清单 as 区司法局 reviewed it; 区政府办公室 signs the act to 区司法局.

    Its later adjustments are 区司法局's to publish and file (一(四): xiezhu catalogue publish --kind matters).

    Example: [bold]xiezhu government publish[/]
    """
    version, sent = _government(ctx).publish_list()
    if not sent:
        raise XiezhuError(f"区政府 published version {version} of the 证明事项清单 already",
                          zh=f"区政府已公布第 {version} 版证明事项清单")
    said(settings_of(ctx), DISTRICT_GOVERNMENT, f"一(三): 区政府公布证明事项清单第{version}版",
         f"一(三)：区政府公布证明事项清单第{version}版")
