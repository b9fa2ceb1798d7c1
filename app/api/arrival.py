"""Stamp each HTTP request with its arrival time, before routing, body read and validation.

The answer's deadline (``LLM_DSPY_TIMEOUT_SECONDS``) runs from here: the moment the server hands
the request to the application, on the event loop's clock (the one ``asyncio.timeout_at``
uses). A pure ASGI middleware, so stamping costs one clock read and no per-request objects.
"""

from __future__ import annotations

import asyncio
from typing import Any

from starlette.types import ASGIApp, Receive, Scope, Send

ARRIVED_AT = "arrived_at"


class ArrivalStamp:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            state: dict[str, Any] = scope.setdefault("state", {})
            state[ARRIVED_AT] = asyncio.get_running_loop().time()
        await self.app(scope, receive, send)


def arrived_at(scope: Scope) -> float | None:
    value = scope.get("state", {}).get(ARRIVED_AT)
    return value if isinstance(value, float) else None
