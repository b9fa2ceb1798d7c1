"""What one review contributes to a drift window, and the whole family of checks of a run (pure).

Numeric request features (missing values are skipped, not imputed):

    notional_to_equity   qty x price / portfolio equity (price: market.price, else the
                         decision's limit price, else params.price_snapshot)
    spread_bps           market.spread / market.price x 10,000
    volatility           decision.params.volatility, where the scheduler sends it
    regime_entropy       decision.regime_hmm.entropy
    context_quality      market_context.qualityScore
    context_freshness_s  market_context.freshnessSeconds
    qty_vs_recent        qty / median qty of the request's recent_decisions (when it has some)

Categorical: symbol, action, order_type. Prediction: verdict, decision, failed-gate set,
confidence. LLM: schema-invalid share, fallback reason mix, refusal (abstain + escalate) share,
LLM latency p50 / p95.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import TYPE_CHECKING, Any, cast

from app.drift.stats import (
    Check,
    Family,
    Thresholds,
    chi2_check,
    correct,
    ks_check,
    performance_checks,
    proportion_check,
    psi_check,
    quantile_check,
)

if TYPE_CHECKING:
    import numpy as np  # imported where used (see app/drift/stats.py)


class Metric(StrEnum):
    """Every metric a run can record: the closed label set of the drift metrics."""

    NOTIONAL_TO_EQUITY_PSI = "notional_to_equity_psi"
    NOTIONAL_TO_EQUITY_KS = "notional_to_equity_ks"
    SPREAD_BPS_PSI = "spread_bps_psi"
    SPREAD_BPS_KS = "spread_bps_ks"
    VOLATILITY_PSI = "volatility_psi"
    VOLATILITY_KS = "volatility_ks"
    REGIME_ENTROPY_PSI = "regime_entropy_psi"
    REGIME_ENTROPY_KS = "regime_entropy_ks"
    CONTEXT_QUALITY_PSI = "context_quality_psi"
    CONTEXT_QUALITY_KS = "context_quality_ks"
    CONTEXT_FRESHNESS_S_PSI = "context_freshness_s_psi"
    CONTEXT_FRESHNESS_S_KS = "context_freshness_s_ks"
    QTY_VS_RECENT_PSI = "qty_vs_recent_psi"
    QTY_VS_RECENT_KS = "qty_vs_recent_ks"
    SYMBOL_MIX = "symbol_mix"
    ACTION_MIX = "action_mix"
    ORDER_TYPE_MIX = "order_type_mix"
    VERDICT_MIX = "verdict_mix"
    DECISION_MIX = "decision_mix"
    GATE_FAILURE_MIX = "gate_failure_mix"
    CONFIDENCE_PSI = "confidence_psi"
    CONFIDENCE_KS = "confidence_ks"
    SCHEMA_INVALID_RATE = "schema_invalid_rate"
    FALLBACK_MIX = "fallback_mix"
    REFUSAL_RATE = "refusal_rate"
    LATENCY_P50 = "latency_p50"
    LATENCY_P95 = "latency_p95"
    PERF_RETURN = "perf_return"
    PERF_DRAWDOWN = "perf_drawdown"


NUMERIC_FEATURES: tuple[str, ...] = (
    "notional_to_equity",
    "spread_bps",
    "volatility",
    "regime_entropy",
    "context_quality",
    "context_freshness_s",
    "qty_vs_recent",
)
CATEGORICAL_FEATURES: tuple[str, ...] = ("symbol", "action", "order_type")
REFUSALS = frozenset({"abstain", "escalate"})
SCHEMA_INVALID = "schema_invalid"


def _num(value: Any) -> float | None:
    if value is None or isinstance(value, bool):
        return None
    try:
        out = float(value)
    except (TypeError, ValueError):
        return None
    return out if math.isfinite(out) else None


def _get(obj: Any, *path: str) -> Any:
    out: Any = obj
    for key in path:
        if not isinstance(out, Mapping):
            return None
        mapping = cast(Mapping[str, Any], out)
        out = mapping.get(key)
    return out


# Where each raw field sits in the stored request. The monitor reads exactly these paths from
# the database (JSON path expressions, as text: no cast can fail there, and the request document
# itself never leaves the database); ``request_features`` reads the same paths from a dict.
FIELD_PATHS: dict[str, tuple[str | int, ...]] = {
    "qty": ("decision", "qty"),
    "market_price": ("market", "price"),
    "limit_price": ("decision", "limit_price"),
    "price_snapshot": ("decision", "params", "price_snapshot"),
    "equity": ("portfolio", "equity"),
    "spread": ("market", "spread"),
    "volatility": ("decision", "params", "volatility"),
    "regime_entropy": ("decision", "regime_hmm", "entropy"),
    "context_quality": ("market_context", "qualityScore"),
    "context_freshness_s": ("market_context", "freshnessSeconds"),
    # Order size vs recent orders: the median of (up to) the first three recent decisions.
    "recent_qty_0": ("recent_decisions", 0, "qty"),
    "recent_qty_1": ("recent_decisions", 1, "qty"),
    "recent_qty_2": ("recent_decisions", 2, "qty"),
    "order_type": ("decision", "order_type"),
}


def _at(obj: Any, path: tuple[str | int, ...]) -> Any:
    out: Any = obj
    for key in path:
        if isinstance(key, int):
            if not isinstance(out, list) or key >= len(cast(list[Any], out)):
                return None
            out = cast(list[Any], out)[key]
        else:
            out = _get(out, key)
    return out


def request_fields(request: Mapping[str, Any]) -> dict[str, Any]:
    """The raw fields of ``FIELD_PATHS`` read from a request dict."""
    return {name: _at(request, path) for name, path in FIELD_PATHS.items()}


def features_from_fields(fields: Mapping[str, Any]) -> dict[str, float | None]:
    """The numeric features from the raw fields (strings or numbers; anything else is missing)."""
    import numpy as np

    qty = _num(fields.get("qty"))
    price = (
        _num(fields.get("market_price"))
        or _num(fields.get("limit_price"))
        or _num(fields.get("price_snapshot"))
    )
    equity = _num(fields.get("equity"))
    spread = _num(fields.get("spread"))
    recent = [
        q
        for q in (_num(fields.get(f"recent_qty_{i}")) for i in range(3))
        if q is not None and q > 0
    ]
    return {
        "notional_to_equity": qty * price / equity if qty and price and equity else None,
        "spread_bps": spread / price * 1e4 if spread is not None and price else None,
        "volatility": _num(fields.get("volatility")),
        "regime_entropy": _num(fields.get("regime_entropy")),
        "context_quality": _num(fields.get("context_quality")),
        "context_freshness_s": _num(fields.get("context_freshness_s")),
        "qty_vs_recent": qty / float(np.median(recent)) if qty and recent else None,
    }


def request_features(request: Mapping[str, Any]) -> dict[str, float | None]:
    """The numeric features of one review request (as stored: strings or numbers)."""
    return features_from_fields(request_fields(request))


@dataclass
class Window:
    """Accumulated values of one window (reference or current). Memory: one float per review
    per numeric series and a counter per categorical one, whatever the row width."""

    numeric: dict[str, list[float]] = field(
        default_factory=lambda: {k: [] for k in NUMERIC_FEATURES}
    )
    categorical: dict[str, Counter[str]] = field(
        default_factory=lambda: {k: Counter[str]() for k in CATEGORICAL_FEATURES}
    )
    verdicts: Counter[str] = field(default_factory=Counter[str])
    decisions: Counter[str] = field(default_factory=Counter[str])
    gate_failures: Counter[str] = field(default_factory=Counter[str])
    fallbacks: Counter[str] = field(default_factory=Counter[str])
    confidence: list[float] = field(default_factory=list[float])
    latency_ms: list[float] = field(default_factory=list[float])
    returns: list[float] = field(default_factory=list[float])
    n: int = 0

    def add_review(
        self,
        *,
        fields: Mapping[str, Any],
        symbol: str,
        action: str,
        verdict: str,
        decision: str,
        confidence: float | None,
        failed_gates: str,
        fallback_reason: str | None,
        llm_latency_ms: float | None,
    ) -> None:
        self.n += 1
        self._add_fields(fields, symbol=symbol, action=action)
        self.verdicts[verdict] += 1
        self.decisions[decision] += 1
        # The set of failed gates is the category: "none" when every gate passed.
        self.gate_failures[",".join(sorted(g for g in failed_gates.split(",") if g)) or "none"] += 1
        self.fallbacks[fallback_reason or "none"] += 1
        if confidence is not None and math.isfinite(confidence):
            self.confidence.append(confidence)
        if llm_latency_ms is not None and math.isfinite(llm_latency_ms):
            self.latency_ms.append(llm_latency_ms)

    def _add_fields(self, fields: Mapping[str, Any], *, symbol: Any, action: Any) -> None:
        for name, value in features_from_fields(fields).items():
            if value is not None:
                self.numeric[name].append(value)
        for name, value in (
            ("symbol", symbol), ("action", action), ("order_type", fields.get("order_type"))
        ):  # fmt: skip
            if isinstance(value, str) and value:
                self.categorical[name][value] += 1

    def add_request_only(self, request: Mapping[str, Any]) -> None:
        """A request without a served answer (an eval-split example): features only."""
        decision = request.get("decision")
        self._add_fields(
            request_fields(request),
            symbol=_get(decision, "symbol"),
            action=_get(decision, "action"),
        )

    # ------------------------------------------------------------------ persistence

    def to_json(self) -> dict[str, Any]:
        return {
            "n": self.n,
            "numeric": self.numeric,
            "categorical": {k: dict(v) for k, v in self.categorical.items()},
            "verdicts": dict(self.verdicts),
            "decisions": dict(self.decisions),
            "gate_failures": dict(self.gate_failures),
            "fallbacks": dict(self.fallbacks),
            "confidence": self.confidence,
            "latency_ms": self.latency_ms,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Window:
        w = cls()
        w.n = int(data.get("n", 0))
        numeric: dict[str, list[Any]] = data.get("numeric") or {}
        for k, values in numeric.items():
            if k in w.numeric:
                w.numeric[k] = [float(x) for x in values]
        categorical: dict[str, dict[str, Any]] = data.get("categorical") or {}
        for k, counts in categorical.items():
            if k in w.categorical:
                w.categorical[k] = _counter(counts)
        w.verdicts = _counter(data.get("verdicts"))
        w.decisions = _counter(data.get("decisions"))
        w.gate_failures = _counter(data.get("gate_failures"))
        w.fallbacks = _counter(data.get("fallbacks"))
        w.confidence = [float(x) for x in cast(list[Any], data.get("confidence") or [])]
        w.latency_ms = [float(x) for x in cast(list[Any], data.get("latency_ms") or [])]
        return w


def _counter(raw: Any) -> Counter[str]:
    counts: dict[str, Any] = raw or {}
    return Counter({str(a): int(b) for a, b in counts.items()})


def _arr(values: list[float]) -> np.ndarray[Any, np.dtype[np.float64]]:
    import numpy as np

    return np.asarray(values, dtype=np.float64)


def compare(
    reference: Window, current: Window, th: Thresholds, *, predictions: bool = True
) -> list[Check]:
    """The whole family of one run, corrected together. ``predictions=False`` when the reference
    holds request features only (an eval split without served answers)."""
    checks: list[Check | None] = []
    for name in NUMERIC_FEATURES:
        ref, cur = _arr(reference.numeric[name]), _arr(current.numeric[name])
        checks.append(psi_check(f"{name}_psi", Family.FEATURE, ref, cur, th))
        checks.append(ks_check(f"{name}_ks", Family.FEATURE, ref, cur, th))
    for name in CATEGORICAL_FEATURES:
        checks.append(
            chi2_check(
                f"{name}_mix",
                Family.FEATURE,
                reference.categorical[name],
                current.categorical[name],
                th,
            )
        )
    if predictions:
        checks.append(
            chi2_check("verdict_mix", Family.PREDICTION, reference.verdicts, current.verdicts, th)
        )
        checks.append(
            chi2_check(
                "decision_mix", Family.PREDICTION, reference.decisions, current.decisions, th
            )
        )
        checks.append(
            chi2_check(
                "gate_failure_mix",
                Family.PREDICTION,
                reference.gate_failures,
                current.gate_failures,
                th,
            )
        )
        ref_c, cur_c = _arr(reference.confidence), _arr(current.confidence)
        checks.append(psi_check("confidence_psi", Family.PREDICTION, ref_c, cur_c, th))
        checks.append(ks_check("confidence_ks", Family.PREDICTION, ref_c, cur_c, th))
        n, m = sum(reference.fallbacks.values()), sum(current.fallbacks.values())
        checks.append(
            proportion_check(
                "schema_invalid_rate", Family.LLM,
                (reference.fallbacks.get(SCHEMA_INVALID, 0), n),
                (current.fallbacks.get(SCHEMA_INVALID, 0), m), th,
            )
        )  # fmt: skip
        checks.append(
            chi2_check("fallback_mix", Family.LLM, reference.fallbacks, current.fallbacks, th)
        )
        refusal_ref = sum(v for k, v in reference.verdicts.items() if k in REFUSALS)
        refusal_cur = sum(v for k, v in current.verdicts.items() if k in REFUSALS)
        checks.append(
            proportion_check(
                "refusal_rate", Family.LLM,
                (refusal_ref, sum(reference.verdicts.values())),
                (refusal_cur, sum(current.verdicts.values())), th,
            )
        )  # fmt: skip
        ref_l, cur_l = _arr(reference.latency_ms), _arr(current.latency_ms)
        checks.append(quantile_check("latency_p50", Family.LLM, ref_l, cur_l, 0.5, th))
        checks.append(quantile_check("latency_p95", Family.LLM, ref_l, cur_l, 0.95, th))
        checks.extend(performance_checks(_arr(reference.returns), _arr(current.returns), th))
    return correct([c for c in checks if c is not None], th.alpha)
