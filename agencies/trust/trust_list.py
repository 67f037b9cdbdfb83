"""The trust list's rules and its distribution over NATS.

区大数据局 (the root authority) signs each version of the list with the root key, whose
public half every machine pins (``keys/root.pub``).  A version is accepted only if the root
signed its exact bytes, its version is higher than the one held, it names its predecessor's
digest when it directly follows it, and it rewrites no history: every key stays listed with
the same owner, public key and start, a revocation is never lifted or moved, and a validity
period is never extended.  So a replay years later checks each signature against the key as
it was at the event's time, under whichever later version it holds.

Versions are published to ``xztrust.list`` (stream ``XZ_TRUST``).  A :class:`TrustFollower`
takes the last one by direct get at start, then every new one as it is published (and looks
again every ``poll_interval`` and after a reconnect), and replaces its key ring in place.

The root key itself is replaced by a handover (decision 25): the current root signs a version
that names its successor (``next_root``), and from then on only the successor's signature
counts.
"""
from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
from collections.abc import Callable, Iterable, Mapping
from datetime import datetime, timedelta
from typing import Any, Literal

import msgspec
import nacl.exceptions
import nacl.signing
import nats
from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.js import JetStreamContext
from nats.js.errors import APIError, NotFoundError

from aggregates.registry import zh_name
from broker.server import server_list
from broker.signing import KeyRing, Malformed, Signer, b64, unb64
from broker.streams import TRUST_STREAM, TRUST_SUBJECT
from broker.threads import in_thread
from schemas.envelope import HDR_KEY, HDR_MSG_ID, HDR_SIG
from schemas.errors import XiezhuError
from schemas.trust import SignedTrustList, TrustAnchor, TrustEntry, TrustList

log = logging.getLogger(__name__)

#: How long a rotated-out key stays valid beside its successor, for messages in flight.
DEFAULT_OVERLAP = timedelta(days=7)
#: JetStream's optimistic-concurrency header: publish only if the subject's last message is this one.
HDR_EXPECTED_LAST_SUBJECT_SEQ = "Nats-Expected-Last-Subject-Sequence"
_WRONG_LAST_SEQUENCE = 10071

KeyState = Literal["valid", "expiring", "expired", "revoked", "not-yet-valid"]


class TrustListError(XiezhuError):
    """A trust list that must not be used: not signed by the root, older than the one held, or rewriting history."""

    code = "trust"


# -- the document ---------------------------------------------------------------------------------------------


def digest(body: bytes) -> str:
    """Hex SHA-256 of a version's signed bytes; the next version names it as ``previous``."""
    return hashlib.sha256(body).hexdigest()


def readable(signed: SignedTrustList) -> TrustList:
    """The list a signed file shows in its readable fields."""
    return TrustList(version=signed.version, issued_at=signed.issued_at, entries=list(signed.entries),
                     previous=signed.previous, next_root=signed.next_root)


def signed_form(trust: TrustList, body: bytes, root_kid: str, root_sig: bytes) -> SignedTrustList:
    """The on-disk form of a version: its readable fields and the exact bytes that were signed."""
    return SignedTrustList(version=trust.version, issued_at=trust.issued_at, entries=list(trust.entries),
                           previous=trust.previous, next_root=trust.next_root, body=body, root_kid=root_kid,
                           root_sig=root_sig)


def sign_list(trust: TrustList, root: Signer) -> SignedTrustList:
    """Encode ``trust`` once and sign those bytes with the root key."""
    check_list(trust)
    if trust.next_root is not None and trust.next_root.kid == root.kid:
        raise TrustListError(f"trust list version {trust.version} hands the root over to the key that signs it",
                             zh=f"第 {trust.version} 版信任列表把根密钥移交给了签署它的密钥本身")
    body = msgspec.json.encode(trust)
    return signed_form(trust, body, root.kid, root.sign_bytes(body))


def next_version(held: SignedTrustList | None, entries: Iterable[TrustEntry], issued_at: datetime) -> TrustList:
    """The version after ``held`` with ``entries``, chained to it by digest."""
    if held is None:
        return TrustList(version=1, issued_at=issued_at, entries=list(entries))
    return TrustList(version=held.version + 1, issued_at=issued_at, entries=list(entries),
                     previous=digest(held.body) if held.body else "")


def open_list(anchor: TrustAnchor, body: bytes, kid: str, sig: bytes) -> TrustList:
    """The list in ``body`` if the pinned root key signed exactly these bytes; raises :class:`TrustListError`."""
    if kid != anchor.kid:
        raise TrustListError(f"the trust list is signed by {kid or 'no key'!r}, not by the pinned root key "
                             f"{anchor.kid} of {anchor.authority}",
                             zh=f"信任列表由 {kid or '无密钥'!r} 签名，"
                                f"而不是由{zh_name(anchor.authority)}固定的根密钥 {anchor.kid} 签名", kid=kid)
    try:
        nacl.signing.VerifyKey(anchor.public_key).verify(body, sig)
    except (nacl.exceptions.BadSignatureError, ValueError, TypeError) as e:
        raise TrustListError(f"the root signature ({anchor.kid}) over the trust list does not verify",
                             zh=f"信任列表上的根签名（{anchor.kid}）核验未通过") from e
    try:
        trust = msgspec.json.decode(body, type=TrustList)
    except Exception as e:  # noqa: BLE001 - any decoding failure (RecursionError too): not a trust list
        raise TrustListError(f"the signed trust list is not a trust list: {e}",
                             zh=f"签名的信任列表内容不是信任列表：{e}") from e
    check_list(trust)
    nxt = trust.next_root
    if nxt is not None and (not nxt.kid or nxt.kid == anchor.kid or nxt.public_key == anchor.public_key
                            or nxt.authority != anchor.authority or len(nxt.public_key) != 32):
        raise TrustListError(f"trust list version {trust.version} names a successor root key that is no new "
                             f"32-byte Ed25519 key of {anchor.authority}",
                             zh=f"第 {trust.version} 版信任列表指定的继任根密钥"
                                f"不是{zh_name(anchor.authority)}新的 32 字节 Ed25519 密钥", version=trust.version)
    return trust


def root_after(anchor: TrustAnchor, trust: TrustList | None) -> TrustAnchor:
    """The root key that signs the version after ``trust``: the successor a handover names, else ``anchor``.

    ``anchor`` is the key that signed ``trust``.  After a handover (decision 25) the old root
    signs nothing more that anyone holding the handover accepts.
    """
    return trust.next_root if trust is not None and trust.next_root is not None else anchor


def open_signed(anchor: TrustAnchor, signed: SignedTrustList) -> TrustList:
    """Check a ``trust.json``: the root's signature, and readable fields that say what was signed."""
    trust = open_list(anchor, signed.body, signed.root_kid, signed.root_sig)
    if readable(signed) != trust:
        raise TrustListError(f"the readable part of trust list version {signed.version} differs from what the "
                             "root signed: the file was edited",
                             zh=f"第 {signed.version} 版信任列表的明文部分与根密钥签署的内容不一致：文件被改动过")
    return trust


def check_list(trust: TrustList) -> None:
    """One version on its own: distinct key ids, Ed25519 keys, validity periods that end after they start."""
    if trust.version < 1:
        raise TrustListError(f"trust list version {trust.version} must be 1 or more",
                             zh=f"信任列表版本号 {trust.version} 须不小于 1")
    seen: set[str] = set()
    for e in trust.entries:
        if e.kid in seen:
            raise TrustListError(f"key {e.kid} is listed twice in trust list version {trust.version}",
                                 zh=f"密钥 {e.kid} 在第 {trust.version} 版信任列表中出现了两次", kid=e.kid)
        seen.add(e.kid)
        if len(e.public_key) != 32:
            raise TrustListError(f"key {e.kid} is not a 32-byte Ed25519 public key",
                                 zh=f"密钥 {e.kid} 不是 32 字节的 Ed25519 公钥", kid=e.kid)
        if e.box_key and len(e.box_key) != 32:
            raise TrustListError(f"key {e.kid} has a box key that is not a 32-byte X25519 public key",
                                 zh=f"密钥 {e.kid} 的加密公钥不是 32 字节的 X25519 公钥", kid=e.kid)
        if e.valid_to is not None and e.valid_to <= e.valid_from:
            raise TrustListError(f"key {e.kid} would expire ({e.valid_to.isoformat()}) before it starts "
                                 f"({e.valid_from.isoformat()})",
                                 zh=f"密钥 {e.kid} 的失效时间（{e.valid_to.isoformat()}）早于生效时间"
                                    f"（{e.valid_from.isoformat()}）", kid=e.kid)


def follows(held: SignedTrustList | None, new: TrustList, new_body: bytes) -> bool:
    """Whether ``new`` replaces ``held``: ``False`` for the same version again; raises if it must not.

    It must not when its version is lower (a rollback), when another list already holds its
    version (a fork), when it directly follows ``held`` but names another predecessor, or
    when it rewrites history (see the module's docstring).
    """
    if held is None:
        return True
    if new.version < held.version:
        raise TrustListError(f"trust list version {new.version} is older than version {held.version} held here",
                             zh=f"第 {new.version} 版信任列表早于本机持有的第 {held.version} 版",
                             version=new.version, held=held.version)
    if new.version == held.version:
        if digest(new_body) == digest(held.body):
            return False
        raise TrustListError(f"two different trust lists claim version {new.version}",
                             zh=f"两份不同的信任列表都称是第 {new.version} 版", version=new.version)
    if new.version == held.version + 1 and held.body and new.previous != digest(held.body):
        raise TrustListError(f"trust list version {new.version} does not follow version {held.version} "
                             "(its previous digest differs)",
                             zh=f"第 {new.version} 版信任列表不接续第 {held.version} 版"
                                "（其前版摘要不同）", version=new.version)
    _keeps_history(held, new)
    return True


def _keeps_history(held: TrustList, new: TrustList) -> None:
    by_kid = {e.kid: e for e in new.entries}
    for old in held.entries:
        e = by_kid.get(old.kid)
        where = f"trust list version {new.version}"
        where_zh = f"第 {new.version} 版信任列表"
        if e is None:
            raise TrustListError(f"{where} drops key {old.kid}; a key stays listed so that what it signed "
                                 "still verifies",
                                 zh=f"{where_zh}删去了密钥 {old.kid}；密钥须保留在列表中，"
                                    "其签署的内容才能继续核验", kid=old.kid)
        if (e.bureau, e.public_key, e.valid_from) != (old.bureau, old.public_key, old.valid_from):
            raise TrustListError(f"{where} changes the owner, public key or start of key {old.kid}",
                                 zh=f"{where_zh}改变了密钥 {old.kid} 的所属单位、公钥或生效时间", kid=old.kid)
        if old.box_key and e.box_key != old.box_key:
            raise TrustListError(f"{where} changes the box key of key {old.kid}",
                                 zh=f"{where_zh}改变了密钥 {old.kid} 的加密公钥", kid=old.kid)
        if old.revoked_at is not None and e.revoked_at != old.revoked_at:
            raise TrustListError(f"{where} lifts or moves the revocation of key {old.kid}",
                                 zh=f"{where_zh}撤销或改动了密钥 {old.kid} 的吊销", kid=old.kid)
        if old.valid_to is not None and (e.valid_to is None or e.valid_to > old.valid_to):
            raise TrustListError(f"{where} extends the validity of key {old.kid}",
                                 zh=f"{where_zh}延长了密钥 {old.kid} 的有效期", kid=old.kid)


# -- changes the root authority makes -------------------------------------------------------------------------


def state_of(entry: TrustEntry, at: datetime) -> KeyState:
    """What a key is at ``at``: valid, expiring (valid, with an end), expired, revoked or not yet valid."""
    if entry.revoked_at is not None and at >= entry.revoked_at:
        return "revoked"
    if entry.valid_to is not None and at >= entry.valid_to:
        return "expired"
    if at < entry.valid_from:
        return "not-yet-valid"
    return "valid" if entry.valid_to is None else "expiring"


def rotated(entries: Iterable[TrustEntry], new: TrustEntry, *, overlap: timedelta) -> list[TrustEntry]:
    """Add ``new`` (valid from its ``valid_from``) and end each of its bureau's current keys ``overlap`` later."""
    if overlap < timedelta(0):
        raise TrustListError("the overlap of a rotation cannot be negative", zh="轮换的重叠期不能为负")
    now, end = new.valid_from, new.valid_from + overlap
    out: list[TrustEntry] = []
    for e in entries:
        if e.kid == new.kid:
            raise TrustListError(f"key {new.kid} is already in the trust list",
                                 zh=f"密钥 {new.kid} 已在信任列表中", kid=new.kid)
        if e.bureau == new.bureau and state_of(e, now) in ("valid", "expiring", "not-yet-valid"):
            if end <= e.valid_from:
                raise TrustListError(f"key {e.kid} is valid only from {e.valid_from.isoformat()}, after the end of "
                                     f"the overlap ({end.isoformat()}); is the clock right?",
                                     zh=f"密钥 {e.kid} 自 {e.valid_from.isoformat()} 起才生效，晚于重叠期结束"
                                        f"（{end.isoformat()}）；系统时钟是否正确？", kid=e.kid)
            if e.valid_to is None or e.valid_to > end:
                e = msgspec.structs.replace(e, valid_to=end)
        out.append(e)
    out.append(new)
    return out


def revoked(entries: Iterable[TrustEntry], kid: str, reason: str, *, at: datetime) -> list[TrustEntry]:
    """Revoke ``kid`` from ``at`` on, with the reason; what it signed before stays valid."""
    reason = " ".join(reason.split())
    if not reason:
        raise TrustListError("a revocation needs a reason", zh="吊销须说明理由")
    out = list(entries)
    for i, e in enumerate(out):
        if e.kid != kid:
            continue
        if e.revoked_at is not None:
            raise TrustListError(f"key {kid} was already revoked at {e.revoked_at.isoformat()}: {e.revoked_reason}",
                                 zh=f"密钥 {kid} 已于 {e.revoked_at.isoformat()} 吊销：{e.revoked_reason}",
                                 kid=kid)
        out[i] = msgspec.structs.replace(e, revoked_at=at, revoked_reason=reason)
        return out
    raise TrustListError(f"no key {kid!r} in the trust list; `xiezhu keys list` shows the key ids",
                         zh=f"信任列表中没有密钥 {kid!r}；`xiezhu keys list` 列出各密钥编号", kid=kid)


# -- distribution over NATS -----------------------------------------------------------------------------------


class Published(msgspec.Struct, frozen=True):
    """The last trust list on ``xztrust.list`` as JetStream holds it, unchecked."""

    seq: int
    body: bytes
    kid: str
    sig: bytes


async def fetch_latest(js: JetStreamContext) -> Published | None:
    """The last published version (``None`` if none), by direct get: a read anyone may be allowed."""
    try:
        m = await js.get_last_msg(TRUST_STREAM, TRUST_SUBJECT, direct=True)
    except NotFoundError:
        return None
    headers = m.headers or {}
    try:
        sig = unb64(headers.get(HDR_SIG, ""))
    except Malformed:
        sig = b""
    return Published(seq=m.seq or 0, body=m.data or b"", kid=headers.get(HDR_KEY, ""), sig=sig)


#: The root keys a publisher knows: one anchor, or several by key id (the pinned one first, then
#: retired ones, whose handovers the root's machine still publishes).
Anchors = TrustAnchor | Mapping[str, TrustAnchor]


def _by_kid(anchors: Anchors) -> dict[str, TrustAnchor]:
    return {anchors.kid: anchors} if isinstance(anchors, TrustAnchor) else dict(anchors)


def _open_known(anchors: Mapping[str, TrustAnchor], body: bytes, kid: str, sig: bytes) -> TrustList:
    """``open_list`` with the known root key of that id (else the first one, which then refuses it)."""
    anchor = anchors.get(kid) or next(iter(anchors.values()))
    return open_list(anchor, body, kid, sig)


async def publish_trust_list(js: JetStreamContext, signed: SignedTrustList, anchor: Anchors) -> bool:
    """Publish a version unless JetStream has it already; ``False`` if it had.

    ``anchor`` is the root key that signed it, or the known root keys by id.  Raises
    :class:`TrustListError` if JetStream holds a newer or a different list of the same
    version (this data directory is behind: take the newer one first), or if another version
    was published meanwhile.
    """
    known = _by_kid(anchor)
    trust = _open_known(known, signed.body, signed.root_kid, signed.root_sig)
    if readable(signed) != trust:
        raise TrustListError(f"the readable part of trust list version {signed.version} differs from what the "
                             "root signed: the file was edited",
                             zh=f"第 {signed.version} 版信任列表的明文部分与根密钥签署的内容不一致：文件被改动过")
    last = await fetch_latest(js)
    if last is not None:
        try:
            there = _open_known(known, last.body, last.kid, last.sig)
        except TrustListError as e:  # not the root's: whatever it is, a valid version goes on top
            log.warning("the last message on %s is not a trust list signed by the root: %s", TRUST_SUBJECT, e)
        else:
            if there.version > signed.version or (there.version == signed.version and last.body != signed.body):
                raise TrustListError(f"NATS already holds trust list version {there.version}, which is not the "
                                     f"version {signed.version} here; this data directory is behind",
                                     zh=f"NATS 上已有第 {there.version} 版信任列表，不是本机的第 {signed.version} 版；"
                                        "本数据目录已落后",
                                     version=there.version)
            if last.body == signed.body:
                return False
    headers = {HDR_MSG_ID: f"trust-{signed.version}-{digest(signed.body)[:16]}", HDR_KEY: signed.root_kid,
               HDR_SIG: b64(signed.root_sig), HDR_EXPECTED_LAST_SUBJECT_SEQ: str(last.seq if last else 0)}
    try:
        await js.publish(TRUST_SUBJECT, signed.body, headers=headers, stream=TRUST_STREAM)
    except APIError as e:
        if e.err_code == _WRONG_LAST_SEQUENCE:
            raise TrustListError("another trust list version was published meanwhile; run the command again",
                                 zh="其间已发布了另一版信任列表；请再次运行该命令") from e
        raise
    return True


async def publish_versions(js: JetStreamContext, versions: Iterable[SignedTrustList], anchors: Anchors) -> int:
    """Publish ``versions`` oldest first, except those older than the last one NATS holds; how many were sent.

    The root's machine publishes the handovers it made before the version it holds: a
    follower that pins an earlier root reaches the later ones only through them.  The newest
    of ``versions`` is always offered, so a data directory that is behind is still an error.
    """
    known = _by_kid(anchors)
    ordered = sorted(versions, key=lambda v: v.version)
    last = await fetch_latest(js)
    there = 0
    if last is not None:
        with contextlib.suppress(TrustListError):
            there = _open_known(known, last.body, last.kid, last.sig).version
    sent = 0
    for i, version in enumerate(ordered):
        if version.version < there and i < len(ordered) - 1:
            continue
        sent += await publish_trust_list(js, version, known)
    return sent


class TrustFollower:
    """Keeps a key ring on the newest trust list the root authority has published.

    ``persist`` (if given) keeps each accepted version, e.g. in ``keys/trust.json``, so that
    the read commands on this machine see it too; a failure there is logged, not fatal.
    ``connect_options`` go to ``nats.connect`` (credentials and inbox prefix, where NATS
    enforces permissions: reading the list needs only a subscription to ``xztrust.list``
    and direct gets on ``XZ_TRUST``).

    It follows a root handover (decision 25): once it has applied a version that names a
    successor root key, it accepts only versions that key signs.  A follower that missed
    the handover (it was away, or started later) sees a last version signed by a key it
    does not pin; it then walks ``XZ_TRUST`` from the start and offers each version newer
    than the one it holds, in the order they were published, so the handover comes first.
    """

    def __init__(self, anchor: TrustAnchor, ring: KeyRing, held: SignedTrustList | None, nats_url: str, *,
                 persist: Callable[[SignedTrustList], object] | None = None, poll_interval: float = 30.0,
                 connect_options: Mapping[str, Any] | None = None) -> None:
        #: The root key that must sign the next version: ``anchor``, or the successor ``held`` names.
        self.anchor = root_after(anchor, held)
        self.ring = ring
        self.held = held
        self.nats_url = nats_url
        self.persist = persist
        self.poll_interval = poll_interval
        self.connect_options = dict(connect_options or {})
        #: Versions applied, and versions refused, since start.
        self.applied = 0
        self.refused = 0
        #: Digests of the handovers applied here: one that comes again after its successor's first
        #: version (our own publish coming back) is no news, though the old root signed it.
        self._handovers: set[str] = set()
        self._nc: Client | None = None
        self._js: JetStreamContext | None = None
        self._lock = asyncio.Lock()
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._stopping = False

    @property
    def version(self) -> int:
        """The version the ring holds (0: none yet)."""
        return self.held.version if self.held else 0

    async def start(self) -> None:
        """Connect, subscribe to new versions, then take the last published one."""
        self._nc = await nats.connect(servers=server_list(self.nats_url), max_reconnect_attempts=-1,
                                      reconnected_cb=self._reconnected, **self.connect_options)
        self._js = self._nc.jetstream()
        await self._nc.subscribe(TRUST_SUBJECT, cb=self._on_message)
        await self.refresh()
        self._task = asyncio.create_task(self._poll(), name="trust-follower")

    async def stop(self) -> None:
        """Stop looking and disconnect."""
        # The flag too: Python 3.11's wait_for can swallow a cancellation that coincides with the
        # wake-up it waits for (a version arriving as we stop), and the loop would go on for good.
        self._stopping = True
        self._wake.set()
        if self._task:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        if self._nc:
            await self._nc.close()

    async def publish(self, *versions: SignedTrustList, anchors: Anchors | None = None) -> bool:
        """Publish versions and apply them here; the root's machine does at start.

        It publishes its handovers, then the version it holds (:func:`publish_versions`);
        ``anchors`` are the root keys that signed them (default: the one this follower pins).
        """
        assert self._js is not None, "start() first"
        sent = await publish_versions(self._js, versions, anchors if anchors is not None else self.anchor)
        for version in sorted(versions, key=lambda v: v.version):
            if version.version > self.version:
                await self._take(version.body, version.root_kid, version.root_sig)
        return sent > 0

    async def refresh(self) -> bool:
        """Take the last published version now; ``True`` if it replaced the one held.

        A last version signed by another root key than the pinned one may follow a handover
        this follower missed: it then walks the stream (:meth:`catch_up`).
        """
        assert self._js is not None, "start() first"
        last = await fetch_latest(self._js)
        if last is None or (self.held is not None and last.body == self.held.body):
            return False
        if last.kid != self.anchor.kid:
            return await self.catch_up()
        return await self._take(last.body, last.kid, last.sig)

    async def catch_up(self) -> bool:
        """Offer every published version newer than the one held, oldest first; ``True`` if any applied."""
        assert self._js is not None, "start() first"
        changed = False
        seq = 1
        while True:
            try:
                m = await self._js.get_msg(TRUST_STREAM, seq, subject=TRUST_SUBJECT, next=True, direct=True)
            except NotFoundError:
                return changed
            body = m.data or b""
            try:  # unchecked, only to pass over what is not newer; what is newer is checked in full
                newer = msgspec.json.decode(body, type=TrustList).version > self.version
            except Exception:  # noqa: BLE001 - undecodable bytes of any kind are checked in full, and refused
                newer = True
            if newer:
                headers = m.headers or {}
                try:
                    sig = unb64(headers.get(HDR_SIG, ""))
                except Malformed:
                    sig = b""
                changed = await self._take(body, headers.get(HDR_KEY, ""), sig) or changed
            seq = (m.seq or seq) + 1

    def offer(self, body: bytes, kid: str, sig: bytes) -> bool:
        """Apply one signed version if it follows the one held; raises :class:`TrustListError` if it must not.

        The version held is no change, also when it is a handover (signed by the root before
        the one pinned now).  A handover applied makes its successor the pinned root key.
        """
        if (self.held is not None and body == self.held.body) or digest(body) in self._handovers:
            return False
        trust = open_list(self.anchor, body, kid, sig)
        if not follows(self.held, trust, body):
            return False
        self.ring.replace(trust.entries)
        self.held = signed_form(trust, body, kid, sig)
        if trust.next_root is not None:
            self._handovers.add(digest(body))
            log.warning("trust list version %d hands the root over from %s to %s: only %s is trusted from now on",
                        trust.version, self.anchor.kid, trust.next_root.kid, trust.next_root.kid)
            self.anchor = trust.next_root
        return True

    async def _take(self, body: bytes, kid: str, sig: bytes) -> bool:
        async with self._lock:  # one version at a time, in the order they came
            try:
                changed = self.offer(body, kid, sig)
            except TrustListError as e:
                self.refused += 1
                log.warning("trust list refused: %s", e)
                return False
            if not changed:
                return False
            self.applied += 1
            held = self.held
            assert held is not None
            log.info("trust list version %d applied: %d keys", held.version, len(held.entries))
            if self.persist is not None:
                try:
                    await in_thread(self.persist, held)
                except (OSError, XiezhuError) as e:  # a read-only keys volume, or a newer list on disk
                    log.info("trust list version %d not saved here: %s", held.version, e)
            return True

    async def _on_message(self, msg: Msg) -> None:
        headers = msg.headers or {}
        try:
            sig = unb64(headers.get(HDR_SIG, ""))
        except Malformed:
            sig = b""
        kid = headers.get(HDR_KEY, "")
        if not await self._take(msg.data, kid, sig) and kid != self.anchor.kid:
            self._wake.set()  # perhaps signed by a successor whose handover we missed: walk the stream

    async def _reconnected(self) -> None:
        self._wake.set()  # a version published while we were away came without us

    async def _poll(self) -> None:
        while not self._stopping:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout=self.poll_interval)
            if self._stopping:
                return
            self._wake.clear()
            try:
                await self.refresh()
            except Exception as e:  # NATS away: the next look will do
                log.warning("could not look for a new trust list: %s", e)
