"""A bureau's own event store: numbering, exactly-once intake, persistence."""
from __future__ import annotations

import os
import threading
import uuid
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest
from eventsourcing.persistence import IntegrityError
from eventsourcing.utils import get_topic

from aggregates.clock import SimulatedClock
from aggregates.errors import RuleError
from aggregates.store import (
    AssistanceCase,
    BureauStore,
    CommitmentCase,
    ConcurrentChange,
    DisputeCase,
    DuplicateEvent,
    NumberSeries,
    SignedCase,
    StoreError,
    UnknownCase,
    retry_on_conflict,
)
from broker.signing import KeyRing
from schemas.assistance import Applicant, CommitmentItem, ItemResult, Matter
from schemas.envelope import decode_envelope
from tests.conftest import ENV_TEST_DATABASE_URL, StoreLocations
from tests.test_signing import entry, make_signer

APPLICANT = Applicant(kind="person", name="张三", id_number="370405199001011234")


@pytest.fixture
def pair(store_location: StoreLocations) -> Iterator[tuple[BureauStore, BureauStore, KeyRing, SimulatedClock]]:
    """shenpi's and gongan's stores, on SQLite and on PostgreSQL (the storage contract)."""
    clock = SimulatedClock(datetime(2026, 12, 31, 14, tzinfo=UTC))  # 22:00 in Shanghai
    a, b = make_signer("shenpi"), make_signer("gongan")
    ring = KeyRing([entry(a, valid_from=datetime(2020, 1, 1, tzinfo=UTC)),
                    entry(b, valid_from=datetime(2020, 1, 1, tzinfo=UTC))])
    stores = (BureauStore("shenpi", store_location("a"), a.sign, clock),
              BureauStore("gongan", store_location("b"), b.sign, clock))
    yield (*stores, ring, clock)
    for store in stores:
        store.close()


def send(store: BureauStore) -> str:
    return store.assistance.request(assistor="gongan", applicant=APPLICANT,
                                    matter=Matter(code="X1", name="食品经营许可"),
                         applied_on=date(2026, 12, 30),
                         items=[CommitmentItem(no=1, text="本人无犯罪记录", check="police.no-criminal-record")]).case


def test_numbers_run_per_requester_per_shanghai_year(pair) -> None:  # type: ignore[no-untyped-def]
    a, _, _, clock = pair
    first, second = send(a), send(a)
    assert [a.assistance.case(c).state.number for c in (first, second)] == ["20260001", "20260002"]
    clock.advance(timedelta(hours=3))  # 2027-01-01 01:00 in Shanghai, still 2026 in UTC
    assert a.assistance.case(send(a)).state.number == "20270001"


def test_the_same_event_is_applied_once(pair) -> None:  # type: ignore[no-untyped-def]
    a, b, ring, clock = pair
    send(a)
    [(_, signed)] = a.outgoing_since(0, 10)
    env = ring.verify(signed)
    b.accept(signed, env, stream_seq=1, arrived_at=clock.now())
    before = b.recorder.max_notification_id()
    with pytest.raises(DuplicateEvent):
        b.accept(signed, env, stream_seq=7, arrived_at=clock.now())
    assert b.recorder.max_notification_id() == before
    assert [decode_envelope(s.body).type for _, s in b.outgoing_since(0, 10)] == ["assistance.received"]


def test_state_survives_reopening_the_store(pair, store_location: StoreLocations) -> None:  # type: ignore[no-untyped-def]
    a, b, ring, clock = pair
    case = send(a)
    [(_, signed)] = a.outgoing_since(0, 10)
    b.accept(signed, ring.verify(signed), stream_seq=1, arrived_at=clock.now())
    b.assistance.reply(case, [ItemResult(no=1, verdict="false")], "auto:hukou")
    again = BureauStore("gongan", store_location("b"), lambda e: None, clock)  # type: ignore[arg-type,return-value]
    st = again.assistance.case(case).state
    assert st.status == "replied" and st.results[0].verdict == "false"
    assert len(again.assistance.case(case).envelopes) == 3
    assert again.assistance.inbox() == []
    again.close()


def test_two_bureaus_in_one_database_never_see_each_others_rows(pair) -> None:  # type: ignore[no-untyped-def]
    """On PostgreSQL both stores are in one database, each in its own schema (issue 14)."""
    a, b, _, _ = pair
    case = send(a)
    assert [decode_envelope(s.body).type for _, s in a.outgoing_since(0, 10)] == ["assistance.requested"]
    assert b.outgoing_since(0, 10) == [] and b.recorder.max_notification_id() in (0, None)
    with pytest.raises(UnknownCase):
        b.assistance.case(case)


def test_outgoing_envelopes_keep_the_bytes_that_were_signed(pair) -> None:  # type: ignore[no-untyped-def]
    a, _, ring, _ = pair
    send(a)
    [(_, signed)] = a.outgoing_since(0, 10)
    assert ring.verify(signed).sender == "shenpi"


def test_a_request_cannot_allow_more_than_the_plans_3_and_2_working_days(pair) -> None:  # type: ignore[no-untyped-def]
    """三(二): the sender's command refuses it before anything is numbered, signed or sent."""
    from aggregates.errors import BadRequest

    shenpi = pair[0]
    with pytest.raises(BadRequest, match=r"三\(二\)"):
        shenpi.assistance.request(assistor="gongan", applicant=APPLICANT, matter=Matter(code="X1", name="食品经营许可"),
                       applied_on=date(2026, 12, 30), items=[CommitmentItem(no=1, text="本人无犯罪记录")],
                       reply_within=30)
    assert shenpi.recorder.max_notification_id() in (0, None)


def test_each_signed_case_type_keeps_event_topics_of_its_own() -> None:
    """One SignedCase shape; eventsourcing redefines its events per case type, so stored topics never mix."""
    kinds = (AssistanceCase, CommitmentCase, DisputeCase)
    topics = {get_topic(getattr(kind, name)) for kind in kinds for name in ("Opened", "Arrived", "Sent", "Got")}
    assert len(topics) == 12
    assert get_topic(AssistanceCase.Sent) == "aggregates.store.assistance:AssistanceCase.Sent"
    assert all(issubclass(kind.Sent, SignedCase.Sent) and kind.Sent is not SignedCase.Sent for kind in kinds)


def test_a_conflict_that_outlives_the_retries_is_a_transient_store_error(pair) -> None:  # type: ignore[no-untyped-def]
    a, _b, _ring, _clock = pair
    send(a)  # the series of 2026 exists now
    tries = []

    def take_from_a_series_never_loaded() -> str:
        tries.append(1)
        series = NumberSeries.begin("shenpi", 2026)  # as a writer that lost every race sees it
        number = series.allocate()
        a.save(series)
        return number
    with pytest.raises(ConcurrentChange) as raised:
        retry_on_conflict(take_from_a_series_never_loaded, "shenpi's letter numbers", tries=3)
    assert len(tries) == 3 and isinstance(raised.value, StoreError) and not isinstance(raised.value, RuleError)

    def take_after_one_conflict() -> str:
        tries.append(1)
        series = NumberSeries.begin("shenpi", 2026) if len(tries) == 4 else a.series(2026)
        number = series.allocate()
        a.save(series)
        return number
    assert retry_on_conflict(take_after_one_conflict, "shenpi's letter numbers") == "20260002"
    assert len(tries) == 5


def test_a_reply_takes_its_own_number_from_the_assistors_series(pair) -> None:  # type: ignore[no-untyped-def]
    """附件5: the 回复函 has its own （编号：…） and cites the request's number (行政协助函（…）) in its text."""
    from projections.documents.case_letters import reply_letter
    from projections.documents.letters import render

    a, b, ring, clock = pair
    send(a)  # shenpi's 20260001 …
    case = send(a)  # … and 20260002, to gongan
    for _, signed in a.outgoing_since(0, 10):
        b.accept(signed, ring.verify(signed), stream_seq=1, arrived_at=clock.now())
    st = b.assistance.reply(case, [ItemResult(no=1, verdict="true")], answered_by="operator:王伟")
    assert (st.number, st.reply_number) == ("20260002", "20260001")  # gongan's first letter of the year
    letter = reply_letter(st, lambda code: {"shenpi": "区审批服务局", "gongan": "区公安分局"}[code])
    assert letter is not None
    text = render(letter)
    assert "（编号：20260001）" in text and "根据贵单位行政协助函（20260002）内容" in text


def test_a_batch_commits_its_commands_at_once_and_a_failing_command_leaves_nothing(pair) -> None:  # type: ignore[no-untyped-def]
    """Group commit (decision 53): staged saves are seen inside the batch, committed together at its end."""
    a, b, ring, clock = pair
    first, second = send(a), send(a)
    incoming = [(signed, ring.verify(signed)) for _, signed in a.outgoing_since(0, 10)]
    before = b.recorder.max_notification_id()
    with b.batch():
        for seq, (signed, env) in enumerate(incoming, 1):
            b.accept(signed, env, stream_seq=seq, arrived_at=clock.now())
        assert b.has(first) and b.seen(incoming[0][1].id)  # staged, and seen as staged
        with pytest.raises(DuplicateEvent):
            b.accept(*incoming[0], stream_seq=9, arrived_at=clock.now())
        with pytest.raises(RuleError):  # half-way through: guarded after the number was taken
            b.assistance.reply(first, [ItemResult(no=7, verdict="true")], answered_by="operator:王伟")
        b.assistance.reply(first, [ItemResult(no=1, verdict="true")], answered_by="operator:王伟")
        b.assistance.reply(second, [ItemResult(no=1, verdict="false", reason="有记录")], answered_by="operator:王伟")
        assert b.recorder.max_notification_id() == before  # nothing committed yet
    assert [b.assistance.case(c).state.reply_number for c in (first, second)] == ["20260001", "20260002"]
    assert [decode_envelope(s.body).type for _, s in b.outgoing_since(0, 10)] == [
        "assistance.received", "assistance.replied", "assistance.received", "assistance.replied"]


def test_a_batch_that_conflicts_with_another_writer_commits_nothing(pair) -> None:  # type: ignore[no-untyped-def]
    a, b, ring, clock = pair
    case = send(a)
    [(_, signed)] = a.outgoing_since(0, 10)
    b.accept(signed, ring.verify(signed), stream_seq=1, arrived_at=clock.now())
    before = b.recorder.max_notification_id()
    with pytest.raises(IntegrityError), b.batch():
        b.assistance.reply(case, [ItemResult(no=1, verdict="true")], answered_by="operator:王伟")
        # Meanwhile a clerk's command in another thread (not in the batch) answers the same case.
        clerk = threading.Thread(target=lambda: b.assistance.decline(case, "查无此人", answered_by="operator:李娜"))
        clerk.start()
        clerk.join()
    assert b.recorder.max_notification_id() == before + 1  # the clerk's decline only
    assert b.assistance.case(case).state.status == "declined"
    with b.batch():  # the thread's batch is closed: the next one opens
        pass


def test_a_cached_case_sees_what_another_writer_of_the_store_committed(pair, store_location) -> None:  # type: ignore[no-untyped-def]
    """The aggregate cache needs no query per read while only this process writes (issue 14), and still
    sees a clerk's command in another process: here another application on the same store."""
    a, b, ring, clock = pair
    cases = [send(a) for _ in range(4)]
    for seq, (_, signed) in enumerate(a.outgoing_since(0, 10), 1):
        b.accept(signed, ring.verify(signed), stream_seq=seq, arrived_at=clock.now())
    yes = [ItemResult(no=1, verdict="true")]
    assert b.assistance.reply(cases[0], yes, answered_by="operator:王伟").reply_number == "20260001"
    assert [b.assistance.case(c).state.status for c in cases] == ["replied", "received", "received", "received"]
    clerk = BureauStore("gongan", store_location("b"), make_signer("gongan").sign, clock)
    try:
        clerk.assistance.decline(cases[1], "查无此人", answered_by="operator:李娜")
        assert clerk.assistance.reply(cases[2], yes, answered_by="operator:李娜").reply_number == "20260002"
    finally:
        clerk.close()
    assert [b.assistance.case(c).state.status for c in cases] == ["replied", "declined", "replied", "received"]
    with pytest.raises(RuleError):  # guarded on the state the other writer left, not refused as a conflict
        b.assistance.reply(cases[1], yes, answered_by="operator:王伟")
    assert b.assistance.reply(cases[3], yes, answered_by="operator:王伟").reply_number == "20260003"


def test_a_stale_cached_case_is_dropped_when_its_save_conflicts(pair) -> None:  # type: ignore[no-untyped-def]
    """Whatever left an older state in the cache, optimistic concurrency refuses its save; the retry reads the store."""
    a, b, ring, clock = pair
    case = send(a)
    [(_, signed)] = a.outgoing_since(0, 10)
    b.accept(signed, ring.verify(signed), stream_seq=1, arrived_at=clock.now())
    older = b.repository.get(uuid.UUID(case))
    b.assistance.decline(case, "查无此人", answered_by="operator:李娜")
    cache = b.repository.cache
    assert cache is not None
    cache.put(older.id, older)  # as a read racing the commit could have left it
    with pytest.raises(RuleError):
        b.assistance.reply(case, [ItemResult(no=1, verdict="true")], answered_by="operator:王伟")
    assert b.assistance.case(case).state.status == "declined"


def test_the_relay_reads_from_memory_what_this_process_committed_and_from_the_store_the_rest(  # type: ignore[no-untyped-def]
        pair, store_location) -> None:
    """outgoing_since answers what this process just committed without reading it back (issue 14), and
    gives exactly what the store holds: another writer's envelopes in between, an older position."""
    a, b, ring, clock = pair

    def from_the_store(after: int) -> list[tuple[int, bytes]]:
        reader = BureauStore("shenpi", store_location("a"), make_signer("shenpi").sign, clock)
        try:
            return [(n, s.body) for n, s in reader.outgoing_since(after, 100)]
        finally:
            reader.close()

    def relayed(after: int) -> list[tuple[int, bytes]]:
        return [(n, s.body) for n, s in a.outgoing_since(after, 100)]

    reads = []
    select = a.recorder.select_notifications

    def counted(*args, **kwargs):  # type: ignore[no-untyped-def]
        reads.append(1)
        return select(*args, **kwargs)
    a.recorder.select_notifications = counted  # type: ignore[method-assign]
    send(a)
    position = relayed(0)[-1][0]
    send(a)
    send(a)
    reads.clear()
    assert relayed(position) == from_the_store(position) and len(relayed(position)) == 2
    assert reads == [] or store_location.database_url is not None  # from memory (SQLite; PostgreSQL reads)
    position = relayed(position)[-1][0]
    clerk = BureauStore("shenpi", store_location("a"), make_signer("shenpi").sign, clock)
    try:
        send(clerk)  # another process's request, between two of this one's
    finally:
        clerk.close()
    send(a)
    assert relayed(position) == from_the_store(position) and len(relayed(position)) == 2
    position = relayed(position)[-1][0]
    send(a)
    clerk = BureauStore("shenpi", store_location("a"), make_signer("shenpi").sign, clock)
    try:
        send(clerk)  # after this process's last commit: the head moved past what it holds
    finally:
        clerk.close()
    assert relayed(position) == from_the_store(position) and len(relayed(position)) == 2
    assert relayed(0) == from_the_store(0) and len(relayed(0)) == 7
    assert relayed(position)[:1] == from_the_store(position)[:1]  # asked again after an older read: the same


def _queued(store: BureauStore, commands: list[tuple[str, object]]) -> dict[str, object]:
    """Run each ``(name, command)`` in a thread of its own while a commit holds the store's commit lock, so that
    they all wait for it; release it, and return what each got (its value or its error)."""
    got: dict[str, object] = {}

    def clerk(name: str, command: object) -> None:
        try:
            got[name] = command()  # type: ignore[operator]
        except Exception as e:  # noqa: BLE001 - what the clerk's command raised is what the test checks
            got[name] = e
    with store._commit_lock:  # a commit under way
        threads = []
        for name, command in commands:
            threads.append(threading.Thread(target=clerk, args=(name, command)))
            threads[-1].start()
            while len(store._waiting) < len(threads):  # each waits behind the commit, in this order
                threading.Event().wait(0.001)
    for t in threads:
        t.join()
    return got


def test_clerks_commands_of_several_threads_at_once_commit_together_on_consecutive_numbers(  # type: ignore[no-untyped-def]
        pair) -> None:
    """Group commit of a clerk's commands (decision 68): requests made at once wait for the commit under way and
    then commit in one transaction, numbered in the order they came; a command that breaks a rule gets its own
    error and leaves nothing, and the others commit."""
    a, b, ring, clock = pair
    first = send(a)
    a.assistance.withdraw(first, "申请人撤回")
    commits = []
    put = a.events.put

    def counted(*args, **kwargs):  # type: ignore[no-untyped-def]
        commits.append(len(args[0]))
        return put(*args, **kwargs)
    a.events.put = counted  # type: ignore[method-assign]
    got = _queued(a, [("r1", lambda: send(a)), ("again", lambda: a.assistance.withdraw(first, "再撤回")),
                      ("r2", lambda: send(a)), ("r3", lambda: send(a))])
    assert isinstance(got["again"], RuleError)  # withdrawn already: its own error, in its own thread
    assert commits == [6]  # three requests, each with its number: one transaction
    numbers = [a.assistance.case(str(got[name])).state.number for name in ("r1", "r2", "r3")]
    assert numbers == ["20260002", "20260003", "20260004"]
    assert [decode_envelope(s.body).type for _, s in a.outgoing_since(0, 10)] == [
        "assistance.requested", "assistance.withdrawn", *["assistance.requested"] * 3]
    for _, signed in a.outgoing_since(0, 10):  # what was committed is as signed: gongan accepts each
        b.accept(signed, ring.verify(signed), stream_seq=1, arrived_at=clock.now())
    assert b.assistance.case(str(got["r3"])).state.status == "received"
    assert send(a) and commits[-1] == 2  # alone, no commit under way: a transaction of its own, as before


def test_a_group_that_cannot_commit_runs_each_command_alone(pair, store_location) -> None:  # type: ignore[no-untyped-def]
    """If another writer of the store changes what a group staged before it commits (here: takes the next letter
    number), nothing of the group is recorded and each command runs again on its own, with its retries."""
    a, _b, _ring, clock = pair
    send(a)
    other = BureauStore("shenpi", store_location("a"), make_signer("shenpi").sign, clock)
    try:
        def sneak() -> str:  # staged after the two requests, then another process commits number 20260002
            number = other.assistance.case(send(other)).state.number
            return number
        got = _queued(a, [("r1", lambda: send(a)), ("r2", lambda: send(a)), ("sneak", lambda: a.grouped(sneak))])
    finally:
        other.close()
    assert not any(isinstance(v, Exception) for v in got.values()), got
    numbers = sorted(st.number for st in a.assistance.cases())
    assert numbers == [f"2026{n:04d}" for n in range(1, len(numbers) + 1)]  # no number twice, none lost
    assert {a.assistance.case(str(got[r])).state.number for r in ("r1", "r2")} <= set(numbers)
    assert len(numbers) == 5  # 1, the one sneaked in while the group was staged, the two requests, the sneak again


def _open_at_once(where: Path | str, n: int) -> tuple[list[BureauStore], list[Exception]]:
    """``n`` threads opening shenpi's store at ``where`` at the same moment: the stores, and what any met."""
    clock, signer = SimulatedClock(datetime(2026, 9, 21, 1, tzinfo=UTC)), make_signer("shenpi")
    start, opened, failed = threading.Barrier(n), [], []

    def open_store() -> None:
        start.wait()
        try:
            opened.append(BureauStore("shenpi", where, signer.sign, clock))
        except Exception as e:  # the test reports what an opener met
            failed.append(e)

    threads = [threading.Thread(target=open_store) for _ in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return opened, failed


@pytest.mark.postgres
def test_two_processes_opening_a_new_store_at_once_both_open_it(tmp_path: Path) -> None:
    """On PostgreSQL a new store's schema, types and tables are made under a lock on the schema: an agent
    and `xiezhu records load` starting at once both open it (CREATE TYPE has no IF NOT EXISTS, and the
    session that lost the race got a unique violation: the agent died of it at start)."""
    url = os.environ.get(ENV_TEST_DATABASE_URL)
    if not url:
        pytest.skip(f"{ENV_TEST_DATABASE_URL} is not set: no PostgreSQL to open the store on")
    for attempt in range(6):  # without the lock, lost on the first attempt or the second
        locations = StoreLocations(tmp_path, url)
        opened, failed = _open_at_once(locations(f"race{attempt}"), 3)
        try:
            assert not failed, failed
            assert len(opened) == 3 and send(opened[0]) and len(list(opened[1].assistance.cases())) == 1
        finally:
            for store in opened:
                store.close()
            locations.drop()
