"""Intake guard: what every HTTP request meets first, before routing and before its body.

The order is fixed, so a request is refused as early and as cheaply as possible:

1. the credential its route class needs, from headers only (401 with ``WWW-Authenticate``);
2. the declared ``Content-Length`` against the one body limit (413 ``payload_too_large``);
3. the body itself, read under one deadline and a byte count (408 ``request_timeout``, 413),
   buffered, then replayed to the application.

So an unauthenticated 50 MB post is answered 401 without a byte of its body read, a large one
413 without buffering it, a slow one 408; a route never sees a partial body. A refusal that
leaves an unread body behind closes the connection (``Connection: close``).

Route classes, in one table (``route_credential``):

    /admin, /admin/...           ADMIN_TOKEN (503 ``admin_disabled`` while it is unset)
    /reviews/{id}/outcome        SCHEDULER_TOKEN, when set
    /review                      SCHEDULER_TOKEN, when set and SCHEDULER_TOKEN_FOR_REVIEW
    anything else                open (health, readiness, metrics, the OpenAPI document)

The credential a request proved is left in its scope (``CREDENTIAL_SCOPE_KEY``) so route
dependencies can insist on it (defence in depth: an admin route mounted outside ``/admin``
refuses every call instead of opening up).
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import logging
import re
from enum import StrEnum
from typing import Any

from pydantic import SecretStr
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.api.responses import OrjsonResponse
from app.errors import ErrorCode
from app.observability import metrics
from app.observability.logging import event
from app.settings import Settings

CREDENTIAL_SCOPE_KEY = "trade_review.credential"
_OUTCOME_PATH = re.compile(r"^/reviews/[^/]+/outcome/?$")


class Credential(StrEnum):
    ADMIN = "admin"
    SCHEDULER = "scheduler"


def route_credential(path: str, settings: Settings) -> Credential | None:
    """The credential a path needs (None: open)."""
    if path == "/admin" or path.startswith("/admin/"):
        return Credential.ADMIN
    if settings.scheduler_token is None:
        return None
    if _OUTCOME_PATH.match(path):
        return Credential.SCHEDULER
    if path.rstrip("/") == "/review" and settings.scheduler_token_for_review:
        return Credential.SCHEDULER
    return None


def bearer_token(headers: list[tuple[bytes, bytes]]) -> bytes | None:
    """The token of a single ``Authorization: Bearer <token>`` header (scheme in any case)."""
    values = [v for k, v in headers if k == b"authorization"]
    if len(values) != 1:
        return None  # none, or ambiguous
    scheme, _, token = values[0].strip().partition(b" ")
    token = token.strip()
    if scheme.lower() != b"bearer" or not token:
        return None
    return token


def token_matches(given: bytes | None, expected: SecretStr) -> bool:
    """Constant-time: both sides are hashed first, so neither content nor length leaks."""
    if given is None:
        return False
    want = hashlib.sha256(expected.get_secret_value().encode()).digest()
    return hmac.compare_digest(hashlib.sha256(given).digest(), want)


class _TooLarge(Exception):
    pass


class IntakeGuard:
    """Pure ASGI middleware (no per-request objects on the open, body-less path)."""

    def __init__(self, app: ASGIApp, settings: Settings) -> None:
        self.app = app
        self.settings = settings
        self.limit = settings.max_body_bytes
        self.body_timeout = settings.http_body_timeout_seconds

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers: list[tuple[bytes, bytes]] = scope["headers"]
        declared: bytes | None = None
        chunked = False
        for name, value in headers:
            if name == b"content-length":
                declared = value
            elif name == b"transfer-encoding":
                chunked = True
        has_body = chunked or (declared is not None and declared.strip() not in (b"", b"0"))

        need = route_credential(scope["path"], self.settings)
        if need is not None:
            refusal = self._refusal(need, headers, close=has_body)
            if refusal is not None:
                if refusal.status_code == 401:
                    _log_auth_failure(need, scope, headers)
                await refusal(scope, receive, send)
                return
            scope[CREDENTIAL_SCOPE_KEY] = need.value

        if not has_body:
            await self.app(scope, receive, send)
            return
        if declared is not None and declared.strip().isdigit() and int(declared) > self.limit:
            await self._too_large()(scope, receive, send)
            return
        try:
            async with asyncio.timeout(self.body_timeout):
                body, gone = await self._read(receive)
        except TimeoutError:
            response = _error(
                408,
                ErrorCode.REQUEST_TIMEOUT,
                f"request body not received within {self.body_timeout:g}s",
                close=True,
            )
            await response(scope, receive, send)
            return
        except _TooLarge:
            await self._too_large()(scope, receive, send)
            return
        if gone:
            return  # the client left mid-body: nobody to answer
        await self.app(scope, _replay(body, receive), send)

    def _refusal(
        self, need: Credential, headers: list[tuple[bytes, bytes]], *, close: bool
    ) -> OrjsonResponse | None:
        if need is Credential.ADMIN:
            expected = self.settings.admin_token
            if expected is None:
                return _error(
                    503,
                    ErrorCode.ADMIN_DISABLED,
                    "admin API disabled: ADMIN_TOKEN is not set",
                    close=close,
                )
        else:
            expected = self.settings.scheduler_token
            assert expected is not None  # route_credential asks for it only when set
        given = bearer_token(headers)
        if token_matches(given, expected):
            return None
        challenge = 'Bearer realm="trade-review"'
        if given is not None:
            challenge += ', error="invalid_token"'
        return _error(
            401,
            ErrorCode.UNAUTHORIZED,
            f"missing or wrong {need.value} bearer token",
            close=close,
            headers={"WWW-Authenticate": challenge},
        )

    def _too_large(self) -> OrjsonResponse:
        return _error(
            413, ErrorCode.PAYLOAD_TOO_LARGE, f"body exceeds {self.limit} bytes", close=True
        )

    async def _read(self, receive: Receive) -> tuple[bytes, bool]:
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return b"", True
            chunk: bytes = message.get("body", b"")
            size += len(chunk)
            if size > self.limit:
                raise _TooLarge
            chunks.append(chunk)
            if not message.get("more_body", False):
                return b"".join(chunks), False


def _log_auth_failure(need: Credential, scope: Scope, headers: list[tuple[bytes, bytes]]) -> None:
    """Route, claimed operator and whether a credential was presented: never the credential."""
    presented = any(k == b"authorization" for k, _ in headers)
    operator = next((v for k, v in headers if k == b"x-operator"), b"")
    event(
        f"{need.value}.auth_failed",
        logging.WARNING,
        route=f"{scope['method']} {scope['path']}"[:300],
        operator=operator.decode("latin-1")[:128] or need.value,
        credential="wrong" if presented else "missing",
    )


def _replay(body: bytes, receive: Receive) -> Receive:
    sent = False

    async def replay() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()  # later calls wait for the disconnect, as without the guard

    return replay


def _error(
    status: int,
    code: ErrorCode,
    message: str,
    *,
    close: bool,
    headers: dict[str, str] | None = None,
) -> OrjsonResponse:
    metrics.REQUEST_ERRORS.labels(code.value).inc()
    out = dict(headers or {})
    if close:
        out["Connection"] = "close"  # an unread body must not be parsed as the next request
    body: dict[str, Any] = {"error": {"code": code.value, "message": message, "details": None}}
    return OrjsonResponse(body, status_code=status, headers=out)
