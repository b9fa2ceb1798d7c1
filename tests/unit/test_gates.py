"""Every gate, on its pass side and on each of its failure modes (pure: no I/O, fixed clock).

Each row starts from ``base_request()`` (a clean order every gate passes), changes one thing,
and names the gate it expects to move. A failing gate must say why in its reason.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest

from app.gates.checks import GATES, GateCode, GateResult, evaluate
from app.gates.context import (
    GateContext,
    TradingState,
    current_position_qty,
    resolve_reference_price,
)
from app.gates.limits import PolicyLimits
from app.gates.plan import plan_order
from app.review.schemas import ReviewRequest, ReviewVerdict
from tests.support.requests import base_request, iso

NOW = datetime(2025, 3, 14, 14, 30, tzinfo=UTC)

# The shipped config/policy.yaml, inlined so these tests read no file.
LIMITS_DATA: dict[str, Any] = {
    "version": 1,
    "symbols": {"allow": [], "deny": []},
    "reference_price": {"max_age_seconds": 300, "max_future_skew_seconds": 5},
    "limit_price_collar_pct": "0.05",
    "max_notional_per_order": "250000",
    "max_notional_pct_equity": "0.10",
    "max_position_pct_equity": "0.25",
    "max_gross_exposure_pct_equity": "2.0",
    "shorting_allowed": False,
    "order_rate": {"window_seconds": 60, "max_orders_per_strategy": 30},
    "market_context": {
        "required": False,
        "max_freshness_seconds": 900,
        "min_quality_score": 0.5,
        "blocking_risk_flags": ["halted", "trading_halt", "luld_pause", "circuit_breaker"],
    },
    "review": {
        "min_confidence": 0.5,
        "blocked_uncertainty": ["high"],
        "abstain_action": "reject",
        "required_checks_allowlist": [
            "confirm_liquidity",
            "confirm_spread",
            "confirm_market_hours",
            "confirm_position_limits",
            "confirm_no_pending_news",
        ],
    },
    "adjustment": {
        "max_qty_multiplier": "1.0",
        "allowed_order_types": ["market", "limit", "stop", "stop_limit"],
    },
}

APPROVE: dict[str, Any] = {
    "verdict": "approve",
    "confidence": 0.8,
    "uncertainty": "low",
    "rationale": "clean order",
}

GATE_BY_CODE = {GateCode(gate.__name__): gate for gate in GATES}

# ----------------------------------------------------------------------------- builders

Body = dict[str, Any]
Tweak = Callable[[Body], None]
CtxTweak = Callable[[GateContext], GateContext]


def _merge(base: dict[str, Any], overrides: dict[str, Any]) -> dict[str, Any]:
    out = copy.deepcopy(base)
    for key, value in overrides.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _merge(out[key], value)  # pyright: ignore[reportUnknownArgumentType]
        else:
            out[key] = value
    return out


def make_limits(**overrides: Any) -> PolicyLimits:
    return PolicyLimits.model_validate(_merge(LIMITS_DATA, overrides))


LIMITS = make_limits()


def put(path: str, value: Any) -> Tweak:
    """Set a dotted path of the request body, e.g. ``put("market.as_of", ...)``."""
    *parents, leaf = path.split(".")

    def tweak(body: Body) -> None:
        node = body
        for key in parents:
            node = node[key]
        node[leaf] = value

    return tweak


def drop(path: str) -> Tweak:
    *parents, leaf = path.split(".")

    def tweak(body: Body) -> None:
        node = body
        for key in parents:
            node = node[key]
        del node[leaf]

    return tweak


def hold(qty: str, side: str = "long", symbol: str = "AAPL") -> Tweak:
    """An existing broker position in the order's symbol."""

    def tweak(body: Body) -> None:
        body["portfolio"]["positions"].append({"symbol": symbol, "qty": qty, "side": side})

    return tweak


def sell(qty: str = "10") -> tuple[Tweak, ...]:
    return put("decision.action", "sell"), put("decision.qty", qty)


def limit_order(price: str | None, kind: str = "limit") -> tuple[Tweak, ...]:
    tweaks: tuple[Tweak, ...] = (put("decision.order_type", kind),)
    return (*tweaks, put("decision.limit_price", price)) if price is not None else tweaks


NO_PRICE: tuple[Tweak, ...] = (drop("market"), put("decision.params", {}))


def market_context(**fields: Any) -> Tweak:
    mc: dict[str, Any] = {
        "contextVersion": "v1",
        "symbol": "AAPL",
        "asOfUtc": iso(NOW - timedelta(seconds=30)),
        "freshnessSeconds": "30",
        "qualityScore": "0.9",
        "sourceCount": 3,
        "riskFlags": [],
        "domains": {},
    }
    return put("market_context", {**mc, **fields})


def build_context(
    *tweaks: Tweak,
    verdict: dict[str, Any] | None = None,
    limits: PolicyLimits = LIMITS,
    state: TradingState = TradingState.ACTIVE,
    live: bool = False,
    recent: int = 0,
) -> GateContext:
    """The context the pipeline would build, from a tweaked clean request, at ``NOW``."""
    body = base_request(now=NOW)
    for tweak in tweaks:
        tweak(body)
    request = ReviewRequest.model_validate(body)
    review = ReviewVerdict.model_validate({**APPROVE, **(verdict or {})})
    reference = resolve_reference_price(request)
    return GateContext(
        request=request,
        verdict=review,
        plan=plan_order(request, review, reference, limits),
        reference=reference,
        now=NOW,
        trading_state=state,
        live_trading_enabled=live,
        recent_orders_for_strategy=recent,
        current_position_qty=current_position_qty(request),
    )


# Contexts the schema would refuse: the input_sanity gate is defence in depth behind it.


def plan_qty(value: str) -> CtxTweak:
    return lambda ctx: replace(ctx, plan=replace(ctx.plan, qty=Decimal(value)))


def plan_limit_price(value: str) -> CtxTweak:
    return lambda ctx: replace(ctx, plan=replace(ctx.plan, limit_price=Decimal(value)))


def reference_price(value: str) -> CtxTweak:
    return lambda ctx: replace(ctx, reference=replace(ctx.reference, price=Decimal(value)))


def confidence_nan(ctx: GateContext) -> GateContext:
    return replace(ctx, verdict=ctx.verdict.model_copy(update={"confidence": math.nan}))


# ----------------------------------------------------------------------------- the table


@dataclass(frozen=True)
class Row:
    gate: GateCode
    when: str
    passes: bool
    mentions: str = ""  # the reason must contain this (case-insensitive)
    body: tuple[Tweak, ...] = ()
    verdict: dict[str, Any] = field(default_factory=dict)
    limits: dict[str, Any] = field(default_factory=dict)
    state: TradingState = TradingState.ACTIVE
    live: bool = False
    recent: int = 0
    ctx: CtxTweak | None = None

    @property
    def id(self) -> str:
        return f"{self.gate}_when_{self.when}_then_{'passes' if self.passes else 'fails'}"

    def context(self) -> GateContext:
        ctx = build_context(
            *self.body,
            verdict=self.verdict,
            limits=make_limits(**self.limits),
            state=self.state,
            live=self.live,
            recent=self.recent,
        )
        return self.ctx(ctx) if self.ctx is not None else ctx


G = GateCode
REDUCING, HALTED = TradingState.REDUCING, TradingState.HALTED
ADJUST_TO_5: dict[str, Any] = {"verdict": "adjust", "adjusted_qty": "5"}

# fmt: off
ROWS: list[Row] = [
    # trading_state
    Row(G.TRADING_STATE, "active", True, "ACTIVE"),
    Row(G.TRADING_STATE, "halted", False, "HALTED", state=HALTED),
    Row(G.TRADING_STATE, "halted_even_for_a_reducing_sell", False, "HALTED",
        body=(hold("100"), *sell()), state=HALTED),
    Row(G.TRADING_STATE, "reducing_and_sell_shrinks_a_long", True, "reduces",
        body=(hold("100"), *sell()), state=REDUCING),
    Row(G.TRADING_STATE, "reducing_and_sell_closes_a_long", True, "reduces",
        body=(hold("10"), *sell("10")), state=REDUCING),
    Row(G.TRADING_STATE, "reducing_and_buy_covers_part_of_a_short", True, "reduces",
        body=(hold("100", side="short"),), state=REDUCING),
    Row(G.TRADING_STATE, "reducing_and_buy_opens_a_position", False, "REDUCING",
        state=REDUCING),
    Row(G.TRADING_STATE, "reducing_and_buy_adds_to_a_long", False, "REDUCING",
        body=(hold("100"),), state=REDUCING),
    Row(G.TRADING_STATE, "reducing_and_sell_flips_a_long_to_a_short", False, "REDUCING",
        body=(hold("5"), *sell("10")), state=REDUCING),
    # trading_mode
    Row(G.TRADING_MODE, "paper", True, "paper"),
    Row(G.TRADING_MODE, "live_and_live_disabled", False, "live trading is not enabled",
        body=(put("trading_mode", "live"),)),
    Row(G.TRADING_MODE, "live_and_live_enabled", True, "live",
        body=(put("trading_mode", "live"),), live=True),
    # input_sanity
    Row(G.INPUT_SANITY, "all_values_positive", True, "finite and positive"),
    Row(G.INPUT_SANITY, "planned_qty_zero", False, "qty 0", ctx=plan_qty("0")),
    Row(G.INPUT_SANITY, "planned_qty_nan", False, "qty NaN", ctx=plan_qty("NaN")),
    Row(G.INPUT_SANITY, "limit_price_negative", False, "limit price -1",
        body=limit_order("200"), ctx=plan_limit_price("-1")),
    Row(G.INPUT_SANITY, "reference_price_infinite", False, "reference price Infinity",
        ctx=reference_price("Infinity")),
    Row(G.INPUT_SANITY, "confidence_nan", False, "confidence is not finite", ctx=confidence_nan),
    # symbol_allowed
    Row(G.SYMBOL_ALLOWED, "no_lists", True, "AAPL allowed"),
    Row(G.SYMBOL_ALLOWED, "on_deny_list", False, "deny list",
        limits={"symbols": {"deny": ["AAPL"]}}),
    Row(G.SYMBOL_ALLOWED, "on_deny_list_in_lower_case", False, "deny list",
        limits={"symbols": {"deny": ["aapl"]}}),
    Row(G.SYMBOL_ALLOWED, "on_both_lists", False, "deny list",
        limits={"symbols": {"allow": ["AAPL"], "deny": ["AAPL"]}}),
    Row(G.SYMBOL_ALLOWED, "missing_from_allow_list", False, "not on the allow list",
        limits={"symbols": {"allow": ["MSFT"]}}),
    Row(G.SYMBOL_ALLOWED, "on_allow_list_in_lower_case", True, "allowed",
        limits={"symbols": {"allow": ["aapl", "MSFT"]}}),
    Row(G.SYMBOL_ALLOWED, "market_data_for_another_symbol", False, "market data is for MSFT",
        body=(put("market.symbol", "MSFT"),)),
    # reference_price
    Row(G.REFERENCE_PRICE, "market_price_fresh", True, "market.price"),
    Row(G.REFERENCE_PRICE, "no_market_and_no_params_price", False, "no reference price",
        body=NO_PRICE),
    Row(G.REFERENCE_PRICE, "market_without_price_and_no_params_price", False,
        "no reference price", body=(drop("market.price"), put("decision.params", {}))),
    Row(G.REFERENCE_PRICE, "params_price_not_positive", False, "no reference price",
        body=(drop("market"), put("decision.params", {"price_snapshot": "0", "price": "-3"}))),
    Row(G.REFERENCE_PRICE, "no_market_then_params_price_snapshot", True,
        "params.price_snapshot", body=(drop("market"),)),
    Row(G.REFERENCE_PRICE, "market_price_stale", False, "stale",
        body=(put("market.as_of", iso(NOW - timedelta(seconds=301))),)),
    Row(G.REFERENCE_PRICE, "market_price_exactly_max_age", True, "market.price",
        body=(put("market.as_of", iso(NOW - timedelta(seconds=300))),)),
    Row(G.REFERENCE_PRICE, "params_price_stale", False, "stale",
        body=(drop("market"), put("decision.event_ts", iso(NOW - timedelta(hours=1))))),
    Row(G.REFERENCE_PRICE, "market_price_from_the_future", False, "in the future",
        body=(put("market.as_of", iso(NOW + timedelta(seconds=10))),)),
    Row(G.REFERENCE_PRICE, "market_price_ahead_within_clock_skew", True, "market.price",
        body=(put("market.as_of", iso(NOW + timedelta(seconds=4))),)),
    # price_collar
    Row(G.PRICE_COLLAR, "market_order", True, "not a limit order"),
    Row(G.PRICE_COLLAR, "limit_inside_collar", True, "within", body=limit_order("205")),
    Row(G.PRICE_COLLAR, "limit_above_collar", False, "collar", body=limit_order("211")),
    Row(G.PRICE_COLLAR, "limit_below_collar", False, "collar", body=limit_order("189")),
    Row(G.PRICE_COLLAR, "stop_limit_outside_collar", False, "collar",
        body=limit_order("230", kind="stop_limit")),
    Row(G.PRICE_COLLAR, "limit_price_from_params", True, "within",
        body=(*limit_order(None), put("decision.params.limit_price", "202"))),
    Row(G.PRICE_COLLAR, "limit_price_assumed_from_reference", True, "assumed",
        body=limit_order(None)),
    Row(G.PRICE_COLLAR, "limit_order_without_any_price", False,
        "without a limit or reference price", body=(*limit_order(None), *NO_PRICE)),
    # max_notional
    Row(G.MAX_NOTIONAL, "small_order", True, "of equity"),
    Row(G.MAX_NOTIONAL, "above_absolute_cap", False, "> cap",
        body=(put("portfolio.equity", "10000000"), put("decision.qty", "1500"))),
    Row(G.MAX_NOTIONAL, "above_share_of_equity", False, "of equity (max 10.00%)",
        body=(put("decision.qty", "60"),)),
    Row(G.MAX_NOTIONAL, "exactly_at_share_of_equity", True, "10.00% of equity",
        body=(put("decision.qty", "50"),)),
    Row(G.MAX_NOTIONAL, "limit_price_pushes_share_over_max", False, "of equity (max",
        body=(put("decision.qty", "50"), *limit_order("205"))),
    Row(G.MAX_NOTIONAL, "equity_missing", False, "equity unknown",
        body=(drop("portfolio.equity"),)),
    Row(G.MAX_NOTIONAL, "equity_zero", False, "equity unknown",
        body=(put("portfolio.equity", "0"),)),
    Row(G.MAX_NOTIONAL, "no_price", False, "without a price", body=NO_PRICE),
    # position_limit
    Row(G.POSITION_LIMIT, "post_trade_position_small", True, "of equity"),
    Row(G.POSITION_LIMIT, "buy_grows_long_past_limit", False, "post-trade position is 26.00%",
        body=(hold("100"), put("decision.qty", "30"))),
    Row(G.POSITION_LIMIT, "sell_reduces_long_already_over_limit", True, "does not increase",
        body=(hold("200"), *sell())),
    Row(G.POSITION_LIMIT, "sell_flips_long_to_large_short", False, "post-trade position",
        body=(hold("10"), *sell("140"))),
    Row(G.POSITION_LIMIT, "equity_missing_and_position_grows", False, "equity missing",
        body=(drop("portfolio.equity"),)),
    # gross_exposure
    Row(G.GROSS_EXPOSURE, "well_below_max", True, "0.22x"),
    Row(G.GROSS_EXPOSURE, "post_trade_over_twice_equity", False, "2.01x",
        body=(put("portfolio.total_exposure", "199000"),)),
    Row(G.GROSS_EXPOSURE, "total_exposure_not_reported", False, "not reported",
        body=(drop("portfolio.total_exposure"),)),
    Row(G.GROSS_EXPOSURE, "equity_missing", False, "equity missing",
        body=(drop("portfolio.equity"),)),
    Row(G.GROSS_EXPOSURE, "sell_reduces_while_already_over_max", True, "does not increase",
        body=(put("portfolio.total_exposure", "500000"), hold("100"), *sell())),
    # buying_power
    Row(G.BUYING_POWER, "enough", True, "needs 2000.00"),
    Row(G.BUYING_POWER, "insufficient", False, "needs 2000.00, buying power 1000.00",
        body=(put("portfolio.buying_power", "1000"),)),
    Row(G.BUYING_POWER, "negative", False, "buying power -5.00",
        body=(put("portfolio.buying_power", "-5"),)),
    Row(G.BUYING_POWER, "unknown", False, "buying power or price unknown",
        body=(drop("portfolio.buying_power"),)),
    Row(G.BUYING_POWER, "limit_price_needs_more_than_available", False, "needs 2050.00",
        body=(*limit_order("205"), put("portfolio.buying_power", "2040"))),
    Row(G.BUYING_POWER, "sell_reduces_with_zero_buying_power", True, "does not add",
        body=(hold("100"), *sell(), put("portfolio.buying_power", "0"))),
    # shorting
    Row(G.SHORTING, "buy", True, "no disallowed short"),
    Row(G.SHORTING, "sell_without_position", False, "short position of -10",
        body=sell()),
    Row(G.SHORTING, "sell_more_than_long", False, "short position of -5",
        body=(hold("5"), *sell("10"))),
    Row(G.SHORTING, "sell_adds_to_existing_short", False, "short position of -110",
        body=(hold("100", side="short"), *sell())),
    Row(G.SHORTING, "sell_closes_long_exactly", True, "no disallowed short",
        body=(hold("10"), *sell("10"))),
    Row(G.SHORTING, "sell_without_position_and_shorting_allowed", True, "no disallowed short",
        body=sell(), limits={"shorting_allowed": True}),
    # order_rate
    Row(G.ORDER_RATE, "below_max", True, "29 orders", recent=29),
    Row(G.ORDER_RATE, "at_max", False, "30 orders submitted by test-strategy", recent=30),
    Row(G.ORDER_RATE, "above_max", False, "(max 30)", recent=31),
    # market_context
    Row(G.MARKET_CONTEXT, "absent_and_not_required", True, "not required"),
    Row(G.MARKET_CONTEXT, "absent_and_required", False, "required but absent",
        limits={"market_context": {"required": True}}),
    Row(G.MARKET_CONTEXT, "present_fresh_and_good", True, "fresh and usable",
        body=(market_context(),)),
    Row(G.MARKET_CONTEXT, "freshness_seconds_over_max", False, "901s old",
        body=(market_context(freshnessSeconds="901"),)),
    Row(G.MARKET_CONTEXT, "as_of_too_old", False, "as of 15m ago, max 900 s",
        body=(market_context(asOfUtc=iso(NOW - timedelta(seconds=901))),)),
    Row(G.MARKET_CONTEXT, "quality_too_low", False, "quality 0.4",
        body=(market_context(qualityScore="0.4"),)),
    Row(G.MARKET_CONTEXT, "blocking_flag", False, "blocking risk flags: halted",
        body=(market_context(riskFlags=["earnings_soon", "halted"]),)),
    Row(G.MARKET_CONTEXT, "blocking_flag_in_upper_case", False, "blocking risk flags: LULD_PAUSE",
        body=(market_context(riskFlags=["LULD_PAUSE"]),)),
    Row(G.MARKET_CONTEXT, "only_non_blocking_flags", True, "fresh and usable",
        body=(market_context(riskFlags=["earnings_soon"]),)),
    # review_confidence
    Row(G.REVIEW_CONFIDENCE, "approve_confident", True, "confidence 0.80"),
    Row(G.REVIEW_CONFIDENCE, "approve_with_low_confidence", False, "confidence 0.30 < floor",
        verdict={"confidence": 0.3}),
    Row(G.REVIEW_CONFIDENCE, "approve_with_blocked_uncertainty", False,
        "uncertainty high is blocked", verdict={"uncertainty": "high"}),
    Row(G.REVIEW_CONFIDENCE, "adjust_with_low_confidence", False, "confidence 0.20 < floor",
        verdict={**ADJUST_TO_5, "confidence": 0.2}),
    Row(G.REVIEW_CONFIDENCE, "veto_with_low_confidence_and_high_uncertainty", True,
        "does not rely on confidence",
        verdict={"verdict": "veto", "confidence": 0.1, "uncertainty": "high"}),
    Row(G.REVIEW_CONFIDENCE, "abstain_with_zero_confidence", True,
        "does not rely on confidence", verdict={"verdict": "abstain", "confidence": 0.0}),
    # required_checks
    Row(G.REQUIRED_CHECKS, "none_requested", True, "no unknown"),
    Row(G.REQUIRED_CHECKS, "all_on_allowlist", True, "no unknown",
        verdict={"required_checks": ["confirm_spread", "confirm_liquidity"]}),
    Row(G.REQUIRED_CHECKS, "one_not_on_allowlist", False, "not on the allowlist: call_the_desk",
        verdict={"required_checks": ["confirm_spread", "call_the_desk"]}),
    # adjustment
    Row(G.ADJUSTMENT, "approve", True, "no adjustment requested"),
    Row(G.ADJUSTMENT, "adjust_within_bounds", True, "qty 10 -> 5", verdict=ADJUST_TO_5),
    Row(G.ADJUSTMENT, "request_policy_forbids_adjusting", False, "policy forbids",
        body=(put("policy.adjustment_allowed", False),), verdict=ADJUST_TO_5),
    Row(G.ADJUSTMENT, "adjusted_order_type_not_allowed", False,
        "adjusted order type stop is not allowed",
        verdict={**ADJUST_TO_5, "adjusted_order_type": "stop"}),
    Row(G.ADJUSTMENT, "adjusted_qty_rounds_to_zero", False, "rounds to zero",
        body=(put("policy.min_qty_multiplier", "0"),),
        verdict={"verdict": "adjust", "adjusted_qty": "0.5"}),
    # order_type
    Row(G.ORDER_TYPE, "market_allowed", True, "order type market allowed"),
    Row(G.ORDER_TYPE, "request_policy_excludes_type", False, "order type stop not allowed",
        body=(put("decision.order_type", "stop"),)),
    Row(G.ORDER_TYPE, "service_policy_excludes_type", False, "order type limit not allowed",
        body=limit_order("200"), limits={"adjustment": {"allowed_order_types": ["market"]}}),
    Row(G.ORDER_TYPE, "adjusted_to_an_allowed_type", True, "order type limit allowed",
        verdict={**ADJUST_TO_5, "adjusted_order_type": "limit"}),
]
# fmt: on


@pytest.mark.parametrize("row", [pytest.param(r, id=r.id) for r in ROWS])
def test_gate_decides_row(row: Row) -> None:
    result = GATE_BY_CODE[row.gate](row.context(), make_limits(**row.limits))

    assert result.code is row.gate
    assert result.passed is row.passes, result.reason
    assert result.reason.strip()
    assert row.mentions.lower() in result.reason.lower()


def test_table_when_read_then_covers_every_gate_on_both_sides() -> None:
    assert {r.gate for r in ROWS if r.passes} == set(GateCode)
    assert {r.gate for r in ROWS if not r.passes} == set(GateCode)
    assert all(r.mentions for r in ROWS if not r.passes)
    ids = [r.id for r in ROWS]
    assert len(ids) == len(set(ids))


def _failures(results: list[GateResult]) -> set[GateCode]:
    return {r.code for r in results if not r.passed}


def test_evaluate_when_called_then_returns_one_result_per_gate_with_distinct_codes() -> None:
    results = evaluate(build_context(), LIMITS)

    codes = [r.code for r in results]
    assert len(results) == len(GATES)
    assert len(set(codes)) == len(codes)
    assert set(codes) == set(GateCode)
    assert codes == [GateCode(gate.__name__) for gate in GATES]


def test_evaluate_when_request_is_clean_then_every_gate_passes() -> None:
    results = evaluate(build_context(), LIMITS)

    assert _failures(results) == set(), [r for r in results if not r.passed]
    assert all(r.reason.strip() for r in results)


def test_evaluate_when_three_gates_fail_then_reports_all_three() -> None:
    ctx = build_context(put("trading_mode", "live"), state=HALTED, recent=30)

    results = evaluate(ctx, LIMITS)

    assert len(results) == len(GATES)
    assert _failures(results) == {G.TRADING_STATE, G.TRADING_MODE, G.ORDER_RATE}
    assert all(r.reason.strip() for r in results if not r.passed)


def test_evaluate_when_first_gate_fails_then_later_gates_still_judge() -> None:
    ctx = build_context(*NO_PRICE, state=HALTED)

    failed = _failures(evaluate(ctx, LIMITS))

    assert {G.TRADING_STATE, G.REFERENCE_PRICE, G.MAX_NOTIONAL, G.BUYING_POWER} <= failed


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (0, "0 s"),
        (119.9, "119 s"),
        (120, "2m"),
        (4000, "1h 6m"),
        (10 * 86400 + 14 * 3600 + 5, "10d 14h"),
    ],
)
def test_human_age_states_an_age_in_two_units_at_most(seconds: float, text: str) -> None:
    from app.gates.checks import human_age

    assert human_age(seconds) == text
