"""``/healthz`` (the process answers) and ``/readyz`` (database answers, an artifact serves)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from sqlalchemy import text

from app.db.session import read_only
from app.pipeline import PipelineDeps

router = APIRouter()


@router.get("/healthz", summary="Liveness: the process and its event loop answer")
async def healthz() -> dict[str, str]:
    return {"status": "ok"}


@router.get(
    "/readyz",
    summary="Readiness: database reachable and an artifact loaded",
    responses={
        200: {"content": {"application/json": {"schema": {"type": "object"}}}},
        503: {
            "description": "Not ready",
            "content": {"application/json": {"schema": {"type": "object"}}},
        },
    },
)
async def readyz(request: Request) -> JSONResponse:
    pipeline: PipelineDeps = request.app.state.pipeline
    checks: dict[str, Any] = {}
    try:
        async with read_only(pipeline.factory) as session:
            await session.execute(text("SELECT 1"))
        checks["database"] = "ok"
    except Exception as exc:
        checks["database"] = f"unavailable: {type(exc).__name__}"
    artifact = pipeline.live.artifact
    checks["artifact"] = artifact.artifact_hash if artifact else "none"
    if pipeline.live.last_error is not None:
        checks["artifact_error"] = pipeline.live.last_error  # e.g. a refused promotion
    if pipeline.live.last_refusal is not None:
        checks["artifact_refusal"] = pipeline.live.last_refusal.value  # closed set: the code
    checks["controls"] = "ok" if pipeline.live.controls_loaded else "not loaded"
    ready = checks["database"] == "ok" and artifact is not None and pipeline.live.controls_loaded
    body = {"status": "ready" if ready else "not_ready", "checks": checks}
    return JSONResponse(body, status_code=200 if ready else 503)
