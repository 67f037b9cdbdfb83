"""Start-up calls to NATS that wait out a cluster losing a node: short tries, asked again (decision 67).

A JetStream API request that goes unanswered is most often lost, not slow: it went out over a
connection to a node that was then killed (nats-py fails a pending request at its timeout, not
when the connection closes), to a node cut off from its peers, or while the leader that answers
it was being elected.  The kill -9 campaign (issue 15) found an agent and the ledger, restarted
while a node was down, held out of the exchange for 30 s by one such request: every start-up
call had been given :data:`~broker.server.START_TIMEOUT_S` for a cold disk (decision 56).

:func:`patiently` gives a call :data:`FIRST_TRY_S` on its first try and twice as long on each
next one, up to ``START_TIMEOUT_S``: a lost request costs seconds, and a server that is only slow
still gets its 30 s by the fifth try.  Only reads and idempotent calls are asked again.
"""
from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import nats.errors
import nats.js.errors
from nats.js import JetStreamContext

from broker.server import START_TIMEOUT_S

log = logging.getLogger(__name__)

T = TypeVar("T")

#: How long a service's start waits out a NATS that is away, or a cluster electing a leader.
START_PATIENCE_S = 60.0
#: The time a start-up call gets on its first try; doubled on each next try up to ``START_TIMEOUT_S``.
FIRST_TRY_S = 2.0
#: What a start step may meet while a cluster node is lost or a cluster has no leader yet: it passes.
PASSING = (nats.errors.TimeoutError, nats.errors.NoServersError, nats.errors.ConnectionClosedError,
           nats.errors.NoRespondersError, nats.js.errors.ServiceUnavailableError, OSError)


async def patiently(what: str, attempt: Callable[[float], Awaitable[T]], *, patience: float = START_PATIENCE_S,
                    first_try: float = FIRST_TRY_S) -> T:
    """``attempt(timeout)``, again after a growing pause while NATS is away, does not answer, or JetStream
    answers 503 (a node of the cluster was lost: its leaders are being elected again), for up to
    ``patience`` seconds.  ``timeout`` is what each call to NATS of that try may wait for its answer.

    One line is logged a try that failed.
    """
    loop = asyncio.get_running_loop()
    deadline, pause, timeout = loop.time() + patience, 0.5, first_try
    while True:
        try:
            return await attempt(timeout)
        except PASSING as e:
            if loop.time() + pause > deadline:
                raise
            why = f"no answer in {timeout:.1f} s" if isinstance(e, nats.errors.TimeoutError) else e or type(e).__name__
            log.warning("%s: NATS is not ready (%s); trying again in %.1f s", what, why, pause)
            await asyncio.sleep(pause)
            pause = min(pause * 2, 5.0)
            timeout = min(timeout * 2, START_TIMEOUT_S)


def each_call_patient(js: JetStreamContext, what: str) -> JetStreamContext:
    """``js``, whose every JetStream API call is asked again by :func:`patiently` (reads only, as a check's).

    A check of many calls then loses one call's try to a lost request, not the whole check:
    under NATS faults one after the other, a whole check of ~140 calls did not pass before its
    tries had grown to 8 s each (the kill -9 campaign).  Its connection must reconnect by itself.
    """
    call = js._api_request

    async def patient(subject: str, req: bytes = b"", timeout: float = START_TIMEOUT_S) -> dict[str, Any]:
        return await patiently(f"{what} ({subject.removeprefix('$JS.API.')})",
                               lambda t: call(subject, req, timeout=t))

    js._api_request = patient  # type: ignore[method-assign,assignment]
    return js
