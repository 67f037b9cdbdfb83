"""Damaged or unusual surroundings, tried as a new user would (issue 15, points 7–10).

Each test runs the real command line in a subprocess, on real files and a real nats-server.
"""
from __future__ import annotations

import os
import re
import signal
import subprocess
import time
from pathlib import Path

import pytest

from broker.server import EmbeddedNats, ServerError
from tests.conftest import bound_socket
from tests.test_cli import XIEZHU, run

#: A line a service logs: an ISO timestamp first.
STAMPED = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:?\d\d) +(DEBUG|INFO|WARNING|ERROR|CRITICAL) ")


def test_a_second_server_on_the_same_jetstream_store_is_refused_and_named(tmp_path: Path) -> None:
    first = EmbeddedNats(tmp_path / "nats").start()
    try:
        with pytest.raises(ServerError, match=f"already runs on .* at {first.url}: pass --nats-url {first.url}"):
            EmbeddedNats(tmp_path / "nats").start()
        assert first.running
    finally:
        first.stop()
    again = EmbeddedNats(tmp_path / "nats").start()  # the lock goes with the server
    again.stop()


def test_an_agent_that_cannot_reach_nats_logs_one_line_and_stops_at_sigterm(tmp_path: Path) -> None:
    """It used to print a traceback per reconnect attempt and ignore SIGTERM for about two minutes."""
    data = tmp_path / "data"
    run("keys", "init", data_dir=data)
    nobody = bound_socket()  # held, not listening, until the agent is gone: no server of another test starts there
    env = {k: v for k, v in os.environ.items() if not k.startswith("XIEZHU_")}
    env |= {"XIEZHU_DATA_DIR": str(data), "XIEZHU_NATS_URL": f"nats://127.0.0.1:{nobody.getsockname()[1]}"}
    log = tmp_path / "agent.log"
    with nobody, open(log, "wb") as out:
        proc = subprocess.Popen([*XIEZHU, "agent", "--bureau", "gongan"], stdout=out, stderr=subprocess.STDOUT,
                                env=env)
        try:
            deadline = time.monotonic() + 120
            while "Connect call failed" not in log.read_text(errors="replace"):
                assert proc.poll() is None, log.read_text()
                assert time.monotonic() < deadline, "the agent never said it cannot connect"
                time.sleep(0.1)
            time.sleep(2)  # several reconnect attempts
            proc.send_signal(signal.SIGTERM)
            proc.wait(timeout=60)  # a bound, not a speed: it used to take two minutes
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    text = log.read_text(errors="replace")
    lines = [line for line in text.splitlines() if line.strip()]
    assert "Traceback" not in text, text
    assert sum("Connect call failed" in line for line in lines) == 1, text  # the same failure, said once
    assert all(STAMPED.match(line) for line in lines[:-1]), text
    assert lines[-1] == "区公安分局的代理程序在启动完成前已停止", text


SWALLOWS_CANCELLATION = """
import asyncio, sys
import xiezhu.cli.common
from xiezhu.cli.common import run_forever

xiezhu.cli.common.STOP_GRACE_S = 1.0  # the test's; 10 s in service

async def start():  # as a client library's retry loop that catches CancelledError
    print("starting", flush=True)
    while True:
        try:
            await asyncio.sleep(0.05)
        except asyncio.CancelledError:
            continue

async def stop():
    pass

run_forever(start, stop, "agents gongan", "区公安分局的代理程序")
"""


def test_a_service_whose_start_ignores_its_cancellation_still_leaves_after_sigterm(tmp_path: Path) -> None:
    # Seen once in a full run under load: an agent that could not reach NATS outlived SIGTERM by more than a
    # minute.  Whatever holds the start, the process leaves within the grace period, saying so in one line.
    import sys

    proc = subprocess.Popen([sys.executable, "-c", SWALLOWS_CANCELLATION], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env={k: v for k, v in os.environ.items()
                                                                    if not k.startswith("XIEZHU_")})
    try:
        assert proc.stdout is not None and proc.stdout.readline() == "starting\n"
        proc.send_signal(signal.SIGTERM)
        _, stderr = proc.communicate(timeout=30)  # a bound, not a speed
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert proc.returncode == 0, stderr
    assert "Traceback" not in stderr and lines[-1] == "区公安分局的代理程序在启动完成前已停止", stderr
    assert STAMPED.match(lines[0]) and "did not end within" in lines[0], stderr


def test_the_demo_never_wipes_a_directory_a_running_service_uses(tmp_path: Path) -> None:
    from xiezhu.demo import DemoError, prepare_data_dir
    from xiezhu.running import agent_lock
    from xiezhu.settings import Settings

    settings = Settings(data_dir=tmp_path / "data")
    prepare_data_dir(settings)  # a demo's directory, as the marker says
    kept = settings.data_dir / "kept"
    kept.write_text("a service's file")
    server = EmbeddedNats(settings.nats_dir).start()  # `xiezhu nats-server` on it
    try:
        with pytest.raises(DemoError, match="in use by a running service"):
            prepare_data_dir(settings)
    finally:
        server.stop()
    lock = agent_lock(settings.bureau_dir("gongan"))  # `xiezhu agent --bureau gongan` on it
    assert lock.acquire()
    try:
        with pytest.raises(DemoError, match="agent.lock is held"):
            prepare_data_dir(settings)
    finally:
        lock.release()
    assert kept.read_text() == "a service's file"
    prepare_data_dir(settings)  # nobody runs on it now: a demo directory is replaced
    assert not kept.exists()


def test_a_server_not_ready_in_time_says_why_in_one_line(tmp_path: Path) -> None:
    """Start-up waits up to 60 s by default (a cold machine); what gives up names the log's last line."""
    server = EmbeddedNats(tmp_path / "nats")
    with pytest.raises(ServerError, match=r"within 1e-06s; (its log ends: .+|it wrote no log)$") as raised:
        server.start(timeout=1e-6)
    assert "\n" not in str(raised.value) and not server.running
    server.start()  # and the store is not left locked
    server.stop()
