"""Find a structured log event (``event(name, **fields)``) among pytest's captured records."""

from __future__ import annotations

import logging
from typing import Any

import pytest


def fields_of(record: logging.LogRecord) -> dict[str, Any]:
    """The structured fields of one record (empty for a plain log line)."""
    got = getattr(record, "fields", None)
    return dict(got) if isinstance(got, dict) else {}  # pyright: ignore[reportUnknownArgumentType]


def logged(caplog: pytest.LogCaptureFixture, name: str, **fields: Any) -> bool:
    """True when an event ``name`` was logged whose fields include every ``fields`` item."""
    for record in caplog.records:
        got = getattr(record, "fields", None)
        if (
            record.getMessage() == name
            and isinstance(got, dict)
            and all(got.get(k) == v for k, v in fields.items())  # pyright: ignore[reportUnknownMemberType]
        ):
            return True
    return False
