"""Review rows SQL. Only ``execute``/``flush``; the caller's unit of work commits."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import func, insert, select
from sqlalchemy.ext.asyncio import AsyncSession

from app.db.models import ReviewRow


async def find_by_key(session: AsyncSession, key: str) -> tuple[str, dict[str, Any]] | None:
    """(request_hash, stored response) of the review with this idempotency key."""
    result = await session.execute(
        select(ReviewRow.request_hash, ReviewRow.response_json).where(
            ReviewRow.idempotency_key == key
        )
    )
    row = result.first()
    return None if row is None else (row[0], row[1])


async def count_submits_since(session: AsyncSession, strategy_id: str, since: datetime) -> int:
    result = await session.execute(
        select(func.count())
        .select_from(ReviewRow)
        .where(
            ReviewRow.strategy_id == strategy_id,
            ReviewRow.created_at >= since,
            ReviewRow.decision == "submit",
        )
    )
    return int(result.scalar_one())


async def add(session: AsyncSession, values: dict[str, Any]) -> None:
    # A Core INSERT: one statement, no identity-map bookkeeping on the hot path.
    await session.execute(insert(ReviewRow).values(**values))


async def get_by_review_id(session: AsyncSession, review_id: str) -> ReviewRow | None:
    result = await session.execute(select(ReviewRow).where(ReviewRow.review_id == review_id))
    return result.scalar_one_or_none()
