"""Bureau signing keys on disk, the root key, and the root-signed trust list of the public halves.

Layout under ``<data>/keys``:

- ``<code>.ed25519``: the 32-byte seed a bureau signs with now (mode 0600);
- ``retired/<kid>.ed25519``: a bureau's earlier seeds, kept while their keys are still valid
  after a rotation, so that it signs with the old key until the new list has reached it;
- ``root.ed25519``: the root authority's seed (区大数据局's machine only, mode 0600);
- ``root.pub``: the trust anchor, the root's public key, pinned on every machine;
- ``retired-root/<kid>.pub``: root keys handed over (decision 25), which verify their handover;
  on the root's machine also their seeds (never used again) and the handovers they signed;
- ``trust.json``: the trust list as the root signed it (:class:`~schemas.trust.SignedTrustList`);
- ``box/<kid>.x25519``: a bureau's X25519 private key of each generation (mode 0600), which
  opens what was sealed to it.  Unlike retired signing seeds these are never deleted: a case
  sealed years ago must still open (the 司法局 ledger's replays need 区司法局's, decision 23).

Whatever reads ``trust.json`` here checks the root's signature against ``root.pub``; whatever
writes it refuses a version that goes backwards or rewrites history (:mod:`agencies.trust.trust_list`).
"""
from __future__ import annotations

import contextlib
import fcntl
import os
import re
import threading
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path

import msgspec
import nacl.public
import nacl.signing

from agencies.trust.trust_list import (
    DEFAULT_OVERLAP,
    TrustListError,
    follows,
    next_version,
    open_signed,
    readable,
    revoked,
    root_after,
    rotated,
    sign_list,
    state_of,
)
from aggregates.registry import JUSTICE, ROOT_AUTHORITY, zh_name
from broker.files import write_file, write_private
from broker.sealing import Opener, SealingError, seal
from broker.signing import KeyRing, Signer
from schemas import labels
from schemas.dispute import DisputeEscalated, DisputeRaised
from schemas.envelope import LEDGER, Envelope, Signed
from schemas.errors import XiezhuError, zh_of
from schemas.sla import DISTRICT_GOVERNMENT
from schemas.trust import SignedTrustList, TrustAnchor, TrustEntry, TrustList

#: File stem of the root key and the anchor; no bureau may have this code.
ROOT = "root"
#: Payload keys the ledger's opener keeps until the ledger stores their openings (a batch or two).
OPENINGS_REMEMBERED = 16_384
#: What a root key id looks like (``dashuju-root-1a2b3c4d5e6f``), before it names a file in ``retired-root/``.
_ROOT_KID = re.compile(r"^[a-z][a-z0-9-]{0,63}$")


class KeyStoreError(XiezhuError):
    """A key file is missing, unreadable or too open."""

    code = "keys"


class NoValidKey(KeyStoreError):
    """A bureau's keys are all revoked or expired: it signs nothing until it has a new one."""

    code = "keys.none-valid"


def kid_for(code: str, key: nacl.signing.SigningKey) -> str:
    """A stable key id: the bureau code and the first bytes of the public key."""
    return f"{code}-{bytes(key.verify_key).hex()[:12]}"


def root_kid_for(authority: str, key: nacl.signing.SigningKey) -> str:
    """The root key's id, e.g. ``dashuju-root-1a2b3c4d5e6f``."""
    return f"{authority}-root-{bytes(key.verify_key).hex()[:12]}"


class KeyStore:
    """Private keys, the trust anchor and the trust list in one directory."""

    def __init__(self, directory: Path, *, authority: str = ROOT_AUTHORITY) -> None:
        self.dir = Path(directory)
        self.authority = authority
        self.trust_file = self.dir / "trust.json"
        self.root_key_file = self.dir / f"{ROOT}.ed25519"
        self.anchor_file = self.dir / f"{ROOT}.pub"
        self.retired_dir = self.dir / "retired"
        self.box_dir = self.dir / "box"

    def _key_file(self, code: str) -> Path:
        return self.dir / f"{code}.ed25519"

    # -- the anchor and the root key -------------------------------------------------------------------------

    def anchor(self) -> TrustAnchor:
        """The pinned root public key (``keys/root.pub``)."""
        try:
            return msgspec.json.decode(self.anchor_file.read_bytes(), type=TrustAnchor)
        except FileNotFoundError:
            raise KeyStoreError(f"no trust anchor {self.anchor_file}; copy root.pub from the root authority "
                                f"({self.authority}) or run `xiezhu keys init` there",
                                zh=f"没有信任锚 {self.anchor_file}；请从根机构（{zh_name(self.authority)}）"
                                   "复制 root.pub，或在那里运行 `xiezhu keys init`") from None
        except (OSError, msgspec.DecodeError, msgspec.ValidationError) as e:
            raise KeyStoreError(f"trust anchor {self.anchor_file} is unreadable: {e}",
                                zh=f"无法读取信任锚 {self.anchor_file}：{e}") from e

    def holds_root(self) -> bool:
        """Whether this machine holds the root key (and so may sign new trust list versions)."""
        return self.root_key_file.exists()

    def root_signer(self) -> Signer:
        """The root authority's signer, of the key that signs the next version; only on its machine."""
        if not self.holds_root():
            raise KeyStoreError(f"the root key {self.root_key_file} is not on this machine: only the root "
                                f"authority ({self.authority}) changes the trust list",
                                zh=f"根密钥 {self.root_key_file} 不在本机：只有根机构"
                                   f"（{zh_name(self.authority)}）可以修改信任列表")
        anchor = self._next_root()
        return Signer(self.authority, anchor.kid, nacl.signing.SigningKey(self._root_seed(anchor)[1]))

    # -- root handovers (decision 25) ------------------------------------------------------------------------

    @property
    def retired_root_dir(self) -> Path:
        """Earlier root keys: ``<kid>.pub``, the anchor that verifies the handover it signed; on the root's
        machine also ``<kid>.ed25519`` (its seed, kept and never used again) and ``<kid>.handover.json``."""
        return self.dir / "retired-root"

    def anchors(self) -> dict[str, TrustAnchor]:
        """Every root key known here by key id: the pinned one first, then the retired ones."""
        anchor = self.anchor()
        out = {anchor.kid: anchor}
        if self.retired_root_dir.is_dir():
            for path in sorted(self.retired_root_dir.glob("*.pub")):
                retired = self._retired_anchor(path.name.removesuffix(".pub"))
                if retired is not None:
                    out.setdefault(retired.kid, retired)
        return out

    def handovers(self) -> list[SignedTrustList]:
        """The handovers this machine signed, oldest first: published before any later version.

        Each is checked against the retired root key that signed it; one whose successor was
        never pinned here (a rotation that did not finish) is left out.
        """
        if not self.retired_root_dir.is_dir():
            return []
        known = self.anchors()
        out: list[SignedTrustList] = []
        for path in self.retired_root_dir.glob("*.handover.json"):
            try:
                signed = msgspec.json.decode(path.read_bytes(), type=SignedTrustList)
            except (OSError, msgspec.DecodeError, msgspec.ValidationError) as e:
                raise KeyStoreError(f"root handover {path} is unreadable: {e}",
                                    zh=f"无法读取根密钥移交文件 {path}：{e}") from e
            signer = known.get(signed.root_kid)
            if signer is None or signed.next_root is None or signed.next_root.kid not in known:
                continue
            try:
                open_signed(signer, signed)
            except TrustListError as e:
                raise KeyStoreError(f"root handover {path} is refused: {e}",
                                    zh=f"根密钥移交文件 {path} 被拒绝：{zh_of(e)}") from e
            out.append(signed)
        return sorted(out, key=lambda v: v.version)

    def rotate_root(self, *, now: datetime) -> list[SignedTrustList]:
        """Hand the root over to a new key: the handover, and the first version the new key signs.

        The current root signs a version that names the new key (``next_root``); every holder
        of that version pins the new key from then on and refuses what the old one signs.  The
        new key then signs the same entries again, so that a machine that pins only the new
        key finds a last version it can check.  The old seed and anchor move to
        ``retired-root/`` (the seed is never used again), ``root.pub`` is replaced atomically.
        Publish both, in this order (``xiezhu keys rotate-root`` does).
        """
        with self._locked():
            held = self._require_held()
            old = self.root_signer()
            old_anchor = self._next_root()
            old_seed = self._root_seed(old_anchor)[1]
            key = nacl.signing.SigningKey.generate()
            new = Signer(self.authority, root_kid_for(self.authority, key), key)
            successor = TrustAnchor(authority=self.authority, kid=new.kid, public_key=new.public_key)
            handover = sign_list(msgspec.structs.replace(next_version(held, held.entries, now), next_root=successor),
                                 old)
            first = sign_list(next_version(handover, handover.entries, now), new)
            # In this order, each step leaves a directory that checks and signs (root_signer finds
            # the seed of whichever key signs next): the old key retired, the new seed in place,
            # the handover, root.pub, and the new key's first version.
            self._retire_anchor(old_anchor)
            write_private(self._retired_root_file(old.kid, ".ed25519"), old_seed)
            write_file(self._retired_root_file(old.kid, ".handover.json"),
                       msgspec.json.format(msgspec.json.encode(handover)) + b"\n", mode=0o644)
            write_private(self.root_key_file, bytes(key))
            self._write_trust(handover)
            self._write_anchor(successor)
            self._write_trust(first)
            return [handover, first]

    def _next_root(self) -> TrustAnchor:
        """The root key that signs the next version: ``root.pub``, or the successor a handover on disk names.

        The second case is a handover whose ``root.pub`` was not yet replaced when the process
        stopped; it is finished here.
        """
        anchor = self.anchor()
        data = self._trust_bytes()
        signed = self._decode_trust(data) if data is not None else None
        if signed is None or signed.next_root is None or not signed.root_sig or signed.root_kid != anchor.kid:
            return anchor
        try:
            open_signed(anchor, signed)
        except TrustListError as e:
            raise KeyStoreError(f"trust list {self.trust_file} is refused: {e}",
                                zh=f"信任列表 {self.trust_file} 被拒绝：{zh_of(e)}") from e
        self._retire_anchor(anchor)
        self._write_anchor(signed.next_root)
        return signed.next_root

    def _root_seed(self, anchor: TrustAnchor) -> tuple[Path, bytes]:
        """The seed of root key ``anchor``: ``root.ed25519``, or a retired one (a rotation that did not finish)."""
        retired = [self._retired_root_file(anchor.kid, ".ed25519")] if _ROOT_KID.match(anchor.kid) else []
        for path in (self.root_key_file, *retired):
            if not path.exists():
                continue
            seed = _read_seed(path)
            key = nacl.signing.SigningKey(seed)
            if (anchor.kid, anchor.public_key) == (root_kid_for(self.authority, key), bytes(key.verify_key)):
                return path, seed
        raise KeyStoreError(f"{self.root_key_file} is not the root key pinned in {self.anchor_file} ({anchor.kid})",
                            zh=f"{self.root_key_file} 不是 {self.anchor_file} 中固定的根密钥（{anchor.kid}）")

    def _retired_root_file(self, kid: str, suffix: str) -> Path:
        """``retired-root/<kid><suffix>``; a key id that cannot name a file is refused."""
        if not _ROOT_KID.match(kid):
            raise KeyStoreError(f"root key id {kid!r} cannot name a file", zh=f"根密钥编号 {kid!r} 不能用作文件名")
        return self.retired_root_dir / f"{kid}{suffix}"

    def _retired_anchor(self, kid: str) -> TrustAnchor | None:
        """The retired root key ``kid`` (its anchor under ``retired-root/``), if this machine kept it."""
        if not _ROOT_KID.match(kid):
            return None
        path = self._retired_root_file(kid, ".pub")
        if not path.exists():
            return None
        try:
            anchor = msgspec.json.decode(path.read_bytes(), type=TrustAnchor)
        except (OSError, msgspec.DecodeError, msgspec.ValidationError) as e:
            raise KeyStoreError(f"retired trust anchor {path} is unreadable: {e}",
                                zh=f"无法读取已退役的信任锚 {path}：{e}") from e
        return anchor if anchor.kid == kid else None

    def _retire_anchor(self, anchor: TrustAnchor) -> None:
        """Keep ``anchor`` under ``retired-root/``: it verifies the handover it signed."""
        path = self._retired_root_file(anchor.kid, ".pub")
        if self._retired_anchor(anchor.kid) == anchor:
            return
        self.retired_root_dir.mkdir(mode=0o700, exist_ok=True)
        write_file(path, msgspec.json.format(msgspec.json.encode(anchor)) + b"\n", mode=0o644)

    def _signed_by(self, signed: SignedTrustList) -> TrustAnchor:
        """The root key that must have signed ``signed``: the pinned one, or for the handover to it, its predecessor."""
        anchor = self.anchor()
        nxt = signed.next_root
        if signed.root_kid == anchor.kid or nxt is None or (nxt.kid, nxt.public_key) != (anchor.kid, anchor.public_key):
            return anchor  # open_signed says whether it did
        retired = self._retired_anchor(signed.root_kid)
        if retired is None:
            raise KeyStoreError(f"trust list {self.trust_file} hands the root over to {anchor.kid}, but the root key "
                                f"{signed.root_kid} that signed it is not in {self.retired_root_dir}",
                                zh=f"信任列表 {self.trust_file} 将根密钥移交给 {anchor.kid}，"
                                   f"但签署它的根密钥 {signed.root_kid} 不在 {self.retired_root_dir} 中")
        return retired

    # -- the trust list --------------------------------------------------------------------------------------

    def signed_trust(self) -> SignedTrustList | None:
        """The trust list on disk, checked against the anchor (``None`` if there is none yet)."""
        data = self._trust_bytes()
        if data is None:
            return None
        signed = self._decode_trust(data)
        if not signed.root_sig:
            raise KeyStoreError(f"trust list {self.trust_file} is not signed by the root authority; run "
                                "`xiezhu keys init` on the root's machine to sign it",
                                zh=f"信任列表 {self.trust_file} 未经根机构签名；"
                                   "请在根机构的机器上运行 `xiezhu keys init` 签名")
        try:
            open_signed(self._signed_by(signed), signed)
        except TrustListError as e:
            raise KeyStoreError(f"trust list {self.trust_file} is refused: {e}",
                                zh=f"信任列表 {self.trust_file} 被拒绝：{zh_of(e)}") from e
        return signed

    def trust_list(self) -> TrustList:
        """The checked trust list on disk (an empty version 0 if there is none yet)."""
        signed = self.signed_trust()
        if signed is None:
            return TrustList(version=0, issued_at=datetime.fromtimestamp(0).astimezone(), entries=[])
        return readable(signed)

    def ring(self) -> KeyRing:
        """A key ring of every trusted public key."""
        return KeyRing(self.trust_list().entries)

    def install(self, signed: SignedTrustList) -> bool:
        """Keep a version received from the root authority; ``False`` if it is the one held.

        It must be signed by the root key that signs the next version: the pinned one, or the
        successor a held handover names.  A handover (decision 25) moves the pinned anchor to
        ``retired-root/`` and replaces ``root.pub`` with the successor, atomically.  Raises
        :class:`~agencies.trust.trust_list.TrustListError` if it is not the root's, is older than the
        list on disk, or rewrites history.
        """
        with self._locked():
            held = self.signed_trust()
            if held is not None and signed.body == held.body:
                return False
            signer = root_after(self.anchor(), held)
            open_signed(signer, signed)
            if not follows(held, signed, signed.body):
                return False
            if signed.next_root is not None:
                self._retire_anchor(signer)  # first: it verifies the handover once root.pub names the successor
            self._write_trust(signed)
            after = root_after(signer, signed)
            if after != self.anchor():
                self._write_anchor(after)
            return True

    def ensure(self, codes: list[str], *, valid_from: datetime) -> None:
        """List a key for each bureau not listed yet (:meth:`_list_keys`), and make each bureau's store key.

        The store keys are made here too, so that a deployment's keys directory is complete
        before it is mounted read-only on the bureaus' machines.
        """
        self._list_keys(codes, valid_from=valid_from)
        for code in codes:
            self.store_key(code)

    def _list_keys(self, codes: list[str], *, valid_from: datetime) -> None:
        """List a key for each bureau not listed yet, and sign the list with the root key.

        A bureau's existing key file is listed as it is; otherwise a key is made.  The first
        run also makes the root key and its anchor, and adopts and signs an unsigned list
        from before lists were signed.  Running it again changes nothing; a listed bureau
        gets a new key only by a rotation.
        """
        if ROOT in codes:
            raise KeyStoreError(f"{ROOT!r} cannot be a bureau code: it names the root key's files",
                                zh=f"{ROOT!r} 不能用作单位代码：它是根密钥文件的名称")
        self.dir.mkdir(parents=True, exist_ok=True)
        with self._locked():
            root = self._ensure_root()
            held, trust = self._held_or_legacy()
            # Keys listed before box keys existed get one where their seed is (only the root can list it).
            entries = [self._with_box(e) if root else e for e in trust.entries] if trust else []
            known = {e.bureau for e in entries}
            for code in codes:
                if code in known:
                    continue
                if self._key_file(code).exists():
                    signer = self.signer(code)
                else:
                    key = nacl.signing.SigningKey.generate()
                    write_private(self._key_file(code), bytes(key))
                    signer = Signer(code, kid_for(code, key), key)
                entries.append(TrustEntry(kid=signer.kid, bureau=code, public_key=signer.public_key,
                                          valid_from=valid_from, box_key=self._new_box(signer.kid)))
                known.add(code)
            if held is not None and entries == list(held.entries):
                return
            if root is None:
                raise KeyStoreError(f"cannot list new keys: the root key {self.root_key_file} is not on this "
                                    f"machine; run `xiezhu keys init` on the root authority's ({self.authority})",
                                    zh=f"无法列入新密钥：根密钥 {self.root_key_file} 不在本机；请在根机构"
                                       f"（{zh_name(self.authority)}）的机器上运行 `xiezhu keys init`")
            new = next_version(held, entries, valid_from)
            if held is None and trust is not None:  # an unsigned list adopted: its numbering goes on
                new = msgspec.structs.replace(new, version=trust.version + 1)
            self._write_trust(sign_list(new, root))

    def rotate(self, code: str, *, now: datetime, overlap: timedelta = DEFAULT_OVERLAP,
               public_key: bytes | None = None, box_key: bytes | None = None) -> SignedTrustList:
        """A new key for ``code``, valid from ``now``; its current keys stay valid ``overlap`` longer.

        Without ``public_key`` the new seed and a new X25519 box key are made here; the seed
        replaces ``<code>.ed25519`` (the old one is kept under ``retired/`` while it is valid).
        With it, the bureau made its keys on its own machine and only the public halves
        (``public_key`` and ``box_key``) are listed.
        """
        with self._locked():
            held = self._require_held()
            root = self.root_signer()
            key = None if public_key is not None else nacl.signing.SigningKey.generate()
            pub = bytes(key.verify_key) if key is not None else public_key or b""
            try:
                nacl.signing.VerifyKey(pub)
            except (ValueError, TypeError) as e:
                raise KeyStoreError("the new public key is not a 32-byte Ed25519 key",
                                    zh="新公钥不是 32 字节的 Ed25519 公钥") from e
            kid = f"{code}-{pub.hex()[:12]}"
            if key is not None:
                box = self._new_box(kid)
            elif box_key is None or len(box_key) != 32:
                raise KeyStoreError("a key made elsewhere needs its 32-byte X25519 box key too, or nothing "
                                    "could be sealed to the bureau",
                                    zh="在别处生成的密钥还须附 32 字节的 X25519 加密公钥，否则无法向该单位加密发送")
            else:
                box = box_key
            entries = rotated(held.entries, TrustEntry(kid=kid, bureau=code, public_key=pub, valid_from=now,
                                                       box_key=box), overlap=overlap)
            signed = sign_list(next_version(held, entries, now), root)
            if key is not None:
                self._retire_current(code)
                write_private(self._key_file(code), bytes(key))
            self._write_trust(signed)
            self._prune_retired(signed.entries, now)
            return signed

    def revoke(self, kid: str, reason: str, *, now: datetime) -> SignedTrustList:
        """Revoke ``kid`` from ``now`` on; signatures it made before stay valid on replay."""
        with self._locked():
            held = self._require_held()
            root = self.root_signer()
            signed = sign_list(next_version(held, revoked(held.entries, kid, reason, at=now), now), root)
            self._write_trust(signed)
            self._prune_retired(signed.entries, now)
            return signed

    # -- bureau keys -----------------------------------------------------------------------------------------

    def signer(self, code: str) -> Signer:
        """The signer of ``code``, from its key file."""
        path = self._key_file(code)
        if not path.exists():
            raise KeyStoreError(f"no key for bureau {code!r} in {self.dir}; run `xiezhu keys init` "
                                f"(or `xiezhu keys rotate {code}` if it is listed with a key made elsewhere)",
                                zh=f"{self.dir} 中没有{zh_name(code)}的密钥；请运行 `xiezhu keys init`"
                                   f"（若其密钥在别处生成并已列入，则运行 `xiezhu keys rotate {code}`）")
        key = nacl.signing.SigningKey(_read_seed(path))
        return Signer(code, kid_for(code, key), key)

    def signers(self, code: str) -> list[Signer]:
        """The current signer of ``code``, then its retired ones, newest first."""
        out = [self.signer(code)]
        retired = sorted(self.retired_dir.glob(f"{code}-*.ed25519"), key=lambda p: p.stat().st_mtime_ns,
                         reverse=True) if self.retired_dir.is_dir() else []
        for path in retired:
            key = nacl.signing.SigningKey(_read_seed(path))
            if path.stem == kid_for(code, key):  # not another bureau's whose code starts with ours
                out.append(Signer(code, path.stem, key))
        return out

    # -- box keys (X25519): what was sealed to a bureau opens with these -------------------------------------

    def _box_file(self, kid: str) -> Path:
        return self.box_dir / f"{kid}.x25519"

    def _new_box(self, kid: str) -> bytes:
        """The public half of ``kid``'s box key, made now if this machine has none."""
        path = self._box_file(kid)
        if not path.exists():
            self.box_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
            # Never replaced: what was sealed to this key opens with it alone.
            write_private(path, bytes(nacl.public.PrivateKey.generate()), keep_existing=True)
        return bytes(nacl.public.PrivateKey(_read_seed(path)).public_key)

    def _with_box(self, entry: TrustEntry) -> TrustEntry:
        """A listed key from before box keys, given one if its signing seed is on this machine."""
        if entry.box_key or entry.revoked_at is not None:
            return entry
        held = {s.kid for s in self.signers(entry.bureau)} if self._key_file(entry.bureau).exists() else set()
        if entry.kid not in held:
            return entry
        return msgspec.structs.replace(entry, box_key=self._new_box(entry.kid))

    def opener(self, code: str, *, remember: int = 0) -> Opener:
        """Every box key of ``code`` held here, which open what was sealed to it (the ledger: 区司法局's).

        It reads the directory again when a payload is sealed to a key it does not hold yet, so a
        rotation made on this machine opens without a restart.  ``remember``: see
        :class:`~broker.sealing.Opener` (the ledger's openings).
        """
        keys = self._box_keys(code)
        if not keys:
            raise KeyStoreError(f"no box key of {code} in {self.box_dir}: this machine cannot open what was "
                                f"sealed to {code}",
                                zh=f"{self.box_dir} 中没有{zh_name(code)}的解密密钥："
                                   f"本机无法打开加密发给{zh_name(code)}的内容")
        return Opener(code, keys, reload=lambda: self._box_keys(code), remember=remember)

    def _box_keys(self, code: str) -> dict[str, bytes]:
        if not self.box_dir.is_dir():
            return {}
        pattern = re.compile(rf"^{re.escape(code)}-[0-9a-f]{{12}}$")
        return {p.stem: _read_seed(p) for p in sorted(self.box_dir.glob(f"{code}-*.x25519")) if pattern.match(p.stem)}

    def ledger_opener(self) -> Opener | None:
        """区司法局's box keys, which open every case on the ledger; ``None`` on a machine without them.

        It remembers the payload keys of what it opened lately, so that the ledger stores each
        entry's opening (:meth:`broker.sealing.Opener.opening`) when the same opener checked it.
        """
        try:
            return self.opener(JUSTICE, remember=OPENINGS_REMEMBERED)
        except KeyStoreError:
            return None

    def bureau_signer(self, code: str, ring: KeyRing | None = None) -> BureauSigner:
        """Signs as ``code`` with its newest key that ``ring`` (default: the list on disk) holds valid."""
        return BureauSigner(self, code, ring if ring is not None else self.ring())

    # -- store keys: a bureau's own store is encrypted at rest with its store key (decision 24) --------------

    def store_key(self, code: str, *, create: bool = True) -> bytes:
        """The 32-byte key ``code``'s own store is encrypted with (``<code>.store-key``, mode 0600).

        The first call makes it, unless ``create`` is false: a store that exists was written with
        a key, and a new one could only fail to read it, so its opener passes ``create=False`` and
        a missing key is an error that says so.  Unlike a signing key it is never rotated or retired: every event
        of the store was written with it, so it must stay as long as the store does, and losing it
        loses the store.  A key file readable by others is refused.
        """
        path = self.dir / f"{code}.store-key"
        if not path.exists() and not create:
            raise KeyStoreError(f"no store key {path}: {code}'s data was written with one; restore it from a "
                                f"backup (a new key could not read it)",
                                zh=f"没有存储密钥 {path}：{zh_name(code)}的数据是用它加密的；请从备份恢复"
                                   "（新密钥无法读取）", path=str(path))
        if not path.exists():
            try:
                with self._locked():
                    if not path.exists():  # another process may have made it meanwhile: never replace one
                        write_private(path, os.urandom(32), keep_existing=True)
            except OSError as e:
                raise KeyStoreError(f"cannot create the store key {path}: {e}",
                                    zh=f"无法创建存储密钥 {path}：{e}") from e
        try:
            st = path.stat()
            if st.st_mode & 0o077:
                raise KeyStoreError(f"{path} is readable by others (mode {st.st_mode & 0o777:o}); chmod 600 it",
                                    zh=f"{path} 可被他人读取（权限 {st.st_mode & 0o777:o}）；请执行 chmod 600")
            key = path.read_bytes()
        except OSError as e:
            raise KeyStoreError(f"cannot read the store key {path}: {e}", zh=f"无法读取存储密钥 {path}：{e}") from e
        if len(key) != 32:
            raise KeyStoreError(f"{path} is not a 32-byte store key; restore it from a backup: {code}'s store "
                                f"cannot be read without it",
                                zh=f"{path} 不是 32 字节的存储密钥；请从备份恢复：没有它无法读取{zh_name(code)}的存储")
        return key

    # -- one machine's share ------------------------------------------------------------------------------------

    def export(self, codes: list[str], dest: Path, *, signing_only: bool = False) -> list[Path]:
        """Write into ``dest`` the keys directory of a machine that runs ``codes``, and nothing more.

        Each bureau's signing seeds (current and retired), its box keys and its store key, plus
        the public trust anchor, the trust list and handed-over root anchors.  Never the root
        key nor another bureau's private key: a bureau's machine can read only its own mail.
        ``signing_only``: no box key and no store key either (区司法局's checkpoint signer signs
        heads and opens nothing, decision 49).
        """
        held = self._require_held()
        listed = {e.bureau for e in held.entries}
        for code in codes:
            if code == ROOT or code not in listed:
                raise KeyStoreError(f"{code!r} is not a bureau in the trust list of {self.dir}",
                                    zh=f"{code!r} 不是 {self.dir} 信任列表中的单位")
            self.signer(code)  # its seed is here (a key made elsewhere cannot be exported from here)
        out = KeyStore(dest, authority=self.authority)
        written: list[Path] = []

        def put(src: Path, rel: str, mode: int) -> None:
            target = out.dir / rel
            target.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
            write_file(target, src.read_bytes(), mode=mode)
            written.append(target)

        for code in codes:
            put(self._key_file(code), self._key_file(code).name, 0o600)
            for signer in self.signers(code)[1:]:
                put(self.retired_dir / f"{signer.kid}.ed25519", f"retired/{signer.kid}.ed25519", 0o600)
            if signing_only:
                continue
            self.store_key(code)  # made now if it was not yet
            put(self.dir / f"{code}.store-key", f"{code}.store-key", 0o600)
            for kid in self._box_keys(code):
                put(self._box_file(kid), f"box/{kid}.x25519", 0o600)
        if self.retired_root_dir.is_dir():
            for path in sorted(self.retired_root_dir.glob("*.pub")):
                put(path, f"retired-root/{path.name}", 0o644)
        put(self.anchor_file, self.anchor_file.name, 0o644)
        put(self.trust_file, self.trust_file.name, 0o644)
        return written

    # -- files -----------------------------------------------------------------------------------------------

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        """One writer of the keys directory at a time, across processes."""
        self.dir.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.dir / ".lock", os.O_WRONLY | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)  # closing releases the lock

    def _trust_bytes(self) -> bytes | None:
        try:
            return self.trust_file.read_bytes()
        except FileNotFoundError:
            return None
        except OSError as e:
            raise KeyStoreError(f"trust list {self.trust_file} is unreadable: {e}",
                                zh=f"无法读取信任列表 {self.trust_file}：{e}") from e

    def _decode_trust(self, data: bytes) -> SignedTrustList:
        try:
            return msgspec.json.decode(data, type=SignedTrustList)
        except (msgspec.DecodeError, msgspec.ValidationError) as e:
            raise KeyStoreError(f"trust list {self.trust_file} is unreadable: {e}",
                                zh=f"无法读取信任列表 {self.trust_file}：{e}") from e

    def _held_or_legacy(self) -> tuple[SignedTrustList | None, TrustList | None]:
        """The signed list on disk, or an unsigned one from before lists were signed (to adopt)."""
        data = self._trust_bytes()
        if data is None:
            return None, None
        if not self._decode_trust(data).root_sig:
            return None, msgspec.json.decode(data, type=TrustList)
        held = self.signed_trust()
        return held, held

    def _require_held(self) -> SignedTrustList:
        held = self.signed_trust()
        if held is None:
            raise KeyStoreError(f"no trust list in {self.dir}; run `xiezhu keys init` first",
                                zh=f"{self.dir} 中没有信任列表；请先运行 `xiezhu keys init`")
        return held

    def _ensure_root(self) -> Signer | None:
        """The root signer, made on the first run; ``None`` on a machine that only pins the anchor."""
        if self.holds_root():
            if not self.anchor_file.exists():
                key = nacl.signing.SigningKey(_read_seed(self.root_key_file))
                self._write_anchor(TrustAnchor(authority=self.authority, kid=root_kid_for(self.authority, key),
                                               public_key=bytes(key.verify_key)))
            return self.root_signer()
        if self.anchor_file.exists():
            return None
        data = self._trust_bytes()
        if data is not None and self._decode_trust(data).root_sig:
            raise KeyStoreError(f"{self.trust_file} is signed by a root key, but {self.anchor_file} is missing; "
                                f"copy root.pub from the root authority ({self.authority})",
                                zh=f"{self.trust_file} 由根密钥签名，但缺少 {self.anchor_file}；请从根机构"
                                   f"（{zh_name(self.authority)}）复制 root.pub")
        key = nacl.signing.SigningKey.generate()
        write_private(self.root_key_file, bytes(key))
        self._write_anchor(TrustAnchor(authority=self.authority, kid=root_kid_for(self.authority, key),
                                       public_key=bytes(key.verify_key)))
        return self.root_signer()

    def _write_anchor(self, anchor: TrustAnchor) -> None:
        write_file(self.anchor_file, msgspec.json.format(msgspec.json.encode(anchor)) + b"\n", mode=0o644)

    def _write_trust(self, signed: SignedTrustList) -> None:
        write_file(self.trust_file, msgspec.json.format(msgspec.json.encode(signed)) + b"\n", mode=0o644)

    def _retire_current(self, code: str) -> None:
        path = self._key_file(code)
        if not path.exists():
            return
        current = self.signer(code)
        self.retired_dir.mkdir(mode=0o700, exist_ok=True)
        write_private(self.retired_dir / f"{current.kid}.ed25519", _read_seed(path))

    def _prune_retired(self, entries: list[TrustEntry], now: datetime) -> None:
        """Forget retired seeds whose keys can no longer sign anything valid."""
        if not self.retired_dir.is_dir():
            return
        by_kid = {e.kid: e for e in entries}
        for path in self.retired_dir.glob("*.ed25519"):
            e = by_kid.get(path.stem)
            if e is None or state_of(e, now) in ("expired", "revoked"):
                path.unlink(missing_ok=True)


class BureauSigner:
    """Signs as one bureau with its newest key the trust list holds valid, so a rotation needs no restart.

    Right after a rotation the new key may not have reached this machine's ring yet; until it
    has, the bureau signs with its old key, which stays valid for the overlap.  A bureau whose
    keys are all revoked or expired signs nothing (:class:`NoValidKey`): a receiver would
    refuse it anyway, and a refused message is worse than one that waits.
    """

    def __init__(self, keys: KeyStore, code: str, ring: KeyRing) -> None:
        self.keys = keys
        self.code = code
        self.ring = ring
        self._lock = threading.Lock()
        self._stamp: tuple[tuple[int, int], tuple[int, int]] | None = None
        self._signers: list[Signer] = []
        self._load()  # a missing or too open key file is an error now, not at the first message

    def current(self, at: datetime) -> Signer:
        """The signer to use for something dated ``at``."""
        signers = self._load()
        for s in signers:
            if self.ring.valid_at(s.kid, at):
                return s
        newest = signers[0]
        entry = self.ring.entry(newest.kid)
        if entry is not None and state_of(entry, at) in ("expired", "revoked"):
            raise NoValidKey(f"{self.code} has no valid signing key: {newest.kid} is {state_of(entry, at)} "
                             f"({entry.revoked_reason or 'validity ended'}); run `xiezhu keys rotate {self.code}`",
                             zh=f"{zh_name(self.code)}没有有效的签名密钥：{newest.kid} "
                                f"{labels.KEY_STATE.get(state_of(entry, at), state_of(entry, at))}"
                                f"（{entry.revoked_reason or '有效期已满'}）；请运行 `xiezhu keys rotate {self.code}`",
                             kid=newest.kid)
        return newest  # not in the ring yet (or not yet valid): the receiver judges it

    def sign(self, env: Envelope) -> Signed:
        """Seal the payload to its readers, then sign the sealed bytes with the key valid at its time.

        The readers are the sender itself, the recipient bureau and 区司法局 (whose ledger
        replays every case), each with every key the trust list holds valid for it now.  A
        dispute's raise is also sealed to the other party, who takes it up from the ledger
        (decision 20), and its escalation to 区政府办公室, which reads the petition there (decision 51).
        """
        signer = self.current(env.time)
        if env.sender != self.code:
            return signer.sign(env)  # refused there: a bureau signs only as itself
        parties = [env.sender, env.recipient, JUSTICE]
        if isinstance(env.payload, DisputeRaised):
            parties.append(env.payload.other_party)
        if isinstance(env.payload, DisputeEscalated):
            parties.append(DISTRICT_GOVERNMENT)
        readers: list[tuple[str, bytes]] = []
        for party in dict.fromkeys(parties):
            if party == LEDGER:
                continue
            found = self.ring.readers(party, env.time)
            if not found:
                listed = [e for e in self.ring.entries() if e.bureau == party and e.box_key]
                if listed:
                    raise SealingError(f"{party} has no valid key to seal to (revoked or expired): nothing can be "
                                       f"sent to it until its new key is listed (`xiezhu keys rotate {party}`)",
                                       zh=f"{zh_name(party)}没有可用于加密的有效密钥（已吊销或过期）："
                                          f"在其新密钥列入前无法向其发送（`xiezhu keys rotate {party}`）")
                raise SealingError(f"{party} has no box key in the trust list: nothing can be sealed to it; "
                                   f"run `xiezhu keys init` (or rotate {party}'s key) on the root's machine",
                                   zh=f"信任列表中没有{zh_name(party)}的加密公钥：无法向其加密发送；"
                                      f"请在根机构的机器上运行 `xiezhu keys init`（或轮换{zh_name(party)}的密钥）")
            readers += found
        body = seal(env, readers)
        return Signed(body=body, kid=signer.kid, sig=signer.sign_bytes(body))

    def _load(self) -> list[Signer]:
        # Re-read the seeds only when a rotation changed them.
        with self._lock:
            stamp = (_stamp(self.keys._key_file(self.code)), _stamp(self.keys.retired_dir))
            if stamp != self._stamp:
                self._signers = self.keys.signers(self.code)
                self._stamp = stamp
            return self._signers


def _stamp(path: Path) -> tuple[int, int]:
    """Changes whenever the file is replaced or the directory gains or loses a file."""
    try:
        st = path.stat()
    except FileNotFoundError:
        return (0, 0)
    return (st.st_ino, st.st_mtime_ns)


def _read_seed(path: Path) -> bytes:
    try:
        st = path.stat()
        if st.st_mode & 0o077:
            raise KeyStoreError(f"{path} is readable by others (mode {st.st_mode & 0o777:o}); chmod 600 it",
                                zh=f"{path} 可被他人读取（权限 {st.st_mode & 0o777:o}）；请执行 chmod 600")
        seed = path.read_bytes()
    except FileNotFoundError:
        raise KeyStoreError(f"no key file {path}; run `xiezhu keys init`",
                            zh=f"没有密钥文件 {path}；请运行 `xiezhu keys init`") from None
    if len(seed) != 32:
        raise KeyStoreError(f"{path} is not a 32-byte Ed25519 seed", zh=f"{path} 不是 32 字节的 Ed25519 种子")
    return seed
