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
import contextlib
import json
from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import NamedTuple

from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.js import JetStreamContext
from nats.js.api import DEFAULT_PREFIX, Header, RawStreamMsg
from nats.js.errors import APIError, ServiceUnavailableError

from broker.streams import sender_of, sending_stream
from schemas.errors import XiezhuError

#: What JetStream adds to a message ``XZ`` sourced from a sending stream.
SOURCE_HEADER = "Nats-Stream-Source"
#: Reads under way at once: enough to hide the round trips, few enough not to crowd the server's API queue.
PIPELINE = 64
#: The status of the answer the server makes itself when nobody listens on a subject (no such stream).
NO_RESPONDERS_STATUS = "503"


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
    the newest message yet).  A round's requests share one reply subscription of this
    connection's inbox (``<inbox>.<n>``), not a request each through nats-py's ``request`` (a
    future, a timer and a task per read: most of a read's CPU beside the server's answer, issue
    14).  Only the bytes and the stored time are decoded (nats-py's ``get_msg`` parses the
    headers too, with the e-mail parser).  A message the stream does not hold is left out; any
    other failure (NATS away, a read not permitted, an answer missing after the context's
    timeout) raises.
    """
    wanted = list(dict.fromkeys(sources))
    out: dict[Source, Sent] = {}
    nc = js._nc
    prefix = getattr(js, "_prefix", DEFAULT_PREFIX)
    timeout = float(getattr(js, "_timeout", 5.0))
    for i in range(0, len(wanted), PIPELINE):
        batch = wanted[i:i + PIPELINE]
        replies = await _ask(nc, [(f"{prefix}.STREAM.MSG.GET.{src.stream}", b'{"seq":%d}' % src.seq) for src in batch],
                             timeout)
        for src, reply in zip(batch, replies, strict=True):
            if reply is None:
                raise _not_read(src, "no answer")
            if (reply.headers or {}).get(Header.STATUS) == NO_RESPONDERS_STATUS:
                raise ServiceUnavailableError
            resp = json.loads(reply.data)
            if "error" in resp:
                if resp["error"].get("code") == 404:
                    continue
                APIError.from_error(resp["error"])  # raises
            msg = resp.get("message") or {}
            if msg.get("time"):
                out[src] = Sent(base64.b64decode(msg.get("data") or ""), RawStreamMsg._parse_utc_iso(msg["time"]))
    return out


async def _ask(nc: Client, requests: list[tuple[str, bytes]], timeout: float) -> list[Msg | None]:
    """Publish every request with its reply to ``<a new inbox>.<n>``; the answers by ``n`` (``None``: none came
    within ``timeout``)."""
    inbox = nc.new_inbox()
    replies: list[Msg | None] = [None] * len(requests)
    left = len(requests)
    all_in: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    async def got(msg: Msg) -> None:
        nonlocal left
        n = int(msg.subject.rsplit(".", 1)[1])
        if replies[n] is None:
            replies[n] = msg
            left -= 1
        if not left and not all_in.done():
            all_in.set_result(None)

    sub = await nc.subscribe(f"{inbox}.*", cb=got)
    try:
        for n, (subject, payload) in enumerate(requests):
            await nc.publish(subject, payload, reply=f"{inbox}.{n}")
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(all_in, timeout)
    finally:
        await sub.unsubscribe()
    return replies


def _not_read(src: Source, why: str) -> PushNotRead:
    return PushNotRead(
        f"{src.stream} did not answer a read of sequence {src.seq} ({why}): NATS is away, "
        f"or this NATS user may not read the sending streams (only `ledger` may; a configuration from "
        f"before decision 57 needs `xiezhu nats-config` again and a reload)",
        zh=f"{src.stream} 未应答对序号 {src.seq} 的读取（{why}）：NATS 不可用，"
           "或此 NATS 用户无权读取发送流（只有 ledger 可以；"
           "决定57之前的配置须重新运行 `xiezhu nats-config` 并重新加载）", stream=src.stream)
