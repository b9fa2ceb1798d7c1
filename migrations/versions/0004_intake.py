"""Intake: order reservations on review rows; idempotency key namespaces.

- ``llm_decision_reviews.reserved_qty``: the signed quantity a ``submit`` reserves (text, an
  exact decimal; NULL for rejects and for rows older than this migration). The write-time
  re-check sums it per (strategy, symbol) within the reservation TTL.
- Idempotency keys are stored in two namespaces: ``k:<Idempotency-Key header>`` and
  ``h:<request hash>`` (the default key), so an explicit key can never collide with another
  request's default one. Existing rows are rewritten: a key equal to its row's request hash
  was a default key (``h:``), any other an explicit one (``k:``). The column is widened on
  PostgreSQL for the prefix (SQLite does not enforce VARCHAR lengths).

Revision ID: 0004_intake
Revises: 0004_registry
Create Date: 2026-12-01
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004_intake"
down_revision: str | None = "0004_registry"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("llm_decision_reviews", sa.Column("reserved_qty", sa.String(64)))
    if op.get_bind().dialect.name == "postgresql":
        op.alter_column(
            "llm_decision_reviews",
            "idempotency_key",
            type_=sa.String(256),
            existing_type=sa.String(200),
            existing_nullable=False,
        )
    op.execute(
        "UPDATE llm_decision_reviews SET idempotency_key = CASE "
        "WHEN idempotency_key = request_hash THEN 'h:' || idempotency_key "
        "ELSE 'k:' || idempotency_key END"
    )


def downgrade() -> None:
    # Fails loudly (unique index) if an explicit key and a default key now share a suffix:
    # exactly the collision the namespaces exist to prevent.
    op.execute(
        "UPDATE llm_decision_reviews SET idempotency_key = substr(idempotency_key, 3) "
        "WHERE idempotency_key LIKE 'k:%' OR idempotency_key LIKE 'h:%'"
    )
    if op.get_bind().dialect.name == "postgresql":
        op.alter_column(
            "llm_decision_reviews",
            "idempotency_key",
            type_=sa.String(200),
            existing_type=sa.String(256),
            existing_nullable=False,
        )
    op.drop_column("llm_decision_reviews", "reserved_qty")
