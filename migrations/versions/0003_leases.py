"""Database leases for singleton work (canary controller, drift monitor).

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-01
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "service_leases",
        sa.Column("name", sa.String(64), primary_key=True),
        sa.Column("holder", sa.String(200), nullable=False),
        sa.Column("expires_at", _TS, nullable=False),
        sa.Column("renewed_at", _TS, nullable=False),
        sa.Column("epoch", sa.BigInteger(), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("service_leases")
