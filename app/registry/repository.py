"""All registry SQL. Only ``execute``/``flush``: the caller's unit of work commits."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import exists, func, select, true, update
from sqlalchemy.ext.asyncio import AsyncSession

from app.db.models import ArtifactEventRow, ArtifactRow
from app.registry.artifact import PRUNED_STATE, is_pruned
from app.registry.states import ArtifactState, History, Route


async def get_by_hash(session: AsyncSession, artifact_hash: str) -> ArtifactRow | None:
    result = await session.execute(
        select(ArtifactRow).where(ArtifactRow.artifact_hash == artifact_hash)
    )
    return result.scalar_one_or_none()


async def hash_in_state(session: AsyncSession, program: str, state: ArtifactState) -> str | None:
    """The cheap version check every replica polls."""
    result = await session.execute(
        select(ArtifactRow.artifact_hash).where(
            ArtifactRow.program_name == program, ArtifactRow.state == state.value
        )
    )
    return result.scalar_one_or_none()


async def add(
    session: AsyncSession,
    *,
    artifact_hash: str,
    manifest: dict[str, Any],
    program_state: dict[str, Any],
    lineage: dict[str, Any],
    now: datetime,
) -> ArtifactRow:
    row = ArtifactRow(
        artifact_hash=artifact_hash,
        program_name=str(manifest["program_name"]),
        signature_version=str(manifest["signature_version"]),
        executor=str(manifest["executor"]),
        state=ArtifactState.CANDIDATE.value,
        manifest=manifest,
        program_state=program_state,
        lineage=lineage,
        created_at=now,
        updated_at=now,
    )
    session.add(row)
    await session.flush()
    return row


async def set_state(
    session: AsyncSession,
    artifact_hash: str,
    expected: ArtifactState,
    target: ArtifactState,
    now: datetime,
) -> bool:
    """Compare-and-set the state; False when another writer moved it first."""
    result = await session.execute(
        update(ArtifactRow)
        .where(ArtifactRow.artifact_hash == artifact_hash, ArtifactRow.state == expected.value)
        .values(state=target.value, updated_at=now)
    )
    return (getattr(result, "rowcount", 0) or 0) == 1


async def add_event(
    session: AsyncSession,
    *,
    artifact_hash: str,
    program_name: str,
    actor: str,
    from_state: ArtifactState | None,
    to_state: ArtifactState,
    reason: str,
    evidence_hash: str | None,
    route: Route,
    now: datetime,
) -> None:
    session.add(
        ArtifactEventRow(
            artifact_hash=artifact_hash,
            program_name=program_name,
            actor=actor,
            from_state=from_state.value if from_state else None,
            to_state=to_state.value,
            reason=reason,
            evidence_hash=evidence_hash,
            route=route.value,
            created_at=now,
        )
    )
    await session.flush()


async def events(session: AsyncSession, artifact_hash: str) -> list[ArtifactEventRow]:
    result = await session.execute(
        select(ArtifactEventRow)
        .where(ArtifactEventRow.artifact_hash == artifact_hash)
        .order_by(ArtifactEventRow.id)
    )
    return list(result.scalars())


async def list_for_program(session: AsyncSession, program: str) -> list[ArtifactRow]:
    result = await session.execute(
        select(ArtifactRow)
        .where(ArtifactRow.program_name == program)
        .order_by(ArtifactRow.created_at, ArtifactRow.id)
    )
    return list(result.scalars())


async def entered_state_at(
    session: AsyncSession, artifact_hash: str, state: ArtifactState
) -> datetime | None:
    result = await session.execute(
        select(ArtifactEventRow.created_at)
        .where(ArtifactEventRow.artifact_hash == artifact_hash)
        .where(ArtifactEventRow.to_state == state.value)
        .order_by(ArtifactEventRow.id.desc())
        .limit(1)
    )
    return result.scalar_one_or_none()


async def history(session: AsyncSession, artifact_hash: str, program: str) -> History:
    """The facts the transition rules need, from the event log (two indexed EXISTS)."""
    was_active = exists().where(
        ArtifactEventRow.artifact_hash == artifact_hash,
        ArtifactEventRow.to_state == ArtifactState.ACTIVE.value,
    )
    had_active = exists().where(
        ArtifactEventRow.program_name == program,
        ArtifactEventRow.to_state == ArtifactState.ACTIVE.value,
    )
    row = (await session.execute(select(was_active, had_active))).one()
    return History(artifact_was_active=bool(row[0]), program_had_active=bool(row[1]))


async def retired_by_last_exit(session: AsyncSession, program: str) -> list[tuple[str, str | None]]:
    """``(hash, route)`` of every RETIRED artifact of ``program`` that was ACTIVE, by its latest
    exit from ACTIVE (newest first); ``route`` is how that exit happened."""
    last_exit = (
        select(func.max(ArtifactEventRow.id).label("id"))
        .where(
            ArtifactEventRow.program_name == program,
            ArtifactEventRow.from_state == ArtifactState.ACTIVE.value,
            ArtifactEventRow.to_state == ArtifactState.RETIRED.value,
        )
        .group_by(ArtifactEventRow.artifact_hash)
        .subquery()
    )
    result = await session.execute(
        select(ArtifactEventRow.artifact_hash, ArtifactEventRow.route)
        .join(last_exit, last_exit.c.id == ArtifactEventRow.id)
        .join(ArtifactRow, ArtifactRow.artifact_hash == ArtifactEventRow.artifact_hash)
        .where(ArtifactRow.state == ArtifactState.RETIRED.value)
        .order_by(ArtifactEventRow.id.desc())
    )
    return [(h, r) for h, r in result]


async def rollback_targets(session: AsyncSession, program: str) -> list[str]:
    """Formerly ACTIVE, now RETIRED artifacts that were not rolled back from, newest exit from
    ACTIVE first: the rollback order (retention keeps the first ``RETAINED`` of them)."""
    return [
        h
        for h, route in await retired_by_last_exit(session, program)
        if route != Route.ROLLBACK.value
    ]


async def prune_retired_state(session: AsyncSession, program: str, keep: int, now: datetime) -> int:
    """Drop the program state of retired artifacts outside both retention windows (rows and
    their history stay; a pruned artifact is refused at every transition and every load).

    Two windows of ``keep`` each, so neither can push the other out:
    - rollback targets (``rollback_targets``): the newest ``keep`` by their exit from ACTIVE,
      so the last known good is never pruned;
    - every other retired artifact (never ACTIVE, or rolled back from: none can serve again),
      the newest ``keep`` by when they were retired.
    """
    targets = await rollback_targets(session, program)
    kept = set(targets[:keep])
    others = await session.execute(
        select(ArtifactRow.artifact_hash)
        .where(
            ArtifactRow.program_name == program,
            ArtifactRow.state == ArtifactState.RETIRED.value,
        )
        .order_by(ArtifactRow.updated_at.desc(), ArtifactRow.id.desc())
    )
    eligible = set(targets)
    kept.update([h for h in others.scalars() if h not in eligible][:keep])
    result = await session.execute(
        select(ArtifactRow).where(
            ArtifactRow.program_name == program,
            ArtifactRow.state == ArtifactState.RETIRED.value,
            ArtifactRow.artifact_hash.not_in(kept) if kept else true(),
        )
    )
    pruned = 0
    for row in result.scalars():
        if is_pruned(row.program_state):
            continue
        row.program_state = dict(PRUNED_STATE)
        row.lineage = {**row.lineage, "pruned_at": now.isoformat()}
        pruned += 1
    await session.flush()
    return pruned


async def state_entry_totals(session: AsyncSession, limit: int) -> list[tuple[str, str, int]]:
    """Per (executor, state): transitions into that state, every route (one aggregate over the
    event log; ``/metrics`` exports it as ``learn_model_state_total``)."""
    result = await session.execute(
        select(ArtifactRow.executor, ArtifactEventRow.to_state, func.count())
        .join(ArtifactRow, ArtifactRow.artifact_hash == ArtifactEventRow.artifact_hash)
        .group_by(ArtifactRow.executor, ArtifactEventRow.to_state)
        .limit(limit)
    )
    return [(str(r[0]), str(r[1]), int(r[2])) for r in result.all()]


# --- operations: hash prefixes for the CLI (issue 11) ------------------------------------------
_MIN_PREFIX = 6


async def resolve_prefix(session: AsyncSession, prefix: str) -> str:
    """The one artifact hash starting with ``prefix``; LookupError (with a reason) otherwise."""
    wanted = prefix.strip().lower()
    if len(wanted) == 64:
        return wanted
    if len(wanted) < _MIN_PREFIX or any(c not in "0123456789abcdef" for c in wanted):
        raise LookupError(f"{prefix!r} is not a hash prefix (at least {_MIN_PREFIX} hex digits)")
    result = await session.execute(
        select(ArtifactRow.artifact_hash)
        .where(ArtifactRow.artifact_hash.startswith(wanted, autoescape=True))
        .limit(2)
    )
    found = list(result.scalars())
    if not found:
        raise LookupError(f"no artifact hash starts with {wanted}")
    if len(found) > 1:
        raise LookupError(f"{wanted} matches several artifacts; give more digits")
    return found[0]
