"""Promotion evidence: the scorecard shape and the pure check against the promotion policy."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field

from app.settings import PROJECT_ROOT, Settings


class PromotionPolicy(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    min_schema_valid_rate: float = Field(default=0.995, ge=0, le=1)
    max_fallback_rate: float = Field(default=0.05, ge=0, le=1)
    max_timeout_rate: float = Field(default=0.05, ge=0, le=1)
    max_gate_bypass_count: int = Field(default=0, ge=0)
    require_reproducible_hash: bool = True
    require_gate_compatibility: bool = True
    require_determinism: bool = True
    min_delta_sharpe: float = 0.10
    max_drawdown_tolerance: float = Field(default=0.02, ge=0)


class Scorecard(BaseModel):
    """What the eval lane measured for one candidate on a held-out split."""

    model_config = ConfigDict(extra="allow", frozen=True)

    artifact_hash: str
    dataset_hash: str
    split: str = "test"
    n: int = Field(ge=0)
    schema_valid_rate: float = Field(ge=0, le=1)
    timeout_rate: float = Field(ge=0, le=1)
    fallback_rate: float = Field(ge=0, le=1)
    verdict_accuracy: float | None = None
    decision_agreement: float | None = None
    latency_p50_ms: float | None = None
    latency_p95_ms: float | None = None
    gate_compatibility: bool
    gate_bypass_count: int = Field(ge=0)
    hash_reproducible: bool
    determinism_ok: bool
    delta_sharpe: float | None = None
    maxdd_delta: float | None = None  # candidate max drawdown minus active's (positive = worse)


def load_promotion_policy(path: Path, overrides: dict[str, Any] | None = None) -> PromotionPolicy:
    data: Any = yaml.safe_load(path.read_text()) or {}
    data.update({k: v for k, v in (overrides or {}).items() if v is not None})
    return PromotionPolicy.model_validate(data)


def check_scorecard(card: Scorecard | None, policy: PromotionPolicy) -> list[str]:
    """Every failed promotion check, as readable reasons (empty: the scorecard passes)."""
    if card is None:
        return ["no eval scorecard for this artifact"]
    out: list[str] = []
    if card.n == 0:
        out.append("scorecard covers no examples")
    if card.schema_valid_rate < policy.min_schema_valid_rate:
        out.append(
            f"schema-valid rate {card.schema_valid_rate:.4f} < {policy.min_schema_valid_rate}"
        )
    if card.fallback_rate > policy.max_fallback_rate:
        out.append(f"fallback rate {card.fallback_rate:.4f} > {policy.max_fallback_rate}")
    if card.timeout_rate > policy.max_timeout_rate:
        out.append(f"timeout rate {card.timeout_rate:.4f} > {policy.max_timeout_rate}")
    if card.gate_bypass_count > policy.max_gate_bypass_count:
        out.append(
            f"deterministic gate bypass count {card.gate_bypass_count} > "
            f"{policy.max_gate_bypass_count}"
        )
    if policy.require_reproducible_hash and not card.hash_reproducible:
        out.append("artifact hash is not reproducible")
    if policy.require_gate_compatibility and not card.gate_compatibility:
        out.append("gate compatibility failed")
    if policy.require_determinism and not card.determinism_ok:
        out.append("determinism spot check failed")
    if card.delta_sharpe is not None and card.delta_sharpe < policy.min_delta_sharpe:
        out.append(f"delta Sharpe {card.delta_sharpe:+.3f} < {policy.min_delta_sharpe:+.3f}")
    if card.maxdd_delta is not None and card.maxdd_delta > policy.max_drawdown_tolerance:
        out.append(
            f"max drawdown worse by {card.maxdd_delta:.3f} > {policy.max_drawdown_tolerance}"
        )
    return out


def policy_for(settings: Settings) -> PromotionPolicy:
    """The promotion policy in force: ``LLM_DSPY_COMPILE_METRICS_POLICY_REF`` (relative to the
    project) with the ``LEARN_GATE_*`` overrides. CLI, lanes and admin API all use this."""
    ref = Path(settings.llm_dspy_compile_metrics_policy_ref)
    path = ref if ref.is_absolute() else PROJECT_ROOT / ref
    return load_promotion_policy(
        path,
        {
            "min_delta_sharpe": settings.learn_gate_delta_sharpe,
            "max_drawdown_tolerance": settings.learn_gate_maxdd_tol,
        },
    )
