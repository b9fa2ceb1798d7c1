"""Lane operations as one call each (what the CLI and the admin endpoints run), recorded.

Each function owns its units of work; the lanes themselves (``dataset``, ``synthetic``,
``compile``, ``evaluate``) stay usable on their own. ``compile``/``evaluate`` import DSPy, so they
are imported when a lane runs, not when the service starts.

Every run ends with a ``lane_runs`` row (lane, outcome, duration, artifact) and, for eval, one
``lane_gate_results`` row per promotion check: lanes run in short-lived CLI/CronJob processes
nobody scrapes, so the service's ``/metrics`` reads these rows (``app/lanes/figures.py``), and
the registry's own event rows for state changes. Nothing here counts in process.
"""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncGenerator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import TYPE_CHECKING, Any

from app.db.session import SessionFactory, read_only, unit_of_work
from app.lanes import dataset as datasets
from app.lanes import repository as lane_outputs
from app.lanes import synthetic
from app.lanes.dataset import Dataset
from app.observability.logging import event
from app.registry import evidence, repository, service
from app.registry.promotion import Scorecard, policy_for
from app.registry.service import PromotionResult, TransitionConflict
from app.registry.states import ArtifactState
from app.settings import Settings

if TYPE_CHECKING:
    from app.db.models import ArtifactRow
    from app.lanes.compile import CompileConfig, CompileResult
    from app.lanes.evaluate import EvalResult
    from app.lanes.replay import ReplayResult


class Lane(StrEnum):
    DATASET = "dataset"
    SYNTHETIC = "synthetic"
    COMPILE = "compile"
    EVAL = "eval"
    REPLAY = "replay"
    PROMOTE = "promote"
    ROLLBACK = "rollback"
    RETIRE = "retire"


class Outcome(StrEnum):
    OK = "ok"
    DENIED = "denied"
    ERROR = "error"


# Reason prefixes of ``check_scorecard`` -> the promotion check ("pack") they belong to.
_PACKS: tuple[tuple[str, str], ...] = (
    ("no eval scorecard", "coverage"),
    ("scorecard covers no examples", "coverage"),
    ("schema-valid rate", "schema_valid"),
    ("fallback rate", "fallback_rate"),
    ("timeout rate", "timeout_rate"),
    ("deterministic gate bypass", "gate_bypass"),
    ("artifact hash is not reproducible", "reproducible_hash"),
    ("gate compatibility", "gate_compatibility"),
    ("determinism spot check", "determinism"),
    ("delta Sharpe", "delta_sharpe"),
    ("max drawdown", "max_drawdown"),
)
PACKS = frozenset(pack for _, pack in _PACKS)  # the closed set of the ``pack`` label
_ALWAYS_CHECKED = (
    "coverage",
    "schema_valid",
    "fallback_rate",
    "timeout_rate",
    "gate_bypass",
    "reproducible_hash",
    "gate_compatibility",
    "determinism",
)


@dataclass(slots=True)
class LaneRun:
    """A run in progress: the lane fills in what it learns (artifact, denial, check results)."""

    lane: Lane
    actor: str
    artifact_hash: str | None = None
    outcome: Outcome = Outcome.OK
    model_type: str = "unknown"
    packs: dict[str, bool] = field(default_factory=dict[str, bool])


@asynccontextmanager
async def observed(
    factory: SessionFactory, lane: Lane, *, actor: str, clock: Callable[[], datetime]
) -> AsyncGenerator[LaneRun]:
    """Record the run when it ends: ``ok`` (or the ``denied`` the body set), ``error`` when it
    raised (the exception goes on). The admin transition routes use it too.

    The record is its own unit of work after the lane's: a lane that failed because the
    database is down cannot be recorded either, which is logged (``lanes.run_unrecorded``) and
    never hides the lane's own result or error."""
    run = LaneRun(lane, actor)
    started_at, start = clock(), time.perf_counter()
    try:
        yield run
    except Exception as exc:
        run.outcome = Outcome.ERROR
        await _record(factory, run, type(exc).__name__, started_at, clock(), start)
        raise
    await _record(factory, run, None, started_at, clock(), start)


async def _record(
    factory: SessionFactory,
    run: LaneRun,
    error: str | None,
    started_at: datetime,
    finished_at: datetime,
    start: float,
) -> None:
    duration = time.perf_counter() - start
    try:
        async with unit_of_work(factory) as session:
            row = await lane_outputs.add_run(
                session,
                lane=run.lane.value,
                outcome=run.outcome.value,
                artifact_hash=run.artifact_hash,
                actor=run.actor,
                error=error,
                started_at=started_at,
                finished_at=finished_at,
                duration_seconds=duration,
            )
            if run.packs:
                await lane_outputs.add_gate_results(
                    session,
                    run_id=row.id,
                    artifact_hash=run.artifact_hash,
                    model_type=run.model_type,
                    packs=run.packs,
                    now=finished_at,
                )
    except Exception as exc:
        event(
            "lanes.run_unrecorded",
            logging.WARNING,
            lane=run.lane.value,
            outcome=run.outcome.value,
            artifact_hash=run.artifact_hash,
            error=type(exc).__name__,
        )


promotion_policy = policy_for  # one policy for CLI, lanes and admin API


def pack_results(card: Scorecard, reasons: list[str]) -> dict[str, bool]:
    """Which promotion checks the scorecard passed (the risk checks only when they applied)."""
    failed = {pack for reason in reasons for prefix, pack in _PACKS if reason.startswith(prefix)}
    checked: list[str] = list(_ALWAYS_CHECKED)
    if card.delta_sharpe is not None:
        checked.append("delta_sharpe")
    if card.maxdd_delta is not None:
        checked.append("max_drawdown")
    return {pack: pack not in failed for pack in checked}


# ------------------------------------------------------------------------------ lanes


async def build_dataset(
    factory: SessionFactory,
    *,
    since: datetime,
    until: datetime,
    seed: int,
    actor: str,
    clock: Callable[[], datetime],
    max_examples: int = datasets.DEFAULT_MAX_EXAMPLES,
) -> Dataset:
    async with (
        observed(factory, Lane.DATASET, actor=actor, clock=clock),
        unit_of_work(factory) as session,
    ):
        return await datasets.build_from_reviews(
            session,
            since=since,
            until=until,
            seed=seed,
            actor=actor,
            now=clock(),
            max_examples=max_examples,
        )


async def build_synthetic(
    factory: SessionFactory, *, n: int, seed: int, actor: str, clock: Callable[[], datetime]
) -> Dataset:
    async with (
        observed(factory, Lane.SYNTHETIC, actor=actor, clock=clock),
        unit_of_work(factory) as session,
    ):
        return await synthetic.build(session, n=n, seed=seed, actor=actor, now=clock())


async def compile_candidate(
    factory: SessionFactory,
    settings: Settings,
    *,
    dataset_hash: str,
    config: CompileConfig,
    actor: str,
    clock: Callable[[], datetime],
    num_threads: int = 2,
    call_timeout_s: float = 60.0,
    run_deadline_s: float | None = None,
    on_call: Callable[[int], None] | None = None,
) -> CompileResult:
    from app.lanes import compile as compiler

    async with observed(factory, Lane.COMPILE, actor=actor, clock=clock) as run:
        result = await compiler.run(
            factory,
            settings,
            dataset_hash=dataset_hash,
            config=config,
            actor=actor,
            clock=clock,
            num_threads=num_threads,
            call_timeout_s=call_timeout_s,
            run_deadline_s=run_deadline_s,
            on_call=on_call,
        )
        run.artifact_hash = result.artifact_hash
    return result


async def evaluate_candidate(
    factory: SessionFactory,
    settings: Settings,
    *,
    artifact: str,
    dataset_hash: str,
    actor: str,
    clock: Callable[[], datetime],
    concurrency: int = 4,
    max_examples: int | None = None,
    on_progress: Callable[[int, int], None] | None = None,
) -> EvalResult:
    from app.lanes import evaluate

    async with observed(factory, Lane.EVAL, actor=actor, clock=clock) as run:
        run.artifact_hash = artifact
        result = await evaluate.run(
            factory,
            settings,
            artifact=artifact,
            dataset_hash=dataset_hash,
            actor=actor,
            clock=clock,
            policy=promotion_policy(settings),
            concurrency=concurrency,
            max_examples=max_examples,
            on_progress=on_progress,
        )
        run.model_type = str((result.scorecard.model_extra or {}).get("executor") or "unknown")
        run.packs = pack_results(result.scorecard, result.reasons)
    return result


async def replay_candidate(
    factory: SessionFactory,
    settings: Settings,
    *,
    artifact: str,
    since: datetime,
    until: datetime,
    actor: str,
    clock: Callable[[], datetime],
    limit: int = 500,
    concurrency: int = 4,
    on_progress: Callable[[int, int], None] | None = None,
) -> ReplayResult:
    """``lanes replay``: the window's recorded requests re-decided by ``artifact`` (evidence)."""
    from app.lanes import replay

    async with observed(factory, Lane.REPLAY, actor=actor, clock=clock) as run:
        run.artifact_hash = artifact
        result = await replay.run(
            factory,
            settings,
            artifact=artifact,
            since=since,
            until=until,
            actor=actor,
            clock=clock,
            policy=promotion_policy(settings),
            limit=limit,
            concurrency=concurrency,
            on_progress=on_progress,
        )
        if not result.passes:
            run.outcome = Outcome.DENIED
        return result


# ------------------------------------------------------------------------------ registry


async def promote(
    factory: SessionFactory,
    settings: Settings,
    *,
    digest: str,
    target: ArtifactState,
    actor: str,
    approval: dict[str, Any] | None,
    reason: str,
    clock: Callable[[], datetime],
    replace_shadow: bool = False,
    waivers: frozenset[str] = frozenset(),
) -> PromotionResult:
    """Evidence-checked promotion (``registry.service.promote``); a denial is recorded.

    ``replace_shadow``: when another artifact holds the shadow slot, retire it first (only after
    this artifact's own promotion was not denied). ``waivers``: checks the operator accepts by
    name (``replay``). Raises ``LookupError``,
    ``InvalidTransition``, ``TransitionConflict``.
    """
    policy = promotion_policy(settings)

    async def attempt(retire_shadow: str | None) -> PromotionResult:
        now = clock()
        async with unit_of_work(factory) as session:
            if retire_shadow is not None:
                await service.retire(
                    session,
                    retire_shadow,
                    actor=actor,
                    reason=f"replaced in shadow by {digest[:12]}",
                    now=now,
                )
            # --- drift: a breach blocks promotions built on the drifted window (app/drift)
            # (imported here: it loads scipy, ~1 s of every other lanes command's start-up)
            from app.drift.monitor import drift_block

            blocked = await drift_block(
                session, settings.llm_dspy_program_name, digest, target, now
            )
            if blocked is not None:
                return blocked
            return await service.promote(
                session,
                digest,
                target,
                actor=actor,
                policy=policy,
                shadow_days=settings.learn_shadow_duration_days,
                approval=approval,
                reason=reason,
                now=now,
                waivers=waivers,
            )

    async with observed(factory, Lane.PROMOTE, actor=actor, clock=clock) as run:
        run.artifact_hash = digest
        try:
            result = await attempt(None)
        except TransitionConflict:
            if not (replace_shadow and target is ArtifactState.SHADOW):
                raise
            async with read_only(factory) as session:
                row = await repository.get_by_hash(session, digest)
                program = row.program_name if row is not None else settings.llm_dspy_program_name
                current = await repository.hash_in_state(session, program, ArtifactState.SHADOW)
            if current is None or current == digest:
                raise
            result = await attempt(current)
        if not result.promoted:
            run.outcome = Outcome.DENIED
    return result


async def retire(
    factory: SessionFactory,
    settings: Settings,
    *,
    digest: str,
    actor: str,
    reason: str,
    clock: Callable[[], datetime],
) -> ArtifactState:
    async with observed(factory, Lane.RETIRE, actor=actor, clock=clock) as run:
        run.artifact_hash = digest
        now = clock()
        async with unit_of_work(factory) as session:
            before = await service.retire(session, digest, actor=actor, reason=reason, now=now)
    return before


async def rollback(
    factory: SessionFactory,
    settings: Settings,
    *,
    actor: str,
    reason: str,
    clock: Callable[[], datetime],
) -> tuple[str, str | None]:
    async with observed(factory, Lane.ROLLBACK, actor=actor, clock=clock) as run:
        async with unit_of_work(factory) as session:
            restored, replaced = await service.rollback(
                session, settings.llm_dspy_program_name, actor=actor, reason=reason, now=clock()
            )
        run.artifact_hash = restored
    return restored, replaced


@dataclass(frozen=True, slots=True)
class ArtifactView:
    row: ArtifactRow
    events: list[dict[str, Any]]
    evidence: list[dict[str, Any]]
    lane_outputs: list[dict[str, Any]]


async def list_artifacts(factory: SessionFactory, settings: Settings) -> list[ArtifactRow]:
    async with read_only(factory) as session:
        return await repository.list_for_program(session, settings.llm_dspy_program_name)


async def show_artifact(factory: SessionFactory, digest: str) -> ArtifactView:
    async with read_only(factory) as session:
        row = await repository.get_by_hash(session, digest)
        if row is None:
            raise LookupError(f"artifact {digest} not found")
        events = await repository.events(session, digest)
        found = await evidence.all_for(session, digest)
        outputs = await lane_outputs.for_artifact(session, digest)
    return ArtifactView(
        row=row,
        events=[
            {
                "at": e.created_at.isoformat(),
                "actor": e.actor,
                "from": e.from_state,
                "to": e.to_state,
                "reason": e.reason,
                "evidence_hash": e.evidence_hash,
            }
            for e in events
        ],
        evidence=[
            {
                "at": e.created_at.isoformat(),
                "kind": e.kind,
                "hash": e.evidence_hash,
                "actor": e.actor,
                "payload": e.payload,
            }
            for e in found
        ],
        lane_outputs=[
            {
                "at": o.created_at.isoformat(),
                "lane": o.lane,
                "output_hash": o.output_hash,
                "actor": o.actor,
            }
            for o in outputs
        ],
    )
