"""Engine construction and the one commit/rollback boundary of the service.

Repositories and services only ``execute``/``flush``; ``unit_of_work`` commits on success and
rolls back on any exception. Nothing else in the code base calls ``commit``.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncGenerator
from contextlib import asynccontextmanager
from typing import Any

import orjson
from sqlalchemy import event
from sqlalchemy.ext.asyncio import (
    AsyncConnection,
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)
from sqlalchemy.pool import ConnectionPoolEntry

from app.settings import Settings

SessionFactory = async_sessionmaker[AsyncSession]


def _sqlite_pragmas(dbapi_conn: Any, _record: ConnectionPoolEntry) -> None:
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


@asynccontextmanager
async def core_transaction(engine: AsyncEngine) -> AsyncGenerator[AsyncConnection]:
    """A Core connection in one transaction (hot-path batch writes): commits on success,
    rolls back on error. The ORM's ``unit_of_work`` and this are the only commit points."""
    async with engine.begin() as conn:
        yield conn


@asynccontextmanager
async def driver_read(engine: AsyncEngine) -> AsyncGenerator[AsyncConnection]:
    """A pooled connection for statements run on the driver itself (hot-path reads): nothing
    goes through SQLAlchemy's execute, so no transaction is begun and the pool's return-reset
    has nothing to roll back; both drivers run a lone statement in autocommit."""
    async with engine.connect() as conn:
        yield conn


@asynccontextmanager
async def read_only(factory: SessionFactory) -> AsyncGenerator[AsyncSession]:
    """A session for reads. Closing it ends the transaction without expiring loaded rows,
    so they stay readable after the connection went back to the pool."""
    async with factory() as session:
        yield session
