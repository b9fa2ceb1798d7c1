"""Lease SQL. Acquire and renew are one conditional UPDATE (or an INSERT when the lease row does
not exist yet), so two replicas racing for an expired lease cannot both win."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import case, insert, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from app.db.models import ServiceLeaseRow


@dataclass(frozen=True, slots=True)
class Lease:
    name: str
    holder: str
    expires_at: datetime
    epoch: int


async def try_acquire(
    session: AsyncSession, name: str, holder: str, now: datetime, ttl: timedelta
) -> Lease | None:
    """Take or renew ``name`` for ``holder`` until ``now + ttl``; ``None`` if another holder's
    lease has not expired. Callers commit (``unit_of_work``)."""
    expires = now + ttl
    # One statement takes or renews and answers the epoch (RETURNING): on SQLite the write lock
    # is held from this UPDATE to the commit, and every statement in between is a turn of the
    # event loop that the review writer would wait behind.
    renewed = await session.execute(
        update(ServiceLeaseRow)
        .where(
            ServiceLeaseRow.name == name,
            (ServiceLeaseRow.holder == holder) | (ServiceLeaseRow.expires_at <= now),
        )
        .values(
            holder=holder,
            expires_at=expires,
            renewed_at=now,
            epoch=case(
                (ServiceLeaseRow.holder == holder, ServiceLeaseRow.epoch),
                else_=ServiceLeaseRow.epoch + 1,
            ),
        )
        .returning(ServiceLeaseRow.epoch)
        .execution_options(synchronize_session=False)
    )
    epoch = renewed.scalar_one_or_none()
    if epoch is not None:
        return Lease(name=name, holder=holder, expires_at=expires, epoch=int(epoch))
    exists = await session.scalar(select(ServiceLeaseRow.name).where(ServiceLeaseRow.name == name))
    if exists is not None:
        return None  # another holder's lease has not expired
    try:
        async with session.begin_nested():
            await session.execute(
                insert(ServiceLeaseRow).values(
                    name=name, holder=holder, expires_at=expires, renewed_at=now, epoch=1
                )
            )
    except IntegrityError:
        return None  # another replica created it first
    return Lease(name=name, holder=holder, expires_at=expires, epoch=1)


async def release(session: AsyncSession, name: str, holder: str, now: datetime) -> None:
    """Give the lease up at once (a clean shutdown): another replica may take it now."""
    await session.execute(
        update(ServiceLeaseRow)
        .where(ServiceLeaseRow.name == name, ServiceLeaseRow.holder == holder)
        .values(expires_at=now)
        .execution_options(synchronize_session=False)
    )


async def current(session: AsyncSession, name: str) -> Lease | None:
    row = (
        await session.execute(
            select(ServiceLeaseRow.holder, ServiceLeaseRow.expires_at, ServiceLeaseRow.epoch).where(
                ServiceLeaseRow.name == name
            )
        )
    ).one_or_none()
    if row is None:
        return None
    return Lease(name=name, holder=row.holder, expires_at=row.expires_at, epoch=int(row.epoch))
