"""Rollout SQL. Only ``execute``/``flush``: the caller's unit of work commits."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import case, func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from app.db.models import ArtifactEventRow, ReviewRow, RolloutEventRow, RolloutRow
from app.rollout.analysis import (
    ERROR_REASONS,
    NO_VERDICTS,
    ArmCounts,
    ArmFigures,
    p95_rank,
)


class RolloutState(StrEnum):
    RUNNING = "running"
    PAUSED = "paused"
    ABORTED = "aborted"
    GRADUATED = "graduated"


OPEN_STATES = (RolloutState.RUNNING.value, RolloutState.PAUSED.value)


@dataclass(frozen=True, slots=True)
class Route:
    """What a replica needs to split traffic (loaded by every poll)."""

    rollout_id: int
    candidate_hash: str
    weight_pct: float
    salt: str
    state: RolloutState


async def open_rollout(
    session: AsyncSession, program: str, *, for_update: bool = False
) -> RolloutRow | None:
    stmt = select(RolloutRow).where(
        RolloutRow.program_name == program, RolloutRow.state.in_(OPEN_STATES)
    )
    if for_update:
        stmt = stmt.with_for_update()
    return (await session.execute(stmt)).scalar_one_or_none()


async def route(session: AsyncSession, program: str) -> Route | None:
    result = await session.execute(
        select(
            RolloutRow.id,
            RolloutRow.candidate_hash,
            RolloutRow.weight_pct,
            RolloutRow.salt,
            RolloutRow.state,
        ).where(RolloutRow.program_name == program, RolloutRow.state.in_(OPEN_STATES))
    )
    row = result.one_or_none()
    if row is None:
        return None
    return Route(int(row[0]), str(row[1]), float(row[2]), str(row[3]), RolloutState(row[4]))


async def get(session: AsyncSession, rollout_id: int) -> RolloutRow | None:
    return await session.get(RolloutRow, rollout_id)


async def latest(session: AsyncSession, program: str) -> RolloutRow | None:
    result = await session.execute(
        select(RolloutRow)
        .where(RolloutRow.program_name == program)
        .order_by(RolloutRow.id.desc())
        .limit(1)
    )
    return result.scalar_one_or_none()


async def add_event(
    session: AsyncSession,
    *,
    rollout_id: int | None,
    program: str,
    artifact_hash: str,
    decision: str,
    actor: str,
    reasons: list[str],
    figures: dict[str, Any],
    weight_pct: float,
    now: datetime,
) -> None:
    session.add(
        RolloutEventRow(
            rollout_id=rollout_id,
            program_name=program,
            artifact_hash=artifact_hash,
            decision=decision,
            actor=actor,
            reasons=reasons,
            figures=figures,
            weight_pct=weight_pct,
            created_at=now,
        )
    )
    await session.flush()


async def events(session: AsyncSession, rollout_id: int) -> list[RolloutEventRow]:
    result = await session.execute(
        select(RolloutEventRow)
        .where(RolloutEventRow.rollout_id == rollout_id)
        .order_by(RolloutEventRow.id)
    )
    return list(result.scalars())


async def watch_events(session: AsyncSession, artifact_hash: str) -> list[RolloutEventRow]:
    result = await session.execute(
        select(RolloutEventRow)
        .where(RolloutEventRow.artifact_hash == artifact_hash)
        .where(RolloutEventRow.rollout_id.is_(None))
        .order_by(RolloutEventRow.id)
    )
    return list(result.scalars())


async def arm_figures(
    session: AsyncSession, artifact_hash: str, arm: str, start: datetime, end: datetime
) -> ArmFigures:
    """The figures of one arm and artifact over its answered reviews in ``[start, end)``,
    counted by the database: a watch window holds every review since the promotion (30 min at
    hundreds per second), which loaded as rows stalled the event loop for the whole turn."""
    window = (
        ReviewRow.artifact_hash == artifact_hash,
        ReviewRow.arm == arm,
        ReviewRow.created_at >= start,
        ReviewRow.created_at < end,
    )
    reason = ReviewRow.fallback_reason
    prompt, completion = ReviewRow.prompt_tokens, ReviewRow.completion_tokens

    def count(condition: Any) -> Any:
        return func.coalesce(func.sum(case((condition, 1), else_=0)), 0)

    row = (
        (
            await session.execute(
                select(
                    func.count().label("n"),
                    count(reason.in_(sorted(ERROR_REASONS))).label("errors"),
                    count(reason.is_not(None)).label("fallbacks"),
                    count(reason == "schema_invalid").label("schema_invalid"),
                    count(ReviewRow.verdict.in_(NO_VERDICTS)).label("verdict_rejects"),
                    count(or_(prompt.is_not(None), completion.is_not(None))).label("token_reviews"),
                    # A review without tokens adds 0 (both NULL), so no condition is needed here.
                    func.coalesce(
                        func.sum(func.coalesce(prompt, 0) + func.coalesce(completion, 0)), 0
                    ).label("token_sum"),
                ).where(*window)
            )
        )
        .mappings()
        .one()
    )
    counts = ArmCounts(**{str(name): int(value) for name, value in row.items()})
    p95_ms = 0.0
    if counts.n:
        p95_ms = float(
            (
                await session.execute(
                    select(ReviewRow.total_latency_ms)
                    .where(*window)
                    .order_by(ReviewRow.total_latency_ms)
                    .offset(p95_rank(counts.n))
                    .limit(1)
                )
            ).scalar_one()
        )
    return ArmFigures.from_counts(counts, p95_ms)


async def became_active_at(session: AsyncSession, artifact_hash: str) -> datetime | None:
    """When ``artifact_hash`` last entered ACTIVE (graduation, promotion or rollback)."""
    result = await session.execute(
        select(ArtifactEventRow.created_at)
        .where(ArtifactEventRow.artifact_hash == artifact_hash)
        .where(ArtifactEventRow.to_state == "active")
        .order_by(ArtifactEventRow.id.desc())
        .limit(1)
    )
    return result.scalar_one_or_none()
