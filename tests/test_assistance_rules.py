"""The rules of 附件2 as the case fold applies them, for every party alike."""
from __future__ import annotations

from datetime import timedelta

import msgspec
import pytest

from aggregates import assistance, errors
from schemas.assistance import (
    AssistanceDeclined,
    AssistanceReceived,
    AssistanceReplied,
    CommitmentItem,
    ItemResult,
)
from schemas.envelope import Envelope, body_digest, encode_envelope, new_id
from tests.test_signing import T0, request_env


def opened(**request_changes: object) -> tuple[assistance.CaseState, Envelope]:
    env = request_env()
    if request_changes:
        env = msgspec.structs.replace(env, payload=msgspec.structs.replace(env.payload, **request_changes))
    return assistance.apply(None, env, body_digest(encode_envelope(env))), env


def answer(state: assistance.CaseState, payload: object, sender: str = "gongan", recipient: str = "shenpi") -> Envelope:
    return Envelope(id=new_id(), sender=sender, recipient=recipient, case=state.case, number=state.number,
                    time=T0 + timedelta(hours=1), payload=payload)  # type: ignore[arg-type]


def received(state: assistance.CaseState) -> assistance.CaseState:
    ev = AssistanceReceived(request_id=state.request_id, request_hash=state.request_hash, arrived_at=T0)
    return assistance.apply(state, answer(state, ev), "")


def reply(state: assistance.CaseState, results: list[ItemResult], channel: str = "platform") -> AssistanceReplied:
    return AssistanceReplied(request_id=state.request_id, request_hash=state.request_hash, channel=channel,  # type: ignore[arg-type]
                             results=results, answered_by="auto:test")


def test_full_path_request_received_replied() -> None:
    st = received(opened()[0])
    st = assistance.apply(st, answer(st, reply(st, [ItemResult(no=1, verdict="true")])), "")
    assert st.status == "replied" and st.results[0].verdict == "true" and st.events == 3


def test_a_reply_needs_the_arrival_recorded_first() -> None:
    st, _ = opened()
    with pytest.raises(errors.NotYet):
        assistance.apply(st, answer(st, reply(st, [ItemResult(no=1, verdict="true")])), "")


def test_only_the_assistor_may_answer() -> None:
    st = received(opened()[0])
    with pytest.raises(errors.WrongParty):
        assistance.apply(st, answer(st, reply(st, [ItemResult(no=1, verdict="true")]), sender="shichang"), "")


def test_a_reply_must_carry_the_hash_of_the_request() -> None:
    st = received(opened()[0])
    forged = msgspec.structs.replace(reply(st, [ItemResult(no=1, verdict="true")]), request_hash="0" * 64)
    with pytest.raises(errors.HashMismatch):
        assistance.apply(st, answer(st, forged), "")


def test_reply_uses_the_channel_of_the_request() -> None:
    st = received(opened()[0])
    with pytest.raises(errors.ChannelMismatch):
        assistance.apply(st, answer(st, reply(st, [ItemResult(no=1, verdict="true")], channel="letter")), "")


def test_assistor_answers_exactly_the_items_asked() -> None:
    st = received(opened()[0])
    with pytest.raises(errors.ItemsMismatch):
        extra = [ItemResult(no=1, verdict="true"), ItemResult(no=2, verdict="false")]
        assistance.apply(st, answer(st, reply(st, extra)), "")
    with pytest.raises(errors.ItemsMismatch):
        assistance.apply(st, answer(st, reply(st, [ItemResult(no=2, verdict="true")])), "")


def test_cannot_verify_needs_the_reasons() -> None:
    st = received(opened()[0])
    with pytest.raises(errors.MissingReason):
        assistance.apply(st, answer(st, reply(st, [ItemResult(no=1, verdict="unverifiable")])), "")
    ok = reply(st, [ItemResult(no=1, verdict="unverifiable", reason="档案未移交")])
    assert assistance.apply(st, answer(st, ok), "").status == "replied"


def test_no_second_answer_after_a_decline() -> None:
    st = received(opened()[0])
    dec = AssistanceDeclined(request_id=st.request_id, request_hash=st.request_hash, channel="platform",
                             reasons="不属于本机关职权范围", answered_by="operator:x")
    st = assistance.apply(st, answer(st, dec), "")
    assert st.status == "declined"
    with pytest.raises(errors.WrongOrder):
        assistance.apply(st, answer(st, reply(st, [ItemResult(no=1, verdict="true")])), "")


def test_a_letter_carried_by_staff_names_two_staff() -> None:
    with pytest.raises(errors.BadRequest, match="two staff"):
        opened(channel="letter", staff=["王伟"])
    st, _ = opened(channel="letter", staff=["王伟", "李娜"])
    assert st.request.channel == "letter"


def test_item_numbers_are_distinct() -> None:
    item = CommitmentItem(no=1, text="本人无犯罪记录")
    with pytest.raises(errors.BadRequest):
        opened(items=[item, item])


def test_a_case_cannot_be_requested_twice() -> None:
    st, env = opened()
    with pytest.raises(errors.NotFirst):
        assistance.apply(st, env, "")


def test_a_case_must_start_with_a_request() -> None:
    st, _ = opened()
    with pytest.raises(errors.NotFirst):
        assistance.apply(None, answer(st, reply(st, [ItemResult(no=1, verdict="true")])), "")


def test_a_forward_to_the_archive_institution_joins_the_history_and_the_answer_may_come_on_its_behalf() -> None:
    from schemas.assistance import AssistanceForwarded

    st = received(opened()[0])
    fwd = AssistanceForwarded(request_id=st.request_id, request_hash=st.request_hash, institution="区档案馆")
    st = assistance.apply(st, answer(st, fwd), "")
    assert st.forwarded_to == ("区档案馆",)
    with pytest.raises(errors.WrongOrder):
        assistance.apply(st, answer(st, fwd), "")
    stray = msgspec.structs.replace(reply(st, [ItemResult(no=1, verdict="true")]), on_behalf_of="区城建档案室")
    with pytest.raises(errors.WrongParty):
        assistance.apply(st, answer(st, stray), "")
    ok = msgspec.structs.replace(reply(st, [ItemResult(no=1, verdict="true")]), on_behalf_of="区档案馆")
    assert assistance.apply(st, answer(st, ok), "").status == "replied"


def test_only_the_requester_withdraws_and_only_an_open_request() -> None:
    from schemas.assistance import AssistanceWithdrawn

    st = received(opened()[0])
    w = AssistanceWithdrawn(request_id=st.request_id, reason="申请人退出承诺办理")
    with pytest.raises(errors.WrongParty):
        assistance.apply(st, answer(st, w), "")  # sent by the assistor
    st = assistance.apply(st, answer(st, w, sender="shenpi", recipient="gongan"), "")
    assert st.status == "withdrawn"
    with pytest.raises(errors.WrongOrder):
        assistance.apply(st, answer(st, w, sender="shenpi", recipient="gongan"), "")


def test_a_withdrawal_and_an_answer_that_cross_in_transit_both_stand() -> None:
    from schemas.assistance import AssistanceWithdrawn

    st = received(opened()[0])
    w = AssistanceWithdrawn(request_id=st.request_id, reason="申请人退出承诺办理")
    answered = assistance.apply(st, answer(st, reply(st, [ItemResult(no=1, verdict="true")])), "")
    # The assistor answered first: the withdrawal is recorded, the answer stays.
    after = assistance.apply(answered, answer(st, w, sender="shenpi", recipient="gongan"), "")
    assert after.status == "replied" and after.withdrawn_reason
    # The requester withdrew first: the answer is recorded, the case stays withdrawn.
    withdrawn = assistance.apply(st, answer(st, w, sender="shenpi", recipient="gongan"), "")
    late = assistance.apply(withdrawn, answer(st, reply(st, [ItemResult(no=1, verdict="true")])), "")
    assert late.status == "withdrawn" and late.results


def test_a_withdrawal_that_overtakes_the_arrival_record_keeps_both() -> None:
    from schemas.assistance import AssistanceWithdrawn

    st, _ = opened()
    w = AssistanceWithdrawn(request_id=st.request_id, reason="申请人退出承诺办理")
    st = assistance.apply(st, answer(st, w, sender="shenpi", recipient="gongan"), "")
    with pytest.raises(errors.NotYet):  # an answer before the arrival record waits for it
        assistance.apply(st, answer(st, reply(st, [ItemResult(no=1, verdict="true")])), "")
    st = received(st)
    assert st.status == "withdrawn" and st.arrived_at is not None
    late = assistance.apply(st, answer(st, reply(st, [ItemResult(no=1, verdict="true")])), "")
    assert late.status == "withdrawn"
