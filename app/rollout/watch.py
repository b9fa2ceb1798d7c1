"""The post-promotion watch: for a window after an artifact becomes ACTIVE (graduation, direct
promotion or rollback), its runtime timeout+fallback rate must stay within bound (seed 001,
gate 5) and its error rate too; a breach rolls back to the last known good, automatically."""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncSession

from app.observability import metrics
from app.observability.logging import event
from app.registry import repository as registry_repo
from app.registry import service as registry
from app.registry.states import ArtifactState
from app.rollout import repository
from app.rollout.service import CONTROLLER, aware


@dataclass(frozen=True, slots=True)
class WatchPolicy:
    window_seconds: float
    min_samples: int
    max_fallback_rate: float
    max_error_rate: float


@dataclass(frozen=True, slots=True)
class WatchResult:
    rolled_back: bool
    artifact_hash: str
    restored: str | None
    reasons: list[str]


async def watch(
    session: AsyncSession, program: str, policy: WatchPolicy, now: datetime
) -> WatchResult | None:
    """Judge the ACTIVE artifact if it is inside its watch window; roll back on a breach."""
    active = await registry_repo.hash_in_state(session, program, ArtifactState.ACTIVE)
    if active is None:
        return None
    since = await repository.became_active_at(session, active)
    if since is None or now - aware(since) > timedelta(seconds=policy.window_seconds):
        return None
    until = now + timedelta(microseconds=1)  # everything answered so far, this instant included
    figures = await repository.arm_figures(session, active, "active", aware(since), until)
    if figures.n < policy.min_samples:
        return None  # too few samples: keep watching, never judge on noise
    reasons: list[str] = []
    if figures.fallback_rate > policy.max_fallback_rate:
        reasons.append(
            f"timeout+fallback rate {figures.fallback_rate:.4f} > {policy.max_fallback_rate}"
        )
    if figures.error_rate > policy.max_error_rate:
        reasons.append(f"error rate {figures.error_rate:.4f} > {policy.max_error_rate}")
    if not reasons:
        return WatchResult(False, active, None, [])
    try:
        restored, _ = await registry.rollback(
            session,
            program,
            actor=CONTROLLER,
            reason="post-promotion watch: " + "; ".join(reasons),
            now=now,
        )
    except LookupError:  # nothing formerly active and retained to go back to
        event("rollout.watch_breach_no_lkg", logging.ERROR, artifact_hash=active, reasons=reasons)
        return WatchResult(False, active, None, reasons)
    await repository.add_event(
        session,
        rollout_id=None,
        program=program,
        artifact_hash=active,
        decision="rollback",
        actor=CONTROLLER,
        reasons=reasons,
        figures={
            "active": asdict(figures),
            "since": aware(since).isoformat(),
            "restored": restored,
        },
        weight_pct=0.0,
        now=now,
    )
    metrics.POST_PROMOTION_ROLLBACKS.inc()
    event(
        "rollout.post_promotion_rollback",
        logging.ERROR,
        artifact_hash=active,
        restored=restored,
        reasons=reasons,
    )
    return WatchResult(True, active, restored, reasons)
