"""Service controls SQL: a single versioned row (id = 1) and its append-only event history."""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy import update as sql_update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from app.controls.changes import ControlValues, changed_fields, check_reason
from app.db.models import ControlEventRow, ServiceControlsRow
from app.gates.context import TradingState


@dataclass(frozen=True, slots=True)
class Controls:
    trading_state: TradingState = TradingState.ACTIVE
    dspy_disabled: bool = False
    routing_disabled: bool = False
    version: int = 0


async def get(session: AsyncSession) -> Controls | None:
    row = await session.get(ServiceControlsRow, 1)
    return _controls(row) if row is not None else None


async def version(session: AsyncSession) -> int | None:
    result = await session.execute(
        select(ServiceControlsRow.version).where(ServiceControlsRow.id == 1)
    )
    return result.scalar_one_or_none()


_INITIAL = ControlValues(TradingState.ACTIVE, dspy_disabled=False, routing_disabled=False)


def _values(row: ServiceControlsRow) -> ControlValues:
    return ControlValues(
        trading_state=TradingState(row.trading_state),
        dspy_disabled=row.dspy_disabled,
        routing_disabled=row.routing_disabled,
    )


def _event(
    *,
    version: int,
    actor: str,
    reason: str,
    before: ControlValues | None,
    after: ControlValues,
    now: datetime,
) -> ControlEventRow:
    return ControlEventRow(
        version=version,
        actor=actor,
        reason=reason,
        before=before.as_json() if before is not None else None,
        after=after.as_json(),
        created_at=now,
    )


async def ensure(session: AsyncSession, now: datetime) -> None:
    if await session.get(ServiceControlsRow, 1) is not None:
        return
    # A savepoint: losing the race to another replica must not poison the caller's unit
    # (and takes this replica's creation event with it).
    with contextlib.suppress(IntegrityError):
        async with session.begin_nested():
            session.add(
                ServiceControlsRow(
                    id=1,
                    trading_state=_INITIAL.trading_state.value,
                    dspy_disabled=_INITIAL.dspy_disabled,
                    routing_disabled=_INITIAL.routing_disabled,
                    version=1,
                    updated_by="system:bootstrap",
                    reason="initial controls",
                    updated_at=now,
                )
            )
            session.add(
                _event(
                    version=1,
                    actor="system:bootstrap",
                    reason="initial controls",
                    before=None,
                    after=_INITIAL,
                    now=now,
                )
            )


@dataclass(frozen=True, slots=True)
class ControlChange:
    before: Controls
    after: Controls
    changed: list[str]  # field names; empty: nothing changed, nothing recorded


async def update(
    session: AsyncSession,
    *,
    actor: str,
    reason: str,
    now: datetime,
    trading_state: TradingState | None = None,
    dspy_disabled: bool | None = None,
    routing_disabled: bool | None = None,
) -> ControlChange:
    """Change the controls row and append its event in the caller's unit (one transaction).

    The row is locked before it is read, so concurrent changes serialise and every event's
    ``before`` is the previous event's ``after``. A change that changes nothing records
    nothing. Raises ``ReasonRequired`` when a relaxing change has no reason.
    """
    await ensure(session, now)
    # Take the row's write lock before reading it (a no-op UPDATE: a row lock on PostgreSQL,
    # the database write lock on SQLite, where SELECT ... FOR UPDATE does not exist).
    await session.execute(
        sql_update(ServiceControlsRow)
        .where(ServiceControlsRow.id == 1)
        .values(version=ServiceControlsRow.version)
        .execution_options(synchronize_session=False)
    )
    row = await session.get(ServiceControlsRow, 1, populate_existing=True)
    assert row is not None
    before = _values(row)
    after = before.with_changes(trading_state, dspy_disabled, routing_disabled)
    old = _controls(row)
    changed = changed_fields(before, after)
    if not changed:
        return ControlChange(old, old, [])
    check_reason(before, after, reason)
    row.trading_state = after.trading_state.value
    row.dspy_disabled = after.dspy_disabled
    row.routing_disabled = after.routing_disabled
    row.version += 1
    row.updated_by = actor
    row.reason = reason
    row.updated_at = now
    session.add(
        _event(version=row.version, actor=actor, reason=reason, before=before, after=after, now=now)
    )
    await session.flush()
    return ControlChange(old, _controls(row), changed)


def _controls(row: ServiceControlsRow) -> Controls:
    return Controls(
        trading_state=TradingState(row.trading_state),
        dspy_disabled=row.dspy_disabled,
        routing_disabled=row.routing_disabled,
        version=row.version,
    )


async def history(
    session: AsyncSession, *, limit: int, before_id: int | None = None
) -> list[ControlEventRow]:
    """Control events, newest first; ``before_id`` pages back (ids only grow)."""
    stmt = select(ControlEventRow).order_by(ControlEventRow.id.desc()).limit(limit)
    if before_id is not None:
        stmt = stmt.where(ControlEventRow.id < before_id)
    return list((await session.execute(stmt)).scalars())


async def trading_states(session: AsyncSession, until: datetime) -> list[tuple[datetime, int, str]]:
    """(created_at, id, trading_state after) of every control event before ``until``, in order:
    the trading state's timeline (the replay lane judges recorded requests under it)."""
    result = await session.execute(
        select(ControlEventRow.created_at, ControlEventRow.id, ControlEventRow.after)
        .where(ControlEventRow.created_at < until)
        .order_by(ControlEventRow.created_at, ControlEventRow.id)
    )
    return [(r[0], int(r[1]), str(r[2].get("trading_state", "ACTIVE"))) for r in result]
