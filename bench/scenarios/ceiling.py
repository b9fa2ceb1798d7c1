"""Scenario ``ceiling``: bare FastAPI validating the same request model (the denominator
of every throughput ratio)."""

from __future__ import annotations

from typing import Any

from bench.harness import (
    Context,
    running,
    start_ceiling,
)


def run(ctx: Context) -> dict[str, Any]:
    with running(start_ceiling()) as srv:
        ctx.warm(srv)
        figures = ctx.measure(srv, "ceiling", keep=False)
    return {
        "server": "bench/ceiling.py (FastAPI, ReviewRequest validation, constant answer)",
        **figures,
    }
