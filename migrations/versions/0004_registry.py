"""Registry integrity and control audit: the route of every artifact event, the append-only
control history, and database triggers that refuse edits to either history.

Revision ID: 0004_registry
Revises: 0003
Create Date: 2026-12-01
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004_registry"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_BIGID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
_TS = sa.DateTime(timezone=True)
_APPEND_ONLY = ("artifact_events", "control_events")

# Older events get the route their reason and shape imply (first match wins, in this order).
_BACKFILL = (
    ("register", "route IS NULL AND from_state IS NULL"),
    ("bootstrap", "route IS NULL AND actor = 'system:bootstrap'"),
    (
        "rollback",
        "route IS NULL AND from_state = 'retired' AND to_state = 'active' "
        "AND reason LIKE 'rollback%'",
    ),
    # The artifact a rollback replaced: its retirement shares the rollback's unit and time.
    (
        "rollback",
        "route IS NULL AND from_state = 'active' AND to_state = 'retired' AND EXISTS ("
        "SELECT 1 FROM artifact_events r WHERE r.program_name = artifact_events.program_name "
        "AND r.created_at = artifact_events.created_at AND r.route = 'rollback' "
        "AND r.to_state = 'active')",
    ),
    ("supersede", "route IS NULL AND from_state = 'active' AND reason LIKE 'superseded by%'"),
    ("retire", "route IS NULL AND to_state = 'retired'"),
    ("promote", "route IS NULL"),
)


def upgrade() -> None:
    op.add_column("artifact_events", sa.Column("route", sa.String(16)))
    for route, where in _BACKFILL:
        op.execute(sa.text(f"UPDATE artifact_events SET route = '{route}' WHERE {where}"))  # noqa: S608
    op.create_table(
        "control_events",
        sa.Column("id", _BIGID, primary_key=True, autoincrement=True),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("actor", sa.String(128), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("before", sa.JSON()),
        sa.Column("after", sa.JSON(), nullable=False),
        sa.Column("created_at", _TS, nullable=False),
    )
    op.create_index("ix_control_events_created", "control_events", ["created_at", "id"])
    # History is never edited: the database refuses UPDATE on both event tables (rows may
    # still be deleted by whoever owns the database, e.g. a test truncating between cases).
    if op.get_bind().dialect.name == "postgresql":
        op.execute(
            "CREATE FUNCTION trade_review_append_only() RETURNS trigger LANGUAGE plpgsql AS "
            "$$ BEGIN RAISE EXCEPTION '% is append-only', TG_TABLE_NAME; END $$"
        )
        for table in _APPEND_ONLY:
            op.execute(
                f"CREATE TRIGGER {table}_append_only BEFORE UPDATE ON {table} "
                "FOR EACH ROW EXECUTE FUNCTION trade_review_append_only()"
            )
    else:
        for table in _APPEND_ONLY:
            op.execute(
                f"CREATE TRIGGER {table}_append_only BEFORE UPDATE ON {table} "
                f"BEGIN SELECT RAISE(ABORT, '{table} is append-only'); END"
            )


def downgrade() -> None:
    postgres = op.get_bind().dialect.name == "postgresql"
    for table in _APPEND_ONLY:
        suffix = f" ON {table}" if postgres else ""
        op.execute(f"DROP TRIGGER IF EXISTS {table}_append_only{suffix}")
    if postgres:
        op.execute("DROP FUNCTION IF EXISTS trade_review_append_only()")
    op.drop_index("ix_control_events_created", "control_events")
    op.drop_table("control_events")
    with op.batch_alter_table("artifact_events") as batch:
        batch.drop_column("route")
