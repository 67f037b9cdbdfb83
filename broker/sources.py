"""A source of ``XZ`` left stalled by a lost NATS node is set up again at once (decision 69).

``XZ`` copies each bureau's sending stream ``XZ_FROM_<code>`` through a source consumer that
the leader of ``XZ`` creates on the sending stream's leader, unreplicated, which sends a
heartbeat every second (nats-server 2.15.1).  When the node holding that leader dies, the
consumer dies with it, and the leader of ``XZ`` notices only at its next health tick once the
source has been silent 10 s: the messages a bureau sent meanwhile stay in its sending stream,
out of every agent's and the ledger's reach, for 10–20 s (more if the first new consumer
fails; the kill -9 campaign, issue 15).  Nothing but a new leader of ``XZ``, which sets up every
source at once, or that tick revives it (nats-io/nats-server#8630 describes the same cure).

:class:`SourceWatch` reads ``XZ``'s sources every second as ``admin`` may, and when one has
been silent past :data:`STALE_S` (three heartbeats) while its sending stream has a leader to
source from, asks ``XZ``'s leader to step down, at most once in :data:`NUDGE_COOLDOWN_S`.
Stepping down changes no message and no consumer: the next leader resumes each source after
the last sequence ``XZ`` holds from it.  ``XZ_WITNESS`` is watched the same way.
"""
from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable, Mapping
from typing import Any

from nats.js import JetStreamContext
from nats.js.errors import APIError

from broker.patience import PASSING
from broker.streams import EVENTS_STREAM, WITNESS_STREAM

log = logging.getLogger(__name__)

#: A source silent this long (seconds) has lost its consumer: its heartbeat comes every second.
STALE_S = 3.0
#: Seconds between two looks at the sources.
WATCH_INTERVAL_S = 1.0
#: After a step-down, the sources are left this long to come back before another one (seconds).
NUDGE_COOLDOWN_S = 10.0
#: What one call to NATS may wait for its answer: a look that gets none is skipped.
CALL_TIMEOUT_S = 2.0
#: The streams that source others: the events and the countersignatures.
SOURCING_STREAMS = (EVENTS_STREAM, WITNESS_STREAM)


def stale_sources(info: Mapping[str, Any], stale_after: float = STALE_S) -> list[str]:
    """The sources of a stream (its raw STREAM.INFO) not heard from for ``stale_after`` seconds."""
    out = []
    for source in info.get("sources") or ():
        active = source.get("active")
        if isinstance(active, int) and active > stale_after * 1e9:  # nanoseconds; -1: never
            out.append(str(source.get("name")))
    return out


class SourceWatch:
    """Steps down the leader of a sourcing stream whose source stalled (decision 69)."""

    def __init__(self, js: JetStreamContext, streams: Iterable[str] = SOURCING_STREAMS, *,
                 interval: float = WATCH_INTERVAL_S, stale_after: float = STALE_S,
                 cooldown: float = NUDGE_COOLDOWN_S) -> None:
        self.js = js
        self.streams = list(streams)
        self.interval = interval
        self.stale_after = stale_after
        self.cooldown = cooldown
        #: Step-downs asked, by stream (for the operator's metrics and the tests).
        self.nudges: dict[str, int] = {}
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="source-watch")

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self.interval)
            for stream in self.streams:
                try:
                    nudged = await self.look(stream)
                except (APIError, *PASSING) as e:  # NATS away, no leader to answer, a refusal: the next look
                    log.debug("sources of %s not looked at: %s", stream, e)
                    continue
                if nudged:
                    await asyncio.sleep(self.cooldown)

    async def _call(self, subject: str) -> dict[str, Any]:
        return dict(await self.js._api_request(subject, b"", timeout=CALL_TIMEOUT_S))

    async def look(self, stream: str) -> bool:
        """Step ``stream``'s leader down if a source of it stalled while its origin has a leader; whether it did."""
        stale = stale_sources(await self._call(f"$JS.API.STREAM.INFO.{stream}"), self.stale_after)
        if not stale:
            return False
        ready = []
        for origin in stale:
            try:
                info = await self._call(f"$JS.API.STREAM.INFO.{origin}")
            except PASSING:
                continue
            if (info.get("cluster") or {}).get("leader"):
                ready.append(origin)
        if not ready:
            return False  # its leader is still being elected: a new consumer could not be made yet
        log.warning("sources of %s silent over %.0f s (%s); asking its leader to step down so that the next "
                    "sets them up again", stream, self.stale_after, ", ".join(sorted(ready)))
        await self._call(f"$JS.API.STREAM.LEADER.STEPDOWN.{stream}")  # a refusal raises APIError
        self.nudges[stream] = self.nudges.get(stream, 0) + 1
        return True
