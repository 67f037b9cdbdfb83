"""`xiezhu run`: every service in its own process, a dead one restarted, all stopped on SIGTERM."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

from agencies.trust.keys import KeyStore
from aggregates.registry import JUSTICE, Registry
from xiezhu.running import agent_running
from xiezhu.settings import Settings
from xiezhu.supervisor import plan

#: Guards against a hang, not a performance threshold.
PATIENCE_S = 90.0


def wait_for(what: str, predicate: Callable[[], bool], proc: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + PATIENCE_S
    while not predicate():
        assert proc.poll() is None, f"the supervisor ended while waiting for {what}"
        assert time.monotonic() < deadline, f"{what}: not within {PATIENCE_S:.0f}s"
        time.sleep(0.1)


def holder(settings: Settings, code: str) -> int:
    """The pid written into a bureau's agent lock (the process holding it)."""
    return int((settings.bureau_dir(code) / "agent.lock").read_text().strip() or 0)


def test_the_plan_gives_each_agent_a_process_and_sifa_none_beside_the_ledger(tmp_path: Path) -> None:
    services = plan(tmp_path, "nats://127.0.0.1:4222", ["gongan", "shenpi", "gongan", JUSTICE], ledger=True)
    assert [s.name for s in services] == ["agent gongan", "agent shenpi", "ledger"]
    assert services[0].argv[-5:] == ["--nats-url", "nats://127.0.0.1:4222", "agent", "--bureau", "gongan"]
    assert [s.name for s in plan(tmp_path, "nats://x", [JUSTICE], ledger=False)] == [f"agent {JUSTICE}"]


def test_with_an_ops_port_base_each_service_gets_its_own_metrics_port(tmp_path: Path) -> None:
    services = plan(tmp_path, "nats://x", ["gongan", "shenpi"], ledger=True, ops_port_base=9100)
    assert [s.argv[-2:] for s in services] == [["--ops-port", "9100"], ["--ops-port", "9101"],
                                               ["--ops-port", "9102"]]
    assert services[2].argv[-3] == "ledger"
    assert all("--ops-port" not in s.argv for s in plan(tmp_path, "nats://x", ["gongan"], ledger=True))


def test_run_starts_each_service_restarts_a_killed_one_and_stops_them_all(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path / "data")
    KeyStore(settings.keys_dir).ensure(Registry.load().codes(), valid_from=datetime.now(UTC) - timedelta(days=1))
    proc = subprocess.Popen([sys.executable, "-m", "xiezhu", "--data-dir", str(settings.data_dir),
                             "run", "--bureau", "gongan", "--ledger"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        wait_for("both agents", lambda: agent_running(settings.bureau_dir("gongan"))
                 and agent_running(settings.bureau_dir(JUSTICE)), proc)
        first = holder(settings, "gongan")
        assert first not in (0, proc.pid)  # a process of its own
        assert holder(settings, JUSTICE) not in (0, proc.pid, first)  # the ledger's, apart from gongan's
        os.kill(first, signal.SIGKILL)
        wait_for("gongan's agent again", lambda: agent_running(settings.bureau_dir("gongan"))
                 and holder(settings, "gongan") != first, proc)
        proc.send_signal(signal.SIGTERM)
        _, stderr = proc.communicate(timeout=PATIENCE_S)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    text = stderr.decode()
    assert proc.returncode == 0, text
    assert "agent gongan 运行" in text and "后退出，状态 -9" in text and "已停止 ledger" in text
    assert not agent_running(settings.bureau_dir("gongan")) and not agent_running(settings.bureau_dir(JUSTICE))


def test_run_with_nothing_to_run_is_one_error_line(tmp_path: Path) -> None:
    proc = subprocess.run([sys.executable, "-m", "xiezhu", "--data-dir", str(tmp_path), "run"],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 1
    assert proc.stderr.strip().splitlines() == ["错误：没有可运行的服务：请指定 --bureau 或 --ledger"]
    proc = subprocess.run([sys.executable, "-m", "xiezhu", "--lang", "en", "--data-dir", str(tmp_path), "run"],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 1
    assert proc.stderr.strip().splitlines() == ["error: nothing to run: name a --bureau, or --ledger"]
