"""Artifact evidence, review outcomes, lane outputs; event lookup index for rollback.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-22
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_BIGID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
_TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "artifact_evidence",
        sa.Column("id", _BIGID, primary_key=True, autoincrement=True),
        sa.Column(
            "artifact_hash",
            sa.String(64),
            sa.ForeignKey("llm_dspy_workflow_artifacts.artifact_hash"),
            nullable=False,
        ),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("evidence_hash", sa.String(64), nullable=False),
        sa.Column("payload", sa.JSON(), nullable=False),
        sa.Column("actor", sa.String(128), nullable=False),
        sa.Column("created_at", _TS, nullable=False),
    )
    op.create_index(
        "ix_evidence_artifact_kind", "artifact_evidence", ["artifact_hash", "kind", "id"]
    )
    op.create_table(
        "review_outcomes",
        sa.Column("id", _BIGID, primary_key=True, autoincrement=True),
        sa.Column(
            "review_id",
            sa.String(36),
            sa.ForeignKey("llm_decision_reviews.review_id"),
            nullable=False,
        ),
        sa.Column("horizon_seconds", sa.Integer(), nullable=False),
        sa.Column("filled", sa.Boolean(), nullable=False),
        sa.Column("fill_price", sa.Float()),
        sa.Column("fill_qty", sa.Float()),
        sa.Column("realized_pnl", sa.Float()),
        sa.Column("payload", sa.JSON(), nullable=False),
        sa.Column("created_at", _TS, nullable=False),
    )
    op.create_index(
        "uq_outcome_review_horizon",
        "review_outcomes",
        ["review_id", "horizon_seconds"],
        unique=True,
    )
    op.create_table(
        "lane_outputs",
        sa.Column("id", _BIGID, primary_key=True, autoincrement=True),
        sa.Column("lane", sa.String(32), nullable=False),
        sa.Column("output_hash", sa.String(64), nullable=False),
        sa.Column("artifact_hash", sa.String(64)),
        sa.Column("config", sa.JSON(), nullable=False),
        sa.Column("payload", sa.JSON(), nullable=False),
        sa.Column("actor", sa.String(128), nullable=False),
        sa.Column("created_at", _TS, nullable=False),
    )
    op.create_index("ix_lane_outputs_lane_hash", "lane_outputs", ["lane", "output_hash"])
    op.create_index(
        "ix_artifact_events_program_transition",
        "artifact_events",
        ["program_name", "from_state", "to_state", "id"],
    )


def downgrade() -> None:
    op.drop_index("ix_artifact_events_program_transition", "artifact_events")
    op.drop_table("lane_outputs")
    op.drop_table("review_outcomes")
    op.drop_table("artifact_evidence")
