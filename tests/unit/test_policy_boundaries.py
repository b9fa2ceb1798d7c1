"""Every numeric limit of the shipped ``config/policy.yaml``, at the limit and one step each side.

The policy is read with the service's own loader (``load_policy``). Each boundary row names the
limit it probes, the side of the gate (above / below, past / future, long / short), and the step
(``at`` the limit, one step ``inside``, one step ``outside``); the step is the finest the input
carries: a lot (0.000001 share), a cent, a millisecond, 0.001 of a score. A gate whose limit is
inclusive passes at the limit; the order-rate cap counts orders already submitted, so a strategy
*at* the cap is refused.

``test_boundary_table_when_read_then_probes_every_numeric_limit_of_the_policy`` fails when a
numeric limit is added to the policy without rows here; ``test_shipped_policy_*`` fail when any
single entry of the file changes.
"""

from __future__ import annotations

import copy
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any, cast

import pytest
import yaml
from pydantic import BaseModel

from app.gates.checks import GateCode, GateResult, evaluate
from app.gates.limits import PolicyLimits, load_policy
from app.reviews.reservations import Ledger, Reservation
from tests.support.gates import (
    GATE_BY_CODE,
    NOW,
    Tweak,
    build_context,
    decided,
    hold,
    limit_order,
    market_context,
    put,
    sell,
    snapshot,
)
from tests.support.requests import iso

G = GateCode
SHIPPED_PATH = Path(__file__).resolve().parents[2] / "config" / "policy.yaml"
SHIPPED = load_policy(SHIPPED_PATH).limits


def _merge(base: dict[str, Any], overrides: dict[str, Any]) -> dict[str, Any]:
    out = copy.deepcopy(base)
    for key, value in overrides.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _merge(out[key], value)  # pyright: ignore[reportUnknownArgumentType]
        else:
            out[key] = value
    return out


def shipped_with(overrides: dict[str, Any]) -> PolicyLimits:
    """The shipped policy with some entries replaced (for limits the file leaves at a corner)."""
    return PolicyLimits.model_validate(_merge(SHIPPED.model_dump(), overrides))


def ago(seconds: str) -> str:
    return iso(NOW - timedelta(seconds=float(seconds)))


# ----------------------------------------------------------------------------- shipped values

# Every leaf of the shipped policy, as the loader reads it. One changed entry fails one row.
SHIPPED_TABLE: dict[str, Any] = {
    "version": 1,
    "symbols.allow": (),
    "symbols.deny": (),
    "reference_price.max_age_seconds": 300,
    "reference_price.max_future_skew_seconds": 5,
    "decision_age.max_age_seconds": 300,
    "decision_age.max_future_skew_seconds": 5,
    "price_integrity.max_divergence_pct": Decimal("0.05"),
    "price_integrity.max_mark_divergence_pct": Decimal("0.20"),
    "price_integrity.min_corroborating_prices": 0,
    "quantity.lot_size": Decimal("0.000001"),
    "quantity.max_per_order": Decimal("100000"),
    "quantity.max_per_order_by_symbol": {},
    "limit_price_collar_pct": Decimal("0.05"),
    "max_notional_per_order": Decimal("250000"),
    "max_notional_pct_equity": Decimal("0.10"),
    "max_position_pct_equity": Decimal("0.25"),
    "max_gross_exposure_pct_equity": Decimal("2.0"),
    "shorting_allowed": False,
    "order_rate.window_seconds": 60,
    "order_rate.max_orders_per_strategy": 30,
    "reservations.ttl_seconds": 60,
    "market_context.required": False,
    "market_context.max_freshness_seconds": 900,
    "market_context.min_quality_score": 0.5,
    "market_context.blocking_risk_flags": (
        "halted",
        "trading_halt",
        "luld_pause",
        "circuit_breaker",
    ),
    "review.min_confidence": 0.5,
    "review.blocked_uncertainty": ("high",),
    "review.abstain_action": "reject",
    "review.required_checks_allowlist": (
        "confirm_liquidity",
        "confirm_spread",
        "confirm_market_hours",
        "confirm_position_limits",
        "confirm_no_pending_news",
    ),
    "adjustment.max_qty_multiplier": Decimal("1.0"),
    "adjustment.allowed_order_types": ("market", "limit", "stop", "stop_limit"),
}


# Entries whose value is a map of free keys (symbol -> cap): one leaf, not a section.
MAP_ENTRIES = {"quantity.max_per_order_by_symbol"}


def leaves(node: Any, path: str = "") -> Iterator[tuple[str, Any]]:
    """``(dotted.path, value)`` for every entry of a policy (model or raw YAML mapping)."""
    if isinstance(node, BaseModel):
        node = {name: getattr(node, name) for name in type(node).model_fields}
    if isinstance(node, dict) and path not in MAP_ENTRIES:
        for key, value in cast(dict[str, Any], node).items():
            yield from leaves(value, f"{path}.{key}" if path else key)
    else:
        yield path, node


def loaded_leaves() -> dict[str, Any]:
    return dict(leaves(SHIPPED))


def yaml_leaves() -> dict[str, Any]:
    raw: dict[str, Any] = yaml.safe_load(SHIPPED_PATH.read_text())
    return dict(leaves(raw))


def test_shipped_policy_when_loaded_then_has_exactly_the_expected_entries() -> None:
    assert set(loaded_leaves()) == set(SHIPPED_TABLE)


def test_shipped_policy_file_when_read_then_spells_out_every_entry() -> None:
    # No limit is left to a code default: the file (and its hash) says what judged an order.
    assert set(yaml_leaves()) == set(SHIPPED_TABLE)


@pytest.mark.parametrize("key", list(SHIPPED_TABLE))
def test_shipped_policy_entry_when_loaded_then_has_the_expected_value(key: str) -> None:
    value = loaded_leaves()[key]
    expected = SHIPPED_TABLE[key]
    if isinstance(value, tuple):
        value = tuple(str(v) for v in value)  # pyright: ignore[reportUnknownVariableType, reportUnknownArgumentType]

    assert value == expected


# ----------------------------------------------------------------------------- boundaries


@dataclass(frozen=True)
class Edge:
    limit: str  # dotted policy key the row probes
    side: str  # above / below / past / future / long / short / upper / lower
    step: str  # at / inside / outside
    gate: GateCode
    passes: bool
    body: tuple[Tweak, ...] = ()
    verdict: dict[str, Any] | None = None
    overrides: dict[str, Any] | None = None  # policy changes beside the probed limit
    recent: int = 0
    also: frozenset[GateCode] = frozenset()  # other gates the same input fails, by design

    @property
    def id(self) -> str:
        return f"{self.limit}-{self.side}-{self.step}"


def edges(
    limit: str,
    side: str,
    gate: GateCode,
    at: tuple[Tweak, ...],
    inside: tuple[Tweak, ...],
    outside: tuple[Tweak, ...],
    **kw: Any,
) -> list[Edge]:
    """The three rows of one side of one limit (inclusive limit: at and inside pass)."""
    return [
        Edge(limit, side, "at", gate, True, at, **kw),
        Edge(limit, side, "inside", gate, True, inside, **kw),
        Edge(limit, side, "outside", gate, False, outside, **kw),
    ]


def qty(value: str) -> Tweak:
    return put("decision.qty", value)


def mv(value: str) -> Tweak:
    return put("market.price", value)


NO_PARAMS = put("decision.params", {})
# Equity and buying power so large that only the absolute notional cap binds.
RICH = (put("portfolio.equity", "10000000"), put("portfolio.buying_power", "10000000"))
# A one-cent stock: 100,000 shares are worth 1,000, so only the quantity caps bind.
PENNY = (mv("0.01"), snapshot("0.01"))
BRK = (put("decision.symbol", "BRK.A"), put("market.symbol", "BRK.A"), *PENNY)
SHORTING = {"shorting_allowed": True}


def exposure(total: str) -> Tweak:
    return put("portfolio.total_exposure", total)


def mc(**fields: Any) -> Tweak:
    return market_context(**fields)


def conf(value: float, verdict: str = "approve") -> dict[str, Any]:
    extra = {"adjusted_qty": "5"} if verdict == "adjust" else {}
    return {"verdict": verdict, "confidence": value, **extra}


# fmt: off
EDGES: list[Edge] = [
    # reference price: 300 s old at most, at most 5 s ahead
    *edges("reference_price.max_age_seconds", "past", G.REFERENCE_PRICE,
           (put("market.as_of", ago("300")),), (put("market.as_of", ago("299.999")),),
           (put("market.as_of", ago("300.001")),)),
    *edges("reference_price.max_future_skew_seconds", "future", G.REFERENCE_PRICE,
           (put("market.as_of", ago("-5")),), (put("market.as_of", ago("-4.999")),),
           (put("market.as_of", ago("-5.001")),)),
    # decision age: the same two limits on decision.event_ts
    *edges("decision_age.max_age_seconds", "past", G.DECISION_AGE,
           (decided(300),), (decided(299.999),), (decided(300.001),)),
    *edges("decision_age.max_future_skew_seconds", "future", G.DECISION_AGE,
           (decided(-5),), (decided(-4.999),), (decided(-5.001),)),
    # price integrity: max(a, b) / min(a, b) - 1 <= 5%, either price the higher one
    *edges("price_integrity.max_divergence_pct", "above", G.PRICE_INTEGRITY,
           (snapshot("210"),), (snapshot("209.99"),), (snapshot("210.01"),)),
    *edges("price_integrity.max_divergence_pct", "below", G.PRICE_INTEGRITY,
           (mv("210"), snapshot("200")), (mv("210"), snapshot("200.01")),
           (mv("210"), snapshot("199.99"))),
    # position marks (market_value / qty of a 1-share holding): 20%
    *edges("price_integrity.max_mark_divergence_pct", "above", G.PRICE_INTEGRITY,
           (hold("1", market_value="240"),), (hold("1", market_value="239.99"),),
           (hold("1", market_value="240.01"),)),
    *edges("price_integrity.max_mark_divergence_pct", "below", G.PRICE_INTEGRITY,
           (mv("240"), NO_PARAMS, hold("1", market_value="200")),
           (mv("240"), NO_PARAMS, hold("1", market_value="200.01")),
           (mv("240"), NO_PARAMS, hold("1", market_value="199.99"))),
    # corroboration: shipped 0 (a lone reference serves; no count lies below 0) ...
    Edge("price_integrity.min_corroborating_prices", "lower", "at", G.PRICE_INTEGRITY, True,
         (NO_PARAMS,)),
    Edge("price_integrity.min_corroborating_prices", "lower", "inside", G.PRICE_INTEGRITY, True),
    # ... and at 1, where a missing price is one step outside
    *edges("price_integrity.min_corroborating_prices", "lower_at_1", G.PRICE_INTEGRITY,
           (), (hold("100", market_value="20000"),), (NO_PARAMS,),
           overrides={"price_integrity": {"min_corroborating_prices": 1}}),
    # quantity: one lot is the smallest order; a qty under one lot rounds to 0 and fails
    Edge("quantity.lot_size", "lower", "at", G.ORDER_QUANTITY, True, (qty("0.000001"),)),
    Edge("quantity.lot_size", "lower", "inside", G.ORDER_QUANTITY, True, (qty("0.000002"),)),
    Edge("quantity.lot_size", "lower", "outside", G.ORDER_QUANTITY, False, (qty("0.0000009"),),
         also=frozenset({G.INPUT_SANITY})),  # the planned qty is 0
    *edges("quantity.max_per_order", "upper", G.ORDER_QUANTITY,
           (*PENNY, qty("100000")), (*PENNY, qty("99999.999999")),
           (*PENNY, qty("100000.000001"))),
    # per-symbol override (the shipped map is empty: a BRK.A cap of 50)
    *edges("quantity.max_per_order_by_symbol", "upper", G.ORDER_QUANTITY,
           (*BRK, qty("50")), (*BRK, qty("49.999999")), (*BRK, qty("50.000001")),
           overrides={"quantity": {"max_per_order_by_symbol": {"BRK.A": "50"}}}),
    # limit price collar: |limit - ref| / ref <= 5% (reference 200)
    # The strategy's limit price is also an independent price: past the collar above, it is
    # past the integrity band too (same 5%).
    Edge("limit_price_collar_pct", "above", "at", G.PRICE_COLLAR, True, limit_order("210")),
    Edge("limit_price_collar_pct", "above", "inside", G.PRICE_COLLAR, True,
         limit_order("209.99")),
    Edge("limit_price_collar_pct", "above", "outside", G.PRICE_COLLAR, False,
         limit_order("210.01"), also=frozenset({G.PRICE_INTEGRITY})),
    # Below the reference the integrity band (a ratio: 200 / 1.05 = 190.48) binds first under
    # the shipped policy; a 6% band lets the collar's own lower edge (190) show.
    *edges("limit_price_collar_pct", "below", G.PRICE_COLLAR,
           limit_order("190"), limit_order("190.01"), limit_order("189.99"),
           overrides={"price_integrity": {"max_divergence_pct": "0.06"}}),
    # notional: 250,000 absolute (1,250 shares at 200), 10% of equity (50 shares of 100,000)
    *edges("max_notional_per_order", "upper", G.MAX_NOTIONAL,
           (*RICH, qty("1250")), (*RICH, qty("1249.999999")), (*RICH, qty("1250.000001"))),
    *edges("max_notional_pct_equity", "upper", G.MAX_NOTIONAL,
           (qty("50"),), (qty("49.999999"),), (qty("50.000001"),)),
    # post-trade position: 25% of equity (125 shares at 200), long and short
    *edges("max_position_pct_equity", "long", G.POSITION_LIMIT,
           (hold("100"), qty("25")), (hold("100"), qty("24.999999")),
           (hold("100"), qty("25.000001"))),
    *edges("max_position_pct_equity", "short", G.POSITION_LIMIT,
           (hold("100", side="short"), *sell("25")),
           (hold("100", side="short"), *sell("24.999999")),
           (hold("100", side="short"), *sell("25.000001")), overrides=SHORTING),
    # gross exposure: 2x equity; the order adds 10 x 200 to total_exposure, long and short
    *edges("max_gross_exposure_pct_equity", "long", G.GROSS_EXPOSURE,
           (exposure("198000"),), (exposure("197999.99"),), (exposure("198000.01"),)),
    *edges("max_gross_exposure_pct_equity", "short", G.GROSS_EXPOSURE,
           (exposure("198000"), *sell()), (exposure("197999.99"), *sell()),
           (exposure("198000.01"), *sell()), overrides=SHORTING),
    # order rate: 30 submitted in the window; the 31st (30 already in) is refused
    Edge("order_rate.max_orders_per_strategy", "upper", "inside", G.ORDER_RATE, True, recent=29),
    Edge("order_rate.max_orders_per_strategy", "upper", "at", G.ORDER_RATE, False, recent=30),
    Edge("order_rate.max_orders_per_strategy", "upper", "outside", G.ORDER_RATE, False,
         recent=31),
    # market context: 900 s fresh (reported and by its own timestamp), 5 s ahead, quality 0.5
    *edges("market_context.max_freshness_seconds", "reported", G.MARKET_CONTEXT,
           (mc(freshnessSeconds="900"),), (mc(freshnessSeconds="899.999"),),
           (mc(freshnessSeconds="900.001"),)),
    *edges("market_context.max_freshness_seconds", "as_of", G.MARKET_CONTEXT,
           (mc(asOfUtc=ago("900")),), (mc(asOfUtc=ago("899.999")),),
           (mc(asOfUtc=ago("900.001")),)),
    *edges("reference_price.max_future_skew_seconds", "market_context_as_of", G.MARKET_CONTEXT,
           (mc(asOfUtc=ago("-5")),), (mc(asOfUtc=ago("-4.999")),),
           (mc(asOfUtc=ago("-5.001")),)),
    *edges("market_context.min_quality_score", "lower", G.MARKET_CONTEXT,
           (mc(qualityScore="0.5"),), (mc(qualityScore="0.501"),),
           (mc(qualityScore="0.499"),)),
    # review confidence floor 0.5, for both verdicts that rely on it
    Edge("review.min_confidence", "approve", "at", G.REVIEW_CONFIDENCE, True, verdict=conf(0.5)),
    Edge("review.min_confidence", "approve", "inside", G.REVIEW_CONFIDENCE, True,
         verdict=conf(0.501)),
    Edge("review.min_confidence", "approve", "outside", G.REVIEW_CONFIDENCE, False,
         verdict=conf(0.499)),
    Edge("review.min_confidence", "adjust", "at", G.REVIEW_CONFIDENCE, True,
         verdict=conf(0.5, "adjust")),
    Edge("review.min_confidence", "adjust", "inside", G.REVIEW_CONFIDENCE, True,
         verdict=conf(0.501, "adjust")),
    Edge("review.min_confidence", "adjust", "outside", G.REVIEW_CONFIDENCE, False,
         verdict=conf(0.499, "adjust")),
]
# fmt: on


def _limits(edge: Edge) -> PolicyLimits:
    return shipped_with(edge.overrides) if edge.overrides else SHIPPED


@pytest.mark.parametrize("edge", [pytest.param(e, id=e.id) for e in EDGES])
def test_gate_when_input_sits_at_a_policy_boundary_then_decides_as_the_row_says(edge: Edge) -> None:
    limits = _limits(edge)
    ctx = build_context(*edge.body, verdict=edge.verdict, limits=limits, recent=edge.recent)

    result: GateResult = GATE_BY_CODE[edge.gate](ctx, limits)

    assert result.passed is edge.passes, result.reason
    assert "could not be computed" not in result.reason


@pytest.mark.parametrize("edge", [pytest.param(e, id=e.id) for e in EDGES])
def test_boundary_row_when_every_gate_judges_then_only_its_gate_moves(edge: Edge) -> None:
    # The row probes its limit and nothing else: every other gate passes on its input (bar a
    # coupling the row declares), so the decision turns on this limit alone.
    limits = _limits(edge)
    ctx = build_context(*edge.body, verdict=edge.verdict, limits=limits, recent=edge.recent)

    failed = {r.code for r in evaluate(ctx, limits) if not r.passed}

    assert failed == ({edge.gate} if not edge.passes else set()) | edge.also


def test_boundary_table_when_read_then_probes_every_numeric_limit_of_the_policy() -> None:
    numeric = {
        key
        for key, value in loaded_leaves().items()
        if isinstance(value, (int, float, Decimal)) and not isinstance(value, bool)
    } - {"version"}
    probed = {e.limit for e in EDGES} | {
        "quantity.max_per_order_by_symbol",  # a map of numbers: rows above, with an override
        "order_rate.window_seconds",  # the window and the TTL are applied by the pipeline
        "reservations.ttl_seconds",  # and the writer's ledger: the ledger tests below and
        # tests/integration/test_policy_windows.py (POST /review with a pinned clock)
        "adjustment.max_qty_multiplier",  # applied by the planner: see the plan tests below
    }

    assert numeric <= probed, numeric - probed
    for limit in {e.limit for e in EDGES}:
        steps = {e.step for e in EDGES if e.limit == limit}
        assert steps == {"at", "inside", "outside"}, limit


# ----------------------------------------------------------------------------- planner


@pytest.mark.parametrize(
    ("adjusted", "planned", "clamped"),
    [
        pytest.param("10", "10", False, id="at"),
        pytest.param("9", "9", False, id="inside"),
        pytest.param("11", "10", True, id="outside"),
    ],
)
def test_plan_when_adjusted_qty_is_around_the_max_multiplier_then_never_enlarges_past_it(
    adjusted: str, planned: str, clamped: bool
) -> None:
    # The request's own policy allows 2x: the service's 1.0 is the binding limit.
    assert SHIPPED.adjustment.max_qty_multiplier == Decimal("1.0")
    ctx = build_context(
        put("policy.max_qty_multiplier", "2.0"),
        verdict={"verdict": "adjust", "adjusted_qty": adjusted},
        limits=SHIPPED,
    )

    assert ctx.plan.qty == Decimal(planned)
    assert ctx.plan.adjustment_problem is None
    assert ("clamped to [2.50, 10.0]" in ctx.plan.adjustment_note) is clamped


@pytest.mark.parametrize(
    ("requested", "planned"),
    [
        pytest.param("0.000001", "0.000001", id="at_one_lot"),
        pytest.param("0.0000019", "0.000001", id="inside_rounds_down_to_one_lot"),
        pytest.param("0.0000009", "0", id="outside_rounds_to_zero"),
    ],
)
def test_plan_when_qty_is_around_one_lot_then_rounds_down_to_a_whole_lot(
    requested: str, planned: str
) -> None:
    assert build_context(qty(requested), limits=SHIPPED).plan.qty == Decimal(planned)


# ----------------------------------------------------------------------------- writer ledger


def _ledger_counts(ages: list[str]) -> tuple[int, Decimal]:
    """(submits in the order-rate window, pending qty) the writer re-checks with, for committed
    submits of 1 share ``ages`` seconds old, under the shipped window and TTL."""
    seen: list[tuple[int, Decimal]] = []

    def recheck(count: int, pending: Decimal) -> None:
        seen.append((count, pending))

    ledger = Ledger()
    ledger.load([("s", "AAPL", "1", NOW - timedelta(seconds=float(a))) for a in ages])
    reservation = Reservation(
        strategy_id="s",
        symbol="AAPL",
        signed_qty=Decimal(1),
        rate_since=NOW - timedelta(seconds=SHIPPED.order_rate.window_seconds),
        pending_since=NOW - timedelta(seconds=SHIPPED.reservations.ttl_seconds),
        recheck=recheck,
    )
    ledger.settle({"decision": "submit"}, reservation)
    return seen[0]


@pytest.mark.parametrize(
    ("age", "counted"),
    [
        pytest.param("60", True, id="at"),
        pytest.param("59.999", True, id="inside"),
        pytest.param("60.001", False, id="outside"),
    ],
)
def test_ledger_when_a_submit_is_around_the_window_and_ttl_then_counts_inclusively(
    age: str, counted: bool
) -> None:
    # Shipped: window 60 s and TTL 60 s, so one submit is counted by both or by neither.
    count, pending = _ledger_counts([age])

    assert (count, pending) == ((1, Decimal(1)) if counted else (0, Decimal(0)))
