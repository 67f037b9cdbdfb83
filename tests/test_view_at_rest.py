"""Decision 26: the read models on 区司法局's machine keep applicants' personal data only as keyed
pseudonyms and encrypted columns.  The raw bytes of credit.db and commitments.db (and their WAL)
hold no ID number, no name and no commitment text, while every look-up still works."""
from __future__ import annotations

import json
import os
import sqlite3
import subprocess
from collections.abc import Iterator
from contextlib import closing
from pathlib import Path

import pytest

from agencies.credit_china import DirectoryCreditChina, deliver_pending
from agencies.trust.keys import KeyStore
from aggregates.database import Location, Sql, is_postgres
from aggregates.registry import JUSTICE
from broker.ledger.store import Ledger
from projections.commitments import TABLE, CommitmentView
from projections.credit import CASES, OUTBOX, STEPS, CreditView, CreditViewError
from projections.encrypted_columns import KEY_CHECKS, EncryptedColumns, ViewKeyMismatch, ViewKeyMissing
from schemas.envelope import decode_envelope
from schemas.privacy import mask_id
from tests.conftest import StoreLocations
from tests.helpers import xiezhu_here as xiezhu
from tests.test_credit import COMPANY, ITEMS, VIEW_KEY, World
from tests.test_store import APPLICANT
from xiezhu.settings import Settings

OTHER_KEY = bytes(range(1, 33))
GROUNDS = "承诺书系他人冒名签署"
#: What must never be readable in a view's files.
PERSONAL = (APPLICANT.id_number, APPLICANT.name, COMPANY.id_number, *(i.text for i in ITEMS), GROUNDS)
#: What the commitment-case view holds at all (it keeps no objection grounds once reviewed, nor the company's).
IN_CASES = (APPLICANT.id_number, APPLICANT.name, *(i.text for i in ITEMS))


class Views(World):
    """test_credit's world, with the commitment-case view beside the credit view."""

    def __init__(self, tmp_path: Path, where: StoreLocations | None = None) -> None:
        super().__init__(tmp_path, where)
        self.credit_path, self.cases_path = tmp_path / "credit.db", tmp_path / "commitments.db"
        self.cases = CommitmentView(self.beside(self.cases_path), view_key=VIEW_KEY)

    def follow(self) -> None:
        self.relay()
        self.cases.follow(self.ledger)

    def demo_like(self) -> tuple[str, str]:
        """A fulfilled company, a person found false twice: one record objected to and kept, one repaired."""
        self.fulfilled(COMPANY)
        kept, _ = self.recorded()
        repaired, _ = self.recorded()
        self.follow()
        self.store.commitments.raise_objection(kept, GROUNDS)
        self.follow()
        self.store.commitments.review_objection(kept, "confirm", "经核实系本人签署")
        self.store.commitments.apply_repair(repaired, "已交回许可证原件")
        self.follow()
        self.store.commitments.approve_repair(repaired, "整改到位")
        self.follow()
        return kept, repaired


@pytest.fixture
def views(tmp_path: Path) -> Iterator[Views]:
    w = Views(tmp_path)
    yield w
    w.ledger.close()


def at_rest(path: Path) -> bytes:
    """Every byte of a SQLite file as it lies on disk: the file, its WAL and its shared memory."""
    return b"".join(p.read_bytes() for p in sorted(path.parent.glob(path.name + "*")))


def readable(path: Path, texts: tuple[str, ...] = PERSONAL) -> set[str]:
    raw = at_rest(path)
    return {t for t in texts if t.encode() in raw}


def dump(path: Path) -> list[str]:
    """The file's whole logical content (tables, rows, blobs in hex)."""
    con = sqlite3.connect(path)
    try:
        return list(con.iterdump())
    finally:
        con.close()


def in_clear(monkeypatch: pytest.MonkeyPatch, *, text: bool = False) -> None:
    """Make the views write what they would encrypt in clear (``text``: as the views before decision 26 did)."""
    monkeypatch.setattr(EncryptedColumns, "pseudonym", lambda self, normalized: normalized)
    monkeypatch.setattr(EncryptedColumns, "encrypt",
                        lambda self, table, column, pk, plain: plain.decode() if text else plain)
    monkeypatch.setattr(EncryptedColumns, "decrypt",
                        lambda self, table, column, pk, value: value.encode() if isinstance(value, str) else value)


def test_the_views_files_hold_no_id_number_name_or_commitment_text(views: Views) -> None:
    views.demo_like()
    assert readable(views.credit_path) == set()
    assert readable(views.cases_path) == set()
    # … and every look-up by ID number still works, through the pseudonym of its argument.
    view = views.view
    assert view.standing(APPLICANT.id_number) == "unrepaired-false-commitment"
    assert not view.may_use_commitment_route(APPLICANT.id_number.lower())
    assert view.standing(COMPANY.id_number) == "good"
    s = view.summary(APPLICANT.id_number)
    assert (s["applicant"], s["name"], s["counts"]["found_false"], s["counts"]["repaired"]) == (
        "370405********1234", "张*", 2, 1)
    # The encrypted texts read back.
    assert [c["record"] for c in s["cases"]] == ["食品经营许可：作出虚假承诺（承诺事项第1项不实）"] * 2
    assert [h["detail"] for h in s["history"] if h["step"] == "credit-objection"] == [GROUNDS]
    stored = {r[0] for r in view.db.execute(f"SELECT applicant FROM {CASES} UNION SELECT applicant FROM {STEPS}")}
    assert stored == {view.pseudonym(APPLICANT.id_number), view.pseudonym(COMPANY.id_number)}
    assert all(len(p) == 64 and int(p, 16) >= 0 for p in stored)
    assert view.pseudonym(APPLICANT.id_number) != EncryptedColumns(OTHER_KEY).pseudonym(APPLICANT.id_number)
    assert [r["applicant"] for r in views.cases.rows()] == [mask_id(COMPANY.id_number)] + ["370405********1234"] * 2


def test_the_check_fails_on_views_written_in_clear(views: Views, monkeypatch: pytest.MonkeyPatch) -> None:
    """The control: with encryption turned off, the same flows leave every one of these texts readable."""
    in_clear(monkeypatch)
    views.demo_like()
    assert readable(views.credit_path) == set(PERSONAL)
    assert readable(views.cases_path, IN_CASES) == set(IN_CASES)


def test_a_wrong_key_is_refused_with_a_clear_error_and_changes_nothing(views: Views) -> None:
    views.demo_like()
    before = dump(views.credit_path), dump(views.cases_path)
    with pytest.raises(ViewKeyMismatch, match="another view key"):
        CreditView(views.credit_path, view_key=OTHER_KEY)
    with pytest.raises(ViewKeyMismatch, match="another view key"):
        CommitmentView(views.cases_path, view_key=OTHER_KEY)
    assert (dump(views.credit_path), dump(views.cases_path)) == before
    again = CreditView(views.credit_path, view_key=VIEW_KEY)
    assert again.standing(APPLICANT.id_number) == "unrepaired-false-commitment"
    assert again.plain_rows(OUTBOX) == views.view.plain_rows(OUTBOX)


def test_without_a_key_nothing_personal_is_written_or_looked_up(views: Views, tmp_path: Path) -> None:
    views.recorded()
    views.follow()
    bare = CreditView(tmp_path / "bare.db")
    with pytest.raises(ViewKeyMissing, match="opened without a view key"):
        bare.follow(views.ledger)
    assert bare.position == 0 and not list(bare.db.table(CASES).rows) and not list(bare.db.table(OUTBOX).rows)
    with pytest.raises(ViewKeyMissing):
        bare.standing(APPLICANT.id_number)
    with pytest.raises(CreditViewError):
        bare.standing("not-an-id")  # a malformed id is still told as such
    with pytest.raises(ViewKeyMissing):
        CommitmentView(tmp_path / "bare-cases.db").follow(views.ledger)
    # A keyless reader of an encrypted view sees only what is masked anyway.
    reader = CreditView(views.credit_path)
    assert [(r["kind"], r["applicant_masked"]) for r in reader.outbox()] == [("recorded", "370405********1234")]
    with pytest.raises(ViewKeyMissing):
        reader.pending()


def test_delivery_to_credit_china_still_carries_the_full_record(views: Views, tmp_path: Path) -> None:
    views.recorded()
    views.follow()
    assert deliver_pending(views.view, DirectoryCreditChina(tmp_path / "cc"), now=views.clock.now()) == (1, 0)
    [file] = list((tmp_path / "cc").iterdir())
    record = json.loads(file.read_text())
    assert record["applicant"] == {"kind": "person", "name": APPLICANT.name, "id_number": APPLICANT.id_number}
    assert record["record"] == "食品经营许可：作出虚假承诺（承诺事项第1项不实）"
    assert views.view.counts() == {"delivered": 1}
    assert readable(views.credit_path) == set()


def test_an_encrypted_value_moved_to_another_row_does_not_decrypt(views: Views) -> None:
    views.demo_like()
    cases = views.cases
    a, b = (r["case_id"] for r in cases.rows()[:2])
    with cases.db.conn:  # swap two folded cases
        cases.db.execute(f"UPDATE {TABLE} SET state = (SELECT state FROM {TABLE} WHERE case_id = ?) "
                         "WHERE case_id = ?", [a, b])
    with pytest.raises(ViewKeyMismatch, match="moved from another row"):
        cases.plain_rows()
    view = views.view
    first, second = [r["record_id"] for r in view.outbox()][:2]
    with view.db.conn:
        view.db.execute(f"UPDATE {OUTBOX} SET record = (SELECT record FROM {OUTBOX} WHERE record_id = ?) "
                        "WHERE record_id = ?", [first, second])
    with pytest.raises(ViewKeyMismatch):
        view.pending()


def test_a_rebuilt_commitment_view_reads_as_the_live_one(views: Views, tmp_path: Path) -> None:
    views.demo_like()
    live = views.cases.plain_rows()
    raw = [r["state"] for r in views.cases.db.table(TABLE).rows_where(order_by="rowid")]
    fresh = CommitmentView(tmp_path / "fresh.db", view_key=VIEW_KEY)
    fresh.follow(views.ledger, batch=3)
    assert fresh.plain_rows() == live
    assert [r["state"] for r in fresh.db.table(TABLE).rows_where(order_by="rowid")] != raw  # fresh nonces
    views.cases.rebuild(views.ledger)
    assert views.cases.plain_rows() == live
    assert readable(views.cases_path) == set()


def test_a_view_written_in_clear_is_encrypted_when_opened_with_the_key(views: Views, tmp_path: Path,
                                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    """A credit view from before decision 26: refolded encrypted, its outbox encrypted in place, delivery state kept."""
    views.recorded()
    views.recorded()
    views.follow()
    path = tmp_path / "old.db"
    in_clear(monkeypatch, text=True)
    old = CreditView(path, view_key=VIEW_KEY)
    old.follow(views.ledger)
    deliver_pending(old, DirectoryCreditChina(tmp_path / "cc"), limit=1, now=views.clock.now())
    with old.db.conn:
        old.db.execute(f"DROP TABLE {KEY_CHECKS}")  # the old views had no key check
    old.db.conn.close()
    monkeypatch.undo()
    assert readable(path) >= {APPLICANT.id_number, APPLICANT.name, *(i.text for i in ITEMS)}

    view = CreditView(path, view_key=VIEW_KEY)
    assert readable(path) == set() and view.position == 0
    assert view.counts() == {"delivered": 1, "pending": 1}
    view.follow(views.ledger)
    assert view.plain_rows(CASES) == views.view.plain_rows(CASES)
    assert view.standing(APPLICANT.id_number) == "unrepaired-false-commitment"
    assert [p["record"]["applicant"]["id_number"] for p in view.pending()] == [APPLICANT.id_number]
    assert readable(path) == set()


def test_the_command_line_encrypts_with_justices_store_key(tmp_path: Path) -> None:
    """`xiezhu projections rebuild` and `xiezhu credit` use keys/sifa.store-key; a replaced key is one clear error."""
    settings = Settings(data_dir=tmp_path / "data")
    world = World(tmp_path)
    world.ledger.close()
    world.ledger = Ledger(settings.ledger_path)
    world.recorded()
    world.ledger.append([(s, decode_envelope(s.body), n, world.clock.now())
                         for n, s in world.store.outgoing_since(0, 1000)])
    world.ledger.close()
    env = {k: v for k, v in os.environ.items() if not k.startswith("XIEZHU_")} | {
        "XIEZHU_DATA_DIR": str(settings.data_dir), "COLUMNS": "200"}

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return xiezhu(*args, env=env, check=False, timeout=120)

    assert run("projections", "rebuild").returncode == 0
    shown = run("credit", APPLICANT.id_number, "--json")
    assert shown.returncode == 0, shown.stderr
    assert json.loads(shown.stdout)["standing"] == "unrepaired-false-commitment"
    assert run("cases", "--json").returncode == 0
    assert readable(settings.credit_path) == set() and readable(settings.commitments_path, IN_CASES) == set()
    key = KeyStore(settings.keys_dir).store_key(JUSTICE)
    assert CreditView(settings.credit_path, view_key=key).standing(APPLICANT.id_number) != "good"

    (settings.keys_dir / f"{JUSTICE}.store-key").write_bytes(OTHER_KEY)
    refused = run("credit", APPLICANT.id_number)
    assert refused.returncode == 1 and refused.stderr.startswith("错误：") and "另一把视图密钥" in refused.stderr


def pg_readable(location: Location, texts: tuple[str, ...]) -> set[str]:
    """Which texts a PostgreSQL schema's rows hold, read as text or as the hex of a bytea."""
    with closing(Sql(location)) as db:
        tables = [r[0] for r in db.execute("SELECT table_name::text FROM information_schema.tables "
                                           "WHERE table_schema = current_schema()")]
        raw = "\n".join(str(r[0]) for t in tables for r in db.execute(f"SELECT t::text FROM {t} t"))
    return {t for t in texts if t in raw or t.encode().hex() in raw}


@pytest.mark.parametrize("clear", [False, True], ids=["encrypted", "control-in-clear"])
def test_the_views_schemas_in_postgresql_hold_no_id_number_name_or_commitment_text(
        tmp_path: Path, store_location: StoreLocations, monkeypatch: pytest.MonkeyPatch, clear: bool) -> None:
    """Decision 52: the same guarantee where the views live in PostgreSQL (with its control: in clear, all show)."""
    if store_location.database_url is None:
        pytest.skip("on SQLite the files themselves are read, byte by byte, by the tests above")
    if clear:
        in_clear(monkeypatch)
    views = Views(tmp_path, store_location)
    try:
        views.demo_like()
        credit, cases = views.beside(views.credit_path), views.beside(views.cases_path)
        assert is_postgres(credit) and is_postgres(cases)
        assert pg_readable(credit, PERSONAL) == (set(PERSONAL) if clear else set())
        assert pg_readable(cases, IN_CASES) == (set(IN_CASES) if clear else set())
        if not clear:
            assert views.view.standing(APPLICANT.id_number) == "unrepaired-false-commitment"
            with pytest.raises(ViewKeyMismatch, match="another view key"):
                CreditView(credit, view_key=OTHER_KEY)
    finally:
        views.ledger.close()
