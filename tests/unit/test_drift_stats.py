"""Drift statistics: calibration and power (a fast, seeded version of bench/drift_calibration.py),
the correction, effect floors, pooling, and feature extraction."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest

from app.drift.features import Window, compare, request_features
from app.drift.stats import (
    Check,
    CheckKind,
    Family,
    Thresholds,
    chi2_check,
    correct,
    ks_check,
    pooled_table,
    psi_check,
)
from bench.drift_calibration import Shift, synth_window, trial
from tests.support.requests import example

TH = Thresholds()


@pytest.mark.parametrize(("n", "trials"), [(50, 60), (200, 40), (1000, 20)])
def test_identical_windows_when_compared_then_false_alarms_stay_rare(n: int, trials: int) -> None:
    # alpha = 1% per run: 60 trials expect 0.6 alarms; more than 2 has probability < 2.5%
    # even at the bound, and the fixed seeds make the outcome deterministic.
    alarms = sum(bool(trial(1_000 + t, n, Shift(), TH)) for t in range(trials))
    assert alarms <= 2


def test_half_sd_mean_shift_at_500_when_compared_then_detected_almost_always() -> None:
    hits = sum(
        any(m.startswith("regime_entropy") for m in trial(50 + t, 500, Shift(0.5), TH))
        for t in range(30)
    )
    assert hits >= 26  # measured power ~1.0 (bench); 26/30 leaves room for chance


def test_15_point_verdict_move_at_500_when_compared_then_detected() -> None:
    hits = sum(
        "verdict_mix" in trial(90 + t, 500, Shift(verdict_points=0.15), TH) for t in range(30)
    )
    assert hits >= 26


def test_psi_p_value_under_no_drift_when_repeated_then_uniformish() -> None:
    # PSI / (1/n + 1/m) ~ chi2(B - 1): the share of p <= 0.05 must be near 5%.
    rng = np.random.default_rng(3)
    ps = [
        psi_check("x", Family.FEATURE, rng.beta(6, 2, 200), rng.beta(6, 2, 200), TH)
        for _ in range(400)
    ]
    share = np.mean([c is not None and (c.p_value or 1.0) <= 0.05 for c in ps])
    assert 0.02 <= share <= 0.09


def test_psi_threshold_when_small_window_then_significance_bound_above_the_floor() -> None:
    rng = np.random.default_rng(4)
    small = correct(
        [
            c
            for c in [psi_check("x", Family.FEATURE, rng.normal(size=50), rng.normal(size=50), TH)]
            if c
        ],
        TH.alpha,
    )[0]
    large = correct(
        [
            c
            for c in [
                psi_check("x", Family.FEATURE, rng.normal(size=50_000), rng.normal(size=50_000), TH)
            ]
            if c
        ],
        TH.alpha,
    )[0]
    assert small.threshold > TH.psi_floor  # at n = 50 a fixed 0.2 would alarm on noise
    assert large.threshold == TH.psi_floor  # at n = 50,000 the effect floor decides


def test_tiny_shift_at_huge_n_when_significant_then_not_a_breach() -> None:
    rng = np.random.default_rng(5)
    ref, cur = rng.normal(size=100_000), rng.normal(0.03, 1.0, size=100_000)
    c = correct([ks_check("x_ks", Family.FEATURE, ref, cur, TH)], TH.alpha)[0]  # type: ignore[list-item]
    assert c.p_value is not None and c.p_value < 1e-6
    assert c.effect < TH.ks_floor and not c.breach


def test_window_below_min_n_when_compared_then_check_skipped() -> None:
    assert ks_check("x", Family.FEATURE, np.ones(10), np.ones(100), TH) is None


def _check(p: float, family: Family = Family.FEATURE, effect: float = 1.0) -> Check:
    return Check("m", family, CheckKind.KS, effect, effect, 0.1, p, 100, 100)


def test_holm_when_one_strong_and_many_null_then_only_the_strong_one_breaches() -> None:
    checks = [_check(1e-9), *[_check(0.5) for _ in range(20)]]
    out = correct(checks, 0.01)
    assert [c.breach for c in out] == [True] + [False] * 20
    assert out[0].level == pytest.approx(0.01 / 21)


def test_holm_when_families_differ_then_alpha_is_split_between_families() -> None:
    out = correct([_check(0.5), _check(0.5), _check(0.5, Family.LLM)], 0.01)
    levels = sorted(c.level or 0 for c in out)
    # LLM's single check gets half the weight; the two feature checks a quarter each.
    assert levels[-1] == pytest.approx(0.005)


def test_holm_when_rejected_but_effect_below_floor_then_no_breach() -> None:
    out = correct([_check(1e-12, effect=0.01)], 0.01)
    assert out[0].level is not None and not out[0].breach


def test_rare_categories_when_tabled_then_pooled_into_other() -> None:
    ref = Counter({"AAPL": 100, "MSFT": 90, "X1": 1, "X2": 2})
    cur = Counter({"AAPL": 95, "MSFT": 100, "X3": 1})
    labels, table = pooled_table(ref, cur, TH)
    assert labels == ["AAPL", "MSFT", "~other"]
    assert table.shape == (2, 3) and table[0, 2] == 3 and table[1, 2] == 1


def test_chi2_when_mix_moves_then_breach_and_tvd_reported() -> None:
    ref = Counter({"approve": 350, "veto": 50, "adjust": 100})
    cur = Counter({"approve": 250, "veto": 150, "adjust": 100})
    c = correct([chi2_check("verdict_mix", Family.PREDICTION, ref, cur, TH)], TH.alpha)[0]  # type: ignore[list-item]
    assert c.breach and c.effect == pytest.approx(0.2)


def test_request_features_when_example_has_context_then_all_present() -> None:
    f = request_features(example("04_buy_tsla_market_context_flags.json"))
    assert f["notional_to_equity"] == pytest.approx(25 * 342.20 / 125000)
    assert f["spread_bps"] == pytest.approx(0.12 / 342.20 * 1e4)
    assert f["context_quality"] == pytest.approx(0.82)
    assert f["context_freshness_s"] == 60
    assert f["qty_vs_recent"] == pytest.approx(1.0)
    assert f["volatility"] is None  # not sent: skipped, never imputed


def test_request_features_when_regime_and_volatility_sent_then_read() -> None:
    f = request_features(example("03_buy_nvda_high_regime_entropy.json"))
    assert f["regime_entropy"] == pytest.approx(0.91)
    assert f["volatility"] == pytest.approx(0.046)


def test_window_when_round_tripped_through_json_then_same_checks() -> None:
    rng = np.random.default_rng(8)
    ref, cur = synth_window(rng, 300), synth_window(rng, 300, Shift(0.75))
    again = Window.from_json(ref.to_json())
    again.returns = ref.returns
    a = [(c.metric, c.statistic, c.breach) for c in compare(ref, cur, TH)]
    b = [(c.metric, c.statistic, c.breach) for c in compare(again, cur, TH)]
    assert a == b
