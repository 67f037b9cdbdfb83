"""Blocking work off the event loop, finished before a cancellation goes on.

``asyncio.to_thread`` hands a call to a worker thread and returns a future; cancelling the
task that awaits it cancels the wait, not the call, which runs on.  A service stopping that
way then closes its SQLite connection while the worker is still inside it, and the process
dies of a segmentation fault (sqlite3's connection is not safe to close under a running
statement).  :func:`in_thread` is ``to_thread`` whose cancellation first waits for the call
to return, so that whatever the caller closes next is no longer in use.
"""
from __future__ import annotations

import asyncio
import contextvars
import functools
from collections.abc import Callable
from typing import ParamSpec, TypeVar

P = ParamSpec("P")
T = TypeVar("T")


async def in_thread(fn: Callable[P, T], /, *args: P.args, **kwargs: P.kwargs) -> T:
    """``fn(*args, **kwargs)`` in the default executor; a cancellation waits for it to return, then goes on."""
    loop = asyncio.get_running_loop()
    call = functools.partial(contextvars.copy_context().run, fn, *args, **kwargs)
    future = loop.run_in_executor(None, call)
    try:
        return await asyncio.shield(future)
    except asyncio.CancelledError:
        while not future.done():
            try:
                await asyncio.shield(future)
            except asyncio.CancelledError:
                continue
            except Exception:  # noqa: BLE001 - the call's own failure: the cancellation is what propagates
                break
        raise
