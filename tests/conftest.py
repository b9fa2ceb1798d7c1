"""Shared fixtures: real databases (SQLite always, PostgreSQL when reachable) and app clients."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from asgi_lifespan import LifespanManager
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from app.main import create_app
from app.settings import Settings, load_settings
from jangar_stub import JangarStub
from tests.support import db

TABLES = (
    "lane_gate_results",
    "lane_runs",
    "drift_acknowledgements",
    "model_drift",
    "drift_references",
    "shadow_reviews",
    "rollout_events",
    "rollouts",
    "service_leases",
    "artifact_evidence",
    "artifact_events",
    "lane_outputs",
    "review_outcomes",
    "llm_decision_reviews",
    "llm_dspy_workflow_artifacts",
    "service_controls",
    "control_events",
)


def pytest_report_header(config: pytest.Config) -> str:
    if db.pg_available():
        return f"postgresql: {db.PG_HOST}:{db.PG_PORT} reachable, PostgreSQL cases run"
    if db.REQUIRE_PG:
        return "postgresql: NOT reachable and TRADE_REVIEW_REQUIRE_PG=1: PostgreSQL cases FAIL"
    return "postgresql: not reachable, PostgreSQL cases are SKIPPED"


@pytest.fixture(scope="session")
def sqlite_url(tmp_path_factory: pytest.TempPathFactory) -> str:
    path: Path = tmp_path_factory.mktemp("db") / "test.db"
    url = f"sqlite+aiosqlite:///{path}"
    db.migrate(url)
    return url


@pytest.fixture(scope="session")
def postgresql_url() -> Iterator[str]:
    if not db.pg_available():
        if db.REQUIRE_PG:
            pytest.fail("PostgreSQL is required (TRADE_REVIEW_REQUIRE_PG=1) but not reachable")
        pytest.skip(f"PostgreSQL not reachable on {db.PG_HOST}:{db.PG_PORT}: case skipped")
    name = db.create_pg_database()
    url = db.pg_url(name)
    db.migrate(url)
    yield url
    db.drop_pg_database(name)


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest) -> str:
    return request.getfixturevalue(f"{request.param}_url")


async def truncate(url: str) -> None:
    engine = create_async_engine(url)
    try:
        async with engine.begin() as conn:
            for table in TABLES:
                await conn.execute(text(f"DELETE FROM {table}"))
    finally:
        await engine.dispose()


class Clock:
    """Real time unless a test pins it."""

    def __init__(self) -> None:
        self.fixed: datetime | None = None

    def __call__(self) -> datetime:
        return self.fixed or datetime.now(UTC)


@pytest.fixture
def clock() -> Clock:
    return Clock()


# The service's background loops judge on wall time (the post-promotion watch rolls back an
# artifact whose fallback rate breaches its bound; drift runs every period). A test that drives
# faults for longer than a controller period would race them, so they are off unless a test
# turns them on (the rollout and drift tests drive them by hand or opt in).
BACKGROUND_LOOPS_OFF: dict[str, Any] = {
    "rollout_controller_enabled": False,
    "learn_drift_enabled": False,
}


def make_settings(database_url: str, **overrides: Any) -> Settings:
    values = {**BACKGROUND_LOOPS_OFF, **overrides}
    return load_settings({}, database_url=database_url, controls_refresh_seconds=0.2, **values)


AppFactory = Callable[..., contextlib.AbstractAsyncContextManager[tuple[httpx.AsyncClient, Any]]]


@pytest.fixture
async def app_factory(database_url: str, clock: Clock) -> AppFactory:
    """Start the real app (lifespan included) on a clean database; yields (client, app)."""
    await truncate(database_url)

    @contextlib.asynccontextmanager
    async def factory(**overrides: Any) -> AsyncIterator[tuple[httpx.AsyncClient, Any]]:
        settings = make_settings(overrides.pop("database_url", database_url), **overrides)
        app = create_app(settings, clock=clock)
        async with LifespanManager(app, startup_timeout=30) as manager:
            transport = httpx.ASGITransport(app=manager.app)
            async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
                yield client, app

    return factory


@pytest.fixture
async def client(app_factory: AppFactory) -> AsyncIterator[httpx.AsyncClient]:
    async with app_factory() as (c, _):
        yield c


async def count_rows(url: str, table: str = "llm_decision_reviews") -> int:
    engine = create_async_engine(url)
    try:
        async with engine.connect() as conn:
            return int((await conn.execute(text(f"SELECT count(*) FROM {table}"))).scalar_one())
    finally:
        await engine.dispose()


@pytest.fixture(scope="session")
def jangar_stub_server() -> Iterator[JangarStub]:
    """One loopback Jangar for the whole session; use ``jangar_stub`` for a clean slate."""
    with JangarStub() as stub:
        yield stub


@pytest.fixture
def jangar_stub(jangar_stub_server: JangarStub) -> JangarStub:
    """The session's loopback Jangar, reset to ``valid`` with no recorded requests."""
    jangar_stub_server.reset()
    return jangar_stub_server
