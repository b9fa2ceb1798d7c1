"""The HTTP server: uvicorn (uvloop, httptools) with every connection bounded in time and number.

The protocol class also stamps each request's arrival (``app/api/arrival.py``).

uvicorn bounds an idle keep-alive connection (``timeout_keep_alive``) and concurrent work
(``limit_concurrency``, 503 beyond), but not the time a client may take to send its request
headers: a connection that sends half a request line is held forever. ``BoundedHttpTools``
adds that deadline (partial headers -> 408 ``request_timeout`` and close; nothing at all ->
close) and closes connections beyond ``HTTP_MAX_CONNECTIONS`` as they arrive. The body's own
deadline and size limit are the intake guard's (``app/api/guard.py``). The request-line and
header size is bounded by httptools (llhttp's 80 KiB).
"""

from __future__ import annotations

import asyncio
from typing import Any, cast

import orjson
import uvicorn
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from app.api.arrival import stamping_httptools_protocol
from app.errors import ErrorCode
from app.observability import metrics
from app.settings import Settings


def _timeout_response(seconds: float) -> bytes:
    body = orjson.dumps(
        {
            "error": {
                "code": ErrorCode.REQUEST_TIMEOUT.value,
                "message": f"request headers not received within {seconds:g}s",
                "details": None,
            }
        }
    )
    head = (
        "HTTP/1.1 408 Request Timeout\r\ncontent-type: application/json\r\n"
        f"content-length: {len(body)}\r\nconnection: close\r\n\r\n"
    )
    return head.encode() + body


def bounded_protocol(header_timeout: float, max_connections: int) -> type[asyncio.Protocol]:
    """An httptools protocol class with a header deadline and a connection cap, on top of the
    one that stamps each request's arrival (``app/api/arrival.py``)."""
    timeout_response = _timeout_response(header_timeout)
    stamping = cast(type[HttpToolsProtocol], stamping_httptools_protocol())

    class BoundedHttpTools(stamping):
        _header_timer: asyncio.TimerHandle | None = None
        _got_bytes = False

        def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
            super().connection_made(transport)
            if len(self.connections) > max_connections:
                transport.close()  # over the cap: refuse before any work
                return
            self._arm()

        def data_received(self, data: bytes) -> None:
            self._got_bytes = True
            super().data_received(data)

        def on_message_begin(self) -> None:
            super().on_message_begin()
            if self._header_timer is None:  # the next request on a kept-alive connection
                self._arm()

        def on_headers_complete(self) -> None:
            self._disarm()
            super().on_headers_complete()

        def connection_lost(self, exc: Exception | None) -> None:
            self._disarm()
            super().connection_lost(exc)

        def _arm(self) -> None:
            self._header_timer = self.loop.call_later(header_timeout, self._headers_late)

        def _disarm(self) -> None:
            if self._header_timer is not None:
                self._header_timer.cancel()
                self._header_timer = None

        def _headers_late(self) -> None:
            self._header_timer = None
            if self.transport.is_closing():
                return
            if self._got_bytes:
                metrics.REQUEST_ERRORS.labels(ErrorCode.REQUEST_TIMEOUT.value).inc()
                self.transport.write(timeout_response)
            self.transport.close()

    return BoundedHttpTools


def uvicorn_config(app: Any, settings: Settings, host: str, port: int) -> uvicorn.Config:
    return uvicorn.Config(
        app,
        host=host,
        port=port,
        loop="uvloop",
        http=bounded_protocol(settings.http_header_timeout_seconds, settings.http_max_connections),
        access_log=settings.log_access,
        log_config=None,  # uvicorn's lines go through our JSON handler (app/observability)
        timeout_keep_alive=settings.http_keepalive_timeout_seconds,
        limit_concurrency=settings.http_max_connections,
        timeout_graceful_shutdown=10,
    )


def serve(app: Any, settings: Settings, host: str, port: int) -> None:
    uvicorn.Server(uvicorn_config(app, settings, host, port)).run()
