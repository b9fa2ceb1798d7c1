"""Real databases for tests: a SQLite file per test session, a fresh PostgreSQL database."""

from __future__ import annotations

import os
import socket
import threading
import uuid
from pathlib import Path

from alembic import command
from alembic.config import Config

ROOT = Path(__file__).resolve().parents[2]
PG_HOST = os.environ.get("TEST_PG_HOST", "127.0.0.1")
PG_PORT = int(os.environ.get("TEST_PG_PORT", "5432"))
PG_USER = os.environ.get("TEST_PG_USER", "postgres")
REQUIRE_PG = os.environ.get("TRADE_REVIEW_REQUIRE_PG") == "1"


def pg_available() -> bool:
    try:
        with socket.create_connection((PG_HOST, PG_PORT), timeout=1):
            return True
    except OSError:
        return False


def pg_url(database: str, port: int | None = None) -> str:
    return f"postgresql+asyncpg://{PG_USER}@{PG_HOST}:{port or PG_PORT}/{database}"


def migrate(url: str, revision: str = "head", *, down: bool = False) -> None:
    """alembic upgrade (or downgrade) to ``revision``, in a thread (its env.py runs its own
    event loop)."""
    cfg = Config(str(ROOT / "alembic.ini"))
    cfg.attributes["database_url"] = url
    errors: list[BaseException] = []

    def run() -> None:
        try:
            (command.downgrade if down else command.upgrade)(cfg, revision)
        except BaseException as exc:
            errors.append(exc)

    t = threading.Thread(target=run)
    t.start()
    t.join()
    if errors:
        raise errors[0]


def create_pg_database() -> str:
    import asyncio

    import asyncpg

    name = f"trade_review_test_{uuid.uuid4().hex[:10]}"

    async def create() -> None:
        conn = await asyncpg.connect(host=PG_HOST, port=PG_PORT, user=PG_USER, database="postgres")
        try:
            await conn.execute(f'CREATE DATABASE "{name}"')
        finally:
            await conn.close()

    _run_in_thread(lambda: asyncio.run(create()))
    return name


def drop_pg_database(name: str) -> None:
    import asyncio

    import asyncpg

    async def drop() -> None:
        conn = await asyncpg.connect(host=PG_HOST, port=PG_PORT, user=PG_USER, database="postgres")
        try:
            await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await conn.close()

    _run_in_thread(lambda: asyncio.run(drop()))


def _run_in_thread(fn: object) -> None:
    errors: list[BaseException] = []

    def run() -> None:
        try:
            fn()  # type: ignore[operator]
        except BaseException as exc:
            errors.append(exc)

    t = threading.Thread(target=run)
    t.start()
    t.join()
    if errors:
        raise errors[0]
