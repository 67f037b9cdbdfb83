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
import logging
from collections.abc import Awaitable, Callable

from nats.aio.msg import Msg
from nats.errors import TimeoutError as NatsTimeout
from nats.js import JetStreamContext

from broker.streams import PULL_TIMEOUT_S

log = logging.getLogger(__name__)

#: Seconds to wait after a fetch failed for another reason than an empty consumer.
FETCH_RETRY_S = 0.5

#: Handles one fetched batch, in stream order: applies it and acks or naks every message.
BatchFn = Callable[[list[Msg]], Awaitable[None]]
#: How many messages to ask for next (a number, or asked before each fetch).
BatchSize = int | Callable[[], int]


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
                msgs = await self.sub.fetch(self.batch if isinstance(self.batch, int) else self.batch(),
                                            timeout=self.timeout)
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
