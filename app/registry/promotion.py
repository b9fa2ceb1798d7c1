"""Promotion evidence: the scorecard and replay shapes and the pure checks against the
promotion policy."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
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
    # Replay (``lanes replay``): the share of replayed orders that the served arm rejected and
    # the candidate would submit. 0.0: not one, unless the approval waives ``replay`` by name.
    replay_max_reject_to_submit: float = Field(default=0.0, ge=0, le=1)
    # ACTIVE needs a replay when reviews were served within this many days before the
    # promotion, and the replay's window must reach into that span.
    replay_lookback_days: float = Field(default=7.0, gt=0)


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


class ReplayReport(BaseModel):
    """What ``lanes replay`` found: recorded requests of ``[since, until)`` re-decided by the
    artifact, against the decision actually served (``flips``: reject -> submit first)."""

    model_config = ConfigDict(extra="allow", frozen=True)

    artifact_hash: str
    since: datetime
    until: datetime
    window_reviews: int = Field(ge=0)  # reviews recorded in the window
    n: int = Field(ge=0)  # re-decided and compared (the newest ``limit``, minus errors)
    same: int = Field(ge=0)
    submit_to_reject: int = Field(ge=0)
    reject_to_submit: int = Field(ge=0)
    errors: int = Field(ge=0)  # recorded requests that could not be re-decided
    reject_to_submit_share: float = Field(ge=0, le=1)
    flips: list[dict[str, Any]] = Field(default_factory=list[dict[str, Any]])


REPLAY_WAIVER = "replay"


def _aware(ts: datetime) -> datetime:
    return ts if ts.tzinfo is not None else ts.replace(tzinfo=UTC)


def check_replay(
    report: ReplayReport | None,
    policy: PromotionPolicy,
    *,
    required: bool,
    waived: bool,
    now: datetime,
) -> list[str]:
    """Every failed replay check, as readable reasons (empty: the replay passes).

    ``required``: reviews were served within ``replay_lookback_days`` (an ACTIVE promotion);
    then a replay must exist and its window must reach into that span. ``waived``: the approval
    accepts the replay's findings by name (flips, errors); it never stands in for a replay that
    was not run (an approver cannot accept flips nobody has seen).
    """
    start = now - timedelta(days=policy.replay_lookback_days)
    if report is None:
        if required:
            return [
                f"no replay of the reviews served in the last {policy.replay_lookback_days:g} "
                "days (run lanes replay --artifact ...)"
            ]
        return []
    out: list[str] = []
    if required and _aware(report.until) <= start:
        out.append(
            f"replay window ended {_aware(report.until).isoformat()}, before the last "
            f"{policy.replay_lookback_days:g} days in which reviews were served"
        )
    if waived:
        return out
    if report.errors:
        out.append(f"replay could not re-decide {report.errors} recorded request(s)")
    if report.reject_to_submit_share > policy.replay_max_reject_to_submit:
        out.append(
            f"replay: {report.reject_to_submit} of {report.n} recorded orders the served arm "
            f"rejected would be submitted (share {report.reject_to_submit_share:.4f} > "
            f"replay_max_reject_to_submit {policy.replay_max_reject_to_submit}); "
            f"waive '{REPLAY_WAIVER}' by name in the approval to accept them"
        )
    return out


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
