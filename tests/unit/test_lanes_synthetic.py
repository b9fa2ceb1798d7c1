"""Synthetic scenarios: seeded, schema-valid, labelled by their simulated outcome."""

from __future__ import annotations

from collections import Counter

import pytest

from app.lanes.dataset import LabelSource, dataset_hash
from app.lanes.synthetic import EVENT_RISK_FLAGS, scenarios
from app.review.schemas import ReviewRequest, Verdict


def test_scenarios_when_same_seed_then_identical_and_different_seed_then_not() -> None:
    assert dataset_hash(scenarios(40, 7)) == dataset_hash(scenarios(40, 7))
    assert dataset_hash(scenarios(40, 7)) != dataset_hash(scenarios(40, 8))


def test_scenarios_when_n_grows_then_earlier_scenarios_are_unchanged() -> None:
    assert scenarios(60, 3)[:25] == scenarios(25, 3)


def test_scenarios_when_generated_then_every_request_validates_and_labels_follow_pnl() -> None:
    for ex in scenarios(200, 11):
        request = ReviewRequest.model_validate(ex.inputs)
        assert request.decision.event_ts < ex.as_of
        assert ex.label_source is LabelSource.SIMULATED_OUTCOME
        assert ex.realized_pnl is not None and ex.pnl_per_unit is not None
        assert ex.label is (Verdict.APPROVE if ex.realized_pnl > 0 else Verdict.VETO)


def test_scenarios_when_many_then_buys_into_event_risk_mostly_lose() -> None:
    examples = scenarios(400, 5)
    labels = Counter(e.label for e in examples)
    assert labels[Verdict.APPROVE] > 50 and labels[Verdict.VETO] > 50
    # A sell into event risk closes exposure (it earns what the position would lose): buys only.
    event = [
        e
        for e in examples
        if e.inputs["decision"]["action"] == "buy"
        and set((e.inputs.get("market_context") or {}).get("riskFlags", [])) & set(EVENT_RISK_FLAGS)
    ]
    assert len(event) > 20
    assert sum(e.label is Verdict.VETO for e in event) / len(event) > 0.8


@pytest.mark.parametrize("n", [0, 5001])
def test_scenarios_when_n_out_of_bounds_then_refused(n: int) -> None:
    with pytest.raises(ValueError, match="n must be"):
        scenarios(n, 1)
