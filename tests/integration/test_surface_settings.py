"""Each configuration variable of the serving path has an observable effect, shown here where
no other test showed it (tests/README.md maps every variable to its test): POLICY_PATH,
LIVE_TRADING_ENABLED=true end to end through ``python -m app serve``, LLM_MODEL,
LLM_DSPY_PROGRAM_NAME / LLM_DSPY_SIGNATURE_VERSION, LLM_MIN_BUDGET_MS,
LLM_TAIL_RESERVE_FLOOR_MS, BREAKER_WINDOW_SECONDS, MAX_BODY_BYTES, DB_POOL_SIZE and
OTEL_EXPORTER_OTLP_ENDPOINT / OTEL_SERVICE_NAME.

Time is only ever waited out as a lower bound (a sleep longer than a window); no answer is
held to a wall-clock upper bound."""

from __future__ import annotations

import asyncio
import hashlib
import http.server
import json
import logging
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any, ClassVar

import httpx
import pytest

from jangar_stub import Behaviour, JangarStub
from tests.conftest import AppFactory
from tests.support.live import (
    AppFactory as LiveAppFactory,
)
from tests.support.live import (
    post,
    serve_live,
    stub_answer,
    unique_request,
)
from tests.support.requests import base_request, example, with_fresh_times
from tests.support.server import free_port, running_service

ROOT = Path(__file__).resolve().parents[2]
TOKEN = "surface-settings-token-0123456789abcdef"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


def gate(body: dict[str, Any], code: str) -> dict[str, Any]:
    return next(g for g in body["gates"] if g["code"] == code)


# ------------------------------------------------------------------------------ gates, mode


async def test_policy_path_when_set_then_its_limits_judge_and_its_hash_is_recorded(
    app_factory: AppFactory, tmp_path: Path
) -> None:
    shipped = (ROOT / "config" / "policy.yaml").read_text()
    assert "max_notional_pct_equity: 0.10" in shipped
    tight = tmp_path / "tight-policy.yaml"
    tight.write_text(
        shipped.replace("max_notional_pct_equity: 0.10", "max_notional_pct_equity: 0.01")
    )
    request = base_request(rationale="policy path")  # $2,000 of $100,000 equity: 2%

    async with app_factory() as (client, _):
        default = (await post(client, request))[0].json()
    async with app_factory(policy_path=tight) as (client, _):
        judged = (await post(client, base_request(rationale="policy path 2")))[0].json()

    assert default["decision"] == "submit"
    assert default["policy_hash"] == hashlib.sha256(shipped.encode()).hexdigest()
    assert judged["decision"] == "reject"
    assert judged["reasons"] == ["max_notional"]
    assert gate(judged, "max_notional")["reason"] == "notional is 2.00% of equity (max 1.00%)"
    assert judged["policy_hash"] == hashlib.sha256(tight.read_bytes()).hexdigest()


def test_live_trading_enabled_when_true_in_the_environment_then_live_order_submits(
    tmp_path: Path,
) -> None:
    """End to end: the variable, through ``python -m app migrate`` and ``serve``, to the
    trading_mode gate of a live request (the default rejects it: test_review_api)."""
    env = {
        "DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path / 'live.db'}",
        "LIVE_TRADING_ENABLED": "true",
    }
    with running_service(env) as base:
        r = httpx.post(
            f"{base}/review",
            json=with_fresh_times(example("06_live_mode_request.json")),
            timeout=30,
        )
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["decision"] == "submit", body["reasons"]
    assert gate(body, "trading_mode") == {
        "code": "trading_mode",
        "passed": True,
        "reason": "live trading allowed",
    }


# ------------------------------------------------------------------------------ the LLM contract


async def test_llm_model_when_set_then_sent_to_jangar_and_recorded_on_the_answer(
    live_app: LiveAppFactory, jangar_stub: JangarStub
) -> None:
    async with live_app(jangar_base_url=jangar_stub.base_url, llm_model="surface-model-z") as (
        client,
        app,
    ):
        await serve_live(app, jangar_stub)
        r, _ = await post(client, unique_request("llm-model"))
    body = r.json()
    [seen] = jangar_stub.requests
    assert seen.body["model"] == "surface-model-z"
    # The served model is LLM_MODEL's, whatever the artifact's manifest names.
    assert body["lineage"]["model"] == "surface-model-z"
    assert body["lineage"]["executor"] == "dspy_live"


async def test_max_completion_tokens_when_set_then_every_jangar_call_carries_it(
    live_app: LiveAppFactory, jangar_stub: JangarStub
) -> None:
    async with live_app(jangar_base_url=jangar_stub.base_url, llm_max_completion_tokens=77) as (
        client,
        app,
    ):
        await serve_live(app, jangar_stub)
        for i in range(2):
            r, _ = await post(client, unique_request(f"max-tokens-{i}"))
            assert r.json()["lineage"]["executor"] == "dspy_live"
    assert [seen.body["max_completion_tokens"] for seen in jangar_stub.requests] == [77, 77]


async def test_program_name_and_signature_version_when_set_then_replica_serves_its_own_registry(
    app_factory: AppFactory,
) -> None:
    async with (
        app_factory(
            admin_token=TOKEN, llm_dspy_program_name="desk-b", llm_dspy_signature_version="v9"
        ) as (desk_b, _),
        app_factory(admin_token=TOKEN) as (default, _),
    ):
        listing_b = (await desk_b.get("/admin/artifacts", headers=AUTH)).json()
        listing = (await default.get("/admin/artifacts", headers=AUTH)).json()
        served_b = (await post(desk_b, base_request(rationale="desk b")))[0].json()
        served = (await post(default, base_request(rationale="default desk")))[0].json()
    [own_b] = listing_b["artifacts"]
    [own] = listing["artifacts"]
    assert (listing_b["program"], own_b["program_name"], own_b["signature_version"]) == (
        "desk-b",
        "desk-b",
        "v9",
    )
    assert (listing["program"], own["signature_version"]) == ("trade-review", "v1")
    assert own_b["artifact_hash"] != own["artifact_hash"]  # each bootstrapped its own
    assert served_b["lineage"]["artifact_hash"] == own_b["artifact_hash"]
    assert served["lineage"]["artifact_hash"] == own["artifact_hash"]


async def test_min_budget_when_larger_than_the_deadline_then_heuristic_answers_without_jangar(
    live_app: LiveAppFactory, jangar_stub: JangarStub
) -> None:
    async with live_app(
        jangar_base_url=jangar_stub.base_url, llm_dspy_timeout_seconds=1.0, llm_min_budget_ms=5000
    ) as (client, app):
        await serve_live(app, jangar_stub)
        bodies = [
            (await post(client, unique_request(f"min-budget-{i}")))[0].json() for i in range(3)
        ]
    assert {b["lineage"]["fallback"]["reason"] for b in bodies} == {"budget_exhausted"}
    assert {b["lineage"]["executor"] for b in bodies} == {"heuristic"}
    assert jangar_stub.requests == []


@pytest.mark.parametrize(("floor_ms", "reason"), [(1000.0, "budget_exhausted"), (0.0, None)])
async def test_tail_reserve_floor_when_raised_then_the_llm_step_gets_that_much_less(
    live_app: LiveAppFactory, jangar_stub: JangarStub, floor_ms: float, reason: str | None
) -> None:
    # Deadline 4 s, minimum LLM budget 3.2 s. A 1 s floor (the cap: a quarter of the deadline)
    # leaves the LLM step at most 3 s, always below the minimum; no floor leaves 4 s minus
    # the time before the review (well under 0.8 s for one request).
    async with live_app(
        jangar_base_url=jangar_stub.base_url,
        llm_dspy_timeout_seconds=4.0,
        llm_min_budget_ms=3200,
        llm_tail_reserve_floor_ms=floor_ms,
    ) as (client, app):
        await serve_live(app, jangar_stub)
        body = (await post(client, unique_request(f"floor-{floor_ms}")))[0].json()
    assert body["lineage"]["fallback"]["reason"] == reason
    assert len(jangar_stub.requests) == (0 if reason else 1)


@pytest.mark.parametrize(("window_s", "third"), [(1.0, "http_error"), (30.0, "circuit_open")])
async def test_breaker_window_when_failures_age_out_then_breaker_stays_closed(
    live_app: LiveAppFactory, jangar_stub: JangarStub, window_s: float, third: str
) -> None:
    # Two failures in a row open the breaker (min 2 calls, rate 0.5) only while both are in
    # the window: 1.5 s between them ages the first out of a 1 s window.
    async with live_app(
        jangar_base_url=jangar_stub.base_url,
        breaker_window_seconds=window_s,
        breaker_min_calls=2,
        breaker_failure_rate=0.5,
        breaker_cooldown_seconds=60.0,
    ) as (client, app):
        await serve_live(app, jangar_stub)
        jangar_stub.set_answer(stub_answer())
        jangar_stub.set_behaviour(Behaviour.HTTP_500)
        first = (await post(client, unique_request("window-1")))[0].json()
        await asyncio.sleep(1.5)
        second = (await post(client, unique_request("window-2")))[0].json()
        last = (await post(client, unique_request("window-3")))[0].json()
    assert first["lineage"]["fallback"]["reason"] == "http_error"
    assert second["lineage"]["fallback"]["reason"] == "http_error"
    assert last["lineage"]["fallback"]["reason"] == third
    assert len(jangar_stub.requests) == (3 if third == "http_error" else 2)


# ------------------------------------------------------------------------------ intake, storage


async def test_max_body_bytes_when_lowered_then_larger_bodies_refused_before_review(
    app_factory: AppFactory,
) -> None:
    small = base_request(rationale="fits")
    large = base_request(rationale="x" * 1500)
    assert len(json.dumps(small)) < 2048 < len(json.dumps(large))
    async with app_factory(max_body_bytes=2048) as (client, _):
        ok = (await post(client, small))[0]
        refused = (await post(client, large))[0]
    assert ok.status_code == 200, ok.text
    assert refused.status_code == 413
    assert refused.json()["error"]["code"] == "payload_too_large"


async def test_db_pool_size_when_set_then_the_service_engine_pools_that_many(
    app_factory: AppFactory,
) -> None:
    async with app_factory(db_pool_size=40) as (client, app):
        engine = app.state.pipeline.factory.kw["bind"]
        assert (await post(client, base_request(rationale="pool")))[0].status_code == 200
    # PostgreSQL: exactly this many (plus as many overflow); SQLite: at least 32.
    assert engine.pool.size() == 40


@pytest.mark.parametrize(("level", "info_logged"), [("WARNING", False), ("DEBUG", True)])
async def test_log_level_when_set_then_lines_below_it_are_not_written(
    app_factory: AppFactory, caplog: pytest.LogCaptureFixture, level: str, info_logged: bool
) -> None:
    caplog.clear()
    before = logging.getLogger().level
    try:
        async with app_factory(log_level=level) as (client, _):
            r = (await post(client, base_request(rationale=f"log {level}")))[0]
            assert r.status_code == 200
            assert logging.getLogger().getEffectiveLevel() == getattr(logging, level)
    finally:
        logging.getLogger().setLevel(before)  # the next test's app sets its own; others may not
    started = [r for r in caplog.records if r.getMessage() == "service.started"]
    assert bool(started) is info_logged  # an INFO event


# ------------------------------------------------------------------------------ tracing


class _Collector(http.server.BaseHTTPRequestHandler):
    received: ClassVar[list[tuple[str, str, bytes]]] = []

    def do_POST(self) -> None:
        size = int(self.headers.get("content-length", "0"))
        self.received.append(
            (self.path, self.headers.get("content-type", ""), self.rfile.read(size))
        )
        self.send_response(200)
        self.send_header("content-type", "application/x-protobuf")
        self.send_header("content-length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def otlp_collector() -> Iterator[tuple[str, list[tuple[str, str, bytes]]]]:
    received: list[tuple[str, str, bytes]] = []
    handler = type("Collector", (_Collector,), {"received": received})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", free_port()), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", received
    finally:
        server.shutdown()
        server.server_close()


async def test_otlp_endpoint_when_set_then_spans_exported_under_the_service_name(
    app_factory: AppFactory, otlp_collector: tuple[str, list[tuple[str, str, bytes]]]
) -> None:
    endpoint, received = otlp_collector
    async with app_factory(
        otel_exporter_otlp_endpoint=endpoint, otel_service_name="surface-otel-name"
    ) as (client, _):
        r = (await post(client, base_request(rationale="traced")))[0]
        assert r.status_code == 200
    # Leaving the app shut the tracer provider down, which flushes its batch to the collector.
    assert received, "no export reached the collector"
    assert {path for path, _, _ in received} == {"/v1/traces"}
    assert {ctype for _, ctype, _ in received} == {"application/x-protobuf"}
    payload = b"".join(body for _, _, body in received)
    assert b"surface-otel-name" in payload
    assert b"audit.write" in payload and b"gates" in payload
