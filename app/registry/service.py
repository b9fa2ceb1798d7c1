"""Registry operations: register, promote (with evidence), retire, rollback, bootstrap.

These are the only ways to move an artifact, and every one of them goes through
``_transition``: the pure table (``states.next_state``) checked against the artifact's event
history, the content verified (hash recomputed, not pruned) for any move into a serving
state, then a compare-and-set of the state plus one event row naming actor, route and reason.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Any, cast

from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from app.db.models import ArtifactRow
from app.db.session import SessionFactory, unit_of_work
from app.registry import evidence, repository
from app.registry.artifact import (
    ArtifactRefused,
    Refusal,
    heuristic_bootstrap,
    is_pruned,
    verify_content,
)
from app.registry.evidence import EvidenceKind
from app.registry.hashing import artifact_hash
from app.registry.promotion import (
    REPLAY_WAIVER,
    PromotionPolicy,
    ReplayReport,
    Scorecard,
    check_replay,
    check_scorecard,
)
from app.registry.states import (
    SERVING_STATES,
    ArtifactState,
    History,
    InvalidTransition,
    Route,
    next_state,
)
from app.reviews import repository as reviews


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
            route=Route.REGISTER,
            now=now,
        )
    return digest


async def _row(session: AsyncSession, digest: str) -> ArtifactRow:
    row = await repository.get_by_hash(session, digest)
    if row is None:
        raise LookupError(f"artifact {digest} not found")
    return row


async def _transition(
    session: AsyncSession,
    digest: str,
    target: ArtifactState,
    route: Route,
    *,
    actor: str,
    reason: str,
    evidence_hash: str | None,
    now: datetime,
) -> ArtifactState:
    """Move one artifact by ``route``; moving into ACTIVE retires the previous ACTIVE in the
    same unit (recorded as ``rollback`` when this is a rollback, else ``supersede``).

    Raises ``LookupError``, ``InvalidTransition``, ``ArtifactRefused``, ``TransitionConflict``.
    """
    row = await _row(session, digest)
    current = ArtifactState(row.state)
    next_state(current, target, route, await repository.history(session, digest, row.program_name))
    if target in SERVING_STATES:
        verify_content(row.artifact_hash, row.manifest, row.program_state)
    if target is ArtifactState.ACTIVE:
        previous = await repository.hash_in_state(session, row.program_name, ArtifactState.ACTIVE)
        if previous is not None and previous != digest:
            exit_route = Route.ROLLBACK if route is Route.ROLLBACK else Route.SUPERSEDE
            verb = "rolled back to" if route is Route.ROLLBACK else "superseded by"
            next_state(ArtifactState.ACTIVE, ArtifactState.RETIRED, exit_route, History())
            await _move(
                session,
                previous,
                row.program_name,
                ArtifactState.ACTIVE,
                ArtifactState.RETIRED,
                exit_route,
                actor,
                f"{verb} {digest[:12]}",
                None,
                now,
            )
    await _move(
        session,
        digest,
        row.program_name,
        current,
        target,
        route,
        actor,
        reason,
        evidence_hash,
        now,
    )
    return current


async def _move(
    session: AsyncSession,
    digest: str,
    program: str,
    current: ArtifactState,
    target: ArtifactState,
    route: Route,
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
        route=route,
        now=now,
    )


async def bootstrap_heuristic(
    factory: SessionFactory, program_name: str, signature_version: str, now: datetime
) -> str:
    """Register the heuristic artifact and make it ACTIVE on a registry where nothing of the
    program was ever ACTIVE; safe to race. Once anything was ACTIVE, an empty ACTIVE slot is
    the operator's to fill (rollback or promotion), never the service's."""
    manifest, state = heuristic_bootstrap(program_name, signature_version)
    digest = artifact_hash(manifest, state)
    try:
        async with unit_of_work(factory) as session:
            await register(session, manifest, state, actor="system:bootstrap", lineage={}, now=now)
    except IntegrityError:
        pass  # another replica registered it first
    try:
        async with unit_of_work(factory) as session:
            facts = await repository.history(session, digest, program_name)
            row = await repository.get_by_hash(session, digest)
            if facts.program_had_active or row is None:
                return digest
            path = {
                ArtifactState.CANDIDATE: (ArtifactState.SHADOW, ArtifactState.ACTIVE),
                ArtifactState.SHADOW: (ArtifactState.ACTIVE,),
            }.get(ArtifactState(row.state), ())
            for target in path:
                await _transition(
                    session,
                    digest,
                    target,
                    Route.BOOTSTRAP,
                    actor="system:bootstrap",
                    reason="bootstrap: no artifact was ever active",
                    evidence_hash=None,
                    now=now,
                )
    except (IntegrityError, TransitionConflict, InvalidTransition):
        pass  # another replica activated something first; that one serves
    return digest


# ------------------------------------------------------------------ promotion with evidence

# Retention window (see ``repository.prune_retired_state``): this many rollback targets keep
# their program state, and separately this many other retired artifacts.
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
    # Set when the artifact itself was refused (content altered, state pruned): ``code`` None.
    refusal: Refusal | None = None


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
    waivers: frozenset[str] = frozenset(),
) -> PromotionResult:
    """Move an artifact forward only with evidence; a denial is recorded, not raised.

    The artifact's content must verify (hash recomputed, program state not pruned); shadow /
    canary / active need a passing scorecard; active also needs an approval record and
    ``shadow_days`` in shadow. Canary and active are checked against the latest replay
    (``check_replay``); active requires one when reviews were served within the policy's
    ``replay_lookback_days``. The approval's ``waive`` list (or ``waivers``, the operator's
    explicit acceptance for a canary) may name ``replay``; a waived finding is written on the
    transition event. RETIRED -> ACTIVE is never a promotion (only ``rollback``).
    The caller commits (so a denial's record survives) and maps a denied result to its code.
    """
    row = await _row(session, digest)
    current = ArtifactState(row.state)
    next_state(
        current,
        target,
        Route.PROMOTE,
        await repository.history(session, digest, row.program_name),
    )
    reasons: list[str] = []
    code: PromotionCode | None = None
    refusal: Refusal | None = None
    try:
        verify_content(row.artifact_hash, row.manifest, row.program_state)
    except ArtifactRefused as exc:
        refusal, reasons = exc.reason, [str(exc)]
    if refusal is None:
        card_row = await evidence.latest(session, digest, EvidenceKind.SCORECARD)
        card = Scorecard.model_validate(card_row.payload) if card_row is not None else None
        reasons = check_scorecard(card, policy)
        if reasons:
            code = PromotionCode.GATE_FAILED
    if refusal is None and code is None and target is ArtifactState.ACTIVE:
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
    waived_note = ""
    if refusal is None and code is None and target in (ArtifactState.CANARY, ArtifactState.ACTIVE):
        replay_reasons, waived_note = await _replay_gate(
            session, digest, target, policy, waivers, now
        )
        if replay_reasons:
            code, reasons = PromotionCode.GATE_FAILED, replay_reasons
    if code is not None or refusal is not None:
        denied = refusal.value if refusal is not None else str(code)
        await evidence.add(
            session,
            digest,
            EvidenceKind.PROMOTION_DENIED,
            {"target": target.value, "code": denied, "reasons": reasons, "at": now.isoformat()},
            actor=actor,
            now=now,
        )
        return PromotionResult(False, code, reasons, current, refusal)
    card_row = await evidence.latest(session, digest, EvidenceKind.SCORECARD)
    before = await _transition(
        session,
        digest,
        target,
        Route.PROMOTE,
        actor=actor,
        reason=(reason or f"promoted to {target}") + waived_note,
        evidence_hash=card_row.evidence_hash if card_row is not None else None,
        now=now,
    )
    await prune_retired(session, row.program_name, now)
    return PromotionResult(True, None, [], before)


def waivers_of(approval: dict[str, Any] | None) -> frozenset[str]:
    """The names an approval record waives (``{"waive": ["replay"]}``; a single name works)."""
    named: Any = (approval or {}).get("waive")
    if isinstance(named, str):
        return frozenset({named})
    if isinstance(named, list):
        return frozenset(str(n) for n in cast(list[Any], named))
    return frozenset()


async def _replay_gate(
    session: AsyncSession,
    digest: str,
    target: ArtifactState,
    policy: PromotionPolicy,
    waivers: frozenset[str],
    now: datetime,
) -> tuple[list[str], str]:
    """(denial reasons, note for the transition event naming what a waiver accepted)."""
    found = await evidence.latest(session, digest, EvidenceKind.REPLAY)
    report = ReplayReport.model_validate(found.payload) if found is not None else None
    required = target is ArtifactState.ACTIVE and await reviews.any_since(
        session, now - timedelta(days=policy.replay_lookback_days)
    )
    accepted = set(waivers)
    if target is ArtifactState.ACTIVE:
        approval = await evidence.latest(session, digest, EvidenceKind.APPROVAL)
        accepted |= waivers_of(approval.payload if approval is not None else None)
    waived = REPLAY_WAIVER in accepted
    binding = check_replay(report, policy, required=required, waived=waived, now=now)
    if binding or not waived:
        return binding, ""
    findings = check_replay(report, policy, required=required, waived=False, now=now)
    return [], (f" [waived: {'; '.join(findings)}]" if findings else "")


async def retire(
    session: AsyncSession, digest: str, *, actor: str, reason: str, now: datetime
) -> ArtifactState:
    """Retire an artifact (from any state the table allows), then apply retention."""
    row = await _row(session, digest)
    before = await _transition(
        session,
        digest,
        ArtifactState.RETIRED,
        Route.RETIRE,
        actor=actor,
        reason=reason or "retired",
        evidence_hash=None,
        now=now,
    )
    await prune_retired(session, row.program_name, now)
    return before


async def rollback(
    session: AsyncSession, program: str, *, actor: str, reason: str, now: datetime
) -> tuple[str, str | None]:
    """Re-point ACTIVE to the last known good artifact.

    The rule: the newest artifact, by its latest exit from ACTIVE, that is RETIRED now, was
    ACTIVE before, was not itself rolled back from (its exit was not a rollback) and whose
    program state is retained. The artifact replaced is recorded as rolled back from, so two
    rollbacks in a row go two steps back instead of returning to it. The target's content is
    verified (``ArtifactRefused`` when altered: an incident, never skipped silently).
    One statement lists the targets in order, one compare-and-set moves the first retained
    one. Returns (restored, replaced).
    """
    current = await repository.hash_in_state(session, program, ArtifactState.ACTIVE)
    target: str | None = None
    for digest in await repository.rollback_targets(session, program):
        row = await _row(session, digest)
        if row.state != ArtifactState.RETIRED.value:  # a concurrent rollback restored it
            raise TransitionConflict(f"artifact {digest[:12]} changed state concurrently")
        if not is_pruned(row.program_state):
            target = digest
            break
    if target is None:
        raise LookupError(f"no retained artifact of {program} that was active to roll back to")
    await _transition(
        session,
        target,
        ArtifactState.ACTIVE,
        Route.ROLLBACK,
        actor=actor,
        reason=f"rollback: {reason}" if reason else "rollback",
        evidence_hash=None,
        now=now,
    )
    return target, current


async def check_pin(session: AsyncSession, digest: str, program: str) -> None:
    """The pin rule: ``LLM_DSPY_ARTIFACT_HASH`` may name only an artifact of ``program`` that
    is or was ACTIVE (an emergency re-pin), never one that skipped evidence and approval."""
    row = await repository.get_by_hash(session, digest)
    if row is None:
        raise ArtifactRefused(Refusal.MISSING, f"pinned artifact {digest[:12]} is not registered")
    if row.program_name != program:
        raise ArtifactRefused(
            Refusal.NEVER_ACTIVE,
            f"pinned artifact {digest[:12]} belongs to program {row.program_name}, not {program}",
        )
    facts = await repository.history(session, digest, program)
    if not facts.artifact_was_active:
        raise ArtifactRefused(
            Refusal.NEVER_ACTIVE,
            f"pinned artifact {digest[:12]} was never active (state {row.state}): "
            "a pin may only name an artifact that is or was active",
        )


async def prune_retired(session: AsyncSession, program: str, now: datetime) -> int:
    """Retention (``repository.prune_retired_state``) with ``RETAINED_RETIRED`` per window."""
    return await repository.prune_retired_state(session, program, RETAINED_RETIRED, now)


# --- rollout (progressive delivery): the controller's moves, the figures' hash as evidence ---


async def abort_canary(
    session: AsyncSession,
    digest: str,
    *,
    actor: str,
    reason: str,
    evidence_hash: str | None,
    now: datetime,
) -> ArtifactState:
    """CANARY -> SHADOW (route ``abort``): a stopped canary goes back to observing."""
    return await _transition(
        session,
        digest,
        ArtifactState.SHADOW,
        Route.ABORT,
        actor=actor,
        reason=reason,
        evidence_hash=evidence_hash,
        now=now,
    )


async def graduate_canary(
    session: AsyncSession,
    digest: str,
    *,
    actor: str,
    reason: str,
    evidence_hash: str | None,
    now: datetime,
) -> ArtifactState:
    """CANARY -> ACTIVE after every step was green (the windows' figures are the evidence;
    the operator's approval was the canary start). The previous ACTIVE is superseded."""
    row = await _row(session, digest)
    before = await _transition(
        session,
        digest,
        ArtifactState.ACTIVE,
        Route.PROMOTE,
        actor=actor,
        reason=reason,
        evidence_hash=evidence_hash,
        now=now,
    )
    await prune_retired(session, row.program_name, now)
    return before
