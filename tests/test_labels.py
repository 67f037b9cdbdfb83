"""Every identifier a person sees in a table has its 中文 label in schemas/labels.py."""
from __future__ import annotations

from typing import get_args

from aggregates.commitment import Status
from projections.sla import STATES, STATUSES
from schemas import labels
from schemas.commitment import OUTCOMES


def test_every_sla_state_and_request_status_has_its_label() -> None:
    assert set(labels.SLA_STATE) == set(STATES)
    assert set(labels.REQUEST_STATUS) == set(STATUSES)


def test_every_commitment_step_and_consequence_has_its_label() -> None:
    assert set(labels.CASE_STATUS) == set(get_args(Status))
    tags = {cls.__struct_config__.tag.removeprefix("commitment.") for cls in OUTCOMES}  # type: ignore[union-attr]
    assert set(labels.CONSEQUENCE) == tags


def test_labels_are_distinct_within_a_table() -> None:
    for name, table in labels.TABLES.items():
        assert len(set(table.values())) == len(table), name


def test_every_credit_key_and_dead_letter_word_has_its_label() -> None:
    from agencies.trust.trust_list import KeyState
    from broker.intake import REASONS
    from projections.credit import HISTORY_STEPS
    from schemas.commitment import CreditStatus

    assert set(labels.CREDIT_STATUS) == set(get_args(CreditStatus))
    assert set(labels.CREDIT_STEP) == {s.removeprefix("commitment.") for s in HISTORY_STEPS}
    assert set(labels.KEY_STATE) == set(get_args(KeyState))
    assert set(labels.DEAD_LETTER_REASON) == set(REASONS)
