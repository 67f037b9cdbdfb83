"""``xiezhu run``: one host's services, each in its own process, started, watched and restarted.

A deployment runs each bureau's agent on that bureau's machine and the ledger on 区司法局's
(``xiezhu agent``, ``xiezhu ledger``).  A district that runs several of them on one host
starts them with one command instead: every agent and the ledger (with its read models, the
SLA monitor and sifa's agent) is a separate process with its own interpreter, so they use
every core instead of sharing one GIL (issue 14).  The supervisor starts the embedded
nats-server first unless ``--nats-url`` names one, restarts a service that dies (after a
pause that doubles while it keeps dying young), and on SIGINT or SIGTERM stops every
service, then the server.
"""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from aggregates.registry import JUSTICE

#: A service that ran at least this long before it died is restarted without delay growth.
HEALTHY_AFTER_S = 10.0
#: Restart pauses: the first, and the most they grow to.
FIRST_PAUSE_S = 0.5
MAX_PAUSE_S = 30.0
#: How long services get to stop after SIGTERM before they are killed.
STOP_GRACE_S = 20.0


@dataclass
class Service:
    """One process the supervisor keeps running."""

    name: str
    argv: list[str]
    proc: subprocess.Popen[bytes] | None = None
    started_at: float = 0.0
    restarts: int = 0
    pause_s: float = FIRST_PAUSE_S
    due_at: float = 0.0  # when a dead service is started again
    exits: list[int] = field(default_factory=list)


def xiezhu_argv(data_dir: Path, nats_url: str, *args: str, database_url: str | None = None) -> list[str]:
    """The command line of one xiezhu service on ``data_dir`` and ``nats_url`` (and the stores' database)."""
    db = ["--database-url", database_url] if database_url else []
    return [sys.executable, "-m", "xiezhu", "--data-dir", str(data_dir), "--nats-url", nats_url, *db, *args]


def plan(data_dir: Path, nats_url: str, bureaus: Iterable[str], ledger: bool,
         database_url: str | None = None, ops_port_base: int | None = None) -> list[Service]:
    """The services of ``xiezhu run``: one agent process per bureau, and the ledger's.

    The ledger's process also runs sifa's agent (it relays the SLA monitor's notices), so
    sifa gets no process of its own when the ledger runs here.  With ``ops_port_base`` each
    service serves /healthz, /readyz and /metrics on its own port, counting up from it in
    the order listed.
    """
    commands = [("agent " + code, ["agent", "--bureau", code])
                for code in dict.fromkeys(bureaus) if not (ledger and code == JUSTICE)]
    if ledger:
        commands.append(("ledger", ["ledger"]))
    out = []
    for i, (name, args) in enumerate(commands):
        ops = ["--ops-port", str(ops_port_base + i)] if ops_port_base is not None else []
        out.append(Service(name, xiezhu_argv(data_dir, nats_url, *args, *ops, database_url=database_url)))
    return out


#: What the supervisor says of its services, per language.
_WORDS = {
    "en": {"started": "started {name} (pid {pid})",
           "ended": "{name} ended with status {code} after {lived:.1f} s; restarting in {pause:g} s",
           "killing": "{name} did not stop within {grace:g} s; killing it", "stopped": "stopped {name}"},
    "zh": {"started": "已启动 {name}（pid {pid}）",
           "ended": "{name} 运行 {lived:.1f} 秒后退出，状态 {code}；{pause:g} 秒后重启",
           "killing": "{name} 未在 {grace:g} 秒内停止；强制结束", "stopped": "已停止 {name}"},
}


class Supervisor:
    """Starts services, restarts the ones that die, stops them all on request."""

    def __init__(self, services: Sequence[Service], *, say: Callable[[str], None] = print,
                 env: dict[str, str] | None = None, log_dir: Path | None = None, language: str = "en") -> None:
        """``log_dir``: each service's output is appended to ``<log_dir>/<name>.log`` instead of ours;
        ``language``: what ``say`` is told, in 中文 ("zh") or English."""
        self.services = list(services)
        self.say = say
        self.words = _WORDS["zh" if language == "zh" else "en"]
        self.env = env
        self.log_dir = log_dir
        self.stopping = threading.Event()

    def _start(self, s: Service) -> None:
        if self.log_dir is None:
            s.proc = subprocess.Popen(s.argv, env=self.env)
        else:
            self.log_dir.mkdir(parents=True, exist_ok=True)
            with open(self.log_dir / f"{s.name.replace(' ', '-')}.log", "ab") as log:
                s.proc = subprocess.Popen(s.argv, env=self.env, stdout=log, stderr=subprocess.STDOUT)
        s.started_at = time.monotonic()
        self.say(self.words["started"].format(name=s.name, pid=s.proc.pid))

    def check(self) -> None:
        """Notice services that ended and start them again when their pause is over."""
        now = time.monotonic()
        for s in self.services:
            if s.proc is not None:
                code = s.proc.poll()
                if code is None:
                    continue
                s.exits.append(code)
                lived = now - s.started_at
                s.pause_s = FIRST_PAUSE_S if lived >= HEALTHY_AFTER_S else min(s.pause_s * 2, MAX_PAUSE_S)
                s.due_at = now + s.pause_s
                s.proc = None
                self.say(self.words["ended"].format(name=s.name, code=code, lived=lived, pause=s.pause_s))
            elif now >= s.due_at:
                if s.started_at:
                    s.restarts += 1
                self._start(s)

    def run(self, *, interval_s: float = 0.2) -> None:
        """Keep every service running until :meth:`stop` is called, then stop them."""
        try:
            while not self.stopping.is_set():
                self.check()
                self.stopping.wait(interval_s)
        finally:
            self.shutdown()

    def stop(self) -> None:
        """Ask :meth:`run` to stop every service and return (safe from a signal handler)."""
        self.stopping.set()

    def shutdown(self) -> None:
        """SIGTERM to every running service, then SIGKILL to any still running after the grace period."""
        running = [s for s in self.services if s.proc is not None and s.proc.poll() is None]
        for s in running:
            assert s.proc is not None
            s.proc.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + STOP_GRACE_S
        for s in running:
            assert s.proc is not None
            try:
                s.proc.wait(timeout=max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                self.say(self.words["killing"].format(name=s.name, grace=STOP_GRACE_S))
                s.proc.kill()
                s.proc.wait()
            self.say(self.words["stopped"].format(name=s.name))


def run_forever(supervisor: Supervisor) -> None:
    """Run until SIGINT or SIGTERM (the signals only set a flag; the loop stops the services)."""
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: supervisor.stop())
    supervisor.run()


def child_env() -> dict[str, str]:
    """The services' environment: ours, with output unbuffered so their lines interleave as they happen."""
    return os.environ | {"PYTHONUNBUFFERED": "1"}
