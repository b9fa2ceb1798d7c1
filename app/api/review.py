"""``POST /review``: read a bounded body, validate, hand to ``pipeline.decide``."""

from __future__ import annotations

from typing import Annotated

import orjson
from fastapi import APIRouter, Header, Request
from fastapi.responses import Response
from pydantic import ValidationError

from app.api.arrival import arrived_at
from app.api.deps import PipelineDep
from app.api.responses import error_responses
from app.errors import BadRequest, ErrorCode, PayloadTooLarge, RequestInvalid
from app.pipeline import decide
from app.review.schemas import ReviewRequest, ReviewResponse

router = APIRouter()

# W3C trace context travels on to Jangar so one trace spans the whole decision.
_TRACE_HEADERS = ("traceparent", "tracestate")

_ERRORS = error_responses(400, 409, 413, 422, 503)


async def read_body(request: Request, limit: int) -> bytes:
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise PayloadTooLarge(f"body exceeds {limit} bytes")
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise PayloadTooLarge(f"body exceeds {limit} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


def parse_review_request(raw: bytes) -> ReviewRequest:
    try:
        # orjson refuses NaN/Infinity literals, which the stdlib parser would accept.
        data = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
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
    raw = await read_body(request, request.app.state.settings.max_body_bytes)
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
