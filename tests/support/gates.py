"""Builders for gate contexts: a clean request every gate passes, tweaked one thing at a time.

``build_context`` builds what the pipeline would build (reference price, plan, position) at the
fixed clock ``NOW``; the tweaks (``put``, ``hold``, ``sell``, ``limit_order`` ...) edit the request
body before it is validated, so every context is one the schema accepts.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from app.gates.checks import GATES, GateCode
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
    "decision_age": {"max_age_seconds": 300, "max_future_skew_seconds": 5},
    "price_integrity": {
        "max_divergence_pct": "0.05",
        "max_mark_divergence_pct": "0.20",
        "min_corroborating_prices": 0,
    },
    "quantity": {"lot_size": "0.000001", "max_per_order": "100000", "max_per_order_by_symbol": {}},
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


def hold(qty: str, side: str = "long", symbol: str = "AAPL", **fields: Any) -> Tweak:
    """An existing broker position in the order's symbol (extra broker fields as given)."""

    def tweak(body: Body) -> None:
        body["portfolio"]["positions"].append(
            {"symbol": symbol, "qty": qty, "side": side, **fields}
        )

    return tweak


def also_in_positions(**entry: Any) -> Tweak:
    """The same (or another) position in the request's top-level ``positions`` list."""
    return lambda body: body["positions"].append({"symbol": "AAPL", "side": "long", **entry})


def decided(seconds_ago: float) -> Tweak:
    return put("decision.event_ts", iso(NOW - timedelta(seconds=seconds_ago)))


def snapshot(price: str) -> Tweak:
    return put("decision.params.price_snapshot", price)


def quote(**payload: Any) -> Tweak:
    return market_context(domains={"quote": {"payload": payload}})


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


def case_context(case: Any) -> GateContext:
    """The context of a table row (``Row`` in test_gates.py, ``Exact`` in test_gates_mutants.py):
    its body tweaks, verdict, limits, desk state, then its context tweak if any."""
    ctx = build_context(
        *case.body,
        verdict=case.verdict,
        limits=make_limits(**case.limits),
        state=case.state,
        live=case.live,
        recent=case.recent,
    )
    return case.ctx(ctx) if case.ctx is not None else ctx
