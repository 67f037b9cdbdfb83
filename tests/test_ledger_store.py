"""The ledger's storage contract, on SQLite and (marked ``postgres``) PostgreSQL: the same chain either way."""
from __future__ import annotations

import threading
from contextlib import closing
from datetime import timedelta

import pytest

from aggregates.database import Sql, is_postgres
from broker.ledger.store import GENESIS, Ledger, LedgerDamaged, chain_hash
from broker.signing import Signer
from tests.conftest import StoreLocations
from tests.test_signing import T0, make_signer, request_env

SHENPI = make_signer("shenpi")


def item(signer: Signer = SHENPI, minutes: int = 0, seq: int = 1):  # type: ignore[no-untyped-def]
    when = T0 + timedelta(minutes=minutes)
    env = request_env(sender=signer.bureau, when=when)
    return signer.sign(env), env, seq, when + timedelta(seconds=1)


def test_appends_chain_each_entry_to_the_one_before_and_record_an_event_once(store_location: StoreLocations) -> None:
    location = store_location("ledger")
    a, b = item(minutes=1), item(minutes=2)
    with closing(Ledger(location)) as ledger:
        assert ledger.append([a, b, a]) == [1, 2, None]  # the repeat in the same batch is skipped
        assert ledger.append([b]) == [None]  # and in a later one: exactly once
        assert ledger.contains(a[1].id) and len(ledger) == 2
        head = ledger.head
    with closing(Ledger(location)) as again:  # reopened: the head is read back, the chain goes on from it
        assert again.head == head
        assert again.append([item(minutes=3)]) == [3]
        entries = list(again.entries())
    prev = GENESIS
    for n, e in enumerate(entries, 1):
        assert e.pos == n and e.prev_hash == prev
        assert e.hash == chain_hash(prev, e.pos, e.arrived_at, e.stream_seq, e.signed.kid, e.signed.sig, e.signed.body)
        prev = e.hash
    assert entries[0].signed == a[0] and entries[0].case_id == a[1].case and entries[1].number == "20260001"


def test_entries_after_a_position_cases_and_numbers_are_read_back(store_location: StoreLocations) -> None:
    with closing(Ledger(store_location("ledger"))) as ledger:
        items = [item(minutes=i, seq=i) for i in range(5)]
        ledger.append(items)
        assert [e.pos for e in ledger.entries(2)] == [3, 4, 5]
        assert [e.pos for e in ledger.entries(1, limit=2)] == [2, 3]
        gen = ledger.entries()
        assert next(gen).pos == 1
        gen.close()  # left early: the connection goes back clean, the ledger reads on
        assert [e.pos for e in ledger.case(items[3][1].case)] == [4]
        assert set(ledger.find("20260001", "shenpi")) == {i[1].case for i in items}
        assert ledger.find("20260001", "gongan") == []


def test_a_reader_left_early_does_not_keep_later_entries_from_the_next_read(store_location: StoreLocations) -> None:
    """A thread reads through one kept connection (issue 14): a read left half-way must not pin its snapshot."""
    with closing(Ledger(store_location("ledger"))) as ledger:
        ledger.append([item(minutes=i, seq=i) for i in range(3)])
        gen = ledger.entries()
        assert next(gen).pos == 1
        gen.close()
        ledger.append([item(minutes=9, seq=9)])
        assert [e.pos for e in ledger.entries(2)] == [3, 4]
        seen: list[list[int]] = []
        other = threading.Thread(target=lambda: seen.append([e.pos for e in ledger.entries(3)]))
        other.start()
        other.join()
        ledger.append([item(minutes=10, seq=10)])
        assert seen == [[4]] and [e.pos for e in ledger.entries(3)] == [4, 5]


def test_a_checkpoint_is_signed_once_per_head(store_location: StoreLocations) -> None:
    sifa = make_signer("sifa")

    def sign(m: bytes) -> tuple[str, bytes]:
        return sifa.kid, sifa.sign_bytes(m)

    with closing(Ledger(store_location("ledger"))) as ledger:
        assert ledger.checkpoint(sign, T0) is None  # empty: nothing to sign
        ledger.append([item()])
        cp = ledger.checkpoint(sign, T0)
        assert cp is not None and (cp.pos, cp.head) == ledger.head
        assert ledger.checkpoint(sign, T0) is None
        assert ledger.checkpoints() == [cp]


def test_a_changed_entry_is_never_read_as_if_whole(store_location: StoreLocations) -> None:
    location = store_location("ledger")
    with closing(Ledger(location)) as ledger:
        ledger.append([item(minutes=1), item(minutes=2)])
    with closing(Sql(location)) as db:
        db.execute("UPDATE entries SET arrived_at = ? WHERE pos = 2", ("2026-03-02T01:00:00+00:00",))
    with closing(Ledger(location, read_only=True)) as ledger, pytest.raises(LedgerDamaged, match="position 2"):
        list(ledger.entries())


def test_two_writers_never_fork_the_chain_on_postgresql(store_location: StoreLocations) -> None:
    """PostgreSQL lets two ledger services share one ledger: each appends from the head as it is in the table."""
    location = store_location("ledger")
    if not is_postgres(location):
        pytest.skip("a SQLite ledger has one writer, the ledger service holding the file")
    one, two = Ledger(location), Ledger(location)
    try:
        def run(ledger: Ledger, base: int) -> None:
            for i in range(10):
                ledger.append([item(minutes=base + i)])

        threads = [threading.Thread(target=run, args=(one, 0)), threading.Thread(target=run, args=(two, 100))]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        entries = list(one.entries())
        assert [e.pos for e in entries] == list(range(1, 21))
        assert all(b.prev_hash == a.hash for a, b in zip(entries, entries[1:], strict=False))
    finally:
        one.close()
        two.close()


def test_two_ledgers_in_one_database_never_see_each_others_entries(store_location: StoreLocations) -> None:
    with closing(Ledger(store_location("ledger"))) as a, closing(Ledger(store_location("other"))) as b:
        a.append([item()])
        assert len(b) == 0 and list(b.entries()) == [] and b.head == (0, GENESIS)


def test_postgresql_connections_come_from_a_psycopg_3_pool_per_schema(store_location: StoreLocations) -> None:
    """Issue 14: psycopg 3 with a connection pool — the ledger's and the views' seam, and a bureau store's recorder."""
    if store_location.database_url is None:
        pytest.skip("SQLite opens its file: no connection to pool")
    import psycopg
    import psycopg_pool

    from aggregates.clock import SimulatedClock
    from aggregates.database import location_schema, pool
    from aggregates.store import BureauStore

    location = str(store_location("pooled"))
    sessions = set()
    for _ in range(20):  # each Sql takes a connection from the schema's pool and gives it back
        with closing(Sql(location)) as db:
            pid, schema = db.execute("SELECT pg_backend_pid(), current_schema()").fetchone()
            sessions.add(pid)
            assert schema == location_schema(location)
    assert len(sessions) <= 2, sessions  # reused server sessions (the pool keeps one and may have made a second)
    assert isinstance(pool(location), psycopg_pool.ConnectionPool) and psycopg.__version__.startswith("3.")
    store = BureauStore("shenpi", store_location("shenpi"), make_signer("shenpi").sign, SimulatedClock(T0))
    try:
        assert isinstance(store.recorder.datastore.pool, psycopg_pool.ConnectionPool)  # type: ignore[attr-defined]
    finally:
        store.close()
