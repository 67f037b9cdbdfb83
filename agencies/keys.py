"""Bureau signing keys on disk, the root key, and the root-signed trust list of the public halves.

Layout under ``<data>/keys``:

- ``<code>.ed25519``: the 32-byte seed a bureau signs with now (mode 0600);
- ``retired/<kid>.ed25519``: a bureau's earlier seeds, kept while their keys are still valid
  after a rotation, so that it signs with the old key until the new list has reached it;
- ``root.ed25519``: the root authority's seed (区大数据局's machine only, mode 0600);
- ``root.pub``: the trust anchor, the root's public key, pinned on every machine;
- ``trust.json``: the trust list as the root signed it (:class:`~schemas.trust.SignedTrustList`).

Whatever reads ``trust.json`` here checks the root's signature against ``root.pub``; whatever
writes it refuses a version that goes backwards or rewrites history (:mod:`agencies.trust`).
"""
from __future__ import annotations

import contextlib
import fcntl
import os
import threading
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path

import msgspec
import nacl.signing

from agencies.registry import ROOT_AUTHORITY
from agencies.trust import (
    DEFAULT_OVERLAP,
    TrustListError,
    follows,
    next_version,
    open_signed,
    readable,
    revoked,
    rotated,
    sign_list,
    state_of,
)
from broker.signing import KeyRing, Signer
from schemas.envelope import Envelope, Signed
from schemas.errors import XiezhuError
from schemas.trust import SignedTrustList, TrustAnchor, TrustEntry, TrustList

#: File stem of the root key and the anchor; no bureau may have this code.
ROOT = "root"


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

    def _key_file(self, code: str) -> Path:
        return self.dir / f"{code}.ed25519"

    # -- the anchor and the root key -------------------------------------------------------------------------

    def anchor(self) -> TrustAnchor:
        """The pinned root public key (``keys/root.pub``)."""
        try:
            return msgspec.json.decode(self.anchor_file.read_bytes(), type=TrustAnchor)
        except FileNotFoundError:
            raise KeyStoreError(f"no trust anchor {self.anchor_file}; copy root.pub from the root authority "
                                f"({self.authority}) or run `xiezhu keys init` there") from None
        except (OSError, msgspec.DecodeError, msgspec.ValidationError) as e:
            raise KeyStoreError(f"trust anchor {self.anchor_file} is unreadable: {e}") from e

    def holds_root(self) -> bool:
        """Whether this machine holds the root key (and so may sign new trust list versions)."""
        return self.root_key_file.exists()

    def root_signer(self) -> Signer:
        """The root authority's signer; only on its machine."""
        if not self.holds_root():
            raise KeyStoreError(f"the root key {self.root_key_file} is not on this machine: only the root "
                                f"authority ({self.authority}) changes the trust list")
        key = nacl.signing.SigningKey(_read_seed(self.root_key_file))
        signer = Signer(self.authority, root_kid_for(self.authority, key), key)
        anchor = self.anchor()
        if (anchor.kid, anchor.public_key) != (signer.kid, signer.public_key):
            raise KeyStoreError(f"{self.root_key_file} is not the root key pinned in {self.anchor_file} "
                                f"({anchor.kid})")
        return signer

    # -- the trust list --------------------------------------------------------------------------------------

    def signed_trust(self) -> SignedTrustList | None:
        """The trust list on disk, checked against the anchor (``None`` if there is none yet)."""
        data = self._trust_bytes()
        if data is None:
            return None
        signed = self._decode_trust(data)
        if not signed.root_sig:
            raise KeyStoreError(f"trust list {self.trust_file} is not signed by the root authority; run "
                                "`xiezhu keys init` on the root's machine to sign it")
        try:
            open_signed(self.anchor(), signed)
        except TrustListError as e:
            raise KeyStoreError(f"trust list {self.trust_file} is refused: {e}") from e
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

        Raises :class:`~agencies.trust.TrustListError` if it is not the root's, is older than
        the list on disk, or rewrites history.
        """
        open_signed(self.anchor(), signed)
        with self._locked():
            if not follows(self.signed_trust(), signed, signed.body):
                return False
            self._write_trust(signed)
            return True

    def ensure(self, codes: list[str], *, valid_from: datetime) -> None:
        """List a key for each bureau not listed yet, and sign the list with the root key.

        A bureau's existing key file is listed as it is; otherwise a key is made.  The first
        run also makes the root key and its anchor, and adopts and signs an unsigned list
        from before lists were signed.  Running it again changes nothing; a listed bureau
        gets a new key only by a rotation.
        """
        if ROOT in codes:
            raise KeyStoreError(f"{ROOT!r} cannot be a bureau code: it names the root key's files")
        self.dir.mkdir(parents=True, exist_ok=True)
        with self._locked():
            root = self._ensure_root()
            held, trust = self._held_or_legacy()
            entries = list(trust.entries) if trust else []
            known = {e.bureau for e in entries}
            for code in codes:
                if code in known:
                    continue
                if self._key_file(code).exists():
                    signer = self.signer(code)
                else:
                    key = nacl.signing.SigningKey.generate()
                    _write_private(self._key_file(code), bytes(key))
                    signer = Signer(code, kid_for(code, key), key)
                entries.append(TrustEntry(kid=signer.kid, bureau=code, public_key=signer.public_key,
                                          valid_from=valid_from))
                known.add(code)
            if held is not None and len(entries) == len(held.entries):
                return
            if root is None:
                raise KeyStoreError(f"cannot list new keys: the root key {self.root_key_file} is not on this "
                                    f"machine; run `xiezhu keys init` on the root authority's ({self.authority})")
            new = next_version(held, entries, valid_from)
            if held is None and trust is not None:  # an unsigned list adopted: its numbering goes on
                new = msgspec.structs.replace(new, version=trust.version + 1)
            self._write_trust(sign_list(new, root))

    def rotate(self, code: str, *, now: datetime, overlap: timedelta = DEFAULT_OVERLAP,
               public_key: bytes | None = None) -> SignedTrustList:
        """A new key for ``code``, valid from ``now``; its current keys stay valid ``overlap`` longer.

        Without ``public_key`` the new seed is made here and replaces ``<code>.ed25519`` (the
        old one is kept under ``retired/`` while it is valid).  With it, the bureau made its
        key on its own machine and only the public half is listed.
        """
        with self._locked():
            held = self._require_held()
            root = self.root_signer()
            key = None if public_key is not None else nacl.signing.SigningKey.generate()
            pub = bytes(key.verify_key) if key is not None else public_key or b""
            try:
                nacl.signing.VerifyKey(pub)
            except (ValueError, TypeError) as e:
                raise KeyStoreError("the new public key is not a 32-byte Ed25519 key") from e
            kid = f"{code}-{pub.hex()[:12]}"
            entries = rotated(held.entries, TrustEntry(kid=kid, bureau=code, public_key=pub, valid_from=now),
                              overlap=overlap)
            signed = sign_list(next_version(held, entries, now), root)
            if key is not None:
                self._retire_current(code)
                _write_private(self._key_file(code), bytes(key))
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
                                f"(or `xiezhu keys rotate {code}` if it is listed with a key made elsewhere)")
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

    def bureau_signer(self, code: str, ring: KeyRing | None = None) -> BureauSigner:
        """Signs as ``code`` with its newest key that ``ring`` (default: the list on disk) holds valid."""
        return BureauSigner(self, code, ring if ring is not None else self.ring())

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
            raise KeyStoreError(f"trust list {self.trust_file} is unreadable: {e}") from e

    def _decode_trust(self, data: bytes) -> SignedTrustList:
        try:
            return msgspec.json.decode(data, type=SignedTrustList)
        except (msgspec.DecodeError, msgspec.ValidationError) as e:
            raise KeyStoreError(f"trust list {self.trust_file} is unreadable: {e}") from e

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
            raise KeyStoreError(f"no trust list in {self.dir}; run `xiezhu keys init` first")
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
                                f"copy root.pub from the root authority ({self.authority})")
        key = nacl.signing.SigningKey.generate()
        _write_private(self.root_key_file, bytes(key))
        self._write_anchor(TrustAnchor(authority=self.authority, kid=root_kid_for(self.authority, key),
                                       public_key=bytes(key.verify_key)))
        return self.root_signer()

    def _write_anchor(self, anchor: TrustAnchor) -> None:
        _replace(self.anchor_file, msgspec.json.format(msgspec.json.encode(anchor)) + b"\n", 0o644)

    def _write_trust(self, signed: SignedTrustList) -> None:
        _replace(self.trust_file, msgspec.json.format(msgspec.json.encode(signed)) + b"\n", 0o644)

    def _retire_current(self, code: str) -> None:
        path = self._key_file(code)
        if not path.exists():
            return
        current = self.signer(code)
        self.retired_dir.mkdir(mode=0o700, exist_ok=True)
        _write_private(self.retired_dir / f"{current.kid}.ed25519", _read_seed(path))

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
                             kid=newest.kid)
        return newest  # not in the ring yet (or not yet valid): the receiver judges it

    def sign(self, env: Envelope) -> Signed:
        """Sign an envelope with the key valid at its time."""
        return self.current(env.time).sign(env)

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
            raise KeyStoreError(f"{path} is readable by others (mode {st.st_mode & 0o777:o}); chmod 600 it")
        seed = path.read_bytes()
    except FileNotFoundError:
        raise KeyStoreError(f"no key file {path}; run `xiezhu keys init`") from None
    if len(seed) != 32:
        raise KeyStoreError(f"{path} is not a 32-byte Ed25519 seed")
    return seed


def _replace(path: Path, data: bytes, mode: int) -> None:
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    try:
        os.write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, path)


def _write_private(path: Path, data: bytes) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.write(fd, data)
    finally:
        os.close(fd)
    os.chmod(path, 0o600)
