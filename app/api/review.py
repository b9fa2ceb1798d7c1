"""``POST /review``: validate the body (already bounded by the intake guard: size, read deadline,
credential), hand it to ``pipeline.decide``."""

from __future__ import annotations

from typing import Annotated

import orjson
from fastapi import APIRouter, Header, Request
from fastapi.responses import Response
from pydantic import ValidationError

from app.api.arrival import arrived_at
from app.api.deps import PipelineDep
from app.api.responses import error_responses
from app.errors import BadRequest, ErrorCode, RequestInvalid
from app.pipeline import decide
from app.review.bounds import MAX_DEPTH, nesting_exceeds
from app.review.schemas import ReviewRequest, ReviewResponse

router = APIRouter()

# W3C trace context travels on to Jangar so one trace spans the whole decision.
_TRACE_HEADERS = ("traceparent", "tracestate")

_ERRORS = error_responses(400, 401, 408, 409, 413, 422, 503)


def parse_review_request(raw: bytes) -> ReviewRequest:
    try:
        # orjson refuses NaN/Infinity literals, which the stdlib parser would accept.
        data = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        if nesting_exceeds(raw):
            # Deeper than the parser goes: the same answer as any over-deep document (422).
            detail = {"path": "body", "message": f"nested deeper than {MAX_DEPTH} levels"}
            raise RequestInvalid(
                "request failed validation", details=[{**detail, "type": "unsafe_input"}]
            ) from None
        raise BadRequest(f"body is not valid JSON: {exc}", code=ErrorCode.INVALID_JSON) from None
    if not isinstance(data, dict):
        raise BadRequest("body must be a JSON object", code=ErrorCode.BODY_NOT_OBJECT)
    try:
        return ReviewRequest.model_validate(data)
    except ValidationError as exc:
        details = [
            {"path": ".".join(str(p) for p in e["loc"]), "message": e["msg"], "type": e["type"]}
            for e in exc.errors(include_url=False, include_input=False)
        ]
        raise RequestInvalid("request failed validation", details=details) from None


@router.post(
    "/review",
    response_model=ReviewResponse,
    responses=_ERRORS,
    summary="Review one proposed order: submit or reject, with reasons",
    # The body is read and validated by hand (size limit, NaN refusal, our error shape); the
    # schema is declared here and its components are added in ``main.custom_openapi``.
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {
                "application/json": {"schema": {"$ref": "#/components/schemas/ReviewRequest"}}
            },
        }
    },
)
async def review(
    request: Request,
    pipeline: PipelineDep,
    idempotency_key: Annotated[str | None, Header(max_length=200)] = None,
) -> Response:
    raw = await request.body()  # the guard buffered it within MAX_BODY_BYTES
    payload = parse_review_request(raw)
    trace = {k: v for k in _TRACE_HEADERS if (v := request.headers.get(k)) is not None}
    result = await decide(pipeline, payload, idempotency_key, trace, arrived_at(request.scope))
    timings = result.body["timings_ms"]
    # Time spent outside the LLM call (a replay did no work: 0).
    overhead = max(timings.get("total", 0.0) - timings.get("llm", 0.0), 0.0)
    headers = {
        "X-Idempotent-Replay": "true" if result.replay else "false",
        "X-Review-Overhead-Ms": f"{overhead:.3f}",
    }
    return Response(orjson.dumps(result.body), media_type="application/json", headers=headers)
