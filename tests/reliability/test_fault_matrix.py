"""Reliability, counted not timed: every Jangar fault x 200 reviews at concurrency 16, and a
duplicate storm. Every review must be answered with a valid decision and the right fallback
reason; rows = distinct requests; no submit ever passes a failed gate or a forbidding verdict."""

from __future__ import annotations

import asyncio
import json
from collections import Counter
from typing import Any

import httpx
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from jangar_stub import Behaviour, JangarStub
from tests.conftest import truncate
from tests.support.live import assert_gates_complete, running_app, serve_live
from tests.support.requests import base_request

N = 200
CONCURRENCY = 16
# Two deadlines, so that load cannot change which reason a fault produces. Faults that answer
# at once (or fail at once) run under a deadline no loaded machine reaches, so their reason is
# exact; faults that are slow by design run under a short deadline against a stub that stays
# silent five times longer, so the deadline always ends them. Under load a slow fault's review
# may find its budget spent before the call starts (budget_exhausted): the same deadline class.
FAST_DEADLINE_S = 30.0
SLOW_DEADLINE_S = 1.0
STUB_DELAY_S = 5.0
DEADLINE_REASONS = {"timeout", "budget_exhausted"}

# Fault -> the fallback reason it must produce (None: the LLM answers).
FAST: dict[Behaviour, str | None] = {
    Behaviour.VALID: None,
    Behaviour.VALID_JSON: None,
    Behaviour.PLAN_MIXED: None,
    Behaviour.RUNAWAY: None,  # read up to the end marker, the rest is cut
    Behaviour.HTTP_500: "http_error",
    Behaviour.HTTP_429: "rate_limited",
    Behaviour.MALFORMED_JSON: "transport_error",
    Behaviour.SCHEMA_INVALID: "schema_invalid",
    Behaviour.ERROR_FRAME: "http_error",
    Behaviour.CONNECTION_RESET: "transport_error",
}
SLOW = (Behaviour.SLOW_FIRST_BYTE, Behaviour.SLOW_DRIP, Behaviour.HANG)
ALLOWING_VERDICTS = {"approve", "adjust"}


def bypassed(body: dict[str, Any]) -> bool:
    """A submit that a failed gate or a forbidding verdict should have stopped."""
    if body["decision"] != "submit":
        return False
    return (
        any(not g["passed"] for g in body["gates"])
        or body["review"]["verdict"] not in ALLOWING_VERDICTS
    )


async def storm(client: httpx.AsyncClient, bodies: list[dict[str, Any]]) -> list[httpx.Response]:
    gate = asyncio.Semaphore(CONCURRENCY)

    async def one(body: dict[str, Any]) -> httpx.Response:
        async with gate:
            return await client.post(
                "/review", content=json.dumps(body), headers={"content-type": "application/json"}
            )

    return await asyncio.gather(*(one(b) for b in bodies))


async def row_count(url: str) -> int:
    engine = create_async_engine(url)
    try:
        async with engine.connect() as conn:
            return int(
                (await conn.execute(text("SELECT count(*) FROM llm_decision_reviews"))).scalar_one()
            )
    finally:
        await engine.dispose()


async def run_phase(
    client: httpx.AsyncClient, jangar_stub: JangarStub, behaviour: Behaviour, index: int
) -> list[dict[str, Any]]:
    """Storm N reviews at ``behaviour``; check what holds for every fault; return the bodies."""
    jangar_stub.set_behaviour(behaviour)
    bodies = [base_request(strategy_id=f"fm-{index}-{i % 40}", qty=str(1 + i)) for i in range(N)]
    responses = await storm(client, bodies)
    statuses = [r.status_code for r in responses]
    assert statuses == [200] * N, (
        behaviour,
        [r.text[:200] for r in responses if r.status_code != 200][:3],
    )
    got = [r.json() for r in responses]
    for b in got:  # every gate once, and the decision is the one its reasons derive
        assert_gates_complete(b)
    assert sum(bypassed(b) for b in got) == 0, behaviour
    assert len({b["review_id"] for b in got}) == N
    return got


def executors_for(reason: str | None) -> set[str]:
    return {"dspy_live"} if reason is None else {"heuristic"}


async def test_every_fault_x200_when_stormed_then_all_answered_with_the_right_reason(
    sqlite_url: str, jangar_stub: JangarStub
) -> None:
    await truncate(sqlite_url)
    total = 0
    summary: dict[str, dict[str, int]] = {}
    for deadline, phases in ((FAST_DEADLINE_S, list(FAST)), (SLOW_DEADLINE_S, list(SLOW))):
        async with running_app(
            sqlite_url,
            jangar_base_url=jangar_stub.base_url,
            llm_dspy_timeout_seconds=deadline,
            breaker_min_calls=1_000_000,  # the matrix checks reasons; the breaker has its own tests
            bulkhead_max_concurrent=CONCURRENCY * 2,
        ) as (client, app):
            # Each app serves its own artifact (a different instruction, a different hash): the
            # second promotion retires the first, as an operator's would.
            await serve_live(app, jangar_stub, instructions=f"Review the order. Phase {deadline}.")
            jangar_stub.delay_s = STUB_DELAY_S  # after serve_live, which resets the stub
            for behaviour in phases:
                index = len(summary)
                got = await run_phase(client, jangar_stub, behaviour, index)
                total += N
                reasons = {b["lineage"]["fallback"]["reason"] for b in got}
                executors = {b["lineage"]["executor"] for b in got}
                if behaviour in FAST:
                    expected = FAST[behaviour]
                    # Every review, even beside stress-ng: a stalled event loop once turned a
                    # few new connections into ConnectTimeout -> "timeout" (the client has no
                    # per-step timers since; see review/jangar_http.py).
                    counts = Counter(b["lineage"]["fallback"]["reason"] for b in got)
                    assert reasons == {expected}, (behaviour, counts)
                    assert executors == executors_for(expected), behaviour
                else:
                    # Ended by the deadline, never answered by the LLM; most calls were made.
                    assert reasons <= DEADLINE_REASONS and "timeout" in reasons, (
                        behaviour,
                        reasons,
                    )
                    assert executors == {"heuristic"}, behaviour
                summary[behaviour.value] = {
                    "submit": sum(b["decision"] == "submit" for b in got),
                    "reject": sum(b["decision"] == "reject" for b in got),
                }
    assert await row_count(sqlite_url) == total
    # The matrix is not vacuous: the LLM path submitted orders and fallbacks did too.
    assert summary["valid"]["submit"] > 0
    assert summary["hang"]["submit"] > 0


@pytest.mark.parametrize("with_key", [True, False])
async def test_duplicate_storm_when_same_request_100x_then_one_row_identical_answers(
    app_factory: Any, database_url: str, with_key: bool
) -> None:
    async with app_factory() as (client, _):
        body = json.dumps(base_request(strategy_id="dup-storm"))
        headers = {"content-type": "application/json"}
        if with_key:
            headers["Idempotency-Key"] = "dup-storm-key"
        responses = await asyncio.gather(
            *(client.post("/review", content=body, headers=headers) for _ in range(100))
        )
        assert {r.status_code for r in responses} == {200}
        answers = {
            json.dumps({k: v for k, v in r.json().items() if k != "timings_ms"}, sort_keys=True)
            for r in responses
        }
        assert len(answers) == 1
        assert await row_count(database_url) == 1
