"""The ledger audit finds every kind of tampering with the file, at the position where it was done."""
from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
from collections.abc import Callable
from contextlib import closing
from datetime import timedelta
from pathlib import Path

import pytest

from aggregates.database import Location, Sql, is_postgres
from broker.ledger.audit import AuditError, AuditReport, Problem, audit, count_entries, render
from broker.ledger.store import Ledger, LedgerDamaged, leaf_hash, link
from broker.signing import KeyRing, Signer
from tests.conftest import StoreLocations
from tests.test_signing import T0, entry, make_signer, request_env

ENTRIES = 20
#: Checkpoints signed after these positions.
CHECKPOINTS = (10, 20)
COLUMNS = "event_id, case_id, number, type, sender, recipient, event_time, arrived_at, stream_seq, kid, sig, body, " \
          "prev_hash, hash"


class Keys:
    """Two bureaus that send, and 区司法局 that signs checkpoints."""

    def __init__(self) -> None:
        self.shenpi = make_signer("shenpi")
        self.gongan = make_signer("gongan")
        self.sifa = make_signer("sifa")

    def ring(self, **shenpi: object) -> KeyRing:
        return KeyRing([entry(self.shenpi, **shenpi), entry(self.gongan), entry(self.sifa)])


def build(path: Location, keys: Keys, n: int = ENTRIES, checkpoints: tuple[int, ...] = CHECKPOINTS,
          checkpoint_signer: Signer | None = None) -> Location:
    """``n`` signed requests, shenpi's at even and gongan's at odd offsets, checkpoints after ``checkpoints``."""
    checkpoint_signer = checkpoint_signer or keys.sifa
    ledger = Ledger(path)
    for i in range(n):
        signer, other = (keys.shenpi, "gongan") if i % 2 == 0 else (keys.gongan, "shenpi")
        when = T0 + timedelta(minutes=i)
        env = request_env(sender=signer.bureau, recipient=other, when=when)
        ledger.append([(signer.sign(env), env, i + 1, when + timedelta(seconds=3))])
        if i + 1 in checkpoints:
            ledger.checkpoint(lambda m: (checkpoint_signer.kid, checkpoint_signer.sign_bytes(m)),
                              when + timedelta(seconds=5))
    ledger.close()
    return path


@pytest.fixture
def keys() -> Keys:
    return Keys()


@pytest.fixture
def ledger_path(store_location: StoreLocations, keys: Keys) -> Location:
    """A ledger of :data:`ENTRIES` entries: a SQLite file, and (marked ``postgres``) a fresh PostgreSQL schema."""
    return build(store_location("ledger"), keys)


def tamper(path: Location, sql: str, *args: object) -> None:
    with closing(Sql(path)) as db:
        db.execute(sql, args)


def flip(path: Location, pos: int, column: str, table: str = "entries") -> None:
    """Flip the lowest bit of the middle byte of one stored column, keeping its type."""
    with closing(Sql(path)) as db, db.transaction():
        value = db.execute(f"SELECT {column} FROM {table} WHERE pos = ?", (pos,)).fetchone()[0]
        data = bytearray(value.encode() if isinstance(value, str) else value)
        data[len(data) // 2] ^= 0x01
        db.execute(f"UPDATE {table} SET {column} = ? WHERE pos = ?",
                   (data.decode() if isinstance(value, str) else bytes(data), pos))


def at(report: AuditReport, pos: int) -> list[Problem]:
    return [p for p in report.problems if p.position == pos]


def test_a_clean_ledger_passes_with_every_entry_signature_and_checkpoint_counted(
        ledger_path: Path, keys: Keys) -> None:
    report = audit(ledger_path, keys.ring(), workers=1)
    assert report.ok and report.first_problem is None and report.problems == []
    assert (report.entries, report.signatures_verified, report.bad) == (ENTRIES, ENTRIES, 0)
    assert (report.checkpoints, report.checkpoints_verified, report.last_checkpoint) == (2, 2, 20)
    with closing(Ledger(ledger_path)) as ledger:
        assert (report.head_position, report.head_hash) == (ledger.head[0], ledger.head[1].hex())


def test_two_worker_processes_pass_a_clean_ledger_and_report_progress_for_every_entry(
        ledger_path: Path, keys: Keys) -> None:
    done: list[int] = []
    report = audit(ledger_path, keys.ring(), workers=2, chunk=3, progress=done.append)
    assert report.ok and report.workers == 2
    assert (report.entries, report.signatures_verified, report.checkpoints_verified) == (ENTRIES, ENTRIES, 2)
    # A SQLite file in ranges of positions (each reported as it ends), PostgreSQL in chunks of 3 rows.
    assert sum(done) == count_entries(ledger_path) == ENTRIES and len(done) > 1
    assert max(done) == 3 if is_postgres(ledger_path) else max(done) <= 5


def test_a_ledger_that_fits_in_one_chunk_is_checked_without_starting_worker_processes(
        ledger_path: Path, keys: Keys) -> None:
    report = audit(ledger_path, keys.ring(), workers=2)
    assert report.ok and report.workers == 1 and report.signatures_verified == ENTRIES


@pytest.mark.parametrize("column", ["body", "sig", "kid", "arrived_at", "prev_hash", "hash"])
def test_one_flipped_byte_in_any_stored_column_is_found_at_its_position(
        ledger_path: Path, keys: Keys, column: str) -> None:
    flip(ledger_path, 5, column)
    report = audit(ledger_path, keys.ring(), workers=1)
    assert not report.ok
    assert report.first_problem is not None and report.first_problem.position == 5
    assert report.first_problem.reason.startswith("position 5: ")
    assert {p.position for p in report.problems} <= {5, 10, 20}


@pytest.mark.parametrize("sql", ["UPDATE entries SET kid = CAST(X'FFFE6B31' AS TEXT) WHERE pos = 5",
                                 "UPDATE entries SET sig = CAST(sig AS TEXT) WHERE pos = 5",
                                 "UPDATE entries SET arrived_at = CAST(arrived_at AS BLOB) WHERE pos = 5"],
                         ids=["kid-not-utf8", "sig-as-text", "arrived-as-blob"])
def test_a_column_stored_as_another_type_is_found_without_stopping_the_audit(
        ledger_path: Path, keys: Keys, sql: str) -> None:
    if is_postgres(ledger_path):
        pytest.skip("PostgreSQL keeps each column's declared type: no value of another type can be stored there")
    tamper(ledger_path, sql)
    report = audit(ledger_path, keys.ring(), workers=1)
    assert report.entries == ENTRIES and report.first_problem is not None
    assert report.first_problem.position == 5
    assert {p.position for p in report.problems} <= {5, 10, 20}


@pytest.mark.parametrize("sql", ["UPDATE entries SET stream_seq = stream_seq + 7 WHERE pos = 5",
                                 "UPDATE entries SET stream_seq = -1 WHERE pos = 5",
                                 "UPDATE entries SET arrived_at = '2026-01-01T00:00:00+00:00' WHERE pos = 5"],
                         ids=["stream-seq", "stream-seq-negative", "arrival-backdated"])
def test_a_changed_stream_sequence_or_arrival_breaks_the_entrys_hash(ledger_path: Path, keys: Keys, sql: str) -> None:
    tamper(ledger_path, sql)  # decision 49: every stored column is hashed or checked against the signed body
    report = audit(ledger_path, keys.ring(), workers=1)
    assert report.first_problem is not None and report.first_problem.position == 5
    assert report.first_problem.kind == "changed", report.problems
    with pytest.raises(LedgerDamaged, match="position 5"):
        list(Ledger(ledger_path, read_only=True).entries())  # the views and replay refuse it too


def test_a_changed_body_breaks_its_hash_and_its_signature_and_nothing_after_it(
        ledger_path: Path, keys: Keys) -> None:
    flip(ledger_path, 5, "body")
    report = audit(ledger_path, keys.ring(), workers=1)
    assert report.first_problem == Problem(position=5, kind="changed",
                                           reason="position 5: hash does not match its contents (changed entry)")
    assert {p.kind for p in at(report, 5)} == {"changed", "bad-signature"}
    # The checkpoints signed after it no longer match the chain; entry 6 still links to entry 5 as stored.
    assert [(p.position, p.kind) for p in report.problems[2:]] == [(10, "checkpoint-head"), (20, "checkpoint-head")]
    assert report.bad == 3 and report.signatures_verified == ENTRIES - 1


def test_a_changed_signature_is_reported_as_a_bad_signature_at_its_position(ledger_path: Path, keys: Keys) -> None:
    flip(ledger_path, 5, "sig")
    report = audit(ledger_path, keys.ring(), workers=1)
    assert report.first_problem is not None and report.first_problem.position == 5
    bad_sig = [p for p in at(report, 5) if p.kind == "bad-signature"]
    assert bad_sig and "does not verify" in bad_sig[0].reason
    assert report.signatures_verified == ENTRIES - 1


def test_a_changed_prev_hash_alone_is_named_as_such(ledger_path: Path, keys: Keys) -> None:
    flip(ledger_path, 5, "prev_hash")
    report = audit(ledger_path, keys.ring(), workers=1)
    assert report.first_problem is not None and report.first_problem.kind == "prev-hash"
    assert "prev_hash was changed" in report.first_problem.reason
    # Contents are intact, so the chain and the checkpoints over it still hold.
    assert report.bad == 1 and report.checkpoints_verified == 2


def test_a_deleted_entry_is_found_at_its_position_and_breaks_the_later_checkpoints(
        ledger_path: Path, keys: Keys) -> None:
    tamper(ledger_path, "DELETE FROM entries WHERE pos = 7")
    report = audit(ledger_path, keys.ring(), workers=1)
    assert report.first_problem == Problem(
        position=7, kind="missing", reason="position 7: missing, the next entry is at 8 (1 entry removed)")
    assert report.entries == ENTRIES - 1
    assert [(p.position, p.kind) for p in report.problems[1:]] == [(10, "checkpoint-head"), (20, "checkpoint-head")]


def test_entries_cut_off_the_end_are_found_from_the_checkpoint_past_it(ledger_path: Path, keys: Keys) -> None:
    tamper(ledger_path, "DELETE FROM entries WHERE pos > 18")
    report = audit(ledger_path, keys.ring(), workers=1)
    assert report.first_problem is not None
    assert (report.first_problem.position, report.first_problem.kind) == (20, "checkpoint-position")
    assert "ledger ends at position 18" in report.first_problem.reason


def test_two_entries_swapped_in_place_are_found_at_the_first_of_them(ledger_path: Path, keys: Keys) -> None:
    with closing(Sql(ledger_path)) as db, db.transaction():
        third, fourth = (db.execute(f"SELECT {COLUMNS} FROM entries WHERE pos = ?", (p,)).fetchone() for p in (3, 4))
        db.execute("DELETE FROM entries WHERE pos IN (3, 4)")
        marks = ",".join("?" * (len(third) + 1))
        db.execute(f"INSERT INTO entries (pos, {COLUMNS}) VALUES ({marks})", (3, *fourth))
        db.execute(f"INSERT INTO entries (pos, {COLUMNS}) VALUES ({marks})", (4, *third))
    report = audit(ledger_path, keys.ring(), workers=1)
    assert report.first_problem is not None
    assert (report.first_problem.position, report.first_problem.kind) == (3, "prev-hash")
    assert "position 3: prev_hash does not match position 2" in report.first_problem.reason
    assert report.signatures_verified == ENTRIES  # each entry is still what its sender signed


@pytest.mark.parametrize(("column", "kinds"), [("head", {"checkpoint-head", "checkpoint-signature"}),
                                               ("sig", {"checkpoint-signature"}),
                                               ("sealed_at", {"checkpoint-signature"})])
def test_a_changed_checkpoint_is_found_while_the_entries_still_pass(
        ledger_path: Path, keys: Keys, column: str, kinds: set[str]) -> None:
    flip(ledger_path, 10, column, table="checkpoints")
    report = audit(ledger_path, keys.ring(), workers=1)
    assert not report.ok and report.first_problem is not None and report.first_problem.position == 10
    assert {p.kind for p in report.problems} == kinds
    assert (report.signatures_verified, report.checkpoints_verified, report.bad) == (ENTRIES, 1, 1)


def test_a_checkpoint_signed_with_another_bureaus_key_is_refused(tmp_path: Path, keys: Keys) -> None:
    path = build(tmp_path / "ledger.db", keys, checkpoint_signer=keys.gongan)
    report = audit(path, keys.ring(), workers=1)
    assert report.first_problem is not None and report.first_problem.kind == "checkpoint-key"
    assert "signed with gongan's key" in report.first_problem.reason
    assert report.checkpoints_verified == 0 and report.signatures_verified == ENTRIES


def test_a_changed_index_column_is_found_although_the_chain_holds(ledger_path: Path, keys: Keys) -> None:
    tamper(ledger_path, "UPDATE entries SET number = '20269999' WHERE pos = 6")
    report = audit(ledger_path, keys.ring(), workers=1)
    assert report.problems == [Problem(
        position=6, kind="index",
        reason="position 6: column number is '20269999' but the signed body says '20260001'")]
    assert report.checkpoints_verified == 2


def test_signatures_after_their_keys_revocation_fail_and_earlier_ones_pass(ledger_path: Path, keys: Keys) -> None:
    # shenpi signs at offsets 0, 2, 4 … (positions 1, 3, 5 …), one a minute; its key is revoked at offset 12.
    ring = keys.ring(revoked_at=T0 + timedelta(minutes=12), revoked_reason="key leaked")
    report = audit(ledger_path, ring, workers=1)
    assert [(p.position, p.kind) for p in report.problems] == [(p, "key-not-valid") for p in (13, 15, 17, 19)]
    assert report.first_problem is not None and "revoked" in report.first_problem.reason
    assert report.signatures_verified == ENTRIES - 4 and report.checkpoints_verified == 2


def test_worker_processes_find_exactly_what_one_process_finds(ledger_path: Path, keys: Keys) -> None:
    flip(ledger_path, 4, "body")
    tamper(ledger_path, "DELETE FROM entries WHERE pos = 9")
    tamper(ledger_path, "UPDATE entries SET sender = 'zhifa' WHERE pos = 16")
    ring = keys.ring(revoked_at=T0 + timedelta(minutes=16))
    one, two = audit(ledger_path, ring, workers=1), audit(ledger_path, ring, workers=2, chunk=4)
    assert two.first_problem == one.first_problem == Problem(
        position=4, kind="changed", reason="position 4: hash does not match its contents (changed entry)")
    assert (two.problems, two.bad, two.signatures_verified) == (one.problems, one.bad, one.signatures_verified)
    assert {(p.position, p.kind) for p in two.problems} >= {(9, "missing"), (16, "index"), (17, "key-not-valid")}


@pytest.mark.parametrize("damage", [
    "UPDATE entries SET prev_hash = zeroblob(32) WHERE pos = 1",  # the chain broken at the start
    "DELETE FROM entries WHERE pos BETWEEN 9 AND 11",             # across a checkpoint and ranges
    "DELETE FROM entries WHERE pos >= 19",                        # the end cut, checkpoint 20 beyond it
    "DELETE FROM entries WHERE pos = 1",
    "UPDATE entries SET hash = zeroblob(32) WHERE pos = 10",      # a changed entry's hash, then the chain
    "UPDATE entries SET body = CAST(body AS TEXT) WHERE pos = 12",  # a wrong column type
    "UPDATE entries SET event_time = CAST(x'ff' AS TEXT) WHERE pos = 7",  # text that is not UTF-8
    "UPDATE checkpoints SET pos = 14 WHERE pos = 10",
    "INSERT INTO entries SELECT 0, 'x', case_id, number, type, sender, recipient, event_time, arrived_at, kid, "
    "sig, body, prev_hash, hash, stream_seq FROM entries WHERE pos = 2",  # a position before the first
])
def test_ranges_read_by_worker_processes_join_into_what_one_walk_finds(
        tmp_path: Path, keys: Keys, damage: str) -> None:
    # SQLite only: there the workers read their own ranges of positions (PostgreSQL's rows come in chunks).
    ledger_path = build(tmp_path / "ledger.db", keys)
    flip(ledger_path, 5, "body")
    tamper(ledger_path, damage)
    one = audit(ledger_path, keys.ring(), workers=1)
    for chunk in (3, 4, 7):
        two = audit(ledger_path, keys.ring(), workers=2, chunk=chunk)
        assert (two.problems, two.bad, two.signatures_verified, two.checkpoints_verified) == (
            one.problems, one.bad, one.signatures_verified, one.checkpoints_verified)
        assert (two.entries, two.head_position, two.head_hash) == (one.entries, one.head_position, one.head_hash)
    assert not one.ok and any(p.position == 5 and p.kind == "changed" for p in one.problems)


def test_the_audit_reads_a_ledger_that_is_open_and_leaves_the_file_unchanged(tmp_path: Path, keys: Keys) -> None:
    path = build(tmp_path / "ledger.db", keys)
    before = path.read_bytes()
    ledger = Ledger(path)  # an open writer, as the ledger service keeps it
    try:
        assert audit(path, keys.ring(), workers=1).ok
    finally:
        ledger.close()
    assert path.read_bytes() == before


def test_the_text_report_names_the_verdict_and_the_first_problem(ledger_path: Path, keys: Keys) -> None:
    assert render(audit(ledger_path, keys.ring(), workers=1)).startswith("ledger audit OK: ")
    flip(ledger_path, 5, "arrived_at")
    text = render(audit(ledger_path, keys.ring(), workers=1))
    assert text.startswith("ledger audit FAILED: ")
    assert "first problem: position 5: hash does not match its contents (changed entry)" in text
    zh = render(audit(ledger_path, keys.ring(), workers=1), "zh")
    assert zh.startswith("账本审计未通过：") and "首个问题：position 5: hash does not match" in zh
    assert "  已验签名      " in zh and "ledger audit" not in zh and "…" not in zh


def other_database(path: Path) -> None:
    with closing(sqlite3.connect(path)) as db, db:
        db.execute("CREATE TABLE t (x)")


@pytest.mark.parametrize("make", [lambda p: None, lambda p: p.write_bytes(b"not a database at all" * 100),
                                  other_database], ids=["missing", "not-sqlite", "other-database"])
def test_a_file_that_is_not_a_ledger_is_one_clear_error(tmp_path: Path, keys: Keys,
                                                        make: Callable[[Path], object]) -> None:
    path = tmp_path / "ledger.db"
    make(path)
    with pytest.raises(AuditError):
        audit(path, keys.ring(), workers=1)


def test_the_replay_benchmark_completes_on_a_tiny_ledger_and_reuses_it(tmp_path: Path) -> None:
    def run() -> dict[str, object]:
        proc = subprocess.run([sys.executable, "-m", "bench.replay", "--json", "--events", "900",
                               "--replays", "20", "--dir", str(tmp_path)], capture_output=True, text=True, timeout=240)
        assert proc.returncode == 0, proc.stderr
        result: dict[str, object] = json.loads(proc.stdout)
        return result

    first, second = run(), run()
    assert first["ok"] is True and first["events"] == 900
    assert first["build"]["cached"] is False and second["build"]["cached"] is True  # type: ignore[index]
    assert first["audit"]["ok"] is True and first["audit"]["entries"] == 900  # type: ignore[index]
    # Every request is one SLA row: the rebuild folded every entry of the ledger.
    assert first["rebuild"]["sla"]["entries"] == 900  # type: ignore[index]


# -- a file rebuilt without the uniqueness of event ids (issue 15, point 4) -------------------------


def _without_unique_event_ids(path: Location) -> None:
    """Rebuild the entries table as it is, but without UNIQUE on event_id: what a forger needs first."""
    if is_postgres(path):
        with closing(Sql(path)) as pg:
            pg.execute("ALTER TABLE entries DROP CONSTRAINT entries_event_id_key")
        return
    with closing(sqlite3.connect(path)) as db, db:
        columns = [r[1] for r in db.execute("PRAGMA table_info(entries)")]
        sql = db.execute("SELECT sql FROM sqlite_master WHERE name = 'entries'").fetchone()[0]
        db.execute("ALTER TABLE entries RENAME TO old_entries")
        db.execute(sql.replace("NOT NULL UNIQUE", "NOT NULL"))
        db.execute(f"INSERT INTO entries SELECT {', '.join(columns)} FROM old_entries")
        db.execute("DROP TABLE old_entries")


def _copy_into_tail(path: Path, source: int, at_pos: int) -> None:
    """Put a copy of the validly signed entry at ``source`` at ``at_pos``, moving later ones up, and re-chain."""
    with closing(sqlite3.connect(path)) as db, db:
        for (pos,) in db.execute("SELECT pos FROM entries WHERE pos >= ? ORDER BY pos DESC", (at_pos,)).fetchall():
            db.execute("UPDATE entries SET pos = pos + 1 WHERE pos = ?", (pos,))
        db.execute("INSERT INTO entries SELECT ?, event_id, case_id, number, type, sender, recipient, event_time, "
                   "arrived_at, stream_seq, kid, sig, body, prev_hash, hash FROM entries WHERE pos = ?",
                   (at_pos, source))
        prev = db.execute("SELECT hash FROM entries WHERE pos = ?", (at_pos - 1,)).fetchone()[0]
        rows = db.execute("SELECT pos, arrived_at, kid, sig, body, stream_seq FROM entries WHERE pos >= ? ORDER BY pos",
                          (at_pos,)).fetchall()
        for pos, arrived_at, kid, sig, body, seq in rows:
            new = link(prev, leaf_hash(pos, arrived_at, kid, sig, body, stream_seq=seq))
            db.execute("UPDATE entries SET prev_hash = ?, hash = ? WHERE pos = ?", (prev, new, pos))
            prev = new


@pytest.mark.parametrize("where", ["appended", "inserted"])
def test_a_copy_of_an_earlier_event_in_the_unsealed_tail_of_a_rebuilt_file_is_found(
        tmp_path: Path, keys: Keys, where: str) -> None:
    path = build(tmp_path / "ledger.db", keys, n=25)  # checkpoints at 10 and 20: 21–25 are unsealed
    _without_unique_event_ids(path)
    at_pos = 26 if where == "appended" else 22
    _copy_into_tail(path, 3, at_pos)
    report = audit(path, keys.ring(), workers=1)
    assert not report.ok and report.entries == 26 and report.checkpoints_verified == 2
    kinds = {(p.position, p.kind) for p in report.problems}
    assert kinds == {(0, "schema"), (at_pos, "duplicate")}, report.problems
    assert "already recorded at position 3" in at(report, at_pos)[0].reason
    assert "does not keep event_id unique" in at(report, 0)[0].reason


def test_a_file_rebuilt_without_the_uniqueness_of_event_ids_fails_even_before_anything_is_added(
        ledger_path: Path, keys: Keys) -> None:
    _without_unique_event_ids(ledger_path)
    report = audit(ledger_path, keys.ring(), workers=1)
    assert not report.ok and [p.kind for p in report.problems] == ["schema"]


def test_a_ledger_table_with_other_columns_is_named(ledger_path: Path, keys: Keys) -> None:
    tamper(ledger_path, "ALTER TABLE entries ADD COLUMN note TEXT")
    report = audit(ledger_path, keys.ring(), workers=1)
    assert not report.ok and "table entries has other columns" in report.problems[0].reason
    assert "note" in report.problems[0].reason


def test_the_audit_command_without_a_keys_directory_says_what_is_missing(tmp_path: Path, keys: Keys) -> None:
    """Not "FAILED … bad 20" as if every entry were forged."""
    from tests.test_cli import run
    from xiezhu.settings import Settings

    settings = Settings(data_dir=tmp_path / "data")
    settings.ledger_path.parent.mkdir(parents=True)
    build(settings.ledger_path, keys)
    result = run("audit", data_dir=settings.data_dir, check=False)
    assert result.returncode == 1
    assert result.stderr.startswith("错误：") and "中没有信任列表" in result.stderr
    assert "FAILED" not in result.stdout + result.stderr
    assert not settings.keys_dir.exists()  # and nothing was made
