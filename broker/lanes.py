"""Per-sender lanes inside a receiving agent: one sender's flood does not hold back the others (decision 58).

An agent reads its mail through one durable consumer, in stream order (decision 53).  A
flood from one sender ahead of another's request used to cost the request one check and
one ack per flood message.  :class:`Lanes` sits between the pull loop and the agent's batch
handler and splits each fetched batch by sender (the subject's ``xz.<sender>`` token, which
only that bureau's NATS user may publish on):

- the **fast lane** is the batch's messages of the other senders, handled at once, in
  stream order, as before (one group commit, acks after it);
- the **slow lane** holds the messages of a sender that is over its dead-letter budget
  (:meth:`broker.intake.DeadLetters.over_budget`), that fills more than half of a full
  fetched batch (a backlog), or that has messages held already.  A separate task handles
  them in chunks of a batch (:data:`OVER_BUDGET_CHUNK` batches for a sender past its
  budget, whose rejections cost little), one sender's queue at a time, round robin.  It takes a chunk
  only when the fast lane has nothing waiting and either the lane is full or the pull loop
  is not reading ahead: the last message fetched says that the consumer has nothing more
  pending (everything in the stream has been seen), or :data:`READING_S` passed without a
  fetch.  Other senders' mail behind a flood is found first, at the cost of reading the
  flood (a fetch of :data:`READ_AHEAD` batches' worth at a time), not of handling it.
  A sender's messages never overtake each other: once one is held, every later one is held
  behind it, until its queue is empty.

Per-case order holds across lanes.  Each message's case is read, unverified, from its body
(the ``case`` of the signed envelope; a message that passes the checks has exactly that
case).  A message whose case has a held message earlier in the stream is held too, and the
slow task takes a sender's message only if no other sender's held message of that case is
earlier.  A sender that forges case ids into its flood can thus delay the messages of those
cases behind its own, never lose or reorder them.

Held messages are not acked: exactly once, acks after the commit and dead-letter
accounting are the handler's, as before.  The pull loop waits while :data:`MAX_HELD_BYTES`
are held, each message counted with its body and :data:`HELD_OVERHEAD_BYTES` (so at most
:data:`MAX_HELD` messages, under the consumer's ``max_ack_pending``), and every held
message is marked in progress before half the consumer's ``ack_wait`` passes, so the server
does not deliver it again meanwhile.  On stop, what is held is nak'd, to come again at once
to whoever consumes next.
"""
from __future__ import annotations

import asyncio
import contextlib
import heapq
import logging
import time
from collections import Counter, deque
from collections.abc import Callable
from dataclasses import dataclass

import msgspec
from nats.aio.msg import Msg

from broker.pull import BatchFn
from broker.streams import ACK_WAIT_S, MAX_ACK_PENDING, sender_of
from schemas.envelope import MAX_MESSAGE_BYTES

log = logging.getLogger(__name__)

#: What a held message is taken to cost in memory besides its body: nats-py's message with its subject,
#: ack subject and parsed headers, and the lane's entry (measured: 1.3 KiB and the headers' text).
HELD_OVERHEAD_BYTES = 2048
#: The slow lane's bound, in memory: bodies and :data:`HELD_OVERHEAD_BYTES` each (96 MiB: about 28,000
#: messages of 1.5 KB, 1,400 of the 64 KiB maximum); the pull loop waits while it is reached.
MAX_HELD_BYTES = 96 * 1024 * 1024
#: What the largest message a sending stream takes costs held (decision 50's 64 KiB, headers counted).
_LARGEST_HELD = MAX_MESSAGE_BYTES + HELD_OVERHEAD_BYTES
#: The count that bound implies (every held message costs at least its overhead): 49,152.
MAX_HELD = MAX_HELD_BYTES // HELD_OVERHEAD_BYTES
#: While messages are held, the pull loop asks for this many batches' worth at a time.
READ_AHEAD = 16
#: A sender past its dead-letter budget is handled this many batches at a time (its rejections are summarised).
OVER_BUDGET_CHUNK = 4
#: While the stream has more for the pull loop, the slow lane waits at most this long for its next fetch (seconds).
READING_S = 1.0
assert MAX_HELD + 2 * READ_AHEAD * 64 <= MAX_ACK_PENDING, "the consumer must let the agent hold the lane and a batch"


class _CaseOnly(msgspec.Struct):
    case: str = ""


_case_decoder = msgspec.json.Decoder(_CaseOnly)


def claimed_case(data: bytes) -> str:
    """The ``case`` a message's body names, unverified; empty if it names none (it will be rejected)."""
    try:
        return _case_decoder.decode(data).case
    except Exception:  # noqa: BLE001 - any body that does not decode names no case
        return ""


def _stream_seq(msg: Msg) -> int:
    """The message's sequence in the stream, read off its ack subject (``$JS.ACK.<stream>.<consumer>.<delivered>.
    <stream seq>.…``) without nats-py's full metadata (a datetime and a dataclass: a sixth of the cost of
    routing a message); the other form of the ack subject (with a domain) goes through nats-py."""
    tokens = (msg.reply or "").split(".", 6)
    if len(tokens) == 7 and tokens[0] == "$JS" and tokens[1] == "ACK" and tokens[6].count(".") == 2:
        return int(tokens[5])
    return int(msg.metadata.sequence.stream)


def _pending_after(msg: Msg) -> int:
    try:
        return int(msg.metadata.num_pending or 0)
    except Exception:  # noqa: BLE001 - not a JetStream delivery: nothing known behind it
        return 0


#: What :attr:`Lanes.trace` records: each handled batch, its lane and its messages' stream sequences and senders.
Trace = list[tuple[str, list[tuple[int, str]]]]


@dataclass
class _Held:
    msg: Msg
    seq: int
    sender: str
    case: str
    size: int
    touched: float


class Lanes:
    """The fast and the slow lane of one receiver; :meth:`take` is the pull loop's batch handler.

    ``handle`` applies a batch and acks or naks each of its messages (the agent's
    ``_on_batch``); it is never called twice at once.  ``over_budget(sender)``: whether the
    sender's rejections are past its dead-letter budget.  ``enabled=False`` hands every
    batch to ``handle`` whole, in stream order (the bench's baseline).
    """

    def __init__(self, name: str, handle: BatchFn, *, batch: int, over_budget: Callable[[str], bool],
                 max_held: int = MAX_HELD, max_held_bytes: int = MAX_HELD_BYTES,
                 ack_wait: float = ACK_WAIT_S) -> None:
        self.name = name
        self.handle = handle
        self.batch = batch
        self.over_budget = over_budget
        self.max_held = max_held
        self.max_held_bytes = max_held_bytes
        self.keepalive_s = ack_wait / 2
        self.enabled = True
        #: Messages handled in each lane, and slow chunks (for the bench and the operator).
        self.fast_messages = 0
        self.slow_messages = 0
        self.slow_chunks = 0
        #: When a list: each handled batch as ``(lane, [(stream sequence, sender), …])``, in the order handled.
        self.trace: Trace | None = None
        self._queues: dict[str, deque[_Held]] = {}
        self._held: dict[int, _Held] = {}
        self._held_bytes = 0
        #: case -> sender -> heap of held stream sequences (stale entries dropped lazily).
        self._cases: dict[str, dict[str, list[int]]] = {}
        self._turn: deque[str] = deque()  # senders with a queue, round robin
        self._lock = asyncio.Lock()
        self._fast_waiting = 0
        self._fast_idle = asyncio.Event()
        self._fast_idle.set()
        self._work = asyncio.Event()
        self._room = asyncio.Event()
        self._room.set()
        self._stopping = False
        #: Until when the pull loop is taken to be reading ahead (its last fetch came back full).
        self._reading_until = 0.0
        self._asked = batch
        self._task: asyncio.Task[None] | None = None
        self._keepalive_task: asyncio.Task[None] | None = None

    @property
    def held(self) -> int:
        """Messages in the slow lane now."""
        return len(self._held)

    def start(self) -> None:
        """Start the slow lane's task."""
        self._task = asyncio.create_task(self._run_slow(), name=f"slow-lane-{self.name}")
        self._keepalive_task = asyncio.create_task(self._run_keepalive(), name=f"slow-lane-keepalive-{self.name}")

    def halt(self) -> None:
        """Take no new chunk; a chunk under way is finished.  The pull loop's wait for room ends."""
        self._stopping = True
        self._work.set()
        self._room.set()
        self._fast_idle.set()

    async def stop(self) -> None:
        """Halt, wait for the slow task, and nak what is held so that it comes again at once."""
        self.halt()
        if self._keepalive_task is not None:
            self._keepalive_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._keepalive_task
        if self._task is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        for h in list(self._held.values()):
            with contextlib.suppress(Exception):  # the connection may be gone: it comes again after ack_wait
                await h.msg.nak()
        self._held.clear()
        self._queues.clear()
        self._cases.clear()
        self._turn.clear()
        self._held_bytes = 0

    # -- the pull loop's side ----------------------------------------------------------------

    def fetch_size(self) -> int:
        """How many messages the pull loop asks for next: more while the slow lane holds some (reading ahead)."""
        ahead = self.batch * READ_AHEAD if self._queues and self.enabled else self.batch
        # Only as many as would fit were each the largest a stream takes: held stays under the bounds and a batch.
        room = min(self.max_held - len(self._held), (self.max_held_bytes - self._held_bytes) // _LARGEST_HELD)
        self._asked = max(self.batch, min(ahead, room))
        return self._asked

    def idle(self) -> None:
        """The pull loop found nothing more: the slow lane may go on."""
        self._reading_until = 0.0
        if self._queues:
            self._work.set()

    def _reading(self) -> bool:
        """Whether the slow lane should leave the way to the pull loop, which is reading ahead."""
        return time.monotonic() < self._reading_until and not self._full()

    async def take(self, msgs: list[Msg]) -> None:
        """Route a fetched batch: hold what goes to the slow lane, handle the rest now; wait while the lane is full."""
        self._fast_waiting += 1  # before any await: the slow task takes no new chunk until this batch is done
        self._fast_idle.clear()
        # More behind it in the stream (JetStream's count of what is pending for the consumer after
        # the last message): the slow lane leaves the way to the pull loop, for at most READING_S.
        self._reading_until = time.monotonic() + READING_S if msgs and _pending_after(msgs[-1]) else 0.0
        try:
            fast = msgs if not self.enabled else self._route(msgs)
            if fast:
                async with self._lock:
                    await self._handle("fast", fast)
                self.fast_messages += len(fast)
        finally:
            self._fast_waiting -= 1
            if not self._fast_waiting:
                self._fast_idle.set()
        if self._queues and not self._reading():
            self._work.set()
        while self._full() and not self._stopping:
            self._room.clear()
            await self._room.wait()

    def _route(self, msgs: list[Msg]) -> list[Msg]:
        now = time.monotonic()
        crowded: set[str] = set()
        if len(msgs) >= self.batch:
            crowded = {s for s, n in Counter(sender_of(m.subject) for m in msgs).items() if n > len(msgs) // 2}
        fast: list[Msg] = []
        for m in msgs:
            seq = _stream_seq(m)
            known = self._held.get(seq)
            if known is not None:  # delivered again while held (it was not kept in progress): keep the newer
                known.msg, known.touched = m, now
                continue
            sender, case = sender_of(m.subject), claimed_case(m.data)
            if (sender in self._queues or sender in crowded or self._behind(case, seq)
                    or self.over_budget(sender)):
                self._hold(_Held(m, seq, sender, case, len(m.data) + HELD_OVERHEAD_BYTES, now))
            else:
                fast.append(m)
        return fast

    def _full(self) -> bool:
        return len(self._held) >= self.max_held or self._held_bytes >= self.max_held_bytes

    # -- the held messages ---------------------------------------------------------------------

    def _hold(self, h: _Held) -> None:
        if h.sender not in self._queues:
            self._queues[h.sender] = deque()
            self._turn.append(h.sender)
        self._queues[h.sender].append(h)
        self._held[h.seq] = h
        self._held_bytes += h.size
        if h.case:
            heapq.heappush(self._cases.setdefault(h.case, {}).setdefault(h.sender, []), h.seq)

    def _release(self, h: _Held) -> None:
        del self._held[h.seq]
        self._held_bytes -= h.size
        by_sender = self._cases.get(h.case) if h.case else None
        if by_sender is not None:
            self._first(by_sender, h.sender)  # drops its entry (no longer held) if it was the first
            if not by_sender:
                del self._cases[h.case]

    def _first(self, by_sender: dict[str, list[int]], sender: str) -> int | None:
        """The earliest held sequence of ``sender`` in one case's index, dropping entries no longer held."""
        heap = by_sender.get(sender)
        while heap and heap[0] not in self._held:
            heapq.heappop(heap)
        if not heap:
            by_sender.pop(sender, None)
            return None
        return heap[0]

    def _behind(self, case: str, seq: int, sender: str | None = None) -> bool:
        """Whether a message of ``case`` earlier than ``seq`` is held (of a sender other than ``sender``)."""
        by_sender = self._cases.get(case) if case else None
        if not by_sender:
            return False
        for other in list(by_sender):
            if other == sender:
                continue
            first = self._first(by_sender, other)
            if first is not None and first < seq:
                return True
        return False

    def _next_chunk(self) -> list[_Held]:
        """Up to a batch of one sender's queue, from its head, none behind another sender's message of its case."""
        for _ in range(len(self._turn)):
            sender = self._turn[0]
            self._turn.rotate(-1)
            # A sender past its dead-letter budget has its rejections summarised: a chunk of it costs
            # little but its checks and acks, and a summary write each, so it goes several batches at a time.
            size = self.batch * OVER_BUDGET_CHUNK if self.over_budget(sender) else self.batch
            chunk: list[_Held] = []
            for h in self._queues[sender]:
                if len(chunk) >= size or self._behind(h.case, h.seq, sender):
                    break
                chunk.append(h)
            if chunk:
                return chunk
        return []

    async def _run_keepalive(self) -> None:
        """Mark in progress, every so often, each held message the server would otherwise deliver again."""
        while not self._stopping:
            await asyncio.sleep(self.keepalive_s / 2)
            now = time.monotonic()
            for i, h in enumerate(list(self._held.values())):
                if now - h.touched >= self.keepalive_s and h.seq in self._held:
                    with contextlib.suppress(Exception):  # the connection is away: if it comes again, the seq dedups it
                        await h.msg.in_progress()
                    h.touched = now
                if i % 512 == 511:
                    await asyncio.sleep(0)  # tens of thousands held: let a fetched batch in meanwhile

    # -- the slow lane's task ------------------------------------------------------------------

    async def _run_slow(self) -> None:
        while not self._stopping:
            if self._fast_waiting:
                await self._fast_idle.wait()
                continue
            chunk: list[_Held] = []
            async with self._lock:
                if not self._fast_waiting and not self._stopping and not self._reading():
                    chunk = self._next_chunk()
                    if chunk:
                        try:
                            await self._handle("slow", [h.msg for h in chunk])
                        except Exception:  # a bug in the handler: unacked, they come again after ack_wait
                            log.exception("%s: handling a slow chunk of %d failed; it will be redelivered",
                                          self.name, len(chunk))
                        self._done(chunk)
            if chunk:
                await asyncio.sleep(0)  # let a fetched batch in before the next chunk
                continue
            self._work.clear()
            wait = max(0.001, self._reading_until - time.monotonic()) if self._queues and self._reading() else 1.0
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._work.wait(), timeout=wait)

    def _done(self, chunk: list[_Held]) -> None:
        sender = chunk[0].sender
        queue = self._queues[sender]
        for h in chunk:
            if queue and queue[0] is h:
                queue.popleft()
            else:  # replaced by a redelivery meanwhile: find it
                with contextlib.suppress(ValueError):
                    queue.remove(h)
            self._release(h)
        if not queue:
            del self._queues[sender]
            self._turn.remove(sender)
        self.slow_messages += len(chunk)
        self.slow_chunks += 1
        if not self._full():
            self._room.set()

    async def _handle(self, lane: str, msgs: list[Msg]) -> None:
        if self.trace is not None:
            self.trace.append((lane, [(m.metadata.sequence.stream, sender_of(m.subject)) for m in msgs]))
        await self.handle(msgs)
