"""Integration fixtures: most live in tests/conftest.py (shared with tests/reliability)."""

from __future__ import annotations

import contextlib
from typing import Any

import pytest

from tests.conftest import truncate
from tests.support.live import App, AppFactory, running_app


@pytest.fixture
async def live_app(sqlite_url: str) -> AppFactory:
    """``running_app`` bound to a freshly truncated SQLite database (SQLite only: no doubling)."""
    await truncate(sqlite_url)

    def factory(**overrides: Any) -> contextlib.AbstractAsyncContextManager[App]:
        return running_app(sqlite_url, **overrides)

    return factory
