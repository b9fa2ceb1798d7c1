"""The LLM step ends earlier the more calls are in flight, never by more than half the deadline."""

from __future__ import annotations

import httpx
import pytest

from app.review.live import LiveExecutor
from app.settings import load_settings


@pytest.mark.parametrize(
    ("in_flight", "reserve_ms", "stagger"),
    [
        (0, 2.0, 0.0),
        (1, 2.0, 0.002),
        (100, 2.0, 0.2),
        (250, 2.0, 0.5),
        (10_000, 2.0, 0.5),
        (500, 0.0, 0.0),
    ],
)
async def test_budget_when_calls_in_flight_then_reserve_staggers_cutoffs(
    in_flight: int, reserve_ms: float, stagger: float
) -> None:
    settings = load_settings(
        {},
        jangar_base_url="http://127.0.0.1:9",
        llm_dspy_timeout_seconds=1.0,
        llm_answer_reserve_ms=reserve_ms,
    )
    async with httpx.AsyncClient() as client:
        executor = LiveExecutor(settings, client)
        executor.bulkhead.in_flight = in_flight
        assert executor._stagger() == pytest.approx(stagger)  # pyright: ignore[reportPrivateUsage]
