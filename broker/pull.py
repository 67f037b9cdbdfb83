"""The pull loop every receiver runs on its durable consumer (decision 53).

A :class:`PullLoop` fetches up to ``batch`` messages at a time with nats-py's pull
subscription and hands each batch, in stream order, to one handler, which applies it and
acks or naks every message.  A fetch returns as soon as messages are there: nats-py asks
the server with ``no_wait`` first, and a waiting pull ends with the server's "no
messages" status once the first message came, so a partial batch is not held back until
the fetch times out.  A fetch that times out is asked again; one that fails (the server
restarted, the connection is away) is asked again after a short pause, on a new pull
request, so the loop resumes by itself once nats-py has reconnected.
"""
from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Awaitable, Callable

from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.errors import TimeoutError as NatsTimeout
from nats.js import JetStreamContext
from nats.js.errors import APIError

from broker.streams import PULL_TIMEOUT_S

log = logging.getLogger(__name__)

#: Seconds to wait after a fetch failed for another reason than an empty consumer.
FETCH_RETRY_S = 0.5

#: Handles one fetched batch, in stream order: applies it and acks or naks every message.
BatchFn = Callable[[list[Msg]], Awaitable[None]]
#: How many messages to ask for next (a number, or asked before each fetch).
BatchSize = int | Callable[[], int]


def parse_header_lines(raw: bytes) -> dict[str, str]:
    """nats-py's ``Client._parse_header_lines``, the same result at half its cost.

    nats-py parses every delivered message's headers at once, and tests each name for
    whitespace a character at a time (``any(c.isspace() for c in key)``): 8 of the 30 µs a
    message costs an agent reading a backlog.  ``key.split() != [key]`` is that test (``str.split``
    splits on exactly what ``str.isspace`` calls whitespace).  ``tests/test_pull.py`` compares the
    two on awkward headers.
    """
    out: dict[str, str] = {}
    for line in raw.split(b"\r\n"):
        name, sep, value = line.partition(b":")
        if not sep:
            continue
        try:
            key = name.strip().decode("ascii")
        except UnicodeDecodeError:
            continue
        if key and key.split() != [key]:
            continue
        out[key] = value.strip().decode("utf-8", "replace")
    return out


#: nats-py's own parser (kept for the comparison); every client of this process uses :func:`parse_header_lines`.
nats_parse_header_lines = Client._parse_header_lines
Client._parse_header_lines = staticmethod(parse_header_lines)  # type: ignore[method-assign]

#: Status codes that end a pull request's delivery: no messages (more), request timed out, conflict.
_END_STATUS = frozenset({"404", "408", "409"})


async def fetch(sub: JetStreamContext.PullSubscription, batch: int, timeout: float) -> list[Msg]:
    """What ``sub.fetch(batch, timeout=timeout)`` returns, read from the subscription's queue in one go.

    nats-py's fetch takes each message of a batch through ``next_msg``: a uuid, a task and a
    ``wait_for`` (a second task) a message, which was a third of an agent's cost of reading a
    backlog (decision 58).  This asks the server the same way (``no_wait``: what is there, then
    a "no messages" status if that was fewer) and takes the messages off the queue under one
    deadline.  When nothing is there, nats-py's own fetch makes the lingering request.
    """
    inner = getattr(sub, "_sub", None)
    queue: asyncio.Queue[Msg] | None = getattr(inner, "_pending_queue", None)
    nms, deliver, nc = getattr(sub, "_nms", None), getattr(sub, "_deliver", None), getattr(sub, "_nc", None)
    if inner is None or queue is None or not nms or not deliver or nc is None or batch < 2:
        return await sub.fetch(batch, timeout=timeout)  # not the nats-py this was written against: its own way

    def taken(msg: Msg) -> Msg:
        inner._pending_size -= len(msg.data)
        queue.task_done()
        return msg

    msgs: list[Msg] = []
    while not queue.empty() and len(msgs) < batch:  # left from a request before: statuses were for it
        msg = taken(queue.get_nowait())
        if not (msg.headers and msg.headers.get("Status")):
            msgs.append(msg)
    if len(msgs) < batch:
        await nc.publish(nms, json.dumps({"batch": batch - len(msgs), "no_wait": True}).encode(), deliver)
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(timeout):
                while len(msgs) < batch:
                    msg = taken(queue.get_nowait() if not queue.empty() else await queue.get())
                    status = msg.headers.get("Status") if msg.headers else None
                    if status is None:
                        msgs.append(msg)
                    elif status in _END_STATUS:
                        break
                    elif status != "100":  # a heartbeat is skipped; anything else is what nats-py raises too
                        raise APIError.from_msg(msg)
    return msgs or await sub.fetch(batch, timeout=timeout)


class PullLoop:
    """Fetches batches from one pull subscription and hands them to ``handle`` until stopped."""

    def __init__(self, name: str, sub: JetStreamContext.PullSubscription, handle: BatchFn, *, batch: BatchSize,
                 timeout: float = PULL_TIMEOUT_S, idle: Callable[[], None] | None = None) -> None:
        """``idle``: called when a fetch found nothing (the consumer is drained, for now)."""
        self.name = name
        self.sub = sub
        self.handle = handle
        self.batch = batch
        self.timeout = timeout
        self.idle = idle
        #: Batches handed over and messages in them (for the operator's metrics and the bench).
        self.batches = 0
        self.messages = 0
        self._task: asyncio.Task[None] | None = None
        self._stopping = False
        self._fetching = False

    def start(self) -> None:
        """Start fetching in the background."""
        self._task = asyncio.create_task(self._run(), name=f"pull-{self.name}")

    @property
    def task(self) -> asyncio.Task[None] | None:
        """The background task (done once the loop stopped)."""
        return self._task

    def halt(self) -> None:
        """Stop after the batch under way (or the fetch under way) without waiting for it."""
        self._stopping = True

    async def stop(self) -> None:
        """Stop: a fetch under way is cut short (what it held comes again), a batch being handled is finished."""
        self._stopping = True
        if self._task is None:
            return
        if self._fetching:
            self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task

    async def _run(self) -> None:
        while not self._stopping:
            self._fetching = True
            try:
                msgs = await fetch(self.sub, self.batch if isinstance(self.batch, int) else self.batch(),
                                   self.timeout)
            except (TimeoutError, NatsTimeout):
                if self.idle is not None:
                    self.idle()
                continue
            except asyncio.CancelledError:
                if self._stopping:
                    return
                raise
            except Exception as e:  # disconnected, the server restarting: nats-py reconnects; ask again
                log.warning("%s: fetch failed, will ask again: %s", self.name, e)
                await asyncio.sleep(FETCH_RETRY_S)
                continue
            finally:
                self._fetching = False
            if not msgs:
                if self.idle is not None:
                    self.idle()
                continue
            self.batches += 1
            self.messages += len(msgs)
            try:
                await self.handle(msgs)
            except Exception:  # a bug in a handler must not stop the receiver: unacked, they come again
                log.exception("%s: handling a batch of %d failed; it will be redelivered", self.name, len(msgs))
