"""The heuristic's defaults, as a table, and what each default does.

The table test fails if any single default (or hard-veto flag) changes: a change of thresholds is
a new artifact, never a silent edit. The behavioural tests show that each default matters: every
signal moves the risk (hence the verdict and the confidence) in the documented direction and
switches on exactly at its threshold; the adjust and veto thresholds decide at, just under and
just over the line; each confidence formula moves the right way as risk grows.

Risk sums are built from signals whose float sum is exact (0.15 + 0.15 + 0.2 + 0.1 == 0.6), so a
test "at the threshold" is at it, not a rounding error beside it.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest

from app.review.heuristic import _VETO_FLAGS, DEFAULT_PARAMS, review  # pyright: ignore[reportPrivateUsage]
from app.review.schemas import ReviewRequest, ReviewVerdict, Uncertainty, Verdict
from tests.support.requests import base_request, iso

NOW = datetime(2025, 3, 14, 14, 30, tzinfo=UTC)

EXPECTED_DEFAULTS: dict[str, float] = {
    "flag_points": 0.15,
    "stale_context_seconds": 300.0,
    "stale_context_points": 0.2,
    "low_quality_score": 0.5,
    "low_quality_points": 0.2,
    "wide_spread_bps": 25.0,
    "wide_spread_points": 0.2,
    "veto_spread_bps": 200.0,
    "high_volatility": 0.04,
    "high_volatility_points": 0.15,
    "entropy_medium": 0.6,
    "entropy_high": 0.85,
    "entropy_medium_points": 0.1,
    "entropy_high_points": 0.35,
    "exposure_warn_pct": 0.15,
    "exposure_points": 0.2,
    "recent_rejects_warn": 3.0,
    "recent_rejects_points": 0.2,
    "adjust_threshold": 0.25,
    "veto_threshold": 0.6,
}


def scored(
    *,
    flags: tuple[str, ...] = (),
    freshness: str = "30",
    quality: str = "0.9",
    spread: str | None = "0.02",
    price: str | None = "200.00",
    volatility: Any = None,
    regime: dict[str, Any] | None = None,
    exposure: str | None = None,
    equity: str | None = "100000",
    qty: str = "10",
    action: str = "buy",
    statuses: tuple[str | None, ...] = (),
    technicals: dict[str, Any] | None = None,
    params: dict[str, Any] | None = None,
) -> ReviewRequest:
    """The clean base order (AAPL, 10 @ 200.00, 1 bps spread, 2% of equity) with one knob per
    signal; every knob left alone adds no risk."""
    decision_params: dict[str, Any] = {"price_snapshot": "200.00", **(params or {})}
    if volatility is not None:
        decision_params["volatility"] = volatility
    if price is None:
        decision_params.pop("price_snapshot")
    body = base_request(now=NOW, qty=qty, action=action, params=decision_params)
    if regime is not None:
        body["decision"]["regime_hmm"] = {"regime_id": "r1", **regime}
    body["market"]["spread"] = spread
    body["market"]["price"] = price
    body["market_context"] = {
        "symbol": "AAPL",
        "asOfUtc": iso(NOW - timedelta(seconds=30)),
        "freshnessSeconds": freshness,
        "qualityScore": quality,
        "riskFlags": list(flags),
        "domains": {"technicals": technicals} if technicals is not None else {},
    }
    if exposure is not None:
        body["portfolio"]["exposure_by_symbol"] = {"AAPL": exposure}
    body["portfolio"]["equity"] = equity
    body["recent_decisions"] = [{"status": s, "symbol": "AAPL"} for s in statuses]
    return ReviewRequest.model_validate(body)


def risk_of(verdict: ReviewVerdict) -> str:
    """The scored risk as the rationale reports it (two decimals)."""
    return verdict.rationale.split("risk ", 1)[1][:4]


# ----------------------------------------------------------------------------- the table


def test_default_params_when_read_then_exactly_the_expected_table() -> None:
    assert DEFAULT_PARAMS == EXPECTED_DEFAULTS
    # Same keys in the same order and same types: a float default stays a float.
    assert list(DEFAULT_PARAMS) == list(EXPECTED_DEFAULTS)
    assert all(type(v) is float for v in DEFAULT_PARAMS.values())


def test_hard_veto_flags_when_read_then_exactly_the_expected_set() -> None:
    assert frozenset({"halted", "trading_halt", "luld_pause", "circuit_breaker", "delisting"}) == (
        _VETO_FLAGS
    )


def test_review_when_no_params_given_then_defaults_apply_and_overrides_replace_them() -> None:
    risky = scored(regime={"entropy": "0.9"})  # 0.35: adjust under the defaults

    assert review(risky).verdict is Verdict.ADJUST
    assert review(risky, {}).verdict is Verdict.ADJUST
    assert review(risky, {"veto_threshold": 0.3}).verdict is Verdict.VETO
    assert review(risky, {"adjust_threshold": 0.4}).verdict is Verdict.APPROVE
    # An override replaces one entry; the others stay at their defaults.
    assert review(risky, {"entropy_high_points": 0.05}).verdict is Verdict.APPROVE


# ----------------------------------------------------------------------------- clean order


def test_review_when_no_signal_then_approves_at_full_confidence_and_low_uncertainty() -> None:
    verdict = review(scored())

    assert verdict.verdict is Verdict.APPROVE
    assert verdict.confidence == 0.9
    assert verdict.uncertainty is Uncertainty.LOW
    assert verdict.risk_flags == []
    assert verdict.adjusted_qty is None
    assert "no risk signals" in verdict.rationale
    assert risk_of(verdict) == "0.00"


# ----------------------------------------------------------------------------- each signal
# Each signal alone, just below and at (or just past) its threshold: below adds nothing; at it,
# its points are the whole risk, which the approve confidence (0.9 - risk) shows exactly.

SIGNAL_CASES = [
    pytest.param({"flags": ("earnings_soon",)}, {}, "context_earnings_soon", 0.15, id="flag"),
    pytest.param({"freshness": "301"}, {"freshness": "300"}, "stale_context", 0.2, id="stale"),
    pytest.param(
        {"quality": "0.4999"}, {"quality": "0.5"}, "low_context_quality", 0.2, id="low_quality"
    ),
    pytest.param({"spread": "0.50"}, {"spread": "0.4998"}, "wide_spread", 0.2, id="spread_25bps"),
    pytest.param(
        {"volatility": "0.04"}, {"volatility": "0.0399"}, "high_volatility", 0.15, id="volatility"
    ),
    pytest.param(
        {"regime": {"entropy": "0.6"}},
        {"regime": {"entropy": "0.5999"}},
        "regime_entropy_medium",
        0.1,
        id="entropy_medium",
    ),
    pytest.param({"qty": "75"}, {"qty": "74"}, "concentrated_exposure", 0.2, id="exposure_15pct"),
    pytest.param(
        {"statuses": ("rejected",) * 3},
        {"statuses": ("rejected",) * 2},
        "recent_rejects",
        0.2,
        id="recent_rejects",
    ),
]


@pytest.mark.parametrize(("on", "off", "flag", "points"), SIGNAL_CASES)
def test_review_when_one_signal_reaches_its_threshold_then_adds_its_points(
    on: dict[str, Any], off: dict[str, Any], flag: str, points: float
) -> None:
    below = review(scored(**off))
    at = review(scored(**on))

    assert below.risk_flags == []
    assert below.confidence == 0.9
    assert at.risk_flags == [flag]
    assert at.verdict is Verdict.APPROVE
    assert at.confidence == pytest.approx(0.9 - points)
    assert at.uncertainty is Uncertainty.MEDIUM
    assert risk_of(at) == f"{points:.2f}"


def test_review_when_entropy_reaches_high_then_adds_its_points_and_shrinks() -> None:
    just_under = review(scored(regime={"entropy": "0.8499"}))
    at = review(scored(regime={"entropy": "0.85"}))

    assert just_under.risk_flags == ["regime_entropy_medium"]
    assert just_under.verdict is Verdict.APPROVE
    assert at.risk_flags == ["regime_entropy_high"]
    assert at.verdict is Verdict.ADJUST
    assert risk_of(at) == "0.35"
    # adjust confidence 0.55 + (0.6 - 0.35) / 2; size 10 * (1 - 0.35) rounded down
    assert at.confidence == pytest.approx(0.675)
    assert at.adjusted_qty == Decimal("6")


@pytest.mark.parametrize(
    ("regime", "flag"),
    [
        pytest.param({"entropy_band": "HIGH"}, "regime_entropy_high", id="band_high_upper"),
        pytest.param({"entropy_band": "Medium"}, "regime_entropy_medium", id="band_medium"),
        # A band, when sent, wins over the number.
        pytest.param({"entropy_band": "low", "entropy": "0.99"}, None, id="band_low_wins"),
        # An empty band is no band: the number decides.
        pytest.param({"entropy_band": "", "entropy": "0.9"}, "regime_entropy_high", id="empty"),
        pytest.param({}, None, id="no_entropy"),
        pytest.param({"entropy": "0"}, None, id="zero"),
    ],
)
def test_review_when_regime_band_or_entropy_given_then_band_decides_the_signal(
    regime: dict[str, Any], flag: str | None
) -> None:
    verdict = review(scored(regime=regime))

    assert verdict.risk_flags == ([flag] if flag else [])


def test_review_when_volatility_grows_then_risk_grows_then_stays() -> None:
    calm = review(scored(volatility="0.01"))
    wild = review(scored(volatility="0.5"))
    negative = review(scored(volatility="-0.05"))  # a magnitude: the sign is dropped

    assert calm.risk_flags == [] and calm.confidence == 0.9
    assert wild.risk_flags == ["high_volatility"]
    assert negative.risk_flags == ["high_volatility"]
    assert wild.confidence < calm.confidence


@pytest.mark.parametrize("key", ["volatility", "realized_vol", "atr_pct"])
def test_review_when_volatility_sent_under_any_param_key_then_read(key: str) -> None:
    assert review(scored(params={key: 0.05})).risk_flags == ["high_volatility"]
    assert review(scored(params={key: 0.01})).risk_flags == []


@pytest.mark.parametrize("key", ["volatility", "realized_vol", "atr_pct"])
@pytest.mark.parametrize("nested", [True, False], ids=["payload", "flat"])
def test_review_when_volatility_sent_in_context_technicals_then_read(
    key: str, nested: bool
) -> None:
    tech: dict[str, Any] = {"payload": {key: "0.06"}} if nested else {key: "0.06"}
    assert review(scored(technicals=tech)).risk_flags == ["high_volatility"]


def test_review_when_params_and_context_both_carry_volatility_then_params_win() -> None:
    calm_params = scored(volatility="0.01", technicals={"realized_vol": "0.09"})
    wild_params = scored(volatility="0.09", technicals={"realized_vol": "0.01"})

    assert review(calm_params).risk_flags == []
    assert review(wild_params).risk_flags == ["high_volatility"]


@pytest.mark.parametrize(
    "value",
    [True, "abc", "nan", "inf", "-inf", [0.5]],
    ids=["bool", "text", "nan", "inf", "minus_inf", "list"],
)
def test_review_when_volatility_unreadable_then_next_source_is_used(value: Any) -> None:
    # An unreadable value is no value: the scorer falls through to the next key.
    skipped = scored(params={"volatility": value, "realized_vol": "0.01"})
    fallen = scored(params={"volatility": value, "atr_pct": "0.07"})

    assert review(skipped).risk_flags == []
    assert review(fallen).risk_flags == ["high_volatility"]


def test_review_when_recent_rejects_counted_then_only_reject_statuses_count() -> None:
    mixed = ("REJECTED", "reject", "Rejected")
    others = ("filled", "submitted", None, "rejected_by_gate", "")
    assert review(scored(statuses=mixed)).risk_flags == ["recent_rejects"]
    assert review(scored(statuses=("rejected", "rejected", *others))).risk_flags == []
    assert "3 recent rejects" in review(scored(statuses=mixed)).rationale


def test_review_when_more_rejects_then_the_same_points() -> None:
    three = review(scored(statuses=("rejected",) * 3))
    many = review(scored(statuses=("rejected",) * 50))

    assert many.risk_flags == ["recent_rejects"]
    assert many.confidence == three.confidence == pytest.approx(0.7)


@pytest.mark.parametrize(
    ("exposure", "action", "qty", "flagged"),
    [
        # buy from flat: 75 * 200 = 15,000 = 15% of 100,000 (at the line)
        pytest.param(None, "buy", "75", True, id="buy_at_line"),
        pytest.param(None, "buy", "74", False, id="buy_under"),
        # adding to a long: 10,000 + 5,000
        pytest.param("10000", "buy", "25", True, id="add_to_long"),
        # selling from flat opens a short of 15,000
        pytest.param(None, "sell", "75", True, id="open_short_at_line"),
        pytest.param(None, "sell", "74", False, id="open_short_under"),
        # growing a short: -10,000 - 5,000
        pytest.param("-10000", "sell", "25", True, id="grow_short"),
        # a sell that flips a 1,000 long into a 39,000 short grows the exposure
        pytest.param("1000", "sell", "200", True, id="flip_long_to_big_short"),
        # a buy that flips a 1,000 short into a 39,000 long
        pytest.param("-1000", "buy", "200", True, id="flip_short_to_big_long"),
        # cutting a concentrated long or short does not add the signal
        pytest.param("40000", "sell", "10", False, id="cut_long"),
        pytest.param("-40000", "buy", "10", False, id="cover_short"),
    ],
)
def test_review_when_post_trade_exposure_grows_past_the_line_then_flags(
    exposure: str | None, action: str, qty: str, flagged: bool
) -> None:
    verdict = review(scored(exposure=exposure, action=action, qty=qty))

    assert ("concentrated_exposure" in verdict.risk_flags) is flagged, verdict


def test_review_when_a_sell_flips_a_long_to_an_equal_short_then_exposure_not_grown() -> None:
    # 1,000 long, sell 10 @ 200: the post-trade short is 1,000, 20% of 5,000 equity, but the
    # exposure did not grow, so the trade is not flagged as concentrating.
    verdict = review(scored(exposure="1000", action="sell", qty="10", equity="5000"))

    assert "concentrated_exposure" not in verdict.risk_flags


def test_review_when_exposure_concentrates_then_rationale_reports_the_share() -> None:
    verdict = review(scored(qty="100"))  # 20,000 of 100,000

    assert verdict.risk_flags == ["concentrated_exposure"]
    assert "post-trade exposure 20% of equity" in verdict.rationale


@pytest.mark.parametrize(
    ("equity", "price"),
    [
        pytest.param(None, "200.00", id="no_equity"),
        pytest.param("0", "200.00", id="zero_equity"),
        pytest.param("100000", None, id="no_price"),
    ],
)
def test_review_when_equity_or_price_unknown_then_exposure_signal_skipped_not_unscorable(
    equity: str | None, price: str | None
) -> None:
    # Without equity or a price the share cannot be formed; the gates refuse such an order. The
    # scorer neither divides by zero nor calls it unscorable: it just has no exposure signal.
    verdict = review(scored(qty="1000", equity=equity, price=price))

    assert verdict.risk_flags == []
    assert verdict.verdict is Verdict.APPROVE
    assert verdict.confidence == 0.9


def test_review_when_spread_reaches_veto_line_then_hard_veto() -> None:
    under = review(scored(spread="3.998"))  # 199.9 bps
    at = review(scored(spread="4.00"))  # 200 bps

    assert under.verdict is Verdict.APPROVE
    assert under.risk_flags == ["wide_spread"]
    assert at.verdict is Verdict.VETO
    assert at.confidence == 0.9
    assert at.uncertainty is Uncertainty.LOW
    assert at.risk_flags == ["hard_veto"]
    assert "spread 200 bps" in at.rationale


def test_review_when_spread_veto_then_earlier_flags_are_kept() -> None:
    verdict = review(scored(flags=("gap",), freshness="600", spread="5.00"))

    assert verdict.verdict is Verdict.VETO
    assert verdict.risk_flags == ["context_gap", "stale_context", "hard_veto"]


def test_review_when_no_price_then_spread_not_judged() -> None:
    verdict = review(scored(spread="100", price=None))

    assert verdict.risk_flags == []
    assert verdict.verdict is Verdict.APPROVE


def test_review_when_each_context_flag_then_adds_its_points() -> None:
    one = review(scored(flags=("Gap",)))
    two = review(scored(flags=("gap", "earnings")))

    assert one.risk_flags == ["context_gap"]
    assert one.confidence == pytest.approx(0.75)
    assert two.risk_flags == ["context_gap", "context_earnings"]
    assert risk_of(two) == "0.30"
    assert two.verdict is Verdict.ADJUST


def test_review_when_context_flag_is_long_then_flag_name_is_cut_to_64() -> None:
    verdict = review(scored(flags=("x" * 100,)))

    assert verdict.risk_flags == [("context_" + "x" * 100)[:64]]


# ----------------------------------------------------------------------------- thresholds


def test_review_when_risk_is_at_adjust_threshold_then_adjusts() -> None:
    # 0.15 (volatility) + 0.1 (medium entropy) == 0.25 exactly
    at = review(scored(volatility="0.05", regime={"entropy": "0.7"}))
    under = review(scored(volatility="0.05"))  # 0.15

    assert risk_of(at) == "0.25"
    assert at.verdict is Verdict.ADJUST
    assert at.adjusted_qty == Decimal("7")  # 10 * 0.75 rounded down
    assert at.confidence == pytest.approx(0.725)  # 0.55 + (0.6 - 0.25) / 2
    assert under.verdict is Verdict.APPROVE


def test_review_when_risk_is_at_veto_threshold_then_vetoes() -> None:
    # 0.15 + 0.15 (two flags) + 0.2 (stale) + 0.1 (medium entropy) == 0.6 exactly: a doubled or
    # loosened veto threshold turns this veto into a reduction.
    verdict = review(scored(flags=("gap", "earnings"), freshness="600", regime={"entropy": "0.7"}))

    assert risk_of(verdict) == "0.60"
    assert verdict.verdict is Verdict.VETO
    assert verdict.confidence == pytest.approx(0.8)  # 0.5 + 0.6 / 2
    assert verdict.uncertainty is Uncertainty.MEDIUM
    assert verdict.adjusted_qty is None


def test_review_when_risk_is_just_under_veto_threshold_then_reduces() -> None:
    # 0.2 (stale) + 0.35 (high entropy) == 0.55
    verdict = review(scored(freshness="600", regime={"entropy": "0.9"}))

    assert risk_of(verdict) == "0.55"
    assert verdict.verdict is Verdict.ADJUST
    assert verdict.adjusted_qty == Decimal("4")  # 10 * 0.45 rounded down
    assert verdict.confidence == pytest.approx(0.575)  # 0.55 + (0.6 - 0.55) / 2


def test_review_when_risk_is_just_over_veto_threshold_then_vetoes() -> None:
    # 0.15 + 0.15 + 0.2 + 0.15 == 0.65
    verdict = review(scored(flags=("gap", "earnings"), freshness="600", volatility="0.05"))

    assert risk_of(verdict) == "0.65"
    assert verdict.verdict is Verdict.VETO
    assert verdict.confidence == pytest.approx(0.825)


def test_review_when_every_signal_fires_then_risk_is_capped_at_one() -> None:
    verdict = review(
        scored(
            flags=("a", "b", "c"),
            freshness="600",
            quality="0.1",
            spread="1.00",
            volatility="0.1",
            regime={"entropy": "0.99"},
            qty="100",
            statuses=("rejected",) * 3,
        )
    )

    assert verdict.verdict is Verdict.VETO
    assert risk_of(verdict) == "1.00"
    assert verdict.confidence == 0.95  # 0.5 + 1.0 / 2, capped at 0.95
    assert len(verdict.risk_flags) == 10


def test_review_when_the_veto_threshold_is_raised_then_the_reduction_floors_at_a_quarter() -> None:
    # Under an artifact whose veto line is above the risk, a very risky order keeps a quarter.
    request = scored(flags=("a", "b"), freshness="600", quality="0.1", volatility="0.1")  # 0.85

    verdict = review(request, {"veto_threshold": 0.95})

    assert verdict.verdict is Verdict.ADJUST
    assert verdict.adjusted_qty == Decimal("2")  # 10 * 0.25 rounded down
    assert "reduce to 0.25x" in verdict.rationale
    assert verdict.confidence == pytest.approx(0.6)  # 0.55 + (0.95 - 0.85) / 2


# ----------------------------------------------------------------------------- confidence sign


def test_review_when_risk_grows_within_approve_then_confidence_falls() -> None:
    knobs: list[dict[str, Any]] = [
        {},
        {"regime": {"entropy": "0.7"}},  # 0.1
        {"volatility": "0.05"},  # 0.15
        {"freshness": "600"},  # 0.2
    ]
    confidences = [review(scored(**kw)).confidence for kw in knobs]
    assert confidences == pytest.approx([0.9, 0.8, 0.75, 0.7])
    assert confidences == sorted(confidences, reverse=True)


def test_review_when_risk_grows_within_adjust_then_confidence_falls() -> None:
    knobs: list[dict[str, Any]] = [
        {"volatility": "0.05", "regime": {"entropy": "0.7"}},  # 0.25
        {"flags": ("a", "b")},  # 0.3
        {"freshness": "600", "quality": "0.1"},  # 0.4
        {"freshness": "600", "regime": {"entropy": "0.9"}},  # 0.55
    ]
    confidences = [review(scored(**kw)).confidence for kw in knobs]
    assert [review(scored(**kw)).verdict for kw in knobs] == [Verdict.ADJUST] * 4
    assert confidences == pytest.approx([0.725, 0.7, 0.65, 0.575])
    assert confidences == sorted(confidences, reverse=True)


def test_review_when_risk_grows_within_veto_then_confidence_rises() -> None:
    knobs: list[dict[str, Any]] = [
        {"flags": ("a", "b"), "freshness": "600", "regime": {"entropy": "0.7"}},  # 0.6
        {"flags": ("a", "b"), "freshness": "600", "volatility": "0.05"},  # 0.65
        {"flags": ("a", "b"), "freshness": "600", "quality": "0.1"},  # 0.7
        {"flags": ("a", "b", "c", "d", "e", "f", "g", "h")},  # 1.2 -> 1.0
    ]
    confidences = [review(scored(**kw)).confidence for kw in knobs]
    assert [review(scored(**kw)).verdict for kw in knobs] == [Verdict.VETO] * 4
    assert confidences == pytest.approx([0.8, 0.825, 0.85, 0.95])
    assert confidences == sorted(confidences)


def test_review_when_too_small_to_reduce_then_vetoes_with_rising_confidence() -> None:
    # One share: any reduction rounds down to zero shares, so the answer is not to trade.
    at_adjust = review(scored(qty="1", volatility="0.05", regime={"entropy": "0.7"}))  # 0.25
    higher = review(scored(qty="1", freshness="600", regime={"entropy": "0.9"}))  # 0.55

    assert at_adjust.verdict is Verdict.VETO and higher.verdict is Verdict.VETO
    assert "too small to reduce" in at_adjust.rationale
    assert at_adjust.confidence == pytest.approx(0.625)  # 0.5 + 0.25 / 2
    assert higher.confidence == pytest.approx(0.775)  # 0.5 + 0.55 / 2
    assert at_adjust.uncertainty is Uncertainty.MEDIUM
    assert at_adjust.adjusted_qty is None


def test_review_when_fractional_qty_then_reduced_at_its_precision() -> None:
    verdict = review(scored(qty="2.5", regime={"entropy": "0.9"}))  # 0.35 -> 0.65x

    assert verdict.verdict is Verdict.ADJUST
    assert verdict.adjusted_qty == Decimal("1.6")  # 1.625 rounded down to one place


def test_review_when_risk_is_exactly_a_tenth_then_uncertainty_is_medium() -> None:
    tenth = review(scored(regime={"entropy": "0.7"}))
    low = review(scored(regime={"entropy": "0.7"}), {"entropy_medium_points": 0.0999})

    assert tenth.uncertainty is Uncertainty.MEDIUM
    assert low.uncertainty is Uncertainty.LOW


# ----------------------------------------------------------------------------- reducing orders


@pytest.mark.parametrize(
    ("exposure", "action"),
    [pytest.param("20000", "sell", id="cut_long"), pytest.param("-20000", "buy", id="cover")],
)
def test_review_when_order_reduces_position_then_approved_despite_veto_level_risk(
    exposure: str, action: str
) -> None:
    verdict = review(
        scored(
            exposure=exposure,
            action=action,
            flags=("a", "b"),
            freshness="600",
            quality="0.1",
        )
    )  # 0.7

    assert verdict.verdict is Verdict.APPROVE
    assert verdict.adjusted_qty is None
    assert verdict.confidence == pytest.approx(0.55)  # 0.9 - 0.7, floored at 0.55
    assert verdict.uncertainty is Uncertainty.MEDIUM


@pytest.mark.parametrize(
    ("exposure", "action"),
    [
        pytest.param(None, "buy", id="flat_buy"),
        pytest.param(None, "sell", id="flat_sell"),
        pytest.param("0", "buy", id="zero_buy"),
        pytest.param("0", "sell", id="zero_sell"),
        pytest.param("20000", "buy", id="add_long"),
        pytest.param("-20000", "sell", id="add_short"),
    ],
)
def test_review_when_order_opens_or_adds_then_risk_vetoes(
    exposure: str | None, action: str
) -> None:
    verdict = review(
        scored(
            exposure=exposure,
            action=action,
            flags=("a", "b"),
            freshness="600",
            quality="0.1",
        )
    )

    assert verdict.verdict is Verdict.VETO


@pytest.mark.parametrize(
    ("exposure", "action"),
    [pytest.param("20000", "sell", id="cut_long"), pytest.param("-20000", "buy", id="cover")],
)
def test_review_when_reducing_order_at_adjust_risk_then_not_shrunk(
    exposure: str, action: str
) -> None:
    verdict = review(scored(exposure=exposure, action=action, regime={"entropy": "0.9"}))  # 0.35

    assert verdict.verdict is Verdict.APPROVE
    assert verdict.adjusted_qty is None
    assert verdict.confidence == pytest.approx(0.55)


# ----------------------------------------------------------------------------- unscorable


def test_review_when_params_cannot_be_computed_on_then_unscorable_veto() -> None:
    # A NaN threshold makes the Decimal comparison raise: the defensive answer, not an exception.
    verdict = review(scored(qty="100"), {"exposure_warn_pct": float("nan")})

    assert verdict.verdict is Verdict.VETO
    assert verdict.confidence == 0.9
    assert verdict.uncertainty is Uncertainty.HIGH
    assert verdict.risk_flags == ["unscorable_input"]
    assert "could not be scored (InvalidOperation)" in verdict.rationale
