"""JSON responses rendered by orjson (fast, and it refuses NaN instead of emitting it)."""

from __future__ import annotations

from typing import Any

import orjson
from fastapi.responses import JSONResponse


class OrjsonResponse(JSONResponse):
    def render(self, content: Any) -> bytes:
        return orjson.dumps(content)


def error_responses(*codes: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI entries for error answers (every one has the ``ErrorResponse`` shape)."""
    from app.review.schemas import ErrorResponse

    return {code: {"model": ErrorResponse, "description": _DESCRIPTIONS[code]} for code in codes}


_DESCRIPTIONS = {
    400: "Body is not valid JSON",
    401: "Missing or wrong bearer token (admin or scheduler credential)",
    404: "Not found",
    408: "Request body not received within the read deadline",
    409: "Conflict (idempotency key, state transition, promotion evidence, outcome)",
    413: "Body too large",
    422: "Request fails validation",
    503: "Unavailable (audit store down, admin disabled)",
}
