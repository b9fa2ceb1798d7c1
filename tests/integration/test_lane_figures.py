"""Lane and promotion figures survive the process (issue 9, item 8).

Lanes run in ``python -m app lanes ...`` processes (CLI, CronJob) that nobody scrapes; their
runs, promotion-check results and the registry's state changes are database rows, and the
service's ``/metrics`` exports their totals. Here the lanes run in real child processes on the
same database as the app, then the app's ``/metrics`` is scraped; admin API moves count too;
a database outage never fails ``/metrics``; migration 0007 upgrades and downgrades.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from asgi_lifespan import LifespanManager
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import inspect, text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import create_async_engine

from app.lanes.service import PACKS
from app.main import create_app
from jangar_stub import Behaviour, JangarStub
from tests.conftest import AppFactory, Clock, make_settings, truncate
from tests.support import db
from tests.support.proxy import FaultProxy, StallProxy
from tests.support.registry import add_artifact

ROOT = Path(__file__).resolve().parents[2]
TOKEN = "lane-figures-admin-token-0123456789abcdef"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
# Every scrape reads the database (the cache is tested on its own below).
UNCACHED: dict[str, Any] = {"metrics_figures_cache_seconds": 0, "admin_token": TOKEN}
CHECKED_ON_EVERY_SCORECARD = PACKS - {"delta_sharpe", "max_drawdown"}

Figures = dict[tuple[str, frozenset[tuple[str, str]]], float]


async def scrape(client: httpx.AsyncClient) -> Figures:
    r = await client.get("/metrics")
    assert r.status_code == 200, r.text
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(r.text)
        for s in family.samples
    }


def value(figures: Figures, name: str, **labels: str) -> float:
    return figures.get((name, frozenset(labels.items())), 0.0)


def labelled(figures: Figures, name: str) -> dict[frozenset[tuple[str, str]], float]:
    return {labels: v for (n, labels), v in figures.items() if n == name}


def runs(figures: Figures) -> dict[tuple[str, str], float]:
    """(lane, outcome) -> trade_review_lane_runs_total."""
    return {
        (dict(labels)["lane"], dict(labels)["outcome"]): v
        for labels, v in labelled(figures, "trade_review_lane_runs_total").items()
    }


def states(figures: Figures) -> dict[tuple[str, str], float]:
    """(model_type, state) -> learn_model_state_total."""
    return {
        (dict(labels)["model_type"], dict(labels)["state"]): v
        for labels, v in labelled(figures, "learn_model_state_total").items()
    }


async def lane_cli(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """``python -m app <args>`` in a child process (its counters die with it)."""
    return await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-m", "app", *args],
        cwd=ROOT,
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=300,
    )


async def admin(client: httpx.AsyncClient, path: str, body: dict[str, Any]) -> httpx.Response:
    return await client.post(path, json=body, headers=AUTH)


# ------------------------------------------------------------------------------ CLI lanes


async def test_lane_figures_when_lanes_run_in_cli_processes_then_service_metrics_count_them(
    app_factory: AppFactory, database_url: str, jangar_stub: JangarStub
) -> None:
    env = {"DATABASE_URL": database_url, "JANGAR_BASE_URL": jangar_stub.base_url}
    async with app_factory(**UNCACHED) as (client, _):
        before = await scrape(client)
        assert runs(before) == {}  # a clean database: no run yet, none counted in process
        # The app bootstrapped its heuristic: registered, shadow, active (registry events).
        assert states(before) == {
            ("heuristic", "candidate"): 1,
            ("heuristic", "shadow"): 1,
            ("heuristic", "active"): 1,
        }

        made = await lane_cli("lanes", "synthetic", "--n", "40", "--seed", "3", env=env)
        assert made.returncode == 0, made.stderr
        dataset = made.stdout.strip()
        built = await lane_cli(
            "lanes", "compile", "--dataset", dataset, "--optimizer", "bootstrap", "--seed", "3",
            env=env,
        )  # fmt: skip
        assert built.returncode == 0, built.stderr
        candidate = built.stdout.strip()
        jangar_stub.set_behaviour(Behaviour.HTTP_500)  # every LM call fails: checks fail
        evaluated = await lane_cli(
            "lanes", "eval", "--artifact", candidate, "--dataset", dataset, env=env
        )
        assert evaluated.returncode == 0, evaluated.stderr
        denied = await lane_cli("lanes", "promote", candidate, "--to", "shadow", env=env)
        assert denied.returncode == 3, denied.stderr
        missing = await lane_cli("lanes", "promote", "0" * 64, "--to", "shadow", env=env)
        assert missing.returncode == 4, missing.stderr

        after = await scrape(client)

    assert runs(after) == {
        ("synthetic", "ok"): 1,
        ("compile", "ok"): 1,
        ("eval", "ok"): 1,
        ("promote", "denied"): 1,  # counted once, as denied (not also as ok)
        ("promote", "error"): 1,
    }
    for lane, n in (("synthetic", 1), ("compile", 1), ("eval", 1), ("promote", 2)):
        count = value(after, "trade_review_lane_duration_seconds_count", lane=lane)
        inf = value(after, "trade_review_lane_duration_seconds_bucket", lane=lane, le="+Inf")
        assert count == inf == n, lane
    assert states(after) == {**states(before), ("dspy_live", "candidate"): 1}

    failed = labelled(after, "learn_gate_fail_total")
    passed = labelled(after, "learn_gate_pass_total")
    assert value(after, "learn_gate_fail_total", model_type="dspy_live", pack="fallback_rate") == 1
    assert value(after, "learn_gate_fail_total", model_type="dspy_live", pack="schema_valid") == 1
    checked = {dict(k)["pack"]: v for k, v in {**failed, **passed}.items()}
    assert set(checked) >= CHECKED_ON_EVERY_SCORECARD  # each check of the one scorecard ...
    assert all(
        value(after, "learn_gate_fail_total", model_type="dspy_live", pack=pack)
        + value(after, "learn_gate_pass_total", model_type="dspy_live", pack=pack)
        == 1  # ... counted once, passed or failed
        for pack in checked
    )
    assert value(after, "trade_review_lane_figures_read_failures_total") == value(
        before, "trade_review_lane_figures_read_failures_total"
    )


# ------------------------------------------------------------------------------ admin API


async def test_lane_figures_when_admin_api_moves_artifacts_then_runs_and_state_changes_counted(
    app_factory: AppFactory,
) -> None:
    async with app_factory(**UNCACHED, learn_shadow_duration_days=0) as (client, app):
        before = states(await scrape(client))
        good = await add_artifact(app, 1)
        no_card = await add_artifact(app, 2, card=False)

        r = await admin(client, f"/admin/artifacts/{good}/transition", {"to": "shadow"})
        assert r.status_code == 200, r.text
        approval = {"approver": "risk-officer", "ticket": "CHG-9"}
        r = await admin(
            client, f"/admin/artifacts/{good}/transition", {"to": "active", "approval": approval}
        )
        assert r.status_code == 200, r.text
        r = await admin(client, f"/admin/artifacts/{no_card}/transition", {"to": "shadow"})
        assert r.status_code == 409 and r.json()["error"]["code"] == "E_LEARN_GATE_FAILED"
        r = await admin(client, f"/admin/artifacts/{no_card}/transition", {"to": "retired"})
        assert r.status_code == 200, r.text
        r = await admin(client, "/admin/artifacts/rollback", {"reason": "figures test"})
        assert r.status_code == 200, r.text
        r = await admin(client, "/admin/artifacts/rollback", {"reason": "nothing left"})
        assert r.status_code == 404, r.text

        after = await scrape(client)

    assert runs(after) == {
        ("promote", "ok"): 2,
        ("promote", "denied"): 1,
        ("retire", "ok"): 1,
        ("rollback", "ok"): 1,
        ("rollback", "error"): 1,
    }
    entered = {k: v - before.get(k, 0) for k, v in states(after).items()}
    assert {k: v for k, v in entered.items() if v} == {
        ("heuristic", "candidate"): 2,  # both registered
        ("heuristic", "shadow"): 1,
        # promoted, then the bootstrap artifact restored by the rollback
        ("heuristic", "active"): 2,
        # superseded bootstrap, retired candidate, the promoted one rolled back from
        ("heuristic", "retired"): 3,
    }


# ------------------------------------------------------------------------------ cache


async def test_lane_figures_when_scraped_within_cache_period_then_database_not_read_again(
    app_factory: AppFactory, database_url: str
) -> None:
    env = {"DATABASE_URL": database_url}
    async with app_factory(metrics_figures_cache_seconds=300) as (client, _):
        assert runs(await scrape(client)) == {}
        made = await lane_cli("lanes", "synthetic", "--n", "10", "--seed", "1", env=env)
        assert made.returncode == 0, made.stderr
        assert runs(await scrape(client)) == {}  # the figures read at the first scrape
    async with app_factory(metrics_figures_cache_seconds=300) as (client, _):
        assert runs(await scrape(client)) == {("synthetic", "ok"): 1}  # a new reader reads


# ------------------------------------------------------------------------------ outage


@pytest.fixture(params=["refused", "stalled"])
async def proxied(
    request: pytest.FixtureRequest, postgresql_url: str
) -> AsyncIterator[tuple[httpx.AsyncClient, FaultProxy]]:
    """The app on PostgreSQL through a fault proxy (the CLI reaches the database directly)."""
    await truncate(postgresql_url)
    proxy = FaultProxy(db.PG_HOST, db.PG_PORT)
    if request.param == "stalled":
        proxy = StallProxy(db.PG_HOST, db.PG_PORT)
    await proxy.start()
    database = make_url(postgresql_url).database
    assert database
    settings = make_settings(
        db.pg_url(database, port=proxy.port),
        db_connect_timeout_seconds=0.5,
        db_statement_timeout_seconds=1.0,
        **UNCACHED,
    )
    app = create_app(settings, clock=Clock())
    try:
        async with LifespanManager(app, startup_timeout=30) as manager:
            transport = httpx.ASGITransport(app=manager.app)
            async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
                yield client, proxy
    finally:
        await proxy.close()


def _down(proxy: FaultProxy) -> None:
    if isinstance(proxy, StallProxy):
        proxy.stall()
    else:
        proxy.cut()


async def test_lane_figures_when_database_down_then_metrics_answer_last_figures_and_count_it(
    proxied: tuple[httpx.AsyncClient, FaultProxy], postgresql_url: str
) -> None:
    client, proxy = proxied
    env = {"DATABASE_URL": postgresql_url}
    made = await lane_cli("lanes", "synthetic", "--n", "10", "--seed", "1", env=env)
    assert made.returncode == 0, made.stderr
    up = await scrape(client)
    assert runs(up) == {("synthetic", "ok"): 1}
    failures = value(up, "trade_review_lane_figures_read_failures_total")

    _down(proxy)
    made = await lane_cli("lanes", "synthetic", "--n", "10", "--seed", "2", env=env)
    assert made.returncode == 0, made.stderr  # the lane's process still reaches the database
    for n in (1, 2):
        down = await scrape(client)  # 200 (scrape asserts it), with the last figures read
        assert runs(down) == {("synthetic", "ok"): 1}
        assert value(down, "trade_review_lane_figures_read_failures_total") == failures + n
        assert value(down, "trade_review_lane_duration_seconds_count", lane="synthetic") == 1

    proxy.restore()
    for _ in range(50):  # the pool reconnects on a later read; no bound on how soon
        if runs(await scrape(client)) == {("synthetic", "ok"): 2}:
            break
        await asyncio.sleep(0.1)
    assert runs(await scrape(client)) == {("synthetic", "ok"): 2}


# ------------------------------------------------------------------------------ migration


@pytest.fixture(params=["sqlite", "postgresql"])
def fresh_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite+aiosqlite:///{tmp_path / 'm.db'}"
        return
    if not db.pg_available():
        pytest.skip(f"PostgreSQL not reachable on {db.PG_HOST}:{db.PG_PORT}: case skipped")
    name = db.create_pg_database()
    yield db.pg_url(name)
    db.drop_pg_database(name)


async def _tables(url: str) -> set[str]:
    engine = create_async_engine(url)
    try:
        async with engine.connect() as conn:
            return set(await conn.run_sync(lambda c: inspect(c).get_table_names()))
    finally:
        await engine.dispose()


async def test_migration_0007_when_upgraded_and_downgraded_then_lane_tables_come_and_go(
    fresh_url: str,
) -> None:
    db.migrate(fresh_url, "0005_rollout")
    assert not {"lane_runs", "lane_gate_results"} & await _tables(fresh_url)
    db.migrate(fresh_url)
    assert {"lane_runs", "lane_gate_results"} <= await _tables(fresh_url)
    engine = create_async_engine(fresh_url)
    try:
        async with engine.begin() as conn:
            await conn.execute(
                text(
                    "INSERT INTO lane_runs (lane, outcome, actor, started_at, finished_at, "
                    "duration_seconds) VALUES ('eval', 'ok', 'cli', '2026-12-01 00:00:00', "
                    "'2026-12-01 00:00:01', 1.0)"
                )
            )
            run_id = (await conn.execute(text("SELECT id FROM lane_runs"))).scalar_one()
            await conn.execute(
                text(
                    "INSERT INTO lane_gate_results (run_id, model_type, pack, passed, "
                    "created_at) VALUES (:r, 'dspy_live', 'coverage', :p, '2026-12-01 00:00:01')"
                ),
                {"r": run_id, "p": True},
            )
    finally:
        await engine.dispose()
    db.migrate(fresh_url, "0005_rollout", down=True)
    tables = await _tables(fresh_url)
    assert not {"lane_runs", "lane_gate_results"} & tables
    assert "artifact_events" in tables  # state changes were never moved out of the registry
    db.migrate(fresh_url)
    assert {"lane_runs", "lane_gate_results"} <= await _tables(fresh_url)
