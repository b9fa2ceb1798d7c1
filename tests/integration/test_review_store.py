"""The hot path's statements on the drivers (``app/reviews/store.py``), on SQLite and PostgreSQL:

- a row the store writes reads back through the ORM exactly as the same row written by
  SQLAlchemy (every column: JSON, times, decimals as text, NULLs, the default);
- the precheck answers which keys exist and how many submits each strategy has since the
  window start (a row exactly on the start counts);
- a duplicate idempotency key is SQLAlchemy's ``IntegrityError`` (the pipeline replays the
  stored answer on it); a refused row in ``write_each`` fails alone;
- reservations: a submit re-checked against committed submits and those earlier in its batch;
- PostgreSQL: a connection killed under the store is a ``DBAPIError`` once, then the pool
  reconnects and the store answers.
"""

from __future__ import annotations

import asyncio
import sqlite3
import time
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from sqlalchemy import insert, select, text
from sqlalchemy.exc import DBAPIError, IntegrityError, OperationalError
from sqlalchemy.ext.asyncio import AsyncEngine

from app.db.models import ReviewRow
from app.db.session import SqliteWorker, create_engine, create_session_factory, read_only
from app.reviews.reservations import Reservation
from app.reviews.store import ReviewStore, open_store
from tests.conftest import make_settings, truncate

NOW = datetime(2026, 12, 1, 10, 0, 0, 123456, tzinfo=UTC)


def _row(key: str, strategy: str, decision: str, at: datetime, **extra: Any) -> dict[str, Any]:
    return {
        "review_id": str(uuid.uuid4()),
        "idempotency_key": key,
        "request_hash": "0" * 64,
        "request_json": {"decision": {"qty": "1.50", "nested": [1, 2.5, None, "x"]}},
        "strategy_id": strategy,
        "symbol": "AAPL",
        "action": "buy",
        "verdict": "approve",
        "decision": decision,
        "review_json": {"confidence": 0.8, "flags": []},
        "gates_json": [{"code": "notional_cap", "passed": True, "reason": "ok \u00e9"}],
        "failed_gates": "",
        "response_json": {"decision": decision, "unicode": "\u2713"},
        "artifact_hash": "a" * 64,
        "executor": "heuristic",
        "model": None,
        "arm": "active",
        "fallback_reason": None,
        "policy_hash": "p" * 64,
        "trading_mode": "paper",
        "llm_latency_ms": None,
        "overhead_ms": 1.25,
        "total_latency_ms": 2.5,
        "prompt_tokens": None,
        "completion_tokens": 17,
        "created_at": at,
        "reserved_qty": "10" if decision == "submit" else None,
        **extra,
    }


@pytest.fixture
async def store(engine: AsyncEngine) -> AsyncIterator[ReviewStore]:
    store = open_store(engine)
    try:
        yield store
    finally:
        await store.close()


def _columns(row: ReviewRow) -> dict[str, Any]:
    out = {c.name: getattr(row, c.key) for c in ReviewRow.__table__.columns}
    for name in ("id", "review_id", "idempotency_key"):
        out.pop(name)
    at = out["created_at"]
    out["created_at"] = at if at.tzinfo else at.replace(tzinfo=UTC)  # SQLite hands back naive
    return out


async def test_store_row_when_read_through_the_orm_then_equal_to_a_sqlalchemy_row(
    engine: AsyncEngine, store: ReviewStore
) -> None:
    ours = _row("k:store", "s1", "submit", NOW)
    theirs = {**ours, "review_id": str(uuid.uuid4()), "idempotency_key": "k:sqlalchemy"}
    del ours["failed_gates"]  # the column default applies on both paths
    del theirs["failed_gates"]
    assert await store.write([(ours, None)]) == [ours]
    async with engine.begin() as conn:
        await conn.execute(insert(ReviewRow), [theirs])
    async with read_only(create_session_factory(engine)) as session:
        rows = {r.idempotency_key: r for r in (await session.execute(select(ReviewRow))).scalars()}
    assert set(rows) == {"k:store", "k:sqlalchemy"}
    assert _columns(rows["k:store"]) == _columns(rows["k:sqlalchemy"])
    assert rows["k:store"].created_at.replace(tzinfo=UTC) == NOW
    assert rows["k:store"].request_json == ours["request_json"]
    assert rows["k:store"].failed_gates == ""


@pytest.mark.parametrize(
    ("keys", "strategies", "window_s", "found", "counts"),
    [
        (["k1"], ["s1"], 60, {"k1"}, {"s1": 2}),
        (["k1", "k2", "nope"], ["s1", "s2", "s3"], 60, {"k1", "k2"}, {"s1": 2, "s2": 1}),
        (["k3"], ["s1"], 30, {"k3"}, {"s1": 2}),  # k2 sits exactly on the window start
        (["k1"], ["s1"], 5, {"k1"}, {}),
        (["nope"], ["s9"], 3600, set[str](), {}),
    ],
)
async def test_precheck_when_asked_then_keys_found_and_submits_counted_from_the_window_start(
    store: ReviewStore,
    keys: list[str],
    strategies: list[str],
    window_s: int,
    found: set[str],
    counts: dict[str, int],
) -> None:
    rows = [
        _row("k1", "s1", "submit", NOW - timedelta(seconds=10)),
        _row("k2", "s1", "submit", NOW - timedelta(seconds=30)),
        _row("k3", "s1", "reject", NOW - timedelta(seconds=1)),
        _row("k4", "s2", "submit", NOW - timedelta(seconds=90)),
        _row("k5", "s2", "submit", NOW - timedelta(seconds=2)),
    ]
    await store.write([(r, None) for r in rows])
    assert await store.precheck(keys, strategies, NOW - timedelta(seconds=window_s)) == (
        found,
        counts,
    )


async def test_duplicate_key_when_written_then_integrity_error_and_nothing_else_lost(
    store: ReviewStore,
) -> None:
    await store.write([(_row("k:dup", "s1", "reject", NOW), None)])
    with pytest.raises(IntegrityError):
        await store.write(
            [
                (_row("k:fresh", "s1", "reject", NOW), None),
                (_row("k:dup", "s1", "reject", NOW), None),
            ]
        )
    # The failed batch left nothing behind; one row at a time, only the duplicate fails.
    assert await store.precheck(["k:fresh"], ["s1"], NOW) == (set(), {})
    results = await store.write_each(
        [(_row("k:fresh", "s1", "reject", NOW), None), (_row("k:dup", "s1", "reject", NOW), None)]
    )
    assert isinstance(results[0], dict) and results[0]["idempotency_key"] == "k:fresh"
    assert isinstance(results[1], IntegrityError)
    assert (await store.precheck(["k:fresh", "k:dup"], ["s1"], NOW))[0] == {"k:fresh", "k:dup"}


def _reservation(strategy: str, qty: str, seen: list[tuple[int, Decimal]]) -> Reservation:
    def recheck(recent: int, pending: Decimal) -> dict[str, Any] | None:
        seen.append((recent, pending))
        if recent >= 2:  # a stand-in limit of two submits per window
            return _row(f"k:rejected-{len(seen)}", strategy, "reject", NOW)
        return None

    return Reservation(
        strategy_id=strategy,
        symbol="AAPL",
        signed_qty=Decimal(qty),
        rate_since=NOW - timedelta(seconds=60),
        pending_since=NOW - timedelta(seconds=60),
        recheck=recheck,
    )


async def test_reservations_when_settled_then_committed_and_earlier_batch_submits_count(
    store: ReviewStore,
) -> None:
    # One submit committed 10 s ago (out of the window's reach if the window were 5 s).
    await store.write([(_row("k:old", "s1", "submit", NOW - timedelta(seconds=10)), None)])
    seen: list[tuple[int, Decimal]] = []
    batch = [
        (_row(f"k:b{i}", "s1", "submit", NOW), _reservation("s1", "5", seen)) for i in range(3)
    ]
    written = await store.write(batch)
    # First: 1 committed (10 pending); second: +1 in batch (15 pending) -> over the limit.
    assert seen[0] == (1, Decimal("10"))
    assert seen[1] == (2, Decimal("15"))
    assert [r["decision"] for r in written] == ["submit", "reject", "reject"]
    assert seen[2] == (2, Decimal("15"))  # the rejected one reserved nothing
    assert await store.precheck(["k:b0"], ["s1"], NOW - timedelta(seconds=60)) == (
        {"k:b0"},
        {"s1": 2},
    )
    # What was stored for a replaced row is the replacement (bound again at commit), not the
    # submit bound before the recheck.
    keys = ["k:b1", "k:b2", *(r["idempotency_key"] for r in written[1:])]
    assert (await store.precheck(keys, ["s1"], NOW))[0] == set(keys[2:])


async def test_postgres_connection_killed_when_used_then_dbapi_error_then_recovers(
    postgresql_url: str,
) -> None:
    await truncate(postgresql_url)
    engine = create_engine(make_settings(postgresql_url))
    store = open_store(engine)
    try:
        assert await store.precheck(["k"], ["s"], NOW) == (set(), {})  # a pooled connection
        admin_engine = create_engine(make_settings(postgresql_url))  # not the store's pool
        try:
            async with admin_engine.connect() as admin:
                killed = await admin.execute(
                    text(
                        "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                        "WHERE datname = current_database() AND pid <> pg_backend_pid()"
                    )
                )
                assert killed.scalar_one() >= 1
        finally:
            await admin_engine.dispose()
        with pytest.raises(DBAPIError):
            await store.precheck(["k"], ["s"], NOW)
        assert await store.precheck(["k"], ["s"], NOW) == (set(), {})  # a fresh connection
        await store.write([(_row("k:after", "s", "reject", NOW), None)])
        assert (await store.precheck(["k:after"], ["s"], NOW))[0] == {"k:after"}
    finally:
        await store.close()
        await engine.dispose()


async def test_sqlite_worker_when_connected_then_durable_pragmas_and_write_lock(
    sqlite_url: str,
) -> None:
    # Durability is not traded for speed: the hot path's own connections run with the engine's
    # pragmas (WAL, synchronous=FULL), and a write transaction holds the write
    # lock from its first statement (BEGIN IMMEDIATE), so a second writer waits for it.
    path = sqlite_url.split(":///", 1)[1]
    worker = SqliteWorker(path, "test-pragmas")
    try:
        got = await worker.read(
            lambda conn: tuple(
                conn.execute(f"PRAGMA {name}").fetchone()[0]
                for name in ("journal_mode", "synchronous", "busy_timeout", "foreign_keys")
            )
        )
        # synchronous 2 = FULL; no busy handler: the worker polls for the write lock itself
        assert got == ("wal", 2, 0, 1)
        with pytest.raises(OperationalError) as refused:
            await worker.transaction(
                lambda conn: sqlite3.connect(path, timeout=0).execute("BEGIN IMMEDIATE")
            )
        assert "locked" in str(refused.value.orig)
        # The worker's connection was dropped and reopens: it still answers.
        assert await worker.read(lambda conn: conn.execute("SELECT 1").fetchone()) == (1,)
        # The precheck's reader runs on the event loop: a read that cannot start gives up
        # after 100 ms instead of stalling the loop for the writers' 5 s, and it never writes.
        reader = SqliteWorker(path, "test-inline", inline=True)
        pragma = await reader.read(lambda conn: conn.execute("PRAGMA busy_timeout").fetchone())
        assert pragma == (100,)
        with pytest.raises(RuntimeError):
            await reader.transaction(lambda conn: None)
        await reader.close()
    finally:
        await worker.close()


def _holding_write_lock(path: str) -> sqlite3.Connection:
    """Another connection that holds the database's write lock until it commits."""
    holder = sqlite3.connect(path, isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")
    return holder


async def test_sqlite_worker_when_another_writer_holds_the_lock_then_waits_and_commits_after(
    sqlite_url: str,
) -> None:
    # A lease renewal or an admin change holds the write lock across event-loop turns: the
    # review writer waits for it (it does not fail) and commits once it is released.
    path = sqlite_url.split(":///", 1)[1]
    holder = _holding_write_lock(path)
    released: list[float] = []

    def release() -> None:
        holder.execute("COMMIT")
        released.append(time.monotonic())

    asyncio.get_running_loop().call_later(0.3, release)
    worker = SqliteWorker(path, "test-lock-wait")
    try:
        got = await worker.transaction(lambda conn: conn.execute("SELECT 1").fetchone())
        finished = time.monotonic()
        assert got == (1,)
        assert released and finished >= released[0]  # it ran only once the lock was free
    finally:
        await worker.close()
        holder.close()


async def test_sqlite_worker_when_the_lock_is_held_past_the_wait_then_database_is_locked(
    sqlite_url: str,
) -> None:
    path = sqlite_url.split(":///", 1)[1]
    holder = _holding_write_lock(path)
    worker = SqliteWorker(path, "test-lock-give-up", lock_wait_s=0.2)
    try:
        started = time.monotonic()
        with pytest.raises(OperationalError) as refused:
            await worker.transaction(lambda conn: conn.execute("SELECT 1").fetchone())
        waited = time.monotonic() - started
        assert "locked" in str(refused.value.orig)
        assert waited >= 0.2  # it did wait its budget (a lower bound: safe on a busy machine)
        holder.execute("COMMIT")
        # The lock is free again: the same worker commits.
        assert await worker.transaction(lambda conn: conn.execute("SELECT 2").fetchone()) == (2,)
    finally:
        await worker.close()
        holder.close()
