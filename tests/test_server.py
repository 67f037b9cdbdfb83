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
