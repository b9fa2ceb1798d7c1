"""Operator endpoints for progressive delivery (same bearer auth as ``/admin``):

POST /admin/rollouts            start a canary of a SHADOW artifact (evidence checked)
GET  /admin/rollouts/current    the open (or latest) rollout, its split and every decision
POST /admin/rollouts/pause|resume|abort
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from fastapi import APIRouter, Request
from pydantic import BaseModel, ConfigDict, Field

from app.api.admin import ActorDep
from app.api.deps import PipelineDep
from app.api.responses import error_responses
from app.db.models import RolloutRow
from app.db.session import read_only, unit_of_work
from app.errors import Conflict, ErrorCode, NotFound
from app.registry import service as registry
from app.registry.promotion import policy_for
from app.rollout import repository
from app.rollout import service as rollouts
from app.rollout.analysis import Thresholds
from app.rollout.evidence import ShadowPolicy
from app.settings import Settings

router = APIRouter(
    prefix="/admin/rollouts", tags=["admin"], responses=error_responses(401, 404, 409, 422, 503)
)


Waiver = Literal["delta_sharpe", "max_drawdown", "replay"]


class StartIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    artifact_hash: str = Field(min_length=64, max_length=64, pattern=r"^[0-9a-f]{64}$")
    steps: list[float] = Field(default_factory=lambda: list(rollouts.DEFAULT_STEPS), max_length=20)
    window_seconds: float | None = Field(default=None, gt=0, le=7 * 86400)
    min_samples: int | None = Field(default=None, ge=1, le=1_000_000)
    thresholds: Thresholds | None = None
    # Explicit acceptances, recorded with the start event: a shadow disagreement above 1%, and
    # scorecard gates that could not be computed (``delta_sharpe``, ``max_drawdown``).
    accept_disagreement: float | None = Field(default=None, ge=0, le=1)
    waive: list[Waiver] = Field(default_factory=list[Waiver])
    reason: str = Field(default="", max_length=1000)


class ActionIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    reason: str = Field(default="", max_length=1000)


def _iso(ts: datetime | None) -> str | None:
    return rollouts.aware(ts).isoformat() if ts is not None else None


def rollout_json(r: RolloutRow) -> dict[str, Any]:
    return {
        "id": r.id,
        "program": r.program_name,
        "candidate_hash": r.candidate_hash,
        "baseline_hash": r.baseline_hash,
        "state": r.state,
        "steps": r.steps,
        "step_index": r.step_index,
        "weight_pct": r.weight_pct,
        "window_seconds": r.window_seconds,
        "min_samples": r.min_samples,
        "thresholds": r.thresholds,
        "created_by": r.created_by,
        "created_at": _iso(r.created_at),
        "window_started_at": _iso(r.window_started_at),
        "ended_at": _iso(r.ended_at),
    }


@router.post("")
async def start_rollout(
    body: StartIn, request: Request, pipeline: PipelineDep, actor: ActorDep
) -> dict[str, Any]:
    """SHADOW -> CANARY at the first step; 409 with the reasons when the evidence is missing."""
    settings: Settings = request.app.state.settings
    try:
        async with unit_of_work(pipeline.factory) as session:
            r = await rollouts.start(
                session,
                pipeline.program_name,
                body.artifact_hash,
                actor=actor,
                policy=policy_for(settings),
                shadow_days=settings.learn_shadow_duration_days,
                steps=body.steps,
                window_seconds=body.window_seconds or settings.rollout_default_window_seconds,
                min_samples=body.min_samples or settings.rollout_default_min_samples,
                thresholds=body.thresholds
                or Thresholds(latency_floor_ms=settings.rollout_latency_floor_ms),
                reason=body.reason,
                now=pipeline.clock(),
                shadow_policy=ShadowPolicy(
                    min_samples=settings.learn_shadow_min_samples,
                    max_disagreement=settings.learn_shadow_max_disagreement,
                    max_latency_ratio=settings.learn_shadow_max_latency_ratio,
                ),
                accepted_disagreement=body.accept_disagreement,
                waivers=frozenset(body.waive),
            )
            out = rollout_json(r) if isinstance(r, RolloutRow) else None
    except LookupError as exc:
        raise NotFound(str(exc)) from None
    except rollouts.RolloutError as exc:
        raise Conflict(str(exc), code=ErrorCode.INVALID_TRANSITION) from None
    except registry.TransitionConflict as exc:
        raise Conflict(str(exc), code=ErrorCode.TRANSITION_CONFLICT) from None
    if isinstance(r, rollouts.RolloutDenied):  # the denial's record is committed above
        codes = {c.value for c in ErrorCode}
        code = ErrorCode(r.code) if r.code in codes else ErrorCode.E_LEARN_GATE_FAILED
        raise Conflict("canary denied: evidence missing", code=code, details={"reasons": r.reasons})
    assert out is not None
    return out


@router.get("/current")
async def current_rollout(pipeline: PipelineDep, _: ActorDep) -> dict[str, Any]:
    async with read_only(pipeline.factory) as session:
        r = await repository.latest(session, pipeline.program_name)
        if r is None:
            raise NotFound(f"no rollout of {pipeline.program_name}")
        evs = await repository.events(session, r.id)
        out = rollout_json(r)
    live = pipeline.live
    return {
        **out,
        "serving": {
            "routing_disabled": live.controls.routing_disabled,
            "canary_hash": live.canary.artifact_hash if live.canary else None,
            "weight_pct": live.route.weight_pct if live.route and live.canary else 0.0,
        },
        "events": [
            {
                "decision": e.decision,
                "actor": e.actor,
                "reasons": e.reasons,
                "figures": e.figures,
                "weight_pct": e.weight_pct,
                "at": _iso(e.created_at),
            }
            for e in evs
        ],
    }


async def _act(pipeline: PipelineDep, actor: str, action: str, reason: str) -> dict[str, Any]:
    now = pipeline.clock()
    program = pipeline.program_name
    try:
        async with unit_of_work(pipeline.factory) as session:
            if action == "pause":
                r = await rollouts.pause(session, program, actor=actor, reason=reason, now=now)
            elif action == "resume":
                r = await rollouts.resume(session, program, actor=actor, reason=reason, now=now)
            else:
                r = await rollouts.abort(
                    session,
                    program,
                    actor=actor,
                    reasons=[f"operator abort: {reason}" if reason else "operator abort"],
                    figures={},
                    now=now,
                )
            return rollout_json(r)
    except rollouts.RolloutError as exc:
        raise Conflict(str(exc), code=ErrorCode.INVALID_TRANSITION) from None
    except registry.TransitionConflict as exc:
        raise Conflict(str(exc), code=ErrorCode.TRANSITION_CONFLICT) from None


@router.post("/pause")
async def pause_rollout(body: ActionIn, pipeline: PipelineDep, actor: ActorDep) -> dict[str, Any]:
    """Hold the current step (the split stays; the controller decides nothing)."""
    return await _act(pipeline, actor, "pause", body.reason)


@router.post("/resume")
async def resume_rollout(body: ActionIn, pipeline: PipelineDep, actor: ActorDep) -> dict[str, Any]:
    return await _act(pipeline, actor, "resume", body.reason)


@router.post("/abort")
async def abort_rollout(body: ActionIn, pipeline: PipelineDep, actor: ActorDep) -> dict[str, Any]:
    """0% canary at once on every replica; the candidate goes back to SHADOW."""
    return await _act(pipeline, actor, "abort", body.reason)
