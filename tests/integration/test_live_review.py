"""The ``dspy_live`` path end to end: POST /review -> DSPy program -> Jangar engine -> the real
loopback Jangar stub, then the deterministic gates and the persisted row.

Each test starts the real app (lifespan included) on a clean SQLite database, registers a
``dspy_live`` artifact through the registry service and waits until the replica serves it.
Time bounds are correctness bounds (the deadline plus a generous margin), never speed targets.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
import uuid
from collections.abc import AsyncIterator
from decimal import Decimal
from typing import Any

import httpx
import pytest
from prometheus_client import REGISTRY
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from app.db.session import unit_of_work
from jangar_stub import Behaviour, JangarStub, chat_adapter_content
from tests.conftest import truncate
from tests.support.live import (
    ALL_GATES,
    DEADLINE_S,
    MARGIN_S,
    MODEL,
    AppFactory,
    activate_live,
    assert_fallback,
    assert_gates_complete,
    assert_stub_answer,
    budget_left_ms,
    post,
    review_row,
    running_app,
    serve_live,
    stub_answer,
    unique_request,
    wait_for,
    wait_serving,
)

# ---------------------------------------------------------------------------- contract


async def test_live_call_when_reviewed_then_stub_sees_exact_body_headers_and_instructions(
    live_app: AppFactory, jangar_stub: JangarStub
) -> None:
    marker = f"MARKER-{uuid.uuid4().hex}: review like a careful desk head."
    traceparent = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
    async with live_app(
        jangar_base_url=jangar_stub.base_url,
        jangar_extra_headers={"X-Desk": "equities", "X-Tenant": "t-1"},
    ) as (client, app):
        digest = await serve_live(app, jangar_stub, instructions=marker)
        r, _ = await post(
            client, unique_request("contract"), traceparent=traceparent, tracestate="desk=1"
        )
        assert r.status_code == 200, r.text
        body = r.json()
        assert body["lineage"]["artifact_hash"] == digest
        assert_stub_answer(body, stub_answer())

    [seen] = jangar_stub.requests
    assert seen.path == "/openai/v1/chat/completions"
    assert set(seen.body) == {
        "model", "messages", "stream", "stream_options", "max_completion_tokens"
    }  # fmt: skip
    assert seen.body["max_completion_tokens"] == 1024  # LLM_MAX_COMPLETION_TOKENS' default
    assert seen.body["model"] == MODEL
    assert seen.body["stream"] is True
    assert seen.body["stream_options"] == {"include_usage": True, "include_plan": False}
    messages = seen.body["messages"]
    assert [m["role"] for m in messages] == ["system", "user"]
    assert all(isinstance(m["content"], str) and m["content"] for m in messages)
    assert marker in messages[0]["content"]
    assert "AAPL" in messages[1]["content"]  # the order travels as a typed input

    headers = seen.headers
    assert "authorization" not in headers  # no JANGAR_API_KEY configured
    assert headers["x-desk"] == "equities"
    assert headers["x-tenant"] == "t-1"
    assert headers["traceparent"] == traceparent
    assert headers["tracestate"] == "desk=1"
    assert headers["accept"] == "text/event-stream"
    assert headers["content-type"].startswith("application/json")


async def test_api_key_when_configured_then_bearer_header_and_no_trace_without_incoming(
    live_app: AppFactory, jangar_stub: JangarStub
) -> None:
    async with live_app(jangar_base_url=jangar_stub.base_url, jangar_api_key="sk-test-123") as (
        client,
        app,
    ):
        await serve_live(app, jangar_stub)
        r, _ = await post(client, unique_request("auth"))
        assert r.status_code == 200, r.text
        assert r.json()["lineage"]["executor"] == "dspy_live"
        assert "sk-test-123" not in r.text

    [seen] = jangar_stub.requests
    assert seen.headers["authorization"] == "Bearer sk-test-123"
    assert "traceparent" not in seen.headers
    assert "sk-test-123" not in json.dumps(seen.body)


# ---------------------------------------------------------------------------- verdicts


@pytest.fixture(params=["sqlite", "postgresql"])
async def any_db_app(
    request: pytest.FixtureRequest, jangar_stub: JangarStub
) -> AsyncIterator[tuple[httpx.AsyncClient, Any, str]]:
    url: str = request.getfixturevalue(f"{request.param}_url")
    await truncate(url)
    async with running_app(url, jangar_base_url=jangar_stub.base_url) as (client, app):
        yield client, app, url


async def test_valid_sse_answer_when_reviewed_then_gates_judge_it_and_tokens_are_recorded(
    any_db_app: tuple[httpx.AsyncClient, Any, str], jangar_stub: JangarStub
) -> None:
    client, app, url = any_db_app
    digest = await serve_live(app, jangar_stub)
    answer = stub_answer(
        confidence=0.91, uncertainty="low", risk_flags=["earnings_soon"], required_checks=[]
    )
    jangar_stub.set_answer(answer)

    r, _ = await post(client, unique_request("happy"))
    assert r.status_code == 200, r.text
    body = r.json()
    assert_stub_answer(body, answer)
    assert body["lineage"]["artifact_hash"] == digest
    assert body["decision"] == "submit"
    assert_gates_complete(body)
    assert all(g["passed"] for g in body["gates"])
    assert body["timings_ms"]["llm"] > 0
    assert len(jangar_stub.requests) == 1

    row = await review_row(url, body["review_id"])
    assert row["executor"] == "dspy_live"
    assert row["model"] == MODEL
    assert row["fallback_reason"] is None
    assert row["artifact_hash"] == digest
    assert row["verdict"] == "approve"
    assert row["llm_latency_ms"] is not None
    # The stub's usage frame (deterministic counts) is what the row records.
    [seen] = jangar_stub.requests
    assert row["prompt_tokens"] == max(1, len(json.dumps(seen.body["messages"])) // 4)
    assert row["completion_tokens"] == max(1, len(chat_adapter_content(answer)) // 4)


async def test_adjust_when_enlarging_past_policy_then_order_is_never_larger(
    live_app: AppFactory, jangar_stub: JangarStub
) -> None:
    async with live_app(jangar_base_url=jangar_stub.base_url) as (client, app):
        await serve_live(app, jangar_stub)
        answer = stub_answer(verdict="adjust", adjusted_qty=50.0, confidence=0.8)
        jangar_stub.set_answer(answer)
        r, _ = await post(client, unique_request("enlarge", qty="10"))

    assert r.status_code == 200, r.text
    body = r.json()
    assert_stub_answer(body, answer)
    assert Decimal(body["review"]["adjusted_qty"]) == Decimal(50)  # what the LLM asked for
    assert_gates_complete(body)
    # Clamped to the top of [min, max] x qty (the request's max multiplier is 1.0): the
    # original size is submitted, the clamp is recorded, nothing is enlarged.
    assert body["decision"] == "submit", body["reasons"]
    assert Decimal(body["order"]["qty"]) == Decimal(10)
    assert body["order"]["resized"] is False
    adjustment = next(g for g in body["gates"] if g["code"] == "adjustment")
    assert adjustment["passed"] is True
    assert adjustment["reason"] == "adjusted qty 50.0 clamped to [2.50, 10.0]; qty 10 -> 10"


async def test_adjust_when_smaller_then_order_is_resized_to_it(
    live_app: AppFactory, jangar_stub: JangarStub
) -> None:
    async with live_app(jangar_base_url=jangar_stub.base_url) as (client, app):
        await serve_live(app, jangar_stub)
        answer = stub_answer(verdict="adjust", adjusted_qty=5.0, adjusted_order_type="limit")
        jangar_stub.set_answer(answer)
        r, _ = await post(client, unique_request("shrink", qty="10"))

    body = r.json()
    assert_stub_answer(body, answer)
    assert body["decision"] == "submit", body["reasons"]
    assert Decimal(body["order"]["qty"]) == Decimal(5)
    assert body["order"]["resized"] is True
    assert body["order"]["order_type"] == "limit"


async def test_adjust_when_order_type_not_allowed_then_rejected_not_sent_as_proposed(
    live_app: AppFactory, jangar_stub: JangarStub
) -> None:
    async with live_app(jangar_base_url=jangar_stub.base_url) as (client, app):
        await serve_live(app, jangar_stub)
        # The request's policy allows market and limit only.
        answer = stub_answer(verdict="adjust", adjusted_qty=5.0, adjusted_order_type="stop")
        jangar_stub.set_answer(answer)
        r, _ = await post(client, unique_request("badtype", qty="10"))

    body = r.json()
    assert_stub_answer(body, answer)
    assert body["decision"] == "reject"
    assert "adjustment" in body["reasons"]
    assert_gates_complete(body)


async def test_veto_answer_when_reviewed_then_rejected_with_verdict_veto(
    live_app: AppFactory, jangar_stub: JangarStub, sqlite_url: str
) -> None:
    async with live_app(jangar_base_url=jangar_stub.base_url) as (client, app):
        await serve_live(app, jangar_stub)
        answer = stub_answer(verdict="veto", confidence=0.9, risk_flags=["news_pending"])
        jangar_stub.set_answer(answer)
        r, _ = await post(client, unique_request("veto"))

    body = r.json()
    assert_stub_answer(body, answer)
    assert body["decision"] == "reject"
    assert body["reasons"][0] == "verdict_veto"
    assert_gates_complete(body)
    row = await review_row(sqlite_url, body["review_id"])
    assert (row["decision"], row["verdict"], row["executor"]) == ("reject", "veto", "dspy_live")


# ---------------------------------------------------------------------------- faults


# Faults that only the deadline ends, and faults that fail by themselves at once. The second
# kind runs under a deadline no loaded machine reaches, so load cannot turn its reason into a
# timeout; the first runs under the short one against a stub silent five times longer.
SLOW_FAULTS = [
    (Behaviour.HANG, "timeout"),
    (Behaviour.SLOW_FIRST_BYTE, "timeout"),
    (Behaviour.SLOW_DRIP, "timeout"),
]
FAST_FAULTS = [
    (Behaviour.HTTP_500, "http_error"),
    (Behaviour.ERROR_FRAME, "http_error"),
    (Behaviour.HTTP_429, "rate_limited"),
    (Behaviour.MALFORMED_JSON, "transport_error"),
    (Behaviour.CONNECTION_RESET, "transport_error"),
    (Behaviour.SCHEMA_INVALID, "schema_invalid"),
]
FAST_FAULT_DEADLINE_S = 30.0


@contextlib.asynccontextmanager
async def _fault_app(
    sqlite_url: str, stub: JangarStub, deadline_s: float
) -> AsyncIterator[tuple[httpx.AsyncClient, Any, str]]:
    await truncate(sqlite_url)
    async with running_app(
        sqlite_url,
        jangar_base_url=stub.base_url,
        breaker_min_calls=1000,
        llm_dspy_timeout_seconds=deadline_s,
    ) as (client, app):
        digest = await activate_live(app)
        await wait_serving(app, digest)
        yield client, app, digest


@pytest.fixture(scope="class")
async def fault_app(
    sqlite_url: str, jangar_stub_server: JangarStub
) -> AsyncIterator[tuple[httpx.AsyncClient, Any, str]]:
    """One app for a whole test class, on the short deadline; the breaker never opens there."""
    async with _fault_app(sqlite_url, jangar_stub_server, DEADLINE_S) as app:
        yield app


@pytest.fixture(scope="class")
async def fast_fault_app(
    sqlite_url: str, jangar_stub_server: JangarStub
) -> AsyncIterator[tuple[httpx.AsyncClient, Any, str]]:
    """The same on a deadline no fault that fails at once can reach, however loaded."""
    async with _fault_app(sqlite_url, jangar_stub_server, FAST_FAULT_DEADLINE_S) as app:
        yield app


class TestFaults:
    """Every stub fault against one app: the heuristic answers, the gates judge, a row is kept."""

    @pytest.mark.parametrize(
        ("behaviour", "reason"), SLOW_FAULTS, ids=[b.value for b, _ in SLOW_FAULTS]
    )
    async def test_slow_fault_when_reviewed_then_heuristic_answers_at_the_deadline(
        self,
        fault_app: tuple[httpx.AsyncClient, Any, str],
        jangar_stub: JangarStub,
        sqlite_url: str,
        behaviour: Behaviour,
        reason: str,
    ) -> None:
        client, _, digest = fault_app
        jangar_stub.set_answer(stub_answer())
        jangar_stub.delay_s = DEADLINE_S * 5  # slow behaviours outlast the deadline + margin
        jangar_stub.set_behaviour(behaviour)

        r, elapsed = await post(client, unique_request(f"fault-{behaviour.value}"))

        assert r.status_code == 200, r.text
        assert elapsed <= DEADLINE_S + MARGIN_S, elapsed  # cut, not waited out (5 s)
        body = r.json()
        await _assert_fault_answer(body, digest, sqlite_url, jangar_stub, reason)
        # The answer's deadline, not an earlier give-up, ended the call: the LLM step had
        # what arrival + deadline left after the tail reserve (at most half the deadline).
        budget = budget_left_ms(fault_app[1], body)
        assert budget / 2 - 50 <= body["timings_ms"]["llm"], body["timings_ms"]
        assert body["timings_ms"]["llm"] <= budget + MARGIN_S * 1000, body["timings_ms"]

    async def test_hang_when_deadline_hits_then_stub_sees_the_disconnect(
        self, fault_app: tuple[httpx.AsyncClient, Any, str], jangar_stub: JangarStub
    ) -> None:
        client, _, _ = fault_app
        jangar_stub.set_behaviour(Behaviour.HANG)
        r, elapsed = await post(client, unique_request("hang-disconnect"))
        assert r.json()["lineage"]["fallback"]["reason"] == "timeout"
        assert elapsed <= DEADLINE_S + MARGIN_S
        await wait_for(lambda: jangar_stub.disconnects >= 1, 2.0, "stub seeing the hang-up")

    async def test_plan_mixed_when_include_plan_false_then_valid_answer_no_fallback(
        self, fault_app: tuple[httpx.AsyncClient, Any, str], jangar_stub: JangarStub
    ) -> None:
        client, _, _ = fault_app
        answer = stub_answer(verdict="approve", confidence=0.77)
        jangar_stub.set_answer(answer)
        jangar_stub.set_behaviour(Behaviour.PLAN_MIXED)
        r, _ = await post(client, unique_request("plan"))
        body = r.json()
        assert_stub_answer(body, answer)
        assert "<plan>" not in body["review"]["rationale"]
        [seen] = jangar_stub.requests
        assert seen.body["stream_options"]["include_plan"] is False

    async def test_valid_json_reply_when_not_streamed_then_still_parsed(
        self, fault_app: tuple[httpx.AsyncClient, Any, str], jangar_stub: JangarStub
    ) -> None:
        client, _, _ = fault_app
        answer = stub_answer(confidence=0.66)
        jangar_stub.set_answer(answer)
        jangar_stub.set_behaviour(Behaviour.VALID_JSON)
        r, _ = await post(client, unique_request("json"))
        assert_stub_answer(r.json(), answer)


class TestFastFaults:
    """Faults that fail by themselves, on their own app (a separate database state)."""

    @pytest.mark.parametrize(
        ("behaviour", "reason"), FAST_FAULTS, ids=[b.value for b, _ in FAST_FAULTS]
    )
    async def test_fast_fault_when_reviewed_then_heuristic_answers_with_its_reason(
        self,
        fast_fault_app: tuple[httpx.AsyncClient, Any, str],
        jangar_stub: JangarStub,
        sqlite_url: str,
        behaviour: Behaviour,
        reason: str,
    ) -> None:
        client, _, digest = fast_fault_app
        jangar_stub.set_answer(stub_answer())
        jangar_stub.set_behaviour(behaviour)

        r, _ = await post(client, unique_request(f"fault-{behaviour.value}"))

        assert r.status_code == 200, r.text
        body = r.json()
        # Ended by the fault itself (its own reason), long before a deadline that was 30 s.
        await _assert_fault_answer(body, digest, sqlite_url, jangar_stub, reason)
        assert body["timings_ms"]["llm"] < FAST_FAULT_DEADLINE_S * 1000 / 2, body["timings_ms"]


# ---------------------------------------------------------------------------- load


async def test_64_concurrent_reviews_when_stub_hangs_then_all_fall_back_by_the_deadline(
    live_app: AppFactory, jangar_stub: JangarStub, sqlite_url: str
) -> None:
    n = 64
    async with live_app(
        jangar_base_url=jangar_stub.base_url, breaker_min_calls=1000, bulkhead_max_concurrent=n
    ) as (client, app):
        await serve_live(app, jangar_stub)
        jangar_stub.set_behaviour(Behaviour.HANG)
        finished: list[float] = []

        async def one(i: int) -> httpx.Response:
            r, _ = await post(client, unique_request(f"storm{i}"))
            finished.append(time.perf_counter())
            return r

        async def probe() -> tuple[httpx.Response, float]:
            await asyncio.sleep(DEADLINE_S / 4)  # mid-storm: every review is in flight
            r = await client.get("/healthz")
            return r, time.perf_counter()

        start = time.perf_counter()
        health = asyncio.create_task(probe())
        responses = await asyncio.gather(*(one(i) for i in range(n)))
        health_response, health_at = await health

    assert health_response.status_code == 200
    # Ordered, not timed: the probe was answered while every review still hung on Jangar
    # (they end only at the deadline), so the storm did not block the event loop.
    assert health_at < min(finished), (health_at - start, min(finished) - start)
    assert [r.status_code for r in responses] == [200] * n
    reasons = [r.json()["lineage"]["fallback"]["reason"] for r in responses]
    # On a starved runner a review can spend its whole budget before the LLM step; it then
    # goes to the heuristic without calling (budget_exhausted), never past the deadline.
    assert set(reasons) <= {"timeout", "budget_exhausted"}, reasons
    assert reasons.count("timeout") >= n // 2, reasons  # the storm really was in flight
    # A budget_exhausted review never calls (a starved stub may not even have read every call
    # that timed out, hence <=).
    assert len(jangar_stub.requests) <= reasons.count("timeout")
    assert len({r.json()["review_id"] for r in responses}) == n
    engine = create_async_engine(sqlite_url)
    try:
        async with engine.connect() as conn:
            rows = await conn.execute(
                text(
                    "SELECT count(*) FROM llm_decision_reviews "
                    "WHERE strategy_id LIKE 'storm%' "
                    "AND fallback_reason IN ('timeout', 'budget_exhausted')"
                )
            )
            assert rows.scalar_one() == n
    finally:
        await engine.dispose()
    # Last, so the properties above are reported even when this bound is missed.
    latest = max(finished) - start  # from the storm's start to the last answer
    timings = [r.json()["timings_ms"] for r in responses]
    where = {  # where the time went, for the failure message
        stage: max(t[stage] for t in timings) for stage in ("read", "llm", "write", "total")
    }
    assert latest <= DEADLINE_S + MARGIN_S, (latest, where)


# ---------------------------------------------------------------------------- breaker, bulkhead


async def test_breaker_when_gateway_fails_then_opens_stops_calling_and_recovers(
    live_app: AppFactory, jangar_stub: JangarStub
) -> None:
    cooldown = 1.0
    async with live_app(
        jangar_base_url=jangar_stub.base_url,
        breaker_min_calls=4,
        breaker_failure_rate=0.5,
        breaker_cooldown_seconds=cooldown,
    ) as (client, app):
        await serve_live(app, jangar_stub)
        jangar_stub.set_behaviour(Behaviour.HTTP_500)

        async def reason_of(tag: str) -> str | None:
            r, elapsed = await post(client, unique_request(tag))
            assert r.status_code == 200, r.text
            assert elapsed <= DEADLINE_S + MARGIN_S
            body = r.json()
            assert_gates_complete(body)
            return body["lineage"]["fallback"]["reason"]

        # min_calls failures at a 100 % failure rate trip it; until then each call goes out.
        for i in range(4):
            assert await reason_of(f"brk-fail{i}") == "http_error"
        assert len(jangar_stub.requests) == 4
        for i in range(3):
            assert await reason_of(f"brk-open{i}") == "circuit_open"
        assert len(jangar_stub.requests) == 4  # open: the gateway is left alone

        # Half-open probe that fails re-opens at once.
        await asyncio.sleep(cooldown + 0.2)
        assert await reason_of("brk-probe-fail") == "http_error"
        assert len(jangar_stub.requests) == 5
        assert await reason_of("brk-reopened") == "circuit_open"
        assert len(jangar_stub.requests) == 5

        # The gateway heals: after the cooldown the probe succeeds and the breaker closes.
        jangar_stub.set_behaviour(Behaviour.VALID)
        await asyncio.sleep(cooldown + 0.2)
        r, _ = await post(client, unique_request("brk-probe-ok"))
        assert_stub_answer(r.json(), stub_answer())
        r, _ = await post(client, unique_request("brk-closed"))
        assert_stub_answer(r.json(), stub_answer())
        assert len(jangar_stub.requests) == 7


async def test_breaker_probe_when_cancelled_then_breaker_does_not_wedge(
    live_app: AppFactory, jangar_stub: JangarStub
) -> None:
    """A half-open probe whose request is cancelled (client gone under a server that cancels,
    a cancelled background review, shutdown) must give its probe slot back."""
    cooldown = 0.5
    async with live_app(
        jangar_base_url=jangar_stub.base_url,
        breaker_min_calls=2,
        breaker_failure_rate=0.5,
        breaker_cooldown_seconds=cooldown,
    ) as (client, app):
        await serve_live(app, jangar_stub)
        jangar_stub.set_behaviour(Behaviour.HTTP_500)
        for i in range(2):
            await post(client, unique_request(f"wedge-fail{i}"))
        r, _ = await post(client, unique_request("wedge-open"))
        assert r.json()["lineage"]["fallback"]["reason"] == "circuit_open"

        await asyncio.sleep(cooldown + 0.1)
        jangar_stub.set_behaviour(Behaviour.HANG)
        probe = asyncio.create_task(post(client, unique_request("wedge-probe")))
        await wait_for(lambda: len(jangar_stub.requests) == 3, 2.0, "the probe reaching Jangar")
        probe.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await probe

        # The gateway is healthy again; within a cooldown a new probe must be let through.
        jangar_stub.set_behaviour(Behaviour.VALID)
        await asyncio.sleep(cooldown + 0.1)
        reasons = []
        for i in range(3):
            r, _ = await post(client, unique_request(f"wedge-after{i}"))
            reasons.append(r.json()["lineage"]["fallback"]["reason"])
        assert reasons[-1] is None, (reasons, app.state.pipeline.runtime.live.breaker.state)


async def test_bulkhead_when_full_then_extra_reviews_fall_back_at_once(
    live_app: AppFactory, jangar_stub: JangarStub
) -> None:
    async with live_app(
        jangar_base_url=jangar_stub.base_url, bulkhead_max_concurrent=2, breaker_min_calls=1000
    ) as (client, app):
        await serve_live(app, jangar_stub)
        jangar_stub.set_behaviour(Behaviour.SLOW_FIRST_BYTE)
        jangar_stub.delay_s = DEADLINE_S * 0.6  # answers, but only after a while
        results = await asyncio.gather(
            *(post(client, unique_request(f"bulk{i}")) for i in range(6))
        )

    by_reason: dict[str | None, list[float]] = {}
    for r, elapsed in results:
        assert r.status_code == 200, r.text
        body = r.json()
        assert_gates_complete(body)
        by_reason.setdefault(body["lineage"]["fallback"]["reason"], []).append(elapsed)
    assert set(by_reason) == {None, "bulkhead_full"}, by_reason
    assert len(by_reason[None]) == 2  # the two admitted calls answered from dspy_live
    assert len(by_reason["bulkhead_full"]) == 4
    # Refused at once, not queued behind the slow calls.
    assert max(by_reason["bulkhead_full"]) < DEADLINE_S / 2, by_reason
    assert len(jangar_stub.requests) == 2


# ---------------------------------------------------------------------------- controls, config


async def test_dspy_disabled_when_switched_on_then_heuristic_answers_and_stub_gets_nothing(
    live_app: AppFactory, jangar_stub: JangarStub, sqlite_url: str
) -> None:
    async with live_app(jangar_base_url=jangar_stub.base_url) as (client, app):
        await serve_live(app, jangar_stub)
        r, _ = await post(client, unique_request("ks-before"))
        assert r.json()["lineage"]["executor"] == "dspy_live"

        async with unit_of_work(app.state.pipeline.factory) as session:
            await session.execute(
                text("UPDATE service_controls SET dspy_disabled = true, version = version + 1")
            )
        switched = time.perf_counter()
        while True:
            r, _ = await post(client, unique_request("ks-poll"))
            if r.json()["lineage"]["fallback"]["reason"] == "dspy_disabled":
                break
            assert time.perf_counter() - switched < 1.0 + MARGIN_S, "kill switch not seen"
            await asyncio.sleep(0.05)

        calls = len(jangar_stub.requests)
        bodies = [(await post(client, unique_request(f"ks-after{i}")))[0].json() for i in range(3)]
        for body in bodies:
            assert_fallback(body, "dspy_disabled")
        assert len(jangar_stub.requests) == calls  # the kill switch sends nothing to Jangar
    row = await review_row(sqlite_url, bodies[-1]["review_id"])
    assert (row["executor"], row["fallback_reason"]) == ("heuristic", "dspy_disabled")


def _load_failures(reason: str) -> float:
    value = REGISTRY.get_sample_value(
        "trade_review_artifact_load_failures_total", {"reason": reason}
    )
    return value or 0.0


async def test_live_artifact_when_no_jangar_url_then_refused_and_heuristic_keeps_serving(
    live_app: AppFactory,
) -> None:
    async with live_app() as (client, app):  # no jangar_base_url
        heuristic = app.state.pipeline.live.artifact
        assert heuristic is not None and heuristic.executor.value == "heuristic"
        before = _load_failures("invalid")
        digest = await activate_live(app)
        await wait_for(lambda: _load_failures("invalid") > before, 3.0, "refusing the artifact")

        r, _ = await post(client, unique_request("nourl"))
        body = r.json()
        assert r.status_code == 200, r.text
        assert body["lineage"]["executor"] == "heuristic"
        assert body["lineage"]["artifact_hash"] == heuristic.artifact_hash != digest
        assert body["lineage"]["fallback"] == {"used": False, "reason": None}
        assert_gates_complete(body)

        await asyncio.sleep(0.6)  # three more polls: refused once, not retried every poll
        assert _load_failures("invalid") == before + 1
        assert app.state.pipeline.live.artifact.artifact_hash == heuristic.artifact_hash
        ready = await client.get("/readyz")
        assert ready.json()["checks"]["artifact"] == heuristic.artifact_hash


async def _assert_fault_answer(
    body: dict[str, Any], digest: str, sqlite_url: str, stub: JangarStub, reason: str
) -> None:
    """What every fault's answer shows: the heuristic, the reason, one attempt, a full row."""
    assert_fallback(body, reason)
    assert body["lineage"]["artifact_hash"] == digest
    assert body["lineage"]["model"] == MODEL
    assert len(stub.requests) == 1  # one attempt: no retries behind our back
    row = await review_row(sqlite_url, body["review_id"])
    assert row["executor"] == "heuristic"
    assert row["fallback_reason"] == reason
    assert row["decision"] == body["decision"]
    assert {g["code"] for g in row["gates_json"]} == ALL_GATES
    assert row["prompt_tokens"] is None
