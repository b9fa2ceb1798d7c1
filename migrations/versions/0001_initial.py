"""Initial schema: reviews, artifact registry, artifact events, service controls.

Revision ID: 0001
Revises:
Create Date: 2026-11-22
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_BIGID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
_TS = sa.DateTime(timezone=True)
_LIVE_STATES = sa.text("state IN ('active', 'canary', 'shadow')")


def upgrade() -> None:
    op.create_table(
        "llm_decision_reviews",
        sa.Column("id", _BIGID, primary_key=True, autoincrement=True),
        sa.Column("review_id", sa.String(36), nullable=False, unique=True),
        sa.Column("idempotency_key", sa.String(200), nullable=False, unique=True),
        sa.Column("request_hash", sa.String(64), nullable=False),
        sa.Column("request_json", sa.JSON(), nullable=False),
        sa.Column("strategy_id", sa.String(128), nullable=False),
        sa.Column("symbol", sa.String(32), nullable=False),
        sa.Column("action", sa.String(8), nullable=False),
        sa.Column("verdict", sa.String(16), nullable=False),
        sa.Column("decision", sa.String(8), nullable=False),
        sa.Column("review_json", sa.JSON(), nullable=False),
        sa.Column("gates_json", sa.JSON(), nullable=False),
        sa.Column("failed_gates", sa.String(1000), nullable=False),
        sa.Column("response_json", sa.JSON(), nullable=False),
        sa.Column("artifact_hash", sa.String(64), nullable=False),
        sa.Column("executor", sa.String(32), nullable=False),
        sa.Column("model", sa.String(128)),
        sa.Column("arm", sa.String(16), nullable=False),
        sa.Column("fallback_reason", sa.String(32)),
        sa.Column("policy_hash", sa.String(64), nullable=False),
        sa.Column("trading_mode", sa.String(8), nullable=False),
        sa.Column("llm_latency_ms", sa.Float()),
        sa.Column("overhead_ms", sa.Float(), nullable=False),
        sa.Column("total_latency_ms", sa.Float(), nullable=False),
        sa.Column("prompt_tokens", sa.Integer()),
        sa.Column("completion_tokens", sa.Integer()),
        sa.Column("created_at", _TS, nullable=False),
    )
    op.create_index("ix_reviews_created_at", "llm_decision_reviews", ["created_at"])
    op.create_index(
        "ix_reviews_artifact_created", "llm_decision_reviews", ["artifact_hash", "created_at"]
    )
    op.create_index(
        "ix_reviews_strategy_created", "llm_decision_reviews", ["strategy_id", "created_at"]
    )

    op.create_table(
        "llm_dspy_workflow_artifacts",
        sa.Column("id", _BIGID, primary_key=True, autoincrement=True),
        sa.Column("artifact_hash", sa.String(64), nullable=False, unique=True),
        sa.Column("program_name", sa.String(128), nullable=False),
        sa.Column("signature_version", sa.String(64), nullable=False),
        sa.Column("executor", sa.String(32), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("manifest", sa.JSON(), nullable=False),
        sa.Column("program_state", sa.JSON(), nullable=False),
        sa.Column("lineage", sa.JSON(), nullable=False),
        sa.Column("created_at", _TS, nullable=False),
        sa.Column("updated_at", _TS, nullable=False),
    )
    op.create_index(
        "uq_artifact_one_live_state",
        "llm_dspy_workflow_artifacts",
        ["program_name", "state"],
        unique=True,
        postgresql_where=_LIVE_STATES,
        sqlite_where=_LIVE_STATES,
    )
    op.create_index(
        "ix_artifacts_program_state", "llm_dspy_workflow_artifacts", ["program_name", "state"]
    )

    op.create_table(
        "artifact_events",
        sa.Column("id", _BIGID, primary_key=True, autoincrement=True),
        sa.Column(
            "artifact_hash",
            sa.String(64),
            sa.ForeignKey("llm_dspy_workflow_artifacts.artifact_hash"),
            nullable=False,
        ),
        sa.Column("program_name", sa.String(128), nullable=False),
        sa.Column("actor", sa.String(128), nullable=False),
        sa.Column("from_state", sa.String(16)),
        sa.Column("to_state", sa.String(16), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("evidence_hash", sa.String(64)),
        sa.Column("created_at", _TS, nullable=False),
    )
    op.create_index("ix_artifact_events_hash", "artifact_events", ["artifact_hash", "id"])

    op.create_table(
        "service_controls",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("trading_state", sa.String(16), nullable=False),
        sa.Column("dspy_disabled", sa.Boolean(), nullable=False),
        sa.Column("routing_disabled", sa.Boolean(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("updated_by", sa.String(128), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("updated_at", _TS, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("service_controls")
    op.drop_index("ix_artifact_events_hash", "artifact_events")
    op.drop_table("artifact_events")
    op.drop_table("llm_dspy_workflow_artifacts")
    op.drop_table("llm_decision_reviews")
