"""Lane and promotion figures for ``/metrics``, read from the database when scraped.

Lanes run in CLI/CronJob processes that nobody scrapes, so they leave rows instead of counts
(``lane_runs``, ``lane_gate_results``; state changes are the registry's ``artifact_events``).
The service's ``/metrics`` calls ``FiguresReader.refresh`` before rendering: three aggregate
statements (GROUP BY over closed label sets, never rows into memory), at most once per
``cache_s``, bounded by ``timeout_s``. A failed or slow read never fails the scrape: the last
figures read stay exported and ``trade_review_lane_figures_read_failures_total`` counts it.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable

from app.db.session import SessionFactory, read_only
from app.lanes import repository as lane_repo
from app.lanes.service import PACKS, Lane, Outcome
from app.observability import metrics
from app.observability.logging import event
from app.registry import repository as registry_repo
from app.registry.states import ArtifactState, ExecutorKind

# Label sets are closed; a row outside them (written by another version) is left out, except
# model types, which fold into "unknown" so the totals stay whole.
_LANES = frozenset(v.value for v in Lane)
_OUTCOMES = frozenset(v.value for v in Outcome)
_STATES = frozenset(v.value for v in ArtifactState)
_MODEL_TYPES = frozenset(v.value for v in ExecutorKind)
# Far above every closed product (7 lanes x 3 outcomes, ...): a guard, not a page size.
_MAX_GROUPS = 1000


def _model_type(value: str) -> str:
    return value if value in _MODEL_TYPES else "unknown"


async def read(factory: SessionFactory) -> metrics.LaneFigures:
    """The current totals (one read-only session, three aggregate statements)."""
    async with read_only(factory) as session:
        runs = await lane_repo.run_totals(session, metrics.LANE_DURATION_BUCKETS, _MAX_GROUPS)
        checks = await lane_repo.gate_totals(session, _MAX_GROUPS)
        states = await registry_repo.state_entry_totals(session, _MAX_GROUPS)
    run_counts: dict[tuple[str, str], int] = {}
    by_lane: dict[str, tuple[list[int], int, float]] = {}
    for lane, outcome, n, seconds, under in runs:
        if lane not in _LANES or outcome not in _OUTCOMES:
            continue
        run_counts[lane, outcome] = n
        buckets, count, total = by_lane.get(lane, ([0] * len(under), 0, 0.0))
        by_lane[lane] = (
            [a + b for a, b in zip(buckets, under, strict=True)],
            count + n,
            total + seconds,
        )
    check_counts: dict[tuple[str, str, bool], int] = {}
    for model_type, pack, passed, n in checks:
        if pack in PACKS:
            key = (_model_type(model_type), pack, passed)
            check_counts[key] = check_counts.get(key, 0) + n
    state_counts: dict[tuple[str, str], int] = {}
    for executor, state, n in states:
        if state in _STATES:
            key = (_model_type(executor), state)
            state_counts[key] = state_counts.get(key, 0) + n
    return metrics.LaneFigures(
        runs=run_counts,
        durations={
            lane: metrics.LaneDurations(tuple(buckets), count, total)
            for lane, (buckets, count, total) in by_lane.items()
        },
        checks=check_counts,
        states=state_counts,
    )


class FiguresReader:
    """Reads the figures for one service's scrapes: cached, bounded, never raising."""

    def __init__(
        self,
        factory: SessionFactory,
        *,
        cache_s: float,
        timeout_s: float,
        collector: metrics.LaneFiguresCollector = metrics.LANE_FIGURES,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._factory = factory
        self._cache_s = cache_s
        self._timeout_s = timeout_s
        self._collector = collector
        self._monotonic = monotonic
        self._attempted: float | None = None
        self._lock = asyncio.Lock()

    async def refresh(self) -> None:
        """Read the figures unless read (or tried) within ``cache_s``; a scrape that arrives
        while another reads exports what is there instead of waiting."""
        now = self._monotonic()
        fresh = self._attempted is not None and now - self._attempted < self._cache_s
        if fresh or self._lock.locked():
            return
        async with self._lock:
            self._attempted = now
            try:
                async with asyncio.timeout(self._timeout_s):
                    figures = await read(self._factory)
            except Exception as exc:  # TimeoutError included: the scrape goes on
                metrics.LANE_FIGURES_READ_FAILURES.inc()
                event("metrics.lane_figures_unread", logging.WARNING, error=type(exc).__name__)
                return
            self._collector.publish(figures, self._monotonic())

    def close(self) -> None:
        """The service stops: its figures are no longer vouched for."""
        self._collector.clear()
