"""Migration 0004_registry on SQLite and PostgreSQL: older events get the route their shape
implies (so the rollback rule reads old history correctly), and it downgrades cleanly."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from tests.support import db


@pytest.fixture(params=["sqlite", "postgresql"])
def fresh_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite+aiosqlite:///{tmp_path / 'm.db'}"
        return
    if not db.pg_available():
        pytest.skip(f"PostgreSQL not reachable on {db.PG_HOST}:{db.PG_PORT}: case skipped")
    name = db.create_pg_database()
    yield db.pg_url(name)
    db.drop_pg_database(name)


async def test_upgrade_when_history_predates_routes_then_backfilled_and_reversible(
    fresh_url: str,
) -> None:
    db.migrate(fresh_url, "0002")  # history as it was before routes
    t0 = datetime(2026, 11, 1, tzinfo=UTC)
    rollback_at = t0 + timedelta(hours=3)
    events = [  # boot bootstrapped, superseded by "a", then rolled back to
        ("b" * 64, "system:bootstrap", None, "candidate", "registered", t0),
        ("b" * 64, "system:bootstrap", "candidate", "shadow", "bootstrap", t0),
        ("b" * 64, "system:bootstrap", "shadow", "active", "bootstrap", t0),
        ("a" * 64, "ci", None, "candidate", "registered", t0),
        ("a" * 64, "ci", "candidate", "shadow", "promoted to shadow", t0),
        ("b" * 64, "ci", "active", "retired", "superseded by aaaaaaaaaaaa", t0 + timedelta(1)),
        ("a" * 64, "ci", "shadow", "active", "promoted to active", t0 + timedelta(1)),
        ("a" * 64, "ops", "active", "retired", "superseded by bbbbbbbbbbbb", rollback_at),
        ("b" * 64, "ops", "retired", "active", "rollback: bad", rollback_at),
        ("c" * 64, "ci", None, "candidate", "registered", t0),
        ("c" * 64, "ci", "candidate", "retired", "", t0),
    ]
    engine = create_async_engine(fresh_url)
    try:
        async with engine.begin() as conn:
            for digest, state in (
                ("a" * 64, "retired"),
                ("b" * 64, "active"),
                ("c" * 64, "retired"),
            ):
                await conn.execute(
                    text(
                        "INSERT INTO llm_dspy_workflow_artifacts (artifact_hash, program_name, "
                        "signature_version, executor, state, manifest, program_state, lineage, "
                        "created_at, updated_at) VALUES (:h, 'p', 'v1', 'heuristic', :s, '{}', "
                        "'{}', '{}', :t, :t)"
                    ),
                    {"h": digest, "s": state, "t": t0},
                )
            for digest, actor, f, to, reason, at in events:
                await conn.execute(
                    text(
                        "INSERT INTO artifact_events (artifact_hash, program_name, actor, "
                        "from_state, to_state, reason, created_at) "
                        "VALUES (:h, 'p', :a, :f, :t, :r, :at)"
                    ),
                    {"h": digest, "a": actor, "f": f, "t": to, "r": reason, "at": at},
                )
    finally:
        await engine.dispose()

    db.migrate(fresh_url)
    engine = create_async_engine(fresh_url)
    try:
        async with engine.connect() as conn:
            routes = [
                r
                for (r,) in await conn.execute(
                    text("SELECT route FROM artifact_events ORDER BY id")
                )
            ]
    finally:
        await engine.dispose()
    assert routes == [
        "register", "bootstrap", "bootstrap",
        "register", "promote",
        "supersede", "promote",
        "rollback", "rollback",  # the artifact a rollback replaced: rolled back from
        "register", "retire",
    ]  # fmt: skip
    db.migrate(fresh_url, "0003", down=True)
    db.migrate(fresh_url)
