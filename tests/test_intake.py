"""The one table from error to dead-letter reason (broker/intake.py): what is dead-lettered, what is retried."""
from __future__ import annotations

import sqlite3
from datetime import UTC, datetime
from typing import Any

import pytest

import broker.signing
from aggregates.catalogue import NotCatalogued
from aggregates.errors import DisputeClosed, NotYet, RuleError, WrongOrder
from aggregates.store import ConcurrentChange, DuplicateEvent, StoreError, UnknownCase
from broker.intake import (
    DEAD_LETTER_REASONS,
    REASONS,
    SOURCE_HEADER,
    Delivery,
    HandlerFailed,
    Intake,
    check,
    reason_for,
)
from broker.signing import KeyRing, Oversized, Rejected, Unsigned
from schemas.envelope import MAX_MESSAGE_BYTES
from tests.test_exchange import request
from xiezhu.node import Node


def test_every_rejection_is_dead_lettered_under_its_own_code() -> None:
    rejections = [c for c in vars(broker.signing).values()
                  if isinstance(c, type) and issubclass(c, Rejected) and c is not Rejected]
    for cls in [*rejections, HandlerFailed]:
        assert DEAD_LETTER_REASONS[cls] == cls.code, cls
        assert reason_for(cls("x")) == cls.code


def test_the_stores_errors_map_directly_to_reasons() -> None:
    assert reason_for(DuplicateEvent("seen", same_bytes=False)) == "duplicate"
    for rule in (RuleError("x"), WrongOrder("x"), DisputeClosed("x"), NotCatalogued("x")):
        assert reason_for(rule) == "rule-violation"


def test_early_events_and_transient_failures_are_retried_not_dead_lettered() -> None:
    for transient in (NotYet("reply before its arrival record"), UnknownCase("no case yet"),
                      ConcurrentChange("case kept changing meanwhile"),
                      StoreError("concurrent change to case; retry"), sqlite3.OperationalError("database is locked"),
                      ConnectionError("nats away"), ValueError("anything unlisted")):
        assert reason_for(transient) is None, transient


def test_reasons_are_the_table_without_retries_in_the_operator_order() -> None:
    assert REASONS == ("unsigned", "unknown-key", "bad-signature", "key-not-valid", "wrong-sender", "wrong-recipient",
                       "not-sealed", "cannot-open", "malformed", "oversized", "duplicate", "rule-violation",
                       "handler-failed")


async def test_refuse_raises_a_transient_error_again() -> None:
    intake = Intake("gongan", KeyRing(), None, opener=None)  # type: ignore[arg-type]  # never publishes here
    d = Delivery(subject="xz.x", data=b"", headers={}, stream_seq=1, num_delivered=1, timestamp=datetime.now(UTC))
    with pytest.raises(NotYet):
        await intake.refuse(d, NotYet("later"))
    assert intake.stats.rejected == 0


def test_intake_still_refuses_an_oversized_message_the_server_would_have_refused() -> None:
    """The layer behind the sending streams' max_msg_size (decision 50): headers count, except the one
    the server adds to XZ's copy."""
    def d(body: int, headers: dict[str, str]) -> Delivery:
        return Delivery(subject="xz.shenpi.gongan.x", data=b" " * body, headers=headers, stream_seq=1,
                        num_delivered=1, timestamp=datetime.now(UTC))

    with pytest.raises(Oversized, match="exceeds the 65536-byte limit"):
        check(d(MAX_MESSAGE_BYTES - 10, {"Xz-Sig": "s" * 20}), KeyRing(), "gongan", None)
    with pytest.raises(Unsigned):  # past the size check: the source header is not the sender's
        check(d(MAX_MESSAGE_BYTES - 10, {SOURCE_HEADER: "XZ_FROM_shenpi 1 > > xz.shenpi.gongan.x"}), KeyRing(),
              "gongan", None)


async def test_a_busy_ledger_file_is_retried_not_lost_or_dead_lettered(node: Node,
                                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    assert node.ledger is not None and node.ledger_service is not None
    real, calls = node.ledger.append, {"n": 0}

    def busy_once(batch: Any) -> Any:
        calls["n"] += 1
        if calls["n"] == 1:
            raise sqlite3.OperationalError("database is locked")
        return real(batch)

    monkeypatch.setattr(node.ledger, "append", busy_once)
    case = request(node)
    await node.settle(timeout=30)
    assert calls["n"] >= 2
    assert [e.type for e in node.ledger.case(case)] == ["assistance.requested", "assistance.received",
                                                        "assistance.replied"]
    assert node.ledger_service.stats.rejected == 0
