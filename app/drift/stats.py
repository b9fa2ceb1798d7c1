"""Drift statistics (pure: numpy/scipy only, no I/O, no clock).

Every check is a hypothesis test with an effect-size floor:

    breach  <=>  p-value rejected by the family-wise correction  AND  effect >= floor

The floor keeps a large window from alarming on a change nobody cares about (at n = 50,000 any
difference is "significant"); the test keeps a small window from alarming on noise (at n = 50 a
PSI of 0.3 is what identical distributions look like). The family of one run (every feature,
prediction, LLM and performance check) is corrected with a weighted Holm step-down, weights
split equally between the four families, so the whole run's false-alarm rate stays <= ``alpha``
however many features are monitored.

PSI under no drift: with ``B`` bins, ``PSI / (1/n + 1/m)`` is approximately chi-square with
``B - 1`` degrees of freedom (PSI is a symmetrised KL divergence, whose small-sample law is that
of the G-test). That gives PSI a p-value, and its critical value at level ``a``:
``(1/n + 1/m) * chi2.isf(a, B - 1)``; the recorded threshold is ``max(floor, that)``.
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from enum import StrEnum
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt

    FloatArray = npt.NDArray[np.float64]

# numpy and scipy are imported where a check computes, not with this module: the service imports
# it at start (drift monitor, admin promotion guard) and most starts never compute a check;
# scipy.stats alone was ~40% of a cold start (bench/README.md, cold_start). ``preload`` imports
# them ahead, off the event loop.


def preload() -> None:
    """Import numpy and scipy.stats now (the monitor calls it in a worker thread before a run's
    comparison, so the first comparison of a process does not import them on the event loop)."""
    for name in ("numpy", "scipy.stats"):
        importlib.import_module(name)


def _sps() -> Any:
    """scipy.stats. scipy ships partial type information: its results are read through ``Any``
    and converted to float at once."""
    from scipy import stats  # pyright: ignore[reportMissingTypeStubs]

    return stats


class Family(StrEnum):
    FEATURE = "feature"
    PREDICTION = "prediction"
    LLM = "llm"
    PERFORMANCE = "performance"


class CheckKind(StrEnum):
    PSI = "psi"
    KS = "ks"
    CHI2 = "chi2"
    PROPORTION = "proportion"  # two-sided Fisher exact on a 2x2 table
    QUANTILE = "quantile"  # share above the reference quantile, Fisher exact
    WELCH = "welch"  # one-sided: current mean return lower
    INFO = "info"  # reported, never tested (no p-value, never a breach)


class Severity(StrEnum):
    WARNING = "warning"
    CRITICAL = "critical"


# The input world moving is a warning (rolling back does not change the inputs); the model's own
# behaviour or results moving is critical.
FAMILY_SEVERITY: dict[Family, Severity] = {
    Family.FEATURE: Severity.WARNING,
    Family.PREDICTION: Severity.CRITICAL,
    Family.LLM: Severity.CRITICAL,
    Family.PERFORMANCE: Severity.CRITICAL,
}


@dataclass(frozen=True, slots=True)
class Thresholds:
    """Effect-size floors and the family-wise level (see the module docstring)."""

    alpha: float = 0.005  # per-run false-alarm bound, after the correction
    psi_floor: float = 0.2  # LEARN_DRIFT_PSI_THRESH
    ks_floor: float = 0.1  # KS distance
    mix_floor: float = 0.05  # total-variation distance between two category mixes
    rate_floor: float = 0.02  # absolute change of a rate (schema-invalid, refusal)
    latency_rel_floor: float = 0.25  # relative change of a latency quantile
    sharpe_floor: float = 0.10  # drop of the per-order Sharpe ratio
    min_n: int = 30  # below this in either window a check is skipped, not guessed
    max_bins: int = 10
    min_per_bin: int = 10  # fewer bins for small windows: ~10 expected per bin
    rare_expected: float = 5.0  # categories with fewer expected counts are pooled


@dataclass(frozen=True, slots=True)
class Check:
    """One compared metric. ``breach`` and ``level`` are set by ``correct``."""

    metric: str
    family: Family
    test: CheckKind
    # The recorded statistic, in the floor's unit: PSI, KS distance D, total-variation distance
    # of a mix, absolute change of a rate, relative change of a quantile, Sharpe drop. The test's
    # own statistic (chi-square, ...) goes to ``detail`` where it differs.
    statistic: float
    effect: float  # what the floor is compared with (the statistic; drawdown: its change)
    floor: float
    p_value: float | None
    n: int  # reference size
    m: int  # current size
    critical: float | None = None  # statistic needed at ``level`` (where it has a closed form)
    level: float | None = None  # the Holm level this check was judged at
    breach: bool = False
    detail: dict[str, Any] = field(default_factory=dict[str, Any])

    @property
    def threshold(self) -> float:
        """The statistic a breach needs: the floor, or the significance bound when higher."""
        if self.critical is None:
            return self.floor
        return max(self.floor, self.critical)

    @property
    def severity(self) -> Severity:
        return FAMILY_SEVERITY[self.family]


# ------------------------------------------------------------------------------ numeric


def _finite(values: Sequence[float] | FloatArray) -> FloatArray:
    import numpy as np

    arr = np.asarray(values, dtype=np.float64)
    return arr[np.isfinite(arr)]


def bin_count(n: int, m: int, th: Thresholds) -> int:
    """Bins for PSI: at most ``max_bins``, about ``min_per_bin`` expected in the smaller window."""
    return int(max(2, min(th.max_bins, min(n, m) // th.min_per_bin)))


def quantile_edges(reference: FloatArray, bins: int) -> FloatArray:
    """Inner bin edges at the reference's quantiles (ties merge bins rather than empty them)."""
    import numpy as np

    qs = np.linspace(0.0, 1.0, bins + 1)[1:-1]
    return np.unique(np.quantile(reference, qs))


def binned(values: FloatArray, edges: FloatArray) -> FloatArray:
    import numpy as np

    idx = np.searchsorted(edges, values, side="right")
    return np.bincount(idx, minlength=len(edges) + 1).astype(np.float64)


def psi(ref_counts: FloatArray, cur_counts: FloatArray) -> float:
    """Population stability index; half a count is added to each bin so an empty bin is finite."""
    import numpy as np

    p = (ref_counts + 0.5) / (ref_counts.sum() + 0.5 * len(ref_counts))
    q = (cur_counts + 0.5) / (cur_counts.sum() + 0.5 * len(cur_counts))
    return float(np.sum((q - p) * np.log(q / p)))


def psi_check(
    metric: str, family: Family, reference: FloatArray, current: FloatArray, th: Thresholds
) -> Check | None:
    import numpy as np

    ref, cur = _finite(reference), _finite(current)
    n, m = len(ref), len(cur)
    if n < th.min_n or m < th.min_n:
        return None
    edges = quantile_edges(ref, bin_count(n, m, th))
    top = float(np.max(ref))
    if edges[-1] >= top:
        # The reference is tied at its maximum (constant, or capped): the top edge is that
        # maximum, and edge values bin upward, so values above it would share the bin of the
        # values at it and a rise would read as no change. Above the maximum is its own bin.
        edges = np.append(edges, np.nextafter(top, np.inf))
    bins = len(edges) + 1
    value = psi(binned(ref, edges), binned(cur, edges))
    scale = 1.0 / n + 1.0 / m
    p = float(_sps().chi2.sf(value / scale, bins - 1))
    return Check(
        metric, family, CheckKind.PSI, value, value, th.psi_floor, p, n, m,
        detail={"bins": bins, "scale": scale},
    )  # fmt: skip


def ks_check(
    metric: str, family: Family, reference: FloatArray, current: FloatArray, th: Thresholds
) -> Check | None:
    ref, cur = _finite(reference), _finite(current)
    n, m = len(ref), len(cur)
    if n < th.min_n or m < th.min_n:
        return None
    res = _sps().ks_2samp(ref, cur, method="asymp")
    d = float(res.statistic)
    p = float(res.pvalue)
    return Check(metric, family, CheckKind.KS, d, d, th.ks_floor, p, n, m)


def quantile_check(
    metric: str,
    family: Family,
    reference: FloatArray,
    current: FloatArray,
    q: float,
    th: Thresholds,
) -> Check | None:
    """Has the ``q`` quantile moved? Effect: relative change of the quantile; test: Fisher exact
    on the share above the reference's quantile in each window (valid at any sample size)."""
    import numpy as np

    ref, cur = _finite(reference), _finite(current)
    n, m = len(ref), len(cur)
    if n < th.min_n or m < th.min_n:
        return None
    q_ref, q_cur = float(np.quantile(ref, q)), float(np.quantile(cur, q))
    above_ref, above_cur = int(np.sum(ref > q_ref)), int(np.sum(cur > q_ref))
    table = [[above_ref, n - above_ref], [above_cur, m - above_cur]]
    p = float(_sps().fisher_exact(table).pvalue)
    rel = abs(q_cur - q_ref) / abs(q_ref) if q_ref != 0 else (0.0 if q_cur == 0 else np.inf)
    return Check(
        metric, family, CheckKind.QUANTILE, float(rel), float(rel), th.latency_rel_floor, p, n, m,
        detail={"reference_quantile": q_ref, "current_quantile": q_cur, "q": q},
    )  # fmt: skip


# ------------------------------------------------------------------------------ categorical


def pooled_table(
    reference: Mapping[str, int], current: Mapping[str, int], th: Thresholds
) -> tuple[list[str], FloatArray]:
    """A 2 x k table; categories expected below ``rare_expected`` in either window are pooled
    into ``~other`` (chi-square needs expected counts, and a symbol seen twice is not a mix)."""
    import numpy as np

    keys = sorted(set(reference) | set(current))
    n, m = sum(reference.values()), sum(current.values())
    total = n + m
    kept: list[str] = []
    other = np.zeros(2)
    for k in keys:
        col = np.array([reference.get(k, 0), current.get(k, 0)], dtype=np.float64)
        pooled_share = col.sum() / total
        if min(n, m) * pooled_share < th.rare_expected:
            other += col
        else:
            kept.append(k)
    cols = [[reference.get(k, 0), current.get(k, 0)] for k in kept]
    labels = list(kept)
    if other.sum() > 0:
        cols.append([other[0], other[1]])
        labels.append("~other")
    table = np.array(cols, dtype=np.float64).T.reshape(2, len(cols))
    return labels, table


def chi2_check(
    metric: str,
    family: Family,
    reference: Mapping[str, int],
    current: Mapping[str, int],
    th: Thresholds,
) -> Check | None:
    import numpy as np

    n, m = sum(reference.values()), sum(current.values())
    if n < th.min_n or m < th.min_n:
        return None
    labels, table = pooled_table(reference, current, th)
    shares = table / table.sum(axis=1, keepdims=True)
    tvd = float(0.5 * np.abs(shares[0] - shares[1]).sum())
    detail: dict[str, Any] = {
        "categories": labels,
        "reference_share": [round(float(x), 4) for x in shares[0]],
        "current_share": [round(float(x), 4) for x in shares[1]],
    }
    if table.shape[1] < 2:
        # One category in both windows: nothing can have moved.
        return Check(
            metric, family, CheckKind.CHI2, 0.0, tvd, th.mix_floor, 1.0, n, m, detail=detail
        )
    res = _sps().chi2_contingency(table, correction=False)
    stat = float(res.statistic)
    p = float(res.pvalue)
    detail["dof"] = int(res.dof)
    detail["chi2"] = stat
    return Check(metric, family, CheckKind.CHI2, tvd, tvd, th.mix_floor, p, n, m, detail=detail)


def proportion_check(
    metric: str,
    family: Family,
    reference: tuple[int, int],
    current: tuple[int, int],
    th: Thresholds,
) -> Check | None:
    """A rate (hits, total) in each window: Fisher exact, effect = absolute change of the rate."""
    (k1, n), (k2, m) = reference, current
    if n < th.min_n or m < th.min_n:
        return None
    p = float(_sps().fisher_exact([[k1, n - k1], [k2, m - k2]]).pvalue)
    r1, r2 = k1 / n, k2 / m
    return Check(
        metric, family, CheckKind.PROPORTION, abs(r2 - r1), abs(r2 - r1), th.rate_floor, p, n, m,
        detail={"reference_rate": round(r1, 6), "current_rate": round(r2, 6)},
    )  # fmt: skip


# ------------------------------------------------------------------------------ performance


def sharpe(returns: FloatArray) -> float:
    """Per-order Sharpe ratio (mean / sample std); 0 without spread."""
    import numpy as np

    if len(returns) < 2:
        return 0.0
    sd = float(np.std(returns, ddof=1))
    return float(np.mean(returns)) / sd if sd > 0 else 0.0


def max_drawdown(returns: FloatArray) -> float:
    """Largest fall of cumulative P&L from its running peak (in the returns' unit)."""
    import numpy as np

    if len(returns) == 0:
        return 0.0
    curve = np.cumsum(returns)
    peak = np.maximum.accumulate(np.concatenate([[0.0], curve]))[1:]
    return float(np.max(peak - curve))


def performance_checks(reference: FloatArray, current: FloatArray, th: Thresholds) -> list[Check]:
    """Mean return per submitted order lower than the reference's (Welch, one-sided), with the
    Sharpe drop as the effect; drawdown reported beside it (path-dependent, not tested)."""
    import numpy as np

    ref, cur = _finite(reference), _finite(current)
    n, m = len(ref), len(cur)
    if n < th.min_n or m < th.min_n:
        return []
    res = _sps().ttest_ind(cur, ref, equal_var=False, alternative="less")
    p = float(res.pvalue)
    p = 1.0 if not np.isfinite(p) else p
    s_ref, s_cur = sharpe(ref), sharpe(cur)
    dd_ref, dd_cur = max_drawdown(ref), max_drawdown(cur)
    return [
        Check(
            "perf_return", Family.PERFORMANCE, CheckKind.WELCH, s_ref - s_cur, s_ref - s_cur,
            th.sharpe_floor, p, n, m,
            detail={
                "sharpe_reference": round(s_ref, 6), "sharpe_current": round(s_cur, 6),
                "mean_reference": float(np.mean(ref)), "mean_current": float(np.mean(cur)),
                "pnl_reference": float(np.sum(ref)), "pnl_current": float(np.sum(cur)),
            },
        ),
        Check(
            "perf_drawdown", Family.PERFORMANCE, CheckKind.INFO, dd_cur, dd_cur - dd_ref,
            0.0, None, n, m, detail={"drawdown_reference": dd_ref, "drawdown_current": dd_cur},
        ),
    ]  # fmt: skip


# ------------------------------------------------------------------------------ correction


def _critical(check: Check, level: float) -> float | None:
    """The statistic a check needs at ``level``, where a closed form exists."""
    import numpy as np

    if check.test is CheckKind.PSI:
        return float(check.detail["scale"] * _sps().chi2.isf(level, check.detail["bins"] - 1))
    if check.test is CheckKind.KS:
        # Asymptotic two-sample KS critical distance.
        c = float(np.sqrt(-np.log(level / 2.0) / 2.0))
        return c * float(np.sqrt((check.n + check.m) / (check.n * check.m)))
    return None


def correct(checks: Sequence[Check], alpha: float) -> list[Check]:
    """Weighted Holm step-down over one run's family of checks; returns the checks with
    ``level``, ``critical`` and ``breach`` set.

    Each family (feature, prediction, llm, performance) present gets an equal share of the
    weight, split equally among its checks: forty features must not drown four model-health
    checks. Strong family-wise error control at ``alpha`` holds for any fixed weights.
    A check breaches only if rejected AND its effect reaches the floor.
    """
    tested = [c for c in checks if c.p_value is not None]
    families = {c.family for c in tested}
    weight: dict[int, float] = {}
    for fam in families:
        members = [i for i, c in enumerate(tested) if c.family is fam]
        for i in members:
            weight[i] = 1.0 / (len(families) * len(members))
    order = sorted(range(len(tested)), key=lambda i: (tested[i].p_value or 0.0) / weight[i])
    remaining = 1.0
    rejected: set[int] = set()
    levels: dict[int, float] = {}
    stopped = False
    for i in order:
        level = alpha * weight[i] / remaining if remaining > 0 else alpha
        levels[i] = level
        p = tested[i].p_value
        if not stopped and p is not None and p <= level:
            rejected.add(i)
            remaining -= weight[i]
        else:
            stopped = True
    out: list[Check] = []
    index = {id(c): i for i, c in enumerate(tested)}
    for c in checks:
        i = index.get(id(c))
        if i is None:
            out.append(c)
            continue
        level = levels[i]
        out.append(
            replace(
                c,
                level=level,
                critical=_critical(c, level),
                breach=i in rejected and c.effect >= c.floor,
            )
        )
    return out
