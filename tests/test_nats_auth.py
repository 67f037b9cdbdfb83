"""NKey users and permissions, proved against a real nats-server running the generated configuration.

A bureau may publish only as itself, read only its own consumer, and subscribe only to its
own reply inbox; it cannot create, delete, purge or read anything else.  The server says so
with a permissions violation (which nats-py hands to ``error_cb`` and keeps the connection);
a JetStream request it refused times out, because the server never routes it.
"""
from __future__ import annotations

import asyncio
import json
import os
import subprocess
import urllib.request
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import nacl.signing
import nats
import nats.errors
import nkeys
import pytest
from nats.aio.client import Client as NatsClient
from nats.aio.msg import Msg
from nats.js import JetStreamContext
from nats.js.api import StreamConfig
from nats.js.errors import APIError, NotFoundError

from agencies.ledger_service import LedgerService
from agencies.trust.keys import KeyStore
from agencies.trust.trust_list import fetch_latest, publish_trust_list
from aggregates.clock import SimulatedClock
from aggregates.registry import Registry
from broker.auth import (
    ADMIN,
    LEDGER,
    PROVISIONER,
    SIGNER,
    AuthError,
    Identity,
    authorization_config,
    connect_options,
    generate_identities,
    load_identity,
    server_config,
)
from broker.intake import DeadLetters, Delivery, IntakeStats, read_dead_letters
from broker.ledger.store import Ledger
from broker.pull import PullLoop
from broker.relay import Positions, Relay, RelayError
from broker.server import ANY_PORT, EmbeddedNats, find_binary
from broker.signing import KeyRing, Signer
from broker.sources import SourceWatch
from broker.streams import (
    DLQ_PREFIX,
    DLQ_STREAM,
    EVENTS_STREAM,
    EVENTS_SUBJECTS,
    LEDGER_CONSUMER,
    TRUST_STREAM,
    TRUST_SUBJECT,
    ConsumerChanged,
    ConsumerGuard,
    StreamLayoutError,
    agent_consumer,
    consumer_config,
    ensure_consumers,
    ensure_streams,
    inbox_filter,
    sending_stream,
)
from schemas.assistance import AssistanceReceived
from schemas.envelope import (
    HDR_ORIGINAL_SUBJECT,
    HDR_REJECT_BY,
    HDR_REJECT_CODE,
    HDR_REJECT_REASON,
    Envelope,
    Signed,
    new_id,
)
from tests.conftest import jetstream
from xiezhu.cli.deadletters import get_rejection, list_rejections
from xiezhu.node import embedded_server, nats_credentials, provision, provision_embedded, provision_once
from xiezhu.settings import Settings

BUREAUS = ("shenpi", "gongan", "ziran")
#: How long a request the server refused is waited for; it never gets an answer.
REFUSED_WAIT_S = 0.5
T0 = datetime(2026, 9, 21, 1, 0, tzinfo=UTC)


@dataclass
class Conn:
    """A client connected as one identity, with the errors the server sent it."""

    name: str
    nc: NatsClient
    errors: list[Exception] = field(default_factory=list)

    @property
    def js(self) -> JetStreamContext:
        return jetstream(self.nc)

    @property
    def js_refused(self) -> JetStreamContext:
        """A JetStream context that gives up quickly on requests the server will not route."""
        return self.nc.jetstream(timeout=REFUSED_WAIT_S)

    async def violations(self) -> list[str]:
        """Every permissions violation the server reported so far (nats-py lower-cases them)."""
        await self.nc.flush()
        await asyncio.sleep(0.05)  # a subscription's -ERR may come just after the flush's PONG
        return [str(e) for e in self.errors if "permissions violation" in str(e)]

    async def refused(self, kind: str, subject: str) -> bool:
        """Whether the server refused ``kind`` (``publish``/``subscription``) on exactly ``subject``."""
        return await self.refused_like(f'permissions violation for {kind} to "{subject}"')

    async def refused_like(self, *parts: str, timeout: float = 2.0) -> bool:
        """Whether a permissions violation containing every one of ``parts`` arrives within ``timeout``."""
        lowered = [p.lower() for p in parts]
        await self.nc.flush()
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while not any(all(p in str(e) for p in lowered) for e in self.errors):
            if loop.time() > deadline:
                return False
            await asyncio.sleep(0.01)
        return True


Connect = Callable[[str], Awaitable[Conn]]


@pytest.fixture
def identities(tmp_path: Path) -> dict[str, Identity]:
    return generate_identities(BUREAUS, tmp_path / "nats-keys", provisioner=True)


@pytest.fixture
def auth_server(tmp_path: Path, identities: dict[str, Identity]) -> Iterator[EmbeddedNats]:
    """A nats-server on the generated configuration (the launcher passes -js -sd itself)."""
    conf = tmp_path / "nats-auth.conf"
    conf.write_text(server_config(identities, jetstream_store_dir=None))
    # The monitoring port lets a test see the streams and consumers as the server has them:
    # no xiezhu user (the provisioner included) may list consumers.
    server = EmbeddedNats(tmp_path / "nats", config_file=conf, http_port=ANY_PORT).start()
    yield server
    server.stop()


@pytest.fixture
async def connect(auth_server: EmbeddedNats, identities: dict[str, Identity]) -> AsyncIterator[Connect]:
    conns: list[Conn] = []

    async def _connect(name: str) -> Conn:
        errors: list[Exception] = []

        async def on_error(e: Exception) -> None:
            errors.append(e)

        nc = await nats.connect(auth_server.url, error_cb=on_error, allow_reconnect=False,
                                **connect_options(identities[name]))
        conn = Conn(name, nc, errors)
        conns.append(conn)
        return conn

    yield _connect
    for c in conns:
        await c.nc.close()


@pytest.fixture
async def admin(connect: Connect) -> Conn:
    """The operations user, after the one-shot provisioner created the streams and every durable consumer."""
    provisioner = await connect(PROVISIONER)
    await ensure_streams(provisioner.js, BUREAUS)
    await ensure_consumers(provisioner.js, BUREAUS)
    await provisioner.nc.close()
    return await connect(ADMIN)


def signed(sender: str, recipient: str) -> Signed:
    """A real signed envelope from ``sender`` to ``recipient``."""
    env = Envelope(id=new_id(), sender=sender, recipient=recipient, case=new_id(), number="20260001", time=T0,
                   payload=AssistanceReceived(request_id=new_id(), request_hash="0" * 64, arrived_at=T0))
    return Signer(sender, f"{sender}-test", nacl.signing.SigningKey.generate()).sign(env)


def jsz(server: EmbeddedNats) -> dict[str, dict[str, Any]]:
    """Every stream as the server's monitoring endpoint shows it: its state, config and consumers' filters."""
    with urllib.request.urlopen(f"http://127.0.0.1:{server.http_port}/jsz?consumers=true&config=true",
                                timeout=5) as r:
        data = json.load(r)
    return {s["name"]: {"messages": s["state"]["messages"], "config": s.get("config", {}),
                        "consumers": {c["name"]: c.get("config", {}).get("filter_subject", "")
                                      for c in s.get("consumer_detail") or []}}
            for a in data.get("account_details") or [] for s in a.get("stream_detail") or []}


def consumers(server: EmbeddedNats) -> dict[str, str]:
    """The consumers of ``XZ`` with their filters."""
    return jsz(server)[EVENTS_STREAM]["consumers"]


PROVISIONED = {**{agent_consumer(c): inbox_filter(c) for c in BUREAUS}, LEDGER_CONSUMER: EVENTS_SUBJECTS}


async def stream_counts(admin: Conn) -> tuple[int, int]:
    """Messages in XZ (once it has sourced all the sending streams hold) and in XZ_DLQ."""
    return await sourced(admin), (await admin.js.stream_info(DLQ_STREAM)).state.messages


async def sourced(admin: Conn, bureaus: tuple[str, ...] = BUREAUS) -> int:
    """XZ's message count once it holds everything the sending streams hold (it sources them)."""
    for _ in range(500):
        sent = sum([(await admin.js.stream_info(sending_stream(c))).state.messages for c in bureaus])
        have = (await admin.js.stream_info(EVENTS_STREAM)).state.messages
        if have == sent:
            return have
        await asyncio.sleep(0.01)
    raise AssertionError(f"XZ holds {have} messages, the sending streams {sent}")


async def pull(conn: Conn, code: str) -> JetStreamContext.PullSubscription:
    """The agent's own durable consumer, bound the way nats-py binds it (info, then fetch)."""
    return await conn.js.pull_subscribe(inbox_filter(code), durable=agent_consumer(code), stream=EVENTS_STREAM,
                                        config=consumer_config(agent_consumer(code), inbox_filter(code)))


# --- authentication ---------------------------------------------------------------------------------


@pytest.mark.parametrize("credentials", ["none", "an unknown nkey"])
async def test_a_client_without_a_registered_nkey_is_refused(auth_server: EmbeddedNats, tmp_path: Path,
                                                              credentials: str) -> None:
    opts: dict[str, Any] = {}
    if credentials != "none":
        opts["nkeys_seed_str"] = nkeys.encode_seed(os.urandom(32), nkeys.PREFIX_BYTE_USER).decode()
    with pytest.raises(nats.errors.Error, match="(?i)authorization violation"):
        await nats.connect(auth_server.url, allow_reconnect=False, **opts)


# --- what a bureau can do ---------------------------------------------------------------------------


async def test_a_bureau_publishes_as_itself_and_fetches_acks_and_dead_letters_its_own_mail(
        admin: Conn, connect: Connect) -> None:
    shenpi, gongan = await connect("shenpi"), await connect("gongan")
    await gongan.js.publish("xz.gongan.shenpi.assistance.received", b"from gongan", stream=sending_stream("gongan"))
    await shenpi.js.publish("xz.shenpi.gongan.assistance.requested", b"to gongan", stream=sending_stream("shenpi"))
    sub = await pull(gongan, "gongan")
    [msg] = await sub.fetch(1, timeout=2)
    assert msg.data == b"to gongan"
    await msg.nak(delay=0.05)  # nak (and term, in-progress) use the same $JS.ACK subject as ack
    [again] = await sub.fetch(1, timeout=2)
    await again.ack_sync()
    dead = Delivery(subject=msg.subject, data=msg.data, headers={}, stream_seq=2, num_delivered=1, timestamp=T0)
    await DeadLetters(gongan.js, "gongan", IntakeStats()).put(dead, "malformed", "a test rejection")
    info = await admin.js.consumer_info(EVENTS_STREAM, agent_consumer("gongan"))
    assert (info.num_pending, info.num_ack_pending, info.ack_floor.stream_seq) == (0, 0, again.metadata.sequence.stream)
    assert await stream_counts(admin) == (2, 1)
    assert await gongan.violations() == [] and await shenpi.violations() == []


async def test_the_ledger_reads_all_mail_through_its_own_consumer_and_dead_letters_as_ledger(
        admin: Conn, connect: Connect) -> None:
    shenpi, gongan, ledger = await connect("shenpi"), await connect("gongan"), await connect(LEDGER)
    await shenpi.js.publish("xz.shenpi.gongan.assistance.requested", b"1", stream=sending_stream("shenpi"))
    await gongan.js.publish("xz.gongan.shenpi.assistance.received", b"2", stream=sending_stream("gongan"))
    sub = await ledger.js.pull_subscribe(EVENTS_SUBJECTS, durable=LEDGER_CONSUMER, stream=EVENTS_STREAM,
                                         config=consumer_config(LEDGER_CONSUMER, EVENTS_SUBJECTS))
    assert await sourced(admin) == 2
    msgs = await sub.fetch(2, timeout=2)
    assert sorted(m.data for m in msgs) == [b"1", b"2"]  # two senders' streams: XZ orders them as it sources
    for m in msgs:
        await m.ack()
    await ledger.js.publish("xzdlq.ledger.signature", b"rejected", stream=DLQ_STREAM)
    info = await admin.js.consumer_info(EVENTS_STREAM, LEDGER_CONSUMER)
    assert (info.num_pending, info.num_ack_pending) == (0, 0)
    assert await ledger.violations() == []


# --- what a bureau cannot do ------------------------------------------------------------------------


@pytest.mark.parametrize("subject", [
    "xz.shenpi.gongan.assistance.requested",  # as shenpi, to gongan itself
    "xz.shenpi.ziran.assistance.requested",  # as shenpi, to a third bureau
    "xz.ledger.shenpi.assistance.requested",
    "xzdlq.shenpi.signature",  # a dead letter in shenpi's name
    "xzdlq.gongan.malformed.more",  # its own, but not one receiver and one reason
    "_INBOX_shenpi.forged-reply",  # a forged reply into shenpi's inbox
    TRUST_SUBJECT,  # a trust list: only the provisioner publishes one
])
async def test_a_bureau_cannot_publish_as_another(admin: Conn, connect: Connect, subject: str) -> None:
    gongan = await connect("gongan")
    with pytest.raises(nats.errors.TimeoutError):
        await gongan.js_refused.publish(subject, b"impersonated")
    assert await gongan.refused("publish", subject)
    assert await stream_counts(admin) == (0, 0)


@pytest.mark.parametrize("subject", [
    "xz.>", "xz.*.shenpi.>", "xz.shenpi.>", "xz.shenpi.gongan.>", "xzdlq.>", ">",
    "_INBOX.>", "_INBOX_shenpi.>", "*.>", "$JS.API.>", "$JS.ACK.>",
])
async def test_a_bureau_cannot_subscribe_outside_its_own_inbox(admin: Conn, connect: Connect, subject: str) -> None:
    """Not to mail (even its own: that comes through its consumer), not to other inboxes or the API."""
    shenpi, gongan = await connect("shenpi"), await connect("gongan")
    seen: list[Msg] = []

    async def spy(m: Msg) -> None:
        seen.append(m)

    await gongan.nc.subscribe(subject, cb=spy)
    assert await gongan.refused("subscription", subject)
    # Traffic of every kind: mail, JetStream API requests and replies, acks.
    await shenpi.js.publish("xz.shenpi.gongan.assistance.requested", b"mail", stream=sending_stream("shenpi"))
    await shenpi.js.publish("xz.shenpi.ziran.assistance.requested", b"mail", stream=sending_stream("shenpi"))
    await gongan.js.publish("xz.gongan.shenpi.assistance.received", b"mail", stream=sending_stream("gongan"))
    [m] = await (await pull(shenpi, "shenpi")).fetch(1, timeout=2)
    await m.ack_sync()
    await gongan.nc.flush()
    await asyncio.sleep(0.05)
    assert seen == []


@pytest.mark.parametrize("how", ["durable", "ephemeral pull", "push", "ordered push", "widen its own filter"])
async def test_a_bureau_cannot_create_a_consumer_that_reads_another_bureaus_mail(
        admin: Conn, connect: Connect, auth_server: EmbeddedNats, how: str) -> None:
    gongan = await connect("gongan")
    js = gongan.js_refused
    spy_filter = inbox_filter("shenpi")
    attempts: dict[str, Callable[[], Awaitable[object]]] = {
        "durable": lambda: js.add_consumer(EVENTS_STREAM, consumer_config("spy", spy_filter)),
        "ephemeral pull": lambda: js.pull_subscribe(spy_filter, stream=EVENTS_STREAM),
        "push": lambda: js.subscribe(spy_filter, stream=EVENTS_STREAM),
        "ordered push": lambda: js.subscribe(spy_filter, stream=EVENTS_STREAM, ordered_consumer=True),
        # Re-creating its own durable with a wider filter would be an update that reads everything.
        "widen its own filter": lambda: js.add_consumer(
            EVENTS_STREAM, consumer_config(agent_consumer("gongan"), EVENTS_SUBJECTS)),
    }
    with pytest.raises(nats.errors.TimeoutError):
        await attempts[how]()
    # CONSUMER.CREATE.XZ.<name>.<filter>, or DURABLE.CREATE.XZ.<durable> for a durable without a name
    assert await gongan.refused_like('for publish to "$JS.API.CONSUMER.', 'CREATE.XZ')
    assert consumers(auth_server) == PROVISIONED


async def test_a_bureau_cannot_fetch_from_another_bureaus_consumer(admin: Conn, connect: Connect) -> None:
    shenpi, gongan = await connect("shenpi"), await connect("gongan")
    await gongan.js.publish("xz.gongan.shenpi.assistance.received", b"for shenpi only", stream=sending_stream("gongan"))
    js = gongan.js_refused
    with pytest.raises(nats.errors.TimeoutError):  # the way pull_subscribe binds: consumer info first
        await js.pull_subscribe(inbox_filter("shenpi"), durable=agent_consumer("shenpi"), stream=EVENTS_STREAM)
    assert await gongan.refused("publish", "$JS.API.CONSUMER.INFO.XZ.agent-shenpi")
    bound = await js.pull_subscribe_bind(agent_consumer("shenpi"), stream=EVENTS_STREAM)  # no API call
    with pytest.raises(nats.errors.TimeoutError):
        await bound.fetch(1, timeout=REFUSED_WAIT_S)
    assert await gongan.refused("publish", "$JS.API.CONSUMER.MSG.NEXT.XZ.agent-shenpi")
    info = await admin.js.consumer_info(EVENTS_STREAM, agent_consumer("shenpi"))
    assert (info.delivered.consumer_seq, info.num_pending) == (0, 1)
    [m] = await (await pull(shenpi, "shenpi")).fetch(1, timeout=2)  # still there for shenpi
    assert m.data == b"for shenpi only"


@pytest.mark.parametrize("verb", [b"+ACK", b"+TERM", b"-NAK"])
async def test_a_bureau_cannot_ack_or_terminate_another_bureaus_messages(admin: Conn, connect: Connect,
                                                                         verb: bytes) -> None:
    """Acking someone else's delivery would make their mail vanish unread."""
    shenpi, gongan = await connect("shenpi"), await connect("gongan")
    await gongan.js.publish("xz.gongan.shenpi.assistance.received", b"x", stream=sending_stream("gongan"))
    [m] = await (await pull(shenpi, "shenpi")).fetch(1, timeout=2)
    assert m.reply.startswith("$JS.ACK.XZ.agent-shenpi.")
    await gongan.nc.publish(m.reply, verb)  # as if gongan had learnt the ack subject
    assert await gongan.refused("publish", m.reply)
    info = await admin.js.consumer_info(EVENTS_STREAM, agent_consumer("shenpi"))
    assert (info.num_ack_pending, info.num_redelivered) == (1, 0)


@pytest.mark.parametrize("how", ["by sequence", "direct get", "last by subject", "per-subject stream info"])
async def test_a_bureau_cannot_read_stored_mail_or_its_metadata_through_the_stream(
        admin: Conn, connect: Connect, how: str) -> None:
    """Stream INFO with a subjects filter would tell who writes to whom and how often."""
    shenpi, gongan = await connect("shenpi"), await connect("gongan")
    await shenpi.js.publish("xz.shenpi.ziran.assistance.requested", b"secret", stream=sending_stream("shenpi"))
    js = gongan.js_refused
    attempts: dict[str, Callable[[], Awaitable[object]]] = {
        "by sequence": lambda: js.get_msg(EVENTS_STREAM, 1),
        "direct get": lambda: js.get_msg(EVENTS_STREAM, 1, direct=True),
        "last by subject": lambda: js.get_last_msg(EVENTS_STREAM, "xz.shenpi.ziran.assistance.requested"),
        "per-subject stream info": lambda: js.stream_info(EVENTS_STREAM, subjects_filter="xz.>"),
    }
    with pytest.raises(nats.errors.TimeoutError):
        await attempts[how]()
    assert await gongan.refused_like('permissions violation for publish to "$JS.API.')


@pytest.mark.parametrize("how", [
    "delete XZ", "purge XZ", "delete XZ_DLQ", "purge XZ_DLQ", "delete XZ_TRUST", "delete a message", "update XZ",
    "delete another's consumer", "delete its own consumer",
])
async def test_a_bureau_cannot_delete_or_purge_streams_or_consumers(admin: Conn, connect: Connect,
                                                                   auth_server: EmbeddedNats, how: str) -> None:
    gongan = await connect("gongan")
    await gongan.js.publish("xz.gongan.shenpi.assistance.received", b"kept", stream=sending_stream("gongan"))
    await gongan.js.publish("xzdlq.gongan.signature", b"kept", stream=DLQ_STREAM)
    js = gongan.js_refused
    attempts: dict[str, Callable[[], Awaitable[object]]] = {
        "delete XZ": lambda: js.delete_stream(EVENTS_STREAM),
        "purge XZ": lambda: js.purge_stream(EVENTS_STREAM),
        "delete XZ_DLQ": lambda: js.delete_stream(DLQ_STREAM),
        "purge XZ_DLQ": lambda: js.purge_stream(DLQ_STREAM),
        "delete XZ_TRUST": lambda: js.delete_stream(TRUST_STREAM),
        "delete a message": lambda: _delete_msg(js, EVENTS_STREAM),
        "update XZ": lambda: js.update_stream(StreamConfig(name=EVENTS_STREAM, subjects=[EVENTS_SUBJECTS],
                                                           deny_delete=False, deny_purge=False)),
        "delete another's consumer": lambda: js.delete_consumer(EVENTS_STREAM, agent_consumer("shenpi")),
        "delete its own consumer": lambda: js.delete_consumer(EVENTS_STREAM, agent_consumer("gongan")),
    }
    with pytest.raises(nats.errors.TimeoutError):
        await attempts[how]()
    assert await gongan.refused_like('permissions violation for publish to "$JS.API.')
    assert await stream_counts(admin) == (1, 1)
    assert (await admin.js.stream_info(EVENTS_STREAM)).config.deny_purge is True
    assert consumers(auth_server) == PROVISIONED


async def test_the_ledger_cannot_publish_mail_or_read_an_agents_consumer(admin: Conn, connect: Connect) -> None:
    ledger = await connect(LEDGER)
    for subject in ("xz.sifa.shenpi.assistance.requested", "xzdlq.gongan.signature"):
        with pytest.raises(nats.errors.TimeoutError):
            await ledger.js_refused.publish(subject, b"x")
        assert await ledger.refused("publish", subject)
    bound = await ledger.js_refused.pull_subscribe_bind(agent_consumer("gongan"), stream=EVENTS_STREAM)
    with pytest.raises(nats.errors.TimeoutError):
        await bound.fetch(1, timeout=REFUSED_WAIT_S)
    assert await ledger.refused("publish", "$JS.API.CONSUMER.MSG.NEXT.XZ.agent-gongan")


@pytest.mark.parametrize("reader", ["gongan", LEDGER])
async def test_every_user_reads_the_trust_list_that_only_the_provisioner_publishes(
        admin: Conn, connect: Connect, reader: str) -> None:
    """As agencies.trust.trust_list does: the last version by direct get, new ones by subscription."""
    follower = await connect(reader)
    with pytest.raises(NotFoundError):  # none published yet: an answer, not a refusal
        await follower.js.get_last_msg(TRUST_STREAM, TRUST_SUBJECT, direct=True)
    await admin.js.publish(TRUST_SUBJECT, b"version 1", stream=TRUST_STREAM)
    new: list[Msg] = []

    async def on_new(m: Msg) -> None:
        new.append(m)

    await follower.nc.subscribe(TRUST_SUBJECT, cb=on_new)
    await follower.nc.flush()
    last = await follower.js.get_last_msg(TRUST_STREAM, TRUST_SUBJECT, direct=True)
    assert last.data == b"version 1"
    await admin.js.publish(TRUST_SUBJECT, b"version 2", stream=TRUST_STREAM)
    await _wait_for(lambda: [m.data for m in new] == [b"version 2"])
    assert await follower.violations() == []


async def test_the_provisioner_cannot_publish_mail(admin: Conn) -> None:
    with pytest.raises(nats.errors.TimeoutError):
        await admin.js_refused.publish("xz.shenpi.gongan.assistance.requested", b"x")
    assert await admin.refused("publish", "xz.shenpi.gongan.assistance.requested")


# --- what the provisioner can and cannot do ---------------------------------------------------------


async def test_the_provisioner_provisions_settles_reads_dead_letters_and_publishes_the_trust_list(
        admin: Conn, connect: Connect, auth_server: EmbeddedNats, identities: dict[str, Identity],
        tmp_path: Path) -> None:
    """Every JetStream call the admin credentials are used for, made by the code that makes it."""
    await provision(auth_server.url, BUREAUS, credentials=connect_options(identities[ADMIN]),  # checks: all there
                    create=False)
    assert consumers(auth_server) == PROVISIONED
    for name in PROVISIONED:  # Node.settle
        info = await admin.js.consumer_info(EVENTS_STREAM, name)
        assert (info.num_pending, info.num_ack_pending) == (0, 0)

    gongan = await connect("gongan")
    dead = Delivery(subject="xz.shenpi.gongan.assistance.requested", data=b"forged", headers={}, stream_seq=1,
                    num_delivered=1, timestamp=T0)
    dead_letters = DeadLetters(gongan.js, "gongan", IntakeStats())
    await dead_letters.put(dead, "malformed", "a test rejection")
    await dead_letters.flush()  # its ack awaited, as before a batch is acked
    assert (await admin.js.stream_info(DLQ_STREAM)).state.messages == 1  # the demo's summary
    [letter] = await read_dead_letters(admin.js)
    assert (letter.rejected_by, letter.data) == ("gongan", b"forged")
    found, more = await list_rejections(admin.js, "xzdlq.gongan.>", after=0, limit=10)  # xiezhu dead-letters
    assert [r.letter.seq for r in found] == [1] and not more
    assert (await get_rejection(admin.js, 1)).letter.code == letter.code

    keys = KeyStore(tmp_path / "keys")  # xiezhu keys rotate|revoke|publish
    keys.ensure(list(BUREAUS), valid_from=T0)
    signed = keys.signed_trust()
    assert signed is not None
    assert await publish_trust_list(admin.js, signed, keys.anchor()) is True
    last = await fetch_latest(admin.js)
    assert last is not None and last.body == signed.body

    watch = SourceWatch(admin.js)  # the ledger's node on a cluster: XZ's sources, and a step-down of XZ's leader
    assert await watch.look(EVENTS_STREAM) is False  # every source heard from within its heartbeats
    with pytest.raises(APIError):  # answered (one server is no cluster), not refused by permissions
        await admin.js._api_request(f"$JS.API.STREAM.LEADER.STEPDOWN.{EVENTS_STREAM}", b"", timeout=10)
    assert await admin.violations() == [] and await gongan.violations() == []


@pytest.mark.parametrize("how", [
    "delete XZ", "delete XZ_DLQ", "delete XZ_TRUST", "purge XZ", "purge XZ_DLQ", "purge XZ_DLQ by subject",
    "delete a message from XZ", "delete a message from XZ_DLQ", "erase a message from XZ_DLQ",
])
async def test_the_provisioner_cannot_delete_or_purge_a_stream_or_delete_a_message(
        admin: Conn, connect: Connect, auth_server: EmbeddedNats, how: str) -> None:
    """XZ_DLQ's own configuration allows purges and deletes: only the permissions stop them there."""
    gongan = await connect("gongan")
    await gongan.js.publish("xz.gongan.shenpi.assistance.received", b"kept", stream=sending_stream("gongan"))
    await gongan.js.publish("xzdlq.gongan.signature", b"kept", stream=DLQ_STREAM)
    await admin.js.publish(TRUST_SUBJECT, b"kept", stream=TRUST_STREAM)
    js = admin.js_refused
    attempts: dict[str, Callable[[], Awaitable[object]]] = {
        "delete XZ": lambda: js.delete_stream(EVENTS_STREAM),
        "delete XZ_DLQ": lambda: js.delete_stream(DLQ_STREAM),
        "delete XZ_TRUST": lambda: js.delete_stream(TRUST_STREAM),
        "purge XZ": lambda: js.purge_stream(EVENTS_STREAM),
        "purge XZ_DLQ": lambda: js.purge_stream(DLQ_STREAM),
        "purge XZ_DLQ by subject": lambda: js.purge_stream(DLQ_STREAM, subject="xzdlq.gongan.>"),
        "delete a message from XZ": lambda: _delete_msg(js, EVENTS_STREAM),
        "delete a message from XZ_DLQ": lambda: _delete_msg(js, DLQ_STREAM),
        "erase a message from XZ_DLQ": lambda: js._api_request(  # delete_msg with no_erase=False
            f"$JS.API.STREAM.MSG.DELETE.{DLQ_STREAM}", json.dumps({"seq": 1}).encode(), timeout=REFUSED_WAIT_S),
    }
    with pytest.raises(nats.errors.TimeoutError):
        await attempts[how]()
    assert await admin.refused_like('permissions violation for publish to "$JS.API.STREAM.')
    streams = jsz(auth_server)
    assert {name: streams[name]["messages"] for name in (EVENTS_STREAM, DLQ_STREAM, TRUST_STREAM)} == \
        {EVENTS_STREAM: 1, DLQ_STREAM: 1, TRUST_STREAM: 1}
    assert consumers(auth_server) == PROVISIONED


@pytest.mark.parametrize("how", [
    "capture a bureau's inbox in XZ_DLQ", "drop XZ_DLQ's messages by a limit", "delete a consumer",
    "create a consumer of its own", "widen a bureau's filter", "create a consumer by the durable subject",
    "read mail by sequence", "read mail by direct get",
])
async def test_the_provisioner_cannot_rewrite_a_stream_change_consumers_or_read_mail(
        admin: Conn, connect: Connect, auth_server: EmbeddedNats, how: str) -> None:
    """An update could make a stream capture a reply inbox; a consumer or a direct read would show mail."""
    shenpi = await connect("shenpi")
    await shenpi.js.publish("xz.shenpi.gongan.assistance.requested", b"secret", stream=sending_stream("shenpi"))
    js = admin.js_refused
    dlq = dict(name=DLQ_STREAM, subjects=[f"{DLQ_PREFIX}.>"], max_msg_size=2 * 1024 * 1024)
    attempts: dict[str, Callable[[], Awaitable[object]]] = {
        "capture a bureau's inbox in XZ_DLQ": lambda: js.update_stream(
            StreamConfig(**{**dlq, "subjects": [f"{DLQ_PREFIX}.>", "_INBOX_gongan.>"]})),
        "drop XZ_DLQ's messages by a limit": lambda: js.update_stream(StreamConfig(**dlq, max_msgs=1)),
        "delete a consumer": lambda: js.delete_consumer(EVENTS_STREAM, agent_consumer("gongan")),
        "create a consumer of its own": lambda: js.add_consumer(
            EVENTS_STREAM, consumer_config("spy", EVENTS_SUBJECTS).evolve(name="spy")),
        "widen a bureau's filter": lambda: js.add_consumer(
            EVENTS_STREAM, consumer_config(agent_consumer("gongan"), EVENTS_SUBJECTS).evolve(
                name=agent_consumer("gongan"))),
        "create a consumer by the durable subject": lambda: js.add_consumer(
            EVENTS_STREAM, consumer_config(agent_consumer("gongan"), EVENTS_SUBJECTS)),
        "read mail by sequence": lambda: js.get_msg(EVENTS_STREAM, 1),
        "read mail by direct get": lambda: js.get_msg(EVENTS_STREAM, 1, direct=True),
    }
    with pytest.raises(nats.errors.TimeoutError):
        await attempts[how]()
    assert await admin.refused_like('permissions violation for publish to "$JS.API.')
    assert consumers(auth_server) == PROVISIONED
    assert jsz(auth_server)[DLQ_STREAM]["config"]["subjects"] == [f"{DLQ_PREFIX}.>"]
    [m] = await (await pull(await connect("gongan"), "gongan")).fetch(1, timeout=2)
    assert m.data == b"secret"  # still there, for gongan alone


async def test_provisioning_refuses_a_stream_with_another_layout_rather_than_updating_it(
        connect: Connect, auth_server: EmbeddedNats) -> None:
    """A stream that differs is the operator's to change; the provisioner says so and changes nothing."""
    provisioner = await connect(PROVISIONER)
    await provisioner.js.add_stream(StreamConfig(name=DLQ_STREAM, subjects=[f"{DLQ_PREFIX}.>"], max_msg_size=1024))
    with pytest.raises(StreamLayoutError, match="XZ_DLQ exists with max_msg_size 1024.*nats stream edit XZ_DLQ"):
        await ensure_streams(provisioner.js, BUREAUS)
    assert jsz(auth_server)[DLQ_STREAM]["config"]["max_msg_size"] == 1024
    assert await provisioner.violations() == []


# --- xiezhu's own clients under these permissions ---------------------------------------------------


class ListOutbox:
    """An outbox of signed envelopes in commit order (the relay's OutboxSource)."""

    def __init__(self, items: list[Signed]) -> None:
        self.items = items

    def outgoing_since(self, after: int, limit: int) -> list[tuple[int, Signed]]:
        return [(i, s) for i, s in enumerate(self.items, start=1) if i > after][:limit]


async def test_a_relay_publishes_its_bureaus_outbox_with_that_bureaus_identity(
        admin: Conn, connect: Connect, tmp_path: Path) -> None:
    shenpi, gongan = await connect("shenpi"), await connect("gongan")
    outbox = ListOutbox([signed("shenpi", "gongan"), signed("shenpi", "ziran")])
    positions = Positions(tmp_path / "relay.db")
    relay = Relay("shenpi", outbox, positions, shenpi.js)
    assert await relay.pump() == 2 and positions.get("shenpi") == 2
    [m] = await (await pull(gongan, "gongan")).fetch(1, timeout=2)
    assert m.data == outbox.items[0].body
    assert await shenpi.violations() == []
    positions.close()


async def test_a_relay_cannot_publish_another_bureaus_outbox_and_keeps_its_position(
        admin: Conn, connect: Connect, tmp_path: Path) -> None:
    """gongan's credentials carrying shenpi's (even validly signed) outbox get nowhere."""
    gongan = await connect("gongan")
    positions = Positions(tmp_path / "relay.db")
    relay = Relay("shenpi", ListOutbox([signed("shenpi", "ziran")]), positions, gongan.js, ack_timeout=1.0)
    # The refused publish is never answered: the relay gives up on the batch after its ack
    # timeout, keeps its position, and tries again later.
    with pytest.raises(RelayError, match="did not ack"):
        await relay.pump()
    assert positions.get("shenpi") == 0
    assert await gongan.refused("publish", "xz.shenpi.ziran.assistance.received")
    assert await stream_counts(admin) == (0, 0)
    positions.close()


async def _pulled(conn: Conn, code: str, got: list[Msg]) -> PullLoop:
    """The pull loop on ``code``'s consumer exactly as agencies/agent.py starts it; it acks what it gets."""
    sub = await conn.js.pull_subscribe(inbox_filter(code), durable=agent_consumer(code), stream=EVENTS_STREAM,
                                       config=consumer_config(agent_consumer(code), inbox_filter(code)))

    async def on_batch(msgs: list[Msg]) -> None:
        for m in msgs:
            await m.ack()
            got.append(m)

    loop = PullLoop(code, sub, on_batch, batch=64)
    loop.start()
    return loop


def _delete_msg(js: JetStreamContext, stream: str) -> Awaitable[object]:
    """``js.delete_msg(stream, 1)``, as nats-py sends it, but waiting only REFUSED_WAIT_S for the refusal
    (nats-py's delete_msg waits its default 5 s whatever the context's timeout)."""
    return js._api_request(f"$JS.API.STREAM.MSG.DELETE.{stream}", json.dumps({"seq": 1, "no_erase": True}).encode(),
                           timeout=REFUSED_WAIT_S)


async def _wait_for(predicate: Callable[[], bool], timeout: float = 5.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not predicate():
        assert loop.time() < deadline, "condition not met in time"
        await asyncio.sleep(0.02)


async def test_an_agents_pull_loop_reads_and_acks_its_mail_and_relays_with_its_identity(
        admin: Conn, connect: Connect) -> None:
    """Its pull requests and their replies stay on the subjects gongan's NKey user is allowed (its own inbox)."""
    gongan, shenpi = await connect("gongan"), await connect("shenpi")
    for _ in range(3):
        await shenpi.js.publish("xz.shenpi.gongan.assistance.requested", b"to gongan", stream=sending_stream("shenpi"))
    got: list[Msg] = []
    loop = await _pulled(gongan, "gongan", got)
    try:
        await _wait_for(lambda: len(got) == 3)
        # The agent relays and dead-letters through the same connection.
        await gongan.js.publish("xz.gongan.shenpi.assistance.received", b"reply", stream=sending_stream("gongan"))
        await gongan.js.publish("xzdlq.gongan.signature", b"rejected", stream=DLQ_STREAM)
        await gongan.nc.flush()
    finally:
        await loop.stop()
    assert [m.data for m in got] == [b"to gongan"] * 3 and loop.messages == 3
    info = await admin.js.consumer_info(EVENTS_STREAM, agent_consumer("gongan"))
    assert (info.num_pending, info.num_ack_pending) == (0, 0)
    assert await stream_counts(admin) == (4, 1)
    assert [e for e in gongan.errors if "permissions violation" in str(e)] == []


# --- seeds and configuration ------------------------------------------------------------------------


def test_every_bureau_the_ledger_and_the_provisioner_get_a_private_seed_that_is_reused(tmp_path: Path) -> None:
    keys = tmp_path / "nats-keys"
    first = generate_identities(BUREAUS, keys)
    assert list(first) == [*BUREAUS, LEDGER, ADMIN, SIGNER]
    assert keys.stat().st_mode & 0o777 == 0o700
    assert sorted(p.name for p in keys.iterdir()) == sorted(f"{n}.nk" for n in first)
    for ident in first.values():
        assert ident.seed_file.stat().st_mode & 0o777 == 0o600
        assert ident.public_key.startswith("U")
        assert ident.seed_file.read_text().startswith("SU")
    again = generate_identities([*BUREAUS, "shichang"], keys)
    assert {n: i.public_key for n, i in again.items() if n != "shichang"} == \
        {n: i.public_key for n, i in first.items()}
    assert len({i.public_key for i in again.values()}) == len(again)


@pytest.mark.parametrize("mode", [0o640, 0o604, 0o660, 0o644])
def test_a_seed_file_open_to_others_is_refused(tmp_path: Path, mode: int) -> None:
    keys = tmp_path / "nats-keys"
    ident = generate_identities(BUREAUS, keys)["gongan"]
    ident.seed_file.chmod(mode)
    with pytest.raises(AuthError, match="chmod 600"):
        load_identity(keys, "gongan")
    with pytest.raises(AuthError, match="chmod 600"):
        connect_options(ident)
    with pytest.raises(AuthError, match="chmod 600"):
        generate_identities(BUREAUS, keys)


def test_a_seed_that_is_not_a_user_nkey_is_refused(tmp_path: Path) -> None:
    keys = tmp_path / "nats-keys"
    ident = generate_identities(BUREAUS, keys)["gongan"]
    ident.seed_file.write_bytes(nkeys.encode_seed(os.urandom(32), nkeys.PREFIX_BYTE_ACCOUNT) + b"\n")
    with pytest.raises(AuthError, match="not an NKey user seed"):
        load_identity(keys, "gongan")
    good = nkeys.encode_seed(os.urandom(32), nkeys.PREFIX_BYTE_USER).decode()
    damaged = good[:20] + ("A" if good[20] != "A" else "B") + good[21:]
    for text in ("not a seed", damaged):
        ident.seed_file.write_text(text + "\n")
        with pytest.raises(AuthError, match="not an NKey seed"):
            load_identity(keys, "gongan")


@pytest.mark.parametrize("codes", [["ledger"], ["admin"], ["Gongan"], ["xz.>"], ["gongan", "gongan"]])
def test_a_bureau_code_that_is_reserved_or_not_one_subject_token_is_refused(tmp_path: Path,
                                                                             codes: list[str]) -> None:
    with pytest.raises(AuthError):
        generate_identities(codes, tmp_path / "nats-keys")


def test_the_configuration_holds_public_keys_only_and_a_standalone_server_accepts_it(
        tmp_path: Path, identities: dict[str, Identity]) -> None:
    text = server_config(identities, jetstream_store_dir=tmp_path / "js")
    for ident in identities.values():
        assert ident.public_key in text
        assert ident.seed_file.read_text().strip() not in text
    conf = tmp_path / "standalone.conf"
    conf.write_text(text)
    check = subprocess.run([str(find_binary()), "-t", "-c", str(conf)], capture_output=True, text=True, timeout=30)
    assert check.returncode == 0, check.stderr + check.stdout


def test_a_cluster_configuration_can_include_the_authorization_block(
        tmp_path: Path, identities: dict[str, Identity]) -> None:
    (tmp_path / "xiezhu-auth.conf").write_text(authorization_config(identities))
    conf = tmp_path / "node.conf"
    conf.write_text(f'server_name: n1\njetstream {{ store_dir: "{tmp_path / "js"}" }}\n'
                    'cluster { name: xz, listen: "127.0.0.1:-1" }\ninclude "xiezhu-auth.conf"\n')
    check = subprocess.run([str(find_binary()), "-t", "-c", str(conf)], capture_output=True, text=True, timeout=30)
    assert check.returncode == 0, check.stderr + check.stdout


def test_the_server_on_the_generated_configuration_still_syncs_every_write(
        tmp_path: Path, identities: dict[str, Identity]) -> None:
    conf = tmp_path / "nats-auth.conf"
    conf.write_text(server_config(identities, jetstream_store_dir=None))
    server = EmbeddedNats(tmp_path / "nats", config_file=conf, http_port=ANY_PORT).start()
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{server.http_port}/varz", timeout=5) as r:
            varz = json.load(r)
    finally:
        server.stop()
    assert varz["jetstream"]["config"]["sync_always"] is True
    assert varz["auth_required"] is True


# --- consumers nobody can re-configure (issue 15, point 1) ------------------------------------------


def _attack(js: JetStreamContext, how: str) -> Awaitable[object]:
    """What an outside review did with ``admin``'s seed: CONSUMER.CREATE on an existing durable is
    create-or-update, and the filter in its subject was matched as a pattern."""
    gongan = consumer_config(agent_consumer("gongan"), inbox_filter("gongan")).evolve(name=agent_consumer("gongan"))
    ledger = consumer_config(LEDGER_CONSUMER, EVENTS_SUBJECTS).evolve(name=LEDGER_CONSUMER)
    changes: dict[str, Callable[[], Awaitable[object]]] = {
        "narrow the ledger's filter": lambda: js.add_consumer(
            EVENTS_STREAM, ledger.evolve(filter_subject="xz.shenpi.>")),
        "max_deliver=1": lambda: js.add_consumer(EVENTS_STREAM, gongan.evolve(max_deliver=1)),
        "headers_only": lambda: js.add_consumer(EVENTS_STREAM, gongan.evolve(headers_only=True)),
        "inactive_threshold": lambda: js.add_consumer(EVENTS_STREAM, gongan.evolve(inactive_threshold=1.0)),
        "push into its own inbox": lambda: js.add_consumer(EVENTS_STREAM, gongan.evolve(
            deliver_subject="_INBOX_admin.mail")),
        "pause": lambda: js._api_request(f"$JS.API.CONSUMER.PAUSE.{EVENTS_STREAM}.{agent_consumer('gongan')}",
                                         b'{"pause_until": "2099-01-01T00:00:00Z"}', timeout=REFUSED_WAIT_S),
    }
    return changes[how]()


ATTACKS = ["narrow the ledger's filter", "max_deliver=1", "headers_only", "inactive_threshold",
           "push into its own inbox", "pause"]


async def _unchanged(js: JetStreamContext) -> None:
    """Every durable still has exactly the layout's configuration, as ``provision`` checks it."""
    await ensure_consumers(js, BUREAUS, create=False)


@pytest.mark.parametrize("how", ATTACKS)
async def test_the_operations_user_cannot_reconfigure_a_consumer(admin: Conn, how: str) -> None:
    with pytest.raises(nats.errors.TimeoutError):
        await _attack(admin.js_refused, how)
    assert await admin.refused_like('permissions violation for publish to "$JS.API.CONSUMER.')
    await _unchanged(admin.js)


async def test_the_provisioner_is_one_shot_its_seed_is_deleted_and_the_regenerated_configuration_revokes_it(
        connect: Connect, auth_server: EmbeddedNats, identities: dict[str, Identity], tmp_path: Path) -> None:
    keys = tmp_path / "nats-keys"
    seed = connect_options(identities[PROVISIONER])
    early = await connect(PROVISIONER)  # connected before it is revoked
    assert await provision_once(auth_server.url, BUREAUS, keys) is True
    assert not (keys / "provisioner.nk").exists()
    regenerated = generate_identities(BUREAUS, keys)  # `xiezhu nats-config` again: it leaves the spent one out
    assert PROVISIONER not in regenerated
    assert auth_server.config_file is not None
    auth_server.config_file.write_text(server_config(regenerated, jetstream_store_dir=None))
    auth_server.reload()
    with pytest.raises(nats.errors.Error, match="(?i)authorization violation"):
        await nats.connect(auth_server.url, allow_reconnect=False, **seed)
    await _wait_for(lambda: early.nc.is_closed)  # the server dropped the connection it had
    admin = await connect(ADMIN)
    for how in ATTACKS:
        with pytest.raises(nats.errors.TimeoutError):
            await _attack(admin.js_refused, how)
    await _unchanged(admin.js)


async def test_an_embedded_server_provisions_with_a_provisioner_only_it_ever_held(tmp_path: Path) -> None:
    """The node adds a provisioner whose seed is only in memory, reloads, creates, and removes it again."""
    settings = Settings(data_dir=tmp_path / "data")
    registry = Registry.load()
    server = embedded_server(settings, registry).start()
    try:
        await provision_embedded(server, settings, registry.codes())
        conf = settings.nats_auth_config.read_text()
        assert "# provisioner" not in conf and not (settings.nats_keys_dir / "provisioner.nk").exists()
        reloads = server.log_file.read_text().count("Reloaded server configuration")
        assert reloads == 2  # with the provisioner, then without
        await provision_embedded(server, settings, registry.codes())  # all there: admin checks, nothing reloads
        assert server.log_file.read_text().count("Reloaded server configuration") == reloads
        nc = await nats.connect(server.url, allow_reconnect=False, **nats_credentials(settings, ADMIN))
        try:
            await ensure_consumers(nc.jetstream(), registry.codes(), create=False)
            with pytest.raises(nats.errors.TimeoutError):
                await _attack(nc.jetstream(timeout=REFUSED_WAIT_S), "narrow the ledger's filter")
        finally:
            await nc.close()
    finally:
        server.stop()


OPERATOR = ("operator", "operator-password")


@pytest.fixture
def operator_server(tmp_path: Path, identities: dict[str, Identity]) -> Iterator[EmbeddedNats]:
    """A server whose configuration also holds an operator of its own with every permission: what
    decision 22 says an operator adds for a deliberate change, here to play the insider."""
    conf = tmp_path / "nats-auth.conf"
    text = server_config(identities, jetstream_store_dir=None)
    conf.write_text(text.replace("  users = [\n", f'  users = [\n    {{ user: "{OPERATOR[0]}", '
                                 f'password: "{OPERATOR[1]}" }},\n', 1))
    server = EmbeddedNats(tmp_path / "nats", config_file=conf).start()
    yield server
    server.stop()


async def _operator_changes(url: str, how: str) -> None:
    nc = await nats.connect(url, user=OPERATOR[0], password=OPERATOR[1], allow_reconnect=False)
    try:
        if how == "push into its own inbox":  # a pull consumer cannot become push: delete and re-create it
            await nc.jetstream().delete_consumer(EVENTS_STREAM, agent_consumer("gongan"))
        await _attack(nc.jetstream(), how)
    finally:
        await nc.close()


@pytest.mark.parametrize("how", ["narrow the ledger's filter", "max_deliver=1", "headers_only", "inactive_threshold",
                                 "push into its own inbox"])
async def test_a_consumer_changed_after_provisioning_is_reported_by_provision_and_refused_by_its_reader(
        operator_server: EmbeddedNats, identities: dict[str, Identity], tmp_path: Path, how: str) -> None:
    url = operator_server.url
    await provision(url, BUREAUS, credentials=connect_options(identities[PROVISIONER]))
    await _operator_changes(url, how)
    changed = LEDGER_CONSUMER if how == "narrow the ledger's filter" else agent_consumer("gongan")
    setting = {"narrow the ledger's filter": "filter_subject", "max_deliver=1": "max_deliver",
               "headers_only": "headers_only", "inactive_threshold": "inactive_threshold",
               "push into its own inbox": "deliver_subject"}[how]
    for who, create in ((ADMIN, False), (PROVISIONER, True)):  # provision checks; it never changes one back
        with pytest.raises(ConsumerChanged, match=f"consumer {changed} of XZ was changed.*{setting}"):
            await provision(url, BUREAUS, credentials=connect_options(identities[who]), create=create)
    reader = LEDGER if changed == LEDGER_CONSUMER else "gongan"
    nc = await nats.connect(url, allow_reconnect=False, **connect_options(identities[reader]))
    try:
        guard = ConsumerGuard(nc.jetstream(), consumer_config(
            changed, EVENTS_SUBJECTS if reader == LEDGER else inbox_filter("gongan")), lambda e: None)
        with pytest.raises(ConsumerChanged, match=setting):
            await guard.check()
    finally:
        await nc.close()
    if reader == LEDGER:  # the ledger service refuses to start on it
        service = LedgerService(Ledger(tmp_path / "ledger.db"), KeyRing(), SimulatedClock(T0), url, opener=None,
                                connect_options=connect_options(identities[LEDGER]))
        with pytest.raises(ConsumerChanged, match=setting):
            await service.start()


async def test_an_agent_and_the_ledger_stop_when_their_consumer_is_changed_while_they_run(
        operator_server: EmbeddedNats, identities: dict[str, Identity], tmp_path: Path) -> None:
    url = operator_server.url
    await provision(url, BUREAUS, credentials=connect_options(identities[PROVISIONER]))
    service = LedgerService(Ledger(tmp_path / "ledger.db"), KeyRing(), SimulatedClock(T0), url, opener=None,
                            connect_options=connect_options(identities[LEDGER]))
    service.guard_interval = 0.05
    await service.start()
    nc = await nats.connect(url, allow_reconnect=False, **connect_options(identities["gongan"]))
    refused: list[ConsumerChanged] = []
    guard = ConsumerGuard(nc.jetstream(), consumer_config(agent_consumer("gongan"), inbox_filter("gongan")),
                          refused.append, interval=0.05)
    try:
        await guard.check()
        guard.start()
        await _operator_changes(url, "narrow the ledger's filter")
        await _operator_changes(url, "max_deliver=1")
        await _wait_for(lambda: service.refused is not None and bool(refused))
        assert service._task is not None
        await asyncio.wait_for(service._task, 5)  # it stopped pulling by itself
        assert "filter_subject" in str(service.refused) and "max_deliver" in str(refused[0])
    finally:
        await guard.stop()
        await nc.close()
        await service.stop()


async def test_the_ledger_never_skips_an_event_however_often_it_failed_and_raises_the_alarm(
        operator_server: EmbeddedNats, identities: dict[str, Identity], tmp_path: Path,
        caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch) -> None:
    """An agent parks a message after 10 deliveries; the ledger's consumer delivers it again without end
    (decision 62): the 12th delivery still comes, and the ledger records it, saying so loudly on the way."""
    from datetime import timedelta

    from broker.relay import headers_for
    from schemas.envelope import subject_for
    from schemas.trust import TrustEntry

    url = operator_server.url
    await provision(url, BUREAUS, credentials=connect_options(identities[PROVISIONER]))
    signer = Signer("shenpi", "shenpi-k1", nacl.signing.SigningKey.generate())
    ring = KeyRing([TrustEntry(kid=signer.kid, bureau="shenpi", public_key=signer.public_key,
                               valid_from=T0 - timedelta(days=1))])
    env = Envelope(id=new_id(), sender="shenpi", recipient="gongan", case=new_id(), number="20260001", time=T0,
                   payload=AssistanceReceived(request_id=new_id(), request_hash="0" * 64, arrived_at=T0))
    event = signer.sign(env)
    shenpi = await nats.connect(url, allow_reconnect=False, **connect_options(identities["shenpi"]))
    ledger = await nats.connect(url, allow_reconnect=False, **connect_options(identities[LEDGER]))
    try:
        await shenpi.jetstream().publish(subject_for(env), event.body, headers=headers_for(event, env.id),
                                         stream=sending_stream("shenpi"))
        # Twelve deliveries to the ledger that failed (taken, never acknowledged).
        sub = await ledger.jetstream().pull_subscribe(EVENTS_SUBJECTS, durable=LEDGER_CONSUMER, stream=EVENTS_STREAM,
                                                      config=consumer_config(LEDGER_CONSUMER, EVENTS_SUBJECTS))
        for n in range(1, 13):
            [m] = await sub.fetch(1, timeout=10)  # with max_deliver 10 the 11th never came: the event was lost
            assert m.metadata.num_delivered == n
            await m.nak()
    finally:
        await shenpi.close()
        await ledger.close()
    caplog.set_level("WARNING", logger="agencies.ledger_service")
    monkeypatch.setattr("agencies.ledger_service.ACK_WAIT_S", 0.2)  # the start waits out the last delivery's ack
    service = LedgerService(Ledger(tmp_path / "ledger.db"), ring, SimulatedClock(T0), url, opener=None,
                            simulated_arrival=True, connect_options=connect_options(identities[LEDGER]))
    await service.start()
    try:
        await _wait_for(lambda: service.appended == 1, timeout=30)
        assert service.ledger.head[0] == 1 and service.redelivered == {}
    finally:
        await service.stop()
    lines = [r.getMessage() for r in caplog.records if r.name == "agencies.ledger_service"]
    assert any(line.startswith(f"ledger: XZ sequence 1 ({subject_for(env)}) was delivered 13 times and is not "
                               "recorded yet; the ledger takes it again without end") for line in lines), lines
    assert "ledger: XZ sequence 1 is done after all (recorded, or dead-lettered with its reason)" in lines, lines


# --- dead letters name their writer (issue 15, point 2) ---------------------------------------------


async def test_a_dead_letter_names_the_receiver_whose_subject_it_is_on_not_the_one_its_headers_claim(
        admin: Conn, connect: Connect) -> None:
    """shenpi may dead-letter only as shenpi; a header saying gongan rejected it changes nothing."""
    shenpi = await connect("shenpi")
    forged = {HDR_REJECT_BY: "gongan", HDR_REJECT_CODE: "bad-signature", HDR_REJECT_REASON: "gongan refused it",
              HDR_ORIGINAL_SUBJECT: "xz.shenpi.gongan.assistance.requested"}
    await shenpi.js.publish("xzdlq.shenpi.malformed", b"forged", headers=forged, stream=DLQ_STREAM)
    [letter] = await read_dead_letters(admin.js)
    assert (letter.rejected_by, letter.code) == ("shenpi", "malformed")
    found, _ = await list_rejections(admin.js, "xzdlq.>", after=0, limit=10)  # xiezhu dead-letters
    assert [(r.letter.rejected_by, r.letter.code) for r in found] == [("shenpi", "malformed")]
    assert found[0].summary()["receiver"] == "shenpi"
    assert (await list_rejections(admin.js, "xzdlq.gongan.>", after=0, limit=10))[0] == []  # --receiver gongan
    assert (await get_rejection(admin.js, 1)).letter.rejected_by == "shenpi"
