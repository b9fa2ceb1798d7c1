"""Review rows SQL. Only ``execute``/``flush``; the caller's unit of work commits."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from app.db.models import ReviewOutcomeRow, ReviewRow


async def find_by_key(session: AsyncSession, key: str) -> tuple[str, dict[str, Any]] | None:
    """(request_hash, stored response) of the review with this idempotency key."""
    result = await session.execute(
        select(ReviewRow.request_hash, ReviewRow.response_json).where(
            ReviewRow.idempotency_key == key
        )
    )
    row = result.first()
    return None if row is None else (row[0], row[1])


async def get_by_review_id(session: AsyncSession, review_id: str) -> ReviewRow | None:
    result = await session.execute(select(ReviewRow).where(ReviewRow.review_id == review_id))
    return result.scalar_one_or_none()


async def find_outcome(
    session: AsyncSession, review_id: str, horizon_seconds: int
) -> dict[str, Any] | None:
    result = await session.execute(
        select(ReviewOutcomeRow.payload).where(
            ReviewOutcomeRow.review_id == review_id,
            ReviewOutcomeRow.horizon_seconds == horizon_seconds,
        )
    )
    return result.scalar_one_or_none()


async def add_outcome(
    session: AsyncSession, review_id: str, payload: dict[str, Any], now: datetime
) -> None:
    session.add(
        ReviewOutcomeRow(
            review_id=review_id,
            horizon_seconds=payload["horizon_seconds"],
            filled=payload["filled"],
            fill_price=payload.get("fill_price"),
            fill_qty=payload.get("fill_qty"),
            realized_pnl=payload.get("realized_pnl"),
            payload=payload,
            created_at=now,
        )
    )
    await session.flush()


async def reviews_with_outcomes(
    session: AsyncSession, since: datetime, until: datetime
) -> list[tuple[ReviewRow, list[ReviewOutcomeRow]]]:
    """Reviews in ``[since, until)`` with their recorded outcomes (dataset-build lane)."""
    rows = list(
        (
            await session.execute(
                select(ReviewRow)
                .where(ReviewRow.created_at >= since, ReviewRow.created_at < until)
                .order_by(ReviewRow.created_at, ReviewRow.id)
            )
        ).scalars()
    )
    ids = [r.review_id for r in rows]
    outcomes: dict[str, list[ReviewOutcomeRow]] = {}
    for chunk_start in range(0, len(ids), 500):
        chunk = ids[chunk_start : chunk_start + 500]
        result = await session.execute(
            select(ReviewOutcomeRow).where(ReviewOutcomeRow.review_id.in_(chunk))
        )
        for o in result.scalars():
            outcomes.setdefault(o.review_id, []).append(o)
    return [(r, outcomes.get(r.review_id, [])) for r in rows]


# --- replay (lanes replay): the recorded requests of a window and what the served path counted


async def in_window(
    session: AsyncSession, since: datetime, until: datetime, limit: int
) -> tuple[list[ReviewRow], int]:
    """The newest ``limit`` reviews of ``[since, until)``, oldest first, and the window's count."""
    window = (ReviewRow.created_at >= since, ReviewRow.created_at < until)
    total = int(
        (
            await session.execute(select(func.count()).select_from(ReviewRow).where(*window))
        ).scalar_one()
    )
    newest = (
        await session.execute(
            select(ReviewRow)
            .where(*window)
            .order_by(ReviewRow.created_at.desc(), ReviewRow.id.desc())
            .limit(limit)
        )
    ).scalars()
    return list(reversed(list(newest))), total


async def submits_between(
    session: AsyncSession, strategies: list[str], since: datetime, until: datetime
) -> list[tuple[str, datetime, int]]:
    """(strategy, created_at, id) of the submits of ``strategies`` in ``[since, until)``."""
    out: list[tuple[str, datetime, int]] = []
    for start in range(0, len(strategies), 500):
        chunk = strategies[start : start + 500]
        result = await session.execute(
            select(ReviewRow.strategy_id, ReviewRow.created_at, ReviewRow.id).where(
                ReviewRow.strategy_id.in_(chunk),
                ReviewRow.created_at >= since,
                ReviewRow.created_at < until,
                ReviewRow.decision == "submit",
            )
        )
        out.extend((str(r[0]), r[1], int(r[2])) for r in result)
    return out


async def any_since(session: AsyncSession, since: datetime) -> bool:
    """Whether any review was recorded at or after ``since``."""
    result = await session.execute(
        select(ReviewRow.id).where(ReviewRow.created_at >= since).limit(1)
    )
    return result.first() is not None
