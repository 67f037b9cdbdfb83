"""Whether a bureau's agent runs on this machine: it holds a lock file while it does.

A clerk's command commits to the bureau's store and the agent's relay sends it; with no
agent running nothing is sent yet, and the command says so ("queued") instead of
pretending.  The lock is an ``flock`` on ``<bureau dir>/agent.lock``, released by the
kernel when the agent's process ends however it ends.
"""
from __future__ import annotations

import fcntl
import os
from pathlib import Path


class AgentLock:
    """The lock an agent holds while it runs."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._fd: int | None = None

    def acquire(self) -> bool:
        """Take the lock; False if another agent of the bureau holds it."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return False
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        self._fd = fd
        return True

    def release(self) -> None:
        """Let go of the lock (the process's end does it too)."""
        if self._fd is not None:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None


def agent_lock(bureau_dir: Path) -> AgentLock:
    """The lock of the agent whose bureau keeps its files in ``bureau_dir``."""
    return AgentLock(bureau_dir / "agent.lock")


def agent_running(bureau_dir: Path) -> bool:
    """Whether an agent holds the lock of the bureau in ``bureau_dir`` now."""
    path = bureau_dir / "agent.lock"
    if not path.exists():
        return False
    fd = os.open(path, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)  # closing drops a lock taken here
    return False
