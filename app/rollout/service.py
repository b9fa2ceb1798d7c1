"""Rollout operations: start (from SHADOW, with evidence), pause, resume, abort, and applying a
controller decision. Every change is one unit of work: the record, the registry transition and
the decision event commit together, so a replica never sees a half-applied step."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from app.db.models import RolloutRow
from app.observability import metrics
from app.observability.logging import event
from app.registry import evidence as registry_evidence
from app.registry import repository as registry_repo
from app.registry import service as registry
from app.registry.evidence import EvidenceKind
from app.registry.hashing import canonical_json, sha256_hex
from app.registry.promotion import PromotionPolicy, Scorecard
from app.registry.states import ArtifactState
from app.rollout import repository
from app.rollout.analysis import Decision, Thresholds, Verdict
from app.rollout.evidence import ShadowPolicy, check_shadow, uncomputable_gates
from app.rollout.repository import RolloutState
from app.rollout.shadow import stats as shadow_stats

DEFAULT_STEPS: tuple[float, ...] = (5.0, 25.0, 50.0, 100.0)


class RolloutError(Exception):
    """An operator action that does not apply to the current state (a 409 at the API)."""


class RolloutDenied(Exception):
    """The candidate lacks the evidence to start a canary."""

    def __init__(self, code: str, reasons: list[str]) -> None:
        super().__init__("; ".join(reasons))
        self.code = code
        self.reasons = reasons


def aware(ts: datetime) -> datetime:
    return ts if ts.tzinfo is not None else ts.replace(tzinfo=UTC)


def _weight_metric(program: str, weight: float) -> None:
    metrics.CANARY_WEIGHT.labels(program).set(weight)


async def _event(
    session: AsyncSession,
    r: RolloutRow,
    decision: str,
    actor: str,
    reasons: list[str],
    figures: dict[str, Any],
    now: datetime,
) -> None:
    await repository.add_event(
        session,
        rollout_id=r.id,
        program=r.program_name,
        artifact_hash=r.candidate_hash,
        decision=decision,
        actor=actor,
        reasons=reasons,
        figures=figures,
        weight_pct=r.weight_pct,
        now=now,
    )
    metrics.ROLLOUT_DECISIONS.labels(decision).inc()
    event(
        "rollout.decision",
        logging.WARNING if decision == Decision.ABORT else logging.INFO,
        rollout_id=r.id,
        decision=decision,
        weight_pct=r.weight_pct,
        reasons=reasons,
    )


async def start(
    session: AsyncSession,
    program: str,
    candidate: str,
    *,
    actor: str,
    policy: PromotionPolicy,
    shadow_days: float,
    steps: Sequence[float] = DEFAULT_STEPS,
    window_seconds: float,
    min_samples: int,
    thresholds: Thresholds,
    reason: str,
    now: datetime,
    shadow_policy: ShadowPolicy | None = None,
    accepted_disagreement: float | None = None,
    waivers: frozenset[str] = frozenset(),
) -> RolloutRow | RolloutDenied:
    """Move ``candidate`` SHADOW -> CANARY (evidence checked) and open its rollout at step 0.

    A denial is returned, not raised, so the caller commits its record (as ``promote`` does)."""
    if not steps or any(not 0 < s <= 100 for s in steps) or list(steps) != sorted(set(steps)):
        raise RolloutError("steps must be increasing percentages in (0, 100]")
    if steps[-1] != 100:
        raise RolloutError("the last step must be 100")
    row = await registry_repo.get_by_hash(session, candidate)
    if row is None:
        raise LookupError(f"artifact {candidate} not found")
    if row.program_name != program:
        raise RolloutError(f"artifact {candidate[:12]} belongs to {row.program_name}")
    if row.state != ArtifactState.SHADOW.value:
        raise RolloutError(f"a canary starts only from shadow; artifact is {row.state}")
    if await repository.open_rollout(session, program) is not None:
        raise RolloutError(f"a rollout of {program} is already open")
    baseline = await registry_repo.hash_in_state(session, program, ArtifactState.ACTIVE)
    if baseline is None:
        raise RolloutError(f"{program} has no active artifact to compare against")
    evidence_figures: dict[str, Any] = {}
    if shadow_policy is not None:
        st = await shadow_stats(session, candidate)
        card_row = await registry_evidence.latest(session, candidate, EvidenceKind.SCORECARD)
        card = Scorecard.model_validate(card_row.payload) if card_row is not None else None
        reasons = check_shadow(
            st, shadow_policy, policy, accepted_disagreement=accepted_disagreement
        ) + uncomputable_gates(card, waivers)
        evidence_figures = {
            "shadow": st.as_dict(),
            "accepted_disagreement": accepted_disagreement,
            "waived": sorted(waivers),
        }
        if reasons:
            await registry_evidence.add(
                session,
                candidate,
                EvidenceKind.PROMOTION_DENIED,
                {
                    "target": "canary",
                    "code": "E_LEARN_GATE_FAILED",
                    "reasons": reasons,
                    "figures": evidence_figures,
                    "at": now.isoformat(),
                },
                actor=actor,
                now=now,
            )
            return RolloutDenied("E_LEARN_GATE_FAILED", reasons)
    result = await registry.promote(
        session,
        candidate,
        ArtifactState.CANARY,
        actor=actor,
        policy=policy,
        shadow_days=shadow_days,
        approval=None,
        reason=reason or "canary rollout started",
        now=now,
        waivers=waivers,
    )
    if not result.promoted:
        return RolloutDenied(result.code.value if result.code else "denied", result.reasons)
    r = RolloutRow(
        program_name=program,
        candidate_hash=candidate,
        baseline_hash=baseline,
        steps=[float(s) for s in steps],
        step_index=0,
        weight_pct=float(steps[0]),
        window_seconds=window_seconds,
        min_samples=min_samples,
        thresholds=thresholds.model_dump(),
        salt=uuid.uuid4().hex,
        state=RolloutState.RUNNING.value,
        created_by=actor,
        created_at=now,
        updated_at=now,
        window_started_at=now,
    )
    session.add(r)
    try:
        await session.flush()
    except IntegrityError as exc:
        raise RolloutError(f"a rollout of {program} is already open") from exc
    await _event(
        session,
        r,
        "start",
        actor,
        [reason or "started"],
        {"steps": r.steps, **evidence_figures},
        now,
    )
    return r


async def _open(session: AsyncSession, program: str) -> RolloutRow:
    r = await repository.open_rollout(session, program, for_update=True)
    if r is None:
        raise RolloutError(f"no open rollout of {program}")
    return r


async def pause(
    session: AsyncSession, program: str, *, actor: str, reason: str, now: datetime
) -> RolloutRow:
    """Hold the current step: traffic keeps its split, the controller makes no decision."""
    r = await _open(session, program)
    if r.state != RolloutState.RUNNING.value:
        raise RolloutError("rollout is not running")
    r.state, r.updated_at = RolloutState.PAUSED.value, now
    await _event(session, r, "pause", actor, [reason or "paused"], {}, now)
    return r


async def resume(
    session: AsyncSession, program: str, *, actor: str, reason: str, now: datetime
) -> RolloutRow:
    """Continue; the next window starts now (figures from the pause are not judged)."""
    r = await _open(session, program)
    if r.state != RolloutState.PAUSED.value:
        raise RolloutError("rollout is not paused")
    r.state, r.updated_at, r.window_started_at = RolloutState.RUNNING.value, now, now
    await _event(session, r, "resume", actor, [reason or "resumed"], {}, now)
    return r


async def abort(
    session: AsyncSession,
    program: str,
    *,
    actor: str,
    reasons: list[str],
    figures: dict[str, Any],
    now: datetime,
    trigger: str = "operator",
) -> RolloutRow:
    """0% at once, candidate back to SHADOW with the figures as evidence, an alert metric."""
    r = await _open(session, program)
    await _abort(session, r, actor=actor, reasons=reasons, figures=figures, now=now)
    metrics.ROLLOUT_ABORTS.labels(trigger).inc()
    return r


async def _abort(
    session: AsyncSession,
    r: RolloutRow,
    *,
    actor: str,
    reasons: list[str],
    figures: dict[str, Any],
    now: datetime,
) -> None:
    r.weight_pct = 0.0
    r.state, r.updated_at, r.ended_at = RolloutState.ABORTED.value, now, now
    row = await registry_repo.get_by_hash(session, r.candidate_hash)
    if row is not None and row.state == ArtifactState.CANARY.value:
        await registry.abort_canary(
            session,
            r.candidate_hash,
            actor=actor,
            reason="canary aborted: " + "; ".join(reasons),
            evidence_hash=sha256_hex(canonical_json({"reasons": reasons, "figures": figures})),
            now=now,
        )
    await _event(session, r, Decision.ABORT.value, actor, reasons, figures, now)
    _weight_metric(r.program_name, 0.0)


CONTROLLER = "system:rollout-controller"


async def evaluate(session: AsyncSession, program: str, now: datetime) -> Verdict | None:
    """One controller turn for ``program``: decide when a window has elapsed, else nothing."""
    from app.rollout.analysis import decide

    r = await repository.open_rollout(session, program, for_update=True)
    if r is None or r.state != RolloutState.RUNNING.value:
        return None
    _weight_metric(program, r.weight_pct)
    cand = await registry_repo.get_by_hash(session, r.candidate_hash)
    if cand is None or cand.state != ArtifactState.CANARY.value:
        reasons = [f"candidate left canary (now {cand.state if cand else 'missing'})"]
        await _abort(session, r, actor=CONTROLLER, reasons=reasons, figures={}, now=now)
        metrics.ROLLOUT_ABORTS.labels("controller").inc()
        return Verdict(Decision.ABORT, reasons, {})
    start = aware(r.window_started_at)
    if now - start < timedelta(seconds=r.window_seconds):
        return None
    canary = await repository.arm_figures(session, r.candidate_hash, "canary", start, now)
    # At 100% the baseline serves nothing: judge the canary against the baseline's figures
    # over the whole rollout (the same traffic, the closest comparable window there is).
    base_start = aware(r.created_at) if r.weight_pct >= 100 else start
    base = await repository.arm_figures(session, r.baseline_hash, "active", base_start, now)
    last = r.step_index >= len(r.steps) - 1
    verdict = decide(
        canary,
        base,
        Thresholds.model_validate(r.thresholds),
        min_samples=r.min_samples,
        last_step=last,
    )
    figures = {
        **verdict.figures,
        "window": {"start": start.isoformat(), "end": now.isoformat()},
        "step_index": r.step_index,
        "weight_pct": r.weight_pct,
    }
    if verdict.decision is Decision.ABORT:
        await _abort(
            session, r, actor=CONTROLLER, reasons=verdict.reasons, figures=figures, now=now
        )
        metrics.ROLLOUT_ABORTS.labels("controller").inc()
        return verdict
    if verdict.decision is Decision.HOLD:
        # Too few samples: keep the window open so it accumulates (never pass, never abort).
        if not verdict.insufficient:
            r.window_started_at = now
    elif verdict.decision is Decision.STEP:
        r.step_index += 1
        r.weight_pct = float(r.steps[r.step_index])
        r.window_started_at = now
    else:  # graduate: candidate ACTIVE, the old active RETIRED (last known good)
        await registry.graduate_canary(
            session,
            r.candidate_hash,
            actor=CONTROLLER,
            reason="canary graduated: every step green",
            evidence_hash=sha256_hex(canonical_json(figures)),
            now=now,
        )
        r.weight_pct = 0.0  # the candidate now serves as the active arm
        r.state, r.ended_at = RolloutState.GRADUATED.value, now
    r.updated_at = now
    await _event(session, r, verdict.decision.value, CONTROLLER, verdict.reasons, figures, now)
    _weight_metric(program, r.weight_pct)
    return verdict
