"""Registry operations: register, transition (checked against the table), bootstrap."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from app.db.session import SessionFactory, unit_of_work
from app.registry import repository
from app.registry.artifact import heuristic_bootstrap
from app.registry.hashing import artifact_hash
from app.registry.states import ArtifactState, check_transition


class TransitionConflict(Exception):
    """The move is valid on paper but lost a race or would break a singleton state."""


async def register(
    session: AsyncSession,
    manifest: dict[str, Any],
    program_state: dict[str, Any],
    *,
    actor: str,
    lineage: dict[str, Any] | None,
    now: datetime,
) -> str:
    """Add an artifact as a candidate (idempotent on its hash); returns the hash."""
    digest = artifact_hash(manifest, program_state)
    if await repository.get_by_hash(session, digest) is None:
        await repository.add(
            session,
            artifact_hash=digest,
            manifest=manifest,
            program_state=program_state,
            lineage=lineage or {},
            now=now,
        )
        await repository.add_event(
            session,
            artifact_hash=digest,
            program_name=str(manifest["program_name"]),
            actor=actor,
            from_state=None,
            to_state=ArtifactState.CANDIDATE,
            reason="registered",
            evidence_hash=None,
            now=now,
        )
    return digest


async def transition(
    session: AsyncSession,
    digest: str,
    target: ArtifactState,
    *,
    actor: str,
    reason: str,
    evidence_hash: str | None,
    now: datetime,
) -> ArtifactState:
    """Move one artifact; promoting to ACTIVE retires the previous ACTIVE in the same unit."""
    row = await repository.get_by_hash(session, digest)
    if row is None:
        raise LookupError(f"artifact {digest} not found")
    current = ArtifactState(row.state)
    check_transition(current, target)
    if target is ArtifactState.ACTIVE:
        previous = await repository.hash_in_state(session, row.program_name, ArtifactState.ACTIVE)
        if previous is not None and previous != digest:
            await _move(
                session,
                previous,
                row.program_name,
                ArtifactState.ACTIVE,
                ArtifactState.RETIRED,
                actor,
                f"superseded by {digest[:12]}",
                None,
                now,
            )
    await _move(
        session, digest, row.program_name, current, target, actor, reason, evidence_hash, now
    )
    return current


async def _move(
    session: AsyncSession,
    digest: str,
    program: str,
    current: ArtifactState,
    target: ArtifactState,
    actor: str,
    reason: str,
    evidence_hash: str | None,
    now: datetime,
) -> None:
    try:
        moved = await repository.set_state(session, digest, current, target, now)
    except IntegrityError as exc:
        raise TransitionConflict(f"another artifact of {program} is already {target}") from exc
    if not moved:
        raise TransitionConflict(f"artifact {digest[:12]} changed state concurrently")
    await repository.add_event(
        session,
        artifact_hash=digest,
        program_name=program,
        actor=actor,
        from_state=current,
        to_state=target,
        reason=reason,
        evidence_hash=evidence_hash,
        now=now,
    )


async def bootstrap_heuristic(
    factory: SessionFactory, program_name: str, signature_version: str, now: datetime
) -> str:
    """Register the heuristic artifact and make it ACTIVE if nothing is; safe to race."""
    manifest, state = heuristic_bootstrap(program_name, signature_version)
    digest = artifact_hash(manifest, state)
    try:
        async with unit_of_work(factory) as session:
            await register(session, manifest, state, actor="system:bootstrap", lineage={}, now=now)
    except IntegrityError:
        pass  # another replica registered it first
    try:
        async with unit_of_work(factory) as session:
            active = await repository.hash_in_state(session, program_name, ArtifactState.ACTIVE)
            row = await repository.get_by_hash(session, digest)
            if active is None and row is not None:
                path = {
                    ArtifactState.CANDIDATE: (ArtifactState.SHADOW, ArtifactState.ACTIVE),
                    ArtifactState.SHADOW: (ArtifactState.ACTIVE,),
                    ArtifactState.RETIRED: (ArtifactState.ACTIVE,),
                }.get(ArtifactState(row.state), ())
                for target in path:
                    await transition(
                        session,
                        digest,
                        target,
                        actor="system:bootstrap",
                        reason="bootstrap: no active artifact",
                        evidence_hash=None,
                        now=now,
                    )
    except (IntegrityError, TransitionConflict):
        pass  # another replica activated something first; that one serves
    return digest
