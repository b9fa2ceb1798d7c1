"""Operations (issue 11): the span tree of one review and the trace context Jangar receives,
Jangar auth failures as their own fallback reason, JSON log lines that never carry a secret,
the build identity on /metrics and on the review's lineage, /docs served without a CDN."""

from __future__ import annotations

import io
import json
import logging
import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest
from asgi_lifespan import LifespanManager
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from prometheus_client import REGISTRY

from app.main import create_app
from app.observability.logging import JsonFormatter
from jangar_stub import Behaviour, JangarStub
from tests.conftest import Clock, make_settings, truncate
from tests.integration.test_live_review import (
    DEADLINE_S,
    activate_live,
    post,
    unique_request,
    wait_serving,
)
from tests.support.requests import base_request
from tests.support.server import running_service

ADMIN_TOKEN = "adm-" + uuid.uuid4().hex
JANGAR_KEY = "jk-" + uuid.uuid4().hex
SCHEDULER_TOKEN = "sch-" + uuid.uuid4().hex


async def _live_app(
    url: str, stub: JangarStub, exporter: InMemorySpanExporter | None = None, **overrides: Any
) -> Any:
    settings = make_settings(
        url,
        jangar_base_url=stub.base_url,
        jangar_api_key=JANGAR_KEY,
        admin_token=ADMIN_TOKEN,
        llm_dspy_timeout_seconds=DEADLINE_S,
        build_sha="abc1234",
        **overrides,
    )
    return create_app(settings, clock=Clock(), span_exporter=exporter)


@pytest.fixture
async def clean_sqlite(sqlite_url: str) -> str:
    await truncate(sqlite_url)
    return sqlite_url


async def test_one_review_yields_the_span_tree_and_jangar_gets_its_traceparent(
    clean_sqlite: str, jangar_stub: JangarStub
) -> None:
    exporter = InMemorySpanExporter()
    app = await _live_app(clean_sqlite, jangar_stub, exporter)
    async with LifespanManager(app, startup_timeout=30) as manager:
        transport = httpx.ASGITransport(app=manager.app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            digest = await activate_live(app)
            await wait_serving(app, digest)
            jangar_stub.reset()
            exporter.clear()
            r, _ = await post(client, unique_request("span"))
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["lineage"]["executor"] == "dspy_live"
    assert body["lineage"]["build_sha"] == "abc1234"

    finished = exporter.get_finished_spans()
    review = next(s for s in finished if s.name == "review")
    trace_id = review.context.trace_id
    # The replica's pollers trace their own statements; this review's trace is what counts.
    spans = {s.name: s for s in finished if s.context.trace_id == trace_id}
    assert {"POST /review", "review", "executor", "jangar.call", "POST", "gates"} <= set(spans)
    assert "audit.write" in spans, sorted(spans)

    def parent_of(name: str) -> str:
        parent = spans[name].parent
        assert parent is not None, name
        return next(n for n, s in spans.items() if s.context.span_id == parent.span_id)

    # FastAPI's server span wraps ours; the Jangar exchange hangs under executor > jangar.call.
    assert parent_of("review").startswith("POST /review")
    assert parent_of("executor") == "review"
    assert parent_of("gates") == "review"
    assert parent_of("audit.write") == "review"
    assert parent_of("jangar.call") == "executor"
    assert parent_of("POST") == "jangar.call"  # the httpx client span
    assert review.attributes is not None
    assert review.attributes["review.id"] == body["review_id"]
    assert review.attributes["review.decision"] == body["decision"]
    assert review.attributes["review.artifact_hash"] == digest
    call = spans["jangar.call"].attributes or {}
    assert call["jangar.outcome"] == "ok"
    assert call["llm.model"] == body["lineage"]["model"]
    assert int(str(call["llm.prompt_tokens"])) > 0
    failed = [g["code"] for g in body["gates"] if not g["passed"]]
    assert list((spans["gates"].attributes or {})["gates.failed"]) == failed  # type: ignore[arg-type]

    sent = jangar_stub.requests[-1].headers
    version, sent_trace, _span, _flags = sent["traceparent"].split("-")
    assert version == "00"
    assert int(sent_trace, 16) == trace_id


async def test_without_an_endpoint_no_span_is_recorded_and_traceparent_is_forwarded(
    clean_sqlite: str, jangar_stub: JangarStub
) -> None:
    app = await _live_app(clean_sqlite, jangar_stub)
    incoming = "00-" + "ab" * 16 + "-" + "cd" * 8 + "-01"
    async with LifespanManager(app, startup_timeout=30) as manager:
        transport = httpx.ASGITransport(app=manager.app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            digest = await activate_live(app)
            await wait_serving(app, digest)
            jangar_stub.reset()
            r, _ = await post(client, unique_request("notrace"), traceparent=incoming)
    assert r.status_code == 200, r.text
    assert jangar_stub.requests[-1].headers["traceparent"] == incoming
    from app.observability import tracing

    assert not tracing.enabled()


def _sample(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


@pytest.mark.parametrize("behaviour", [Behaviour.HTTP_401, Behaviour.HTTP_403])
async def test_jangar_auth_refusal_is_its_own_fallback_reason(
    clean_sqlite: str, jangar_stub: JangarStub, behaviour: Behaviour
) -> None:
    app = await _live_app(clean_sqlite, jangar_stub)
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    logging.getLogger().addHandler(handler)
    try:
        async with LifespanManager(app, startup_timeout=30) as manager:
            transport = httpx.ASGITransport(app=manager.app)
            async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
                digest = await activate_live(app)
                await wait_serving(app, digest)
                jangar_stub.reset()
                jangar_stub.set_behaviour(behaviour)
                calls = _sample("trade_review_jangar_calls_total", outcome="auth")
                http_errors = _sample("trade_review_jangar_calls_total", outcome="http_error")
                r, _ = await post(client, unique_request("auth"))
    finally:
        logging.getLogger().removeHandler(handler)
    assert r.status_code == 200, r.text
    lineage = r.json()["lineage"]
    assert lineage["executor"] == "heuristic"
    assert lineage["fallback"] == {"used": True, "reason": "auth"}
    assert _sample("trade_review_jangar_calls_total", outcome="auth") == calls + 1
    assert _sample("trade_review_jangar_calls_total", outcome="http_error") == http_errors
    # The Jangar key was on the wire, never in the log; the warning carries the review's ids.
    assert jangar_stub.requests[-1].headers["authorization"] == f"Bearer {JANGAR_KEY}"
    lines = [json.loads(line) for line in stream.getvalue().splitlines()]
    assert JANGAR_KEY not in stream.getvalue()
    failed = [x for x in lines if x["event"] == "jangar.call_failed"]
    assert failed and failed[-1]["outcome"] == "auth"
    assert failed[-1]["review_id"] == r.json()["review_id"]
    assert failed[-1]["artifact_hash"] == digest
    assert failed[-1]["arm"] == "active"


def test_a_run_logs_json_lines_without_any_secret(
    tmp_path: Path, jangar_stub: JangarStub, sqlite_url: str
) -> None:
    log = tmp_path / "service.log"
    db = tmp_path / "svc.db"
    env = {
        "DATABASE_URL": f"sqlite+aiosqlite:///{db}",
        "ADMIN_TOKEN": ADMIN_TOKEN,
        "SCHEDULER_TOKEN": SCHEDULER_TOKEN,
        "JANGAR_BASE_URL": jangar_stub.base_url,
        "JANGAR_API_KEY": JANGAR_KEY,
        "LOG_ACCESS": "true",
        "LOG_LEVEL": "DEBUG",
        "BUILD_SHA": "feedbeef",
        "IMAGE_DIGEST": "sha256:" + "0" * 64,
    }
    with (
        running_service(env, log_path=log) as base,
        httpx.Client(base_url=base, timeout=10) as http,
    ):
        scheduler = {"authorization": f"Bearer {SCHEDULER_TOKEN}"}
        r = http.post("/review", json=base_request(strategy_id="logs-1"), headers=scheduler)
        assert r.status_code == 200, r.text
        refused = http.post(
            "/review",
            json=base_request(strategy_id="logs-2"),
            headers={"authorization": f"Bearer {SCHEDULER_TOKEN[::-1]}"},
        )
        assert refused.status_code == 401
        wrong = http.get(
            "/admin/controls",
            headers={"authorization": "Bearer not-" + ADMIN_TOKEN, "x-operator": "mallory"},
        )
        assert wrong.status_code == 401
        ok = http.get("/admin/controls", headers={"authorization": f"Bearer {ADMIN_TOKEN}"})
        assert ok.status_code == 200
        metrics = http.get("/metrics").text
        docs = http.get("/docs")
        asset = http.get("/docs-static/swagger-ui-bundle.js")
        redoc = http.get("/redoc")  # FastAPI's default ReDoc page loads from a CDN: not served
    text = log.read_text()
    assert ADMIN_TOKEN not in text
    assert JANGAR_KEY not in text
    assert SCHEDULER_TOKEN not in text
    assert SCHEDULER_TOKEN[::-1] not in text
    lines = [json.loads(line) for line in text.splitlines() if line.strip()]
    events = {x["event"] for x in lines}
    assert "service.started" in events
    auth = [x for x in lines if x["event"] == "admin.auth_failed"]
    assert len(auth) == 1
    assert auth[0]["route"] == "GET /admin/controls"
    assert auth[0]["operator"] == "mallory"
    assert auth[0]["credential"] == "wrong"
    sched = [x for x in lines if x["event"] == "scheduler.auth_failed"]
    assert len(sched) == 1
    assert sched[0]["route"] == "POST /review"
    assert any(x["event"] == "log" and "/review" in x.get("message", "") for x in lines)
    assert 'trade_review_build_info{build_sha="feedbeef",image_digest="sha256:' in metrics
    assert docs.status_code == 200
    assert "/docs-static/swagger-ui-bundle.js" in docs.text
    assert "cdn" not in docs.text.lower()
    assert asset.status_code == 200
    assert len(asset.content) > 100_000
    assert redoc.status_code == 404
