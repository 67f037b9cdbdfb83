"""``xiezhu keys …``: bureau signing keys and the trust list signed by the root authority (区大数据局).

``init`` makes the keys (and, on the first run, the root key); ``list`` shows the trust list;
``rotate`` and ``revoke`` sign a new version with the root key and, given ``--nats-url``,
publish it to every agent and the ledger; ``rotate-root`` hands the root over to a new key
(decision 25); ``publish`` sends the current version again.
"""
from __future__ import annotations

import asyncio
import base64
import binascii
from datetime import datetime, timedelta
from pathlib import Path
from typing import Annotated

import nats
import nats.errors
import typer

from agencies.trust.keys import KeyStore
from agencies.trust.trust_list import DEFAULT_OVERLAP, publish_versions, state_of
from aggregates.clock import SystemClock
from aggregates.registry import JUSTICE, Registry, zh_name
from aggregates.workdays import SHANGHAI
from broker.auth import ADMIN, copy_identity, credentials_in
from broker.server import connect_once
from broker.signing import b64
from schemas.errors import XiezhuError
from schemas.trust import SignedTrustList
from xiezhu.cli.common import AsJson, err, in_lang
from xiezhu.cli.common import print_json as _print_json
from xiezhu.cli.common import settings_of as _settings
from xiezhu.settings import Settings

__all__ = ["app"]

app = typer.Typer(no_args_is_help=True, rich_markup_mode="rich",
                  help="Bureau signing keys and the trust list signed by the root authority (区大数据局).")



class KeysCliError(XiezhuError):
    """A ``xiezhu keys`` command cannot run as given."""

    code = "cli.keys"




def _keys(ctx: typer.Context) -> KeyStore:
    return KeyStore(_settings(ctx).keys_dir)


def _t(when: datetime | None) -> str:
    return when.astimezone(SHANGHAI).strftime("%Y-%m-%d %H:%M") if when else ""


def _published(ctx: typer.Context, keys: KeyStore, signed: SignedTrustList) -> None:
    """Publish ``signed`` if a NATS URL is configured; otherwise say that only this directory changed.

    The root handovers this machine made go first wherever NATS does not hold them yet: an
    agent that pins an earlier root key reaches ``signed`` only through them (decision 25).
    """
    url = _settings(ctx).nats_url
    if not url:
        err.print(in_lang(f"第 {signed.version} 版信任列表已写入 {keys.trust_file}；未发布（没有 --nats-url）："
                          "请运行 [bold]xiezhu --nats-url URL keys publish[/] 发送给各代理程序",
                          f"trust list version {signed.version} written to {keys.trust_file}; not published (no "
                          "--nats-url): run [bold]xiezhu --nats-url URL keys publish[/] to send it to the agents"))
        return

    async def send() -> bool:  # the provisioner publishes it; an unreachable URL is the one-line error below
        nc = await connect_once(url, **credentials_in(_settings(ctx).nats_keys_dir, ADMIN))
        try:
            versions = [v for v in keys.handovers() if v.version < signed.version]
            return await publish_versions(nc.jetstream(), [*versions, signed], keys.anchors()) > 0
        finally:
            await nc.close()

    try:
        sent = asyncio.run(send())
    except (OSError, nats.errors.Error) as e:
        raise KeysCliError(f"trust list version {signed.version} is in {keys.trust_file} but could not be "
                           f"published to {url}: {e or type(e).__name__}; run `xiezhu keys publish` again",
                           zh=f"第 {signed.version} 版信任列表已写入 {keys.trust_file}，但未能发布到 {url}："
                              f"{e or type(e).__name__}；请再次运行 `xiezhu keys publish`") from e
    what = "published to" if sent else "was already on"
    err.print(in_lang(f"[green]第 {signed.version} 版信任列表[/]" + (f"已发布到 {url}" if sent else f"已在 {url} 上"),
                      f"[green]trust list version {signed.version}[/] {what} {url}"))


@app.command("init")
def init(ctx: typer.Context) -> None:
    """Make a signing key for every bureau not listed yet, and sign the trust list with the root key.

    The first run also makes the root key ([bold]keys/root.ed25519[/], this machine only) and the
    trust anchor every machine pins ([bold]keys/root.pub[/]). Running it again changes nothing.

    Example: [bold]xiezhu keys init[/]
    """
    keys = _keys(ctx)
    keys.ensure(Registry.load().codes(), valid_from=SystemClock().now())
    trust = keys.trust_list()
    err.print(in_lang(f"[green]{len(trust.entries)} 把密钥[/]在 {keys.trust_file}，第 {trust.version} 版，"
                      f"由 {keys.anchor().kid} 签署",
                      f"[green]{len(trust.entries)} keys[/] in {keys.trust_file}, version {trust.version}, "
                      f"signed by {keys.anchor().kid}"))


@app.command("list")
def list_keys(
    ctx: typer.Context,
    bureau: Annotated[str | None, typer.Option(help="Only this bureau's keys.")] = None,
    as_json: AsJson = False,
) -> None:
    """Every key of the trust list: its bureau, validity, revocation and state now.

    The list's root signature is checked first; a list that does not verify is refused.

    Example: [bold]xiezhu keys list --bureau gongan --json[/]
    """
    keys = _keys(ctx)
    if bureau:
        Registry.load()[bureau]
    signed = keys.signed_trust()
    if signed is None:
        raise KeysCliError(f"no trust list in {keys.dir}; run `xiezhu keys init`",
                           zh=f"{keys.dir} 中没有信任列表；请运行 `xiezhu keys init`")
    now = SystemClock().now()
    entries = [e for e in signed.entries if bureau is None or e.bureau == bureau]
    if as_json:
        _print_json({"version": signed.version, "issued_at": signed.issued_at, "previous": signed.previous,
                     "root_kid": signed.root_kid, "next_root": signed.next_root.kid if signed.next_root else None,
                     "keys": [{"kid": e.kid, "bureau": e.bureau, "public_key": b64(e.public_key),
                               "valid_from": e.valid_from, "valid_to": e.valid_to, "revoked_at": e.revoked_at,
                               "revoked_reason": e.revoked_reason, "state": state_of(e, now)} for e in entries]})
        return
    from xiezhu.cli.screens import KEYS_COLUMNS, Words, key_rows
    from xiezhu.cli.tables import lang, show

    language = lang()
    title = (f"信任列表第 {signed.version} 版，{_t(signed.issued_at)} 签发，根密钥 {signed.root_kid} —— "
             f"{len(entries)} 把密钥" if language == "zh" else
             f"trust list version {signed.version}, issued {_t(signed.issued_at)}, signed by {signed.root_kid} — "
             f"{len(entries)} keys")
    show(title, KEYS_COLUMNS, key_rows(entries, lambda e: state_of(e, now), Words(Registry.load(), language)),
         language=language)


@app.command("rotate")
def rotate(
    ctx: typer.Context,
    code: Annotated[str, typer.Argument(help="The bureau whose key to rotate.")],
    overlap_days: Annotated[float, typer.Option(
        "--overlap-days", min=0, help="How long the old key stays valid beside the new one.")
    ] = DEFAULT_OVERLAP / timedelta(days=1),
    public_key: Annotated[str | None, typer.Option(
        "--public-key", help="List this base64 Ed25519 public key, made on the bureau's own machine, "
                             "instead of making a key here.")] = None,
    box_key: Annotated[str | None, typer.Option(
        "--box-key", help="With --public-key: the base64 X25519 public key made beside it, which what is "
                          "sent to the bureau is sealed to.")] = None,
) -> None:
    """Give a bureau a new key valid from now; its old key stays valid for the overlap, then expires.

    Signed with the root key; published to the agents when --nats-url is given.

    Example: [bold]xiezhu --nats-url nats://nats:4222 keys rotate gongan --overlap-days 7[/]
    """
    Registry.load()[code]
    pub = box = None
    if public_key is not None:
        try:
            pub = base64.b64decode(public_key, validate=True)
        except (binascii.Error, ValueError) as e:
            raise KeysCliError(f"--public-key is not base64: {public_key!r}",
                               zh=f"--public-key 不是 base64：{public_key!r}") from e
        if box_key is None:
            raise KeysCliError("--public-key needs --box-key too: nothing could be sealed to the bureau otherwise",
                               zh="--public-key 须同时给出 --box-key：否则无法向该单位加密发送")
        try:
            box = base64.b64decode(box_key, validate=True)
        except (binascii.Error, ValueError) as e:
            raise KeysCliError(f"--box-key is not base64: {box_key!r}", zh=f"--box-key 不是 base64：{box_key!r}") from e
    elif box_key is not None:
        raise KeysCliError("--box-key goes with --public-key (a key pair made on the bureau's own machine)",
                           zh="--box-key 须与 --public-key 同时给出（在该单位自己的机器上生成的密钥对）")
    keys = _keys(ctx)
    signed = keys.rotate(code, now=SystemClock().now(), overlap=timedelta(days=overlap_days), public_key=pub,
                         box_key=box)
    new = signed.entries[-1]
    err.print(in_lang(f"[green]{zh_name(code)}[/]现用 {new.kid} 签名（自 {_t(new.valid_from)} 起有效）；"
                      f"其原有密钥在 {overlap_days:g} 天内仍有效",
                      f"[green]{code}[/] now signs with {new.kid} (valid from {_t(new.valid_from)}); "
                      f"its earlier keys stay valid for {overlap_days:g} days"))
    _published(ctx, keys, signed)


@app.command("revoke")
def revoke(
    ctx: typer.Context,
    kid: Annotated[str, typer.Argument(help="The key id, as `xiezhu keys list` shows it.")],
    reason: Annotated[str, typer.Option(help="Why, e.g. 私钥泄露 (kept in the trust list).")],
) -> None:
    """Revoke a key from now on: what it signs from now is refused; what it signed before still verifies.

    Signed with the root key; published to the agents when --nats-url is given. A bureau whose
    only key is revoked signs nothing until it is given a new one with [bold]xiezhu keys rotate[/].

    Example: [bold]xiezhu --nats-url nats://nats:4222 keys revoke gongan-1a2b3c4d5e6f --reason "私钥泄露"[/]
    """
    keys = _keys(ctx)
    now = SystemClock().now()
    signed = keys.revoke(kid, reason, now=now)
    entry = next(e for e in signed.entries if e.kid == kid)
    err.print(in_lang(f"[green]已吊销[/] {kid}（{zh_name(entry.bureau)}），自 {_t(now)} 起",
                      f"[green]revoked[/] {kid} ({entry.bureau}) from {_t(now)}"))
    if not any(e.bureau == entry.bureau and state_of(e, now) in ("valid", "expiring") for e in signed.entries):
        cannot = ("nothing can be sent at all, since every payload is sealed to it for the ledger"
                  if entry.bureau == JUSTICE else "nothing can be sealed to it")
        cannot_zh = ("任何消息都无法发送，因为每条载荷都要为账本加密给它" if entry.bureau == JUSTICE
                     else "无法向其加密发送")
        err.print(in_lang(f"{zh_name(entry.bureau)}现在没有有效密钥：它不能签名，且{cannot_zh}；请用 "
                          f"[bold]xiezhu keys rotate {entry.bureau}[/] 为其生成（先轮换再吊销，以免中断）",
                          f"{entry.bureau} has no valid key now: it signs nothing and {cannot}; give it one with "
                          f"[bold]xiezhu keys rotate {entry.bureau}[/] (rotate first, then revoke, to avoid the gap)"))
    _published(ctx, keys, signed)


@app.command("rotate-root")
def rotate_root(ctx: typer.Context) -> None:
    """Hand the root over to a new root key, on the root's machine (区大数据局).

    The current root key signs a trust list version that names the new key; every agent that
    takes it pins the new key from then on (and replaces its [bold]keys/root.pub[/]) and refuses
    what the old key signs. The new key then signs the same list again. The old seed is kept
    in [bold]keys/retired-root/[/] and never used again. Published when --nats-url is given;
    copy the new [bold]keys/root.pub[/] to machines set up later.

    Example: [bold]xiezhu --nats-url nats://nats:4222 keys rotate-root[/]
    """
    keys = _keys(ctx)
    old = keys.root_signer().kid
    handover, first = keys.rotate_root(now=SystemClock().now())
    err.print(in_lang(f"[green]根密钥已移交[/]：第 {handover.version} 版信任列表由 {old} 移交给 {first.root_kid}；"
                      f"第 {first.version} 版起由新密钥签署",
                      f"[green]root key handed over[/] from {old} to {first.root_kid} in trust list version "
                      f"{handover.version}; version {first.version} is the first the new key signs"))
    _published(ctx, keys, first)


@app.command("export")
def export(
    ctx: typer.Context,
    codes: Annotated[list[str], typer.Argument(help="The bureaus the machine runs (the ledger's: sifa).")],
    out: Annotated[Path, typer.Option(
        "--out", help="The machine's data directory, to write keys/ (and nats-keys/) into.")],
    nats_user: Annotated[list[str] | None, typer.Option(
        "--nats-user", help="Also copy this NATS user's seed (its bureau code, ledger or admin); repeatable.")] = None,
    signing_only: Annotated[bool, typer.Option(
        "--signing-only", help="Only the signing keys: no box or store key, which open the bureau's mail and "
                               "store (for `xiezhu checkpoint-signer`).")] = False,
) -> None:
    """Give one machine only its own keys: its bureaus' private keys, the anchor and the trust list.

    Run where every key is (the root authority's machine, or the compose `keys` volume). No other
    bureau's private key and never the root key leave with it, so the machine reads only its own mail.

    Example: [bold]xiezhu keys export gongan --out /mnt/gongan-data --nats-user gongan[/]
    """
    registry = Registry.load()
    for code in codes:
        registry[code]
    machine = Settings(data_dir=out)
    written = _keys(ctx).export(codes, machine.keys_dir, signing_only=signing_only)
    written += [copy_identity(_settings(ctx).nats_keys_dir, name, machine.nats_keys_dir) for name in nats_user or []]
    err.print(in_lang(f"已为 {'、'.join(zh_name(c) for c in codes)} 写入 {len(written)} 个文件到 {out}",
                      f"wrote {len(written)} files for {', '.join(codes)} into {out}"))


@app.command("publish")
def publish(ctx: typer.Context) -> None:
    """Send the trust list of this data directory to NATS (after a change made without --nats-url).

    Nothing is sent if NATS holds it already; a newer list there is an error.

    Example: [bold]xiezhu --nats-url nats://nats:4222 keys publish[/]
    """
    keys = _keys(ctx)
    if not _settings(ctx).nats_url:
        raise KeysCliError("keys publish needs --nats-url (or XIEZHU_NATS_URL)",
                           zh="keys publish 需要 --nats-url（或 XIEZHU_NATS_URL）")
    signed = keys.signed_trust()
    if signed is None:
        raise KeysCliError(f"no trust list in {keys.dir}; run `xiezhu keys init`",
                           zh=f"{keys.dir} 中没有信任列表；请运行 `xiezhu keys init`")
    _published(ctx, keys, signed)
