"""Dataset lane, pure parts: labelling rule, deterministic split, reproducible hash."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime

import pytest

from app.db.models import ReviewOutcomeRow
from app.lanes.dataset import (
    LabelSource,
    LaneExample,
    Split,
    dataset_hash,
    label_review,
    split_of,
    subsample,
)
from app.review.schemas import Verdict
from tests.support.requests import base_request

AT = datetime(2026, 1, 5, 15, 0, tzinfo=UTC)


def outcome(
    horizon: int, pnl: float | None, *, filled: bool = True, qty: float | None = 10, oid: int = 1
) -> ReviewOutcomeRow:
    return ReviewOutcomeRow(
        id=oid,
        review_id="r",
        horizon_seconds=horizon,
        filled=filled,
        fill_price=200.0,
        fill_qty=qty,
        realized_pnl=pnl,
        payload={},
        created_at=AT,
    )


def example(example_id: str, label: Verdict = Verdict.APPROVE, seed: int = 0) -> LaneExample:
    return LaneExample(
        example_id=example_id,
        inputs=base_request(AT),
        label=label,
        label_source=LabelSource.STORED_VERDICT,
        as_of=AT,
        split=split_of(example_id, seed),
    )


@pytest.mark.parametrize(
    ("decision", "verdict", "outcomes", "expected", "source"),
    [
        ("submit", "approve", [outcome(3600, 12.5)], Verdict.APPROVE, LabelSource.REALIZED_PNL),
        ("submit", "approve", [outcome(3600, -3.0)], Verdict.VETO, LabelSource.REALIZED_PNL),
        ("submit", "adjust", [], Verdict.ADJUST, LabelSource.STORED_VERDICT),
        ("submit", "approve", [outcome(3600, 0.0)], Verdict.APPROVE, LabelSource.STORED_VERDICT),
        (
            "submit",
            "approve",
            [outcome(3600, 5.0, filled=False)],
            Verdict.APPROVE,
            LabelSource.STORED_VERDICT,
        ),
        ("reject", "veto", [outcome(3600, 40.0)], Verdict.VETO, LabelSource.STORED_VERDICT),
    ],
)
def test_label_review_when_outcome_known_then_rule_v1_applies(
    decision: str,
    verdict: str,
    outcomes: list[ReviewOutcomeRow],
    expected: Verdict,
    source: LabelSource,
) -> None:
    label = label_review(verdict=verdict, decision=decision, outcomes=outcomes)
    assert (label.verdict, label.source) == (expected, source)


def test_label_review_when_several_horizons_then_longest_priced_one_decides() -> None:
    outcomes = [outcome(3600, 9.0, oid=1), outcome(86_400, -4.0, oid=2), outcome(604_800, None)]
    label = label_review(verdict="approve", decision="submit", outcomes=outcomes)
    assert label.verdict is Verdict.VETO
    assert label.realized_pnl == -4.0
    assert label.pnl_per_unit == pytest.approx(-0.4)


def test_label_review_when_rejected_then_no_pnl_is_attributed() -> None:
    label = label_review(verdict="veto", decision="reject", outcomes=[outcome(3600, 40.0)])
    assert label.realized_pnl is None
    assert label.pnl_per_unit is None


def test_split_when_recomputed_then_same_and_close_to_60_20_20() -> None:
    ids = [f"review-{i}" for i in range(3000)]
    first = [split_of(i, 7) for i in ids]
    assert first == [split_of(i, 7) for i in ids]
    counts = Counter(first)
    assert 0.56 < counts[Split.TRAIN] / 3000 < 0.64
    assert 0.17 < counts[Split.VAL] / 3000 < 0.23
    assert 0.17 < counts[Split.TEST] / 3000 < 0.23
    assert first != [split_of(i, 8) for i in ids]  # the seed matters


def test_dataset_hash_when_order_changes_then_same_and_when_label_changes_then_different() -> None:
    examples = [example(f"id-{i}") for i in range(5)]
    assert dataset_hash(examples) == dataset_hash(list(reversed(examples)))
    relabelled = [*examples[:-1], example("id-4", Verdict.VETO)]
    assert dataset_hash(relabelled) != dataset_hash(examples)


def test_dataset_hash_when_split_seed_changes_then_different() -> None:
    ids = [f"id-{i}" for i in range(20)]
    assert dataset_hash([example(i, seed=1) for i in ids]) != dataset_hash(
        [example(i, seed=2) for i in ids]
    )


def test_subsample_when_over_limit_then_deterministic_subset_of_that_size() -> None:
    ids = [f"r{i}" for i in range(100)]
    picked = subsample(ids, 3, 10)
    assert len(picked) == 10
    assert picked == subsample(list(reversed(ids)), 3, 10)
    assert subsample(ids, 3, 1000) == set(ids)
