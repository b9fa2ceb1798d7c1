"""Everything a gate may look at, computed once per request (pure)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from enum import StrEnum
from typing import Any

from app.numbers import to_decimal
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
    # Free-form values get the schema's decimal bounds: 1e999999 is unreadable, not huge.
    return to_decimal(value)


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
    if decision.params.get("limit_price") is not None:
        # Given but unusable ("-5", "abc"): no limit price, so the collar fails closed. It is
        # never silently replaced by an assumed one.
        given = _dec(decision.params["limit_price"])
        return (given, False) if given is not None and given > 0 else (None, False)
    return ref.price, True


@dataclass(frozen=True, slots=True)
class PositionEntry:
    """One broker position dict for the order's symbol, as far as it can be read."""

    where: str  # portfolio.positions[i] | positions[i]
    qty: Decimal | None  # signed (short < 0); None: present but unreadable
    entry: dict[str, Any]


def position_entries(request: ReviewRequest) -> list[PositionEntry]:
    """Every position dict the scheduler sent for the order's symbol (both lists)."""
    symbol = request.decision.symbol.upper()
    out: list[PositionEntry] = []
    lists = (("portfolio.positions", request.portfolio.positions), ("positions", request.positions))
    for name, positions in lists:
        for i, pos in enumerate(positions):
            if str(pos.get("symbol", "")).upper() != symbol:
                continue
            qty = _dec(pos.get("qty", pos.get("quantity")))
            if qty is not None and str(pos.get("side", "")).lower() == "short":
                qty = -abs(qty)
            out.append(PositionEntry(f"{name}[{i}]", qty, pos))
    return out


def position_problem(request: ReviewRequest) -> str | None:
    """Why the position in the order's symbol cannot be known, or ``None``.

    A position that is sent but unreadable, or two that disagree, must not be read as "flat":
    the position, shorting and exposure gates would then judge a different book.
    """
    entries = position_entries(request)
    for e in entries:
        if e.qty is None:
            return f"position {e.where} for {request.decision.symbol} has no readable qty"
    distinct = {e.qty for e in entries}
    if len(distinct) > 1:
        return f"positions for {request.decision.symbol} disagree on qty"
    return None


def current_position_qty(request: ReviewRequest) -> Decimal:
    """Signed position in the order's symbol (short < 0), from the positions the scheduler sent.

    Unreadable or conflicting entries are ``position_problem``'s business (input_sanity fails);
    here the first readable one counts."""
    for e in position_entries(request):
        if e.qty is not None:
            return e.qty
    return Decimal(0)


def signed_delta(action: Action, qty: Decimal) -> Decimal:
    return qty if action is Action.BUY else -qty
