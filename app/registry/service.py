"""Registry operations: register, transition (checked against the table), bootstrap."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from app.db.session import SessionFactory, unit_of_work
from app.registry import evidence, repository
from app.registry.artifact import heuristic_bootstrap
from app.registry.evidence import EvidenceKind
from app.registry.hashing import artifact_hash
from app.registry.promotion import PromotionPolicy, Scorecard, check_scorecard
from app.registry.states import ArtifactState, check_transition


def _aware(ts: datetime) -> datetime:
    # SQLite hands back naive datetimes; everything we store is UTC.
    return ts if ts.tzinfo is not None else ts.replace(tzinfo=UTC)


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


# ------------------------------------------------------------------ promotion with evidence

RETAINED_RETIRED = 10


class PromotionCode(StrEnum):
    GATE_FAILED = "E_LEARN_GATE_FAILED"
    APPROVAL_MISSING = "E_LEARN_APPROVAL_MISSING"
    DRIFT_BREACH = "E_LEARN_DRIFT_BREACH"


@dataclass(frozen=True, slots=True)
class PromotionResult:
    promoted: bool
    code: PromotionCode | None
    reasons: list[str]
    from_state: ArtifactState | None = None


async def promote(
    session: AsyncSession,
    digest: str,
    target: ArtifactState,
    *,
    actor: str,
    policy: PromotionPolicy,
    shadow_days: float,
    approval: dict[str, Any] | None,
    reason: str,
    now: datetime,
) -> PromotionResult:
    """Move an artifact forward only with evidence; a denial is recorded, not raised.

    shadow / canary / active need a passing scorecard; active also needs an approval record and
    ``shadow_days`` in shadow. The caller commits (so a denial's record survives) and maps a
    denied result to its error code.
    """
    row = await repository.get_by_hash(session, digest)
    if row is None:
        raise LookupError(f"artifact {digest} not found")
    current = ArtifactState(row.state)
    check_transition(current, target)
    reasons: list[str] = []
    code: PromotionCode | None = None
    if target in (ArtifactState.SHADOW, ArtifactState.CANARY, ArtifactState.ACTIVE):
        card_row = await evidence.latest(session, digest, EvidenceKind.SCORECARD)
        card = Scorecard.model_validate(card_row.payload) if card_row is not None else None
        reasons = check_scorecard(card, policy)
        if reasons:
            code = PromotionCode.GATE_FAILED
    if code is None and target is ArtifactState.ACTIVE and current is not ArtifactState.RETIRED:
        if approval is not None:
            await evidence.add(
                session, digest, EvidenceKind.APPROVAL, approval, actor=actor, now=now
            )
        if await evidence.latest(session, digest, EvidenceKind.APPROVAL) is None:
            code, reasons = PromotionCode.APPROVAL_MISSING, ["no approval record for active"]
        else:
            entered = await repository.entered_state_at(session, digest, ArtifactState.SHADOW)
            if entered is None:
                code, reasons = PromotionCode.GATE_FAILED, ["artifact never ran in shadow"]
            else:
                days = (now - _aware(entered)).total_seconds() / 86400
                if days < shadow_days:
                    code = PromotionCode.GATE_FAILED
                    reasons = [f"{days:.2f} days in shadow < required {shadow_days}"]
    if code is not None:
        await evidence.add(
            session,
            digest,
            EvidenceKind.PROMOTION_DENIED,
            {"target": target.value, "code": code.value, "reasons": reasons, "at": now.isoformat()},
            actor=actor,
            now=now,
        )
        return PromotionResult(False, code, reasons, current)
    card_row = await evidence.latest(session, digest, EvidenceKind.SCORECARD)
    before = await transition(
        session,
        digest,
        target,
        actor=actor,
        reason=reason or f"promoted to {target}",
        evidence_hash=card_row.evidence_hash if card_row is not None else None,
        now=now,
    )
    await prune_retired(session, row.program_name, now)
    return PromotionResult(True, None, [], before)


async def rollback(
    session: AsyncSession, program: str, *, actor: str, reason: str, now: datetime
) -> tuple[str, str | None]:
    """Re-point ACTIVE to the last-known-good artifact (the one most recently superseded).

    O(1): one indexed lookup of the latest active->retired event, one compare-and-set.
    Returns (restored hash, hash that was active).
    """
    current = await repository.hash_in_state(session, program, ArtifactState.ACTIVE)
    target = await repository.last_known_good(session, program, exclude=current)
    if target is None:
        raise LookupError(f"no retired artifact of {program} to roll back to")
    await transition(
        session,
        target,
        ArtifactState.ACTIVE,
        actor=actor,
        reason=f"rollback: {reason}" if reason else "rollback",
        evidence_hash=None,
        now=now,
    )
    return target, current


async def prune_retired(session: AsyncSession, program: str, now: datetime) -> int:
    """Retention: only the last ``RETAINED_RETIRED`` retired artifacts keep their program state."""
    return await repository.prune_retired_state(session, program, RETAINED_RETIRED, now)
