"""Structured-enough logging: one line per event, dotted event names."""

from __future__ import annotations

import logging
from typing import Any

_LOG = logging.getLogger("trade_review")


def configure(level: str) -> None:
    logging.basicConfig(
        level=level.upper(), format="%(asctime)s %(levelname)s %(name)s %(message)s"
    )
    # httpx logs every request at INFO: one line per Jangar call is noise, and CPU.
    logging.getLogger("httpx").setLevel(logging.WARNING)


def event(name: str, level: int = logging.INFO, **fields: Any) -> None:
    if _LOG.isEnabledFor(level):
        extras = " ".join(f"{k}={v!r}" for k, v in fields.items())
        _LOG.log(level, "%s %s", name, extras)
