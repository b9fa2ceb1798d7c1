"""Stamp each HTTP request with its arrival time, before routing, body read and validation.

The answer's deadline (``LLM_DSPY_TIMEOUT_SECONDS``) runs from here, on the event loop's clock
(the one ``asyncio.timeout_at`` uses). Under uvicorn (``app.cli serve``) the stamp is taken by
the HTTP protocol when it parses the request's first bytes, which under load is earlier than
the application task's first step; the ASGI middleware stamps any request that arrives
without one (other servers, tests through ``ASGITransport``).
"""

from __future__ import annotations

import asyncio

from starlette.types import ASGIApp, Receive, Scope, Send

# A scope key of our own: the scope is fresh per request in every server, whereas
# ``scope["state"]`` may be one dict shared by all requests (asgi-lifespan passes it as is).
ARRIVED_AT = "trade_review.arrived_at"


class ArrivalStamp:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and ARRIVED_AT not in scope:
            scope[ARRIVED_AT] = asyncio.get_running_loop().time()
        await self.app(scope, receive, send)


def arrived_at(scope: Scope) -> float | None:
    value = scope.get(ARRIVED_AT)
    return value if isinstance(value, float) else None


def stamping_httptools_protocol() -> type:
    """uvicorn's httptools protocol, stamping each request when its first bytes are parsed
    (``on_message_begin`` runs inside ``data_received``, before any task is scheduled)."""
    from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

    class StampingHttpToolsProtocol(HttpToolsProtocol):
        def on_message_begin(self) -> None:
            super().on_message_begin()  # a fresh scope for this request
            self.scope[ARRIVED_AT] = self.loop.time()  # pyright: ignore[reportGeneralTypeIssues]

    return StampingHttpToolsProtocol
