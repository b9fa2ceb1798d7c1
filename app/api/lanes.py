"""Admin endpoints that run a learning lane inline and answer with its output hash.

All behind the admin bearer token (``ActorDep``). Inline means bounded:

- one lane at a time per replica (a second request gets 503 ``not_ready`` instead of queueing),
- dataset windows of at most 366 days and 5000 examples; synthetic datasets of at most 2000,
- compile: at most 500 train / 200 val examples, 4 threads, and ``deadline_seconds`` (default
  300, max 900) for the whole run; past it every LM call fails at once and the run is refused,
- eval: at most 500 test examples (default 200), 16 in flight.

The optimizer runs in a worker thread with its own event loop and HTTP client, so serving keeps
its loop; the eval builds its own ``LiveExecutor`` (own breaker and bulkhead), so it never trips
the serving breaker. Longer runs belong to the CLI / the lanes CronJob.
"""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query, Request
from pydantic import BaseModel, ConfigDict, Field, model_validator

from app.api.admin import ActorDep
from app.api.deps import PipelineDep
from app.api.responses import error_responses
from app.db.session import read_only
from app.errors import ErrorCode, NotFound, RequestInvalid, ServiceUnavailable
from app.lanes import repository
from app.lanes import service as lanes
from app.lanes.dataset import Dataset
from app.lanes.errors import JangarNotConfigured, LaneDeadlineExceeded
from app.settings import Settings

router = APIRouter(
    prefix="/admin/lanes",
    tags=["admin", "lanes"],
    responses=error_responses(401, 404, 408, 413, 422, 503),
)

Hash = Annotated[str, Field(pattern=r"^[0-9a-f]{64}$")]


class DatasetBuildIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    since: datetime
    until: datetime
    seed: int = 0
    max_examples: int = Field(default=5000, ge=1, le=5000)

    @model_validator(mode="after")
    def _window(self) -> DatasetBuildIn:
        if self.until <= self.since:
            raise ValueError("until must be after since")
        if self.until - self.since > timedelta(days=366):
            raise ValueError("the window may span at most 366 days")
        return self


class SyntheticIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    n: int = Field(default=60, ge=1, le=2000)
    seed: int = 7


class CompileIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    dataset_hash: Hash
    optimizer: Literal["mipro", "gepa", "bootstrap"] = "mipro"
    seed: int = 0
    auto: Literal["light", "medium", "heavy"] | None = "light"
    num_candidates: int | None = Field(default=None, ge=1, le=50)
    num_trials: int | None = Field(default=None, ge=1, le=500)
    max_metric_calls: int | None = Field(default=None, ge=1, le=5000)
    max_bootstrapped_demos: int = Field(default=2, ge=0, le=16)
    max_labeled_demos: int = Field(default=2, ge=0, le=16)
    max_train: int = Field(default=500, ge=1, le=500)
    max_val: int = Field(default=200, ge=1, le=200)
    num_threads: int = Field(default=2, ge=1, le=4)
    deadline_seconds: float = Field(default=300.0, gt=0, le=900)


class EvalIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    artifact_hash: Hash
    dataset_hash: Hash
    concurrency: int = Field(default=4, ge=1, le=16)
    max_examples: int = Field(default=200, ge=1, le=500)


def _lock(request: Request) -> asyncio.Lock:
    state = request.app.state
    lock: asyncio.Lock | None = getattr(state, "lanes_lock", None)
    if lock is None:
        lock = asyncio.Lock()
        state.lanes_lock = lock
    if lock.locked():
        raise ServiceUnavailable(
            "another lane run is in progress on this replica", code=ErrorCode.NOT_READY
        )
    return lock


def _settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


def _refused(exc: Exception) -> Exception:
    """Expected lane failures -> the service's error tree (anything else stays a 500)."""
    if isinstance(exc, LookupError):
        return NotFound(str(exc))
    if isinstance(exc, JangarNotConfigured | LaneDeadlineExceeded):
        return ServiceUnavailable(str(exc), code=ErrorCode.NOT_READY)
    return RequestInvalid(str(exc))


@router.post("/dataset-build")
async def dataset_build(
    body: DatasetBuildIn, request: Request, pipeline: PipelineDep, actor: ActorDep
) -> dict[str, Any]:
    """Reviews + outcomes in ``[since, until)`` -> dataset; answers its hash."""
    async with _lock(request):
        try:
            data = await lanes.build_dataset(
                pipeline.factory,
                since=body.since,
                until=body.until,
                seed=body.seed,
                actor=actor,
                clock=pipeline.clock,
                max_examples=body.max_examples,
            )
        except (LookupError, ValueError) as exc:
            raise _refused(exc) from None
    return {"output_hash": data.dataset_hash, "dataset_hash": data.dataset_hash, **_counts(data)}


@router.post("/synthetic")
async def synthetic(
    body: SyntheticIn, request: Request, pipeline: PipelineDep, actor: ActorDep
) -> dict[str, Any]:
    """Seeded synthetic scenarios -> dataset; answers its hash."""
    async with _lock(request):
        try:
            data = await lanes.build_synthetic(
                pipeline.factory, n=body.n, seed=body.seed, actor=actor, clock=pipeline.clock
            )
        except ValueError as exc:
            raise _refused(exc) from None
    return {"output_hash": data.dataset_hash, "dataset_hash": data.dataset_hash, **_counts(data)}


@router.post("/compile")
async def compile_lane(
    body: CompileIn, request: Request, pipeline: PipelineDep, actor: ActorDep
) -> dict[str, Any]:
    """Optimizer over the dataset with the Jangar LM -> candidate artifact; answers its hash."""
    from app.lanes.compile import CompileConfig, Optimizer

    settings = _settings(request)
    try:
        config = CompileConfig(
            optimizer=Optimizer(body.optimizer),
            seed=body.seed,
            auto=body.auto,
            num_candidates=body.num_candidates,
            num_trials=body.num_trials,
            max_metric_calls=body.max_metric_calls,
            max_bootstrapped_demos=body.max_bootstrapped_demos,
            max_labeled_demos=body.max_labeled_demos,
            max_train=body.max_train,
            max_val=body.max_val,
        )
    except ValueError as exc:
        raise RequestInvalid(str(exc)) from None
    async with _lock(request):
        try:
            result = await lanes.compile_candidate(
                pipeline.factory,
                settings,
                dataset_hash=body.dataset_hash,
                config=config,
                actor=actor,
                clock=pipeline.clock,
                num_threads=body.num_threads,
                call_timeout_s=min(60.0, body.deadline_seconds),
                run_deadline_s=body.deadline_seconds,
            )
        except (LookupError, ValueError, JangarNotConfigured, LaneDeadlineExceeded) as exc:
            raise _refused(exc) from None
    return {
        "output_hash": result.artifact_hash,
        "artifact_hash": result.artifact_hash,
        "dataset_hash": result.dataset_hash,
        "compile_config_hash": result.compile_config_hash,
        "optimizer": result.optimizer.value,
        "seed": result.seed,
        "train_n": result.train_n,
        "val_n": result.val_n,
        "val_score": result.val_score,
        "lm_calls": result.lm_calls,
        "duration_s": result.duration_s,
    }


@router.post("/eval")
async def eval_lane(
    body: EvalIn, request: Request, pipeline: PipelineDep, actor: ActorDep
) -> dict[str, Any]:
    """Candidate (and active) through the serving runtime + gates -> scorecard evidence."""
    async with _lock(request):
        try:
            result = await lanes.evaluate_candidate(
                pipeline.factory,
                _settings(request),
                artifact=body.artifact_hash,
                dataset_hash=body.dataset_hash,
                actor=actor,
                clock=pipeline.clock,
                concurrency=body.concurrency,
                max_examples=body.max_examples,
            )
        except (LookupError, ValueError) as exc:
            raise _refused(exc) from None
    return {
        "output_hash": result.evidence_hash,
        "artifact_hash": body.artifact_hash,
        "passes": result.passes,
        "reasons": result.reasons,
        "scorecard": result.scorecard.model_dump(mode="json"),
        "duration_s": result.duration_s,
    }


@router.get("/outputs")
async def outputs(
    pipeline: PipelineDep,
    _: ActorDep,
    lane: Annotated[str | None, Query(max_length=32)] = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
) -> dict[str, Any]:
    """Recent lane runs (newest first), without their payloads."""
    async with read_only(pipeline.factory) as session:
        rows = await repository.recent(session, lane, limit)
    return {
        "outputs": [
            {
                "lane": r.lane,
                "output_hash": r.output_hash,
                "artifact_hash": r.artifact_hash,
                "config": r.config,
                "actor": r.actor,
                "at": r.created_at.isoformat(),
            }
            for r in rows
        ]
    }


def _counts(data: Dataset) -> dict[str, Any]:
    counts = data.counts()
    return {"n": sum(counts.values()), "counts": counts}
