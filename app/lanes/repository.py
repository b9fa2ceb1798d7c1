"""Lane SQL (``lane_outputs``, ``lane_runs``, ``lane_gate_results``). Only ``execute``/``flush``:
the caller commits."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import case, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from app.db.models import LaneGateResultRow, LaneOutputRow, LaneRunRow


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


# --- lane figures (0007_lane_figures): runs and promotion-check results ----------------------


async def add_run(
    session: AsyncSession,
    *,
    lane: str,
    outcome: str,
    artifact_hash: str | None,
    actor: str,
    error: str | None,
    started_at: datetime,
    finished_at: datetime,
    duration_seconds: float,
) -> LaneRunRow:
    row = LaneRunRow(
        lane=lane,
        outcome=outcome,
        artifact_hash=artifact_hash,
        actor=actor[:128],
        error=error[:128] if error is not None else None,
        started_at=started_at,
        finished_at=finished_at,
        duration_seconds=duration_seconds,
    )
    session.add(row)
    await session.flush()
    return row


async def add_gate_results(
    session: AsyncSession,
    *,
    run_id: int,
    artifact_hash: str | None,
    model_type: str,
    packs: Mapping[str, bool],
    now: datetime,
) -> None:
    session.add_all(
        LaneGateResultRow(
            run_id=run_id,
            artifact_hash=artifact_hash,
            model_type=model_type,
            pack=pack,
            passed=passed,
            created_at=now,
        )
        for pack, passed in packs.items()
    )
    await session.flush()


async def run_totals(
    session: AsyncSession, buckets: Sequence[float], limit: int
) -> list[tuple[str, str, int, float, list[int]]]:
    """Per (lane, outcome): runs, total seconds, and runs at or under each bucket edge.

    One aggregate statement: the database counts, no run row is loaded."""
    seconds = LaneRunRow.duration_seconds
    result = await session.execute(
        select(
            LaneRunRow.lane,
            LaneRunRow.outcome,
            func.count(),
            func.coalesce(func.sum(seconds), 0.0),
            *(func.sum(case((seconds <= edge, 1), else_=0)) for edge in buckets),
        )
        .group_by(LaneRunRow.lane, LaneRunRow.outcome)
        .limit(limit)
    )
    rows: list[tuple[Any, ...]] = [tuple(r) for r in result.all()]
    return [
        (str(r[0]), str(r[1]), int(r[2]), float(r[3]), [int(v or 0) for v in r[4:]]) for r in rows
    ]


async def gate_totals(session: AsyncSession, limit: int) -> list[tuple[str, str, bool, int]]:
    """Per (model_type, pack, passed): promotion checks recorded by eval runs (aggregate)."""
    g = LaneGateResultRow
    result = await session.execute(
        select(g.model_type, g.pack, g.passed, func.count())
        .group_by(g.model_type, g.pack, g.passed)
        .limit(limit)
    )
    return [(str(r[0]), str(r[1]), bool(r[2]), int(r[3])) for r in result.all()]
