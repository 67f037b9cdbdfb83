"""Blocking calls off the event loop: a stopping service waits for the call under way (broker.threads)."""
from __future__ import annotations

import asyncio
import sqlite3
import threading
from pathlib import Path

import pytest

from broker.threads import in_thread


async def test_cancelling_a_task_waits_for_its_call_in_the_worker_thread_to_return() -> None:
    # Found by a segmentation fault: a witness stopped (its task cancelled) while its worker thread read
    # its SQLite file, then closed the connection under the running statement.
    entered, release, returned = threading.Event(), threading.Event(), threading.Event()

    def slow() -> int:
        entered.set()
        release.wait(10)
        returned.set()
        return 1

    task = asyncio.create_task(in_thread(slow))
    while not entered.is_set():
        await asyncio.sleep(0.005)
    task.cancel()
    await asyncio.sleep(0.05)
    assert not task.done(), "the cancellation went on while the call still ran"
    release.set()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert returned.is_set()


async def test_a_store_closed_after_a_cancelled_read_is_no_longer_in_use(tmp_path: Path) -> None:
    db = sqlite3.connect(tmp_path / "x.db", check_same_thread=False)
    db.execute("CREATE TABLE t (n INTEGER)")
    db.executemany("INSERT INTO t VALUES (?)", [(i,) for i in range(20_000)])
    db.commit()
    started = threading.Event()

    def read() -> int:
        started.set()
        return sum(n for (n,) in db.execute("SELECT a.n FROM t a, t b WHERE b.n < 20"))

    task = asyncio.create_task(in_thread(read))
    while not started.is_set():
        await asyncio.sleep(0.001)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    db.close()  # with asyncio.to_thread this could close the connection under the running SELECT


async def test_a_call_that_fails_gives_its_error_and_one_that_returns_its_value() -> None:
    assert await in_thread(lambda a, b=0: a + b, 1, b=2) == 3
    with pytest.raises(ZeroDivisionError):
        await in_thread(lambda: 1 / 0)
