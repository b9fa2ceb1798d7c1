"""The controller's arm figures are counted by the database (``repository.arm_figures``), not
by loading every review of the window into Python. They must equal the pure definition
(``ArmFigures.of`` over the same reviews) on SQLite and PostgreSQL: rows of other artifacts,
other arms and outside ``[start, end)`` excluded (a row exactly on ``start`` counts, one on
``end`` does not), every fallback reason, verdict and token shape (none, one side, both)."""

from __future__ import annotations

import contextlib
import random
import sqlite3
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import event, insert
from sqlalchemy.ext.asyncio import AsyncEngine

from app.db.models import ReviewRow
from app.db.session import create_engine, create_session_factory, read_only
from app.rollout import repository
from app.rollout.analysis import NO_VERDICTS, ArmFigures, ArmSample
from tests.conftest import make_settings, truncate

START = datetime(2026, 12, 1, 10, 0, 0, tzinfo=UTC)
END = START + timedelta(minutes=10)
ARTIFACT = "c" * 64
REASONS = [None, None, None, "timeout", "http_error", "transport_error", "schema_invalid"]
REASONS += ["artifact_unavailable", "budget_exhausted", "rate_limited"]
VERDICTS = ["approve", "approve", "adjust", *NO_VERDICTS]


def _review(rnd: random.Random, artifact: str, arm: str, at: datetime) -> dict[str, Any]:
    decision = rnd.choice(["submit", "reject"])
    return {
        "review_id": str(uuid.uuid4()),
        "idempotency_key": uuid.uuid4().hex,
        "request_hash": "0" * 64,
        "request_json": {},
        "strategy_id": "s",
        "symbol": "AAPL",
        "action": "buy",
        "verdict": rnd.choice(VERDICTS),
        "decision": decision,
        "review_json": {},
        "gates_json": [],
        "failed_gates": "",
        "response_json": {},
        "artifact_hash": artifact,
        "executor": "dspy_live",
        "model": None,
        "arm": arm,
        "fallback_reason": rnd.choice(REASONS),
        "policy_hash": "p" * 64,
        "trading_mode": "paper",
        "llm_latency_ms": None,
        "overhead_ms": 1.0,
        "total_latency_ms": round(rnd.uniform(1, 900), 3),
        "prompt_tokens": rnd.choice([None, rnd.randint(0, 900)]),
        "completion_tokens": rnd.choice([None, rnd.randint(0, 90)]),
        "created_at": at,
        "reserved_qty": None,
    }


def _reference(rows: list[dict[str, Any]], artifact: str, arm: str) -> ArmFigures:
    chosen = [
        r
        for r in rows
        if r["artifact_hash"] == artifact and r["arm"] == arm and START <= r["created_at"] < END
    ]
    return ArmFigures.of(
        [
            ArmSample(
                decision=r["decision"],
                fallback_reason=r["fallback_reason"],
                total_latency_ms=r["total_latency_ms"],
                tokens=None
                if r["prompt_tokens"] is None and r["completion_tokens"] is None
                else (r["prompt_tokens"] or 0) + (r["completion_tokens"] or 0),
                verdict_rejects=r["verdict"] in NO_VERDICTS,
            )
            for r in chosen
        ]
    )


async def _figures(engine: AsyncEngine, artifact: str, arm: str) -> ArmFigures:
    async with read_only(create_session_factory(engine)) as session:
        return await repository.arm_figures(session, artifact, arm, START, END)


@pytest.mark.parametrize("seed", [1, 2, 3])
async def test_arm_figures_when_counted_by_the_database_then_equal_to_the_definition(
    engine: AsyncEngine, seed: int
) -> None:
    rnd = random.Random(seed)
    rows: list[dict[str, Any]] = []
    for _ in range(400):
        artifact = rnd.choice([ARTIFACT, ARTIFACT, "d" * 64])
        arm = rnd.choice(["active", "active", "canary"])
        at = START + timedelta(seconds=rnd.uniform(-120, 720))
        rows.append(_review(rnd, artifact, arm, at))
    # Exactly on the bounds: the start counts, the end does not.
    rows.append(_review(rnd, ARTIFACT, "active", START))
    rows.append(_review(rnd, ARTIFACT, "active", END))
    async with engine.begin() as conn:
        await conn.execute(insert(ReviewRow), rows)

    for artifact, arm in [(ARTIFACT, "active"), (ARTIFACT, "canary"), ("d" * 64, "active")]:
        expected = _reference(rows, artifact, arm)
        got = await _figures(engine, artifact, arm)
        assert expected.n > 20  # the comparison has something to compare
        assert got == expected, (artifact, arm)


async def test_arm_figures_when_the_window_is_empty_then_zero_and_no_tokens(
    engine: AsyncEngine,
) -> None:
    rnd = random.Random(7)
    async with engine.begin() as conn:
        await conn.execute(insert(ReviewRow), [_review(rnd, ARTIFACT, "active", END)])
    empty = ArmFigures(0, 0.0, 0.0, 0.0, 0.0, 0.0, None)
    assert await _figures(engine, ARTIFACT, "active") == empty


async def test_arm_figures_when_no_review_reports_tokens_then_tokens_per_review_is_none(
    engine: AsyncEngine,
) -> None:
    rnd = random.Random(8)
    rows = [_review(rnd, ARTIFACT, "active", START + timedelta(seconds=i)) for i in range(30)]
    for r in rows:
        r["prompt_tokens"] = r["completion_tokens"] = None
    async with engine.begin() as conn:
        await conn.execute(insert(ReviewRow), rows)
    got = await _figures(engine, ARTIFACT, "active")
    assert got.n == 30
    assert got.tokens_per_review is None
    assert got == _reference(rows, ARTIFACT, "active")


async def test_arm_figures_when_planned_on_sqlite_then_read_only_the_covering_index(
    sqlite_url: str,
) -> None:
    # Each of the window's rows read from the table cost ~5 KB of page reads (its JSON
    # columns): seconds per controller turn for a 30-minute watch window. The plan of both
    # statements (the counts and the p95) must stay on the covering index (migration 0008).
    await truncate(sqlite_url)
    executed: list[tuple[str, Any]] = []

    def record(_c: Any, _cur: Any, statement: str, parameters: Any, *_: Any) -> None:
        if "llm_decision_reviews" in statement:
            executed.append((statement, parameters))

    engine = create_engine(make_settings(sqlite_url))
    event.listen(engine.sync_engine, "before_cursor_execute", record)
    try:
        async with read_only(create_session_factory(engine)) as session:
            await repository.arm_figures(session, ARTIFACT, "active", START, END)
            executed.clear()
            rnd = random.Random(9)
            async with engine.begin() as conn:
                await conn.execute(insert(ReviewRow), [_review(rnd, ARTIFACT, "active", START)])
            executed.clear()
        async with read_only(create_session_factory(engine)) as session:
            assert (await repository.arm_figures(session, ARTIFACT, "active", START, END)).n == 1
    finally:
        await engine.dispose()
    assert len(executed) == 2  # the counts, then the p95
    with contextlib.closing(sqlite3.connect(sqlite_url.split(":///", 1)[1])) as conn:
        for statement, parameters in executed:
            plan = " | ".join(
                str(row[-1]) for row in conn.execute("EXPLAIN QUERY PLAN " + statement, parameters)
            )
            assert "COVERING INDEX ix_reviews_arm_window" in plan, plan
