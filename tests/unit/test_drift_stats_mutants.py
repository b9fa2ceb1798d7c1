"""Drift statistics, exactly: each statistic, p-value, threshold and breach decision on inputs
whose answer is known by hand (or by a closed form independent of the code under test).

The calibration tests in test_drift_stats.py show the checks behave on realistic data; these show
each number is the one the module docstring defines (half-count PSI, asymptotic KS, Fisher exact,
uncorrected chi-square, one-sided Welch, weighted Holm), so a changed formula, argument or
boundary changes a recorded statistic or a breach and fails here.
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import asdict
from typing import Any

import numpy as np
import pytest
from scipy import stats as _scipy_stats  # pyright: ignore[reportMissingTypeStubs]

from app.drift.stats import (
    FAMILY_SEVERITY,
    Check,
    CheckKind,
    Family,
    Severity,
    Thresholds,
    bin_count,
    binned,
    chi2_check,
    correct,
    ks_check,
    max_drawdown,
    performance_checks,
    pooled_table,
    proportion_check,
    psi,
    psi_check,
    quantile_check,
    quantile_edges,
    sharpe,
)

sps: Any = _scipy_stats
TH = Thresholds()


def arr(values: Any) -> np.ndarray[Any, np.dtype[np.float64]]:
    return np.asarray(values, dtype=np.float64)


# ----------------------------------------------------------------------------- tables


def test_thresholds_when_defaults_read_then_exactly_the_expected_table() -> None:
    assert asdict(TH) == {
        "alpha": 0.005,
        "psi_floor": 0.2,
        "ks_floor": 0.1,
        "mix_floor": 0.05,
        "rate_floor": 0.02,
        "latency_rel_floor": 0.25,
        "sharpe_floor": 0.10,
        "min_n": 30,
        "max_bins": 10,
        "min_per_bin": 10,
        "rare_expected": 5.0,
    }


def test_family_severity_when_read_then_only_the_input_world_is_a_warning() -> None:
    assert FAMILY_SEVERITY == {
        Family.FEATURE: Severity.WARNING,
        Family.PREDICTION: Severity.CRITICAL,
        Family.LLM: Severity.CRITICAL,
        Family.PERFORMANCE: Severity.CRITICAL,
    }
    assert Check("m", Family.LLM, CheckKind.KS, 0, 0, 0, None, 1, 1).severity is Severity.CRITICAL


@pytest.mark.parametrize(
    ("floor", "critical", "expected"),
    [(0.2, None, 0.2), (0.2, 0.5, 0.5), (0.2, 0.1, 0.2)],
)
def test_check_threshold_when_critical_known_then_the_higher_of_floor_and_critical(
    floor: float, critical: float | None, expected: float
) -> None:
    c = Check("m", Family.FEATURE, CheckKind.PSI, 0, 0, floor, 0.5, 1, 1, critical=critical)
    assert c.threshold == expected


# ----------------------------------------------------------------------------- binning


@pytest.mark.parametrize(
    ("n", "m", "expected"),
    [
        (30, 30, 3),  # 30 // 10
        (39, 1000, 3),
        (40, 1000, 4),
        (1000, 55, 5),
        (10, 10, 2),  # never fewer than two bins
        (0, 500, 2),
        (100, 100, 10),
        (50_000, 50_000, 10),  # never more than max_bins
    ],
)
def test_bin_count_when_sizes_given_then_about_min_per_bin_in_the_smaller(
    n: int, m: int, expected: int
) -> None:
    assert bin_count(n, m, TH) == expected


def test_bin_count_when_thresholds_change_then_they_are_used() -> None:
    assert bin_count(1000, 1000, Thresholds(max_bins=4)) == 4
    assert bin_count(100, 100, Thresholds(min_per_bin=25)) == 4


def test_quantile_edges_when_reference_is_uniform_then_inner_quartiles() -> None:
    assert quantile_edges(arr(range(101)), 4).tolist() == [25.0, 50.0, 75.0]
    assert quantile_edges(arr(range(11)), 2).tolist() == [5.0]


def test_quantile_edges_when_reference_has_ties_then_edges_merge() -> None:
    assert quantile_edges(arr([1.0] * 50 + [2.0] * 50), 4).tolist() == [1.0, 1.5, 2.0]
    assert quantile_edges(arr([3.0] * 40), 10).tolist() == [3.0]


def test_binned_when_values_fall_on_edges_then_edge_values_go_to_the_upper_bin() -> None:
    edges = arr([1.0, 2.0])

    assert binned(arr([0.0, 1.0, 1.5, 2.0, 3.0]), edges).tolist() == [1.0, 2.0, 2.0]
    # Empty upper bins are still counted (as zero): one count per bin.
    assert binned(arr([0.0, 0.5]), edges).tolist() == [2.0, 0.0, 0.0]


# ----------------------------------------------------------------------------- PSI


def _psi_by_hand(ref: list[int], cur: list[int]) -> float:
    k = len(ref)
    p = [(r + 0.5) / (sum(ref) + 0.5 * k) for r in ref]
    q = [(c + 0.5) / (sum(cur) + 0.5 * k) for c in cur]
    return sum((qi - pi) * math.log(qi / pi) for pi, qi in zip(p, q, strict=True))


@pytest.mark.parametrize(
    ("ref", "cur"),
    [([10, 10], [20, 0]), ([10, 10, 10], [20, 5, 5]), ([1, 2, 3], [30, 20, 10]), ([0, 8], [8, 0])],
)
def test_psi_when_counts_given_then_half_count_smoothed_symmetrised_kl(
    ref: list[int], cur: list[int]
) -> None:
    assert psi(arr(ref), arr(cur)) == pytest.approx(_psi_by_hand(ref, cur), rel=1e-12)
    assert psi(arr(ref), arr(cur)) > 0


def test_psi_when_counts_are_proportional_then_zero() -> None:
    assert psi(arr([10, 20, 30]), arr([10, 20, 30])) == 0.0
    assert psi(arr([10, 10]), arr([10, 10])) == 0.0


# Reference 0..29 in three bins of ten; current 20 / 5 / 5 per bin (and twice that).
REF30 = arr(range(30))
CUR30 = arr([*range(10), *range(10), 10, 11, 12, 13, 14, 20, 21, 22, 23, 24])


@pytest.mark.parametrize("repeat", [1, 2], ids=["m30", "m60"])
def test_psi_check_when_three_bins_then_statistic_p_value_and_scale_as_documented(
    repeat: int,
) -> None:
    cur = np.tile(CUR30, repeat)

    c = psi_check("x_psi", Family.FEATURE, REF30, cur, TH)

    assert c is not None
    value = _psi_by_hand([10, 10, 10], [20 * repeat, 5 * repeat, 5 * repeat])
    scale = 1 / 30 + 1 / (30 * repeat)
    assert (c.metric, c.family, c.test) == ("x_psi", Family.FEATURE, CheckKind.PSI)
    assert c.statistic == pytest.approx(value, rel=1e-12)
    assert c.effect == pytest.approx(value, rel=1e-12)
    assert c.floor == 0.2
    assert (c.n, c.m) == (30, 30 * repeat)
    assert c.detail == {"bins": 3, "scale": pytest.approx(scale, rel=1e-12)}
    # PSI / scale ~ chi2(2), whose survival function is exp(-x / 2)
    assert c.p_value == pytest.approx(math.exp(-value / scale / 2), rel=1e-9)


def test_psi_check_when_two_bins_then_one_degree_of_freedom() -> None:
    th = Thresholds(min_n=20)
    ref = arr(range(20))  # median 9.5: ten below, ten above
    cur = arr([*range(5), *range(10, 25)])  # 5 below, 15 above

    c = psi_check("x", Family.FEATURE, ref, cur, th)

    assert c is not None
    value = _psi_by_hand([10, 10], [5, 15])
    assert c.statistic == pytest.approx(value, rel=1e-12)
    assert c.detail["bins"] == 2
    # chi2(1) survival: erfc(sqrt(x / 2))
    assert c.p_value == pytest.approx(math.erfc(math.sqrt(value / 0.1 / 2)), rel=1e-9)


@pytest.mark.parametrize(
    ("cur", "counts"),
    [
        pytest.param([0.0] * 20 + [1.0] * 20, [20, 20, 0], id="falls"),
        pytest.param([2.0] * 20 + [1.0] * 20, [0, 20, 20], id="rises"),
        pytest.param([1.0] * 40, [0, 40, 0], id="stays"),
    ],
)
def test_psi_check_when_reference_is_constant_then_below_at_and_above_it_are_bins(
    cur: list[float], counts: list[int]
) -> None:
    # A constant reference gets three bins: below it, at it, above it. With a single edge at
    # the value, "above" shared the bin of "at" and a rise was invisible (PSI 0, p 1).
    c = psi_check("x", Family.FEATURE, arr([1.0] * 40), arr(cur), TH)

    assert c is not None
    assert c.detail["bins"] == 3
    assert c.statistic == pytest.approx(_psi_by_hand([0, 40, 0], counts), rel=1e-12)


def test_psi_check_when_reference_tied_at_its_maximum_then_a_rise_above_it_is_seen() -> None:
    # 60% of the reference sits at its maximum, 1.0 (a capped feature): the top quantile edges
    # are 1.0. Current values above 1.0 must not share the bin of the values at 1.0.
    ref = arr([*np.linspace(0.0, 0.9, 40), *([1.0] * 60)])
    rises = arr([*np.linspace(0.0, 0.9, 40), *([1.5] * 60)])
    same = arr([*np.linspace(0.0, 0.9, 40), *([1.0] * 60)])

    moved = psi_check("x", Family.FEATURE, ref, rises, TH)
    still = psi_check("x", Family.FEATURE, ref, same, TH)

    assert moved is not None and still is not None
    assert still.statistic == 0.0
    assert moved.statistic > 1.0
    assert correct([moved], TH.alpha)[0].breach


def test_psi_check_when_reference_continuous_then_no_extra_bin() -> None:
    c = psi_check("x", Family.FEATURE, REF30, CUR30, TH)

    assert c is not None and c.detail["bins"] == 3


def test_psi_check_when_values_not_finite_then_dropped_before_counting() -> None:
    noisy = np.concatenate([REF30, arr([np.nan, np.inf, -np.inf])])

    c = psi_check("x", Family.FEATURE, noisy, CUR30, TH)

    assert c is not None and c.n == 30
    assert c.statistic == pytest.approx(_psi_by_hand([10, 10, 10], [20, 5, 5]), rel=1e-12)


@pytest.mark.parametrize(("n", "m"), [(29, 30), (30, 29), (29, 29)])
def test_psi_and_ks_checks_when_either_window_below_min_n_then_skipped(n: int, m: int) -> None:
    ref, cur = arr(range(n)), arr(range(m))
    assert psi_check("x", Family.FEATURE, ref, cur, TH) is None
    assert ks_check("x", Family.FEATURE, ref, cur, TH) is None
    assert quantile_check("x", Family.LLM, ref, cur, 0.5, TH) is None
    assert performance_checks(ref, cur, TH) == []


def test_psi_and_ks_checks_when_both_windows_at_min_n_then_run() -> None:
    ref = arr(range(30))
    assert psi_check("x", Family.FEATURE, ref, ref, TH) is not None
    assert ks_check("x", Family.FEATURE, ref, ref, TH) is not None
    assert quantile_check("x", Family.LLM, ref + 1, ref + 1, 0.5, TH) is not None
    assert len(performance_checks(ref, ref, TH)) == 2


def test_psi_check_when_non_finite_values_bring_a_window_below_min_n_then_skipped() -> None:
    ref = np.concatenate([arr(range(29)), arr([np.nan])])
    assert psi_check("x", Family.FEATURE, ref, arr(range(30)), TH) is None
    assert ks_check("x", Family.FEATURE, ref, arr(range(30)), TH) is None


# ----------------------------------------------------------------------------- KS


def test_ks_check_when_shifted_by_half_the_range_then_d_half_and_asymptotic_p() -> None:
    c = ks_check("x_ks", Family.PREDICTION, arr(range(50)), arr(range(25, 75)), TH)

    assert c is not None
    assert (c.metric, c.family, c.test) == ("x_ks", Family.PREDICTION, CheckKind.KS)
    assert c.statistic == 0.5 and c.effect == 0.5
    assert c.floor == 0.1
    assert (c.n, c.m) == (50, 50)
    # The asymptotic p (scipy's exact method would give 4.81e-06 here).
    assert c.p_value == pytest.approx(2.644610364622404e-06, rel=1e-6)


def test_ks_check_when_sizes_differ_then_both_recorded_in_order() -> None:
    c = ks_check("x", Family.FEATURE, arr(range(40)), arr(range(70)), TH)

    assert c is not None
    assert (c.n, c.m) == (40, 70)
    assert c.statistic == pytest.approx(30 / 70)


# ----------------------------------------------------------------------------- quantile


def test_quantile_check_when_quantile_moves_then_relative_change_and_fisher_on_shares() -> None:
    ref = arr(range(1, 102))  # p90 = 91, ten values above it
    cur = arr(range(11, 112))  # p90 = 101, twenty values above 91 (91 itself is not above)

    c = quantile_check("latency_p90", Family.LLM, ref, cur, 0.9, TH)

    assert c is not None
    assert (c.metric, c.family, c.test) == ("latency_p90", Family.LLM, CheckKind.QUANTILE)
    assert c.statistic == pytest.approx(10 / 91) and c.effect == pytest.approx(10 / 91)
    assert c.floor == 0.25
    assert c.detail == {"reference_quantile": 91.0, "current_quantile": 101.0, "q": 0.9}
    assert c.p_value == pytest.approx(sps.fisher_exact([[10, 91], [20, 81]]).pvalue, rel=1e-12)
    assert (c.n, c.m) == (101, 101)


def test_quantile_check_when_sizes_differ_then_table_uses_each_windows_size() -> None:
    ref = arr(range(1, 102))
    cur = arr(range(2, 402, 2))  # 200 values, p90 = 360.2; 155 above 91

    c = quantile_check("x", Family.LLM, ref, cur, 0.9, TH)

    assert c is not None
    assert (c.n, c.m) == (101, 200)
    assert c.p_value == pytest.approx(sps.fisher_exact([[10, 91], [155, 45]]).pvalue, rel=1e-12)
    assert c.statistic == pytest.approx(abs(float(np.quantile(cur, 0.9)) - 91) / 91)


def test_quantile_check_when_reference_quantile_negative_then_change_relative_to_magnitude() -> (
    None
):
    c = quantile_check("x", Family.LLM, -arr(range(1, 102)), -arr(range(1, 102)) * 2, 0.5, TH)

    assert c is not None
    assert c.statistic == pytest.approx(1.0)  # -51 -> -102


def test_quantile_check_when_reference_quantile_is_one_then_plain_relative_change() -> None:
    c = quantile_check("x", Family.LLM, arr([1.0] * 40), arr([1.5] * 40), 0.5, TH)

    assert c is not None
    assert c.statistic == pytest.approx(0.5)


@pytest.mark.parametrize(("cur_value", "expected"), [(0.0, 0.0), (2.0, math.inf)])
def test_quantile_check_when_reference_quantile_is_zero_then_zero_or_infinite_change(
    cur_value: float, expected: float
) -> None:
    c = quantile_check("x", Family.LLM, arr([0.0] * 40), arr([cur_value] * 40), 0.5, TH)

    assert c is not None
    assert c.statistic == expected


# ----------------------------------------------------------------------------- categorical


def test_pooled_table_when_category_expected_exactly_at_rare_line_then_kept() -> None:
    # B: 10 of 200 pooled, 100 * 0.05 = 5 expected in the smaller window: not below 5.
    labels, table = pooled_table({"A": 95, "B": 5}, {"A": 95, "B": 5}, TH)

    assert labels == ["A", "B"]
    assert table.tolist() == [[95.0, 5.0], [95.0, 5.0]]


def test_pooled_table_when_category_expected_just_under_rare_line_then_pooled() -> None:
    labels, table = pooled_table({"A": 96, "B": 4}, {"A": 95, "B": 5}, TH)

    assert labels == ["A", "~other"]
    assert table.tolist() == [[96.0, 4.0], [95.0, 5.0]]


def test_pooled_table_when_a_category_is_new_or_gone_then_kept_with_zero_count() -> None:
    labels, table = pooled_table({"A": 50, "B": 50}, {"A": 30, "C": 70}, TH)

    assert labels == ["A", "B", "C"]
    assert table.tolist() == [[50.0, 50.0, 0.0], [30.0, 0.0, 70.0]]


def test_pooled_table_when_one_rare_count_then_other_column_present() -> None:
    labels, table = pooled_table({"A": 100, "X": 1}, {"A": 100}, TH)

    assert labels == ["A", "~other"]
    assert table.tolist() == [[100.0, 1.0], [100.0, 0.0]]


def test_pooled_table_when_nothing_rare_then_no_other_column() -> None:
    labels, table = pooled_table({"A": 40, "B": 60}, {"B": 50, "A": 50}, TH)

    assert labels == ["A", "B"]
    assert table.shape == (2, 2)
    assert table.dtype == np.float64  # integer counts in, a float table out


def test_pooled_table_when_windows_differ_in_size_then_the_smaller_sets_the_line() -> None:
    # B: 12 of 1,100 pooled; 100 * 12/1100 = 1.09 expected in the smaller window: pooled.
    labels, _ = pooled_table({"A": 990, "B": 10}, {"A": 98, "B": 2}, TH)
    assert labels == ["A", "~other"]


def _pearson_2x2(a: float, b: float, c: float, d: float) -> float:
    n = a + b + c + d
    return n * (a * d - b * c) ** 2 / ((a + b) * (c + d) * (a + c) * (b + d))


def test_chi2_check_when_two_categories_then_uncorrected_pearson_and_tvd() -> None:
    c = chi2_check("mix", Family.FEATURE, {"a": 50, "b": 50}, {"a": 160, "b": 40}, TH)

    assert c is not None
    stat = _pearson_2x2(50, 50, 160, 40)
    assert (c.metric, c.family, c.test) == ("mix", Family.FEATURE, CheckKind.CHI2)
    assert c.statistic == pytest.approx(0.3) and c.effect == pytest.approx(0.3)
    assert c.floor == 0.05
    assert (c.n, c.m) == (100, 200)
    assert c.detail["chi2"] == pytest.approx(stat, rel=1e-12)
    assert c.detail["dof"] == 1
    assert c.p_value == pytest.approx(math.erfc(math.sqrt(stat / 2)), rel=1e-9)
    assert c.detail["categories"] == ["a", "b"]
    assert c.detail["reference_share"] == [0.5, 0.5]
    assert c.detail["current_share"] == [0.8, 0.2]


def test_chi2_check_when_shares_are_thirds_then_rounded_to_four_places() -> None:
    c = chi2_check("mix", Family.FEATURE, {"a": 30, "b": 30, "c": 30}, {"a": 60, "b": 30}, TH)

    assert c is not None
    assert c.detail["reference_share"] == [0.3333, 0.3333, 0.3333]
    assert c.detail["current_share"] == [0.6667, 0.3333, 0.0]
    assert c.detail["dof"] == 2
    assert c.statistic == pytest.approx(1 / 3)


def test_chi2_check_when_one_category_in_both_windows_then_nothing_moved() -> None:
    c = chi2_check("mix", Family.PREDICTION, {"approve": 50}, {"approve": 80}, TH)

    assert c is not None
    assert (c.metric, c.family, c.test) == ("mix", Family.PREDICTION, CheckKind.CHI2)
    assert (c.statistic, c.effect, c.p_value) == (0.0, 0.0, 1.0)
    assert c.floor == 0.05 and (c.n, c.m) == (50, 80)
    assert c.detail == {"categories": ["approve"], "reference_share": [1.0], "current_share": [1.0]}


@pytest.mark.parametrize(("n", "m"), [(29, 30), (30, 29)])
def test_chi2_and_proportion_checks_when_window_below_min_n_then_skipped(n: int, m: int) -> None:
    assert chi2_check("x", Family.FEATURE, {"a": n}, {"a": m}, TH) is None
    assert proportion_check("x", Family.LLM, (1, n), (1, m), TH) is None


def test_chi2_and_proportion_checks_when_windows_at_min_n_then_run() -> None:
    assert chi2_check("x", Family.FEATURE, Counter(a=15, b=15), Counter(a=15, b=15), TH)
    assert proportion_check("x", Family.LLM, (1, 30), (1, 30), TH) is not None


def test_proportion_check_when_rate_moves_then_fisher_exact_and_absolute_change() -> None:
    c = proportion_check("refusal_rate", Family.LLM, (5, 100), (60, 300), TH)

    assert c is not None
    assert (c.metric, c.family, c.test) == ("refusal_rate", Family.LLM, CheckKind.PROPORTION)
    assert c.statistic == pytest.approx(0.15) and c.effect == pytest.approx(0.15)
    assert c.floor == 0.02
    assert (c.n, c.m) == (100, 300)
    assert c.p_value == pytest.approx(sps.fisher_exact([[5, 95], [60, 240]]).pvalue, rel=1e-12)
    assert c.detail == {"reference_rate": 0.05, "current_rate": 0.2}


def test_proportion_check_when_rate_falls_then_effect_is_the_magnitude() -> None:
    c = proportion_check("x", Family.LLM, (1, 3 * 30), (0, 30), TH)
    back = proportion_check("x", Family.LLM, (0, 30), (1, 3 * 30), TH)

    assert c is not None and back is not None
    assert c.effect == pytest.approx(1 / 90) and back.effect == pytest.approx(1 / 90)
    # rates are reported to six places
    assert c.detail == {"reference_rate": 0.011111, "current_rate": 0.0}
    assert back.detail == {"reference_rate": 0.0, "current_rate": 0.011111}


# ----------------------------------------------------------------------------- performance


@pytest.mark.parametrize(
    ("returns", "expected"),
    [
        ([1.0, 2.0, 3.0], 2.0),  # mean 2, sample sd 1
        ([1.0, 3.0], 2.0 / math.sqrt(2.0)),  # two returns are enough
        ([-1.0, 1.0, 3.0], 0.5),  # mean 1, sample sd 2
        ([5.0], 0.0),
        ([], 0.0),
        ([2.0, 2.0, 2.0], 0.0),  # no spread
    ],
)
def test_sharpe_when_returns_given_then_mean_over_sample_sd(
    returns: list[float], expected: float
) -> None:
    assert sharpe(arr(returns)) == pytest.approx(expected)


@pytest.mark.parametrize(
    ("returns", "expected"),
    [
        ([], 0.0),
        ([1.0, -2.0, 3.0, -1.0], 2.0),
        ([-1.0, -1.0], 2.0),  # the running peak starts at zero
        ([2.0], 0.0),
        ([1.0, 1.0, -0.5, -0.25, 2.0], 0.75),
    ],
)
def test_max_drawdown_when_returns_given_then_largest_fall_from_running_peak(
    returns: list[float], expected: float
) -> None:
    assert max_drawdown(arr(returns)) == pytest.approx(expected)


def _welch_less_p(cur: np.ndarray[Any, Any], ref: np.ndarray[Any, Any]) -> float:
    vc, vr = cur.var(ddof=1) / len(cur), ref.var(ddof=1) / len(ref)
    t = (cur.mean() - ref.mean()) / math.sqrt(vc + vr)
    df = (vc + vr) ** 2 / (vc**2 / (len(cur) - 1) + vr**2 / (len(ref) - 1))
    return float(sps.t.cdf(t, df))


def test_performance_checks_when_current_returns_fall_then_welch_less_and_sharpe_drop() -> None:
    rng = np.random.default_rng(11)
    ref = rng.normal(1.0, 1.0, 40)
    cur = rng.normal(0.6, 3.0, 90)

    ret, dd = performance_checks(ref, cur, TH)

    assert (ret.metric, ret.family, ret.test) == (
        "perf_return",
        Family.PERFORMANCE,
        CheckKind.WELCH,
    )
    assert ret.p_value == pytest.approx(_welch_less_p(cur, ref), rel=1e-9)
    drop = sharpe(ref) - sharpe(cur)
    assert ret.statistic == pytest.approx(drop) and ret.effect == pytest.approx(drop)
    assert ret.floor == 0.1
    assert (ret.n, ret.m) == (40, 90)
    assert ret.detail == {
        "sharpe_reference": round(sharpe(ref), 6),
        "sharpe_current": round(sharpe(cur), 6),
        "mean_reference": pytest.approx(ref.mean()),
        "mean_current": pytest.approx(cur.mean()),
        "pnl_reference": pytest.approx(ref.sum()),
        "pnl_current": pytest.approx(cur.sum()),
    }
    assert (dd.metric, dd.family, dd.test) == ("perf_drawdown", Family.PERFORMANCE, CheckKind.INFO)
    assert dd.statistic == pytest.approx(max_drawdown(cur))
    assert dd.effect == pytest.approx(max_drawdown(cur) - max_drawdown(ref))
    assert (dd.floor, dd.p_value, dd.n, dd.m) == (0.0, None, 40, 90)
    assert dd.detail == {
        "drawdown_reference": pytest.approx(max_drawdown(ref)),
        "drawdown_current": pytest.approx(max_drawdown(cur)),
    }


def test_performance_checks_when_current_returns_rise_then_p_near_one() -> None:
    ref = arr([0.0, 1.0] * 20)
    cur = arr([2.0, 3.0] * 20)

    ret, _ = performance_checks(ref, cur, TH)

    assert ret.p_value is not None and ret.p_value > 0.999


@pytest.mark.filterwarnings("ignore:Precision loss occurred:RuntimeWarning")
def test_performance_checks_when_both_windows_constant_then_p_is_one() -> None:
    ret, dd = performance_checks(arr([1.0] * 30), arr([1.0] * 30), TH)

    assert ret.p_value == 1.0
    assert ret.statistic == 0.0
    assert dd.statistic == 0.0


def test_performance_checks_when_non_finite_returns_then_dropped() -> None:
    ref = np.concatenate([arr([0.0, 1.0] * 15), arr([np.nan])])
    ret, _ = performance_checks(ref, arr([0.0, 1.0] * 15), TH)
    assert ret.n == 30


# ----------------------------------------------------------------------------- correction


def _c(
    p: float | None,
    family: Family = Family.FEATURE,
    effect: float = 1.0,
    floor: float = 0.1,
    test: CheckKind = CheckKind.WELCH,
) -> Check:
    return Check("m", family, test, effect, effect, floor, p, 100, 100)


def test_correct_when_p_equals_the_level_then_rejected() -> None:
    out = correct([_c(0.01)], 0.01)
    assert out[0].level == 0.01
    assert out[0].breach


def test_correct_when_effect_equals_the_floor_then_breach() -> None:
    assert correct([_c(1e-9, effect=0.1, floor=0.1)], 0.01)[0].breach
    assert not correct([_c(1e-9, effect=0.0999, floor=0.1)], 0.01)[0].breach


def test_correct_when_strong_check_is_listed_last_then_still_tested_first() -> None:
    out = correct([_c(0.5), _c(1e-9)], 0.01)

    assert [c.breach for c in out] == [False, True]
    assert out[1].level == pytest.approx(0.005)  # first step: alpha * 1/2
    assert out[0].level == pytest.approx(0.01)  # after it is rejected: alpha * (1/2) / (1/2)


def test_correct_when_a_p_value_is_zero_then_it_is_tested_first() -> None:
    out = correct([_c(0.004), _c(0.0)], 0.01)

    assert out[1].level == pytest.approx(0.005)
    assert out[0].level == pytest.approx(0.01)
    assert [c.breach for c in out] == [True, True]


def test_correct_when_step_down_then_each_rejection_frees_its_weight() -> None:
    # Four feature checks, weight 1/4 each: levels alpha/4, alpha/3, alpha/2, alpha.
    out = correct([_c(0.0024), _c(0.0001), _c(0.009), _c(0.004)], 0.01)

    assert [c.level for c in out] == pytest.approx([0.01 / 3, 0.01 / 4, 0.01, 0.01 / 2])
    assert [c.breach for c in out] == [True, True, True, True]


def test_correct_when_one_check_fails_then_the_rest_are_not_rejected() -> None:
    out = correct([_c(0.0001), _c(0.004), _c(0.006), _c(0.0049)], 0.01)

    # 0.0001 <= 0.0025 rejected; 0.004 > 0.01/3 stops the procedure.
    assert [c.breach for c in out] == [True, False, False, False]
    assert [c.level for c in out] == pytest.approx([0.0025, 0.01 / 3, 0.01 / 3, 0.01 / 3])


def test_correct_when_families_differ_then_order_by_p_over_weight() -> None:
    # LLM (weight 1/2): p 0.002 -> 0.004; each of three feature checks (weight 1/6): p 0.001 ->
    # 0.006, 0.3 and 0.3. The LLM check goes first although its p is larger.
    checks = [_c(0.001), _c(0.3), _c(0.3), _c(0.002, Family.LLM)]

    out = correct(checks, 0.01)

    assert out[3].level == pytest.approx(0.005)  # 0.01 * (1/2) / 1
    assert out[0].level == pytest.approx(0.01 * (1 / 6) / (1 / 2))
    assert [c.breach for c in out] == [True, False, False, True]


def test_correct_when_four_families_then_each_gets_a_quarter_split_among_its_checks() -> None:
    checks = [
        _c(0.9, Family.FEATURE),
        _c(0.9, Family.FEATURE),
        _c(0.9, Family.PREDICTION),
        _c(0.9, Family.LLM),
        _c(0.9, Family.PERFORMANCE),
    ]

    out = correct(checks, 0.01)

    # Nothing is rejected, so every level is alpha * weight.
    assert [c.level for c in out] == pytest.approx([0.00125, 0.00125, 0.0025, 0.0025, 0.0025])
    assert not any(c.breach for c in out)


def test_correct_when_check_has_no_p_value_then_passed_through_unchanged_in_place() -> None:
    info = _c(None, Family.PERFORMANCE, test=CheckKind.INFO)
    checks = [_c(1e-9), info, _c(0.5)]

    out = correct(checks, 0.01)

    assert out[1] is info
    assert out[1].level is None and out[1].critical is None and not out[1].breach
    # The untested check takes no weight: the two tested ones share the feature family.
    assert out[0].level == pytest.approx(0.005)
    assert out[0].breach and not out[2].breach


def test_correct_when_psi_check_then_critical_is_scaled_chi2_quantile() -> None:
    c = psi_check("x", Family.FEATURE, REF30, CUR30, TH)
    assert c is not None

    out = correct([c], 0.01)[0]

    scale = 2 / 30
    # chi2(2) upper quantile at level a: -2 ln a
    assert out.level == 0.01
    assert out.critical == pytest.approx(scale * -2 * math.log(0.01), rel=1e-9)
    assert out.threshold == pytest.approx(max(0.2, scale * -2 * math.log(0.01)))


def test_correct_when_ks_check_then_critical_is_the_asymptotic_distance() -> None:
    c = ks_check("x", Family.FEATURE, arr(range(40)), arr(range(70)), TH)
    assert c is not None

    out = correct([c], 0.01)[0]

    expected = math.sqrt(-math.log(0.005) / 2) * math.sqrt((40 + 70) / (40 * 70))
    assert out.critical == pytest.approx(expected, rel=1e-12)


def test_correct_when_other_kinds_then_no_critical_and_threshold_is_the_floor() -> None:
    checks = [
        _c(0.5, test=CheckKind.CHI2),
        _c(0.5, test=CheckKind.PROPORTION),
        _c(0.5, test=CheckKind.QUANTILE),
        _c(0.5, test=CheckKind.WELCH),
    ]
    out = correct(checks, 0.01)
    assert [c.critical for c in out] == [None] * 4
    assert [c.threshold for c in out] == [0.1] * 4


def test_correct_when_psi_breach_then_decided_against_the_significance_bound() -> None:
    # Small windows: PSI above the 0.2 floor but below the significance bound is no breach,
    # and its p-value is above the level (the two criteria agree).
    rng = np.random.default_rng(4)
    c = psi_check("x", Family.FEATURE, rng.normal(size=50), rng.normal(size=50), TH)
    assert c is not None

    out = correct([c], TH.alpha)[0]

    assert out.threshold > TH.psi_floor
    assert (out.statistic >= out.threshold) == out.breach
