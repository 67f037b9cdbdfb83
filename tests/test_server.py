"""The embedded nats-server launcher."""
from __future__ import annotations

import json
import urllib.request
from pathlib import Path

import nats
import pytest

from broker.server import EmbeddedNats, ServerError, free_port


def test_starts_with_jetstream_on_a_free_port_and_stops_cleanly(tmp_path: Path) -> None:
    server = EmbeddedNats(tmp_path).start()
    assert server.running and server.url.startswith("nats://127.0.0.1:")
    server.stop()
    assert not server.running
    server.stop()  # stopping twice is harmless


async def test_jetstream_keeps_messages_across_a_restart_on_the_same_store(tmp_path: Path) -> None:
    server = EmbeddedNats(tmp_path).start()
    nc = await nats.connect(server.url)
    js = nc.jetstream()
    await js.add_stream(name="T", subjects=["t.>"])
    await js.publish("t.1", b"kept")
    await nc.close()
    server.kill()  # no clean shutdown
    server.start()
    nc = await nats.connect(server.url)
    msg = await nc.jetstream().get_msg("T", 1)
    await nc.close()
    server.stop()
    assert msg.data == b"kept"


def test_syncs_every_write_by_default(tmp_path: Path) -> None:
    """JetStream's default fsync every two minutes could lose an acked event on power loss."""
    port = free_port()
    server = EmbeddedNats(tmp_path, http_port=port).start()
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/varz", timeout=5) as r:
            varz = json.load(r)
    finally:
        server.stop()
    assert varz["jetstream"]["config"]["sync_always"] is True


def test_a_port_in_use_is_a_clear_error(tmp_path: Path) -> None:
    first = EmbeddedNats(tmp_path / "a").start()
    try:
        with pytest.raises(ServerError):
            EmbeddedNats(tmp_path / "b", port=first.port).start(timeout=3)
    finally:
        first.stop()


def test_the_server_does_not_outlive_a_killed_parent(tmp_path: Path) -> None:
    """A parent killed with SIGKILL must not leave an orphaned nats-server behind."""
    import os
    import signal
    import subprocess
    import sys
    import time

    script = ("import sys, time; from pathlib import Path; from broker.server import EmbeddedNats; "
              f"s = EmbeddedNats(Path({str(tmp_path)!r})).start(); print(s._proc.pid, flush=True); time.sleep(60)")
    parent = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    assert parent.stdout is not None
    child = int(parent.stdout.readline())
    parent.send_signal(signal.SIGKILL)
    parent.wait()
    for _ in range(100):
        try:
            os.kill(child, 0)
        except ProcessLookupError:
            return
        with open(f"/proc/{child}/stat") as f:
            if f.read().split()[2] == "Z":  # exited, waiting to be reaped by init
                return
        time.sleep(0.05)
    os.kill(child, signal.SIGKILL)
    raise AssertionError("nats-server kept running after its parent was killed")
