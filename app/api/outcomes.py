"""``POST /reviews/{review_id}/outcome``: what happened to a reviewed order, so datasets learn
from fills and realized P&L rather than from what the reviewer said. Scheduler-facing: when
``SCHEDULER_TOKEN`` is set the intake guard requires it (``app/api/guard.py``)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy.exc import IntegrityError

from app.api.deps import PipelineDep
from app.api.responses import error_responses
from app.db.session import read_only, unit_of_work
from app.errors import Conflict, ErrorCode, NotFound
from app.review.bounds import TEXT_PATTERN
from app.reviews import repository as reviews

router = APIRouter()


class OutcomeIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    filled: bool
    fill_price: float | None = Field(default=None, gt=0, allow_inf_nan=False)
    fill_qty: float | None = Field(default=None, ge=0, allow_inf_nan=False)
    realized_pnl: float | None = Field(default=None, allow_inf_nan=False)
    horizon_seconds: int = Field(default=86_400, gt=0, le=366 * 86_400)
    # Stored: no control characters but TAB/LF/CR (the rule of app/review/bounds.py).
    notes: str | None = Field(default=None, max_length=1000, pattern=TEXT_PATTERN)


class OutcomeOut(BaseModel):
    review_id: str
    horizon_seconds: int
    recorded: bool  # false: the same outcome was already recorded (idempotent repeat)


@router.post(
    "/reviews/{review_id}/outcome",
    response_model=OutcomeOut,
    responses=error_responses(401, 404, 408, 409, 413, 422),
)
async def record_outcome(review_id: str, body: OutcomeIn, pipeline: PipelineDep) -> OutcomeOut:
    payload: dict[str, Any] = body.model_dump()
    try:
        async with unit_of_work(pipeline.factory) as session:
            if await reviews.get_by_review_id(session, review_id) is None:
                raise NotFound(f"review {review_id} not found")
            existing = await reviews.find_outcome(session, review_id, body.horizon_seconds)
            if existing is not None:
                if existing != payload:
                    raise Conflict(
                        "a different outcome is already recorded for this horizon",
                        code=ErrorCode.OUTCOME_CONFLICT,
                    )
                return OutcomeOut(
                    review_id=review_id, horizon_seconds=body.horizon_seconds, recorded=False
                )
            await reviews.add_outcome(session, review_id, payload, pipeline.clock())
    except IntegrityError:
        async with read_only(pipeline.factory) as session:
            existing = await reviews.find_outcome(session, review_id, body.horizon_seconds)
        if existing != payload:
            raise Conflict(
                "a different outcome is already recorded for this horizon",
                code=ErrorCode.OUTCOME_CONFLICT,
            ) from None
        return OutcomeOut(review_id=review_id, horizon_seconds=body.horizon_seconds, recorded=False)
    return OutcomeOut(review_id=review_id, horizon_seconds=body.horizon_seconds, recorded=True)
