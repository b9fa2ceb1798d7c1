"""Tables. The schema itself is created by Alembic migrations, never by ``create_all``."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


class Base(DeclarativeBase):
    pass


# BigInteger ids autoincrement on PostgreSQL; SQLite needs INTEGER PRIMARY KEY for rowid.
BigId = BigInteger().with_variant(Integer(), "sqlite")


class ReviewRow(Base):
    """One row per answered review: the audit trail of every decision."""

    __tablename__ = "llm_decision_reviews"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    review_id: Mapped[str] = mapped_column(String(36), unique=True, nullable=False)
    # Namespaced: ``k:<Idempotency-Key>`` or ``h:<request hash>`` (migration 0004_intake).
    idempotency_key: Mapped[str] = mapped_column(String(256), unique=True, nullable=False)
    request_hash: Mapped[str] = mapped_column(String(64), nullable=False)
    request_json: Mapped[dict[str, Any]] = mapped_column(JSON, nullable=False)
    strategy_id: Mapped[str] = mapped_column(String(128), nullable=False)
    symbol: Mapped[str] = mapped_column(String(32), nullable=False)
    action: Mapped[str] = mapped_column(String(8), nullable=False)
    verdict: Mapped[str] = mapped_column(String(16), nullable=False)
    decision: Mapped[str] = mapped_column(String(8), nullable=False)
    review_json: Mapped[dict[str, Any]] = mapped_column(JSON, nullable=False)
    gates_json: Mapped[list[dict[str, Any]]] = mapped_column(JSON, nullable=False)
    failed_gates: Mapped[str] = mapped_column(String(1000), nullable=False, default="")
    response_json: Mapped[dict[str, Any]] = mapped_column(JSON, nullable=False)
    artifact_hash: Mapped[str] = mapped_column(String(64), nullable=False)
    executor: Mapped[str] = mapped_column(String(32), nullable=False)
    model: Mapped[str | None] = mapped_column(String(128))
    arm: Mapped[str] = mapped_column(String(16), nullable=False)
    fallback_reason: Mapped[str | None] = mapped_column(String(32))
    policy_hash: Mapped[str] = mapped_column(String(64), nullable=False)
    trading_mode: Mapped[str] = mapped_column(String(8), nullable=False)
    llm_latency_ms: Mapped[float | None] = mapped_column(Float)
    overhead_ms: Mapped[float] = mapped_column(Float, nullable=False)
    total_latency_ms: Mapped[float] = mapped_column(Float, nullable=False)
    prompt_tokens: Mapped[int | None] = mapped_column(Integer)
    completion_tokens: Mapped[int | None] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)
    # --- intake (0004_intake): the signed quantity a submit reserves (exact decimal text;
    # NULL for rejects). Summed per (strategy, symbol) within the reservation TTL at write time.
    reserved_qty: Mapped[str | None] = mapped_column(String(64))

    __table_args__ = (
        Index("ix_reviews_created_at", "created_at"),
        Index("ix_reviews_artifact_created", "artifact_hash", "created_at"),
        Index("ix_reviews_strategy_created", "strategy_id", "created_at"),
        # Covering: the rollout controller's arm figures read only the index (0008).
        Index(
            "ix_reviews_arm_window",
            "artifact_hash",
            "arm",
            "created_at",
            "fallback_reason",
            "verdict",
            "total_latency_ms",
            "prompt_tokens",
            "completion_tokens",
        ),
    )


class ArtifactRow(Base):
    """Artifact registry: one row per artifact hash."""

    __tablename__ = "llm_dspy_workflow_artifacts"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    artifact_hash: Mapped[str] = mapped_column(String(64), unique=True, nullable=False)
    program_name: Mapped[str] = mapped_column(String(128), nullable=False)
    signature_version: Mapped[str] = mapped_column(String(64), nullable=False)
    executor: Mapped[str] = mapped_column(String(32), nullable=False)
    state: Mapped[str] = mapped_column(String(16), nullable=False)
    manifest: Mapped[dict[str, Any]] = mapped_column(JSON, nullable=False)
    program_state: Mapped[dict[str, Any]] = mapped_column(JSON, nullable=False)
    lineage: Mapped[dict[str, Any]] = mapped_column(JSON, nullable=False, default=dict)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)

    __table_args__ = (
        # The database, not only code, keeps one active/canary/shadow artifact per program.
        Index(
            "uq_artifact_one_live_state",
            "program_name",
            "state",
            unique=True,
            postgresql_where=text("state IN ('active', 'canary', 'shadow')"),
            sqlite_where=text("state IN ('active', 'canary', 'shadow')"),
        ),
        Index("ix_artifacts_program_state", "program_name", "state"),
    )


class ArtifactEventRow(Base):
    """Append-only history of registry transitions."""

    __tablename__ = "artifact_events"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    artifact_hash: Mapped[str] = mapped_column(
        String(64), ForeignKey("llm_dspy_workflow_artifacts.artifact_hash"), nullable=False
    )
    program_name: Mapped[str] = mapped_column(String(128), nullable=False)
    actor: Mapped[str] = mapped_column(String(128), nullable=False)
    from_state: Mapped[str | None] = mapped_column(String(16))
    to_state: Mapped[str] = mapped_column(String(16), nullable=False)
    reason: Mapped[str] = mapped_column(Text, nullable=False, default="")
    evidence_hash: Mapped[str | None] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)
    # How the move was asked for (``registry.states.Route``); NULL on rows older than 0004.
    route: Mapped[str | None] = mapped_column(String(16))

    __table_args__ = (
        Index("ix_artifact_events_hash", "artifact_hash", "id"),
        Index(
            "ix_artifact_events_program_transition", "program_name", "from_state", "to_state", "id"
        ),
    )


class ServiceControlsRow(Base):
    """Operator controls shared by every replica (a single versioned row, id = 1)."""

    __tablename__ = "service_controls"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    trading_state: Mapped[str] = mapped_column(String(16), nullable=False)
    dspy_disabled: Mapped[bool] = mapped_column(Boolean, nullable=False)
    routing_disabled: Mapped[bool] = mapped_column(Boolean, nullable=False)
    version: Mapped[int] = mapped_column(Integer, nullable=False)
    updated_by: Mapped[str] = mapped_column(String(128), nullable=False)
    reason: Mapped[str] = mapped_column(Text, nullable=False, default="")
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)


class ArtifactEvidenceRow(Base):
    """Evidence attached to an artifact: scorecards, approvals, denials (append-only)."""

    __tablename__ = "artifact_evidence"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    artifact_hash: Mapped[str] = mapped_column(
        String(64), ForeignKey("llm_dspy_workflow_artifacts.artifact_hash"), nullable=False
    )
    kind: Mapped[str] = mapped_column(String(32), nullable=False)
    evidence_hash: Mapped[str] = mapped_column(String(64), nullable=False)
    payload: Mapped[dict[str, Any]] = mapped_column(JSON, nullable=False)
    actor: Mapped[str] = mapped_column(String(128), nullable=False)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)

    __table_args__ = (Index("ix_evidence_artifact_kind", "artifact_hash", "kind", "id"),)


class ReviewOutcomeRow(Base):
    """What happened to a reviewed order (fill, realized P&L over a horizon)."""

    __tablename__ = "review_outcomes"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    review_id: Mapped[str] = mapped_column(
        String(36), ForeignKey("llm_decision_reviews.review_id"), nullable=False
    )
    horizon_seconds: Mapped[int] = mapped_column(Integer, nullable=False)
    filled: Mapped[bool] = mapped_column(Boolean, nullable=False)
    fill_price: Mapped[float | None] = mapped_column(Float)
    fill_qty: Mapped[float | None] = mapped_column(Float)
    realized_pnl: Mapped[float | None] = mapped_column(Float)
    payload: Mapped[dict[str, Any]] = mapped_column(JSON, nullable=False)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)

    __table_args__ = (
        Index("uq_outcome_review_horizon", "review_id", "horizon_seconds", unique=True),
    )


class LaneOutputRow(Base):
    """A lane run's hashed, reproducible output (dataset, compile, eval)."""

    __tablename__ = "lane_outputs"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    lane: Mapped[str] = mapped_column(String(32), nullable=False)
    output_hash: Mapped[str] = mapped_column(String(64), nullable=False)
    artifact_hash: Mapped[str | None] = mapped_column(String(64))
    config: Mapped[dict[str, Any]] = mapped_column(JSON, nullable=False)
    payload: Mapped[dict[str, Any]] = mapped_column(JSON, nullable=False)
    actor: Mapped[str] = mapped_column(String(128), nullable=False)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)

    __table_args__ = (Index("ix_lane_outputs_lane_hash", "lane", "output_hash"),)


# --- lane figures (migration 0007_lane_figures): what /metrics counts for lanes run elsewhere --


class LaneRunRow(Base):
    """One lane run (CLI, CronJob or admin API), written when it ends (append-only)."""

    __tablename__ = "lane_runs"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    lane: Mapped[str] = mapped_column(String(32), nullable=False)  # app.lanes.service.Lane
    outcome: Mapped[str] = mapped_column(String(16), nullable=False)  # ok | denied | error
    artifact_hash: Mapped[str | None] = mapped_column(String(64))
    actor: Mapped[str] = mapped_column(String(128), nullable=False)
    error: Mapped[str | None] = mapped_column(String(128))  # the exception's type name
    started_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)
    finished_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)
    duration_seconds: Mapped[float] = mapped_column(Float, nullable=False)

    __table_args__ = (
        Index("ix_lane_runs_lane_outcome", "lane", "outcome"),
        Index("ix_lane_runs_finished", "finished_at"),
    )


class LaneGateResultRow(Base):
    """One promotion check ("pack") of one eval run's scorecard, passed or failed."""

    __tablename__ = "lane_gate_results"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    run_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("lane_runs.id"), nullable=False)
    artifact_hash: Mapped[str | None] = mapped_column(String(64))
    model_type: Mapped[str] = mapped_column(String(32), nullable=False)
    pack: Mapped[str] = mapped_column(String(32), nullable=False)
    passed: Mapped[bool] = mapped_column(Boolean, nullable=False)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)

    __table_args__ = (
        Index("ix_lane_gate_results_type_pack", "model_type", "pack", "passed"),
        Index("ix_lane_gate_results_run", "run_id"),
    )


class ServiceLeaseRow(Base):
    """Database leases for singleton work (one replica at a time); see ``app/leases``."""

    __tablename__ = "service_leases"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    holder: Mapped[str] = mapped_column(String(200), nullable=False)
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)
    renewed_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)
    epoch: Mapped[int] = mapped_column(BigInteger, nullable=False)


# --- rollout: canary records, their decisions (see ``app/rollout``) ---------------------------


class RolloutRow(Base):
    """One progressive rollout of a candidate against a baseline (at most one open per program)."""

    __tablename__ = "rollouts"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    program_name: Mapped[str] = mapped_column(String(128), nullable=False)
    candidate_hash: Mapped[str] = mapped_column(
        String(64), ForeignKey("llm_dspy_workflow_artifacts.artifact_hash"), nullable=False
    )
    baseline_hash: Mapped[str] = mapped_column(String(64), nullable=False)
    steps: Mapped[list[float]] = mapped_column(JSON, nullable=False)
    step_index: Mapped[int] = mapped_column(Integer, nullable=False)
    weight_pct: Mapped[float] = mapped_column(Float, nullable=False)
    window_seconds: Mapped[float] = mapped_column(Float, nullable=False)
    min_samples: Mapped[int] = mapped_column(Integer, nullable=False)
    thresholds: Mapped[dict[str, Any]] = mapped_column(JSON, nullable=False)
    salt: Mapped[str] = mapped_column(String(64), nullable=False)
    state: Mapped[str] = mapped_column(String(16), nullable=False)
    created_by: Mapped[str] = mapped_column(String(128), nullable=False)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)
    window_started_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)
    ended_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))

    __table_args__ = (
        Index(
            "uq_rollout_one_open",
            "program_name",
            unique=True,
            postgresql_where=text("state IN ('running', 'paused')"),
            sqlite_where=text("state IN ('running', 'paused')"),
        ),
        Index("ix_rollouts_program_state", "program_name", "state"),
    )


class RolloutEventRow(Base):
    """Every rollout decision with the figures that made it (append-only). ``rollout_id`` is
    empty for post-promotion watch decisions, which concern an ACTIVE artifact."""

    __tablename__ = "rollout_events"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    rollout_id: Mapped[int | None] = mapped_column(BigInteger, ForeignKey("rollouts.id"))
    program_name: Mapped[str] = mapped_column(String(128), nullable=False)
    artifact_hash: Mapped[str] = mapped_column(String(64), nullable=False)
    decision: Mapped[str] = mapped_column(String(16), nullable=False)
    actor: Mapped[str] = mapped_column(String(128), nullable=False)
    reasons: Mapped[list[str]] = mapped_column(JSON, nullable=False)
    figures: Mapped[dict[str, Any]] = mapped_column(JSON, nullable=False)
    weight_pct: Mapped[float] = mapped_column(Float, nullable=False)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)

    __table_args__ = (
        Index("ix_rollout_events_rollout", "rollout_id", "id"),
        Index("ix_rollout_events_artifact", "artifact_hash", "decision"),
    )


class ShadowReviewRow(Base):
    """What the SHADOW artifact would have answered for a served review (never served)."""

    __tablename__ = "shadow_reviews"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    served_review_id: Mapped[str] = mapped_column(String(36), nullable=False)
    artifact_hash: Mapped[str] = mapped_column(String(64), nullable=False)
    served_artifact_hash: Mapped[str] = mapped_column(String(64), nullable=False)
    verdict: Mapped[str] = mapped_column(String(16), nullable=False)
    decision: Mapped[str] = mapped_column(String(8), nullable=False)
    served_decision: Mapped[str] = mapped_column(String(8), nullable=False)
    agrees: Mapped[bool] = mapped_column(Boolean, nullable=False)
    reasons: Mapped[list[str]] = mapped_column(JSON, nullable=False)
    executor: Mapped[str] = mapped_column(String(32), nullable=False)
    fallback_reason: Mapped[str | None] = mapped_column(String(32))
    llm_latency_ms: Mapped[float | None] = mapped_column(Float)
    served_llm_latency_ms: Mapped[float | None] = mapped_column(Float)
    prompt_tokens: Mapped[int | None] = mapped_column(Integer)
    completion_tokens: Mapped[int | None] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)

    __table_args__ = (Index("ix_shadow_reviews_artifact_created", "artifact_hash", "created_at"),)


# --- registry integrity + control audit (migration 0004_registry) ----------------------------


class ControlEventRow(Base):
    """Append-only history of operator control changes (written with the controls row)."""

    __tablename__ = "control_events"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    version: Mapped[int] = mapped_column(Integer, nullable=False)  # controls version after
    actor: Mapped[str] = mapped_column(String(128), nullable=False)
    reason: Mapped[str] = mapped_column(Text, nullable=False, default="")
    before: Mapped[dict[str, Any] | None] = mapped_column(JSON)  # None: the row was created
    after: Mapped[dict[str, Any]] = mapped_column(JSON, nullable=False)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)

    __table_args__ = (Index("ix_control_events_created", "created_at", "id"),)


# --- drift monitoring (app/drift) -----------------------------------------------------------


class DriftReferenceRow(Base):
    """The frozen baseline of one artifact: written once, never updated."""

    __tablename__ = "drift_references"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    artifact_hash: Mapped[str] = mapped_column(String(64), unique=True, nullable=False)
    program_name: Mapped[str] = mapped_column(String(128), nullable=False)
    source: Mapped[str] = mapped_column(String(16), nullable=False)  # served | eval_split
    n: Mapped[int] = mapped_column(Integer, nullable=False)
    first_review_id: Mapped[int | None] = mapped_column(BigInteger)
    last_review_id: Mapped[int | None] = mapped_column(BigInteger)
    window_start: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    window_end: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    sample: Mapped[dict[str, Any]] = mapped_column(JSON, nullable=False)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)


class ModelDriftRow(Base):
    """One metric of one drift run (append-only)."""

    __tablename__ = "model_drift"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    run_id: Mapped[str] = mapped_column(String(36), nullable=False)
    artifact_hash: Mapped[str] = mapped_column(String(64), nullable=False)
    program_name: Mapped[str] = mapped_column(String(128), nullable=False)
    model_type: Mapped[str] = mapped_column(String(32), nullable=False)
    family: Mapped[str] = mapped_column(String(16), nullable=False)
    metric: Mapped[str] = mapped_column(String(64), nullable=False)
    test: Mapped[str] = mapped_column(String(16), nullable=False)
    statistic: Mapped[float] = mapped_column(Float, nullable=False)
    effect: Mapped[float] = mapped_column(Float, nullable=False)
    threshold: Mapped[float] = mapped_column(Float, nullable=False)
    p_value: Mapped[float | None] = mapped_column(Float)
    level: Mapped[float | None] = mapped_column(Float)
    n: Mapped[int] = mapped_column(Integer, nullable=False)
    m: Mapped[int] = mapped_column(Integer, nullable=False)
    breach: Mapped[bool] = mapped_column(Boolean, nullable=False)
    severity: Mapped[str] = mapped_column(String(16), nullable=False)
    reference_id: Mapped[int] = mapped_column(BigInteger, nullable=False)
    window_start: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    window_end: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    detail: Mapped[dict[str, Any]] = mapped_column(JSON, nullable=False)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)

    __table_args__ = (
        Index("ix_model_drift_artifact_metric", "artifact_hash", "metric", "id"),
        Index("ix_model_drift_program_breach", "program_name", "breach", "id"),
        Index("ix_model_drift_run", "run_id"),
    )


class DriftAcknowledgementRow(Base):
    """An operator acknowledged every drift breach of a program up to ``through_id``."""

    __tablename__ = "drift_acknowledgements"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    program_name: Mapped[str] = mapped_column(String(128), nullable=False)
    through_id: Mapped[int] = mapped_column(BigInteger, nullable=False)
    actor: Mapped[str] = mapped_column(String(128), nullable=False)
    reason: Mapped[str] = mapped_column(Text, nullable=False)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)

    __table_args__ = (Index("ix_drift_acks_program", "program_name", "id"),)
