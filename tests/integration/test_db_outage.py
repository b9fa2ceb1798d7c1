"""PostgreSQL outage behind a TCP fault proxy: fail closed while down, recover without restart.

The app talks to PostgreSQL only through a ``FaultProxy``; cutting the proxy drops every open
connection and refuses new ones, which is what a database restart or a network partition
looks like from the service.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from asgi_lifespan import LifespanManager
from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import create_async_engine

from app.main import create_app
from tests.conftest import Clock, make_settings, truncate
from tests.support import db
from tests.support.proxy import FaultProxy, StallProxy
from tests.support.requests import base_request

# Each answer during the outage must come back well inside this (connect timeout is 2 s).
OUTAGE_ANSWER_BUDGET_S = 10.0
RECOVERY_BUDGET_S = 15.0


@pytest.fixture(params=["refused", "stalled"])
async def proxied(
    request: pytest.FixtureRequest, postgresql_url: str
) -> AsyncIterator[tuple[httpx.AsyncClient, FaultProxy]]:
    """The real app on a clean PostgreSQL database, reached only through a fault proxy.

    ``refused``: the outage resets every connection. ``stalled``: it silently stops traffic,
    so only the service's own timeouts bound an answer.
    """
    await truncate(postgresql_url)
    overrides: dict[str, Any] = {}
    if request.param == "refused":
        proxy = FaultProxy(db.PG_HOST, db.PG_PORT)
    else:
        proxy = StallProxy(db.PG_HOST, db.PG_PORT)
        # Shorter than the defaults (2 s / 5 s) only to keep the suite fast; the point is
        # that these timeouts, not the database, decide when the answer comes.
        overrides = {"db_connect_timeout_seconds": 0.5, "db_statement_timeout_seconds": 1.0}
    await proxy.start()
    database = make_url(postgresql_url).database
    assert database
    settings = make_settings(db.pg_url(database, port=proxy.port), **overrides)
    app = create_app(settings, clock=Clock())
    try:
        async with LifespanManager(app, startup_timeout=30) as manager:
            transport = httpx.ASGITransport(app=manager.app)
            async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
                yield client, proxy
    finally:
        await proxy.close()


async def post(client: httpx.AsyncClient, body: dict[str, Any]) -> tuple[httpx.Response, float]:
    t0 = time.perf_counter()
    r = await client.post(
        "/review", content=json.dumps(body), headers={"content-type": "application/json"}
    )
    return r, time.perf_counter() - t0


def distinct_request(tag: str) -> dict[str, Any]:
    """A clean order with its own strategy id, so its row (or absence) can be found."""
    return base_request(strategy_id=f"{tag}-{uuid.uuid4().hex[:12]}")


def assert_fail_closed(r: httpx.Response, elapsed: float) -> None:
    assert r.status_code == 503, r.text
    body = r.json()
    assert body["error"]["code"] == "audit_unavailable"
    assert body["decision"] == "reject"
    assert "submit" not in r.text
    assert elapsed < OUTAGE_ANSWER_BUDGET_S, f"503 took {elapsed:.1f}s"


async def rows_by_strategy(url: str, strategies: list[str]) -> dict[str, list[str]]:
    """strategy_id -> review_ids stored for it, read on the real database (no proxy)."""
    engine = create_async_engine(url)
    try:
        async with engine.connect() as conn:
            result = await conn.execute(
                text("SELECT strategy_id, review_id FROM llm_decision_reviews")
            )
            found: dict[str, list[str]] = {s: [] for s in strategies}
            for strategy_id, review_id in result:
                if strategy_id in found:
                    found[strategy_id].append(review_id)
            return found
    finally:
        await engine.dispose()


async def test_database_outage_when_reviews_arrive_then_503_reject_and_recovers_without_restart(
    proxied: tuple[httpx.AsyncClient, FaultProxy], postgresql_url: str
) -> None:
    client, proxy = proxied
    answered: list[tuple[str, str]] = []  # (strategy_id, review_id) of every 200
    refused: dict[str, dict[str, Any]] = {}  # strategy_id -> body of every 503

    before = distinct_request("before")
    r, _ = await post(client, before)
    assert r.status_code == 200, r.text
    answered.append((before["decision"]["strategy_id"], r.json()["review_id"]))
    assert (await client.get("/readyz")).status_code == 200

    if isinstance(proxy, StallProxy):
        proxy.stall()
    else:
        proxy.cut()

    # One at a time, then a concurrent burst: every one refuses, fast, and never submits.
    for _ in range(3):
        req = distinct_request("outage")
        r, elapsed = await post(client, req)
        assert_fail_closed(r, elapsed)
        refused[req["decision"]["strategy_id"]] = req
    burst = [distinct_request("outage") for _ in range(5)]
    for req, (r, elapsed) in zip(
        burst, await asyncio.gather(*(post(client, q) for q in burst)), strict=True
    ):
        assert_fail_closed(r, elapsed)
        refused[req["decision"]["strategy_id"]] = req

    t0 = time.perf_counter()
    ready = await client.get("/readyz")
    assert time.perf_counter() - t0 < OUTAGE_ANSWER_BUDGET_S
    assert ready.status_code == 503, ready.text
    assert ready.json()["checks"]["database"] != "ok"

    proxy.restore()

    recovered_after: float | None = None
    t0 = time.perf_counter()
    while time.perf_counter() - t0 < RECOVERY_BUDGET_S:
        req = distinct_request("after")
        r, _ = await post(client, req)
        if r.status_code == 200:
            recovered_after = time.perf_counter() - t0
            answered.append((req["decision"]["strategy_id"], r.json()["review_id"]))
            break
        assert_fail_closed(r, 0.0)
        refused[req["decision"]["strategy_id"]] = req
        await asyncio.sleep(0.2)
    assert recovered_after is not None, f"still failing {RECOVERY_BUDGET_S}s after restore"

    # Recovered for good: fresh orders, and the unchanged retry of an order refused earlier.
    retry = refused.pop(next(iter(refused)))
    for req in [*(distinct_request("after") for _ in range(3)), retry]:
        r, _ = await post(client, req)
        assert r.status_code == 200, r.text
        assert r.json()["decision"] == "submit"
        answered.append((req["decision"]["strategy_id"], r.json()["review_id"]))
    assert (await client.get("/readyz")).status_code == 200

    stored = await rows_by_strategy(postgresql_url, [s for s, _ in answered] + list(refused))
    for strategy_id, review_id in answered:
        assert stored[strategy_id] == [review_id], (strategy_id, stored[strategy_id])
    assert {s: stored[s] for s in refused if stored[s]} == {}


@pytest.mark.parametrize("proxied", ["refused"], indirect=True)
async def test_database_outage_under_load_then_no_submit_without_a_row_and_self_recovery(
    proxied: tuple[httpx.AsyncClient, FaultProxy], postgresql_url: str
) -> None:
    """8 workers post distinct orders continuously while the database is cut and restored."""
    client, proxy = proxied
    results: list[tuple[str, int, dict[str, Any]]] = []
    stop = asyncio.Event()

    async def worker(n: int) -> None:
        i = 0
        while not stop.is_set():
            i += 1
            body = distinct_request(f"load{n}-{i}")
            r, _ = await post(client, body)
            results.append((body["decision"]["strategy_id"], r.status_code, r.json()))

    workers = [asyncio.create_task(worker(n)) for n in range(8)]
    await asyncio.sleep(1.0)
    proxy.cut()
    await asyncio.sleep(1.5)
    proxy.restore()
    await asyncio.sleep(3.0)
    stop.set()
    await asyncio.gather(*workers)

    statuses = [s for _, s, _ in results]
    assert set(statuses) <= {200, 503}
    assert 503 in statuses
    first_503 = statuses.index(503)
    last_503 = len(statuses) - 1 - statuses[::-1].index(503)
    assert 200 in statuses[:first_503]
    assert 200 in statuses[last_503 + 1 :]  # recovered by itself, no restart
    for _, status, body in results:
        if status == 503:
            assert body["decision"] == "reject"
            assert body["error"]["code"] == "audit_unavailable"
    stored = await rows_by_strategy(postgresql_url, [s for s, _, _ in results])
    for strategy, status, body in results:
        if status == 200:
            assert stored[strategy] == [body["review_id"]]  # every answer has its committed row
        else:
            assert stored[strategy] == []  # a refused review left nothing behind
