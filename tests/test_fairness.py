"""One bureau's flood does not bury another's request (decision 50), on a real node.

ziran floods gongan with messages that fail the signature check.  gongan's agent and the
ledger reject each (nothing changes) but write at most their budget of full dead letters per
sender; the rest are summarised, a write per fetched batch, each naming the XZ sequences it
stands for.  A dead letter costs the server an fsync, so it was the flood's dead letters, one
each, that held another bureau's request (bench/fairness.py measures it).
"""
from __future__ import annotations

import random

import nats

from broker.auth import ADMIN
from broker.intake import DLQ_BURST, HDR_SUMMARY_COUNT, HDR_SUMMARY_SEQS, read_dead_letters
from broker.signing import b64
from broker.streams import sending_stream
from schemas.envelope import HDR_KEY, HDR_MSG_ID, HDR_SIG
from tests.test_exchange import request, snapshot
from xiezhu.node import Node

FLOOD = 250


def _seqs(text: str) -> list[int]:
    out: list[int] = []
    for part in text.split(","):
        a, _, b = part.partition("-")
        out.extend(range(int(a), int(b or a) + 1))
    return out


async def test_a_flood_costs_a_bounded_number_of_dead_letters_and_loses_none(node: Node) -> None:
    request(node)
    await node.settle()
    s0 = snapshot(node)
    request(node)
    await node.settle()
    s1 = snapshot(node)
    rng = random.Random(7)
    kid = node.keys.signer("ziran").kid
    nc = await nats.connect(node.nats_url, **node.credentials("ziran"))
    js = nc.jetstream()
    acks = [await js.publish_async("xz.ziran.gongan.assistance.requested", rng.randbytes(800),
                                   stream=sending_stream("ziran"),
                                   headers={HDR_MSG_ID: f"flood-{i}", HDR_KEY: kid, HDR_SIG: b64(rng.randbytes(64))})
            for i in range(FLOOD)]
    flood_seqs = sorted([(await a).seq for a in acks])  # in ziran's stream; XZ numbers them anew
    await nc.close()
    assert len(flood_seqs) == FLOOD
    case = request(node)  # shenpi's legitimate request, queued behind the flood
    await node.settle(timeout=60)
    assert node.store("shenpi").assistance.case(case).state.status == "replied"

    admin = await nats.connect(node.nats_url, **node.credentials(ADMIN))
    letters = await read_dead_letters(admin.jetstream(), limit=10_000)
    await admin.close()
    for receiver in ("gongan", "ledger"):
        mine = [d for d in letters if d.rejected_by == receiver and d.original_subject.startswith("xz.ziran.")]
        full = [d for d in mine if HDR_SUMMARY_COUNT not in d.headers]
        summaries = [d for d in mine if HDR_SUMMARY_COUNT in d.headers]
        counted = sum(int(d.headers[HDR_SUMMARY_COUNT]) for d in summaries)
        # Every rejection is there, in full or counted, each once; the writes are bounded by the budget.
        assert len(full) + counted == FLOOD, (receiver, len(full), counted)
        assert DLQ_BURST <= len(full) < DLQ_BURST + 30, (receiver, len(full))  # + 1/s refill meanwhile
        assert 0 < len(summaries) < FLOOD / 10, (receiver, len(summaries))
        listed = [s for d in summaries for s in _seqs(d.headers[HDR_SUMMARY_SEQS])]
        assert len(listed) == len(set(listed)) == counted
        assert {d.code for d in mine} == {"bad-signature"}
        assert all("more messages from ziran rejected as bad-signature" in d.reason for d in summaries)
    # Nothing of the flood was applied anywhere: the second exchange changed what the first did.
    s2 = snapshot(node)
    assert {k: s2[k] - s1[k] for k in ("shenpi", "gongan", "ledger")} == {
        k: s1[k] - s0[k] for k in ("shenpi", "gongan", "ledger")}
    assert s2["ziran"] == s1["ziran"]
    assert node.agents["gongan"].intake is not None
    assert node.agents["gongan"].intake.stats.rejected >= FLOOD
