"""Drift monitor calibration and power (the statistics of app/drift, run on seeded synthetic
windows shaped like a trading desk's review stream).

Calibration: reference and current drawn from IDENTICAL distributions; a trial is a false alarm
when the run records any breach. Power: the current window carries one stated shift; a trial
detects it when the shifted metric breaches.

    .venv/bin/python -m bench.drift_calibration            # full: 200 trials per cell
    .venv/bin/python -m bench.drift_calibration --trials 40 --sizes 50,200

Prints two tables and writes bench/results/drift_calibration.json.
"""

from __future__ import annotations

import argparse
import json
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from app.drift.features import Window, compare
from app.drift.stats import Thresholds

RESULTS = Path(__file__).resolve().parent / "results" / "drift_calibration.json"

SYMBOLS = [f"S{i:02d}" for i in range(30)]
_ZIPF = 1.0 / np.arange(1, len(SYMBOLS) + 1)
SYMBOL_P = _ZIPF / _ZIPF.sum()
VERDICTS = ["approve", "veto", "adjust", "abstain", "escalate"]
VERDICT_P = np.array([0.70, 0.10, 0.12, 0.05, 0.03])
GATES = ["none", "max_notional", "spread", "stale_market", "max_notional,spread"]
GATE_P = np.array([0.85, 0.06, 0.04, 0.04, 0.01])
FALLBACKS = ["none", "timeout", "schema_invalid", "transport_error", "circuit_open"]
FALLBACK_P = np.array([0.94, 0.03, 0.01, 0.015, 0.005])
REGIME_SD = float(np.sqrt(2 * 2 / ((2 + 2) ** 2 * (2 + 2 + 1))))  # Beta(2, 2)


@dataclass(frozen=True)
class Shift:
    regime_entropy_sd: float = 0.0  # additive mean shift of regime_entropy, in its SDs
    verdict_points: float = 0.0  # share moved from approve to veto (0.10 = 10 points)


def _counts(rng: np.random.Generator, labels: list[str], p: np.ndarray, n: int) -> Counter[str]:
    drawn = rng.multinomial(n, p / p.sum())
    return Counter({k: int(v) for k, v in zip(labels, drawn, strict=True) if v})


def synth_window(rng: np.random.Generator, n: int, shift: Shift = Shift()) -> Window:
    """One window of ``n`` reviews. Ties (freshness, quality) and rare categories on purpose."""
    w = Window()
    w.n = n
    w.numeric["notional_to_equity"] = rng.lognormal(np.log(0.02), 0.8, n).tolist()
    w.numeric["spread_bps"] = rng.lognormal(1.0, 0.5, n).tolist()
    w.numeric["volatility"] = rng.gamma(4.0, 0.008, n).tolist()
    w.numeric["regime_entropy"] = (
        rng.beta(2.0, 2.0, n) + shift.regime_entropy_sd * REGIME_SD
    ).tolist()
    w.numeric["context_quality"] = np.round(rng.beta(8.0, 2.0, n), 2).tolist()
    w.numeric["context_freshness_s"] = rng.choice(
        [30.0, 60.0, 120.0, 300.0], size=n, p=[0.4, 0.35, 0.2, 0.05]
    ).tolist()
    w.numeric["qty_vs_recent"] = rng.lognormal(0.0, 0.3, n).tolist()
    w.categorical["symbol"] = _counts(rng, SYMBOLS, SYMBOL_P, n)
    w.categorical["action"] = _counts(rng, ["buy", "sell"], np.array([0.6, 0.4]), n)
    w.categorical["order_type"] = _counts(
        rng, ["market", "limit", "stop"], np.array([0.7, 0.25, 0.05]), n
    )
    vp = VERDICT_P.copy()
    vp[0] -= shift.verdict_points
    vp[1] += shift.verdict_points
    verdicts = rng.choice(VERDICTS, size=n, p=vp)
    w.verdicts = Counter({str(k): int(v) for k, v in Counter(verdicts.tolist()).items()})
    submit = np.isin(verdicts, ["approve", "adjust"]) & (rng.random(n) < 0.9)
    w.decisions = Counter({"submit": int(submit.sum()), "reject": int(n - submit.sum())})
    w.gate_failures = _counts(rng, GATES, GATE_P, n)
    w.fallbacks = _counts(rng, FALLBACKS, FALLBACK_P, n)
    w.confidence = rng.beta(6.0, 2.0, n).tolist()
    w.latency_ms = rng.lognormal(np.log(400.0), 0.4, n).tolist()
    outcomes = int(submit.sum()) // 2  # about half the submitted orders have an outcome yet
    w.returns = rng.normal(0.001, 0.01, outcomes).tolist()
    return w


def trial(seed: int, n: int, shift: Shift, th: Thresholds) -> set[str]:
    """Metrics that breached in one seeded run."""
    rng = np.random.default_rng(seed)
    ref = synth_window(rng, n)
    cur = synth_window(rng, n, shift)
    return {c.metric for c in compare(ref, cur, th) if c.breach}


def calibration(
    sizes: list[int], trials: int, th: Thresholds, seed: int = 20261201
) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    for n in sizes:
        started = time.perf_counter()
        alarms = 0
        by_metric: Counter[str] = Counter()
        for t in range(trials):
            breached = trial(seed * 100_003 + n * 1_009 + t, n, Shift(), th)
            alarms += bool(breached)
            by_metric.update(breached)
        rows.append(
            {
                "n": n,
                "m": n,
                "trials": trials,
                "false_alarms": alarms,
                "false_alarm_rate": alarms / trials,
                "by_metric": dict(by_metric),
                "seconds": round(time.perf_counter() - started, 2),
            }
        )
    return rows


POWER_CASES: list[tuple[str, str, Callable[[float], Shift], list[float]]] = [
    ("regime_entropy mean shift (SD)", "regime_entropy", lambda s: Shift(regime_entropy_sd=s),
     [0.25, 0.35, 0.5, 0.75]),
    ("verdict mix: approve -> veto (points)", "verdict_mix",
     lambda s: Shift(verdict_points=s / 100), [5.0, 7.5, 10.0, 15.0]),
]  # fmt: skip


def power(n: int, trials: int, th: Thresholds, seed: int = 7) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    for label, prefix, make, sizes in POWER_CASES:
        for size in sizes:
            hits = 0
            for t in range(trials):
                breached = trial(seed * 1_000_003 + int(size * 100) * 7_919 + t, n, make(size), th)
                hits += any(m.startswith(prefix) for m in breached)
            rows.append(
                {"shift": label, "size": size, "n": n, "m": n, "trials": trials,
                 "detected": hits, "power": hits / trials}
            )  # fmt: skip
    return rows


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--trials", type=int, default=200)
    parser.add_argument("--sizes", default="50,200,1000,10000")
    parser.add_argument("--power-n", type=int, default=500)
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    th = Thresholds()
    sizes = [int(s) for s in args.sizes.split(",")]
    cal = calibration(sizes, args.trials, th)
    print(f"Calibration: identical distributions, alpha = {th.alpha} per run (weighted Holm)")
    print(f"{'n = m':>8} {'trials':>7} {'false alarms':>13} {'rate':>7}  breaches by metric")
    for r in cal:
        print(
            f"{r['n']:>8} {r['trials']:>7} {r['false_alarms']:>13} "
            f"{r['false_alarm_rate']:>7.3f}  {r['by_metric'] or '-'}"
        )
    pw = power(args.power_n, args.trials, th)
    print(f"\nPower at n = m = {args.power_n}")
    print(f"{'shift':<40} {'size':>6} {'detected':>9} {'power':>7}")
    for r in pw:
        print(f"{r['shift']:<40} {r['size']:>6} {r['detected']:>9} {r['power']:>7.3f}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(
        json.dumps(
            {"thresholds": asdict(th), "calibration": cal, "power": pw}, indent=2, default=str,
        )
    )  # fmt: skip
    print(f"\nwrote {args.out}")


if __name__ == "__main__":
    main()
