"""The hot-path precheck on the driver answers exactly what the SQLAlchemy statement answers
(keys already reviewed; submits per strategy since the window start), on SQLite and
PostgreSQL, including rows right at the window's edge."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import create_async_engine

from app.db.session import core_transaction, driver_read
from app.reviews import repository
from tests.conftest import truncate

NOW = datetime(2026, 12, 1, 10, 0, 0, 123456, tzinfo=UTC)


def _row(key: str, strategy: str, decision: str, at: datetime) -> dict[str, Any]:
    return {
        "review_id": str(uuid.uuid4()),
        "idempotency_key": key,
        "request_hash": "0" * 64,
        "request_json": {},
        "strategy_id": strategy,
        "symbol": "AAPL",
        "action": "buy",
        "verdict": "approve",
        "decision": decision,
        "review_json": {},
        "gates_json": [],
        "failed_gates": "",
        "response_json": {},
        "artifact_hash": "a" * 64,
        "executor": "heuristic",
        "model": None,
        "arm": "active",
        "fallback_reason": None,
        "policy_hash": "p" * 64,
        "trading_mode": "paper",
        "llm_latency_ms": None,
        "overhead_ms": 1.0,
        "total_latency_ms": 1.0,
        "prompt_tokens": None,
        "completion_tokens": None,
        "created_at": at,
    }


@pytest.mark.parametrize(
    ("keys", "strategies", "window_s"),
    [
        (["k1"], ["s1"], 60),
        (["k1", "k2", "nope"], ["s1", "s2", "s3"], 60),
        (["k3"], ["s1"], 30),  # a row exactly at the window start counts (>=)
        (["k1"], ["s1"], 5),
    ],
)
async def test_driver_precheck_when_compared_then_same_answer_as_sqlalchemy(
    database_url: str, keys: list[str], strategies: list[str], window_s: int
) -> None:
    await truncate(database_url)
    engine = create_async_engine(database_url)
    try:
        rows = [
            _row("k1", "s1", "submit", NOW - timedelta(seconds=10)),
            _row("k2", "s1", "submit", NOW - timedelta(seconds=30)),
            _row("k3", "s1", "reject", NOW - timedelta(seconds=1)),
            _row("k4", "s2", "submit", NOW - timedelta(seconds=90)),
            _row("k5", "s2", "submit", NOW - timedelta(seconds=2)),
        ]
        async with core_transaction(engine) as conn:
            await repository.add_many(conn, rows)
        since = NOW - timedelta(seconds=window_s)
        async with driver_read(engine) as conn:
            got = await repository.precheck_many_driver(conn, keys, strategies, since)
        async with engine.connect() as conn:
            want = await repository.precheck_many(conn, keys, strategies, since)
        assert got == want
        if window_s == 30:
            assert got[1] == {"s1": 2}  # k2 sits exactly on the window start
    finally:
        await engine.dispose()


async def test_driver_precheck_when_statement_fails_then_dbapi_error_and_pool_recovers(
    database_url: str,
) -> None:
    engine = create_async_engine(database_url)
    try:
        async with driver_read(engine) as conn:
            raw = await conn.get_raw_connection()
            await raw.driver_connection.close()  # the connection dies under us
            with pytest.raises(DBAPIError):
                await repository.precheck_many_driver(conn, ["k"], ["s"], NOW)
        async with driver_read(engine) as conn:  # a fresh connection answers
            assert await repository.precheck_many_driver(conn, ["k"], ["s"], NOW) == (set(), {})
    finally:
        await engine.dispose()
