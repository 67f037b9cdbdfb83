"""``xiezhu dead-letters …``: what the receivers rejected, from the ``XZ_DLQ`` stream, with personal data masked.

Without ``--nats-url`` the command starts the embedded nats-server on the data directory's
store for as long as it reads, so a finished demo's rejections can still be seen.
"""
from __future__ import annotations

import asyncio
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Any, TypeVar

import msgspec
import nats
import nats.errors
import typer
from nats.js import JetStreamContext
from nats.js.api import RawStreamMsg
from nats.js.errors import NotFoundError

from aggregates.store import SHANGHAI
from broker.auth import ADMIN, credentials_in
from broker.intake import REASONS, DeadLetter, dead_letter_of
from broker.server import EmbeddedNats, connect_once
from broker.signing import (
    Rejected,
    decode_checked,
)
from broker.streams import DLQ_PREFIX, DLQ_STREAM
from schemas.envelope import (
    HDR_KEY,
)
from schemas.errors import XiezhuError
from schemas.privacy import mask_json, mask_text
from xiezhu.cli.common import AsJson, out
from xiezhu.cli.common import print_json as _print_json
from xiezhu.cli.common import settings_of as _settings
from xiezhu.settings import Settings


class DeadLettersError(XiezhuError):
    """A ``xiezhu dead-letters`` command cannot run as given."""

    code = "cli.dead-letters"


#: A receiver as it appears in the dead-letter subject: a bureau code or ``ledger``.
_TOKEN = re.compile(r"^[a-z][a-z0-9-]{1,31}$")
#: Body bytes shown by ``show`` unless ``--full``: enough for any honest envelope …
SHOW_BYTES = 8 * 1024
#: … and of a body that is not even text, shown as hex.
HEX_BYTES = 1024

T = TypeVar("T")

#: Without a command it lists; its help is the list callback's docstring.
app = typer.Typer(no_args_is_help=False, rich_markup_mode="rich")



@dataclass(frozen=True)
class Rejection:
    """One dead letter and when the stream stored it."""

    letter: DeadLetter
    time: datetime | None

    @property
    def sender(self) -> str:
        """The sender the original subject claims (``xz.<sender>.<recipient>.<type>``)."""
        parts = self.letter.original_subject.split(".")
        return parts[1] if len(parts) > 2 and parts[0] == "xz" else ""

    def summary(self) -> dict[str, Any]:
        """The routing facts of the rejection; nothing from the body but its size."""
        d = self.letter
        return {"seq": d.seq, "time": self.time, "receiver": d.rejected_by, "code": d.code,
                "reason": mask_text(d.reason), "original_subject": d.original_subject, "size": len(d.data),
                "sender": self.sender, "kid": mask_text(d.headers.get(HDR_KEY, ""))}


# -- masking ----------------------------------------------------------------------------



def body_view(data: bytes, *, full: bool) -> dict[str, Any]:
    """The body for a person: masked JSON, else masked text, else hex; cut short unless ``full``."""
    view: dict[str, Any] = {"size": len(data)}
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        # Masked as text first: the bytes that are not UTF-8 pass through unchanged.
        masked = mask_text(data.decode("utf-8", errors="surrogateescape")).encode("utf-8", errors="surrogateescape")
        cut = masked if full else masked[:HEX_BYTES]
        return view | {"shown": len(cut), "encoding": "hex", "content": cut.hex(" ", 2)}
    if full or len(data) <= SHOW_BYTES:
        try:
            return view | {"shown": len(data), "encoding": "json", "content": mask_json(msgspec.json.decode(data))}
        except msgspec.DecodeError:
            pass
    # Masked before it is cut, so that the cut cannot leave part of a number in clear.
    masked_text = mask_text(text)
    cut_text = masked_text if full else masked_text.encode()[:SHOW_BYTES].decode("utf-8", errors="ignore")
    return view | {"shown": len(cut_text.encode()), "encoding": "text", "content": cut_text}


def envelope_fields(data: bytes) -> dict[str, Any] | None:
    """The routing fields of a body that decodes as an envelope; ``None`` otherwise."""
    try:
        env = decode_checked(data)  # sealed or clear; a sealed payload stays sealed here
    except Rejected:
        return None
    return {"id": env.id, "sender": env.sender, "recipient": env.recipient, "case": env.case,
            "number": env.number, "time": env.time, "type": env.type}


# -- reading the stream -------------------------------------------------------------------


def _filter(receiver: str | None, reason: str | None) -> str:
    if receiver is not None and not _TOKEN.match(receiver):
        raise DeadLettersError(f"--receiver {receiver!r} is not a bureau code (lower-case letters, digits, '-')",
                               zh=f"--receiver {receiver!r} 不是单位代码（小写字母、数字和“-”）")
    if reason is not None and reason not in REASONS:
        raise DeadLettersError(f"--reason {reason!r} is not a rejection reason; one of: {', '.join(REASONS)}",
                               zh=f"--reason {reason!r} 不是拒收原因；应为其中之一：{', '.join(REASONS)}")
    return f"{DLQ_PREFIX}.{receiver or '*'}.{reason or '*'}"


def _rejection(m: RawStreamMsg) -> Rejection:
    # Receiver and reason from the subject, which only that receiver may write on; not from the headers.
    return Rejection(dead_letter_of(m.seq or 0, m.subject or "", m.headers or {}, m.data or b""), m.time)


async def list_rejections(js: JetStreamContext, subject: str, *, after: int,
                          limit: int) -> tuple[list[Rejection], bool]:
    """Dead letters on ``subject`` with sequence > ``after``, oldest first, and whether more follow."""
    found: list[Rejection] = []
    seq = after + 1
    while True:
        try:
            m = await js.get_msg(DLQ_STREAM, seq, subject=subject, next=True)
        except NotFoundError:
            return found, False
        if len(found) == limit:
            return found, True
        found.append(_rejection(m))
        seq = (m.seq or seq) + 1


async def get_rejection(js: JetStreamContext, seq: int) -> Rejection:
    """The dead letter at stream sequence ``seq``."""
    try:
        return _rejection(await js.get_msg(DLQ_STREAM, seq))
    except NotFoundError as e:
        raise DeadLettersError(f"no dead letter with sequence {seq}", zh=f"没有序号为 {seq} 的死信") from e


def _read(settings: Settings, read: Callable[[JetStreamContext], Awaitable[T]]) -> T:
    """Run ``read`` against the DLQ: on --nats-url, else on the data directory's own store."""
    return on_stream(settings, DLQ_STREAM, read)


def on_stream(settings: Settings, stream: str, read: Callable[[JetStreamContext], Awaitable[T]], *,
              user: str = ADMIN, check: bool = True) -> T:
    """Run ``read`` with a JetStream context where ``stream`` exists, as NATS user ``user``: on --nats-url,
    else on the data directory's own store (its embedded server runs for as long as ``read`` does)."""
    server: EmbeddedNats | None = None
    url = settings.nats_url
    if not url:
        if not (settings.nats_dir / "jetstream").is_dir():
            raise DeadLettersError(f"no NATS store in {settings.nats_dir}; give --nats-url, "
                                   "or run `xiezhu demo` first",
                                   zh=f"{settings.nats_dir} 中没有 NATS 存储；请给出 --nats-url，"
                                      "或先运行 `xiezhu demo`")
        auth = settings.nats_auth_config  # the embedded server's users, if the node wrote them
        server = EmbeddedNats(settings.nats_dir, config_file=auth if auth.exists() else None).start()
        url = server.url

    async def body() -> T:
        try:
            nc = await connect_once(url, **credentials_in(settings.nats_keys_dir, user))
        except (OSError, nats.errors.Error) as e:
            raise DeadLettersError(f"cannot reach NATS at {url}: {e or type(e).__name__}",
                                   zh=f"无法连接 {url} 的 NATS：{e or type(e).__name__}") from e
        try:
            js = nc.jetstream()
            if check:  # a user without STREAM.INFO (the ledger) finds out from what it reads
                try:
                    await js.stream_info(stream)
                except NotFoundError as e:
                    raise DeadLettersError(f"NATS at {url} has no {stream} stream: nothing was provisioned",
                                           zh=f"{url} 的 NATS 没有 {stream} 流：尚未配置") from e
            return await read(js)
        finally:
            await nc.close()

    try:
        return asyncio.run(body())
    finally:
        if server is not None:
            server.stop()


# -- commands -----------------------------------------------------------------------------






def _t(when: datetime | None) -> str:
    return when.astimezone(SHANGHAI).strftime("%Y-%m-%d %H:%M:%S") if when else ""


@app.callback(invoke_without_command=True)
def dead_letters(
    ctx: typer.Context,
    receiver: Annotated[str | None, typer.Option(help="Only what this receiver rejected (a bureau code, or ledger).")]
    = None,
    reason: Annotated[str | None, typer.Option(help=f"Only this reason: {', '.join(REASONS)}.")] = None,
    after: Annotated[int, typer.Option(min=0, help="Only dead letters after this sequence number.")] = 0,
    limit: Annotated[int, typer.Option(min=1, help="At most this many.")] = 1000,
    as_json: AsJson = False,
) -> None:
    """Messages the receivers rejected, oldest first: who rejected what, why, and who it claimed to be from.

    Example: [bold]xiezhu dead-letters --receiver gongan --reason bad-signature[/]
    """
    if ctx.invoked_subcommand is not None:
        return
    subject = _filter(receiver, reason)
    found, more = _read(_settings(ctx), lambda js: list_rejections(js, subject, after=after, limit=limit))
    rows = [r.summary() for r in found]
    if as_json:
        _print_json(rows)
        return
    from aggregates.registry import Registry
    from xiezhu.cli.screens import DEAD_LETTER_COLUMNS, Words, dead_letter_rows
    from xiezhu.cli.tables import lang, show

    language = lang()
    where = f" ({subject})" if receiver or reason else ""
    if language == "zh":
        title, more_note = f"拒收消息 {len(rows)} 条{where}", f"还有更多：加 --after {rows[-1]['seq']}" if more else ""
    else:
        title, more_note = f"{len(rows)} dead letters{where}", f"more after {rows[-1]['seq']}: add --after " \
            f"{rows[-1]['seq']}" if more else ""
    show(title, DEAD_LETTER_COLUMNS, dead_letter_rows(rows, Words(Registry.load(), language)), language=language,
         footer=more_note)


@app.command()
def show(
    ctx: typer.Context,
    seq: Annotated[int, typer.Argument(min=1, help="The dead letter's sequence number (from the list).")],
    full: Annotated[bool, typer.Option("--full", help=f"The whole body, not its first {SHOW_BYTES} bytes.")] = False,
    as_json: AsJson = False,
) -> None:
    """One dead letter in full: its headers, and its body with applicants' personal data masked.

    Example: [bold]xiezhu dead-letters show 3[/]
    """
    r = _read(_settings(ctx), lambda js: get_rejection(js, seq))
    d = r.letter
    shown = r.summary() | {"stream_subject": d.subject,
                           "headers": {k: mask_text(v) for k, v in sorted(d.headers.items())},
                           "envelope": envelope_fields(d.data),
                           "body": body_view(d.data, full=full)}
    if as_json:
        _print_json(shown)
        return
    from aggregates.registry import Registry
    from xiezhu.cli.screens import FIELD_COLUMNS, Words, dead_letter_fields
    from xiezhu.cli.tables import lang
    from xiezhu.cli.tables import show as show_table

    language = lang()
    show_table(f"拒收消息 {d.seq}" if language == "zh" else f"dead letter {d.seq}", FIELD_COLUMNS,
               dead_letter_fields(shown, _t(r.time), Words(Registry.load(), language)), language=language)
    body = shown["body"]
    content = body["content"]
    if body["encoding"] == "json":
        content = msgspec.json.format(msgspec.json.encode(content)).decode()
    if language == "zh":
        note = f"，仅显示前 {body['shown']} 字节（--full 显示全部）" if body["shown"] < body["size"] else ""
        out.print(f"消息体：{body['size']} 字节，{body['encoding']}{note}", highlight=False)
    else:
        note = f", first {body['shown']} shown (--full for all)" if body["shown"] < body["size"] else ""
        out.print(f"body: {body['size']} bytes, {body['encoding']}{note}", highlight=False)
    out.print(content, markup=False, highlight=False, soft_wrap=True)
