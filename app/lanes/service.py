"""Lane operations as one call each (what the CLI and the admin endpoints run), with metrics.

Each function owns its units of work; the lanes themselves (``dataset``, ``synthetic``,
``compile``, ``evaluate``) stay usable on their own. ``compile``/``evaluate`` import DSPy, so they
are imported when a lane runs, not when the service starts.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Generator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import TYPE_CHECKING, Any

from app.db.session import SessionFactory, read_only, unit_of_work
from app.drift.monitor import drift_block
from app.lanes import dataset as datasets
from app.lanes import repository as lane_outputs
from app.lanes import synthetic
from app.lanes.dataset import Dataset
from app.observability import metrics
from app.registry import evidence, repository, service
from app.registry.promotion import Scorecard, policy_for
from app.registry.service import PromotionResult, TransitionConflict
from app.registry.states import ArtifactState, ExecutorKind
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


@contextmanager
def _observed(lane: Lane) -> Generator[None]:
    start = time.perf_counter()
    try:
        yield
    except Exception:
        metrics.LANE_RUNS.labels(lane.value, Outcome.ERROR.value).inc()
        raise
    finally:
        metrics.LANE_DURATION.labels(lane.value).observe(time.perf_counter() - start)
    metrics.LANE_RUNS.labels(lane.value, Outcome.OK.value).inc()


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
    with _observed(Lane.DATASET):
        async with unit_of_work(factory) as session:
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
    with _observed(Lane.SYNTHETIC):
        async with unit_of_work(factory) as session:
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

    with _observed(Lane.COMPILE):
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
    metrics.LEARN_MODEL_STATE.labels(
        ExecutorKind.DSPY_LIVE.value, ArtifactState.CANDIDATE.value
    ).inc()
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

    with _observed(Lane.EVAL):
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
    model_type = str((result.scorecard.model_extra or {}).get("executor") or "unknown")
    for pack, passed in pack_results(result.scorecard, result.reasons).items():
        counter = metrics.LEARN_GATE_PASS if passed else metrics.LEARN_GATE_FAIL
        counter.labels(model_type, pack).inc()
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

    with _observed(Lane.REPLAY):
        return await replay.run(
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


# ------------------------------------------------------------------------------ registry


async def _executor_of(factory: SessionFactory, digest: str) -> str:
    async with read_only(factory) as session:
        row = await repository.get_by_hash(session, digest)
    return row.executor if row is not None else "unknown"


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

    with _observed(Lane.PROMOTE):
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
    model_type = await _executor_of(factory, digest)
    if result.promoted:
        metrics.LEARN_MODEL_STATE.labels(model_type, target.value).inc()
    else:
        metrics.LANE_RUNS.labels(Lane.PROMOTE.value, Outcome.DENIED.value).inc()
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
    with _observed(Lane.RETIRE):
        now = clock()
        async with unit_of_work(factory) as session:
            before = await service.retire(session, digest, actor=actor, reason=reason, now=now)
    metrics.LEARN_MODEL_STATE.labels(
        await _executor_of(factory, digest), ArtifactState.RETIRED.value
    ).inc()
    return before


async def rollback(
    factory: SessionFactory,
    settings: Settings,
    *,
    actor: str,
    reason: str,
    clock: Callable[[], datetime],
) -> tuple[str, str | None]:
    with _observed(Lane.ROLLBACK):
        async with unit_of_work(factory) as session:
            restored, replaced = await service.rollback(
                session, settings.llm_dspy_program_name, actor=actor, reason=reason, now=clock()
            )
    metrics.LEARN_MODEL_STATE.labels(
        await _executor_of(factory, restored), ArtifactState.ACTIVE.value
    ).inc()
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
