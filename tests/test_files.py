"""broker/files.py: keys and seeds are written whole, private, and never half-replaced."""
from __future__ import annotations

import os
import stat
from datetime import UTC, datetime
from pathlib import Path

import pytest

from agencies.trust.keys import KeyStore
from aggregates.registry import JUSTICE
from broker import files
from broker.auth import copy_identity, generate_identities, seed_path
from broker.files import write_file, write_private


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_a_key_written_is_0600_and_complete_whatever_the_umask(tmp_path: Path) -> None:
    key = os.urandom(1 << 20)  # larger than one write may take
    old = os.umask(0)
    try:
        assert write_private(tmp_path / "k.ed25519", key)
    finally:
        os.umask(old)
    assert (tmp_path / "k.ed25519").read_bytes() == key and _mode(tmp_path / "k.ed25519") == 0o600
    assert [p.name for p in tmp_path.iterdir()] == ["k.ed25519"]  # no temporary file left


def test_a_public_file_gets_its_mode_exactly(tmp_path: Path) -> None:
    old = os.umask(0o077)
    try:
        write_file(tmp_path / "root.pub", b"{}\n", mode=0o644)
    finally:
        os.umask(old)
    assert _mode(tmp_path / "root.pub") == 0o644


@pytest.mark.parametrize("step", ["replace", "fsync"])
def test_a_crash_mid_write_leaves_the_old_file_intact(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                      step: str) -> None:
    path = tmp_path / "gongan.store-key"
    write_private(path, b"old key")

    def crash(*_: object) -> None:
        raise OSError(f"simulated crash at {step}")

    monkeypatch.setattr(files.os, step, crash)
    with pytest.raises(OSError, match="simulated crash"):
        write_private(path, b"new key")
    monkeypatch.undo()
    assert path.read_bytes() == b"old key" and _mode(path) == 0o600
    assert [p.name for p in tmp_path.iterdir()] == ["gongan.store-key"]


def test_keep_existing_never_replaces_a_key(tmp_path: Path) -> None:
    path = tmp_path / "box.x25519"
    assert write_private(path, b"first", keep_existing=True)
    assert not write_private(path, b"second", keep_existing=True)
    assert path.read_bytes() == b"first"
    assert [p.name for p in tmp_path.iterdir()] == ["box.x25519"]


def test_every_key_and_seed_writer_leaves_private_files(tmp_path: Path) -> None:
    keys = KeyStore(tmp_path / "keys")
    keys.ensure(["gongan", JUSTICE], valid_from=datetime(2026, 1, 1, tzinfo=UTC))
    keys.rotate("gongan", now=datetime(2026, 2, 1, tzinfo=UTC))  # a retired seed too
    keys.store_key("gongan")
    kinds = {".ed25519", ".x25519", ".store-key"}
    secret = [p for p in (tmp_path / "keys").rglob("*") if p.is_file() and p.suffix in kinds]
    assert {p.suffix for p in secret} == kinds and (tmp_path / "keys" / "root.ed25519") in secret
    assert all(_mode(p) == 0o600 for p in secret), {p.name: oct(_mode(p)) for p in secret}
    ids = generate_identities(["gongan"], tmp_path / "nats")
    copied = copy_identity(tmp_path / "nats", "gongan", tmp_path / "other")
    assert _mode(seed_path(tmp_path / "nats", "gongan")) == 0o600 and _mode(copied) == 0o600
    assert copied.read_bytes() == seed_path(tmp_path / "nats", "gongan").read_bytes() and ids["gongan"].public_key
