"""The live-path test harness: the real app on a database, a ``dspy_live`` artifact promoted
through the registry, request helpers and the assertions the live tests share."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
import uuid
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from asgi_lifespan import LifespanManager
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from app.db.session import unit_of_work
from app.gates.checks import GateCode
from app.main import create_app
from app.registry import evidence
from app.registry.artifact import live_manifest
from app.registry.evidence import EvidenceKind
from app.registry.service import register
from app.registry.states import ArtifactState
from app.review.program import new_program, program_state
from jangar_stub import DEFAULT_ANSWER, JangarStub
from tests.conftest import Clock, make_settings
from tests.support.registry import promote_in, scorecard
from tests.support.requests import base_request

MODEL = "gpt-5.3-codex-spark"
DEADLINE_S = 1.0
# A correctness bound, not a speed target: generous for a 2-core runner with another process
# burning a core, yet below every stub delay a test uses to tell a cut call from a waited-out
# one (slow faults stay silent 5 s, hangs forever), so deadline + margin still proves the cut.
MARGIN_S = 3.0
SERVE_TIMEOUT_S = 5.0
ALL_GATES = {code.value for code in GateCode}
# A rationale no heuristic writes: it tells the stub's answer from a fallback's.
STUB_RATIONALE = "stub-answer: liquid name, small size"

App = tuple[httpx.AsyncClient, Any]
AppFactory = Callable[..., contextlib.AbstractAsyncContextManager[App]]


@contextlib.asynccontextmanager
async def running_app(database_url: str, **overrides: Any) -> AsyncIterator[App]:
    """The real app on ``database_url`` (not truncated here); yields (client, app)."""
    overrides.setdefault("llm_dspy_timeout_seconds", DEADLINE_S)
    settings = make_settings(database_url, **overrides)
    app = create_app(settings, clock=Clock())
    async with LifespanManager(app, startup_timeout=30) as manager:
        transport = httpx.ASGITransport(app=manager.app)
        async with httpx.AsyncClient(
            transport=transport, base_url="http://test", timeout=30.0
        ) as client:
            yield client, app


def live_state(instructions: str | None = None) -> dict[str, Any]:
    state: dict[str, Any] = {"dspy": program_state(new_program())}
    if instructions is not None:
        state["dspy"]["review"]["signature"]["instructions"] = instructions
    return state


async def activate_live(app: Any, *, instructions: str | None = None) -> str:
    """Register a dspy_live artifact, move it candidate -> shadow -> active; return its hash."""
    factory = app.state.pipeline.factory
    manifest = live_manifest(
        program_name="trade-review",
        signature_version="v1",
        model=MODEL,
        optimizer=None,
        dataset_hash=None,
    )
    now = datetime.now(UTC)
    async with unit_of_work(factory) as session:
        digest = await register(
            session, manifest, live_state(instructions), actor="test", lineage={}, now=now
        )
        await evidence.add(
            session, digest, EvidenceKind.SCORECARD, scorecard(digest), actor="test", now=now
        )
        for target in (ArtifactState.SHADOW, ArtifactState.ACTIVE):
            await promote_in(session, digest, target)  # with evidence, as operators must
    return digest


async def wait_serving(app: Any, digest: str) -> None:
    """Poll the replica (it refreshes every 0.2 s in tests) until ``digest`` serves."""
    deadline = time.monotonic() + SERVE_TIMEOUT_S
    while time.monotonic() < deadline:
        artifact = app.state.pipeline.live.artifact
        if artifact is not None and artifact.artifact_hash == digest:
            return
        await asyncio.sleep(0.05)
    pytest.fail(f"artifact {digest[:12]} was not served within {SERVE_TIMEOUT_S} s")


async def serve_live(app: Any, stub: JangarStub, *, instructions: str | None = None) -> str:
    digest = await activate_live(app, instructions=instructions)
    await wait_serving(app, digest)
    stub.reset()
    stub.set_answer({**DEFAULT_ANSWER, "rationale": STUB_RATIONALE})
    return digest


async def post(
    client: httpx.AsyncClient, body: dict[str, Any], **headers: str
) -> tuple[httpx.Response, float]:
    t0 = time.perf_counter()
    r = await client.post(
        "/review", content=json.dumps(body), headers={"content-type": "application/json", **headers}
    )
    return r, time.perf_counter() - t0


def unique_request(tag: str, **decision: Any) -> dict[str, Any]:
    """A clean request whose strategy id makes it distinct (no idempotent replay, no rate gate)."""
    return base_request(strategy_id=f"{tag}-{uuid.uuid4().hex[:8]}", **decision)


async def review_row(url: str, review_id: str) -> dict[str, Any]:
    engine = create_async_engine(url)
    try:
        async with engine.connect() as conn:
            result = await conn.execute(
                text(
                    "SELECT executor, model, fallback_reason, decision, verdict, artifact_hash, "
                    "prompt_tokens, completion_tokens, llm_latency_ms, gates_json "
                    "FROM llm_decision_reviews WHERE review_id = :id"
                ),
                {"id": review_id},
            )
            row = dict(result.mappings().one())
    finally:
        await engine.dispose()
    if isinstance(row["gates_json"], str):  # SQLite hands JSON back as text
        row["gates_json"] = json.loads(row["gates_json"])
    return row


async def wait_for(predicate: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            pytest.fail(f"{what} did not happen within {timeout} s")
        await asyncio.sleep(0.02)


def assert_gates_complete(body: dict[str, Any]) -> None:
    codes = [g["code"] for g in body["gates"]]
    assert len(codes) == len(set(codes))
    assert set(codes) == ALL_GATES
    failed = [g["code"] for g in body["gates"] if not g["passed"]]
    verdict_reasons = [r for r in body["reasons"] if r.startswith("verdict_")]
    assert body["reasons"] == verdict_reasons + failed
    assert body["decision"] == ("reject" if body["reasons"] else "submit")


def assert_stub_answer(body: dict[str, Any], answer: dict[str, Any]) -> None:
    lineage = body["lineage"]
    assert lineage["executor"] == "dspy_live", body
    assert lineage["model"] == MODEL
    assert lineage["fallback"] == {"used": False, "reason": None}
    review = body["review"]
    for name in ("verdict", "uncertainty", "rationale", "risk_flags", "required_checks"):
        assert review[name] == answer[name], name
    assert review["confidence"] == pytest.approx(answer["confidence"])


def assert_fallback(body: dict[str, Any], reason: str) -> None:
    lineage = body["lineage"]
    assert lineage["executor"] == "heuristic", body
    assert lineage["fallback"] == {"used": True, "reason": reason}, body
    assert body["review"]["rationale"] != STUB_RATIONALE  # the heuristic answered
    assert_gates_complete(body)


def stub_answer(**fields: Any) -> dict[str, Any]:
    return {**DEFAULT_ANSWER, "rationale": STUB_RATIONALE, **fields}


def budget_left_ms(app: Any, body: dict[str, Any]) -> float:
    """What the deadline left the LLM step of ``body``'s review: the deadline minus the time
    before decide() (``queued``) and the pre-read (``read``)."""
    deadline_ms = app.state.pipeline.budget.deadline_s * 1000
    timings = body["timings_ms"]
    return deadline_ms - timings["queued"] - timings["read"]
