"""The canary decision (pure: figures in, decision out; no clock, no I/O).

Hard stops abort at once (error rate, fallback+timeout rate, schema-invalid rate, p95 latency);
soft stops hold the step (tokens per review, decision disagreement); too few samples in either
arm holds, never passes and never aborts. Only a window with enough samples and no stop steps.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from app.numbers import over_ratio


class Decision(StrEnum):
    STEP = "step"
    HOLD = "hold"
    ABORT = "abort"
    GRADUATE = "graduate"


class Thresholds(BaseModel):
    """Abort/hold limits of one rollout (stored on the rollout record)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    max_error_rate: float = Field(default=0.01, ge=0, le=1)  # hard stop
    max_fallback_rate: float = Field(default=0.05, ge=0, le=1)  # hard stop (seed 001 gate 5)
    max_schema_invalid_rate: float = Field(default=0.005, ge=0, le=1)  # hard stop
    max_latency_ratio: float = Field(default=1.15, ge=1)  # p95 canary / baseline: hard stop
    latency_floor_ms: float = Field(default=25.0, ge=0)  # ...and the gap must exceed this
    max_tokens_ratio: float = Field(default=1.10, ge=1)  # mean tokens canary / baseline: hold
    max_disagreement: float = Field(default=0.05, ge=0, le=1)  # |reject-rate gap|: hold


@dataclass(frozen=True, slots=True)
class ArmSample:
    """One answered review, as the controller reads it from the audit row."""

    decision: str  # submit | reject
    fallback_reason: str | None
    total_latency_ms: float
    tokens: int | None
    verdict_rejects: bool  # the verdict alone (not a gate) stopped the order


# Verdicts that stop the order by themselves.
NO_VERDICTS = ("veto", "escalate", "abstain")
# Fallback reasons that are the canary's fault as errors (5xx-like), not mere slowness.
ERROR_REASONS = frozenset({"http_error", "transport_error", "artifact_unavailable"})


@dataclass(frozen=True, slots=True)
class ArmFigures:
    n: int
    error_rate: float
    fallback_rate: float
    schema_invalid_rate: float
    reject_rate: float
    p95_latency_ms: float
    tokens_per_review: float | None

    @staticmethod
    def of(samples: list[ArmSample]) -> ArmFigures:
        tokens = [s.tokens for s in samples if s.tokens is not None]
        return ArmFigures.from_counts(
            ArmCounts(
                n=len(samples),
                errors=sum(s.fallback_reason in ERROR_REASONS for s in samples),
                fallbacks=sum(s.fallback_reason is not None for s in samples),
                schema_invalid=sum(s.fallback_reason == "schema_invalid" for s in samples),
                verdict_rejects=sum(s.verdict_rejects for s in samples),
                token_reviews=len(tokens),
                token_sum=sum(tokens),
            ),
            p95([s.total_latency_ms for s in samples]),
        )

    @staticmethod
    def from_counts(counts: ArmCounts, p95_latency_ms: float) -> ArmFigures:
        """The figures from counts (what the database aggregates; ``of`` counts in Python):
        one definition of every rate."""
        n = counts.n
        if n == 0:
            return ArmFigures(0, 0.0, 0.0, 0.0, 0.0, 0.0, None)
        return ArmFigures(
            n=n,
            error_rate=counts.errors / n,
            fallback_rate=counts.fallbacks / n,
            schema_invalid_rate=counts.schema_invalid / n,
            reject_rate=counts.verdict_rejects / n,
            p95_latency_ms=p95_latency_ms,
            tokens_per_review=(
                counts.token_sum / counts.token_reviews if counts.token_reviews else None
            ),
        )


@dataclass(frozen=True, slots=True)
class ArmCounts:
    """One arm's answered reviews in a window, counted."""

    n: int
    errors: int  # fallback_reason in ERROR_REASONS
    fallbacks: int  # any fallback_reason
    schema_invalid: int
    verdict_rejects: int  # verdict in NO_VERDICTS
    token_reviews: int  # reviews that reported tokens
    token_sum: int


def p95_rank(n: int) -> int:
    """The 0-based index of the nearest-rank 95th percentile among ``n`` sorted values."""
    return max(0, math.ceil(0.95 * n) - 1)


def p95(values: list[float]) -> float:
    """Nearest-rank 95th percentile (0 for no values)."""
    if not values:
        return 0.0
    return sorted(values)[p95_rank(len(values))]


@dataclass(frozen=True, slots=True)
class Verdict:
    decision: Decision
    reasons: list[str]
    figures: dict[str, Any]
    insufficient: bool = False  # held only for lack of samples: keep accumulating the window


def decide(
    canary: ArmFigures,
    baseline: ArmFigures,
    thresholds: Thresholds,
    *,
    min_samples: int,
    last_step: bool,
) -> Verdict:
    figures: dict[str, Any] = {
        "canary": asdict(canary),
        "baseline": asdict(baseline),
        "min_samples": min_samples,
    }
    if canary.n < min_samples or baseline.n < min_samples:
        reason = f"too few samples: canary {canary.n}, baseline {baseline.n} (< {min_samples})"
        return Verdict(Decision.HOLD, [reason], figures, insufficient=True)
    t = thresholds
    hard: list[str] = []
    if canary.error_rate > t.max_error_rate:
        hard.append(f"error rate {canary.error_rate:.4f} > {t.max_error_rate}")
    if canary.fallback_rate > t.max_fallback_rate:
        hard.append(f"fallback+timeout rate {canary.fallback_rate:.4f} > {t.max_fallback_rate}")
    if canary.schema_invalid_rate > t.max_schema_invalid_rate:
        hard.append(
            f"schema-invalid rate {canary.schema_invalid_rate:.4f} > {t.max_schema_invalid_rate}"
        )
    gap = canary.p95_latency_ms - baseline.p95_latency_ms
    if (
        over_ratio(canary.p95_latency_ms, t.max_latency_ratio, baseline.p95_latency_ms)
        and gap > t.latency_floor_ms
    ):
        hard.append(
            f"p95 latency {canary.p95_latency_ms:.1f} ms > {t.max_latency_ratio}x baseline "
            f"{baseline.p95_latency_ms:.1f} ms"
        )
    if hard:
        return Verdict(Decision.ABORT, hard, figures)
    soft: list[str] = []
    if (
        canary.tokens_per_review is not None
        and baseline.tokens_per_review is not None
        and over_ratio(canary.tokens_per_review, t.max_tokens_ratio, baseline.tokens_per_review)
    ):
        soft.append(
            f"tokens/review {canary.tokens_per_review:.1f} > {t.max_tokens_ratio}x baseline "
            f"{baseline.tokens_per_review:.1f}"
        )
    disagreement = abs(canary.reject_rate - baseline.reject_rate)
    figures["disagreement"] = disagreement
    if disagreement > t.max_disagreement:
        soft.append(f"verdict reject-rate gap {disagreement:.4f} > {t.max_disagreement}")
    if soft:
        return Verdict(Decision.HOLD, soft, figures)
    return Verdict(Decision.GRADUATE if last_step else Decision.STEP, ["green window"], figures)
