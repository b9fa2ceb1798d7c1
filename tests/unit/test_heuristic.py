"""The deterministic reviewer: approves clean orders, shrinks then vetoes risky ones."""

from __future__ import annotations

import random
import string
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest

from app.review.heuristic import review
from app.review.schemas import ReviewRequest, ReviewVerdict, Verdict
from tests.support.requests import base_request, iso

NOW = datetime(2025, 3, 14, 14, 30, tzinfo=UTC)


def make_request(body: dict[str, Any] | None = None, **decision: Any) -> ReviewRequest:
    return ReviewRequest.model_validate(body or base_request(now=NOW, **decision))


def with_context(**fields: Any) -> ReviewRequest:
    body = base_request(now=NOW)
    body["market_context"] = {
        "contextVersion": "v1",
        "symbol": "AAPL",
        "asOfUtc": iso(NOW - timedelta(seconds=30)),
        "freshnessSeconds": "30",
        "qualityScore": "0.9",
        "riskFlags": [],
        **fields,
    }
    return make_request(body)


def test_review_when_order_is_clean_and_small_then_approves_confidently() -> None:
    verdict = review(make_request())

    assert verdict.verdict is Verdict.APPROVE
    assert verdict.confidence >= 0.5
    assert verdict.adjusted_qty is None
    assert verdict.risk_flags == []


@pytest.mark.parametrize(
    ("qty", "regime", "verdict", "adjusted_qty"),
    [
        # high entropy alone is 0.35 risk points (adjust >= 0.25, veto >= 0.6): 0.65x the
        # size, rounded down at the order's own precision; confidence 0.55 + (0.6 - 0.35) / 2
        pytest.param("10", {"entropy": "0.95"}, Verdict.ADJUST, "6", id="entropy_value"),
        pytest.param("10", {"entropy_band": "HIGH"}, Verdict.ADJUST, "6", id="entropy_band"),
        pytest.param("2.5", {"entropy": "0.99"}, Verdict.ADJUST, "1.6", id="fractional_qty"),
        # 0.65 of one share rounds to 0: too small to reduce, so not traded at all
        pytest.param("1", {"entropy": "0.95"}, Verdict.VETO, None, id="single_share"),
    ],
)
def test_review_when_regime_entropy_high_then_never_approves_at_full_size(
    qty: str, regime: dict[str, Any], verdict: Verdict, adjusted_qty: str | None
) -> None:
    request = make_request(qty=qty, regime_hmm={"regime_id": "r2", **regime})

    result = review(request)

    assert result.risk_flags == ["regime_entropy_high"]
    assert result.verdict is verdict, result
    assert result.adjusted_qty == (None if adjusted_qty is None else Decimal(adjusted_qty))
    assert result.confidence == pytest.approx(0.675)
    assert "risk 0.35" in result.rationale


@pytest.mark.parametrize(
    "flag", ["halted", "HALTED", "trading_halt", "luld_pause", "circuit_breaker", "delisting"]
)
def test_review_when_context_has_blocking_flag_then_vetoes(flag: str) -> None:
    verdict = review(with_context(riskFlags=["earnings_soon", flag]))

    assert verdict.verdict is Verdict.VETO
    assert "hard_veto" in verdict.risk_flags
    assert flag.lower() in verdict.rationale


def test_review_when_spread_is_three_percent_of_price_then_vetoes() -> None:
    body = base_request(now=NOW)
    body["market"]["spread"] = "6.00"  # 300 bps of 200.00

    verdict = review(make_request(body))

    assert verdict.verdict is Verdict.VETO
    assert "spread" in verdict.rationale


@pytest.mark.parametrize(
    ("fields", "flag"),
    [
        pytest.param({"freshnessSeconds": "600"}, "stale_context", id="stale"),
        pytest.param({"qualityScore": "0.2"}, "low_context_quality", id="low_quality"),
    ],
)
def test_review_when_context_is_stale_or_poor_then_adds_risk_flag(
    fields: dict[str, Any], flag: str
) -> None:
    verdict = review(with_context(**fields))

    assert flag in verdict.risk_flags
    assert flag not in review(with_context()).risk_flags


def test_review_when_context_is_stale_and_poor_then_shrinks_not_vetoes() -> None:
    verdict = review(with_context(freshnessSeconds="600", qualityScore="0.2"))

    # 0.2 + 0.2 = 0.4 risk points: shrunk to 0.60x (10 -> 6), not vetoed (veto >= 0.6)
    assert verdict.verdict is Verdict.ADJUST, verdict
    assert verdict.adjusted_qty == Decimal(6)
    assert verdict.risk_flags == ["stale_context", "low_context_quality"]
    assert verdict.confidence == pytest.approx(0.65)
    assert "0.60x (risk 0.40)" in verdict.rationale


def test_review_when_order_reduces_a_long_then_not_shrunk_despite_risk() -> None:
    body = base_request(now=NOW, action="sell", regime_hmm={"entropy": "0.95"})
    body["portfolio"]["exposure_by_symbol"] = {"AAPL": "20000"}
    body["market_context"] = {"freshnessSeconds": "600", "qualityScore": "0.2", "riskFlags": []}

    verdict = review(make_request(body))

    assert verdict.verdict is Verdict.APPROVE, verdict
    assert verdict.adjusted_qty is None
    assert {"regime_entropy_high", "stale_context"} <= set(verdict.risk_flags)


def test_review_when_same_input_then_identical_verdict() -> None:
    bodies = [
        base_request(now=NOW),
        base_request(now=NOW, regime_hmm={"entropy": "0.9"}),
        base_request(now=NOW, params={"price_snapshot": "200", "volatility": "0.08"}),
    ]
    for body in bodies:
        first = review(make_request(body))
        assert review(make_request(body)) == first
        reparsed = ReviewRequest.model_validate_json(make_request(body).model_dump_json())
        assert review(reparsed) == first


def test_review_when_equity_is_the_smallest_positive_decimal_then_flags_exposure() -> None:
    # The schema's smallest positive decimal (18 places): the share is computed in Decimal
    # under the bounded context (no float underflow, no overflow), and it is concentrated.
    body = base_request(now=NOW)
    body["portfolio"]["equity"] = "0.000000000000000001"

    verdict = review(make_request(body))

    assert "concentrated_exposure" in verdict.risk_flags


# ----------------------------------------------------------------------------- sampled


def _symbol(rng: random.Random) -> str:
    return "".join(rng.choices(string.ascii_uppercase, k=rng.randint(1, 5)))


def _plausible(rng: random.Random) -> ReviewRequest:
    symbol = _symbol(rng)
    price = Decimal(rng.randint(500, 100_000)) / 100
    spread = (price * Decimal(rng.uniform(0, 10)) / 10_000).quantize(Decimal("0.0001"))
    body = base_request(
        now=NOW,
        symbol=symbol,
        action=rng.choice(["buy", "sell"]),
        qty=str(rng.randint(1, 40)),
        params={"price_snapshot": str(price)},
        regime_hmm={"regime_id": "r1", "entropy": str(round(rng.uniform(0, 0.5), 3))},
    )
    body["market"].update(symbol=symbol, price=str(price), spread=str(spread))
    body["portfolio"]["exposure_by_symbol"] = {symbol: str(rng.randint(0, 5_000))}
    body["market_context"] = {"symbol": symbol, "qualityScore": "0.9", "riskFlags": []}
    return make_request(body)


def test_review_when_sampling_plausible_clean_orders_then_mostly_approves() -> None:
    rng = random.Random(20250314)
    verdicts = [review(_plausible(rng)) for _ in range(300)]

    approved = sum(v.verdict is Verdict.APPROVE for v in verdicts)
    assert approved >= 270, f"{approved}/300 approved"


def _messy(rng: random.Random) -> ReviewRequest:
    body = base_request(now=NOW, qty=str(rng.choice([1, 7, 10**9, Decimal("0.0001")])))
    # Hard vetoes stay rare so the scored paths (and their long notes) are exercised too.
    words = ["gap", "x" * rng.randint(1, 300), "Earnings", "ÄÖ", ""]
    flags = [rng.choice(words) for _ in range(rng.choice([0, 1, 2, 50, 200]))]
    if rng.random() < 0.05:
        flags.append("HALTED")
    body["market_context"] = {
        "riskFlags": flags,
        "freshnessSeconds": str(rng.choice([0, 0, 301, 10**12])),
        "qualityScore": str(rng.choice([-5, 0.49, 1, 1, 1e9])),
    }
    body["decision"]["regime_hmm"] = rng.choice(
        [
            {"entropy": str(rng.choice([-1e9, 0, 0.7, 0.85, 1e14]))},
            {"entropy_band": rng.choice(["high", "MEDIUM", "weird", ""])},
            {},
        ]
    )
    body["decision"]["params"] = {
        "price_snapshot": rng.choice(["200", "abc", None, True, "-4", "1e308"]),
        "volatility": rng.choice([None, "nan", "inf", -3, 0.5, "1e400"]),
    }
    body["market"]["spread"] = str(rng.choice([0, 0.01, 0.01, 0.01, 1, 10**6]))
    body["decision"]["rationale"] = "r" * rng.randint(0, 4000)
    body["portfolio"]["exposure_by_symbol"] = {"AAPL": str(rng.choice([-1e12, 0, 1e12]))}
    body["recent_decisions"] = [{"status": "rejected"}] * rng.choice([0, 0, 3, 1000])
    return make_request(body)


def test_review_when_inputs_are_messy_then_verdict_stays_within_schema_bounds() -> None:
    rng = random.Random(7)
    seen: set[Verdict] = set()
    for _ in range(200):
        verdict = review(_messy(rng))
        seen.add(verdict.verdict)

        assert isinstance(verdict, ReviewVerdict)
        assert len(verdict.rationale) <= 280
        assert 0.0 <= verdict.confidence <= 1.0
        assert len(verdict.risk_flags) <= 32
    # The sample reaches every scored outcome, not only hard vetoes.
    assert {Verdict.APPROVE, Verdict.ADJUST, Verdict.VETO} <= seen


def test_review_when_qty_is_the_largest_bounded_decimal_then_reduces_without_raising() -> None:
    # 33 significant digits: rounding it in the default 28-digit context raises
    # InvalidOperation; the scorer runs under app.numbers.DECIMAL_CONTEXT and shrinks it.
    qty = "999999999999999.999999999999999999"
    body = base_request(now=NOW, qty=qty, params={"price_snapshot": "200", "volatility": 0.05})

    verdict = review(make_request(body))

    assert verdict.verdict == "adjust", verdict
    assert "unscorable_input" not in verdict.risk_flags
    assert verdict.adjusted_qty is not None
    assert Decimal(0) < verdict.adjusted_qty < Decimal(qty)
    assert verdict.adjusted_qty.as_tuple().exponent == -18
