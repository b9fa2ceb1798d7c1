"""The gates. Each returns a ``GateResult``; a failure always carries its reason."""

from __future__ import annotations

import functools
import math
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal, localcontext
from enum import StrEnum

from app.gates.context import GateContext, TradingState, position_problem, signed_delta
from app.gates.limits import PolicyLimits
from app.gates.prices import band_for, divergence, independent_prices, valuation_price
from app.numbers import DECIMAL_CONTEXT, plain
from app.review.schemas import Action, OrderType, TradingMode, Verdict


class GateCode(StrEnum):
    TRADING_STATE = "trading_state"
    TRADING_MODE = "trading_mode"
    INPUT_SANITY = "input_sanity"
    ORDER_QUANTITY = "order_quantity"
    SYMBOL_ALLOWED = "symbol_allowed"
    REFERENCE_PRICE = "reference_price"
    DECISION_AGE = "decision_age"
    PRICE_INTEGRITY = "price_integrity"
    PRICE_COLLAR = "price_collar"
    MAX_NOTIONAL = "max_notional"
    POSITION_LIMIT = "position_limit"
    GROSS_EXPOSURE = "gross_exposure"
    BUYING_POWER = "buying_power"
    SHORTING = "shorting"
    ORDER_RATE = "order_rate"
    MARKET_CONTEXT = "market_context"
    REVIEW_CONFIDENCE = "review_confidence"
    REQUIRED_CHECKS = "required_checks"
    ADJUSTMENT = "adjustment"
    ORDER_TYPE = "order_type"


@dataclass(frozen=True, slots=True)
class GateResult:
    code: GateCode
    passed: bool
    reason: str


Gate = Callable[[GateContext, PolicyLimits], GateResult]


def _ok(code: GateCode, reason: str) -> GateResult:
    return GateResult(code, True, reason)


def _fail(code: GateCode, reason: str) -> GateResult:
    return GateResult(code, False, reason)


def _post_trade_qty(ctx: GateContext) -> Decimal:
    return ctx.current_position_qty + signed_delta(ctx.request.decision.action, ctx.plan.qty)


def _valuation_price(ctx: GateContext) -> Decimal | None:
    # The highest price the request carries: a limit is never passed on the lower of two
    # contradicting prices (price_integrity rejects the contradiction itself).
    return valuation_price(ctx.request, ctx.reference, ctx.plan)


def _opened_qty(ctx: GateContext) -> Decimal:
    """Quantity of new exposure the order opens: growth of the same side, or, when it flips the
    position, the whole new opposite side (closing the old side frees nothing up front)."""
    cur, post = ctx.current_position_qty, _post_trade_qty(ctx)
    if post * cur < 0:  # the order flips the position's side
        return abs(post)
    return max(abs(post) - abs(cur), Decimal(0))


def _equity(ctx: GateContext) -> Decimal | None:
    equity = ctx.request.portfolio.equity
    return equity if equity is not None and equity > 0 else None


def trading_state(ctx: GateContext, _: PolicyLimits) -> GateResult:
    """HALTED rejects everything; REDUCING admits only orders that shrink a position."""
    code = GateCode.TRADING_STATE
    if ctx.trading_state is TradingState.HALTED:
        return _fail(code, "trading is HALTED by an operator")
    if ctx.trading_state is TradingState.REDUCING:
        cur, post = ctx.current_position_qty, _post_trade_qty(ctx)
        reduces = cur != 0 and abs(post) < abs(cur) and (post == 0 or (post > 0) == (cur > 0))
        if not reduces:
            return _fail(code, "trading is REDUCING: only orders that reduce a position pass")
        return _ok(code, "REDUCING and the order reduces the position")
    return _ok(code, "trading is ACTIVE")


def trading_mode(ctx: GateContext, _: PolicyLimits) -> GateResult:
    """``live`` requests pass only when live trading is enabled in the service settings."""
    code = GateCode.TRADING_MODE
    if ctx.request.trading_mode is TradingMode.LIVE and not ctx.live_trading_enabled:
        return _fail(code, "live trading is not enabled on this service")
    return _ok(code, f"{ctx.request.trading_mode} trading allowed")


def input_sanity(ctx: GateContext, _: PolicyLimits) -> GateResult:
    """Quantities and prices must be finite and positive (defence in depth behind the schema)."""
    code = GateCode.INPUT_SANITY
    values = {"qty": ctx.plan.qty, "requested qty": ctx.request.decision.qty}
    if ctx.plan.limit_price is not None:
        values["limit price"] = ctx.plan.limit_price
    if ctx.reference.price is not None:
        values["reference price"] = ctx.reference.price
    for name, value in values.items():
        if not value.is_finite() or value <= 0:
            return _fail(code, f"{name} {_num(value)} is not a finite positive number")
    if not math.isfinite(ctx.verdict.confidence):
        return _fail(code, "review confidence is not finite")
    problem = position_problem(ctx.request)
    if problem is not None:
        return _fail(code, problem)
    return _ok(code, "quantities and prices are finite and positive")


def order_quantity(ctx: GateContext, limits: PolicyLimits) -> GateResult:
    """Price-independent bounds: a whole number of lots, at most the per-order cap (per symbol)."""
    code = GateCode.ORDER_QUANTITY
    cfg = limits.quantity
    qty, symbol = ctx.plan.qty, ctx.request.decision.symbol
    if qty <= 0:
        return _fail(
            code,
            f"qty {_num(ctx.request.decision.qty)} rounds to {_num(qty)} "
            f"at lot size {_num(cfg.lot_size)}",
        )
    cap = cfg.cap_for(symbol)
    if qty > cap:
        return _fail(code, f"qty {_num(qty)} > max {_num(cap)} per {symbol} order")
    return _ok(code, f"qty {_num(qty)} within max {_num(cap)} per order")


def symbol_allowed(ctx: GateContext, limits: PolicyLimits) -> GateResult:
    """Deny list first, then (if non-empty) the allow list."""
    code = GateCode.SYMBOL_ALLOWED
    symbol = ctx.request.decision.symbol.upper()
    if symbol in {s.upper() for s in limits.symbols.deny}:
        return _fail(code, f"{symbol} is on the deny list")
    allow = {s.upper() for s in limits.symbols.allow}
    if allow and symbol not in allow:
        return _fail(code, f"{symbol} is not on the allow list")
    if ctx.request.market is not None and ctx.request.market.symbol.upper() != symbol:
        return _fail(code, f"market data is for {ctx.request.market.symbol}, order is for {symbol}")
    return _ok(code, f"{symbol} allowed")


def human_age(seconds: float) -> str:
    """``912840`` -> ``10d 13h``; ``4000`` -> ``1h 6m``; ``75`` -> ``75 s`` (two units at most)."""
    whole = int(seconds)
    if whole < 120:
        return f"{whole} s"
    days, rest = divmod(whole, 86400)
    hours, rest = divmod(rest, 3600)
    minutes = rest // 60
    if days:
        return f"{days}d {hours}h"
    return f"{hours}h {minutes}m" if hours else f"{minutes}m"


def reference_price(ctx: GateContext, limits: PolicyLimits) -> GateResult:
    """A reference price must be present and fresh; without one the order fails closed."""
    code = GateCode.REFERENCE_PRICE
    ref = ctx.reference
    if ref.price is None or ref.as_of is None:
        return _fail(code, "no reference price (market.price or params.price_snapshot/price)")
    age = (ctx.now - ref.as_of).total_seconds()
    cfg = limits.reference_price
    if age > cfg.max_age_seconds:
        return _fail(
            code,
            f"reference price from {ref.source} is stale "
            f"({human_age(age)} old, max {cfg.max_age_seconds:g} s)",
        )
    if -age > cfg.max_future_skew_seconds:
        return _fail(code, f"reference price timestamp is {-age:.0f}s in the future")
    return _ok(code, f"{_num(ref.price)} from {ref.source}, {max(age, 0):.1f}s old")


def decision_age(ctx: GateContext, limits: PolicyLimits) -> GateResult:
    """The decision's own timestamp (``event_ts``) must be recent and not from the future."""
    code = GateCode.DECISION_AGE
    cfg = limits.decision_age
    age = (ctx.now - ctx.request.decision.event_ts).total_seconds()
    if age > cfg.max_age_seconds:
        return _fail(code, f"decision is stale ({age:.0f}s old, max {cfg.max_age_seconds:g}s)")
    if -age > cfg.max_future_skew_seconds:
        return _fail(
            code,
            f"decision timestamp is {-age:.0f}s in the future "
            f"(max skew {cfg.max_future_skew_seconds:g}s)",
        )
    return _ok(code, f"decision {max(age, 0):.1f}s old")


def price_integrity(ctx: GateContext, limits: PolicyLimits) -> GateResult:
    """Every independent price in the request must agree with the reference within its band."""
    code = GateCode.PRICE_INTEGRITY
    cfg = limits.price_integrity
    ref = ctx.reference
    if ref.price is None or ref.price <= 0:
        return _fail(code, "no reference price to cross-check")
    others = independent_prices(ctx.request, ref, ctx.plan)
    for other in others:
        if other.price is None:
            return _fail(code, f"{other.source} is not a usable positive price")
        gap = divergence(other.price, ref.price)
        band = band_for(other, cfg)
        if gap > band:
            return _fail(
                code,
                f"{other.source} {_num(other.price)} diverges {gap:.3%} from reference "
                f"{_num(ref.price)} ({ref.source}); band {band:.2%}",
            )
    if len(others) < cfg.min_corroborating_prices:
        return _fail(
            code,
            f"{len(others)} independent prices corroborate {ref.source} "
            f"(min {cfg.min_corroborating_prices})",
        )
    if not others:
        return _ok(code, f"no independent price to cross-check {ref.source} against")
    return _ok(code, f"{len(others)} independent prices agree with {ref.source}")


def price_collar(ctx: GateContext, limits: PolicyLimits) -> GateResult:
    """A limit price must sit within the collar around the reference price."""
    code = GateCode.PRICE_COLLAR
    if ctx.plan.order_type not in (OrderType.LIMIT, OrderType.STOP_LIMIT):
        return _ok(code, "not a limit order")
    limit, ref = ctx.plan.limit_price, ctx.reference.price
    if limit is None or ref is None:
        return _fail(code, "limit order without a limit or reference price")
    deviation = abs(limit - ref) / ref
    if deviation > limits.limit_price_collar_pct:
        return _fail(
            code,
            f"limit {_num(limit)} is {deviation:.3%} from reference {_num(ref)} "
            f"(collar {limits.limit_price_collar_pct:.2%})",
        )
    suffix = " (assumed: strategy sizing price)" if ctx.plan.limit_price_assumed else ""
    return _ok(
        code,
        f"limit {_num(limit)} within {limits.limit_price_collar_pct:.2%} of {_num(ref)}{suffix}",
    )


def max_notional(ctx: GateContext, limits: PolicyLimits) -> GateResult:
    """Order notional under the absolute cap and under a fraction of equity."""
    code = GateCode.MAX_NOTIONAL
    price = _valuation_price(ctx)
    if price is None:
        return _fail(code, "notional unknown without a price")
    notional = ctx.plan.qty * price
    if notional > limits.max_notional_per_order:
        return _fail(code, f"notional {notional:.2f} > cap {_num(limits.max_notional_per_order)}")
    equity = _equity(ctx)
    if equity is None:
        return _fail(code, "equity unknown or zero: notional share cannot be checked")
    share = notional / equity
    if share > limits.max_notional_pct_equity:
        return _fail(
            code, f"notional is {share:.2%} of equity (max {limits.max_notional_pct_equity:.2%})"
        )
    return _ok(code, f"notional {notional:.2f} ({share:.2%} of equity)")


def position_limit(ctx: GateContext, limits: PolicyLimits) -> GateResult:
    """Post-trade position value as a share of equity; reducing orders always pass."""
    code = GateCode.POSITION_LIMIT
    if _opened_qty(ctx) <= 0:
        return _ok(code, "order does not increase the position")
    price, equity = _valuation_price(ctx), _equity(ctx)
    if price is None or equity is None:
        return _fail(code, "post-trade position share unknown (price or equity missing or zero)")
    post = _post_trade_qty(ctx)
    share = abs(post) * price / equity
    if share > limits.max_position_pct_equity:
        return _fail(
            code,
            f"post-trade position is {share:.2%} of equity "
            f"(max {limits.max_position_pct_equity:.2%})",
        )
    return _ok(code, f"post-trade position {share:.2%} of equity")


def gross_exposure(ctx: GateContext, limits: PolicyLimits) -> GateResult:
    """Post-trade gross exposure as a multiple of equity."""
    code = GateCode.GROSS_EXPOSURE
    portfolio = ctx.request.portfolio
    cur, post = ctx.current_position_qty, _post_trade_qty(ctx)
    # Gross counts both sides: a flip from +100 to -90 lowers it; only |post| > |cur| adds.
    if abs(post) <= abs(cur):
        return _ok(code, "order does not increase gross exposure")
    price, equity = _valuation_price(ctx), _equity(ctx)
    if price is None or equity is None:
        return _fail(code, "gross exposure unknown (price or equity missing or zero)")
    if portfolio.total_exposure is None:
        return _fail(code, "total exposure not reported: gross exposure cannot be checked")
    post_gross = portfolio.total_exposure + (abs(post) - abs(cur)) * price
    ratio = post_gross / equity
    if ratio > limits.max_gross_exposure_pct_equity:
        return _fail(
            code,
            f"post-trade gross exposure {ratio:.2f}x equity "
            f"(max {limits.max_gross_exposure_pct_equity}x)",
        )
    return _ok(code, f"post-trade gross exposure {ratio:.2f}x equity")


def buying_power(ctx: GateContext, _: PolicyLimits) -> GateResult:
    """Orders that open exposure (including the new side of a flip) must fit the buying power."""
    code = GateCode.BUYING_POWER
    added = _opened_qty(ctx)
    if added <= 0:
        return _ok(code, "order does not add exposure")
    price = _valuation_price(ctx)
    bp = ctx.request.portfolio.buying_power
    if price is None or bp is None:
        return _fail(code, "buying power or price unknown")
    needed = added * price
    if needed > bp:
        return _fail(code, f"needs {needed:.2f}, buying power {bp:.2f}")
    return _ok(code, f"needs {needed:.2f} of {bp:.2f} buying power")


def shorting(ctx: GateContext, limits: PolicyLimits) -> GateResult:
    """A sell that leaves a short position needs shorting to be allowed."""
    code = GateCode.SHORTING
    post = _post_trade_qty(ctx)
    if ctx.request.decision.action is Action.SELL and post < 0 and not limits.shorting_allowed:
        return _fail(
            code, f"sell would leave a short position of {_num(post)} (shorting not allowed)"
        )
    return _ok(code, "no disallowed short")


def order_rate(ctx: GateContext, limits: PolicyLimits) -> GateResult:
    """Submitted orders per strategy within the window, counted from persisted reviews."""
    code = GateCode.ORDER_RATE
    cfg = limits.order_rate
    count = ctx.recent_orders_for_strategy
    if count >= cfg.max_orders_per_strategy:
        return _fail(
            code,
            f"{count} orders submitted by {ctx.request.decision.strategy_id} in the last "
            f"{cfg.window_seconds}s (max {cfg.max_orders_per_strategy})",
        )
    return _ok(code, f"{count} orders in the last {cfg.window_seconds}s")


def market_context(ctx: GateContext, limits: PolicyLimits) -> GateResult:
    """Market context, when present (or required), must be fresh, good and unflagged."""
    code = GateCode.MARKET_CONTEXT
    cfg = limits.market_context
    mc = ctx.request.market_context
    if mc is None:
        if cfg.required:
            return _fail(code, "market context required but absent")
        return _ok(code, "no market context supplied (not required)")
    symbol = ctx.request.decision.symbol.upper()
    if mc.symbol is not None and mc.symbol.upper() != symbol:
        return _fail(code, f"market context is for {mc.symbol}, order is for {symbol}")
    if mc.freshness_seconds is not None and mc.freshness_seconds > Decimal(
        str(cfg.max_freshness_seconds)
    ):
        return _fail(code, f"market context is {mc.freshness_seconds}s old")
    if mc.as_of_utc is not None:
        age = (ctx.now - mc.as_of_utc).total_seconds()
        if age > cfg.max_freshness_seconds:
            return _fail(
                code,
                f"market context as of {human_age(age)} ago, max {cfg.max_freshness_seconds:g} s",
            )
        if -age > limits.reference_price.max_future_skew_seconds:
            return _fail(code, f"market context as of {-age:.0f}s in the future")
    if mc.quality_score is not None and mc.quality_score < Decimal(str(cfg.min_quality_score)):
        return _fail(code, f"market context quality {mc.quality_score} < {cfg.min_quality_score}")
    blocking = {f.lower() for f in cfg.blocking_risk_flags}
    hit = sorted({f for f in mc.risk_flags if f.lower() in blocking})
    if hit:
        return _fail(code, f"blocking risk flags: {', '.join(hit)}")
    return _ok(code, "market context fresh and usable")


def review_confidence(ctx: GateContext, limits: PolicyLimits) -> GateResult:
    """A reviewer's approval counts only with enough confidence and bounded uncertainty."""
    code = GateCode.REVIEW_CONFIDENCE
    cfg = limits.review
    v = ctx.verdict
    if v.verdict not in (Verdict.APPROVE, Verdict.ADJUST):
        return _ok(code, f"verdict {v.verdict} does not rely on confidence")
    if not v.confidence >= cfg.min_confidence:  # a NaN confidence fails too
        return _fail(code, f"confidence {v.confidence:.2f} < floor {cfg.min_confidence:.2f}")
    if v.uncertainty in cfg.blocked_uncertainty:
        return _fail(code, f"uncertainty {v.uncertainty} is blocked")
    return _ok(code, f"confidence {v.confidence:.2f}, uncertainty {v.uncertainty}")


def required_checks(ctx: GateContext, limits: PolicyLimits) -> GateResult:
    """Checks the reviewer asks for must be ones the desk knows how to perform."""
    code = GateCode.REQUIRED_CHECKS
    allow = set(limits.review.required_checks_allowlist)
    unknown = sorted(c for c in ctx.verdict.required_checks if c not in allow)
    if unknown:
        return _fail(code, f"required checks not on the allowlist: {', '.join(unknown)}")
    return _ok(code, "no unknown required checks")


def adjustment(ctx: GateContext, _: PolicyLimits) -> GateResult:
    """An adjustment is applied only within the policy bounds; otherwise the order stops."""
    code = GateCode.ADJUSTMENT
    if ctx.plan.adjustment_problem is not None:
        return _fail(code, ctx.plan.adjustment_problem)
    return _ok(code, ctx.plan.adjustment_note)


def order_type(ctx: GateContext, limits: PolicyLimits) -> GateResult:
    """The final order type must be allowed by the request's policy and the service's."""
    code = GateCode.ORDER_TYPE
    allowed = set(ctx.request.policy.allowed_order_types) & set(
        limits.adjustment.allowed_order_types
    )
    if ctx.plan.order_type not in allowed:
        return _fail(code, f"order type {ctx.plan.order_type} not allowed")
    return _ok(code, f"order type {ctx.plan.order_type} allowed")


def _num(value: Decimal) -> str:
    return plain(value) if value.is_finite() else str(value)


def guarded(gate: Gate) -> Gate:
    """Run ``gate`` under the bounded decimal context; a gate that cannot compute fails closed.

    Any exception (an arithmetic trap, a missing figure a gate did not foresee) becomes a failed
    result with its own reason, so the order is rejected and the review is still recorded,
    instead of a 500 with no audit row.
    """
    code = GateCode(gate.__name__)

    @functools.wraps(gate)
    def run(ctx: GateContext, limits: PolicyLimits) -> GateResult:
        try:
            with localcontext(DECIMAL_CONTEXT):
                return gate(ctx, limits)
        except Exception as exc:
            return _fail(code, f"{code} could not be computed ({type(exc).__name__}): fail closed")

    return run


GATES: tuple[Gate, ...] = tuple(
    guarded(gate)
    for gate in (
        trading_state,
        trading_mode,
        input_sanity,
        order_quantity,
        symbol_allowed,
        reference_price,
        decision_age,
        price_integrity,
        price_collar,
        max_notional,
        position_limit,
        gross_exposure,
        buying_power,
        shorting,
        order_rate,
        market_context,
        review_confidence,
        required_checks,
        adjustment,
        order_type,
    )
)


def evaluate(ctx: GateContext, limits: PolicyLimits) -> list[GateResult]:
    """Run every gate (never short-circuit) so each failure is recorded."""
    return [gate(ctx, limits) for gate in GATES]
