"""Where and when a push ended: the sending stream's record of a message ``XZ`` sourced (decision 57).

附件2 第五条: "信息推送行为结束即视为对方接收到信息，时间以系统记录的到达时间为准".  A bureau's push
ends when its sending stream ``XZ_FROM_<code>`` stores the message (the publish is acked then);
``XZ``'s copy follows by the sourcing delay, under a millisecond when quiet, seconds behind a
flood (sourcing writes every copy with an fsync).  JetStream names the original in the copy's
``Nats-Stream-Source`` header, ``"<stream> <sequence> <filter> <transform> <subject> …"``
(nats-server 2.10 and later; a publisher cannot set it, the server refuses such a message), so
the ledger and the audit read the original by sequence.
"""
from __future__ import annotations

import asyncio
import base64
from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import NamedTuple

from nats.errors import TimeoutError as NatsTimeout
from nats.js import JetStreamContext
from nats.js.api import DEFAULT_PREFIX, RawStreamMsg
from nats.js.errors import NotFoundError

from broker.streams import sender_of, sending_stream
from schemas.errors import XiezhuError

#: What JetStream adds to a message ``XZ`` sourced from a sending stream.
SOURCE_HEADER = "Nats-Stream-Source"
#: Reads under way at once: enough to hide the round trips, few enough not to crowd the server's API queue.
PIPELINE = 64


class PushNotRead(XiezhuError):
    """A sending stream did not answer a read of the original."""

    code = "nats.push-not-read"


class Source(NamedTuple):
    """The sending stream that took the push, and the message's sequence there."""

    stream: str
    seq: int

    def __str__(self) -> str:
        return f"{self.stream} #{self.seq}"


class Sent(NamedTuple):
    """A message as its sending stream stored it: its bytes and the time the push ended."""

    data: bytes
    time: datetime


def source_of(subject: str, headers: Mapping[str, object]) -> Source | None:
    """The sending stream and sequence ``XZ``'s copy names, if it names the sender's own stream.

    ``None``: no header (a stream that took the publish itself: the layout before decision 50),
    a header that cannot be read, or one naming another stream than ``XZ_FROM_<sender>`` (the
    subject's ``xz.<sender>`` token, which only that bureau may publish on).
    """
    value = headers.get(SOURCE_HEADER)
    if not isinstance(value, str):
        return None
    fields = value.split()
    if len(fields) < 2 or not fields[1].isdigit():
        return None
    stream = fields[0].split(":", 1)[0]  # "<name>:<hash>" for a source in another domain
    sender = sender_of(subject)
    if not sender or stream != sending_stream(sender):
        return None
    seq = int(fields[1])
    return Source(stream, seq) if seq > 0 else None


async def read_sent(js: JetStreamContext, sources: Iterable[Source]) -> dict[Source, Sent]:
    """The sending streams' messages at ``sources``, :data:`PIPELINE` reads at a time (``STREAM.MSG.GET``).

    Asked of each stream's leader (a direct get may be answered by a replica that has not stored
    the newest message yet).  Only the bytes and the stored time are decoded (nats-py's ``get_msg``
    parses the headers too, with the e-mail parser: most of a read's cost).  A message the stream
    does not hold is left out; any other failure (NATS away, a read not permitted) raises.
    """
    wanted = list(dict.fromkeys(sources))
    out: dict[Source, Sent] = {}
    prefix = getattr(js, "_prefix", DEFAULT_PREFIX)

    async def one(src: Source) -> None:
        try:
            resp = await js._api_request(f"{prefix}.STREAM.MSG.GET.{src.stream}", b'{"seq":%d}' % src.seq)
        except NotFoundError:
            return
        except NatsTimeout as e:  # what a read the server's permissions refuse looks like to nats-py, too
            raise PushNotRead(
                f"{src.stream} did not answer a read of sequence {src.seq} ({e or type(e).__name__}): NATS is away, "
                f"or this NATS user may not read the sending streams (only `ledger` may; a configuration from "
                f"before decision 57 needs `xiezhu nats-config` again and a reload)",
                zh=f"{src.stream} 未应答对序号 {src.seq} 的读取（{e or type(e).__name__}）：NATS 不可用，"
                   "或此 NATS 用户无权读取发送流（只有 ledger 可以；"
                   "决定57之前的配置须重新运行 `xiezhu nats-config` 并重新加载）", stream=src.stream) from e
        msg = resp.get("message") or {}
        if msg.get("time"):
            out[src] = Sent(base64.b64decode(msg.get("data") or ""), RawStreamMsg._parse_utc_iso(msg["time"]))

    for i in range(0, len(wanted), PIPELINE):
        await asyncio.gather(*(one(src) for src in wanted[i:i + PIPELINE]))
    return out
