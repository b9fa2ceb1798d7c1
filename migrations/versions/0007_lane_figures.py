"""Lane runs and promotion-gate results, so their figures outlive the lane's process.

Registry state changes are not duplicated here: ``artifact_events`` already holds one row per
transition (CLI, admin API, controller, bootstrap), and ``/metrics`` counts those.

Revision ID: 0007_lane_figures
Revises: 0005_rollout
Create Date: 2026-12-02
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007_lane_figures"
down_revision: str | None = "0005_rollout"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_TS = sa.DateTime(timezone=True)
_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "lane_runs",
        sa.Column("id", _ID, primary_key=True, autoincrement=True),
        sa.Column("lane", sa.String(32), nullable=False),
        sa.Column("outcome", sa.String(16), nullable=False),
        sa.Column("artifact_hash", sa.String(64)),
        sa.Column("actor", sa.String(128), nullable=False),
        sa.Column("error", sa.String(128)),
        sa.Column("started_at", _TS, nullable=False),
        sa.Column("finished_at", _TS, nullable=False),
        sa.Column("duration_seconds", sa.Float(), nullable=False),
    )
    op.create_index("ix_lane_runs_lane_outcome", "lane_runs", ["lane", "outcome"])
    op.create_index("ix_lane_runs_finished", "lane_runs", ["finished_at"])
    op.create_table(
        "lane_gate_results",
        sa.Column("id", _ID, primary_key=True, autoincrement=True),
        sa.Column("run_id", sa.BigInteger(), sa.ForeignKey("lane_runs.id"), nullable=False),
        sa.Column("artifact_hash", sa.String(64)),
        sa.Column("model_type", sa.String(32), nullable=False),
        sa.Column("pack", sa.String(32), nullable=False),
        sa.Column("passed", sa.Boolean(), nullable=False),
        sa.Column("created_at", _TS, nullable=False),
    )
    op.create_index(
        "ix_lane_gate_results_type_pack", "lane_gate_results", ["model_type", "pack", "passed"]
    )
    op.create_index("ix_lane_gate_results_run", "lane_gate_results", ["run_id"])


def downgrade() -> None:
    op.drop_index("ix_lane_gate_results_run", "lane_gate_results")
    op.drop_index("ix_lane_gate_results_type_pack", "lane_gate_results")
    op.drop_table("lane_gate_results")
    op.drop_index("ix_lane_runs_finished", "lane_runs")
    op.drop_index("ix_lane_runs_lane_outcome", "lane_runs")
    op.drop_table("lane_runs")
