"""Per-bureau limits, enforced by the server (decision 50), against a real nats-server.

One server for the module, on the generated configuration (each bureau's NKey user and
permissions) plus an ``operator`` user with every permission: what even the operator cannot
do, the stream's own configuration refuses.  Each bureau publishes into its own sending
stream ``XZ_FROM_<code>``, which holds it to a message size, a byte and a message count;
``XZ`` sources them all.
"""
from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import nats
import nkeys
import pytest
from nats.aio.client import Client
from nats.js.errors import APIError

from broker.auth import ADMIN, PROVISIONER, connect_options, generate_identities, load_identity, server_config
from broker.relay import Positions, Relay, RelayError
from broker.server import EmbeddedNats
from broker.streams import (
    EVENTS_STREAM,
    MAX_EVENT_BYTES,
    WITNESS_STREAM,
    BureauLimits,
    StreamLayoutError,
    ensure_consumers,
    ensure_streams,
    full_stream_error,
    sending_stream,
    sending_usage,
    usage_line,
    witness_stream,
)
from tests.conftest import jetstream
from tests.test_nats_auth import ListOutbox, signed

BUREAUS = ("shenpi", "gongan", "ziran")
LIMITS = BureauLimits(max_bytes=64 * 1024, max_msgs=40)


@pytest.fixture(scope="module")
def keys(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("limits") / "nats-keys"


@pytest.fixture(scope="module")
def server(keys: Path) -> Iterator[EmbeddedNats]:
    identities = generate_identities(BUREAUS, keys, provisioner=True)
    seed = nkeys.encode_seed(os.urandom(32), nkeys.PREFIX_BYTE_USER)
    (keys / "operator.nk").write_bytes(seed + b"\n")
    kp = nkeys.from_seed(bytearray(seed))
    operator = f'    {{ nkey: "{kp.public_key.decode()}" }},  # the NATS operator: every permission\n  ]\n}}\n'
    text = server_config(identities, jetstream_store_dir=None)
    conf = keys.parent / "nats.conf"
    conf.write_text(text[:text.rindex("  ]")] + operator)
    srv = EmbeddedNats(keys.parent / "nats", config_file=conf).start()
    yield srv
    srv.stop()


async def _connect(server: EmbeddedNats, keys: Path, name: str) -> Client:
    if name == "operator":
        opts = {"nkeys_seed_str": (keys / "operator.nk").read_text().strip()}
    else:
        opts = connect_options(load_identity(keys, name))
    return await nats.connect(server.url, allow_reconnect=False, **opts)  # type: ignore[arg-type]


@pytest.fixture(scope="module")
async def provisioned(server: EmbeddedNats, keys: Path) -> AsyncIterator[None]:
    nc = await _connect(server, keys, PROVISIONER)
    await ensure_streams(nc.jetstream(), BUREAUS, limits=LIMITS)
    await ensure_consumers(nc.jetstream(), BUREAUS)
    await nc.close()
    yield


@pytest.fixture
async def conn(server: EmbeddedNats, keys: Path, provisioned: None) -> AsyncIterator[dict[str, Client]]:
    opened = {name: await _connect(server, keys, name) for name in (*BUREAUS, ADMIN, "operator")}
    yield opened
    for nc in opened.values():
        await nc.close()


async def test_a_message_over_the_envelope_limit_is_refused_by_the_server(conn: dict[str, Client]) -> None:
    js = conn["shenpi"].jetstream()
    with pytest.raises(APIError) as e:
        await js.publish("xz.shenpi.gongan.assistance.requested", b"x" * (MAX_EVENT_BYTES - 100),
                         headers={"Xz-Sig": "s" * 200}, stream=sending_stream("shenpi"))  # headers count too
    assert "over 65,536 bytes" in (full_stream_error(e.value) or "")
    # The old limit was 1 MiB on XZ itself: a 1 MB message is refused at once, on the bureau's own subjects.
    with pytest.raises(APIError, match="message size exceeds maximum"):
        await js.publish("xz.shenpi.shenpi.notice", b"x" * 1_000_000)
    usage = {u.code: u for u in await sending_usage(jetstream(conn[ADMIN]), BUREAUS)}
    assert usage["shenpi"].msgs == 0 and usage["shenpi"].max_msg_size == MAX_EVENT_BYTES


async def test_a_full_bureau_is_refused_and_the_others_still_send(conn: dict[str, Client], tmp_path: Path) -> None:
    ziran, gongan = conn["ziran"].jetstream(), conn["gongan"].jetstream()
    refused = None
    sent = 0
    for _ in range(LIMITS.max_msgs or 0):  # 4 KiB each: the 64 KiB limit comes first
        try:
            await ziran.publish("xz.ziran.gongan.assistance.requested", b"f" * 4096, stream=sending_stream("ziran"))
            sent += 1
        except APIError as e:
            refused = e
            break
    assert refused is not None and 10 <= sent < 16, sent
    assert "sending stream is full" in (full_stream_error(refused) or "")
    assert "maximum bytes" in (refused.description or "")
    # Refused means refused: what was stored stays (discard new), nothing new gets in.
    with pytest.raises(APIError):
        await ziran.publish("xz.ziran.shenpi.notice", b"g" * 4096, stream=sending_stream("ziran"))
    while True:  # to the brim
        try:
            await ziran.publish("xz.ziran.shenpi.notice", b"g" * 200, stream=sending_stream("ziran"))
            sent += 1
        except APIError:
            break
    # gongan's limits are its own.
    ack = await gongan.publish("xz.gongan.shenpi.assistance.replied", b"still heard", stream=sending_stream("gongan"))
    assert ack.stream == sending_stream("gongan")
    usage = {u.code: u for u in await sending_usage(jetstream(conn[ADMIN]), BUREAUS)}
    assert usage["ziran"].msgs == sent and usage["ziran"].share > 0.9
    line = usage_line(list(usage.values()))
    assert "each bureau at most 65,536 bytes, 40 messages" in line and "fullest ziran" in line
    line = usage_line(list(usage.values()), language="zh")
    assert "每个单位最多 65,536 字节、40 条消息" in line and "最满的是 ziran" in line
    # XZ gets every stored message, ziran's and gongan's (it sources the sending streams).
    admin = jetstream(conn[ADMIN])
    for _ in range(500):
        if (await admin.stream_info(EVENTS_STREAM)).state.messages == sent + 1:
            break
        await asyncio.sleep(0.01)
    assert (await admin.stream_info(EVENTS_STREAM)).state.messages == sent + 1

    # The relay says so in one line and keeps the rest in its outbox.
    positions = Positions(tmp_path / "relay.db")
    relay = Relay("ziran", ListOutbox([signed("ziran", "gongan")]), positions, ziran, ack_timeout=1)
    with pytest.raises(RelayError, match=r"^relay ziran: the sending stream is full \(maximum bytes exceeded\)"):
        await relay.pump()
    assert positions.get("ziran") == 0
    positions.close()


async def test_nobody_can_purge_or_delete_from_a_sending_stream_or_xz(conn: dict[str, Client]) -> None:
    """A bureau has no permission to (test_nats_auth); the operator has, and the streams refuse it."""
    shenpi = conn["shenpi"].jetstream()
    await shenpi.publish("xz.shenpi.gongan.assistance.requested", b"kept", stream=sending_stream("shenpi"))
    await shenpi.publish("xzwit.cosign.shenpi", b"kept", stream=witness_stream("shenpi"))
    op = jetstream(conn["operator"])
    for stream in (sending_stream("shenpi"), EVENTS_STREAM, witness_stream("shenpi"), WITNESS_STREAM):
        with pytest.raises(APIError, match="purge not permitted"):
            await op.purge_stream(stream)
        with pytest.raises(APIError, match="delete not permitted|message delete not permitted"):
            await op.delete_msg(stream, 1)
    assert (await op.stream_info(sending_stream("shenpi"))).state.messages >= 1


async def test_provisioning_checks_the_limits_it_is_given_and_says_when_they_differ(
        conn: dict[str, Client]) -> None:
    admin = conn[ADMIN].jetstream()
    await ensure_streams(admin, BUREAUS, create=False)  # limits unset: whatever the streams have
    await ensure_streams(admin, BUREAUS, create=False, limits=LIMITS)
    with pytest.raises(StreamLayoutError, match="XZ_FROM_shenpi exists with max_bytes 65536, not 1000000"):
        await ensure_streams(admin, BUREAUS, create=False, limits=BureauLimits(max_bytes=1_000_000))
    # Each bureau's witness stream has limits of its own (decision 59): the defaults here.
    with pytest.raises(StreamLayoutError, match="XZ_WITNESS_shenpi exists with max_msgs 100000, not 5"):
        await ensure_streams(admin, BUREAUS, create=False, limits=BureauLimits(witness_max_msgs=5))
    line = usage_line(await sending_usage(admin, BUREAUS, witness_stream), "witness")
    assert line.startswith("3 witness streams, each bureau at most 67,108,864 bytes, 100,000 messages, 4,096 bytes a "
                           "message; fullest "), line


async def test_a_witness_stream_of_the_layout_before_decision_59_is_named_with_what_to_do(tmp_path: Path) -> None:
    """Before, ``XZ_WITNESS`` captured ``xzwit.>`` itself: no bureau's witness stream can be made beside it."""
    srv = EmbeddedNats(tmp_path / "nats").start()
    try:
        nc = await nats.connect(srv.url, allow_reconnect=False)
        js = nc.jetstream()
        await js.add_stream(name=WITNESS_STREAM, subjects=["xzwit.>"])
        with pytest.raises(StreamLayoutError) as e:
            await ensure_streams(js, BUREAUS)
        assert str(e.value) == (
            "stream XZ_WITNESS captures xzwit.> itself (the layout before decision 59): as the NATS operator keep "
            "only xzwit.heads, run `xiezhu provision` to create the witness streams, then add them to its sources")
        assert [s.config.name for s in await js.streams_info()] == [WITNESS_STREAM]  # nothing made
        await nc.close()
    finally:
        srv.stop()
