"""Every price a request carries, and the price an order is valued at (pure).

The reference price (``context.resolve_reference_price``) is one number; a wrong one (a feed
glitch, a unit error) once valued a $215M order at $200. So the request's other, independent
prices are collected here, and the price-integrity gate compares each with the reference:

- ``params.price_snapshot`` / ``params.price``: the price the strategy sized at,
- the limit price of a limit order (the strategy's own),
- position marks for the order's symbol: ``market_value / qty`` and ``current_price``,
- a market-context quote: ``price``, ``last``, ``last_price``, ``mid`` or ``mid_price`` in the
  payload of any ``market_context.domains`` entry.

The exposure gates (notional, position, gross exposure, buying power) value an order at the
highest credible price: the reference, the limit price and every independent price that is a
usable positive number. When two prices contradict each other nothing says which one is
wrong, so the higher one values the order (the price-integrity gate fails it as well): an
exposure limit is never passed on the lower of two contradicting prices.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Any, cast

from app.gates.context import (
    OrderPlan,
    ReferencePrice,
    position_entries,
)
from app.gates.limits import PriceIntegrityLimits
from app.numbers import to_decimal
from app.review.schemas import ReviewRequest

PARAM_PRICE_KEYS = ("price_snapshot", "price")
CONTEXT_QUOTE_KEYS = ("price", "last", "last_price", "mid", "mid_price")


@dataclass(frozen=True, slots=True)
class ObservedPrice:
    source: str
    price: Decimal | None  # None: the field is there but holds no usable positive price
    is_mark: bool = False  # position marks get the wider band


def _usable(value: Any) -> Decimal | None:
    out = to_decimal(value)
    return out if out is not None and out > 0 else None


def _position_marks(request: ReviewRequest) -> list[ObservedPrice]:
    out: list[ObservedPrice] = []
    for e in position_entries(request):
        if e.qty is None or e.qty == 0:
            continue  # an unreadable qty is input_sanity's failure; a flat position has no mark
        if e.entry.get("market_value") is not None:
            value = to_decimal(e.entry["market_value"])
            mark = abs(value) / abs(e.qty) if value is not None else None
            out.append(ObservedPrice(f"{e.where}.market_value/qty", mark or None, True))
        if e.entry.get("current_price") is not None:
            current = _usable(e.entry["current_price"])
            out.append(ObservedPrice(f"{e.where}.current_price", current, True))
    return out


def _context_quotes(request: ReviewRequest) -> list[ObservedPrice]:
    mc = request.market_context
    if mc is None:
        return []
    out: list[ObservedPrice] = []
    for name, domain in sorted(mc.domains.items()):
        if not isinstance(domain, dict):
            continue
        payload: Any = cast(dict[str, Any], domain).get("payload")
        if not isinstance(payload, dict):
            continue
        fields = cast(dict[str, Any], payload)
        for key in CONTEXT_QUOTE_KEYS:
            if fields.get(key) is not None:
                out.append(
                    ObservedPrice(
                        f"market_context.domains.{name}.payload.{key}", _usable(fields[key])
                    )
                )
    return out


def independent_prices(
    request: ReviewRequest, ref: ReferencePrice, plan: OrderPlan
) -> list[ObservedPrice]:
    """Every price in the request other than the one the reference was taken from."""
    out: list[ObservedPrice] = []
    params = request.decision.params
    for key in PARAM_PRICE_KEYS:
        source = f"params.{key}"
        if source != ref.source and params.get(key) is not None:
            out.append(ObservedPrice(source, _usable(params[key])))
    if plan.limit_price is not None and not plan.limit_price_assumed:
        out.append(ObservedPrice("limit price", plan.limit_price))
    out.extend(_position_marks(request))
    out.extend(_context_quotes(request))
    return out


def divergence(a: Decimal, b: Decimal) -> Decimal:
    """Symmetric relative distance of two positive prices: 100x too low and 100x too high
    both read 99 (= 9,900%)."""
    return max(a, b) / min(a, b) - 1


def band_for(price: ObservedPrice, cfg: PriceIntegrityLimits) -> Decimal:
    return cfg.max_mark_divergence_pct if price.is_mark else cfg.max_divergence_pct


def valuation_price(request: ReviewRequest, ref: ReferencePrice, plan: OrderPlan) -> Decimal | None:
    """The highest usable price the request carries (``None`` without a reference): the
    conservative value of an order for notional, position, gross-exposure and buying power."""
    if ref.price is None or ref.price <= 0:
        return None
    prices = [ref.price]
    if plan.limit_price is not None and plan.limit_price > 0:
        prices.append(plan.limit_price)
    prices.extend(p.price for p in independent_prices(request, ref, plan) if p.price is not None)
    return max(prices)
