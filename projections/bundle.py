"""Evidence bundles: one case's signed ledger entries, with a proof that they sit in the checkpointed ledger.

A bundle is a ZIP that a court, an arbitrator or a bureau can check offline, with nothing but
xiezhu's verification code — no ledger, no trust list, no network:

``events.jsonl``
    every entry of the case (up to ``as_of``, by ledger arrival): ``pos``, ``arrived_at`` (the
    exact text the ledger hashed), ``kid``, ``sig`` and ``body`` (base64; the exact signed bytes).
``keys.json``
    the trust-list entries of every key that signed them, of 区司法局's key that signed the
    checkpoint, and of the key that signed the manifest.
``proof.json``
    the chain from the first case entry to a checkpoint at or after the last one: the
    ``prev_hash`` before the first case entry, the leaf hash of every ledger entry from there to
    the checkpoint (other cases' entries only as opaque leaves), and the checkpoint (``pos``,
    ``head``, ``sealed_at``: when 区司法局 signed it, ``kid``, ``sig``).
``report.txt``
    the readable :func:`~projections.replay.replay` of the case (informative; the events are the evidence).
``manifest.json``
    format and versions, the case, its number, when it was made, the positions included, and the
    SHA-256 of each file above.
``signature.json`` (when 区司法局's key is at hand)
    区司法局's signature over ``manifest.json``.  The chain proves that each event included is in
    the checkpointed ledger at its position; only this signature attests that none of the case's events
    in that range was left out, because other entries are opaque leaves.

A bundle holds the signed bytes as recorded, personal data included: handle it as the case file.
The proof grows with the number of ledger entries between the case's first entry and the
checkpoint (32 bytes each), not with the size of the ledger.
"""
from __future__ import annotations

import hashlib
import os
import zipfile
from collections.abc import Iterable
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Annotated, Any

import msgspec
import nacl.exceptions
import nacl.signing

from aggregates.registry import JUSTICE, zh_name
from aggregates.workdays import WorkingCalendar
from broker.ledger.store import (
    CHECKPOINT_CONTEXT,
    Checkpoint,
    Entry,
    Ledger,
    LedgerError,
    checkpoint_message,
    leaf_hash,
    link,
)
from broker.signing import KeyRing, Rejected, Signer, decode_checked
from projections.history import CitedCheck
from projections.replay import Replay, SignatureCheck, check_signature, render_text, replay
from schemas import labels
from schemas.envelope import SEALED_VERSION, Envelope, SealedEnvelope, Signed
from schemas.errors import XiezhuError
from schemas.trust import TrustEntry

__all__ = [
    "FORMAT", "BundleError", "BundleEvent", "BundleReport", "Manifest", "NoCheckpoint", "verify_bundle",
    "write_bundle",
]

FORMAT = "xiezhu-bundle/1"
#: What 区司法局's manifest signature covers: this context, then the exact bytes of ``manifest.json``.
MANIFEST_CONTEXT = b"xiezhu-bundle-manifest/1\n"
EVENTS, KEYS, PROOF, REPORT = "events.jsonl", "keys.json", "proof.json", "report.txt"
MANIFEST, SIGNATURE = "manifest.json", "signature.json"
#: The files the manifest lists with their digests.
FILES = (EVENTS, KEYS, PROOF, REPORT)
#: A member larger than this is not read (an offline verifier must not be exhausted by a crafted ZIP).
MAX_MEMBER_BYTES = 1 << 30
#: A rejection that is not tampering: a key revoked (or expired) at the event's time still signed it.
_NOT_TAMPERING = "key-not-valid"

Hex32 = Annotated[str, msgspec.Meta(pattern=r"^[0-9a-f]{64}$")]


class BundleError(XiezhuError):
    """A bundle cannot be written, or the file given is not there."""

    code = "bundle"


class NoCheckpoint(BundleError):
    """No signed checkpoint covers the case's last entry yet."""

    code = "bundle.no-checkpoint"


class BundleEntry(msgspec.Struct, frozen=True, kw_only=True):
    """One line of ``events.jsonl``: what the ledger hashed for one entry."""

    pos: int
    arrived_at: str
    #: The message's sequence in ``XZ``, hashed into the leaf since decision 49 (absent in bundles made before).
    stream_seq: int | None = None
    kid: str
    sig: bytes
    body: bytes


class ProofCheckpoint(msgspec.Struct, frozen=True, kw_only=True):
    """The checkpoint the proof ends at, as 区司法局 signed it."""

    pos: int
    head: Hex32
    #: When 区司法局 signed it (the bundle format's name, kept so that every bundle made still verifies).
    sealed_at: str
    kid: str
    sig: bytes


class Proof(msgspec.Struct, frozen=True, kw_only=True):
    """Leaves from ``first_pos`` to the checkpoint, and the chain hash before ``first_pos``."""

    first_pos: int
    prev_hash: Hex32
    leaves: list[Hex32]
    checkpoint: ProofCheckpoint


class Manifest(msgspec.Struct, frozen=True, kw_only=True):
    """What the bundle holds, and the SHA-256 of each file."""

    format: str
    versions: dict[str, str]
    case: str
    kind: str
    number: str
    created_at: datetime
    as_of: datetime | None = None
    positions: list[int]
    files: dict[str, str]


class ManifestSignature(msgspec.Struct, frozen=True, kw_only=True):
    """区司法局's signature over ``MANIFEST_CONTEXT`` + the bytes of ``manifest.json``."""

    kid: str
    sig: bytes


class BundleEvent(msgspec.Struct, frozen=True, kw_only=True):
    """One event of a verified bundle."""

    pos: int
    type: str
    sender: str
    recipient: str
    time: datetime | None
    arrived_at: str
    kid: str
    signature: SignatureCheck


class BundleReport(msgspec.Struct, frozen=True, kw_only=True):
    """The offline verdict on a bundle: every failure found (``reason`` is the first), and what was proven."""

    path: str
    ok: bool
    reason: str = ""
    failures: list[str] = []
    warnings: list[str] = []
    #: The same in 中文, for 区司法局's reviewer (decision 64).
    reason_zh: str = ""
    failures_zh: list[str] = []
    warnings_zh: list[str] = []
    case: str = ""
    kind: str = ""
    number: str = ""
    events: list[BundleEvent] = []
    checkpoint_pos: int | None = None
    #: When and by which key 区司法局 signed the checkpoint (the names of ``verify-bundle --json``, kept).
    sealed_at: str = ""
    sealed_by: str = ""
    #: The 区司法局 key that signed the manifest ("" if it is not signed).
    attested_by: str = ""
    #: ``kid (bureau) sha256:<fingerprint>`` of each bundled key, to compare with a published trust list.
    keys: list[str] = []


# -- writing ---------------------------------------------------------------------------------------------------


def report_text(report: Replay) -> str:
    """The bundle's report.txt: the replay in 中文 for 区司法局's reviewer (bureaus by name), then the same
    in English with the identifiers (decision 64)."""
    return (render_text(report, "zh", zh_name) + "\n" + "=" * 24 + " English " + "=" * 24 + "\n\n"
            + render_text(report))


def write_bundle(ledger: Ledger, case_id: str, ring_entries: Iterable[TrustEntry], path: Path, *,
                 calendar: WorkingCalendar, as_of: datetime | None = None, signer: Signer | None = None,
                 created_at: datetime | None = None, scan_links: bool = False,
                 catalogue: CitedCheck | None = None) -> Manifest:
    """Write the evidence bundle of one case (as it stood at ``as_of``) to ``path``; returns its manifest.

    ``signer`` (区司法局's) signs the manifest.  Raises :class:`NoCheckpoint` if no signed checkpoint
    covers the case yet, and :class:`BundleError` if a key the bundle needs is not in ``ring_entries``.
    ``catalogue`` (区司法局's, where this machine holds it): its report flags a request that cites what
    could not be asked for (第七条, 第六条), as ``xiezhu replay`` does.
    """
    trust = {e.kid: e for e in ring_entries}
    ring = KeyRing(trust.values())
    created = created_at or datetime.now(UTC)
    report = replay(ledger, case_id, ring, calendar, as_of=as_of, now=created, scan_links=scan_links,
                    catalogue=catalogue)
    positions = [e.pos for e in report.events]
    shown = set(positions)
    included = [e for e in ledger.case(case_id) if e.pos in shown]
    cp = _covering(ledger, report.number, positions[-1])
    proof = _proof(ledger, included[0], cp)
    kids = [e.signed.kid for e in included] + [cp.kid] + ([signer.kid] if signer else [])
    missing = sorted({k for k in kids if k not in trust})
    if missing:
        raise BundleError(f"key(s) {', '.join(missing)} are not in the trust list: the bundle could not be verified",
                          zh=f"密钥 {', '.join(missing)} 不在信任列表中：无法核验证据包")
    if signer is not None and signer.bureau != JUSTICE:
        raise BundleError(f"a bundle's manifest is signed by {JUSTICE}, not {signer.bureau}",
                          zh=f"证据包的清单应由{zh_name(JUSTICE)}签署，而不是{zh_name(signer.bureau)}")
    files = {
        EVENTS: b"".join(msgspec.json.encode(BundleEntry(
            pos=e.pos, arrived_at=e.arrived_at, stream_seq=e.stream_seq, kid=e.signed.kid, sig=e.signed.sig,
            body=e.signed.body)) + b"\n" for e in included),
        KEYS: msgspec.json.format(msgspec.json.encode([trust[k] for k in dict.fromkeys(kids)])),
        PROOF: msgspec.json.format(msgspec.json.encode(proof)),
        REPORT: report_text(report).encode(),
    }
    manifest = Manifest(format=FORMAT, versions=_versions(), case=case_id, kind=report.kind, number=report.number,
                        created_at=created, as_of=as_of, positions=positions,
                        files={name: _sha256(data) for name, data in files.items()})
    files[MANIFEST] = msgspec.json.format(msgspec.json.encode(manifest))
    if signer is not None:
        files[SIGNATURE] = msgspec.json.format(msgspec.json.encode(ManifestSignature(
            kid=signer.kid, sig=signer.sign_bytes(MANIFEST_CONTEXT + files[MANIFEST]))))
    _write_zip(Path(path), files, created)
    return manifest


def _covering(ledger: Ledger, number: str, last: int) -> Checkpoint:
    """The earliest signed checkpoint at or after ``last`` (the shortest proof)."""
    checkpoints = ledger.checkpoints()
    for cp in checkpoints:
        if cp.pos >= last:
            return cp
    latest = f"the latest is at position {checkpoints[-1].pos}" if checkpoints else "none is signed yet"
    latest_zh = f"最新的检查点位于位置 {checkpoints[-1].pos}" if checkpoints else "尚未签署任何检查点"
    raise NoCheckpoint(
        f"no signed checkpoint covers case {number} yet: its last entry is at position {last} and {latest}. "
        "The ledger service signs one every 1000 entries, every 10 s while entries arrive and when it stops; "
        "or sign the head now with "
        "`xiezhu checkpoint` (Ledger.checkpoint with 区司法局's key)",
        zh=f"尚无签名检查点覆盖案件 {number}：其最后一个条目位于位置 {last}，{latest_zh}。账本服务每 1000 个条目、"
           "有条目到达时每 10 秒以及停止时各签署一次；也可用 `xiezhu checkpoint` 立即签署链头（用区司法局的密钥）",
        last=last)


def _proof(ledger: Ledger, first: Entry, cp: Checkpoint) -> Proof:
    """Leaves from the first case entry to ``cp``, read as one range of positions (the primary key)."""
    span = list(ledger.entries(after=first.pos - 1, limit=cp.pos - first.pos + 1))
    if [e.pos for e in span[:1] + span[-1:]] != [first.pos, cp.pos] or len(span) != cp.pos - first.pos + 1:
        raise LedgerError(f"the ledger is missing entries between positions {first.pos} and {cp.pos}",
                          zh=f"账本在位置 {first.pos} 与 {cp.pos} 之间缺少条目")
    leaves = [leaf_hash(e.pos, e.arrived_at, e.signed.kid, e.signed.sig, e.signed.body, stream_seq=e.stream_seq)
              for e in span]
    head = first.prev_hash
    for leaf in leaves:
        head = link(head, leaf)
    if head != cp.head:
        raise LedgerError(f"the ledger's chain from position {first.pos} does not reach the head of checkpoint "
                          f"{cp.pos}: the ledger file was changed after it was checkpointed",
                          zh=f"账本自位置 {first.pos} 起的链不能到达检查点 {cp.pos} 的链头："
                             "账本文件在签署检查点后被改动过")
    return Proof(first_pos=first.pos, prev_hash=first.prev_hash.hex(), leaves=[x.hex() for x in leaves],
                 checkpoint=ProofCheckpoint(pos=cp.pos, head=cp.head.hex(), sealed_at=cp.signed_at, kid=cp.kid,
                                            sig=cp.sig))


def _versions() -> dict[str, str]:
    try:
        xiezhu = metadata.version("xiezhu")
    except metadata.PackageNotFoundError:
        xiezhu = "unknown"
    return {"xiezhu": xiezhu, "envelope": str(SEALED_VERSION),
            "leaf": "sha256(pos|arrived_at|kid|sig|body)/1", "checkpoint": CHECKPOINT_CONTEXT.decode().strip()}


def _write_zip(path: Path, files: dict[str, bytes], created: datetime) -> None:
    """Write atomically, members in a fixed order with the bundle's own time (same input, same bytes)."""
    stamp = created.astimezone(UTC).timetuple()[:6]
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    try:
        with zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED) as z:
            for name, data in files.items():
                info = zipfile.ZipInfo(name, date_time=stamp)
                info.compress_type = zipfile.ZIP_DEFLATED
                z.writestr(info, data)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


# -- verifying -------------------------------------------------------------------------------------------------


class _Invalid(Exception):
    """A bundle too broken to check further (its reason is the report's)."""

    def __init__(self, message: str, zh: str) -> None:
        super().__init__(message)
        self.zh = zh


def verify_bundle(path: Path, *, trusted: Iterable[TrustEntry] | None = None) -> BundleReport:
    """Check a bundle offline: manifest digests, signatures at each event's time, leaves, chain, checkpoint.

    ``trusted`` (a published trust list) replaces the bundled keys' validity and revocations, and
    every bundled key must be in it with the same public key.  Raises :class:`BundleError` only if
    ``path`` is not there; everything wrong inside the bundle is a failure in the report.
    """
    path = Path(path)
    if not path.is_file():
        raise BundleError(f"no bundle at {path}", zh=f"{path} 处没有证据包")
    v = _Verifier(path, None if trusted is None else list(trusted))
    try:
        v.run()
    except _Invalid as e:
        v.failures.insert(0, str(e))
        v.failures_zh.insert(0, e.zh)
    return v.report()


class _Verifier:
    """The checks of :func:`verify_bundle`, collecting every failure."""

    def __init__(self, path: Path, trusted: list[TrustEntry] | None) -> None:
        self.path = path
        self.trusted = trusted
        self.failures: list[str] = []
        self.warnings: list[str] = []
        self.failures_zh: list[str] = []
        self.warnings_zh: list[str] = []
        self.manifest: Manifest | None = None
        self.events: list[BundleEvent] = []
        self.proof: Proof | None = None
        self.ring = KeyRing()
        self.attested_by = ""
        self.keys: list[str] = []

    def _fail(self, message: str, zh: str) -> None:
        self.failures.append(message)
        self.failures_zh.append(zh)

    def _warn(self, message: str, zh: str) -> None:
        self.warnings.append(message)
        self.warnings_zh.append(zh)

    def run(self) -> None:
        files = _read_zip(self.path)
        missing = [n for n in (*FILES, MANIFEST) if n not in files]
        if missing:
            raise _Invalid(f"the bundle lacks {', '.join(missing)}", f"证据包缺少 {'、'.join(missing)}")
        extra = sorted(set(files) - {*FILES, MANIFEST, SIGNATURE})
        if extra:
            self._fail(f"the bundle holds files its manifest does not list: {', '.join(extra)}",
                       f"证据包含有清单未列出的文件：{'、'.join(extra)}")
        self.manifest = manifest = _decode(files[MANIFEST], Manifest, MANIFEST)
        if manifest.format != FORMAT:
            raise _Invalid(f"unknown bundle format {manifest.format!r} (this xiezhu reads {FORMAT})",
                           f"未知的证据包格式 {manifest.format!r}（本程序读取 {FORMAT}）")
        self._keys(_decode(files[KEYS], list[TrustEntry], KEYS))
        entries = [_decode(line, BundleEntry, f"{EVENTS} line {i}")
                   for i, line in enumerate(files[EVENTS].splitlines(), start=1) if line.strip()]
        self.proof = proof = _decode(files[PROOF], Proof, PROOF)
        self._positions(entries, manifest, proof)
        for entry in entries:
            self._event(entry, manifest, proof)
        self._chain(proof)
        self._checkpoint(proof.checkpoint)
        for name in FILES:
            if manifest.files.get(name) != _sha256(files[name]):
                self._fail(f"{name} does not match the SHA-256 in the manifest: it was changed",
                           f"{name} 与清单中的 SHA-256 不符：文件被改动过")
        self._attestation(files)

    def _keys(self, bundled: list[TrustEntry]) -> None:
        keys = []
        for k in bundled:
            try:
                nacl.signing.VerifyKey(k.public_key)
                keys.append(k)
            except (ValueError, TypeError):
                self._fail(f"key {k.kid} of the bundle is not an Ed25519 public key",
                           f"证据包中的密钥 {k.kid} 不是 Ed25519 公钥")
        entries = keys
        if self.trusted is not None:
            known = {t.kid: t for t in self.trusted}
            for k in keys:
                t = known.get(k.kid)
                if t is None:
                    self._fail(f"key {k.kid} of the bundle is not in the trust list given",
                               f"证据包中的密钥 {k.kid} 不在所给的信任列表中")
                elif (t.bureau, t.public_key) != (k.bureau, k.public_key):
                    self._fail(f"key {k.kid} of the bundle differs from the trust list's",
                               f"证据包中的密钥 {k.kid} 与信任列表中的不同")
            # The published list's validity and revocations win over the bundle's copy.
            entries = [known.get(k.kid, k) for k in keys]
        self.ring = KeyRing(entries)
        self.keys = [f"{k.kid} ({k.bureau}) sha256:{_sha256(k.public_key)[:16]}" for k in entries]

    def _positions(self, entries: list[BundleEntry], manifest: Manifest, proof: Proof) -> None:
        positions = [e.pos for e in entries]
        if not positions:
            raise _Invalid(f"{EVENTS} holds no event", f"{EVENTS} 中没有事件")
        if positions != manifest.positions:
            self._fail(f"{EVENTS} holds positions {_span(positions)} but the manifest lists "
                       f"{_span(manifest.positions)}: an event was removed, added or moved",
                       f"{EVENTS} 含位置 {_span(positions)}，而清单列出的是 {_span(manifest.positions)}："
                       "有事件被删除、添加或移动")
        if positions != sorted(set(positions)):
            self._fail(f"{EVENTS} is not in ledger order or repeats a position",
                       f"{EVENTS} 不按账本顺序排列或有重复位置")
        cp = proof.checkpoint
        if positions[0] != proof.first_pos:
            self._fail(f"the proof starts at position {proof.first_pos} but the first event is at {positions[0]}",
                       f"证明自位置 {proof.first_pos} 开始，而第一个事件位于 {positions[0]}")
        if proof.first_pos + len(proof.leaves) - 1 != cp.pos:
            self._fail(f"the proof has {len(proof.leaves)} leaves from position {proof.first_pos}, "
                       f"which does not end at checkpoint {cp.pos}",
                       f"证明自位置 {proof.first_pos} 起有 {len(proof.leaves)} 个叶子，不止于检查点 {cp.pos}")
        if positions[-1] > cp.pos:
            self._fail(f"the event at position {positions[-1]} lies after checkpoint {cp.pos}",
                       f"位置 {positions[-1]} 的事件在检查点 {cp.pos} 之后")

    def _event(self, e: BundleEntry, manifest: Manifest, proof: Proof) -> None:
        signed = Signed(body=e.body, kid=e.kid, sig=e.sig)
        arrived = _instant(e.arrived_at)
        sig = check_signature(self.ring, signed, arrived)
        env: Envelope | SealedEnvelope | None
        try:  # the routing fields: the payload stays sealed, a bundle is checked without any reader's key
            env = decode_checked(e.body)
        except Rejected:
            env = None
        self.events.append(BundleEvent(pos=e.pos, type=env.type if env else "?", sender=env.sender if env else "?",
                                       recipient=env.recipient if env else "?", time=env.time if env else None,
                                       arrived_at=e.arrived_at, kid=e.kid, signature=sig))
        if sig.status == _NOT_TAMPERING:
            self._warn(f"event at position {e.pos}: {sig.reason} (the ledger holds it as received)",
                       f"位置 {e.pos} 的事件：{sig.reason}（账本按收到时的样子保存）")
        elif not sig.valid:
            self._fail(f"event at position {e.pos}: {sig.status}: {sig.reason}",
                       f"位置 {e.pos} 的事件：{labels.DEAD_LETTER_REASON.get(sig.status, sig.status)}（{sig.reason}）")
        if sig.note:
            self._warn(f"event at position {e.pos}: {sig.note}", f"位置 {e.pos} 的事件：{sig.note}")
        if env is not None and env.case != manifest.case:
            self._fail(f"event at position {e.pos} belongs to case {env.case}, not {manifest.case}",
                       f"位置 {e.pos} 的事件属于案件 {env.case}，而不是 {manifest.case}")
        if manifest.as_of is not None and arrived is not None and arrived > manifest.as_of:
            self._fail(f"event at position {e.pos} arrived after the bundle's as-of time",
                       f"位置 {e.pos} 的事件晚于证据包的截止时间到达")
        i = e.pos - proof.first_pos
        if not 0 <= i < len(proof.leaves):
            self._fail(f"event at position {e.pos} lies outside the proof", f"位置 {e.pos} 的事件在证明范围之外")
        elif leaf_hash(e.pos, e.arrived_at, e.kid, e.sig, e.body, stream_seq=e.stream_seq).hex() != proof.leaves[i]:
            self._fail(f"event at position {e.pos}: its bytes, key id, signature or arrival time do not "
                       "match the ledger's leaf at that position",
                       f"位置 {e.pos} 的事件：其字节、密钥编号、签名或到达时间与账本该位置的叶子不符")

    def _chain(self, proof: Proof) -> None:
        head = bytes.fromhex(proof.prev_hash)
        for leaf in proof.leaves:
            head = link(head, bytes.fromhex(leaf))
        if head.hex() != proof.checkpoint.head:
            self._fail(f"the chain from position {proof.first_pos} through the proof's "
                       f"{len(proof.leaves)} leaves does not reach the head of checkpoint {proof.checkpoint.pos}",
                       f"自位置 {proof.first_pos} 起经证明的 {len(proof.leaves)} 个叶子的链"
                       f"不能到达检查点 {proof.checkpoint.pos} 的链头")

    def _checkpoint(self, cp: ProofCheckpoint) -> None:
        problem = self._signed_by_justice(cp.kid, checkpoint_message(cp.pos, bytes.fromhex(cp.head), cp.sealed_at),
                                          cp.sig, _instant(cp.sealed_at))
        if problem[0]:
            self._fail(f"checkpoint {cp.pos}: {problem[0]}", f"检查点 {cp.pos}：{problem[1]}")

    def _attestation(self, files: dict[str, bytes]) -> None:
        if SIGNATURE not in files:
            self._warn(f"the manifest is not signed by {JUSTICE}: the proof shows that every event "
                       "included is in the checkpointed ledger, not that none of the case's events was left out",
                       "清单未经区司法局签署：证明只表明所含事件都在已签署检查点的账本中，不能表明该案件没有事件被遗漏")
            return
        try:
            s = msgspec.json.decode(files[SIGNATURE], type=ManifestSignature)
        except (msgspec.ValidationError, msgspec.DecodeError) as e:
            self._fail(f"{SIGNATURE} is unreadable: {e}", f"无法读取 {SIGNATURE}：{e}")
            return
        assert self.manifest is not None
        problem = self._signed_by_justice(s.kid, MANIFEST_CONTEXT + files[MANIFEST], s.sig, self.manifest.created_at)
        if problem[0]:
            self._fail(f"the manifest's signature: {problem[0]}", f"清单的签名：{problem[1]}")
        else:
            self.attested_by = s.kid

    def _signed_by_justice(self, kid: str, message: bytes, sig: bytes, when: datetime | None) -> tuple[str, str]:
        """Why ``sig`` is not 区司法局's valid signature of ``message`` at ``when``, in English and 中文
        (both "" if it is)."""
        entry = self.ring.entry(kid)
        if entry is None:
            return f"key {kid} is not among the bundle's keys", f"密钥 {kid} 不在证据包的密钥中"
        if entry.bureau != JUSTICE:
            return (f"signed by {entry.bureau}'s key {kid}, not {JUSTICE}'s",
                    f"由{zh_name(entry.bureau)}的密钥 {kid} 签署，而不是{zh_name(JUSTICE)}的")
        try:
            nacl.signing.VerifyKey(entry.public_key).verify(message, sig)
        except (nacl.exceptions.BadSignatureError, ValueError, TypeError):
            return f"the signature by key {kid} does not verify", f"密钥 {kid} 的签名核验未通过"
        if when is None:
            return "its time is not an ISO date-time", "其时间不是 ISO 日期时间"
        if when < entry.valid_from or (entry.valid_to is not None and when >= entry.valid_to):
            return f"key {kid} was not valid at {when.isoformat()}", f"密钥 {kid} 在 {when.isoformat()} 无效"
        if entry.revoked_at is not None and when >= entry.revoked_at:
            return (f"key {kid} was revoked at {entry.revoked_at.isoformat()}: {entry.revoked_reason}",
                    f"密钥 {kid} 已于 {entry.revoked_at.isoformat()} 吊销：{entry.revoked_reason}")
        return "", ""

    def report(self) -> BundleReport:
        m, p = self.manifest, self.proof
        return BundleReport(
            path=str(self.path), ok=not self.failures, reason=self.failures[0] if self.failures else "",
            failures=self.failures, warnings=self.warnings, reason_zh=self.failures_zh[0] if self.failures_zh else "",
            failures_zh=self.failures_zh, warnings_zh=self.warnings_zh, case=m.case if m else "",
            kind=m.kind if m else "",
            number=m.number if m else "", events=self.events, checkpoint_pos=p.checkpoint.pos if p else None,
            sealed_at=p.checkpoint.sealed_at if p else "", sealed_by=p.checkpoint.kid if p else "",
            attested_by=self.attested_by, keys=self.keys)


def _read_zip(path: Path) -> dict[str, bytes]:
    try:
        with zipfile.ZipFile(path) as z:
            infos = z.infolist()
            names = [i.filename for i in infos]
            if len(set(names)) != len(names):
                raise _Invalid("the bundle holds a file twice", "证据包中有文件重复")
            big = [i.filename for i in infos if i.file_size > MAX_MEMBER_BYTES]
            if big:
                raise _Invalid(f"{big[0]} is larger than a bundle member may be", f"{big[0]} 超过证据包成员的大小上限")
            return {i.filename: z.read(i) for i in infos}
    except (zipfile.BadZipFile, zipfile.LargeZipFile, OSError, EOFError) as e:
        raise _Invalid(f"not a readable bundle (ZIP): {e}", f"不是可读的证据包（ZIP）：{e}") from e


def _decode(data: bytes, kind: Any, what: str) -> Any:
    try:
        return msgspec.json.decode(data, type=kind)
    except (msgspec.ValidationError, msgspec.DecodeError) as e:
        raise _Invalid(f"{what} is unreadable: {e}", f"无法读取 {what}：{e}") from e


def _instant(text: str) -> datetime | None:
    try:
        t = datetime.fromisoformat(text)
    except ValueError:
        return None
    return t if t.utcoffset() is not None else t.replace(tzinfo=UTC)


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _span(positions: list[int]) -> str:
    return ", ".join(str(p) for p in positions[:12]) + (" …" if len(positions) > 12 else "")

