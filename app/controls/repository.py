"""Service controls SQL: a single versioned row (id = 1)."""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from app.db.models import ServiceControlsRow
from app.gates.context import TradingState


@dataclass(frozen=True, slots=True)
class Controls:
    trading_state: TradingState = TradingState.ACTIVE
    dspy_disabled: bool = False
    routing_disabled: bool = False
    version: int = 0


async def get(session: AsyncSession) -> Controls | None:
    row = await session.get(ServiceControlsRow, 1)
    if row is None:
        return None
    return Controls(
        trading_state=TradingState(row.trading_state),
        dspy_disabled=row.dspy_disabled,
        routing_disabled=row.routing_disabled,
        version=row.version,
    )


async def version(session: AsyncSession) -> int | None:
    result = await session.execute(
        select(ServiceControlsRow.version).where(ServiceControlsRow.id == 1)
    )
    return result.scalar_one_or_none()


async def ensure(session: AsyncSession, now: datetime) -> None:
    if await session.get(ServiceControlsRow, 1) is not None:
        return
    # A savepoint: losing the race to another replica must not poison the caller's unit.
    with contextlib.suppress(IntegrityError):
        async with session.begin_nested():
            session.add(
                ServiceControlsRow(
                    id=1,
                    trading_state=TradingState.ACTIVE.value,
                    dspy_disabled=False,
                    routing_disabled=False,
                    version=1,
                    updated_by="system:bootstrap",
                    reason="initial controls",
                    updated_at=now,
                )
            )


async def update(
    session: AsyncSession,
    *,
    actor: str,
    reason: str,
    now: datetime,
    trading_state: TradingState | None = None,
    dspy_disabled: bool | None = None,
    routing_disabled: bool | None = None,
) -> Controls:
    await ensure(session, now)
    row = await session.get(ServiceControlsRow, 1, with_for_update=True)
    assert row is not None
    if trading_state is not None:
        row.trading_state = trading_state.value
    if dspy_disabled is not None:
        row.dspy_disabled = dspy_disabled
    if routing_disabled is not None:
        row.routing_disabled = routing_disabled
    row.version += 1
    row.updated_by = actor
    row.reason = reason
    row.updated_at = now
    await session.flush()
    return Controls(
        trading_state=TradingState(row.trading_state),
        dspy_disabled=row.dspy_disabled,
        routing_disabled=row.routing_disabled,
        version=row.version,
    )
