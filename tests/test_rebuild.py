"""`xiezhu projections rebuild` at once (issue 14, point 3): the ledger's openings, the views rebuilt in
worker processes into fresh files, equal to the live ones, and the old views kept when a rebuild fails."""
from __future__ import annotations

import sqlite3
from collections.abc import Callable, Iterator
from contextlib import closing
from datetime import datetime
from pathlib import Path
from typing import Any

import nacl.public
import pytest

from agencies.credit_china import DirectoryCreditChina, deliver_pending
from aggregates.workdays import WorkingCalendar
from broker.ledger.store import Ledger, chain_hash
from broker.sealing import Opener, routing, seal
from broker.signing import CannotOpen
from projections.base import LedgerProjection
from projections.commitments import CommitmentView
from projections.credit import CreditView
from projections.rebuild import MAX_RANGES, RebuildError, _pos_ranges, rebuild
from projections.sla import SlaView
from schemas.envelope import Envelope, Signed, new_id
from tests.test_credit import COMPANY, VIEW_KEY, World, _tables
from tests.test_signing import T0, make_signer, request_env
from tests.test_sla import Book, Case, sh

KID = "sifa-k1"


class SealedBook(Book):
    """Assistance events sealed to 区司法局, checked by the ledger's opener and appended, as the ledger service does."""

    def __init__(self, ledger: Ledger, public: bytes) -> None:
        super().__init__(ledger)
        self.public = public

    def _append(self, sender: str, recipient: str, case: str, number: str, when: datetime, payload: object,
                stored: datetime | None = None) -> Envelope:
        signer = self.signers.setdefault(sender, make_signer(sender))
        env = Envelope(id=new_id(), sender=sender, recipient=recipient, case=case, number=number, time=when,
                       payload=payload)  # type: ignore[arg-type]
        body = seal(env, [(KID, self.public)])
        signed = Signed(body=body, kid=signer.kid, sig=signer.sign_bytes(body))
        assert self.ledger.opener is not None
        opened = self.ledger.opener.open_routed(routing(body))  # the check before the append
        self.ledger.append([(signed, opened, next(self.seq), stored or when)])
        self._last_digest = signed.digest
        return env


@pytest.fixture
def sifa() -> tuple[bytes, dict[str, bytes]]:
    key = nacl.public.PrivateKey.generate()
    return bytes(key.public_key), {KID: bytes(key)}


# -- openings -------------------------------------------------------------------------------------------------


def test_the_ledger_keeps_an_opening_that_opens_the_payload_and_nothing_else(
        tmp_path: Path, sifa: tuple[bytes, dict[str, bytes]]) -> None:
    public, keys = sifa
    env = request_env()
    body = seal(env, [(KID, public)])
    opener = Opener("sifa", keys, remember=10)
    ledger = Ledger(tmp_path / "ledger.db", opener=opener)
    ledger.append([(Signed(body=body, kid="shenpi-k1", sig=b"s" * 64), opener.open(body), 1, T0)])
    with closing(sqlite3.connect(tmp_path / "ledger.db")) as db:
        ((pos, kid, wrapped),) = db.execute("SELECT pos, kid, wrapped FROM openings").fetchall()
    ledger.close()
    assert (pos, kid) == (1, KID) and env.payload.applicant.id_number.encode() not in wrapped  # type: ignore[union-attr]
    sealed = routing(body)
    cold = Opener("sifa", keys)  # another process: nothing remembered
    assert cold.open_with_opening(sealed, kid, wrapped) == env == cold.open_routed(sealed)
    assert opener.opening(env.id, body) == (kid, wrapped)  # the same entry always gets the same opening
    other = Opener("sifa", {KID: bytes(nacl.public.PrivateKey.generate())})
    flipped = wrapped[:30] + bytes([wrapped[30] ^ 1]) + wrapped[31:]
    for who, k, w in ((other, kid, wrapped), (cold, kid, flipped), (cold, "sifa-k2", wrapped)):
        with pytest.raises(CannotOpen):
            who.open_with_opening(sealed, k, w)
    moved = routing(seal(request_env(), [(KID, public)]))  # another entry's opening does not open this one
    with pytest.raises(CannotOpen):
        cold.open_with_opening(moved, kid, wrapped)
    # An opener that remembers nothing (an agent's) leaves no opening.
    plain = Ledger(tmp_path / "plain.db", opener=Opener("sifa", keys))
    plain.append([(Signed(body=body, kid="shenpi-k1", sig=b"s" * 64), env, 1, T0)])
    plain.close()
    with closing(sqlite3.connect(tmp_path / "plain.db")) as db:
        assert db.execute("SELECT count(*) FROM openings").fetchone() == (0,)


# -- the rebuild --------------------------------------------------------------------------------------------


class Views:
    """A ledger with sealed assistance cases and commitment cases, and the three views following it live."""

    def __init__(self, tmp_path: Path, sifa: tuple[bytes, dict[str, bytes]]) -> None:
        public, keys = sifa
        self.world = World(tmp_path)
        self.world.ledger.close()
        self.ledger = self.world.ledger = Ledger(tmp_path / "ledger.db", opener=Opener("sifa", keys, remember=100))
        self.dir = tmp_path / "projections"
        self.book = SealedBook(self.ledger, public)
        self.calendar = WorkingCalendar()
        self.credit_path = tmp_path / "credit.db"  # the World's

    def sla(self, path: Path) -> SlaView:
        return SlaView(path, self.calendar)

    def cases(self, path: Path) -> CommitmentView:
        return CommitmentView(path, view_key=VIEW_KEY)

    def credit(self, path: Path) -> CreditView:
        return CreditView(path, view_key=VIEW_KEY)

    def rebuild(self, **kw: Any) -> Any:
        return rebuild(self.ledger, (self.dir / "sla.db", self.sla),
                       [("commitments", self.dir / "commitments.db", self.cases),
                        ("credit", self.credit_path, self.credit)], **kw)


@pytest.fixture
def views(tmp_path: Path, sifa: tuple[bytes, dict[str, bytes]]) -> Iterator[Views]:
    v = Views(tmp_path, sifa)
    yield v
    v.ledger.close()


def _sla_tables(path: Path) -> dict[str, list[tuple[Any, ...]]]:
    with closing(sqlite3.connect(path)) as db:
        return {t: db.execute(f"SELECT * FROM {t} ORDER BY rowid").fetchall()
                for t in ("assistance_requests", "sla_calendar", "_positions")}


def _follow(views: Views) -> dict[str, Any]:
    """Follow the ledger live with all three views; what they hold, and their files closed."""
    sla, cases = views.sla(views.dir / "sla.db"), views.cases(views.dir / "commitments.db")
    sla.follow(views.ledger)
    cases.follow(views.ledger)
    credit = views.world.relay()
    held = {"sla": _sla_tables(views.dir / "sla.db"), "cases": cases.plain_rows(), "credit": _tables(credit),
            "outbox": credit.counts()}
    for v in (sla, cases, credit):
        v.db.conn.close()
    return held


def _reopened(views: Views) -> dict[str, Any]:
    cases, credit = views.cases(views.dir / "commitments.db"), views.credit(views.credit_path)
    try:
        return {"sla": _sla_tables(views.dir / "sla.db"), "cases": cases.plain_rows(), "credit": _tables(credit),
                "outbox": credit.counts()}
    finally:
        cases.db.conn.close()
        credit.db.conn.close()


def test_the_views_rebuilt_at_once_equal_the_live_ones_and_skip_what_they_do_not_read(views: Views) -> None:
    book = views.book
    a = book.arrived(sh(2026, 9, 30, 10))
    b = book.arrived(sh(2026, 9, 28, 10), assistor="ziran")
    book.reply(a, sh(2026, 10, 11, 9), verdict="false")
    views.world.recorded()  # a commitment case found false, with its credit record
    views.world.fulfilled(COMPANY)
    views.world.relay()
    # From here the ledger's opener is an agent's (no openings): those entries open through their sealed box.
    assert views.ledger.opener is not None
    views.ledger.opener.remember = 0  # type: ignore[attr-defined]
    book.decline(b, sh(2026, 10, 9, 9))
    c = book.arrived(sh(2026, 12, 30, 10))  # its deadline runs into provisional 2027
    book.withdraw(c, sh(2026, 12, 31, 9))
    book.reply(c, sh(2026, 12, 31, 10))
    book.request(sh(2027, 1, 4, 9), channel="letter")
    with closing(sqlite3.connect(views.ledger.path)) as db, db:  # a damaged opening: the sealed box opens it
        db.execute("UPDATE openings SET wrapped = zeroblob(72) WHERE pos = (SELECT min(pos) FROM openings)")
    world = views.world
    deliver_pending(world.view, DirectoryCreditChina(views.dir.parent / "cc"), limit=1, now=world.clock.now())
    live = _follow(views)
    assert live["outbox"]["delivered"] == 1
    assert len(live["sla"]["assistance_requests"]) == 4 and live["cases"] and live["credit"]["credit_steps"]

    done = views.rebuild(workers=2)

    assert _reopened(views) == live  # row for row, in the same order; the delivered record stays delivered
    n = len(views.ledger)
    sla = done.views["sla"]
    assistance = 11
    assert (done.entries, sla.entries, sla.opened) == (n, n, assistance)
    assert 0 < sla.opened_with_openings < assistance  # later entries and the damaged one: through the sealed box
    assert done.views["credit"].opened == done.views["commitments"].opened == n - assistance  # only commitment.*
    assert not [p.name for p in views.dir.iterdir() if ".rebuild" in p.name or ".chunk" in p.name]


def test_a_case_whose_first_entry_the_fold_refused_takes_the_place_of_its_request(views: Views) -> None:
    book = views.book
    early = book.arrived(sh(2026, 9, 28, 10))
    stray = Case(new_id(), new_id(), "0" * 64, "20269999", "shenpi", "gongan")
    book.receive(stray, sh(2026, 9, 28, 11))  # position 3: no request yet, the fold refuses it
    book.arrived(sh(2026, 9, 29, 10))
    book.arrived(sh(2026, 9, 30, 10))
    book.request(sh(2026, 10, 9, 9), case=stray.id)  # the case's row comes from here, after the others' rows
    book.reply(early, sh(2026, 10, 9, 10))
    live = _follow(views)
    assert [r[0] for r in live["sla"]["assistance_requests"]][-1] == stray.id

    views.rebuild(workers=2)  # four ranges: the stray receipt's range holds the row that comes last

    assert _reopened(views) == live


def test_a_rebuild_that_fails_leaves_the_old_views_as_they_were(views: Views) -> None:
    book = views.book
    book.reply(book.arrived(sh(2026, 9, 30, 10)), sh(2026, 10, 9, 9))
    book.arrived(sh(2026, 10, 12, 10))
    views.world.recorded()
    views.world.relay()
    live = _follow(views)
    # Left over from a rebuild that crashed: ignored, and cleared.
    for name in ("sla.db.rebuild", "sla.db.chunk3", "commitments.db.rebuild"):
        (views.dir / name).write_bytes(b"half a file")

    with closing(sqlite3.connect(views.ledger.path)) as db, db:  # one entry changed after it was chained
        db.execute("UPDATE entries SET arrived_at = '2026-10-01T00:00:00+00:00' WHERE pos = 3")
    with pytest.raises(RebuildError, match="damaged at position 3"):
        views.rebuild(workers=2)
    assert _reopened(views) == live
    assert not [p.name for p in views.dir.iterdir() if ".rebuild" in p.name or ".chunk" in p.name]


def test_a_view_open_in_another_process_is_not_replaced(views: Views) -> None:
    views.book.arrived(sh(2026, 9, 30, 10))
    live = _follow(views)
    node = views.sla(views.dir / "sla.db")  # a running node holds it, in WAL mode
    try:
        with pytest.raises(RebuildError, match="open in another process"):
            views.rebuild(workers=1)
    finally:
        node.db.conn.close()
    assert _reopened(views) == live
    make: Callable[[Path], LedgerProjection] = views.sla
    assert isinstance(make(views.dir / "sla.db"), SlaView)


def test_a_rebuild_refuses_index_columns_that_contradict_the_signed_bytes(views: Views) -> None:
    views.book.reply(views.book.arrived(sh(2026, 9, 30, 10)), sh(2026, 10, 9, 9))
    live = _follow(views)
    # The index columns are outside the chain: a changed type would have the fold skip a signed reply.
    with closing(sqlite3.connect(views.ledger.path)) as db, db:
        db.execute("UPDATE entries SET type = 'commitment.applied' WHERE pos = 3")
    with pytest.raises(RebuildError, match="damaged at position 3: its index columns"):
        views.rebuild(workers=1)
    assert _reopened(views) == live


def test_the_position_ranges_hold_every_position_once_in_order() -> None:
    for head in (0, 1, 2, 5, 17, 1000):
        for n in range(1, 21):
            for workers in (1, 2, 3, 8):
                ranges = _pos_ranges(head, n, workers)
                assert [p for a, b in ranges for p in range(a, b + 1)] == list(range(1, head + 1))
                assert all(a <= b for a, b in ranges) and len(ranges) <= min(n, MAX_RANGES)
    sizes = [b - a + 1 for a, b in _pos_ranges(1_000_000, 8, 2)]  # the last ones small: the workers end together
    assert sizes == [200_000, 200_000, 150_000, 150_000, 100_000, 100_000, 50_000, 50_000]


def _ledger_of_cases(views: Views, n: int) -> tuple[dict[str, Any], int]:
    for day in range(n):
        views.book.reply(views.book.arrived(sh(2026, 9, 1 + day, 10)), sh(2026, 9, 2 + day, 9))
    return _follow(views), len(views.ledger)


@pytest.mark.parametrize("at", ["inside a range", "first of a range"])
def test_a_rebuild_refuses_a_ledger_with_an_entry_missing(views: Views, at: str) -> None:
    live, head = _ledger_of_cases(views, 6)
    ranges = _pos_ranges(head, 8, 2)  # two workers: eight ranges, each read by one of them alone
    pos = ranges[3][0] + (1 if at == "inside a range" else 0)
    with closing(sqlite3.connect(views.ledger.path)) as db, db:
        db.execute("DELETE FROM entries WHERE pos = ?", (pos,))
    with pytest.raises(RebuildError, match=f"no entry at position {pos}"):
        views.rebuild(workers=2)
    assert _reopened(views) == live


@pytest.mark.parametrize("at", ["inside a range", "first of a range"])
def test_a_rebuild_refuses_an_entry_that_does_not_follow_the_one_before(views: Views, at: str) -> None:
    live, head = _ledger_of_cases(views, 6)
    ranges = _pos_ranges(head, 8, 2)
    pos = ranges[3][0] + (1 if at == "inside a range" else 0)
    with closing(sqlite3.connect(views.ledger.path)) as db, db:
        # Chained anew from another hash: the entry matches its own hash, the chain is broken before it.
        arrived_at, seq, kid, sig, body = db.execute("SELECT arrived_at, stream_seq, kid, sig, body FROM entries "
                                                     "WHERE pos = ?", (pos,)).fetchone()
        prev = b"\x01" * 32
        db.execute("UPDATE entries SET prev_hash = ?, hash = ? WHERE pos = ?",
                   (prev, chain_hash(prev, pos, arrived_at, seq, kid, sig, body), pos))
    with pytest.raises(RebuildError, match=r"damaged at position \d+: it does not follow position"):
        views.rebuild(workers=2)
    assert _reopened(views) == live
