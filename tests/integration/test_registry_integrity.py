"""Artifact registry on a real database: racing bootstraps, live promotion, tampered rows.

Replicas poll the registry every ``controls_refresh_seconds`` (0.2 s in tests), so every
change below must show up in answers within 2 s, without a restart.
"""

from __future__ import annotations

import asyncio
import copy
import json
import re
import time
import uuid
from datetime import UTC, datetime
from typing import Any

import httpx
from sqlalchemy import event, insert, select, text
from sqlalchemy.ext.asyncio import create_async_engine
from sqlalchemy.util import await_only

from app.controls import repository as controls_repo
from app.db.models import ArtifactRow, ServiceControlsRow
from app.db.session import create_engine, create_session_factory, unit_of_work
from app.registry import evidence, service
from app.registry.artifact import heuristic_bootstrap
from app.registry.evidence import EvidenceKind
from app.registry.hashing import artifact_hash
from app.registry.states import ArtifactState
from app.settings import load_settings
from tests.conftest import AppFactory, count_rows, make_settings
from tests.support.registry import make_active, promote_in, scorecard, tamper, tampered_state
from tests.support.requests import base_request

PROGRAM = load_settings({}).llm_dspy_program_name
SIGNATURE = load_settings({}).llm_dspy_signature_version
SWITCH_BUDGET_S = 2.0
_INTEGRITY = re.compile(
    r'^trade_review_artifact_load_failures_total\{reason="content_altered"\} (\S+)$', re.M
)


async def review(client: httpx.AsyncClient) -> dict[str, Any]:
    """A fresh order (own strategy, so no replay and no rate limit) -> the response body."""
    body = base_request(strategy_id=f"reg-{uuid.uuid4().hex[:12]}")
    r = await client.post(
        "/review", content=json.dumps(body), headers={"content-type": "application/json"}
    )
    assert r.status_code == 200, r.text
    return r.json()


async def served_hash(client: httpx.AsyncClient) -> str:
    return (await review(client))["lineage"]["artifact_hash"]


async def integrity_failures(client: httpx.AsyncClient) -> float:
    match = _INTEGRITY.search((await client.get("/metrics")).text)
    return float(match.group(1)) if match else 0.0


async def sql(url: str, *statements: Any) -> list[Any]:
    """Run statements on the database directly (outside the app), one transaction."""
    engine = create_async_engine(url)
    try:
        async with engine.begin() as conn:
            return [await conn.execute(s) for s in statements]
    finally:
        await engine.dispose()


async def artifact_rows(url: str) -> list[tuple[str, str]]:
    engine = create_async_engine(url)
    try:
        async with engine.connect() as conn:
            result = await conn.execute(
                select(ArtifactRow.artifact_hash, ArtifactRow.state).order_by(ArtifactRow.id)
            )
            return [(h, s) for h, s in result]
    finally:
        await engine.dispose()


async def transitions(url: str, digest: str) -> list[tuple[str | None, str]]:
    engine = create_async_engine(url)
    try:
        async with engine.connect() as conn:
            result = await conn.execute(
                text(
                    "SELECT from_state, to_state FROM artifact_events "
                    "WHERE artifact_hash = :h ORDER BY id"
                ),
                {"h": digest},
            )
            return [(f, t) for f, t in result]
    finally:
        await engine.dispose()


def heuristic_variant(veto_threshold: float) -> tuple[dict[str, Any], dict[str, Any]]:
    """A valid heuristic artifact that differs from the bootstrap one in one parameter."""
    manifest, state = heuristic_bootstrap(PROGRAM, SIGNATURE)
    manifest = {**manifest, "description": f"heuristic, veto at {veto_threshold}"}
    state = copy.deepcopy(state)
    state["heuristic"]["params"]["veto_threshold"] = veto_threshold
    return manifest, state


async def register(app: Any, manifest: dict[str, Any], state: dict[str, Any]) -> str:
    factory = app.state.pipeline.factory
    async with unit_of_work(factory) as session:
        return await service.register(
            session, manifest, state, actor="test", lineage={}, now=app.state.pipeline.clock()
        )


async def promote(app: Any, digest: str) -> None:
    """candidate -> shadow -> active with evidence (the previous active retires)."""
    factory = app.state.pipeline.factory
    async with unit_of_work(factory) as session:
        await evidence.add(
            session,
            digest,
            EvidenceKind.SCORECARD,
            scorecard(digest),
            actor="test",
            now=app.state.pipeline.clock(),
        )
    await make_active(app, digest)


async def row_id(session: Any, digest: str) -> int:
    result = await session.execute(
        select(ArtifactRow.id).where(ArtifactRow.artifact_hash == digest)
    )
    return int(result.scalar_one())


async def start_together(app_factory: AppFactory, replicas: int = 3) -> list[str]:
    """Start replicas concurrently on one database; each reports the hash it serves."""
    ready = asyncio.Barrier(replicas)
    hashes: list[str] = []

    async def replica() -> None:
        async with app_factory() as (client, _):
            await ready.wait()  # every replica is up before any of them shuts down
            deadline = time.perf_counter() + SWITCH_BUDGET_S
            while (await client.get("/readyz")).status_code != 200:
                assert time.perf_counter() < deadline, "replica never became ready"
                await asyncio.sleep(0.05)
            hashes.append(await served_hash(client))
            await ready.wait()

    await asyncio.wait_for(asyncio.gather(*(replica() for _ in range(replicas))), timeout=30)
    return hashes


async def test_replicas_when_started_together_then_one_active_artifact_bootstrapped_once(
    app_factory: AppFactory, database_url: str
) -> None:
    hashes = await start_together(app_factory)

    manifest, state = heuristic_bootstrap(PROGRAM, SIGNATURE)
    expected = artifact_hash(manifest, state)
    assert hashes == [expected] * 3
    assert await artifact_rows(database_url) == [(expected, "active")]
    assert await transitions(database_url, expected) == [
        (None, "candidate"),
        ("candidate", "shadow"),
        ("shadow", "active"),
    ]


async def test_controls_row_when_another_replica_creates_it_first_then_unit_still_commits(
    database_url: str,
) -> None:
    """Replicas starting on a fresh database race to create the controls row. Here the race
    is made deterministic: the other replica's row lands between ``ensure``'s read and its
    insert. ``ensure`` must treat that as done; a failed unit of work leaves the replica
    HALTED and not ready until its poller retries."""
    await sql(database_url, text("DELETE FROM service_controls"))
    engine = create_engine(make_settings(database_url))
    other = create_async_engine(database_url)
    now = datetime.now(UTC)
    raced: list[str] = []

    async def other_replica_inserts() -> None:
        async with other.begin() as conn:
            await conn.execute(
                insert(ServiceControlsRow).values(
                    id=1,
                    trading_state="ACTIVE",
                    dspy_disabled=False,
                    routing_disabled=False,
                    version=1,
                    updated_by="other-replica",
                    reason="",
                    updated_at=now,
                )
            )

    def after_read(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        if not raced and statement.lstrip().upper().startswith("SELECT"):
            raced.append(statement)
            await_only(other_replica_inserts())

    event.listen(engine.sync_engine, "after_cursor_execute", after_read)
    try:
        async with unit_of_work(create_session_factory(engine)) as session:
            await controls_repo.ensure(session, now)
    finally:
        await engine.dispose()
        await other.dispose()
    assert raced
    assert "service_controls" in raced[0]
    assert await count_rows(database_url, "service_controls") == 1


async def test_valid_artifact_when_promoted_then_served_within_2s_without_restart(
    app_factory: AppFactory, database_url: str
) -> None:
    async with app_factory() as (client, app):
        first = await served_hash(client)
        new = await register(app, *heuristic_variant(0.7))
        assert new != first
        assert await served_hash(client) == first  # a candidate does not serve
        await promote(app, new)
        t0 = time.perf_counter()
        while (current := await served_hash(client)) != new:
            assert current == first
            assert time.perf_counter() - t0 < SWITCH_BUDGET_S, "promotion not picked up in 2 s"
            await asyncio.sleep(0.05)
        body = await review(client)
        assert body["lineage"]["artifact_hash"] == new
        assert body["lineage"]["fallback"] == {"used": False, "reason": None}
    assert dict(await artifact_rows(database_url)) == {first: "retired", new: "active"}


async def test_tampered_artifact_when_promoted_then_refused_and_previous_keeps_serving(
    app_factory: AppFactory, database_url: str
) -> None:
    async with app_factory() as (client, app):
        good = await served_hash(client)
        failures_before = await integrity_failures(client)
        bad = await register(app, *heuristic_variant(0.65))
        async with unit_of_work(app.state.pipeline.factory) as session:
            await evidence.add(
                session,
                bad,
                EvidenceKind.SCORECARD,
                scorecard(bad),
                actor="t",
                now=datetime.now(UTC),
            )
            await promote_in(session, bad, ArtifactState.SHADOW)
        # Altered in the same transaction that makes it active (after the registry verified
        # it), so no replica can have loaded the honest version: the loader is the last line.
        async with unit_of_work(app.state.pipeline.factory) as session:
            await promote_in(session, bad, ArtifactState.ACTIVE)
            row = await session.get(ArtifactRow, await row_id(session, bad))
            assert row is not None
            row.program_state = tampered_state(row.program_state)
        await asyncio.sleep(1.5)
        for _ in range(3):
            body = await review(client)
            assert body["lineage"]["artifact_hash"] == good
            assert body["lineage"]["fallback"]["used"] is False
        assert await integrity_failures(client) > failures_before
        ready = await client.get("/readyz")
        assert ready.status_code == 200
        assert ready.json()["checks"]["artifact"] == good
        assert "altered" in ready.json()["checks"]["artifact_error"]  # says why, for operators
        assert ready.json()["checks"]["artifact_refusal"] == "content_altered"
    # The registry still says the tampered one is active: refusing it is the replica's call.
    assert dict(await artifact_rows(database_url))[bad] == "active"


async def test_served_artifact_when_tampered_then_new_replica_refuses_it(
    app_factory: AppFactory, database_url: str
) -> None:
    async with app_factory() as (client, _):
        good = await served_hash(client)
        failures_before = await integrity_failures(client)
        await tamper(database_url, good)
        await asyncio.sleep(0.5)
        # The running replica verified this content at load and keeps serving its copy.
        assert await served_hash(client) == good
    async with app_factory() as (client, _):
        assert await integrity_failures(client) > failures_before
        ready = await client.get("/readyz")
        assert ready.status_code == 503
        assert ready.json()["checks"]["artifact"] == "none"
        body = await review(client)
        assert body["lineage"]["artifact_hash"] != good
        assert body["lineage"]["fallback"] == {"used": True, "reason": "artifact_unavailable"}
