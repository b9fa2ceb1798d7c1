"""Evidence a candidate needs from shadow before a canary (pure: figures in, reasons out).

- at least ``min_samples`` shadow reviews (``LEARN_SHADOW_MIN_SAMPLES``);
- decision disagreement with the served arm <= ``max_disagreement`` (seed 003: 1%), unless the
  operator accepts a higher figure explicitly (recorded with the rollout's start event);
- schema-valid and fallback rates within the promotion policy (``config/promotion.yaml``);
- p95 LLM latency <= ``max_latency_ratio`` x the served arm's on the same requests (seed 004);
- a scorecard gate that could not be computed (no outcomes: delta Sharpe, max drawdown) fails
  unless waived by name.
"""

from __future__ import annotations

from dataclasses import dataclass

from app.numbers import over_ratio
from app.registry.promotion import PromotionPolicy, Scorecard
from app.rollout.shadow import ShadowStats

# ``replay``: the operator accepts the latest replay's flips (checked by registry.promote).
WAIVABLE = frozenset({"delta_sharpe", "max_drawdown", "replay"})


@dataclass(frozen=True, slots=True)
class ShadowPolicy:
    min_samples: int
    max_disagreement: float
    max_latency_ratio: float


def check_shadow(
    stats: ShadowStats,
    shadow: ShadowPolicy,
    promotion: PromotionPolicy,
    *,
    accepted_disagreement: float | None = None,
) -> list[str]:
    out: list[str] = []
    if stats.n < shadow.min_samples:
        out.append(f"{stats.n} shadow reviews < required {shadow.min_samples}")
        return out
    if stats.n == 0:  # no samples required and none taken: nothing to compare
        return out
    limit = max(shadow.max_disagreement, accepted_disagreement or 0.0)
    if stats.disagreement > limit:
        out.append(f"shadow disagreement {stats.disagreement:.4f} > {limit}")
    if stats.schema_valid_rate < promotion.min_schema_valid_rate:
        out.append(
            f"shadow schema-valid rate {stats.schema_valid_rate:.4f} < "
            f"{promotion.min_schema_valid_rate}"
        )
    if stats.fallback_rate > promotion.max_fallback_rate:
        out.append(
            f"shadow fallback rate {stats.fallback_rate:.4f} > {promotion.max_fallback_rate}"
        )
    mine, served = stats.p95_llm_ms, stats.served_p95_llm_ms
    if (
        mine is not None
        and served is not None
        and over_ratio(mine, shadow.max_latency_ratio, served)
    ):
        out.append(
            f"shadow p95 LLM latency {mine:.1f} ms > {shadow.max_latency_ratio}x "
            f"served {served:.1f} ms"
        )
    return out


def uncomputable_gates(card: Scorecard | None, waived: frozenset[str]) -> list[str]:
    """Gates the scorecard could not compute (no outcomes) and that were not waived by name."""
    if card is None:
        return []  # the missing scorecard itself is reported by check_scorecard
    missing: list[str] = []
    if card.delta_sharpe is None and "delta_sharpe" not in waived:
        missing.append("delta Sharpe not computed (no outcomes) and not waived")
    if card.maxdd_delta is None and "max_drawdown" not in waived:
        missing.append("max drawdown not computed (no outcomes) and not waived")
    return missing
