"""Helpers for rollout tests: a fake clock, artifacts, keys routed to a chosen arm."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from app.db.session import unit_of_work
from app.registry import evidence
from app.registry.artifact import live_manifest
from app.registry.evidence import EvidenceKind
from app.registry.promotion import PromotionPolicy
from app.registry.service import promote, register
from app.registry.states import ArtifactState
from app.review.program import new_program, program_state
from app.rollout.splitter import on_canary, routing_key
from tests.support.registry import replayed
from tests.support.requests import base_request

MODEL = "gpt-5.3-codex-spark"
ADMIN = {"authorization": "Bearer rollout-admin-token-0123456789abcdef", "x-operator": "alice"}


class FakeClock:
    def __init__(self) -> None:
        self.now = datetime.now(UTC).replace(microsecond=0)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


def live_state(suffix: str | None) -> dict[str, Any]:
    state: dict[str, Any] = {"dspy": program_state(new_program())}
    if suffix is not None:
        sig = state["dspy"]["review"]["signature"]
        sig["instructions"] = f"{sig['instructions']} {suffix}"
    return state


async def register_live(
    app: Any, *, suffix: str | None, path: tuple[ArtifactState, ...], now: datetime
) -> str:
    """Register a dspy_live artifact with a passing scorecard and promote it along ``path``
    through the registry service (evidence checked; approval given; no shadow time)."""
    factory = app.state.pipeline.factory
    manifest = live_manifest(
        program_name="trade-review",
        signature_version="v1",
        model=MODEL,
        optimizer=None,
        dataset_hash=None,
    )
    async with unit_of_work(factory) as session:
        digest = await register(
            session, manifest, live_state(suffix), actor="test", lineage={}, now=now
        )
        await evidence.add(
            session,
            digest,
            EvidenceKind.SCORECARD,
            passing_scorecard(digest),
            actor="test",
            now=now,
        )
        for target in path:
            if target is ArtifactState.ACTIVE:
                await replayed(session, digest, now)  # as an operator runs lanes replay
            result = await promote(
                session,
                digest,
                target,
                actor="test",
                policy=PromotionPolicy(),
                shadow_days=0,
                approval={"approver": "test", "ticket": "T-0"},
                reason="test",
                now=now,
            )
            assert result.promoted, result
    return digest


def passing_scorecard(digest: str) -> dict[str, Any]:
    return {
        "artifact_hash": digest,
        "dataset_hash": "d" * 64,
        "n": 100,
        "schema_valid_rate": 1.0,
        "timeout_rate": 0.0,
        "fallback_rate": 0.0,
        "gate_compatibility": True,
        "gate_bypass_count": 0,
        "hash_reproducible": True,
        "determinism_ok": True,
        "delta_sharpe": 0.2,
        "maxdd_delta": 0.0,
    }


async def add_scorecard(app: Any, digest: str, now: datetime) -> None:
    async with unit_of_work(app.state.pipeline.factory) as session:
        await evidence.add(
            session,
            digest,
            EvidenceKind.SCORECARD,
            passing_scorecard(digest),
            actor="test",
            now=now,
        )


def keys_for(salt: str, weight: float, *, canary: bool, n: int, tag: str) -> list[str]:
    """``n`` fresh strategy ids whose AAPL key routes to the chosen arm at ``weight``."""
    out: list[str] = []
    while len(out) < n:
        sid = f"{tag}-{uuid.uuid4().hex[:10]}"
        if on_canary(routing_key(sid, "AAPL"), salt, weight) is canary:
            out.append(sid)
    return out


async def review(
    client: httpx.AsyncClient, strategy_id: str, now: datetime, key: str | None = None
) -> dict[str, Any]:
    body = base_request(now=now, strategy_id=strategy_id)
    headers = {"content-type": "application/json"}
    if key is not None:
        headers["idempotency-key"] = key
    r = await client.post("/review", content=json.dumps(body), headers=headers)
    assert r.status_code == 200, r.text
    return r.json()


async def wait_until(predicate: Callable[[], bool], what: str, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            pytest.fail(f"{what} did not happen within {timeout} s")
        await asyncio.sleep(0.02)
