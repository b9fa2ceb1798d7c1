"""Gate results asserted exactly, one row per branch of every gate (mutation testing, issue 13).

``test_gates.py`` checks that each gate moves and that its reason mentions the cause; here the
whole ``GateResult`` is compared, so a branch that answers with another reason (or a reason
built from the wrong figure) is noticed. Reasons are the audit trail's explanation of a denial:
they are part of the behaviour.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass, field, replace
from datetime import timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from app.gates.checks import GateCode, GateResult
from app.gates.context import (
    GateContext,
    OrderPlan,
    ReferencePrice,
    TradingState,
    current_position_qty,
    position_entries,
    resolve_limit_price,
    resolve_reference_price,
)
from app.gates.limits import PolicyLimits, load_policy
from app.gates.plan import plan_order
from app.review.schemas import OrderType, ReviewRequest
from tests.support.gates import (
    GATE_BY_CODE,
    NO_PRICE,
    NOW,
    CtxTweak,
    Tweak,
    also_in_positions,
    build_context,
    case_context,
    decided,
    drop,
    hold,
    limit_order,
    make_limits,
    market_context,
    put,
    sell,
    snapshot,
)
from tests.support.requests import iso

G = GateCode
REDUCING, HALTED = TradingState.REDUCING, TradingState.HALTED


@dataclass(frozen=True)
class Exact:
    gate: GateCode
    when: str
    passes: bool
    reason: str
    body: tuple[Tweak, ...] = ()
    verdict: dict[str, Any] = field(default_factory=dict)
    limits: dict[str, Any] = field(default_factory=dict)
    state: TradingState = TradingState.ACTIVE
    live: bool = False
    recent: int = 0
    ctx: CtxTweak | None = None

    @property
    def id(self) -> str:
        return f"{self.gate}_when_{self.when}"

    def context(self) -> GateContext:
        return case_context(self)


def _ctx(**changes: Any) -> CtxTweak:
    return lambda ctx: replace(ctx, **changes)


def _plan(**changes: Any) -> CtxTweak:
    return lambda ctx: replace(ctx, plan=replace(ctx.plan, **changes))


def _reference(price: str) -> CtxTweak:
    return lambda ctx: replace(ctx, reference=replace(ctx.reference, price=Decimal(price)))


def _confidence(value: float) -> CtxTweak:
    return lambda ctx: replace(ctx, verdict=ctx.verdict.model_copy(update={"confidence": value}))


def _requested_qty(value: str) -> CtxTweak:
    def tweak(ctx: GateContext) -> GateContext:
        decision = ctx.request.decision.model_copy(update={"qty": Decimal(value)})
        return replace(ctx, request=ctx.request.model_copy(update={"decision": decision}))

    return tweak


ADJUST_TO_5: dict[str, Any] = {"verdict": "adjust", "adjusted_qty": "5"}

# fmt: off
EXACT: list[Exact] = [
    # trading_state
    Exact(G.TRADING_STATE, "active", True, "trading is ACTIVE"),
    Exact(G.TRADING_STATE, "halted", False, "trading is HALTED by an operator", state=HALTED),
    Exact(G.TRADING_STATE, "reducing_and_opening", False,
          "trading is REDUCING: only orders that reduce a position pass", state=REDUCING),
    Exact(G.TRADING_STATE, "reducing_and_shrinking", True,
          "REDUCING and the order reduces the position", body=(hold("100"), *sell()),
          state=REDUCING),
    Exact(G.TRADING_STATE, "reducing_and_closing_a_short", True,
          "REDUCING and the order reduces the position",
          body=(hold("10", side="short"),), state=REDUCING),
    Exact(G.TRADING_STATE, "reducing_and_flipping_a_short_to_a_long", False,
          "trading is REDUCING: only orders that reduce a position pass",
          body=(hold("5", side="short"),), state=REDUCING),
    Exact(G.TRADING_STATE, "reducing_and_buying_into_a_short_past_flat", False,
          "trading is REDUCING: only orders that reduce a position pass",
          body=(hold("9", side="short"),), state=REDUCING),
    # A position of one share or less can be reduced too (not only positions above 1).
    Exact(G.TRADING_STATE, "reducing_and_halving_a_one_share_long", True,
          "REDUCING and the order reduces the position",
          body=(hold("1"), *sell("0.5")), state=REDUCING),
    # An order that rounds to no shares leaves the position as it is: it does not reduce it.
    Exact(G.TRADING_STATE, "reducing_and_the_order_rounds_to_nothing", False,
          "trading is REDUCING: only orders that reduce a position pass",
          body=(hold("100"), *sell("0.0000009")), state=REDUCING),
    # trading_mode
    Exact(G.TRADING_MODE, "paper", True, "paper trading allowed"),
    Exact(G.TRADING_MODE, "live_disabled", False, "live trading is not enabled on this service",
          body=(put("trading_mode", "live"),)),
    Exact(G.TRADING_MODE, "live_enabled", True, "live trading allowed",
          body=(put("trading_mode", "live"),), live=True),
    Exact(G.TRADING_MODE, "paper_with_live_enabled", True, "paper trading allowed", live=True),
    # input_sanity
    Exact(G.INPUT_SANITY, "clean", True, "quantities and prices are finite and positive"),
    Exact(G.INPUT_SANITY, "planned_qty_zero", False, "qty 0 is not a finite positive number",
          ctx=_plan(qty=Decimal(0))),
    Exact(G.INPUT_SANITY, "planned_qty_negative", False, "qty -1 is not a finite positive number",
          ctx=_plan(qty=Decimal(-1))),
    Exact(G.INPUT_SANITY, "requested_qty_zero", False,
          "requested qty 0 is not a finite positive number", ctx=_requested_qty("0")),
    Exact(G.INPUT_SANITY, "limit_price_zero", False,
          "limit price 0 is not a finite positive number",
          body=limit_order("200"), ctx=_plan(limit_price=Decimal(0))),
    Exact(G.INPUT_SANITY, "reference_price_nan", False,
          "reference price NaN is not a finite positive number", ctx=_reference("NaN")),
    Exact(G.INPUT_SANITY, "confidence_infinite", False, "review confidence is not finite",
          ctx=_confidence(math.inf)),
    Exact(G.INPUT_SANITY, "position_unreadable", False,
          "position portfolio.positions[1] for AAPL has no readable qty", body=(hold("lots"),)),
    Exact(G.INPUT_SANITY, "positions_disagree", False, "positions for AAPL disagree on qty",
          body=(hold("100"), also_in_positions(qty="90"))),
    Exact(G.INPUT_SANITY, "limit_and_reference_positive", True,
          "quantities and prices are finite and positive", body=limit_order("200")),
    # order_quantity
    Exact(G.ORDER_QUANTITY, "within", True, "qty 10 within max 100000 per order"),
    Exact(G.ORDER_QUANTITY, "rounds_to_zero", False,
          "qty 0.0000009 rounds to 0.000000 at lot size 0.000001",
          body=(put("decision.qty", "0.0000009"),)),
    Exact(G.ORDER_QUANTITY, "over_cap", False, "qty 100001 > max 100000 per AAPL order",
          body=(put("decision.qty", "100001"),)),
    Exact(G.ORDER_QUANTITY, "symbol_cap", False, "qty 10 > max 5 per AAPL order",
          limits={"quantity": {"max_per_order_by_symbol": {"MSFT": "50", "aapl": "5"}}}),
    # symbol_allowed
    Exact(G.SYMBOL_ALLOWED, "allowed", True, "AAPL allowed"),
    Exact(G.SYMBOL_ALLOWED, "denied", False, "AAPL is on the deny list",
          limits={"symbols": {"deny": ["MSFT", "aapl"]}}),
    Exact(G.SYMBOL_ALLOWED, "not_allowed", False, "AAPL is not on the allow list",
          limits={"symbols": {"allow": ["MSFT"]}}),
    Exact(G.SYMBOL_ALLOWED, "lower_case_order_symbol_on_allow_list", True, "AAPL allowed",
          body=(put("decision.symbol", "aapl"),), limits={"symbols": {"allow": ["AAPL"]}}),
    Exact(G.SYMBOL_ALLOWED, "lower_case_order_symbol_denied", False, "AAPL is on the deny list",
          body=(put("decision.symbol", "aapl"),), limits={"symbols": {"deny": ["AAPL"]}}),
    Exact(G.SYMBOL_ALLOWED, "market_for_another_symbol", False,
          "market data is for MSFT, order is for AAPL", body=(put("market.symbol", "MSFT"),)),
    Exact(G.SYMBOL_ALLOWED, "market_symbol_in_lower_case", True, "AAPL allowed",
          body=(put("market.symbol", "aapl"),)),
    Exact(G.SYMBOL_ALLOWED, "no_market", True, "AAPL allowed", body=(drop("market"),)),
    # reference_price
    Exact(G.REFERENCE_PRICE, "fresh", True, "200.00 from market.price, 1.0s old"),
    Exact(G.REFERENCE_PRICE, "missing", False,
          "no reference price (market.price or params.price_snapshot/price)", body=NO_PRICE),
    Exact(G.REFERENCE_PRICE, "price_without_timestamp", False,
          "no reference price (market.price or params.price_snapshot/price)",
          ctx=lambda c: replace(c, reference=replace(c.reference, as_of=None))),
    Exact(G.REFERENCE_PRICE, "stale", False,
          "reference price from market.price is stale (5m old, max 300 s)",
          body=(put("market.as_of", iso(NOW - timedelta(seconds=301))),)),
    Exact(G.REFERENCE_PRICE, "stale_by_days", False,
          "reference price from market.price is stale (10d 13h old, max 300 s)",
          body=(put("market.as_of", iso(NOW - timedelta(seconds=912840))),)),
    Exact(G.REFERENCE_PRICE, "future", False, "reference price timestamp is 6s in the future",
          body=(put("market.as_of", iso(NOW + timedelta(seconds=6))),)),
    Exact(G.REFERENCE_PRICE, "ahead_within_skew", True, "200.00 from market.price, 0.0s old",
          body=(put("market.as_of", iso(NOW + timedelta(seconds=4))),)),
    Exact(G.REFERENCE_PRICE, "from_snapshot", True, "200.00 from params.price_snapshot, 2.0s old",
          body=(drop("market"),)),
    Exact(G.REFERENCE_PRICE, "from_params_price", True, "201 from params.price, 2.0s old",
          body=(drop("market"), put("decision.params", {"price_snapshot": "0", "price": "201"}))),
    # decision_age
    Exact(G.DECISION_AGE, "fresh", True, "decision 2.0s old"),
    Exact(G.DECISION_AGE, "stale", False, "decision is stale (301s old, max 300s)",
          body=(decided(301),)),
    Exact(G.DECISION_AGE, "future", False, "decision timestamp is 6s in the future (max skew 5s)",
          body=(decided(-6),)),
    Exact(G.DECISION_AGE, "ahead_within_skew", True, "decision 0.0s old", body=(decided(-4),)),
    # price_integrity
    Exact(G.PRICE_INTEGRITY, "one_agreeing", True, "1 independent prices agree with market.price"),
    Exact(G.PRICE_INTEGRITY, "none", True,
          "no independent price to cross-check market.price against",
          body=(put("decision.params", {}),)),
    Exact(G.PRICE_INTEGRITY, "no_reference", False, "no reference price to cross-check",
          body=NO_PRICE),
    Exact(G.PRICE_INTEGRITY, "negative_reference", False, "no reference price to cross-check",
          ctx=_reference("-1")),
    Exact(G.PRICE_INTEGRITY, "unusable", False,
          "params.price_snapshot is not a usable positive price",
          body=(snapshot("-5"),)),
    Exact(G.PRICE_INTEGRITY, "diverging", False,
          "params.price_snapshot 210.01 diverges 5.005% from reference 200.00 (market.price); "
          "band 5.00%", body=(snapshot("210.01"),)),
    Exact(G.PRICE_INTEGRITY, "mark_diverging", False,
          "portfolio.positions[1].current_price 240.01 diverges 20.005% from reference 200.00 "
          "(market.price); band 20.00%", body=(hold("1", current_price="240.01"),)),
    Exact(G.PRICE_INTEGRITY, "second_price_diverging", False,
          "params.price 300 diverges 50.000% from reference 200.00 (market.price); band 5.00%",
          body=(put("decision.params.price", "300"),)),
    Exact(G.PRICE_INTEGRITY, "limit_price_diverging", False,
          "limit price 210.01 diverges 5.005% from reference 200.00 (market.price); band 5.00%",
          body=limit_order("210.01")),
    Exact(G.PRICE_INTEGRITY, "mark_unreadable", False,
          "portfolio.positions[1].market_value/qty is not a usable positive price",
          body=(hold("1", market_value="abc"),)),
    # Every position entry's mark is checked, even after a flat one.
    Exact(G.PRICE_INTEGRITY, "mark_after_a_flat_entry", False,
          "positions[0].market_value/qty 2 diverges 9900.000% from reference 200.00 "
          "(market.price); band 20.00%",
          body=(hold("0"), also_in_positions(qty="100", market_value="200"))),
    # Every context domain is read, past one that is not an object or has no payload object.
    Exact(G.PRICE_INTEGRITY, "quote_after_a_text_domain", False,
          "market_context.domains.quote.payload.last 2 diverges 9900.000% from reference "
          "200.00 (market.price); band 5.00%",
          body=(market_context(domains={"a_news": "text", "quote": {"payload": {"last": "2"}}}),)),
    Exact(G.PRICE_INTEGRITY, "quote_after_a_payload_that_is_text", False,
          "market_context.domains.quote.payload.last 2 diverges 9900.000% from reference "
          "200.00 (market.price); band 5.00%",
          body=(market_context(domains={"a_news": {"payload": "x"},
                                        "quote": {"payload": {"last": "2"}}}),)),
    Exact(G.PRICE_INTEGRITY, "corroboration_short", False,
          "1 independent prices corroborate market.price (min 2)",
          limits={"price_integrity": {"min_corroborating_prices": 2}}),
    Exact(G.PRICE_INTEGRITY, "corroboration_met", True,
          "2 independent prices agree with market.price", body=(hold("1", current_price="200"),),
          limits={"price_integrity": {"min_corroborating_prices": 2}}),
    # price_collar
    Exact(G.PRICE_COLLAR, "market_order", True, "not a limit order"),
    Exact(G.PRICE_COLLAR, "stop_order", True, "not a limit order",
          body=(put("decision.order_type", "stop"),)),
    Exact(G.PRICE_COLLAR, "within", True, "limit 205 within 5.00% of 200.00",
          body=limit_order("205")),
    Exact(G.PRICE_COLLAR, "stop_limit_within", True, "limit 195 within 5.00% of 200.00",
          body=limit_order("195", kind="stop_limit")),
    Exact(G.PRICE_COLLAR, "assumed", True,
          "limit 200.00 within 5.00% of 200.00 (assumed: strategy sizing price)",
          body=limit_order(None)),
    Exact(G.PRICE_COLLAR, "outside", False,
          "limit 189.99 is 5.005% from reference 200.00 (collar 5.00%)",
          body=limit_order("189.99")),
    Exact(G.PRICE_COLLAR, "no_limit_price", False, "limit order without a limit or reference price",
          body=(*limit_order(None), put("decision.params.limit_price", "abc"))),
    Exact(G.PRICE_COLLAR, "no_reference", False, "limit order without a limit or reference price",
          body=(*limit_order("200"), *NO_PRICE)),
    # max_notional
    Exact(G.MAX_NOTIONAL, "small", True, "notional 2000.00 (2.00% of equity)"),
    Exact(G.MAX_NOTIONAL, "no_price", False, "notional unknown without a price", body=NO_PRICE),
    Exact(G.MAX_NOTIONAL, "over_cap", False, "notional 300000.00 > cap 250000",
          body=(put("portfolio.equity", "10000000"), put("decision.qty", "1500"))),
    Exact(G.MAX_NOTIONAL, "equity_missing", False,
          "equity unknown or zero: notional share cannot be checked",
          body=(drop("portfolio.equity"),)),
    Exact(G.MAX_NOTIONAL, "over_share", False, "notional is 12.00% of equity (max 10.00%)",
          body=(put("decision.qty", "60"),)),
    # Equity of 1 is small, not unknown: 0.0001 x 200 = 0.02 is 2% of it.
    Exact(G.MAX_NOTIONAL, "equity_of_one", True, "notional 0.02 (2.00% of equity)",
          body=(put("portfolio.equity", "1"), put("decision.qty", "0.0001"))),
    # A zero reference price values nothing, even when another price is present.
    Exact(G.MAX_NOTIONAL, "reference_zero", False, "notional unknown without a price",
          ctx=_reference("0")),
    # An unreadable mark is no price for valuation (price_integrity fails it), not an error.
    Exact(G.MAX_NOTIONAL, "unreadable_mark_is_ignored", True, "notional 2000.00 (2.00% of equity)",
          body=(hold("1", market_value="abc"),)),
    # position_limit
    Exact(G.POSITION_LIMIT, "small", True, "post-trade position 2.00% of equity"),
    Exact(G.POSITION_LIMIT, "reducing", True, "order does not increase the position",
          body=(hold("200"), *sell())),
    Exact(G.POSITION_LIMIT, "closing_exactly", True, "order does not increase the position",
          body=(hold("10"), *sell("10"))),
    Exact(G.POSITION_LIMIT, "no_price", False,
          "post-trade position share unknown (price or equity missing or zero)", body=NO_PRICE),
    Exact(G.POSITION_LIMIT, "over", False, "post-trade position is 26.00% of equity (max 25.00%)",
          body=(hold("100"), put("decision.qty", "30"))),
    Exact(G.POSITION_LIMIT, "adding_to_a_long", True, "post-trade position 22.00% of equity",
          body=(hold("100"),)),
    # Orders of one share or less still grow the position: 124.5 + 1 = 125.5 x 200 = 25.1%.
    Exact(G.POSITION_LIMIT, "one_share_over", False,
          "post-trade position is 25.10% of equity (max 25.00%)",
          body=(hold("124.5"), put("decision.qty", "1"))),
    Exact(G.POSITION_LIMIT, "half_share_over", False,
          "post-trade position is 25.08% of equity (max 25.00%)",
          body=(hold("124.9"), put("decision.qty", "0.5"))),
    # gross_exposure
    Exact(G.GROSS_EXPOSURE, "small", True, "post-trade gross exposure 0.22x equity"),
    Exact(G.GROSS_EXPOSURE, "reducing", True, "order does not increase gross exposure",
          body=(hold("100"), *sell())),
    Exact(G.GROSS_EXPOSURE, "closing_exactly", True, "order does not increase gross exposure",
          body=(hold("10"), *sell("10"), put("portfolio.total_exposure", "500000"))),
    # +10 -> -10: gross exposure is unchanged, so an account already over the max may flip.
    Exact(G.GROSS_EXPOSURE, "flip_to_the_same_size", True,
          "order does not increase gross exposure",
          body=(hold("10"), *sell("20"), put("portfolio.total_exposure", "500000"))),
    Exact(G.GROSS_EXPOSURE, "no_price", False,
          "gross exposure unknown (price or equity missing or zero)", body=NO_PRICE),
    Exact(G.GROSS_EXPOSURE, "not_reported", False,
          "total exposure not reported: gross exposure cannot be checked",
          body=(drop("portfolio.total_exposure"),)),
    Exact(G.GROSS_EXPOSURE, "over", False, "post-trade gross exposure 2.01x equity (max 2.0x)",
          body=(put("portfolio.total_exposure", "199000"),)),
    # buying_power
    Exact(G.BUYING_POWER, "enough", True, "needs 2000.00 of 80000.00 buying power"),
    Exact(G.BUYING_POWER, "reducing", True, "order does not add exposure",
          body=(hold("100"), *sell())),
    Exact(G.BUYING_POWER, "closing_exactly", True, "order does not add exposure",
          body=(hold("10"), *sell("10"), put("portfolio.buying_power", "0"))),
    Exact(G.BUYING_POWER, "unknown", False, "buying power or price unknown",
          body=(drop("portfolio.buying_power"),)),
    Exact(G.BUYING_POWER, "no_price", False, "buying power or price unknown", body=NO_PRICE),
    Exact(G.BUYING_POWER, "short", False, "needs 2000.00, buying power 1000.00",
          body=(put("portfolio.buying_power", "1000"),)),
    Exact(G.BUYING_POWER, "flip_needs_the_new_side", True, "needs 1000.00 of 1000.00 buying power",
          body=(hold("5"), *sell("10"), put("portfolio.buying_power", "1000"))),
    Exact(G.BUYING_POWER, "growing_a_long_needs_the_growth", True,
          "needs 2000.00 of 2000.00 buying power",
          body=(hold("5"), put("portfolio.buying_power", "2000"))),
    # Growing a half-share long by half a share needs half a share, not the whole position.
    Exact(G.BUYING_POWER, "growing_a_half_share_long", True,
          "needs 100.00 of 100.00 buying power",
          body=(hold("0.5"), put("decision.qty", "0.5"), put("portfolio.buying_power", "100"))),
    # shorting
    Exact(G.SHORTING, "buy", True, "no disallowed short"),
    Exact(G.SHORTING, "sell_to_short", False,
          "sell would leave a short position of -10 (shorting not allowed)", body=sell()),
    Exact(G.SHORTING, "sell_to_short_allowed", True, "no disallowed short", body=sell(),
          limits={"shorting_allowed": True}),
    Exact(G.SHORTING, "buy_leaving_a_short", True, "no disallowed short",
          body=(hold("100", side="short"),)),
    Exact(G.SHORTING, "sell_to_flat", True, "no disallowed short", body=(hold("10"), *sell("10"))),
    # order_rate
    Exact(G.ORDER_RATE, "below", True, "29 orders in the last 60s", recent=29),
    Exact(G.ORDER_RATE, "at_max", False,
          "30 orders submitted by test-strategy in the last 60s (max 30)", recent=30),
    Exact(G.ORDER_RATE, "zero_allowed", False,
          "0 orders submitted by test-strategy in the last 60s (max 0)",
          limits={"order_rate": {"max_orders_per_strategy": 0}}),
    # market_context
    Exact(G.MARKET_CONTEXT, "absent", True, "no market context supplied (not required)"),
    Exact(G.MARKET_CONTEXT, "required", False, "market context required but absent",
          limits={"market_context": {"required": True}}),
    Exact(G.MARKET_CONTEXT, "required_and_present", True, "market context fresh and usable",
          body=(market_context(),), limits={"market_context": {"required": True}}),
    Exact(G.MARKET_CONTEXT, "good", True, "market context fresh and usable",
          body=(market_context(),)),
    Exact(G.MARKET_CONTEXT, "no_symbol_no_times_no_quality", True,
          "market context fresh and usable",
          body=(market_context(symbol=None, asOfUtc=None, freshnessSeconds=None,
                               qualityScore=None),)),
    Exact(G.MARKET_CONTEXT, "other_symbol", False, "market context is for TSLA, order is for AAPL",
          body=(market_context(symbol="TSLA"),)),
    Exact(G.MARKET_CONTEXT, "stale_reported", False, "market context is 901s old",
          body=(market_context(freshnessSeconds="901"),)),
    Exact(G.MARKET_CONTEXT, "stale_as_of", False, "market context as of 15m ago, max 900 s",
          body=(market_context(asOfUtc=iso(NOW - timedelta(seconds=901))),)),
    Exact(G.MARKET_CONTEXT, "future_as_of", False, "market context as of 6s in the future",
          body=(market_context(asOfUtc=iso(NOW + timedelta(seconds=6))),)),
    Exact(G.MARKET_CONTEXT, "low_quality", False, "market context quality 0.4 < 0.5",
          body=(market_context(qualityScore="0.4"),)),
    Exact(G.MARKET_CONTEXT, "flags", False, "blocking risk flags: LULD_PAUSE, halted",
          body=(market_context(riskFlags=["halted", "earnings", "LULD_PAUSE", "halted"]),)),
    Exact(G.MARKET_CONTEXT, "policy_flag_in_upper_case", False, "blocking risk flags: news",
          body=(market_context(riskFlags=["news"]),),
          limits={"market_context": {"blocking_risk_flags": ["NEWS"]}}),
    # review_confidence
    Exact(G.REVIEW_CONFIDENCE, "confident", True, "confidence 0.80, uncertainty low"),
    Exact(G.REVIEW_CONFIDENCE, "veto", True, "verdict veto does not rely on confidence",
          verdict={"verdict": "veto", "confidence": 0.1}),
    Exact(G.REVIEW_CONFIDENCE, "escalate", True, "verdict escalate does not rely on confidence",
          verdict={"verdict": "escalate", "confidence": 0.1, "uncertainty": "high"}),
    Exact(G.REVIEW_CONFIDENCE, "low", False, "confidence 0.30 < floor 0.50",
          verdict={"confidence": 0.3}),
    Exact(G.REVIEW_CONFIDENCE, "blocked_uncertainty", False, "uncertainty high is blocked",
          verdict={"uncertainty": "high"}),
    Exact(G.REVIEW_CONFIDENCE, "adjust", True, "confidence 0.80, uncertainty medium",
          verdict={**ADJUST_TO_5, "uncertainty": "medium"}),
    # required_checks
    Exact(G.REQUIRED_CHECKS, "none", True, "no unknown required checks"),
    Exact(G.REQUIRED_CHECKS, "unknown", False,
          "required checks not on the allowlist: ask_a_friend, call_the_desk",
          verdict={"required_checks": ["call_the_desk", "confirm_spread", "ask_a_friend"]}),
    # adjustment
    Exact(G.ADJUSTMENT, "none", True, "no adjustment requested"),
    Exact(G.ADJUSTMENT, "applied", True, "qty 10 -> 5", verdict=ADJUST_TO_5),
    Exact(G.ADJUSTMENT, "refused", False,
          "adjustment requested but the request's policy forbids it",
          body=(put("policy.adjustment_allowed", False),), verdict=ADJUST_TO_5),
    # order_type
    Exact(G.ORDER_TYPE, "market", True, "order type market allowed"),
    Exact(G.ORDER_TYPE, "stop_not_in_request_policy", False, "order type stop not allowed",
          body=(put("decision.order_type", "stop"),)),
    Exact(G.ORDER_TYPE, "limit_not_in_service_policy", False, "order type limit not allowed",
          body=limit_order("200"), limits={"adjustment": {"allowed_order_types": ["market"]}}),
]
# fmt: on


@pytest.mark.parametrize("row", [pytest.param(r, id=r.id) for r in EXACT])
def test_gate_when_each_branch_is_taken_then_answers_exactly(row: Exact) -> None:
    result = GATE_BY_CODE[row.gate](row.context(), make_limits(**row.limits))

    assert result == GateResult(row.gate, row.passes, row.reason)


def test_exact_table_when_read_then_covers_every_gate_on_both_sides() -> None:
    assert {r.gate for r in EXACT if r.passes} == set(GateCode)
    assert {r.gate for r in EXACT if not r.passes} == set(GateCode)
    ids = [r.id for r in EXACT]
    assert len(ids) == len(set(ids))


def test_plan_when_adjustment_is_refused_then_note_and_problem_both_say_why() -> None:
    # The refused plan is the original order; its note (the adjustment gate's text when it
    # passes) must not be left saying "no adjustment requested".
    ctx = build_context(put("policy.adjustment_allowed", False), verdict=ADJUST_TO_5)
    problem = "adjustment requested but the request's policy forbids it"

    assert ctx.plan == OrderPlan(
        qty=Decimal(10),
        order_type=OrderType.MARKET,
        limit_price=None,
        limit_price_assumed=False,
        resized=False,
        adjustment_problem=problem,
        adjustment_note=problem,
    )


# ----------------------------------------------------------------------------- context


def _request(*tweaks: Tweak) -> ReviewRequest:
    return build_context(*tweaks).request


def test_reference_price_when_nothing_is_priced_then_missing() -> None:
    request = _request(*NO_PRICE)

    assert resolve_reference_price(request) == ReferencePrice(None, None, "missing")


def test_reference_price_when_sized_below_one_dollar_then_the_snapshot_serves() -> None:
    request = _request(drop("market"), put("decision.params", {"price_snapshot": "0.5"}))

    assert resolve_reference_price(request) == ReferencePrice(
        Decimal("0.5"), request.decision.event_ts, "params.price_snapshot"
    )


def test_limit_price_when_params_give_one_below_one_dollar_then_it_is_used() -> None:
    request = _request(*limit_order(None), put("decision.params.limit_price", "0.5"))
    ref = resolve_reference_price(request)

    assert resolve_limit_price(request, ref) == (Decimal("0.5"), False)


def test_position_when_broker_says_quantity_instead_of_qty_then_it_is_read() -> None:
    request = _request(
        lambda body: body["portfolio"]["positions"].append(
            {"symbol": "AAPL", "quantity": "40", "side": "short"}
        )
    )

    assert current_position_qty(request) == Decimal(-40)


@pytest.mark.parametrize("symbol", ["NONE", "XXXX"])
def test_position_without_a_symbol_when_read_then_belongs_to_no_order(symbol: str) -> None:
    # A symbol-less broker entry is nobody's position, whatever the order's symbol spells.
    request = _request(
        put("decision.symbol", symbol),
        put("market.symbol", symbol),
        lambda body: body["portfolio"]["positions"].append({"qty": "100", "side": "long"}),
    )

    assert position_entries(request) == []
    assert current_position_qty(request) == Decimal(0)


# ----------------------------------------------------------------------------- planner


def test_plan_when_limit_order_has_no_limit_price_then_plans_cleanly_with_the_reference() -> None:
    ctx = build_context(*limit_order(None))

    assert ctx.plan == OrderPlan(
        qty=Decimal(10),
        order_type=OrderType.LIMIT,
        limit_price=Decimal("200.00"),
        limit_price_assumed=True,
        resized=False,
        adjustment_problem=None,
        adjustment_note="no adjustment requested",
    )


def test_plan_when_it_cannot_be_computed_then_the_original_order_with_the_reason() -> None:
    # A lot size so small that qty / lot overflows: the plan fails closed, for a limit order
    # without a limit price too (its assumed price is still resolved from the reference).
    ctx = build_context(*limit_order(None))
    limits = PolicyLimits.model_validate({"quantity": {"lot_size": "1e-999999"}})
    problem = "order could not be planned (Overflow): fail closed"

    plan = plan_order(ctx.request, ctx.verdict, ctx.reference, limits)

    assert plan == OrderPlan(
        qty=Decimal(10),
        order_type=OrderType.LIMIT,
        limit_price=Decimal("200.00"),
        limit_price_assumed=True,
        resized=False,
        adjustment_problem=problem,
        adjustment_note=problem,
    )


def test_plan_when_adjusted_qty_is_clamped_then_the_note_lists_each_step() -> None:
    ctx = build_context(
        put("policy.max_qty_multiplier", "2.0"),
        verdict={"verdict": "adjust", "adjusted_qty": "25"},
    )

    assert ctx.plan.adjustment_note == "adjusted qty 25 clamped to [2.50, 10.0]; qty 10 -> 10"


# ----------------------------------------------------------------------------- loader


def test_load_policy_when_read_then_records_its_path_and_the_file_hash(tmp_path: Path) -> None:
    path = tmp_path / "policy.yaml"
    path.write_bytes(b"version: 1\nshorting_allowed: true\n")

    loaded = load_policy(path)

    assert loaded.path == str(path)
    assert loaded.policy_hash == hashlib.sha256(path.read_bytes()).hexdigest()
    assert loaded.limits == PolicyLimits(shorting_allowed=True)


def test_load_policy_when_invalid_then_value_error_names_the_file(tmp_path: Path) -> None:
    path = tmp_path / "policy.yaml"
    path.write_text("max_notional_per_order: -1\n")

    with pytest.raises(ValueError, match=r"^policy file .*policy\.yaml is invalid: ") as info:
        load_policy(path)

    assert "max_notional_per_order" in str(info.value)
