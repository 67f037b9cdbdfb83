"""The bureau registry of 附件1 and the key store on disk."""
from __future__ import annotations

import os
from datetime import UTC, datetime
from pathlib import Path

import pytest

from agencies.trust.keys import KeyStore, KeyStoreError
from aggregates.registry import Registry, RegistryError

# Every unit named in 附件1 (领导小组成员名单) of the seed, plus the two the procedure needs.
ATTACHMENT_1 = [
    "区政府办公室", "区委编办", "区发展改革局", "区教育和体育局", "区科技局", "区工业和信息化局", "区民政局",
    "区司法局", "区财政局", "区人力资源社会保障局", "区自然资源局", "区住房城乡建设局", "区交通运输局",
    "区城乡水务局", "区农业农村局", "区商务和投资促进局", "区文化和旅游局", "区卫生健康局", "区退役军人局",
    "区应急管理局", "区审计局", "区审批服务局", "区市场监管局", "区综合行政执法局", "区统计局", "区医保局",
    "区信访局", "区生态环境分局", "区公安分局", "张山子镇人民政府", "涧头集镇人民政府", "运河街道办事处",
    "邳庄镇人民政府", "马兰屯镇人民政府", "泥沟镇人民政府",
]
EXTRA = ["区大数据局", "枣庄市司法局"]


def test_every_unit_of_attachment_1_is_registered_once_with_a_stable_code() -> None:
    reg = Registry.load()
    names = [b.name for b in reg]
    assert sorted(names) == sorted(ATTACHMENT_1 + EXTRA)
    assert reg["gongan"].name == "区公安分局" and reg["sifa"].name == "区司法局"
    assert reg["yunhe"].kind == "street" and reg["nigou"].kind == "town" and reg["shi-sifa"].kind == "city"


def test_a_registry_file_with_a_repeated_or_bad_code_is_refused(tmp_path: Path) -> None:
    twice = tmp_path / "twice.toml"
    twice.write_text('[[bureau]]\ncode="a1"\nname="甲"\nkind="town"\n[[bureau]]\ncode="a1"\nname="乙"\nkind="town"\n',
                     encoding="utf-8")
    with pytest.raises(RegistryError, match="twice"):
        Registry.load(twice)
    bad = tmp_path / "bad.toml"
    bad.write_text('[[bureau]]\ncode="Gong An"\nname="甲"\nkind="town"\n', encoding="utf-8")
    with pytest.raises(RegistryError, match="lower-case"):
        Registry.load(bad)


def test_unknown_codes_are_a_clear_error() -> None:
    with pytest.raises(RegistryError, match="unknown bureau code 'nope'"):
        Registry.load()["nope"]


def test_keys_are_private_to_their_owner_and_listed_in_the_trust_list(tmp_path: Path) -> None:
    ks = KeyStore(tmp_path / "keys")
    ks.ensure(["gongan", "shenpi"], valid_from=datetime(2026, 1, 1, tzinfo=UTC))
    key_file = tmp_path / "keys" / "gongan.ed25519"
    assert oct(key_file.stat().st_mode & 0o777) == "0o600"
    signer = ks.signer("gongan")
    entry = ks.ring().entry(signer.kid)
    assert entry is not None and entry.bureau == "gongan" and entry.public_key == signer.public_key
    before = ks.trust_file.read_bytes()
    ks.ensure(["gongan", "shenpi"], valid_from=datetime(2026, 2, 1, tzinfo=UTC))
    assert ks.trust_file.read_bytes() == before  # existing keys are kept, not regenerated


def test_a_key_file_readable_by_others_is_refused(tmp_path: Path) -> None:
    ks = KeyStore(tmp_path / "keys")
    ks.ensure(["gongan"], valid_from=datetime(2026, 1, 1, tzinfo=UTC))
    os.chmod(tmp_path / "keys" / "gongan.ed25519", 0o644)
    with pytest.raises(KeyStoreError, match="chmod 600"):
        ks.signer("gongan")
    with pytest.raises(KeyStoreError, match="keys init"):
        ks.signer("shenpi")
