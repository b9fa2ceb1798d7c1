"""One JSON object per line: ``{"ts", "level", "logger", "event", ...fields}``.

Callers keep one API, ``event(name, level, **fields)``. Fields bound for the current task with
``bind(...)`` (``review_id``, ``trace_id``, ``artifact_hash``, ``arm``) are added to every line
logged inside it, and the active OpenTelemetry span (when tracing is on) supplies ``trace_id``.
A field whose name says it is a secret (token, key, authorization, password, secret) is written
as ``"[redacted]"``: no caller can leak one by naming it.
"""

from __future__ import annotations

import contextlib
import logging
import re
import sys
from collections.abc import Generator, Mapping
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import Any, Final

import orjson
from opentelemetry import trace

_LOG = logging.getLogger("trade_review")

_bound: ContextVar[Mapping[str, Any]] = ContextVar("log_fields", default={})  # noqa: B039
_SECRET_NAME: Final = re.compile(r"token|key|authorization|password|secret|cookie", re.I)
# Field names allowed although they match the pattern: hashes and ids are not secrets.
_NOT_SECRET: Final = frozenset({"idempotency_key", "artifact_hash", "policy_hash"})
_REDACTED: Final = "[redacted]"
_RESERVED: Final = frozenset(logging.LogRecord("", 0, "", 0, "", None, None).__dict__) | {
    "message",
    "asctime",
    "color_message",  # uvicorn's ANSI copy of the message
}


def _redact(name: str, value: Any) -> Any:
    if name not in _NOT_SECRET and _SECRET_NAME.search(name):
        return _REDACTED
    return value


class JsonFormatter(logging.Formatter):
    """Every record as one JSON line; records from other libraries too (uvicorn, alembic)."""

    def format(self, record: logging.LogRecord) -> str:
        fields: Mapping[str, Any] | None = getattr(record, "fields", None)
        line: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
        }
        if fields is not None:
            line["event"] = record.getMessage()
        else:
            line["event"] = "log"
            line["message"] = record.getMessage()
            # Extras passed by other libraries (uvicorn's access log passes none we need).
            fields = {k: v for k, v in record.__dict__.items() if k not in _RESERVED}
        context = trace.get_current_span().get_span_context()
        if context.is_valid:
            line["trace_id"] = format(context.trace_id, "032x")
            line["span_id"] = format(context.span_id, "016x")
        for name, value in {**_bound.get(), **fields}.items():
            line[name] = _redact(name, value)
        if record.exc_info and record.exc_info[0] is not None:
            line["exc_type"] = record.exc_info[0].__name__
        return orjson.dumps(line, default=str).decode()


def configure(level: str, *, access_log: bool = False) -> None:
    """JSON lines on stderr for every logger (root handler replaced, idempotent)."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    for old in [h for h in root.handlers if isinstance(h.formatter, JsonFormatter)]:
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level.upper())
    # httpx logs every request at INFO: one line per Jangar call is noise, and CPU.
    logging.getLogger("httpx").setLevel(logging.WARNING)
    # uvicorn's loggers go through the root handler (uvicorn.run(log_config=None)).
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        logger = logging.getLogger(name)
        logger.handlers.clear()
        logger.propagate = True
    logging.getLogger("uvicorn.access").disabled = not access_log


def event(name: str, level: int = logging.INFO, **fields: Any) -> None:
    if _LOG.isEnabledFor(level):
        _LOG.log(level, name, extra={"fields": fields})


def trace_id_from(traceparent: str | None) -> str | None:
    """The trace id of a W3C ``traceparent`` (``00-<32 hex>-<16 hex>-<2 hex>``), else None."""
    if traceparent is None:
        return None
    parts = traceparent.split("-")
    if len(parts) == 4 and len(parts[1]) == 32 and parts[1] != "0" * 32:
        return parts[1].lower()
    return None


def add_fields(**fields: Any) -> None:
    """Add fields to the innermost ``bind`` (which removes them again when it exits)."""
    _bound.set({**_bound.get(), **{k: v for k, v in fields.items() if v is not None}})


@contextlib.contextmanager
def bind(**fields: Any) -> Generator[None]:
    """Add ``fields`` to every line logged in this context (None values are skipped)."""
    token = _bound.set({**_bound.get(), **{k: v for k, v in fields.items() if v is not None}})
    try:
        yield
    finally:
        _bound.reset(token)
