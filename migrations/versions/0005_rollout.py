"""Rollouts (canary records), their decision events, and shadow reviews.

Revision ID: 0005_rollout
Revises: 0006_drift
Create Date: 2026-12-01
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005_rollout"
down_revision: str | None = "0006_drift"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_TS = sa.DateTime(timezone=True)
_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "rollouts",
        sa.Column("id", _ID, primary_key=True, autoincrement=True),
        sa.Column("program_name", sa.String(128), nullable=False),
        sa.Column(
            "candidate_hash",
            sa.String(64),
            sa.ForeignKey("llm_dspy_workflow_artifacts.artifact_hash"),
            nullable=False,
        ),
        sa.Column("baseline_hash", sa.String(64), nullable=False),
        sa.Column("steps", sa.JSON(), nullable=False),
        sa.Column("step_index", sa.Integer(), nullable=False),
        sa.Column("weight_pct", sa.Float(), nullable=False),
        sa.Column("window_seconds", sa.Float(), nullable=False),
        sa.Column("min_samples", sa.Integer(), nullable=False),
        sa.Column("thresholds", sa.JSON(), nullable=False),
        sa.Column("salt", sa.String(64), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("created_by", sa.String(128), nullable=False),
        sa.Column("created_at", _TS, nullable=False),
        sa.Column("updated_at", _TS, nullable=False),
        sa.Column("window_started_at", _TS, nullable=False),
        sa.Column("ended_at", _TS),
    )
    op.create_index(
        "uq_rollout_one_open",
        "rollouts",
        ["program_name"],
        unique=True,
        postgresql_where=sa.text("state IN ('running', 'paused')"),
        sqlite_where=sa.text("state IN ('running', 'paused')"),
    )
    op.create_index("ix_rollouts_program_state", "rollouts", ["program_name", "state"])
    op.create_table(
        "rollout_events",
        sa.Column("id", _ID, primary_key=True, autoincrement=True),
        sa.Column("rollout_id", sa.BigInteger(), sa.ForeignKey("rollouts.id")),
        sa.Column("program_name", sa.String(128), nullable=False),
        sa.Column("artifact_hash", sa.String(64), nullable=False),
        sa.Column("decision", sa.String(16), nullable=False),
        sa.Column("actor", sa.String(128), nullable=False),
        sa.Column("reasons", sa.JSON(), nullable=False),
        sa.Column("figures", sa.JSON(), nullable=False),
        sa.Column("weight_pct", sa.Float(), nullable=False),
        sa.Column("created_at", _TS, nullable=False),
    )
    op.create_index("ix_rollout_events_rollout", "rollout_events", ["rollout_id", "id"])
    op.create_index("ix_rollout_events_artifact", "rollout_events", ["artifact_hash", "decision"])
    op.create_table(
        "shadow_reviews",
        sa.Column("id", _ID, primary_key=True, autoincrement=True),
        sa.Column("served_review_id", sa.String(36), nullable=False),
        sa.Column("artifact_hash", sa.String(64), nullable=False),
        sa.Column("served_artifact_hash", sa.String(64), nullable=False),
        sa.Column("verdict", sa.String(16), nullable=False),
        sa.Column("decision", sa.String(8), nullable=False),
        sa.Column("served_decision", sa.String(8), nullable=False),
        sa.Column("agrees", sa.Boolean(), nullable=False),
        sa.Column("reasons", sa.JSON(), nullable=False),
        sa.Column("executor", sa.String(32), nullable=False),
        sa.Column("fallback_reason", sa.String(32)),
        sa.Column("llm_latency_ms", sa.Float()),
        sa.Column("served_llm_latency_ms", sa.Float()),
        sa.Column("prompt_tokens", sa.Integer()),
        sa.Column("completion_tokens", sa.Integer()),
        sa.Column("created_at", _TS, nullable=False),
    )
    op.create_index(
        "ix_shadow_reviews_artifact_created", "shadow_reviews", ["artifact_hash", "created_at"]
    )


def downgrade() -> None:
    op.drop_table("shadow_reviews")
    op.drop_table("rollout_events")
    op.drop_table("rollouts")
