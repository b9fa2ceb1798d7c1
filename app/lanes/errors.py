"""Lane failures the callers map to answers (kept free of DSPy so routers import them cheaply)."""

from __future__ import annotations


class JangarNotConfigured(Exception):
    """The lanes that call an LM (compile) need JANGAR_BASE_URL."""


class LaneDeadlineExceeded(TimeoutError):
    """The lane run used up its time budget; its result is discarded."""
