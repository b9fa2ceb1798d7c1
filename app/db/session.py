"""Engine construction and the one commit/rollback boundary of the service.

Repositories and services only ``execute``/``flush``; ``unit_of_work`` commits on success and
rolls back on any exception. The review hot path (issue 12) commits through the drivers, here
too: ``SqliteWorker.transaction`` (one sqlite3 connection on its own thread, a whole batch in
one hop) and ``driver_transaction`` (a pooled asyncpg connection in a transaction). Nothing
else in the code base calls ``commit``.
"""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
import time
from collections.abc import AsyncGenerator, Callable
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from typing import Any, TypeVar

import orjson
from sqlalchemy import event
from sqlalchemy.exc import DataError, DBAPIError, IntegrityError, OperationalError, ProgrammingError
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)
from sqlalchemy.pool import ConnectionPoolEntry

from app.settings import Settings

SessionFactory = async_sessionmaker[AsyncSession]
T = TypeVar("T")


def _sqlite_pragmas(dbapi_conn: Any, _record: ConnectionPoolEntry | None) -> None:
    cursor = dbapi_conn.cursor()
    # WAL: readers never block the writer; synchronous=FULL keeps each commit durable.
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=FULL")
    cursor.execute("PRAGMA busy_timeout=5000")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()


def _json_dumps(obj: Any) -> str:
    # orjson for the JSON columns (request, review, gates, response): ~5x the stdlib.
    return orjson.dumps(obj, default=str).decode()


def create_engine(settings: Settings) -> AsyncEngine:
    if settings.is_sqlite:
        from pathlib import Path

        path = settings.database_url.split(":///", 1)[-1]
        if path and path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        engine = create_async_engine(
            settings.database_url,
            json_serializer=_json_dumps,
            # SQLite connections are cheap and reads run in parallel under WAL; a deep pool
            # keeps a burst from queueing on checkout.
            pool_size=max(settings.db_pool_size, 32),
            max_overflow=32,
            # Every unit of work ends its own transaction (commit, rollback or session close),
            # and pysqlite opens none for a SELECT: the pool's reset-rollback would only add a
            # hop to the driver thread per checkout.
            pool_reset_on_return=None,
            connect_args={"timeout": 5},
        )
        event.listen(engine.sync_engine, "connect", _sqlite_pragmas)
        return engine
    return create_async_engine(
        settings.database_url,
        json_serializer=_json_dumps,
        pool_size=settings.db_pool_size,
        max_overflow=settings.db_pool_size,
        # A dead server must not hang requests: connect and statements are bounded. No
        # pre-ping (it cost two extra round trips per checkout): a connection broken by an
        # outage fails its statement, is invalidated by SQLAlchemy, and the pool reconnects.
        pool_timeout=settings.db_connect_timeout_seconds,
        connect_args={
            "timeout": settings.db_connect_timeout_seconds,
            "command_timeout": settings.db_statement_timeout_seconds,
        },
    )


def create_session_factory(engine: AsyncEngine) -> SessionFactory:
    return async_sessionmaker(engine, expire_on_commit=False, autoflush=False)


@asynccontextmanager
async def unit_of_work(factory: SessionFactory) -> AsyncGenerator[AsyncSession]:
    """The only commit/rollback boundary."""
    async with factory() as session:
        try:
            yield session
            await session.commit()
        except BaseException:
            # A dead connection can fail the rollback too; the original error is what matters.
            with contextlib.suppress(Exception):
                await session.rollback()
            raise


# --- the hot path on the drivers (issue 12) -------------------------------------------------
# Errors leave these boundaries as SQLAlchemy's ``DBAPIError`` family, as if SQLAlchemy had
# run the statement: callers tell "the database refused this row" (IntegrityError, DataError,
# ProgrammingError) from "the database is unreachable" the same way on every path.


class SqliteWorker:
    """One sqlite3 connection owned by one thread. ``transaction`` runs a whole function
    (``BEGIN IMMEDIATE`` .. ``COMMIT``) on that thread, so a batch costs one hop from the event
    loop, not one per statement (aiosqlite hops per call). The connection has the engine's
    pragmas (WAL, ``synchronous=FULL``; the busy timeout: see below). After an error that is
    not about a row the connection is closed and the next call opens a new one.

    ``inline=True`` (reads only): ``read`` runs on the caller's thread, the event loop. A WAL
    read neither waits for the writer nor fsyncs, and takes less time than the hop: on a busy
    loop a thread hop waits for the GIL (up to the 5 ms switch interval, several times per hop),
    which made the precheck the longest step of a 256-review storm. Its busy timeout is
    ``inline_busy_ms``, so a read that cannot start fails fast instead of stalling the loop.

    Waiting for the write lock: SQLite's own busy handler sleeps 1, 2, 5, 10, 15, 20, 25 ...
    100 ms between attempts, so a review queued behind another writer (a lease renewal or an
    admin change through SQLAlchemy, whose transaction spans event-loop turns) started up to
    25-100 ms after the lock was free. The thread worker's connection has no busy handler
    (``busy_timeout=0``); ``BEGIN IMMEDIATE`` is retried here every ``LOCK_POLL_S`` (releasing
    the GIL while it sleeps) until ``lock_wait_s``, then fails as "database is locked"."""

    LOCK_POLL_S = 0.0005

    def __init__(
        self,
        path: str,
        name: str,
        *,
        inline: bool = False,
        inline_busy_ms: int = 100,
        lock_wait_s: float = 5.0,
    ) -> None:
        self._path = path
        self._busy_ms = inline_busy_ms if inline else 0
        self._lock_wait_s = lock_wait_s
        self._executor = (
            None if inline else ThreadPoolExecutor(max_workers=1, thread_name_prefix=name)
        )
        self._conn: sqlite3.Connection | None = None

    async def transaction(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        """``fn`` inside ``BEGIN IMMEDIATE`` (the database's write lock from the first
        statement): committed if it returns, rolled back if it raises."""
        if self._executor is None:
            raise RuntimeError("an inline SqliteWorker only reads")
        return await asyncio.get_running_loop().run_in_executor(self._executor, self._run, fn, True)

    async def read(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        """``fn`` in autocommit: each statement sees the last committed state."""
        if self._executor is None:
            return self._run(fn, False)
        return await asyncio.get_running_loop().run_in_executor(
            self._executor, self._run, fn, False
        )

    async def close(self) -> None:
        if self._executor is None:
            self._drop()
            return
        await asyncio.get_running_loop().run_in_executor(self._executor, self._drop)
        self._executor.shutdown(wait=True)

    def _connect(self) -> sqlite3.Connection:
        if self._conn is None:
            conn = sqlite3.connect(
                self._path, timeout=5.0, isolation_level=None, check_same_thread=False
            )
            _sqlite_pragmas(conn, None)
            conn.execute(f"PRAGMA busy_timeout={int(self._busy_ms)}")
            self._conn = conn
        return self._conn

    def _drop(self) -> None:
        if self._conn is not None:
            with contextlib.suppress(sqlite3.Error):
                self._conn.close()
            self._conn = None

    def _run(self, fn: Callable[[sqlite3.Connection], T], in_transaction: bool) -> T:
        try:
            conn = self._connect()
            if not in_transaction:
                return fn(conn) if self._executor is None else self._retry_busy(lambda: fn(conn))
            self._retry_busy(lambda: conn.execute("BEGIN IMMEDIATE"))
            try:
                result = fn(conn)
                conn.commit()
            except BaseException:
                if conn.in_transaction:
                    with contextlib.suppress(sqlite3.Error):
                        conn.rollback()
                raise
            return result
        except sqlite3.Error as exc:
            wrapped = sqlite_error(exc)
            if not isinstance(wrapped, IntegrityError | DataError | ProgrammingError):
                self._drop()
            raise wrapped from exc

    def _retry_busy(self, attempt: Callable[[], T]) -> T:
        """``attempt`` again while the database answers SQLITE_BUSY, until ``lock_wait_s``."""
        give_up = time.monotonic() + self._lock_wait_s
        while True:
            try:
                return attempt()
            except sqlite3.OperationalError as exc:
                if not _busy(exc) or time.monotonic() >= give_up:
                    raise
            time.sleep(self.LOCK_POLL_S)


def _busy(exc: sqlite3.Error) -> bool:
    return (getattr(exc, "sqlite_errorcode", 0) & 0xFF) == sqlite3.SQLITE_BUSY


def sqlite_error(exc: sqlite3.Error) -> BaseException:
    """A sqlite3 error as SQLAlchemy would have raised it (by the error's class name)."""
    return DBAPIError.instance(None, None, exc, sqlite3.Error)


# PostgreSQL SQLSTATE classes that say "not this row": connection exception, insufficient
# resources, operator intervention (incl. statement timeout), system error, internal error,
# transaction rollback (serialization failure, deadlock).
NOT_A_ROW_SQLSTATE = frozenset({"08", "53", "57", "58", "XX", "40"})
_PG_CLASSES: dict[str, type[DBAPIError]] = {
    "23": IntegrityError,
    "22": DataError,
    "42": ProgrammingError,
}


def pg_failure(exc: BaseException) -> DBAPIError | None:
    """An asyncpg (or network) error as SQLAlchemy's family, ``connection_invalidated`` when the
    connection must not be used again; None for an error that is not the database's."""
    sqlstate = getattr(exc, "sqlstate", None)
    if isinstance(sqlstate, str) and sqlstate[:2] not in NOT_A_ROW_SQLSTATE:
        # The server refused the statement (``orig.sqlstate`` stays readable).
        return _PG_CLASSES.get(sqlstate[:2], DBAPIError)(None, None, exc)
    driver = type(exc).__module__.startswith("asyncpg")  # without importing it on SQLite
    if isinstance(sqlstate, str) or driver or isinstance(exc, OSError | TimeoutError):
        return OperationalError(None, None, exc, connection_invalidated=True)
    return None


@asynccontextmanager
async def _driver(engine: AsyncEngine, in_transaction: bool) -> AsyncGenerator[Any]:
    async with engine.connect() as conn:
        raw = await conn.get_raw_connection()
        driver: Any = raw.driver_connection
        try:
            if in_transaction:
                async with driver.transaction():
                    yield driver
            else:
                yield driver
        except DBAPIError:
            raise
        except Exception as exc:
            failure = pg_failure(exc)
            if failure is None:
                raise
            if failure.connection_invalidated:
                await conn.invalidate(exc)  # the pool reconnects; never hands this one out
            raise failure from exc


@asynccontextmanager
async def driver_transaction(engine: AsyncEngine) -> AsyncGenerator[Any]:
    """A pooled asyncpg connection in a transaction, used on the driver itself: committed on
    success, rolled back on error; nested ``transaction()`` blocks are SAVEPOINTs. A row's
    refusal leaves the connection usable; a network, timeout or server-side connection error
    invalidates it. The connection's ``command_timeout`` bounds every statement."""
    async with _driver(engine, in_transaction=True) as driver:
        yield driver


@asynccontextmanager
async def driver_read(engine: AsyncEngine) -> AsyncGenerator[Any]:
    """A pooled asyncpg connection for statements in autocommit; errors as above."""
    async with _driver(engine, in_transaction=False) as driver:
        yield driver


@asynccontextmanager
async def read_only(factory: SessionFactory) -> AsyncGenerator[AsyncSession]:
    """A session for reads. Closing it ends the transaction without expiring loaded rows,
    so they stay readable after the connection went back to the pool."""
    async with factory() as session:
        yield session
