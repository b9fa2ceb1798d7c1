"""Lane output SQL (``lane_outputs``). Only ``execute``/``flush``: the caller commits."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from app.db.models import LaneOutputRow


async def add(
    session: AsyncSession,
    *,
    lane: str,
    output_hash: str,
    artifact_hash: str | None,
    config: dict[str, Any],
    payload: dict[str, Any],
    actor: str,
    now: datetime,
) -> LaneOutputRow:
    row = LaneOutputRow(
        lane=lane,
        output_hash=output_hash,
        artifact_hash=artifact_hash,
        config=config,
        payload=payload,
        actor=actor,
        created_at=now,
    )
    session.add(row)
    await session.flush()
    return row


async def latest(session: AsyncSession, lane: str, output_hash: str) -> LaneOutputRow | None:
    """The most recent row of ``lane`` with this output hash."""
    result = await session.execute(
        select(LaneOutputRow)
        .where(LaneOutputRow.lane == lane, LaneOutputRow.output_hash == output_hash)
        .order_by(LaneOutputRow.id.desc())
        .limit(1)
    )
    return result.scalar_one_or_none()


async def recent(session: AsyncSession, lane: str | None, limit: int) -> list[LaneOutputRow]:
    stmt = select(LaneOutputRow).order_by(LaneOutputRow.id.desc()).limit(limit)
    if lane is not None:
        stmt = stmt.where(LaneOutputRow.lane == lane)
    result = await session.execute(stmt)
    return list(result.scalars())


async def for_artifact(session: AsyncSession, artifact_hash: str) -> list[LaneOutputRow]:
    result = await session.execute(
        select(LaneOutputRow)
        .where(LaneOutputRow.artifact_hash == artifact_hash)
        .order_by(LaneOutputRow.id)
    )
    return list(result.scalars())
