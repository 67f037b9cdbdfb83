"""A bureau's own store is encrypted at rest with its store key (decision 24)."""
from __future__ import annotations

import base64
import contextlib
import json
import re
import sqlite3
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import pytest

from agencies.trust.keys import KeyStore, KeyStoreError
from aggregates.cipher import AeadCipher, StoreKeyError, StoreUndecryptable
from aggregates.clock import SimulatedClock
from aggregates.database import Location, Sql, is_postgres
from aggregates.store import BureauStore, NumberSeries
from schemas.assistance import Applicant, CommitmentItem, Matter
from schemas.errors import XiezhuError
from tests.conftest import StoreLocations
from tests.test_signing import make_signer
from xiezhu.bootstrap import open_store
from xiezhu.settings import Settings

NAME = "张三丰"
ID_NUMBER = "370405199001011234"
COMMITMENT = "本人承诺近三年无违法违规经营记录"
PERSONAL = (NAME, ID_NUMBER, COMMITMENT)
KEY, OTHER_KEY = bytes(range(32)), bytes(range(1, 33))
SIGNER = make_signer("shenpi")


def clock() -> SimulatedClock:
    return SimulatedClock(datetime(2026, 9, 21, 1, tzinfo=UTC))


def open_at(path: Location, key: bytes | None) -> BureauStore:
    return BureauStore("shenpi", path, SIGNER.sign, clock(), store_key=key)


def send(store: BureauStore) -> str:
    return store.assistance.request(assistor="gongan",
                                    applicant=Applicant(kind="person", name=NAME, id_number=ID_NUMBER),
                         matter=Matter(code="X1", name="食品经营许可"), applied_on=date(2026, 9, 20),
                         items=[CommitmentItem(no=1, text=COMMITMENT, check="police.no-criminal-record")]).case


def raw(path: Location) -> bytes:
    """The store's bytes at rest: the SQLite file and its write-ahead log, if there is one; on PostgreSQL
    every value of every row of every table in the store's schema."""
    if is_postgres(path):
        with contextlib.closing(Sql(path)) as db:
            tables = [r[0] for r in db.execute("SELECT table_name::text FROM information_schema.tables "
                                               "WHERE table_schema = current_schema()")]
            values = [v for t in tables for row in db.execute(f"SELECT * FROM {t}") for v in row]
        return b"\n".join(v if isinstance(v, bytes) else str(v).encode() for v in values)
    assert isinstance(path, Path)
    wal = path.with_name(path.name + "-wal")
    return path.read_bytes() + (wal.read_bytes() if wal.exists() else b"")


def visible(data: bytes, text: str) -> bool:
    """Whether ``text`` can be read off ``data``: as UTF-8, JSON-escaped, or inside a base64 run.

    Envelope bodies are stored base64-encoded, so a plain substring search alone would
    find nothing even in an unencrypted store.
    """
    needles = (text.encode(), json.dumps(text)[1:-1].encode())
    if any(n in data for n in needles):
        return True
    for run in re.findall(rb"[A-Za-z0-9+/]{16,}={0,2}", data):
        decoded = base64.b64decode(run[: len(run) - len(run) % 4] or b"", validate=False)
        if any(n in decoded for n in needles):
            return True
    return False


def rows(path: Location) -> list[tuple[Any, ...]]:
    """The store's events as stored (eventsourcing's table: ``stored_events``, on PostgreSQL ``bureaustore_events``)."""
    if is_postgres(path):
        with contextlib.closing(Sql(path)) as db:
            return [tuple(r) for r in db.execute("SELECT originator_id::text, originator_version, topic, state "
                                                 "FROM bureaustore_events ORDER BY notification_id")]
    with contextlib.closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True)) as db:
        return db.execute("SELECT originator_id, originator_version, topic, state FROM stored_events "
                          "ORDER BY rowid").fetchall()


def tamper_last_case_event(path: Location) -> None:
    """Flip the last bit of the newest assistance case event's stored (encrypted) state."""
    table, order = ("bureaustore_events", "notification_id") if is_postgres(path) else ("stored_events", "rowid")
    with contextlib.closing(Sql(path)) as db, db.transaction():
        key, state = db.execute(f"SELECT {order}, state FROM {table} WHERE topic LIKE '%AssistanceCase%' "
                                f"ORDER BY {order} DESC LIMIT 1").fetchone()
        state = bytes(state)
        db.execute(f"UPDATE {table} SET state = ? WHERE {order} = ?", (state[:-1] + bytes([state[-1] ^ 1]), key))


def shown_chain(e: BaseException) -> list[BaseException]:
    """The exceptions a traceback of ``e`` would show."""
    out: list[BaseException] = []
    cur: BaseException | None = e
    while cur is not None:
        out.append(cur)
        cur = cur.__cause__ or (None if cur.__suppress_context__ else cur.__context__)
    return out


# -- (a) nothing personal on disk; the same key reads it back ---------------------------------------


def test_without_a_store_key_the_personal_data_is_readable_on_disk(store_location: StoreLocations) -> None:
    """The control: the check below finds the data when the store is not encrypted."""
    path = store_location("plain")
    store = open_at(path, None)
    send(store)
    assert all(visible(raw(path), text) for text in PERSONAL)
    store.close()


def test_the_store_file_holds_no_personal_data_and_reads_back_with_its_key(store_location: StoreLocations) -> None:
    path = store_location("events")
    store = open_at(path, KEY)
    case = send(store)
    on_disk = raw(path)
    assert [text for text in PERSONAL if visible(on_disk, text)] == []
    store.close()
    assert [text for text in PERSONAL if visible(raw(path), text)] == []
    assert all(AeadCipher.KEY_SIZE < len(state) for *_, state in rows(path))

    again = open_at(path, KEY)
    st = again.assistance.case(case).state
    assert (st.request.applicant.name, st.request.applicant.id_number) == (NAME, ID_NUMBER)
    assert [i.text for i in st.request.items] == [COMMITMENT]
    assert st.number == "20260001"
    again.close()


# -- (b) another key: a clear error, and nothing changes --------------------------------------------


def test_another_key_is_refused_at_open_with_a_clear_error_and_changes_nothing(store_location: StoreLocations) -> None:
    path = store_location("events")
    store = open_at(path, KEY)
    case = send(store)
    store.close()
    before = rows(path)

    with pytest.raises(StoreUndecryptable, match="cannot be decrypted with this bureau's store key") as caught:
        open_at(path, OTHER_KEY)
    assert caught.value.code == "store.undecryptable"
    assert all(isinstance(e, XiezhuError) for e in shown_chain(caught.value))  # no nacl error for an operator
    assert str(caught.value).startswith("shenpi's store")

    assert rows(path) == before
    again = open_at(path, KEY)
    assert again.assistance.case(case).state.request.applicant.name == NAME
    again.close()


def test_an_encrypted_store_opened_without_its_key_says_so(store_location: StoreLocations) -> None:
    path = store_location("events")
    store = open_at(path, KEY)
    send(store)
    store.close()
    before = rows(path)
    with pytest.raises(StoreUndecryptable, match="without its store key"):
        open_at(path, None)
    assert rows(path) == before


def test_a_tampered_event_is_the_same_clear_error_when_it_is_read(store_location: StoreLocations) -> None:
    path = store_location("events")
    store = open_at(path, KEY)
    send(store)
    second = send(store)
    store.close()
    tamper_last_case_event(path)

    again = open_at(path, KEY)  # the first event is intact: it opens
    with pytest.raises(StoreUndecryptable, match="cannot be decrypted") as caught:
        again.assistance.case(second)
    assert all(isinstance(e, XiezhuError) for e in shown_chain(caught.value))
    again.close()


@pytest.mark.parametrize("key", [b"", b"short", bytes(33)])
def test_a_malformed_store_key_is_refused(tmp_path: Path, key: bytes) -> None:
    with pytest.raises(StoreKeyError, match="store key"):
        open_at(tmp_path / "events.db", key)


# -- (c) the key file --------------------------------------------------------------------------------


def test_the_store_key_file_is_made_private_once_and_reused(tmp_path: Path) -> None:
    keys = KeyStore(tmp_path / "keys")
    key = keys.store_key("shenpi")
    path = tmp_path / "keys" / "shenpi.store-key"
    assert len(key) == 32 and path.read_bytes() == key
    assert path.stat().st_mode & 0o777 == 0o600
    assert keys.store_key("shenpi") == key
    assert KeyStore(tmp_path / "keys").store_key("shenpi") == key
    assert keys.store_key("gongan") != key
    assert sorted(p.name for p in (tmp_path / "keys").glob("*store-key*")) == ["gongan.store-key",
                                                                              "shenpi.store-key"]


def test_a_store_key_readable_by_others_is_refused(tmp_path: Path) -> None:
    keys = KeyStore(tmp_path / "keys")
    key = keys.store_key("shenpi")
    path = tmp_path / "keys" / "shenpi.store-key"
    path.chmod(0o644)
    with pytest.raises(KeyStoreError, match=r"readable by others \(mode 644\); chmod 600"):
        keys.store_key("shenpi")
    assert path.read_bytes() == key  # refused, not replaced


def test_a_damaged_store_key_is_refused_not_replaced(tmp_path: Path) -> None:
    keys = KeyStore(tmp_path / "keys")
    keys.store_key("shenpi")
    path = tmp_path / "keys" / "shenpi.store-key"
    path.write_bytes(b"short")
    with pytest.raises(KeyStoreError, match="not a 32-byte store key"):
        keys.store_key("shenpi")
    assert path.read_bytes() == b"short"


def settings_for(tmp_path: Path, store_location: StoreLocations) -> Settings:
    """A data directory, its bureau stores in fresh PostgreSQL schemas on the PostgreSQL side of the contract."""
    if store_location.database_url is None:
        return Settings(data_dir=tmp_path / "data")
    prefix = f"t{store_location.tag}"
    store_location.schemas.append(prefix)  # every schema under the prefix is dropped afterwards
    return Settings(data_dir=tmp_path / "data", database_url=f"{store_location.database_url}?schema={prefix}")


def test_the_composition_root_opens_each_bureau_store_with_its_store_key(tmp_path: Path,
                                                                        store_location: StoreLocations) -> None:
    settings = settings_for(tmp_path, store_location)
    keys = KeyStore(settings.keys_dir)
    keys.ensure(["shenpi"], valid_from=datetime(2026, 1, 1, tzinfo=UTC))
    store = open_store(settings, keys, "shenpi", clock())
    assert isinstance(store.mapper.cipher, AeadCipher)
    store.save(NumberSeries.begin("shenpi", 2026))
    store.close()
    with pytest.raises(StoreUndecryptable):  # written under that key, the store is nothing without it
        open_at(settings.store_location("shenpi"), OTHER_KEY)
    assert (settings.keys_dir / "shenpi.store-key").stat().st_mode & 0o777 == 0o600


def test_a_store_whose_key_is_missing_is_refused_and_no_new_key_is_made(tmp_path: Path,
                                                                       store_location: StoreLocations) -> None:
    """A read command used to write a fresh random key, then fail saying the key "was replaced".
    On PostgreSQL the store is known to exist by its table in its schema, not by a file."""
    settings = settings_for(tmp_path, store_location)
    keys = KeyStore(settings.keys_dir)
    keys.ensure(["shenpi"], valid_from=datetime(2026, 1, 1, tzinfo=UTC))
    store = open_store(settings, keys, "shenpi", clock())
    store.save(NumberSeries.begin("shenpi", 2026))
    store.close()
    key_file = settings.keys_dir / "shenpi.store-key"
    key_file.unlink()
    with pytest.raises(KeyStoreError, match="no store key .*restore it from a backup"):
        open_store(settings, keys, "shenpi", clock())
    assert not key_file.exists()


def test_the_views_key_is_not_made_again_once_a_view_was_written_with_it(tmp_path: Path) -> None:
    from aggregates.registry import JUSTICE
    from xiezhu.cli.common import view_key

    settings = Settings(data_dir=tmp_path / "data")
    first = view_key(settings)  # no view yet: made
    settings.credit_path.parent.mkdir(parents=True, exist_ok=True)
    settings.credit_path.write_bytes(b"")  # a view exists now, written with that key
    assert view_key(settings) == first
    (settings.keys_dir / f"{JUSTICE}.store-key").unlink()
    with pytest.raises(KeyStoreError, match="no store key"):
        view_key(settings)
    assert not (settings.keys_dir / f"{JUSTICE}.store-key").exists()
