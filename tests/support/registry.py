"""Registry test helpers: heuristic artifacts with evidence, promotion through the registry
service (the same calls the admin API and the CLI make), raw SQL for what an adversary with
database access does. Nothing here replaces code under ``app/``."""

from __future__ import annotations

import copy
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import select, text, update
from sqlalchemy.ext.asyncio import AsyncSession, create_async_engine

from app.db.models import ArtifactRow
from app.db.session import unit_of_work
from app.registry import evidence, service
from app.registry.artifact import heuristic_bootstrap
from app.registry.evidence import EvidenceKind
from app.registry.hashing import artifact_hash
from app.registry.promotion import PromotionPolicy
from app.registry.states import ArtifactState

PROGRAM, SIGNATURE = "trade-review", "v1"


def scorecard(digest: str, **over: Any) -> dict[str, Any]:
    """A scorecard that passes the default promotion policy (override to fail it)."""
    card: dict[str, Any] = {
        "artifact_hash": digest,
        "dataset_hash": "d" * 64,
        "n": 40,
        "schema_valid_rate": 1.0,
        "timeout_rate": 0.0,
        "fallback_rate": 0.0,
        "verdict_accuracy": 0.8,
        "decision_agreement": 0.9,
        "gate_compatibility": True,
        "gate_bypass_count": 0,
        "hash_reproducible": True,
        "determinism_ok": True,
    }
    card.update(over)
    return card


def replay_report(digest: str, now: datetime, **over: Any) -> dict[str, Any]:
    """A replay that passes the default promotion policy (no order flips), ending ``now``.

    Like ``scorecard``: evidence for tests about something else; the replay lane itself is
    tested in ``tests/integration/test_lanes_replay.py``."""
    report: dict[str, Any] = {
        "artifact_hash": digest,
        "since": (now - timedelta(days=1)).isoformat(),
        "until": now.isoformat(),
        "window_reviews": 10,
        "n": 10,
        "same": 10,
        "submit_to_reject": 0,
        "reject_to_submit": 0,
        "errors": 0,
        "reject_to_submit_share": 0.0,
        "flips": [],
    }
    report.update(over)
    return report


async def replayed(session: AsyncSession, digest: str, now: datetime) -> None:
    """Record a passing replay unless the artifact has one (what ``lanes replay`` stores)."""
    if await evidence.latest(session, digest, EvidenceKind.REPLAY) is None:
        await evidence.add(
            session, digest, EvidenceKind.REPLAY, replay_report(digest, now), actor="test", now=now
        )


def heuristic_content(
    n: float, *, signature_version: str = SIGNATURE
) -> tuple[dict[str, Any], dict[str, Any]]:
    """A valid heuristic artifact that differs from the bootstrap one in one parameter."""
    manifest, state = heuristic_bootstrap(PROGRAM, signature_version)
    state = copy.deepcopy(state)
    state["heuristic"]["params"]["flag_points"] = 0.15 + n / 1000
    return manifest, state


async def add_artifact(
    app: Any, n: float, *, card: bool = True, signature_version: str = SIGNATURE
) -> str:
    """Register a distinct heuristic artifact, with a passing scorecard unless ``card=False``."""
    manifest, state = heuristic_content(n, signature_version=signature_version)
    digest = artifact_hash(manifest, state)
    now = datetime.now(UTC)
    async with unit_of_work(app.state.pipeline.factory) as s:
        await service.register(s, manifest, state, actor="test", lineage={"n": n}, now=now)
        if card:
            await evidence.add(
                s, digest, EvidenceKind.SCORECARD, scorecard(digest), actor="test", now=now
            )
    return digest


async def promote_in(session: AsyncSession, digest: str, target: ArtifactState) -> None:
    """One evidence-checked promotion inside the caller's unit (no shadow time required; a
    passing replay recorded first for ACTIVE, as an operator runs ``lanes replay``)."""
    if target is ArtifactState.ACTIVE:
        await replayed(session, digest, datetime.now(UTC))
    result = await service.promote(
        session,
        digest,
        target,
        actor="test",
        policy=PromotionPolicy(),
        shadow_days=0,
        approval={"approver": "test", "ticket": "T-0"},
        reason="test promotion",
        now=datetime.now(UTC),
    )
    assert result.promoted, result


async def make_active(app: Any, digest: str) -> None:
    """candidate -> shadow -> active through ``registry.service.promote`` (with evidence)."""
    for target in (ArtifactState.SHADOW, ArtifactState.ACTIVE):
        async with unit_of_work(app.state.pipeline.factory) as s:
            await promote_in(s, digest, target)


def tampered_state(state: dict[str, Any]) -> dict[str, Any]:
    """The same program state with one number changed (the hash column is left alone)."""
    out = copy.deepcopy(state)
    out["heuristic"]["params"]["adjust_threshold"] = 0.01
    return out


async def tamper(url: str, digest: str) -> None:
    """Alter a stored artifact's program state directly in the database."""
    engine = create_async_engine(url)
    try:
        async with engine.begin() as conn:
            state = (
                await conn.execute(
                    select(ArtifactRow.program_state).where(ArtifactRow.artifact_hash == digest)
                )
            ).scalar_one()
            done = await conn.execute(
                update(ArtifactRow)
                .where(ArtifactRow.artifact_hash == digest)
                .values(program_state=tampered_state(state))
            )
            assert done.rowcount == 1
    finally:
        await engine.dispose()


async def states(url: str) -> dict[str, str]:
    """artifact hash -> state, straight from the database."""
    engine = create_async_engine(url)
    try:
        async with engine.connect() as conn:
            rows = await conn.execute(select(ArtifactRow.artifact_hash, ArtifactRow.state))
            return {str(h): str(s) for h, s in rows}
    finally:
        await engine.dispose()


async def pruned(url: str) -> set[str]:
    """Hashes whose program state retention pruned."""
    engine = create_async_engine(url)
    try:
        async with engine.connect() as conn:
            rows = await conn.execute(select(ArtifactRow.artifact_hash, ArtifactRow.program_state))
            return {h for h, st in rows if st == {"pruned": True}}
    finally:
        await engine.dispose()


async def scalar(url: str, sql: str, **params: Any) -> Any:
    engine = create_async_engine(url)
    try:
        async with engine.connect() as conn:
            return (await conn.execute(text(sql), params)).scalar_one()
    finally:
        await engine.dispose()
