"""Turn a reviewer's verdict into the order that would be sent (pure).

The reviewer may shrink an order or change its type; it may never enlarge it past policy. A
quantity outside ``[min, max] x qty`` is clamped; a change the policy forbids is recorded as an
``adjustment_problem`` so the adjustment gate fails (the order is rejected, never silently
sent in its original size against the reviewer's advice).

Every quantity is rounded down to the policy lot size (``quantity.lot_size``); one that rounds
to zero stays zero, and the ``order_quantity`` gate rejects it with the reason. Arithmetic runs
under ``app.numbers.DECIMAL_CONTEXT``; a plan that cannot be computed carries an
``adjustment_problem`` (the adjustment gate fails closed) instead of raising.
"""

from __future__ import annotations

from dataclasses import replace
from decimal import localcontext

from app.gates.context import OrderPlan, ReferencePrice, resolve_limit_price
from app.gates.limits import PolicyLimits
from app.numbers import DECIMAL_CONTEXT, ceil_to, floor_to, plain
from app.review.schemas import (
    OrderType,
    ReviewRequest,
    ReviewVerdict,
    Verdict,
    round_down_like,
    round_up_like,
)


def plan_order(
    request: ReviewRequest, verdict: ReviewVerdict, ref: ReferencePrice, limits: PolicyLimits
) -> OrderPlan:
    """The order that would be sent; never raises."""
    try:
        with localcontext(DECIMAL_CONTEXT):
            return _plan(request, verdict, ref, limits)
    except Exception as exc:
        decision = request.decision
        limit_price, assumed = resolve_limit_price(request, ref)
        problem = f"order could not be planned ({type(exc).__name__}): fail closed"
        return OrderPlan(
            qty=decision.qty,
            order_type=decision.order_type,
            limit_price=limit_price,
            limit_price_assumed=assumed,
            resized=False,
            adjustment_problem=problem,
            adjustment_note=problem,
        )


def _plan(
    request: ReviewRequest, verdict: ReviewVerdict, ref: ReferencePrice, limits: PolicyLimits
) -> OrderPlan:
    decision = request.decision
    lot = limits.quantity.lot_size
    limit_price, assumed = resolve_limit_price(request, ref)
    lotted = floor_to(decision.qty, lot)
    base = OrderPlan(
        qty=decision.qty,
        order_type=decision.order_type,
        limit_price=limit_price,
        limit_price_assumed=assumed,
        resized=False,
        adjustment_problem=None,
        adjustment_note="no adjustment requested",
    )
    if lotted != decision.qty:
        note = f"qty {plain(decision.qty)} rounded down to lot size {plain(lot)}: {plain(lotted)}"
        base = replace(base, qty=lotted, resized=True, adjustment_note=note)
    if verdict.verdict is not Verdict.ADJUST:
        return base

    policy = request.policy
    if not policy.adjustment_allowed:
        return _replace(base, problem="adjustment requested but the request's policy forbids it")

    allowed_types = set(policy.allowed_order_types) & set(limits.adjustment.allowed_order_types)
    order_type = verdict.adjusted_order_type or decision.order_type
    if verdict.adjusted_order_type is not None and order_type not in allowed_types:
        return _replace(base, problem=f"adjusted order type {order_type} is not allowed")

    max_mult = min(policy.max_qty_multiplier, limits.adjustment.max_qty_multiplier)
    min_mult = min(policy.min_qty_multiplier, max_mult)
    wanted = verdict.adjusted_qty if verdict.adjusted_qty is not None else decision.qty
    low, high = decision.qty * min_mult, decision.qty * max_mult
    clamped = min(max(wanted, low), high)
    qty = floor_to(round_down_like(clamped, decision.qty), lot)
    span = f"[{plain(low)}, {plain(high)}]"
    if qty < low:
        # Rounding down fell under the minimum: take the smallest step that honours it.
        qty = ceil_to(round_up_like(low, decision.qty), lot)
        if qty > high:
            return _replace(base, problem=f"no quantity in {span} at order precision")
    notes: list[str] = []
    if clamped != wanted:
        notes.append(f"adjusted qty {plain(wanted)} clamped to {span}")
    if qty <= 0:
        return _replace(base, problem=f"adjusted qty {plain(wanted)} rounds to zero")

    new_limit, new_assumed = limit_price, assumed
    if order_type in (OrderType.LIMIT, OrderType.STOP_LIMIT):
        if verdict.adjusted_limit_price is not None:
            new_limit, new_assumed = verdict.adjusted_limit_price, False
        elif new_limit is None:
            new_limit, new_assumed = ref.price, True
    else:
        new_limit, new_assumed = None, False

    notes.append(f"qty {plain(decision.qty)} -> {plain(qty)}")
    if order_type != decision.order_type:
        notes.append(f"order type {decision.order_type} -> {order_type}")
    return OrderPlan(
        qty=qty,
        order_type=order_type,
        limit_price=new_limit,
        limit_price_assumed=new_assumed,
        resized=qty != decision.qty,
        adjustment_problem=None,
        adjustment_note="; ".join(notes),
    )


def _replace(plan: OrderPlan, *, problem: str) -> OrderPlan:
    # The adjustment is refused; the original (lot-rounded) order is what the gates see.
    return replace(plan, adjustment_problem=problem, adjustment_note=problem)
