"""Operator endpoints. Never open: ``Authorization: Bearer <ADMIN_TOKEN>`` or 401; 503
``admin_disabled`` when no token is configured. The token is checked by the intake guard
(``app/api/guard.py``) before any other header or the body is read; ``require_admin`` refuses
a request the guard did not admit as admin. The acting operator (``X-Operator``, default
``admin``) is recorded on every event."""

from __future__ import annotations

import logging
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Header, Query, Request
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy.exc import IntegrityError

from app.api.deps import PipelineDep
from app.api.guard import CREDENTIAL_SCOPE_KEY, Credential
from app.api.responses import error_responses
from app.controls import repository as controls_repo
from app.controls import service as controls_service
from app.controls.changes import ReasonRequired
from app.db.session import read_only, unit_of_work
from app.drift.monitor import drift_block
from app.errors import (
    Conflict,
    ErrorCode,
    NotFound,
    RequestInvalid,
    ServiceError,
    Unauthorized,
)
from app.gates.context import TradingState
from app.lanes.service import Lane, Outcome, observed
from app.observability.logging import event
from app.registry import evidence, repository, service
from app.registry.artifact import ArtifactRefused, Refusal
from app.registry.promotion import policy_for
from app.registry.states import ArtifactState, InvalidTransition
from app.settings import Settings


def require_admin(
    request: Request,
    # "operator:" + this fits the 128-character actor columns of every history table.
    x_operator: Annotated[str | None, Header(max_length=128 - len("operator:"))] = None,
) -> str:
    if request.scope.get(CREDENTIAL_SCOPE_KEY) != Credential.ADMIN.value:
        raise Unauthorized("admin routes must be served under /admin (intake guard)")
    return f"operator:{x_operator or 'admin'}"


ActorDep = Annotated[str, Depends(require_admin)]
router = APIRouter(
    prefix="/admin", tags=["admin"], responses=error_responses(401, 404, 408, 409, 413, 422, 503)
)


class TransitionIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    to: ArtifactState
    reason: str = Field(default="", max_length=1000)
    # For active, ``{"approver", "ticket", "waive": ["replay"]}``: the approval record.
    approval: dict[str, Any] | None = None
    # Findings the operator accepts by name (canary; for active, the approval's ``waive``).
    waive: list[Literal["replay"]] = Field(default_factory=list[Literal["replay"]])


class RollbackIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    reason: str = Field(default="", max_length=1000)


class ControlsIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    trading_state: TradingState | None = None
    dspy_disabled: bool | None = None
    routing_disabled: bool | None = None
    reason: str = Field(default="", max_length=1000)


# Every refusal has its own stable error code (a test checks the mapping is complete).
REFUSAL_CODES: dict[Refusal, ErrorCode] = {
    Refusal.CONTENT_ALTERED: ErrorCode.ARTIFACT_CONTENT_ALTERED,
    Refusal.STATE_PRUNED: ErrorCode.ARTIFACT_STATE_PRUNED,
    Refusal.SIGNATURE_MISMATCH: ErrorCode.ARTIFACT_SIGNATURE_MISMATCH,
    Refusal.NEVER_ACTIVE: ErrorCode.ARTIFACT_NEVER_ACTIVE,
    Refusal.MISSING: ErrorCode.NOT_FOUND,
    Refusal.INVALID: ErrorCode.ARTIFACT_INVALID,
}


def _refused(
    refusal: Refusal, message: str, actor: str, reasons: list[str] | None = None
) -> ServiceError:
    event("registry.artifact_refused", logging.WARNING, reason=refusal.value, actor=actor)
    kind = NotFound if refusal is Refusal.MISSING else Conflict
    return kind(
        message,
        code=REFUSAL_CODES[refusal],
        details={"refusal": refusal.value, "reasons": reasons or [message]},
    )


def _artifact_json(row: Any) -> dict[str, Any]:
    return {
        "artifact_hash": row.artifact_hash,
        "program_name": row.program_name,
        "signature_version": row.signature_version,
        "executor": row.executor,
        "state": row.state,
        "manifest": row.manifest,
        "lineage": row.lineage,
        "created_at": row.created_at.isoformat(),
        "updated_at": row.updated_at.isoformat(),
    }


@router.get("/artifacts")
async def list_artifacts(pipeline: PipelineDep, _: ActorDep) -> dict[str, Any]:
    async with read_only(pipeline.factory) as session:
        rows = await repository.list_for_program(session, pipeline.program_name)
    served = pipeline.live.artifact
    return {
        "program": pipeline.program_name,
        "pinned_hash": pipeline.live.pinned_hash,
        "served_hash": served.artifact_hash if served else None,
        "artifacts": [_artifact_json(r) for r in rows],
    }


@router.get("/artifacts/{artifact_hash}")
async def show_artifact(artifact_hash: str, pipeline: PipelineDep, _: ActorDep) -> dict[str, Any]:
    async with read_only(pipeline.factory) as session:
        row = await repository.get_by_hash(session, artifact_hash)
        if row is None:
            raise NotFound(f"artifact {artifact_hash} not found")
        events = await repository.events(session, artifact_hash)
        evid = await evidence.all_for(session, artifact_hash)
    return {
        **_artifact_json(row),
        "events": [
            {
                "actor": e.actor,
                "from": e.from_state,
                "to": e.to_state,
                "reason": e.reason,
                "evidence_hash": e.evidence_hash,
                "at": e.created_at.isoformat(),
            }
            for e in events
        ],
        "evidence": [
            {"kind": e.kind, "hash": e.evidence_hash, "payload": e.payload, "actor": e.actor}
            for e in evid
        ],
    }


@router.post("/artifacts/{artifact_hash}/transition")
async def transition_artifact(
    artifact_hash: str, body: TransitionIn, request: Request, pipeline: PipelineDep, actor: ActorDep
) -> dict[str, Any]:
    """Promote (shadow/canary/active: evidence checked), retire, or re-activate."""
    settings: Settings = request.app.state.settings
    policy = policy_for(settings)
    now = pipeline.clock()
    lane = Lane.RETIRE if body.to is ArtifactState.RETIRED else Lane.PROMOTE
    try:
        # Recorded like the CLI's lane run (lane figures on /metrics count admin moves too).
        async with (
            observed(pipeline.factory, lane, actor=actor, clock=pipeline.clock) as run,
            unit_of_work(pipeline.factory) as session,
        ):
            run.artifact_hash = artifact_hash
            if body.to is ArtifactState.RETIRED:
                before = await service.retire(
                    session, artifact_hash, actor=actor, reason=body.reason, now=now
                )
                result = service.PromotionResult(True, None, [], before)
            else:
                # --- drift: a breach blocks promotions built on the drifted window
                blocked = await drift_block(
                    session, pipeline.program_name, artifact_hash, body.to, now
                )
                result = blocked or await service.promote(
                    session,
                    artifact_hash,
                    body.to,
                    actor=actor,
                    policy=policy,
                    shadow_days=settings.learn_shadow_duration_days,
                    approval=body.approval,
                    reason=body.reason,
                    now=now,
                    waivers=frozenset(body.waive),
                )
            if not result.promoted:
                run.outcome = Outcome.DENIED
    except LookupError as exc:
        raise NotFound(str(exc)) from None
    except InvalidTransition as exc:
        raise Conflict(str(exc), code=ErrorCode.INVALID_TRANSITION) from None
    except ArtifactRefused as exc:
        raise _refused(exc.reason, str(exc), actor) from None
    except (service.TransitionConflict, IntegrityError) as exc:
        raise Conflict(
            f"transition lost a race: {exc}", code=ErrorCode.TRANSITION_CONFLICT
        ) from None
    if result.refusal is not None:
        raise _refused(result.refusal, f"promotion to {body.to} refused", actor, result.reasons)
    if not result.promoted:
        assert result.code is not None
        raise Conflict(
            f"promotion to {body.to} denied",
            code=ErrorCode(result.code.value),
            details={"reasons": result.reasons},
        )
    event(
        "registry.rollout_completed",
        artifact_hash=artifact_hash,
        from_state=str(result.from_state),
        to_state=body.to.value,
        actor=actor,
    )
    return {"artifact_hash": artifact_hash, "from": result.from_state, "to": body.to}


@router.post("/artifacts/rollback")
async def rollback_artifact(
    body: RollbackIn, pipeline: PipelineDep, actor: ActorDep
) -> dict[str, Any]:
    """Re-point ACTIVE to the last known good artifact (README: the rollback rule); every
    replica follows within 2 s."""
    try:
        async with (
            observed(pipeline.factory, Lane.ROLLBACK, actor=actor, clock=pipeline.clock) as run,
            unit_of_work(pipeline.factory) as session,
        ):
            restored, replaced = await service.rollback(
                session,
                pipeline.program_name,
                actor=actor,
                reason=body.reason,
                now=pipeline.clock(),
            )
            run.artifact_hash = restored
    except LookupError as exc:
        raise NotFound(str(exc)) from None
    except ArtifactRefused as exc:
        raise _refused(exc.reason, str(exc), actor) from None
    except InvalidTransition as exc:
        raise Conflict(str(exc), code=ErrorCode.INVALID_TRANSITION) from None
    except (service.TransitionConflict, IntegrityError) as exc:
        raise Conflict(f"rollback lost a race: {exc}", code=ErrorCode.TRANSITION_CONFLICT) from None
    event("registry.rollback_completed", restored=restored, replaced=replaced, actor=actor)
    return {"restored": restored, "replaced": replaced}


@router.get("/controls")
async def get_controls(pipeline: PipelineDep, _: ActorDep) -> dict[str, Any]:
    c = pipeline.live.controls
    return {
        "trading_state": c.trading_state,
        "dspy_disabled": c.dspy_disabled,
        "routing_disabled": c.routing_disabled,
        "version": c.version,
    }


@router.post("/controls")
async def set_controls(body: ControlsIn, pipeline: PipelineDep, actor: ActorDep) -> dict[str, Any]:
    """Change trading state / kill switches for every replica (seen within 2 s). Recorded as
    an append-only event (actor, reason, before -> after); relaxing needs a reason."""
    if body.trading_state is None and body.dspy_disabled is None and body.routing_disabled is None:
        raise RequestInvalid("name at least one control to change")
    try:
        result = await controls_service.change(
            pipeline.factory,
            actor=actor,
            reason=body.reason,
            now=pipeline.clock(),
            trading_state=body.trading_state,
            dspy_disabled=body.dspy_disabled,
            routing_disabled=body.routing_disabled,
        )
    except ReasonRequired as exc:
        raise RequestInvalid(str(exc), details=[{"path": "reason", "message": str(exc)}]) from None
    c = result.after
    return {
        "trading_state": c.trading_state,
        "dspy_disabled": c.dspy_disabled,
        "routing_disabled": c.routing_disabled,
        "version": c.version,
        "changed": result.changed,
    }


@router.get("/controls/history")
async def controls_history(
    pipeline: PipelineDep,
    _: ActorDep,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    before: Annotated[
        int | None, Query(ge=1, description="page back: events older than id")
    ] = None,
) -> dict[str, Any]:
    """Every control change, newest first (append-only: never edited)."""
    async with read_only(pipeline.factory) as session:
        rows = await controls_repo.history(session, limit=limit, before_id=before)
    return {
        "events": [controls_service.event_json(e) for e in rows],
        "next_before": rows[-1].id if len(rows) == limit else None,
    }
