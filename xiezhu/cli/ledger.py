"""``xiezhu replay``, ``xiezhu verify-bundle``, ``xiezhu checkpoint`` and ``xiezhu witnesses``: dispute replay,
evidence bundles, and the heads a bureau witnessed.

The commands are registered on :data:`ledger_app`, which the root app mounts at top level
(``app.add_typer(ledger_app)`` without a name).  In a directory made by ``xiezhu demo`` the
default "now" is the demo's simulated clock, as for ``xiezhu sla`` (:func:`xiezhu.cli.sla.resolve_now`).
"""
from __future__ import annotations

import contextlib
import sys
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Annotated

import msgspec
import typer

from agencies.disclosure import render_disclosure
from agencies.trust.keys import KeyStore
from aggregates.calendar_store import CalendarStore
from aggregates.registry import JUSTICE, Registry, zh_name
from aggregates.store import SHANGHAI
from broker.ledger.store import Ledger
from broker.signing import KeyRing, Signer
from projections.bundle import BundleReport, verify_bundle, write_bundle
from projections.history import UnknownCase, find_cases
from projections.replay import render_text, replay
from schemas.errors import XiezhuError, zh_of
from schemas.trust import TrustEntry, TrustList
from xiezhu.cli.common import (
    AsJson,
    Operator,
    Reason,
    Reveal,
    in_lang,
    ledger_at,
    operator_name,
    parse_instant,
    system_of,
)
from xiezhu.cli.common import print_json as _print_json
from xiezhu.cli.common import settings_of as _settings
from xiezhu.cli.sla import resolve_now
from xiezhu.cli.tables import Col
from xiezhu.settings import Settings

__all__ = ["ledger_app"]

ledger_app = typer.Typer(no_args_is_help=True, rich_markup_mode="rich",
                         help="Dispute replay and evidence bundles from the 司法局 ledger.")




class CliLedgerError(XiezhuError):
    """A replay or bundle command was given something it cannot use."""

    code = "cli.ledger"








@contextlib.contextmanager
def _ledger(settings: Settings, *, read_only: bool = True) -> Iterator[Ledger]:
    if not settings.ledger_exists():
        raise CliLedgerError(f"no ledger in {settings.data_dir}; run `xiezhu demo` or start `xiezhu ledger` first",
                             zh=f"{settings.data_dir} 中没有账本；请先运行 `xiezhu demo` 或启动 `xiezhu ledger`")
    ledger = ledger_at(settings, read_only=read_only)
    try:
        yield ledger
    finally:
        ledger.close()


def _case_id(ledger: Ledger, number: str, sender: str | None) -> str:
    found = find_cases(ledger, number, sender)
    if not found:
        raise UnknownCase(f"no case numbered {number}" + (f" from {sender}" if sender else "") + " in the ledger",
                          zh="账本中没有" + (f"{zh_name(sender)}的" if sender else "") + f"编号为 {number} 的案件",
                          number=number)
    if len(found) > 1:
        raise CliLedgerError(f"{len(found)} cases are numbered {number}; add --from REQUESTER",
                             zh=f"编号为 {number} 的案件有 {len(found)} 件；请加 --from 提出方", number=number)
    return found[0]


def _justice_signer(settings: Settings, keys: KeyStore) -> Signer | None:
    """区司法局's signer, where its key lives (the ledger's machine); elsewhere bundles go unsigned."""
    if not (settings.keys_dir / f"{JUSTICE}.ed25519").exists():
        return None
    return keys.signer(JUSTICE)


@ledger_app.command("replay")
def replay_cmd(
    ctx: typer.Context,
    number: Annotated[str, typer.Argument(help="A letter number (20260001) or a commitment case (C20260001).")],
    sender: Annotated[str | None, typer.Option("--from", help="The requesting / handling bureau.")] = None,
    as_of: Annotated[str | None, typer.Option(
        "--as-of", help="Show the case as it stood then: entries the ledger had received by this ISO time "
                        "(naive: Asia/Shanghai); open time limits are judged at it.")] = None,
    as_json: AsJson = False,
    bundle: Annotated[Path | None, typer.Option(
        "--bundle", help="Also write an evidence bundle (ZIP) that `xiezhu verify-bundle` checks offline.")] = None,
    all_links: Annotated[bool, typer.Option(
        "--all-links", help="Also list a commitment case's unanswered requests (scans every request).")] = False,
    reveal: Reveal = False,
    reason: Reason = None,
    operator: Operator = None,
) -> None:
    """Replay a case from the ledger alone: every signed event, what it changed, each time limit met or not.

    Signatures are checked with each key as it was at the event's time. With --as-of the case is shown
    as 司法局 knew it then (by ledger arrival).

    Example: [bold]xiezhu replay 20260007 --from shenpi --as-of 2026-09-29T17:00 --bundle 20260007.zip[/]
    """
    settings = _settings(ctx)
    at = _instant(as_of, "--as-of") if as_of else None
    keys = KeyStore(settings.keys_dir)
    trust = keys.trust_list().entries
    calendar = CalendarStore(settings.calendar_dir).calendar()
    with _ledger(settings) as ledger:
        case_id = _case_id(ledger, number, sender)
        now, _ = resolve_now(settings, ledger, None)
        from xiezhu.bootstrap import existing_catalogue

        catalogue = existing_catalogue(settings)  # 第七条, 第六条: what the request cites is checked against it
        try:
            result = replay(ledger, case_id, KeyRing(trust), calendar, as_of=at, now=now, scan_links=all_links,
                            catalogue=catalogue)
            shown = system_of(ctx).justice().reveal_case(ledger, case_id, command="replay", reason=reason,
                                                         operator=operator_name(operator)) if reveal else None
            if bundle is not None:
                signer = _justice_signer(settings, keys)
                manifest = write_bundle(ledger, case_id, trust, bundle, calendar=calendar, as_of=at, signer=signer,
                                        created_at=now, scan_links=all_links, catalogue=catalogue)
                signed = f"signed by {signer.kid}" if signer else f"unsigned: {JUSTICE}'s key is not in {keys.dir}"
                signed_zh = f"由 {signer.kid} 签署" if signer else f"未签署：{keys.dir} 中没有区司法局的密钥"
                sys.stderr.write(in_lang(f"已写入 {bundle}：{len(manifest.positions)} 个事件及其链证明（{signed_zh}）",
                                         f"wrote {bundle}: {len(manifest.positions)} events with their chain proof "
                                         f"({signed})") + "\n")
        finally:
            if catalogue is not None:
                catalogue.close()
    if as_json:
        _print_json(msgspec.structs.asdict(result) | {"revealed": shown[0]} if shown else result)
        return
    from xiezhu.cli.screens import Words
    from xiezhu.cli.tables import lang

    language = lang()
    sys.stdout.write(render_text(result, language, Words(Registry.load(), language).bureau))
    if shown:
        sys.stdout.write(render_disclosure(*shown))
    elif reveal:
        sys.stderr.write(in_lang("没有可显示的个人信息：此案件没有申请人（争议）；未作记录",
                                 "nothing to reveal: this case holds no applicant (a dispute); nothing was recorded")
                         + "\n")


@ledger_app.command("verify-bundle")
def verify_bundle_cmd(
    file: Annotated[Path, typer.Argument(help="The bundle written by `xiezhu replay --bundle`.")],
    as_json: AsJson = False,
    trust: Annotated[Path | None, typer.Option(
        "--trust", help="A published trust list (trust.json): its keys, validity and revocations are used "
                        "instead of the bundle's own copies.")] = None,
    anchor: Annotated[Path | None, typer.Option(
        "--anchor", help="The root authority's public key (keys/root.pub): the --trust list must carry its "
                         "signature, or nothing is verified.")] = None,
) -> None:
    """Check an evidence bundle offline, without the ledger: digests, signatures, leaves, chain, checkpoint.

    Exits with status 1 and the reason on one line if any check fails.

    Example: [bold]xiezhu verify-bundle 20260007.zip --trust keys/trust.json[/]
    """
    if anchor and not trust:
        raise CliLedgerError("--anchor checks the signature of a --trust list; give both",
                             zh="--anchor 用于核验 --trust 信任列表的签名；两者须同时给出")
    report = verify_bundle(file, trusted=_trust_entries(trust, anchor) if trust else None)
    if as_json:
        _print_json(report)
    else:
        sys.stdout.write(_report_text(report))
    if not report.ok:
        from xiezhu.cli.tables import lang

        more = len(report.failures) - 1
        # One line, never wrapped (a console would wrap a long path): scripts read it.
        if lang() == "zh":
            sys.stderr.write(f"错误：证据包 {file} 未通过核验：{report.reason_zh or report.reason}"
                             + (f"（另有 {more} 处）" if more > 0 else "") + "\n")
        else:
            sys.stderr.write(f"error: bundle {file} failed verification: {report.reason}"
                             + (f" (and {more} more)" if more > 0 else "") + "\n")
        raise typer.Exit(1)


@ledger_app.command("checkpoint")
def checkpoint_cmd(ctx: typer.Context, as_json: AsJson = False) -> None:
    """Sign the ledger's head as a checkpoint of 区司法局 (for a bundle of a case newer than the last one).

    The ledger service signs one every 1000 entries, every 10 s while entries arrive and when it stops, and
    publishes each for the bureaus to witness; this signs one now, on the machine
    that holds 区司法局's key.  (``xiezhu seal``, its old name, still works.)

    Example: [bold]xiezhu checkpoint[/]
    """
    settings = _settings(ctx)
    justice = system_of(ctx).justice()
    justice.checkpoint_signer()  # no key on this machine: say so before opening the ledger
    with _ledger(settings, read_only=False) as ledger:
        now, _ = resolve_now(settings, ledger, None)
        cp = justice.checkpoint(ledger, now)
        pos, head = ledger.head
    if as_json:  # the keys of the command's first name, kept for scripts
        _print_json({"sealed": cp is not None, "pos": pos, "head": head.hex(),
                     "sealed_at": cp.signed_at if cp else None, "kid": cp.kid if cp else None})
        return
    if cp is None:
        sys.stdout.write(in_lang(f"没有新的检查点：链头（位置 {pos}）已有检查点，或账本为空",
                                 f"no new checkpoint: the head (position {pos}) has one already, or the ledger is "
                                 "empty") + "\n")
    else:
        sys.stdout.write(in_lang(f"检查点位于位置 {cp.pos}，链头 {cp.head.hex()}，由 {cp.kid} 于 {cp.signed_at} 签署",
                                 f"checkpoint at position {cp.pos}, head {cp.head.hex()}, signed by {cp.kid} "
                                 f"at {cp.signed_at}") + "\n")


#: The command's first name, hidden: scripts that call it keep working.
ledger_app.command("seal", hidden=True)(checkpoint_cmd)

WITNESS_COLUMNS = (
    Col("pos", "位置", "position", ident=True, justify="right"),
    Col("head", "链头", "head", ident=True),
    Col("signed_at", "区司法局签署", "signed by 区司法局", keep=True, drop=2),
    Col("seen_at", "本部门见证", "seen here", keep=True, drop=1),
)


@ledger_app.command("witnesses")
def witnesses_cmd(
    ctx: typer.Context,
    bureau: Annotated[str, typer.Argument(help="The bureau whose agent kept the heads (its code).")],
    export: Annotated[Path | None, typer.Option("--export", help="Write them as JSON lines, for "
                                                                 "`xiezhu audit --witnesses FILE`.")] = None,
    as_json: AsJson = False,
) -> None:
    """The heads of 区司法局's ledger that a bureau's agent saw, checked and countersigned (decision 49).

    Example: [bold]xiezhu witnesses gongan --export gongan-witness.jsonl[/]
    """
    from broker.witness import WitnessStore, encode
    from xiezhu.cli.tables import lang, show

    settings = _settings(ctx)
    code = _bureau_code(bureau)
    path = settings.witness_path(code)
    if not path.is_file():
        raise XiezhuError(f"no witness file of {code} at {path}: its agent has not run on this data directory",
                          zh=f"{path} 没有{zh_name(code)}的见证文件：其代理程序未在此数据目录上运行过")
    store = WitnessStore(path, read_only=True)
    try:
        records = list(store.records())
    finally:
        store.close()
    if export is not None:
        export.write_bytes(b"".join(encode(r) + b"\n" for r in records))
        sys.stdout.write(in_lang(f"{zh_name(code)}见证的 {len(records)} 个链头已写入 {export}",
                                 f"{len(records)} heads witnessed by {code} written to {export}") + "\n")
        return
    if as_json:
        _print_json(records)
        return
    rows = [{"pos": f"{r.head.pos:,}", "head": r.head.head[:16] + "…", "signed_at": _minute(r.head.signed_at),
             "seen_at": _minute(r.seen_at)} for r in records]
    language = lang()
    show(f"{code} 见证的账本链头" if language == "zh" else f"ledger heads witnessed by {code}", WITNESS_COLUMNS,
         rows, language=language)


def _bureau_code(bureau: str) -> str:

    return Registry.load()[bureau].code  # an unknown code is one clear error


def _minute(iso: str) -> str:
    try:
        return datetime.fromisoformat(iso).astimezone(SHANGHAI).strftime("%Y-%m-%d %H:%M:%S")
    except ValueError:
        return iso


def _trust_entries(path: Path, anchor: Path | None = None) -> list[TrustEntry]:
    """A trust list file: ``keys/trust.json`` or a bundle's ``keys.json`` (a bare list).

    With ``anchor`` (``keys/root.pub``) the file must be a trust list signed by that root.
    """
    try:
        data = path.read_bytes()
    except OSError as e:
        raise CliLedgerError(f"cannot read the trust list {path}: {e.strerror or e}",
                             zh=f"无法读取信任列表 {path}：{e.strerror or e}") from e
    if anchor is not None:
        return _signed_entries(path, data, anchor)
    try:
        return msgspec.json.decode(data, type=TrustList).entries
    except (msgspec.ValidationError, msgspec.DecodeError):
        pass
    try:
        return msgspec.json.decode(data, type=list[TrustEntry])
    except (msgspec.ValidationError, msgspec.DecodeError) as e:
        raise CliLedgerError(f"{path} is not a trust list: {e}", zh=f"{path} 不是信任列表：{e}") from e


def _signed_entries(path: Path, data: bytes, anchor_path: Path) -> list[TrustEntry]:
    from agencies.trust.trust_list import TrustListError, open_signed
    from schemas.trust import SignedTrustList, TrustAnchor

    try:
        anchor = msgspec.json.decode(anchor_path.read_bytes(), type=TrustAnchor)
        signed = msgspec.json.decode(data, type=SignedTrustList)
        return open_signed(anchor, signed).entries
    except OSError as e:
        raise CliLedgerError(f"cannot read the root key {anchor_path}: {e.strerror or e}",
                             zh=f"无法读取根公钥 {anchor_path}：{e.strerror or e}") from e
    except (msgspec.ValidationError, msgspec.DecodeError) as e:
        raise CliLedgerError(f"{path} is not a trust list signed by a root ({e})",
                             zh=f"{path} 不是经根密钥签名的信任列表（{e}）") from e
    except TrustListError as e:
        raise CliLedgerError(f"{path}: {e}", zh=f"{path}：{zh_of(e)}") from e


def _report_text(r: BundleReport) -> str:
    from schemas import labels
    from xiezhu.cli.screens import Words
    from xiezhu.cli.tables import lang

    if lang() == "en":
        return _report_text_en(r)
    w = Words(Registry.load(), "zh")
    lines = [f"证据包 {r.path}：{'核验通过' if r.ok else '核验未通过'}"]
    if r.case:
        lines.append(f"{w.label(labels.CASE_KIND, r.kind)}案件 {r.number}（{r.case}）：{len(r.events)} 个签名事件")
    if r.checkpoint_pos is not None:
        lines.append(f"已证明至检查点 {r.checkpoint_pos}（{r.sealed_at} 由 {r.sealed_by} 签署）")
    lines.append(f"证据包清单由 {r.attested_by} 签署" if r.attested_by else "证据包清单未经签署")
    for e in r.events:
        status = "签名有效" if e.signature.status == "valid" else (
            w.label(labels.DEAD_LETTER_REASON, e.signature.status)
            + (f"（{e.signature.reason}）" if e.signature.reason else ""))
        lines.append(f"  #{e.pos} {e.type} {w.bureau(e.sender)} → {w.bureau(e.recipient)}，"
                     f"密钥 {e.kid}：{status}")
    lines += [f"  密钥 {k}" for k in r.keys]
    lines += [f"警告：{x}" for x in r.warnings_zh or r.warnings]
    lines += [f"未通过：{f}" for f in r.failures_zh or r.failures]
    return "\n".join(lines) + "\n"


def _report_text_en(r: BundleReport) -> str:
    lines = [f"bundle {r.path}: {'OK' if r.ok else 'FAILED'}"]
    if r.case:
        lines.append(f"{r.kind} case {r.number} ({r.case}): {len(r.events)} signed events")
    if r.checkpoint_pos is not None:
        lines.append(f"proven to checkpoint {r.checkpoint_pos}, signed {r.sealed_at} by {r.sealed_by}")
    lines.append(f"manifest attested by {r.attested_by}" if r.attested_by else "manifest not attested")
    for e in r.events:
        status = e.signature.status + (f" ({e.signature.reason})" if e.signature.reason else "")
        lines.append(f"  #{e.pos} {e.type} {e.sender} → {e.recipient}, key {e.kid}: {status}")
    lines += [f"  key {k}" for k in r.keys]
    lines += [f"warning: {w}" for w in r.warnings]
    lines += [f"failed: {f}" for f in r.failures]
    return "\n".join(lines) + "\n"


def _instant(text: str, option: str) -> datetime:
    """An ISO date or date-time; a naive one is read in Asia/Shanghai."""
    return parse_instant(text, option, CliLedgerError)
