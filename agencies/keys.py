"""Bureau signing keys on disk and the trust list of their public halves.

Layout under ``<data>/keys``: ``<code>.ed25519`` holds a bureau's 32-byte seed (mode
0600); ``trust.json`` lists every public key with its owner and validity.
"""
from __future__ import annotations

import os
from datetime import datetime
from pathlib import Path

import msgspec
import nacl.signing

from broker.signing import KeyRing, Signer
from schemas.errors import XiezhuError
from schemas.trust import TrustEntry, TrustList


class KeyStoreError(XiezhuError):
    """A key file is missing, unreadable or too open."""

    code = "keys"


def kid_for(code: str, key: nacl.signing.SigningKey) -> str:
    """A stable key id: the bureau code and the first bytes of the public key."""
    return f"{code}-{bytes(key.verify_key).hex()[:12]}"


class KeyStore:
    """Private keys and the trust list in one directory."""

    def __init__(self, directory: Path) -> None:
        self.dir = Path(directory)
        self.trust_file = self.dir / "trust.json"

    def _key_file(self, code: str) -> Path:
        return self.dir / f"{code}.ed25519"

    def trust_list(self) -> TrustList:
        """The trust list on disk (an empty one if there is none yet)."""
        if not self.trust_file.exists():
            return TrustList(issued_at=datetime.fromtimestamp(0).astimezone(), entries=[])
        try:
            return msgspec.json.decode(self.trust_file.read_bytes(), type=TrustList)
        except (OSError, msgspec.DecodeError, msgspec.ValidationError) as e:
            raise KeyStoreError(f"trust list {self.trust_file} is unreadable: {e}") from e

    def ring(self) -> KeyRing:
        """A key ring of every trusted public key."""
        return KeyRing(self.trust_list().entries)

    def ensure(self, codes: list[str], *, valid_from: datetime) -> None:
        """Generate a key for each bureau that has none, and list it in the trust list."""
        self.dir.mkdir(parents=True, exist_ok=True)
        trust = self.trust_list()
        entries = list(trust.entries)
        known = {e.bureau for e in entries}
        for code in codes:
            if self._key_file(code).exists() and code in known:
                continue
            key = nacl.signing.SigningKey.generate()
            _write_private(self._key_file(code), bytes(key))
            entries.append(TrustEntry(kid=kid_for(code, key), bureau=code,
                                      public_key=bytes(key.verify_key), valid_from=valid_from))
        if len(entries) != len(trust.entries):
            self._write_trust(TrustList(version=trust.version + 1, issued_at=valid_from, entries=entries))

    def _write_trust(self, trust: TrustList) -> None:
        tmp = self.trust_file.with_suffix(".tmp")
        tmp.write_bytes(msgspec.json.format(msgspec.json.encode(trust)))
        os.replace(tmp, self.trust_file)

    def signer(self, code: str) -> Signer:
        """The signer of ``code``, from its key file."""
        path = self._key_file(code)
        try:
            st = path.stat()
            if st.st_mode & 0o077:
                raise KeyStoreError(f"{path} is readable by others (mode {st.st_mode & 0o777:o}); chmod 600 it")
            seed = path.read_bytes()
        except FileNotFoundError:
            raise KeyStoreError(f"no key for bureau {code!r} in {self.dir}; run `xiezhu keys init`") from None
        if len(seed) != 32:
            raise KeyStoreError(f"{path} is not a 32-byte Ed25519 seed")
        key = nacl.signing.SigningKey(seed)
        return Signer(code, kid_for(code, key), key)


def _write_private(path: Path, data: bytes) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.write(fd, data)
    finally:
        os.close(fd)
    os.chmod(path, 0o600)
