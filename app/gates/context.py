"""Everything a gate may look at, computed once per request (pure)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from enum import StrEnum
from typing import Any

from app.review.schemas import Action, OrderType, ReviewRequest, ReviewVerdict


class TradingState(StrEnum):
    ACTIVE = "ACTIVE"
    REDUCING = "REDUCING"
    HALTED = "HALTED"


@dataclass(frozen=True, slots=True)
class ReferencePrice:
    price: Decimal | None
    as_of: datetime | None
    source: str  # market.price | params.price_snapshot | params.price | missing


@dataclass(frozen=True, slots=True)
class OrderPlan:
    """The order that would be sent, after any accepted adjustment."""

    qty: Decimal
    order_type: OrderType
    limit_price: Decimal | None
    limit_price_assumed: bool
    resized: bool
    adjustment_problem: str | None  # why a requested adjustment cannot be applied
    adjustment_note: str


@dataclass(frozen=True, slots=True)
class GateContext:
    request: ReviewRequest
    verdict: ReviewVerdict
    plan: OrderPlan
    reference: ReferencePrice
    now: datetime
    trading_state: TradingState
    live_trading_enabled: bool
    recent_orders_for_strategy: int
    current_position_qty: Decimal


def _dec(value: Any) -> Decimal | None:
    if value is None or isinstance(value, bool):
        return None
    try:
        out = Decimal(str(value))
    except ArithmeticError:
        return None
    return out if out.is_finite() else None


def resolve_reference_price(request: ReviewRequest) -> ReferencePrice:
    """``market.price`` (with ``market.as_of``), else the price the strategy sized at."""
    market = request.market
    if market is not None and market.price is not None:
        return ReferencePrice(market.price, market.as_of, "market.price")
    params = request.decision.params
    for key in ("price_snapshot", "price"):
        price = _dec(params.get(key))
        if price is not None and price > 0:
            return ReferencePrice(price, request.decision.event_ts, f"params.{key}")
    return ReferencePrice(None, None, "missing")


def resolve_limit_price(request: ReviewRequest, ref: ReferencePrice) -> tuple[Decimal | None, bool]:
    """A limit order's price and whether it was assumed (not given by the strategy)."""
    decision = request.decision
    if decision.order_type not in (OrderType.LIMIT, OrderType.STOP_LIMIT):
        return None, False
    if decision.limit_price is not None:
        return decision.limit_price, False
    given = _dec(decision.params.get("limit_price"))
    if given is not None and given > 0:
        return given, False
    return ref.price, True


def current_position_qty(request: ReviewRequest) -> Decimal:
    """Signed position in the order's symbol (short < 0), from the positions the scheduler sent."""
    symbol = request.decision.symbol.upper()
    for pos in (*request.portfolio.positions, *request.positions):
        if str(pos.get("symbol", "")).upper() != symbol:
            continue
        qty = _dec(pos.get("qty", pos.get("quantity")))
        if qty is None:
            continue
        side = str(pos.get("side", "")).lower()
        return -abs(qty) if side == "short" else qty
    return Decimal(0)


def signed_delta(action: Action, qty: Decimal) -> Decimal:
    return qty if action is Action.BUY else -qty
