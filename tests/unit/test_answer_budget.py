"""The tail reserve follows the measured tail (RFC 6298 estimator), bounded on both sides."""

from __future__ import annotations

import pytest

from app.review.budget import AnswerBudget, TailEstimator


def test_reserve_when_nothing_measured_then_floor() -> None:
    assert TailEstimator(floor_s=0.005, cap_s=0.5).reserve() == 0.005


def test_reserve_when_steady_tail_then_close_to_it_and_never_below_floor() -> None:
    est = TailEstimator(floor_s=0.001, cap_s=0.5)
    for _ in range(200):
        est.observe(0.004)
    assert est.reserve() == pytest.approx(0.004, rel=0.01)
    est = TailEstimator(floor_s=0.010, cap_s=0.5)
    for _ in range(50):
        est.observe(0.001)
    assert est.reserve() == 0.010


def test_reserve_when_tail_gets_slower_then_rises_within_a_few_reviews() -> None:
    est = TailEstimator(floor_s=0.001, cap_s=0.5)
    for _ in range(100):
        est.observe(0.002)
    for _ in range(3):
        est.observe(0.050)
    assert est.reserve() > 0.050  # srtt + 4 * rttvar: the deviation covers the jump


def test_reserve_when_tail_huge_then_capped() -> None:
    est = TailEstimator(floor_s=0.001, cap_s=0.5)
    est.observe(30.0)
    assert est.reserve() == 0.5


def test_negative_sample_when_observed_then_ignored() -> None:
    est = TailEstimator(floor_s=0.001, cap_s=0.5)
    est.observe(-1.0)
    assert est.samples == 0


def test_llm_deadline_when_reserve_measured_then_arrival_plus_deadline_minus_reserve() -> None:
    budget = AnswerBudget(1.0, floor_s=0.005)
    assert budget.answer_deadline(100.0) == 101.0
    assert budget.llm_deadline(100.0) == pytest.approx(100.995)
    for _ in range(100):
        budget.observe_tail(0.020)
    assert budget.llm_deadline(100.0) == pytest.approx(100.98, abs=0.001)


def test_floor_when_larger_than_a_quarter_of_the_deadline_then_a_quarter() -> None:
    budget = AnswerBudget(0.01, floor_s=1.0)
    assert budget.llm_deadline(0.0) == pytest.approx(0.0075)


def test_reserve_when_tails_huge_then_llm_step_keeps_three_quarters() -> None:
    budget = AnswerBudget(1.0, floor_s=0.005)
    for _ in range(20):
        budget.observe_tail(5.0)
    assert budget.llm_deadline(0.0) == pytest.approx(0.75)
