"""Error tree and the single JSON error shape.

    ServiceError                      -> {"error": {"code", "message", "details"}}
     +-- BadRequest (400)              invalid_json, body_not_object
     +-- PayloadTooLarge (413)         payload_too_large
     +-- RequestInvalid (422)          validation_error (details: field paths)
     +-- Unauthorized (401)            unauthorized
     +-- NotFound (404)                not_found
     +-- Conflict (409)                idempotency_conflict, invalid_transition,
                                       transition_conflict, outcome_conflict,
                                       E_LEARN_GATE_FAILED, E_LEARN_APPROVAL_MISSING,
                                       artifact_content_altered, artifact_state_pruned,
                                       artifact_signature_mismatch, artifact_never_active,
                                       artifact_invalid
     +-- ServiceUnavailable (503)      audit_unavailable, admin_disabled, not_ready

Codes are a closed vocabulary (``ErrorCode``); clients may branch on them.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Any


class ErrorCode(StrEnum):
    INVALID_JSON = "invalid_json"
    BODY_NOT_OBJECT = "body_not_object"
    PAYLOAD_TOO_LARGE = "payload_too_large"
    VALIDATION_ERROR = "validation_error"
    UNSUPPORTED_MEDIA_TYPE = "unsupported_media_type"
    UNAUTHORIZED = "unauthorized"
    NOT_FOUND = "not_found"
    METHOD_NOT_ALLOWED = "method_not_allowed"
    IDEMPOTENCY_CONFLICT = "idempotency_conflict"
    INVALID_TRANSITION = "invalid_transition"
    TRANSITION_CONFLICT = "transition_conflict"
    OUTCOME_CONFLICT = "outcome_conflict"
    E_LEARN_GATE_FAILED = "E_LEARN_GATE_FAILED"
    E_LEARN_APPROVAL_MISSING = "E_LEARN_APPROVAL_MISSING"
    E_LEARN_DRIFT_BREACH = "E_LEARN_DRIFT_BREACH"
    # Registry refusals (``registry.artifact.Refusal``): why an artifact may not serve.
    ARTIFACT_CONTENT_ALTERED = "artifact_content_altered"
    ARTIFACT_STATE_PRUNED = "artifact_state_pruned"
    ARTIFACT_SIGNATURE_MISMATCH = "artifact_signature_mismatch"
    ARTIFACT_NEVER_ACTIVE = "artifact_never_active"
    ARTIFACT_INVALID = "artifact_invalid"
    AUDIT_UNAVAILABLE = "audit_unavailable"
    ADMIN_DISABLED = "admin_disabled"
    NOT_READY = "not_ready"
    INTERNAL_ERROR = "internal_error"


class ServiceError(Exception):
    status_code = 500
    code: ErrorCode = ErrorCode.INTERNAL_ERROR

    def __init__(
        self,
        message: str,
        *,
        code: ErrorCode | None = None,
        details: Any = None,
        extra: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code
        self.details = details
        # Extra top-level members of the body (e.g. ``decision: reject`` on audit failure).
        self.extra = extra or {}

    def body(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "error": {"code": str(self.code), "message": self.message, "details": self.details}
        }
        out.update(self.extra)
        return out


class BadRequest(ServiceError):
    status_code = 400
    code = ErrorCode.INVALID_JSON


class PayloadTooLarge(ServiceError):
    status_code = 413
    code = ErrorCode.PAYLOAD_TOO_LARGE


class RequestInvalid(ServiceError):
    status_code = 422
    code = ErrorCode.VALIDATION_ERROR


class Unauthorized(ServiceError):
    status_code = 401
    code = ErrorCode.UNAUTHORIZED


class NotFound(ServiceError):
    status_code = 404
    code = ErrorCode.NOT_FOUND


class Conflict(ServiceError):
    status_code = 409
    code = ErrorCode.IDEMPOTENCY_CONFLICT


class ServiceUnavailable(ServiceError):
    status_code = 503
    code = ErrorCode.AUDIT_UNAVAILABLE
