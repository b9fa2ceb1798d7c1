"""Drift monitoring: frozen references, per-metric run records, operator acknowledgements.

Revision ID: 0006_drift
Revises: 0004_intake
Create Date: 2026-12-01
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006_drift"
down_revision: str | None = "0004_intake"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_TS = sa.DateTime(timezone=True)
_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "drift_references",
        sa.Column("id", _ID, primary_key=True, autoincrement=True),
        sa.Column("artifact_hash", sa.String(64), nullable=False, unique=True),
        sa.Column("program_name", sa.String(128), nullable=False),
        sa.Column("source", sa.String(16), nullable=False),
        sa.Column("n", sa.Integer(), nullable=False),
        sa.Column("first_review_id", sa.BigInteger()),
        sa.Column("last_review_id", sa.BigInteger()),
        sa.Column("window_start", _TS),
        sa.Column("window_end", _TS),
        sa.Column("sample", sa.JSON(), nullable=False),
        sa.Column("created_at", _TS, nullable=False),
    )
    op.create_table(
        "model_drift",
        sa.Column("id", _ID, primary_key=True, autoincrement=True),
        sa.Column("run_id", sa.String(36), nullable=False),
        sa.Column("artifact_hash", sa.String(64), nullable=False),
        sa.Column("program_name", sa.String(128), nullable=False),
        sa.Column("model_type", sa.String(32), nullable=False),
        sa.Column("family", sa.String(16), nullable=False),
        sa.Column("metric", sa.String(64), nullable=False),
        sa.Column("test", sa.String(16), nullable=False),
        sa.Column("statistic", sa.Float(), nullable=False),
        sa.Column("effect", sa.Float(), nullable=False),
        sa.Column("threshold", sa.Float(), nullable=False),
        sa.Column("p_value", sa.Float()),
        sa.Column("level", sa.Float()),
        sa.Column("n", sa.Integer(), nullable=False),
        sa.Column("m", sa.Integer(), nullable=False),
        sa.Column("breach", sa.Boolean(), nullable=False),
        sa.Column("severity", sa.String(16), nullable=False),
        sa.Column("reference_id", sa.BigInteger(), nullable=False),
        sa.Column("window_start", _TS),
        sa.Column("window_end", _TS),
        sa.Column("detail", sa.JSON(), nullable=False),
        sa.Column("created_at", _TS, nullable=False),
    )
    op.create_index(
        "ix_model_drift_artifact_metric", "model_drift", ["artifact_hash", "metric", "id"]
    )
    op.create_index(
        "ix_model_drift_program_breach", "model_drift", ["program_name", "breach", "id"]
    )
    op.create_index("ix_model_drift_run", "model_drift", ["run_id"])
    op.create_table(
        "drift_acknowledgements",
        sa.Column("id", _ID, primary_key=True, autoincrement=True),
        sa.Column("program_name", sa.String(128), nullable=False),
        sa.Column("through_id", sa.BigInteger(), nullable=False),
        sa.Column("actor", sa.String(128), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("created_at", _TS, nullable=False),
    )
    op.create_index("ix_drift_acks_program", "drift_acknowledgements", ["program_name", "id"])


def downgrade() -> None:
    op.drop_table("drift_acknowledgements")
    op.drop_index("ix_model_drift_run", "model_drift")
    op.drop_index("ix_model_drift_program_breach", "model_drift")
    op.drop_index("ix_model_drift_artifact_metric", "model_drift")
    op.drop_table("model_drift")
    op.drop_table("drift_references")
