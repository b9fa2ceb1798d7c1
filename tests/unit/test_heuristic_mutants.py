"""The heuristic where mutation testing found it unwatched: the rationale an operator reads, the
schema bounds every branch must respect, confidence precision, the spread scale, the smallest
reduction that still trades and a fractional position being cut."""

from __future__ import annotations

from decimal import Decimal

import pytest

from app.review.heuristic import review
from app.review.schemas import Verdict
from tests.unit.test_heuristic_table import scored

LONG = "x" * 300
MANY = tuple(f"f{i}" for i in range(40))

# ----------------------------------------------------------------------------- rationale


def test_review_when_two_blocking_flags_then_rationale_names_both_sorted() -> None:
    verdict = review(scored(flags=("luld_pause", "gap", "HALTED")))

    assert verdict.rationale == "Heuristic veto: market context flags halted, luld_pause."


def test_review_when_several_signals_then_rationale_lists_their_notes_in_order() -> None:
    # A reducing order is approved at any risk, so its rationale shows every note.
    verdict = review(
        scored(
            exposure="20000",
            action="sell",
            freshness="600",
            quality="0.1",
            regime={"entropy": "0.9"},
        )
    )

    assert verdict.rationale == (
        "Heuristic approve (risk 0.75): stale market context; low quality; regime uncertain."
    )


def test_review_when_regime_mixed_then_rationale_says_so() -> None:
    verdict = review(scored(regime={"entropy": "0.7"}))

    assert verdict.rationale == "Heuristic approve (risk 0.10): regime mixed."


def test_review_when_no_signal_then_rationale_says_no_risk_signals() -> None:
    assert review(scored()).rationale == "Heuristic approve (risk 0.00): no risk signals."


def test_review_when_share_is_astronomical_then_rationale_caps_it() -> None:
    # 2,000 of 0.001 equity is 2,000,000x; the note caps the share at 1,000,000x.
    verdict = review(scored(equity="0.001"))

    assert "post-trade exposure 100000000% of equity" in verdict.rationale


# ----------------------------------------------------------------------------- schema bounds
# A rationale over 280 characters or more than 32 flags would fail the verdict schema and turn
# the answer into an "unscorable" veto; every branch cuts both.


@pytest.mark.parametrize(
    ("knobs", "verdict_is"),
    [
        pytest.param({"flags": (LONG,)}, Verdict.APPROVE, id="approve"),
        pytest.param({"flags": (LONG, "gap")}, Verdict.ADJUST, id="adjust"),
        pytest.param({"flags": (LONG, "gap"), "qty": "1"}, Verdict.VETO, id="too_small"),
        pytest.param({"flags": (LONG, "a", "b", "c", "d")}, Verdict.VETO, id="veto"),
    ],
)
def test_review_when_notes_are_long_then_rationale_cut_to_280_in_every_branch(
    knobs: dict[str, object], verdict_is: Verdict
) -> None:
    verdict = review(scored(**knobs))  # pyright: ignore[reportArgumentType]

    assert verdict.verdict is verdict_is
    assert "unscorable_input" not in verdict.risk_flags
    assert len(verdict.rationale) == 280
    assert verdict.rationale.startswith("Heuristic ")


@pytest.mark.parametrize(
    ("knobs", "params", "verdict_is"),
    [
        pytest.param({"exposure": "20000", "action": "sell"}, None, Verdict.APPROVE, id="approve"),
        pytest.param({}, {"flag_points": 0.01}, Verdict.ADJUST, id="adjust"),
        pytest.param({"qty": "1"}, {"flag_points": 0.01}, Verdict.VETO, id="too_small"),
        pytest.param({}, None, Verdict.VETO, id="veto"),
        pytest.param({"spread": "5.00"}, None, Verdict.VETO, id="hard_veto"),
    ],
)
def test_review_when_forty_flags_then_at_most_32_reported_in_every_branch(
    knobs: dict[str, object], params: dict[str, float] | None, verdict_is: Verdict
) -> None:
    verdict = review(scored(flags=MANY, **knobs), params)  # pyright: ignore[reportArgumentType]

    assert verdict.verdict is verdict_is
    assert len(verdict.risk_flags) == 32
    assert verdict.risk_flags[0] == "context_f0"
    assert "unscorable_input" not in verdict.risk_flags


# ----------------------------------------------------------------------------- precision


def test_review_when_risk_has_many_decimals_then_confidence_has_four() -> None:
    p = {"flag_points": 0.123456}

    approve = review(scored(flags=("a",)), p)  # 0.123456
    adjust = review(scored(flags=("a", "b"), regime={"entropy": "0.7"}), p)  # 0.346912
    too_small = review(scored(qty="1", flags=("a", "b"), regime={"entropy": "0.7"}), p)
    veto = review(scored(flags=("a", "b", "c", "d", "e")), p)  # 0.61728

    assert (approve.verdict, approve.confidence) == (Verdict.APPROVE, 0.7765)
    assert (adjust.verdict, adjust.confidence) == (Verdict.ADJUST, 0.6765)
    assert (too_small.verdict, too_small.confidence) == (Verdict.VETO, 0.6735)
    assert (veto.verdict, veto.confidence) == (Verdict.VETO, 0.8086)


# ----------------------------------------------------------------------------- spread scale


def test_review_when_spread_is_a_hair_under_each_line_then_not_over_it() -> None:
    # Basis points are 1/10,000 of the price: 24.999 bps is not wide, 199.995 bps is no veto.
    under_wide = review(scored(spread="0.49998"))
    under_veto = review(scored(spread="3.9999"))

    assert under_wide.risk_flags == []
    assert under_veto.verdict is Verdict.APPROVE
    assert under_veto.risk_flags == ["wide_spread"]
    assert "spread 200 bps" in under_veto.rationale  # 199.995 reported rounded


# ----------------------------------------------------------------------------- reductions


@pytest.mark.parametrize(
    ("qty", "expected"),
    [
        pytest.param("2", Decimal("1"), id="one_share"),
        pytest.param("1.5", Decimal("0.9"), id="frac"),
    ],
)
def test_review_when_reduction_leaves_one_share_or_less_but_not_zero_then_adjusts(
    qty: str, expected: Decimal
) -> None:
    verdict = review(scored(qty=qty, regime={"entropy": "0.9"}))  # 0.35 -> 0.65x

    assert verdict.verdict is Verdict.ADJUST
    assert verdict.adjusted_qty == expected


@pytest.mark.parametrize(
    ("exposure", "action"),
    [pytest.param("0.5", "sell", id="small_long"), pytest.param("-0.5", "buy", id="small_short")],
)
def test_review_when_cutting_a_position_worth_under_one_then_still_reducing(
    exposure: str, action: str
) -> None:
    verdict = review(
        scored(exposure=exposure, action=action, flags=("a", "b"), freshness="600", quality="0.1")
    )  # 0.7

    assert verdict.verdict is Verdict.APPROVE
