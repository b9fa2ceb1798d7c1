"""The review hot path on the database drivers: the precheck read and the group-commit write.

Issue 12 measured about 1 ms per review in SQLAlchemy's statement, session and result machinery
and in aiosqlite's one-thread-hop-per-call, on a path that runs two statements. Here the same
statements run on the drivers: on SQLite a whole batch (``BEGIN IMMEDIATE``, the reservation
read, the INSERT, ``COMMIT``) is one function on one thread (``SqliteWorker``), so one hop per
batch; on PostgreSQL asyncpg runs them itself (prepared, ``executemany``) on a connection from
SQLAlchemy's pool. SQLAlchemy keeps the models, migrations, pool and every other query.

What is written is what the model defines: the INSERT names the table's columns and every
value goes through its column type's bind processor for the engine's dialect (JSON columns
through the engine's serializer, ``DateTime`` in SQLAlchemy's stored format), so a row written
here reads back through the ORM exactly as one written by SQLAlchemy (tested).
"""

from __future__ import annotations

import functools
import hashlib
import sqlite3
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any, Protocol

from sqlalchemy import Column
from sqlalchemy.engine import Dialect
from sqlalchemy.exc import DataError, DBAPIError, IntegrityError, ProgrammingError
from sqlalchemy.ext.asyncio import AsyncEngine

from app.db.models import ReviewRow
from app.db.session import (
    NOT_A_ROW_SQLSTATE,
    SqliteWorker,
    driver_read,
    driver_transaction,
    pg_failure,
    sqlite_error,
)
from app.reviews.reservations import Ledger, Reservation

Row = dict[str, Any]
Pending = tuple[Row, Reservation | None]


def row_refused(exc: BaseException) -> bool:
    """The database answered and refused the statement because of what a row holds."""
    if not isinstance(exc, DBAPIError) or exc.connection_invalidated:
        return False
    if isinstance(exc, IntegrityError | DataError | ProgrammingError):
        return True  # sqlite3's classes; asyncpg's integrity / data / syntax SQLSTATEs
    sqlstate = getattr(exc.orig, "sqlstate", None)  # asyncpg: every server error carries one
    return (
        isinstance(sqlstate, str) and len(sqlstate) == 5 and sqlstate[:2] not in NOT_A_ROW_SQLSTATE
    )


class ReviewStore(Protocol):
    # True when ``precheck`` answers without leaving the event loop (SQLite): batching it
    # would only add a turn of the loop, which under a burst is the longest wait of all.
    inline_reads: bool

    async def precheck(
        self, keys: list[str], strategies: list[str], since: datetime
    ) -> tuple[set[str], dict[str, int]]:
        """(keys that already have a review, submits per strategy since ``since``)."""
        ...

    async def write(self, batch: Sequence[Pending]) -> list[Row]:
        """Settle and insert the batch in one transaction; the rows as committed."""
        ...

    async def write_each(self, batch: Sequence[Pending]) -> list[Row | DBAPIError]:
        """The batch in one transaction, one SAVEPOINT per row: a row the database refuses
        is its error in the result, every other row commits."""
        ...

    async def close(self) -> None: ...


def open_store(engine: AsyncEngine) -> ReviewStore:
    dialect = engine.dialect.name
    if dialect == "sqlite":
        path = engine.url.database
        if not path or path == ":memory:":
            raise ValueError("the review store needs a SQLite file (':memory:' is per connection)")
        return SqliteReviewStore(path, engine.dialect)
    if dialect == "postgresql":
        return PostgresReviewStore(engine)
    raise ValueError(f"no review store for the {dialect!r} dialect")


# ----------------------------------------------------------------------------- shared

_TABLE = ReviewRow.__table__
_T: str = ReviewRow.__tablename__
_COLUMNS: list[Column[Any]] = [
    c for c in _TABLE.columns if isinstance(c, Column) and not c.primary_key
]
Processor = Callable[[Any], Any] | None


def _default(column: Column[Any]) -> Any:
    default = column.default
    arg = getattr(default, "arg", None) if default is not None else None
    return None if callable(arg) else arg


class _Binder:
    """Row dict -> INSERT parameters, through each column type's processor for ``dialect``."""

    def __init__(self, dialect: Dialect) -> None:
        self._columns: list[tuple[str, Processor, Any]] = [
            (c.name, c.type.dialect_impl(dialect).bind_processor(dialect), _default(c))
            for c in _COLUMNS
        ]
        created_at = _TABLE.c.created_at.type.dialect_impl(dialect)
        self.created_at: Processor = created_at.bind_processor(dialect)
        self.created_at_result: Processor = created_at.result_processor(dialect, None)

    def params(self, row: Row) -> tuple[Any, ...]:
        out: list[Any] = []
        for name, process, default in self._columns:
            value = row.get(name, default)
            out.append(value if process is None or value is None else process(value))
        return tuple(out)

    def since(self, value: datetime) -> Any:
        return value if self.created_at is None else self.created_at(value)


def _counted(rows: Sequence[Sequence[Any]]) -> tuple[set[str], dict[str, int]]:
    found: set[str] = set()
    counts: dict[str, int] = {}
    for kind, name, count in rows:
        if kind == "k":
            found.add(str(name))
        else:
            counts[str(name)] = int(count)
    return found, counts


def _reservations(batch: Sequence[Pending]) -> list[Reservation]:
    return [r for _, r in batch if r is not None]


def _strategies(reservations: list[Reservation]) -> list[str]:
    return sorted({r.strategy_id for r in reservations})


def _settle_all(batch: Sequence[Pending], ledger: Ledger) -> list[Row]:
    """Each submit re-checked against the committed submits and those settled before it."""
    rows: list[Row] = []
    for row, reservation in batch:
        if reservation is not None:
            row = ledger.settle(row, reservation)
            ledger.record(row, reservation)
        rows.append(row)
    return rows


def lock_id(strategy_id: str) -> int:
    """The strategy's advisory-lock key (PostgreSQL, two-int form: see ``_LOCK_CLASS``)."""
    return int.from_bytes(hashlib.sha256(strategy_id.encode()).digest()[:4], "big", signed=True)


# ----------------------------------------------------------------------------- SQLite

_INSERT_SQLITE = (
    f"INSERT INTO {_T} ({', '.join(c.name for c in _COLUMNS)}) "
    f"VALUES ({', '.join('?' for _ in _COLUMNS)})"
)


@functools.lru_cache(maxsize=64)
def _precheck_sqlite(n_keys: int, n_strategies: int) -> str:
    keys = ",".join("?" * n_keys)
    strategies = ",".join("?" * n_strategies)
    return (
        f"SELECT 'k', idempotency_key, 0 FROM {_T} WHERE idempotency_key IN ({keys}) "
        f"UNION ALL SELECT 's', strategy_id, count(*) FROM {_T} "
        f"WHERE strategy_id IN ({strategies}) AND created_at >= ? AND decision = 'submit' "
        "GROUP BY strategy_id"
    )


@functools.lru_cache(maxsize=64)
def _submitted_sqlite(n_strategies: int) -> str:
    strategies = ",".join("?" * n_strategies)
    return (
        f"SELECT strategy_id, symbol, reserved_qty, created_at FROM {_T} "
        f"WHERE strategy_id IN ({strategies}) AND created_at >= ? AND decision = 'submit'"
    )


class SqliteReviewStore:
    """Reads on their own connection, run on the event loop (a WAL read never waits for the
    writer and costs less than a thread hop); writes on another connection on their own thread
    (the commit's fsync must not stall the loop). The write transaction opens with
    ``BEGIN IMMEDIATE``: the database's single write lock is held from the reservation read to
    the commit, against every other writer, other processes included."""

    inline_reads = True

    def __init__(self, path: str, dialect: Dialect) -> None:
        self._binder = _Binder(dialect)
        self._reader = SqliteWorker(path, "review-read", inline=True)
        self._writer = SqliteWorker(path, "review-write")

    async def precheck(
        self, keys: list[str], strategies: list[str], since: datetime
    ) -> tuple[set[str], dict[str, int]]:
        if not keys or not strategies:
            raise ValueError("precheck needs at least one key and one strategy")
        sql = _precheck_sqlite(len(keys), len(strategies))
        params = (*keys, *strategies, self._binder.since(since))
        rows = await self._reader.read(lambda conn: conn.execute(sql, params).fetchall())
        return _counted(rows)

    async def write(self, batch: Sequence[Pending]) -> list[Row]:
        items = list(batch)
        # Bound here, on the loop thread that built the rows (hot in its cache; ~0.1 ms per
        # row of JSON and type processing): the writer's thread only runs SQL while it holds
        # the write lock, and needs the GIL less often. A row the commit-time recheck replaces
        # is bound again there.
        bound = [self._binder.params(row) for row, _ in items]
        return await self._writer.transaction(lambda conn: self._write(conn, items, bound))

    async def write_each(self, batch: Sequence[Pending]) -> list[Row | DBAPIError]:
        items = list(batch)
        return await self._writer.transaction(lambda conn: self._write_each(conn, items))

    async def close(self) -> None:
        await self._reader.close()
        await self._writer.close()

    def _ledger(self, conn: sqlite3.Connection, batch: Sequence[Pending]) -> Ledger:
        ledger = Ledger()
        reservations = _reservations(batch)
        if reservations:
            strategies = _strategies(reservations)
            since = self._binder.since(Ledger.earliest(reservations))
            rows = conn.execute(_submitted_sqlite(len(strategies)), (*strategies, since))
            to_time = self._binder.created_at_result
            ledger.load(
                [
                    (s, sym, qty, to_time(at) if to_time is not None else at)
                    for s, sym, qty, at in rows
                ]
            )
        return ledger

    def _write(
        self, conn: sqlite3.Connection, batch: list[Pending], bound: list[tuple[Any, ...]]
    ) -> list[Row]:
        rows = _settle_all(batch, self._ledger(conn, batch))
        params = [
            p if row is original else self._binder.params(row)
            for row, (original, _), p in zip(rows, batch, bound, strict=True)
        ]
        conn.executemany(_INSERT_SQLITE, params)
        return rows

    def _write_each(self, conn: sqlite3.Connection, batch: list[Pending]) -> list[Row | DBAPIError]:
        ledger = self._ledger(conn, batch)
        out: list[Row | DBAPIError] = []
        for row, reservation in batch:
            if reservation is not None:
                row = ledger.settle(row, reservation)
            conn.execute("SAVEPOINT review_row")
            try:
                conn.execute(_INSERT_SQLITE, self._binder.params(row))
            except sqlite3.Error as exc:
                conn.execute("ROLLBACK TO review_row")
                conn.execute("RELEASE review_row")
                refused = sqlite_error(exc)
                if not isinstance(refused, DBAPIError) or not row_refused(refused):
                    raise
                out.append(refused)
                continue
            conn.execute("RELEASE review_row")
            if reservation is not None:
                ledger.record(row, reservation)
            out.append(row)
        return out


# ----------------------------------------------------------------------------- PostgreSQL

_INSERT_PG = (
    f"INSERT INTO {_T} ({', '.join(c.name for c in _COLUMNS)}) "
    f"VALUES ({', '.join(f'${i + 1}' for i in range(len(_COLUMNS)))})"
)
_PRECHECK_PG = (
    f"SELECT 'k', idempotency_key, 0 FROM {_T} WHERE idempotency_key = ANY($1::text[]) "
    f"UNION ALL SELECT 's', strategy_id, count(*) FROM {_T} "
    "WHERE strategy_id = ANY($2::text[]) AND created_at >= $3 AND decision = 'submit' "
    "GROUP BY strategy_id"
)
# Advisory-lock class for "order reservations of one strategy" (two-int form, so the key
# space cannot meet another feature's single-bigint advisory locks). One statement takes the
# batch's locks in ascending order (no deadlock between two replicas' batches).
_LOCK_CLASS = 0x74725256  # "trRV"
_LOCK_PG = "SELECT count(pg_advisory_xact_lock($1, k)) FROM unnest($2::int[]) AS k"
_SUBMITTED_PG = (
    f"SELECT strategy_id, symbol, reserved_qty, created_at FROM {_T} "
    "WHERE strategy_id = ANY($1::text[]) AND created_at >= $2 AND decision = 'submit'"
)


class PostgresReviewStore:
    """asyncpg on a connection from SQLAlchemy's pool (the pool's JSON codecs, timeouts and
    invalidation apply); asyncpg prepares and caches each statement per connection."""

    inline_reads = False

    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine
        self._binder = _Binder(engine.dialect)

    async def precheck(
        self, keys: list[str], strategies: list[str], since: datetime
    ) -> tuple[set[str], dict[str, int]]:
        async with driver_read(self._engine) as pg:
            rows = await pg.fetch(_PRECHECK_PG, keys, strategies, since)
        return _counted(rows)

    async def write(self, batch: Sequence[Pending]) -> list[Row]:
        async with driver_transaction(self._engine) as pg:
            rows = _settle_all(batch, await self._ledger(pg, batch))
            await pg.executemany(_INSERT_PG, [self._binder.params(r) for r in rows])
        return rows

    async def write_each(self, batch: Sequence[Pending]) -> list[Row | DBAPIError]:
        out: list[Row | DBAPIError] = []
        async with driver_transaction(self._engine) as pg:
            ledger = await self._ledger(pg, batch)
            for row, reservation in batch:
                if reservation is not None:
                    row = ledger.settle(row, reservation)
                try:
                    async with pg.transaction():  # a SAVEPOINT inside the batch's transaction
                        await pg.execute(_INSERT_PG, *self._binder.params(row))
                except Exception as exc:
                    refused = pg_failure(exc)
                    if refused is None or not row_refused(refused):
                        raise
                    out.append(refused)
                    continue
                if reservation is not None:
                    ledger.record(row, reservation)
                out.append(row)
        return out

    async def close(self) -> None:
        return None  # the connections are the engine's pool's

    async def _ledger(self, pg: Any, batch: Sequence[Pending]) -> Ledger:
        ledger = Ledger()
        reservations = _reservations(batch)
        if reservations:
            strategies = _strategies(reservations)
            keys = sorted({lock_id(s) for s in strategies})
            await pg.fetchval(_LOCK_PG, _LOCK_CLASS, keys)
            rows = await pg.fetch(_SUBMITTED_PG, strategies, Ledger.earliest(reservations))
            ledger.load([(r[0], r[1], r[2], r[3]) for r in rows])
        return ledger
