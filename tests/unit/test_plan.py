"""plan_order: the reviewer may shrink or retype an order within policy, never enlarge it."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest

from app.gates.context import OrderPlan, resolve_reference_price
from app.gates.limits import AdjustmentLimits, PolicyLimits
from app.gates.plan import plan_order
from app.review.schemas import OrderType, ReviewRequest, ReviewVerdict
from tests.support.requests import base_request

NOW = datetime(2025, 3, 14, 14, 30, tzinfo=UTC)
SERVICE = PolicyLimits()  # service adjustment policy: max multiplier 1.0, every order type


def make_request(*, policy: dict[str, Any] | None = None, **decision: Any) -> ReviewRequest:
    body = base_request(now=NOW, **decision)
    body["policy"].update(policy or {})
    return ReviewRequest.model_validate(body)


def make_verdict(verdict: str = "adjust", **fields: Any) -> ReviewVerdict:
    return ReviewVerdict.model_validate(
        {"verdict": verdict, "confidence": 0.8, "uncertainty": "low", "rationale": "r", **fields}
    )


def plan(
    request: ReviewRequest, verdict: ReviewVerdict, limits: PolicyLimits = SERVICE
) -> OrderPlan:
    return plan_order(request, verdict, resolve_reference_price(request), limits)


def service_limits(max_qty_multiplier: str = "1.0", types: tuple[str, ...] = ()) -> PolicyLimits:
    adjustment = AdjustmentLimits.model_validate(
        {"max_qty_multiplier": max_qty_multiplier, "allowed_order_types": types or tuple(OrderType)}
    )
    return PolicyLimits(adjustment=adjustment)


# ----------------------------------------------------------------------------- unchanged


@pytest.mark.parametrize("verdict", ["approve", "veto", "abstain", "escalate"])
def test_plan_when_not_adjusting_then_order_is_unchanged(verdict: str) -> None:
    request = make_request()

    # An adjusted_qty alongside a non-adjust verdict is ignored, not applied.
    result = plan(request, make_verdict(verdict, adjusted_qty="3"))

    assert result == OrderPlan(
        qty=Decimal(10),
        order_type=OrderType.MARKET,
        limit_price=None,
        limit_price_assumed=False,
        resized=False,
        adjustment_problem=None,
        adjustment_note="no adjustment requested",
    )


# ----------------------------------------------------------------------------- resizing


def test_plan_when_adjusting_within_bounds_then_order_is_resized() -> None:
    result = plan(make_request(), make_verdict(adjusted_qty="5"))

    assert result.qty == Decimal(5)
    assert result.resized is True
    assert result.adjustment_problem is None
    assert "qty 10 -> 5" in result.adjustment_note
    assert "clamped" not in result.adjustment_note


def test_plan_when_adjusting_to_the_same_qty_then_not_marked_resized() -> None:
    result = plan(make_request(), make_verdict(adjusted_qty="10"))

    assert (result.qty, result.resized, result.adjustment_problem) == (Decimal(10), False, None)


@pytest.mark.parametrize(
    ("request_max", "service_max", "wanted", "expected"),
    [
        pytest.param("1.5", "1.0", "20", "10", id="request_allows_more_than_service"),
        pytest.param("3.0", "2.0", "40", "20", id="service_above_one_still_caps"),
        pytest.param("0.8", "1.0", "20", "8", id="request_policy_is_the_tighter_cap"),
        pytest.param("1.0", "0.5", "9", "5", id="service_policy_is_the_tighter_cap"),
    ],
)
def test_plan_when_adjustment_enlarges_past_max_then_clamped_to_the_tighter_max(
    request_max: str, service_max: str, wanted: str, expected: str
) -> None:
    request = make_request(policy={"max_qty_multiplier": request_max})

    result = plan(request, make_verdict(adjusted_qty=wanted), service_limits(service_max))

    cap = Decimal(10) * min(Decimal(request_max), Decimal(service_max))
    assert result.qty == Decimal(expected)
    assert result.qty <= cap
    assert result.adjustment_problem is None
    assert "clamped" in result.adjustment_note


def test_plan_when_service_max_is_one_then_never_above_the_original_qty() -> None:
    request = make_request(policy={"max_qty_multiplier": "5"})

    for wanted in ("10.5", "11", "50", "1000000"):
        assert plan(request, make_verdict(adjusted_qty=wanted)).qty == Decimal(10), wanted


def test_plan_when_adjustment_below_min_multiplier_then_clamped_up_to_min() -> None:
    request = make_request(qty="100", policy={"min_qty_multiplier": "0.25"})

    result = plan(request, make_verdict(adjusted_qty="1"))

    assert result.qty == Decimal(25)
    assert result.resized is True
    assert "clamped" in result.adjustment_note


def test_plan_when_min_multiplier_bound_is_fractional_then_qty_stays_within_bounds() -> None:
    # 10 x 0.25 = 2.5 shares: whole shares inside [2.5, 10] start at 3. Rounding the clamped
    # 2.5 down gives 2, i.e. 0.2x, below the request's own min_qty_multiplier.
    request = make_request(qty="10", policy={"min_qty_multiplier": "0.25"})

    result = plan(request, make_verdict(adjusted_qty="1"))

    assert result.adjustment_problem is None
    assert Decimal("2.5") <= result.qty <= Decimal(10)


def test_plan_when_min_multiplier_above_max_then_max_wins() -> None:
    request = make_request(policy={"min_qty_multiplier": "2", "max_qty_multiplier": "3"})

    result = plan(request, make_verdict(adjusted_qty="4"))

    assert result.qty == Decimal(10)  # min is capped at the service max (1.0), not raised to 2x


# ----------------------------------------------------------------------------- refusals


def test_plan_when_request_policy_forbids_adjustment_then_problem_and_original_qty() -> None:
    request = make_request(policy={"adjustment_allowed": False})

    result = plan(request, make_verdict(adjusted_qty="5"))

    assert result.adjustment_problem
    assert "forbids" in result.adjustment_problem
    assert (result.qty, result.resized) == (Decimal(10), False)


@pytest.mark.parametrize(
    ("request_types", "service_types", "adjusted_type"),
    [
        pytest.param(["market", "limit"], (), "stop", id="request_policy_excludes"),
        pytest.param(["market", "limit"], ("market",), "limit", id="service_policy_excludes"),
    ],
)
def test_plan_when_adjusted_order_type_not_allowed_then_problem(
    request_types: list[str], service_types: tuple[str, ...], adjusted_type: str
) -> None:
    request = make_request(policy={"allowed_order_types": request_types})
    limits = service_limits(types=service_types)

    result = plan(
        request, make_verdict(adjusted_qty="5", adjusted_order_type=adjusted_type), limits
    )

    assert result.adjustment_problem
    assert adjusted_type in result.adjustment_problem
    assert (result.qty, result.order_type, result.resized) == (
        Decimal(10),
        OrderType.MARKET,
        False,
    )


def test_plan_when_adjusted_qty_rounds_to_zero_then_problem() -> None:
    request = make_request(policy={"min_qty_multiplier": "0"})

    result = plan(request, make_verdict(adjusted_qty="0.4"))

    assert result.adjustment_problem
    assert "rounds to zero" in result.adjustment_problem
    assert result.qty == Decimal(10)


# ----------------------------------------------------------------------------- rounding


@pytest.mark.parametrize(
    ("qty", "wanted", "expected"),
    [
        pytest.param("10", "7.9", "7", id="whole_shares_round_down"),
        pytest.param("10", "7.0001", "7", id="whole_shares_never_round_up"),
        pytest.param("2.5", "1.2399", "1.2", id="one_decimal_kept"),
        pytest.param("0.125", "0.09999", "0.099", id="three_decimals_kept"),
        pytest.param("1.50", "1.259", "1.2", id="trailing_zero_not_a_decimal"),
    ],
)
def test_plan_when_adjusted_qty_has_more_decimals_then_rounded_down_like_original(
    qty: str, wanted: str, expected: str
) -> None:
    request = make_request(qty=qty, policy={"min_qty_multiplier": "0"})

    result = plan(request, make_verdict(adjusted_qty=wanted))

    assert result.qty == Decimal(expected)
    assert result.qty.as_tuple().exponent == Decimal(expected).as_tuple().exponent


# ----------------------------------------------------------------------------- limit price


@pytest.mark.parametrize(
    ("decision", "expected", "assumed"),
    [
        pytest.param(
            {"limit_price": "199", "params": {"price_snapshot": "200", "limit_price": "198"}},
            "199",
            False,
            id="decision_limit_price_first",
        ),
        pytest.param(
            {"params": {"price_snapshot": "200", "limit_price": "198"}},
            "198",
            False,
            id="then_params_limit_price",
        ),
        pytest.param({}, "200.00", True, id="then_reference_price_assumed"),
        pytest.param(
            # A limit price the strategy gave but that is unusable is never swapped for an
            # assumed one: no limit price, and the collar gate fails closed.
            {"params": {"price_snapshot": "200", "limit_price": "0"}},
            None,
            False,
            id="non_positive_params_limit_price_not_replaced",
        ),
        pytest.param(
            {"params": {"price_snapshot": "200", "limit_price": "n/a"}},
            None,
            False,
            id="unparseable_params_limit_price_not_replaced",
        ),
    ],
)
def test_plan_when_limit_order_then_limit_price_resolved_in_order(
    decision: dict[str, Any], expected: str | None, assumed: bool
) -> None:
    request = make_request(order_type="limit", **decision)

    result = plan(request, make_verdict("approve"))

    assert result.limit_price == (Decimal(expected) if expected is not None else None)
    assert result.limit_price_assumed is assumed


def test_plan_when_market_order_then_no_limit_price() -> None:
    request = make_request(limit_price="199")

    result = plan(request, make_verdict("approve"))

    assert (result.limit_price, result.limit_price_assumed) == (None, False)


def test_plan_when_adjusted_to_limit_without_price_then_reference_price_assumed() -> None:
    result = plan(make_request(), make_verdict(adjusted_order_type="limit"))

    assert result.order_type is OrderType.LIMIT
    assert (result.limit_price, result.limit_price_assumed) == (Decimal("200.00"), True)


def test_plan_when_adjusted_limit_price_given_then_it_replaces_the_original() -> None:
    request = make_request(order_type="limit", limit_price="199")

    result = plan(request, make_verdict(adjusted_qty="5", adjusted_limit_price="198.5"))

    assert (result.limit_price, result.limit_price_assumed) == (Decimal("198.5"), False)


def test_plan_when_adjusted_from_limit_to_market_then_limit_price_dropped() -> None:
    request = make_request(order_type="limit", limit_price="199")

    result = plan(request, make_verdict(adjusted_order_type="market"))

    assert result.order_type is OrderType.MARKET
    assert (result.limit_price, result.limit_price_assumed) == (None, False)
    assert "order type limit -> market" in result.adjustment_note


# ----------------------------------------------------------------------------- lots, precision


def lot_limits(lot: str) -> PolicyLimits:
    return PolicyLimits.model_validate({"quantity": {"lot_size": lot}})


def test_plan_when_min_and_max_leave_no_step_of_order_precision_then_problem() -> None:
    # 10 x [0.25, 0.26] = [2.5, 2.6]: no whole share lies inside, the adjustment is refused.
    request = make_request(
        qty="10", policy={"min_qty_multiplier": "0.25", "max_qty_multiplier": "0.26"}
    )

    result = plan(request, make_verdict(adjusted_qty="2.55"))

    assert result.adjustment_problem == "no quantity in [2.50, 2.60] at order precision"
    assert result.qty == Decimal(10)  # the original order stays what the gates judge
    assert result.resized is False


def test_plan_when_min_and_max_hold_exactly_one_step_then_that_step() -> None:
    # [2.5, 3.0]: 3 is the one whole share inside (at the upper limit).
    request = make_request(
        qty="10", policy={"min_qty_multiplier": "0.25", "max_qty_multiplier": "0.3"}
    )

    result = plan(request, make_verdict(adjusted_qty="2.55"))

    assert (result.qty, result.adjustment_problem) == (Decimal(3), None)


@pytest.mark.parametrize(
    ("qty", "lot", "expected", "resized"),
    [
        pytest.param("10", "0.000001", "10", False, id="whole_shares_untouched"),
        pytest.param("0.0000019", "0.000001", "0.000001", True, id="rounded_down_to_one_lot"),
        pytest.param("0.0000009", "0.000001", "0", True, id="below_one_lot_rounds_to_zero"),
        pytest.param("250", "100", "200", True, id="round_lots_of_100"),
        pytest.param("300", "100", "300", False, id="exact_round_lots"),
        pytest.param("1E+3", "1", "1000", False, id="exponent_notation_is_a_whole_number"),
    ],
)
def test_plan_when_qty_is_not_a_whole_lot_then_rounded_down_to_the_lot(
    qty: str, lot: str, expected: str, resized: bool
) -> None:
    result = plan(make_request(qty=qty), make_verdict("approve"), lot_limits(lot))

    assert result.qty == Decimal(expected)
    assert result.resized is resized
    assert result.adjustment_problem is None
    if resized:
        assert f"rounded down to lot size {lot}: {expected}" in result.adjustment_note
        assert "E" not in result.adjustment_note


def test_plan_when_adjusting_with_round_lots_then_result_is_a_whole_lot_within_bounds() -> None:
    request = make_request(qty="1000", policy={"min_qty_multiplier": "0.25"})

    result = plan(request, make_verdict(adjusted_qty="333"), lot_limits("100"))

    assert (result.qty, result.adjustment_problem) == (Decimal(300), None)


def test_plan_when_min_bound_needs_rounding_up_to_a_lot_then_next_lot() -> None:
    # [250, 1000] with lots of 100: 250 rounds up to 300.
    request = make_request(qty="1000", policy={"min_qty_multiplier": "0.25"})

    result = plan(request, make_verdict(adjusted_qty="1"), lot_limits("100"))

    assert (result.qty, result.adjustment_problem) == (Decimal(300), None)


def test_plan_when_arithmetic_cannot_complete_then_problem_not_exception() -> None:
    # A lot size so small that qty / lot overflows the context's exponent range.
    limits = PolicyLimits.model_validate({"quantity": {"lot_size": "1e-999999"}})

    result = plan(make_request(), make_verdict("approve"), limits)

    assert result.adjustment_problem is not None
    assert "could not be planned" in result.adjustment_problem
    assert result.qty == Decimal(10)


def test_plan_when_largest_bounded_qty_is_adjusted_then_computes_exactly() -> None:
    # 15 integer digits + 18 decimals: 33 digits, more than the default 28-digit context holds.
    qty = "999999999999999.999999999999999999"
    request = make_request(qty=qty, policy={"min_qty_multiplier": "0.5"})

    result = plan(
        request,
        make_verdict(adjusted_qty="500000000000000.000000000000000001"),
        lot_limits("0.000000000000000001"),
    )

    assert result.adjustment_problem is None
    assert result.qty == Decimal("500000000000000.000000000000000001")
