"""Migration 0004_intake on SQLite and PostgreSQL: stored idempotency keys move into their
namespaces (a key equal to its row's request hash was the default key), and it downgrades."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from tests.support import db

_INSERT = text(
    "INSERT INTO llm_decision_reviews (review_id, idempotency_key, request_hash, request_json, "
    "strategy_id, symbol, action, verdict, decision, review_json, gates_json, failed_gates, "
    "response_json, artifact_hash, executor, arm, policy_hash, trading_mode, overhead_ms, "
    "total_latency_ms, created_at) VALUES (:r, :k, :h, '{}', 's', 'AAPL', 'buy', 'approve', "
    "'submit', '{}', '[]', '', '{}', 'x', 'heuristic', 'active', 'p', 'paper', 0, 0, "
    "'2026-11-01 00:00:00')"
)
_KEYS = text("SELECT review_id, idempotency_key FROM llm_decision_reviews ORDER BY review_id")


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


async def _keys(url: str) -> list[tuple[str, str]]:
    engine = create_async_engine(url)
    try:
        async with engine.connect() as conn:
            return [(r[0], r[1]) for r in (await conn.execute(_KEYS)).all()]
    finally:
        await engine.dispose()


async def test_upgrade_when_keys_stored_unprefixed_then_namespaced_and_reversible(
    fresh_url: str,
) -> None:
    db.migrate(fresh_url, "0004_registry")
    engine = create_async_engine(fresh_url)
    try:
        async with engine.begin() as conn:
            await conn.execute(_INSERT, {"r": "r1", "k": "a" * 64, "h": "a" * 64})  # default key
            await conn.execute(_INSERT, {"r": "r2", "k": "my-key", "h": "b" * 64})  # explicit
    finally:
        await engine.dispose()
    db.migrate(fresh_url)
    assert await _keys(fresh_url) == [("r1", "h:" + "a" * 64), ("r2", "k:my-key")]
    db.migrate(fresh_url, "0004_registry", down=True)
    assert await _keys(fresh_url) == [("r1", "a" * 64), ("r2", "my-key")]
