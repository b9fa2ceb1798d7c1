"""Issue 13's wrong decisions in the gates and the final decision, one named test each.

Each test asserts the fail-closed behaviour exactly (decision, reasons, the gate's own reason),
so the wrong variant the issue describes (an escalate submitted, an abstain submitted under the
shipped policy, gross exposure adding the held position, a flip passing the position limit,
a division by zero equity, a TypeError on a missing reference price, small orders skipping
buying power, an unreachable planning branch) turns a test red.

The ratio gates are also called unguarded (``checks.<gate>``, outside ``guarded``): an arithmetic
error there would raise instead of being turned into a generic "could not be computed" failure.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from app.decision import VerdictReason, final_decision
from app.gates import checks
from app.gates.checks import GateCode, GateResult, evaluate
from app.gates.context import GateContext
from app.gates.limits import PolicyLimits, load_policy
from app.review.schemas import Decision, Verdict
from tests.support.gates import (
    GATE_BY_CODE,
    NO_PRICE,
    build_context,
    hold,
    limit_order,
    make_limits,
    put,
    sell,
)

G = GateCode
SHIPPED_PATH = Path(__file__).resolve().parents[2] / "config" / "policy.yaml"
SHIPPED = load_policy(SHIPPED_PATH).limits

RawGate = Callable[[GateContext, PolicyLimits], GateResult]


def decide(ctx: GateContext, limits: PolicyLimits = SHIPPED) -> tuple[Decision, list[str]]:
    """What the served path decides: every gate, then ``final_decision`` under ``limits``."""
    gates = evaluate(ctx, limits)
    return final_decision(ctx.verdict.verdict, gates, limits.review.abstain_action)


def failed(ctx: GateContext, limits: PolicyLimits = SHIPPED) -> list[GateCode]:
    return [r.code for r in evaluate(ctx, limits) if not r.passed]


# ----------------------------------------------------------------------------- verdicts


def test_decision_when_verdict_escalates_and_every_gate_passes_then_rejects_with_escalate() -> None:
    ctx = build_context(verdict={"verdict": "escalate"}, limits=SHIPPED)

    assert failed(ctx) == []
    assert decide(ctx) == (Decision.REJECT, ["verdict_escalate"])


def test_decision_when_verdict_abstains_under_the_shipped_policy_then_rejects() -> None:
    ctx = build_context(verdict={"verdict": "abstain"}, limits=SHIPPED)

    assert SHIPPED.review.abstain_action == "reject"
    assert failed(ctx) == []
    assert decide(ctx) == (Decision.REJECT, ["verdict_abstain"])


def test_decision_when_verdict_abstains_and_policy_says_submit_then_submits() -> None:
    # The other side of the shipped rule: only an explicit "submit" lets an abstain through.
    limits = make_limits(review={"abstain_action": "submit"})
    ctx = build_context(verdict={"verdict": "abstain"}, limits=limits)

    assert decide(ctx, limits) == (Decision.SUBMIT, [])


# ----------------------------------------------------------------------------- gross exposure

# Reference 200, equity 100,000, max 2.0x: total_exposure already includes the held position,
# so only the shares that grow |position| are added (198,000 + 10 x 200 = 200,000 = 2.00x).


@pytest.mark.parametrize(
    ("total", "passes", "mentions"),
    [
        pytest.param("198000", True, "post-trade gross exposure 2.00x equity", id="at_max"),
        pytest.param("198001", False, "post-trade gross exposure 2.00x equity (max 2.0x)",
                     id="one_over_max"),
    ],
)  # fmt: skip
def test_gross_exposure_when_buy_adds_to_a_held_long_then_adds_only_the_new_shares(
    total: str, passes: bool, mentions: str
) -> None:
    # Adding the held 100 instead of subtracting it would read 220,000 = 2.20x and fail.
    ctx = build_context(put("portfolio.total_exposure", total), hold("100"))

    result = checks.gross_exposure(ctx, SHIPPED)

    assert (result.passed, result.reason) == (passes, mentions)


def test_gross_exposure_when_sell_reduces_a_held_long_then_subtracts_and_passes_over_max() -> None:
    # Already at 5x: a sell that shrinks the position lowers gross exposure and must pass.
    ctx = build_context(put("portfolio.total_exposure", "500000"), hold("100"), *sell("10"))

    result = checks.gross_exposure(ctx, SHIPPED)

    assert (result.passed, result.reason) == (True, "order does not increase gross exposure")


@pytest.mark.parametrize(
    ("total", "passes"),
    [pytest.param("198000", True, id="at_max"), pytest.param("198001", False, id="one_over")],
)
def test_gross_exposure_when_sell_adds_to_a_held_short_then_adds_only_the_new_shares(
    total: str, passes: bool
) -> None:
    ctx = build_context(
        put("portfolio.total_exposure", total), hold("100", side="short"), *sell("10")
    )

    assert checks.gross_exposure(ctx, SHIPPED).passed is passes


@pytest.mark.parametrize(
    ("total", "passes"),
    [pytest.param("190000", True, id="at_max"), pytest.param("190001", False, id="one_over")],
)
def test_gross_exposure_when_sell_flips_a_long_into_a_bigger_short_then_adds_the_growth(
    total: str, passes: bool
) -> None:
    # +100 -> -150: gross grows by 50 shares (10,000), not by 250 or 150 shares.
    limits = make_limits(shorting_allowed=True)
    ctx = build_context(put("portfolio.total_exposure", total), hold("100"), *sell("250"))

    assert checks.gross_exposure(ctx, limits).passed is passes


# ----------------------------------------------------------------------------- position limit

# Shorting allowed and the notional share raised to 100%, so the position limit is the only gate
# that can stop the flip: +200 long, sell 330 -> -130 short = 26,000 = 26% of equity (max 25%).
FLIP_LIMITS = make_limits(shorting_allowed=True, max_notional_pct_equity="1.0")


def test_position_limit_when_sell_flips_a_long_into_an_over_limit_short_then_rejects() -> None:
    ctx = build_context(hold("200"), *sell("330"), limits=FLIP_LIMITS)

    result = checks.position_limit(ctx, FLIP_LIMITS)

    assert (result.passed, result.reason) == (
        False,
        "post-trade position is 26.00% of equity (max 25.00%)",
    )
    assert decide(ctx, FLIP_LIMITS) == (Decision.REJECT, ["position_limit"])


def test_position_limit_when_sell_flips_a_long_into_a_short_at_the_limit_then_submits() -> None:
    ctx = build_context(hold("200"), *sell("325"), limits=FLIP_LIMITS)

    assert checks.position_limit(ctx, FLIP_LIMITS).reason == "post-trade position 25.00% of equity"
    assert decide(ctx, FLIP_LIMITS) == (Decision.SUBMIT, [])


def test_position_limit_when_small_long_flips_into_a_large_short_then_fails() -> None:
    # +10 -> -130: the closed 10 shares free nothing; the whole new short is judged.
    ctx = build_context(hold("10"), *sell("140"), limits=FLIP_LIMITS)

    assert not checks.position_limit(ctx, FLIP_LIMITS).passed


# ----------------------------------------------------------------------------- equity zero

EQUITY_GATES: dict[GateCode, str] = {
    G.MAX_NOTIONAL: "equity unknown or zero: notional share cannot be checked",
    G.POSITION_LIMIT: "post-trade position share unknown (price or equity missing or zero)",
    G.GROSS_EXPOSURE: "gross exposure unknown (price or equity missing or zero)",
}
RAW_GATES: dict[GateCode, RawGate] = {
    G.MAX_NOTIONAL: checks.max_notional,
    G.POSITION_LIMIT: checks.position_limit,
    G.GROSS_EXPOSURE: checks.gross_exposure,
    G.BUYING_POWER: checks.buying_power,
    G.PRICE_COLLAR: checks.price_collar,
    G.PRICE_INTEGRITY: checks.price_integrity,
    G.REFERENCE_PRICE: checks.reference_price,
}


@pytest.mark.parametrize("code", list(EQUITY_GATES), ids=str)
def test_equity_gate_when_equity_is_zero_then_fails_closed_without_dividing(
    code: GateCode,
) -> None:
    ctx = build_context(put("portfolio.equity", "0"))

    # Unguarded: a division by zero would raise here, not hide behind "could not be computed".
    result = RAW_GATES[code](ctx, SHIPPED)

    assert result == GateResult(code, False, EQUITY_GATES[code])
    assert GATE_BY_CODE[code](ctx, SHIPPED) == result


def test_decision_when_equity_is_zero_then_rejects_naming_each_equity_gate() -> None:
    ctx = build_context(put("portfolio.equity", "0"))

    assert decide(ctx) == (Decision.REJECT, ["max_notional", "position_limit", "gross_exposure"])


# ----------------------------------------------------------------------------- no reference

NO_REFERENCE_REASONS: dict[GateCode, str] = {
    G.REFERENCE_PRICE: "no reference price (market.price or params.price_snapshot/price)",
    G.PRICE_INTEGRITY: "no reference price to cross-check",
    G.PRICE_COLLAR: "limit order without a limit or reference price",
    G.MAX_NOTIONAL: "notional unknown without a price",
    G.POSITION_LIMIT: "post-trade position share unknown (price or equity missing or zero)",
    G.GROSS_EXPOSURE: "gross exposure unknown (price or equity missing or zero)",
    G.BUYING_POWER: "buying power or price unknown",
}


@pytest.mark.parametrize("kind", ["limit", "stop_limit"])
@pytest.mark.parametrize("code", list(NO_REFERENCE_REASONS), ids=str)
def test_price_gate_when_limit_order_has_a_limit_price_but_no_reference_then_fails_closed(
    code: GateCode, kind: str
) -> None:
    ctx = build_context(*limit_order("200", kind=kind), *NO_PRICE)

    assert ctx.plan.limit_price is not None
    assert ctx.reference.price is None
    # Unguarded: comparing or dividing by the missing reference would raise a TypeError here.
    assert RAW_GATES[code](ctx, SHIPPED) == GateResult(code, False, NO_REFERENCE_REASONS[code])


def test_decision_when_limit_order_has_no_reference_then_rejects_with_the_price_gates() -> None:
    ctx = build_context(*limit_order("200"), *NO_PRICE)

    decision, reasons = decide(ctx)

    assert decision is Decision.REJECT
    assert reasons == [
        "reference_price",
        "price_integrity",
        "price_collar",
        "max_notional",
        "position_limit",
        "gross_exposure",
        "buying_power",
    ]


# ----------------------------------------------------------------------------- small orders


@pytest.mark.parametrize(
    ("qty", "power", "passes", "reason"),
    [
        ("1", "199.99", False, "needs 200.00, buying power 199.99"),
        ("1", "200", True, "needs 200.00 of 200.00 buying power"),
        ("0.5", "99.99", False, "needs 100.00, buying power 99.99"),
        ("0.5", "100", True, "needs 100.00 of 100.00 buying power"),
        ("0.000001", "0", False, "needs 0.00, buying power 0.00"),
        ("0.000001", "0.0002", True, "needs 0.00 of 0.00 buying power"),
    ],
)
def test_buying_power_when_order_is_one_share_or_less_then_still_checked(
    qty: str, power: str, passes: bool, reason: str
) -> None:
    ctx = build_context(put("decision.qty", qty), put("portfolio.buying_power", power))

    assert checks.buying_power(ctx, SHIPPED) == GateResult(G.BUYING_POWER, passes, reason)
    expected = (Decision.SUBMIT, []) if passes else (Decision.REJECT, ["buying_power"])
    assert decide(ctx) == expected


# ----------------------------------------------------------------------------- planning


def test_decision_when_adjust_bounds_hold_no_quantity_at_order_precision_then_rejects() -> None:
    # 10 x [0.25, 0.26] = [2.5, 2.6] holds no whole share (the order's precision): refused.
    ctx = build_context(
        put("policy.min_qty_multiplier", "0.25"),
        put("policy.max_qty_multiplier", "0.26"),
        verdict={"verdict": "adjust", "adjusted_qty": "2.55"},
    )
    problem = "no quantity in [2.50, 2.60] at order precision"

    assert ctx.plan.adjustment_problem == problem
    assert checks.adjustment(ctx, SHIPPED) == GateResult(G.ADJUSTMENT, False, problem)
    assert decide(ctx) == (Decision.REJECT, ["adjustment"])


# ----------------------------------------------------------------------------- the table

PASSING = [GateResult(G.TRADING_STATE, True, "ok"), GateResult(G.BUYING_POWER, True, "ok")]
ONE_FAILING = [GateResult(G.TRADING_STATE, True, "ok"), GateResult(G.BUYING_POWER, False, "no")]

S, R = Decision.SUBMIT, Decision.REJECT
# (verdict, gates fail, abstain_action) -> (decision, reasons)
TABLE: list[tuple[Verdict, bool, str, Decision, list[str]]] = [
    (Verdict.APPROVE, False, "submit", S, []),
    (Verdict.APPROVE, False, "reject", S, []),
    (Verdict.APPROVE, True, "submit", R, ["buying_power"]),
    (Verdict.APPROVE, True, "reject", R, ["buying_power"]),
    (Verdict.ADJUST, False, "submit", S, []),
    (Verdict.ADJUST, False, "reject", S, []),
    (Verdict.ADJUST, True, "submit", R, ["buying_power"]),
    (Verdict.ADJUST, True, "reject", R, ["buying_power"]),
    (Verdict.VETO, False, "submit", R, ["verdict_veto"]),
    (Verdict.VETO, False, "reject", R, ["verdict_veto"]),
    (Verdict.VETO, True, "submit", R, ["verdict_veto", "buying_power"]),
    (Verdict.VETO, True, "reject", R, ["verdict_veto", "buying_power"]),
    (Verdict.ESCALATE, False, "submit", R, ["verdict_escalate"]),
    (Verdict.ESCALATE, False, "reject", R, ["verdict_escalate"]),
    (Verdict.ESCALATE, True, "submit", R, ["verdict_escalate", "buying_power"]),
    (Verdict.ESCALATE, True, "reject", R, ["verdict_escalate", "buying_power"]),
    (Verdict.ABSTAIN, False, "submit", S, []),
    (Verdict.ABSTAIN, False, "reject", R, ["verdict_abstain"]),
    (Verdict.ABSTAIN, True, "submit", R, ["buying_power"]),
    (Verdict.ABSTAIN, True, "reject", R, ["verdict_abstain", "buying_power"]),
]


@pytest.mark.parametrize(
    ("verdict", "gate_fails", "abstain_action", "decision", "reasons"),
    [
        pytest.param(*row, id=f"{row[0]}-{'one_gate_fails' if row[1] else 'gates_pass'}-{row[2]}")
        for row in TABLE
    ],
)
def test_final_decision_when_verdict_gates_and_abstain_action_vary_then_follows_the_table(
    verdict: Verdict, gate_fails: bool, abstain_action: str, decision: Decision, reasons: list[str]
) -> None:
    gates = ONE_FAILING if gate_fails else PASSING

    assert final_decision(verdict, gates, abstain_action) == (decision, reasons)


def test_final_decision_table_when_read_then_covers_every_verdict_gate_and_action() -> None:
    keys = {(v, f, a) for v, f, a, _, _ in TABLE}

    assert len(keys) == len(TABLE) == len(Verdict) * 2 * 2
    assert {v for v, *_ in TABLE} == set(Verdict)


@pytest.mark.parametrize("action", ["Submit", "SUBMIT", "submit ", "", "approve", "reject"])
def test_final_decision_when_abstain_action_is_not_exactly_submit_then_rejects(
    action: str,
) -> None:
    assert final_decision(Verdict.ABSTAIN, PASSING, action) == (R, ["verdict_abstain"])


def test_final_decision_when_several_gates_fail_then_names_each_in_gate_order() -> None:
    gates = [
        GateResult(G.TRADING_STATE, False, "halted"),
        GateResult(G.TRADING_MODE, True, "ok"),
        GateResult(G.ORDER_RATE, False, "rate"),
        GateResult(G.ORDER_TYPE, False, "type"),
    ]

    assert final_decision(Verdict.VETO, iter(gates), "reject") == (
        R,
        ["verdict_veto", "trading_state", "order_rate", "order_type"],
    )


def test_final_decision_when_no_gate_ran_then_the_verdict_alone_decides() -> None:
    assert final_decision(Verdict.APPROVE, [], "reject") == (S, [])
    assert final_decision(Verdict.VETO, [], "submit") == (R, ["verdict_veto"])


def test_verdict_reasons_when_listed_then_are_the_recorded_strings() -> None:
    # The reasons are persisted and counted in metrics: renaming one is a migration.
    expected: dict[str, Any] = {
        "VERDICT_VETO": "verdict_veto",
        "VERDICT_ESCALATE": "verdict_escalate",
        "VERDICT_ABSTAIN": "verdict_abstain",
    }
    assert {r.name: r.value for r in VerdictReason} == expected
