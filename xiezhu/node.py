"""The composition root for running services: stores, agents, ledger and projection, wired.

``Node`` runs any subset of them in one process: the demo runs all of them; a deployment
runs one agent per machine (``xiezhu agent``) and the ledger elsewhere (``xiezhu ledger``).
"""
from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Iterable, Mapping
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import nats
import nats.errors
import nats.js.errors
from nats.aio.client import Client

from agencies.agent import BureauAgent
from agencies.desk import Desk
from agencies.justice import Justice
from agencies.ledger_service import LedgerService
from agencies.monitor import SlaMonitor
from agencies.trust.keys import KeyStore, NoValidKey
from agencies.trust.trust_list import TrustFollower, TrustListError
from agencies.verifiers import verifiers_for
from aggregates.calendar_store import CalendarStore
from aggregates.clock import Clock
from aggregates.registry import JUSTICE, Registry
from aggregates.store import BureauStore
from broker.auth import (
    ADMIN,
    LEDGER,
    PROVISIONER,
    Identity,
    connect_options,
    credentials_in,
    fresh_provisioner,
    generate_identities,
    load_identity,
    retire_provisioner,
    seed_path,
    server_config,
)
from broker.ledger.signer import HeadSigner
from broker.ledger.store import Ledger
from broker.patience import each_call_patient, patiently
from broker.relay import Positions
from broker.server import START_TIMEOUT_S, EmbeddedNats, server_list
from broker.signing import KeyRing
from broker.sources import SourceWatch
from broker.streams import (
    EVENTS_STREAM,
    LEDGER_CONSUMER,
    UNSET_LIMITS,
    BureauLimits,
    LayoutMissing,
    SendingUsage,
    agent_consumer,
    ensure_consumers,
    ensure_streams,
    sending_stream,
)
from broker.streams import sending_usage as streams_usage
from broker.threads import in_thread
from broker.witness import Witness, WitnessStore
from projections.base import LedgerProjection
from projections.commitments import CommitmentView
from projections.credit import CreditView
from projections.sla import SlaView
from schemas.errors import XiezhuError
from xiezhu.bootstrap import System, views_exist
from xiezhu.running import AgentLock, agent_lock
from xiezhu.settings import Settings

log = logging.getLogger(__name__)


def embedded_server(settings: Settings, registry: Registry, *, port: int | None = None,
                    host: str = "127.0.0.1") -> EmbeddedNats:
    """The embedded nats-server of a data directory, with one NKey user per bureau (decision 22).

    Seeds go to nats-keys (0600); public keys and permissions to nats/auth.conf.
    """
    identities = generate_identities(registry.codes(), settings.nats_keys_dir)
    identities.pop(PROVISIONER, None)  # the embedded server makes its own, in memory, when it needs one
    conf = settings.nats_auth_config
    conf.parent.mkdir(parents=True, exist_ok=True)
    conf.write_text(server_config(identities, jetstream_store_dir=None))
    return EmbeddedNats(settings.nats_dir, config_file=conf, port=port, host=host)


def nats_identity(settings: Settings, name: str) -> Identity | None:
    """The NATS user ``name`` from the data directory's seeds; None where there are none (no auth)."""
    if not settings.nats_keys_dir.is_dir():
        return None
    return load_identity(settings.nats_keys_dir, name)


def nats_credentials(settings: Settings, name: str) -> dict[str, Any]:
    """``nats.connect`` options for user ``name``: its seed and inbox, or nothing (anonymous)."""
    return credentials_in(settings.nats_keys_dir, name)


async def provision(nats_url: str, codes: Iterable[str], *, replicas: int | None = None,
                    credentials: Mapping[str, Any] | None = None, create: bool = True,
                    limits: BureauLimits = UNSET_LIMITS, timeout: float = START_TIMEOUT_S,
                    patient: bool = False) -> None:
    """Create the streams and every pre-provisioned durable consumer where missing, and check what exists.

    Creating is the one-shot ``provisioner``'s (or anyone's where NATS has no users);
    ``create=False`` only checks, as ``admin`` may: what is missing or differs is an error.
    ``limits``: each bureau's sending stream's (decision 50); unset, a new stream gets the
    defaults and an existing one keeps its own.  ``timeout``: what connecting and each call may wait
    (a cold disk: creating a stream has taken seconds).  ``patient`` (a check only): each call is asked
    again on its own while NATS loses or refuses it, over a connection that reconnects (decision 67).
    """
    codes = list(codes)
    nc = await nats.connect(servers=server_list(nats_url), allow_reconnect=False, connect_timeout=timeout,
                            **(credentials or {}))
    try:
        js = nc.jetstream(timeout=timeout)
        if patient and not create:  # only a check's calls (reads) are asked again
            # Connected (a NATS away fails the connect at once, for the caller's patience): from now on
            # the connection goes to another node when its own is lost, and the calls follow it.
            nc.options.update(allow_reconnect=True, max_reconnect_attempts=-1)
            js = each_call_patient(js, "checking the streams and consumers")
        await ensure_streams(js, codes, replicas=replicas, create=create, limits=limits)
        await ensure_consumers(js, codes, create=create)
    finally:
        await nc.close()


async def sending_usage(nats_url: str, codes: Iterable[str], *, credentials: Mapping[str, Any] | None = None,
                        stream: Callable[[str], str] = sending_stream) -> list[SendingUsage]:
    """Each bureau's sending (or witness) stream's use against its limits (decisions 50, 59), as ``admin`` may
    read it."""
    nc = await nats.connect(servers=server_list(nats_url), allow_reconnect=False, **(credentials or {}))
    try:
        return await streams_usage(nc.jetstream(), codes, stream)
    finally:
        await nc.close()


async def provision_embedded(server: EmbeddedNats, settings: Settings, codes: Iterable[str]) -> None:
    """Provision a data directory's embedded server with a provisioner that exists only for that.

    ``admin`` checks first; where something is missing a provisioner with a seed held only in
    this process's memory is added to the configuration, the server reloads, it creates what
    is missing, and the configuration goes back without it (decision 34).  Afterwards no
    credential can change a consumer.
    """
    codes = list(codes)
    admin = nats_credentials(settings, ADMIN)
    try:
        await provision(server.url, codes, credentials=admin, create=False)
        return
    except LayoutMissing:
        pass
    identities = generate_identities(codes, settings.nats_keys_dir)
    identities.pop(PROVISIONER, None)  # a spare one from `nats-config --provisioner` is not this server's
    conf = settings.nats_auth_config
    once = fresh_provisioner()
    conf.write_text(server_config({**identities, PROVISIONER: once}, jetstream_store_dir=None))
    try:
        server.reload()
        await provision(server.url, codes, credentials=connect_options(once))
    finally:
        conf.write_text(server_config(identities, jetstream_store_dir=None))
        server.reload()
    log.info("provisioned the streams and consumers; the one-shot provisioner is removed")


async def provision_once(nats_url: str, codes: Iterable[str], keys_dir: Path, *, replicas: int | None = None,
                         limits: BureauLimits = UNSET_LIMITS) -> bool:
    """Provision with the provisioner's seed from ``keys_dir``, then delete the seed; False if it stays.

    The servers keep accepting its public key until their configuration is regenerated
    without it (``xiezhu nats-config``) and reloaded.
    """
    await provision(nats_url, codes, replicas=replicas, limits=limits,
                    credentials=connect_options(load_identity(keys_dir, PROVISIONER)))
    try:
        retire_provisioner(keys_dir)
    except OSError as e:  # a read-only mount: the operator removes it
        log.warning("the provisioner's seed stays in %s (%s): delete it", keys_dir, e.strerror)
        return False
    log.warning("provisioned; the provisioner's seed is deleted: regenerate the NATS configuration "
                "(`xiezhu nats-config`) and reload the servers to revoke it")
    return True


class StartError(XiezhuError):
    """A node could not start: what it was doing, where, and why, in one line."""

    code = "node.start"


class Node:
    """Runs bureau agents, the ledger service and the SLA projection in one process."""

    def __init__(self, settings: Settings, registry: Registry, clock: Clock, *,
                 agents: Iterable[str] = (), ledger: bool = False, projection: bool = False,
                 simulated: bool = False, generate_keys: bool = False,
                 key_valid_from: datetime | None = None, remote_signer: bool = False) -> None:
        self.settings = settings
        self.registry = registry
        self.clock = clock
        self.agent_codes = [registry[c].code for c in agents]
        self.run_ledger = ledger
        self.run_projection = projection
        #: The ledger asks ``xiezhu checkpoint-signer`` on another host to sign its checkpoints (decision 49).
        self.remote_signer = remote_signer
        self.simulated = simulated
        self.keys = KeyStore(settings.keys_dir)
        if generate_keys:  # demos and tests; a deployment runs `xiezhu keys init` once
            self.keys.ensure(registry.codes(), valid_from=key_valid_from or clock.now())
        #: One ring for every agent and the ledger here; the trust follower replaces its keys in place.
        self.ring: KeyRing = self.keys.ring()
        #: The object graph (stores, catalogue, services) this node's agents and callers share.
        self.system = System(settings, registry, clock, keys=self.keys, ring=self.ring)
        self.trust: TrustFollower | None = None
        self.server: EmbeddedNats | None = None
        self.nats_url = settings.nats_url or ""
        self.stores = self.system.stores
        self.catalogue = self.system.catalogue
        self.agents: dict[str, BureauAgent] = {}
        self.ledger: Ledger | None = None
        self.ledger_service: LedgerService | None = None
        #: Steps down XZ's leader when a source of it stalled (decision 69): the ledger's node, as admin, on a cluster.
        self.source_watch: SourceWatch | None = None
        self._watch_nc: Client | None = None
        self.sla: SlaView | None = None
        self.commitments: CommitmentView | None = None
        self.credit: CreditView | None = None
        self.monitor: SlaMonitor | None = None
        self._projection_wake = asyncio.Event()
        self._projection_task: asyncio.Task[None] | None = None
        self._stopping = False
        self._locks: list[AgentLock] = []
        #: Messages in the sending streams and in XZ at the last look of :meth:`settle`.
        self._sourced = (-1, -1)
        #: What the last look of :meth:`settle` found not yet done (its timeout says so).
        self._unsettled = "nothing looked at yet"

    def identity(self, name: str) -> Identity | None:
        """NATS user ``name`` (a bureau code, ``ledger`` or ``admin``), or None where NATS has no users."""
        return nats_identity(self.settings, name)

    def credentials(self, name: str) -> dict[str, Any]:
        """``nats.connect`` options to reach this node's NATS as user ``name`` ({}: anonymous)."""
        return nats_credentials(self.settings, name)

    def store(self, code: str) -> BureauStore:
        """The store of ``code`` (opened on first use)."""
        return self.system.store(code)

    def desk(self, code: str) -> Desk:
        """The service layer of bureau ``code``: what its clerks and operators do."""
        return self.system.desk(code)

    def justice(self) -> Justice:
        """区司法局's services."""
        return self.system.justice()

    async def start(self) -> Node:
        """Start NATS (embedded unless a URL was given), provision, then every service."""
        if not self.settings.nats_url:
            self.server = embedded_server(self.settings, self.registry).start()
            self.nats_url = self.server.url
        try:
            await self._provision()
        except (nats.errors.Error, TimeoutError) as e:  # one line: what was being done, where, and the server's say
            tail = f"; its log ends: {self.server.last_log_line()}" if self.server is not None else ""
            raise StartError(f"provisioning NATS at {self.nats_url} failed ({type(e).__name__}: {e}), each call "
                             f"given {START_TIMEOUT_S:.0f} s{tail}",
                             zh=f"在 {self.nats_url} 配置 NATS 失败（{type(e).__name__}：{e}），"
                                f"每次调用限时 {START_TIMEOUT_S:.0f} 秒{tail}") from e
        await self._follow_trust()
        for code in self.agent_codes:
            agent = self.agent(code)
            await agent.start()
            self.agents[code] = agent
            lock = agent_lock(self.settings.bureau_dir(code))
            if lock.acquire():  # clerks' commands see that the agent will send what they commit
                self._locks.append(lock)
        if self.run_ledger:
            self.ledger = Ledger(self.settings.ledger_location, opener=self.keys.ledger_opener())
            sign_checkpoint = None if self.remote_signer else self._sign_checkpoint()
            self.ledger_service = LedgerService(self.ledger, self.ring, self.clock, self.nats_url,
                                                opener=self.ledger.opener or self.keys.opener(JUSTICE),
                                                simulated_arrival=self.simulated,
                                                connect_options=self.credentials(LEDGER),
                                                on_append=self._projection_wake.set,
                                                sign_checkpoint=sign_checkpoint, remote_signer=self.remote_signer)
            await self.ledger_service.start()
            await self._watch_sources()
        if self.run_projection:
            if self.ledger is None:
                self.ledger = Ledger(self.settings.ledger_location, opener=self.keys.ledger_opener())
            self.sla = SlaView(self.settings.sla_location, CalendarStore(self.settings.calendar_dir),
                               catalogue=self.catalogue)
            # The read models encrypt applicants' data with 区司法局's store key (decision 26).
            view_key = self.keys.store_key(JUSTICE, create=not views_exist(self.settings))
            self.commitments = CommitmentView(self.settings.commitments_location, view_key=view_key)
            self.credit = CreditView(self.settings.credit_location, view_key=view_key)
            self.system.credit = self.credit  # the credit gate of the desks reads the live view
            if JUSTICE in self.agent_codes:
                # 区司法局's machine watches the deadlines; its agent relays the notices.
                self.monitor = SlaMonitor(self.store(JUSTICE), self.sla, self.clock,
                                          remind_before=timedelta(hours=self.settings.remind_before_hours))
            self._projection_task = asyncio.create_task(self._follow(), name="sla-projection")
        return self

    async def _provision(self) -> None:
        """Create or check the streams and consumers, as this node's credentials allow."""
        keys_dir = self.settings.nats_keys_dir
        if self.server is not None and keys_dir.is_dir():
            await provision_embedded(self.server, self.settings, self.registry.codes())
        elif not keys_dir.is_dir():  # a NATS without users
            await provision(self.nats_url, self.registry.codes())
        elif seed_path(keys_dir, PROVISIONER).exists():  # `xiezhu nats-config --provisioner` made one for us
            await provision_once(self.nats_url, self.registry.codes(), keys_dir)
        elif seed_path(keys_dir, ADMIN).exists():
            await patiently("checking the streams and consumers", lambda timeout: provision(
                self.nats_url, self.registry.codes(), credentials=self.credentials(ADMIN), create=False,
                timeout=timeout, patient=True))
        else:  # a bureau's machine holds only its own seed: `xiezhu provision` ran on the provisioner's
            log.info("streams and consumers not checked: no %s seed in %s", ADMIN, keys_dir)

    async def _watch_sources(self) -> None:
        """Watch XZ's sources where this node may (admin's seed) and they can stall: a cluster's replicated streams.

        One watch is enough; the ledger's node keeps it, as the record is what a stalled source holds back.
        """
        if self.server is not None or not seed_path(self.settings.nats_keys_dir, ADMIN).exists():
            return
        nc = await nats.connect(servers=server_list(self.nats_url), max_reconnect_attempts=-1,
                                connect_timeout=START_TIMEOUT_S, **self.credentials(ADMIN))
        info = await patiently("reading the events stream",
                               lambda timeout: nc.jetstream(timeout=timeout).stream_info(EVENTS_STREAM))
        if (info.config.num_replicas or 1) < 2:
            await nc.close()
            return
        self._watch_nc = nc
        self.source_watch = SourceWatch(nc.jetstream())
        self.source_watch.start()

    def _sign_checkpoint(self) -> Callable[[bytes], tuple[str, bytes]]:
        justice = self.keys.bureau_signer(JUSTICE, self.ring)

        def sign_checkpoint(msg: bytes) -> tuple[str, bytes]:
            signer = justice.current(self.clock.now())
            return signer.kid, signer.sign_bytes(msg)

        return sign_checkpoint

    def agent(self, code: str) -> BureauAgent:
        """A new agent of bureau ``code`` on this node's stores, keys and NATS (not started)."""
        return BureauAgent(code, self.store(code), self.ring, Positions(self.settings.relay_path(code)),
                           verifiers_for(code, self.settings.bureau_data_path(code)), self.clock,
                           self.nats_url, opener=self.keys.opener(code), simulated_arrival=self.simulated,
                           identity=self.identity(code), witness=self._witness(code))

    def _witness(self, code: str) -> Witness:
        """The bureau's witness of 区司法局's checkpoint heads: kept in its own file, countersigned with its key."""
        signer = self.keys.bureau_signer(code, self.ring)

        def sign(message: bytes, at: datetime) -> tuple[str, bytes]:
            s = signer.current(at)
            return s.kid, s.sign_bytes(message)

        return Witness(code, self.ring, WitnessStore(self.settings.witness_path(code)), sign, self.clock.now)

    async def _follow_trust(self) -> None:
        """Keep the ring on the newest trust list published; the root's machine publishes its own first."""
        # Every user may read the list; only the provisioner may publish it, which the root's machine does.
        root = self.keys.holds_root()
        reader = ADMIN if root else self.agent_codes[0] if self.agent_codes else LEDGER if self.run_ledger else ADMIN
        self.trust = TrustFollower(self.keys.anchor(), self.ring, self.keys.signed_trust(), self.nats_url,
                                   persist=self.keys.install, connect_options=self.credentials(reader))
        await self.trust.start()
        held = self.keys.signed_trust() if root else None
        if held is not None:
            # Its root handovers first, where NATS lacks them: agents pinning an older root need them (decision 25).
            handovers = [v for v in self.keys.handovers() if v.version < held.version]
            try:
                await self.trust.publish(*handovers, held, anchors=self.keys.anchors())
            except TrustListError as e:  # NATS has a newer one: the follower took it already
                log.warning("trust list version %d not published: %s", held.version, e)

    @property
    def views(self) -> list[LedgerProjection]:
        """The read models this node keeps up to date."""
        return [v for v in (self.sla, self.commitments, self.credit) if v is not None]

    async def _follow(self) -> None:
        try:
            while not self._stopping:
                self._projection_wake.clear()
                try:
                    if await in_thread(self._follow_once):
                        self.wake_relays()
                except Exception as e:  # noqa: BLE001 - a file busy past its timeout …: the next pass tries again
                    # Before, one failed pass ended this task: the views and the monitor stopped for good, and
                    # settle() waited its whole timeout for them, the error told only at stop().
                    log.warning("views: following the ledger failed, trying again: %s: %s", type(e).__name__, e)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._projection_wake.wait(), timeout=0.5)
        finally:
            for view in self.views:  # what a view passed in memory (entries it does not want), into its file
                try:
                    await in_thread(view.keep_position)
                except Exception as e:  # noqa: BLE001 - it follows those entries again next time
                    log.warning("view %s: position not saved: %s", view.name, e)

    def _follow_once(self) -> bool:
        """Every view follows the ledger, then the monitor looks at the clock, in one worker-thread call
        (issue 14: a hop each cost more than a follow with nothing new); whether it sent notices."""
        assert self.ledger is not None
        for view in self.views:
            view.lazy_position = True  # keep_position() when _follow ends
            view.follow(self.ledger)
        return self.monitor is not None and any(self._tick_monitor())

    def _tick_monitor(self) -> tuple[int, int]:
        assert self.monitor is not None
        try:
            return self.monitor.tick()
        except NoValidKey as e:  # 区司法局 cannot sign until its key is replaced; the notices wait
            log.warning("SLA notices not sent: %s", e)
            return (0, 0)

    def wake_projections(self) -> None:
        """Follow the ledger (and let the monitor look at the clock) now."""
        self._projection_wake.set()

    def wake_relays(self) -> None:
        """Commands were committed outside an agent's handler: relay them now."""
        for agent in self.agents.values():
            if agent.relay:
                agent.relay.wake()

    async def settle(self, *, timeout: float = 120.0, interval: float = 0.05) -> None:
        """Wait until every committed event is relayed, consumed, recorded and projected."""
        nc = await nats.connect(servers=server_list(self.nats_url), **self.credentials(ADMIN))
        # Each look asks for every sending stream's info: on a busy machine one answer can take longer than
        # nats-py's 5 s, which is no reason to give up waiting (``timeout`` is the wait's bound).
        js = nc.jetstream(timeout=min(timeout, START_TIMEOUT_S))
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        quiet = 0
        try:
            while quiet < 2:
                if loop.time() > deadline:
                    raise TimeoutError(f"the system did not settle in {timeout:g} s: {self._unsettled}")
                self.wake_relays()
                await asyncio.sleep(interval)
                quiet = quiet + 1 if await self._is_quiet(js) else 0
        finally:
            await nc.close()

    async def _is_quiet(self, js: nats.js.JetStreamContext) -> bool:
        for agent in self.agents.values():
            if agent.relay is None or await agent.relay.pump():
                self._unsettled = f"{agent.code}'s relay is still sending"
                return False
        # XZ sources the sending streams (decision 50): what a relay had acked may not be in XZ yet.
        events = await js.stream_info(EVENTS_STREAM)
        counts = (sum([(await js.stream_info(sending_stream(c))).state.messages for c in self.registry.codes()]),
                  events.state.messages)
        moved, self._sourced = counts != self._sourced, counts
        if moved:  # still publishing or sourcing (equal or not: XZ drops a Nats-Msg-Id it has already seen)
            self._unsettled = f"messages in the sending streams and in XZ still moving ({counts[0]}, {counts[1]})"
            return False
        # A source not (yet again) established after a server restart copies nothing for seconds while
        # the counts stand still: XZ is current only when every source is active and has no lag.
        lagging = [s.name for s in events.sources or [] if s.active is None or s.active < 0 or s.lag]
        if lagging:
            self._unsettled = f"XZ's sources not active or lagging: {', '.join(lagging)}"
            return False
        names = [agent_consumer(c) for c in self.agents] + ([LEDGER_CONSUMER] if self.run_ledger else [])
        for name in names:
            info = await js.consumer_info(EVENTS_STREAM, name)
            if info.num_pending or info.num_ack_pending:
                self._unsettled = (f"consumer {name}: {info.num_pending} pending, {info.num_ack_pending} "
                                   "delivered and not acked")
                return False
        behind = [f"{v.name} at {v.position}" for v in self.views
                  if self.ledger is not None and v.position != self.ledger.head[0]]
        if behind:
            assert self.ledger is not None
            self._unsettled = f"views behind the ledger's {self.ledger.head[0]}: {', '.join(behind)}"
            self._projection_wake.set()
            return False
        self._unsettled = "nothing"
        return True

    async def stop(self) -> None:
        """Stop every service, then the embedded server."""
        self._stopping = True
        for agent in self.agents.values():
            await agent.stop()
        if self.ledger_service:
            await self.ledger_service.stop()
        if self.source_watch is not None:
            await self.source_watch.stop()
        if self._watch_nc is not None:
            await self._watch_nc.close()
        if self._projection_task:
            self._projection_wake.set()
            await self._projection_task
        if self.trust:
            await self.trust.stop()
        for lock in self._locks:
            lock.release()
        self._locks.clear()
        if self.server:
            self.server.stop()

    async def __aenter__(self) -> Node:
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()


def checkpoint_signer(settings: Settings, clock: Clock) -> HeadSigner:
    """区司法局's checkpoint signer on this machine: its key from the keys directory, its state in the data
    directory."""
    keys = KeyStore(settings.keys_dir)
    ring = keys.ring()
    justice = keys.bureau_signer(JUSTICE, ring)
    justice.current(clock.now())  # no key here: say so at start, not at the first request

    def sign(message: bytes, at: datetime) -> tuple[str, bytes]:
        signer = justice.current(at)
        return signer.kid, signer.sign_bytes(message)

    return HeadSigner(sign, ring, settings.signer_state_path, clock.now)
