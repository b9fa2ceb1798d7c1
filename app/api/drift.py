"""Drift admin endpoints (``/admin/drift``): run the monitor now, read the latest run, and
acknowledge breaches so that promotions built on the drifted window may proceed. Same bearer
token as every admin endpoint."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from pydantic import BaseModel, ConfigDict, Field

from app.api.admin import ActorDep
from app.api.deps import PipelineDep
from app.api.responses import error_responses
from app.db.session import read_only, unit_of_work
from app.drift import monitor
from app.drift import repository as drift_repo
from app.observability.logging import event
from app.settings import Settings

router = APIRouter(prefix="/admin/drift", tags=["admin"], responses=error_responses(401, 422, 503))


class RunIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    artifact_hash: str | None = Field(default=None, pattern=r"^[0-9a-f]{64}$")


class AcknowledgeIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    reason: str = Field(min_length=1, max_length=1000)


@router.post("/run")
async def run_drift(
    body: RunIn, request: Request, pipeline: PipelineDep, actor: ActorDep
) -> dict[str, Any]:
    """Run the drift monitor now (on the served ACTIVE artifact unless one is named)."""
    settings: Settings = request.app.state.settings
    run = await monitor.run_once(
        pipeline.factory,
        settings,
        clock=pipeline.clock,
        artifact_hash=body.artifact_hash,
        actor=actor,
    )
    return run.to_json()


@router.get("")
async def drift_state(pipeline: PipelineDep, _: ActorDep) -> dict[str, Any]:
    """The latest run's rows and the breaches still waiting for an acknowledgement."""
    async with read_only(pipeline.factory) as session:
        rows = await drift_repo.latest_run(session, pipeline.program_name)
        open_rows = await drift_repo.unacknowledged_breaches(session, pipeline.program_name)
    return {
        "program": pipeline.program_name,
        "latest_run": [_row(r) for r in rows],
        "unacknowledged": [_row(r) for r in open_rows],
    }


@router.post("/acknowledge")
async def acknowledge(
    body: AcknowledgeIn, pipeline: PipelineDep, actor: ActorDep
) -> dict[str, Any]:
    """Acknowledge every drift breach recorded so far: promotions are no longer blocked by them."""
    async with unit_of_work(pipeline.factory) as session:
        out = await drift_repo.acknowledge(
            session, pipeline.program_name, actor=actor, reason=body.reason, now=pipeline.clock()
        )
    event(
        "drift.acknowledged", actor=actor, through_id=out["through_id"], n=len(out["acknowledged"])
    )
    return out


def _row(r: Any) -> dict[str, Any]:
    return {
        "id": r.id,
        "run_id": r.run_id,
        "artifact_hash": r.artifact_hash,
        "model_type": r.model_type,
        "family": r.family,
        "metric": r.metric,
        "test": r.test,
        "statistic": r.statistic,
        "threshold": r.threshold,
        "p_value": r.p_value,
        "n": r.n,
        "m": r.m,
        "breach": r.breach,
        "severity": r.severity,
        "window_start": r.window_start.isoformat() if r.window_start else None,
        "window_end": r.window_end.isoformat() if r.window_end else None,
        "created_at": r.created_at.isoformat(),
    }
