"""One drift run, the schedule around it, and the promotion guard.

A run, for the artifact serving a program (ACTIVE, or the one asked for):

1. reference: the artifact's frozen baseline; frozen on the first run that finds at least
   ``LEARN_DRIFT_REFERENCE_REVIEWS`` reviews served by it (its first N). When the artifact was
   compiled from a dataset, the request features of that dataset's held-out test split (its eval
   split) replace the served ones as the feature baseline. Written once, never updated.
2. current window: the latest ``LEARN_DRIFT_WINDOW_REVIEWS`` reviews after the reference,
   streamed in chunks; realized P&L of submitted orders from ``review_outcomes``.
3. ``features.compare``: every check, corrected together (``stats.correct``).
4. one ``model_drift`` row per check; gauges; per breach ``learn_drift_alert_total`` + a
   ``drift.alert`` event; with ``LEARN_DRIFT_AUTO_ROLLBACK`` and a breach at or above
   ``LEARN_DRIFT_ROLLBACK_SEVERITY``, ``registry.service.rollback`` to the last known good,
   reason ``E_LEARN_DRIFT_BREACH: ...``.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from app.db.models import DriftReferenceRow, ModelDriftRow
from app.db.session import SessionFactory, read_only, unit_of_work
from app.drift import repository, stats
from app.drift.features import Window, compare
from app.drift.stats import Check, Severity, Thresholds
from app.errors import ErrorCode
from app.leases.repository import Lease
from app.leases.runner import SingletonLoop
from app.observability import metrics
from app.observability.logging import event
from app.registry import repository as registry
from app.registry import service as registry_service
from app.registry.artifact import ArtifactRefused
from app.registry.states import ArtifactState
from app.settings import Settings

LEASE_NAME = "drift-monitor"
_SEVERITY_RANK = {Severity.WARNING: 1, Severity.CRITICAL: 2}


class RunOutcome(StrEnum):
    OK = "ok"
    BREACH = "breach"
    NO_ARTIFACT = "no_artifact"
    REFERENCE_PENDING = "reference_pending"
    ERROR = "error"


@dataclass
class DriftRun:
    run_id: str
    program: str
    artifact_hash: str | None
    model_type: str
    outcome: RunOutcome
    reference_source: str | None = None
    reference_n: int = 0
    window_n: int = 0
    checks: list[Check] = field(default_factory=list[Check])
    rolled_back_to: str | None = None
    message: str = ""

    def to_json(self) -> dict[str, Any]:
        return {
            "run_id": self.run_id,
            "program": self.program,
            "artifact_hash": self.artifact_hash,
            "model_type": self.model_type,
            "outcome": self.outcome.value,
            "reference_source": self.reference_source,
            "reference_n": self.reference_n,
            "window_n": self.window_n,
            "rolled_back_to": self.rolled_back_to,
            "message": self.message,
            "checks": [check_json(c) for c in self.checks],
        }


def check_json(c: Check) -> dict[str, Any]:
    return {
        "metric": c.metric,
        "family": c.family.value,
        "test": c.test.value,
        "statistic": c.statistic,
        "effect": c.effect,
        "floor": c.floor,
        "threshold": c.threshold,
        "p_value": c.p_value,
        "level": c.level,
        "n": c.n,
        "m": c.m,
        "breach": c.breach,
        "severity": c.severity.value,
    }


def thresholds(settings: Settings) -> Thresholds:
    return Thresholds(alpha=settings.learn_drift_alpha, psi_floor=settings.learn_drift_psi_thresh)


async def _eval_split_features(session: AsyncSession, lineage: dict[str, Any]) -> Window | None:
    """The request features of the artifact's held-out test split, when it was compiled from a
    recorded dataset; None otherwise (or when the dataset cannot be read)."""
    digest = lineage.get("dataset_hash")
    if not isinstance(digest, str):
        return None
    from app.lanes import dataset  # the lanes import dspy-free modules only for this

    try:
        data = await dataset.load(session, digest)
    except Exception:  # missing or unreadable dataset: fall back to served reviews
        return None
    window = Window()
    for example in data.split(dataset.Split.TEST):
        window.add_request_only(example.inputs)
    return window if window.numeric or window.categorical else None


async def _freeze_reference(
    session: AsyncSession,
    program: str,
    digest: str,
    lineage: dict[str, Any],
    size: int,
    now: datetime,
) -> DriftReferenceRow | None:
    if await repository.count_reviews(session, digest) < size:
        return None
    await asyncio.to_thread(stats.preload)  # numpy/scipy off the event loop (first use only)
    served = Window()
    span = await repository.stream_window(session, digest, from_id=0, limit=size, window=served)
    source = "served"
    split = await _eval_split_features(session, lineage)
    if split is not None and any(split.numeric.values()):
        served.numeric, served.categorical = split.numeric, split.categorical
        source = "eval_split"
    return await repository.add_reference(
        session,
        DriftReferenceRow(
            artifact_hash=digest,
            program_name=program,
            source=source,
            n=served.n,
            first_review_id=span.first_id,
            last_review_id=span.last_id,
            window_start=span.start,
            window_end=span.end,
            sample=served.to_json(),
            created_at=now,
        ),
    )


async def run_once(
    factory: SessionFactory,
    settings: Settings,
    *,
    clock: Callable[[], datetime],
    artifact_hash: str | None = None,
    actor: str = "system:drift",
) -> DriftRun:
    """One drift run (see the module docstring). Never raises for a database error: the run's
    outcome says ``error`` and the next run tries again."""
    program = settings.llm_dspy_program_name
    run = DriftRun(str(uuid.uuid4()), program, artifact_hash, "unknown", RunOutcome.OK)
    try:
        await _run(factory, settings, clock, run, actor)
    except Exception as exc:
        run.outcome, run.message = RunOutcome.ERROR, type(exc).__name__
        event("drift.run_failed", logging.ERROR, error=repr(exc))
    metrics.LEARN_DRIFT_RUNS.labels(run.outcome.value).inc()
    return run


async def _run(
    factory: SessionFactory,
    settings: Settings,
    clock: Callable[[], datetime],
    run: DriftRun,
    actor: str,
) -> None:
    th = thresholds(settings)
    async with read_only(factory) as session:
        digest = run.artifact_hash or await registry.hash_in_state(
            session, run.program, ArtifactState.ACTIVE
        )
        art = await registry.get_by_hash(session, digest) if digest else None
    if digest is None or art is None:
        run.outcome, run.message = RunOutcome.NO_ARTIFACT, "no artifact to monitor"
        return
    run.artifact_hash, run.model_type = digest, art.executor
    try:
        async with unit_of_work(factory) as session:
            ref = await repository.get_reference(session, digest)
            if ref is None:
                ref = await _freeze_reference(
                    session,
                    run.program,
                    digest,
                    art.lineage,
                    settings.learn_drift_reference_reviews,
                    clock(),
                )
                if ref is not None:
                    event("drift.reference_frozen", artifact=digest, n=ref.n, source=ref.source)
    except IntegrityError:  # another runner froze it first: theirs is the reference
        async with read_only(factory) as session:
            ref = await repository.get_reference(session, digest)
    if ref is None:
        run.outcome = RunOutcome.REFERENCE_PENDING
        run.message = f"reference needs {settings.learn_drift_reference_reviews} served reviews"
        return
    await asyncio.to_thread(stats.preload)  # numpy/scipy off the event loop (first use only)
    reference = Window.from_json(ref.sample)
    current = Window()
    async with read_only(factory) as session:
        after = ref.last_review_id or 0
        floor = await repository.window_floor_id(
            session, digest, after, settings.learn_drift_window_reviews
        )
        span = repository.Span()
        if floor is not None:
            span = await repository.stream_window(
                session,
                digest,
                from_id=floor,
                limit=settings.learn_drift_window_reviews,
                window=current,
            )
        if ref.first_review_id is not None and ref.last_review_id is not None:
            reference.returns = await repository.realized_returns(
                session, digest, ref.first_review_id, ref.last_review_id
            )
        if span.first_id is not None and span.last_id is not None:
            current.returns = await repository.realized_returns(
                session, digest, span.first_id, span.last_id
            )
    run.reference_source, run.reference_n, run.window_n = ref.source, ref.n, current.n
    run.checks = compare(reference, current, th)
    now = clock()
    async with unit_of_work(factory) as session:
        await repository.add_checks(
            session,
            [
                ModelDriftRow(
                    run_id=run.run_id,
                    artifact_hash=digest,
                    program_name=run.program,
                    model_type=run.model_type,
                    family=c.family.value,
                    metric=c.metric,
                    test=c.test.value,
                    statistic=_finite(c.statistic),
                    effect=_finite(c.effect),
                    threshold=_finite(c.threshold),
                    p_value=c.p_value,
                    level=c.level,
                    n=c.n,
                    m=c.m,
                    breach=c.breach,
                    severity=c.severity.value,
                    reference_id=ref.id,
                    window_start=span.start,
                    window_end=span.end,
                    detail=c.detail,
                    created_at=now,
                )
                for c in run.checks
            ],
        )
    breaches = [c for c in run.checks if c.breach]
    for c in run.checks:
        metrics.LEARN_DRIFT_STATISTIC.labels(run.model_type, c.metric).set(_finite(c.statistic))
        metrics.LEARN_DRIFT_THRESHOLD.labels(run.model_type, c.metric).set(_finite(c.threshold))
        metrics.LEARN_DRIFT_BREACH.labels(run.model_type, c.metric).set(1.0 if c.breach else 0.0)
    for c in breaches:
        metrics.LEARN_DRIFT_ALERT.labels(run.model_type, c.metric).inc()
        # The DriftAlert fields (seed 002): artifact, metric, statistic, threshold, windows,
        # severity.
        event(
            "drift.alert",
            logging.WARNING,
            artifact=digest,
            model_type=run.model_type,
            metric=c.metric,
            statistic=round(c.statistic, 6),
            threshold=round(c.threshold, 6),
            p_value=c.p_value,
            reference_window=f"{ref.window_start}..{ref.window_end} n={c.n}",
            current_window=f"{span.start}..{span.end} m={c.m}",
            severity=c.severity.value,
            run_id=run.run_id,
        )
    run.outcome = RunOutcome.BREACH if breaches else RunOutcome.OK
    wanted = _SEVERITY_RANK[Severity(settings.learn_drift_rollback_severity)]
    severe = [c for c in breaches if _SEVERITY_RANK[c.severity] >= wanted]
    if severe and settings.learn_drift_auto_rollback:
        await _rollback(factory, run, severe, actor, clock)


def _finite(x: float) -> float:
    return x if x == x and abs(x) != float("inf") else 1e300


async def _rollback(
    factory: SessionFactory,
    run: DriftRun,
    severe: list[Check],
    actor: str,
    clock: Callable[[], datetime],
) -> None:
    reason = (
        f"{ErrorCode.E_LEARN_DRIFT_BREACH.value}: "
        + ", ".join(c.metric for c in severe[:5])
        + f" (run {run.run_id})"
    )
    try:
        async with unit_of_work(factory) as session:
            current = await registry.hash_in_state(session, run.program, ArtifactState.ACTIVE)
            if current != run.artifact_hash:
                return  # someone already moved ACTIVE: do not undo an operator's choice
            restored, replaced = await registry_service.rollback(
                session, run.program, actor=actor, reason=reason, now=clock()
            )
    except (
        LookupError,
        registry_service.TransitionConflict,
        ArtifactRefused,
        IntegrityError,
    ) as exc:
        metrics.LEARN_DRIFT_ROLLBACKS.labels("failed").inc()
        event("drift.rollback_failed", logging.ERROR, artifact=run.artifact_hash, error=str(exc))
        return
    run.rolled_back_to = restored
    metrics.LEARN_DRIFT_ROLLBACKS.labels("ok").inc()
    event(
        "drift.rollback",
        logging.WARNING,
        code=ErrorCode.E_LEARN_DRIFT_BREACH.value,
        restored=restored,
        replaced=replaced,
        run_id=run.run_id,
    )


def drift_loop(
    factory: SessionFactory, settings: Settings, clock: Callable[[], datetime]
) -> SingletonLoop:
    """The in-service schedule: one replica at a time under the ``drift-monitor`` lease."""

    async def work(lease: Lease) -> None:
        run = await run_once(factory, settings, clock=clock, actor=f"system:drift#{lease.epoch}")
        event("drift.run", outcome=run.outcome.value, artifact=run.artifact_hash, run_id=run.run_id)

    return SingletonLoop(
        factory, LEASE_NAME, work, period_seconds=settings.learn_drift_period_seconds, clock=clock
    )


# ------------------------------------------------------------------------------ promotion guard


def _utc(ts: datetime) -> datetime:
    return ts if ts.tzinfo is not None else ts.replace(tzinfo=UTC)


def _aware(ts: datetime | None) -> datetime | None:
    return None if ts is None else _utc(ts)


async def promotion_block(session: AsyncSession, program: str, digest: str) -> list[str]:
    """Reasons the candidate ``digest`` may not be promoted: unacknowledged drift breaches whose
    current window overlaps the window its dataset was built from. A candidate whose data window
    cannot be read is judged against every unacknowledged breach (fail closed)."""
    breaches = await repository.unacknowledged_breaches(session, program)
    if not breaches:
        return []
    since: datetime | None = None
    until: datetime | None = None
    row = await registry.get_by_hash(session, digest)
    dataset_hash = (row.lineage or {}).get("dataset_hash") if row is not None else None
    if isinstance(dataset_hash, str):
        from app.lanes import repository as lanes_repo

        out = await lanes_repo.latest(session, "dataset", dataset_hash)
        if out is not None:
            try:
                since = datetime.fromisoformat(str(out.config["since"]))
                until = datetime.fromisoformat(str(out.config["until"]))
            except (KeyError, ValueError):
                since = until = None
    reasons: list[str] = []
    for b in breaches:
        start, end = _aware(b.window_start), _aware(b.window_end)
        if (
            since is not None
            and until is not None
            and start is not None
            and end is not None
            and (end < _utc(since) or start >= _utc(until))
        ):
            continue  # the candidate's data ends before, or starts after, the drifted window
        reasons.append(
            f"drift breach {b.metric} (run {b.run_id[:8]}, statistic {b.statistic:.4g} > "
            f"{b.threshold:.4g}) not acknowledged"
        )
    return reasons


async def drift_block(
    session: AsyncSession, program: str, digest: str, target: ArtifactState, now: datetime
) -> registry_service.PromotionResult | None:
    """A denied ``PromotionResult`` (``E_LEARN_DRIFT_BREACH``) when unacknowledged drift blocks
    promoting ``digest`` to ``target``; None when the promotion may go on to the evidence checks.
    Retiring and rolling back are never blocked: they are how an operator answers drift."""
    if target not in (ArtifactState.SHADOW, ArtifactState.CANARY, ArtifactState.ACTIVE):
        return None
    row = await registry.get_by_hash(session, digest)
    if row is None or ArtifactState(row.state) is ArtifactState.RETIRED:
        return None  # unknown: the registry says 404; retired -> active is a rollback
    reasons = await promotion_block(session, program, digest)
    if not reasons:
        return None
    from app.registry import evidence
    from app.registry.evidence import EvidenceKind

    await evidence.add(
        session,
        digest,
        EvidenceKind.PROMOTION_DENIED,
        {
            "target": target.value,
            "code": registry_service.PromotionCode.DRIFT_BREACH.value,
            "reasons": reasons,
            "at": now.isoformat(),
        },
        actor="system:drift",
        now=now,
    )
    return registry_service.PromotionResult(
        False, registry_service.PromotionCode.DRIFT_BREACH, reasons, ArtifactState(row.state)
    )
