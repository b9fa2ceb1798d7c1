"""Integration fixtures: most live in tests/conftest.py (shared with tests/reliability)."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from typing import Any

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from app.db.session import create_engine
from tests.conftest import make_settings, truncate
from tests.support.live import App, AppFactory, running_app


@pytest.fixture
async def live_app(sqlite_url: str) -> AppFactory:
    """``running_app`` bound to a freshly truncated SQLite database (SQLite only: no doubling)."""
    await truncate(sqlite_url)

    def factory(**overrides: Any) -> contextlib.AbstractAsyncContextManager[App]:
        return running_app(sqlite_url, **overrides)

    return factory


@pytest.fixture
async def engine(database_url: str) -> AsyncIterator[AsyncEngine]:
    """The service's engine on a freshly truncated database (each database of the matrix)."""
    await truncate(database_url)
    engine = create_engine(make_settings(database_url))
    try:
        yield engine
    finally:
        await engine.dispose()
